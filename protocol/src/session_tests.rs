//! Drives two Sessions through an in-memory pair with loss, duplication and reordering
//! (quinn-proto's `Pair` idea): every event each side should hold arrives, exactly once.

use std::collections::BTreeMap;

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use topology::NodeId;

use crate::alert::{AlertRaised, AlertType, Severity, Zone};
use crate::apply::{apply_batch, fill_fetch};
use crate::cursor::Cursors;
use crate::event::{Body, Directive, Event, Hlc};
use crate::holds::holds;
use crate::session::{Role, Session, SessionConfig, SessionEvent, Watermarks};
use crate::wire::{Frame, SeqRange, decode_frame, encode_frame};

/// The session's default settings without seals (these tests exercise the link, not the signed
/// history; `sealed_sessions_want_a_seal_ending_each_range_from_below` covers that).
fn unsealed() -> SessionConfig {
    SessionConfig { sealed: false, ..SessionConfig::default() }
}

fn id(s: &str) -> NodeId {
    s.parse().unwrap()
}

/// One side's store: its events, its cursors, and how often each event was applied.
#[derive(Default)]
struct Store {
    me: Option<NodeId>,
    cursors: Cursors,
    events: BTreeMap<(NodeId, u64), Event>,
    applied: BTreeMap<(NodeId, u64), u32>,
}

impl Store {
    fn new(me: NodeId) -> Store {
        Store { me: Some(me), ..Store::default() }
    }

    fn append(&mut self, scope: NodeId, body: Body) -> Event {
        let me = self.me.unwrap();
        let seq = self.cursors.contiguous(me) + 1;
        let e = Event { by: None, origin: me, seq, hlc: Hlc { wall_ms: seq, logical: 0 }, scope, body };
        self.events.insert((me, seq), e.clone());
        *self.applied.entry((me, seq)).or_default() += 1;
        self.cursors.insert(me, seq - 1, seq);
        e
    }

    /// Copies `e` as if it had arrived earlier (a restore source holds a child's events).
    fn preload(&mut self, e: &Event) {
        self.events.insert((e.origin, e.seq), e.clone());
        *self.applied.entry((e.origin, e.seq)).or_default() += 1;
        let c = self.cursors.contiguous(e.origin);
        self.cursors.insert(e.origin, c, e.seq.max(c));
    }
}

fn alert() -> Body {
    Body::Alert(AlertRaised {
        camera: "cam-1".into(),
        canteen: "main".into(),
        zone: Zone::Cooking,
        alert_type: AlertType::NoMask,
        severity: Severity::General,
        detected_at_ms: 1,
        confidence_permille: 900,
        snapshot: String::new(),
        repeat_count: 1,
    })
}

fn directive(n: u64) -> Body {
    Body::Directive(Directive { title: format!("notice {n}"), text: "rectify".into() })
}

#[derive(Clone, Copy, Debug)]
struct Faults {
    loss: f64,
    dup: f64,
    /// Extra random delay up to this many ms: frames overtake each other.
    jitter_ms: u64,
}

struct Side {
    store: Store,
    session: Session,
    /// What the session had reached at its last check: nothing may go back from there.
    marks: Watermarks,
}

impl Side {
    /// Every step is followed by the session's invariant checks.
    fn check(&mut self, step: &str) {
        let (me, peer) = (self.session.me(), self.session.peer());
        if let Err(v) = self.session.check_invariants().and_then(|()| self.session.check_progress(&self.marks)) {
            panic!("session {me} → {peer} after {step}: {v}");
        }
        self.marks = self.session.watermarks();
    }
}

struct Pair {
    now: u64,
    rng: ChaCha8Rng,
    faults: Faults,
    sides: [Side; 2],
    /// (deliver_at, tiebreak, to_side, encoded frame)
    wire: Vec<(u64, u64, usize, Vec<u8>)>,
    counter: u64,
}

impl Pair {
    fn new(child: Store, parent: Store, faults: Faults, seed: u64) -> Pair {
        let cfg = SessionConfig { idle_timeout_ms: 600_000, rto_ms: 300, ..unsealed() };
        Pair::with_config(child, parent, faults, seed, cfg)
    }

    fn with_config(child: Store, parent: Store, faults: Faults, seed: u64, cfg: SessionConfig) -> Pair {
        Pair::with_floor(child, parent, faults, seed, cfg, 0)
    }

    /// A pair whose child no longer holds its own events at or below `floor` (retention).
    fn with_floor(child: Store, parent: Store, faults: Faults, seed: u64, cfg: SessionConfig, floor: u64) -> Pair {
        let (c, p) = (child.me.unwrap(), parent.me.unwrap());
        let mut cs = Session::new(c, p, Role::Dialer, cfg, 0, &child.cursors).unwrap();
        if floor > 0 {
            cs.set_floor(c, floor);
        }
        let ps = Session::new(p, c, Role::Acceptor, cfg, 0, &parent.cursors).unwrap();
        let mut pair = Pair {
            now: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
            faults,
            sides: [
                Side { store: child, session: cs, marks: Watermarks::default() },
                Side { store: parent, session: ps, marks: Watermarks::default() },
            ],
            wire: Vec::new(),
            counter: 0,
        };
        pair.pump();
        pair
    }

    fn append(&mut self, side: usize, scope: NodeId, body: Body) -> Event {
        let e = self.sides[side].store.append(scope, body);
        // As the node's store does: a local write is progress, and fresh.
        self.sides[side].session.handle_local_progress(self.now, e.origin, e.seq);
        self.sides[side].check("handle_local_progress");
        self.sides[side].session.handle_fresh(self.now, e.origin, e.seq - 1, e.seq);
        self.sides[side].check("handle_fresh");
        self.pump();
        e
    }

    /// Runs every side's outputs until nothing is left to do at this instant.
    fn pump(&mut self) {
        loop {
            let mut progressed = false;
            for i in 0..2 {
                while let Some(ev) = self.sides[i].session.poll_event() {
                    progressed = true;
                    self.handle_event(i, ev);
                    self.sides[i].check("an event's handling");
                }
                while let Some(frame) = self.sides[i].session.poll_transmit() {
                    progressed = true;
                    let bytes = encode_frame(&frame).unwrap();
                    self.send(1 - i, bytes);
                }
                self.sides[i].check("poll_transmit");
            }
            if !progressed {
                break;
            }
        }
    }

