//! The simulator's seeded in-memory network: a [`SimNet`] of [`SimEndpoint`]s, each a
//! [`node::transport::Transport`], so the real node actors run over it unchanged.
//!
//! # Model
//!
//! - Every node registers one endpoint at a (fake) `SocketAddr`. A dial reaches the endpoint
//!   registered at that address if it is up, names the expected node, and neither the pair is
//!   partitioned nor either side isolated. It succeeds after one simulated round trip; an
//!   unreachable peer makes the dial fail with [`TransportError::Handshake`] after
//!   [`DIAL_FAIL_MS`] (quinn would wait for its idle timeout; the node's own dial timeout usually
//!   fires first). The acceptor learns the dialer's `NodeId` from the net (standing for mTLS).
//! - A connection has two lanes per direction (control, bulk). Each frame gets a latency drawn
//!   from [`LinkFaults::latency_ms`]; its delivery time is `max(previous delivery time on the lane,
//!   now + latency)`, so each lane stays ordered. Frames wait in a queue per lane; the receiver
//!   waits until the net's one delivery timer wakes it when the earliest head is due — no task
//!   or timer per frame, lane or receiver, and one wake-up per delivery. When frames of both
//!   lanes are due, control comes first.
//! - Beyond the transport contract, for stressing the sessions: with probability `loss` a frame is
//!   dropped, `duplicate` delivered twice, `reorder` swapped with the next frame of its lane (if that
//!   frame comes while it is still queued; otherwise it arrives on time). Frames are never cut.
//! - `close(reason)` on a sender closes the whole connection: this end fails at once (`Closed("connection
//!   closed locally")`), the peer's receiver gets `Closed(reason)` after the frames sent before it on
//!   that lane, and the peer's sends fail from the moment the close arrives. Dropping both senders
//!   of an end finishes its lanes: the peer's receiver gets `Ok(None)` once the control lane has
//!   drained (frames still queued on the bulk lane are lost then, as with quic.rs).
//! - Partitions and isolation break existing connections at once on both ends with
//!   `Closed("partitioned")` / `Closed("isolated")`. An endpoint shut down (or crashed with
//!   [`SimNet::endpoint_down`]) fails its own connections at once and tells each peer after the
//!   latency, stops accepting, and can no longer dial or be dialled.
//!
//! # Determinism
//!
//! One `ChaCha8Rng` seeded from the seed draws every random choice (latencies, faults, round trips)
//! in the order the calls happen; the state lives in `BTreeMap`s behind one mutex; time is tokio's
//! (`Instant`, `sleep_until`), which a paused runtime advances only when everything is idle. There
//! are no threads, no real I/O and no `std::time`. So on a `current_thread` runtime the same seed and
//! the same sequence of calls give the same run.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use node::transport::{BoxFuture, Connection, FrameReceiver, FrameSender, StickyEnd, Transport, TransportError};
use protocol::wire::FRAME_BYTES_MAX;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::Notify;
use tokio::time::{Duration, Instant};
use topology::{NodeId, Tier};

/// Default time after which a dial to an unreachable peer fails (unregistered address, endpoint
/// down, partitioned or isolated). Longer than the node's own dial timeout, like quinn's.
pub const DIAL_FAIL_MS: u64 = 5_000;
/// Latencies are capped at this many milliseconds (an hour), so instants cannot overflow.
pub const LATENCY_MS_MAX: u64 = 3_600_000;

/// Close reason on both ends of connections broken by [`SimNet::partition`].
pub const REASON_PARTITIONED: &str = "partitioned";
/// Close reason on both ends of connections broken by [`SimNet::isolate`].
pub const REASON_ISOLATED: &str = "isolated";
/// Close reason a peer sees when an endpoint is shut down ([`Transport::shutdown`]).
pub const REASON_SHUTDOWN: &str = "endpoint shut down";
/// Close reason for both ends when an endpoint crashes ([`SimNet::endpoint_down`]).
pub const REASON_DOWN: &str = "endpoint down";
/// Close reason an end sees for its own connection once it closed it (as quinn's `LocallyClosed`).
pub const REASON_LOCAL: &str = "connection closed locally";
/// Close reason a peer's sends see once every handle of the other end was dropped.
pub const REASON_PEER_GONE: &str = "closed by peer (code 0)";

/// Fault settings for every link of the net; changeable at run time with [`SimNet::set_faults`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkFaults {
    /// One-way latency per frame, drawn uniformly from `min..=max` milliseconds.
    pub latency_ms: (u64, u64),
    /// Probability that a frame is dropped.
    pub loss: f64,
    /// Probability that a frame is delivered twice.
    pub duplicate: f64,
    /// Probability that a frame is swapped with the next frame of its lane.
    pub reorder: f64,
}

impl Default for LinkFaults {
    /// Latency 2..=20 ms, no loss, no duplication, no reordering.
    fn default() -> LinkFaults {
        LinkFaults { latency_ms: (2, 20), loss: 0.0, duplicate: 0.0, reorder: 0.0 }
    }
}

