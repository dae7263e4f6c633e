//! The console at province scale: a province node whose store holds a month of the province's
//! work — alerts with their verdicts (some still waiting), the cases they opened at every stage
//! of their lifecycle, the daily spot checks, directives — serves its pages to a signed-in
//! supervisor over HTTPS. Per page: the server's own time (its `Server-Timing` header) at p50
//! and p99, and what the client waited; and what a sign-in costs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use protocol::alert::{AlertAction, AlertUpdate};
use protocol::case::{CaseAction, CaseEvent, CaseId, CaseSource};
use protocol::spot::{FocusArea, SpotCheck};
use protocol::{AlertRaised, AlertType, Body, Event, EventId, Hlc, SeqRange, Severity, Zone};
use ractor::{Actor, ActorRef};
use topology::{NodeId, Tier, Topology};

use node::clock::SystemClock;
use node::runtime::store::{PriorityInbox, StoreActor, StoreArgs, StoreMsg};
use node::storage::Backend;
use node::storage::Storage;

/// Events per applied batch while filling.
const FILL_BATCH: usize = 1_000;

/// What the fill writes.
#[derive(Clone, Copy, Debug)]
pub struct Month {
    pub alerts: usize,
    /// One alert in this many is left without a verdict (the queue).
    pub open_every: usize,
    /// One alert in this many opens a case.
    pub case_every: usize,
    pub spot_checks_per_day: usize,
    pub days: u64,
}

impl Default for Month {
    /// DOMAIN.md: ≈ 33,600 alerts a day province-wide, ≥ 200 spot checks a day, 30 days kept.
    fn default() -> Month {
        Month { alerts: 1_000_000, open_every: 50, case_every: 40, spot_checks_per_day: 200, days: 30 }
    }
}

fn alert(n: u64, at_ms: u64) -> AlertRaised {
    let kinds = [AlertType::NoMask, AlertType::NoChefHat, AlertType::Rodent, AlertType::Phone, AlertType::Smoking];
    let kind = kinds[(n % kinds.len() as u64) as usize];
    AlertRaised {
        camera: format!("cam-{:02}", n % 8 + 1),
        canteen: "main".into(),
        zone: Zone::Cooking,
        alert_type: kind,
        severity: kind.default_severity(Zone::Cooking),
        detected_at_ms: at_ms,
        confidence_permille: 900,
        snapshot: format!("snap-{n}.jpg"),
        repeat_count: 1,
    }
}

/// Per origin, its events in seq order (seq assigned as they are pushed).
#[derive(Default)]
pub(crate) struct Log {
    pub(crate) by_origin: BTreeMap<NodeId, Vec<Event>>,
}

impl Log {
    pub(crate) fn push(&mut self, origin: NodeId, at_ms: u64, scope: NodeId, body: Body) -> EventId {
        let list = self.by_origin.entry(origin).or_default();
        let seq = list.len() as u64 + 1;
        list.push(Event { by: None, origin, seq, hlc: Hlc { wall_ms: at_ms, logical: 0 }, scope, body });
        EventId { origin, seq }
    }
}

async fn apply(store: &ActorRef<StoreMsg>, ranges: Vec<SeqRange>, events: Vec<Event>) -> anyhow::Result<()> {
    ractor::call_t!(store, |reply| StoreMsg::Apply { ranges, events, attached: Default::default(), reply }, 120_000)
        .context("store call")?
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(())
}

/// Work scheduled for later in the month (a verdict 20 minutes after its alert, a school's answer
/// hours after its notice), done when the month's clock reaches it.
enum Job {
    Verdict { school: NodeId, alert: EventId, n: u64 },
    Step { origin: NodeId, school: NodeId, case: CaseId, action: CaseAction },
    Check { school: NodeId, n: u64 },
}

