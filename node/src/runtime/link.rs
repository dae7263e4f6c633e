//! The link actor: one per connection, driving a sans-IO `Session` over a transport `Connection`.
//!
//! It is the only place a session meets the world: frames in from a reader task, frames out to a
//! writer task per lane (or in place, to a transport whose sends never wait), batches to the
//! store actor (acked only after the store's flush), fetches read from storage, and timers from
//! the clock seam. Its status is shared with the node actor for `topology show`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use protocol::holds::PeerSide;
use protocol::wire::{Lane, decode_frame, encode_frame};
use protocol::{Role, Session, SessionConfig, SessionEvent, Watermarks};
use ractor::concurrency::oneshot;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use topology::NodeId;
use tracing::{info, warn};

use crate::clock::Clock;
use crate::runtime::invariant;
use crate::runtime::store::{
    OLDEST_SCAN_ORIGINS_MAX, PriorityInbox, Progress, StoreMsg, Subscriber, oldest_waiting_ms, read_fetch, seal_fetch,
};
use crate::storage::Storage;
use crate::transport::{Connection, FrameSender, TransportError};

/// A link's state as an admin sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkState {
    /// Never connected since this node started.
    Never,
    /// Dialing (parent link) or handshaking.
    Connecting,
    Up,
    Down,
}

/// What `topology show` prints per link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStatus {
    pub peer: NodeId,
    /// "parent" or "child".
    pub role: String,
    pub state: LinkState,
    /// Unix ms of the last state change.
    pub since_ms: u64,
    /// Unix ms when anything was last received from the peer (0: never).
    pub last_seen_ms: u64,
    /// Events (seqs) this node still has to send to the peer.
    pub backlog_out: u64,
    /// Events the peer last said it still has to send here.
    pub backlog_in: u64,
    pub events_sent: u64,
    pub events_received: u64,
    /// Of `events_sent`, those sent on the priority lane ahead of a backlog.
    #[serde(default)]
    pub fresh_events_sent: u64,
    pub retransmits: u64,
    /// Events the peer sent that were refused, over all its connections since the node started.
    pub rejected: u64,
    /// How long the oldest event still queued for the peer has been held here (ms; 0: none).
    pub oldest_unsent_age_ms: u64,
    /// Why the link last went down or failed to come up.
    pub last_error: Option<String>,
    /// How far the peer has confirmed holding this node's own events (their seq): a directive
    /// this node sent with a seq at or below it has been delivered to the peer.
    #[serde(default)]
    pub holds_mine: u64,
    /// Times the link came back after it had been up, and its last disconnects with reasons
    /// (kept across the node's restarts through the health table).
    #[serde(default)]
    pub reconnects: u32,
    #[serde(default)]
    pub disconnects: Vec<protocol::health::Disconnect>,
    /// Health frames' bytes received from the peer and sent to it.
    #[serde(default)]
    pub health_bytes_in: u64,
    #[serde(default)]
    pub health_bytes_out: u64,
    /// Health rows the peer sent that it had no right to send.
    #[serde(default)]
    pub health_rows_rejected: u64,
    /// Connections of the peer closed because it broke the protocol (kept across its connections).
    #[serde(default)]
    pub protocol_errors: u64,
    /// Acks the peer sent for batches no longer in flight, this connection (ignored).
    #[serde(default)]
    pub acks_ignored: u64,
    /// Times the peer (an ancestor) fell silent with a batch unacked (this connection): each
    /// time the node dialed the next ancestor up beside it.
    #[serde(default)]
    pub suspects: u64,
    /// Whether the link has ever been up (internal: a coming up after it is a reconnect).
    #[serde(skip)]
    pub ever_up: bool,
    /// What the peer had confirmed holding when the link last ended (internal: lets the node
    /// report the backlog towards a peer that is down).
    #[serde(skip)]
    pub acked: BTreeMap<NodeId, u64>,
}

