//! 每日抽查名单 at the province: the day's draw (its seed and inputs, for an auditor), the spread
//! over counties, the worklist of canteens with their inspectors, done or not done; and the form
//! that records a check of one canteen of the worklist: the four focus areas pass or fail, a
//! snapshot for each failure. Anywhere but the province the pages refuse, naming nothing.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use protocol::Severity;
use protocol::files::{FileKind, file_ref};
use protocol::people::{Action, Role};
use protocol::registry::EntityData;
use protocol::spot::FocusArea;
use serde::Deserialize;
use topology::NodeId;

use crate::api::AdminState;
use crate::api::draw::{DrawView, WorkItem, draw_as, province_only};
use crate::api::files::store_file;
use crate::api::spot::{AreaSnapshot, RecordSpotCheck, check_registered, record_as};
use crate::console::layout::{Nav, csrf_field, empty, page as shell, when};
use crate::console::pages::alerts::urlencode;
use crate::console::pages::files::{Photo, UploadForm, check_photos, read_form};
use crate::console::pages::{Ctx, done, field, forbidden, reason, refused};

/// Where the record form posts (a form with files: its body may be as large as the case
/// submission's).
pub const RECORD_PATH: &str = "/spot-checks/worklist/record";

#[derive(Debug, Default, Deserialize)]
pub struct WorklistQuery {
    /// `2026-12-01`; default today.
    pub day: Option<String>,
    /// `1`: only the items of the signed-in inspector.
    pub mine: Option<String>,
}

pub async fn page(State(s): State<AdminState>, ctx: Ctx, Query(q): Query<WorklistQuery>) -> Response {
    if let Err(e) = province_only(&s) {
        return forbidden(ctx, Nav::Spot, &reason(&e));
    }
    let view = match draw_as(&s, &ctx.principal(), q.day.as_deref()).await {
        Ok(v) => v,
        Err(e) => {
            let day = q.day.clone().unwrap_or_default();
            let body = html! { (day_form(&day, false)) };
            let c = ctx.with_error(reason(&e));
            return refused(e.0, shell(&c.0, Nav::Spot, "每日抽查名单", body));
        }
    };
    let names = inspector_names(&s).await;
    let mine = q.mine.as_deref() == Some("1");
    let body = render(&s, &ctx, &view, &names, mine);
    refused(StatusCode::OK, shell(&ctx.0, Nav::Spot, "每日抽查名单", body))
}

/// The province's accounts by id: `(name, role)`.
async fn inspector_names(s: &AdminState) -> Vec<(String, String)> {
    let view = s.reads.registry_of(s.me).await.unwrap_or_default();
    view.iter()
        .filter_map(|(r, e)| match &e.data {
            EntityData::Account(a) if r.node == s.me && a.role == Role::Inspector => {
                Some((r.id.clone(), a.display_name.clone()))
            }
            _ => None,
        })
        .collect()
}

fn day_form(day: &str, mine: bool) -> Markup {
    html! {
        form.inline method="get" action="/spot-checks/worklist" {
            label.inline { "日期" input name="day" value=(day) placeholder="2026-12-01" size="10"; }
            label.inline { input type="checkbox" name="mine" value="1" checked[mine]; "只看分给我的" }
            button.plain type="submit" { "查看" }
            a href="/spot-checks" { "返回网络巡查" }
        }
    }
}

