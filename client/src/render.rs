//! What a person reads: the text form of a node's answers, in Chinese, as tables with a header
//! row whose columns line up with Chinese text (comfy-table measures display width), dates in
//! China time (`2026-12-05 17:00`), names beside codes.
//!
//! Everything a peer or a user wrote (titles, notes, reasons, names) passes through [`clean`]
//! before it reaches a terminal: a control character (an ESC sequence raised at a school) is
//! shown escaped, never executed by the province's terminal.

use comfy_table::{ContentArrangement, Table};
use node::api::alerts::AlertView;
use node::api::cases::CaseView;
use node::api::directives::DirectiveView;
use node::api::draw::{DrawVerified, DrawView};
use node::api::ledgers::{LedgerDay, LedgerView};
use node::api::registry::EntityView;
use node::api::registry::RuleSettingsView;
use node::api::spot::{RateView, SpotCheckView};
use node::api::warnings::{CandidateView, Candidates, WarningView};
use node::runtime::link::{LinkState, LinkStatus};
use node::runtime::root::NodeStatus;
use protocol::calendar::ChinaTime;
use protocol::calendar::YearSchedule;
use protocol::case::{CaseActionKind, CaseState, StepOutcome};
use protocol::ledger::{LedgerKind, LedgerRecord};
use protocol::registry::{EntityData, EntityKind, SettingsSource};
use protocol::warning::{Level, RuleId, RuleSettings};
use std::collections::BTreeMap;
use topology::{NodeId, Tier};

/// Text from a peer or a user, safe for a terminal: control characters (ESC, BEL, backspace,
/// C1 controls…) are shown as `\u{1b}`; with `keep_newlines`, line breaks stay.
pub fn clean_text(s: &str, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\n' && keep_newlines {
            out.push(c);
        } else if c.is_control() {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// [`clean_text`] on one line.
pub fn clean(s: &str) -> String {
    clean_text(s, false)
}

/// Only a line under the header: rows stay dense, columns are told apart by their alignment.
const HEADER_LINE_ONLY: &str = "     ──            ";

/// A table with a header row, aligned by display width (CJK characters count two).
fn table<const N: usize>(header: [&str; N]) -> Table {
    let mut t = Table::new();
    t.load_preset(HEADER_LINE_ONLY).set_content_arrangement(ContentArrangement::Disabled).set_header(header);
    t
}

/// A table for the tree view (the same look as every other table).
pub fn tree_table<const N: usize>(header: [&str; N]) -> Table {
    table(header)
}

pub fn finish_table(t: Table) -> String {
    finish(t)
}

fn finish(t: Table) -> String {
    let mut s = t.to_string();
    s.push('\n');
    s
}

/// `2026-12-05 17:00` (China time), or `-`.
fn when(ms: u64) -> String {
    if ms == 0 { "-".into() } else { ChinaTime(ms).minute() }
}

/// A code with its name: `130102-S0001 路南区第1学校食堂`.
/// Who took a step: the node, and the person there when one did (`130102 李娜（li.na）`).
pub fn acted(node: impl std::fmt::Display, person: Option<&protocol::people::Person>) -> String {
    match person {
        Some(p) => format!("{node} {}（{}）", clean(&p.name), clean(&p.account)),
        None => node.to_string(),
    }
}

fn named(code: impl std::fmt::Display, name: &str) -> String {
    if name.is_empty() { code.to_string() } else { format!("{code} {}", clean(name)) }
}

/// The Chinese name of a tier.
pub fn tier_zh(t: Tier) -> &'static str {
    match t {
        Tier::Province => "省",
        Tier::City => "市",
        Tier::County => "县级",
        Tier::School => "学校",
    }
}

fn alert_status_zh(s: &str) -> &'static str {
    match s {
        "new" => "待处理",
        "confirmed" => "已确认",
        "dismissed" => "误报",
        _ => "?",
    }
}

fn step_zh(k: CaseActionKind) -> &'static str {
    k.zh()
}

/// `alert list`.
pub fn render_alerts(alerts: &[AlertView]) -> String {
    if alerts.is_empty() {
        return "没有告警 (no alerts)\n".into();
    }
    let mut t =
        table(["编号", "学校", "摄像头", "区域", "类型", "严重程度", "状态", "次数", "案件", "发现时间", "处理说明"]);
    for a in alerts {
        let verdict = match &a.verdict_by {
            Some(by) if a.verdict_text.is_empty() => acted(by, a.verdict_person.as_ref()),
            Some(by) => format!("{}: {}", acted(by, a.verdict_person.as_ref()), clean(&a.verdict_text)),
            None => String::new(),
        };
        t.add_row(vec![
            a.id.clone(),
            named(a.school, &a.school_name),
            clean(&a.camera),
            if a.zone_zh.is_empty() { a.zone.clone() } else { a.zone_zh.clone() },
            format!("{} {}", a.type_zh, a.alert_type),
            if a.severity_zh.is_empty() { a.severity.clone() } else { a.severity_zh.clone() },
            match a.escalated_to {
                Some(to) if a.status == "new" => format!("{}（已上交 {to}）", alert_status_zh(&a.status)),
                _ => alert_status_zh(&a.status).to_string(),
            },
            a.detections.to_string(),
            a.case.clone().unwrap_or_default(),
            when(a.detected_at_ms),
            verdict,
        ]);
    }
    finish(t)
}

/// `alert show`: one alert, every field a person wants.
pub fn render_alert(a: &AlertView) -> String {
    let mut out = format!(
        "告警 {}  {}（{}）  {}\n学校: {}\n摄像头: {}  食堂 {}  区域 {}\n发现: {}  上报: {}  共 {} 次\n状态: {}",
        a.id,
        a.type_zh,
        a.alert_type,
        a.severity_zh,
        named(a.school, &a.school_name),
        clean(&a.camera),
        clean(&a.canteen),
        a.zone_zh,
        when(a.detected_at_ms),
        when(a.raised_at_ms),
        a.detections,
        alert_status_zh(&a.status),
    );
    if let Some(by) = a.verdict_by {
        out.push_str(&format!("（{}）", acted(by, a.verdict_person.as_ref())));
    }
    out.push('\n');
    if let Some(o) = &a.overturned {
        out.push_str(&format!(
            "学校曾判定误报: {}，原因: {}（已被上级推翻）\n",
            acted(o.dismissed_by, o.dismissed_by_person.as_ref()),
            clean(&o.dismissal_reason)
        ));
    }
    if !a.verdict_text.is_empty() {
        let label = if a.status == "dismissed" { "误报原因" } else { "确认说明" };
        out.push_str(&format!("{label}: {}\n", clean(&a.verdict_text)));
    }
    if let Some(case) = &a.case {
        out.push_str(&format!("案件: {case}\n"));
    }
    out
}

/// `user list`: who signs in where, never a secret.
pub fn render_accounts(accounts: &[node::api::accounts::AccountView]) -> String {
    if accounts.is_empty() {
        return "没有账号 (no accounts)\n".into();
    }
    let mut t = table(["账号", "姓名", "角色", "单位", "状态", "更新时间"]);
    for a in accounts {
        t.add_row(vec![
            clean(&a.id),
            clean(&a.display_name),
            a.role_zh.clone(),
            a.unit.to_string(),
            if a.disabled { "已停用" } else { "正常" }.to_string(),
            when(a.updated_at_ms),
        ]);
    }
    finish(t)
}

