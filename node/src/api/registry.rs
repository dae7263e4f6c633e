//! The registry at a node: the admin API routes, their client, the check that lets a registered
//! school join at run time, and the config step that lets a node absent from the topology file
//! start.
//!
//! Routes: `GET /api/registry?kind=&under=` lists the registry folded from this node's own store
//! ([`protocol::registry::registry_view`]) — by the holds rule exactly the entities of its subtree
//! and of its ancestors (its city, the province's settings) — and `POST /api/registry` upserts or
//! removes an entity this node owns. A node that is not the entity's owner is refused with 403 and
//! nothing is written; a malformed change gets 400; a camera must name an existing canteen of the
//! school and a health certificate an existing staff member (409 otherwise); removing what does not
//! exist is 404. `GET /api/settings?unit=` and `GET /api/rule-settings?unit=` answer the settings and
//! the early-warning rule settings in force for a unit, with where they come from.
//!
//! **Joining at run time.** A county registers a school (a `School` entity: scope the school,
//! written by the county). When a node not in the topology file dials a node of which it is a
//! descendant, the root actor asks [`check_registered`]: the connection is accepted iff this node's
//! own registry holds the peer as a school (or city) entity that has not been removed. Every
//! ancestor of the school holds that registration, so failover to a city or the province works too.
//! The school's own node starts from a config naming its `quic_addr` and `admin_addr`
//! ([`add_joining_node`] adds it to its in-memory topology under its parent, which must be there).
//!
//! Limits: the listing and the join check read the node's registry events with one store listing of
//! at most [`LIST_LIMIT_MAX`] events; a registry above that is refused with a clear error rather than
//! answered partially. Removing a school (or city) that joined at run time closes its link at the
//! node that removed it, and the join check refuses its next connection; a node the topology file
//! lists keeps its link (the file is the authority for it).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use protocol::Body;
use protocol::registry::{
    Entity, EntityData, EntityKind, EntityRef, RegistryChange, RegistryOp, check_registry, effective_settings,
};
use serde::{Deserialize, Serialize};
use topology::{NodeId, Tier};

use crate::api::AdminState;
use crate::api::kit::ApiFail;
use crate::api::kit::{ApiResult, api_err as err, append, parse_node, parse_under, read_fail};
use crate::api::principal::Principal;
use protocol::people::Action;

/// An entity as the admin API and the CLI show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityView {
    pub kind: EntityKind,
    pub node: NodeId,
    /// Empty for a city, the settings and a school (the node is the entity).
    pub id: String,
    /// The only node that writes it.
    pub owner: NodeId,
    pub data: EntityData,
    /// The event that last set it (`origin#seq`).
    pub updated_by: String,
    /// The person who made the change (`None`: the node's operator).
    #[serde(default)]
    pub updated_by_person: Option<protocol::people::Person>,
    /// When that event was written (unix ms, the owner's clock).
    pub updated_at_ms: u64,
    /// A health certificate expired, or expiring within the warning days of the settings in force.
    #[serde(default)]
    pub warning: Option<String>,
}

/// The warning a health certificate valid until `valid_until_ms` deserves at `now_ms`, with the
/// settings' `health_cert_warn_days`.
pub fn certificate_warning(valid_until_ms: u64, now_ms: u64, warn_days: u32) -> Option<String> {
    const DAY_MS: u64 = 86_400_000;
    if valid_until_ms < now_ms {
        return Some(format!("健康证已过期（{}）", protocol::calendar::ChinaTime(valid_until_ms).date()));
    }
    let left = (valid_until_ms - now_ms) / DAY_MS;
    (left < u64::from(warn_days)).then(|| format!("健康证 {left} 天后到期"))
}

impl EntityView {
    pub fn from_entity(e: &Entity) -> EntityView {
        EntityView {
            warning: None,
            kind: e.entity.kind,
            node: e.entity.node,
            id: e.entity.id.clone(),
            owner: e.entity.owner().unwrap_or(e.entity.node),
            data: e.data.clone(),
            updated_by: e.updated_by.to_string(),
            updated_by_person: e.updated_by_person.clone(),
            updated_at_ms: e.updated_hlc.wall_ms,
        }
    }
}

