//! A protocol `Session` driven by arbitrary steps: frames from a hostile or broken peer (decoded
//! from raw bytes, or built from a few nodes around the link so they get past the first checks),
//! time passing, local writes and progress, and a driver that answers fetches and persists from an
//! in-memory store, in any order. After every step the session's own invariant checks
//! (`check_invariants`, `check_progress`) must pass, and so must the contract it has with its
//! driver and peer: every frame it sends encodes under the frame limit and decodes back to itself;
//! every batch it hands over to persist lies within its ranges, sorted, of events the peer may
//! send; nothing the store already holds in its contiguous prefix is applied again.
#![no_main]

use std::collections::{BTreeMap, VecDeque};

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use protocol::alert::{AlertRaised, AlertType, Severity, Zone};
use protocol::apply::{apply_batch, fill_fetch};
use protocol::holds::check_received;
use protocol::wire::{Ack, Batch, FRAME_BYTES_MAX, Hello, PROTOCOL_VERSION, decode_frame, encode_frame};
use protocol::{Body, Cursors, Directive, Event, FetchRequest, Frame, Hlc, Role, SeqRange, Session, SessionConfig};
use protocol::{SessionEvent, Watermarks};
use topology::NodeId;

/// The nodes around the link: ancestors, descendants, siblings and strangers of either end.
const POOL: [&str; 9] =
    ["13", "1301", "1302", "130102", "130103", "130102-S0001", "130102-S0002", "130103-S0001", "130102-S0003"];
/// `(me, peer)`: each link one level apart, seen from either end.
const LINKS: [(&str, &str); 6] = [
    ("130102-S0001", "130102"),
    ("130102", "130102-S0001"),
    ("130102", "1301"),
    ("1301", "130102"),
    ("1301", "13"),
    ("13", "1301"),
];

fn id(s: &str) -> NodeId {
    s.parse().expect("a pool id parses")
}

fn node(u: &mut Unstructured<'_>) -> Result<NodeId> {
    Ok(id(u.choose(&POOL)?))
}

/// A seq or cursor: mostly small (so ranges meet), now and then anything.
fn seq(u: &mut Unstructured<'_>) -> Result<u64> {
    if u.ratio(1, 16)? { u.arbitrary() } else { u.int_in_range(0..=48) }
}

fn event(u: &mut Unstructured<'_>, origin: NodeId, seq: u64) -> Result<Event> {
    let scope = if u.ratio(3, 4)? { origin } else { node(u)? };
    let body = if u.arbitrary()? {
        Body::Alert(AlertRaised {
            camera: "cam-1".into(),
            canteen: "main".into(),
            zone: Zone::Cooking,
            alert_type: AlertType::NoMask,
            severity: Severity::General,
            detected_at_ms: u.int_in_range(0..=10_000)?,
            confidence_permille: u.int_in_range(0..=1_000)?,
            snapshot: String::new(),
            repeat_count: 1,
        })
    } else {
        Body::Directive(Directive { title: format!("notice {seq}"), text: "rectify".into() })
    };
    Ok(Event { by: None, origin, seq, hlc: Hlc { wall_ms: seq, logical: 0 }, scope, body })
}

fn cursors(u: &mut Unstructured<'_>) -> Result<Vec<(NodeId, u64)>> {
    let n = u.int_in_range(0..=4)?;
    (0..n).map(|_| Ok((node(u)?, seq(u)?))).collect()
}

/// A batch of a few ranges with events inside them (mostly: a hostile peer breaks the rules too).
fn batch(u: &mut Unstructured<'_>, peer: NodeId) -> Result<Batch> {
    let id = u.int_in_range(0..=12)?;
    let mut ranges = Vec::new();
    let mut events = Vec::new();
    for _ in 0..u.int_in_range(0..=3)? {
        let origin = if u.ratio(3, 4)? { peer } else { node(u)? };
        let after = seq(u)?;
        let upto = if u.ratio(7, 8)? { after.saturating_add(u.int_in_range(1..=8)?) } else { seq(u)? };
        ranges.push(SeqRange { origin, after, upto });
        let mut s = after.saturating_add(1);
        while s <= upto && events.len() < 16 && u.ratio(3, 4)? {
            events.push(event(u, origin, s)?);
            s = s.saturating_add(u.int_in_range(1..=3)?);
        }
    }
    if u.ratio(1, 8)? {
        ranges.reverse();
    }
    Ok(Batch { id, ranges, events, ..Default::default() })
}