impl LinkFaults {
    /// Probabilities clamped to `[0, 1]` (NaN counts as 0), latencies ordered and capped.
    fn sanitized(self) -> LinkFaults {
        let p = |x: f64| if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) };
        let (a, b) = self.latency_ms;
        let (a, b) = (a.min(LATENCY_MS_MAX), b.min(LATENCY_MS_MAX));
        LinkFaults {
            latency_ms: (a.min(b), a.max(b)),
            loss: p(self.loss),
            duplicate: p(self.duplicate),
            reorder: p(self.reorder),
        }
    }
}

/// A number of frames and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    /// Frames.
    pub frames: u64,
    /// Their payload bytes.
    pub bytes: u64,
}

impl Count {
    fn add(&mut self, bytes: usize) {
        self.frames += 1;
        self.bytes += bytes as u64;
    }

    fn plus(self, other: Count) -> Count {
        Count { frames: self.frames + other.frames, bytes: self.bytes + other.bytes }
    }
}

/// Frame counters of the nodes of one tier, as senders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierStats {
    /// Frames accepted by `send` on a live connection.
    pub sent: Count,
    /// Frames handed to the receiving node (a duplicate counts twice).
    pub delivered: Count,
    /// Frames dropped by the `loss` fault.
    pub dropped: Count,
    /// Extra copies made by the `duplicate` fault.
    pub duplicated: Count,
    /// Frames swapped with the next one by the `reorder` fault.
    pub reordered: Count,
    /// Frames lost because their connection broke (or the receiving handle was dropped) first.
    pub discarded: Count,
}

impl TierStats {
    fn plus(self, o: TierStats) -> TierStats {
        TierStats {
            sent: self.sent.plus(o.sent),
            delivered: self.delivered.plus(o.delivered),
            dropped: self.dropped.plus(o.dropped),
            duplicated: self.duplicated.plus(o.duplicated),
            reordered: self.reordered.plus(o.reordered),
            discarded: self.discarded.plus(o.discarded),
        }
    }
}

/// Counters of the whole net for the report ([`SimNet::stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Frame counters by the sender's tier.
    pub by_tier: BTreeMap<Tier, TierStats>,
    /// Dials that produced a connection.
    pub dials_ok: u64,
    /// Dials that failed (unreachable, wrong node, endpoint closed).
    pub dials_failed: u64,
    /// Connections with at least one end still held by a node.
    pub connections_open: u64,
}

impl NetStats {
    /// The counters of all tiers summed.
    pub fn total(&self) -> TierStats {
        self.by_tier.values().fold(TierStats::default(), |acc, s| acc.plus(*s))
    }
}

/// The seeded in-memory network. Cheap to clone (all clones share one state); `Send + Sync`.
#[derive(Clone)]
pub struct SimNet {
    inner: Arc<Mutex<Net>>,
}

impl std::fmt::Debug for SimNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let net = self.lock();
        f.debug_struct("SimNet")
            .field("faults", &net.faults)
            .field("endpoints", &net.endpoints.len())
            .field("connections", &net.conns.len())
            .finish_non_exhaustive()
    }
}

/// One node's endpoint on a [`SimNet`]: the node's [`Transport`].
#[derive(Clone)]
pub struct SimEndpoint {
    net: SimNet,
    node: NodeId,
    addr: SocketAddr,
    /// Tells this registration apart from an earlier or later one of the same node (a restart).
    generation: u64,
    /// Woken when a connection is queued for `accept` or the endpoint goes down.
    notify: Arc<Notify>,
}

impl std::fmt::Debug for SimEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimEndpoint").field("node", &self.node).field("addr", &self.addr).finish_non_exhaustive()
    }
}

const CONTROL: usize = 0;
const BULK: usize = 1;
const DIALER: usize = 0;
const ACCEPTOR: usize = 1;

struct Net {
    rng: ChaCha8Rng,
    faults: LinkFaults,
    dial_fail: Duration,
    endpoints: BTreeMap<NodeId, Endpoint>,
    addrs: BTreeMap<SocketAddr, NodeId>,
    /// Partitioned pairs, smaller id first.
    partitions: BTreeSet<(NodeId, NodeId)>,
    isolated: BTreeSet<NodeId>,
    conns: Conns,
    next_conn: u64,
    next_generation: u64,
    stats: NetStats,
    /// The net's one delivery timer: the ends to wake at an instant (`(at, connection, side)`),
    /// for the earliest frame queued towards each, so a receiver sleeps on its notifier alone and
    /// wakes once per delivery — not once when the frame is sent and again when it is due, with a
    /// timer of its own per wait.
    wakes: BTreeSet<(Instant, u64, usize)>,
    /// Wakes the delivery task ([`deliver`]) when an earlier instant is due than it sleeps to.
    deliverer: Arc<Notify>,
    /// The instant the delivery task sleeps to (`None`: until notified); whether it runs.
    deliverer_at: Option<Instant>,
    deliverer_running: bool,
}

/// The connections by id. Ids are handed out in order from 0, so a connection's slot is its id: a
/// lookup is an index, not a walk down a tree of a province's 17,000 connections (each frame sent
/// and received looks its connection up several times). Iteration is in id order.
#[derive(Default)]
struct Conns {
    slots: Vec<Option<Conn>>,
    open: usize,
}