/// A change to write (the body of `POST /api/registry`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryRequest {
    pub kind: EntityKind,
    /// The entity's node: the school being registered, the city; default this node (its own
    /// canteens, cameras, staff and certificates; the province's settings).
    #[serde(default)]
    pub node: Option<NodeId>,
    /// The school-local id (canteen, camera, staff, certificate); empty for node entities.
    #[serde(default)]
    pub id: String,
    pub op: RegistryOp,
}

/// What `POST /api/registry` wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryWritten {
    /// The event (`origin#seq`).
    pub event: String,
    pub kind: EntityKind,
    pub node: NodeId,
    pub id: String,
    /// `upsert` or `remove`.
    pub op: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct RegistryParams {
    pub kind: Option<String>,
    pub under: Option<String>,
}

async fn list(
    State(s): State<AdminState>,
    who: Principal,
    Query(p): Query<RegistryParams>,
) -> ApiResult<Vec<EntityView>> {
    who.require(&s, Action::ViewSubtree).await?;
    let kind = match p.kind.as_deref() {
        None | Some("") => None,
        Some(k) => Some(k.parse::<EntityKind>().map_err(|e| err(StatusCode::BAD_REQUEST, e.to_string()))?),
    };
    let under = parse_under(p.under.as_deref())?;
    Ok(Json(entity_views(&s, kind, under).await?))
}

/// The registry entities this node holds, of `kind` and under `under` if given, each with its
/// certificate warning.
pub async fn entity_views(
    s: &AdminState,
    kind: Option<EntityKind>,
    under: Option<NodeId>,
) -> Result<Vec<EntityView>, ApiFail> {
    // Read beside the store actor (a province's registry is large): replication goes on meanwhile.
    let view = s.reads.registry().await.map_err(read_fail)?;
    let now = s.clock.wall_ms();
    Ok(view
        .values()
        .filter(|e| kind.is_none_or(|k| e.entity.kind == k))
        .filter(|e| under.is_none_or(|u| u.is_ancestor_or_self_of(e.entity.node)))
        .map(|e| {
            let warning = match &e.data {
                EntityData::HealthCertificate(h) => {
                    let warn_days = effective_settings(&view, e.entity.node).0.health_cert_warn_days;
                    certificate_warning(h.valid_until_ms, now, warn_days)
                }
                _ => None,
            };
            EntityView { warning, ..EntityView::from_entity(e) }
        })
        .collect())
}

async fn write(
    State(s): State<AdminState>,
    who: Principal,
    Json(req): Json<RegistryRequest>,
) -> ApiResult<RegistryWritten> {
    Ok(Json(write_as(&s, &who, req).await?))
}

/// A registry change on behalf of `who`: settings, rule settings and the calendar need
/// [`Action::ChangeSettings`], everything
/// else [`Action::EditRegistry`]; accounts are set through the accounts API only (a password
/// goes with them).
pub async fn write_as(s: &AdminState, who: &Principal, req: RegistryRequest) -> Result<RegistryWritten, ApiFail> {
    if req.kind == EntityKind::Account {
        return Err(err(StatusCode::BAD_REQUEST, "账号请用“账号”页面或 mingchu user add 设置"));
    }
    let needs = match req.kind {
        EntityKind::Settings | EntityKind::RuleSettings | EntityKind::Calendar => Action::ChangeSettings,
        _ => Action::EditRegistry,
    };
    who.require(s, needs).await?;
    let entity = EntityRef { kind: req.kind, node: req.node.unwrap_or(s.me), id: req.id };
    let change = RegistryChange { entity: entity.clone(), op: req.op };
    if let Err(e) = check_registry(s.me, entity.node, &change) {
        // Not the owner: forbidden (one owner, only writer); anything else: a bad request.
        let code = if e.is_forbidden() { StatusCode::FORBIDDEN } else { StatusCode::BAD_REQUEST };
        return Err(err(code, e.to_string()));
    }
    // References within the school, checked against this node's registry (the owner's own view
    // is complete: it wrote every entity of the school).
    let needs = match &change.op {
        RegistryOp::Upsert(EntityData::Camera(c)) => Some((EntityKind::Canteen, c.canteen.clone())),
        RegistryOp::Upsert(EntityData::HealthCertificate(h)) => Some((EntityKind::Staff, h.staff.clone())),
        // A camera's stream is kept under the camera's own id.
        RegistryOp::Upsert(EntityData::CameraStream(_)) => Some((EntityKind::Camera, entity.id.clone())),
        _ => None,
    };
    let removing = matches!(change.op, RegistryOp::Remove { .. });
    if needs.is_some() || removing {
        let view = s.reads.registry().await.map_err(read_fail)?;
        if let Some((kind, id)) = needs
            && !view.contains_key(&EntityRef { kind, node: entity.node, id: id.clone() })
        {
            return Err(err(
                StatusCode::CONFLICT,
                format!("{} 引用的{}“{id}”在 {} 尚未登记", entity.zh(), kind.zh(), entity.node),
            ));
        }
        if removing && !view.contains_key(&entity) {
            return Err(err(StatusCode::NOT_FOUND, format!("{} 不在登记册中，无法删除", entity.zh())));
        }
    }
    let op = if removing { "remove" } else { "upsert" };
    let items = vec![(entity.node, Body::Registry(change))];
    let stored = append(s, who.person(), items).await?;
    let event = stored.first().ok_or_else(|| err(StatusCode::INTERNAL_SERVER_ERROR, "nothing stored"))?;
    if removing && matches!(entity.kind, EntityKind::School | EntityKind::City) {
        // A node that joined at run time loses its link now, not at its next reconnect.
        let _ = s.node.cast(crate::runtime::root::NodeMsg::Unregistered(entity.node));
    }
    Ok(RegistryWritten {
        event: event.event.id().to_string(),
        kind: entity.kind,
        node: entity.node,
        id: entity.id,
        op: op.to_string(),
    })
}

