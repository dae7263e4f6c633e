//! The node's root actor: it supervises the store actor, the listener and one link actor per
//! connection, accepts children (checking each against the topology), keeps dialing the parent,
//! and answers status queries. A failed link is dropped (and the parent redialed); a failed store stops the node,
//! because a node with broken storage must not keep acknowledging.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use protocol::{Role, SessionConfig};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use serde::{Deserialize, Serialize};
use topology::{NodeId, Tier, Topology};
use tracing::{error, info, warn};

use crate::clock::Clock;
use crate::runtime::health::{Plane, SharedHealth};
use crate::runtime::link::{LinkActor, LinkArgs, LinkMsg, LinkState, LinkStatus, SharedStatus, lock_status};
use crate::runtime::listener::{ListenerActor, ListenerArgs, ListenerMsg};
use crate::runtime::store::{PriorityInbox, StoreActor, StoreArgs, StoreMsg, StoreStats};
use crate::storage::Storage;
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
    /// Long reads beside the store actor (the join check).
    pub reads: crate::runtime::reads::Reads,
    pub transport: Arc<dyn Transport>,
    pub clock: Arc<dyn Clock>,
    pub session: SessionConfig,
    pub redial: RedialConfig,
    /// After this long without hearing from its parent, a node also dials its next ancestor.
    pub failover_after_ms: u64,
    pub health: protocol::health::HealthTiming,
    /// Unix ms the node's certificate (or the CA's, if sooner) expires, when known.
    pub cert_not_after_ms: Option<u64>,
    /// This node's signer and its descendants' keys, for the signed history.
    pub seal_keys: crate::runtime::store::SealKeys,
    /// This node's certificate chain (its own first), sent up so ancestors learn its key.
    pub own_cert: Option<Vec<Vec<u8>>>,
}

/// Default time without the parent before failing over to the next ancestor.
pub const FAILOVER_AFTER_MS_DEFAULT: u64 = 3_000;

/// Everything `topology show` and the admin API report about a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node: NodeId,
    pub tier: Tier,
    pub name: String,
    pub parent: Option<LinkStatus>,
    /// The ancestor this node reports to while its parent is unreachable (`None` when not failed
    /// over).
    pub failover: Option<LinkStatus>,
    /// Links with descendants: every child in the topology (connected or not), plus any deeper
    /// descendant currently failed over to this node.
    pub children: Vec<LinkStatus>,
    pub store: StoreStats,
    /// Connections refused because the peer may not link here.
    pub refused: u64,
    pub last_refusal: Option<String>,
    /// Requests of people or the operator refused for want of permission or scope (403) since the
    /// node started (filled in by the admin API).
    #[serde(default)]
    pub denied_requests: u64,
    /// Incoming attempts the endpoint turned away before authenticating anyone.
    #[serde(default)]
    pub turned_away: crate::transport::TurnedAway,
    /// New connections from a peer already linked that ended before their hello: the live link
    /// was kept.
    #[serde(default)]
    pub replacements_refused: u64,
    /// Times the parent's link fell silent with a batch unacked and the next ancestor was dialed
    /// beside it, since the node started.
    #[serde(default)]
    pub hedges: u64,
}

pub enum NodeMsg {
    Accepted(Connection),
    AcceptFailed(TransportError),
    /// Dial this ancestor (the parent, or a failover target) unless already linked or dialing.
    Dial(NodeId),
    Dialed(NodeId, Result<Connection, TransportError>),
    /// A link's hello exchange finished (the peer, the link's id).
    LinkUp(NodeId, u64),
    /// Time to check whether the parent has been gone long enough to fail over.
    FailoverCheck,
    /// The link to this ancestor fell silent with a batch unacked (`true`), or was heard again.
    Silent(NodeId, bool),
    /// This node's registry removed `peer` (a school or city that joined at run time): close its
    /// link; its next connection is refused by the join check. A peer the topology file lists is
    /// not affected (the file is the authority for it).
    Unregistered(NodeId),
    Status(RpcReplyPort<NodeStatus>),
    /// The store actor, for the admin API.
    Store(RpcReplyPort<ActorRef<StoreMsg>>),
    /// Health rows a descendant sent (already checked by its session).
    HealthIn(NodeId, protocol::health::HealthDelta),
    /// Time to remake what changed and send it up.
    HealthFlush,
    /// Time to re-report this node even if nothing changed.
    HealthRefresh,
    /// The grace after a restart is over: children not back are reported down.
    HealthGrace,
    /// The health table, for the admin API.
    Health(RpcReplyPort<SharedHealth>),
    /// A file frame a peer sent (see [`crate::runtime::files`]).
    FileIn(NodeId, protocol::Frame),
    /// The admin API or a console page wants a file held at `holder` (here, or below).
    FileFetch {
        holder: NodeId,
        hash: protocol::files::FileHash,
        reply: RpcReplyPort<crate::runtime::files::Fetched>,
    },
    /// A file request sent down has waited long enough.
    FileTimeout(u64),
    /// The school's cameras' last heartbeats, for the device intake and the admin API.
    Cameras(RpcReplyPort<crate::runtime::cameras::SharedCameras>),
    /// A camera came online or went offline, or a device was registered: re-report this node.
    CamerasChanged,
}

struct LinkEntry {
    actor: Option<ActorRef<LinkMsg>>,
    status: SharedStatus,
    /// A new connection from the same peer while `actor` is live: it replaces `actor` only once
    /// its hello exchange finished, so a connection that never says hello (or says it wrongly)
    /// cannot take a working link down. It has a status of its own until then.
    pending: Option<Pending>,
}