/// `device list`: the school's devices (never their tokens).
pub fn render_devices(devices: &[node::api::devices::DeviceView]) -> String {
    if devices.is_empty() {
        return "没有登记设备 (no devices)\n".into();
    }
    let mut t = table(["设备", "类型", "名称", "摄像头", "登记时间", "登记人", "最近请求", "状态"]);
    for d in devices {
        let by = d.added_by.as_ref().map_or_else(|| "本机操作员".to_string(), |p| clean(&p.label()));
        let state = match d.revoked_at_ms {
            Some(at) => format!("已吊销（{}）", when(at)),
            None => "正常".to_string(),
        };
        t.add_row(vec![
            clean(&d.id),
            d.kind_zh.clone(),
            clean(&d.name),
            clean(&d.cameras.join(",")),
            when(d.added_at_ms),
            by,
            d.last_request_ms.map_or_else(|| "从未".to_string(), when),
            state,
        ]);
    }
    finish(t)
}

/// `device cameras`: the school's cameras with their online state.
pub fn render_cameras(v: &node::api::devices::CamerasView) -> String {
    let mut out = format!(
        "{} 摄像头在线 {}/{}（超过 {} 秒无心跳视为离线）\n",
        v.school, v.online, v.registered, v.offline_after_s
    );
    if v.cameras.is_empty() {
        out.push_str("没有登记摄像头 (no cameras)\n");
        return out;
    }
    let mut t = table(["摄像头", "名称", "区域", "状态", "最后心跳", "录像天数", "负责设备"]);
    for c in &v.cameras {
        let state = match (c.online, c.reported_online) {
            (true, _) => "在线",
            (false, None) => "从未上报",
            (false, Some(false)) => "离线（设备报告）",
            (false, Some(true)) => "离线（心跳超时）",
        };
        t.add_row(vec![
            clean(&c.camera),
            clean(&c.name),
            c.zone_zh.clone(),
            state.to_string(),
            c.last_heartbeat_ms.map_or_else(|| "-".to_string(), |t| ago(v.now_ms, t)),
            c.recording_days.map_or_else(|| "-".to_string(), |d| format!("{d} 天")),
            clean(&c.devices.join(",")),
        ]);
    }
    out.push_str(&finish(t));
    out
}

/// `user audit`: sign-ins and account changes, newest first.
pub fn render_audit(lines: &[node::api::accounts::AuditRecord]) -> String {
    if lines.is_empty() {
        return "审计日志为空 (no audit records)\n".into();
    }
    let mut t = table(["时间", "事件", "账号", "说明"]);
    for l in lines {
        let what = match l.what.as_str() {
            "sign-in" => "登录成功",
            "sign-in-refused" => "登录被拒",
            "sign-in-throttled" => "登录受限（失败过多）",
            "account-set" => "账号设置",
            "sign-out" => "退出登录",
            "password-changed" => "修改密码",
            "denied" => "无权操作",
            "device-added" => "登记设备",
            "device-revoked" => "吊销设备",
            "device-rotated" => "设备换令牌",
            other => other,
        };
        t.add_row(vec![when(l.at_ms), what.to_string(), clean(&l.account), clean(&l.detail)]);
    }
    finish(t)
}

/// `case list`.
pub fn render_cases(cases: &[CaseView]) -> String {
    if cases.is_empty() {
        return "没有案件 (no cases)\n".into();
    }
    let mut t = table(["台账编号", "编号", "学校", "状态", "严重程度", "整改期限", "复核期限", "督办", "标题"]);
    for c in cases {
        let deadline = match c.deadline_ms {
            Some(d) if c.overdue => format!("{} 已逾期", when(d)),
            Some(d) => when(d),
            None => "-".into(),
        };
        t.add_row(vec![
            c.number.clone(),
            c.id.clone(),
            named(c.school, &c.school_name),
            c.status_zh.clone(),
            c.severity_zh.clone(),
            deadline,
            c.review_due_ms.map(when).unwrap_or_default(),
            c.supervisor.to_string(),
            clean(&c.title),
        ]);
    }
    finish(t)
}

/// `case show`: the case, then its whole history with what every step said.
pub fn render_case(c: &CaseState) -> String {
    let mut out = format!(
        "案件 {}（{}）  {}  学校 {}  {}\n标题: {}\n",
        c.ledger_no(),
        c.id,
        c.status.zh(),
        c.school,
        c.severity.zh(),
        clean(&c.title)
    );
    if !c.detail.is_empty() {
        for line in clean_text(&c.detail, true).lines() {
            out.push_str(&format!("      {line}\n"));
        }
    }
    if let Some(d) = c.deadline_ms {
        out.push_str(&format!("整改期限: {}{}\n", when(d), if c.overdue { "（已逾期）" } else { "" }));
    }
    out.push_str(&format!("督办层级: {}  整改轮次: {}  复核不通过: {}\n", c.supervisor, c.rework, c.rejected));
    if !c.evidence.is_empty() {
        out.push_str(&format!("佐证材料: {}\n", c.evidence.iter().map(|e| clean(e)).collect::<Vec<_>>().join(", ")));
    }
    out.push_str("经过:\n");
    for s in &c.history {
        let outcome = match &s.outcome {
            StepOutcome::Applied => "已执行".to_string(),
            StepOutcome::Refused(why) => format!("被拒: {}", clean(why)),
        };
        out.push_str(&format!(
            "  {}  {:<12}  {}  {outcome}  ({})\n",
            when(s.at_ms),
            acted(s.by, s.person.as_ref()),
            step_zh(s.action),
            s.event
        ));
        for line in clean_text(&s.text, true).lines() {
            out.push_str(&format!("      {line}\n"));
        }
    }
    out
}

/// `spot list`: one row per check.
pub fn render_checks(checks: &[SpotCheckView]) -> String {
    if checks.is_empty() {
        return "没有巡查记录 (no spot checks)\n".into();
    }
    let mut t = table(["编号", "日期", "学校", "食堂", "巡查方", "结果", "说明"]);
    for c in checks {
        let verdict = if c.passed {
            "合格".to_string()
        } else {
            let failed: Vec<&str> = c.failed.iter().map(|a| a.zh()).collect();
            format!("不合格: {}", failed.join("、"))
        };
        t.add_row(vec![
            c.id.clone(),
            c.day.clone(),
            c.school.to_string(),
            clean(&c.canteen),
            acted(c.by, c.person.as_ref()),
            verdict,
            clean(&c.note),
        ]);
    }
    finish(t)
}

/// One check, as recorded.
pub fn render_check(c: &SpotCheckView) -> String {
    render_checks(std::slice::from_ref(c))
}

