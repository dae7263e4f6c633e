//! Cases and alert verdicts at a node: the admin API routes, the views, and the supervising
//! node's scheduler. Every answer is folded from the node's own store with `protocol::case`, so
//! every node on a case's path computes the same state.
//!
//! Routes: `GET|POST /api/cases`, `GET /api/cases/{id}`, `POST /api/cases/{id}/steps`,
//! `POST /api/alerts/{id}/confirm`, `POST /api/alerts/{id}/dismiss`, `POST /api/clock/advance`
//! (only with `clock_control` in the node's config: tests move a node's time forward).
//!
//! A step is checked before it is written: authority (the school acknowledges and submits; its
//! supervisors do the rest) and the case's current state. A refused step is answered with the
//! reason, counted in the store's `refused_steps`, and not written. Steps made concurrently at
//! different nodes are all written and the fold settles them, recording the loser as refused.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use protocol::alert::{AlertAction, AlertUpdate, fold_alert};
use protocol::case::{
    CaseAction, CaseEvent, CaseId, CaseInput, CaseRules, CaseSource, CaseState, CaseStatus, Step, StepOutcome,
    authorize, draft_from_alert, due, fold, fold_all, notice_deadline,
};
use protocol::{Body, EventId, EventKind, Hlc, Severity};
use ractor::ActorRef;
use serde::{Deserialize, Serialize};
use topology::{NodeId, Tier};
use tracing::{info, warn};

use crate::admin::{AdminClient, AdminState, ApiError, ApiResult, api_err as err, append, bad, internal};
use crate::clock::Clock;
use crate::store::{StoreMsg, StoredEvent, pending_case};

const CALL_TIMEOUT_MS: u64 = 10_000;

/// The case inputs of stored events (others are skipped).
pub fn inputs(events: &[StoredEvent]) -> Vec<CaseInput> {
    events
        .iter()
        .filter_map(|s| match &s.event.body {
            Body::Case(c) => Some(CaseInput {
                id: s.event.id(),
                hlc: s.event.hlc,
                scope: s.event.scope,
                case: c.case,
                action: c.action.clone(),
            }),
            _ => None,
        })
        .collect()
}

async fn related(
    store: &ActorRef<StoreMsg>,
    kind: EventKind,
    subject: Option<EventId>,
) -> Result<Vec<StoredEvent>, String> {
    ractor::call_t!(store, |reply| StoreMsg::Related { kind, subject, reply }, CALL_TIMEOUT_MS)
        .map_err(|e| e.to_string())?
}

/// Every case this node holds, folded.
pub async fn all_cases(store: &ActorRef<StoreMsg>) -> Result<BTreeMap<CaseId, CaseState>, String> {
    Ok(fold_all(&inputs(&related(store, EventKind::Case, None).await?)))
}

async fn one_case(store: &ActorRef<StoreMsg>, id: CaseId) -> Result<Option<CaseState>, String> {
    Ok(fold(id, &inputs(&related(store, EventKind::Case, Some(id.event_id())).await?)))
}

/// A case as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseView {
    pub id: String,
    pub school: NodeId,
    pub status: CaseStatus,
    pub status_zh: String,
    pub severity: String,
    pub title: String,
    pub deadline_ms: Option<u64>,
    pub overdue: bool,
    /// The level supervising it now (county, or higher once escalated).
    pub supervisor: NodeId,
    pub rework: u32,
    pub opened_at_ms: u64,
    pub closed_at_ms: Option<u64>,
    /// Steps recorded but refused (out of order, concurrent, without authority).
    pub refused_steps: usize,
}

