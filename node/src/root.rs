//! The node's root actor: it supervises the store actor, the listener and one link actor per
//! connection, accepts children (checking each against the topology), keeps dialing the parent,
//! and answers status queries. A failed link is dropped (and the parent redialed); a failed store stops the node,
//! because a node with broken storage must not keep acknowledging.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use protocol::{Role, SessionConfig};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use serde::{Deserialize, Serialize};
use topology::{NodeId, Tier, Topology};
use tracing::{error, info, warn};

use crate::clock::Clock;
use crate::link::{LinkActor, LinkArgs, LinkMsg, LinkState, LinkStatus, SharedStatus, lock_status};
use crate::listener::{ListenerActor, ListenerArgs, ListenerMsg};
use crate::storage::Storage;
use crate::store::{StoreActor, StoreArgs, StoreMsg, StoreStats};
use crate::transport::{Connection, Transport, TransportError};

/// How long a dial may take before the parent counts as unreachable.
pub const DIAL_TIMEOUT_MS: u64 = 3_000;

/// How the parent is redialed after a failure: exponential backoff between these bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedialConfig {
    pub min_ms: u64,
    pub max_ms: u64,
}

impl Default for RedialConfig {
    fn default() -> RedialConfig {
        RedialConfig { min_ms: 200, max_ms: 3_000 }
    }
}

pub struct NodeArgs {
    pub me: NodeId,
    pub topology: Arc<Topology>,
    pub storage: Arc<dyn Storage>,
    pub transport: Arc<dyn Transport>,
    pub clock: Arc<dyn Clock>,
    pub session: SessionConfig,
    pub redial: RedialConfig,
}

/// Everything `topology show` and the admin API report about a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node: NodeId,
    pub tier: Tier,
    pub name: String,
    pub parent: Option<LinkStatus>,
    pub children: Vec<LinkStatus>,
    pub store: StoreStats,
    /// Connections refused because the peer may not link here.
    pub refused: u64,
    pub last_refusal: Option<String>,
}

pub enum NodeMsg {
    Accepted(Connection),
    AcceptFailed(TransportError),
    DialParent,
    Dialed(Result<Connection, TransportError>),
    Status(RpcReplyPort<NodeStatus>),
    /// The store actor, for the admin API.
    Store(RpcReplyPort<ActorRef<StoreMsg>>),
}

struct LinkEntry {
    actor: Option<ActorRef<LinkMsg>>,
    status: SharedStatus,
}

pub struct NodeRun {
    args: NodeArgs,
    store: ActorRef<StoreMsg>,
    links: BTreeMap<NodeId, LinkEntry>,
    next_link_id: u64,
    listener: ActorRef<ListenerMsg>,
    dialing: bool,
    redial_ms: u64,
    refused: u64,
    last_refusal: Option<String>,
}

pub struct NodeActor;

impl NodeRun {
    fn parent(&self) -> Option<NodeId> {
        self.args.me.parent()
    }

    fn entry(&mut self, peer: NodeId, role: &str) -> &mut LinkEntry {
        let now = self.args.clock.wall_ms();
        self.links.entry(peer).or_insert_with(|| LinkEntry {
            actor: None,
            status: Arc::new(Mutex::new(LinkStatus::new(peer, role, now))),
        })
    }

    /// Whether `peer` may open a link to this node: for now, only its own children.
    fn check_child(&self, peer: NodeId) -> Result<(), String> {
        if peer.parent() != Some(self.args.me) {
            return Err(format!("{peer} is not a child of {}", self.args.me));
        }
        if !self.args.topology.contains(peer) {
            return Err(format!("{peer} is not in the topology"));
        }
        Ok(())
    }

    async fn spawn_link(&mut self, myself: &ActorRef<NodeMsg>, conn: Connection, role: Role) {
        let peer = conn.peer;
        let role_name = if role == Role::Dialer { "parent" } else { "child" };
        let link_id = self.next_link_id;
        self.next_link_id += 1;
        let old = self.entry(peer, role_name).actor.take();
        if let Some(old) = old {
            old.stop(Some("replaced by a new connection".into()));
        }
        let status = self.entry(peer, role_name).status.clone();
        let args = LinkArgs {
            me: self.args.me,
            conn,
            role,
            store: self.store.clone(),
            storage: self.args.storage.clone(),
            clock: self.args.clock.clone(),
            cfg: self.args.session,
            link_id,
            status: status.clone(),
        };
        match Actor::spawn_linked(None, LinkActor, args, myself.get_cell()).await {
            Ok((actor, _)) => self.entry(peer, role_name).actor = Some(actor),
            Err(e) => {
                warn!(node = %self.args.me, %peer, error = %e, "link failed to start");
                let mut s = lock_status(&status);
                s.last_error = Some(e.to_string());
                s.set_state(LinkState::Down, self.args.clock.wall_ms());
                drop(s);
                if role == Role::Dialer {
                    self.schedule_redial(myself);
                }
            }
        }
    }