/// `spot draw`: the day's draw with what an auditor needs to re-run it, the spread over counties
/// and the worklist with done / not done.
pub fn render_draw(v: &DrawView) -> String {
    let d = &v.draw;
    let mut out = format!(
        "{} 每日抽查名单：抽中 {} 个食堂（名额 {}{}），已巡查 {}，未巡查 {}\n",
        d.day,
        d.items.len(),
        d.settings.quota,
        if d.shortfall > 0 {
            format!("，差 {} 个：窗口内可抽的食堂不足", d.shortfall)
        } else {
            String::new()
        },
        v.done,
        d.items.len() as u32 - v.done
    );
    out.push_str(&format!(
        "种子 {}；抽取时间 {}；候选食堂 {} 个（指纹 {}）；{} 周内抽过的 {} 个不再抽（依据 {} 天的名单）\n",
        d.seed,
        ChinaTime(d.drawn_at_ms).minute(),
        d.candidates,
        d.candidates_digest,
        d.settings.window_weeks,
        d.excluded,
        d.history_days.len()
    ));
    out.push_str(&format!("复核：{}\n", v.verify_command));
    let mut t = table(["县区", "食堂数", "可抽", "抽中"]);
    for c in &d.counties {
        t.add_row(vec![c.county.to_string(), c.canteens.to_string(), c.available.to_string(), c.drawn.to_string()]);
    }
    out.push_str(&finish(t));
    let mut t = table(["序号", "学校", "食堂", "巡查员", "状态"]);
    for (i, w) in v.items.iter().enumerate() {
        let state = match &w.done {
            None => "未巡查".to_string(),
            Some(done) if done.passed => format!("已巡查：合格（{}）", done.check),
            Some(done) => format!(
                "已巡查：不合格 {}（{}）",
                done.failed.iter().map(|a| a.zh()).collect::<Vec<_>>().join("、"),
                done.check
            ),
        };
        t.add_row(vec![
            (i + 1).to_string(),
            format!("{} {}", clean(&w.school_name), w.school),
            format!("{} {}", clean(&w.canteen_name), clean(&w.canteen)).trim().to_string(),
            w.inspector.clone().map(|s| clean(&s)).unwrap_or_else(|| "未分配".into()),
            state,
        ]);
    }
    out.push_str(&finish(t));
    out
}

/// `spot draw --verify`: whether the kept draw comes out the same from its inputs.
pub fn render_draw_verified(v: &DrawVerified) -> String {
    let mut out = if v.same {
        format!("{} 的抽查名单复核一致：以种子 {} 和当时的输入重新抽取，结果相同\n", v.day, v.seed)
    } else {
        format!("{} 的抽查名单复核不一致：以种子 {} 重新抽取，结果不同\n", v.day, v.seed)
    };
    out.push_str(&format!("候选食堂指纹：抽取时 {}，复核时 {}\n", v.candidates_then, v.candidates_now));
    for d in &v.differences {
        out.push_str(&format!("  {}\n", clean(d)));
    }
    out
}

/// The pass-rate table.
pub fn render_rates(rates: &[RateView]) -> String {
    if rates.is_empty() {
        return "这一时期没有巡查 (no spot checks in this period)\n".into();
    }
    let mut t = table(["单位", "层级", "巡查", "合格", "合格率"]);
    for r in rates {
        t.add_row(vec![
            r.unit.to_string(),
            tier_zh(r.tier).to_string(),
            r.checked.to_string(),
            r.passed.to_string(),
            format!("{:.2}%", r.percent),
        ]);
    }
    finish(t)
}

/// `directive list`: each directive with its whole text.
pub fn render_directives(directives: &[DirectiveView], limit: usize) -> String {
    if directives.is_empty() {
        return "没有通知 (no directives)\n".into();
    }
    let mut t = table(["编号", "时间", "发自", "发往", "标题", "正文"]);
    for d in directives {
        t.add_row(vec![
            d.id.clone(),
            when(d.sent_at_ms),
            acted(d.from, d.person.as_ref()),
            d.to.to_string(),
            clean(&d.title),
            clean_text(&d.text, true),
        ]);
    }
    let mut out = finish(t);
    if directives.len() == limit {
        out.push_str(&format!("（只列出最新的 {limit} 条，可能还有更多: --limit all）\n"));
    }
    out
}

/// The text form of a registry listing.
pub fn render_registry(entities: &[EntityView]) -> String {
    if entities.is_empty() {
        return "登记簿为空 (no registry entries)\n".into();
    }
    let mut t = table(["类别", "单位", "编号", "名称", "详情", "更新时间"]);
    for e in entities {
        let details = match &e.data {
            EntityData::City(_) => String::new(),
            EntityData::Settings(s) => format!(
                "整改期限 一般 {} 个工作日 / 较重 {} 个工作日 / 严重 {} 小时；复核 {} 个工作日；逾期 {} / {} 个工作日督办至市 / 省；健康证提前 {} 天预警；留样 ≥ {} 克",
                s.deadline_general_days,
                s.deadline_serious_days,
                s.deadline_severe_hours,
                s.review_days,
                s.overdue_county_days,
                s.overdue_city_days,
                s.health_cert_warn_days,
                s.sample_min_grams
            ),
            EntityData::School(s) => {
                format!("{} 个食堂  QUIC {}  管理 {}", s.canteens, or_dash(&s.quic_addr), or_dash(&s.admin_addr))
            }
            EntityData::Canteen(c) => clean(&c.address),
            EntityData::Camera(c) => format!(
                "食堂 {}  区域 {}  AI {}  家长{}可见",
                clean(&c.canteen),
                c.zone.zh(),
                if c.ai_enabled { "开" } else { "关" },
                if c.parent_visible { "" } else { "不" }
            ),
            EntityData::Staff(s) => format!("{}  {}", s.role.zh(), if s.on_duty { "在岗" } else { "不在岗" }),
            EntityData::HealthCertificate(h) => {
                format!("人员 {}  valid until {}", clean(&h.staff), ChinaTime(h.valid_until_ms).date())
            }
            EntityData::Account(a) => format!("{}{}", a.role.zh(), if a.disabled { "  已停用" } else { "" }),
            EntityData::Supplier(s) => format!(
                "许可证 {}  有效期至 {}  {}",
                clean(&s.licence_no),
                ChinaTime(s.licence_valid_until_ms).date(),
                clean(&s.contact)
            ),
            EntityData::CanteenLicence(l) => {
                let meals: Vec<String> = l
                    .meals
                    .iter()
                    .map(|m| {
                        format!(
                            "{} {:02}:{:02}–{:02}:{:02}",
                            m.meal.zh(),
                            m.start_min / 60,
                            m.start_min % 60,
                            m.end_min / 60,
                            m.end_min % 60
                        )
                    })
                    .collect();
                format!(
                    "{}  有效期至 {}  开工 {:02}:{:02}  {}",
                    l.mode.zh(),
                    ChinaTime(l.valid_until_ms).date(),
                    l.prep_start_min / 60,
                    l.prep_start_min % 60,
                    meals.join("、")
                )
            }
            EntityData::RuleSettings(r) => {
                let acts: Vec<String> =
                    r.actions.iter().map(|(rule, a)| format!("{}：{}", rule.zh(), a.zh())).collect();
                format!(
                    "预警规则设置（采购证票 {}/{} 小时，食堂许可证 {}/{} 天，当日台账 {:02}:{:02} 判定）{}",
                    r.purchase_yellow_hours,
                    r.purchase_orange_hours,
                    r.canteen_licence_yellow_days,
                    r.canteen_licence_orange_days,
                    r.daily_report_minute / 60,
                    r.daily_report_minute % 60,
                    if acts.is_empty() { String::new() } else { format!("；{}", acts.join("；")) }
                )
            }
            EntityData::Revocation(r) => format!("{} 的证书已吊销：{}", r.node, clean(&r.reason)),
            EntityData::CameraStream(v) => {
                let mut parts = Vec::new();
                for (label, x) in
                    [("HLS", &v.hls_url), ("流", &v.stream), ("RTSP", &v.rtsp_url), ("国标通道", &v.gb_channel)]
                {
                    if !x.is_empty() {
                        parts.push(format!("{label} {}", clean(x)));
                    }
                }
                parts.join("  ")
            }
            EntityData::Calendar(y) => {
                let days: Vec<String> =
                    y.holidays.iter().map(|h| format!("{} {}–{}", clean(&h.name), h.first, h.last)).collect();
                format!(
                    "{}{}{}",
                    if y.projected { "（预排）" } else { "" },
                    days.join("；"),
                    if y.workdays.is_empty() {
                        String::new()
                    } else {
                        format!("；调休上班 {}", y.workdays.join("、"))
                    }
                )
            }
        };
        let details = match &e.warning {
            Some(w) => format!("{details}  ⚠ {w}"),
            None => details,
        };
        t.add_row(vec![
            e.kind.zh().to_string(),
            e.node.to_string(),
            clean(&e.id),
            clean(e.data.label()),
            details,
            when(e.updated_at_ms),
        ]);
    }
    finish(t)
}