impl CaseView {
    pub fn of(s: &CaseState) -> CaseView {
        CaseView {
            id: s.id.to_string(),
            school: s.school,
            status: s.status,
            status_zh: s.status.zh().to_string(),
            severity: s.severity.as_str().to_string(),
            title: s.title.clone(),
            deadline_ms: s.deadline_ms,
            overdue: s.overdue,
            supervisor: s.supervisor,
            rework: s.rework,
            opened_at_ms: s.opened_at_ms,
            closed_at_ms: s.closed_at_ms,
            refused_steps: s.refused().count(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct CaseListParams {
    /// Only cases of schools in this subtree.
    pub under: Option<String>,
    /// `open` (not closed or cancelled), or one status (`submitted`, `closed`, …).
    pub status: Option<String>,
    /// Only cases whose current supervisor is this node (its 督办 list).
    #[serde(default)]
    pub supervised_here: bool,
}

async fn list_cases(State(s): State<AdminState>, Query(p): Query<CaseListParams>) -> ApiResult<Vec<CaseView>> {
    let under = match &p.under {
        Some(u) => Some(u.parse::<NodeId>().map_err(|e| bad(e.to_string()))?),
        None => None,
    };
    // Read beside the store actor: a province's month of case steps never delays replication.
    let events = crate::admin::read_storage(&s, |st| {
        crate::store::related(st, EventKind::Case, None).map_err(|e| e.to_string())
    })
    .await?;
    let cases = fold_all(&inputs(&events));
    let mut out: Vec<CaseView> = cases
        .values()
        .filter(|c| under.is_none_or(|u| u.is_ancestor_or_self_of(c.school)))
        .filter(|c| match p.status.as_deref() {
            None => true,
            Some("open") => !c.status.is_terminal(),
            Some(st) => c.status.as_str() == st,
        })
        .filter(|c| !p.supervised_here || c.supervisor == s.me)
        .map(CaseView::of)
        .collect();
    out.sort_by_key(|c| std::cmp::Reverse(c.opened_at_ms));
    Ok(Json(out))
}

fn parse_case(id: &str) -> Result<CaseId, (StatusCode, Json<ApiError>)> {
    id.parse::<CaseId>().map_err(|e| bad(format!("bad case id `{id}`: {e}")))
}

async fn show_case(State(s): State<AdminState>, Path(id): Path<String>) -> ApiResult<CaseState> {
    let id = parse_case(&id)?;
    match one_case(&s.store, id).await.map_err(internal)? {
        Some(c) => Ok(Json(c)),
        None => Err(err(StatusCode::NOT_FOUND, format!("{} holds no case {id}", s.me))),
    }
}

/// Opens a case (the CLI's `case open`), with its rectification notice unless `notice` is false.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenCase {
    pub school: NodeId,
    /// general | serious | severe (一般 / 较重 / 严重).
    pub severity: String,
    /// spot-check | on-site | rule-warning | complaint | self-check.
    #[serde(default)]
    pub source: Option<String>,
    pub title: String,
    #[serde(default)]
    pub detail: String,
    /// Issue the notice at once (default true), with this text and deadline (default: by severity).
    #[serde(default = "yes")]
    pub notice: bool,
    #[serde(default)]
    pub notice_text: Option<String>,
    #[serde(default)]
    pub deadline_ms: Option<u64>,
}

fn yes() -> bool {
    true
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    s.parse::<Severity>().map_err(|e| e.to_string())
}

fn parse_source(s: Option<&str>) -> Result<CaseSource, String> {
    Ok(match s {
        None | Some("spot-check") => CaseSource::SpotCheck,
        Some("on-site") => CaseSource::OnSite,
        Some("rule-warning") => CaseSource::RuleWarning,
        Some("complaint") => CaseSource::Complaint,
        Some("self-check") => CaseSource::SelfCheck,
        Some(other) => {
            return Err(format!(
                "unknown source `{other}`: spot-check, on-site, rule-warning, complaint or self-check (AI alerts open cases with `alert confirm --open-case`)"
            ));
        }
    })
}

/// Refuses (and counts) a step this node may not take, or that the case's state does not allow.
async fn refuse(s: &AdminState, code: StatusCode, why: String) -> (StatusCode, Json<ApiError>) {
    warn!(node = %s.me, reason = %why, "case step refused");
    let _ = s.store.cast(StoreMsg::CountRefused);
    err(code, why)
}

/// Checks `actions` (in order) against `state` as if `me` wrote them now.
async fn precheck(
    s: &AdminState,
    school: NodeId,
    case: Option<(CaseId, &[CaseInput])>,
    actions: &[CaseAction],
) -> Result<(), (StatusCode, Json<ApiError>)> {
    for a in actions {
        if let Err(e) = authorize(s.me, school, a) {
            return Err(refuse(s, StatusCode::FORBIDDEN, e.to_string()).await);
        }
    }
    let Some((id, existing)) = case else { return Ok(()) };
    let mut all = existing.to_vec();
    let wall = s.clock.wall_ms();
    let newest = all.iter().map(|i| i.hlc).max().unwrap_or_default();
    for (n, a) in actions.iter().enumerate() {
        // After everything held, as the store's HLC will place it.
        let hlc = if wall > newest.wall_ms {
            Hlc { wall_ms: wall, logical: n as u32 }
        } else {
            Hlc { wall_ms: newest.wall_ms, logical: newest.logical + 1 + n as u32 }
        };
        all.push(CaseInput {
            id: EventId { origin: s.me, seq: u64::MAX - n as u64 },
            hlc,
            scope: school,
            case: id,
            action: a.clone(),
        });
    }
    let state = fold(id, &all).ok_or_else(|| bad(format!("no case {id}")))?;
    let tail = state.history.iter().rev().take(actions.len());
    for step in tail {
        if let StepOutcome::Refused(why) = &step.outcome {
            return Err(refuse(s, StatusCode::CONFLICT, format!("{} refused: {why}", step.action)).await);
        }
    }
    Ok(())
}

async fn open_case(State(s): State<AdminState>, Json(req): Json<OpenCase>) -> ApiResult<CaseState> {
    let severity = parse_severity(&req.severity).map_err(bad)?;
    let source = parse_source(req.source.as_deref()).map_err(bad)?;
    let school = req.school;
    let mut actions = vec![CaseAction::Open { school, severity, source, title: req.title, detail: req.detail }];
    if req.notice {
        let now = s.clock.wall_ms();
        let deadline_ms = req.deadline_ms.unwrap_or_else(|| notice_deadline(&CaseRules::default(), severity, now));
        let text = req
            .notice_text
            .unwrap_or_else(|| "请按期整改并上传佐证材料。Rectify by the deadline and upload evidence.".into());
        actions.push(CaseAction::IssueNotice { deadline_ms, text });
    }
    precheck(&s, school, None, &actions).await?;
    let items = actions
        .into_iter()
        .map(|action| (school, Body::Case(CaseEvent { case: pending_case(s.me), action })))
        .collect();
    let stored = append(&s, items).await?;
    let id = match stored.first().map(|e| &e.event.body) {
        Some(Body::Case(c)) => c.case,
        _ => return Err(internal("the open event was not stored")),
    };
    info!(node = %s.me, case = %id, %school, "case opened");
    one_case(&s.store, id).await.map_err(internal)?.map(Json).ok_or_else(|| internal("case not found after opening"))
}

/// One step on a case (the CLI's `case notice|ack|submit|review|close|cancel|escalate`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case", deny_unknown_fields)]
pub enum StepRequest {
    Notice {
        text: String,
        deadline_ms: Option<u64>,
    },
    /// The school received the notice.
    Ack,
    /// The school refuses the notice (recorded; counts towards accountability).
    RefuseNotice,
    Submit {
        evidence: Vec<String>,
        note: String,
    },
    Review {
        passed: bool,
        comment: String,
        new_deadline_ms: Option<u64>,
    },
    Close {
        comment: String,
    },
    Cancel {
        reason: String,
    },
    /// 督办 by hand: one level up from the current supervisor.
    Escalate,
}

fn step_actions(req: StepRequest, state: &CaseState, now: u64) -> Vec<CaseAction> {
    match req {
        StepRequest::Notice { text, deadline_ms } => {
            let deadline_ms =
                deadline_ms.unwrap_or_else(|| notice_deadline(&CaseRules::default(), state.severity, now));
            vec![CaseAction::IssueNotice { deadline_ms, text }]
        }
        StepRequest::Ack => vec![CaseAction::NoticeDelivery { refused: false }, CaseAction::Acknowledge],
        StepRequest::RefuseNotice => vec![CaseAction::NoticeDelivery { refused: true }],
        StepRequest::Submit { evidence, note } => vec![CaseAction::Submit { evidence, note }],
        StepRequest::Review { passed, comment, new_deadline_ms } => {
            vec![CaseAction::Review { passed, comment, new_deadline_ms }]
        }
        StepRequest::Close { comment } => vec![CaseAction::Close { comment }],
        StepRequest::Cancel { reason } => vec![CaseAction::Cancel { reason }],
        StepRequest::Escalate => match state.supervisor.parent() {
            Some(to) => vec![CaseAction::Escalate { to }],
            None => vec![CaseAction::Escalate { to: state.supervisor }],
        },
    }
}

async fn case_step(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    Json(req): Json<StepRequest>,
) -> ApiResult<CaseState> {
    let id = parse_case(&id)?;
    let existing = inputs(&related(&s.store, EventKind::Case, Some(id.event_id())).await.map_err(internal)?);
    let Some(state) = fold(id, &existing) else {
        let why =
            format!("{} holds no case {id} (a case is held by its school and the school's supervisors only)", s.me);
        return Err(refuse(&s, StatusCode::NOT_FOUND, why).await);
    };
    let mut actions = step_actions(req, &state, s.clock.wall_ms());
    // Delivery is recorded once; acknowledging later still goes ahead.
    if state.notice_delivered || state.notice_refused {
        actions.retain(|a| !matches!(a, CaseAction::NoticeDelivery { refused: false }));
    }
    precheck(&s, state.school, Some((id, &existing)), &actions).await?;
    let items = actions.into_iter().map(|action| (state.school, Body::Case(CaseEvent { case: id, action }))).collect();
    append(&s, items).await?;
    one_case(&s.store, id).await.map_err(internal)?.map(Json).ok_or_else(|| internal("case vanished"))
}

/// A verdict on an alert (the CLI's `alert confirm|dismiss`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertVerdict {
    #[serde(default)]
    pub note: String,
    /// Confirm: also open a case and issue its notice, drafted from the alert (supervisors only).
    #[serde(default)]
    pub open_case: bool,
    /// Dismiss: why it is a false positive (误报).
    #[serde(default)]
    pub reason: String,
}

/// An alert's state as the node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertStateView {
    pub id: String,
    pub state: protocol::alert::AlertState,
}

async fn alert_event(s: &AdminState, id: EventId) -> Result<StoredEvent, (StatusCode, Json<ApiError>)> {
    let (found, _) = crate::store::read_range(s.storage.as_ref(), id.origin, id.seq.saturating_sub(1), id.seq, 1)
        .map_err(internal)?;
    match found.into_iter().next() {
        Some(e) if matches!(e.event.body, Body::Alert(_)) => Ok(e),
        _ => Err(err(StatusCode::NOT_FOUND, format!("{} holds no alert {id}", s.me))),
    }
}

/// The alert's state folded from its updates.
pub async fn alert_state(
    store: &ActorRef<StoreMsg>,
    id: EventId,
    detected_at_ms: u64,
) -> Result<protocol::alert::AlertState, String> {
    let updates = related(store, EventKind::AlertUpdate, Some(id)).await?;
    Ok(fold_alert(
        detected_at_ms,
        updates.iter().filter_map(|u| match &u.event.body {
            Body::AlertUpdate(AlertUpdate { action, .. }) => Some((u.event.origin, action)),
            _ => None,
        }),
    ))
}

fn parse_event_id(id: &str) -> Result<EventId, (StatusCode, Json<ApiError>)> {
    id.parse::<CaseId>().map(CaseId::event_id).map_err(|e| bad(format!("bad alert id `{id}`: {e}")))
}

async fn verdict(s: &AdminState, id: &str, confirm: bool, req: AlertVerdict) -> ApiResult<AlertStateView> {
    let id = parse_event_id(id)?;
    let stored = alert_event(s, id).await?;
    let Body::Alert(alert) = &stored.event.body else { return Err(internal("not an alert")) };
    let school = id.origin;
    if s.me != school && !(s.me.is_ancestor_or_self_of(school) && s.me.tier() <= Tier::County) {
        return Err(refuse(s, StatusCode::FORBIDDEN, format!("{} may not judge alerts of {school}", s.me)).await);
    }
    let current = alert_state(&s.store, id, alert.detected_at_ms).await.map_err(internal)?;
    if current.status != protocol::alert::AlertStatus::New && !(confirm && req.open_case) {
        let why = format!(
            "alert {id} is already {} by {}",
            current.status.as_str(),
            current.decided_by.map(|n| n.to_string()).unwrap_or_default()
        );
        return Err(refuse(s, StatusCode::CONFLICT, why).await);
    }
    let mut items = Vec::new();
    if confirm && req.open_case {
        if s.me.tier() == Tier::School {
            return Err(
                refuse(s, StatusCode::FORBIDDEN, "cases are opened by supervisors (county and above)".into()).await
            );
        }
        let (open, notice) = draft_from_alert(id, school, alert, &CaseRules::default(), s.clock.wall_ms());
        for action in [open, notice] {
            items.push((school, Body::Case(CaseEvent { case: pending_case(s.me), action })));
        }
    }
    let action = if confirm {
        let case = req.open_case.then(|| pending_case(s.me));
        AlertAction::Confirm { note: req.note, case }
    } else {
        AlertAction::Dismiss { reason: req.reason }
    };
    let update = AlertUpdate { alert: id, action };
    update.validate().map_err(|e| bad(e.to_string()))?;
    items.push((school, Body::AlertUpdate(update)));
    append(s, items).await?;
    let state = alert_state(&s.store, id, alert.detected_at_ms).await.map_err(internal)?;
    Ok(Json(AlertStateView { id: id.to_string(), state }))
}

async fn confirm(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    Json(req): Json<AlertVerdict>,
) -> ApiResult<AlertStateView> {
    verdict(&s, &id, true, req).await
}

async fn dismiss(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    Json(req): Json<AlertVerdict>,
) -> ApiResult<AlertStateView> {
    verdict(&s, &id, false, req).await
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AdvanceClock {
    pub ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClockView {
    pub wall_ms: u64,
    pub offset_ms: u64,
}

async fn advance_clock(State(s): State<AdminState>, Json(req): Json<AdvanceClock>) -> ApiResult<ClockView> {
    if !s.clock_control {
        return Err(err(
            StatusCode::FORBIDDEN,
            "this node's clock is not controllable (set clock_control in its config, for tests only)",
        ));
    }
    let offset_ms = s.clock.advance_ms(req.ms).map_err(bad)?;
    s.scan_now.notify_one();
    Ok(Json(ClockView { wall_ms: s.clock.wall_ms(), offset_ms }))
}

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/cases", get(list_cases).post(open_case))
        .route("/api/cases/{id}", get(show_case))
        .route("/api/cases/{id}/steps", post(case_step))
        .route("/api/alerts/{id}/confirm", post(confirm))
        .route("/api/alerts/{id}/dismiss", post(dismiss))
        .route("/api/clock/advance", post(advance_clock))
}

/// The supervising node's scheduler step: marks overdue and escalates what is due at `now_ms`,
/// one storage write for all of it. Returns how many steps it wrote.
pub async fn scan(me: NodeId, store: &ActorRef<StoreMsg>, clock: &Arc<dyn Clock>) -> Result<usize, String> {
    if me.tier() == Tier::School {
        return Ok(0);
    }
    let now = clock.wall_ms();
    let rules = CaseRules::default();
    let mut items = Vec::new();
    for (id, state) in all_cases(store).await? {
        for action in due(&state, now, me, &rules) {
            items.push((state.school, Body::Case(CaseEvent { case: id, action })));
        }
    }
    let n = items.len();
    if n > 0 {
        ractor::call_t!(store, |reply| StoreMsg::Append { items, reply }, CALL_TIMEOUT_MS)
            .map_err(|e| e.to_string())??;
        info!(node = %me, steps = n, "case scheduler: overdue and escalation steps written");
    }
    Ok(n)
}

/// How often a supervising node looks for overdue cases by default.
pub const CASE_SCAN_MS_DEFAULT: u64 = 60_000;

/// Runs [`scan`] every `every_ms` of tokio time, and at once when `now` is notified (the clock
/// moved). Ends when the store is gone.
pub fn spawn_scheduler(
    me: NodeId,
    store: ActorRef<StoreMsg>,
    clock: Arc<dyn Clock>,
    every_ms: u64,
    now: Arc<tokio::sync::Notify>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                biased;
                _ = tokio::time::sleep(Duration::from_millis(every_ms.max(10))) => {}
                _ = now.notified() => {}
            }
            if let Err(e) = scan(me, &store, &clock).await {
                if store.get_status() != ractor::ActorStatus::Running {
                    break;
                }
                warn!(node = %me, error = %e, "case scheduler: scan failed");
            }
        }
    })
}

