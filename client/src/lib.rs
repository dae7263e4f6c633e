//! The blocking client of a node's admin API (for the CLI, the harness and tests), and the text
//! rendering of what a node answers (`render`).

pub mod render;
pub mod tree;

use std::net::SocketAddr;
use std::time::Duration;

use node::api::alerts::{AlertStateView, AlertVerdict, AlertView, RaiseAlert, RaiseAlerts, RaisedBatch};
use node::api::cases::{CaseView, OpenCase, StepRequest};
use node::api::directives::{DirectiveView, EventView, SendDirective};
use node::api::draw::{DrawVerified, DrawView};
use node::api::kit::ApiError;
use node::api::registry::{EntityView, RegistryRequest, RegistryWritten};
use node::api::spot::{RateView, RecordSpotCheck, SpotCheckRecorded, SpotCheckView};
use node::api::status::{AdvanceClock, ClockView};
use node::runtime::root::NodeStatus;
use protocol::case::CaseState;
use protocol::draw::{DrawInputs, DrawSettings};
use protocol::registry::EntityKind;
use serde::{Deserialize, Serialize};
use topology::NodeId;

/// Largest admin API answer the client reads (ureq's default stops at 10 MB).
const RESPONSE_BYTES_MAX: u64 = 1 << 30;

/// Why a call to a node failed: it refused (with the HTTP status of the refusal) or could not be
/// reached. Carried inside the `anyhow::Error` the client returns; the CLI maps it to exit codes.
#[derive(Debug)]
pub enum CallError {
    Refused {
        status: u16,
        message: String,
    },
    Unreachable(String),
    /// Another node (or program) answered at the address.
    WrongNode(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Refused { message, .. } => f.write_str(message),
            CallError::Unreachable(m) | CallError::WrongNode(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CallError {}

/// Blocking client for the CLI, the demo and tests.
#[derive(Clone, Debug)]
pub struct AdminClient {
    base: String,
    /// Where the node keeps its token (read at every call: a restarted node has a new one).
    token_path: std::path::PathBuf,
    agent: ureq::Agent,
    /// The node this client means to talk to: every answer must come from it.
    expect: Option<NodeId>,
    /// The account of the node it acts as (sent in `x-mingchu-account`); `None`: the operator.
    account: Option<String>,
}

impl AdminClient {
    pub fn new(addr: SocketAddr) -> AdminClient {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(15)))
            .http_status_as_error(false)
            .build()
            .new_agent();
        AdminClient {
            base: format!("http://{addr}"),
            agent,
            expect: None,
            account: None,
            token_path: node::config::admin_token_path(addr),
        }
    }

    /// Acts as `account` (an account of the node): the node records that person in every step
    /// and checks what their role may do.
    pub fn acting_as(mut self, account: &str) -> AdminClient {
        self.account = Some(account.to_string());
        self
    }

    /// A request with the token and, when acting as an account, its name.
    fn with_auth<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        let req = req.header("authorization", &self.authorization());
        match &self.account {
            Some(a) => req.header(node::api::principal::ACCOUNT_HEADER, a),
            None => req,
        }
    }

    /// Refuses every answer that does not come from `node` (its admin API names itself in the
    /// `x-mingchu-node` header): a stale topology or a port reused by another node is caught
    /// before its answer is shown or acted on.
    pub fn expecting(mut self, node: NodeId) -> AdminClient {
        self.expect = Some(node);
        self
    }