/// The settings in force for a unit, and where they come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsView {
    pub unit: NodeId,
    pub source: protocol::registry::SettingsSource,
    pub settings: protocol::registry::Settings,
}

#[derive(Debug, Default, Deserialize)]
pub struct SettingsParams {
    /// The unit (default: this node).
    pub unit: Option<String>,
}

/// `GET /api/settings?unit=`: the settings in force for `unit` — its county's override, the
/// province's, or the defaults.
async fn settings(State(s): State<AdminState>, Query(p): Query<SettingsParams>) -> ApiResult<SettingsView> {
    let unit = match p.unit.as_deref() {
        None | Some("") => s.me,
        Some(u) => parse_node("unit", u)?,
    };
    let (settings, source) = s.reads.settings_for(unit).await.map_err(read_fail)?;
    Ok(Json(SettingsView { unit, source, settings }))
}

/// The early-warning rule settings in force for a unit, and where they come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSettingsView {
    pub unit: NodeId,
    pub source: protocol::registry::SettingsSource,
    pub settings: protocol::warning::RuleSettings,
}

/// `GET /api/rule-settings?unit=`: the rule settings in force for `unit` (what its warning engine
/// judges with) — its county's override, the province's, or the defaults.
async fn rule_settings(State(s): State<AdminState>, Query(p): Query<SettingsParams>) -> ApiResult<RuleSettingsView> {
    use protocol::registry::SettingsSource;
    let unit = match p.unit.as_deref() {
        None | Some("") => s.me,
        Some(u) => parse_node("unit", u)?,
    };
    // The lookup of `Reads::rule_settings_for`, from the same two registries, saying which it took.
    let owners = [(Tier::County, SettingsSource::County), (Tier::Province, SettingsSource::Province)];
    let mut view = std::collections::BTreeMap::new();
    let mut source = SettingsSource::Default;
    for (tier, from) in owners {
        let Some(owner) = unit.ancestor_at(tier) else { continue };
        let theirs = s.reads.registry_of(owner).await.map_err(read_fail)?;
        let key = EntityRef { kind: EntityKind::RuleSettings, node: owner, id: String::new() };
        if source == SettingsSource::Default && theirs.contains_key(&key) {
            source = from;
        }
        view.extend(theirs);
    }
    let settings = protocol::warning::effective_rule_settings(&view, unit);
    Ok(Json(RuleSettingsView { unit, source, settings }))
}

/// The registry routes, merged into the admin router.
pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/registry", get(list).post(write))
        .route("/api/settings", get(settings))
        .route("/api/rule-settings", get(rule_settings))
}

/// One line about a registry change, for event listings.
pub fn summary(change: &RegistryChange) -> String {
    match &change.op {
        RegistryOp::Upsert(data) => format!("registry {}: {}", change.entity, data.label()),
        RegistryOp::Remove { reason } => format!("registry {} removed: {reason}", change.entity),
    }
}
