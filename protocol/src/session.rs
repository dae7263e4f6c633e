//! The per-link sync `Session`: a sans-IO state machine, one per connection, the same at both ends.
//!
//! Inputs are `handle_*` calls (frames, local progress, fetched events, persisted batches, time);
//! outputs are drained with `poll_transmit` (frames to send), `poll_event` (work for the driver)
//! and `poll_timeout` (when to call `handle_timeout` next). Time is passed in as milliseconds on
//! any monotonic scale; the Session never reads a clock and does no I/O, so tests drive it through
//! a lossy in-memory pair and the simulator drives thousands of them.
//!
//! The exchange: hello / hello-ack carry each side's contiguous cursors for the origins the other
//! side sends; each side then streams what the other lacks, oldest first per origin, as batches
//! that claim seq ranges ("all of them you should hold"). The receiver hands a batch to its driver
//! to persist, and acks only after the driver reports it persisted. Unacked batches are retransmitted
//! after `rto_ms`; duplicates are harmless because applying a held `(origin, seq)` is a no-op.
//!
//! **The priority lane.** Bulk batches go out oldest first, so behind a backlog a fresh event would
//! wait for all of it. The driver therefore also reports *fresh* ranges (events just written here,
//! or just received and recent, see [`FRESH_AGE_MS`]); when the bulk lane has a queue (or the range
//! lies above this node's contiguous cursor, so bulk cannot carry it yet), the session sends them
//! at once as [`Frame::Fresh`] batches on the control lane, a few in flight at most. The receiver
//! keeps them as islands in its cursors; once the peer acked an island, the bulk lane skips it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use topology::NodeId;

use crate::cursor::{Cursors, ISLANDS_MAX, SeqRanges};
use crate::event::Event;
use crate::health::HealthDelta;
use crate::holds::{PeerSide, Violation, check_received, sends_origin};
use crate::wire::{
    Ack, BATCH_CERTS_MAX, BATCH_EVENTS_MAX, BATCH_RANGES_MAX, Batch, CERT_CHAIN_BYTES_MAX, Frame, HELLO_CURSORS_MAX,
    Hello, PROTOCOL_VERSION, REASON_BYTES_MAX, SeqRange,
};

/// Most events in one fresh range: a bigger jump is catch-up traffic, not a live event.
pub const FRESH_EVENTS_MAX: u64 = 256;
/// How recent (by its HLC wall time) a received event must be for a relay to treat it as fresh.
pub const FRESH_AGE_MS: u64 = 2_000;
/// The priority lane is used for ranges the bulk lane could carry only when at least this many
/// seqs wait in the bulk lane (below that, bulk delivers them about as soon).
pub const FRESH_BACKLOG_MIN: u64 = 1_024;
/// Fresh batches sent and not yet acked.
pub const FRESH_WINDOW: usize = 2;
/// Fresh ranges queued; past it new ones are left to the bulk lane (nothing is lost).
pub const FRESH_QUEUE_MAX: usize = 256;
/// Islands per origin the peer may hold from this session's priority lane before more wait for bulk.
pub const FRESH_ISLANDS_MAX: usize = 16;

/// Timing and window settings of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Resend an unacked batch (or an unanswered hello) after this long.
    pub rto_ms: u64,
    /// Send a ping when nothing was sent for this long.
    pub keepalive_ms: u64,
    /// Declare the peer gone when nothing was received for this long.
    pub idle_timeout_ms: u64,
    /// Most batches sent and not yet acked.
    pub window_batches: usize,
    /// Most batches received and not yet persisted; a peer exceeding it is cut off.
    pub persist_pending_max: usize,
    /// Most events asked for in one fetch (one batch).
    pub batch_events_max: usize,
    /// Send fresh events ahead of a backlog (off only to measure what it buys).
    pub priority_lane: bool,
    /// An ancestor that has said nothing for this long while a batch to it waits unacked as long
    /// is *suspect* ([`SessionEvent::PeerSilent`]): the driver may dial the next ancestor up beside
    /// it, well before the idle timeout closes the link. 0: never suspect. On a lossy link the
    /// wait grows with the longest silences the peer has lately had ([`Session::suspect_after_ms`]).
    pub suspect_after_ms: u64,
    /// Ranges from a descendant must each carry the seal that ends them (a signed history,
    /// [`crate::seal`]); the driver checks the seals against the chain it holds. Off only where
    /// no seals are made (the session's own tests).
    pub sealed: bool,
}

impl Default for SessionConfig {
    fn default() -> SessionConfig {
        SessionConfig {
            rto_ms: 2_000,
            keepalive_ms: 500,
            idle_timeout_ms: 3_000,
            window_batches: 8,
            persist_pending_max: 64,
            batch_events_max: BATCH_EVENTS_MAX,
            priority_lane: true,
            suspect_after_ms: 600,
            sealed: true,
        }
    }
}

/// Which end opened the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Sent the hello (the child side: children always dial).
    Dialer,
    /// Answers the hello.
    Acceptor,
}

/// The driver is asked to read these ranges from its store, keeping only the events the peer
/// should hold, and to answer with [`Session::handle_fetched`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchRequest {
    pub id: u64,
    /// `(origin, after, upto)`: events of `origin` with `after < seq <= upto`.
    pub ranges: Vec<SeqRange>,
    /// Most events to return for any one range (so one origin's backlog does not starve others).
    pub per_range_max: usize,
    /// Most events in all.
    pub total_max: usize,
    /// A priority-lane fetch: its ranges may lie above the contiguous cursor.
    pub fresh: bool,
    /// For an ancestor: each range must end where a seal of its origin ends and the answer carries
    /// those seals ([`Attached`]); a priority-lane range must be exactly one seal's span (the
    /// receiver may hold nothing of the origin's chain below it).
    pub sealed: bool,
}

/// What travels with fetched events to an ancestor: the seal ending each covered range, and the
/// certificate chains of origins the link has not yet vouched for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attached {
    pub seals: Vec<crate::seal::Seal>,
    pub certs: Vec<crate::wire::OriginCert>,
    /// Received: the peer it came from (whose certificate authenticated the link); an origin
    /// sending its own events needs no chain to vouch that they are its own.
    pub from: Option<NodeId>,
}

/// Work for the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// The hello exchange finished: the link is up.
    Up,
    /// Read events from the store (see [`FetchRequest`]).
    Fetch(FetchRequest),
    /// Persist (and flush) this received batch, then call [`Session::handle_persisted`]. `ranges`
    /// and `events` were checked: every event is one `me` may hold from this peer.
    /// `fresh`: it came on the priority lane (persist it ahead of queued bulk batches).
    /// `attached`: from a descendant, the seal ending each range (checked to be there, one per
    /// range; the driver checks them against the origins' chains) and certificate chains.
    Persist { batch_id: u64, ranges: Vec<SeqRange>, events: Vec<Event>, fresh: bool, attached: Attached },
    /// An event in a received batch broke an authority rule; it was dropped, counted, and the
    /// rest of the batch goes on.
    Rejected { event: crate::event::EventId, violation: Violation },
    /// The link is over; the driver closes the connection (a goodbye may still be queued).
    Closed { reason: String },
    /// The peer (an ancestor) has been silent for `suspect_after_ms` with a batch unacked as long
    /// (see [`SessionConfig::suspect_after_ms`]); said once until it is heard again.
    PeerSilent { silent_ms: u64 },
    /// A frame arrived from a peer that was [`SessionEvent::PeerSilent`].
    PeerHeard,
    /// Health rows from a child, each checked ([`crate::health::check_row`]); the refused ones
    /// were dropped and counted. The driver merges them into its health table.
    Health { delta: crate::health::HealthDelta, rejected: Vec<String> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Dialer: hello sent, waiting for the hello-ack. Acceptor: waiting for the hello.
    Opening,
    Up,
    Closed,
}

impl State {
    /// The order states go through: opening, up, closed (opening may skip to closed).
    fn rank(&self) -> u8 {
        match self {
            State::Opening => 0,
            State::Up => 1,
            State::Closed => 2,
        }
    }
}

/// A broken [`Session`] invariant: which one, and what was found (see
/// [`Session::check_invariants`] and [`Session::check_progress`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invariant `{invariant}` broken: {detail}")]
pub struct InvariantViolation {
    /// The invariant's short name.
    pub invariant: &'static str,
    pub detail: String,
}

