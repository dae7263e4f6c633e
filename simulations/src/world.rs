//! The simulated province: every node's real actors (root, store, listener, links, and the
//! scheduler with the case scan and the warning engine) on one tokio current-thread runtime with a
//! paused clock, over [`SimNet`] and [`MemStorage`]. Crashing a node stops its actors and drops
//! what its storage had not flushed; restarting it starts fresh actors on the same storage, exactly
//! as a process restart would. A school's cameras beat into its node as the device intake would
//! keep their heartbeats ([`World::set_beats`]), and a ledger write wakes its warning engine as the
//! admin API's does ([`World::wake`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use node::clock::Clock;
use node::runtime::cameras::{Beat, SharedCameras, beat_op};
use node::runtime::root::{NodeActor, NodeArgs, NodeMsg, RedialConfig};
use node::runtime::store::{StoreMsg, StoredEvent};
use node::runtime::warnings::Engine;
use node::storage::mem::MemStorage;
use protocol::{Body, SessionConfig};
use ractor::{Actor, ActorRef};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use topology::{NodeId, Topology};

use crate::net::SimNet;

/// How the simulated nodes redial an unreachable uplink: 1 s, doubling up to 30 s.
pub const REDIAL: RedialConfig = RedialConfig { min_ms: 1_000, max_ms: 30_000 };

/// Simulated time: tokio's paused clock, with wall time starting at `base_wall_ms`.
#[derive(Debug)]
pub struct SimClock {
    start: Instant,
    base_wall_ms: u64,
}

impl SimClock {
    pub fn new(base_wall_ms: u64) -> SimClock {
        SimClock { start: Instant::now(), base_wall_ms }
    }

    /// Simulated milliseconds since the run began.
    pub fn elapsed_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

impl Clock for SimClock {
    fn now_ms(&self) -> u64 {
        self.elapsed_ms()
    }

    fn wall_ms(&self) -> u64 {
        self.base_wall_ms + self.elapsed_ms()
    }

    fn wall_us(&self) -> u64 {
        self.base_wall_ms * 1000 + self.start.elapsed().as_micros() as u64
    }
}

/// How the nodes are configured in a run.
#[derive(Clone, Copy, Debug)]
pub struct NodeSettings {
    pub session: SessionConfig,
    pub failover_after_ms: u64,
    pub case_scan_ms: u64,
    pub health: protocol::health::HealthTiming,
}

impl Default for NodeSettings {
    /// Production keeps links alive every 0.5 s; a simulated province of 17,000 links over a whole
    /// day would spend its time on keep-alives, so the simulation uses slower timers (failover after
    /// 15 minutes instead of 3 s, keep-alives every 5 minutes instead of 0.5 s). The protocol is the same; only the constants differ.
    fn default() -> NodeSettings {
        NodeSettings {
            session: SessionConfig {
                keepalive_ms: 300_000,
                idle_timeout_ms: 900_000,
                rto_ms: 5_000,
                // A parent silent this long with a batch unacked: dial the grandparent beside it.
                suspect_after_ms: 180_000,
                ..SessionConfig::default()
            },
            failover_after_ms: 900_000,
            case_scan_ms: 300_000,
            // Re-reports every 30 minutes instead of 30 s, for the same reason (the heartbeats of
            // 17,362 nodes are most of the health traffic); changes still go up within 5 s of
            // happening, so the bound of the health invariant does not depend on it.
            health: protocol::health::HealthTiming {
                refresh_ms: 1_800_000,
                flush_ms: 5_000,
                stale_after_ms: 5_700_000,
                ..protocol::health::HealthTiming::default()
            },
        }
    }
}

/// One node: its disk, its cameras' heartbeats, and its actors while it runs.
pub struct SimNode {
    pub storage: MemStorage,
    /// The school's cameras as its devices report them: each one's last heartbeat. The devices
    /// keep beating while the node is down; a restarted node hears them again at once.
    pub beats: BTreeMap<String, Beat>,
    running: Option<Running>,
}

struct Running {
    node: ActorRef<NodeMsg>,
    store: ActorRef<StoreMsg>,
    task: JoinHandle<()>,
    /// The scheduler task (case scan and warning engine); `None` once stopped for the final checks.
    scheduler: Option<JoinHandle<()>>,
    engine: Engine,
    /// Wakes the scheduler at once (a ledger written).
    wake: Arc<tokio::sync::Notify>,
    cameras: SharedCameras,
}

/// The secret the simulated nodes' seal keys derive from ([`protocol::seal::HashKeys`]): keyed
/// hashes in place of certificates' signatures, the same checks at a fraction of the cost.
pub const SEAL_SEED: u64 = 0x006d_696e_6763_6875;

/// How long after its last heartbeat a camera counts as offline (the default settings; only for
/// [`SharedCameras::record`]'s answer of whether the state changed).
const OFFLINE_AFTER_MS: u64 = 180_000;

pub struct World {
    pub topology: Arc<Topology>,
    pub net: SimNet,
    pub clock: Arc<SimClock>,
    pub settings: NodeSettings,
    pub nodes: BTreeMap<NodeId, SimNode>,
}

/// Why a write at a node did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// The node is down (crashed and not restarted yet).
    Down,
    /// The node refused it (restoring, or a check failed): the text says why.
    Refused(String),
}