fn hello(u: &mut Unstructured<'_>, peer: NodeId) -> Result<Hello> {
    let version = if u.ratio(15, 16)? { PROTOCOL_VERSION } else { u.arbitrary()? };
    let node = if u.ratio(15, 16)? { peer } else { node(u)? };
    Ok(Hello { version, node, cursors: cursors(u)? })
}

/// A frame from the peer: raw bytes through the decoder, or built around the link.
fn frame(u: &mut Unstructured<'_>, peer: NodeId) -> Result<Option<Frame>> {
    Ok(Some(match u.int_in_range(0..=8)? {
        0 => {
            let len = u.int_in_range(0..=256)?;
            match decode_frame(u.bytes(len)?) {
                Ok(f) => f,
                Err(_) => return Ok(None),
            }
        }
        1 => Frame::Hello(hello(u, peer)?),
        2 => Frame::HelloAck(hello(u, peer)?),
        3 => Frame::Batch(batch(u, peer)?),
        4 => Frame::Fresh(batch(u, peer)?),
        5 => Frame::Ack(Ack { id: u.int_in_range(0..=12)?, cursors: cursors(u)? }),
        6 => Frame::Ping { backlog: u.arbitrary()? },
        7 => Frame::HealthAck { upto: seq(u)? },
        _ if u.ratio(1, 4)? => Frame::Goodbye { reason: "bye".into() },
        _ => Frame::Ping { backlog: 0 },
    }))
}

/// The driver's side: a store of events and cursors, and the work the session handed it.
struct Driver {
    me: NodeId,
    peer: NodeId,
    cursors: Cursors,
    events: BTreeMap<(NodeId, u64), Event>,
    fetches: VecDeque<FetchRequest>,
    persists: VecDeque<(u64, Vec<SeqRange>, Vec<Event>)>,
}

impl Driver {
    fn write(&mut self, u: &mut Unstructured<'_>) -> Result<(u64, u64)> {
        let seq = self.cursors.contiguous(self.me) + 1;
        let e = event(u, self.me, seq)?;
        self.events.insert((self.me, seq), e);
        self.cursors.insert(self.me, seq - 1, seq);
        Ok((seq - 1, seq))
    }

    fn fetch(&self, req: &FetchRequest) -> (Vec<SeqRange>, Vec<Event>) {
        let events = &self.events;
        let read = |r: SeqRange, max: usize| {
            let upto = r.upto.max(r.after);
            let mut found: Vec<Event> = events
                .range((r.origin, r.after.saturating_add(1))..=(r.origin, upto))
                .map(|(_, e)| e.clone())
                .take(max + 1)
                .collect();
            let exhausted = found.len() <= max;
            found.truncate(max);
            Ok::<_, ()>((found, exhausted))
        };
        fill_fetch(self.peer, req, read).expect("the in-memory store never fails")
    }

    fn persist(&mut self, s: &mut Session, now: u64, batch_id: u64, ranges: &[SeqRange], events: &[Event]) {
        let before: Vec<u64> = ranges.iter().map(|r| self.cursors.contiguous(r.origin)).collect();
        let (fresh, changed) = apply_batch(&mut self.cursors, ranges, events);
        for e in fresh {
            let held = ranges.iter().zip(&before).any(|(r, c)| r.origin == e.origin && e.seq <= *c);
            assert!(!held, "{} applied again below the contiguous cursor", e.id());
            self.events.insert((e.origin, e.seq), e.clone());
        }
        let cursors = ranges.iter().map(|r| (r.origin, self.cursors.contiguous(r.origin))).collect();
        s.handle_persisted(now, batch_id, cursors);
        for o in changed {
            s.handle_local_progress(now, o, self.cursors.contiguous(o));
        }
    }
}