impl LinkStatus {
    pub fn new(peer: NodeId, role: &str, now_ms: u64) -> LinkStatus {
        LinkStatus {
            peer,
            role: role.to_string(),
            state: LinkState::Never,
            since_ms: now_ms,
            last_seen_ms: 0,
            backlog_out: 0,
            backlog_in: 0,
            events_sent: 0,
            events_received: 0,
            fresh_events_sent: 0,
            retransmits: 0,
            rejected: 0,
            oldest_unsent_age_ms: 0,
            last_error: None,
            holds_mine: 0,
            reconnects: 0,
            disconnects: Vec::new(),
            health_bytes_in: 0,
            health_bytes_out: 0,
            health_rows_rejected: 0,
            protocol_errors: 0,
            acks_ignored: 0,
            suspects: 0,
            ever_up: false,
            acked: BTreeMap::new(),
        }
    }

    pub fn set_state(&mut self, state: LinkState, now_ms: u64) {
        if self.state != state {
            self.state = state;
            self.since_ms = now_ms;
        }
    }
}

pub type SharedStatus = Arc<Mutex<LinkStatus>>;

pub fn lock_status(s: &SharedStatus) -> std::sync::MutexGuard<'_, LinkStatus> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct LinkArgs {
    pub me: NodeId,
    pub conn: Connection,
    pub role: Role,
    pub store: ActorRef<StoreMsg>,
    pub store_priority: PriorityInbox,
    pub storage: Arc<dyn Storage>,
    pub clock: Arc<dyn Clock>,
    pub cfg: SessionConfig,
    /// Unique per link within the node (store subscription key).
    pub link_id: u64,
    pub status: SharedStatus,
    /// Called with the peer once the hello exchange finished.
    pub on_up: Box<dyn Fn(NodeId) + Send + Sync>,
    /// Called with health rows the peer (a descendant) sent, already checked.
    pub on_health: Box<dyn Fn(NodeId, protocol::health::HealthDelta) + Send + Sync>,
    /// Called with a file frame the peer sent (a request from an ancestor, a part or a refusal
    /// from a descendant), once the link is up: files are the root actor's business.
    pub on_file: Box<dyn Fn(NodeId, protocol::Frame) + Send + Sync>,
    /// Called with `true` when the peer (an ancestor) fell silent with a batch unacked, and with
    /// `false` when it is heard again.
    pub on_silent: Box<dyn Fn(NodeId, bool) + Send + Sync>,
}

pub enum LinkMsg {
    Frame(Vec<u8>),
    /// A priority-lane batch waits in the link's [`FreshInbox`] (it is handled before the next
    /// message, whichever that is).
    FreshWake,
    /// The reader ended: `None` for a clean close by the peer.
    ReaderEnded(Option<TransportError>),
    WriterFailed(TransportError),
    Progress(Progress),
    Persisted {
        batch_id: u64,
        result: Result<Vec<(NodeId, u64)>, String>,
    },
    Tick,
    /// Close the link, telling the peer why.
    Close(String),
    /// Health rows for the peer (an ancestor).
    Health(protocol::health::HealthDelta),
    /// A file frame for the peer (`FileGet` down, `FileData` / `FileFail` up).
    File(protocol::Frame),
}

impl LinkMsg {
    /// The step a message makes, for a broken invariant's report.
    fn name(&self) -> &'static str {
        match self {
            LinkMsg::Frame(_) => "a received frame",
            LinkMsg::FreshWake => "a received priority-lane frame",
            LinkMsg::ReaderEnded(_) => "the reader's end",
            LinkMsg::WriterFailed(_) => "a failed send",
            LinkMsg::Progress(_) => "local progress",
            LinkMsg::Persisted { .. } => "a persisted batch",
            LinkMsg::Tick => "a timer tick",
            LinkMsg::Close(_) => "a close",
            LinkMsg::Health(_) => "health rows to send",
            LinkMsg::File(_) => "a file frame to send",
        }
    }
}