impl World {
    /// Builds the world (nothing runs yet).
    pub fn new(topology: Topology, net: SimNet, clock: Arc<SimClock>, settings: NodeSettings) -> World {
        let nodes = topology
            .nodes()
            .map(|e| (e.id, SimNode { storage: MemStorage::new(), beats: BTreeMap::new(), running: None }))
            .collect();
        World { topology: Arc::new(topology), net, clock, settings, nodes }
    }

    pub fn is_running(&self, id: NodeId) -> bool {
        self.nodes.get(&id).is_some_and(|n| n.running.is_some())
    }

    /// Node `id`'s root actor, while it runs.
    pub fn node_ref(&self, id: NodeId) -> Option<ActorRef<NodeMsg>> {
        self.nodes.get(&id).and_then(|n| n.running.as_ref()).map(|r| r.node.clone())
    }

    /// Starts node `id`'s actors on its storage.
    pub async fn start(&mut self, id: NodeId) -> Result<(), String> {
        let entry = self.topology.get(id).ok_or_else(|| format!("{id} is not in the topology"))?;
        let addr = entry.quic;
        let Some(n) = self.nodes.get_mut(&id) else { return Err(format!("{id} unknown")) };
        if n.running.is_some() {
            return Ok(());
        }
        let transport = self.net.endpoint(id, addr);
        let clock: Arc<dyn Clock> = self.clock.clone();
        // One Reads for the node's actors and its engine: they share the registry count.
        let reads = node::runtime::reads::Reads::inline(Arc::new(n.storage.clone()));
        let args = NodeArgs {
            me: id,
            topology: self.topology.clone(),
            storage: Arc::new(n.storage.clone()),
            reads: reads.clone(),
            transport: Arc::new(transport),
            clock: clock.clone(),
            session: self.settings.session,
            redial: REDIAL,
            failover_after_ms: self.settings.failover_after_ms,
            health: self.settings.health,
            cert_not_after_ms: None,
            seal_keys: node::runtime::store::SealKeys::simulated(SEAL_SEED, id),
            own_cert: None,
        };
        let (node, task) = Actor::spawn(None, NodeActor, args).await.map_err(|e| format!("{id}: {e}"))?;
        let store = ractor::call_t!(node, NodeMsg::Store, 60_000).map_err(|e| format!("{id}: {e}"))?;
        let cameras = ractor::call_t!(node, NodeMsg::Cameras, 60_000).map_err(|e| format!("{id}: {e}"))?;
        let engine = Engine {
            me: id,
            store: store.clone(),
            node: node.clone(),
            reads,
            clock,
            topology: self.topology.clone(),
            cameras: Some(cameras.clone()),
            lock: Default::default(),
            files: Default::default(),
        };
        let wake = Arc::new(tokio::sync::Notify::new());
        let scheduler =
            node::runtime::scheduler::spawn_scheduler(engine.clone(), self.settings.case_scan_ms, wake.clone(), None);
        let running = Running { node, store, task, scheduler: Some(scheduler), engine, wake, cameras };
        // The devices beat again: the node hears each camera's current state.
        let beats: Vec<(String, Beat)> = n.beats.iter().map(|(c, b)| (c.clone(), b.clone())).collect();
        keep_beats(&running, beats);
        n.running = Some(running);
        Ok(())
    }