/// The month's events of `topology`'s schools, as their schools and counties wrote them: every
/// origin's events in time order, as a node writes its own.
pub(crate) fn month_of_work(topology: &Topology, month: Month, end_ms: u64) -> (Log, usize) {
    let province = topology.root();
    let schools: Vec<NodeId> = topology.subtree(province).map(|e| e.id).filter(|n| n.tier() == Tier::School).collect();
    let span = month.days * 86_400_000;
    let base = end_ms - span;
    let mut log = Log::default();
    let mut cases = 0;
    let mut ledger: BTreeMap<NodeId, u32> = BTreeMap::new();
    let mut jobs: std::collections::BTreeMap<(u64, u64), Job> = BTreeMap::new();
    let tie = std::cell::Cell::new(0u64);
    let next = || {
        tie.set(tie.get() + 1);
        tie.get()
    };
    let schedule = |jobs: &mut BTreeMap<(u64, u64), Job>, at: u64, job: Job| {
        jobs.insert((at, next()), job);
    };
    let checks = (month.spot_checks_per_day * month.days as usize) as u64;
    for n in 0..checks {
        let school = schools[((n * 7919) % schools.len() as u64) as usize];
        schedule(&mut jobs, base + n * span / checks + 7, Job::Check { school, n });
    }
    let mut run_until = |log: &mut Log, jobs: &mut BTreeMap<(u64, u64), Job>, now: u64, cases: &mut usize| {
        while let Some(entry) = jobs.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((at, _), job) = entry.remove_entry();
            let mut later: Vec<(u64, Job)> = Vec::new();
            match job {
                Job::Check { school, n } => {
                    let county = school.parent().unwrap_or(province);
                    let results = FocusArea::ALL
                        .into_iter()
                        .map(|a| (a, !(n % 10 == 0 && a == FocusArea::StaffAttire)))
                        .collect();
                    let check = SpotCheck { canteen: "main".into(), results, note: String::new() };
                    log.push(county, at, school, Body::SpotCheck(check));
                }
                Job::Verdict { school, alert: id, n } => {
                    let county = school.parent().unwrap_or(province);
                    if n % month.case_every as u64 == 1 {
                        *cases += 1;
                        let number = ledger.entry(county).or_default();
                        *number += 1;
                        let seq = log.by_origin.get(&county).map_or(0, Vec::len) as u64 + 1;
                        let case = CaseId { opened_by: county, seq };
                        let open = CaseAction::Open {
                            school,
                            severity: Severity::Serious,
                            source: CaseSource::AiAlert { alert: id },
                            title: format!("{}：请整改", alert(n, at).alert_type.zh()),
                            detail: String::new(),
                            number: *number,
                        };
                        log.push(county, at, school, Body::Case(CaseEvent { case, action: open }));
                        let notice = CaseAction::IssueNotice {
                            deadline_ms: at + 3 * 86_400_000,
                            text: "请按期整改并上传佐证材料。".into(),
                        };
                        log.push(county, at, school, Body::Case(CaseEvent { case, action: notice }));
                        let confirm = AlertAction::Confirm { note: String::new(), case: Some(case) };
                        log.push(county, at, school, Body::AlertUpdate(AlertUpdate { alert: id, action: confirm }));
                        let school_steps = [
                            CaseAction::NoticeDelivery { refused: false },
                            CaseAction::Acknowledge,
                            CaseAction::Submit { evidence: vec!["photo-1.jpg".into()], note: "已整改".into() },
                        ];
                        for (i, action) in school_steps.into_iter().enumerate() {
                            later.push((
                                at + 3_600_000 * (i as u64 + 1),
                                Job::Step { origin: school, school, case, action },
                            ));
                        }
                        let review =
                            CaseAction::Review { passed: true, comment: "整改到位".into(), new_deadline_ms: None };
                        later.push((at + 86_400_000, Job::Step { origin: county, school, case, action: review }));
                        let close = CaseAction::Close { comment: "销号".into() };
                        later.push((at + 86_460_000, Job::Step { origin: county, school, case, action: close }));
                    } else {
                        let action = if n % 3 == 0 {
                            AlertAction::Confirm { note: "属实".into(), case: None }
                        } else {
                            AlertAction::Dismiss { reason: "误报".into() }
                        };
                        log.push(county, at, school, Body::AlertUpdate(AlertUpdate { alert: id, action }));
                    }
                }
                Job::Step { origin, school, case, action } => {
                    log.push(origin, at, school, Body::Case(CaseEvent { case, action }));
                }
            }
            for (t, j) in later {
                schedule(jobs, t, j);
            }
        }
    };
    for n in 0..month.alerts as u64 {
        let at = base + n * span / month.alerts as u64;
        run_until(&mut log, &mut jobs, at, &mut cases);
        let school = schools[(n % schools.len() as u64) as usize];
        let id = log.push(school, at, school, Body::Alert(alert(n, at)));
        if n % month.open_every as u64 != 0 {
            schedule(&mut jobs, at + 20 * 60_000, Job::Verdict { school, alert: id, n });
        }
    }
    run_until(&mut log, &mut jobs, end_ms, &mut cases);
    (log, cases)
}

/// Stores the log at the province, origin by origin, in batches (as links deliver them).
pub(crate) async fn fill(store: &ActorRef<StoreMsg>, mut log: Log) -> anyhow::Result<usize> {
    let mut total = 0;
    for (origin, events) in std::mem::take(&mut log.by_origin) {
        for chunk in events.chunks(FILL_BATCH) {
            let (after, upto) = (chunk[0].seq - 1, chunk[chunk.len() - 1].seq);
            total += chunk.len();
            apply(store, vec![SeqRange { origin, after, upto }], chunk.to_vec()).await?;
        }
    }
    Ok(total)
}

