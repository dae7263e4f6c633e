//! The simulated net's own tests (beside net.rs, which they test through `super::*`).

use super::*;

fn id(s: &str) -> NodeId {
    s.parse().unwrap()
}

fn county() -> NodeId {
    id("130102")
}

fn school() -> NodeId {
    id("130102-S0001")
}

fn school2() -> NodeId {
    id("130102-S0002")
}

fn addr(n: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, n], 4433))
}

fn fixed(ms: u64) -> LinkFaults {
    LinkFaults { latency_ms: (ms, ms), ..LinkFaults::default() }
}

fn ms_since(t0: Instant) -> u64 {
    u64::try_from(t0.elapsed().as_millis()).unwrap()
}

/// The county's endpoint at 10.0.0.1 and its school's at 10.0.0.2 (in that order).
fn county_and_school(net: &SimNet) -> (SimEndpoint, SimEndpoint) {
    (net.endpoint(county(), addr(1)), net.endpoint(school(), addr(2)))
}

/// `client` dials `server` (registered as `peer`) and `server` accepts: (dialer's, acceptor's).
async fn connect(client: &SimEndpoint, server: &SimEndpoint) -> (Connection, Connection) {
    let (dialed, accepted) = tokio::join!(client.dial(server.node(), server.addr()), server.accept());
    (dialed.unwrap(), accepted.unwrap())
}

/// A recv that must not complete within `ms` of paused time.
async fn silent_for(conn: &mut Connection, ms: u64) {
    let r = tokio::time::timeout(Duration::from_millis(ms), conn.receiver.recv()).await;
    assert!(r.is_err(), "expected nothing, got {r:?}");
}

async fn recv_frame(conn: &mut Connection) -> Vec<u8> {
    conn.receiver.recv().await.unwrap().unwrap()
}

#[tokio::test(start_paused = true)]
async fn dial_takes_one_round_trip_and_the_acceptor_learns_the_dialer() {
    let net = SimNet::new(1, fixed(7));
    let (c, s) = county_and_school(&net);
    let t0 = Instant::now();
    let (at_school, at_county) = connect(&s, &c).await;
    assert_eq!(ms_since(t0), 14);
    assert_eq!(at_school.peer, county());
    assert_eq!(at_county.peer, school());
    assert_eq!(c.local_addr(), Some(addr(1)));
    assert_eq!(net.stats().dials_ok, 1);
    assert_eq!(net.stats().connections_open, 1);
    drop((at_school, at_county));
    assert_eq!(net.stats().connections_open, 0);
}

#[tokio::test(start_paused = true)]
async fn lanes_deliver_in_order_after_their_latency_both_ways() {
    let net = SimNet::new(7, LinkFaults { latency_ms: (10, 30), ..LinkFaults::default() });
    let (c, s) = county_and_school(&net);
    let (mut at_school, mut at_county) = connect(&s, &c).await;
    for upwards in [true, false] {
        let (from, to) = if upwards { (&mut at_school, &mut at_county) } else { (&mut at_county, &mut at_school) };
        let t0 = Instant::now();
        for i in 0..20u8 {
            from.sender.send(vec![0, i]).await.unwrap();
            from.bulk.send(vec![1, i]).await.unwrap();
        }
        let mut next = [0u8; 2];
        let mut times = Vec::new();
        for _ in 0..40 {
            let f = recv_frame(to).await;
            let lane = usize::from(f[0]);
            assert_eq!(f[1], next[lane], "lane {lane} out of order");
            next[lane] += 1;
            times.push(ms_since(t0));
        }
        assert_eq!(next, [20, 20]);
        // Every frame took between the minimum and the maximum latency (all were sent at t0, so
        // keeping the order never pushes one past the maximum).
        assert!(times.iter().all(|&t| (10..=30).contains(&t)), "{times:?}");
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        // The latency is really drawn: not all the same.
        assert!(times.first() != times.last(), "{times:?}");
        silent_for(to, 1_000).await;
    }
    let total = net.stats().total();
    assert_eq!(total.sent, Count { frames: 80, bytes: 160 });
    assert_eq!(total.delivered, total.sent);
}