impl Conns {
    fn get(&self, id: &u64) -> Option<&Conn> {
        self.slots.get(usize::try_from(*id).ok()?)?.as_ref()
    }

    fn get_mut(&mut self, id: &u64) -> Option<&mut Conn> {
        self.slots.get_mut(usize::try_from(*id).ok()?)?.as_mut()
    }

    fn insert(&mut self, id: u64, conn: Conn) {
        let Ok(i) = usize::try_from(id) else { return };
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        if self.slots[i].replace(conn).is_none() {
            self.open += 1;
        }
    }

    fn remove(&mut self, id: &u64) {
        if let Some(slot) = usize::try_from(*id).ok().and_then(|i| self.slots.get_mut(i))
            && slot.take().is_some()
        {
            self.open -= 1;
        }
    }

    fn len(&self) -> usize {
        self.open
    }

    fn iter(&self) -> impl Iterator<Item = (u64, &Conn)> {
        self.slots.iter().enumerate().filter_map(|(i, c)| Some((i as u64, c.as_ref()?)))
    }
}

struct Endpoint {
    addr: SocketAddr,
    generation: u64,
    up: bool,
    /// Connections dialled to this endpoint that `accept` has not returned yet.
    pending: VecDeque<u64>,
    notify: Arc<Notify>,
}

struct Conn {
    /// `[dialer, acceptor]`.
    nodes: [NodeId; 2],
    generations: [u64; 2],
    ends: [End; 2],
}

/// One end of a connection: what travels towards it, and the state of its handles.
struct End {
    /// Frames on their way to this end, per lane (`CONTROL`, `BULK`).
    inbound: [LaneQueue; 2],
    /// This end failed (closed locally, partitioned, endpoint down): every call fails at once.
    broken: Option<String>,
    /// The other end closed: when the news reaches this end, and why. Sends fail from then on
    /// (before then they vanish: the other end no longer reads).
    peer_closed: Option<(Instant, String)>,
    senders: [bool; 2],
    receiver: bool,
    notify: Arc<Notify>,
    /// When the delivery timer wakes this end (its entry in [`Net::wakes`]).
    wake_at: Option<Instant>,
}

#[derive(Default)]
struct LaneQueue {
    queue: VecDeque<Item>,
    last_at: Option<Instant>,
    /// The frame at the back was drawn for reordering: the next frame of the lane overtakes it.
    swap_next: bool,
}

struct Item {
    at: Instant,
    kind: ItemKind,
}

enum ItemKind {
    Frame(Vec<u8>),
    /// The sender closed the connection with this reason.
    Close(String),
    /// The sender dropped this lane's sender: the lane is finished.
    End,
}

enum DialPlan {
    /// The dialer's own endpoint is shut down.
    Closed,
    /// Fails with the error after the delay.
    Fail(Duration, TransportError),
    /// The peer answers: complete after the round trip.
    Connect(Duration),
}

enum Incoming {
    /// A connection to hand out: its id, the dialer, the acceptor end's notifier.
    Conn { id: u64, dialer: NodeId, notify: Arc<Notify> },
    /// The endpoint is shut down.
    Closed,
    /// Nothing queued yet.
    None,
}

enum RecvPoll {
    Ready(Result<Option<Vec<u8>>, TransportError>),
    /// Nothing due: wait until notified (by the delivery timer when the earliest queued item is
    /// due, or by a close).
    Pending,
}

impl End {
    fn new() -> End {
        End {
            inbound: [LaneQueue::default(), LaneQueue::default()],
            broken: None,
            peer_closed: None,
            senders: [true, true],
            receiver: true,
            notify: Arc::new(Notify::new()),
            wake_at: None,
        }
    }

    fn has_handles(&self) -> bool {
        self.senders[CONTROL] || self.senders[BULK] || self.receiver
    }
}

fn closed(reason: &str) -> TransportError {
    TransportError::Closed(reason.to_string())
}

impl Net {
    fn reachable(&self, a: NodeId, b: NodeId) -> bool {
        !self.isolated.contains(&a) && !self.isolated.contains(&b) && !self.partitions.contains(&pair(a, b))
    }

    fn endpoint_up(&self, node: NodeId, generation: u64) -> bool {
        self.endpoints.get(&node).is_some_and(|e| e.generation == generation && e.up)
    }

    fn tier_stats(&mut self, sender: NodeId) -> &mut TierStats {
        self.stats.by_tier.entry(sender.tier()).or_default()
    }

    fn latency(&mut self) -> Duration {
        let (min, max) = self.faults.latency_ms;
        let ms = if min == max { min } else { self.rng.random_range(min..=max) };
        Duration::from_millis(ms)
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random::<f64>() < p
    }

    /// Decides a dial at its start; draws the round trip when the peer answers.
    fn plan_dial(&mut self, me: NodeId, generation: u64, peer: NodeId, addr: SocketAddr) -> DialPlan {
        if !self.endpoint_up(me, generation) {
            self.stats.dials_failed += 1;
            return DialPlan::Closed;
        }
        match self.answering(me, addr) {
            Some(_) => {
                let rtt = self.latency() + self.latency();
                DialPlan::Connect(rtt)
            }
            None => {
                self.stats.dials_failed += 1;
                DialPlan::Fail(self.dial_fail, unreachable(peer, addr))
            }
        }
    }