    fn send(&mut self, to: usize, bytes: Vec<u8>) {
        if self.rng.random_bool(self.faults.loss) {
            return;
        }
        let copies = if self.rng.random_bool(self.faults.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = 5 + self.rng.random_range(0..=self.faults.jitter_ms);
            self.counter += 1;
            self.wire.push((self.now + delay, self.counter, to, bytes.clone()));
        }
    }

    fn handle_event(&mut self, i: usize, ev: SessionEvent) {
        let now = self.now;
        let side = &mut self.sides[i];
        match ev {
            SessionEvent::Fetch(req) => {
                let peer = side.session.peer();
                let store = &side.store;
                let (covered, events) = fill_fetch(peer, &req, |r, max| {
                    let mut found: Vec<Event> = store
                        .events
                        .range((r.origin, r.after + 1)..=(r.origin, r.upto))
                        .map(|(_, e)| e.clone())
                        .take(max + 1)
                        .collect();
                    let exhausted = found.len() <= max;
                    found.truncate(max);
                    Ok::<_, ()>((found, exhausted))
                })
                .unwrap();
                side.session.handle_fetched(now, req.id, covered, events);
            }
            SessionEvent::Persist { batch_id, ranges, events, .. } => {
                let (fresh, changed) = apply_batch(&mut side.store.cursors, &ranges, &events);
                for e in fresh {
                    *side.store.applied.entry((e.origin, e.seq)).or_default() += 1;
                    side.store.events.insert((e.origin, e.seq), e.clone());
                }
                let cursors = ranges.iter().map(|r| (r.origin, side.store.cursors.contiguous(r.origin))).collect();
                side.session.handle_persisted(now, batch_id, cursors);
                for o in changed {
                    let c = side.store.cursors.contiguous(o);
                    side.session.handle_local_progress(now, o, c);
                }
            }
            SessionEvent::Rejected { event, violation } => panic!("unexpected rejection of {event}: {violation}"),
            SessionEvent::Up => {}
            SessionEvent::Closed { reason } => panic!("session closed: {reason}"),
            SessionEvent::Health { .. } | SessionEvent::PeerSilent { .. } | SessionEvent::PeerHeard => {}
        }
    }

    /// Advances simulated time to `until`, delivering frames and firing timers.
    fn run_until(&mut self, until: u64) {
        loop {
            let next_frame = self.wire.iter().map(|w| (w.0, w.1)).min();
            let next_timer = (0..2).filter_map(|i| self.sides[i].session.poll_timeout()).min();
            let t = match (next_frame, next_timer) {
                (Some(f), Some(tm)) => f.0.min(tm),
                (Some(f), None) => f.0,
                (None, Some(tm)) => tm,
                (None, None) => break,
            };
            if t > until {
                break;
            }
            self.now = self.now.max(t);
            if let Some(pos) = self.wire.iter().position(|w| Some((w.0, w.1)) == next_frame && w.0 <= self.now) {
                let (_, _, to, bytes) = self.wire.swap_remove(pos);
                let frame: Frame = decode_frame(&bytes).unwrap();
                self.sides[to].session.handle_frame(self.now, frame);
                self.sides[to].check("handle_frame");
            }
            for i in 0..2 {
                if self.sides[i].session.poll_timeout().is_some_and(|d| d <= self.now) {
                    self.sides[i].session.handle_timeout(self.now);
                    self.sides[i].check("handle_timeout");
                }
            }
            self.pump();
        }
        self.now = until;
    }
}

/// Everything `node` should hold of what either side wrote, held exactly once.
fn check_converged(pair: &Pair, all: &[Event]) {
    for side in &pair.sides {
        let me = side.store.me.unwrap();
        for e in all {
            let should = holds(me, e.scope);
            let count = side.store.applied.get(&(e.origin, e.seq)).copied().unwrap_or(0);
            if should {
                assert_eq!(count, 1, "{me} should hold {} exactly once, applied {count} times", e.id());
            } else {
                assert_eq!(count, 0, "{me} must not hold {}", e.id());
            }
        }
        for (o, s) in side.store.events.keys() {
            assert!(all.iter().any(|e| e.origin == *o && e.seq == *s), "{me} holds unknown {o}#{s}");
        }
    }
}