enum WriterCmd {
    Frame(Vec<u8>),
    Close(String),
}

/// How long a close waits, so that the goodbye leaves before the close frame.
const CLOSE_DELAY_MS: u64 = 20;

/// One outgoing lane: a writer task of its own when the transport's sends may wait (QUIC), or the
/// transport's sender itself, sent to in place, when they never do (the simulator's in-memory net:
/// no task wake-up and channel hop per frame).
enum LaneOut {
    Task(mpsc::UnboundedSender<WriterCmd>),
    /// `None` once closed; `failed` after a send failed (what follows is dropped, as the writer
    /// task stops at its first failure).
    Direct {
        sender: Option<Box<dyn FrameSender>>,
        failed: bool,
    },
}

impl LaneOut {
    fn new(sender: Box<dyn FrameSender>, link: ActorRef<LinkMsg>) -> LaneOut {
        if sender.never_waits() {
            LaneOut::Direct { sender: Some(sender), failed: false }
        } else {
            LaneOut::Task(spawn_writer(sender, link))
        }
    }

    /// Sends a frame: `Err(None)` when the writer task is gone, `Err(Some(e))` when a send in
    /// place failed just now (reported once).
    fn send(&mut self, bytes: Vec<u8>) -> Result<(), Option<TransportError>> {
        match self {
            LaneOut::Task(tx) => tx.send(WriterCmd::Frame(bytes)).map_err(|_| None),
            LaneOut::Direct { sender: Some(sender), failed: failed @ false } => sender.send_now(bytes).map_err(|e| {
                *failed = true;
                Some(e)
            }),
            LaneOut::Direct { .. } => Ok(()),
        }
    }

    /// Closes the connection after [`CLOSE_DELAY_MS`].
    fn close(&mut self, reason: String) {
        match self {
            LaneOut::Task(tx) => {
                let _ = tx.send(WriterCmd::Close(reason));
            }
            LaneOut::Direct { sender, .. } => {
                if let Some(mut sender) = sender.take() {
                    tokio::spawn(async move {
                        tokio::time::sleep(std::time::Duration::from_millis(CLOSE_DELAY_MS)).await;
                        sender.close(&reason);
                    });
                }
            }
        }
    }
}

/// Received priority-lane frames ([`protocol::Frame::Fresh`]), taken ahead of the link's mailbox:
/// a fresh alert does not wait behind the bulk batches of a backlog queued before it (each
/// decoded and checked in turn), only behind the one being handled. Fresh and bulk batches travel
/// on different streams, so their order was never given.
#[derive(Clone, Default)]
struct FreshInbox(Arc<std::sync::Mutex<std::collections::VecDeque<Vec<u8>>>>);

impl FreshInbox {
    fn push(&self, bytes: Vec<u8>) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push_back(bytes);
    }

    fn pop(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).pop_front()
    }
}

pub struct LinkRun {
    me: NodeId,
    peer: NodeId,
    /// The peer's refused events counted by its earlier connections.
    rejected_before: u64,
    session: Session,
    store: ActorRef<StoreMsg>,
    store_priority: PriorityInbox,
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    link_id: u64,
    status: SharedStatus,
    on_up: Box<dyn Fn(NodeId) + Send + Sync>,
    on_health: Box<dyn Fn(NodeId, protocol::health::HealthDelta) + Send + Sync>,
    on_file: Box<dyn Fn(NodeId, protocol::Frame) + Send + Sync>,
    on_silent: Box<dyn Fn(NodeId, bool) + Send + Sync>,
    /// The session came up (a close after it is a disconnect worth remembering).
    was_up: bool,
    /// The control lane (also closes the connection), the bulk lane and the files lane.
    writer: LaneOut,
    bulk_writer: LaneOut,
    files_writer: LaneOut,
    reader_task: JoinHandle<()>,
    /// Priority-lane frames the reader put ahead of the mailbox.
    fresh_inbox: FreshInbox,
    /// The earliest deadline a timer task is already sleeping towards.
    timer_at_ms: Option<u64>,
    /// The deadline the timer task sleeps towards.
    timer: tokio::sync::watch::Sender<Option<u64>>,
    timer_task: JoinHandle<()>,
    closed: bool,
    /// How far an ancestor peer holds this node's own events, as last told to the store.
    told_holds: u64,
    /// Origins whose certificate chain this link has sent up (each goes once per link).
    vouched: std::collections::HashSet<NodeId>,
}

