//! Admin listings at province scale, measured on a real sled store: the province holds a month of
//! the province's alerts (DOMAIN.md: ≈ 33,600 a day) with a verdict on each. How long the admin
//! API's listings take, and how long replication waits behind one: a one-event batch is applied
//! while a listing runs, once with the listing read beside the store actor (as the admin API
//! does) and once through it (the store actor's own `List` and `Related`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use protocol::alert::{AlertAction, AlertUpdate};
use protocol::{AlertRaised, AlertType, Body, Event, EventKind, Hlc, SeqRange, Zone};
use ractor::{Actor, ActorRef};
use topology::NodeId;

use node::api::alerts::{ListParams, alert_views};
use node::clock::SystemClock;
use node::runtime::store::{EventQuery, LIST_LIMIT_MAX, PriorityInbox, StoreActor, StoreArgs, StoreMsg};
use node::storage::Backend;
use node::storage::Storage;

/// Events per applied batch while filling (one origin per batch, as a link delivers them).
const FILL_BATCH: usize = 1_000;

fn alert(n: u64, at_ms: u64) -> AlertRaised {
    let kinds = [AlertType::NoMask, AlertType::NoChefHat, AlertType::NoUniform, AlertType::Phone];
    let kind = kinds[(n % 4) as usize];
    AlertRaised {
        camera: format!("cam-{:02}", n % 8),
        canteen: "main".into(),
        zone: Zone::Cooking,
        alert_type: kind,
        severity: kind.default_severity(Zone::Cooking),
        detected_at_ms: at_ms,
        confidence_permille: 900,
        snapshot: String::new(),
        repeat_count: 1,
    }
}