    fn schedule_redial(&mut self, myself: &ActorRef<NodeMsg>) {
        let wait = self.redial_ms;
        self.redial_ms = (self.redial_ms * 2).min(self.args.redial.max_ms);
        let me = myself.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
            let _ = me.cast(NodeMsg::DialParent);
        });
    }

    fn link_of(&self, cell: &ActorCell) -> Option<NodeId> {
        let id = cell.get_id();
        self.links.iter().find(|(_, e)| e.actor.as_ref().is_some_and(|a| a.get_id() == id)).map(|(p, _)| *p)
    }

    fn link_ended(&mut self, myself: &ActorRef<NodeMsg>, peer: NodeId, reason: Option<String>) {
        let was_up;
        {
            let Some(e) = self.links.get_mut(&peer) else { return };
            e.actor = None;
            let mut s = lock_status(&e.status);
            was_up = s.state == LinkState::Up;
            if reason.is_some() && s.last_error.is_none() {
                s.last_error = reason;
            }
            s.set_state(LinkState::Down, self.args.clock.wall_ms());
        }
        if Some(peer) == self.parent() {
            if was_up {
                self.redial_ms = self.args.redial.min_ms;
            }
            self.schedule_redial(myself);
        }
    }
}

impl Actor for NodeActor {
    type Msg = NodeMsg;
    type State = NodeRun;
    type Arguments = NodeArgs;

    async fn pre_start(&self, myself: ActorRef<NodeMsg>, args: NodeArgs) -> Result<NodeRun, ActorProcessingErr> {
        let (store, _) = Actor::spawn_linked(
            None,
            StoreActor,
            StoreArgs { me: args.me, storage: args.storage.clone(), clock: args.clock.clone() },
            myself.get_cell(),
        )
        .await?;
        let (listener, _) = Actor::spawn_linked(
            None,
            ListenerActor,
            ListenerArgs { transport: args.transport.clone(), root: myself.clone() },
            myself.get_cell(),
        )
        .await?;
        let redial_ms = args.redial.min_ms;
        let mut run = NodeRun {
            args,
            store,
            links: BTreeMap::new(),
            next_link_id: 1,
            listener,
            dialing: false,
            redial_ms,
            refused: 0,
            last_refusal: None,
        };
        // Children from the topology are listed (as never connected) from the start.
        let me_id = run.args.me;
        let children: Vec<NodeId> = run.args.topology.children(me_id).map(|e| e.id).collect();
        for c in children {
            run.entry(c, "child");
        }
        if let Some(p) = run.parent() {
            run.entry(p, "parent");
            myself.cast(NodeMsg::DialParent)?;
        }
        info!(node = %me_id, "node started");
        Ok(run)
    }

