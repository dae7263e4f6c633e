//! Alerts: raising (with the 30-minute merge window), listing, and verdicts.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use protocol::alert::{AlertAction, AlertUpdate, fold_alert};
use protocol::registry::{Camera, EntityData};
use protocol::verdict::{Verdict, VerdictRefusal, verdict_items};
use protocol::{AlertRaised, AlertType, Body, EventId, EventKind, Severity, Zone};
use serde::{Deserialize, Serialize};
use topology::{NodeId, Tier};

use crate::api::AdminState;
use crate::api::kit::{
    ADMIN_CALL_TIMEOUT_MS, ApiError, ApiFail, ApiResult, api_err as err, append, append_marked, bad, internal, name_of,
    one_of, parse_limit, parse_under, read_fail, read_storage, refuse, write_fail,
};
use crate::api::principal::Principal;
use crate::runtime::reads::Reads;
use crate::runtime::store::open_alerts::open_alerts;
use crate::runtime::store::{
    EventQuery, LIST_LIMIT_MAX, StoreMsg, StoredEvent, WriteError, list_events, list_events_where, read_event, related,
};
use crate::storage::StorageError;
use protocol::people::{Action, Person};

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
pub async fn recent_alerts_from_store(me: NodeId, reads: &Reads, now_ms: u64) -> Result<RecentAlerts, StorageError> {
    let out = RecentAlerts::default();
    if me.tier() != Tier::School {
        return Ok(out);
    }
    let query = EventQuery { kind: Some(EventKind::Alert), under: Some(me), limit: RECENT_SCAN_MAX };
    let (alerts, updates) =
        reads.run(move |st| Ok((list_events(st, &query)?, related(st, EventKind::AlertUpdate, None)?))).await?;
    let by = updates_by_alert(updates);
    let mut map = out.lock().unwrap_or_else(|e| e.into_inner());
    // Oldest first, so the newest alert of a (camera, type) wins.
    for e in alerts.iter().rev() {
        let Body::Alert(a) = &e.event.body else { continue };
        let id = e.event.id();
        let ups = by.get(&id).map(Vec::as_slice).unwrap_or_default();
        let last = fold_alert(a.detected_at_ms, ups.iter().map(|(o, p, u)| (*o, p.as_ref(), u))).last_detected_ms;
        if now_ms.abs_diff(last) <= MERGE_WINDOW_MS {
            map.insert((a.camera.clone(), a.alert_type), (id, last));
        }
    }
    drop(map);
    Ok(out)
}

/// One update of an alert, owned: the writing node, the person there, the action.
type OwnedUpdate = (NodeId, Option<Person>, AlertAction);

/// Alert updates (verdicts, repeats) grouped by the alert they are about, each as
/// `(writer, person, action)` in the order given (event order, as the store returns them).
fn updates_by_alert(updates: Vec<StoredEvent>) -> HashMap<protocol::EventId, Vec<OwnedUpdate>> {
    let mut by: HashMap<protocol::EventId, Vec<OwnedUpdate>> = HashMap::new();
    for u in updates {
        if let Body::AlertUpdate(AlertUpdate { alert, action }) = u.event.body {
            by.entry(alert).or_default().push((u.event.origin, u.event.by, action));
        }
    }
    by
}

/// Most alerts [`recent_alerts_from_store`] reads (a school raises a handful a day).
pub const RECENT_SCAN_MAX: usize = 2_000;

impl RaiseAlert {
    /// The fields that can be checked without the node (type, zone, severity names), so a typo
    /// is reported before any call.
    pub fn check_fields(&self) -> Result<(), String> {
        let name = |e: protocol::alert::ParseNameError| e.to_string();
        self.alert_type.parse::<AlertType>().map_err(name)?;
        if let Some(z) = &self.zone {
            z.parse::<Zone>().map_err(name)?;
        }
        if let Some(s) = &self.severity {
            s.parse::<Severity>().map_err(name)?;
        }
        Ok(())
    }