struct Pending {
    actor: ActorRef<LinkMsg>,
    link_id: u64,
    status: SharedStatus,
}

/// The node's links upward: the parent, and the ancestor it fails over to while the parent is gone.
struct Uplink {
    /// Ancestors, the parent first.
    ancestors: Vec<NodeId>,
    /// Wall ms since when the parent has not been heard from (`None` while its link is up).
    parent_gone_since_ms: Option<u64>,
    dialing: BTreeSet<NodeId>,
    parent_backoff_ms: u64,
    /// The ancestor currently failed over to (linked or being dialed).
    failover: Option<NodeId>,
    /// Index into `ancestors` of the next failover target to try (1 = grandparent).
    next_failover: usize,
    failover_check_pending: bool,
    /// The failover link was dialed because the parent's link fell silent, not because it
    /// ended: it is left as soon as the parent is heard again.
    hedged: bool,
    /// Times the parent's link fell silent with a batch unacked and the grandparent was dialed
    /// beside it (since start).
    hedges: u64,
}

pub struct NodeRun {
    args: NodeArgs,
    store: ActorRef<StoreMsg>,
    store_priority: PriorityInbox,
    links: BTreeMap<NodeId, LinkEntry>,
    next_link_id: u64,
    listener: ActorRef<ListenerMsg>,
    up: Uplink,
    refused: u64,
    last_refusal: Option<String>,
    replacements_refused: u64,
    health: Plane,
    /// A school's cameras' last heartbeats (counted in its health report).
    cameras: crate::runtime::cameras::SharedCameras,
    /// File fetches in flight downward, and who waits for them.
    files: crate::runtime::files::Router,
}

pub struct NodeActor;

fn after(myself: &ActorRef<NodeMsg>, wait_ms: u64, msg: NodeMsg) {
    let me = myself.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(wait_ms)).await;
        let _ = me.cast(msg);
    });
}

impl NodeRun {
    /// The peers whose links are up.
    fn linked_peers(&self) -> Vec<NodeId> {
        self.links
            .iter()
            .filter(|(_, e)| e.actor.is_some() && lock_status(&e.status).state == LinkState::Up)
            .map(|(p, _)| *p)
            .collect()
    }

    /// Carries out what the file router asked for.
    fn file_actions(&mut self, myself: &ActorRef<NodeMsg>, actions: Vec<crate::runtime::files::Action>) {
        use crate::runtime::files::Action;
        for a in actions {
            match a {
                Action::Send(peer, frame) => {
                    if let Some(actor) = self.links.get(&peer).and_then(|e| e.actor.as_ref()) {
                        let _ = actor.cast(LinkMsg::File(frame));
                    }
                }
                Action::Cache(hash, meta, bytes) => match crate::runtime::files::put_ops(&hash, &meta, bytes) {
                    Ok(ops) => {
                        let _ = self.store.cast(StoreMsg::WriteLocal { ops, reply: None });
                    }
                    Err(e) => warn!(node = %self.args.me, error = %e, "cannot cache a file"),
                },
                Action::Timeout(req) => {
                    after(myself, crate::runtime::files::FETCH_TIMEOUT_MS, NodeMsg::FileTimeout(req));
                }
            }
        }
    }

    /// A file here, or fetched through the tree toward `holder`, for `waiter`.
    fn file_want(
        &mut self,
        myself: &ActorRef<NodeMsg>,
        holder: NodeId,
        hash: protocol::files::FileHash,
        waiter: crate::runtime::files::Waiter,
    ) {
        use crate::runtime::files::{FileError, Waiter, read_file, route};
        let me = self.args.me;
        let asker = match &waiter {
            Waiter::Link { peer, .. } => Some(*peer),
            Waiter::Local(_) => None,
        };
        let from_above = asker.is_some_and(|p| p != me && p.is_ancestor_or_self_of(me));
        let from_below = asker.is_some_and(|p| p.is_descendant_of(me));
        let (below, above) = (holder.is_descendant_of(me), me.is_descendant_of(holder));
        // A node below is answered only with what was uploaded here, never with a copy cached
        // from another subtree; a file held further up is asked for there.
        let found = if from_below && holder != me {
            None
        } else {
            match read_file(self.args.storage.as_ref(), &hash) {
                Ok(found) => found.filter(|(meta, _)| !(from_below && meta.cached)).map(Ok),
                Err(e) => Some(Err(FileError::Unavailable(format!("{me} 读取文件失败：{e}")))),
            }
        };
        let outcome = match found {
            Some(outcome) => Some(outcome),
            None if below || (above && !from_above) => match route(me, holder, self.linked_peers()) {
                None => Some(Err(FileError::Unavailable(format!("{holder} 当前联系不上：{me} 没有通往它的可用连接")))),
                Some(via) => {
                    let actions = self.files.fetch(hash, holder, via, waiter);
                    self.file_actions(myself, actions);
                    return;
                }
            },
            None => Some(Err(FileError::Missing(format!("{me} 没有这个文件（可能已超过保存期限）")))),
        };
        if let Some(outcome) = outcome {
            let actions = match waiter {
                Waiter::Local(reply) => {
                    let _ = reply.send(outcome);
                    Vec::new()
                }
                Waiter::Link { peer, req } => crate::runtime::files::answer(peer, req, &outcome),
            };
            self.file_actions(myself, actions);
        }
    }