// ---- client ----

fn case_path(id: &str) -> String {
    format!("/api/cases/{}", id.replace('#', "%23"))
}

impl AdminClient {
    pub fn cases(
        &self,
        under: Option<NodeId>,
        status: Option<&str>,
        supervised_here: bool,
    ) -> anyhow::Result<Vec<CaseView>> {
        let mut q = vec![];
        if let Some(u) = under {
            q.push(format!("under={u}"));
        }
        if let Some(st) = status {
            q.push(format!("status={st}"));
        }
        if supervised_here {
            q.push("supervised_here=true".into());
        }
        self.get(&format!("/api/cases?{}", q.join("&")))
    }

    pub fn case(&self, id: &str) -> anyhow::Result<CaseState> {
        self.get(&case_path(id))
    }

    pub fn open_case(&self, req: &OpenCase) -> anyhow::Result<CaseState> {
        self.post("/api/cases", req)
    }

    pub fn case_step(&self, id: &str, step: &StepRequest) -> anyhow::Result<CaseState> {
        self.post(&format!("{}/steps", case_path(id)), step)
    }

    pub fn confirm_alert(&self, id: &str, v: &AlertVerdict) -> anyhow::Result<AlertStateView> {
        self.post(&format!("/api/alerts/{}/confirm", id.replace('#', "%23")), v)
    }

