//! The local admin API (HTTP + JSON on loopback) that the `mingchu` CLI talks to, and its client.
//!
//! Routes: `GET /api/status`, `GET|POST /api/alerts`, `POST /api/alerts/batch`,
//! `POST /api/directives`, `GET /api/events`, `GET /api/cursors`.
//! Errors are JSON `{"error": "..."}` with a 4xx/5xx status; bad input never reaches the store.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use protocol::alert::{AlertAction, AlertUpdate, fold_alert};
use protocol::{AlertRaised, AlertType, Body, Directive, EventKind, Severity, Zone};
use ractor::ActorRef;
use serde::{Deserialize, Serialize};
use topology::{NodeId, Tier};

use crate::root::{NodeMsg, NodeStatus};
use crate::store::{EventQuery, StoreMsg, StoredEvent};

/// How long an admin request waits for the node's actors (a local write waits for a flush).
const ADMIN_CALL_TIMEOUT_MS: u64 = 10_000;

#[derive(Clone)]
pub struct AdminState {
    pub me: NodeId,
    pub node: ActorRef<NodeMsg>,
    pub store: ActorRef<StoreMsg>,
    /// Read-only access for point reads (the store actor stays the only writer).
    pub storage: std::sync::Arc<dyn crate::storage::Storage>,
    pub clock: std::sync::Arc<dyn crate::clock::Clock>,
    /// `POST /api/clock/advance` allowed (tests only).
    pub clock_control: bool,
    /// Wakes the case scheduler (after the clock moved).
    pub scan_now: std::sync::Arc<tokio::sync::Notify>,
    pub recent_alerts: RecentAlerts,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

pub(crate) type ApiResult<T> = Result<Json<T>, (StatusCode, Json<ApiError>)>;

/// An error answer: the status and `{"error": msg}`.
pub(crate) fn api_err(code: StatusCode, msg: impl Into<String>) -> (StatusCode, Json<ApiError>) {
    (code, Json(ApiError { error: msg.into() }))
}

pub(crate) fn bad(msg: impl Into<String>) -> (StatusCode, Json<ApiError>) {
    api_err(StatusCode::BAD_REQUEST, msg)
}

pub(crate) fn internal(msg: impl std::fmt::Display) -> (StatusCode, Json<ApiError>) {
    api_err(StatusCode::INTERNAL_SERVER_ERROR, msg.to_string())
}

/// An alert to raise at this school (the CLI's `alert raise`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaiseAlert {
    pub camera: String,
    #[serde(rename = "type")]
    pub alert_type: String,
    #[serde(default)]
    pub canteen: Option<String>,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub confidence_permille: Option<u16>,
    #[serde(default)]
    pub snapshot: Option<String>,
    #[serde(default)]
    pub detected_at_ms: Option<u64>,
    /// Do not merge into a recent alert of the same camera and type (a separate alert every time).
    #[serde(default)]
    pub no_merge: bool,
}

/// Repeats of the same camera and type within this window merge into the first alert
/// (DOMAIN.md: 30 min by default).
pub const MERGE_WINDOW_MS: u64 = 30 * 60_000;

/// The latest alert per (camera, type) at a school, with its last detection, for merging
/// repeats. Kept in memory and refilled from the store when the node starts
/// ([`recent_alerts_from_store`]), so a restart does not split a merge window.
pub type RecentAlerts =
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<(String, AlertType), (protocol::EventId, u64)>>>;