    fn file_fetch(
        &mut self,
        myself: &ActorRef<NodeMsg>,
        holder: NodeId,
        hash: protocol::files::FileHash,
        reply: RpcReplyPort<crate::runtime::files::Fetched>,
    ) {
        self.file_want(myself, holder, hash, crate::runtime::files::Waiter::Local(reply));
    }

    fn file_in(&mut self, myself: &ActorRef<NodeMsg>, peer: NodeId, frame: protocol::Frame) {
        let me = self.args.me;
        let actions = match frame {
            protocol::Frame::FileGet { req, holder, hash } => {
                // Requests come down from an ancestor (for a holder in this node's subtree), or up
                // from a descendant for a file held here or above.
                let from_above = peer != me && peer.is_ancestor_or_self_of(me);
                let from_below = peer.is_descendant_of(me) && holder.is_ancestor_or_self_of(me);
                if !from_above && !from_below {
                    warn!(node = %me, %peer, %holder, "a file request for a holder not above the asker: ignored");
                    return;
                }
                self.file_want(myself, holder, hash, crate::runtime::files::Waiter::Link { peer, req });
                return;
            }
            protocol::Frame::FileData { req, offset, total, meta, bytes } => {
                self.files.data(peer, req, offset, total, meta, bytes)
            }
            protocol::Frame::FileFail { req, missing, reason } => self.files.failed(peer, req, missing, reason),
            _ => Vec::new(),
        };
        self.file_actions(myself, actions);
    }

    fn parent(&self) -> Option<NodeId> {
        self.args.me.parent()
    }

    fn entry(&mut self, peer: NodeId, role: &str) -> &mut LinkEntry {
        let now = self.args.clock.wall_ms();
        self.links.entry(peer).or_insert_with(|| LinkEntry {
            actor: None,
            status: Arc::new(Mutex::new(LinkStatus::new(peer, role, now))),
            pending: None,
        })
    }

    fn connected(&self, peer: NodeId) -> bool {
        self.links.get(&peer).is_some_and(|e| e.actor.is_some())
    }

    /// Whether `peer` may open a link to this node: any node of its subtree that the topology
    /// knows (a child, or a deeper descendant failing over past its own parent).
    fn check_descendant(&self, peer: NodeId) -> Result<(), String> {
        if !peer.is_descendant_of(self.args.me) {
            return Err(format!("{peer} is not a child of {} (nor in its subtree)", self.args.me));
        }
        if !self.args.topology.contains(peer) {
            return Err(format!("{peer} is not in the topology"));
        }
        Ok(())
    }