    /// Parses the request into an alert body, with a clear message for each bad field. The
    /// canteen and zone are the registered camera's (`cameras` holds this school's cameras): an
    /// unregistered camera is refused with the command that registers it, and a request naming
    /// another canteen or zone than the camera's is refused.
    pub fn to_alert(&self, now_ms: u64, cameras: &BTreeMap<String, Camera>) -> Result<AlertRaised, String> {
        let alert_type: AlertType =
            self.alert_type.parse().map_err(|e: protocol::alert::ParseNameError| e.to_string())?;
        let Some(camera) = cameras.get(self.camera.trim()) else {
            return Err(format!(
                "摄像头“{cam}”未登记，请先登记：\
                 mingchu registry camera add --id {cam} --canteen <食堂> --name <名称> --zone <区域>",
                cam = self.camera.trim()
            ));
        };
        if let Some(z) = &self.zone {
            let zone: Zone = z.parse().map_err(|e: protocol::alert::ParseNameError| e.to_string())?;
            if zone != camera.zone {
                return Err(format!(
                    "摄像头“{}”登记在{}区（{}），不是{}区（{}）",
                    self.camera,
                    camera.zone.zh(),
                    camera.zone.as_str(),
                    zone.zh(),
                    zone.as_str()
                ));
            }
        }
        if let Some(c) = &self.canteen
            && *c != camera.canteen
        {
            return Err(format!("camera `{}` is in canteen `{}`, not `{c}`", self.camera, camera.canteen));
        }
        let zone = camera.zone;
        let severity: Severity = match &self.severity {
            Some(s) => s.parse().map_err(|e: protocol::alert::ParseNameError| e.to_string())?,
            None => alert_type.default_severity(zone),
        };
        let alert = AlertRaised {
            camera: self.camera.trim().to_string(),
            canteen: camera.canteen.clone(),
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

/// The cameras registered at school `me`, by id, for the alerts naming `wanted` cameras. A school
/// whose fresh data dir is still being restored from its ancestors does not know its cameras yet:
/// when one is missing, that is said (503), not that the camera is unregistered. The store is
/// asked only then, so a raise costs no extra round trip through its mailbox.
pub async fn cameras_of<'a>(
    s: &AdminState,
    mut wanted: impl Iterator<Item = &'a str>,
) -> Result<BTreeMap<String, Camera>, ApiFail> {
    let registry = s.reads.registry_of_now(s.me).map_err(read_fail)?;
    let cameras: BTreeMap<String, Camera> = registry
        .values()
        .filter_map(|e| match &e.data {
            EntityData::Camera(c) if e.entity.node == s.me => Some((e.entity.id.clone(), c.clone())),
            _ => None,
        })
        .collect();
    if wanted.any(|c| !cameras.contains_key(c.trim())) {
        let stats = ractor::call_t!(s.store, StoreMsg::Stats, ADMIN_CALL_TIMEOUT_MS)
            .map_err(|e| write_fail(WriteError::Unavailable(e.to_string())))?;
        if stats.restoring {
            return Err(write_fail(WriteError::Restoring(format!(
                "{} 正在恢复数据：数据目录是新的，还没有联系上任何上级来告知它以前写过什么（登记册，\
                 包括摄像头，会随之恢复）；联系上之后才能在本节点写入",
                s.me
            ))));
        }
    }
    Ok(cameras)
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
    /// The school's name (from the topology), beside its code.
    #[serde(default)]
    pub school_name: String,
    /// The detection's snapshot reference (a file at the school, see the files plane).
    #[serde(default)]
    pub snapshot: String,
    #[serde(default)]
    pub severity_zh: String,
    #[serde(default)]
    pub zone_zh: String,
    /// `detected_at_ms` and `raised_at_ms` in RFC 3339, China time.
    #[serde(default)]
    pub detected_at: String,
    #[serde(default)]
    pub raised_at: String,
    /// Who gave the verdict, and its note (confirmed) or reason (dismissed: 误报).
    #[serde(default)]
    pub verdict_by: Option<NodeId>,
    /// The person at `verdict_by` who gave it (`None`: the node's operator).
    #[serde(default)]
    pub verdict_person: Option<Person>,
    #[serde(default)]
    pub verdict_text: String,
    /// The school's own dismissal that a supervisor overturned (who, and why it had dismissed).
    #[serde(default)]
    pub overturned: Option<protocol::alert::Overturned>,
    /// Unjudged past the settings' hours, it moved to this unit's queue (the county).
    #[serde(default)]
    pub escalated_to: Option<NodeId>,
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
            school_name: String::new(),
            snapshot: a.snapshot.clone(),
            severity_zh: a.severity.zh().to_string(),
            zone_zh: a.zone.zh().to_string(),
            detected_at: protocol::calendar::rfc3339(a.detected_at_ms),
            raised_at: protocol::calendar::rfc3339(s.event.hlc.wall_ms),
            verdict_by: None,
            verdict_person: None,
            verdict_text: String::new(),
            overturned: None,
            escalated_to: None,
        })
    }

    /// With the school's name.
    pub fn named(mut self, s: &AdminState) -> AlertView {
        self.school_name = name_of(s, self.school);
        self
    }

    /// Adds what the alert's updates say.
    pub fn with_state(mut self, st: &protocol::alert::AlertState) -> AlertView {
        self.status = st.status.as_str().to_string();
        self.detections = st.detections;
        self.case = st.case.map(|c| c.to_string());
        self.verdict_by = st.decided_by;
        self.verdict_person = st.decided_by_person.clone();
        self.verdict_text = st.verdict_text.clone();
        self.overturned = st.overturned.clone();
        self.escalated_to = st.escalated_to;
        self
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ListParams {
    /// 1 to [`LIST_LIMIT_MAX`], or `all`; default [`LIMIT_DEFAULT`].
    pub limit: Option<String>,
    pub under: Option<String>,
    /// Events only: one event kind (`alert`, `directive`, `case`, …).
    pub kind: Option<String>,
    /// Alerts only: new, confirmed or dismissed.
    pub status: Option<String>,
    /// Alerts only: still new this many hours after they were raised (DOMAIN.md: unhandled after
    /// 24 h, an alert goes to the county's queue).
    pub unhandled_hours: Option<u64>,
}

/// The statuses an alert listing filters on.
pub const ALERT_STATUSES: [&str; 3] = ["new", "confirmed", "dismissed"];

impl ListParams {
    /// The store query these parameters ask for (`kind` unless the parameters name one).
    pub fn query(&self, kind: Option<EventKind>) -> Result<EventQuery, ApiFail> {
        let under = parse_under(self.under.as_deref())?;
        let kind = match self.kind.as_deref().map(str::trim) {
            None | Some("") => kind,
            Some(k) => {
                let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                let name = one_of("kind", k, &names)?;
                EventKind::ALL.into_iter().find(|e| e.as_str() == name)
            }
        };
        if let Some(st) = self.status.as_deref() {
            one_of("status", st.trim(), &ALERT_STATUSES)?;
        }
        let limit = parse_limit(self.limit.as_deref(), LIST_LIMIT_MAX)?;
        Ok(EventQuery { kind, under, limit })
    }
}

async fn raise_alert(State(s): State<AdminState>, who: Principal, Json(req): Json<RaiseAlert>) -> ApiResult<AlertView> {
    who.require(&s, Action::JudgeAlert).await?;
    raise_as(&s, who.person(), &req, Vec::new()).await.map(Json)
}

/// Raises an alert at this school — the one domain function behind the admin API's
/// `POST /api/alerts` (the caller checked the person's permission) and a device's detection (the
/// intake checked the device's token and cameras): the camera must be registered here; a repeat
/// of the same camera and type within [`MERGE_WINDOW_MS`] becomes one more detection of the alert
/// already raised (unless `no_merge`). `by` is recorded in the event (`None`: the node's operator,
/// or a device). Each of `marks` is set, in the same atomic batch as what is written, to the
/// first written event (see [`StoreMsg::AppendMarked`]): a device's detection id.
pub async fn raise_as(
    s: &AdminState,
    by: Option<Person>,
    req: &RaiseAlert,
    marks: Vec<(crate::runtime::store::LocalSpace, Vec<u8>)>,
) -> Result<AlertView, ApiFail> {
    if s.me.tier() != Tier::School {
        return Err(bad(format!("告警只能在学校节点上发出；{} 不是学校", s.me)));
    }
    let cameras = cameras_of(s, std::iter::once(req.camera.as_str())).await?;
    let alert = req.to_alert(s.clock.wall_ms(), &cameras).map_err(bad)?;
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
        append_marked(s, by, vec![(s.me, Body::AlertUpdate(update))], marks).await?;
        // The window slides with each detection.
        s.recent_alerts.lock().unwrap_or_else(|e| e.into_inner()).insert(key, (first, alert.detected_at_ms));
        let stored = read_event(s.reads.storage(), first).map_err(internal)?;
        let stored = stored.ok_or_else(|| internal("the merged alert is gone"))?;
        let view = AlertView::from_stored(&stored).ok_or_else(|| internal("not an alert"))?;
        let st = alert_state(&s.reads, first, view.detected_at_ms).await.map_err(read_fail)?;
        return Ok(AlertView { merged: true, ..view.with_state(&st).named(s) });
    }
    let stored = append_marked(s, by, vec![(s.me, Body::Alert(alert))], marks).await?;
    let view =
        stored.first().and_then(AlertView::from_stored).ok_or_else(|| internal("stored event is not an alert"))?;
    if !req.no_merge {
        let id = protocol::EventId { origin: view.school, seq: view.seq };
        s.recent_alerts.lock().unwrap_or_else(|e| e.into_inner()).insert(key, (id, view.detected_at_ms));
    }
    Ok(view.named(s))
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

async fn raise_alerts(
    State(s): State<AdminState>,
    who: Principal,
    Json(req): Json<RaiseAlerts>,
) -> ApiResult<RaisedBatch> {
    who.require(&s, Action::JudgeAlert).await?;
    if s.me.tier() != Tier::School {
        return Err(bad(format!("告警只能在学校节点上发出；{} 不是学校", s.me)));
    }
    if req.alerts.len() > RAISE_BATCH_MAX {
        return Err(bad(format!("一次请求含 {} 条告警，最多 {RAISE_BATCH_MAX} 条", req.alerts.len())));
    }
    let now = s.clock.wall_ms();
    let cameras = cameras_of(&s, req.alerts.iter().map(|a| a.camera.as_str())).await?;
    let mut bodies = Vec::with_capacity(req.alerts.len());
    for (i, a) in req.alerts.iter().enumerate() {
        bodies.push(Body::Alert(a.to_alert(now, &cameras).map_err(|e| bad(format!("alert #{}: {e}", i + 1)))?));
    }
    // One storage batch and one flush for the whole request.
    let stored = append(&s, who.person(), bodies.into_iter().map(|b| (s.me, b)).collect()).await?;
    let count = stored.len();
    let first_seq = stored.first().map_or(0, |e| e.event.seq);
    let last_seq = stored.last().map_or(0, |e| e.event.seq);
    Ok(Json(RaisedBatch { count, first_seq, last_seq }))
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
        Err(e) => return Ok(Err(e.1.0.error)),
    };
    let filtered = p.status.is_some() || p.unhandled_hours.is_some();
    let fold = |e: &StoredEvent, ups: Option<&Vec<OwnedUpdate>>| -> Option<AlertView> {
        let v = AlertView::from_stored(e)?;
        Some(match ups {
            Some(ups) => {
                v.with_state(&fold_alert(e.event.hlc.wall_ms, ups.iter().map(|(o, p, a)| (*o, p.as_ref(), a))))
            }
            None => v,
        })
    };
    let wanted = |v: &AlertView| {
        p.status.as_ref().is_none_or(|st| v.status == st.trim())
            && p.unhandled_hours
                .is_none_or(|h| v.status == "new" && v.raised_at_ms.saturating_add(h * 3_600_000) <= now_ms)
    };
    if !filtered {
        // Only the listed alerts' updates, one index lookup each.
        let events = list_events(storage, &query)?;
        let mut views = Vec::with_capacity(events.len());
        for e in &events {
            views.extend(folded_alert(storage, e)?);
        }
        return Ok(Ok(views));
    }
    // Still waiting for a verdict: the store's index of open alerts lists them directly.
    let wants_open = match p.status.as_deref().map(str::trim) {
        Some("new") => true,
        None => p.unhandled_hours.is_some(),
        Some(_) => false,
    };
    if wants_open {
        let before = p.unhandled_hours.map_or(u64::MAX, |h| now_ms.saturating_sub(h.saturating_mul(3_600_000)));
        let mut views = Vec::new();
        for id in open_alerts(storage, query.under, before, query.limit)? {
            let Some(e) = read_event(storage, id)? else { continue };
            views.extend(folded_alert(storage, &e)?.filter(|v| wanted(v)));
        }
        return Ok(Ok(views));
    }
    // The views folded on the way (at most the budget's worth), so no alert's updates are read twice.
    let mut kept: HashMap<protocol::EventId, AlertView> = HashMap::new();
    // A common status ("new") fills the page from the newest alerts: fold them one at a time,
    // each from its own updates, for up to LAZY_FOLDS_PER_ROW alerts per row asked for.
    let mut budget = query.limit.saturating_mul(LAZY_FOLDS_PER_ROW);
    let (mut gave_up, mut failed) = (false, None);
    let events = list_events_where(storage, &query, |e| {
        if budget == 0 {
            gave_up = true;
            return None;
        }
        budget -= 1;
        let v = match folded_alert(storage, e) {
            Ok(v) => v.filter(|v| wanted(v)),
            Err(err) => {
                failed = Some(err);
                return None;
            }
        };
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
    let by = updates_by_alert(related(storage, EventKind::AlertUpdate, None)?);
    let events =
        list_events_where(storage, &query, |e| Some(fold(e, by.get(&e.event.id())).is_some_and(|v| wanted(&v))))?;
    Ok(Ok(events.iter().filter_map(|e| fold(e, by.get(&e.event.id()))).collect()))
}

/// The alerts of this subtree that their own school dismissed and no supervisor overturned,
/// newest dismissal first (what a county reviews), at most `limit`, each folded.
pub fn self_dismissed_views(
    storage: &dyn crate::storage::Storage,
    limit: usize,
) -> Result<Vec<AlertView>, StorageError> {
    let mut views = Vec::new();
    for id in crate::runtime::store::open_alerts::self_dismissed(storage, None, limit)? {
        let Some(e) = read_event(storage, id)? else { continue };
        views.extend(folded_alert(storage, &e)?);
    }
    Ok(views)
}

/// A stored alert as listed, folded with its own updates (one index lookup); `None` if the event
/// is not an alert.
fn folded_alert(storage: &dyn crate::storage::Storage, e: &StoredEvent) -> Result<Option<AlertView>, StorageError> {
    let id = e.event.id();
    let ups = updates_by_alert(related(storage, EventKind::AlertUpdate, Some(id))?);
    Ok(AlertView::from_stored(e).map(|v| match ups.get(&id) {
        Some(ups) => v.with_state(&fold_alert(e.event.hlc.wall_ms, ups.iter().map(|(o, p, a)| (*o, p.as_ref(), a)))),
        None => v,
    }))
}

/// A filtered alert listing folds alerts one by one (an index lookup each) for up to this many
/// alerts per row asked for, before it reads every alert's updates at once instead.
pub const LAZY_FOLDS_PER_ROW: usize = 20;

async fn list_alerts(
    State(s): State<AdminState>,
    who: Principal,
    Query(p): Query<ListParams>,
) -> ApiResult<Vec<AlertView>> {
    who.require(&s, Action::ViewSubtree).await?;
    let now = s.clock.wall_ms();
    let views = read_storage(&s, move |st| alert_views(st, &p, now)).await?.map_err(bad)?;
    Ok(Json(views.into_iter().map(|v| v.named(&s)).collect()))
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
    match read_event(s.reads.storage(), id).map_err(internal)? {
        Some(e) if matches!(e.event.body, Body::Alert(_)) => Ok(e),
        _ => Err(err(StatusCode::NOT_FOUND, format!("{} 没有告警 {id}", s.me))),
    }
}

/// `GET /api/alerts/{id}`: one alert with its verdict, note or reason, and case.
async fn show_alert(State(s): State<AdminState>, who: Principal, Path(id): Path<String>) -> ApiResult<AlertView> {
    who.require(&s, Action::ViewSubtree).await?;
    let id = parse_event_id(&id)?;
    who.require_in_scope(&s, id.origin).await?;
    let stored = alert_event(&s, id).await?;
    let view = AlertView::from_stored(&stored).ok_or_else(|| internal("not an alert"))?;
    let st = alert_state(&s.reads, id, view.detected_at_ms).await.map_err(read_fail)?;
    Ok(Json(view.with_state(&st).named(&s)))
}

/// The alert's state folded from its updates.
pub async fn alert_state(
    reads: &Reads,
    id: EventId,
    detected_at_ms: u64,
) -> Result<protocol::alert::AlertState, StorageError> {
    let updates = reads.related(EventKind::AlertUpdate, Some(id)).await?;
    Ok(fold_alert(
        detected_at_ms,
        updates.iter().filter_map(|u| match &u.event.body {
            Body::AlertUpdate(AlertUpdate { action, .. }) => Some((u.event.origin, u.event.by.as_ref(), action)),
            _ => None,
        }),
    ))
}

fn parse_event_id(id: &str) -> Result<EventId, (StatusCode, Json<ApiError>)> {
    id.parse::<EventId>().map_err(|e| bad(format!("“{id}”不是告警编号：{e}")))
}

/// Which verdict a request gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerdictKind {
    Confirm,
    Dismiss,
    /// A supervisor overturns the school's own dismissal.
    Overturn,
}

pub async fn verdict(
    s: &AdminState,
    who: &Principal,
    id: &str,
    kind: VerdictKind,
    req: AlertVerdict,
) -> ApiResult<AlertStateView> {
    who.require(s, Action::JudgeAlert).await?;
    let id = parse_event_id(id)?;
    who.require_in_scope(s, id.origin).await?;
    let stored = alert_event(s, id).await?;
    let Body::Alert(alert) = &stored.event.body else { return Err(internal("not an alert")) };
    let current = alert_state(&s.reads, id, alert.detected_at_ms).await.map_err(read_fail)?;
    let rules = s.reads.case_rules_for(id.origin).await.map_err(read_fail)?;
    if req.open_case {
        who.require(s, Action::SuperviseCase).await?;
    }
    let verdict = match kind {
        VerdictKind::Confirm => Verdict::Confirm { note: req.note, open_case: req.open_case },
        VerdictKind::Dismiss => Verdict::Dismiss { reason: req.reason },
        VerdictKind::Overturn => Verdict::Overturn { reason: req.reason },
    };
    let items = match verdict_items(s.me, id, alert, &current, verdict, &rules, s.clock.wall_ms()) {
        Ok(items) => items,
        Err(VerdictRefusal::Invalid(why)) => return Err(bad(why)),
        Err(VerdictRefusal::Forbidden(why)) => return Err(refuse(s, StatusCode::FORBIDDEN, why).await),
        Err(VerdictRefusal::Conflict(why)) => return Err(refuse(s, StatusCode::CONFLICT, why).await),
    };
    append(s, who.person(), items).await?;
    let state = alert_state(&s.reads, id, alert.detected_at_ms).await.map_err(read_fail)?;
    Ok(Json(AlertStateView { id: id.to_string(), state }))
}

async fn confirm(
    State(s): State<AdminState>,
    who: Principal,
    Path(id): Path<String>,
    Json(req): Json<AlertVerdict>,
) -> ApiResult<AlertStateView> {
    verdict(&s, &who, &id, VerdictKind::Confirm, req).await
}

async fn dismiss(
    State(s): State<AdminState>,
    who: Principal,
    Path(id): Path<String>,
    Json(req): Json<AlertVerdict>,
) -> ApiResult<AlertStateView> {
    verdict(&s, &who, &id, VerdictKind::Dismiss, req).await
}

async fn overturn(
    State(s): State<AdminState>,
    who: Principal,
    Path(id): Path<String>,
    Json(req): Json<AlertVerdict>,
) -> ApiResult<AlertStateView> {
    verdict(&s, &who, &id, VerdictKind::Overturn, req).await
}

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/alerts", get(list_alerts).post(raise_alert))
        .route("/api/alerts/batch", post(raise_alerts))
        .route("/api/alerts/{id}", get(show_alert))
        .route("/api/alerts/{id}/confirm", post(confirm))
        .route("/api/alerts/{id}/dismiss", post(dismiss))
        .route("/api/alerts/{id}/overturn", post(overturn))
}