fn or_dash(s: &str) -> String {
    if s.is_empty() { "-".into() } else { clean(s) }
}

/// Human age of a unix-ms instant, relative to `now_ms`.
pub fn ago(now_ms: u64, then_ms: u64) -> String {
    if then_ms == 0 {
        return "从未".into();
    }
    let d = now_ms.saturating_sub(then_ms);
    if d < 1_000 {
        format!("{d} 毫秒前")
    } else if d < 120_000 {
        format!("{:.1} 秒前", d as f64 / 1000.0)
    } else {
        format!("{} 分钟前", d / 60_000)
    }
}

fn state_zh(l: &LinkStatus) -> &'static str {
    match l.state {
        LinkState::Never => "从未连通",
        LinkState::Connecting => "连接中",
        LinkState::Up => "在线",
        LinkState::Down => "断开",
    }
}

fn role_zh(role: &str) -> &str {
    match role {
        "parent" => "上级",
        "child" => "下级",
        "failover" => "备援上级",
        other => other,
    }
}

/// One row per link.
fn link_row(l: &LinkStatus, now_ms: u64, role: &str) -> Vec<String> {
    let mut note = Vec::new();
    if l.oldest_unsent_age_ms > 0 {
        note.push(format!("最早待发 {:.1} 秒 (oldest queued)", l.oldest_unsent_age_ms as f64 / 1000.0));
    }
    if l.rejected > 0 {
        note.push(format!("拒收 {}", l.rejected));
    }
    if l.protocol_errors > 0 {
        note.push(format!("违反协议断开 {} 次", l.protocol_errors));
    }
    if l.state != LinkState::Up
        && let Some(e) = &l.last_error
    {
        note.push(clean(&protocol::health::reason_zh(e)));
    } else if let Some(d) = l.disconnects.last() {
        // Back up: the last time it went down, and why, stay on record.
        note.push(format!(
            "重连 {} 次，上次断开 {}：{}",
            l.reconnects,
            when(d.at_ms),
            clean(&protocol::health::reason_zh(&d.reason))
        ));
    }
    vec![
        role.to_string(),
        l.peer.to_string(),
        state_zh(l).to_string(),
        ago(now_ms, l.since_ms),
        ago(now_ms, l.last_seen_ms),
        l.backlog_out.to_string(),
        l.backlog_in.to_string(),
        l.events_sent.to_string(),
        l.events_received.to_string(),
        note.join("；"),
    ]
}

/// One line about one link (the demo's running commentary).
pub fn render_link(l: &LinkStatus, now_ms: u64) -> String {
    link_row(l, now_ms, role_zh(&l.role)).join("  ")
}

/// The text form of `topology show`: the node, then a table of its links.
pub fn render_status(st: &NodeStatus, now_ms: u64) -> String {
    let mut out = format!(
        "{} {}（{}）  持有 {} 个来源的事件，本节点序号 {}，已接收 {} 条，忽略重复 {} 条\n",
        st.node,
        clean(&st.name),
        tier_zh(st.tier),
        st.store.origins,
        st.store.own_seq,
        st.store.events_applied,
        st.store.duplicates_ignored
    );
    if st.store.seals_refused > 0 {
        // A relay below sent events whose origin's signatures do not hold them.
        out.push_str(&format!(
            "  警告：下级转来的数据有 {} 批签名校验不通过（被篡改、伪造或漏发），已全部拒收；详情见节点日志
",
            st.store.seals_refused
        ));
    }
    if st.store.own_floor > 0 {
        // Retention at a school: what it no longer keeps, its county and above still hold.
        out.push_str(&format!(
            "  保留期外的旧数据已清理：本节点序号 {} 及以前的告警、台账、预警只在上级保存（本次运行清理 {} 条）\n",
            st.store.own_floor, st.store.events_dropped
        ));
    }
    if st.parent.is_none() && st.tier == Tier::Province {
        out.push_str("  （根节点，无上级）\n");
    }
    let up = st.children.iter().filter(|c| c.state == LinkState::Up).count();
    if !st.children.is_empty() {
        out.push_str(&format!("  下级 {} 个，在线 {up} 个\n", st.children.len()));
    }
    let mut t = table(["方向", "对端", "状态", "状态起于", "最后联系", "待发", "待收", "已发", "已收", "备注"]);
    if let Some(p) = &st.parent {
        t.add_row(link_row(p, now_ms, "上级"));
    }
    if let Some(f) = &st.failover {
        t.add_row(link_row(f, now_ms, &format!("备援 (failed over to {})", f.peer)));
    }
    for c in &st.children {
        t.add_row(link_row(c, now_ms, role_zh(&c.role)));
    }
    if st.parent.is_some() || st.failover.is_some() || !st.children.is_empty() {
        out.push_str(&finish(t));
    }
    if st.refused > 0 {
        out.push_str(&format!(
            "  拒绝连接 {} 次；最近一次: {}\n",
            st.refused,
            st.last_refusal.as_deref().map(clean).unwrap_or_else(|| "-".into())
        ));
    }
    let t = &st.turned_away;
    let refused_at_once = t.busy + t.per_source + t.timed_out + t.failed + t.revoked;
    if refused_at_once > 0 {
        out.push_str(&format!(
            "  未通过握手 {refused_at_once} 次（握手过多拒绝 {}，同一地址超限 {}，超时 {}，证书无效 {}，证书已吊销 {}）；要求验证地址 {} 次\n",
            t.busy, t.per_source, t.timed_out, t.failed, t.revoked, t.retried
        ));
    }
    if st.replacements_refused > 0 {
        out.push_str(&format!("  同一节点的第二个连接未完成握手即断开 {} 次（原连接保留）\n", st.replacements_refused));
    }
    if st.denied_requests > 0 {
        out.push_str(&format!("  无权操作被拒 {} 次（谁、为何：mingchu user audit）\n", st.denied_requests));
    }
    out
}