    fn role_of(&self, peer: NodeId) -> &'static str {
        if Some(peer) == self.parent() {
            "parent"
        } else if peer.is_ancestor_or_self_of(self.args.me) {
            "failover"
        } else if peer.parent() == Some(self.args.me) {
            "child"
        } else {
            "descendant"
        }
    }

    async fn spawn_link(&mut self, myself: &ActorRef<NodeMsg>, conn: Connection, role: Role) {
        let peer = conn.peer;
        let role_name = self.role_of(peer);
        let link_id = self.next_link_id;
        self.next_link_id += 1;
        let entry = self.entry(peer, role_name);
        // A peer that connects again while its link is live (a restart the link has not noticed
        // yet, or someone else holding its key) waits for its hello before it replaces the link.
        let pending = role == Role::Acceptor && entry.actor.is_some();
        if let Some(old) = entry.pending.take() {
            old.actor.stop(Some("replaced by a newer connection".into()));
        }
        let status = if pending {
            let mut fresh = lock_status(&entry.status).clone();
            fresh.set_state(LinkState::Connecting, self.args.clock.wall_ms());
            Arc::new(Mutex::new(fresh))
        } else {
            if let Some(old) = entry.actor.take() {
                old.stop(Some("replaced by a new connection".into()));
            }
            entry.status.clone()
        };
        lock_status(&status).role = role_name.to_string();
        let root = myself.clone();
        let root_health = myself.clone();
        let root_file = myself.clone();
        let root_silent = myself.clone();
        let args = LinkArgs {
            me: self.args.me,
            conn,
            role,
            store: self.store.clone(),
            store_priority: self.store_priority.clone(),
            storage: self.args.storage.clone(),
            clock: self.args.clock.clone(),
            cfg: self.args.session,
            link_id,
            status: status.clone(),
            on_up: Box::new(move |peer| {
                let _ = root.cast(NodeMsg::LinkUp(peer, link_id));
            }),
            on_health: Box::new(move |peer, delta| {
                let _ = root_health.cast(NodeMsg::HealthIn(peer, delta));
            }),
            on_file: Box::new(move |peer, frame| {
                let _ = root_file.cast(NodeMsg::FileIn(peer, frame));
            }),
            on_silent: Box::new(move |peer, silent| {
                let _ = root_silent.cast(NodeMsg::Silent(peer, silent));
            }),
        };
        match Actor::spawn_linked(None, LinkActor, args, myself.get_cell()).await {
            Ok((actor, _)) if pending => {
                self.entry(peer, role_name).pending = Some(Pending { actor, link_id, status });
            }
            Ok((actor, _)) => self.entry(peer, role_name).actor = Some(actor),
            Err(e) => {
                warn!(node = %self.args.me, %peer, error = %e, "link failed to start");
                if pending {
                    return;
                }
                let mut s = lock_status(&status);
                s.last_error = Some(e.to_string());
                s.set_state(LinkState::Down, self.args.clock.wall_ms());
                drop(s);
                if role == Role::Dialer {
                    self.uplink_lost(myself, peer);
                }
            }
        }
    }

    /// A pending connection of `peer` finished its hello: it becomes the peer's link and the
    /// one it replaces is closed.
    fn promote(&mut self, myself: &ActorRef<NodeMsg>, peer: NodeId) {
        let now = self.args.clock.wall_ms();
        let Some(e) = self.links.get_mut(&peer) else { return };
        let Some(new) = e.pending.take() else { return };
        let old = e.actor.replace(new.actor);
        let old_status = std::mem::replace(&mut e.status, new.status);
        if let Some(old) = old {
            info!(node = %self.args.me, %peer, "a new connection said hello: it replaces the live link");
            old.stop(Some("replaced by a new connection".into()));
            let reason = "被同一节点的新连接替换";
            let mut s = lock_status(&e.status);
            protocol::health::remember_disconnect(&mut s.disconnects, now, reason);
            for (o, c) in &lock_status(&old_status).acked {
                let a = s.acked.entry(*o).or_default();
                *a = (*a).max(*c);
            }
        }
        let lost = self.files.link_lost(peer);
        self.file_actions(myself, lost);
    }

    fn dial(&mut self, myself: &ActorRef<NodeMsg>, target: NodeId) {
        if self.up.dialing.contains(&target) || self.connected(target) {
            return;
        }
        let Some(addr) = self.args.topology.get(target).map(|e| e.quic) else {
            error!(node = %self.args.me, %target, "ancestor is not in the topology");
            return;
        };
        self.up.dialing.insert(target);
        {
            let now = self.args.clock.wall_ms();
            let role = self.role_of(target);
            let e = self.entry(target, role);
            let mut s = lock_status(&e.status);
            if s.state != LinkState::Down {
                s.set_state(LinkState::Connecting, now);
            }
        }
        let dial = self.args.transport.dial(target, addr);
        let me = myself.clone();
        tokio::spawn(async move {
            // quinn's dial has no timeout of its own (an unanswered address waits for the idle
            // timeout); an ancestor that does not answer quickly counts as down.
            let r = match tokio::time::timeout(std::time::Duration::from_millis(DIAL_TIMEOUT_MS), dial).await {
                Ok(r) => r,
                Err(_) => {
                    Err(TransportError::Io(format!("no answer from {target} at {addr} within {DIAL_TIMEOUT_MS} ms")))
                }
            };
            let _ = me.cast(NodeMsg::Dialed(target, r));
        });
    }

    /// Redials the parent with backoff, and makes sure a failover check is scheduled.
    fn parent_unreachable(&mut self, myself: &ActorRef<NodeMsg>) {
        let Some(parent) = self.parent() else { return };
        let now = self.args.clock.wall_ms();
        // A link dialed beside a silent parent is now a failover like any other.
        self.up.hedged = false;
        if self.up.parent_gone_since_ms.is_none() {
            // Gone since it was last heard from.
            let last_seen = self.links.get(&parent).map_or(0, |e| lock_status(&e.status).last_seen_ms);
            self.up.parent_gone_since_ms = Some(if last_seen > 0 { last_seen.min(now) } else { now });
        }
        let wait = self.up.parent_backoff_ms;
        self.up.parent_backoff_ms = (wait * 2).min(self.args.redial.max_ms);
        after(myself, wait, NodeMsg::Dial(parent));
        self.schedule_failover_check(myself);
    }

    fn schedule_failover_check(&mut self, myself: &ActorRef<NodeMsg>) {
        if self.up.failover_check_pending || self.up.ancestors.len() < 2 {
            return;
        }
        let Some(since) = self.up.parent_gone_since_ms else { return };
        let due = since + self.args.failover_after_ms;
        let wait = due.saturating_sub(self.args.clock.wall_ms());
        self.up.failover_check_pending = true;
        after(myself, wait, NodeMsg::FailoverCheck);
    }

    fn failover_check(&mut self, myself: &ActorRef<NodeMsg>) {
        self.up.failover_check_pending = false;
        let Some(since) = self.up.parent_gone_since_ms else { return };
        if self.up.failover.is_some() {
            return;
        }
        let now = self.args.clock.wall_ms();
        if now < since + self.args.failover_after_ms {
            self.schedule_failover_check(myself);
            return;
        }
        let n = self.up.ancestors.len();
        if n < 2 {
            return;
        }
        if self.up.next_failover == 0 || self.up.next_failover >= n {
            self.up.next_failover = 1;
        }
        let target = self.up.ancestors[self.up.next_failover];
        let parent = self.up.ancestors[0];
        warn!(node = %self.args.me, %parent, %target, gone_ms = now - since, "parent unreachable: failing over");
        self.up.failover = Some(target);
        self.dial(myself, target);
    }

    /// The parent's link fell silent with a batch unacked (`silent`), or was heard again. Silent:
    /// the next ancestor up is dialed beside the parent at once, without waiting for the idle
    /// timeout to end the link and the failover delay after it; what waits goes up both ways
    /// (the ancestor applies each event once). Heard again: that extra link is left.
    fn parent_silent(&mut self, myself: &ActorRef<NodeMsg>, peer: NodeId, silent: bool) {
        if Some(peer) != self.parent() {
            return;
        }
        if silent {
            if self.up.failover.is_some() || self.up.ancestors.len() < 2 {
                return;
            }
            self.up.hedges += 1;
            self.up.hedged = true;
            self.up.next_failover = 1;
            let target = self.up.ancestors[1];
            warn!(node = %self.args.me, parent = %peer, %target, "parent silent with a batch unacked: dialing the next ancestor beside it");
            self.up.failover = Some(target);
            self.dial(myself, target);
        } else if self.up.hedged && self.up.parent_gone_since_ms.is_none() {
            self.leave_failover(peer);
        }
    }

    /// The parent is back (linked again, or heard again on a link that fell silent): the
    /// failover link, if any, is closed.
    fn leave_failover(&mut self, parent: NodeId) {
        self.up.hedged = false;
        if let Some(f) = self.up.failover.take() {
            info!(node = %self.args.me, %parent, failover = %f, "parent is back: leaving the failover link");
            if let Some(a) = self.links.get(&f).and_then(|e| e.actor.clone()) {
                a.stop(Some(format!("parent {parent} is back")));
            }
        }
    }

    /// An uplink (parent or failover) ended or could not be made.
    fn uplink_lost(&mut self, myself: &ActorRef<NodeMsg>, peer: NodeId) {
        if Some(peer) == self.parent() {
            self.parent_unreachable(myself);
        } else if self.up.failover == Some(peer) {
            self.up.failover = None;
            self.up.hedged = false;
            if self.up.parent_gone_since_ms.is_some() {
                // Try the next ancestor up after a pause.
                self.up.next_failover += 1;
                self.up.failover_check_pending = true;
                after(myself, self.args.redial.min_ms, NodeMsg::FailoverCheck);
            }
        }
    }

    fn link_of(&self, cell: &ActorCell) -> Option<NodeId> {
        let id = cell.get_id();
        self.links.iter().find(|(_, e)| e.actor.as_ref().is_some_and(|a| a.get_id() == id)).map(|(p, _)| *p)
    }

    /// A pending connection (see [`LinkEntry::pending`]) ended before its hello: the live link
    /// stays; the attempt is counted and logged.
    fn pending_ended(&mut self, cell: &ActorCell, reason: Option<String>) -> bool {
        let id = cell.get_id();
        let Some((peer, e)) =
            self.links.iter_mut().find(|(_, e)| e.pending.as_ref().is_some_and(|p| p.actor.get_id() == id))
        else {
            return false;
        };
        let peer = *peer;
        e.pending = None;
        let why = reason.unwrap_or_else(|| "closed".into());
        warn!(node = %self.args.me, %peer, reason = %why, "a second connection ended before its hello: the live link stays");
        self.replacements_refused += 1;
        self.last_refusal = Some(format!("{peer}: 第二个连接未完成握手即断开，原连接保留（{why}）"));
        true
    }

    fn link_ended(&mut self, myself: &ActorRef<NodeMsg>, peer: NodeId, reason: Option<String>) {
        let lost = self.files.link_lost(peer);
        self.file_actions(myself, lost);
        {
            let Some(e) = self.links.get_mut(&peer) else { return };
            if let Some(p) = e.pending.take() {
                // The link a newer connection was to replace is gone already: the newer one takes
                // its place now, hello or not.
                e.actor = Some(p.actor);
                e.status = p.status;
                if let Some(reason) = reason {
                    let mut s = lock_status(&e.status);
                    protocol::health::remember_disconnect(&mut s.disconnects, self.args.clock.wall_ms(), &reason);
                }
                self.health_touch(myself, peer);
                return;
            }
            e.actor = None;
            let mut s = lock_status(&e.status);
            if reason.is_some() && s.last_error.is_none() {
                s.last_error = reason;
            }
            s.set_state(LinkState::Down, self.args.clock.wall_ms());
        }
        self.health.uplinks.remove(&peer);
        self.health_touch(myself, peer);
        if peer.is_ancestor_or_self_of(self.args.me) {
            self.uplink_lost(myself, peer);
        } else if peer.parent() != Some(self.args.me) {
            // A descendant that had failed over here went back to its own parent: forget it.
            self.links.remove(&peer);
        }
    }

    fn link_up(&mut self, myself: &ActorRef<NodeMsg>, peer: NodeId) {
        if peer.is_ancestor_or_self_of(self.args.me) {
            // A new session to an ancestor starts from the whole table.
            self.health.uplinks.insert(peer, 0);
        }
        self.health_touch(myself, peer);
        if Some(peer) == self.parent() {
            self.up.parent_gone_since_ms = None;
            self.up.parent_backoff_ms = self.args.redial.min_ms;
            self.up.next_failover = 1;
            self.leave_failover(peer);
        } else if self.up.failover == Some(peer) {
            info!(node = %self.args.me, ancestor = %peer, "failed over");
        }
    }
}