/// What only grows in a session, taken before a step to check after it
/// ([`Session::watermarks`], [`Session::check_progress`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Watermarks {
    state: u8,
    /// The cursor maps, as sorted lists (cheaper to copy than maps, and compared by one walk).
    local: Vec<(NodeId, u64)>,
    receiving: Vec<(NodeId, u64)>,
    peer_cursor: Vec<(NodeId, u64)>,
    sent: Vec<(NodeId, u64)>,
    next_batch_id: u64,
    next_fetch_id: u64,
    stats: SessionStats,
}

fn listed(m: &BTreeMap<NodeId, u64>) -> Vec<(NodeId, u64)> {
    m.iter().map(|(o, c)| (*o, *c)).collect()
}

fn ensure(ok: bool, invariant: &'static str, detail: impl FnOnce() -> String) -> Result<(), InvariantViolation> {
    if ok { Ok(()) } else { Err(InvariantViolation { invariant, detail: detail() }) }
}

/// Acks for batches no longer in flight tolerated per batch copy sent, and beyond that.
const ACKS_IGNORED_PER_COPY: u64 = 4;
const ACKS_IGNORED_SLACK: u64 = 64;

/// The ranges of a batch or fetch from `me` to `peer`: one to [`BATCH_RANGES_MAX`], sorted by
/// origin, one per origin, none empty, each of an origin `me` sends `peer`.
fn check_ranges(me: NodeId, peer: NodeId, ranges: &[SeqRange], what: &str) -> Result<(), InvariantViolation> {
    let shape = !ranges.is_empty()
        && ranges.len() <= BATCH_RANGES_MAX
        && ranges.windows(2).all(|w| w[0].origin < w[1].origin)
        && ranges.iter().all(|r| r.after < r.upto && sends_origin(me, peer, r.origin));
    ensure(shape, "batch ranges well-formed", || format!("{what} ranges {ranges:?} from {me} to {peer}"))
}

/// How long each window of the longest silence lasts ([`Session::suspect_after_ms`]).
const SILENCE_PEAK_WINDOW_MS: u64 = 30_000;

#[derive(Clone, Debug)]
struct InFlight {
    batch: Batch,
    sent_at_ms: u64,
    /// When it was first sent (`sent_at_ms` moves on with each resend).
    first_sent_ms: u64,
    /// Sent on the priority lane.
    fresh: bool,
}

impl InFlight {
    fn frame(&self) -> Frame {
        if self.fresh { Frame::Fresh(self.batch.clone()) } else { Frame::Batch(self.batch.clone()) }
    }
}

/// Counters for the admin API and the benchmark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub batches_sent: u64,
    pub batches_received: u64,
    pub events_sent: u64,
    pub events_received: u64,
    pub retransmits: u64,
    pub rejected: u64,
    /// Batches and events sent on the priority lane (included in the totals above).
    pub fresh_batches_sent: u64,
    pub fresh_events_sent: u64,
    /// Health frames and their rows, both ways; rows refused.
    pub health_frames_sent: u64,
    pub health_rows_sent: u64,
    pub health_frames_received: u64,
    pub health_rows_received: u64,
    pub health_rows_rejected: u64,
    /// Acks for batches no longer in flight (already acknowledged, or replayed): ignored.
    pub acks_ignored: u64,
    /// Frames that broke the protocol (the session closed on the first).
    pub protocol_errors: u64,
    /// Times the peer (an ancestor) became suspect ([`SessionEvent::PeerSilent`]).
    pub suspects: u64,
    /// The longest the peer went unheard on this up link in the last 30–60 s (ms): its
    /// keep-alive interval on a quiet, clean link; more where packets were lost and resent.
    pub silence_peak_ms: u64,
}

/// One link's sync state machine.
#[derive(Debug)]
pub struct Session {
    me: NodeId,
    peer: NodeId,
    side: PeerSide,
    role: Role,
    cfg: SessionConfig,
    state: State,
    /// My contiguous cursor per origin I send to the peer (updated by the driver after flushes).
    local: BTreeMap<NodeId, u64>,
    /// My contiguous cursor per origin the peer sends me: what my hello says.
    receiving: BTreeMap<NodeId, u64>,
    /// The peer's contiguous cursor per origin, from its hello and acks.
    peer_cursor: BTreeMap<NodeId, u64>,
    /// How far I have sent per origin (>= peer_cursor while the link is up).
    sent: BTreeMap<NodeId, u64>,
    /// Origins with `local > sent`, in rotation order for fairness.
    ready: BTreeSet<NodeId>,
    /// Sealed: origins whose held seqs could not be cut at a seal when asked (none held where a
    /// range could end), by the cursor they had then; out of the rotation until it moves.
    stalled: BTreeMap<NodeId, u64>,
    /// Where the next fetch starts its scan of `ready`.
    rotation: Option<NodeId>,
    fetching: Option<FetchRequest>,
    next_fetch_id: u64,
    inflight: VecDeque<InFlight>,
    next_batch_id: u64,
    /// Received batches handed to the driver and not yet persisted.
    persisting: BTreeSet<u64>,
    /// Fresh ranges waiting for the priority lane, oldest first.
    fresh: VecDeque<SeqRange>,
    /// Ranges above its cursor the peer acked from the priority lane: the bulk lane skips them.
    peer_islands: BTreeMap<NodeId, SeqRanges>,
    /// Per origin, the seq at or below which this node no longer holds every event (a school's
    /// retention dropped old ones once an ancestor held them): sending starts above it, and the
    /// peer gets what lies below from elsewhere (its own ancestor holds it).
    floors: BTreeMap<NodeId, u64>,
    /// Data frames that overtook the hello exchange (they travel another lane): replayed once up.
    early: Vec<Frame>,
    transmit: VecDeque<Frame>,
    events: VecDeque<SessionEvent>,
    /// When the last ping went out: pings also carry the backlog, so they go out every
    /// `keepalive_ms` even on a busy link.
    last_ping_ms: u64,
    last_received_ms: u64,
    /// Said [`SessionEvent::PeerSilent`] and not heard from the peer since.
    suspect: bool,
    /// The longest silences between frames heard: (when this window began, its longest, the
    /// window before's longest).
    silence_peaks: (u64, u64, u64),
    hello_sent_ms: u64,
    peer_backlog: u64,
    /// Σ over origins of local − peer cursor: [`Session::backlog_out`], kept up to date. Wider
    /// than a seq: cursors are anything up to `u64::MAX` (a peer's batch may claim seqs that far),
    /// and the sum of two of them must not overflow.
    backlog: u128,
    stats: SessionStats,
    /// Health frames sent to the peer (an ancestor) and not yet acked, oldest first, with when
    /// each was last sent: resent after `rto_ms` (a frame lost on the way is not lost for good).
    health_unacked: VecDeque<(HealthDelta, u64)>,
    /// From the peer (a descendant): every health change of its up to here (this session).
    health_in: u64,
}

impl Session {
    /// A session between `me` and `peer` (one must be the other's ancestor), starting at `now_ms`
    /// with `me`'s current cursors. A dialer queues its hello at once.
    pub fn new(
        me: NodeId,
        peer: NodeId,
        role: Role,
        cfg: SessionConfig,
        now_ms: u64,
        local: &Cursors,
    ) -> Result<Session, String> {
        let side = PeerSide::of(me, peer).ok_or_else(|| format!("{me} and {peer} are not on one path of the tree"))?;
        let mut s = Session {
            me,
            peer,
            side,
            role,
            cfg,
            state: State::Opening,
            local: BTreeMap::new(),
            receiving: BTreeMap::new(),
            peer_cursor: BTreeMap::new(),
            sent: BTreeMap::new(),
            ready: BTreeSet::new(),
            stalled: BTreeMap::new(),
            rotation: None,
            fetching: None,
            next_fetch_id: 1,
            inflight: VecDeque::new(),
            next_batch_id: 1,
            persisting: BTreeSet::new(),
            fresh: VecDeque::new(),
            peer_islands: BTreeMap::new(),
            floors: BTreeMap::new(),
            early: Vec::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            last_ping_ms: now_ms,
            last_received_ms: now_ms,
            suspect: false,
            silence_peaks: (now_ms, 0, 0),
            hello_sent_ms: now_ms,
            peer_backlog: 0,
            backlog: 0,
            stats: SessionStats::default(),
            health_unacked: VecDeque::new(),
            health_in: 0,
        };
        for (origin, ranges) in local.iter() {
            let c = ranges.contiguous();
            if c == 0 {
                continue;
            }
            if sends_origin(me, peer, origin) {
                s.local.insert(origin, c);
                s.backlog += u128::from(c);
            }
            if sends_origin(peer, me, origin) {
                s.receiving.insert(origin, c);
            }
        }
        if role == Role::Dialer {
            let hello = s.hello();
            s.transmit.push_back(Frame::Hello(hello));
        }
        Ok(s)
    }