    /// The node whose endpoint answers at `addr` for a dial from `me`, if any.
    fn answering(&self, me: NodeId, addr: SocketAddr) -> Option<NodeId> {
        let &node = self.addrs.get(&addr)?;
        let ep = self.endpoints.get(&node)?;
        (ep.up && ep.addr == addr && self.reachable(me, node)).then_some(node)
    }

    /// Ends a dial after its round trip: the connection's id and the dialer end's notifier, or
    /// the error with how much longer to wait before reporting it.
    fn complete_dial(
        &mut self,
        me: NodeId,
        generation: u64,
        peer: NodeId,
        addr: SocketAddr,
        rtt: Duration,
    ) -> Result<(u64, Arc<Notify>), (Duration, TransportError)> {
        if !self.endpoint_up(me, generation) {
            self.stats.dials_failed += 1;
            return Err((Duration::ZERO, TransportError::EndpointClosed));
        }
        let Some(found) = self.answering(me, addr) else {
            self.stats.dials_failed += 1;
            return Err((self.dial_fail.saturating_sub(rtt), unreachable(peer, addr)));
        };
        if found != peer {
            self.stats.dials_failed += 1;
            return Err((
                Duration::ZERO,
                TransportError::Handshake(format!(
                    "dialing {peer} at {addr}: invalid peer certificate: it names {found}, not {peer}"
                )),
            ));
        }
        let Some(ep) = self.endpoints.get_mut(&peer) else {
            return Err((Duration::ZERO, unreachable(peer, addr)));
        };
        let id = self.next_conn;
        self.next_conn += 1;
        ep.pending.push_back(id);
        ep.notify.notify_waiters();
        let peer_generation = ep.generation;
        let conn =
            Conn { nodes: [me, peer], generations: [generation, peer_generation], ends: [End::new(), End::new()] };
        let notify = conn.ends[DIALER].notify.clone();
        self.conns.insert(id, conn);
        self.stats.dials_ok += 1;
        Ok((id, notify))
    }

    /// The next connection queued for `accept` at this endpoint.
    fn take_pending(&mut self, node: NodeId, generation: u64) -> Incoming {
        if !self.endpoint_up(node, generation) {
            return Incoming::Closed;
        }
        let Some(ep) = self.endpoints.get_mut(&node) else { return Incoming::Closed };
        while let Some(id) = ep.pending.pop_front() {
            if let Some(conn) = self.conns.get(&id) {
                return Incoming::Conn { id, dialer: conn.nodes[DIALER], notify: conn.ends[ACCEPTOR].notify.clone() };
            }
        }
        Incoming::None
    }

    /// The delivery time of the next item on a lane towards `to`, keeping the lane ordered.
    fn next_at(&mut self, id: u64, to: usize, lane: usize, now: Instant) -> Instant {
        let latency = self.latency();
        let last = self.conns.get(&id).and_then(|c| c.ends[to].inbound[lane].last_at);
        let at = now + latency;
        last.map_or(at, |last| last.max(at))
    }

    fn send(&mut self, id: u64, side: usize, lane: usize, frame: Vec<u8>) -> Result<(), TransportError> {
        if frame.len() > FRAME_BYTES_MAX {
            return Err(TransportError::FrameTooLarge { len: frame.len() as u64, max: FRAME_BYTES_MAX });
        }
        let now = Instant::now();
        let Some(conn) = self.conns.get(&id) else { return Err(closed(REASON_LOCAL)) };
        let sender = conn.nodes[side];
        let end = &conn.ends[side];
        if let Some(reason) = &end.broken {
            return Err(closed(reason));
        }
        let len = frame.len();
        if let Some((at, reason)) = &end.peer_closed {
            if *at <= now {
                return Err(closed(reason));
            }
            let stats = self.tier_stats(sender);
            stats.sent.add(len);
            stats.discarded.add(len);
            return Ok(());
        }
        let to = 1 - side;
        let peer_end = &conn.ends[to];
        let peer_gone = peer_end.broken.is_some() || !peer_end.receiver;
        self.tier_stats(sender).sent.add(len);
        if peer_gone {
            self.tier_stats(sender).discarded.add(len);
            return Ok(());
        }
        let faults = self.faults;
        if self.chance(faults.loss) {
            self.tier_stats(sender).dropped.add(len);
            return Ok(());
        }
        let at = self.next_at(id, to, lane, now);
        let duplicate = self.chance(faults.duplicate);
        let swap = self.conns.get(&id).is_some_and(|c| {
            let q = &c.ends[to].inbound[lane];
            q.swap_next && matches!(q.queue.back(), Some(Item { kind: ItemKind::Frame(_), .. }))
        });
        // The partner of a swap is not drawn for reordering itself.
        let reorder = !swap && self.chance(faults.reorder);
        if duplicate {
            self.tier_stats(sender).duplicated.add(len);
        }
        let Some(conn) = self.conns.get_mut(&id) else { return Err(closed(REASON_LOCAL)) };
        let q = &mut conn.ends[to].inbound[lane];
        let held = if swap { q.queue.pop_back() } else { None };
        if duplicate {
            q.queue.push_back(Item { at, kind: ItemKind::Frame(frame.clone()) });
        }
        q.queue.push_back(Item { at, kind: ItemKind::Frame(frame) });
        let mut held_len = None;
        if let Some(mut held) = held {
            if let ItemKind::Frame(f) = &held.kind {
                held_len = Some(f.len());
            }
            held.at = at;
            q.queue.push_back(held);
        }
        q.swap_next = reorder;
        q.last_at = Some(at);
        self.wake_at(id, to, at, now);
        if let Some(held_len) = held_len {
            // Counted for the held frame's sender: the same end sent both.
            self.tier_stats(sender).reordered.add(held_len);
        }
        Ok(())
    }

