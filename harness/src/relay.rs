//! A UDP relay standing at a node's public QUIC address and forwarding to where the node really
//! listens: it can drop every packet (the node unreachable without being killed), or lose a share
//! of them and delay the rest (a slow, lossy uplink). Loopback only; every loop is bounded by a
//! stop flag checked at least every 50 ms.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct UdpRelay {
    /// While true, every packet either way is dropped.
    pub drop: Arc<AtomicBool>,
    /// Packets dropped (all of them while `drop`, and those lost to `loss_permille`).
    pub dropped: Arc<AtomicU64>,
    /// Of every 1,000 packets either way, how many are lost.
    pub loss_permille: Arc<AtomicU32>,
    /// How long each packet that is not lost is held before it goes on (each way).
    pub delay_ms: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

const POLL: Duration = Duration::from_millis(50);

/// A packet held until `due`, then sent from `from` to `to` (`None`: `from` is connected).
struct Held {
    due: Instant,
    from: Arc<UdpSocket>,
    to: Option<SocketAddr>,
    bytes: Vec<u8>,
}

/// What the receiving threads share: whether to drop, lose or delay a packet, and where the
/// delayed ones go.
#[derive(Clone)]
struct Fate {
    drop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    loss_permille: Arc<AtomicU32>,
    delay_ms: Arc<AtomicU64>,
    /// A counter hashed into the loss draw: deterministic, no RNG crate needed.
    drawn: Arc<AtomicU64>,
    held: mpsc::Sender<Held>,
}

impl Fate {
    fn forward(&self, from: &Arc<UdpSocket>, to: Option<SocketAddr>, bytes: &[u8]) {
        if self.drop.load(Ordering::SeqCst) || self.lost() {
            self.dropped.fetch_add(1, Ordering::SeqCst);
            return;
        }
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay == 0 {
            let _ = match to {
                Some(to) => from.send_to(bytes, to),
                None => from.send(bytes),
            };
            return;
        }
        let due = Instant::now() + Duration::from_millis(delay);
        let _ = self.held.send(Held { due, from: from.clone(), to, bytes: bytes.to_vec() });
    }

    fn lost(&self) -> bool {
        let permille = self.loss_permille.load(Ordering::SeqCst);
        if permille == 0 {
            return false;
        }
        // splitmix64 of a counter: an even spread of draws.
        let mut z = self.drawn.fetch_add(1, Ordering::SeqCst).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        z % 1_000 < u64::from(permille)
    }
}

impl UdpRelay {
    pub fn start(listen: SocketAddr, upstream: SocketAddr) -> UdpRelay {
        let front = Arc::new(UdpSocket::bind(listen).expect("relay front socket"));
        front.set_read_timeout(Some(POLL)).unwrap();
        let (held_tx, held_rx) = mpsc::channel::<Held>();
        let relay = UdpRelay {
            drop: Arc::new(AtomicBool::new(false)),
            dropped: Arc::new(AtomicU64::new(0)),
            loss_permille: Arc::new(AtomicU32::new(0)),
            delay_ms: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Arc::new(Mutex::new(Vec::new())),
        };
        let fate = Fate {
            drop: relay.drop.clone(),
            dropped: relay.dropped.clone(),
            loss_permille: relay.loss_permille.clone(),
            delay_ms: relay.delay_ms.clone(),
            drawn: Arc::new(AtomicU64::new(0)),
            held: held_tx,
        };
        // The delayed packets, in the order they were held (one delay for all: first due first).
        let stop = relay.stop.clone();
        let delayer = std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let Ok(p) = held_rx.recv_timeout(POLL) else { continue };
                let wait = p.due.saturating_duration_since(Instant::now());
                std::thread::sleep(wait);
                let _ = match p.to {
                    Some(to) => p.from.send_to(&p.bytes, to),
                    None => p.from.send(&p.bytes),
                };
            }
        });
        let (stop, threads) = (relay.stop.clone(), relay.threads.clone());
        let t = std::thread::spawn(move || {
            // One upstream socket per client, so the node sees each client as its own peer.
            let mut backs: BTreeMap<SocketAddr, Arc<UdpSocket>> = BTreeMap::new();
            let mut buf = vec![0u8; 65_536];
            while !stop.load(Ordering::SeqCst) {
                let Ok((n, client)) = front.recv_from(&mut buf) else { continue };
                let back = backs.entry(client).or_insert_with(|| {
                    let s = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("relay back socket"));
                    s.set_read_timeout(Some(POLL)).unwrap();
                    s.connect(upstream).unwrap();
                    let (s2, front2, fate2, stop2) = (s.clone(), front.clone(), fate.clone(), stop.clone());
                    let h = std::thread::spawn(move || {
                        let mut buf = vec![0u8; 65_536];
                        while !stop2.load(Ordering::SeqCst) {
                            let Ok(n) = s2.recv(&mut buf) else { continue };
                            fate2.forward(&front2, Some(client), &buf[..n]);
                        }
                    });
                    threads.lock().unwrap().push(h);
                    s
                });
                fate.forward(back, None, &buf[..n]);
            }
        });
        relay.threads.lock().unwrap().extend([t, delayer]);
        relay
    }
}

impl Drop for UdpRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap());
        for t in threads {
            let _ = t.join();
        }
    }
}
