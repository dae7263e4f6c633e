//! The province's store over a month of Hebei, measured, and a year projected from it.
//!
//! The month is the simulated Hebei day as the province held it (`mingchu sim --hebei
//! --export-root FILE`: every alert, verdict, case step, spot check, ledger record, warning and
//! registry change of 17,183 schools and their supervisors), applied to a real sled store through
//! the store actor, as links deliver them, once for each day of the month. Each later day is the
//! same day again, a day on in time: every origin's seqs continue where the day before ended, and
//! the references to events of that day (an alert's verdict, a case's steps) follow them. The
//! registry's enrolment is applied once, on the first day (it is not a daily event), so each later
//! day leaves it out and the origin's seqs are numbered on without the gaps it would leave.
//!
//! What is measured: bytes on disk after each day, events held, the time each day takes to apply,
//! and this process's memory. The year is projected from the month's daily growth.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use protocol::{Body, Event, EventId, SeqRange};
use ractor::{Actor, ActorRef};
use topology::NodeId;

use node::clock::SystemClock;
use node::runtime::store::{PriorityInbox, StoreActor, StoreArgs, StoreMsg};
use node::storage::Backend;
use node::storage::Storage;

/// Most events in one applied batch (a link's batches carry a few hundred events of many origins).
const BATCH_EVENTS: usize = 512;

const DAY_MS: u64 = 86_400_000;

/// One day's events and, for the days after the first, how each origin's seqs are renumbered.
struct Day {
    /// The first day: every event, in the order they were written (HLC).
    first: Vec<Event>,
    /// A later day: the events without the registry's, in HLC order.
    later: Vec<Event>,
    /// Per origin: its highest seq on the first day, and how many events it has on a later day.
    span: HashMap<NodeId, (u64, u64)>,
    /// A later day's rank (1-based) of each kept event within its origin's.
    rank: HashMap<EventId, u64>,
}

impl Day {
    fn new(mut events: Vec<Event>) -> Day {
        events.sort_by_key(|e| (e.hlc, e.origin, e.seq));
        let mut span: HashMap<NodeId, (u64, u64)> = HashMap::new();
        for e in &events {
            let s = span.entry(e.origin).or_default();
            s.0 = s.0.max(e.seq);
        }
        let later: Vec<Event> = events.iter().filter(|e| !matches!(e.body, Body::Registry(_))).cloned().collect();
        let mut by_origin: HashMap<NodeId, Vec<u64>> = HashMap::new();
        for e in &later {
            by_origin.entry(e.origin).or_default().push(e.seq);
        }
        let mut rank = HashMap::new();
        for (origin, mut seqs) in by_origin {
            seqs.sort_unstable();
            span.entry(origin).or_default().1 = seqs.len() as u64;
            for (i, seq) in seqs.into_iter().enumerate() {
                rank.insert(EventId { origin, seq }, i as u64 + 1);
            }
        }
        Day { first: events, later, span, rank }
    }

    /// Day `k`'s (0-based, k ≥ 1) seq of the first day's event `id`, if that event is kept.
    fn seq_on(&self, k: u64, id: EventId) -> Option<u64> {
        let (first_max, per_day) = self.span.get(&id.origin).copied()?;
        let rank = self.rank.get(&id).copied()?;
        Some(first_max + (k - 1) * per_day + rank)
    }

    /// Day `k`'s copy of a kept event: a day on in time, seqs and references renumbered.
    fn copy(&self, k: u64, e: &Event) -> Event {
        let mut e = e.clone();
        let shift = k * DAY_MS;
        if let Some(seq) = self.seq_on(k, e.id()) {
            e.seq = seq;
        }
        e.hlc.wall_ms += shift;
        match &mut e.body {
            Body::Alert(a) => a.detected_at_ms += shift,
            Body::AlertUpdate(u) => {
                if let Some(seq) = self.seq_on(k, u.alert) {
                    u.alert.seq = seq;
                }
            }
            Body::Case(c) => {
                let open = EventId { origin: c.case.opened_by, seq: c.case.seq };
                if let Some(seq) = self.seq_on(k, open) {
                    c.case.seq = seq;
                }
            }
            _ => {}
        }
        e
    }
}