/// `ca expiring`: certificates with the days they have left, soonest first.
pub fn render_cert_expiries(certs: &[&node::tls::CertExpiry], now_ms: u64, warn_days: i64) -> String {
    if certs.is_empty() {
        return format!("没有 {warn_days} 天内到期的证书。\n");
    }
    let mut t = table(["证书", "有效期至", "剩余天数", "状态", "文件"]);
    for c in certs {
        let left = c.days_left(now_ms);
        let what = match c.what.as_str() {
            "CA" => "联邦 CA".to_string(),
            "sub-CA" => "本级下级证书机构".to_string(),
            "web" => "控制台网页证书".to_string(),
            node => format!("节点 {node}"),
        };
        let state = if left < 0 {
            "已过期"
        } else if left < warn_days {
            "即将到期"
        } else {
            "有效"
        };
        t.add_row(vec![what, when(c.not_after_ms), left.to_string(), state.to_string(), c.path.display().to_string()]);
    }
    finish(t)
}

// ---------------------------------------------------------------------------------------------
// Food-safety ledgers, early warnings, rule settings and the working-day calendar.

/// Names of one school's staff, canteens and suppliers, shown instead of the ids a ledger record
/// names (`张三` for `st1`); an id the registry does not hold is shown as it is.
#[derive(Clone, Debug, Default)]
pub struct LedgerNames {
    names: BTreeMap<(EntityKind, String), String>,
}

impl LedgerNames {
    /// From a registry listing: the entities of `school`.
    pub fn from_registry(entities: &[EntityView], school: NodeId) -> LedgerNames {
        let names = entities
            .iter()
            .filter(|e| e.node == school)
            .filter(|e| matches!(e.kind, EntityKind::Staff | EntityKind::Canteen | EntityKind::Supplier))
            .map(|e| ((e.kind, e.id.clone()), e.data.label().to_string()))
            .collect();
        LedgerNames { names }
    }

    fn of(&self, kind: EntityKind, id: &str) -> String {
        match self.names.get(&(kind, id.to_string())) {
            Some(name) if !name.trim().is_empty() => clean(name),
            _ => clean(id),
        }
    }
}