/// The merge windows still open at a school, from its own alerts and repeats: for each (camera,
/// type) the newest alert and its last detection, when that was within [`MERGE_WINDOW_MS`] of
/// `now_ms`. Reads at most the school's newest [`RECENT_SCAN_MAX`] alerts. Other tiers: empty.
pub async fn recent_alerts_from_store(
    me: NodeId,
    store: &ActorRef<StoreMsg>,
    now_ms: u64,
) -> Result<RecentAlerts, String> {
    let out = RecentAlerts::default();
    if me.tier() != Tier::School {
        return Ok(out);
    }
    let query = EventQuery { kind: Some(EventKind::Alert), under: Some(me), limit: RECENT_SCAN_MAX };
    let alerts = ractor::call_t!(store, |reply| StoreMsg::List { query, reply }, ADMIN_CALL_TIMEOUT_MS)
        .map_err(|e| e.to_string())??;
    let updates = ractor::call_t!(
        store,
        |reply| StoreMsg::Related { kind: EventKind::AlertUpdate, subject: None, reply },
        ADMIN_CALL_TIMEOUT_MS
    )
    .map_err(|e| e.to_string())??;
    let by = updates_by_alert(updates);
    let mut map = out.lock().unwrap_or_else(|e| e.into_inner());
    // Oldest first, so the newest alert of a (camera, type) wins.
    for e in alerts.iter().rev() {
        let Body::Alert(a) = &e.event.body else { continue };
        let id = e.event.id();
        let ups = by.get(&id).map(Vec::as_slice).unwrap_or_default();
        let last = fold_alert(a.detected_at_ms, ups.iter().map(|(o, u)| (*o, u))).last_detected_ms;
        if now_ms.abs_diff(last) <= MERGE_WINDOW_MS {
            map.insert((a.camera.clone(), a.alert_type), (id, last));
        }
    }
    drop(map);
    Ok(out)
}

/// Alert updates (verdicts, repeats) grouped by the alert they are about, each as
/// `(writer, action)` in the order given (event order, as the store returns them).
fn updates_by_alert(updates: Vec<StoredEvent>) -> HashMap<protocol::EventId, Vec<(NodeId, AlertAction)>> {
    let mut by: HashMap<protocol::EventId, Vec<(NodeId, AlertAction)>> = HashMap::new();
    for u in updates {
        if let Body::AlertUpdate(AlertUpdate { alert, action }) = u.event.body {
            by.entry(alert).or_default().push((u.event.origin, action));
        }
    }
    by
}

/// Most alerts [`recent_alerts_from_store`] reads (a school raises a handful a day).
pub const RECENT_SCAN_MAX: usize = 2_000;

impl RaiseAlert {
    /// Parses the request into an alert body, with a clear message for each bad field.
    pub fn to_alert(&self, now_ms: u64) -> Result<AlertRaised, String> {
        let alert_type: AlertType =
            self.alert_type.parse().map_err(|e: protocol::alert::ParseNameError| e.to_string())?;
        let zone: Zone = match &self.zone {
            Some(z) => z.parse().map_err(|e: protocol::alert::ParseNameError| e.to_string())?,
            None => Zone::Cooking,
        };
        let severity: Severity = match &self.severity {
            Some(s) => s.parse().map_err(|e: protocol::alert::ParseNameError| e.to_string())?,
            None => alert_type.default_severity(zone),
        };
        let alert = AlertRaised {
            camera: self.camera.clone(),
            canteen: self.canteen.clone().unwrap_or_else(|| "main".into()),
            zone,
            alert_type,
            severity,
            detected_at_ms: self.detected_at_ms.unwrap_or(now_ms),
            confidence_permille: self.confidence_permille.unwrap_or(900),
            snapshot: self.snapshot.clone().unwrap_or_default(),
            repeat_count: 1,
        };
        alert.validate().map_err(|e| e.to_string())?;
        Ok(alert)
    }
}

/// A directive to send down the tree (scope = the unit that receives it, with its subtree).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendDirective {
    pub to: String,
    pub title: String,
    #[serde(default)]
    pub text: String,
}