pub struct LinkActor;

/// The link's timer: sleeps until the deadline last sent and then ticks the link once; a new
/// deadline re-arms it. Ends with the link.
fn spawn_timer(
    link: ActorRef<LinkMsg>,
    clock: Arc<dyn Clock>,
) -> (tokio::sync::watch::Sender<Option<u64>>, JoinHandle<()>) {
    let (tx, mut rx) = tokio::sync::watch::channel::<Option<u64>>(None);
    let task = tokio::spawn(async move {
        loop {
            let deadline = *rx.borrow_and_update();
            let Some(at) = deadline else {
                if rx.changed().await.is_err() {
                    break;
                }
                continue;
            };
            let wait = std::time::Duration::from_millis(at.saturating_sub(clock.now_ms()));
            tokio::select! {
                biased;
                changed = rx.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                () = tokio::time::sleep(wait) => {
                    if link.cast(LinkMsg::Tick).is_err() {
                        break;
                    }
                    // Sleep again only once the link set its next deadline.
                    if rx.changed().await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    (tx, task)
}

/// A lane's writer task: frames go out in order; a failure is reported once.
fn spawn_writer(mut sender: Box<dyn FrameSender>, link: ActorRef<LinkMsg>) -> mpsc::UnboundedSender<WriterCmd> {
    let (tx, mut rx) = mpsc::unbounded_channel::<WriterCmd>();
    tokio::spawn(async move {
        while let Some(cmd) = rx.recv().await {
            match cmd {
                WriterCmd::Frame(bytes) => {
                    if let Err(e) = sender.send(bytes).await {
                        let _ = link.cast(LinkMsg::WriterFailed(e));
                        break;
                    }
                }
                WriterCmd::Close(reason) => {
                    // Give the goodbye a moment to leave before the close frame.
                    tokio::time::sleep(std::time::Duration::from_millis(CLOSE_DELAY_MS)).await;
                    sender.close(&reason);
                    break;
                }
            }
        }
    });
    tx
}

/// One message handled: the session steps, then is driven (frames out, events to the store).
fn step(myself: &ActorRef<LinkMsg>, msg: LinkMsg, st: &mut LinkRun) -> Result<(), ActorProcessingErr> {
    if st.closed {
        return Ok(());
    }
    let now = st.clock.now_ms();
    let before = cfg!(debug_assertions).then(|| st.session.watermarks());
    let what = msg.name();
    match msg {
        LinkMsg::FreshWake => {}
        LinkMsg::Frame(bytes) => {
            lock_status(&st.status).last_seen_ms = st.clock.wall_ms();
            match decode_frame(&bytes) {
                Ok(
                    frame @ (protocol::Frame::FileGet { .. }
                    | protocol::Frame::FileData { .. }
                    | protocol::Frame::FileFail { .. }),
                ) => {
                    // Files travel beside the sync session, once the hello is done.
                    if st.was_up {
                        (st.on_file)(st.peer, frame);
                    } else {
                        st.session.close(now, "a file frame before the hello");
                    }
                }
                Ok(frame) => {
                    if matches!(frame, protocol::Frame::Health(_)) {
                        lock_status(&st.status).health_bytes_in += bytes.len() as u64;
                    }
                    st.session.handle_frame(now, frame)
                }
                Err(e) => {
                    warn!(node = %st.me, peer = %st.peer, error = %e, "bad frame: closing the link");
                    st.session.close(now, &format!("bad frame: {e}"));
                }
            }
        }
        LinkMsg::ReaderEnded(err) => {
            let reason = match err {
                None => "peer closed the connection".to_string(),
                Some(e) => e.to_string(),
            };
            warn!(node = %st.me, peer = %st.peer, %reason, "link lost");
            st.session.close(now, &reason);
        }
        LinkMsg::WriterFailed(e) => st.session.close(now, &format!("send failed: {e}")),
        LinkMsg::Progress(progress) => {
            if let Some(floor) = progress.floor {
                st.session.set_floor(st.me, floor);
            }
            for (origin, c) in progress.contiguous {
                st.session.handle_local_progress(now, origin, c);
            }
            for r in progress.fresh {
                st.session.handle_fresh(now, r.origin, r.after, r.upto);
            }
        }
        LinkMsg::Persisted { batch_id, result } => match result {
            Ok(cursors) => st.session.handle_persisted(now, batch_id, cursors),
            Err(e) => st.session.close(now, &format!("could not persist batch {batch_id}: {e}")),
        },
        LinkMsg::Tick => {
            st.timer_at_ms = None;
            st.session.handle_timeout(now);
            st.tell_ancestor_holds()?;
            let age = st.oldest_unsent_age_ms();
            lock_status(&st.status).oldest_unsent_age_ms = age;
        }
        LinkMsg::Close(reason) => st.session.close(now, &reason),
        LinkMsg::Health(delta) => {
            st.session.send_health(now, delta);
        }
        LinkMsg::File(frame) => match encode_frame(&frame) {
            Ok(bytes) => {
                let writer = if frame.lane() == Lane::Files { &mut st.files_writer } else { &mut st.writer };
                if let Err(Some(e)) = writer.send(bytes) {
                    st.session.close(now, &format!("send failed: {e}"));
                }
            }
            Err(e) => warn!(node = %st.me, peer = %st.peer, error = %e, "cannot encode a file frame"),
        },
    }
    let driven = st.drive(myself);
    st.check_session(what, before.as_ref());
    if let Err(reason) = driven {
        warn!(node = %st.me, peer = %st.peer, %reason, "link closed");
        lock_status(&st.status).last_error = Some(reason.clone());
        myself.stop(Some(reason));
    }
    Ok(())
}

impl LinkRun {
    /// Debug builds: after every step (a message handled, with the session driven after it), the
    /// session's invariants hold and nothing it tracks went back since `before` (see
    /// [`Session::check_invariants`]); the first broken one stops the process, naming the node,
    /// the peer, the step and the invariant.
    fn check_session(&self, step: &str, before: Option<&Watermarks>) {
        if !cfg!(debug_assertions) {
            return;
        }
        let checked =
            self.session.check_invariants().and_then(|()| before.map_or(Ok(()), |b| self.session.check_progress(b)));
        if let Err(v) = checked {
            let (me, peer) = (self.me, self.peer);
            invariant::broken(format_args!("node {me}, link to {peer}, after {step}: session {v}"));
        }
    }

    /// Tells the store how far an ancestor peer confirmed holding this node's own events, when it
    /// got further (on the link's timer: retention needs it, not at every ack).
    fn tell_ancestor_holds(&mut self) -> Result<(), String> {
        let own_seq = self.session.peer_cursor(self.me);
        if self.session.side() != PeerSide::Ancestor || !self.session.is_up() || own_seq <= self.told_holds {
            return Ok(());
        }
        self.told_holds = own_seq;
        self.store.cast(StoreMsg::AncestorHolds { own_seq }).map_err(|_| "store actor is gone".to_string())
    }

    fn drive(&mut self, myself: &ActorRef<LinkMsg>) -> Result<(), String> {
        loop {
            let mut progressed = false;
            while let Some(ev) = self.session.poll_event() {
                progressed = true;
                match ev {
                    SessionEvent::Up => {
                        info!(node = %self.me, peer = %self.peer, "link up");
                        if self.session.side() == PeerSide::Ancestor {
                            // What the ancestor holds of this node's own events: a fresh (wiped)
                            // store must get back to there before it writes again. Told to the
                            // store before anyone can see the link up.
                            let own_seq = self.session.peer_cursor(self.me);
                            self.told_holds = own_seq;
                            self.store
                                .cast(StoreMsg::AncestorHolds { own_seq })
                                .map_err(|_| "store actor is gone".to_string())?;
                        }
                        self.was_up = true;
                        {
                            let mut s = lock_status(&self.status);
                            s.set_state(LinkState::Up, self.clock.wall_ms());
                            if s.ever_up {
                                s.reconnects += 1;
                            }
                            s.ever_up = true;
                            s.last_error = None;
                            s.last_seen_ms = self.clock.wall_ms();
                        }
                        (self.on_up)(self.peer);
                    }
                    SessionEvent::Fetch(req) => {
                        let now = self.clock.now_ms();
                        // A read error means broken storage: close the link rather than claim
                        // a range whose events could not be read.
                        let (covered, events) = read_fetch(self.storage.as_ref(), self.peer, &req)
                            .map_err(|e| format!("cannot read events to send: {e}"))?;
                        if req.sealed {
                            let (covered, events, attached) =
                                seal_fetch(self.storage.as_ref(), &req, covered, events, &mut self.vouched)
                                    .map_err(|e| format!("cannot read seals to send: {e}"))?;
                            self.session.handle_fetched_sealed(now, req.id, covered, events, attached);
                        } else {
                            self.session.handle_fetched(now, req.id, covered, events);
                        }
                    }
                    SessionEvent::Persist { batch_id, ranges, events, fresh, attached } => {
                        let (tx, rx) = oneshot();
                        let msg = StoreMsg::Apply { ranges, events, attached, reply: RpcReplyPort::from(tx) };
                        if fresh {
                            self.store_priority.send(&self.store, msg)?;
                        } else {
                            self.store.cast(msg).map_err(|_| "store actor is gone".to_string())?;
                        }
                        let me = myself.clone();
                        tokio::spawn(async move {
                            let result = rx.await.unwrap_or_else(|_| Err("store dropped the batch".into()));
                            let _ = me.cast(LinkMsg::Persisted { batch_id, result });
                        });
                    }
                    SessionEvent::PeerSilent { silent_ms } => {
                        warn!(node = %self.me, peer = %self.peer, silent_ms, "parent silent with a batch unacked");
                        (self.on_silent)(self.peer, true);
                    }
                    SessionEvent::PeerHeard => {
                        info!(node = %self.me, peer = %self.peer, "parent heard again");
                        (self.on_silent)(self.peer, false);
                    }
                    SessionEvent::Rejected { event, violation } => {
                        warn!(node = %self.me, peer = %self.peer, %event, %violation, "event rejected");
                    }
                    SessionEvent::Health { delta, rejected } => {
                        if let Some(first) = rejected.first() {
                            warn!(node = %self.me, peer = %self.peer, rejected = rejected.len(), %first, "health rows refused");
                        }
                        if !delta.rows.is_empty() {
                            (self.on_health)(self.peer, delta);
                        }
                    }
                    SessionEvent::Closed { reason } => {
                        // Send what is queued (the goodbye) before closing.
                        while let Some(frame) = self.session.poll_transmit() {
                            if let Ok(bytes) = encode_frame(&frame) {
                                let _ = self.writer.send(bytes);
                            }
                        }
                        self.writer.close(reason.clone());
                        self.closed = true;
                        if self.session.stats().protocol_errors > 0 {
                            // The peer broke the protocol: counted across its connections.
                            lock_status(&self.status).protocol_errors += 1;
                        }
                        return Err(reason);
                    }
                }
            }
            while let Some(frame) = self.session.poll_transmit() {
                progressed = true;
                let bytes = encode_frame(&frame).map_err(|e| format!("cannot encode {}: {e}", frame.name()))?;
                if matches!(frame, protocol::Frame::Health(_)) {
                    lock_status(&self.status).health_bytes_out += bytes.len() as u64;
                }
                let writer = match frame.lane() {
                    Lane::Control => &mut self.writer,
                    Lane::Bulk => &mut self.bulk_writer,
                    Lane::Files => &mut self.files_writer,
                };
                match writer.send(bytes) {
                    Ok(()) => {}
                    Err(None) => return Err("writer task ended".to_string()),
                    // As a writer task's failure: the session closes (its goodbye goes nowhere).
                    Err(Some(e)) => self.session.close(self.clock.now_ms(), &format!("send failed: {e}")),
                }
            }
            if !progressed {
                break;
            }
        }
        self.schedule_timer();
        self.publish_status();
        Ok(())
    }

    /// Points the link's one timer task at the session's next deadline (an earlier one already
    /// set stands: an early tick is harmless). No task per deadline: a busy province would
    /// otherwise keep thousands of stale sleeps in the timer wheel.
    fn schedule_timer(&mut self) {
        let Some(deadline) = self.session.poll_timeout() else { return };
        if self.timer_at_ms.is_some_and(|t| t <= deadline) {
            return;
        }
        self.timer_at_ms = Some(deadline);
        let _ = self.timer.send(Some(deadline));
    }

    /// Age of the oldest queued event, read from storage (called on the session's timer, not per
    /// frame).
    fn oldest_unsent_age_ms(&self) -> u64 {
        if self.session.backlog_out() == 0 {
            return 0;
        }
        let heads = self.session.backlog_heads(OLDEST_SCAN_ORIGINS_MAX);
        oldest_waiting_ms(self.storage.as_ref(), self.clock.wall_us(), heads.into_iter().map(|(o, seq)| (o, seq - 1)))
    }

    fn publish_status(&self) {
        let stats = self.session.stats();
        let mut s = lock_status(&self.status);
        s.holds_mine = s.holds_mine.max(self.session.peer_cursor(self.me));
        s.backlog_out = self.session.backlog_out();
        if s.backlog_out == 0 {
            s.oldest_unsent_age_ms = 0;
        }
        s.backlog_in = self.session.backlog_in();
        s.events_sent = stats.events_sent;
        s.events_received = stats.events_received;
        s.fresh_events_sent = stats.fresh_events_sent;
        s.retransmits = stats.retransmits;
        s.rejected = self.rejected_before + stats.rejected;
        s.health_rows_rejected = stats.health_rows_rejected;
        s.acks_ignored = stats.acks_ignored;
        s.suspects = stats.suspects;
    }
}

impl Actor for LinkActor {
    type Msg = LinkMsg;
    type State = LinkRun;
    type Arguments = LinkArgs;

    async fn pre_start(&self, myself: ActorRef<LinkMsg>, args: LinkArgs) -> Result<LinkRun, ActorProcessingErr> {
        let peer = args.conn.peer;
        PeerSide::of(args.me, peer).ok_or_else(|| format!("{peer} is not on {}'s path", args.me))?;
        let me = myself.clone();
        let subscriber = Subscriber {
            peer,
            notify: Box::new(move |progress| {
                let _ = me.cast(LinkMsg::Progress(progress));
            }),
        };
        let snapshot =
            ractor::call_t!(args.store, |reply| StoreMsg::Subscribe { id: args.link_id, subscriber, reply }, 10_000)?;
        let now = args.clock.now_ms();
        // Read after subscribing: a compaction before it wrote the floor, one after it tells us.
        let floor = crate::runtime::store::compact::own_floor(args.storage.as_ref());
        let session = match (floor, Session::new(args.me, peer, args.role, args.cfg, now, &snapshot)) {
            (Ok(floor), Ok(mut s)) => {
                s.set_floor(args.me, floor);
                s
            }
            (Err(e), _) => {
                let _ = args.store.cast(StoreMsg::Unsubscribe { id: args.link_id });
                return Err(e.into());
            }
            (_, Err(e)) => {
                let _ = args.store.cast(StoreMsg::Unsubscribe { id: args.link_id });
                return Err(e.into());
            }
        };
        let Connection { sender, bulk, files, mut receiver, .. } = args.conn;
        let wtx = LaneOut::new(sender, myself.clone());
        let bulk_wtx = LaneOut::new(bulk, myself.clone());
        let files_wtx = LaneOut::new(files, myself.clone());
        let me = myself.clone();
        let fresh_inbox = FreshInbox::default();
        let fresh = fresh_inbox.clone();
        let reader_task = tokio::spawn(async move {
            loop {
                match receiver.recv().await {
                    Ok(Some(bytes)) => {
                        let sent = if bytes.first() == Some(&protocol::wire::FRESH_TAG) {
                            fresh.push(bytes);
                            me.cast(LinkMsg::FreshWake)
                        } else {
                            me.cast(LinkMsg::Frame(bytes))
                        };
                        if sent.is_err() {
                            break;
                        }
                    }
                    Ok(None) => {
                        let _ = me.cast(LinkMsg::ReaderEnded(None));
                        break;
                    }
                    Err(e) => {
                        let _ = me.cast(LinkMsg::ReaderEnded(Some(e)));
                        break;
                    }
                }
            }
        });
        lock_status(&args.status).set_state(LinkState::Connecting, args.clock.wall_ms());
        let rejected_before = lock_status(&args.status).rejected;
        let (timer, timer_task) = spawn_timer(myself.clone(), args.clock.clone());
        let mut st = LinkRun {
            me: args.me,
            peer,
            session,
            store: args.store,
            store_priority: args.store_priority,
            storage: args.storage,
            clock: args.clock,
            link_id: args.link_id,
            rejected_before,
            status: args.status,
            on_up: args.on_up,
            on_health: args.on_health,
            on_file: args.on_file,
            on_silent: args.on_silent,
            was_up: false,
            writer: wtx,
            bulk_writer: bulk_wtx,
            files_writer: files_wtx,
            reader_task,
            fresh_inbox,
            timer_at_ms: None,
            timer,
            timer_task,
            closed: false,
            told_holds: 0,
            vouched: Default::default(),
        };
        st.drive(&myself)?;
        st.check_session("the link's start", None);
        Ok(st)
    }

    async fn handle(
        &self,
        myself: ActorRef<LinkMsg>,
        msg: LinkMsg,
        st: &mut LinkRun,
    ) -> Result<(), ActorProcessingErr> {
        // Priority-lane frames first, whatever message comes next.
        while let Some(bytes) = st.fresh_inbox.pop() {
            step(&myself, LinkMsg::Frame(bytes), st)?;
        }
        step(&myself, msg, st)
    }

    async fn post_stop(&self, _myself: ActorRef<LinkMsg>, st: &mut LinkRun) -> Result<(), ActorProcessingErr> {
        st.reader_task.abort();
        st.timer_task.abort();
        if !st.closed {
            st.writer.close("link stopped".into());
        }
        let _ = st.store.cast(StoreMsg::Unsubscribe { id: st.link_id });
        st.publish_status();
        let mut s = lock_status(&st.status);
        let now = st.clock.wall_ms();
        if st.was_up {
            let reason = s.last_error.clone().unwrap_or_else(|| "本节点关闭了连接".into());
            protocol::health::remember_disconnect(&mut s.disconnects, now, &reason);
        }
        s.set_state(LinkState::Down, now);
        // Keep what the peer confirmed: more than before if this session learned more.
        for (o, c) in st.session.peer_cursors() {
            let e = s.acked.entry(*o).or_default();
            *e = (*e).max(*c);
        }
        Ok(())
    }
}