async fn apply(store: &ActorRef<StoreMsg>, ranges: Vec<SeqRange>, events: Vec<Event>) -> anyhow::Result<()> {
    ractor::call_t!(store, |reply| StoreMsg::Apply { ranges, events, attached: Default::default(), reply }, 60_000)
        .context("store call")?
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Fills a province store with `alerts` alerts from `schools` schools (spread over 10 counties),
/// each dismissed by its county, then measures the listings.
pub async fn run(alerts: usize, schools: u32) -> anyhow::Result<()> {
    let tmp = tempfile::Builder::new().prefix("mingchu-bench-listing-").tempdir()?;
    let storage: Arc<dyn Storage> = Backend::of_data_dir(tmp.path()).open(tmp.path())?;
    let province: NodeId = "13".parse()?;
    let counties: Vec<NodeId> = (0..10).map(|i| format!("1301{:02}", i + 2).parse()).collect::<Result<_, _>>()?;
    let schools: Vec<NodeId> =
        (0..schools).map(|i| NodeId::school(counties[(i % 10) as usize], i / 10 + 1)).collect::<Result<_, _>>()?;
    let args = StoreArgs {
        me: province,
        storage: storage.clone(),
        clock: Arc::new(SystemClock::new()),
        priority: PriorityInbox::default(),
        on_revoked: None,
        registry_written: Default::default(),
        seal_keys: node::runtime::store::SealKeys::simulated(1, "13".parse().expect("the province")),
        own_cert: None,
    };
    let (store, handle) = Actor::spawn(None, StoreActor, args).await.context("store actor")?;
    println!(
        "listing bench: a province store with {alerts} alerts from {} schools, each with a county verdict",
        schools.len()
    );

    // Fill: per school, its alerts in batches; then each county's verdicts.
    let t0 = Instant::now();
    let base_ms = node::clock::unix_ms() - 30 * 86_400_000;
    let per_school = alerts / schools.len();
    let mut county_seq = std::collections::BTreeMap::<NodeId, u64>::new();
    let mut verdicts: std::collections::BTreeMap<NodeId, Vec<(NodeId, u64, u64)>> = Default::default();
    for (si, &school) in schools.iter().enumerate() {
        let mut seq = 0u64;
        while (seq as usize) < per_school {
            let n = FILL_BATCH.min(per_school - seq as usize) as u64;
            let events: Vec<Event> = (seq + 1..=seq + n)
                .map(|s| {
                    // Spread over the month, interleaved across schools.
                    let at = base_ms + (s * schools.len() as u64 + si as u64) * 2_592_000_000 / alerts as u64;
                    Event {
                        by: None,
                        origin: school,
                        seq: s,
                        hlc: Hlc { wall_ms: at, logical: 0 },
                        scope: school,
                        body: Body::Alert(alert(s, at)),
                    }
                })
                .collect();
            for e in &events {
                verdicts.entry(school.parent().unwrap_or(province)).or_default().push((school, e.seq, e.hlc.wall_ms));
            }
            apply(&store, vec![SeqRange { origin: school, after: seq, upto: seq + n }], events).await?;
            seq += n;
        }
    }
    for (county, list) in verdicts {
        for chunk in list.chunks(FILL_BATCH) {
            let after = county_seq.get(&county).copied().unwrap_or(0);
            let events: Vec<Event> = chunk
                .iter()
                .enumerate()
                .map(|(i, &(school, seq, at))| Event {
                    by: None,
                    origin: county,
                    seq: after + 1 + i as u64,
                    hlc: Hlc { wall_ms: at + 60_000, logical: 0 },
                    scope: school,
                    body: Body::AlertUpdate(AlertUpdate {
                        alert: protocol::EventId { origin: school, seq },
                        action: AlertAction::Dismiss { reason: "误报".into() },
                    }),
                })
                .collect();
            let upto = after + events.len() as u64;
            apply(&store, vec![SeqRange { origin: county, after, upto }], events).await?;
            county_seq.insert(county, upto);
        }
    }
    let held = per_school * schools.len();
    println!("  filled {} events in {:.1} s", held * 2, t0.elapsed().as_secs_f64());

    // The listings, read beside the store actor (median of 3).
    let now = node::clock::unix_ms();
    let time = |p: ListParams| {
        let storage = storage.clone();
        move || -> anyhow::Result<(Duration, usize)> {
            let mut runs = Vec::new();
            let mut n = 0;
            for _ in 0..3 {
                let t = Instant::now();
                n = alert_views(storage.as_ref(), &p, now)?.map_err(|e| anyhow::anyhow!(e))?.len();
                runs.push(t.elapsed());
            }
            Ok((median(runs), n))
        }
    };
    let newest = ListParams { limit: Some("100".into()), ..ListParams::default() };
    let (t, n) = tokio::task::spawn_blocking(time(newest.clone())).await??;
    println!("  `alert list` (newest 100):                       {} ({n} listed)", ms(t));
    let under = ListParams { limit: Some("100".into()), under: Some(schools[0].to_string()), ..ListParams::default() };
    let (t, n) = tokio::task::spawn_blocking(time(under)).await??;
    println!("  `alert list --under <a school>` (newest 100):    {} ({n} listed)", ms(t));
    let dismissed = ListParams { limit: Some("100".into()), status: Some("dismissed".into()), ..ListParams::default() };
    let (t, n) = tokio::task::spawn_blocking(time(dismissed)).await??;
    println!("  `alert list --status dismissed` (newest 100):    {} ({n} listed)", ms(t));
    let none_new = ListParams { limit: Some("100".into()), status: Some("new".into()), ..ListParams::default() };
    let (t, n) = tokio::task::spawn_blocking(time(none_new.clone())).await??;
    println!("  `alert list --status new` (none is):             {} ({n} listed)", ms(t));

    // The same listing as the admin API made it before: through the store actor, reading every
    // verdict held to fold the 100 listed.
    let t = Instant::now();
    let q = EventQuery { kind: Some(EventKind::Alert), under: None, limit: 100 };
    ractor::call_t!(store, |reply| StoreMsg::List { query: q, reply }, 120_000)?.map_err(|e| anyhow::anyhow!(e))?;
    let all = ractor::call_t!(
        store,
        |reply| StoreMsg::Related { kind: EventKind::AlertUpdate, subject: None, reply },
        120_000
    )?
    .map_err(|e| anyhow::anyhow!(e))?;
    println!("  the newest 100 as listed before (every verdict read, {} of them): {}", all.len(), ms(t.elapsed()));

    // Replication behind a listing: a one-event batch sent while the slowest listing runs.
    let mut seq = county_seq.clone();
    let mut one_event = |county: NodeId| {
        let s = seq.entry(county).or_default();
        *s += 1;
        let e = Event {
            by: None,
            origin: county,
            seq: *s,
            hlc: Hlc { wall_ms: node::clock::unix_ms(), logical: 0 },
            scope: county,
            body: Body::Directive(protocol::Directive { title: "bench".into(), text: String::new() }),
        };
        (vec![SeqRange { origin: county, after: *s - 1, upto: *s }], vec![e])
    };
    let beside = {
        let storage = storage.clone();
        let listing = tokio::task::spawn_blocking(move || alert_views(storage.as_ref(), &none_new, now));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (r, e) = one_event(counties[0]);
        let t = Instant::now();
        apply(&store, r, e).await?;
        let waited = t.elapsed();
        listing.await??.map_err(|e| anyhow::anyhow!(e))?;
        waited
    };
    let through = {
        let q = EventQuery { kind: Some(EventKind::Alert), under: None, limit: LIST_LIMIT_MAX };
        let s2 = store.clone();
        let listing = tokio::spawn(async move {
            let _ = ractor::call_t!(s2, |reply| StoreMsg::List { query: q, reply }, 120_000);
            ractor::call_t!(
                s2,
                |reply| StoreMsg::Related { kind: EventKind::AlertUpdate, subject: None, reply },
                120_000
            )
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (r, e) = one_event(counties[1]);
        let t = Instant::now();
        apply(&store, r, e).await?;
        let waited = t.elapsed();
        let _ = listing.await;
        waited
    };
    println!("  a one-event batch applied during that listing:  {} beside the store actor", ms(beside));
    println!(
        "                                                  {} with the listing through the store actor",
        ms(through)
    );
    store.stop(None);
    let _ = handle.await;
    Ok(())
}