/// An alert as the admin API and CLI show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertView {
    pub id: String,
    pub school: NodeId,
    pub seq: u64,
    pub camera: String,
    pub canteen: String,
    pub zone: String,
    #[serde(rename = "type")]
    pub alert_type: String,
    pub type_zh: String,
    pub severity: String,
    pub detected_at_ms: u64,
    /// When the school wrote it (unix ms, the school's clock).
    pub raised_at_ms: u64,
    /// When this node persisted it (unix µs, this node's clock).
    pub received_at_us: u64,
    /// new, confirmed or dismissed (from the verdicts this node holds).
    #[serde(default = "new_status")]
    pub status: String,
    /// Detections merged into it, itself included.
    #[serde(default = "one")]
    pub detections: u32,
    /// The case it opened or joined.
    #[serde(default)]
    pub case: Option<String>,
    /// This raise was merged into the existing alert `id` (a repeat), not written as a new one.
    #[serde(default)]
    pub merged: bool,
}

fn new_status() -> String {
    "new".into()
}

fn one() -> u32 {
    1
}

impl AlertView {
    pub fn from_stored(s: &StoredEvent) -> Option<AlertView> {
        let Body::Alert(a) = &s.event.body else { return None };
        Some(AlertView {
            id: s.event.id().to_string(),
            school: s.event.origin,
            seq: s.event.seq,
            camera: a.camera.clone(),
            canteen: a.canteen.clone(),
            zone: a.zone.as_str().to_string(),
            alert_type: a.alert_type.code().to_string(),
            type_zh: a.alert_type.zh().to_string(),
            severity: a.severity.as_str().to_string(),
            detected_at_ms: a.detected_at_ms,
            raised_at_ms: s.event.hlc.wall_ms,
            received_at_us: s.received_at_us,
            status: new_status(),
            detections: 1,
            case: None,
            merged: false,
        })
    }

    /// Adds what the alert's updates say.
    pub fn with_state(mut self, st: &protocol::alert::AlertState) -> AlertView {
        self.status = st.status.as_str().to_string();
        self.detections = st.detections;
        self.case = st.case.map(|c| c.to_string());
        self
    }
}

/// A directive as the admin API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventView {
    pub id: String,
    pub origin: NodeId,
    pub seq: u64,
    pub scope: NodeId,
    pub kind: String,
    pub summary: String,
    pub hlc_ms: u64,
    pub received_at_us: u64,
}