fn render(s: &AdminState, ctx: &Ctx, v: &DrawView, names: &[(String, String)], mine: bool) -> Markup {
    let d = &v.draw;
    let me = &ctx.who().account;
    let name_of = |id: &str| names.iter().find(|(a, _)| a == id).map(|(_, n)| format!("{n}（{id}）"));
    let mine_count = d.items.iter().filter(|i| i.inspector.as_deref() == Some(me.as_str())).count();
    let mine_open = v.items.iter().filter(|i| i.inspector.as_deref() == Some(me.as_str()) && i.done.is_none()).count();
    let shown: Vec<(usize, &WorkItem)> =
        v.items.iter().enumerate().filter(|(_, i)| !mine || i.inspector.as_deref() == Some(me.as_str())).collect();
    let may_record = ctx.may(Action::RecordSpotCheck);
    html! {
        (day_form(&d.day, mine))
        h2 { (d.day) " 抽查名单" }
        div.cards {
            div.card { div.n { (d.items.len()) } div.l { "抽中食堂（名额 " (d.settings.quota) "）" } }
            div.card { div.n { (v.done) } div.l { "已巡查" } }
            div.card.warn { div.n { (d.items.len() as u32 - v.done) } div.l { "未巡查" } }
            @if mine_count > 0 { div.card { div.n { (mine_open) } div.l { "分给我的未巡查（共 " (mine_count) " 个）" } } }
        }
        @if d.shortfall > 0 {
            p.flash.error { "比名额少 " (d.shortfall) " 个：" (d.settings.window_weeks) " 周内已抽过的食堂不再抽，可抽的食堂不够。" }
        }
        @if d.items.iter().all(|i| i.inspector.is_none()) && !d.items.is_empty() {
            p.muted { "抽取时本单位没有巡查员账号，名单未分配，任何巡查员都可以记录。" }
        }
        h2 { "巡查任务" }
        @if shown.is_empty() { (empty(if mine { "没有分给您的食堂。" } else { "这一天没有抽中食堂。" })) } @else {
            div.scroll { table.rows #worklist {
                thead { tr { th { "序号" } th { "县区" } th { "学校" } th { "食堂" } th { "巡查员" } th { "状态" } th { "操作" } } }
                tbody { @for (n, i) in &shown {
                    tr {
                        td data-l="序号" { (n + 1) }
                        td data-l="县区" { (i.county_name) " " span.muted { (i.county) } }
                        td data-l="学校" { (i.school_name) " " span.muted { (i.school) } }
                        td data-l="食堂" { (i.canteen_name) " " span.muted { (i.canteen) } }
                        td data-l="巡查员" { @match &i.inspector { Some(a) => (name_of(a).unwrap_or_else(|| a.clone())), None => span.muted { "未分配" } } }
                        td data-l="状态" {
                            @match &i.done {
                                None => span.tag.due { "未巡查" },
                                Some(c) if c.passed => { span.tag.ok { "已巡查 · 合格" } " " span.muted { (when(c.at_ms)) } },
                                Some(c) => { span.tag.bad { "已巡查 · 不合格：" (c.failed.iter().map(|a| a.zh()).collect::<Vec<_>>().join("、")) } " " span.muted { (when(c.at_ms)) } },
                            }
                        }
                        td data-l="操作" {
                            @if i.done.is_none() && may_record {
                                a.button href=(format!("{RECORD_PATH}?day={}&school={}&canteen={}", d.day, i.school, urlencode(&i.canteen))) { "记录巡查" }
                            } @else if let Some(c) = &i.done {
                                a href=(format!("/spot-checks?period={}", protocol::calendar::ChinaTime(c.at_ms).date())) title=(c.check) { "查看记录" }
                            }
                            " " a.cameras href=(format!("/cameras?school={}", i.school)) { "看摄像头" }
                        }
                    }
                } }
            } }
        }
        h2 { "各县区分配（按食堂数比例）" }
        div.scroll { table.rows #counties {
            thead { tr { th { "县区" } th { "登记食堂" } th { "可抽（" (d.settings.window_weeks) " 周内未抽过）" } th { "抽中" } } }
            tbody { @for c in &d.counties {
                tr { td data-l="县区" { (crate::api::kit::name_of(s, c.county)) " " span.muted { (c.county) } } td data-l="登记食堂" { (c.canteens) } td data-l="可抽" { (c.available) } td data-l="抽中" { (c.drawn) } }
            } }
        } }
        h2 { "抽取依据（供审计复核）" }
        div.box { dl.kv #draw-facts {
            dt { "抽取日期" } dd { (d.day) "（工作日）" }
            dt { "随机种子" } dd { code { (d.seed) } }
            dt { "抽取时间" } dd { (when(d.drawn_at_ms)) @if let Some(p) = &d.drawn_by { "，" (p.name) "（" (p.account) "）首次打开" } }
            dt { "每日名额" } dd { (d.settings.quota) " 个食堂，按各县区登记食堂数比例分配" }
            dt { "候选食堂" } dd { (d.candidates) " 个（指纹 " code { (d.candidates_digest) } "）" }
            dt { "不重复规则" } dd { (d.settings.window_weeks) " 周内抽过的食堂不再抽：排除 " (d.excluded) " 个，依据此前 " (d.history_days.len()) " 天的名单" }
            dt { "复核命令" } dd { code { (v.verify_command) } }
        } }
        p.muted { "抽查名单只保存在省级，县区、市和学校在记录巡查前看不到。" }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct RecordQuery {
    pub day: Option<String>,
    pub school: Option<String>,
    pub canteen: Option<String>,
}