    /// Has the delivery timer wake end `side` of connection `id` at `at` (at once if it is due),
    /// unless it already wakes it no later.
    fn wake_at(&mut self, id: u64, side: usize, at: Instant, now: Instant) {
        let Some(end) = self.conns.get_mut(&id).map(|c| &mut c.ends[side]) else { return };
        if at <= now {
            end.notify.notify_waiters();
            return;
        }
        if end.wake_at.is_some_and(|t| t <= at) {
            return;
        }
        if let Some(t) = end.wake_at.replace(at) {
            self.wakes.remove(&(t, id, side));
        }
        self.wakes.insert((at, id, side));
        if self.deliverer_at.is_none_or(|t| at < t) {
            self.deliverer_at = Some(at);
            self.deliverer.notify_one();
        }
    }

    /// The delivery timer at `now`: wakes the ends due, in order; returns the next instant due.
    fn deliver_due(&mut self, now: Instant) -> Option<Instant> {
        while let Some(&(at, id, side)) = self.wakes.first() {
            if at > now {
                break;
            }
            self.wakes.pop_first();
            if let Some(end) = self.conns.get_mut(&id).map(|c| &mut c.ends[side]) {
                end.wake_at = None;
                end.notify.notify_waiters();
            }
        }
        self.deliverer_at = self.wakes.first().map(|w| w.0);
        self.deliverer_at
    }

    /// Puts a marker (close or end of lane) on a lane towards `to`, after what is queued there.
    fn push_marker(&mut self, id: u64, to: usize, lane: usize, kind: ItemKind, now: Instant) -> Option<Instant> {
        let live = self.conns.get(&id).is_some_and(|c| c.ends[to].broken.is_none());
        if !live {
            return None;
        }
        let at = self.next_at(id, to, lane, now);
        let conn = self.conns.get_mut(&id)?;
        let q = &mut conn.ends[to].inbound[lane];
        q.queue.push_back(Item { at, kind });
        q.swap_next = false;
        q.last_at = Some(at);
        conn.ends[to].notify.notify_waiters();
        Some(at)
    }

    /// Fails one end at once with `reason`, losing what was on its way to it.
    fn break_end(&mut self, id: u64, side: usize, reason: &str) {
        let Some(conn) = self.conns.get_mut(&id) else { return };
        let from = conn.nodes[1 - side];
        let end = &mut conn.ends[side];
        if end.broken.is_some() {
            return;
        }
        end.broken = Some(reason.to_string());
        end.notify.notify_waiters();
        let mut lost = Vec::new();
        for q in &mut end.inbound {
            for item in q.queue.drain(..) {
                if let ItemKind::Frame(f) = item.kind {
                    lost.push(f.len());
                }
            }
            q.swap_next = false;
        }
        for len in lost {
            self.tier_stats(from).discarded.add(len);
        }
    }

    /// End `side` closes the connection: it fails at once with `local`; the peer learns `reason`
    /// after what `side` sent before on `lane`.
    fn close_from(&mut self, id: u64, side: usize, lane: usize, reason: &str, local: &str) {
        let Some(conn) = self.conns.get(&id) else { return };
        if conn.ends[side].broken.is_some() {
            return;
        }
        self.break_end(id, side, local);
        let now = Instant::now();
        if let Some(at) = self.push_marker(id, 1 - side, lane, ItemKind::Close(reason.to_string()), now)
            && let Some(conn) = self.conns.get_mut(&id)
        {
            conn.ends[1 - side].peer_closed = Some((at, reason.to_string()));
        }
    }