impl EventView {
    pub fn from_stored(s: &StoredEvent) -> EventView {
        let summary = match &s.event.body {
            Body::Alert(a) => format!("{} {} camera {}", a.alert_type.code(), a.alert_type.zh(), a.camera),
            Body::Directive(d) => d.title.clone(),
            Body::Case(c) => format!("case {} {}", c.case, c.action.kind()),
            Body::AlertUpdate(u) => {
                let what = match &u.action {
                    protocol::alert::AlertAction::Confirm { .. } => "confirmed",
                    protocol::alert::AlertAction::Dismiss { .. } => "dismissed",
                    protocol::alert::AlertAction::Repeat { .. } => "repeated",
                };
                format!("alert {} {what}", u.alert)
            }
            Body::Registry(r) => crate::registry::summary(r),
            Body::SpotCheck(c) => {
                format!("spot check of {}: {}", c.canteen, if c.passed() { "passed" } else { "failed" })
            }
        };
        EventView {
            id: s.event.id().to_string(),
            origin: s.event.origin,
            seq: s.event.seq,
            scope: s.event.scope,
            kind: s.event.kind().as_str().to_string(),
            summary,
            hlc_ms: s.event.hlc.wall_ms,
            received_at_us: s.received_at_us,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ListParams {
    pub limit: Option<usize>,
    pub under: Option<String>,
    pub kind: Option<String>,
    /// Alerts only: new, confirmed or dismissed.
    pub status: Option<String>,
    /// Alerts only: still new this many hours after they were raised (DOMAIN.md: unhandled after
    /// 24 h, an alert goes to the county's queue).
    pub unhandled_hours: Option<u64>,
}

impl ListParams {
    fn query(&self, kind: Option<EventKind>) -> Result<EventQuery, String> {
        let under = match &self.under {
            Some(u) => Some(u.parse::<NodeId>().map_err(|e| e.to_string())?),
            None => None,
        };
        let kind = match self.kind.as_deref() {
            None => kind,
            Some("alert") => Some(EventKind::Alert),
            Some("directive") => Some(EventKind::Directive),
            Some(other) => return Err(format!("unknown event kind `{other}`; expected alert or directive")),
        };
        Ok(EventQuery { kind, under, limit: self.limit.unwrap_or(100) })
    }
}

async fn status(State(s): State<AdminState>) -> ApiResult<NodeStatus> {
    ractor::call_t!(s.node, NodeMsg::Status, ADMIN_CALL_TIMEOUT_MS).map(Json).map_err(internal)
}

/// Writes local events at this node (answered after the flush); a refusal is a 400 with the reason.
pub(crate) async fn append(
    s: &AdminState,
    items: Vec<(NodeId, Body)>,
) -> Result<Vec<StoredEvent>, (StatusCode, Json<ApiError>)> {
    let r =
        ractor::call_t!(s.store, |reply| StoreMsg::Append { items, reply }, ADMIN_CALL_TIMEOUT_MS).map_err(internal)?;
    r.map_err(bad)
}

async fn raise_alert(State(s): State<AdminState>, Json(req): Json<RaiseAlert>) -> ApiResult<AlertView> {
    if s.me.tier() != Tier::School {
        return Err(bad(format!("alerts are raised at schools; {} is a {}", s.me, s.me.tier())));
    }
    let alert = req.to_alert(crate::clock::unix_ms()).map_err(bad)?;
    let key = (alert.camera.clone(), alert.alert_type);
    let recent = if req.no_merge {
        None
    } else {
        let map = s.recent_alerts.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&key).copied().filter(|(_, at)| alert.detected_at_ms.abs_diff(*at) <= MERGE_WINDOW_MS)
    };
    if let Some((first, _)) = recent {
        // A repeat: one more detection of the alert already raised.
        let update = AlertUpdate { alert: first, action: AlertAction::Repeat { detected_at_ms: alert.detected_at_ms } };
        append(&s, vec![(s.me, Body::AlertUpdate(update))]).await?;
        // The window slides with each detection.
        s.recent_alerts.lock().unwrap_or_else(|e| e.into_inner()).insert(key, (first, alert.detected_at_ms));
        let (found, _) = crate::store::read_range(s.storage.as_ref(), first.origin, first.seq - 1, first.seq, 1)
            .map_err(internal)?;
        let stored = found.first().ok_or_else(|| internal("the merged alert is gone"))?;
        let view = AlertView::from_stored(stored).ok_or_else(|| internal("not an alert"))?;
        let st = crate::cases::alert_state(&s.store, first, view.detected_at_ms).await.map_err(internal)?;
        return Ok(Json(AlertView { merged: true, ..view.with_state(&st) }));
    }
    let stored = append(&s, vec![(s.me, Body::Alert(alert))]).await?;
    let view =
        stored.first().and_then(AlertView::from_stored).ok_or_else(|| internal("stored event is not an alert"))?;
    if !req.no_merge {
        let id = protocol::EventId { origin: view.school, seq: view.seq };
        s.recent_alerts.lock().unwrap_or_else(|e| e.into_inner()).insert(key, (id, view.detected_at_ms));
    }
    Ok(Json(view))
}

/// Many alerts in one request (a camera gateway's batch; the benchmark's load).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaiseAlerts {
    pub alerts: Vec<RaiseAlert>,
}

/// Most alerts in one batch request.
pub const RAISE_BATCH_MAX: usize = 10_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaisedBatch {
    pub count: usize,
    pub first_seq: u64,
    pub last_seq: u64,
}

async fn raise_alerts(State(s): State<AdminState>, Json(req): Json<RaiseAlerts>) -> ApiResult<RaisedBatch> {
    if s.me.tier() != Tier::School {
        return Err(bad(format!("alerts are raised at schools; {} is a {}", s.me, s.me.tier())));
    }
    if req.alerts.len() > RAISE_BATCH_MAX {
        return Err(bad(format!("{} alerts in one request; at most {RAISE_BATCH_MAX}", req.alerts.len())));
    }
    let now = crate::clock::unix_ms();
    let mut bodies = Vec::with_capacity(req.alerts.len());
    for (i, a) in req.alerts.iter().enumerate() {
        bodies.push(Body::Alert(a.to_alert(now).map_err(|e| bad(format!("alert #{}: {e}", i + 1)))?));
    }
    // One storage batch and one flush for the whole request.
    let stored = append(&s, bodies.into_iter().map(|b| (s.me, b)).collect()).await?;
    let count = stored.len();
    let first_seq = stored.first().map_or(0, |e| e.event.seq);
    let last_seq = stored.last().map_or(0, |e| e.event.seq);
    Ok(Json(RaisedBatch { count, first_seq, last_seq }))
}

async fn send_directive(State(s): State<AdminState>, Json(req): Json<SendDirective>) -> ApiResult<EventView> {
    let to: NodeId = req.to.parse().map_err(|e: topology::IdError| bad(e.to_string()))?;
    if !s.me.is_ancestor_or_self_of(to) {
        return Err(bad(format!("{} can only direct units in its own subtree; {to} is not", s.me)));
    }
    let body = Body::Directive(Directive { title: req.title, text: req.text });
    let stored = append(&s, vec![(to, body)]).await?;
    stored.first().map(|e| Json(EventView::from_stored(e))).ok_or_else(|| internal("nothing stored"))
}

/// Runs a read of this node's storage on the blocking pool, beside the store actor (which stays
/// the only writer): a listing over a month of a province's events never delays replication.
pub(crate) async fn read_storage<T: Send + 'static>(
    s: &AdminState,
    read: impl FnOnce(&dyn crate::storage::Storage) -> Result<T, String> + Send + 'static,
) -> Result<T, (StatusCode, Json<ApiError>)> {
    let storage = s.storage.clone();
    tokio::task::spawn_blocking(move || read(storage.as_ref())).await.map_err(internal)?.map_err(internal)
}