/// Applies `events` (in order) in batches, each origin's part with its range from where the store
/// holds it to the batch's highest seq.
async fn apply_all(
    store: &ActorRef<StoreMsg>,
    events: &[Event],
    held: &mut HashMap<NodeId, u64>,
) -> anyhow::Result<()> {
    for chunk in events.chunks(BATCH_EVENTS) {
        let mut events: Vec<Event> = chunk.to_vec();
        events.sort_by_key(|e| (e.origin, e.seq));
        let mut ranges: Vec<SeqRange> = Vec::new();
        for e in &events {
            match ranges.last_mut() {
                Some(r) if r.origin == e.origin => r.upto = e.seq,
                _ => {
                    let after = held.get(&e.origin).copied().unwrap_or(0);
                    ranges.push(SeqRange { origin: e.origin, after, upto: e.seq });
                }
            }
        }
        for r in &ranges {
            held.insert(r.origin, r.upto);
        }
        ractor::call_t!(
            store,
            |reply| StoreMsg::Apply { ranges, events, attached: Default::default(), reply },
            120_000
        )
        .context("store call")?
        .map_err(|e| anyhow::anyhow!(e))?;
    }
    Ok(())
}

/// `mingchu bench --reopen DIR [--reopen-crash]`: the time a node's store takes to open at a
/// restart, after a clean stop or (with `crash`) after its process was killed.
pub fn reopen(dir: &Path, crash: bool, leave: bool) -> anyhow::Result<()> {
    let backend = Backend::of_data_dir(dir);
    if leave {
        // The child: open, write, flush, write again, and end without closing the store.
        let storage = backend.open(dir)?;
        storage.put(node::storage::Space::Meta, b"bench-reopen", b"1".to_vec())?;
        tokio::runtime::Builder::new_current_thread().build()?.block_on(storage.flush())?;
        storage.put(node::storage::Space::Meta, b"bench-reopen", b"2".to_vec())?;
        std::mem::forget(storage);
        std::process::exit(0);
    }
    if crash {
        let exe = std::env::current_exe()?;
        let status = std::process::Command::new(exe)
            .args(["bench", "--reopen-leave", "--reopen"])
            .arg(dir)
            .status()
            .context("the child that leaves the store open")?;
        anyhow::ensure!(status.success(), "the child that leaves the store open failed: {status}");
    }
    let t = Instant::now();
    let storage = backend.open(dir)?;
    let took = t.elapsed();
    let kept = storage.get(node::storage::Space::Meta, b"bench-reopen")?;
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let flush = rt.block_on(write_and_flush_ms(storage.as_ref()))?;
    println!(
        "{} store in {} ({:.1} MiB on disk) opened in {:.3} s{}; the flushed write {}; then one write + flush {:.2} ms",
        backend,
        dir.display(),
        mib(storage.disk_bytes().unwrap_or(0)),
        took.as_secs_f64(),
        if crash { " after its process was killed" } else { "" },
        match kept.as_deref() {
            Some(b"1") => "survived, the unflushed one did not",
            Some(b"2") => "and the unflushed one survived",
            Some(_) | None if !crash => "(none: no crash asked for)",
            _ => "is LOST",
        },
        flush
    );
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// This process's resident and peak memory, from `/proc/self/status` (kB).
fn memory_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Writes made and flushed one at a time after each day, for [`write_and_flush_ms`].
const FLUSH_SAMPLES: u32 = 20;

/// The mean time of one small write and its flush on the store as it now is (what an
/// acknowledgement waits for), in ms.
async fn write_and_flush_ms(storage: &dyn Storage) -> anyhow::Result<f64> {
    let t = Instant::now();
    for i in 0..FLUSH_SAMPLES {
        storage.put(node::storage::Space::Meta, b"bench-year-flush", i.to_be_bytes().to_vec())?;
        storage.flush().await?;
    }
    Ok(t.elapsed().as_secs_f64() * 1000.0 / FLUSH_SAMPLES as f64)
}

/// What `mingchu bench --year` measures.
pub struct YearOptions {
    pub days: u32,
    /// Only events of these kinds (`alert`, `ledger`, `registry`, …), to see what each costs.
    pub kinds: Option<Vec<String>>,
    /// The store measured (memory: to tell the store actor's own memory from the storage's).
    pub storage: Backend,
    /// Stop before a day would start with this process above this RSS (MiB).
    pub max_rss_mib: u64,
    /// Where the store is kept (else a temporary directory, removed at the end).
    pub dir: Option<std::path::PathBuf>,
}

/// `mingchu bench --year FILE [--year-days N]`.
pub async fn run(file: &Path, opts: YearOptions) -> anyhow::Result<()> {
    let days = opts.days;
    anyhow::ensure!(days >= 2, "--year-days must be at least 2 (the growth is measured between days)");
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let events = protocol::wire::decode_event_log(&bytes)
        .with_context(|| format!("{} is not an event file written by `mingchu sim --export-root`", file.display()))?;
    let events: Vec<Event> = match &opts.kinds {
        Some(kinds) => {
            let wanted: Vec<String> = kinds.iter().map(|k| k.replace(['-', '_'], "").to_lowercase()).collect();
            events.into_iter().filter(|e| wanted.contains(&format!("{:?}", e.kind()).to_lowercase())).collect()
        }
        None => events,
    };
    anyhow::ensure!(!events.is_empty(), "{} holds no events", file.display());
    let day = Day::new(events);
    let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
    for e in &day.first {
        *kinds.entry(format!("{:?}", e.kind())).or_default() += 1;
    }
    let origins = day.span.len();
    println!(
        "year bench: the root's {} store over {days} days: the simulated day it held ({} events of {origins} origins: {}) applied each day, the registry's {} once",
        opts.storage,
        day.first.len(),
        kinds.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", "),
        day.first.len() - day.later.len(),
    );

    let tmp = tempfile::Builder::new().prefix("mingchu-bench-year-").tempdir()?;
    let dir = match &opts.dir {
        Some(d) => {
            let used = std::fs::read_dir(d).map(|mut r| r.next().is_some()).unwrap_or(false);
            anyhow::ensure!(!used, "--year-dir {} is not empty", d.display());
            d.clone()
        }
        None => tmp.path().to_path_buf(),
    };
    let storage: Arc<dyn Storage> = opts.storage.open(&dir)?;
    let args = StoreArgs {
        me: "13".parse()?,
        storage: storage.clone(),
        clock: Arc::new(SystemClock::new()),
        priority: PriorityInbox::default(),
        on_revoked: None,
        registry_written: Default::default(),
        seal_keys: node::runtime::store::SealKeys::simulated(1, "13".parse().expect("the province")),
        own_cert: None,
    };
    let (store, handle) = Actor::spawn(None, StoreActor, args).await.context("store actor")?;
    let mut held: HashMap<NodeId, u64> = HashMap::new();
    let mut total = 0u64;
    let mut sizes: Vec<(u32, u64, u64)> = Vec::new(); // (day, events held, bytes)
    let t0 = Instant::now();
    println!("   day   events held    on disk   bytes/event   applied in   one write + flush   rss");
    let mut stopped = None;
    for k in 0..days as u64 {
        let (rss, _) = memory_kb();
        if k >= 2 && rss / 1024 > opts.max_rss_mib {
            stopped = Some((k, rss / 1024));
            break;
        }
        let t = Instant::now();
        let copies: Vec<Event>;
        let events: &[Event] = if k == 0 {
            &day.first
        } else {
            copies = day.later.iter().map(|e| day.copy(k, e)).collect();
            &copies
        };
        total += events.len() as u64;
        apply_all(&store, events, &mut held).await?;
        storage.flush().await?;
        let took = t.elapsed();
        let fsync = write_and_flush_ms(storage.as_ref()).await?;
        let disk = storage.disk_bytes().unwrap_or(0);
        sizes.push((k as u32 + 1, total, disk));
        let (rss, _) = memory_kb();
        println!(
            "  {:>4}   {:>11}   {:>6.1} MiB   {:>11.0}   {:>8.1} s   {:>14.2} ms   {:.0} MiB",
            k + 1,
            total,
            mib(disk),
            disk as f64 / total as f64,
            took.as_secs_f64(),
            fsync,
            rss as f64 / 1024.0
        );
    }
    if let Some((k, rss)) = stopped {
        println!(
            "stopped after day {k} of {days}: this process holds {rss} MiB, above --year-max-rss-mib {}",
            opts.max_rss_mib
        );
    }
    let status = ractor::call_t!(store, StoreMsg::Stats, 60_000).context("store stats")?;
    anyhow::ensure!(
        status.events_applied == total,
        "the store applied {} of the {total} events given (duplicates ignored: {})",
        status.events_applied,
        status.duplicates_ignored
    );
    let (first, last) = (sizes[0], sizes[sizes.len() - 1]);
    let per_day = (last.2 - first.2) as f64 / (last.0 - first.0) as f64;
    let per_event_later = (last.2 - first.2) as f64 / (last.1 - first.1) as f64;
    let year = first.2 as f64 + per_day * 364.0;
    let (rss, peak) = memory_kb();
    println!(
        "{} days: {} events, {:.1} MiB on disk ({:.0} bytes/event) in {:.0} s; each later day adds {:.1} MiB ({} events, {:.0} bytes/event)",
        last.0,
        last.1,
        mib(last.2),
        last.2 as f64 / last.1 as f64,
        t0.elapsed().as_secs_f64(),
        mib(per_day as u64),
        day.later.len(),
        per_event_later
    );
    println!(
        "a year (365 days) at that growth: {:.2} GiB on the root's disk, {} events",
        year / 1_073_741_824.0,
        first.1 + 364 * day.later.len() as u64
    );
    println!(
        "this process (the store actor and its storage): RSS {:.0} MiB, peak {:.0} MiB",
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    store.stop(None);
    handle.await.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::alert::{AlertAction, AlertUpdate};
    use protocol::{AlertRaised, Hlc};

    fn ev(origin: &str, seq: u64, body: Body) -> Event {
        let origin: NodeId = origin.parse().unwrap();
        Event { origin, seq, hlc: Hlc { wall_ms: seq * 10, logical: 0 }, scope: origin, body, by: None }
    }

    fn alert() -> Body {
        Body::Alert(AlertRaised {
            camera: "cam-01".into(),
            canteen: "main".into(),
            zone: protocol::Zone::Cooking,
            alert_type: protocol::AlertType::NoMask,
            severity: protocol::AlertType::NoMask.default_severity(protocol::Zone::Cooking),
            detected_at_ms: 7,
            confidence_permille: 900,
            snapshot: String::new(),
            repeat_count: 1,
        })
    }

    /// A later day leaves the registry out, numbers each origin's seqs on from the day before
    /// without gaps, and moves the verdict's reference with the alert it names.
    #[test]
    fn a_later_day_numbers_seqs_on_without_the_registry_and_moves_references() {
        let school = "130102-S0001";
        let registry = Body::Registry(protocol::registry::RegistryChange {
            entity: protocol::registry::EntityRef {
                kind: protocol::registry::EntityKind::Camera,
                node: school.parse().unwrap(),
                id: "cam-9".into(),
            },
            op: protocol::registry::RegistryOp::Remove { reason: "拆除".into() },
        });
        let verdict = |seq| {
            Body::AlertUpdate(AlertUpdate {
                alert: EventId { origin: school.parse().unwrap(), seq },
                action: AlertAction::Dismiss { reason: "误报".into() },
            })
        };
        let day = Day::new(vec![
            ev(school, 1, alert()),
            ev(school, 2, registry),
            ev(school, 3, alert()),
            ev("130102", 1, verdict(3)),
        ]);
        assert_eq!((day.first.len(), day.later.len()), (4, 3), "the registry only on the first day");
        let copies: Vec<Event> = day.later.iter().map(|e| day.copy(2, e)).collect();
        let alerts: Vec<u64> = copies.iter().filter(|e| e.origin.to_string() == school).map(|e| e.seq).collect();
        // Day 1 held seqs 1–3; days 2 and 3 two each: 4–5, then 6–7.
        assert_eq!(alerts, vec![6, 7], "day 3 of an origin with 2 events a day after the first");
        let v = copies.iter().find(|e| e.origin.to_string() == "130102").unwrap();
        assert_eq!(v.seq, 3);
        let Body::AlertUpdate(u) = &v.body else { panic!() };
        assert_eq!(u.alert.seq, 7, "the verdict names the day's copy of its alert");
        assert_eq!(copies[0].hlc.wall_ms, 10 + 2 * DAY_MS);
    }
}