/// `07:10`, China time.
fn hm(ms: u64) -> String {
    let m = protocol::ledger::china_minute(ms);
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// The time a record says it happened (checked, sampled, received, done), if its kind has one.
pub fn record_time(r: &LedgerRecord) -> Option<u64> {
    match r {
        LedgerRecord::MorningCheck(m) => Some(m.checked_at_ms),
        LedgerRecord::FoodSample(f) => Some(f.sampled_at_ms),
        LedgerRecord::Purchase(p) => Some(p.received_at_ms),
        LedgerRecord::Disinfection(d) => Some(d.done_at_ms),
        LedgerRecord::AccompaniedMeal(_) | LedgerRecord::HazardCheck(_) | LedgerRecord::PesticideTest(_) => None,
    }
}

/// `36.5℃` from tenths of a degree.
pub fn temperature(dc: u16) -> String {
    format!("{}.{}℃", dc / 10, dc % 10)
}

/// What a record says, in one line a school's officer or a county administrator reads: names
/// instead of ids, and everything a person typed cleaned.
pub fn ledger_content(r: &LedgerRecord, names: &LedgerNames) -> String {
    match r {
        LedgerRecord::MorningCheck(m) => {
            let mut s = format!("{} {}", names.of(EntityKind::Staff, &m.staff), temperature(m.temperature_dc));
            if m.temperature_dc >= protocol::ledger::FEVER_DECI_C {
                s.push_str(" 发热");
            }
            if !m.symptoms.is_empty() {
                let sym: Vec<&str> = m.symptoms.iter().map(|s| s.zh()).collect();
                s.push_str(&format!(" {}", sym.join("、")));
            }
            s.push_str(if m.sent_home {
                "，已劝离岗"
            } else if m.abnormal() {
                "，异常仍在岗"
            } else {
                "，正常"
            });
            if !m.note.trim().is_empty() {
                s.push_str(&format!("（{}）", clean(&m.note)));
            }
            s
        }
        LedgerRecord::FoodSample(f) => {
            let kept = match f.disposed_at_ms {
                Some(d) => format!("已于 {} 处置", when(d)),
                None if f.refrigerated => "冷藏留存中".to_string(),
                None => "未冷藏".to_string(),
            };
            let mut s = format!(
                "{} {} {} {} 克，{kept}，留样人 {}",
                names.of(EntityKind::Canteen, &f.canteen),
                f.meal.zh(),
                clean(&f.dish),
                f.grams,
                clean(&f.sampled_by)
            );
            if !f.batches.is_empty() {
                let b: Vec<String> = f.batches.iter().map(|b| clean(b)).collect();
                s.push_str(&format!("，原料批次 {}", b.join("、")));
            }
            s
        }
        LedgerRecord::Purchase(p) => {
            let mut missing = Vec::new();
            if p.inspection_cert.trim().is_empty() {
                missing.push("检验合格证明");
            }
            if p.invoice.trim().is_empty() {
                missing.push("票据");
            }
            let certs = if missing.is_empty() {
                format!("证票齐全（合格证明 {}，票据 {}）", clean(&p.inspection_cert), clean(&p.invoice))
            } else {
                format!("证票不全，缺{}", missing.join("、"))
            };
            format!(
                "{} {} 批次 {} {} {}，{certs}",
                names.of(EntityKind::Supplier, &p.supplier),
                clean(&p.item),
                clean(&p.batch),
                protocol::ledger::quantity(p.quantity_milli),
                clean(&p.unit)
            )
        }
        LedgerRecord::AccompaniedMeal(a) => {
            let mut s = format!(
                "{} {} {} {}",
                names.of(EntityKind::Canteen, &a.canteen),
                a.meal.zh(),
                a.companion.zh(),
                clean(&a.name)
            );
            if a.rating > 0 {
                s.push_str(&format!("，评分 {}/5", a.rating));
            }
            if !a.remarks.trim().is_empty() {
                s.push_str(&format!("，意见：{}", clean(&a.remarks)));
            }
            s
        }
        LedgerRecord::HazardCheck(h) => {
            let mut s = format!("{} 检查 {} 项，发现问题 {} 项", h.level.zh(), h.items_checked, h.problems_found);
            if !h.problems.trim().is_empty() {
                s.push_str(&format!("：{}", clean(&h.problems)));
            }
            if !h.measures.trim().is_empty() {
                s.push_str(&format!("；措施：{}", clean(&h.measures)));
            }
            s.push_str(&format!("；检查人 {}", clean(&h.checked_by)));
            s
        }
        LedgerRecord::Disinfection(d) => format!(
            "{} {} {} {} 分钟，消毒人 {}",
            names.of(EntityKind::Canteen, &d.canteen),
            clean(&d.target),
            d.method.zh(),
            d.minutes,
            clean(&d.done_by)
        ),
        LedgerRecord::PesticideTest(p) => {
            let mut s = format!(
                "{} 抑制率 {}% {}",
                clean(&p.item),
                p.inhibition_pct,
                if p.positive() { "阳性" } else { "阴性" }
            );
            if !p.purchase.is_empty() {
                s.push_str(&format!("，采购记录 {}", clean(&p.purchase)));
            }
            if !p.handling.trim().is_empty() {
                s.push_str(&format!("，处理：{}", clean(&p.handling)));
            }
            s.push_str(&format!("，检测人 {}", clean(&p.tested_by)));
            s
        }
    }
}

/// A record's content, or why it was voided.
fn ledger_row_content(v: &LedgerView, names: &LedgerNames) -> String {
    let content = v.record.as_ref().map(|r| ledger_content(r, names)).unwrap_or_default();
    if v.voided { format!("【已作废：{}】{content}", clean(&v.void_reason)) } else { content }
}

/// Who entered a record: the person, or the node's local operator.
fn entered_by(p: Option<&protocol::people::Person>) -> String {
    match p {
        Some(p) => format!("{}（{}）", clean(&p.name), clean(&p.account)),
        None => "本机操作员".to_string(),
    }
}

/// `ledger list`: one row per record, newest day first.
pub fn render_ledger(records: &[LedgerView], names: &LedgerNames) -> String {
    if records.is_empty() {
        return "这一时期没有台账记录 (no ledger records)\n".into();
    }
    let mut t = table(["日期", "编号", "类别", "内容", "填报人", "时间", "版本"]);
    for v in records {
        // The record's own time on its day; for a kind without one, when it was entered.
        let time = match v.record.as_ref().and_then(record_time) {
            Some(ms) if ChinaTime(ms).date() == v.date => hm(ms),
            Some(ms) => when(ms),
            None if ChinaTime(v.updated_at_ms).date() == v.date => format!("{}（填报）", hm(v.updated_at_ms)),
            None => format!("{}（填报）", when(v.updated_at_ms)),
        };
        t.add_row(vec![
            v.date.clone(),
            clean(&v.id),
            v.kind.zh().to_string(),
            ledger_row_content(v, names),
            entered_by(v.person.as_ref()),
            time,
            v.versions.to_string(),
        ]);
    }
    let mut out = finish(t);
    let voided = records.iter().filter(|v| v.voided).count();
    out.push_str(&format!("共 {} 条", records.len()));
    if voided > 0 {
        out.push_str(&format!("（其中已作废 {voided} 条）"));
    }
    out.push('\n');
    out
}

/// What a ledger write did, in one line: registered, corrected or voided.
pub fn render_ledger_written(v: &LedgerView, names: &LedgerNames) -> String {
    let what = format!("{} {}（{}", v.kind.zh(), clean(&v.id), v.date);
    if v.voided {
        return format!("已作废{what}），原因：{}\n", clean(&v.void_reason));
    }
    let content = ledger_row_content(v, names);
    if v.versions > 1 {
        format!("已更正{what}，第 {} 版）：{content}\n", v.versions)
    } else {
        format!("已登记{what}）：{content}\n")
    }
}

/// `ledger days`: per school, one day's records of each kind, the staff on duty, and whether the
/// four daily records are there. `working`: whether the day is a working day (`None`: unknown).
pub fn render_ledger_days(days: &[LedgerDay], working: Option<bool>) -> String {
    if days.is_empty() {
        return "没有学校 (no schools)\n".into();
    }
    let count = |d: &LedgerDay, k: LedgerKind| d.counts.iter().find(|(c, _)| *c == k).map_or(0, |(_, n)| *n);
    let mut t = table(["学校", "在岗", "晨检", "留样", "陪餐", "消毒", "采购", "隐患排查", "农残快检", "完整"]);
    for d in days {
        let checks = count(d, LedgerKind::MorningCheck);
        t.add_row(vec![
            named(d.school, &d.school_name),
            d.on_duty.to_string(),
            if d.on_duty > 0 { format!("{checks}/{}", d.on_duty) } else { checks.to_string() },
            count(d, LedgerKind::FoodSample).to_string(),
            count(d, LedgerKind::AccompaniedMeal).to_string(),
            count(d, LedgerKind::Disinfection).to_string(),
            count(d, LedgerKind::Purchase).to_string(),
            count(d, LedgerKind::HazardCheck).to_string(),
            count(d, LedgerKind::PesticideTest).to_string(),
            if d.complete { "✓" } else { "✗" }.to_string(),
        ]);
    }
    let mut out = finish(t);
    let complete = days.iter().filter(|d| d.complete).count();
    let date = &days[0].date;
    out.push_str(&format!(
        "{date}：{} 所学校，当日台账完整 {complete} 所，不完整 {} 所（完整：晨检、留样、校领导陪餐、消毒四项当日都有记录；晨检栏为已检/在岗人数）\n",
        days.len(),
        days.len() - complete
    ));
    if working == Some(false) {
        out.push_str(&format!("{date} 不是工作日（周末或节假日），当日台账不作要求\n"));
    }
    out
}

/// What a warning is about, as a person reads it: `c1 午餐` for `c1/lunch`, 全校 for the school.
fn subject_zh(w: &WarningView) -> String {
    if w.subject.is_empty() {
        return "-".into();
    }
    if w.subject == w.school.to_string() {
        return "全校".into();
    }
    let parts: Vec<String> = w
        .subject
        .split('/')
        .map(|p| match p.parse::<protocol::ledger::Meal>() {
            Ok(m) => m.zh().to_string(),
            Err(_) => clean(p),
        })
        .collect();
    parts.join(" ")
}

/// The day a warning is about, the month for a monthly rule, `-` for a standing condition.
fn period_zh(w: &WarningView) -> String {
    match (w.period.as_str(), w.rule) {
        ("", _) => "-".into(),
        (p, RuleId::ParentMealMissing) => p.get(..7).unwrap_or(p).to_string(),
        (p, _) => p.to_string(),
    }
}

/// `warnings`: one row per warning, active first, then a count per level.
pub fn render_warnings(warnings: &[WarningView], limit: Option<usize>) -> String {
    if warnings.is_empty() {
        return "没有预警 (no warnings)\n".into();
    }
    let mut t = table(["级别", "规则", "学校", "对象", "期间", "内容", "起始", "判定方", "自动问题"]);
    for w in warnings {
        let level = match w.level {
            Some(l) => l.zh().to_string(),
            None => format!("已解除（曾{}）", w.peak.zh()),
        };
        let mut text = clean(&w.text);
        if let Some(at) = w.resolved_ms.filter(|_| !w.active) {
            text.push_str(&format!("；{} 解除", when(at)));
            if !w.resolve_reason.trim().is_empty() {
                text.push_str(&format!("：{}", clean(&w.resolve_reason)));
            }
        }
        let judged = if w.judged_by == w.school {
            "学校".to_string()
        } else {
            format!("{} {}", tier_zh(w.judged_by.tier()), w.judged_by)
        };
        t.add_row(vec![
            level,
            w.rule_zh.clone(),
            named(w.school, &w.school_name),
            subject_zh(w),
            period_zh(w),
            text,
            when(w.first_raised_ms),
            judged,
            w.case_no.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    let mut out = finish(t);
    let active: Vec<&WarningView> = warnings.iter().filter(|w| w.active).collect();
    let per_level: Vec<String> = [Level::Red, Level::Orange, Level::Yellow]
        .into_iter()
        .map(|l| format!("{} {} 条", l.zh(), active.iter().filter(|w| w.level == Some(l)).count()))
        .collect();
    out.push_str(&format!("生效中的预警 {} 条：{}", active.len(), per_level.join("，")));
    let resolved = warnings.len() - active.len();
    if resolved > 0 {
        out.push_str(&format!("；已解除 {resolved} 条"));
    }
    let cases = warnings.iter().filter(|w| w.case_no.is_some()).count();
    if cases > 0 {
        out.push_str(&format!("；已自动挂账 {cases} 条"));
    }
    out.push('\n');
    if limit.is_some_and(|l| warnings.len() >= l) {
        out.push_str(&format!("（只列出 {} 条，可能还有更多: --limit all）\n", warnings.len()));
    }
    out
}

fn candidate_table(title: &str, rows: &[CandidateView]) -> String {
    if rows.is_empty() {
        return format!("{title}：无\n");
    }
    let mut t = table(["学校", "对象", "原因", "依据"]);
    for c in rows {
        t.add_row(vec![named(c.school, &c.school_name), or_dash(&c.subject), clean(&c.reason), clean(&c.evidence)]);
    }
    format!("{title}（{} 条）:\n{}", rows.len(), finish(t))
}

/// `warnings candidates`: the 约谈 candidates and the 问责 records.
pub fn render_candidates(c: &Candidates) -> String {
    let mut out = candidate_table("约谈候选（同一问题反复被确认）", &c.interview);
    out.push_str(&candidate_table("问责记录（拒收整改通知、整改复核三次不通过）", &c.accountability));
    out
}

/// One threshold of the rule settings: its Chinese label, its `registry rules set` flag and its
/// value as shown.
pub fn rule_thresholds(r: &RuleSettings) -> Vec<(&'static str, &'static str, String)> {
    let n = |v: u32| v.to_string();
    vec![
        ("健康证橙色预警（到期前天数）", "health-cert-orange-days", n(r.health_cert_orange_days)),
        ("晨检未做转橙色（开工后分钟）", "morning-check-orange-min", n(r.morning_check_orange_min)),
        ("未留样判定（餐后分钟）", "sample-grace-min", n(r.sample_grace_min)),
        ("无校领导陪餐判定（餐后分钟）", "leader-meal-grace-min", n(r.leader_meal_grace_min)),
        ("连续无校领导陪餐（餐数）", "leader-meal-streak", n(r.leader_meal_streak)),
        ("家长陪餐（每月至少次数）", "parent-meals-per-month", n(r.parent_meals_per_month)),
        ("采购证票不全黄色（验收后小时）", "purchase-yellow-hours", n(r.purchase_yellow_hours)),
        ("采购证票不全橙色（验收后小时）", "purchase-orange-hours", n(r.purchase_orange_hours)),
        ("供应商许可证预警（到期前天数）", "supplier-warn-days", n(r.supplier_warn_days)),
        ("食堂许可证黄色（到期前天数）", "canteen-licence-yellow-days", n(r.canteen_licence_yellow_days)),
        ("食堂许可证橙色（到期前天数）", "canteen-licence-orange-days", n(r.canteen_licence_orange_days)),
        ("摄像头在线率下限（%）", "camera-rate-min-pct", n(r.camera_rate_min_pct)),
        ("在线率低持续（分钟）", "camera-rate-after-min", n(r.camera_rate_after_min)),
        ("摄像头全部离线转红色（小时）", "camera-none-hours", n(r.camera_none_hours)),
        (
            "当日台账判定时间",
            "daily-report-at",
            format!("{:02}:{:02}", r.daily_report_minute / 60, r.daily_report_minute % 60),
        ),
        ("同类问题反复（次数）", "repeat-count", n(r.repeat_count)),
        ("告警无人处理移交县级（小时）", "alert-escalate-hours", n(r.alert_escalate_hours)),
        ("学校失联未报晨检（开工后分钟）", "school-silent-after-min", n(r.school_silent_after_min)),
    ]
}

/// `registry rules show`: every rule with what its warnings do, then the thresholds.
pub fn render_rule_settings(v: &RuleSettingsView) -> String {
    let from = match v.source {
        SettingsSource::County => "县级单位的设置（覆盖省级）",
        SettingsSource::Province => "省级设置",
        SettingsSource::Default => "内置默认值（省里尚未设置）",
    };
    let mut out = format!("{} 现行预警规则设置，来自{from}:\n", v.unit);
    let mut t = table(["规则", "编号", "判定方", "处置方式"]);
    for rule in RuleId::ALL {
        let action = v.settings.action(rule);
        let changed = if action == rule.default_action() { "" } else { "（已调整）" };
        t.add_row(vec![
            rule.zh().to_string(),
            rule.as_str().to_string(),
            if rule.evaluator() == Tier::School { "学校" } else { "县级" }.to_string(),
            format!("{}{changed}", action.zh()),
        ]);
    }
    out.push_str(&finish(t));
    out.push('\n');
    let mut t = table(["阈值", "参数", "值"]);
    for (label, key, value) in rule_thresholds(&v.settings) {
        t.add_row(vec![label.to_string(), format!("--{key}"), value]);
    }
    out.push_str(&finish(t));
    out
}

/// `2027-02-06（星期六）`.
fn date_with_weekday(date: &str) -> String {
    const WEEKDAYS: [&str; 7] = ["星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日"];
    match protocol::calendar::parse_day(date) {
        // 1970-01-01 was a Thursday.
        Ok(day) => format!("{date}（{}）", WEEKDAYS[((day + 3) % 7) as usize]),
        Err(_) => clean(date),
    }
}

/// `registry calendar show`: each year's holidays and 调休 working days, where each year comes
/// from, projected years marked 预排. `registered`: the years the province registered itself.
pub fn render_calendar(years: &[&YearSchedule], registered: &[u16]) -> String {
    if years.is_empty() {
        return "没有节假日安排：工作日按周一至周五计算\n".into();
    }
    let mut out = String::new();
    for (i, y) in years.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let source = match (registered.contains(&y.year), y.projected) {
            (true, false) => "省级登记",
            (true, true) => "省级登记（预排）",
            (false, false) => "内置，按国务院办公厅通知",
            (false, true) => "预排：按放假规则推算，通知发布后请用 registry calendar set 登记",
        };
        out.push_str(&format!("{} 年  {source}\n", y.year));
        let mut t = table(["节假日", "放假", "天数"]);
        for h in &y.holidays {
            let days = match (protocol::calendar::parse_day(&h.first), protocol::calendar::parse_day(&h.last)) {
                (Ok(a), Ok(b)) if b >= a => (b - a + 1).to_string(),
                _ => "?".into(),
            };
            let span = if h.first == h.last {
                date_with_weekday(&h.first)
            } else {
                format!("{} 至 {}", date_with_weekday(&h.first), date_with_weekday(&h.last))
            };
            t.add_row(vec![clean(&h.name), span, days]);
        }
        out.push_str(&finish(t));
        if y.workdays.is_empty() {
            out.push_str("调休上班：无\n");
        } else {
            let days: Vec<String> = y.workdays.iter().map(|d| date_with_weekday(d)).collect();
            out.push_str(&format!("调休上班：{}\n", days.join("、")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_from_peers_never_reach_the_terminal_raw() {
        let raised = "后厨\u{1b}[2J\u{1b}]0;owned\u{7}\r摄像头";
        let shown = clean(raised);
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
        assert!(shown.contains("\\u{1b}[2J") && shown.contains("后厨") && shown.contains("摄像头"), "{shown}");
        assert_eq!(clean_text("第一行\n第二行", true), "第一行\n第二行");
    }

    #[test]
    fn columns_line_up_with_chinese_text() {
        let mut t = table(["学校", "状态"]);
        t.add_row(vec!["路南区第1学校食堂", "在线"]);
        t.add_row(vec!["ab", "x"]);
        let text = finish(t);
        let widths: Vec<usize> = text
            .lines()
            .filter(|l| l.contains("在线") || l.contains(" x"))
            .map(|l| {
                let col = l.find(if l.contains("在线") { "在线" } else { " x" }).unwrap();
                // Display width of what comes before the second column.
                l[..col].chars().map(|c| if (c as u32) > 0x2E80 { 2 } else { 1 }).sum()
            })
            .collect();
        assert_eq!(widths.len(), 2, "{text}");
        assert!(widths[0].abs_diff(widths[1]) <= 1, "columns do not line up:\n{text}");
    }

    /// Display width of `line` before `needle` (CJK and full-width characters count two).
    fn width_before(line: &str, needle: &str) -> usize {
        let col = line.find(needle).unwrap_or_else(|| panic!("{needle:?} not in {line:?}"));
        line[..col].chars().map(|c| if (c as u32) > 0x2E80 { 2 } else { 1 }).sum()
    }

    /// The one line of `text` holding `needle`.
    fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
        text.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle:?} not in:\n{text}"))
    }

    fn ledger_view(id: &str, record: LedgerRecord, person: Option<(&str, &str)>) -> LedgerView {
        LedgerView {
            school: "130102-S0001".parse().unwrap(),
            school_name: "路南区第1学校".into(),
            id: id.into(),
            kind: record.kind(),
            kind_zh: record.kind().zh().into(),
            date: "2026-12-01".into(),
            summary: record.summary(),
            record: Some(record),
            voided: false,
            void_reason: String::new(),
            versions: 1,
            person: person.map(|(a, n)| protocol::people::Person { account: a.into(), name: n.into() }),
            updated_at_ms: protocol::ledger::at_minute(20_788, 9 * 60),
            updated_at: String::new(),
            event: "130102-S0001#9".into(),
        }
    }

    #[test]
    fn ledger_rows_line_up_with_long_chinese_names_and_show_names_not_ids() {
        use protocol::ledger::{FoodSample, Meal, MorningCheck, Symptom};
        let day = 20_788; // 2026-12-01
        let names = LedgerNames {
            names: [
                ((EntityKind::Staff, "st1".to_string()), "欧阳娜娜".to_string()),
                ((EntityKind::Canteen, "c1".to_string()), "路南区第一实验小学东校区学生第二食堂".to_string()),
            ]
            .into(),
        };
        let check = MorningCheck {
            staff: "st1".into(),
            temperature_dc: 376,
            symptoms: vec![Symptom::Diarrhea],
            sent_home: true,
            checked_at_ms: protocol::ledger::at_minute(day, 7 * 60 + 10),
            note: "已通知\u{1b}[2J家属".into(),
        };
        let sample = FoodSample {
            canteen: "c1".into(),
            meal: Meal::Lunch,
            dish: "西红柿炒鸡蛋配米饭及时令蔬菜".into(),
            grams: 150,
            sampled_at_ms: protocol::ledger::at_minute(day, 12 * 60),
            refrigerated: true,
            disposed_at_ms: None,
            batches: vec!["pu-20261201-1".into()],
            sampled_by: "李四".into(),
        };
        let rows = [
            ledger_view("mc-20261201-1", LedgerRecord::MorningCheck(check), Some(("li.na", "李娜"))),
            ledger_view("fs-20261201-1", LedgerRecord::FoodSample(sample), None),
        ];
        let text = render_ledger(&rows, &names);
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text}");
        let (a, b) = (line_with(&text, "mc-20261201-1"), line_with(&text, "fs-20261201-1"));
        assert!(a.contains("欧阳娜娜 37.6℃ 发热 腹泻，已劝离岗") && a.contains("07:10"), "{text}");
        assert!(b.contains("路南区第一实验小学东校区学生第二食堂 午餐") && b.contains("冷藏留存中"), "{text}");
        assert_eq!(width_before(a, "李娜（li.na）"), width_before(b, "本机操作员"), "\n{text}");
        assert_eq!(width_before(a, "07:10"), width_before(b, "12:00"), "\n{text}");
        assert!(text.ends_with("共 2 条\n"), "{text}");
        let written = render_ledger_written(&rows[0], &names);
        assert!(written.starts_with("已登记晨检 mc-20261201-1（2026-12-01）：欧阳娜娜"), "{written}");
    }

    fn warning(key: &str, level: Level, school_name: &str, case_no: &str) -> WarningView {
        let school: NodeId = "130102-S0001".parse().unwrap();
        WarningView {
            key: key.into(),
            rule: RuleId::HealthCertMissing,
            rule_zh: RuleId::HealthCertMissing.zh().into(),
            school,
            school_name: school_name.into(),
            subject: "st1".into(),
            period: String::new(),
            level: Some(level),
            peak: level,
            active: true,
            text: "在岗人员张三没有登记健康证，须立即调离岗位并补办".into(),
            evidence: vec![],
            first_raised_ms: 1_764_547_200_000,
            raised_ms: 1_764_547_200_000,
            raised_at: String::new(),
            resolved_ms: None,
            resolve_reason: String::new(),
            raises: 1,
            judged_by: school,
            case: None,
            case_no: Some(case_no.into()),
        }
    }

    #[test]
    fn warning_rows_line_up_and_the_summary_counts_each_level() {
        let mut yellow = warning("a", Level::Yellow, "ab", "130102-2026-0008");
        yellow.rule_zh = "留样不足 125 克".into();
        let rows = [
            warning("b", Level::Red, "路南区第一实验小学东校区（含分校）", "130102-2026-0007"),
            yellow,
            WarningView {
                level: None,
                active: false,
                resolved_ms: Some(1_764_550_000_000),
                ..warning("c", Level::Orange, "x", "130102-2026-0009")
            },
        ];
        let text = render_warnings(&rows, Some(100));
        let lines: Vec<&str> = ["0007", "0008", "0009"].iter().map(|n| line_with(&text, n)).collect();
        let cols: Vec<usize> = lines.iter().map(|l| width_before(l, "130102-2026-000")).collect();
        assert!(cols.windows(2).all(|w| w[0] == w[1]), "columns do not line up:\n{text}");
        assert!(lines[2].starts_with(" 已解除（曾橙色）") || lines[2].contains("已解除（曾橙色）"), "{text}");
        assert!(text.contains("生效中的预警 2 条：红色 1 条，橙色 0 条，黄色 1 条；已解除 1 条"), "{text}");
    }

    #[test]
    fn the_calendar_marks_projected_years_and_names_weekdays() {
        let cal = protocol::calendar::WorkCalendar::builtin();
        let years: Vec<&YearSchedule> = cal.schedules().filter(|y| y.year == 2026 || y.year == 2027).collect();
        let text = render_calendar(&years, &[]);
        assert!(text.contains("2026 年  内置，按国务院办公厅通知"), "{text}");
        assert!(text.contains("2027 年  预排"), "{text}");
        assert!(text.contains("（星期"), "{text}");
        let registered = render_calendar(&years[1..], &[2027]);
        assert!(registered.starts_with("2027 年  省级登记（预排）"), "{registered}");
    }
}