#[tokio::test(start_paused = true)]
async fn latency_holds_per_frame_and_order_holds_under_jitter() {
    let net = SimNet::new(3, fixed(50));
    let (c, s) = county_and_school(&net);
    let (mut at_school, mut at_county) = connect(&s, &c).await;
    let t0 = Instant::now();
    at_school.sender.send(b"a".to_vec()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    at_school.sender.send(b"b".to_vec()).await.unwrap();
    assert_eq!(recv_frame(&mut at_county).await, b"a");
    assert_eq!(ms_since(t0), 50);
    assert_eq!(recv_frame(&mut at_county).await, b"b");
    assert_eq!(ms_since(t0), 70);

    // A slow frame holds back a faster one behind it on the same lane.
    net.set_faults(fixed(100));
    let t1 = Instant::now();
    at_school.bulk.send(b"slow".to_vec()).await.unwrap();
    net.set_faults(fixed(1));
    at_school.bulk.send(b"fast".to_vec()).await.unwrap();
    at_school.sender.send(b"control".to_vec()).await.unwrap();
    // The other lane is not held back.
    assert_eq!(recv_frame(&mut at_county).await, b"control");
    assert_eq!(ms_since(t1), 1);
    assert_eq!(recv_frame(&mut at_county).await, b"slow");
    assert_eq!(recv_frame(&mut at_county).await, b"fast");
    assert_eq!(ms_since(t1), 100);
}

#[tokio::test(start_paused = true)]
async fn control_frames_come_before_bulk_frames_when_both_are_queued() {
    let net = SimNet::new(1, fixed(5));
    let (c, s) = county_and_school(&net);
    let (mut at_school, mut at_county) = connect(&s, &c).await;
    for i in 0..3u8 {
        at_school.bulk.send(vec![b'b', i]).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    for i in 0..3u8 {
        at_school.sender.send(vec![b'c', i]).await.unwrap();
    }
    // The receiver was busy; everything is due when it asks.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut got = Vec::new();
    for _ in 0..6 {
        got.push(recv_frame(&mut at_county).await);
    }
    let want: Vec<Vec<u8>> =
        [(b'c', 0), (b'c', 1), (b'c', 2), (b'b', 0), (b'b', 1), (b'b', 2)].map(|(l, i)| vec![l, i]).to_vec();
    assert_eq!(got, want);
}

#[tokio::test(start_paused = true)]
async fn recv_is_cancel_safe() {
    let net = SimNet::new(1, fixed(50));
    let (c, s) = county_and_school(&net);
    let (mut at_school, mut at_county) = connect(&s, &c).await;
    let t0 = Instant::now();
    at_school.sender.send(b"x".to_vec()).await.unwrap();
    silent_for(&mut at_county, 30).await;
    assert_eq!(recv_frame(&mut at_county).await, b"x");
    assert_eq!(ms_since(t0), 50);
}

#[tokio::test(start_paused = true)]
async fn a_waiting_receiver_wakes_for_frames_sent_later() {
    let net = SimNet::new(1, fixed(5));
    let (c, s) = county_and_school(&net);
    let (mut at_school, at_county) = connect(&s, &c).await;
    let t0 = Instant::now();
    let Connection { mut receiver, .. } = at_county;
    let waiting = tokio::spawn(async move {
        // A timeout, so a receiver that misses its wake-up fails instead of hanging.
        let first = tokio::time::timeout(Duration::from_secs(1), receiver.recv()).await.expect("never woken");
        (first, ms_since(t0), receiver)
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    at_school.bulk.send(b"late".to_vec()).await.unwrap();
    let (first, at, mut receiver) = waiting.await.unwrap();
    assert_eq!(first.unwrap().as_deref(), Some(&b"late"[..]));
    assert_eq!(at, 105);
    // Woken by a break too.
    let waiting = tokio::spawn(async move {
        tokio::time::timeout(Duration::from_secs(1), receiver.recv()).await.expect("never woken")
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    net.partition(county(), school());
    assert_eq!(waiting.await.unwrap().unwrap_err(), TransportError::Closed(REASON_PARTITIONED.into()));
}

#[tokio::test(start_paused = true)]
async fn dials_fail_unless_the_right_peer_is_up_and_reachable() {
    let net = SimNet::new(1, fixed(5));
    let (c, s) = county_and_school(&net);

    // Nobody at the address: fails after the dial timeout.
    let t0 = Instant::now();
    let err = s.dial(county(), addr(9)).await.unwrap_err();
    assert!(matches!(&err, TransportError::Handshake(m) if m.contains("timed out")), "{err}");
    assert_eq!(ms_since(t0), DIAL_FAIL_MS);

    // Another node at the address: refused after the round trip, naming the expected node.
    let t0 = Instant::now();
    let err = s.dial(id("130104"), addr(1)).await.unwrap_err();
    assert!(matches!(&err, TransportError::Handshake(m) if m.contains("130104")), "{err}");
    assert_eq!(ms_since(t0), 10);

    // Partitioned: fails; healed: succeeds.
    net.set_dial_fail_ms(3_000);
    net.partition(county(), school());
    assert!(!net.reachable(school(), county()));
    let t0 = Instant::now();
    assert!(matches!(s.dial(county(), addr(1)).await, Err(TransportError::Handshake(_))));
    assert_eq!(ms_since(t0), 3_000);
    net.heal(school(), county());
    let (_a, _b) = connect(&s, &c).await;

    // A peer down: fails; the dialer shut down: EndpointClosed at once.
    net.endpoint_down(county());
    assert!(!net.is_up(county()));
    assert!(matches!(s.dial(county(), addr(1)).await, Err(TransportError::Handshake(_))));
    s.shutdown();
    let t0 = Instant::now();
    assert_eq!(s.dial(county(), addr(1)).await.unwrap_err(), TransportError::EndpointClosed);
    assert_eq!(ms_since(t0), 0);

    // A partition starting during the handshake fails the dial too.
    let (c, s) = county_and_school(&net);
    let dial = tokio::spawn(s.dial(county(), addr(1)));
    tokio::time::sleep(Duration::from_millis(3)).await;
    net.partition(county(), school());
    assert!(matches!(dial.await.unwrap(), Err(TransportError::Handshake(_))));
    net.heal(county(), school());
    let (_a, _b) = connect(&s, &c).await;
    assert_eq!(net.stats().dials_ok, 2);
    assert_eq!(net.stats().dials_failed, 6);
}

#[tokio::test(start_paused = true)]
async fn partition_breaks_connections_on_both_ends_with_the_reason() {
    let net = SimNet::new(1, fixed(5));
    let (c, s) = county_and_school(&net);
    let s2 = net.endpoint(school2(), addr(3));
    let (mut at_school, mut at_county) = connect(&s, &c).await;
    let (mut at_school2, mut at_county2) = connect(&s2, &c).await;
    at_school.sender.send(b"in flight".to_vec()).await.unwrap();

    net.partition(school(), county());
    let want = TransportError::Closed(REASON_PARTITIONED.into());
    let t0 = Instant::now();
    assert_eq!(at_county.receiver.recv().await.unwrap_err(), want);
    assert_eq!(at_school.receiver.recv().await.unwrap_err(), want);
    assert_eq!(ms_since(t0), 0, "broken at once");
    assert_eq!(at_county.receiver.recv().await.unwrap_err(), want, "sticky");
    assert_eq!(at_school.sender.send(b"x".to_vec()).await.unwrap_err(), want);
    assert_eq!(at_county.bulk.send(b"x".to_vec()).await.unwrap_err(), want);
    assert_eq!(net.stats().total().discarded.frames, 1);

    // Other pairs are untouched.
    at_school2.sender.send(b"still here".to_vec()).await.unwrap();
    assert_eq!(recv_frame(&mut at_county2).await, b"still here");
    at_county2.bulk.send(b"yes".to_vec()).await.unwrap();
    assert_eq!(recv_frame(&mut at_school2).await, b"yes");

    // Healing does not revive broken connections, but new dials work.
    net.heal(county(), school());
    assert_eq!(at_county.receiver.recv().await.unwrap_err(), want);
    let (mut at_school, mut at_county) = connect(&s, &c).await;
    at_school.sender.send(b"again".to_vec()).await.unwrap();
    assert_eq!(recv_frame(&mut at_county).await, b"again");
}

#[tokio::test(start_paused = true)]
async fn isolate_cuts_a_node_off_and_rejoin_restores_it() {
    let net = SimNet::new(1, fixed(5));
    let (c, s) = county_and_school(&net);
    let s2 = net.endpoint(school2(), addr(3));
    let (mut at_school, mut at_county) = connect(&s, &c).await;
    let (mut at_school2, mut at_county2) = connect(&s2, &c).await;

    net.isolate(county());
    let want = TransportError::Closed(REASON_ISOLATED.into());
    for conn in [&mut at_school, &mut at_county, &mut at_school2, &mut at_county2] {
        assert_eq!(conn.receiver.recv().await.unwrap_err(), want);
    }
    net.set_dial_fail_ms(100);
    assert!(matches!(s.dial(county(), addr(1)).await, Err(TransportError::Handshake(_))));
    assert!(matches!(c.dial(school(), addr(2)).await, Err(TransportError::Handshake(_))));
    // The others still reach each other; the isolated node still runs (its endpoint is up).
    assert!(net.is_up(county()));
    let (_x, mut y) = connect(&s, &s2).await;
    assert_eq!(y.peer, school());
    silent_for(&mut y, 10).await;

    net.rejoin(county());
    let (mut at_school, mut at_county) = connect(&s, &c).await;
    at_county.sender.send(b"back".to_vec()).await.unwrap();
    assert_eq!(recv_frame(&mut at_school).await, b"back");
}

#[tokio::test(start_paused = true)]
async fn close_reaches_the_peer_after_the_frames_sent_before_it() {
    let net = SimNet::new(1, fixed(10));
    let (c, s) = county_and_school(&net);
    let (mut at_school, mut at_county) = connect(&s, &c).await;
    let t0 = Instant::now();
    at_school.sender.send(b"goodbye".to_vec()).await.unwrap();
    at_school.sender.close("going away");
    // The closing end fails at once.
    let local = TransportError::Closed(REASON_LOCAL.into());
    assert_eq!(at_school.receiver.recv().await.unwrap_err(), local);
    assert_eq!(at_school.bulk.send(b"x".to_vec()).await.unwrap_err(), local);
    // The peer's sends vanish until the close arrives, then fail.
    at_county.sender.send(b"lost".to_vec()).await.unwrap();
    assert_eq!(recv_frame(&mut at_county).await, b"goodbye");
    let err = at_county.receiver.recv().await.unwrap_err();
    assert_eq!(err, TransportError::Closed("going away".into()));
    assert_eq!(ms_since(t0), 10);
    assert_eq!(at_county.receiver.recv().await.unwrap_err(), err, "sticky");
    assert_eq!(at_county.sender.send(b"x".to_vec()).await.unwrap_err(), err);
    // Closing twice changes nothing.
    at_school.bulk.close("again");
    assert_eq!(at_county.receiver.recv().await.unwrap_err(), err);
}

#[tokio::test(start_paused = true)]
async fn dropping_both_senders_ends_the_peer_cleanly_after_the_control_lane_drains() {
    let net = SimNet::new(1, fixed(10));
    let (c, s) = county_and_school(&net);
    let (at_school, mut at_county) = connect(&s, &c).await;
    let Connection { mut sender, mut bulk, receiver: _keep, .. } = at_school;
    bulk.send(b"early batch".to_vec()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    sender.send(b"one".to_vec()).await.unwrap();
    bulk.send(b"late batch".to_vec()).await.unwrap();
    sender.send(b"two".to_vec()).await.unwrap();
    drop(bulk);
    drop(sender);
    // Bulk frames due before the control lane's end arrive; those due with it are lost, as
    // the control lane ends the connection (like quic.rs).
    assert_eq!(recv_frame(&mut at_county).await, b"early batch");
    assert_eq!(recv_frame(&mut at_county).await, b"one");
    assert_eq!(recv_frame(&mut at_county).await, b"two");
    assert_eq!(at_county.receiver.recv().await.unwrap(), None);
    assert_eq!(at_county.receiver.recv().await.unwrap(), None, "sticky");

    // The bulk lane ending alone is no end.
    let (at_school, mut at_county) = connect(&s, &c).await;
    let Connection { mut sender, bulk, receiver: _keep, .. } = at_school;
    drop(bulk);
    sender.send(b"alive".to_vec()).await.unwrap();
    assert_eq!(recv_frame(&mut at_county).await, b"alive");
    silent_for(&mut at_county, 1_000).await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_closes_connections_and_stops_accepting() {
    let net = SimNet::new(1, fixed(10));
    let (c, s) = county_and_school(&net);
    let (mut at_school, mut at_county) = connect(&s, &c).await;
    // An accept waiting when the endpoint shuts down returns EndpointClosed.
    let c2 = c.clone();
    let waiting = tokio::spawn(async move { c2.accept().await.map(|conn| conn.peer) });
    tokio::task::yield_now().await;
    c.shutdown();
    assert_eq!(waiting.await.unwrap().unwrap_err(), TransportError::EndpointClosed);
    assert_eq!(c.accept().await.unwrap_err(), TransportError::EndpointClosed);
    assert_eq!(at_county.receiver.recv().await.unwrap_err(), TransportError::Closed(REASON_LOCAL.into()));
    let t0 = Instant::now();
    assert_eq!(at_school.receiver.recv().await.unwrap_err(), TransportError::Closed(REASON_SHUTDOWN.into()));
    assert_eq!(ms_since(t0), 10);
    assert_eq!(c.dial(school(), addr(2)).await.unwrap_err(), TransportError::EndpointClosed);
    net.set_dial_fail_ms(100);
    assert!(matches!(s.dial(county(), addr(1)).await, Err(TransportError::Handshake(_))));

    // A crash, then a restart: a new endpoint for the node serves again; the old one stays shut.
    let c = net.endpoint(county(), addr(1));
    let (mut at_school, _at_county) = connect(&s, &c).await;
    net.endpoint_down(county());
    assert_eq!(at_school.receiver.recv().await.unwrap_err(), TransportError::Closed(REASON_DOWN.into()));
    assert_eq!(c.accept().await.unwrap_err(), TransportError::EndpointClosed);
    let old = c;
    let c = net.endpoint(county(), addr(1));
    assert_eq!(old.accept().await.unwrap_err(), TransportError::EndpointClosed);
    old.shutdown(); // no effect on the new endpoint
    let (mut at_school, mut at_county) = connect(&s, &c).await;
    at_school.sender.send(b"hi".to_vec()).await.unwrap();
    assert_eq!(recv_frame(&mut at_county).await, b"hi");
}

#[tokio::test(start_paused = true)]
async fn frames_above_the_limit_are_refused() {
    let net = SimNet::new(1, fixed(1));
    let (c, s) = county_and_school(&net);
    let (mut at_school, mut at_county) = connect(&s, &c).await;
    let max = FRAME_BYTES_MAX;
    let err = at_school.bulk.send(vec![0; max + 1]).await.unwrap_err();
    assert_eq!(err, TransportError::FrameTooLarge { len: max as u64 + 1, max });
    at_school.bulk.send(vec![7; max]).await.unwrap();
    assert_eq!(recv_frame(&mut at_county).await.len(), max);
}

/// Sends `n` numbered frames on the control lane and returns what arrives in 10 s.
async fn through_faults(faults: LinkFaults, n: u8) -> (Vec<u8>, TierStats) {
    let net = SimNet::new(1, fixed(5));
    let (c, s) = county_and_school(&net);
    let (mut at_school, mut at_county) = connect(&s, &c).await;
    net.set_faults(faults);
    for i in 0..n {
        at_school.sender.send(vec![i]).await.unwrap();
    }
    let mut got = Vec::new();
    while let Ok(frame) = tokio::time::timeout(Duration::from_secs(10), at_county.receiver.recv()).await {
        got.extend(frame.unwrap().unwrap());
    }
    let stats = net.stats().by_tier.get(&Tier::School).copied().unwrap_or_default();
    (got, stats)
}

#[tokio::test(start_paused = true)]
async fn loss_duplication_and_reordering_at_certainty() {
    let (got, stats) = through_faults(LinkFaults { loss: 1.0, ..fixed(5) }, 4).await;
    assert_eq!(got, Vec::<u8>::new());
    assert_eq!(stats.dropped, Count { frames: 4, bytes: 4 });
    assert_eq!(stats.delivered, Count::default());

    let (got, stats) = through_faults(LinkFaults { duplicate: 1.0, ..fixed(5) }, 3).await;
    assert_eq!(got, [0, 0, 1, 1, 2, 2]);
    assert_eq!(stats.duplicated.frames, 3);
    assert_eq!(stats.delivered.frames, 6);

    // Each frame drawn for reordering is overtaken by the next; the last has no partner.
    let (got, stats) = through_faults(LinkFaults { reorder: 1.0, ..fixed(5) }, 5).await;
    assert_eq!(got, [1, 0, 3, 2, 4]);
    assert_eq!(stats.reordered.frames, 2);

    let (got, _) = through_faults(LinkFaults::default(), 5).await;
    assert_eq!(got, [0, 1, 2, 3, 4]);

    // Partial probabilities: some of each, frames intact.
    let (got, stats) =
        through_faults(LinkFaults { latency_ms: (1, 30), loss: 0.2, duplicate: 0.2, reorder: 0.2 }, 200).await;
    assert!(stats.dropped.frames > 10 && stats.dropped.frames < 80, "{stats:?}");
    assert!(stats.duplicated.frames > 5, "{stats:?}");
    assert!(stats.reordered.frames > 5, "{stats:?}");
    assert_eq!(got.len() as u64, 200 - stats.dropped.frames + stats.duplicated.frames);
}

type Trace = Vec<(u64, u8, Vec<u8>)>;

/// A fixed script of dials, sends on both lanes both ways, a partition and a redial; the trace
/// is what the receivers saw, with the paused time, the receiver, and the frame (whose first
/// byte is its lane).
async fn scripted_run(seed: u64) -> (Trace, NetStats) {
    let faults = LinkFaults { latency_ms: (2, 20), loss: 0.05, duplicate: 0.05, reorder: 0.05 };
    let net = SimNet::new(seed, faults);
    let (c, s) = county_and_school(&net);
    let s2 = net.endpoint(school2(), addr(3));
    let t0 = Instant::now();
    let trace = Arc::new(Mutex::new(Trace::new()));
    let reader = |mut receiver: Box<dyn FrameReceiver>, tag: u8| {
        let trace = trace.clone();
        tokio::spawn(async move {
            while let Ok(Some(f)) = receiver.recv().await {
                trace.lock().unwrap().push((ms_since(t0), tag, f));
            }
        })
    };
    let mut kept = Vec::new();
    let mut readers = Vec::new();
    for (round, (from, tag)) in [(&s, 0u8), (&s2, 1), (&s, 2)].into_iter().enumerate() {
        let (dialed, accepted) = connect(from, &c).await;
        let Connection { sender: mut up_ctl, bulk: mut up_blk, receiver: down, .. } = dialed;
        let Connection { sender: mut down_ctl, bulk: down_blk, receiver: up, .. } = accepted;
        readers.push(reader(up, tag));
        readers.push(reader(down, tag + 10));
        for i in 0..60u8 {
            up_ctl.send(vec![0, tag, i]).await.unwrap_or_default();
            if i % 3 == 0 {
                up_blk.send(vec![1, tag, i]).await.unwrap_or_default();
                down_ctl.send(vec![0, tag + 10, i]).await.unwrap_or_default();
            }
            tokio::time::sleep(Duration::from_millis(u64::from(i % 4))).await;
        }
        if round == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            net.partition(school(), county());
            tokio::time::sleep(Duration::from_millis(50)).await;
            net.heal(school(), county());
        }
        kept.push((up_ctl, up_blk, down_ctl, down_blk));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for r in &readers {
        r.abort();
    }
    for r in readers {
        let _ = r.await;
    }
    drop(kept);
    let trace = trace.lock().unwrap().clone();
    (trace, net.stats())
}

#[tokio::test(start_paused = true)]
async fn same_seed_same_trace_other_seed_other_trace() {
    let (a, stats_a) = scripted_run(42).await;
    let (b, stats_b) = scripted_run(42).await;
    let (c, _) = scripted_run(43).await;
    assert!(a.len() > 150, "{} frames", a.len());
    assert_eq!(a, b);
    assert_eq!(stats_a, stats_b);
    assert_ne!(a, c);
    // Every receiver of the script got frames, the redial after the partition's included.
    for tag in [0, 1, 2, 10, 11, 12] {
        assert!(a.iter().any(|(_, t, _)| *t == tag), "nothing received by {tag}");
    }
    let total = stats_a.total();
    assert!(total.dropped.frames > 0 && total.duplicated.frames > 0 && total.reordered.frames > 0, "{total:?}");
}