    fn decode<T: for<'de> Deserialize<'de>>(&self, mut resp: ureq::http::Response<ureq::Body>) -> anyhow::Result<T> {
        let status = resp.status();
        if let Some(want) = self.expect {
            let said = resp.headers().get(node::api::NODE_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
            if said.as_deref() != Some(want.to_string().as_str()) {
                return Err(CallError::WrongNode(format!(
                    "{} 处应答的是节点 {}，不是所要的 {want}（拓扑文件过期，或端口被别的节点占用？） / the admin API at {} \
                     answered as {}, not {want}",
                    self.base,
                    said.as_deref().unwrap_or("?"),
                    self.base,
                    said.as_deref().unwrap_or("an unknown program"),
                ))
                .into());
            }
        }
        // Listings can be large (the province holds every alert of the province).
        let text = resp.body_mut().with_config().limit(RESPONSE_BYTES_MAX).read_to_string()?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("unexpected answer from the node: {e}"));
        }
        let message = serde_json::from_str::<ApiError>(&text).map(|e| e.error).unwrap_or(text);
        Err(CallError::Refused { status: status.as_u16(), message }.into())
    }

    fn unreachable(&self, e: ureq::Error) -> anyhow::Error {
        CallError::Unreachable(format!(
            "cannot reach the node's admin API at {}: {e} (is the node running?)",
            self.base
        ))
        .into()
    }

    /// `Bearer <token>` from the node's token file (empty when it cannot be read: the node then
    /// refuses with 401 and says why).
    fn authorization(&self) -> String {
        let token = std::fs::read_to_string(&self.token_path).unwrap_or_default();
        format!("Bearer {}", token.trim())
    }

    pub fn get<T: for<'de> Deserialize<'de>>(&self, path: &str) -> anyhow::Result<T> {
        let resp = self.agent.get(&format!("{}{path}", self.base));
        let resp = self.with_auth(resp).call().map_err(|e| self.unreachable(e))?;
        self.decode(resp)
    }

    pub fn post<B: Serialize, T: for<'de> Deserialize<'de>>(&self, path: &str, body: &B) -> anyhow::Result<T> {
        let resp = self.agent.post(&format!("{}{path}", self.base));
        let resp = self.with_auth(resp).send_json(body).map_err(|e| self.unreachable(e))?;
        self.decode(resp)
    }

    /// Uploads a file (a snapshot or an evidence photo) to the node: its reference `sha256:…`.
    pub fn upload_file(&self, kind: &str, bytes: &[u8]) -> anyhow::Result<node::api::files::Stored> {
        let resp = self.agent.post(&format!("{}/api/files?kind={kind}", self.base));
        let resp = self
            .with_auth(resp)
            .header("content-type", "application/octet-stream")
            .send(bytes)
            .map_err(|e| self.unreachable(e))?;
        self.decode(resp)
    }

    /// A file held at `holder` (this node or below it), fetched through the tree if need be:
    /// its content type and bytes. A refusal carries its status: 404 missing, 503 unavailable.
    pub fn file(&self, file: &str, holder: NodeId) -> anyhow::Result<(String, Vec<u8>)> {
        let resp = self.agent.get(&format!("{}/api/files/{file}?holder={holder}", self.base));
        let mut resp = self.with_auth(resp).call().map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        if !status.is_success() {
            return self.decode::<()>(resp).map(|_| (String::new(), Vec::new()));
        }
        let kind = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let bytes = resp.body_mut().with_config().limit(RESPONSE_BYTES_MAX).read_to_vec()?;
        Ok((kind, bytes))
    }

    pub fn status(&self) -> anyhow::Result<NodeStatus> {
        self.get("/api/status")
    }

    /// The subtree's health (`under`: only that unit's part; `problems`: only what is not fine).
    pub fn health(&self, under: Option<NodeId>, problems: bool) -> anyhow::Result<node::api::health::HealthView> {
        let mut q = Vec::new();
        if let Some(u) = under {
            q.push(format!("under={u}"));
        }
        if problems {
            q.push("problems=true".to_string());
        }
        let path = if q.is_empty() { "/api/health".to_string() } else { format!("/api/health?{}", q.join("&")) };
        self.get(&path)
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

    /// The newest `limit` directives the node holds (filtered on the node, before the limit).
    pub fn directives(&self, limit: usize) -> anyhow::Result<Vec<DirectiveView>> {
        self.get(&format!("/api/directives?limit={limit}"))
    }

    pub fn events(&self, limit: usize) -> anyhow::Result<Vec<EventView>> {
        self.get(&format!("/api/events?limit={limit}"))
    }
}

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

    /// Creates or changes an account of the node.
    pub fn add_account(
        &self,
        req: &node::api::accounts::AccountRequest,
    ) -> anyhow::Result<node::api::accounts::AccountView> {
        self.post("/api/accounts", req)
    }

    /// The accounts the node holds (directory entries, no secrets).
    pub fn accounts(&self, under: Option<NodeId>) -> anyhow::Result<Vec<node::api::accounts::AccountView>> {
        match under {
            Some(u) => self.get(&format!("/api/accounts?under={u}")),
            None => self.get("/api/accounts"),
        }
    }

    /// Checks an account's password at its node.
    pub fn sign_in(&self, req: &node::api::accounts::SignIn) -> anyhow::Result<node::api::accounts::AccountView> {
        self.post("/api/sign-in", req)
    }

    /// The node's audit log, newest first.
    pub fn audit(&self, limit: usize) -> anyhow::Result<Vec<node::api::accounts::AuditRecord>> {
        self.get(&format!("/api/audit?limit={limit}"))
    }

    /// One alert, with its verdict and case.
    pub fn alert(&self, id: &str) -> anyhow::Result<AlertView> {
        self.get(&format!("/api/alerts/{}", id.replace('#', "%23")))
    }

    pub fn confirm_alert(&self, id: &str, v: &AlertVerdict) -> anyhow::Result<AlertStateView> {
        self.post(&format!("/api/alerts/{}/confirm", id.replace('#', "%23")), v)
    }

    /// A supervisor overturns the school's own dismissal (`reason` in `v.reason`).
    pub fn overturn_alert(&self, id: &str, v: &AlertVerdict) -> anyhow::Result<AlertStateView> {
        self.post(&format!("/api/alerts/{}/overturn", id.replace('#', "%23")), v)
    }

    pub fn dismiss_alert(&self, id: &str, v: &AlertVerdict) -> anyhow::Result<AlertStateView> {
        self.post(&format!("/api/alerts/{}/dismiss", id.replace('#', "%23")), v)
    }

    pub fn advance_clock(&self, by: Duration) -> anyhow::Result<ClockView> {
        self.post("/api/clock/advance", &AdvanceClock { ms: by.as_millis() as u64 })
    }
}