/// Runs a scenario: both sides write before and while the link runs, then the link settles.
fn check(faults: Faults, seed: u64, before: usize, during: usize, restore_child: bool) {
    let (school, sibling, county) = (id("130102-S0001"), id("130102-S0002"), id("130102"));
    let mut child = Store::new(school);
    let mut parent = Store::new(county);
    let mut all = Vec::new();
    // The child's history, which the parent already holds when the child was wiped.
    for _ in 0..before {
        let e = child.append(school, alert());
        if restore_child {
            parent.preload(&e);
        }
        all.push(e);
    }
    if restore_child {
        child = Store::new(school);
        // The wiped child lost its own applied counts too: it must get each back exactly once.
    }
    let scopes = [school, county, sibling];
    for n in 0..before as u64 {
        all.push(parent.append(scopes[n as usize % 3], directive(n)));
    }
    let mut pair = Pair::new(child, parent, faults, seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    for n in 0..during as u64 {
        pair.run_until(pair.now + rng.random_range(0..40));
        if rng.random_bool(0.6) {
            if restore_child && pair.sides[0].store.cursors.contiguous(school) < before as u64 {
                // A restoring node writes nothing before it has its own history back.
                continue;
            }
            all.push(pair.append(0, school, alert()));
        } else {
            all.push(pair.append(1, scopes[n as usize % 3], directive(n)));
        }
    }
    pair.run_until(pair.now + 120_000);
    check_converged(&pair, &all);
    // Nothing is sent twice on purpose (retransmits aside) and nothing echoes back to its sender.
    let down = all.iter().filter(|e| e.origin == county && holds(school, e.scope)).count();
    let restored = if restore_child { before } else { 0 };
    assert_eq!(pair.sides[1].session.stats().events_sent as usize, down + restored, "parent sent");
    let up = all.iter().filter(|e| e.origin == school).count() - restored;
    // The priority lane may send a fresh event again in bulk if its ack was not back in time.
    let child = pair.sides[0].session.stats();
    let (sent, fresh) = (child.events_sent as usize, child.fresh_events_sent as usize);
    assert!(sent - fresh <= up && up <= sent, "child sent {sent} ({fresh} fresh) for {up} events");
    assert!(pair.sides.iter().all(|s| s.session.is_up()));
}

/// A county relaying many schools' events up to its city: batches rotate over origins (small
/// batches force many rotations) and must still list events sorted, and all of them arrive.
#[test]
fn many_origins_are_rotated_and_all_arrive() {
    let (county, city) = (id("130102"), id("1301"));
    let mut child = Store::new(county);
    let mut all = Vec::new();
    for school in 1..=20u32 {
        let s = NodeId::school(county, school).unwrap();
        for seq in 1..=(10 * school as u64) {
            let e = Event { by: None, origin: s, seq, hlc: Hlc { wall_ms: seq, logical: 0 }, scope: s, body: alert() };
            child.preload(&e);
            all.push(e);
        }
    }
    let cfg =
        SessionConfig { idle_timeout_ms: 600_000, rto_ms: 300, batch_events_max: 64, window_batches: 3, ..unsealed() };
    for faults in [CLEAN, Faults { loss: 0.2, dup: 0.2, jitter_ms: 60 }] {
        let mut pair = Pair::with_config(
            Store {
                me: Some(county),
                cursors: child.cursors.clone(),
                events: child.events.clone(),
                applied: child.applied.clone(),
            },
            Store::new(city),
            faults,
            11,
            cfg,
        );
        pair.run_until(600_000);
        check_converged(&pair, &all);
    }
}

const CLEAN: Faults = Faults { loss: 0.0, dup: 0.0, jitter_ms: 0 };

#[test]
fn clean_link_delivers_everything_once() {
    check(CLEAN, 1, 50, 50, false);
}

#[test]
fn large_backlog_is_batched_and_delivered() {
    check(CLEAN, 2, 3_000, 10, false);
}

#[test]
fn lossy_duplicating_reordering_link_still_delivers_exactly_once() {
    check(Faults { loss: 0.2, dup: 0.2, jitter_ms: 80 }, 3, 200, 200, false);
}

#[test]
fn wiped_child_is_restored_from_its_parent() {
    check(CLEAN, 4, 300, 20, true);
    check(Faults { loss: 0.1, dup: 0.1, jitter_ms: 50 }, 5, 300, 20, true);
}

#[test]
fn hello_from_the_wrong_node_closes_the_link() {
    let (school, county) = (id("130102-S0001"), id("130102"));
    let mut s = Session::new(county, school, Role::Acceptor, unsealed(), 0, &Cursors::default()).unwrap();
    let hello =
        crate::wire::Hello { version: crate::wire::PROTOCOL_VERSION, node: id("130102-S0002"), cursors: vec![] };
    s.handle_frame(1, Frame::Hello(hello));
    assert!(s.is_closed());
    match s.poll_event() {
        Some(SessionEvent::Closed { reason }) => assert!(reason.contains("certificate says 130102-S0001"), "{reason}"),
        other => panic!("expected Closed, got {other:?}"),
    }
    assert!(matches!(s.poll_transmit(), Some(Frame::Goodbye { .. })));
}

/// A school and its county with the link up (frames passed by hand).
fn school_county_up() -> (Session, Session) {
    let (school, county) = (id("130102-S0001"), id("130102"));
    let cfg = unsealed();
    let mut up = Session::new(school, county, Role::Dialer, cfg, 0, &Cursors::default()).unwrap();
    let mut down = Session::new(county, school, Role::Acceptor, cfg, 0, &Cursors::default()).unwrap();
    for _ in 0..3 {
        while let Some(f) = up.poll_transmit() {
            down.handle_frame(1, f);
        }
        while let Some(f) = down.poll_transmit() {
            up.handle_frame(1, f);
        }
    }
    assert!(up.is_up() && down.is_up());
    while up.poll_event().is_some() {}
    while down.poll_event().is_some() {}
    (up, down)
}

#[test]
fn health_goes_up_checked_and_never_down() {
    use crate::health::{HealthDelta, HealthRow, LinkView, Part, Phase};
    let (mut school, mut county) = school_county_up();
    let view = LinkView { phase: Phase::Up, since_ms: 1, heard_ms: 1, reconnects: 0, disconnects: vec![] };
    let rows = vec![
        // The school may not say how its county sees it, nor speak for another school.
        HealthRow { node: id("130102-S0001"), version: 1, part: Part::Link(view.clone()) },
        HealthRow { node: id("130102-S0002"), version: 1, part: Part::Link(view.clone()) },
    ];
    let delta = HealthDelta { after: 0, upto: 2, rows };
    assert!(!county.send_health(2, delta.clone()), "a parent sends no health down");
    assert!(school.send_health(2, delta));
    let frame = school.poll_transmit().unwrap();
    assert_eq!(frame.lane(), crate::wire::Lane::Control);
    county.handle_frame(2, frame);
    match county.poll_event() {
        Some(SessionEvent::Health { delta, rejected }) => {
            assert!(delta.rows.is_empty());
            assert_eq!(rejected.len(), 2, "{rejected:?}");
        }
        other => panic!("expected Health, got {other:?}"),
    }
    assert_eq!(county.stats().health_rows_rejected, 2);
    // Health from above closes the link.
    school.handle_frame(3, Frame::Health(HealthDelta { after: 0, upto: 1, rows: vec![] }));
    assert!(school.is_closed());
}

#[test]
fn a_lost_health_frame_is_resent_and_a_frame_after_the_gap_waits_for_it() {
    use crate::health::{HealthDelta, HealthRow, Part, SelfReport};
    let (mut school, mut county) = school_county_up();
    let report = |at: u64| SelfReport {
        version: "0.1.0".into(),
        started_ms: 0,
        reported_ms: at,
        uplink: crate::health::Phase::Up,
        failover: None,
        backlog: 0,
        oldest_ms: 0,
        reconnects: 0,
        disconnects: vec![],
        cert_days_left: None,
        disk_bytes: None,
        restoring: false,
        cameras: None,
    };
    let me = id("130102-S0001");
    let row = |v: u64| HealthRow { node: me, version: v, part: Part::Report(report(v)) };
    assert!(school.send_health(10, HealthDelta { after: 0, upto: 1, rows: vec![row(1)] }));
    assert!(school.send_health(10, HealthDelta { after: 1, upto: 2, rows: vec![row(2)] }));
    let lost = school.poll_transmit().unwrap();
    assert!(matches!(lost, Frame::Health(_)));
    // The second arrives alone: it waits for the first (nothing applied), and the county says so.
    county.handle_frame(11, school.poll_transmit().unwrap());
    assert!(county.poll_event().is_none(), "a frame after a gap is not applied");
    assert_eq!(county.poll_transmit(), Some(Frame::HealthAck { upto: 0 }));
    // The school resends both after the retransmission timeout; the county applies them in order.
    school.handle_timeout(10 + unsealed().rto_ms);
    let mut resent = Vec::new();
    while let Some(f) = school.poll_transmit() {
        if matches!(f, Frame::Health(_)) {
            resent.push(f);
        }
    }
    assert_eq!(resent.len(), 2, "both unacked frames go again: {resent:?}");
    for f in resent {
        county.handle_frame(2_100, f);
    }
    let mut versions = Vec::new();
    while let Some(ev) = county.poll_event() {
        if let SessionEvent::Health { delta, .. } = ev {
            versions.extend(delta.rows.iter().map(|r| r.version));
        }
    }
    assert_eq!(versions, vec![1, 2]);
    // Acked: nothing more is resent.
    while let Some(f) = county.poll_transmit() {
        school.handle_frame(2_101, f);
    }
    school.handle_timeout(10_000);
    assert!(std::iter::from_fn(|| school.poll_transmit()).all(|f| !matches!(f, Frame::Health(_))));
}

#[test]
fn a_batch_with_a_foreign_origin_closes_the_link() {
    // A school may only report its own subtree; a batch carrying its sibling's origin is a violation.
    let (school, county) = (id("130102-S0001"), id("130102"));
    let mut s = Session::new(county, school, Role::Acceptor, unsealed(), 0, &Cursors::default()).unwrap();
    let hello = crate::wire::Hello { version: crate::wire::PROTOCOL_VERSION, node: school, cursors: vec![] };
    s.handle_frame(1, Frame::Hello(hello));
    let batch = crate::wire::Batch {
        id: 1,
        ranges: vec![crate::wire::SeqRange { origin: id("130102-S0002"), after: 0, upto: 1 }],
        events: vec![],
        ..Default::default()
    };
    s.handle_frame(2, Frame::Batch(batch));
    assert!(s.is_closed());
}

#[test]
fn an_unauthorised_event_from_below_is_refused_with_its_batch_and_closes_the_link() {
    // A school forging a directive about itself: counted, nothing of the batch taken (its range
    // would otherwise be relayed up with a hole), the link closed.
    let (school, county) = (id("130102-S0001"), id("130102"));
    let mut s = Session::new(county, school, Role::Acceptor, unsealed(), 0, &Cursors::default()).unwrap();
    let hello = crate::wire::Hello { version: crate::wire::PROTOCOL_VERSION, node: school, cursors: vec![] };
    s.handle_frame(1, Frame::Hello(hello));
    let forged = Event { by: None, origin: school, seq: 1, hlc: Hlc::default(), scope: school, body: directive(1) };
    let batch = crate::wire::Batch {
        id: 1,
        ranges: vec![crate::wire::SeqRange { origin: school, after: 0, upto: 1 }],
        events: vec![forged],
        ..Default::default()
    };
    s.handle_frame(2, Frame::Batch(batch));
    assert!(s.is_closed());
    let evs: Vec<SessionEvent> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(evs.iter().any(|e| matches!(e, SessionEvent::Rejected { .. })), "{evs:?}");
    assert!(!evs.iter().any(|e| matches!(e, SessionEvent::Persist { .. })), "{evs:?}");
    assert_eq!(s.stats().rejected, 1);
    assert_eq!(s.stats().protocol_errors, 1);
}

#[test]
fn an_unauthorised_event_from_above_is_dropped_and_counted() {
    // A county sending its school a directive meant for another school: the school does not hold
    // such an event; it is dropped and counted, the range taken, the link kept.
    let (school, county) = (id("130102-S0001"), id("130102"));
    let mut s = Session::new(school, county, Role::Dialer, unsealed(), 0, &Cursors::default()).unwrap();
    while s.poll_transmit().is_some() {}
    let hello = crate::wire::Hello { version: crate::wire::PROTOCOL_VERSION, node: county, cursors: vec![] };
    s.handle_frame(1, Frame::HelloAck(hello));
    assert!(s.is_up());
    let stray =
        Event { by: None, origin: county, seq: 1, hlc: Hlc::default(), scope: id("130102-S0002"), body: directive(1) };
    let batch = crate::wire::Batch {
        id: 1,
        ranges: vec![crate::wire::SeqRange { origin: county, after: 0, upto: 1 }],
        events: vec![stray],
        ..Default::default()
    };
    s.handle_frame(2, Frame::Batch(batch));
    assert!(!s.is_closed());
    let evs: Vec<SessionEvent> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(evs.iter().any(|e| matches!(e, SessionEvent::Rejected { .. })), "{evs:?}");
    assert!(evs.iter().any(|e| matches!(e, SessionEvent::Persist { events, .. } if events.is_empty())), "{evs:?}");
    assert_eq!(s.stats().rejected, 1);
}

#[test]
fn a_silent_peer_times_out() {
    let (school, county) = (id("130102-S0001"), id("130102"));
    let cfg = unsealed();
    let mut s = Session::new(school, county, Role::Dialer, cfg, 0, &Cursors::default()).unwrap();
    let mut now = 0;
    while !s.is_closed() {
        now = s.poll_timeout().unwrap();
        s.handle_timeout(now);
    }
    assert!(now >= cfg.idle_timeout_ms);
}

/// Drives `s` by its timer alone (nothing arrives) from `now` until `until`, returning the
/// events it gave with when.
fn timers_only(s: &mut Session, mut now: u64, until: u64) -> Vec<(u64, SessionEvent)> {
    let mut seen = Vec::new();
    while let Some(t) = s.poll_timeout() {
        if t > until {
            break;
        }
        now = now.max(t);
        s.handle_timeout(now);
        while s.poll_transmit().is_some() {}
        while let Some(ev) = s.poll_event() {
            seen.push((now, ev));
        }
    }
    seen
}

#[test]
fn a_parent_silent_with_a_batch_unacked_is_suspect_long_before_the_idle_timeout() {
    let (school, county) = (id("130102-S0001"), id("130102"));
    let cfg = unsealed();
    // A quiet link is never suspect: with nothing to deliver there is no hurry.
    let (mut up, _down) = school_county_up();
    let seen = timers_only(&mut up, 1, cfg.idle_timeout_ms - 1);
    assert!(seen.iter().all(|(_, e)| !matches!(e, SessionEvent::PeerSilent { .. })), "{seen:?}");

    // A batch goes out and the parent says nothing more.
    let (mut up, mut down) = school_county_up();
    let e =
        Event { by: None, origin: school, seq: 1, hlc: Hlc { wall_ms: 1, logical: 0 }, scope: school, body: alert() };
    up.handle_local_progress(10, school, 1);
    let Some(SessionEvent::Fetch(req)) = up.poll_event() else { panic!("no fetch") };
    up.handle_fetched(10, req.id, req.ranges.clone(), vec![e]);
    assert!(matches!(up.poll_transmit(), Some(Frame::Batch(_))));
    let seen = timers_only(&mut up, 10, cfg.idle_timeout_ms - 1);
    let silent: Vec<_> = seen.iter().filter(|(_, e)| matches!(e, SessionEvent::PeerSilent { .. })).collect();
    assert_eq!(silent.len(), 1, "said once: {seen:?}");
    assert_eq!(silent[0].0, 10 + cfg.suspect_after_ms, "{seen:?}");
    assert!(!up.is_closed() && up.stats().suspects == 1);

    // The parent is heard again: said once, and the link goes on.
    down.handle_timeout(cfg.keepalive_ms * 2);
    let ping = down.poll_transmit().expect("the parent's keep-alive");
    up.handle_frame(cfg.idle_timeout_ms - 1, ping);
    assert_eq!(up.poll_event(), Some(SessionEvent::PeerHeard));
    assert!(up.is_up());

    // A parent never suspects its child (the child dials it; nothing to dial beside it).
    let (_up, mut down) = school_county_up();
    down.handle_local_progress(10, county, 1);
    let d = Event {
        by: None,
        origin: county,
        seq: 1,
        hlc: Hlc { wall_ms: 1, logical: 0 },
        scope: school,
        body: directive(1),
    };
    let Some(SessionEvent::Fetch(req)) = down.poll_event() else { panic!("no fetch") };
    down.handle_fetched(10, req.id, req.ranges.clone(), vec![d]);
    let seen = timers_only(&mut down, 10, cfg.idle_timeout_ms - 1);
    assert!(seen.iter().all(|(_, e)| !matches!(e, SessionEvent::PeerSilent { .. })), "{seen:?}");
}

/// On a lossy link, where a lost keep-alive or ack leaves the parent unheard for longer than its
/// keep-alive interval, the wait before it is suspect grows to a quarter more than the longest
/// such silence of the last 30–60 s; a clean link keeps the configured wait.
#[test]
fn a_parent_that_has_gone_unheard_for_long_on_a_lossy_link_is_given_longer_before_it_is_suspect() {
    let school = id("130102-S0001");
    let cfg = unsealed();
    let (mut up, _down) = school_county_up();
    assert_eq!(up.suspect_after_ms(), cfg.suspect_after_ms);
    // The parent's keep-alives arrive 300–900 ms apart (some lost and resent).
    let mut now = 10;
    for n in 0..20u64 {
        now += 300 + (n * 7919 % 7) * 100;
        up.handle_frame(now, Frame::Ping { backlog: 0 });
        assert!(!up.is_closed());
    }
    assert_eq!(up.stats().silence_peak_ms, 900, "{:?}", up.stats());
    assert_eq!(up.suspect_after_ms(), 1_125);
    while up.poll_event().is_some() {}
    while up.poll_transmit().is_some() {}
    // A batch goes out and the parent falls silent: suspect only after the learned wait.
    let e =
        Event { by: None, origin: school, seq: 1, hlc: Hlc { wall_ms: 1, logical: 0 }, scope: school, body: alert() };
    up.handle_local_progress(now, school, 1);
    let Some(SessionEvent::Fetch(req)) = up.poll_event() else { panic!("no fetch") };
    up.handle_fetched(now, req.id, req.ranges.clone(), vec![e]);
    let seen = timers_only(&mut up, now, now + cfg.idle_timeout_ms - 1);
    let silent: Vec<u64> =
        seen.iter().filter(|(_, e)| matches!(e, SessionEvent::PeerSilent { .. })).map(|(t, _)| *t).collect();
    assert_eq!(silent, vec![now + 1_125], "{seen:?}");
    // A minute on, with the parent heard every 500 ms, the long silences have aged out.
    let (mut up, _down) = school_county_up();
    up.handle_frame(1_000, Frame::Ping { backlog: 0 });
    assert!(up.suspect_after_ms() > 1_200, "a silence of about 1 s: {:?}", up.stats());
    let mut now = 1_000;
    while now < 70_000 {
        now += 500;
        up.handle_frame(now, Frame::Ping { backlog: 0 });
    }
    assert_eq!(up.stats().silence_peak_ms, 500);
    assert_eq!(up.suspect_after_ms(), cfg.suspect_after_ms.max(625));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Whatever the loss, duplication, reordering and interleaving, every event each side should
    /// hold arrives exactly once and nothing else does.
    #[test]
    fn every_event_arrives_exactly_once(
        seed in any::<u64>(),
        loss in 0.0f64..0.3,
        dup in 0.0f64..0.3,
        jitter_ms in 0u64..200,
        before in 0usize..150,
        during in 0usize..150,
        restore in any::<bool>(),
    ) {
        check(Faults { loss, dup, jitter_ms }, seed, before, during, restore);
    }
}

/// A fresh alert raised behind a 20,000-event backlog travels the priority lane: the parent holds
/// it (as an island) long before its cursor reaches the backlog's end, everything still arrives
/// exactly once, and once the island is acked the bulk lane does not send it again.
#[test]
fn a_fresh_event_overtakes_a_backlog() {
    let (school, county) = (id("130102-S0001"), id("130102"));
    let mut child = Store::new(school);
    let mut all = Vec::new();
    for _ in 0..20_000 {
        all.push(child.append(school, alert()));
    }
    for lane in [true, false] {
        let cfg = SessionConfig { idle_timeout_ms: 600_000, rto_ms: 300, priority_lane: lane, ..unsealed() };
        let store = Store {
            me: Some(school),
            cursors: child.cursors.clone(),
            events: child.events.clone(),
            applied: child.applied.clone(),
        };
        let mut pair = Pair::with_config(store, Store::new(county), CLEAN, 7, cfg);
        pair.run_until(12);
        let fresh = pair.append(0, school, alert());
        let mut all = all.clone();
        all.push(fresh.clone());
        let raised_at = pair.now;
        while !pair.sides[1].store.events.contains_key(&(school, fresh.seq)) {
            pair.run_until(pair.now + 1);
            assert!(pair.now < raised_at + 10_000, "fresh event never arrived");
        }
        let waited = pair.now - raised_at;
        let parent_cursor = pair.sides[1].store.cursors.contiguous(school);
        if lane {
            assert!(waited <= 20, "fresh event took {waited} ms");
            assert!(parent_cursor < 15_000, "arrived only with the backlog (parent cursor {parent_cursor})");
        } else {
            assert_eq!(parent_cursor, fresh.seq, "without the lane it arrives in order");
        }
        pair.run_until(pair.now + 60_000);
        check_converged(&pair, &all);
        let stats = pair.sides[0].session.stats();
        assert_eq!(stats.events_sent, 20_001, "nothing sent twice: {stats:?}");
        assert_eq!(stats.fresh_events_sent, u64::from(lane));
    }
}

/// On a lossy, reordering link with a backlog, fresh events keep arriving via the priority lane
/// while bulk drains, and every event is held exactly once in the end.
#[test]
fn fresh_events_on_a_lossy_link_arrive_exactly_once() {
    let (school, county) = (id("130102-S0001"), id("130102"));
    let mut child = Store::new(school);
    let mut all = Vec::new();
    for _ in 0..40_000 {
        all.push(child.append(school, alert()));
    }
    let mut pair = Pair::new(child, Store::new(county), Faults { loss: 0.15, dup: 0.15, jitter_ms: 40 }, 9);
    while !pair.sides[0].session.is_up() {
        pair.run_until(pair.now + 10);
    }
    for _ in 0..100 {
        pair.run_until(pair.now + 1);
        all.push(pair.append(0, school, alert()));
    }
    pair.run_until(pair.now + 120_000);
    check_converged(&pair, &all);
    assert!(pair.sides[0].session.stats().fresh_events_sent > 0, "the priority lane was never used");
}

/// Data frames travel another lane than the hello-ack and can arrive first: a dialer keeps them
/// and handles them once the link is up, instead of waiting for a retransmit.
#[test]
fn data_that_overtakes_the_hello_ack_is_kept() {
    let (school, county) = (id("130102-S0001"), id("130102"));
    let mut s = Session::new(school, county, Role::Dialer, unsealed(), 0, &Cursors::default()).unwrap();
    let directive = Event { by: None, origin: county, seq: 1, hlc: Hlc::default(), scope: school, body: directive(1) };
    let batch = crate::wire::Batch {
        id: 1,
        ranges: vec![crate::wire::SeqRange { origin: county, after: 0, upto: 1 }],
        events: vec![directive],
        ..Default::default()
    };
    s.handle_frame(1, Frame::Batch(batch));
    assert!(!std::iter::from_fn(|| s.poll_event()).any(|e| matches!(e, SessionEvent::Persist { .. })));
    let ack = crate::wire::Hello { version: crate::wire::PROTOCOL_VERSION, node: county, cursors: vec![] };
    s.handle_frame(2, Frame::HelloAck(ack));
    let evs: Vec<SessionEvent> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(evs.iter().any(|e| matches!(e, SessionEvent::Up)), "{evs:?}");
    assert!(evs.iter().any(|e| matches!(e, SessionEvent::Persist { batch_id: 1, .. })), "{evs:?}");
}

/// A county's session towards a school, up, with the county's directives 1..=3 (scoped to the
/// school) held and the school's hello saying it holds `school_holds` of them.
fn county_session_up(school_holds: u64) -> (Session, Vec<Event>) {
    let (school, county) = (id("130102-S0001"), id("130102"));
    let events: Vec<Event> = (1..=3)
        .map(|seq| Event {
            by: None,
            origin: county,
            seq,
            hlc: Hlc { wall_ms: seq, logical: 0 },
            scope: school,
            body: directive(seq),
        })
        .collect();
    let mut cursors = Cursors::default();
    cursors.insert(county, 0, 3);
    let mut s = Session::new(county, school, Role::Acceptor, unsealed(), 0, &cursors).unwrap();
    let cursors = if school_holds > 0 { vec![(county, school_holds)] } else { vec![] };
    let hello = crate::wire::Hello { version: crate::wire::PROTOCOL_VERSION, node: school, cursors };
    s.handle_frame(1, Frame::Hello(hello));
    assert!(s.is_up());
    (s, events)
}

/// The checks are not a no-op: a corrupted state fails them, naming the invariant.
#[test]
fn check_invariants_catches_a_corrupted_state() {
    let county = id("130102");
    let (mut s, _) = county_session_up(2);
    s.check_invariants().unwrap();
    let marks = s.watermarks();
    s.check_progress(&marks).unwrap();
    // As if an ack had moved "sent" back below what the school confirmed holding.
    s.force_sent_for_test(county, 1);
    let v = s.check_invariants().unwrap_err();
    assert_eq!(v.invariant, "sent covers the peer's cursor", "{v}");
    let v = s.check_progress(&marks).unwrap_err();
    assert_eq!(v.invariant, "cursors never decrease", "{v}");
    assert!(v.to_string().contains("sent of origin 130102 went from 2 to Some(1)"), "{v}");
}

/// A driver that answers a fetch with an event outside the range it claims breaks the wire
/// contract: the check catches it before the peer has to.
#[test]
fn check_invariants_catches_a_driver_breaking_its_contract() {
    let county = id("130102");
    let (mut s, events) = county_session_up(0);
    s.check_invariants().unwrap();
    let req = std::iter::from_fn(|| s.poll_event())
        .find_map(|e| match e {
            SessionEvent::Fetch(req) => Some(req),
            _ => None,
        })
        .expect("the county fetches its directives for the school");
    assert_eq!(req.ranges, vec![crate::wire::SeqRange { origin: county, after: 0, upto: 3 }]);
    // Claims (0, 2] but carries seq 3 as well.
    let covered = vec![crate::wire::SeqRange { origin: county, after: 0, upto: 2 }];
    s.handle_fetched(2, req.id, covered, events);
    let v = s.check_invariants().unwrap_err();
    assert_eq!(v.invariant, "batch events sorted and within their ranges", "{v}");
}

/// An authenticated school that claims a range it does not carry (to leave a hole its county
/// would never fill) breaks the protocol: the link closes, nothing of the batch is applied.
#[test]
fn a_range_sent_up_without_its_events_closes_the_link() {
    let school = id("130102-S0001");
    let (_up, mut down) = school_county_up();
    let one = Event { by: None, origin: school, seq: 1, hlc: Hlc::default(), scope: school, body: alert() };
    let batch = crate::wire::Batch {
        id: 1,
        ranges: vec![crate::wire::SeqRange { origin: school, after: 0, upto: 1000 }],
        events: vec![one],
        ..Default::default()
    };
    down.handle_frame(2, Frame::Batch(batch));
    assert!(down.is_closed());
    assert_eq!(down.stats().protocol_errors, 1);
    let evs: Vec<SessionEvent> = std::iter::from_fn(|| down.poll_event()).collect();
    assert!(!evs.iter().any(|e| matches!(e, SessionEvent::Persist { .. })), "nothing goes to the store: {evs:?}");
    let why = evs.iter().find_map(|e| match e {
        SessionEvent::Closed { reason } => Some(reason.clone()),
        _ => None,
    });
    assert!(why.unwrap_or_default().contains("carries 1 of its 1000 events"));
    // Downward, a range may skip events the receiver does not hold (another school's directive).
}

/// Acks: one for a batch never sent closes the link; acks replayed for batches already
/// acknowledged are ignored (their old cursors change nothing) until they are a flood.
#[test]
fn acks_for_batches_never_sent_or_replayed_in_a_flood_close_the_link() {
    let county = id("130102");
    let (mut s, events) = county_session_up(0);
    let req = std::iter::from_fn(|| s.poll_event())
        .find_map(|e| match e {
            SessionEvent::Fetch(req) => Some(req),
            _ => None,
        })
        .expect("the county fetches its directives for the school");
    s.handle_fetched(2, req.id, req.ranges.clone(), events.clone());
    let sent: Vec<Frame> = std::iter::from_fn(|| s.poll_transmit()).collect();
    let batch_id = sent
        .iter()
        .find_map(|f| match f {
            Frame::Batch(b) | Frame::Fresh(b) => Some(b.id),
            _ => None,
        })
        .expect("a batch with the directives");
    let ack = |id: u64, upto: u64| Frame::Ack(crate::wire::Ack { id, cursors: vec![(county, upto)] });
    s.handle_frame(3, ack(batch_id, 3));
    assert_eq!(s.backlog_out(), 0);
    // Replayed with an older cursor: ignored, nothing to resend.
    s.handle_frame(4, ack(batch_id, 1));
    assert!(!s.is_closed());
    assert_eq!(s.stats().acks_ignored, 1);
    assert_eq!(s.backlog_out(), 0);
    assert!(std::iter::from_fn(|| s.poll_transmit()).all(|f| !matches!(f, Frame::Batch(_) | Frame::Fresh(_))));
    // Replayed again and again: a flood.
    for n in 0..200 {
        s.handle_frame(5 + n, ack(batch_id, 3));
    }
    assert!(s.is_closed(), "{:?}", s.stats());
    assert_eq!(s.stats().protocol_errors, 1);

    // A batch id never sent.
    let (mut s, _) = county_session_up(0);
    s.handle_frame(2, ack(99, 3));
    assert!(s.is_closed());
    assert_eq!(s.stats().protocol_errors, 1);
}

/// A hello replayed on a live link with old cursors does not make anything go twice.
#[test]
fn a_replayed_hello_with_old_cursors_sends_nothing_again() {
    let (school, county) = (id("130102-S0001"), id("130102"));
    let (mut s, _) = county_session_up(3);
    assert_eq!(s.backlog_out(), 0);
    let hello = crate::wire::Hello { version: crate::wire::PROTOCOL_VERSION, node: school, cursors: vec![(county, 1)] };
    s.handle_frame(2, Frame::Hello(hello));
    assert!(!s.is_closed());
    assert_eq!(s.backlog_out(), 0);
    assert!(std::iter::from_fn(|| s.poll_transmit()).all(|f| !matches!(f, Frame::Batch(_) | Frame::Fresh(_))));
}

/// Found by the `session` fuzz target: a county's cursors for two of its schools near `u64::MAX`
/// (a hostile school's batch may claim seqs that far: `(0, u64::MAX − 1]` with no events) made the
/// backlog toward its city, Σ local − peer cursor, overflow — a panic in debug builds, a wrapped
/// backlog in release. The backlog saturates now, and the link goes on.
#[test]
fn cursors_near_the_top_of_the_seq_range_do_not_overflow_the_backlog() {
    let (county, city) = (id("130102"), id("1301"));
    let (s1, s2) = (id("130102-S0001"), id("130102-S0002"));
    // The school's batch that gets the county there: accepted, its range claimed.
    let mut from_school = Session::new(county, s1, Role::Acceptor, unsealed(), 0, &Cursors::default()).unwrap();
    from_school.handle_frame(
        0,
        Frame::Hello(crate::wire::Hello { version: crate::wire::PROTOCOL_VERSION, node: s1, cursors: vec![] }),
    );
    let huge = crate::wire::SeqRange { origin: s1, after: 0, upto: u64::MAX - 1 };
    from_school.handle_frame(1, Frame::Batch(crate::wire::Batch { id: 1, ranges: vec![huge], ..Default::default() }));
    // Since ranges sent up must carry their events, that batch is refused and the link closed;
    // the uplink's arithmetic must hold anyway (cursors that high can come from elsewhere).
    let persisted = std::iter::from_fn(|| from_school.poll_event()).any(|e| matches!(e, SessionEvent::Persist { .. }));
    assert!(!persisted && from_school.is_closed());
    // The county's link to its city hears of both schools' cursors.
    let mut up = Session::new(county, city, Role::Dialer, unsealed(), 0, &Cursors::default()).unwrap();
    up.handle_frame(
        0,
        Frame::HelloAck(crate::wire::Hello { version: crate::wire::PROTOCOL_VERSION, node: city, cursors: vec![] }),
    );
    assert!(up.is_up());
    let marks = up.watermarks();
    up.handle_local_progress(1, s1, u64::MAX - 1);
    up.handle_local_progress(1, s2, u64::MAX);
    assert_eq!(up.backlog_out(), u64::MAX);
    up.check_invariants().unwrap();
    up.check_progress(&marks).unwrap();
    // The city says it holds one school's: the backlog comes down to the other's.
    up.handle_frame(
        2,
        Frame::HelloAck(crate::wire::Hello {
            version: crate::wire::PROTOCOL_VERSION,
            node: city,
            cursors: vec![(s2, u64::MAX)],
        }),
    );
    assert_eq!(up.backlog_out(), u64::MAX - 1);
    up.handle_timeout(600);
    up.check_invariants().unwrap();
    assert!(!up.is_closed());
}

/// A school whose retention dropped its events 1..=60 (an ancestor held them) meets a parent that
/// holds none of them (a wiped county): it sends 61..=100 only, once each, on a lossy link, and
/// never offers what it no longer has; the parent holds them as an island until another holder
/// (its own parent) fills 1..=60, and then holds all 100 exactly once.
#[test]
fn a_floor_below_which_events_were_dropped_is_never_offered() {
    let (school, county) = (id("130102-S0001"), id("130102"));
    let mut full = Store::new(school);
    let all: Vec<Event> = (0..100).map(|_| full.append(school, alert())).collect();
    let mut child = Store { me: Some(school), cursors: full.cursors.clone(), ..Store::default() };
    for e in &all[60..] {
        child.events.insert((school, e.seq), e.clone());
    }
    let cfg = SessionConfig { idle_timeout_ms: 600_000, rto_ms: 300, ..unsealed() };
    let faults = Faults { loss: 0.1, dup: 0.1, jitter_ms: 20 };
    let mut pair = Pair::with_floor(child, Store::new(county), faults, 11, cfg, 60);
    pair.run_until(60_000);
    let parent = &pair.sides[1].store;
    assert_eq!(parent.cursors.contiguous(school), 0, "nothing at or below the floor was claimed");
    assert!(parent.cursors.holds_seq(school, 61) && parent.cursors.holds_seq(school, 100));
    assert!(!parent.cursors.holds_seq(school, 60));
    assert_eq!(parent.applied.len(), 40);
    assert!(parent.applied.values().all(|&n| n == 1), "each applied once");
    let stats = pair.sides[0].session.stats();
    assert!(pair.sides[0].session.is_up() && pair.sides[1].session.is_up());
    // Retransmits may repeat a batch; the fetches never reach below the floor.
    assert!(stats.events_sent >= 40, "{stats:?}");

    // The parent's own parent fills 1..=60 (it held them all along).
    let side = &mut pair.sides[1];
    let ranges = vec![SeqRange { origin: school, after: 0, upto: 60 }];
    let (fresh, _) = apply_batch(&mut side.store.cursors, &ranges, &all[..60]);
    for e in fresh {
        *side.store.applied.entry((e.origin, e.seq)).or_default() += 1;
        side.store.events.insert((e.origin, e.seq), e.clone());
    }
    assert_eq!(side.store.cursors.contiguous(school), 100);
    let new = pair.append(0, school, alert());
    pair.run_until(pair.now + 10_000);
    let parent = &pair.sides[1].store;
    assert_eq!(parent.cursors.contiguous(school), new.seq);
    assert_eq!(parent.applied.len(), 101);
    assert!(parent.applied.values().all(|&n| n == 1), "each applied once");
}

#[test]
fn sealed_sessions_want_a_seal_ending_each_range_from_below() {
    use crate::seal::{HashKeys, genesis, seal_run};
    use crate::wire::Batch;
    let (county, school) = (id("130102"), id("130102-S0001"));
    let e =
        Event { origin: school, seq: 1, hlc: Hlc { wall_ms: 1, logical: 0 }, scope: school, body: alert(), by: None };
    let keys = HashKeys::new(7);
    let (seals, _) = seal_run(school, genesis(school, 0), std::slice::from_ref(&e), &keys.signer(school)).unwrap();
    let range = SeqRange { origin: school, after: 0, upto: 1 };
    let open = |s: &mut Session| {
        let hello = crate::wire::Hello { version: crate::wire::PROTOCOL_VERSION, node: school, cursors: vec![] };
        s.handle_frame(1, Frame::Hello(hello));
        while s.poll_transmit().is_some() {}
        while s.poll_event().is_some() {}
    };
    // Without its seal: refused, the link closed, nothing persisted.
    let mut s = Session::new(county, school, Role::Acceptor, SessionConfig::default(), 0, &Cursors::default()).unwrap();
    open(&mut s);
    let bare = Batch { id: 1, ranges: vec![range], events: vec![e.clone()], ..Batch::default() };
    s.handle_frame(2, Frame::Batch(bare));
    let evs: Vec<SessionEvent> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(!evs.iter().any(|e| matches!(e, SessionEvent::Persist { .. })), "{evs:?}");
    assert!(s.is_closed());
    // With it: handed to the driver with the seal, to check against the chain.
    let mut s = Session::new(county, school, Role::Acceptor, SessionConfig::default(), 0, &Cursors::default()).unwrap();
    open(&mut s);
    let sealed = Batch { id: 1, ranges: vec![range], events: vec![e], seals: seals.clone(), certs: vec![] };
    s.handle_frame(2, Frame::Batch(sealed));
    let evs: Vec<SessionEvent> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(
        evs.iter().any(|e| matches!(e, SessionEvent::Persist { attached, .. } if attached.seals == seals)),
        "{evs:?}"
    );
    assert!(!s.is_closed());
}