/// The health plane (see `runtime::health`).
impl NodeRun {
    /// A link to `peer` changed: its view (a child) or this node's report (an uplink) is remade
    /// at the next flush.
    fn health_touch(&mut self, myself: &ActorRef<NodeMsg>, peer: NodeId) {
        if peer.parent() == Some(self.args.me) {
            self.health.children_dirty.insert(peer);
        } else if peer.is_ancestor_or_self_of(self.args.me) {
            self.health.own_dirty = true;
        } else {
            return;
        }
        self.schedule_health_flush(myself);
    }

    /// After a restart: each link's reconnects and last disconnects, and when each child was last
    /// heard, come back from the kept health table.
    fn restore_link_histories(&mut self) {
        use protocol::health::Phase;
        let me = self.args.me;
        let shared = self.health.shared.clone();
        let t = shared.lock();
        for (peer, e) in &self.links {
            let mut s = lock_status(&e.status);
            if peer.parent() == Some(me) {
                if let Some((view, _)) = t.link(*peer) {
                    s.reconnects = view.reconnects;
                    s.disconnects = view.disconnects.clone();
                    s.last_seen_ms = view.heard_ms;
                    s.ever_up = view.heard_ms > 0;
                    if matches!(view.phase, Phase::Up | Phase::Connecting) {
                        self.health.were_connected.insert(*peer);
                    }
                }
            } else if Some(*peer) == me.parent()
                && let Some((r, _)) = t.report(me)
            {
                s.reconnects = r.reconnects;
                s.disconnects = r.disconnects.clone();
                s.ever_up = r.uplink == Phase::Up || !r.disconnects.is_empty();
            }
        }
    }