    fn poll_recv(&mut self, id: u64, side: usize) -> RecvPoll {
        let now = Instant::now();
        loop {
            let Some(conn) = self.conns.get_mut(&id) else { return RecvPoll::Ready(Err(closed(REASON_LOCAL))) };
            let from = conn.nodes[1 - side];
            let end = &mut conn.ends[side];
            if let Some(reason) = &end.broken {
                return RecvPoll::Ready(Err(closed(reason)));
            }
            // Control first when both lanes have something due.
            let due = [CONTROL, BULK].into_iter().find(|&l| end.inbound[l].queue.front().is_some_and(|i| i.at <= now));
            let Some(lane) = due else {
                let next = end.inbound.iter().filter_map(|q| q.queue.front().map(|i| i.at)).min();
                if let Some(at) = next {
                    self.wake_at(id, side, at, now);
                }
                return RecvPoll::Pending;
            };
            let Some(item) = end.inbound[lane].queue.pop_front() else { continue };
            match item.kind {
                ItemKind::Frame(frame) => {
                    self.tier_stats(from).delivered.add(frame.len());
                    return RecvPoll::Ready(Ok(Some(frame)));
                }
                ItemKind::Close(reason) => {
                    self.break_end(id, side, &reason);
                    return RecvPoll::Ready(Err(TransportError::Closed(reason)));
                }
                // The control lane's end is the connection's end; the bulk lane's alone is not.
                ItemKind::End if lane == CONTROL => return RecvPoll::Ready(Ok(None)),
                ItemKind::End => {}
            }
        }
    }

    /// A sender handle was dropped: its lane is finished (the peer sees the end after the latency).
    fn sender_dropped(&mut self, id: u64, side: usize, lane: usize) {
        let Some(conn) = self.conns.get_mut(&id) else { return };
        conn.ends[side].senders[lane] = false;
        if conn.ends[side].broken.is_none() {
            let now = Instant::now();
            self.push_marker(id, 1 - side, lane, ItemKind::End, now);
        }
        self.handle_dropped(id, side);
    }

    fn receiver_dropped(&mut self, id: u64, side: usize) {
        let Some(conn) = self.conns.get_mut(&id) else { return };
        conn.ends[side].receiver = false;
        let from = conn.nodes[1 - side];
        let mut lost = Vec::new();
        for q in &mut conn.ends[side].inbound {
            for item in q.queue.drain(..) {
                if let ItemKind::Frame(f) = item.kind {
                    lost.push(f.len());
                }
            }
        }
        for len in lost {
            self.tier_stats(from).discarded.add(len);
        }
        self.handle_dropped(id, side);
    }

    /// After a handle of `side` was dropped: once none is left, the peer's sends start failing
    /// (quinn closes a connection whose handles are all gone), and once neither end has one, the
    /// connection is forgotten.
    fn handle_dropped(&mut self, id: u64, side: usize) {
        let Some(conn) = self.conns.get(&id) else { return };
        if conn.ends[side].has_handles() {
            return;
        }
        if conn.ends[side].broken.is_none() {
            let now = Instant::now();
            let at = self.next_at(id, 1 - side, CONTROL, now);
            if let Some(conn) = self.conns.get_mut(&id) {
                conn.ends[side].broken = Some(REASON_LOCAL.to_string());
                let peer = &mut conn.ends[1 - side];
                if peer.broken.is_none() && peer.peer_closed.is_none() {
                    peer.peer_closed = Some((at, REASON_PEER_GONE.to_string()));
                }
            }
        }
        if self.conns.get(&id).is_some_and(|c| !c.ends.iter().any(End::has_handles)) {
            self.conns.remove(&id);
        }
    }

    /// Connections with an end at `node` (of the given generation, if any), in id order.
    fn conns_of(&self, node: NodeId, generation: Option<u64>) -> Vec<(u64, usize)> {
        let mut out = Vec::new();
        for (id, conn) in self.conns.iter() {
            for side in [DIALER, ACCEPTOR] {
                if conn.nodes[side] == node && generation.is_none_or(|g| conn.generations[side] == g) {
                    out.push((id, side));
                }
            }
        }
        out
    }

    /// Stops an endpoint: no more accepts or dials; its connections fail at once with `local`, and
    /// their peers get `peer_reason` after the latency.
    fn stop_endpoint(&mut self, node: NodeId, generation: Option<u64>, peer_reason: &str, local: &str) {
        let Some(ep) = self.endpoints.get_mut(&node) else { return };
        if generation.is_some_and(|g| g != ep.generation) || !ep.up {
            return;
        }
        let generation = ep.generation;
        ep.up = false;
        ep.notify.notify_waiters();
        let pending: Vec<u64> = ep.pending.drain(..).collect();
        for (id, side) in self.conns_of(node, Some(generation)) {
            self.close_from(id, side, CONTROL, peer_reason, local);
        }
        // Connections nobody accepted will never get acceptor handles.
        for id in pending {
            if let Some(conn) = self.conns.get_mut(&id) {
                let end = &mut conn.ends[ACCEPTOR];
                end.senders = [false, false];
                end.receiver = false;
            }
            self.handle_dropped(id, ACCEPTOR);
        }
    }

    /// Breaks both ends of every connection matching `between` at once.
    fn break_links(&mut self, reason: &str, between: impl Fn([NodeId; 2]) -> bool) {
        let ids: Vec<u64> = self.conns.iter().filter(|(_, c)| between(c.nodes)).map(|(id, _)| id).collect();
        for id in ids {
            self.break_end(id, DIALER, reason);
            self.break_end(id, ACCEPTOR, reason);
        }
    }
}