    pub fn me(&self) -> NodeId {
        self.me
    }

    pub fn peer(&self) -> NodeId {
        self.peer
    }

    pub fn side(&self) -> PeerSide {
        self.side
    }

    pub fn is_up(&self) -> bool {
        self.state == State::Up
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// Seqs I hold that the peer has not acknowledged (an upper bound on events for filtered origins).
    pub fn backlog_out(&self) -> u64 {
        u64::try_from(self.backlog).unwrap_or(u64::MAX)
    }

    /// Keeps `backlog` (Σ local − peer cursor) in step when `local` or `peer_cursor` of `origin`
    /// changes from `before` = (local, peer) to now.
    fn rebacklog(&mut self, origin: NodeId, before: (u64, u64)) {
        let now = (self.local.get(&origin).copied().unwrap_or(0), self.peer_cursor(origin));
        let gap = |(local, peer): (u64, u64)| u128::from(local.saturating_sub(peer));
        self.backlog = self.backlog - gap(before) + gap(now);
    }

    /// Origins with events not yet acknowledged by the peer: `(origin, first unacknowledged seq)`,
    /// the most behind first, at most `max` of them.
    pub fn backlog_heads(&self, max: usize) -> Vec<(NodeId, u64)> {
        let mut heads: Vec<(u64, NodeId, u64)> = self
            .local
            .iter()
            .filter_map(|(o, &c)| {
                let acked = self.peer_cursor.get(o).copied().unwrap_or(0);
                (c > acked).then_some((c - acked, *o, acked + 1))
            })
            .collect();
        heads.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        heads.into_iter().take(max).map(|(_, o, seq)| (o, seq)).collect()
    }

    /// What the peer last said it has queued for me.
    pub fn backlog_in(&self) -> u64 {
        self.peer_backlog
    }

    /// Milliseconds since anything was received from the peer.
    pub fn silent_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.last_received_ms)
    }

    /// The peer's contiguous cursor for `origin`, as far as this session knows.
    pub fn peer_cursor(&self, origin: NodeId) -> u64 {
        self.peer_cursor.get(&origin).copied().unwrap_or(0)
    }

    /// Everything the peer confirmed holding, per origin this node sends it.
    pub fn peer_cursors(&self) -> &BTreeMap<NodeId, u64> {
        &self.peer_cursor
    }

    /// My cursors for the origins the peer sends me: what goes in my hello.
    fn hello(&self) -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            node: self.me,
            cursors: self.receiving.iter().map(|(o, c)| (*o, *c)).collect(),
        }
    }

    /// Ends the session: a goodbye with `reason` is queued for the peer and `Closed` reported.
    pub fn close(&mut self, _now_ms: u64, reason: &str) {
        if self.state == State::Closed {
            return;
        }
        let mut reason = reason.to_string();
        if reason.len() > REASON_BYTES_MAX {
            let mut cut = REASON_BYTES_MAX;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
        }
        self.state = State::Closed;
        self.transmit.clear();
        self.transmit.push_back(Frame::Goodbye { reason: reason.clone() });
        self.events.push_back(SessionEvent::Closed { reason });
    }

    /// A frame from the peer. A frame that breaks the protocol closes the session with a reason.
    pub fn handle_frame(&mut self, now_ms: u64, frame: Frame) {
        if self.state == State::Closed {
            return;
        }
        if self.state == State::Up {
            self.silence_sample(now_ms, now_ms.saturating_sub(self.last_received_ms));
        }
        self.last_received_ms = now_ms;
        if self.suspect {
            self.suspect = false;
            self.events.push_back(SessionEvent::PeerHeard);
        }
        if let Err(reason) = self.handle_frame_inner(now_ms, frame) {
            self.stats.protocol_errors += 1;
            self.close(now_ms, &reason);
        }
        if self.state == State::Up && !self.early.is_empty() {
            for frame in std::mem::take(&mut self.early) {
                if let Err(reason) = self.handle_frame_inner(now_ms, frame) {
                    self.stats.protocol_errors += 1;
                    self.close(now_ms, &reason);
                    break;
                }
            }
        }
        self.drive();
    }

    fn check_hello(&self, hello: &Hello) -> Result<(), String> {
        if hello.version != PROTOCOL_VERSION {
            return Err(format!(
                "protocol version {} not supported (this node speaks {PROTOCOL_VERSION})",
                hello.version
            ));
        }
        if hello.node != self.peer {
            return Err(format!("hello claims to be {} but the certificate says {}", hello.node, self.peer));
        }
        if hello.cursors.len() > HELLO_CURSORS_MAX {
            return Err(format!("hello carries {} cursors, above the limit {HELLO_CURSORS_MAX}", hello.cursors.len()));
        }
        Ok(())
    }

    fn adopt_peer_cursors(&mut self, cursors: &[(NodeId, u64)]) {
        for &(origin, c) in cursors {
            if sends_origin(self.me, self.peer, origin) {
                let before = (self.local.get(&origin).copied().unwrap_or(0), self.peer_cursor(origin));
                let e = self.peer_cursor.entry(origin).or_default();
                *e = (*e).max(c);
                self.rebacklog(origin, before);
                // Never keep "sent" below what the peer confirmed it holds.
                if self.state == State::Up {
                    let s = self.sent.entry(origin).or_default();
                    *s = (*s).max(c);
                }
            }
        }
    }

    /// This node no longer holds every event of `origin` at or below `floor` (retention dropped
    /// them after an ancestor held them): nothing at or below it is ever offered to the peer,
    /// which has to get those from another holder. Only raises the floor.
    pub fn set_floor(&mut self, origin: NodeId, floor: u64) {
        if !sends_origin(self.me, self.peer, origin) {
            return;
        }
        let f = self.floors.entry(origin).or_default();
        *f = (*f).max(floor);
        if self.state == State::Up && self.sent_of(origin) < floor {
            self.sent.insert(origin, floor);
            if self.local.get(&origin).copied().unwrap_or(0) <= floor {
                self.ready.remove(&origin);
            }
        }
    }

    fn go_up(&mut self, now_ms: u64) {
        self.state = State::Up;
        self.sent = self.peer_cursor.clone();
        for (&o, &f) in &self.floors {
            let s = self.sent.entry(o).or_default();
            *s = (*s).max(f);
        }
        self.ready = self.local.iter().filter(|(o, c)| **c > self.sent_of(**o)).map(|(o, _)| *o).collect();
        self.events.push_back(SessionEvent::Up);
        self.last_received_ms = now_ms;
    }

    fn sent_of(&self, origin: NodeId) -> u64 {
        self.sent.get(&origin).copied().unwrap_or(0)
    }

    fn handle_frame_inner(&mut self, now_ms: u64, frame: Frame) -> Result<(), String> {
        match (frame, self.role, &self.state) {
            (Frame::Goodbye { reason }, ..) => {
                self.state = State::Closed;
                self.events.push_back(SessionEvent::Closed { reason: format!("peer closed the link: {reason}") });
            }
            (Frame::Hello(hello), Role::Acceptor, _) => {
                self.check_hello(&hello)?;
                self.adopt_peer_cursors(&hello.cursors);
                let reply = self.hello();
                self.transmit.push_back(Frame::HelloAck(reply));
                if self.state == State::Opening {
                    self.go_up(now_ms);
                }
            }
            (Frame::HelloAck(hello), Role::Dialer, _) => {
                self.check_hello(&hello)?;
                self.adopt_peer_cursors(&hello.cursors);
                if self.state == State::Opening {
                    self.go_up(now_ms);
                }
            }
            (Frame::Hello(_), Role::Dialer, _) => return Err("unexpected hello from the accepting side".into()),
            (Frame::HelloAck(_), Role::Acceptor, _) => return Err("unexpected hello-ack from the dialing side".into()),
            (Frame::Ping { backlog }, ..) => self.peer_backlog = backlog,
            // Data frames travel another lane than the hello exchange and can overtake it: keep
            // a bounded few for when the link is up (beyond that, the peer retransmits).
            (frame, _, State::Opening) => {
                if self.early.len() < self.cfg.persist_pending_max {
                    self.early.push(frame);
                }
            }
            (Frame::Ack(ack), ..) => self.handle_ack(ack)?,
            (Frame::Batch(batch), ..) => self.handle_batch(batch, false)?,
            (Frame::Fresh(batch), ..) => self.handle_batch(batch, true)?,
            (Frame::Health(delta), ..) => self.handle_health(delta)?,
            (Frame::HealthAck { upto }, ..) => {
                if self.side != PeerSide::Ancestor {
                    return Err("a health ack came up from a descendant (acks only come down)".into());
                }
                while self.health_unacked.front().is_some_and(|(d, _)| d.upto <= upto) {
                    self.health_unacked.pop_front();
                }
            }
            // Files are the node's business beside the session (its link actor takes them first).
            (Frame::FileGet { .. } | Frame::FileData { .. } | Frame::FileFail { .. }, ..) => {
                return Err("a file frame reached the sync session".into());
            }
        }
        Ok(())
    }

    /// Health rows travel up only, from the peer's subtree only; a frame above the row limit
    /// breaks the protocol. A frame after a gap (one before it was lost) waits for the resend; a
    /// repeat is dropped; either way the peer hears how far this side has them.
    fn handle_health(&mut self, mut delta: HealthDelta) -> Result<(), String> {
        if self.side != PeerSide::Descendant {
            return Err("health rows came down from an ancestor (they only go up)".into());
        }
        if delta.rows.len() > crate::health::HEALTH_ROWS_PER_FRAME || delta.after >= delta.upto {
            return Err(format!(
                "health frame of {} rows for changes ({}, {}]: above the limit {} or empty",
                delta.rows.len(),
                delta.after,
                delta.upto,
                crate::health::HEALTH_ROWS_PER_FRAME
            ));
        }
        self.stats.health_frames_received += 1;
        if delta.after <= self.health_in && delta.upto > self.health_in {
            self.health_in = delta.upto;
            self.stats.health_rows_received += delta.rows.len() as u64;
            let peer = self.peer;
            let mut rejected = Vec::new();
            delta.rows.retain(|row| match crate::health::check_row(peer, row) {
                Ok(()) => true,
                Err(e) => {
                    rejected.push(e);
                    false
                }
            });
            self.stats.health_rows_rejected += rejected.len() as u64;
            self.events.push_back(SessionEvent::Health { delta, rejected });
        }
        self.transmit.push_back(Frame::HealthAck { upto: self.health_in });
        Ok(())
    }

    /// Queues health rows for the peer (an ancestor) on the control lane, kept until acked and
    /// resent after `rto_ms`. Only while the link is up: a new session starts from the whole
    /// table. Returns whether it was queued.
    pub fn send_health(&mut self, now_ms: u64, delta: HealthDelta) -> bool {
        if self.state != State::Up || self.side != PeerSide::Ancestor || delta.rows.is_empty() {
            return false;
        }
        self.stats.health_frames_sent += 1;
        self.stats.health_rows_sent += delta.rows.len() as u64;
        self.transmit.push_back(Frame::Health(delta.clone()));
        self.health_unacked.push_back((delta, now_ms));
        true
    }

    /// An ack names a batch this side sent: one never sent breaks the protocol; one no longer in
    /// flight (acknowledged already, or replayed) is ignored with its cursors, and more of those
    /// than batches ever sent is a flood that breaks it too.
    fn handle_ack(&mut self, ack: Ack) -> Result<(), String> {
        if ack.id == 0 || ack.id >= self.next_batch_id {
            return Err(format!("ack for batch {}, which was never sent (next is {})", ack.id, self.next_batch_id));
        }
        if ack.cursors.len() > BATCH_RANGES_MAX {
            return Err(format!("ack carries {} cursors, above the limit {BATCH_RANGES_MAX}", ack.cursors.len()));
        }
        let Some(pos) = self.inflight.iter().position(|f| f.batch.id == ack.id) else {
            self.stats.acks_ignored += 1;
            // Each copy of a batch that reaches the peer (a retransmit, a duplicate on the way) may
            // be acked once more; a few times that is a flood, not a network.
            let copies = self.stats.batches_sent + self.stats.retransmits;
            if self.stats.acks_ignored > ACKS_IGNORED_PER_COPY * copies + ACKS_IGNORED_SLACK {
                return Err(format!(
                    "{} acks for batches no longer in flight after {copies} batches sent: an ack flood",
                    self.stats.acks_ignored
                ));
            }
            return Ok(());
        };
        if let Some(done) = self.inflight.remove(pos)
            && done.fresh
        {
            for r in &done.batch.ranges {
                self.peer_islands.entry(r.origin).or_default().insert(r.after, r.upto);
            }
        }
        self.adopt_peer_cursors(&ack.cursors);
        // Islands the peer's cursor has reached are of no more use.
        let cursors = &self.peer_cursor;
        self.peer_islands.retain(|o, isl| isl.max() > cursors.get(o).copied().unwrap_or(0));
        Ok(())
    }

    /// Structural checks (a failure closes the link) and authority checks (a failure drops one
    /// event and is counted), then the batch goes to the driver to persist.
    fn handle_batch(&mut self, batch: Batch, fresh: bool) -> Result<(), String> {
        if batch.ranges.len() > BATCH_RANGES_MAX || batch.events.len() > BATCH_EVENTS_MAX {
            return Err(format!(
                "batch {} too large: {} ranges, {} events",
                batch.id,
                batch.ranges.len(),
                batch.events.len()
            ));
        }
        // Per origin: its range, and how many of its events the batch carries.
        let mut ranges: BTreeMap<NodeId, (u64, u64, u64)> = BTreeMap::new();
        for r in &batch.ranges {
            if r.after >= r.upto {
                return Err(format!("batch {} has an empty range {}({}, {}]", batch.id, r.origin, r.after, r.upto));
            }
            if !sends_origin(self.peer, self.me, r.origin) {
                return Err(format!("peer {} may not send events of origin {} to {}", self.peer, r.origin, self.me));
            }
            if ranges.insert(r.origin, (r.after, r.upto, 0)).is_some() {
                return Err(format!("batch {} names origin {} twice", batch.id, r.origin));
            }
        }
        let mut last: Option<(NodeId, u64)> = None;
        for e in &batch.events {
            let Some((after, upto, carried)) = ranges.get_mut(&e.origin) else {
                return Err(format!("batch {} carries {} outside its ranges", batch.id, e.id()));
            };
            let (after, upto) = (*after, *upto);
            *carried += 1;
            if e.seq <= after || e.seq > upto {
                return Err(format!("batch {} carries {} outside ({after}, {upto}]", batch.id, e.id()));
            }
            if last.is_some_and(|l| l >= (e.origin, e.seq)) {
                return Err(format!("batch {} is not sorted by (origin, seq) at {}", batch.id, e.id()));
            }
            last = Some((e.origin, e.seq));
        }
        // Upward, the receiver holds every event of every origin below it (each is scoped within
        // its origin's subtree): a range from below that skips some claims what it does not carry,
        // and would leave a hole here that is never filled.
        if self.side == PeerSide::Descendant {
            for (origin, (after, upto, carried)) in &ranges {
                if *carried != upto - after {
                    return Err(format!(
                        "batch {} claims {origin}({after}, {upto}] but carries {carried} of its {} events: a range sent up carries every event",
                        batch.id,
                        upto - after
                    ));
                }
            }
        }
        // A bulk sender only sends from its contiguous holdings, so the peer now holds each
        // range's origin up to `upto`: never echo those events back to it. (Fresh ranges may be
        // islands above the sender's cursor: they say nothing about what lies below.)
        if !fresh {
            let held: Vec<(NodeId, u64)> = batch.ranges.iter().map(|r| (r.origin, r.upto)).collect();
            self.adopt_peer_cursors(&held);
        }
        if self.persisting.len() >= self.cfg.persist_pending_max {
            return Err(format!("peer sent more than {} unacknowledged batches", self.cfg.persist_pending_max));
        }
        self.stats.batches_received += 1;
        self.stats.events_received += batch.events.len() as u64;
        let mut events = Vec::with_capacity(batch.events.len());
        for e in batch.events {
            match check_received(self.me, self.peer, &e) {
                Ok(()) => events.push(e),
                // From below, a refused event would leave a hole in a range this node must relay
                // whole: the batch is refused and the link closed (the peer keeps the event, and
                // its operator sees why). From above, the event is dropped and the range taken:
                // downward ranges skip what a node does not hold anyway.
                Err(violation) if self.side == PeerSide::Descendant => {
                    self.stats.rejected += 1;
                    let id = e.id();
                    let reason = format!("batch {} carries {id}, which breaks the rules: {violation}", batch.id);
                    self.events.push_back(SessionEvent::Rejected { event: id, violation });
                    return Err(reason);
                }
                Err(violation) => {
                    self.stats.rejected += 1;
                    self.events.push_back(SessionEvent::Rejected { event: e.id(), violation });
                }
            }
        }
        if self.side == PeerSide::Descendant && self.cfg.sealed {
            check_attached(batch.id, &batch.ranges, &batch.seals, &batch.certs)?;
        }
        if self.persisting.insert(batch.id) {
            // Only ancestors check an origin's history: what comes down carries nothing to check.
            let attached = if self.side == PeerSide::Descendant {
                Attached { seals: batch.seals, certs: batch.certs, from: Some(self.peer) }
            } else {
                Attached::default()
            };
            self.events.push_back(SessionEvent::Persist {
                batch_id: batch.id,
                ranges: batch.ranges,
                events,
                fresh,
                attached,
            });
        }
        Ok(())
    }

    /// The driver persisted and flushed received batch `batch_id`; `cursors` are `me`'s contiguous
    /// cursors for its origins now. Queues the ack.
    pub fn handle_persisted(&mut self, _now_ms: u64, batch_id: u64, cursors: Vec<(NodeId, u64)>) {
        if !self.persisting.remove(&batch_id) || self.state == State::Closed {
            return;
        }
        self.transmit.push_back(Frame::Ack(Ack { id: batch_id, cursors }));
    }

    /// `me`'s contiguous cursor for `origin` advanced (after a flush), locally or from another link.
    pub fn handle_local_progress(&mut self, _now_ms: u64, origin: NodeId, contiguous: u64) {
        if sends_origin(self.peer, self.me, origin) {
            let r = self.receiving.entry(origin).or_default();
            *r = (*r).max(contiguous);
        }
        if !sends_origin(self.me, self.peer, origin) {
            return;
        }
        let before = (self.local.get(&origin).copied().unwrap_or(0), self.peer_cursor(origin));
        let e = self.local.entry(origin).or_default();
        if contiguous <= *e {
            return;
        }
        *e = contiguous;
        self.stalled.remove(&origin);
        self.rebacklog(origin, before);
        if self.state == State::Up && contiguous > self.sent_of(origin) {
            self.ready.insert(origin);
        }
        self.drive();
    }

    /// `me` just came to hold `(after, upto]` of `origin`, and those events are fresh (written here,
    /// or received while recent). Queued for the priority lane when the bulk lane cannot deliver
    /// them soon: it has a queue, or the range lies above `me`'s contiguous cursor.
    pub fn handle_fresh(&mut self, _now_ms: u64, origin: NodeId, after: u64, upto: u64) {
        if !self.cfg.priority_lane || self.state != State::Up || !sends_origin(self.me, self.peer, origin) {
            return;
        }
        if upto <= after || upto - after > FRESH_EVENTS_MAX || self.sent_of(origin) >= after {
            return;
        }
        let island = after > self.local.get(&origin).copied().unwrap_or(0);
        if !island && self.unsent_bulk() < FRESH_BACKLOG_MIN {
            return;
        }
        if let Some(isl) = self.peer_islands.get(&origin)
            && (isl.covers(after, upto) || isl.ranges().len() >= FRESH_ISLANDS_MAX)
        {
            return;
        }
        // Consecutive fresh ranges of an origin travel (and become an island) as one.
        if let Some(last) = self.fresh.iter_mut().rev().find(|r| r.origin == origin)
            && last.upto == after
            && upto - last.after <= FRESH_EVENTS_MAX
        {
            last.upto = upto;
        } else if self.fresh.len() < FRESH_QUEUE_MAX {
            self.fresh.push_back(SeqRange { origin, after, upto });
        }
        self.drive();
    }

    /// Whether what this session sends must be sealed: it goes up, and seals are on.
    fn sealed_upward(&self) -> bool {
        self.side == PeerSide::Ancestor && self.cfg.sealed
    }

    /// Seqs waiting in the bulk lane (held here, not yet sent).
    fn unsent_bulk(&self) -> u64 {
        self.ready.iter().fold(0u64, |sum, o| {
            sum.saturating_add(self.local.get(o).copied().unwrap_or(0).saturating_sub(self.sent_of(*o)))
        })
    }

    fn inflight_fresh(&self) -> usize {
        self.inflight.iter().filter(|f| f.fresh).count()
    }

    /// The driver's answer to a [`FetchRequest`]: the ranges it covered (each `upto` possibly lower
    /// than asked when it hit a limit, `after` unchanged) and the events in them the peer should hold.
    pub fn handle_fetched(&mut self, now_ms: u64, fetch_id: u64, covered: Vec<SeqRange>, events: Vec<Event>) {
        self.handle_fetched_sealed(now_ms, fetch_id, covered, events, Attached::default());
    }

    /// [`Session::handle_fetched`] with the seals (one ending each covered range) and certificate
    /// chains a sealed fetch ([`FetchRequest::sealed`]) carries up.
    pub fn handle_fetched_sealed(
        &mut self,
        now_ms: u64,
        fetch_id: u64,
        covered: Vec<SeqRange>,
        events: Vec<Event>,
        attached: Attached,
    ) {
        let Some(req) = self.fetching.take_if(|r| r.id == fetch_id) else {
            return;
        };
        if self.state != State::Up {
            return;
        }
        if req.fresh {
            self.fetched_fresh(now_ms, &req, covered, events, attached);
            self.drive();
            return;
        }
        // Sealed, origins the store could not cut at a seal (read only then: a bulk fetch is hot).
        let uncovered: Vec<NodeId> = if req.sealed {
            req.ranges.iter().map(|a| a.origin).filter(|o| !covered.iter().any(|r| r.origin == *o)).collect()
        } else {
            Vec::new()
        };
        let mut ranges = Vec::with_capacity(covered.len());
        for r in covered {
            // Only ranges that continue exactly where this session's sending stands are usable;
            // anything else is stale (an ack moved us on meanwhile) and is fetched again.
            let asked = req.ranges.iter().any(|a| a.origin == r.origin && a.after == r.after && r.upto <= a.upto);
            if asked && r.upto > r.after && self.sent_of(r.origin) == r.after {
                self.sent.insert(r.origin, r.upto);
                ranges.push(r);
            }
            if self.local.get(&r.origin).copied().unwrap_or(0) <= self.sent_of(r.origin) {
                self.ready.remove(&r.origin);
            }
        }
        // The next fetch starts after the last origin served, so a big backlog on one origin
        // cannot starve the others.
        if let Some(last) = ranges.last() {
            self.rotation = Some(last.origin);
        }
        if !ranges.is_empty() {
            self.send_batch(now_ms, ranges, events, attached, false);
        } else if req.sealed {
            // Nothing could be cut at a seal (none held where these ranges could end): ask again
            // when those origins' holdings move, not at once.
            for o in uncovered {
                self.ready.remove(&o);
                self.stalled.insert(o, self.local.get(&o).copied().unwrap_or(0));
            }
        }
        self.drive();
    }

    /// Sends a batch of `ranges` (sorted by origin) with the fetched events that fall in them, on
    /// the bulk lane or (`fresh`) the priority lane, and keeps it until acked.
    fn send_batch(&mut self, now_ms: u64, ranges: Vec<SeqRange>, events: Vec<Event>, attached: Attached, fresh: bool) {
        let kept: BTreeSet<NodeId> = ranges.iter().map(|r| r.origin).collect();
        let events: Vec<Event> = events.into_iter().filter(|e| kept.contains(&e.origin)).collect();
        // A seal goes with the range it ends; a range dropped as stale leaves its seal behind.
        let seals = if self.side == PeerSide::Ancestor {
            attached
                .seals
                .into_iter()
                .filter(|s| ranges.iter().any(|r| r.origin == s.origin && r.upto == s.upto))
                .collect()
        } else {
            Vec::new()
        };
        let certs = if self.side == PeerSide::Ancestor { attached.certs } else { Vec::new() };
        let batch = Batch { id: self.next_batch_id, ranges, events, seals, certs };
        self.next_batch_id += 1;
        self.stats.batches_sent += 1;
        self.stats.events_sent += batch.events.len() as u64;
        if fresh {
            self.stats.fresh_batches_sent += 1;
            self.stats.fresh_events_sent += batch.events.len() as u64;
        }
        let f = InFlight { batch, sent_at_ms: now_ms, first_sent_ms: now_ms, fresh };
        self.transmit.push_back(f.frame());
        self.inflight.push_back(f);
    }

    /// A priority-lane fetch came back: send what it covered, queue the rest again (first).
    fn fetched_fresh(
        &mut self,
        now_ms: u64,
        req: &FetchRequest,
        covered: Vec<SeqRange>,
        events: Vec<Event>,
        attached: Attached,
    ) {
        let mut ranges = Vec::with_capacity(covered.len());
        for asked in req.ranges.iter().rev() {
            let got = covered.iter().find(|r| {
                r.origin == asked.origin && r.after == asked.after && r.upto <= asked.upto && r.upto > r.after
            });
            let done_upto = match got {
                Some(r) => {
                    ranges.push(*r);
                    r.upto
                }
                None => asked.after,
            };
            // Sealed, a range not served is not one seal's span here: the bulk lane carries it.
            if done_upto < asked.upto && !(req.sealed && got.is_none()) {
                self.fresh.push_front(SeqRange { origin: asked.origin, after: done_upto, upto: asked.upto });
            }
        }
        if ranges.is_empty() {
            return;
        }
        ranges.sort_by_key(|r| r.origin);
        self.send_batch(now_ms, ranges, events, attached, true);
    }

    /// Time passed: retransmits, keep-alives, the idle timeout.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if self.state == State::Closed {
            return;
        }
        if now_ms.saturating_sub(self.last_received_ms) >= self.cfg.idle_timeout_ms {
            let silent = now_ms.saturating_sub(self.last_received_ms);
            self.close(now_ms, &format!("peer {} silent for {silent} ms", self.peer));
            return;
        }
        match self.state {
            State::Opening if self.role == Role::Dialer && now_ms >= self.hello_sent_ms + self.cfg.rto_ms => {
                self.hello_sent_ms = now_ms;
                let hello = self.hello();
                self.transmit.push_back(Frame::Hello(hello));
            }
            State::Up => {
                if let Some(due) = self.suspect_due()
                    && now_ms >= due
                {
                    self.suspect = true;
                    self.stats.suspects += 1;
                    let silent_ms = now_ms.saturating_sub(self.last_received_ms);
                    self.events.push_back(SessionEvent::PeerSilent { silent_ms });
                }
                let rto = self.cfg.rto_ms;
                let mut resend = Vec::new();
                for f in self.inflight.iter_mut() {
                    if now_ms >= f.sent_at_ms + rto {
                        f.sent_at_ms = now_ms;
                        resend.push(f.frame());
                    }
                }
                for (delta, sent_at) in self.health_unacked.iter_mut() {
                    if now_ms >= *sent_at + rto {
                        *sent_at = now_ms;
                        resend.push(Frame::Health(delta.clone()));
                    }
                }
                self.stats.retransmits += resend.len() as u64;
                for frame in resend {
                    self.transmit.push_back(frame);
                }
            }
            _ => {}
        }
        if now_ms >= self.last_ping_ms + self.cfg.keepalive_ms {
            self.last_ping_ms = now_ms;
            let backlog = self.backlog_out();
            self.transmit.push_back(Frame::Ping { backlog });
        }
        self.drive();
    }

    /// When `handle_timeout` should next be called.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.state == State::Closed {
            return None;
        }
        let mut t = (self.last_received_ms + self.cfg.idle_timeout_ms).min(self.last_ping_ms + self.cfg.keepalive_ms);
        if self.state == State::Opening && self.role == Role::Dialer {
            t = t.min(self.hello_sent_ms + self.cfg.rto_ms);
        }
        if let Some(oldest) = self.inflight.iter().map(|f| f.sent_at_ms).min() {
            t = t.min(oldest + self.cfg.rto_ms);
        }
        if let Some(oldest) = self.health_unacked.iter().map(|(_, at)| *at).min() {
            t = t.min(oldest + self.cfg.rto_ms);
        }
        if let Some(due) = self.suspect_due() {
            t = t.min(due);
        }
        Some(t)
    }

    /// A frame arrived `gap_ms` after the one before on an up link: folded into the longest of
    /// the last 30–60 s.
    fn silence_sample(&mut self, now_ms: u64, gap_ms: u64) {
        let (start, cur, prev) = &mut self.silence_peaks;
        if now_ms >= *start + SILENCE_PEAK_WINDOW_MS {
            *prev = if now_ms < *start + 2 * SILENCE_PEAK_WINDOW_MS { *cur } else { 0 };
            *cur = 0;
            *start = now_ms;
        }
        *cur = (*cur).max(gap_ms);
        self.stats.silence_peak_ms = (*cur).max(*prev);
    }

    /// How long an ancestor may stay silent with a batch unacked before it is suspect: the
    /// configured `suspect_after_ms`, or a quarter more than the longest it went unheard on this
    /// link in the last 30–60 s and was heard again, so that a lossy link, where a lost keep-alive
    /// or ack is resent by the transport, is not taken for a dead parent (and a parent heard again
    /// after a hedge is given longer the next time); never reaching the idle timeout. Slow acks
    /// alone do not count: a busy parent still sends its keep-alives.
    pub fn suspect_after_ms(&self) -> u64 {
        let learned = self.stats.silence_peak_ms * 5 / 4;
        self.cfg.suspect_after_ms.max(learned).min(self.cfg.idle_timeout_ms.saturating_sub(1))
    }

    /// When an ancestor peer becomes suspect if nothing arrives before: `suspect_after_ms` after
    /// the later of the last frame received and the oldest batch in flight. `None` when the link
    /// is not up, the peer is not an ancestor, nothing waits for an ack, or it is suspect already.
    fn suspect_due(&self) -> Option<u64> {
        if self.cfg.suspect_after_ms == 0 || self.suspect || self.state != State::Up || self.side != PeerSide::Ancestor
        {
            return None;
        }
        let oldest = self.inflight.iter().map(|f| f.first_sent_ms).min()?;
        Some(oldest.max(self.last_received_ms) + self.suspect_after_ms())
    }

    pub fn poll_transmit(&mut self) -> Option<Frame> {
        self.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Asks for the next batch's events when the window allows: fresh ranges first.
    fn drive(&mut self) {
        if self.state != State::Up || self.fetching.is_some() {
            return;
        }
        if !self.fresh.is_empty() && self.inflight_fresh() < FRESH_WINDOW {
            self.drive_fresh();
            if self.fetching.is_some() {
                return;
            }
        }
        if self.inflight.len() - self.inflight_fresh() >= self.cfg.window_batches || self.ready.is_empty() {
            return;
        }
        // Round-robin over ready origins, starting after the last one served.
        let start = self.rotation;
        let mut order: Vec<NodeId> = match start {
            Some(s) => self.ready.range((std::ops::Bound::Excluded(s), std::ops::Bound::Unbounded)).copied().collect(),
            None => self.ready.iter().copied().collect(),
        };
        if let Some(s) = start {
            order.extend(self.ready.range(..=s).copied());
        }
        order.truncate(BATCH_RANGES_MAX);
        let sealed = self.sealed_upward();
        let mut ranges = Vec::with_capacity(order.len());
        for o in order {
            let mut r = SeqRange { origin: o, after: self.sent_of(o), upto: self.local.get(&o).copied().unwrap_or(0) };
            // Skip what the peer already holds from the priority lane, and stop below the next
            // island (one range per origin in a batch).
            if let Some(isl) = self.peer_islands.get(&o) {
                for &(a, b) in isl.ranges() {
                    if a <= r.after && r.after < b {
                        r.after = b;
                    } else if a > r.after && sealed {
                        // Sealed, a range ends only where a seal ends, which the island's start
                        // need not be here: it runs on over the island (the peer skips what it holds).
                        break;
                    } else if a > r.after {
                        r.upto = r.upto.min(a);
                        break;
                    }
                }
                if r.after > self.sent_of(o) {
                    self.sent.insert(o, r.after);
                }
            }
            if r.upto > r.after {
                ranges.push(r);
            } else {
                // The peer got there another way (an ack moved `sent` past `local`).
                self.ready.remove(&o);
            }
        }
        if ranges.is_empty() {
            return;
        }
        // The rotation picks which origins; a batch lists them in order (events sorted by
        // (origin, seq) is part of the wire contract).
        ranges.sort_by_key(|r| r.origin);
        let total_max = self.cfg.batch_events_max;
        let per_range_max = (total_max / ranges.len()).max(16).min(total_max);
        let sealed = self.sealed_upward();
        let req = FetchRequest { id: self.next_fetch_id, ranges, per_range_max, total_max, fresh: false, sealed };
        self.next_fetch_id += 1;
        self.fetching = Some(req.clone());
        self.events.push_back(SessionEvent::Fetch(req));
    }

    /// Asks for the queued fresh ranges: one range per origin, in queue order, within a batch's
    /// limits. Ranges the bulk lane or an earlier island already carried are dropped.
    fn drive_fresh(&mut self) {
        let total_max = self.cfg.batch_events_max;
        let mut ranges: Vec<SeqRange> = Vec::new();
        let mut events = 0u64;
        let mut later = VecDeque::new();
        while let Some(mut r) = self.fresh.pop_front() {
            r.after = r.after.max(self.sent_of(r.origin));
            let held = self.peer_islands.get(&r.origin).is_some_and(|isl| isl.covers(r.after, r.upto));
            if r.upto <= r.after || held {
                continue;
            }
            let full = ranges.len() >= BATCH_RANGES_MAX || events + (r.upto - r.after) > total_max as u64;
            if full || ranges.iter().any(|x| x.origin == r.origin) {
                later.push_back(r);
                if full {
                    break;
                }
                continue;
            }
            events += r.upto - r.after;
            ranges.push(r);
        }
        later.append(&mut self.fresh);
        self.fresh = later;
        if ranges.is_empty() {
            return;
        }
        ranges.sort_by_key(|r| r.origin);
        let per_range_max = FRESH_EVENTS_MAX as usize;
        let sealed = self.sealed_upward();
        let req = FetchRequest { id: self.next_fetch_id, ranges, per_range_max, total_max, fresh: true, sealed };
        self.next_fetch_id += 1;
        self.fetching = Some(req.clone());
        self.events.push_back(SessionEvent::Fetch(req));
    }

    /// Checks the invariants of this session's state: each holds after every step, whatever the
    /// peer sends and however the network loses, duplicates or reorders frames. A broken one is a
    /// bug in the session, or in a driver that broke its contract (say, a fetch answered with
    /// events outside the ranges it claims). The node's link actor calls it after every step in
    /// debug builds (so the simulator does too), and the session tests after every step of the
    /// lossy pair. Costs O(origins + in-flight events): a debug check, not for release builds.
    ///
    /// Not checked, because they do not hold: that the peer's cursor stays below what this side
    /// holds or sent (a parent holds more of a wiped child's events than the child; a hostile
    /// peer may claim anything), and that the peer holds at most [`FRESH_ISLANDS_MAX`] islands of
    /// an origin (that limit is checked when a fresh range is queued; ranges already queued or in
    /// flight still become islands).
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        let (me, peer) = (self.me, self.peer);
        // The filter: every origin tracked for sending is one `me` sends `peer`, every origin
        // tracked for receiving one `peer` sends `me`. Nothing else is kept, asked for or sent.
        let outgoing = self
            .local
            .keys()
            .chain(self.peer_cursor.keys())
            .chain(self.sent.keys())
            .chain(self.peer_islands.keys())
            .chain(self.fresh.iter().map(|r| &r.origin));
        for o in outgoing {
            ensure(sends_origin(me, peer, *o), "outgoing origins pass the filter", || {
                format!("{me} tracks origin {o} for sending, but does not send it to {peer}")
            })?;
        }
        for o in self.receiving.keys() {
            ensure(sends_origin(peer, me, *o), "incoming origins pass the filter", || {
                format!("{me} tracks origin {o} for receiving, but {peer} does not send it")
            })?;
        }
        // `backlog` is kept up to date incrementally; it must equal Σ local − peer cursor.
        let backlog: u128 = self.local.iter().map(|(o, &c)| u128::from(c.saturating_sub(self.peer_cursor(*o)))).sum();
        ensure(self.backlog == backlog, "backlog in step with the cursors", || {
            format!("backlog_out is {} but Σ local − peer cursor is {backlog}", self.backlog)
        })?;
        // Nothing is fetched, sent, persisted or queued before the hello exchange finished.
        if self.state == State::Opening {
            let busy = [
                ("sent", self.sent.len()),
                ("ready", self.ready.len()),
                ("in flight", self.inflight.len()),
                ("fetching", usize::from(self.fetching.is_some())),
                ("fresh queue", self.fresh.len()),
                ("peer islands", self.peer_islands.len()),
                ("persisting", self.persisting.len()),
            ];
            for (what, n) in busy {
                ensure(n == 0, "nothing moves before the link is up", || format!("opening, yet {what} holds {n}"))?;
            }
        }
        // Frames that overtook the hello exchange are bounded, and replayed as soon as it is up.
        ensure(self.early.len() <= self.cfg.persist_pending_max, "early frames bounded", || {
            format!("{} early frames kept, limit {}", self.early.len(), self.cfg.persist_pending_max)
        })?;
        ensure(self.state != State::Up || self.early.is_empty(), "early frames replayed once up", || {
            format!("up with {} early frames still kept", self.early.len())
        })?;
        // A peer may have at most `persist_pending_max` batches with this side's driver at once.
        ensure(self.persisting.len() <= self.cfg.persist_pending_max, "persisting bounded", || {
            format!("{} batches persisting, limit {}", self.persisting.len(), self.cfg.persist_pending_max)
        })?;
        if self.state == State::Up {
            // Sending never restarts below what the peer confirmed holding (no needless resend).
            for (o, &c) in &self.peer_cursor {
                ensure(self.sent_of(*o) >= c, "sent covers the peer's cursor", || {
                    format!("sent {} of origin {o} but the peer confirmed {c}", self.sent_of(*o))
                })?;
            }
            // Liveness: an origin with held seqs not yet sent is in the rotation, or it would
            // never be sent.
            for (o, &c) in &self.local {
                let stalled = self.stalled.get(o) == Some(&c);
                ensure(c <= self.sent_of(*o) || self.ready.contains(o) || stalled, "unsent origins are ready", || {
                    format!("origin {o} held to {c}, sent to {}, but not ready", self.sent_of(*o))
                })?;
            }
        }
        for o in &self.ready {
            ensure(self.local.contains_key(o), "ready origins are held", || format!("origin {o} ready but not held"))?;
        }
        self.check_inflight()?;
        self.check_fetching()?;
        // Queued fresh ranges are non-empty, no wider than a fresh range may be, and bounded
        // (a fetch's unserved rest goes back to the front even when the queue is full).
        for r in &self.fresh {
            ensure(r.after < r.upto && r.upto - r.after <= FRESH_EVENTS_MAX, "fresh ranges are small", || {
                format!("queued fresh range {}({}, {}]", r.origin, r.after, r.upto)
            })?;
        }
        ensure(self.fresh.len() <= FRESH_QUEUE_MAX + BATCH_RANGES_MAX, "fresh queue bounded", || {
            format!("{} fresh ranges queued", self.fresh.len())
        })?;
        // Islands are well-formed `SeqRanges`: non-empty, sorted, disjoint, not touching, few.
        for (o, isl) in &self.peer_islands {
            let r = isl.ranges();
            let sorted = r.windows(2).all(|w| w[0].1 < w[1].0);
            let ok = !r.is_empty() && r.len() <= ISLANDS_MAX + 1 && sorted && r.iter().all(|(a, b)| a < b);
            ensure(ok, "peer islands well-formed", || format!("islands of {o}: {r:?}"))?;
        }
        let s = &self.stats;
        let ok = s.fresh_batches_sent <= s.batches_sent && s.fresh_events_sent <= s.events_sent;
        ensure(ok && s.rejected <= s.events_received, "stats consistent", || format!("{s:?}"))?;
        Ok(())
    }

    /// In-flight batches: within the windows, in send order, each one a batch the peer accepts.
    fn check_inflight(&self) -> Result<(), InvariantViolation> {
        let fresh = self.inflight_fresh();
        let bulk = self.inflight.len() - fresh;
        ensure(bulk <= self.cfg.window_batches, "bulk window", || {
            format!("{bulk} bulk batches in flight, window {}", self.cfg.window_batches)
        })?;
        ensure(fresh <= FRESH_WINDOW, "fresh window", || format!("{fresh} fresh batches in flight"))?;
        let mut last_id = 0;
        for f in &self.inflight {
            let b = &f.batch;
            ensure(last_id < b.id && b.id < self.next_batch_id, "in-flight batches in send order", || {
                format!("batch {} after batch {last_id} (next id {})", b.id, self.next_batch_id)
            })?;
            last_id = b.id;
            check_ranges(self.me, self.peer, &b.ranges, "in-flight batch")?;
            for r in &b.ranges {
                // Bulk claims only what was sent, and `sent` never goes back.
                ensure(f.fresh || r.upto <= self.sent_of(r.origin), "bulk batches lie within sent", || {
                    format!(
                        "batch {} claims {}({}, {}], sent {}",
                        b.id,
                        r.origin,
                        r.after,
                        r.upto,
                        self.sent_of(r.origin)
                    )
                })?;
                ensure(!f.fresh || r.upto - r.after <= FRESH_EVENTS_MAX, "fresh ranges are small", || {
                    format!("fresh batch {} claims {}({}, {}]", b.id, r.origin, r.after, r.upto)
                })?;
            }
            // The wire contract: events sorted by (origin, seq), each inside its origin's range.
            let mut prev: Option<(NodeId, u64)> = None;
            for e in &b.events {
                let inside = b.ranges.iter().any(|r| r.origin == e.origin && r.after < e.seq && e.seq <= r.upto);
                let sorted = prev.is_none_or(|p| p < (e.origin, e.seq));
                ensure(inside && sorted, "batch events sorted and within their ranges", || {
                    format!("batch {} carries {} (ranges {:?}, previous {prev:?})", b.id, e.id(), b.ranges)
                })?;
                prev = Some((e.origin, e.seq));
            }
        }
        Ok(())
    }

    /// The fetch waiting for the driver: asked only while up, for ranges this side holds.
    fn check_fetching(&self) -> Result<(), InvariantViolation> {
        let Some(req) = &self.fetching else { return Ok(()) };
        ensure(req.id < self.next_fetch_id, "fetch ids issued in order", || {
            format!("fetch {} pending, next id {}", req.id, self.next_fetch_id)
        })?;
        check_ranges(self.me, self.peer, &req.ranges, "fetch")?;
        let mut events = 0u64;
        for r in &req.ranges {
            let local = self.local.get(&r.origin).copied().unwrap_or(0);
            // Bulk reads only below `me`'s contiguous cursor (the priority lane may go above).
            ensure(req.fresh || r.upto <= local, "bulk fetches lie within held seqs", || {
                format!("fetch {} asks {}({}, {}], held to {local}", req.id, r.origin, r.after, r.upto)
            })?;
            ensure(!req.fresh || r.upto - r.after <= FRESH_EVENTS_MAX, "fresh ranges are small", || {
                format!("fresh fetch {} asks {}({}, {}]", req.id, r.origin, r.after, r.upto)
            })?;
            events = events.saturating_add(r.upto - r.after);
        }
        let ok = if req.fresh { events <= req.total_max as u64 } else { req.per_range_max <= req.total_max };
        ensure(ok, "fetch limits", || format!("{req:?}"))
    }

    /// What only grows in this session, to compare with after a step ([`Session::check_progress`]).
    pub fn watermarks(&self) -> Watermarks {
        Watermarks {
            state: self.state.rank(),
            local: listed(&self.local),
            receiving: listed(&self.receiving),
            peer_cursor: listed(&self.peer_cursor),
            sent: listed(&self.sent),
            next_batch_id: self.next_batch_id,
            next_fetch_id: self.next_fetch_id,
            stats: self.stats,
        }
    }

    /// Checks that nothing went back since `before` was taken: the state only moves forward
    /// (opening, up, closed), and every cursor this session tracks (mine, the peer's, how far it
    /// sent) per origin, the batch and fetch ids and the counters never decrease.
    pub fn check_progress(&self, before: &Watermarks) -> Result<(), InvariantViolation> {
        let state = self.state.rank();
        ensure(state >= before.state, "state only moves forward", || {
            format!("state went from rank {} to {state}", before.state)
        })?;
        let maps = [
            ("local", &before.local, &self.local),
            ("receiving", &before.receiving, &self.receiving),
            ("peer cursor", &before.peer_cursor, &self.peer_cursor),
            ("sent", &before.sent, &self.sent),
        ];
        for (what, was, is) in maps {
            // Both sorted by origin: one walk finds each earlier origin's cursor now.
            let mut now = is.iter().peekable();
            for &(o, c) in was {
                while now.next_if(|(k, _)| **k < o).is_some() {}
                let c2 = now.peek().filter(|(k, _)| **k == o).map(|(_, v)| **v);
                ensure(c2.is_some_and(|c2| c2 >= c), "cursors never decrease", || {
                    format!("{what} of origin {o} went from {c} to {c2:?}")
                })?;
            }
        }
        let ids = self.next_batch_id >= before.next_batch_id && self.next_fetch_id >= before.next_fetch_id;
        ensure(ids, "ids never reused", || {
            let (b, f) = (before.next_batch_id, before.next_fetch_id);
            format!("next batch/fetch ids went from {b}/{f} to {}/{}", self.next_batch_id, self.next_fetch_id)
        })?;
        let (a, b) = (&before.stats, &self.stats);
        let counters = [
            (a.batches_sent, b.batches_sent),
            (a.batches_received, b.batches_received),
            (a.events_sent, b.events_sent),
            (a.events_received, b.events_received),
            (a.retransmits, b.retransmits),
            (a.rejected, b.rejected),
            (a.fresh_batches_sent, b.fresh_batches_sent),
            (a.fresh_events_sent, b.fresh_events_sent),
        ];
        ensure(counters.iter().all(|(x, y)| x <= y), "counters never decrease", || format!("{a:?} then {b:?}"))
    }
}