/// Fills the data dir of `province` with a month of work of `topology`'s schools; returns (events,
/// cases).
pub async fn fill_province(
    data_dir: &std::path::Path,
    topology: &Topology,
    month: Month,
) -> anyhow::Result<(usize, usize)> {
    let storage: Arc<dyn Storage> = Backend::of_data_dir(data_dir).open(data_dir)?;
    let args = StoreArgs {
        me: topology.root(),
        storage: storage.clone(),
        clock: Arc::new(SystemClock::new()),
        priority: PriorityInbox::default(),
        on_revoked: None,
        registry_written: Default::default(),
        seal_keys: node::runtime::store::SealKeys::simulated(1, "13".parse().expect("the province")),
        own_cert: None,
    };
    let (store, handle) = Actor::spawn(None, StoreActor, args).await.context("store actor")?;
    let (log, cases) = month_of_work(topology, month, node::clock::unix_ms() - 60_000);
    let n = fill(&store, log).await?;
    store.stop(None);
    let _ = handle.await;
    storage.flush().await?;
    Ok((n, cases))
}

/// p50 and p99 of some durations.
pub fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.50), at(0.99))
}

/// Milliseconds with one decimal.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// How long `f` takes, `n` times.
pub fn time_n(n: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f()?;
        out.push(t.elapsed());
    }
    Ok(out)
}

/// An HTTPS client of one console that trusts only the federation's CA and keeps its cookies.
pub(crate) struct Web {
    agent: ureq::Agent,
    base: String,
    cookies: BTreeMap<String, String>,
}

/// One answer: status, the server's own time, what the client waited, the body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    /// The server's whole time (`app` in its `Server-Timing`).
    pub(crate) server: Option<Duration>,
    /// The parts a handler timed itself, as its `Server-Timing` names them, after `app`.
    pub(crate) parts: Vec<(String, Duration)>,
    pub(crate) waited: Duration,
    pub(crate) body: String,
}