    async fn handle(
        &self,
        myself: ActorRef<NodeMsg>,
        msg: NodeMsg,
        st: &mut NodeRun,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            NodeMsg::Accepted(mut conn) => {
                let peer = conn.peer;
                match st.check_child(peer) {
                    Ok(()) => st.spawn_link(&myself, conn, Role::Acceptor).await,
                    Err(reason) => {
                        warn!(node = %st.args.me, %peer, %reason, "connection refused");
                        st.refused += 1;
                        st.last_refusal = Some(format!("{peer}: {reason}"));
                        conn.sender.close(&format!("refused by {}: {reason}", st.args.me));
                    }
                }
            }
            NodeMsg::AcceptFailed(e) => {
                warn!(node = %st.args.me, error = %e, "incoming connection failed");
                st.refused += 1;
                st.last_refusal = Some(e.to_string());
            }
            NodeMsg::DialParent => {
                let Some(parent) = st.parent() else { return Ok(()) };
                let connected = st.links.get(&parent).is_some_and(|e| e.actor.is_some());
                if st.dialing || connected {
                    return Ok(());
                }
                let Some(addr) = st.args.topology.get(parent).map(|e| e.quic) else {
                    error!(node = %st.args.me, %parent, "parent is not in the topology");
                    return Ok(());
                };
                st.dialing = true;
                {
                    let now = st.args.clock.wall_ms();
                    let e = st.entry(parent, "parent");
                    let mut s = lock_status(&e.status);
                    if s.state != LinkState::Down {
                        s.set_state(LinkState::Connecting, now);
                    }
                }
                let dial = st.args.transport.dial(parent, addr);
                let me = myself.clone();
                tokio::spawn(async move {
                    // quinn's dial has no timeout of its own (an unanswered address waits for the
                    // idle timeout); a parent that does not answer quickly counts as down.
                    let r = match tokio::time::timeout(std::time::Duration::from_millis(DIAL_TIMEOUT_MS), dial).await {
                        Ok(r) => r,
                        Err(_) => Err(TransportError::Io(format!(
                            "no answer from {parent} at {addr} within {DIAL_TIMEOUT_MS} ms"
                        ))),
                    };
                    let _ = me.cast(NodeMsg::Dialed(r));
                });
            }
            NodeMsg::Dialed(result) => {
                st.dialing = false;
                match result {
                    Ok(conn) => st.spawn_link(&myself, conn, Role::Dialer).await,
                    Err(e) => {
                        if let Some(parent) = st.parent() {
                            let now = st.args.clock.wall_ms();
                            let me = st.args.me;
                            let entry = st.entry(parent, "parent");
                            let mut s = lock_status(&entry.status);
                            if s.last_error.as_deref() != Some(&e.to_string()) {
                                warn!(node = %me, %parent, error = %e, "cannot reach parent; will retry");
                            }
                            s.last_error = Some(e.to_string());
                            s.set_state(LinkState::Down, now);
                        }
                        st.schedule_redial(&myself);
                    }
                }
            }
            NodeMsg::Status(reply) => {
                let store = ractor::call_t!(st.store, StoreMsg::Stats, 5_000).unwrap_or_default();
                let parent = st.parent().and_then(|p| st.links.get(&p)).map(|e| lock_status(&e.status).clone());
                let children = st
                    .links
                    .iter()
                    .filter(|(p, _)| Some(**p) != st.parent())
                    .map(|(_, e)| lock_status(&e.status).clone())
                    .collect();
                let name = st.args.topology.get(st.args.me).map(|e| e.name.clone()).unwrap_or_default();
                let _ = reply.send(NodeStatus {
                    node: st.args.me,
                    tier: st.args.me.tier(),
                    name,
                    parent,
                    children,
                    store,
                    refused: st.refused,
                    last_refusal: st.last_refusal.clone(),
                });
            }
            NodeMsg::Store(reply) => {
                let _ = reply.send(st.store.clone());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<NodeMsg>,
        evt: SupervisionEvent,
        st: &mut NodeRun,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, reason) = match evt {
            SupervisionEvent::ActorTerminated(cell, _, reason) => (cell, reason),
            SupervisionEvent::ActorFailed(cell, err) => (cell, Some(err.to_string())),
            _ => return Ok(()),
        };
        if cell.get_id() == st.store.get_id() {
            error!(node = %st.args.me, reason = ?reason, "store stopped: stopping the node");
            myself.stop(Some(format!("store stopped: {}", reason.unwrap_or_default())));
            return Ok(());
        }
        if cell.get_id() == st.listener.get_id() {
            // The endpoint is gone (shutdown): nothing more can connect, so the node stops too.
            warn!(node = %st.args.me, reason = ?reason, "listener stopped");
            myself.stop(Some("listener stopped".into()));
            return Ok(());
        }
        if let Some(peer) = st.link_of(&cell) {
            st.link_ended(&myself, peer, reason);
        }
        Ok(())
    }

    async fn post_stop(&self, _myself: ActorRef<NodeMsg>, st: &mut NodeRun) -> Result<(), ActorProcessingErr> {
        st.listener.stop(None);
        for e in st.links.values() {
            if let Some(a) = &e.actor {
                a.stop(Some("node shutting down".into()));
            }
        }
        st.store.stop(None);
        st.args.transport.shutdown();
        Ok(())
    }
}