    pub fn dismiss_alert(&self, id: &str, v: &AlertVerdict) -> anyhow::Result<AlertStateView> {
        self.post(&format!("/api/alerts/{}/dismiss", id.replace('#', "%23")), v)
    }

    pub fn advance_clock(&self, by: Duration) -> anyhow::Result<ClockView> {
        self.post("/api/clock/advance", &AdvanceClock { ms: by.as_millis() as u64 })
    }
}

/// Renders a case for `case show`.
pub fn render_case(c: &CaseState) -> String {
    use protocol::case::ChinaTime;
    let mut out = format!(
        "case {}  {} ({})  school {}  severity {}\n  {}\n",
        c.id,
        c.status.zh(),
        c.status.as_str(),
        c.school,
        c.severity.as_str(),
        c.title
    );
    if let Some(d) = c.deadline_ms {
        out.push_str(&format!("  deadline {}{}\n", ChinaTime(d), if c.overdue { "  OVERDUE" } else { "" }));
    }
    out.push_str(&format!("  supervised by {}  rework {}  rejected {}\n", c.supervisor, c.rework, c.rejected));
    out.push_str("  history:\n");
    for Step { event, at_ms, by, action, outcome } in &c.history {
        let outcome = match outcome {
            StepOutcome::Applied => "applied".to_string(),
            StepOutcome::Refused(why) => format!("REFUSED: {why}"),
        };
        out.push_str(&format!(
            "    {}  {:<14} {:<14} {outcome}  ({event})\n",
            ChinaTime(*at_ms),
            by.to_string(),
            action.to_string()
        ));
    }
    out
}