/// The delivery task: sleeps until the earliest instant an end is due to wake ([`Net::wakes`]),
/// wakes the ends due then, and sleeps again; ends with the net.
async fn deliver(net: std::sync::Weak<Mutex<Net>>, notify: Arc<Notify>) {
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let next = {
            let Some(net) = net.upgrade() else { return };
            let mut net = net.lock().unwrap_or_else(PoisonError::into_inner);
            net.deliver_due(Instant::now())
        };
        match next {
            Some(at) => {
                tokio::select! {
                    biased;
                    () = &mut notified => {}
                    () = tokio::time::sleep_until(at) => {}
                }
            }
            None => notified.await,
        }
    }
}

fn pair(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    if a <= b { (a, b) } else { (b, a) }
}

fn unreachable(peer: NodeId, addr: SocketAddr) -> TransportError {
    TransportError::Handshake(format!("dialing {peer} at {addr}: timed out"))
}

impl SimNet {
    /// A network whose every random choice comes from `seed`, with `faults` on every link.
    pub fn new(seed: u64, faults: LinkFaults) -> SimNet {
        let net = Net {
            rng: ChaCha8Rng::seed_from_u64(seed),
            faults: faults.sanitized(),
            dial_fail: Duration::from_millis(DIAL_FAIL_MS),
            endpoints: BTreeMap::new(),
            addrs: BTreeMap::new(),
            partitions: BTreeSet::new(),
            isolated: BTreeSet::new(),
            conns: Conns::default(),
            next_conn: 0,
            next_generation: 0,
            stats: NetStats::default(),
            wakes: BTreeSet::new(),
            deliverer: Arc::new(Notify::new()),
            deliverer_at: None,
            deliverer_running: false,
        };
        SimNet { inner: Arc::new(Mutex::new(net)) }
    }

    fn lock(&self) -> MutexGuard<'_, Net> {
        // Nothing under the lock panics on purpose; if it did, the state is still consistent
        // enough to report from.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts the net's delivery task ([`deliver`]) on the current runtime, once: called when a
    /// connection is made, so before any frame travels.
    fn start_delivery(&self) {
        let mut net = self.lock();
        if net.deliverer_running {
            return;
        }
        net.deliverer_running = true;
        tokio::spawn(deliver(Arc::downgrade(&self.inner), net.deliverer.clone()));
    }

    /// Registers `node`'s endpoint listening at `addr` and returns it, up. Registering a node
    /// again (a restart) replaces its earlier endpoint: that one is stopped as by
    /// [`SimNet::endpoint_down`] if it was still up. The last registration at an address wins it.
    pub fn endpoint(&self, node: NodeId, addr: SocketAddr) -> SimEndpoint {
        let mut net = self.lock();
        net.stop_endpoint(node, None, REASON_DOWN, REASON_DOWN);
        if let Some(old) = net.endpoints.get(&node).map(|e| e.addr)
            && net.addrs.get(&old) == Some(&node)
        {
            net.addrs.remove(&old);
        }
        let generation = net.next_generation;
        net.next_generation += 1;
        let notify = Arc::new(Notify::new());
        net.endpoints
            .insert(node, Endpoint { addr, generation, up: true, pending: VecDeque::new(), notify: notify.clone() });
        net.addrs.insert(addr, node);
        SimEndpoint { net: self.clone(), node, addr, generation, notify }
    }

    /// Cuts the link between `a` and `b`: their connections fail at once on both ends with
    /// `Closed("partitioned")`, and dials between them fail until [`SimNet::heal`].
    pub fn partition(&self, a: NodeId, b: NodeId) {
        let mut net = self.lock();
        net.partitions.insert(pair(a, b));
        let (x, y) = pair(a, b);
        net.break_links(REASON_PARTITIONED, |n| pair(n[0], n[1]) == (x, y));
    }

    /// Undoes [`SimNet::partition`] for the pair (new dials succeed again; broken connections stay
    /// broken).
    pub fn heal(&self, a: NodeId, b: NodeId) {
        self.lock().partitions.remove(&pair(a, b));
    }

    /// Cuts `node`'s machine off the network (the process keeps running): its connections fail at
    /// once on both ends with `Closed("isolated")`; it can dial nobody and nobody can dial it.
    pub fn isolate(&self, node: NodeId) {
        let mut net = self.lock();
        net.isolated.insert(node);
        net.break_links(REASON_ISOLATED, |n| n.contains(&node));
    }

    /// Undoes [`SimNet::isolate`].
    pub fn rejoin(&self, node: NodeId) {
        self.lock().isolated.remove(&node);
    }

    /// Replaces the fault settings for frames sent from now on (probabilities are clamped to
    /// `[0, 1]`, the latency range ordered).
    pub fn set_faults(&self, faults: LinkFaults) {
        self.lock().faults = faults.sanitized();
    }

    /// The current fault settings.
    pub fn faults(&self) -> LinkFaults {
        self.lock().faults
    }

    /// Sets how long a dial to an unreachable peer takes to fail (default [`DIAL_FAIL_MS`]).
    pub fn set_dial_fail_ms(&self, ms: u64) {
        self.lock().dial_fail = Duration::from_millis(ms.min(LATENCY_MS_MAX));
    }

    /// A crashed node: its endpoint stops as with [`Transport::shutdown`], except that both ends
    /// see `Closed("endpoint down")`. Register the node again with [`SimNet::endpoint`] to restart it.
    pub fn endpoint_down(&self, node: NodeId) {
        self.lock().stop_endpoint(node, None, REASON_DOWN, REASON_DOWN);
    }