    /// Cameras of school `id` beat: each one's heartbeat is kept (in the devices' truth, and at
    /// the node while it runs, in memory and on its disk, as the device intake keeps them).
    pub fn set_beats(&mut self, id: NodeId, beats: Vec<(String, Beat)>) {
        let Some(n) = self.nodes.get_mut(&id) else { return };
        for (c, b) in &beats {
            n.beats.insert(c.clone(), b.clone());
        }
        if let Some(r) = &n.running {
            keep_beats(r, beats);
        }
    }

    /// Wakes node `id`'s scheduler now (the admin API does so after a ledger write).
    pub fn wake(&self, id: NodeId) {
        if let Some(r) = self.nodes.get(&id).and_then(|n| n.running.as_ref()) {
            r.wake.notify_one();
        }
    }

    /// Node `id`'s warning engine, while it runs.
    pub fn engine(&self, id: NodeId) -> Option<&Engine> {
        self.nodes.get(&id).and_then(|n| n.running.as_ref()).map(|r| &r.engine)
    }

    /// Stops every node's scheduler (the case scan and the warning engine), for the final checks:
    /// from then on only what the checks run writes.
    pub fn stop_schedulers(&mut self) {
        for n in self.nodes.values_mut() {
            if let Some(h) = n.running.as_mut().and_then(|r| r.scheduler.take()) {
                h.abort();
            }
        }
    }

    /// Stops node `id` as a power cut would: its actors end, its endpoint disappears, and its
    /// storage keeps only what was flushed. `wipe` also loses the disk.
    pub async fn crash(&mut self, id: NodeId, wipe: bool) {
        let Some(n) = self.nodes.get_mut(&id) else { return };
        if let Some(r) = n.running.take() {
            if let Some(h) = r.scheduler {
                h.abort();
            }
            r.node.stop(Some("crash".into()));
            let _ = r.task.await;
        }
        self.net.endpoint_down(id);
        n.storage.crash();
        if wipe {
            n.storage.wipe();
        }
    }

    fn store(&self, id: NodeId) -> Result<ActorRef<StoreMsg>, WriteError> {
        self.nodes.get(&id).and_then(|n| n.running.as_ref()).map(|r| r.store.clone()).ok_or(WriteError::Down)
    }

    /// Writes local events at node `id` (as its admin API would), durably.
    pub async fn append(&self, id: NodeId, items: Vec<(NodeId, Body)>) -> Result<Vec<StoredEvent>, WriteError> {
        let store = self.store(id)?;
        match ractor::call_t!(store, |reply| StoreMsg::Append { items, by: None, reply }, 600_000) {
            Ok(Ok(stored)) => Ok(stored),
            Ok(Err(e)) => Err(WriteError::Refused(e.to_string())),
            Err(_) => Err(WriteError::Down),
        }
    }

    /// Stops every node (end of run).
    pub async fn shutdown(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            if let Some(r) = self.nodes.get_mut(&id).and_then(|n| n.running.take()) {
                if let Some(h) = r.scheduler {
                    h.abort();
                }
                r.node.stop(None);
                let _ = r.task.await;
            }
        }
    }
}

/// Keeps `beats` at a running node as its device intake does: in the shared map the engine and the
/// health report read, on disk without waiting for a flush (last-value state), and the health
/// report told when a camera's state changed.
fn keep_beats(r: &Running, beats: Vec<(String, Beat)>) {
    if beats.is_empty() {
        return;
    }
    let mut changed = false;
    let mut ops = Vec::with_capacity(beats.len());
    for (camera, beat) in beats {
        ops.push(beat_op(&camera, &beat));
        changed |= r.cameras.record(&camera, beat, OFFLINE_AFTER_MS);
    }
    let _ = r.store.cast(StoreMsg::WriteLocal { ops, reply: None });
    if changed {
        let _ = r.node.cast(NodeMsg::CamerasChanged);
    }
}
