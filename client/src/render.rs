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
use node::api::registry::EntityView;
use node::api::spot::{RateView, SpotCheckView};
use node::runtime::link::{LinkState, LinkStatus};
use node::runtime::root::NodeStatus;
use protocol::calendar::ChinaTime;
use protocol::case::{CaseActionKind, CaseState, StepOutcome};
use protocol::registry::EntityData;
use topology::Tier;

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
            alert_status_zh(&a.status).to_string(),
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
            e.kind.as_str().to_string(),
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
}