    /// Whether `node` has an endpoint that is up.
    pub fn is_up(&self, node: NodeId) -> bool {
        self.lock().endpoints.get(&node).is_some_and(|e| e.up)
    }

    /// Whether a dial between `a` and `b` could pass (neither isolated, the pair not partitioned);
    /// says nothing about endpoints being up.
    pub fn reachable(&self, a: NodeId, b: NodeId) -> bool {
        self.lock().reachable(a, b)
    }

    /// The counters so far.
    pub fn stats(&self) -> NetStats {
        let net = self.lock();
        let mut stats = net.stats.clone();
        stats.connections_open = net.conns.len() as u64;
        stats
    }
}

impl SimEndpoint {
    /// The node this endpoint authenticates as.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// The handles of one end of connection `id`.
fn connection(net: &SimNet, id: u64, side: usize, peer: NodeId, notify: Arc<Notify>) -> Connection {
    net.start_delivery();
    let sender = |lane| Box::new(SimSender { net: net.clone(), id, side, lane }) as Box<dyn FrameSender>;
    Connection {
        peer,
        sender: sender(CONTROL),
        bulk: sender(BULK),
        // The simulator's files share the bulk lane's queue (no files travel in a simulated day).
        files: sender(BULK),
        receiver: Box::new(SimReceiver { net: net.clone(), id, side, notify, done: StickyEnd::default() }),
    }
}

impl Transport for SimEndpoint {
    fn dial(&self, peer: NodeId, addr: SocketAddr) -> BoxFuture<'static, Result<Connection, TransportError>> {
        let (net, me, generation) = (self.net.clone(), self.node, self.generation);
        Box::pin(async move {
            let plan = net.lock().plan_dial(me, generation, peer, addr);
            match plan {
                DialPlan::Closed => Err(TransportError::EndpointClosed),
                DialPlan::Fail(after, e) => {
                    tokio::time::sleep(after).await;
                    Err(e)
                }
                DialPlan::Connect(rtt) => {
                    tokio::time::sleep(rtt).await;
                    let done = net.lock().complete_dial(me, generation, peer, addr, rtt);
                    match done {
                        Ok((id, notify)) => Ok(connection(&net, id, DIALER, peer, notify)),
                        Err((wait, e)) => {
                            tokio::time::sleep(wait).await;
                            Err(e)
                        }
                    }
                }
            }
        })
    }

    fn accept(&self) -> BoxFuture<'_, Result<Connection, TransportError>> {
        Box::pin(async move {
            loop {
                let notified = self.notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let next = self.net.lock().take_pending(self.node, self.generation);
                match next {
                    Incoming::Conn { id, dialer, notify } => {
                        return Ok(connection(&self.net, id, ACCEPTOR, dialer, notify));
                    }
                    Incoming::Closed => return Err(TransportError::EndpointClosed),
                    Incoming::None => notified.await,
                }
            }
        })
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        Some(self.addr)
    }

    fn shutdown(&self) {
        self.net.lock().stop_endpoint(self.node, Some(self.generation), REASON_SHUTDOWN, REASON_LOCAL);
    }
}

/// One lane's sending half.
struct SimSender {
    net: SimNet,
    id: u64,
    side: usize,
    lane: usize,
}

impl FrameSender for SimSender {
    fn send(&mut self, frame: Vec<u8>) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move { self.net.lock().send(self.id, self.side, self.lane, frame) })
    }

    fn never_waits(&self) -> bool {
        true
    }

    fn send_now(&mut self, frame: Vec<u8>) -> Result<(), TransportError> {
        self.net.lock().send(self.id, self.side, self.lane, frame)
    }

    fn close(&mut self, reason: &str) {
        self.net.lock().close_from(self.id, self.side, self.lane, reason, REASON_LOCAL);
    }
}

impl Drop for SimSender {
    fn drop(&mut self) {
        self.net.lock().sender_dropped(self.id, self.side, self.lane);
    }
}

/// Both lanes' receiving half. Cancel-safe: a frame leaves its queue only in the same step that
/// returns it. The first error or end is sticky.
struct SimReceiver {
    net: SimNet,
    id: u64,
    side: usize,
    notify: Arc<Notify>,
    done: StickyEnd,
}

impl FrameReceiver for SimReceiver {
    fn recv(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>, TransportError>> {
        Box::pin(async move {
            let mut done = std::mem::take(&mut self.done);
            let result = done.recv(self.next()).await;
            self.done = done;
            result
        })
    }
}

impl SimReceiver {
    /// Waits for the next frame or end of either lane (control first when both are due).
    async fn next(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let poll = self.net.lock().poll_recv(self.id, self.side);
            match poll {
                RecvPoll::Ready(result) => return result,
                RecvPoll::Pending => notified.await,
            }
        }
    }
}

impl Drop for SimReceiver {
    fn drop(&mut self) {
        self.net.lock().receiver_dropped(self.id, self.side);
    }
}

#[cfg(test)]
#[path = "net_tests.rs"]
mod tests;