/// The admin API's alert listing, read from storage: the newest alerts matching `p`, each folded
/// with its verdicts and repeats. Without a status filter only the listed alerts' updates are
/// read (one index lookup each); with one, every update, since the filter needs every fold.
pub fn alert_views(
    storage: &dyn crate::storage::Storage,
    p: &ListParams,
    now_ms: u64,
) -> Result<Result<Vec<AlertView>, String>, crate::storage::StorageError> {
    let query = match p.query(Some(EventKind::Alert)) {
        Ok(q) => q,
        Err(e) => return Ok(Err(e)),
    };
    let filtered = p.status.is_some() || p.unhandled_hours.is_some();
    let fold = |e: &StoredEvent, ups: Option<&Vec<(NodeId, AlertAction)>>| -> Option<AlertView> {
        let v = AlertView::from_stored(e)?;
        Some(match ups {
            Some(ups) => v.with_state(&fold_alert(e.event.hlc.wall_ms, ups.iter().map(|(o, a)| (*o, a)))),
            None => v,
        })
    };
    let wanted = |v: &AlertView| {
        p.status.as_ref().is_none_or(|st| &v.status == st)
            && p.unhandled_hours
                .is_none_or(|h| v.status == "new" && v.raised_at_ms.saturating_add(h * 3_600_000) <= now_ms)
    };
    let own_updates = |e: &StoredEvent| crate::store::related(storage, EventKind::AlertUpdate, Some(e.event.id()));
    if !filtered {
        // Only the listed alerts' updates, one index lookup each.
        let events = crate::store::list_events(storage, &query)?;
        let mut views = Vec::with_capacity(events.len());
        for e in &events {
            views.extend(fold(e, updates_by_alert(own_updates(e)?).get(&e.event.id())));
        }
        return Ok(Ok(views));
    }
    // The views folded on the way (at most the budget's worth), so no alert's updates are read twice.
    let mut kept: HashMap<protocol::EventId, AlertView> = HashMap::new();
    // A common status ("new") fills the page from the newest alerts: fold them one at a time,
    // each from its own updates, for up to LAZY_FOLDS_PER_ROW alerts per row asked for.
    let limit = if query.limit == 0 { 100 } else { query.limit };
    let mut budget = limit.saturating_mul(LAZY_FOLDS_PER_ROW);
    let (mut gave_up, mut failed) = (false, None);
    let events = crate::store::list_events_where(storage, &query, |e| {
        if budget == 0 {
            gave_up = true;
            return None;
        }
        budget -= 1;
        let ups = match own_updates(e) {
            Ok(ups) => updates_by_alert(ups),
            Err(err) => {
                failed = Some(err);
                return None;
            }
        };
        let v = fold(e, ups.get(&e.event.id())).filter(|v| wanted(v));
        let keep = v.is_some();
        kept.extend(v.map(|v| (e.event.id(), v)));
        Some(keep)
    })?;
    if let Some(err) = failed {
        return Err(err);
    }
    if !gave_up {
        return Ok(Ok(events.iter().filter_map(|e| kept.remove(&e.event.id())).collect()));
    }
    // A rare status: fold every alert, all updates read first, then the newest matches (folded
    // again for the page rather than kept: the matches can be most of a month's alerts).
    let by = updates_by_alert(crate::store::related(storage, EventKind::AlertUpdate, None)?);
    let events = crate::store::list_events_where(storage, &query, |e| {
        Some(fold(e, by.get(&e.event.id())).is_some_and(|v| wanted(&v)))
    })?;
    Ok(Ok(events.iter().filter_map(|e| fold(e, by.get(&e.event.id()))).collect()))
}