    fn schedule_health_flush(&mut self, myself: &ActorRef<NodeMsg>) {
        if !self.health.flush_pending {
            self.health.flush_pending = true;
            after(myself, self.health.timing.flush_ms, NodeMsg::HealthFlush);
        }
    }

    /// What waits to go up, and how long the oldest of it has waited (ms).
    async fn uplink_backlog(&self) -> (u64, u64) {
        let up = [self.parent(), self.up.failover]
            .into_iter()
            .flatten()
            .filter_map(|p| self.links.get(&p))
            .map(|e| lock_status(&e.status).clone())
            .find(|s| s.state == LinkState::Up);
        if let Some(s) = up {
            return (s.backlog_out, s.oldest_unsent_age_ms);
        }
        let Some(parent) = self.parent().and_then(|p| self.links.get(&p)) else { return (0, 0) };
        let acked = lock_status(&parent.status).acked.clone();
        self.waiting_behind(&acked).await
    }

    /// What this node holds of its subtree beyond `acked` (what a peer last confirmed): how many
    /// events, and how long the oldest has waited (ms).
    async fn waiting_behind(&self, acked: &BTreeMap<NodeId, u64>) -> (u64, u64) {
        let me = self.args.me;
        let own =
            ractor::call_t!(self.store, |reply| StoreMsg::CursorsUnder { root: me, reply }, 5_000).unwrap_or_default();
        waiting_for(self.args.storage.as_ref(), self.args.clock.wall_us(), &own, acked)
    }

    async fn own_report(&self, now_ms: u64) -> protocol::health::SelfReport {
        use protocol::health::{Phase, SelfReport};
        let parent = self.parent().and_then(|p| self.links.get(&p)).map(|e| lock_status(&e.status).clone());
        let failover = self
            .up
            .failover
            .filter(|f| self.links.get(f).is_some_and(|e| lock_status(&e.status).state == LinkState::Up));
        let (backlog, oldest_ms) = self.uplink_backlog().await;
        let restoring = ractor::call_t!(self.store, StoreMsg::Stats, 5_000).map(|s| s.restoring).unwrap_or(false);
        let me = self.args.me;
        let cameras = crate::runtime::cameras::report_counts(&self.args.reads, me, &self.cameras, now_ms)
            .await
            .unwrap_or_else(|e| {
                warn!(node = %me, error = %e, "could not count the cameras for the health report");
                None
            });
        SelfReport {
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_ms: self.health.started_ms,
            reported_ms: now_ms,
            uplink: parent.as_ref().map_or(Phase::Up, |p| crate::runtime::health::link_view(p).phase),
            failover,
            backlog,
            oldest_ms,
            reconnects: parent.as_ref().map_or(0, |p| p.reconnects),
            disconnects: parent.map(|p| p.disconnects).unwrap_or_default(),
            cert_days_left: self.health.cert_days_left(now_ms),
            disk_bytes: self.args.storage.disk_bytes(),
            restoring,
            cameras,
        }
    }

    /// Remakes what changed, keeps it, and sends each uplink what it has not had.
    async fn health_flush(&mut self) {
        use protocol::health::{HEALTH_ROWS_PER_FRAME, HealthDelta, HealthRow, Part};
        self.health.flush_pending = false;
        let me = self.args.me;
        let now = self.args.clock.wall_ms();
        let report = if std::mem::take(&mut self.health.own_dirty) { Some(self.own_report(now).await) } else { None };
        let in_grace = now < self.health.grace_until_ms;
        let mut views = Vec::new();
        for child in std::mem::take(&mut self.health.children_dirty) {
            let Some(e) = self.links.get(&child) else { continue };
            let s = lock_status(&e.status).clone();
            if in_grace && s.state != LinkState::Up && self.health.were_connected.contains(&child) {
                continue;
            }
            views.push((child, crate::runtime::health::link_view(&s)));
        }
        let shared = self.health.shared.clone();
        let mut t = shared.lock();
        if let Some(r) = report {
            let version = t.next_version(me, true, now);
            t.put(HealthRow { node: me, version, part: Part::Report(r) });
        }
        for (child, view) in views {
            if t.link(child).is_none_or(|(old, _)| crate::runtime::health::view_changed(old, &view)) {
                let version = t.next_version(child, false, now);
                t.put(HealthRow { node: child, version, part: Part::Link(view) });
            }
        }
        let (batch, upto) = crate::runtime::health::persist(&t, self.health.persisted_upto);
        self.health.persisted_upto = upto;
        if !batch.is_empty() {
            let _ = self.store.cast(StoreMsg::PutHealth(batch));
        }
        for (peer, sent) in self.health.uplinks.iter_mut() {
            let Some(link) = self.links.get(peer).and_then(|e| e.actor.clone()) else { continue };
            loop {
                let (rows, next) = t.delta_since(*sent, HEALTH_ROWS_PER_FRAME);
                if rows.is_empty() {
                    break;
                }
                if link.cast(LinkMsg::Health(HealthDelta { after: *sent, upto: next, rows })).is_err() {
                    break;
                }
                *sent = next;
            }
        }
    }
}