impl AdminClient {
    /// The school's devices (never their tokens).
    pub fn devices(&self) -> anyhow::Result<Vec<node::api::devices::DeviceView>> {
        self.get("/api/devices")
    }

    /// Registers a device of the school; the answer holds its token (shown once).
    pub fn add_device(&self, req: &node::api::devices::AddDevice) -> anyhow::Result<node::api::devices::DeviceToken> {
        self.post("/api/devices", req)
    }

    /// Revokes a device: its token stops working at once.
    pub fn revoke_device(&self, id: &str) -> anyhow::Result<node::api::devices::DeviceView> {
        self.post(&format!("/api/devices/{}/revoke", path_segment(id)), &serde_json::json!({}))
    }

    /// Gives a device a new token (in the answer, shown once); the old one stops working.
    pub fn rotate_device(&self, id: &str) -> anyhow::Result<node::api::devices::DeviceToken> {
        self.post(&format!("/api/devices/{}/rotate", path_segment(id)), &serde_json::json!({}))
    }

    /// The school's cameras with their online state.
    pub fn cameras(&self) -> anyhow::Result<node::api::devices::CamerasView> {
        self.get("/api/cameras")
    }
}

/// A value as one segment of a path (an id a person typed may hold anything).
fn path_segment(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl AdminClient {
    /// The registry the node holds, optionally one kind, optionally only entities under `under`.
    pub fn registry(&self, kind: Option<EntityKind>, under: Option<NodeId>) -> anyhow::Result<Vec<EntityView>> {
        let mut path = "/api/registry?".to_string();
        if let Some(k) = kind {
            path.push_str(&format!("kind={k}&"));
        }
        if let Some(u) = under {
            path.push_str(&format!("under={u}"));
        }
        self.get(&path)
    }

    /// The settings in force for `unit` (default: the node), and where they come from.
    pub fn settings(&self, unit: Option<NodeId>) -> anyhow::Result<node::api::registry::SettingsView> {
        match unit {
            Some(u) => self.get(&format!("/api/settings?unit={u}")),
            None => self.get("/api/settings"),
        }
    }

    /// Upserts or removes an entity the node owns.
    pub fn registry_write(&self, req: &RegistryRequest) -> anyhow::Result<RegistryWritten> {
        self.post("/api/registry", req)
    }
}

/// A listing's query string.
fn query_string(under: Option<NodeId>, day: Option<&str>, month: Option<&str>, limit: Option<usize>) -> String {
    let mut q = Vec::new();
    if let Some(u) = under {
        q.push(format!("under={u}"));
    }
    if let Some(d) = day {
        q.push(format!("day={d}"));
    }
    if let Some(m) = month {
        q.push(format!("month={m}"));
    }
    if let Some(l) = limit {
        q.push(format!("limit={l}"));
    }
    q.join("&")
}

impl AdminClient {
    pub fn spot_check(&self, req: &RecordSpotCheck) -> anyhow::Result<SpotCheckRecorded> {
        self.post("/api/spot-checks", req)
    }

    pub fn spot_checks(
        &self,
        under: Option<NodeId>,
        day: Option<&str>,
        month: Option<&str>,
        limit: usize,
    ) -> anyhow::Result<Vec<SpotCheckView>> {
        self.get(&format!("/api/spot-checks?{}", query_string(under, day, month, Some(limit))))
    }

    pub fn pass_rates(
        &self,
        under: Option<NodeId>,
        day: Option<&str>,
        month: Option<&str>,
    ) -> anyhow::Result<Vec<RateView>> {
        self.get(&format!("/api/spot-checks/rates?{}", query_string(under, day, month, None)))
    }

    /// The province's draw of `day` (default: today; today's is drawn on first asking).
    pub fn spot_draw(&self, day: Option<&str>) -> anyhow::Result<DrawView> {
        self.get(&format!("/api/spot-draw{}", day_query(day)))
    }

    /// Re-runs the kept draw of `day` from its inputs.
    pub fn spot_draw_verify(&self, day: Option<&str>) -> anyhow::Result<DrawVerified> {
        self.get(&format!("/api/spot-draw/verify{}", day_query(day)))
    }

    /// The inputs of the kept draw of `day`, in full.
    pub fn spot_draw_inputs(&self, day: Option<&str>) -> anyhow::Result<DrawInputs> {
        self.get(&format!("/api/spot-draw/inputs{}", day_query(day)))
    }

    pub fn draw_settings(&self) -> anyhow::Result<DrawSettings> {
        self.get("/api/spot-draw/settings")
    }

    pub fn set_draw_settings(&self, settings: &DrawSettings) -> anyhow::Result<DrawSettings> {
        let resp = self.agent.put(&format!("{}/api/spot-draw/settings", self.base));
        let resp = self.with_auth(resp).send_json(settings).map_err(|e| self.unreachable(e))?;
        self.decode(resp)
    }
}

/// Appends `key=value` to a query string when the value is there.
fn push_param(q: &mut Vec<String>, key: &str, value: Option<impl std::fmt::Display>) {
    if let Some(v) = value {
        q.push(format!("{key}={v}"));
    }
}

fn with_query(path: &str, q: &[String]) -> String {
    if q.is_empty() { path.to_string() } else { format!("{path}?{}", q.join("&")) }
}

/// Which ledger records to list (`GET /api/ledger`). Dates are `2026-12-01`.
#[derive(Clone, Debug, Default)]
pub struct LedgerQuery {
    pub school: Option<NodeId>,
    pub kind: Option<protocol::ledger::LedgerKind>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub voided: bool,
}

/// Which warnings to list (`GET /api/warnings`).
#[derive(Clone, Debug, Default)]
pub struct WarningQuery {
    pub school: Option<NodeId>,
    pub under: Option<NodeId>,
    /// Resolved ones too.
    pub all: bool,
    pub rule: Option<protocol::warning::RuleId>,
    pub level: Option<protocol::warning::Level>,
    pub limit: Option<usize>,
}

impl AdminClient {
    /// Writes a ledger record at a school: a new one, a correction (same id) or a void.
    pub fn ledger_write(
        &self,
        req: &node::api::ledgers::LedgerWrite,
    ) -> anyhow::Result<node::api::ledgers::LedgerView> {
        self.post("/api/ledger", req)
    }

    /// Records a food sample's disposal.
    pub fn ledger_dispose(&self, req: &node::api::ledgers::Dispose) -> anyhow::Result<node::api::ledgers::LedgerView> {
        self.post("/api/ledger/dispose", req)
    }

    /// One school's records of a span of days, newest first (every value sent is ASCII: kinds
    /// by their English names).
    pub fn ledger(&self, q: &LedgerQuery) -> anyhow::Result<Vec<node::api::ledgers::LedgerView>> {
        let mut p = Vec::new();
        push_param(&mut p, "school", q.school);
        push_param(&mut p, "kind", q.kind.map(|k| k.as_str()));
        push_param(&mut p, "from", q.from.as_deref());
        push_param(&mut p, "to", q.to.as_deref());
        if q.voided {
            p.push("voided=true".into());
        }
        self.get(&with_query("/api/ledger", &p))
    }

    /// Per school of the subtree (or `under`), one day's ledger counts.
    pub fn ledger_days(
        &self,
        under: Option<NodeId>,
        day: Option<&str>,
    ) -> anyhow::Result<Vec<node::api::ledgers::LedgerDay>> {
        let mut p = Vec::new();
        push_param(&mut p, "under", under);
        push_param(&mut p, "day", day);
        self.get(&with_query("/api/ledger/days", &p))
    }

    /// Generates a bulletin draft at a province or city node (`weekly` or `monthly`; the period a
    /// day of the week or a month, `None` the last whole one).
    pub fn generate_bulletin(
        &self,
        kind: &str,
        period: Option<&str>,
    ) -> anyhow::Result<node::api::bulletins::BulletinView> {
        let req = node::api::bulletins::GenerateBulletin { kind: kind.into(), period: period.map(str::to_owned) };
        self.post("/api/bulletins/drafts", &req)
    }

    /// The bulletin drafts kept at the node, newest first.
    pub fn bulletin_drafts(&self) -> anyhow::Result<Vec<node::api::bulletins::BulletinView>> {
        self.get("/api/bulletins/drafts")
    }

    /// One draft.
    pub fn bulletin_draft(&self, id: &str) -> anyhow::Result<node::api::bulletins::BulletinView> {
        self.get(&format!("/api/bulletins/drafts/{}", path_segment(id)))
    }

    /// Replaces a draft's summary.
    pub fn edit_bulletin(&self, id: &str, summary: &str) -> anyhow::Result<node::api::bulletins::BulletinView> {
        let req = node::api::bulletins::EditBulletin { summary: summary.into() };
        self.post(&format!("/api/bulletins/drafts/{}", path_segment(id)), &req)
    }

    /// Publishes a draft down the tree; the bulletin as published.
    pub fn publish_bulletin(&self, id: &str) -> anyhow::Result<node::api::bulletins::BulletinView> {
        self.post(&format!("/api/bulletins/drafts/{}/publish", path_segment(id)), &serde_json::json!({}))
    }

    /// The published bulletins the node holds, newest first.
    pub fn bulletins(&self) -> anyhow::Result<Vec<node::api::bulletins::BulletinView>> {
        self.get("/api/bulletins")
    }

    /// One published bulletin by its directive's id (`13#5`).
    pub fn bulletin(&self, id: &str) -> anyhow::Result<node::api::bulletins::BulletinView> {
        self.get(&format!("/api/bulletins/{}", path_segment(id)))
    }

    /// The early warnings the node holds about its subtree, active first, then newest.
    pub fn warnings(&self, q: &WarningQuery) -> anyhow::Result<Vec<node::api::warnings::WarningView>> {
        let mut p = Vec::new();
        push_param(&mut p, "school", q.school);
        push_param(&mut p, "under", q.under);
        if q.all {
            p.push("active=false".into());
        }
        push_param(&mut p, "rule", q.rule.map(|r| r.as_str()));
        push_param(&mut p, "level", q.level.map(|l| l.as_str()));
        push_param(&mut p, "limit", q.limit);
        self.get(&with_query("/api/warnings", &p))
    }

    /// The 约谈 and 问责 candidates of the subtree (or `under`).
    pub fn warning_candidates(&self, under: Option<NodeId>) -> anyhow::Result<node::api::warnings::Candidates> {
        let mut p = Vec::new();
        push_param(&mut p, "under", under);
        self.get(&with_query("/api/warnings/candidates", &p))
    }

    /// Runs the node's warning engine now; what it wrote.
    pub fn evaluate_warnings(&self) -> anyhow::Result<node::api::warnings::Evaluated> {
        self.post("/api/warnings/evaluate", &serde_json::json!({}))
    }

    /// The early-warning rule settings in force for `unit` (default: the node).
    pub fn rule_settings(&self, unit: Option<NodeId>) -> anyhow::Result<node::api::registry::RuleSettingsView> {
        let mut p = Vec::new();
        push_param(&mut p, "unit", unit);
        self.get(&with_query("/api/rule-settings", &p))
    }

    /// The working-day calendar in force at the node: the built-in years overlaid with the
    /// province's calendar entities (what the node's case deadlines and rules count with), and
    /// the years the province registered itself.
    pub fn calendar(&self) -> anyhow::Result<(protocol::calendar::WorkCalendar, Vec<u16>)> {
        let entities = self.registry(Some(EntityKind::Calendar), None)?;
        let years: Vec<protocol::calendar::YearSchedule> = entities
            .into_iter()
            .filter(|e| e.node.tier() == topology::Tier::Province)
            .filter_map(|e| match e.data {
                protocol::registry::EntityData::Calendar(y) => Some(y),
                _ => None,
            })
            .collect();
        let registered = years.iter().filter(|y| y.validate().is_ok()).map(|y| y.year).collect();
        Ok((protocol::calendar::WorkCalendar::with_years(&years), registered))
    }
}

/// `?day=2026-12-01` (percent-escaped), or nothing.
fn day_query(day: Option<&str>) -> String {
    let Some(d) = day else { return String::new() };
    let mut q = String::from("?day=");
    for b in d.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            q.push(char::from(b));
        } else {
            q.push_str(&format!("%{b:02X}"));
        }
    }
    q
}
