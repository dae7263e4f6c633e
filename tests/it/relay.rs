//! A UDP relay the tests control: it stands at a node's public QUIC address and forwards to where
//! the node really listens, and can drop every packet — making the node unreachable without
//! killing it. Every loop is bounded by a stop flag checked at least every 50 ms.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub struct UdpRelay {
    /// While true, every packet either way is dropped.
    pub drop: Arc<AtomicBool>,
    pub dropped: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

const POLL: Duration = Duration::from_millis(50);

impl UdpRelay {
    pub fn start(listen: SocketAddr, upstream: SocketAddr) -> UdpRelay {
        let front = Arc::new(UdpSocket::bind(listen).expect("relay front socket"));
        front.set_read_timeout(Some(POLL)).unwrap();
        let relay = UdpRelay {
            drop: Arc::new(AtomicBool::new(false)),
            dropped: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Arc::new(Mutex::new(Vec::new())),
        };
        let (drop, dropped, stop, threads) =
            (relay.drop.clone(), relay.dropped.clone(), relay.stop.clone(), relay.threads.clone());
        let t = std::thread::spawn(move || {
            // One upstream socket per client, so the node sees each client as its own peer.
            let mut backs: BTreeMap<SocketAddr, Arc<UdpSocket>> = BTreeMap::new();
            let mut buf = vec![0u8; 65_536];
            while !stop.load(Ordering::SeqCst) {
                let Ok((n, client)) = front.recv_from(&mut buf) else { continue };
                if drop.load(Ordering::SeqCst) {
                    dropped.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                let back = backs.entry(client).or_insert_with(|| {
                    let s = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("relay back socket"));
                    s.set_read_timeout(Some(POLL)).unwrap();
                    s.connect(upstream).unwrap();
                    let (s2, front2, drop2, dropped2, stop2) =
                        (s.clone(), front.clone(), drop.clone(), dropped.clone(), stop.clone());
                    let h = std::thread::spawn(move || {
                        let mut buf = vec![0u8; 65_536];
                        while !stop2.load(Ordering::SeqCst) {
                            let Ok(n) = s2.recv(&mut buf) else { continue };
                            if drop2.load(Ordering::SeqCst) {
                                dropped2.fetch_add(1, Ordering::SeqCst);
                                continue;
                            }
                            let _ = front2.send_to(&buf[..n], client);
                        }
                    });
                    threads.lock().unwrap().push(h);
                    s
                });
                let _ = back.send(&buf[..n]);
            }
        });
        relay.threads.lock().unwrap().push(t);
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