/// Events held here and not confirmed by a peer that confirmed `acked`: how many, and how long
/// the oldest has waited (ms).
fn waiting_for(
    storage: &dyn Storage,
    now_us: u64,
    held: &[(NodeId, u64)],
    acked: &BTreeMap<NodeId, u64>,
) -> (u64, u64) {
    let mut behind: Vec<(u64, NodeId, u64)> = held
        .iter()
        .filter_map(|(o, c)| {
            let a = acked.get(o).copied().unwrap_or(0);
            (*c > a).then_some((c - a, *o, a))
        })
        .collect();
    let backlog = behind.iter().map(|b| b.0).sum();
    behind.sort_by_key(|b| std::cmp::Reverse(b.0));
    let age =
        crate::runtime::store::oldest_waiting_ms(storage, now_us, behind.into_iter().map(|(_, o, after)| (o, after)));
    (backlog, age)
}

impl Actor for NodeActor {
    type Msg = NodeMsg;
    type State = NodeRun;
    type Arguments = NodeArgs;

    async fn pre_start(&self, myself: ActorRef<NodeMsg>, args: NodeArgs) -> Result<NodeRun, ActorProcessingErr> {
        let store_priority = PriorityInbox::default();
        let (store, _) = Actor::spawn_linked(
            None,
            StoreActor,
            StoreArgs {
                me: args.me,
                storage: args.storage.clone(),
                clock: args.clock.clone(),
                priority: store_priority.clone(),
                registry_written: args.reads.registry_written(),
                seal_keys: args.seal_keys.clone(),
                own_cert: args.own_cert.clone(),
                on_revoked: Some({
                    let transport = args.transport.clone();
                    let book = args.seal_keys.book.clone();
                    let me = args.me;
                    Arc::new(move |fps: &[String]| {
                        warn!(node = %me, certificates = fps.len(), "certificates revoked: refused from now on");
                        transport.revoke(fps);
                        book.revoke(fps);
                    })
                }),
            },
            myself.get_cell(),
        )
        .await?;
        // Certificates revoked by events held here are refused before anyone can link.
        let revoked = crate::runtime::store::revoked_certificates(args.storage.as_ref())?;
        if !revoked.is_empty() {
            args.transport.revoke(&revoked);
        }
        let (listener, _) = Actor::spawn_linked(
            None,
            ListenerActor,
            ListenerArgs { transport: args.transport.clone(), root: myself.clone() },
            myself.get_cell(),
        )
        .await?;
        let up = Uplink {
            ancestors: args.me.ancestors().filter(|a| args.topology.contains(*a)).collect(),
            parent_gone_since_ms: None,
            dialing: BTreeSet::new(),
            parent_backoff_ms: args.redial.min_ms,
            failover: None,
            next_failover: 1,
            failover_check_pending: false,
            hedged: false,
            hedges: 0,
        };
        // The health table as last kept: the link histories and last values survive a restart.
        let table = crate::runtime::health::load(args.storage.as_ref())?;
        let started_ms = args.clock.wall_ms();
        let shared = SharedHealth::new(table, args.health);
        let cameras = crate::runtime::cameras::load(args.storage.as_ref())?;
        let mut health = Plane::new(shared, started_ms, args.cert_not_after_ms);
        health.persisted_upto = health.shared.lock().head();
        health.grace_until_ms = started_ms + args.failover_after_ms;
        let mut run = NodeRun {
            args,
            store,
            store_priority,
            links: BTreeMap::new(),
            next_link_id: 1,
            listener,
            up,
            refused: 0,
            last_refusal: None,
            replacements_refused: 0,
            health,
            files: Default::default(),
            cameras,
        };
        // Children from the topology are listed (as never connected) from the start.
        let me_id = run.args.me;
        let children: Vec<NodeId> = run.args.topology.children(me_id).map(|e| e.id).collect();
        for c in children {
            run.entry(c, "child");
        }
        if let Some(p) = run.parent() {
            run.entry(p, "parent");
        }
        run.restore_link_histories();
        run.health.own_dirty = true;
        run.schedule_health_flush(&myself);
        after(&myself, run.health.timing.refresh_ms, NodeMsg::HealthRefresh);
        if !run.health.were_connected.is_empty() {
            after(&myself, run.args.failover_after_ms, NodeMsg::HealthGrace);
        }
        if let Some(p) = run.parent() {
            // Never heard from yet: the failover clock starts now.
            run.up.parent_gone_since_ms = Some(run.args.clock.wall_ms());
            run.dial(&myself, p);
            run.schedule_failover_check(&myself);
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
                let verdict = match st.check_descendant(peer) {
                    // A descendant the topology file lacks may still be registered (joined at run time).
                    Err(_) if peer.is_descendant_of(st.args.me) => {
                        crate::runtime::join::check_registered(&st.args.reads, peer).await
                    }
                    v => v,
                };
                match verdict {
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
            NodeMsg::Dial(target) => {
                // A failover target no longer wanted (the parent came back) is not dialed.
                if Some(target) == st.parent() || st.up.failover == Some(target) {
                    st.dial(&myself, target);
                }
            }
            NodeMsg::Dialed(target, result) => {
                st.up.dialing.remove(&target);
                let wanted = Some(target) == st.parent() || st.up.failover == Some(target);
                match result {
                    Ok(mut conn) if !wanted => conn.sender.close("not needed any more"),
                    Ok(conn) => st.spawn_link(&myself, conn, Role::Dialer).await,
                    Err(e) => {
                        let now = st.args.clock.wall_ms();
                        let me = st.args.me;
                        let role = st.role_of(target);
                        let entry = st.entry(target, role);
                        let mut s = lock_status(&entry.status);
                        if s.last_error.as_deref() != Some(&e.to_string()) {
                            warn!(node = %me, %target, error = %e, "cannot reach {role}; will retry");
                        }
                        s.last_error = Some(e.to_string());
                        s.set_state(LinkState::Down, now);
                        drop(s);
                        if wanted {
                            st.uplink_lost(&myself, target);
                        }
                    }
                }
            }
            NodeMsg::LinkUp(peer, link_id) => {
                let e = st.links.get(&peer);
                if e.and_then(|e| e.pending.as_ref()).is_some_and(|p| p.link_id == link_id) {
                    st.promote(&myself, peer);
                }
                st.link_up(&myself, peer);
            }
            NodeMsg::FailoverCheck => st.failover_check(&myself),
            NodeMsg::Silent(peer, silent) => st.parent_silent(&myself, peer, silent),
            NodeMsg::Unregistered(peer) => {
                if st.check_descendant(peer).is_err()
                    && let Some(link) = st.links.get(&peer).and_then(|e| e.actor.clone())
                {
                    warn!(node = %st.args.me, %peer, "removed from the registry: closing its link");
                    st.refused += 1;
                    st.last_refusal = Some(format!("{peer}: removed from the registry"));
                    link.stop(Some(format!("{peer} was removed from {}'s registry", st.args.me)));
                    if let Some(p) = st.links.get_mut(&peer).and_then(|e| e.pending.take()) {
                        p.actor.stop(Some("removed from the registry".into()));
                    }
                }
            }
            NodeMsg::Status(reply) => {
                let store = ractor::call_t!(st.store, StoreMsg::Stats, 5_000).unwrap_or_default();
                let me = st.args.me;
                let mut parent = st.parent().and_then(|p| st.links.get(&p)).map(|e| lock_status(&e.status).clone());
                let failover = st.up.failover.and_then(|f| st.links.get(&f)).map(|e| lock_status(&e.status).clone());
                // With no link to the parent, what waits for it is what it had not confirmed.
                if let Some(p) = parent.as_mut().filter(|p| p.state != LinkState::Up) {
                    let (backlog, age) = st.waiting_behind(&p.acked).await;
                    p.backlog_out = backlog;
                    p.oldest_unsent_age_ms = age;
                }
                let children = st
                    .links
                    .iter()
                    .filter(|(p, _)| p.is_descendant_of(me))
                    .map(|(_, e)| lock_status(&e.status).clone())
                    .collect();
                let name = st.args.topology.get(me).map(|e| e.name.clone()).unwrap_or_default();
                let _ = reply.send(NodeStatus {
                    node: me,
                    tier: me.tier(),
                    name,
                    parent,
                    failover,
                    children,
                    store,
                    refused: st.refused,
                    last_refusal: st.last_refusal.clone(),
                    denied_requests: 0,
                    turned_away: st.args.transport.turned_away(),
                    replacements_refused: st.replacements_refused,
                    hedges: st.up.hedges,
                });
            }
            NodeMsg::Store(reply) => {
                let _ = reply.send(st.store.clone());
            }
            NodeMsg::FileIn(peer, frame) => st.file_in(&myself, peer, frame),
            NodeMsg::FileFetch { holder, hash, reply } => st.file_fetch(&myself, holder, hash, reply),
            NodeMsg::FileTimeout(req) => {
                let actions = st.files.timed_out(req);
                st.file_actions(&myself, actions);
            }
            NodeMsg::HealthIn(peer, delta) => {
                let merged = st.health.shared.lock().merge(peer, delta);
                if let Some(first) = merged.rejected.first() {
                    warn!(node = %st.args.me, %peer, rejected = merged.rejected.len(), %first, "health rows refused");
                }
                if merged.taken > 0 {
                    st.schedule_health_flush(&myself);
                }
            }
            NodeMsg::HealthFlush => st.health_flush().await,
            NodeMsg::HealthRefresh => {
                st.health.own_dirty = true;
                st.health_flush().await;
                after(&myself, st.health.timing.refresh_ms, NodeMsg::HealthRefresh);
            }
            NodeMsg::HealthGrace => {
                let children: Vec<NodeId> = std::mem::take(&mut st.health.were_connected).into_iter().collect();
                st.health.children_dirty.extend(children);
                st.schedule_health_flush(&myself);
            }
            NodeMsg::Health(reply) => {
                let _ = reply.send(st.health.shared.clone());
            }
            NodeMsg::Cameras(reply) => {
                let _ = reply.send(st.cameras.clone());
            }
            NodeMsg::CamerasChanged => {
                st.health.own_dirty = true;
                st.schedule_health_flush(&myself);
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
        } else {
            st.pending_ended(&cell, reason);
        }
        Ok(())
    }

    async fn post_stop(&self, _myself: ActorRef<NodeMsg>, st: &mut NodeRun) -> Result<(), ActorProcessingErr> {
        st.listener.stop(None);
        for e in st.links.values() {
            if let Some(a) = &e.actor {
                a.stop(Some("node shutting down".into()));
            }
            if let Some(p) = &e.pending {
                p.actor.stop(Some("node shutting down".into()));
            }
        }
        st.store.stop(None);
        st.args.transport.shutdown();
        Ok(())
    }
}