/// What the session asks of its driver and sends its peer keeps the contract.
fn drain(s: &mut Session, d: &mut Driver) {
    while let Some(f) = s.poll_transmit() {
        let bytes = encode_frame(&f).unwrap_or_else(|e| panic!("the session sent an unencodable {}: {e}", f.name()));
        assert!(bytes.len() <= FRAME_BYTES_MAX);
        assert_eq!(decode_frame(&bytes).expect("a sent frame decodes"), f);
    }
    while let Some(ev) = s.poll_event() {
        match ev {
            SessionEvent::Fetch(req) => d.fetches.push_back(req),
            SessionEvent::Persist { batch_id, ranges, events, .. } => {
                let mut prev: Option<(NodeId, u64)> = None;
                for e in &events {
                    let inside = ranges.iter().any(|r| r.origin == e.origin && r.after < e.seq && e.seq <= r.upto);
                    assert!(inside, "persist {batch_id}: {} outside {ranges:?}", e.id());
                    assert!(prev.is_none_or(|p| p < (e.origin, e.seq)), "persist {batch_id} not sorted");
                    assert!(check_received(d.me, d.peer, e).is_ok(), "persist {batch_id}: {} breaks authority", e.id());
                    prev = Some((e.origin, e.seq));
                }
                d.persists.push_back((batch_id, ranges, events));
            }
            SessionEvent::Up | SessionEvent::Rejected { .. } | SessionEvent::Closed { .. } => {}
            SessionEvent::Health { .. } | SessionEvent::PeerSilent { .. } | SessionEvent::PeerHeard => {}
        }
    }
}

fn check(s: &Session, marks: &mut Watermarks, step: &str) {
    if let Err(v) = s.check_invariants().and_then(|()| s.check_progress(marks)) {
        panic!("after {step}: {v}");
    }
    *marks = s.watermarks();
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let (me, peer) = *u.choose(&LINKS)?;
    let (me, peer) = (id(me), id(peer));
    let role = if me.is_ancestor_or_self_of(peer) { Role::Acceptor } else { Role::Dialer };
    let cfg = SessionConfig {
        rto_ms: 300,
        keepalive_ms: 500,
        idle_timeout_ms: if u.arbitrary()? { 3_000 } else { u64::MAX / 4 },
        window_batches: u.int_in_range(1..=8)?,
        persist_pending_max: u.int_in_range(1..=8)?,
        batch_events_max: u.int_in_range(1..=64)?,
        priority_lane: u.ratio(3, 4)?,
        suspect_after_ms: if u.arbitrary()? { 600 } else { 0 },
        sealed: u.arbitrary()?,
    };
    let mut d = Driver {
        me,
        peer,
        cursors: Cursors::default(),
        events: BTreeMap::new(),
        fetches: VecDeque::new(),
        persists: VecDeque::new(),
    };
    for _ in 0..u.int_in_range(0..=20)? {
        d.write(u)?;
    }
    let mut now = 0u64;
    let mut s = Session::new(me, peer, role, cfg, now, &d.cursors).expect("the links are parent and child");
    let mut marks = Watermarks::default();
    check(&s, &mut marks, "new");
    drain(&mut s, &mut d);
    for _ in 0..256 {
        if u.is_empty() {
            break;
        }
        let step = match u.int_in_range(0..=99)? {
            0..=34 => {
                let Some(f) = frame(u, peer)? else { continue };
                s.handle_frame(now, f);
                "handle_frame"
            }
            35..=49 => {
                now = now.saturating_add(u.int_in_range(0..=2_000)?);
                if s.poll_timeout().is_some_and(|t| t <= now) {
                    s.handle_timeout(now);
                }
                "handle_timeout"
            }
            50..=59 => {
                let (after, upto) = d.write(u)?;
                s.handle_local_progress(now, me, upto);
                s.handle_fresh(now, me, after, upto);
                "a local write"
            }
            60..=67 => {
                // Progress and fresh ranges of other origins, as other links report them (not
                // always true to the store: the session must not trust the driver blindly).
                let origin = node(u)?;
                let (a, b) = (seq(u)?, seq(u)?);
                if u.arbitrary()? {
                    s.handle_local_progress(now, origin, a);
                } else {
                    s.handle_fresh(now, origin, a, b);
                }
                "progress of another origin"
            }
            68..=82 => {
                // The oldest (or, now and then, a newer) persist is done.
                let i = if u.ratio(3, 4)? { 0 } else { u.choose_index(d.persists.len().max(1))? };
                let Some((batch_id, ranges, events)) = d.persists.remove(i) else { continue };
                d.persist(&mut s, now, batch_id, &ranges, &events);
                "handle_persisted"
            }
            83..=97 => {
                let Some(req) = d.fetches.pop_front() else { continue };
                let (covered, events) = d.fetch(&req);
                // Now and then an answer to a fetch the session no longer waits for.
                let id = if u.ratio(15, 16)? { req.id } else { u.int_in_range(0..=8)? };
                s.handle_fetched(now, id, covered, events);
                "handle_fetched"
            }
            _ => {
                s.close(now, "fuzz");
                "close"
            }
        };
        check(&s, &mut marks, step);
        drain(&mut s, &mut d);
        check(&s, &mut marks, "drain");
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