/// A filtered alert listing folds alerts one by one (an index lookup each) for up to this many
/// alerts per row asked for, before it reads every alert's updates at once instead.
pub const LAZY_FOLDS_PER_ROW: usize = 20;

async fn list_alerts(State(s): State<AdminState>, Query(p): Query<ListParams>) -> ApiResult<Vec<AlertView>> {
    let now = s.clock.wall_ms();
    let views = read_storage(&s, move |st| alert_views(st, &p, now).map_err(|e| e.to_string())).await?;
    views.map(Json).map_err(bad)
}

async fn list_events(State(s): State<AdminState>, Query(p): Query<ListParams>) -> ApiResult<Vec<EventView>> {
    let query = p.query(None).map_err(bad)?;
    let events = read_storage(&s, move |st| crate::store::list_events(st, &query).map_err(|e| e.to_string())).await?;
    Ok(Json(events.iter().map(EventView::from_stored).collect()))
}

#[derive(Debug, Default, Deserialize)]
pub struct CursorParams {
    pub under: Option<String>,
}

/// How far this node holds each origin of a subtree (contiguous seq), e.g. "what does the
/// province hold of school X".
async fn cursors(State(s): State<AdminState>, Query(p): Query<CursorParams>) -> ApiResult<Vec<(NodeId, u64)>> {
    let root = match p.under {
        Some(u) => u.parse::<NodeId>().map_err(|e| bad(e.to_string()))?,
        None => s.me,
    };
    ractor::call_t!(s.store, |reply| StoreMsg::CursorsUnder { root, reply }, ADMIN_CALL_TIMEOUT_MS)
        .map(Json)
        .map_err(internal)
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/api/status", get(status))
        .route("/api/alerts", get(list_alerts).post(raise_alert))
        .route("/api/alerts/batch", post(raise_alerts))
        .route("/api/directives", post(send_directive))
        .route("/api/events", get(list_events))
        .route("/api/cursors", get(cursors))
        .merge(crate::cases::routes())
        .merge(crate::registry::routes())
        .merge(crate::spot::routes())
        .with_state(state)
}

