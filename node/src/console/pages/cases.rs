//! 问题台账: the cases of this node's subtree (挂账 → 整改通知 → 签收 → 提交整改 → 复核 → 销号,
//! 督办 when overdue), each with its whole history — every step with its person, comment and
//! reason — and the forms for the steps the person may take.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Form, Multipart, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use protocol::Severity;
use protocol::case::{CaseActionKind, CaseState, CaseStatus, StepOutcome};
use protocol::files::{FileHash, FileKind, file_ref, parse_ref};
use protocol::people::Action;
use serde::Deserialize;
use topology::{NodeId, Tier};

use crate::api::AdminState;
use crate::api::cases::{
    CaseListParams, CaseView, OpenCase, StepRequest, case_step_as, case_views_newest, open_case_as, parse_case,
};
use crate::api::files::store_file;
use crate::api::principal::Principal;
use crate::console::layout::{Nav, csrf_field, empty, page as shell, severity_tag, when};
use crate::console::pages::alerts::{urlencode, who};
use crate::console::pages::files::{check_photos, read_form, refs_in, say, thumb};
use crate::console::pages::{Ctx, done, field, forbidden, reason, refused};
use crate::console::{PHOTOS_MAX, UPLOAD_PATH};

#[derive(Debug, Default, Deserialize)]
pub struct CasesQuery {
    /// open (default), overdue, supervised (督办 here), all.
    pub view: Option<String>,
}

const VIEWS: [(&str, &str); 4] = [("open", "未销号"), ("overdue", "逾期"), ("supervised", "本级督办"), ("all", "全部")];

/// How many cases one view holds, and the newest `limit` of them.
pub async fn cases_in(s: &AdminState, view: &str, limit: usize) -> Result<(usize, Vec<CaseView>), String> {
    let p = CaseListParams {
        under: None,
        status: (view != "all").then(|| "open".to_string()),
        supervised_here: view == "supervised",
        overdue: view == "overdue",
    };
    case_views_newest(s, p, limit).await.map_err(|e| reason(&e))
}

pub async fn list(State(s): State<AdminState>, ctx: Ctx, Query(q): Query<CasesQuery>) -> Response {
    render_list(&s, ctx, q.view.as_deref().unwrap_or("open"), StatusCode::OK).await
}

async fn render_list(s: &AdminState, ctx: Ctx, view: &str, code: StatusCode) -> Response {
    if !ctx.may(Action::ViewSubtree) {
        return forbidden(ctx, Nav::Cases, "您的角色不能查看问题台账");
    }
    let view = VIEWS.iter().find(|(k, _)| *k == view).map_or("open", |(k, _)| k);
    let (ctx, (total, rows)) = match cases_in(s, view, PAGE_ROWS).await {
        Ok(r) => (ctx, r),
        Err(e) => (ctx.with_error(e), (0, Vec::new())),
    };
    let body = html! {
        nav.tabs {
            @for (k, zh) in VIEWS {
                a class=@if k == view { "tag ok" } @else { "tag" } href={ "/cases?view=" (k) } { (zh) } " "
            }
        }
        @if rows.is_empty() { (empty("没有这一类案件。")) } @else { (case_table(&rows, total, PAGE_ROWS)) }
        @if ctx.may(Action::SuperviseCase) { (open_form(s, &ctx)) }
    };
    refused(code, shell(&ctx.0, Nav::Cases, "问题台账", body))
}

/// Most cases on one page (newest first).
pub const PAGE_ROWS: usize = 200;

/// The cases as a table (also on the home page): the first `max` of `rows`, and how many there
/// are in all (`total`).
pub fn case_table(rows: &[CaseView], total: usize, max: usize) -> Markup {
    let shown = &rows[..rows.len().min(max)];
    html! {
        @if total > shown.len() { p.muted { "共 " (total) " 件，显示最新的 " (shown.len()) " 件。" } }
        (rows_table(shown))
    }
}