/// The record form of one worklist item.
pub async fn form(State(s): State<AdminState>, ctx: Ctx, Query(q): Query<RecordQuery>) -> Response {
    render_form(&s, ctx, &q, StatusCode::OK).await
}

async fn render_form(s: &AdminState, ctx: Ctx, q: &RecordQuery, code: StatusCode) -> Response {
    if let Err(e) = province_only(s) {
        return forbidden(ctx, Nav::Spot, &reason(&e));
    }
    if !ctx.may(Action::RecordSpotCheck) {
        return forbidden(ctx, Nav::Spot, "您的角色不能记录网络巡查");
    }
    let day = q.day.clone().unwrap_or_default();
    let school = q.school.clone().unwrap_or_default();
    let canteen = q.canteen.clone().unwrap_or_default();
    let school_name = school.parse::<NodeId>().map(|n| crate::api::kit::name_of(s, n)).unwrap_or_default();
    let back = format!("/spot-checks/worklist?day={}", urlencode(&day));
    let canteen_name = match school.parse::<NodeId>() {
        Ok(n) => s
            .reads
            .registry_of(n)
            .await
            .unwrap_or_default()
            .iter()
            .find_map(|(r, e)| match &e.data {
                EntityData::Canteen(c) if r.id == canteen => Some(c.name.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "食堂".into()),
        Err(_) => "食堂".into(),
    };
    let body = html! {
        p { a href=(back) { "← 返回抽查名单" } }
        div.box {
            h2 { "记录巡查：" (school_name) " " span.muted { (school) } " · " (canteen_name) " " span.muted { (canteen) } }
            p.muted { "请查看该食堂的摄像头画面，逐项判定四个方面。判为不合格的方面，请上传一张当时的截图；每个不合格方面都会对学校挂账并下发整改通知。" }
            form.stack method="post" action=(RECORD_PATH) enctype="multipart/form-data" {
                (csrf_field(&ctx.0.csrf))
                input type="hidden" name="day" value=(day);
                input type="hidden" name="school" value=(school);
                input type="hidden" name="canteen" value=(canteen);
                @for a in FocusArea::ALL {
                    fieldset.box id=(format!("area-{}", a.key())) {
                        legend { (a.zh()) }
                        div.choices {
                            label.inline { input type="radio" name=(format!("area-{}", a.key())) value="pass" checked; "合格" }
                            label.inline { input type="radio" name=(format!("area-{}", a.key())) value="fail"; "不合格" }
                        }
                        label { "不合格时的截图（JPEG 或 PNG）" input type="file" name=(format!("snapshot-{}", a.key())) accept="image/jpeg,image/png"; }
                    }
                }
                label { "问题严重程度（不合格时）" select name="severity" { option value="general" { "一般" } option value="serious" { "较重" } option value="severe" { "严重" } } }
                label { "说明" textarea name="note" maxlength="150" {} }
                button type="submit" { "保存巡查结果" }
            }
        }
    };
    refused(code, shell(&ctx.0, Nav::Spot, "记录巡查", body))
}

/// Records the check of a worklist item: every area judged, a snapshot for each failure (stored
/// as evidence, named in the case that failure opens). Refused: nothing written, the form again
/// with the reason.
pub async fn record(State(s): State<AdminState>, ctx: Ctx, form: Result<Multipart, MultipartRejection>) -> Response {
    let form = match form {
        Ok(f) => read_form(f).await,
        Err(e) => Err(format!("表单格式不对：{}", e.body_text())),
    };
    let form = match form {
        Ok(f) => f,
        Err(why) => {
            return render_form(&s, ctx.with_error(why), &RecordQuery::default(), StatusCode::BAD_REQUEST).await;
        }
    };
    let q = RecordQuery {
        day: Some(form.text("day")),
        school: Some(form.text("school")),
        canteen: Some(form.text("canteen")),
    };
    let again = |why: String| {
        if form.photos.is_empty() { why } else { format!("{why}。截图未保存，请重新选择后再提交。") }
    };
    let checked = parse_record(&form);
    let (mut req, shots) = match checked {
        Ok(c) => c,
        Err(why) => return render_form(&s, ctx.with_error(again(why)), &q, StatusCode::BAD_REQUEST).await,
    };
    // The school and canteen before any file is kept: a refused form leaves nothing behind.
    if let Err(e) = check_registered(&s, req.school, req.canteen.trim()).await {
        return render_form(&s, ctx.with_error(again(reason(&e))), &q, e.0).await;
    }
    let principal = ctx.principal();
    if let Err(e) = principal.require(&s, Action::RecordSpotCheck).await {
        return render_form(&s, ctx.with_error(again(reason(&e))), &q, e.0).await;
    }
    for (area, p) in shots {
        match store_file(&s, FileKind::Evidence, &p.bytes).await {
            Ok((hash, _)) => req.snapshots.push(AreaSnapshot { area, file: file_ref(&hash) }),
            Err(e) => {
                let why = again(format!("截图“{}”保存失败：{}", p.name, reason(&e)));
                return render_form(&s, ctx.with_error(why), &q, e.0).await;
            }
        }
    }
    match record_as(&s, &principal, req).await {
        Ok(_) => done(&format!("/spot-checks/worklist?day={}", urlencode(&q.day.unwrap_or_default())), "checked"),
        Err(e) => render_form(&s, ctx.with_error(again(reason(&e))), &q, e.0).await,
    }
}

/// A failed area's snapshot as it came in the form.
type Shots<'f> = Vec<(FocusArea, &'f Photo)>;

/// The record form's fields: every area judged, a snapshot for each failure and none for a pass,
/// the snapshots checked as images.
fn parse_record(form: &UploadForm) -> Result<(RecordSpotCheck, Shots<'_>), String> {
    let school_text = form.text("school");
    let school =
        school_text.trim().parse::<NodeId>().map_err(|e| format!("学校编码“{}”不对：{e}", school_text.trim()))?;
    let mut failed = Vec::new();
    for a in FocusArea::ALL {
        match form.text(&format!("area-{}", a.key())).as_str() {
            "pass" => {}
            "fail" => failed.push(a),
            _ => return Err(format!("请判定“{}”合格还是不合格", a.zh())),
        }
    }
    let mut shots: Shots = Vec::new();
    for p in &form.photos {
        let Some(a) = FocusArea::ALL.into_iter().find(|a| p.field == format!("snapshot-{}", a.key())) else {
            continue;
        };
        if !failed.contains(&a) {
            return Err(format!("“{}”判为合格，不需要截图；请去掉截图或改判不合格", a.zh()));
        }
        shots.push((a, p));
    }
    for a in &failed {
        if !shots.iter().any(|(b, _)| b == a) {
            return Err(format!("“{}”判为不合格，请上传一张截图", a.zh()));
        }
    }
    let photos: Vec<Photo> = shots
        .iter()
        .map(|(_, p)| Photo { name: p.name.clone(), field: p.field.clone(), bytes: p.bytes.clone() })
        .collect();
    check_photos(&photos)?;
    let severity = form.text("severity");
    let severity = if severity.is_empty() {
        None
    } else {
        Some(severity.parse::<Severity>().map_err(|e| e.to_string())?.as_str().to_string())
    };
    let req = RecordSpotCheck {
        school,
        canteen: field("食堂", &form.text("canteen"), 64)?,
        failed,
        note: field("说明", &form.text("note"), 150)?,
        severity,
        snapshots: Vec::new(),
    };
    Ok((req, shots))
}