/// Largest admin API answer the client reads (ureq's default stops at 10 MB).
const RESPONSE_BYTES_MAX: u64 = 1 << 30;

/// Blocking client for the CLI, the demo and tests.
#[derive(Clone, Debug)]
pub struct AdminClient {
    base: String,
    agent: ureq::Agent,
}

impl AdminClient {
    pub fn new(addr: SocketAddr) -> AdminClient {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(15)))
            .http_status_as_error(false)
            .build()
            .new_agent();
        AdminClient { base: format!("http://{addr}"), agent }
    }

    fn decode<T: for<'de> Deserialize<'de>>(&self, mut resp: ureq::http::Response<ureq::Body>) -> anyhow::Result<T> {
        let status = resp.status();
        // Listings can be large (the province holds every alert of the province).
        let text = resp.body_mut().with_config().limit(RESPONSE_BYTES_MAX).read_to_string()?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("unexpected answer from the node: {e}"));
        }
        let msg = serde_json::from_str::<ApiError>(&text).map(|e| e.error).unwrap_or(text);
        anyhow::bail!("{msg}")
    }

    fn unreachable(&self, e: ureq::Error) -> anyhow::Error {
        anyhow::anyhow!("cannot reach the node's admin API at {}: {e} (is the node running?)", self.base)
    }

    pub fn get<T: for<'de> Deserialize<'de>>(&self, path: &str) -> anyhow::Result<T> {
        let resp = self.agent.get(&format!("{}{path}", self.base)).call().map_err(|e| self.unreachable(e))?;
        self.decode(resp)
    }

    pub fn post<B: Serialize, T: for<'de> Deserialize<'de>>(&self, path: &str, body: &B) -> anyhow::Result<T> {
        let resp = self.agent.post(&format!("{}{path}", self.base)).send_json(body).map_err(|e| self.unreachable(e))?;
        self.decode(resp)
    }

    pub fn status(&self) -> anyhow::Result<NodeStatus> {
        self.get("/api/status")
    }

    pub fn raise_alert(&self, req: &RaiseAlert) -> anyhow::Result<AlertView> {
        self.post("/api/alerts", req)
    }

    pub fn raise_alerts(&self, alerts: Vec<RaiseAlert>) -> anyhow::Result<RaisedBatch> {
        self.post("/api/alerts/batch", &RaiseAlerts { alerts })
    }

    pub fn alerts(&self, limit: usize, under: Option<NodeId>) -> anyhow::Result<Vec<AlertView>> {
        self.alerts_where(limit, under, None, None)
    }

    /// The newest `limit` alerts with a status and/or still unhandled after some hours.
    pub fn alerts_where(
        &self,
        limit: usize,
        under: Option<NodeId>,
        status: Option<&str>,
        unhandled_hours: Option<u64>,
    ) -> anyhow::Result<Vec<AlertView>> {
        let mut path = format!("/api/alerts?limit={limit}");
        if let Some(u) = under {
            path.push_str(&format!("&under={u}"));
        }
        if let Some(st) = status {
            path.push_str(&format!("&status={st}"));
        }
        if let Some(h) = unhandled_hours {
            path.push_str(&format!("&unhandled_hours={h}"));
        }
        self.get(&path)
    }

    /// Contiguous cursors of every origin under `under` that the node holds.
    pub fn cursors(&self, under: NodeId) -> anyhow::Result<Vec<(NodeId, u64)>> {
        self.get(&format!("/api/cursors?under={under}"))
    }

    pub fn send_directive(&self, req: &SendDirective) -> anyhow::Result<EventView> {
        self.post("/api/directives", req)
    }

    pub fn events(&self, limit: usize) -> anyhow::Result<Vec<EventView>> {
        self.get(&format!("/api/events?limit={limit}"))
    }
}
