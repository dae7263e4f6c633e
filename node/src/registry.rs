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
//! exist is 404.
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

use std::collections::BTreeMap;
use std::net::SocketAddr;

use anyhow::{Context, bail};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use protocol::registry::{
    Entity, EntityData, EntityKind, EntityRef, RegistryChange, RegistryOp, check_registry, registry_view,
};
use protocol::{Body, EventKind};
use ractor::ActorRef;
use serde::{Deserialize, Serialize};
use topology::{NodeEntry, NodeId, Topology};

use crate::admin::{AdminClient, AdminState, ApiError, api_err as err};
use crate::server::NodeConfig;
use crate::store::StoreMsg;

const CALL_TIMEOUT_MS: u64 = 10_000;

type ApiFail = (StatusCode, Json<ApiError>);
type ApiResult<T> = Result<Json<T>, ApiFail>;

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
    /// When that event was written (unix ms, the owner's clock).
    pub updated_at_ms: u64,
}

impl EntityView {
    pub fn from_entity(e: &Entity) -> EntityView {
        EntityView {
            kind: e.entity.kind,
            node: e.entity.node,
            id: e.entity.id.clone(),
            owner: e.entity.owner().unwrap_or(e.entity.node),
            data: e.data.clone(),
            updated_by: e.updated_by.to_string(),
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

/// The registry folded from this node's store.
pub async fn load_view(store: &ActorRef<StoreMsg>) -> Result<BTreeMap<EntityRef, Entity>, String> {
    // Registry events are indexed by the unit they are about: no scan of the node's alerts.
    let events = ractor::call_t!(
        store,
        |reply| StoreMsg::Related { kind: EventKind::Registry, subject: None, reply },
        CALL_TIMEOUT_MS
    )
    .map_err(|e| format!("store did not answer: {e}"))??;
    Ok(registry_view(events.iter().map(|s| &s.event)))
}

/// Whether `peer`, a descendant of this node absent from its topology file, is registered in this
/// node's own registry (as a school, or a city) and not removed.
pub async fn check_registered(store: &ActorRef<StoreMsg>, peer: NodeId) -> Result<(), String> {
    let kind = match peer.tier() {
        topology::Tier::School => EntityKind::School,
        topology::Tier::City => EntityKind::City,
        t => return Err(format!("{peer} is not in the topology (a {t} cannot be registered at run time)")),
    };
    let view = load_view(store).await.map_err(|e| format!("{peer} is not in the topology; {e}"))?;
    if view.contains_key(&EntityRef { kind, node: peer, id: String::new() }) {
        Ok(())
    } else {
        Err(format!("{peer} is neither in the topology nor a registered {kind} in this node's registry"))
    }
}

async fn list(State(s): State<AdminState>, Query(p): Query<RegistryParams>) -> ApiResult<Vec<EntityView>> {
    let kind = match p.kind.as_deref() {
        None | Some("") => None,
        Some(k) => Some(k.parse::<EntityKind>().map_err(|e| err(StatusCode::BAD_REQUEST, e.to_string()))?),
    };
    let under = match p.under.as_deref() {
        None | Some("") => None,
        Some(u) => Some(u.parse::<NodeId>().map_err(|e| err(StatusCode::BAD_REQUEST, e.to_string()))?),
    };
    // Read beside the store actor (a province's registry is large): replication goes on meanwhile.
    let events = crate::admin::read_storage(&s, |st| {
        crate::store::related(st, EventKind::Registry, None).map_err(|e| e.to_string())
    })
    .await?;
    let view = registry_view(events.iter().map(|s| &s.event));
    Ok(Json(
        view.values()
            .filter(|e| kind.is_none_or(|k| e.entity.kind == k))
            .filter(|e| under.is_none_or(|u| u.is_ancestor_or_self_of(e.entity.node)))
            .map(EntityView::from_entity)
            .collect(),
    ))
}

async fn write(State(s): State<AdminState>, Json(req): Json<RegistryRequest>) -> ApiResult<RegistryWritten> {
    let entity = EntityRef { kind: req.kind, node: req.node.unwrap_or(s.me), id: req.id };
    let change = RegistryChange { entity: entity.clone(), op: req.op };
    if let Err(e) = check_registry(s.me, entity.node, &change) {
        // Not the owner: forbidden (one owner, only writer); anything else: a bad request.
        let code = match entity.owner() {
            Some(owner) if owner != s.me => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        };
        return Err(err(code, e));
    }
    // References within the school, checked against this node's registry (the owner's own view
    // is complete: it wrote every entity of the school).
    let needs = match &change.op {
        RegistryOp::Upsert(EntityData::Camera(c)) => Some((EntityKind::Canteen, c.canteen.clone())),
        RegistryOp::Upsert(EntityData::HealthCertificate(h)) => Some((EntityKind::Staff, h.staff.clone())),
        _ => None,
    };
    let removing = matches!(change.op, RegistryOp::Remove { .. });
    if needs.is_some() || removing {
        let view = load_view(&s.store).await.map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?;
        if let Some((kind, id)) = needs
            && !view.contains_key(&EntityRef { kind, node: entity.node, id: id.clone() })
        {
            return Err(err(
                StatusCode::CONFLICT,
                format!("{entity} refers to {kind} `{id}`, which {} has not registered", entity.node),
            ));
        }
        if removing && !view.contains_key(&entity) {
            return Err(err(StatusCode::NOT_FOUND, format!("{entity} is not in the registry")));
        }
    }
    let op = if removing { "remove" } else { "upsert" };
    let items = vec![(entity.node, Body::Registry(change))];
    let stored = ractor::call_t!(s.store, |reply| StoreMsg::Append { items, reply }, CALL_TIMEOUT_MS)
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| err(StatusCode::BAD_REQUEST, e))?;
    let event = stored.first().ok_or_else(|| err(StatusCode::INTERNAL_SERVER_ERROR, "nothing stored"))?;
    if removing && matches!(entity.kind, EntityKind::School | EntityKind::City) {
        // A node that joined at run time loses its link now, not at its next reconnect.
        let _ = s.node.cast(crate::root::NodeMsg::Unregistered(entity.node));
    }
    Ok(Json(RegistryWritten {
        event: event.event.id().to_string(),
        kind: entity.kind,
        node: entity.node,
        id: entity.id,
        op: op.to_string(),
    }))
}

/// The registry routes, merged into the admin router.
pub fn routes() -> Router<AdminState> {
    Router::new().route("/api/registry", get(list).post(write))
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

    /// Upserts or removes an entity the node owns.
    pub fn registry_write(&self, req: &RegistryRequest) -> anyhow::Result<RegistryWritten> {
        self.post("/api/registry", req)
    }
}

/// Lets a node absent from the topology file start (a school registered at run time): when the
/// config names its `quic_addr` and `admin_addr`, it is added to the in-memory topology under its
/// parent, which the file must hold. A node the file lists keeps the file's addresses.
pub fn add_joining_node(topology: &mut Topology, cfg: &NodeConfig) -> anyhow::Result<()> {
    let me = cfg.node;
    if topology.contains(me) {
        return Ok(());
    }
    let (Some(quic), Some(admin)) = (cfg.quic_addr, cfg.admin_addr) else {
        bail!(
            "node {me} is not in the topology {}; a node registered at run time needs its quic_addr and \
             admin_addr in its config (or --quic-addr and --admin-addr)",
            cfg.topology.display()
        );
    };
    topology
        .insert(NodeEntry { id: me, name: me.to_string(), quic, admin })
        .with_context(|| format!("node {me} joins the topology {} at run time", cfg.topology.display()))
}

/// The admin address of a node config: the topology's, or for a joining node its `admin_addr`.
pub fn config_admin_addr(cfg: &NodeConfig) -> anyhow::Result<SocketAddr> {
    let mut topo = Topology::load(&cfg.topology).with_context(|| format!("topology {}", cfg.topology.display()))?;
    add_joining_node(&mut topo, cfg)?;
    topo.get(cfg.node).map(|e| e.admin).with_context(|| format!("node {} is not in the topology", cfg.node))
}

/// One line about a registry change, for event listings.
pub fn summary(change: &RegistryChange) -> String {
    match &change.op {
        RegistryOp::Upsert(data) => format!("registry {}: {}", change.entity, data.label()),
        RegistryOp::Remove { reason } => format!("registry {} removed: {reason}", change.entity),
    }
}