impl Web {
    pub(crate) fn new(ca_pem: &std::path::Path, base: String) -> anyhow::Result<Web> {
        let pem = std::fs::read(ca_pem)?;
        let ca = ureq::tls::Certificate::from_pem(&pem)?;
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![ca])))
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Ok(Web { agent, base, cookies: BTreeMap::new() })
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn read(
        &mut self,
        t: Instant,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<Answer> {
        let mut resp = resp?;
        for c in resp.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap_or_default();
            let pair = c.split(';').next().unwrap_or_default();
            if let Some((k, v)) = pair.split_once('=') {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        // `app;dur=66.40, units;dur=1.20, …`
        let mut timed: Vec<(String, Duration)> = resp
            .headers()
            .get("server-timing")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .split(',')
            .filter_map(|part| {
                let (name, dur) = part.trim().split_once(";dur=")?;
                Some((name.to_string(), Duration::from_secs_f64(dur.parse::<f64>().ok()? / 1e3)))
            })
            .collect();
        let server = (timed.first().map(|(n, _)| n.as_str()) == Some("app")).then(|| timed.remove(0).1);
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        Ok(Answer { status: resp.status().as_u16(), server, parts: timed, waited: t.elapsed(), body })
    }

    pub(crate) fn get(&mut self, path: &str) -> anyhow::Result<Answer> {
        let t = Instant::now();
        let r = self.agent.get(format!("{}{path}", self.base)).header("cookie", self.cookie_header()).call();
        self.read(t, r)
    }

    fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> anyhow::Result<Answer> {
        let t = Instant::now();
        let r = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send_form(fields.iter().copied());
        self.read(t, r)
    }

    /// Signs in through the form; the answer of the POST.
    pub(crate) fn sign_in(&mut self, account: &str, password: &str) -> anyhow::Result<Answer> {
        self.cookies.clear();
        let form = self.get("/sign-in")?;
        let csrf = form
            .body
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .context("no csrf field on the sign-in page")?
            .to_string();
        self.post("/sign-in", &[("csrf", &csrf), ("account", account), ("password", password)])
    }
}

/// `mingchu bench --console`: fills a province store with `month`, starts the province node on
/// it, and times every page `samples` times as a signed-in province supervisor.
pub fn run(month: Month, samples: usize) -> anyhow::Result<()> {
    let binary = std::env::current_exe().context("cannot find the mingchu binary")?;
    let tmp = tempfile::Builder::new().prefix("mingchu-bench-console-").tempdir()?;
    // Hebei's 11 cities, 6 counties each (the smallest has 7), 15 schools each: 990 schools.
    let spec = topology::generate::SmallSpec { cities: 11, counties_per_city: 6, schools_per_county: 15 };
    let mut cluster = crate::cluster::Cluster::create(tmp.path(), &spec, &binary)?;
    cluster.set_log("warn");
    let topology = Topology::load(&cluster.dir.join("topology.toml"))?;
    let province = topology.root();
    println!(
        "console bench: a province node holding a month of {} alerts from {} schools",
        month.alerts,
        topology.subtree(province).filter(|e| e.id.tier() == Tier::School).count()
    );
    let t0 = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (events, cases) = rt.block_on(fill_province(&cluster.data_dir(province), &topology, month))?;
    drop(rt);
    println!("  filled {events} events ({cases} cases) in {:.1} s", t0.elapsed().as_secs_f64());
    cluster.start(province)?;
    let client = cluster.client(province);
    let password = province_supervisor(&client, Duration::from_secs(120))?;
    let mut web = Web::new(&cluster.ca_cert_path(), cluster.console_url(province))?;
    let mut sign_ins = Vec::new();
    for _ in 0..10 {
        let a = web.sign_in("sheng.jian", password)?;
        anyhow::ensure!(a.status == 303, "sign-in answered {}", a.status);
        sign_ins.push(a);
    }
    let case = client.cases(None, Some("open"), false)?.into_iter().next().map(|c| c.id).unwrap_or_default();
    let month_prefix = protocol::calendar::ChinaTime(node::clock::unix_ms()).date()[..7].to_string();
    let pages = [
        ("首页", "/".to_string()),
        ("预警 待处理", "/alerts".to_string()),
        ("预警 全部", "/alerts?status=all".to_string()),
        ("预警 误报", "/alerts?status=dismissed".to_string()),
        ("问题台账 未销号", "/cases".to_string()),
        ("问题台账 全部", "/cases?view=all".to_string()),
        ("案件", format!("/cases/show?id={}", case.replace('#', "%23"))),
        ("网络巡查 今天", "/spot-checks".to_string()),
        ("网络巡查 本月", format!("/spot-checks?period={month_prefix}")),
        ("通知", "/directives".to_string()),
        ("单位与学校", "/registry".to_string()),
        ("运行状态", "/health".to_string()),
        ("运行状态 本节点", format!("/health/{province}")),
    ];
    println!("  {samples} requests per page, one at a time, as a signed-in province supervisor:");
    println!("  {:<18} {:>10} {:>10} {:>12} {:>10}", "page", "p50 server", "p99 server", "p99 client", "size");
    for (name, path) in pages {
        let mut server = Vec::new();
        let mut waited = Vec::new();
        let mut size = 0;
        for _ in 0..samples {
            let a = web.get(&path)?;
            anyhow::ensure!(a.status == 200, "{path} answered {}: {}", a.status, &a.body[..a.body.len().min(300)]);
            server.push(a.server.context("no Server-Timing header")?);
            waited.push(a.waited);
            size = a.body.len();
        }
        let (p50, p99) = percentiles(server);
        let (_, c99) = percentiles(waited);
        println!("  {name:<18} {:>10} {:>10} {:>12} {:>8} KB", ms(p50), ms(p99), ms(c99), size / 1024);
    }
    let (s50, s99) = percentiles(sign_ins.iter().filter_map(|a| a.server).collect());
    let (_, w99) = percentiles(sign_ins.iter().map(|a| a.waited).collect());
    println!("  sign-in (argon2id check + session): p50 {} p99 {} server, p99 {} client", ms(s50), ms(s99), ms(w99));
    let hashes = time_n(5, || {
        let phc = node::api::accounts::hash_password(password).map_err(|e| anyhow::anyhow!(e))?;
        anyhow::ensure!(node::api::accounts::password_matches(&phc, password));
        Ok(())
    })?;
    let (h50, _) = percentiles(hashes);
    println!("  argon2id hash + verify in one thread (default parameters): {}", ms(h50));
    cluster.stop_all();
    Ok(())
}

/// Waits (up to `limit`) for the freshly started province node to answer, then adds the
/// supervisor `sheng.jian` the benches sign in as; returns its password.
pub fn province_supervisor(client: &client::AdminClient, limit: Duration) -> anyhow::Result<&'static str> {
    let started = Instant::now();
    while client.status().is_err() {
        anyhow::ensure!(started.elapsed() < limit, "the province node did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("  the province node answered {:.1} s after starting", started.elapsed().as_secs_f64());
    let password = "bench password 2026";
    client.add_account(&node::api::accounts::AccountRequest {
        id: "sheng.jian".into(),
        display_name: "省监管员".into(),
        role: "监管员".into(),
        password: password.into(),
        disabled: false,
    })?;
    Ok(password)
}