fn rows_table(rows: &[CaseView]) -> Markup {
    html! {
        div.scroll { table.rows #cases {
            thead { tr { th { "台账编号" } th { "学校" } th { "问题" } th { "严重程度" } th { "状态" } th { "整改期限" } th { "督办" } } }
            tbody {
                @for c in rows {
                    tr {
                        td data-l="台账编号" { a href={ "/cases/show?id=" (urlencode(&c.id)) } { (if c.number.is_empty() { &c.id } else { &c.number }) } }
                        td data-l="学校" { (c.school_name) br; span.muted { (c.school) } }
                        td data-l="问题" { (c.title) }
                        td data-l="严重程度" { (severity_tag(c.severity.parse::<Severity>().unwrap_or(Severity::General))) }
                        td data-l="状态" { (c.status_zh) @if c.overdue { " " span.tag.bad { "逾期" } } }
                        td data-l="整改期限" { (c.deadline_ms.map(when).unwrap_or_default()) }
                        td data-l="督办" { @if c.supervisor.tier() < Tier::County { span.tag.due { "已提请 " (c.supervisor) " 督办" } } }
                    }
                }
            }
        } }
    }
}

/// Schools a form may offer: those of this subtree in the topology (a datalist, up to 500).
pub fn school_choices(s: &AdminState) -> Vec<(NodeId, String)> {
    s.topology.subtree(s.me).filter(|e| e.id.tier() == Tier::School).take(500).map(|e| (e.id, e.name.clone())).collect()
}