/// A batch from a descendant carries, for each range, the one seal of its origin that ends it,
/// and no more than [`BATCH_CERTS_MAX`] certificate chains of bounded size.
fn check_attached(
    id: u64,
    ranges: &[SeqRange],
    seals: &[crate::seal::Seal],
    certs: &[crate::wire::OriginCert],
) -> Result<(), String> {
    if seals.len() != ranges.len() {
        return Err(format!(
            "batch {id} has {} ranges but {} seals: each range sent up ends with its origin's seal",
            ranges.len(),
            seals.len()
        ));
    }
    for r in ranges {
        if !seals.iter().any(|s| s.origin == r.origin && s.upto == r.upto) {
            return Err(format!(
                "batch {id} range {}({}, {}] has no seal of its origin ending it",
                r.origin, r.after, r.upto
            ));
        }
    }
    if certs.len() > BATCH_CERTS_MAX {
        return Err(format!("batch {id} carries {} certificate chains (at most {BATCH_CERTS_MAX})", certs.len()));
    }
    if let Some(c) = certs.iter().find(|c| c.chain.iter().map(Vec::len).sum::<usize>() > CERT_CHAIN_BYTES_MAX) {
        return Err(format!(
            "batch {id} carries a certificate chain of {} over {CERT_CHAIN_BYTES_MAX} bytes",
            c.origin
        ));
    }
    Ok(())
}

#[cfg(test)]
impl Session {
    /// Test-only: sets how far this session sent `origin`, bypassing every rule (to show that
    /// [`Session::check_invariants`] notices a corrupted state).
    pub(crate) fn force_sent_for_test(&mut self, origin: NodeId, upto: u64) {
        self.sent.insert(origin, upto);
    }
}