fn open_form(s: &AdminState, ctx: &Ctx) -> Markup {
    let schools = school_choices(s);
    html! {
        h2 { "挂账（新建案件并下发整改通知）" }
        form.stack.box method="post" action="/cases/open" {
            (csrf_field(&ctx.0.csrf))
            label { "学校编码" input name="school" list="schools" required placeholder="如 130102-S0001"; }
            datalist #schools { @for (id, name) in &schools { option value=(id) { (name) } } }
            label { "严重程度" select name="severity" { option value="general" { "一般" } option value="serious" { "较重" } option value="severe" { "严重" } } }
            label { "问题" input name="title" required maxlength="100"; }
            label { "详细情况" textarea name="detail" maxlength="1000" {} }
            label { "整改要求" textarea name="notice_text" maxlength="1000" { "请按期整改并上传佐证材料。" } }
            button type="submit" { "挂账并下发通知" }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct OpenForm {
    pub school: String,
    pub severity: String,
    pub title: String,
    #[serde(default)]
    pub detail: String,
    #[serde(default)]
    pub notice_text: String,
}

pub async fn open(State(s): State<AdminState>, ctx: Ctx, Form(f): Form<OpenForm>) -> Response {
    let parsed = (|| {
        let school =
            f.school.trim().parse::<NodeId>().map_err(|e| format!("学校编码“{}”不对：{e}", f.school.trim()))?;
        if school.tier() != Tier::School {
            return Err(format!("{school} 不是学校"));
        }
        let title = field("问题", &f.title, 100)?;
        if title.is_empty() {
            return Err("请写明问题".to_string());
        }
        let detail = field("详细情况", &f.detail, 1000)?;
        let notice = field("整改要求", &f.notice_text, 1000)?;
        Ok(OpenCase {
            school,
            severity: f.severity.clone(),
            source: Some("on-site".into()),
            title,
            detail,
            notice: true,
            notice_text: (!notice.is_empty()).then_some(notice),
            deadline_ms: None,
        })
    })();
    let req = match parsed {
        Ok(r) => r,
        Err(e) => return render_list(&s, ctx.with_error(e), "open", StatusCode::BAD_REQUEST).await,
    };
    match open_case_as(&s, &ctx.principal(), req).await {
        Ok(c) => done(&format!("/cases/show?id={}", urlencode(&c.id.to_string())), "case-opened"),
        Err(e) => render_list(&s, ctx.with_error(reason(&e)), "open", e.0).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct ShowQuery {
    pub id: String,
}

pub async fn show(State(s): State<AdminState>, ctx: Ctx, Query(q): Query<ShowQuery>) -> Response {
    render_case(&s, ctx, &q.id, StatusCode::OK, None).await
}

/// What a person typed into the submit form, shown again when the form is refused (photos must be
/// chosen again: a page can never fill a file input).
#[derive(Clone, Debug, Default)]
pub struct Draft {
    pub note: String,
    pub evidence: String,
}

async fn render_case(s: &AdminState, ctx: Ctx, id: &str, code: StatusCode, draft: Option<&Draft>) -> Response {
    if !ctx.may(Action::ViewSubtree) {
        return forbidden(ctx, Nav::Cases, "您的角色不能查看问题台账");
    }
    let principal = ctx.principal();
    let case = match find_case(s, &principal, id).await {
        Ok(c) => c,
        Err((code, why)) => {
            let c = ctx.with_error(why);
            return refused(code, shell(&c.0, Nav::Cases, "案件", html! { p { a href="/cases" { "返回问题台账" } } }));
        }
    };
    let title = format!("案件 {}", case.ledger_no());
    let body = html! {
        div.box #case {
            p { strong { (case.title) } " " (severity_tag(case.severity)) " " span.tag { (case.status.zh()) } @if case.overdue { " " span.tag.bad { "逾期" } } }
            p { "学校：" (crate::api::kit::name_of(s, case.school)) "（" (case.school) "）" }
            @if !case.detail.is_empty() { (detail(&case)) }
            p { "挂账：" (when(case.opened_at_ms)) " · 整改期限：" (case.deadline_ms.map(when).unwrap_or_else(|| "—".into()))
                " · 当前督办单位：" (case.supervisor) }
            @if !case.evidence.is_empty() { (evidence(&case)) }
        }
        h2 { "经过" }
        ol.history #history {
            @for st in &case.history {
                li {
                    strong { (st.action.zh()) } " · " (when(st.at_ms)) " · " span.who { (who(st.by, st.person.as_ref())) }
                    @if let StepOutcome::Refused(why) = &st.outcome { " " span.tag.bad { "未生效：" (why) } }
                    @if !st.text.is_empty() {
                        br;
                        @if st.action == CaseActionKind::Submit { span.say { (say(&st.text, case.school, FileKind::Evidence)) } }
                        @else if st.action == CaseActionKind::Open { span.say { (say(&st.text, case.id.opened_by, FileKind::Snapshot)) } }
                        @else { span.say { (st.text) } }
                    }
                }
            }
        }
        (step_forms(&ctx, &case, draft.cloned().unwrap_or_default()))
        p { a href="/cases" { "返回问题台账" } }
    };
    refused(code, shell(&ctx.0, Nav::Cases, &title, body))
}

/// What was found, with the snapshots named in it (a failed spot check's: `巡查截图：sha256:…`)
/// as thumbnails. They are held where the case was opened (the node that recorded the check), so
/// a county or a school below fetches them from there.
fn detail(case: &CaseState) -> Markup {
    let holder = case.id.opened_by;
    let photos = refs_in(&case.detail);
    html! {
        p { "情况：" (say(&case.detail, holder, FileKind::Snapshot)) }
        @if !photos.is_empty() {
            div.thumbs #snapshots { @for h in &photos { (thumb(h, holder, FileKind::Snapshot, "巡查截图")) } }
        }
    }
}

/// The latest submission's evidence: its photos as thumbnails (each opens the full image), its
/// typed items as tags.
fn evidence(case: &CaseState) -> Markup {
    let photos: Vec<FileHash> = case.evidence.iter().filter_map(|e| parse_ref(e)).collect();
    let texts: Vec<&String> = case.evidence.iter().filter(|e| parse_ref(e).is_none()).collect();
    html! {
        div #evidence {
            p { "佐证材料："
                @for e in &texts { span.tag { (e) } " " }
                @if !photos.is_empty() { span.muted { "整改照片 " (photos.len()) " 张（点击查看原图）" } }
            }
            @if !photos.is_empty() {
                div.thumbs { @for h in &photos { (thumb(h, case.school, FileKind::Evidence, "整改照片")) } }
            }
        }
    }
}

/// A case by id or ledger number (the admin API's own parsing: an id of another county is refused
/// as such, 403 and audited), with the status a refusal has.
async fn find_case(s: &AdminState, who: &Principal, id: &str) -> Result<CaseState, (StatusCode, String)> {
    let case = parse_case(s, who, id).await.map_err(|e| (e.0, reason(&e)))?;
    match s.reads.case(case).await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err((StatusCode::NOT_FOUND, format!("本单位没有案件“{}”", id.trim()))),
        Err(e) => Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

fn step_forms(ctx: &Ctx, c: &CaseState, draft: Draft) -> Markup {
    let answer = ctx.may(Action::AnswerCase);
    let supervise = ctx.may(Action::SuperviseCase);
    let csrf = &ctx.0.csrf;
    let id = c.id.to_string();
    let form = |step: &str, body: Markup, button: &str| {
        html! {
            form.stack.box method="post" action="/cases/step" {
                (csrf_field(csrf))
                input type="hidden" name="id" value=(id);
                input type="hidden" name="step" value=(step);
                (body)
                button type="submit" { (button) }
            }
        }
    };
    let owes = matches!(c.status, CaseStatus::NoticeIssued | CaseStatus::Rectifying);
    html! {
        @if answer && c.status == CaseStatus::NoticeIssued {
            h2 { "签收整改通知" }
            (form("ack", html! {}, "签收"))
        }
        @if answer && owes {
            h2 { "提交整改" }
            // Multipart, for the photos; the CSRF field first (the session layer reads it from
            // the body's first part).
            form.stack.box #submit method="post" action=(UPLOAD_PATH) enctype="multipart/form-data" {
                (csrf_field(csrf))
                input type="hidden" name="id" value=(id);
                label { "整改说明" textarea name="note" required maxlength="1000" { (draft.note) } }
                fieldset.photos {
                    legend { "整改照片" }
                    p.muted.small { "拍照或从相册选择，每一格可一次选多张；合计最多 " (PHOTOS_MAX) " 张，JPEG 或 PNG，每张不超过 "
                        (protocol::files::FILE_BYTES_MAX >> 20) " MiB。" }
                    div.picks {
                        @for i in 1..=PHOTOS_MAX {
                            label { span.muted.small { "照片 " (i) } input type="file" name="photo" accept="image/jpeg,image/png" multiple; }
                        }
                    }
                }
                label { "其他佐证材料（可空：文字说明或视频编号，每行一项）" textarea name="evidence" maxlength="2000" { (draft.evidence) } }
                button type="submit" { "提交整改" }
            }
        }
        @if supervise && c.status == CaseStatus::Submitted {
            h2 { "复核" }
            (form("review", html! {
                label { "结论" select name="passed" { option value="yes" { "通过" } option value="no" { "不通过，退回重新整改" } } }
                label { "复核意见" textarea name="comment" required maxlength="1000" {} }
            }, "提交复核"))
        }
        @if supervise && c.status == CaseStatus::Reviewed {
            h2 { "销号" }
            (form("close", html! { label { "销号意见" textarea name="comment" maxlength="1000" {} } }, "销号"))
        }
        @if supervise && matches!(c.status, CaseStatus::Open | CaseStatus::NoticeIssued) {
            h2 { "撤销（误判）" }
            (form("cancel", html! { label { "撤销原因" textarea name="reason" required maxlength="1000" {} } }, "撤销"))
        }
        @if supervise && !c.status.is_terminal() && c.supervisor == ctx.0.me && ctx.0.me.tier() != Tier::Province {
            h2 { "提请上级督办" }
            (form("escalate", html! {}, "提请督办"))
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct StepForm {
    pub id: String,
    pub step: String,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub evidence: String,
    #[serde(default)]
    pub passed: String,
    #[serde(default)]
    pub comment: String,
    #[serde(default)]
    pub reason: String,
}

fn step_request(f: &StepForm) -> Result<(StepRequest, &'static str), String> {
    let required = |label: &str, v: &str| -> Result<String, String> {
        let v = field(label, v, 1000)?;
        if v.is_empty() { Err(format!("请填写“{label}”")) } else { Ok(v) }
    };
    Ok(match f.step.as_str() {
        "ack" => (StepRequest::Ack, "ack"),
        "submit" => {
            let note = required("整改说明", &f.note)?;
            let evidence: Vec<String> =
                f.evidence.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
            if evidence.len() > 20 || evidence.iter().any(|e| e.chars().count() > 200) {
                return Err("佐证材料最多 20 项，每项最多 200 个字".into());
            }
            (StepRequest::Submit { evidence, note }, "submitted")
        }
        "review" => {
            let passed = match f.passed.as_str() {
                "yes" => true,
                "no" => false,
                _ => return Err("请选择复核结论".into()),
            };
            let comment = required("复核意见", &f.comment)?;
            (
                StepRequest::Review { passed, comment, new_deadline_ms: None },
                if passed { "reviewed-pass" } else { "reviewed-fail" },
            )
        }
        "close" => (StepRequest::Close { comment: field("销号意见", &f.comment, 1000)? }, "closed"),
        "cancel" => (StepRequest::Cancel { reason: required("撤销原因", &f.reason)? }, "cancelled"),
        "escalate" => (StepRequest::Escalate, "escalated"),
        other => return Err(format!("不认识的步骤“{other}”")),
    })
}

pub async fn step(State(s): State<AdminState>, ctx: Ctx, Form(f): Form<StepForm>) -> Response {
    let draft = (f.step == "submit").then(|| Draft { note: f.note.clone(), evidence: f.evidence.clone() });
    let (req, notice) = match step_request(&f) {
        Ok(r) => r,
        Err(e) => return render_case(&s, ctx.with_error(e), &f.id, StatusCode::BAD_REQUEST, draft.as_ref()).await,
    };
    match case_step_as(&s, &ctx.principal(), &f.id, req).await {
        Ok(c) => done(&format!("/cases/show?id={}", urlencode(&c.id.to_string())), notice),
        Err(e) => render_case(&s, ctx.with_error(reason(&e)), &f.id, e.0, draft.as_ref()).await,
    }
}

/// Most items of evidence in one submission (typed lines and photos).
const EVIDENCE_MAX: usize = 20;

/// `POST /cases/submit` ([`UPLOAD_PATH`], `multipart/form-data`): the school's rectification with
/// its photos. The session layer has checked the CSRF token (the body's first part) and the body
/// limit let the body be up to [`crate::console::UPLOAD_BODY_LIMIT`]. The typed fields and every
/// photo are checked, and so are the person's right to answer and the case's state, before any
/// photo is stored; a refusal stores nothing and shows the page again with the reason and what
/// was typed. Then each photo is stored here as evidence ([`store_file`]: kept for good) and its
/// reference goes into the submission's evidence after the typed lines.
pub async fn submit(State(s): State<AdminState>, ctx: Ctx, form: Result<Multipart, MultipartRejection>) -> Response {
    let form = match form {
        Ok(f) => read_form(f).await,
        Err(e) => Err(format!("表单格式不对：{}", e.body_text())),
    };
    let form = match form {
        Ok(f) => f,
        Err(why) => return render_list(&s, ctx.with_error(why), "open", StatusCode::BAD_REQUEST).await,
    };
    let id = form.text("id");
    let draft = Draft { note: form.text("note"), evidence: form.text("evidence") };
    let again = |why: String| {
        if form.photos.is_empty() { why } else { format!("{why}。照片未保存，请重新选择后再提交。") }
    };
    let f = StepForm {
        id: id.clone(),
        step: "submit".into(),
        note: draft.note.clone(),
        evidence: draft.evidence.clone(),
        ..StepForm::default()
    };
    let checked = step_request(&f).and_then(|(req, _)| {
        check_photos(&form.photos)?;
        let StepRequest::Submit { evidence, note } = req else { return Err("不认识的步骤".to_string()) };
        if evidence.is_empty() && form.photos.is_empty() {
            return Err("请上传整改照片，或填写其他佐证材料".to_string());
        }
        if evidence.len() + form.photos.len() > EVIDENCE_MAX {
            return Err(format!("佐证材料最多 {EVIDENCE_MAX} 项（照片与文字合计）"));
        }
        Ok((evidence, note))
    });
    let (mut evidence, note) = match checked {
        Ok(c) => c,
        Err(why) => {
            return render_case(&s, ctx.with_error(again(why)), &id, StatusCode::BAD_REQUEST, Some(&draft)).await;
        }
    };
    let principal = ctx.principal();
    if let Err(e) = principal.require(&s, Action::AnswerCase).await {
        return render_case(&s, ctx.with_error(again(reason(&e))), &id, e.0, Some(&draft)).await;
    }
    match find_case(&s, &principal, &id).await {
        Ok(c) if matches!(c.status, CaseStatus::NoticeIssued | CaseStatus::Rectifying) => {}
        Ok(c) => {
            let why = format!("这个案件现在{}，不能提交整改", c.status.zh());
            return render_case(&s, ctx.with_error(again(why)), &id, StatusCode::CONFLICT, None).await;
        }
        Err((code, why)) => return render_case(&s, ctx.with_error(why), &id, code, None).await,
    }
    for p in &form.photos {
        match store_file(&s, FileKind::Evidence, &p.bytes).await {
            Ok((hash, _)) => {
                let r = file_ref(&hash);
                if !evidence.contains(&r) {
                    evidence.push(r);
                }
            }
            Err(e) => {
                let why = again(format!("照片“{}”保存失败：{}", p.name, reason(&e)));
                return render_case(&s, ctx.with_error(why), &id, e.0, Some(&draft)).await;
            }
        }
    }
    match case_step_as(&s, &principal, &id, StepRequest::Submit { evidence, note }).await {
        Ok(c) => done(&format!("/cases/show?id={}", urlencode(&c.id.to_string())), "submitted"),
        Err(e) => render_case(&s, ctx.with_error(again(reason(&e))), &id, e.0, Some(&draft)).await,
    }
}
