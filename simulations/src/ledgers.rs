//! The schools' food-safety ledgers (台账) and camera liveness through the simulated days, at
//! DOMAIN.md's rates. Every school registers its canteen with the licence and serving plan, its
//! canteen staff with their health certificates, two suppliers and its cameras at the start of the
//! run ([`register_bodies`]); on every working day its people then fill in the ledgers as the
//! admin API would write them: the morning checks in one session before prep start, the day's
//! purchases (some with certificates missing, most completed later) and a pesticide rapid test,
//! each served meal's samples with the leader who ate with the pupils, and in the afternoon the
//! disinfection and the daily hazard check. A small share is late, missing, light or abnormal, so
//! every family of rules has something to raise and, mostly, to resolve.
//!
//! **Cameras** are not simulated as 134,400 devices beating every minute (≈ 190 M heartbeats a
//! day): what the rules read of them is each camera's last heartbeat as the device intake keeps it
//! (`node::runtime::cameras`). A camera's liveness is a few state changes a day: the simulator
//! writes one heartbeat per online stretch, stamped with the stretch's last beat (so the node reads
//! it exactly as if the beats had come every minute: online until then, offline from
//! `camera_offline_after_s` after it), and a new one when the camera comes back. Outages are drawn
//! per camera (3 % a day, mostly minutes, some hours, a few for good) and per school (0.2 % a day:
//! the recorder or the network is down, every camera at once); a few recorders keep too few days
//! of recordings.

use protocol::Body;
use protocol::alert::Zone;
use protocol::calendar::DAY_MS;
use protocol::ledger::{
    AccompaniedMeal, Companion, DisinfectMethod, Disinfection, FoodSample, HazardCheck, HazardLevel, LedgerEntry,
    LedgerKind, LedgerOp, LedgerRecord, Meal, MorningCheck, OperationMode, PesticideTest, Purchase, Symptom, at_minute,
    china_day, day_str,
};
use protocol::registry::{
    Camera, Canteen, CanteenLicence, EntityData, EntityKind, EntityRef, HealthCertificate, MealSlot, RegistryChange,
    RegistryOp, Staff, StaffRole, Supplier,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use topology::NodeId;

const MIN: u64 = 60_000;

/// Canteen staff province-wide (DOMAIN.md: ≈ 45,000, ≈ 2.6 per school).
pub const STAFF_PER_SCHOOL: f64 = 45_000.0 / 17_183.0;
/// HD cameras per canteen (134,400 over 17,183 schools ≈ 7.8); half of them run AI.
pub const CAMERAS_PER_SCHOOL: f64 = 134_400.0 / 17_183.0;
/// The cameras that run AI detection (and raise the alerts): the first four, in these zones.
pub const AI_ZONES: [Zone; 4] = [Zone::Cooking, Zone::Cutting, Zone::SpecialRoom, Zone::Washing];
/// The zones of the other cameras, in order.
const OTHER_ZONES: [Zone; 4] = [Zone::Storage, Zone::RoughProcessing, Zone::Serving, Zone::Dining];
/// The one canteen every simulated school registers (its licence has the same id).
pub const CANTEEN: &str = "main";

/// A staff member's health certificate as registered at the start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertPlan {
    /// Valid until (unix ms).
    Until(u64),
    /// On duty without one.
    Missing,
}

#[derive(Clone, Debug)]
pub struct StaffPlan {
    pub id: String,
    pub role: StaffRole,
    pub cert: CertPlan,
}

/// One school's canteen as the run draws it.
#[derive(Clone, Debug)]
pub struct SchoolPlan {
    /// Boarding schools serve breakfast, lunch and dinner and start at 06:30; day schools serve
    /// lunch and start at 07:30.
    pub boarding: bool,
    pub prep_start_min: u16,
    pub meals: Vec<MealSlot>,
    pub staff: Vec<StaffPlan>,
    pub cameras: u8,
    /// Days of recordings the school's recorder keeps.
    pub recording_days: u32,
    pub licence_until_ms: u64,
    pub supplier_until_ms: [u64; 2],
}

impl SchoolPlan {
    /// Draws a school at `start_wall_ms` (the run's first midnight): ≈ 2.6 staff, a small share of
    /// certificates within 30 days or expired, a few on duty without one; 7 or 8 cameras.
    pub fn draw(rng: &mut ChaCha8Rng, start_wall_ms: u64) -> SchoolPlan {
        let boarding = rng.random_bool(0.35);
        let lunch = [11 * 60 + 30, 11 * 60 + 40, 11 * 60 + 50][rng.random_range(0..3)];
        let slot = |meal, start: u16, len: u16| MealSlot { meal, start_min: start, end_min: start + len };
        let (prep_start_min, meals) = if boarding {
            (
                6 * 60 + 30,
                vec![
                    slot(Meal::Breakfast, 7 * 60, 40),
                    slot(Meal::Lunch, lunch, 50),
                    slot(Meal::Dinner, 17 * 60 + 40, 50),
                ],
            )
        } else {
            (7 * 60 + 30, vec![slot(Meal::Lunch, lunch, 50)])
        };
        let n = 2 + usize::from(rng.random_bool(STAFF_PER_SCHOOL - 2.0));
        let roles = [StaffRole::Cook, StaffRole::Helper, StaffRole::CanteenManager];
        let days = |rng: &mut ChaCha8Rng, lo: u64, hi: u64| rng.random_range(lo * DAY_MS..hi * DAY_MS);
        let staff = (0..n)
            .map(|i| {
                let r = rng.random::<f64>();
                let cert = if r < 0.003 {
                    CertPlan::Missing
                } else if r < 0.008 {
                    CertPlan::Until(start_wall_ms - days(rng, 1, 60))
                } else if r < 0.018 {
                    CertPlan::Until(start_wall_ms + days(rng, 0, 7))
                } else if r < 0.045 {
                    CertPlan::Until(start_wall_ms + days(rng, 8, 30))
                } else {
                    CertPlan::Until(start_wall_ms + days(rng, 31, 365))
                };
                StaffPlan { id: format!("staff-{}", i + 1), role: roles[i % roles.len()], cert }
            })
            .collect();
        let cameras = 7 + u8::from(rng.random_bool(CAMERAS_PER_SCHOOL - 7.0));
        let recording_days = if rng.random_bool(0.003) { 15 } else { [30, 45, 60, 90][rng.random_range(0..4)] };
        let r = rng.random::<f64>();
        let licence_until_ms = if r < 0.003 {
            start_wall_ms + days(rng, 5, 30)
        } else if r < 0.013 {
            start_wall_ms + days(rng, 31, 90)
        } else {
            start_wall_ms + days(rng, 91, 3 * 365)
        };
        let mut supplier = || {
            if rng.random_bool(0.01) {
                start_wall_ms + days(rng, 5, 30)
            } else {
                start_wall_ms + days(rng, 31, 3 * 365)
            }
        };
        let supplier_until_ms = [supplier(), supplier()];
        SchoolPlan {
            boarding,
            prep_start_min,
            meals,
            staff,
            cameras,
            recording_days,
            licence_until_ms,
            supplier_until_ms,
        }
    }

    /// The ids of the school's cameras, `cam-01`…
    pub fn camera_ids(&self) -> impl Iterator<Item = String> {
        (1..=self.cameras).map(|k| format!("cam-{k:02}"))
    }
}

fn reg(school: NodeId, kind: EntityKind, id: &str, data: EntityData) -> (NodeId, Body) {
    let entity = EntityRef { kind, node: school, id: id.to_string() };
    (school, Body::Registry(RegistryChange { entity, op: RegistryOp::Upsert(data) }))
}

/// A health certificate for `staff` valid until `until_ms`.
pub fn certificate(school: NodeId, staff: &str, until_ms: u64) -> (NodeId, Body) {
    let number = format!("JK{}{}", china_day(until_ms), staff.trim_start_matches("staff-"));
    reg(
        school,
        EntityKind::HealthCertificate,
        &format!("hc-{staff}"),
        EntityData::HealthCertificate(HealthCertificate { staff: staff.to_string(), number, valid_until_ms: until_ms }),
    )
}

/// A staff member on duty.
pub fn staff(school: NodeId, id: &str, role: StaffRole) -> (NodeId, Body) {
    let name = format!("{}{}", role.zh(), id.trim_start_matches("staff-"));
    reg(school, EntityKind::Staff, id, EntityData::Staff(Staff { name, role, on_duty: true }))
}

/// What a school registers at the start: its canteen, the canteen's licence with the serving
/// plan, its staff with their certificates, two suppliers and its cameras — one write.
pub fn register_bodies(school: NodeId, p: &SchoolPlan) -> Vec<(NodeId, Body)> {
    let mut out = vec![
        reg(
            school,
            EntityKind::Canteen,
            CANTEEN,
            EntityData::Canteen(Canteen { name: "学生食堂".into(), address: String::new() }),
        ),
        reg(
            school,
            EntityKind::CanteenLicence,
            CANTEEN,
            EntityData::CanteenLicence(CanteenLicence {
                licence_no: format!("JY3{}{:04}", school.to_string().replace("-S", ""), 1),
                valid_until_ms: p.licence_until_ms,
                mode: OperationMode::SelfRun,
                prep_start_min: p.prep_start_min,
                meals: p.meals.clone(),
            }),
        ),
    ];
    for s in &p.staff {
        out.push(staff(school, &s.id, s.role));
        if let CertPlan::Until(until) = s.cert {
            out.push(certificate(school, &s.id, until));
        }
    }
    for (i, until) in p.supplier_until_ms.iter().enumerate() {
        out.push(reg(
            school,
            EntityKind::Supplier,
            &format!("sup-{}", i + 1),
            EntityData::Supplier(Supplier {
                name: ["城东蔬菜配送中心", "冀粮粮油商行"][i].into(),
                licence_no: format!("JY2{:02}{}", i + 1, china_day(*until)),
                licence_valid_until_ms: *until,
                contact: String::new(),
            }),
        ));
    }
    for (k, id) in p.camera_ids().enumerate() {
        let (zone, ai) = match AI_ZONES.get(k) {
            Some(z) => (*z, true),
            None => (OTHER_ZONES[(k - AI_ZONES.len()) % OTHER_ZONES.len()], false),
        };
        out.push(reg(
            school,
            EntityKind::Camera,
            &id,
            EntityData::Camera(Camera {
                canteen: CANTEEN.into(),
                name: format!("{}摄像头", zone_zh(zone)),
                zone,
                ai_enabled: ai,
                parent_visible: k < 2,
            }),
        ));
    }
    out
}

fn zone_zh(z: Zone) -> &'static str {
    match z {
        Zone::RoughProcessing => "粗加工区",
        Zone::Cutting => "切配区",
        Zone::Cooking => "烹饪区",
        Zone::SpecialRoom => "专间",
        Zone::Washing => "洗消间",
        Zone::Serving => "备餐间",
        Zone::Sampling => "留样间",
        Zone::Storage => "库房",
        Zone::Entrance => "出入口",
        Zone::Dining => "就餐区",
    }
}

/// One piece of a school's day, at a simulated instant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SchoolWork {
    /// The start of the run: the school's canteen, licence, staff, certificates, suppliers, cameras.
    Register,
    /// The morning checks done before prep start, in one session: these staff (by index).
    MorningChecks { day: u32, staff: Vec<(u8, Checked)> },
    /// One staff member checked late.
    LateCheck { day: u32, staff: u8 },
    /// An abnormal check left on duty, corrected: the staff member was sent home after all (the
    /// record written again with `sent_home`; `checked_at`: wall ms).
    SentHome { day: u32, staff: u8, checked_at: u64 },
    /// The day's purchases, received now (a pesticide test on the first), `complete` per purchase.
    Purchases { day: u32, complete: Vec<bool>, test: bool },
    /// Purchase `n`'s missing invoice filed (the record corrected; `received`: wall ms).
    PurchaseFiled { day: u32, n: u8, received: u64 },
    /// A meal served: its samples (grams per dish) and who ate with the pupils.
    Meal { day: u32, meal: Meal, grams: Vec<u32>, leader: bool, parent: bool },
    /// A leader's meal entered late (after the rule's grace).
    LateLeader { day: u32, meal: Meal },
    /// The afternoon's disinfection and hazard checks.
    Afternoon { day: u32, disinfection: bool, hazard: Vec<HazardLevel> },
    /// A health certificate registered (a missing one) or renewed: valid a year.
    Certificate { staff: u8 },
    /// These cameras beat again after an outage (by camera number).
    CamerasBack { cameras: Vec<u8> },
}

/// How a staff member's morning check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Checked {
    Normal,
    /// Fever or a symptom, and still on duty (the rules raise a red warning).
    Abnormal,
    /// Fever or a symptom, and sent home at once.
    SentHome,
}

const PURCHASES: [(&str, &str); 3] = [("青菜", "sup-1"), ("大米", "sup-2"), ("猪肉", "sup-1")];

/// The ledger entries of `work` at `school` at `now` (wall ms; none for the registry's and the
/// cameras' work).
pub fn ledger_entries(school: NodeId, p: &SchoolPlan, work: &SchoolWork, now: u64) -> Vec<(NodeId, Body)> {
    let entry = |kind, id: String, day, record| {
        (school, Body::Ledger(LedgerEntry { kind, id, day, op: LedgerOp::Record(record) }))
    };
    let date = |day: u32| day_str(day).replace('-', "");
    let check = |day: u32, i: u8, abnormal: bool, sent_home: bool, at: u64| {
        let s = &p.staff[usize::from(i)];
        let (temperature_dc, symptoms) = if abnormal { (376, vec![Symptom::SoreThroat]) } else { (363, vec![]) };
        entry(
            LedgerKind::MorningCheck,
            format!("mc-{}-{}", date(day), s.id),
            day,
            LedgerRecord::MorningCheck(MorningCheck {
                staff: s.id.clone(),
                temperature_dc,
                symptoms,
                sent_home,
                checked_at_ms: at,
                note: String::new(),
            }),
        )
    };
    match work {
        SchoolWork::MorningChecks { day, staff } => {
            staff.iter().map(|(i, c)| check(*day, *i, *c != Checked::Normal, *c == Checked::SentHome, now)).collect()
        }
        SchoolWork::LateCheck { day, staff } => vec![check(*day, *staff, false, false, now)],
        SchoolWork::SentHome { day, staff, checked_at } => vec![check(*day, *staff, true, true, *checked_at)],
        SchoolWork::Purchases { day, complete, test } => {
            let mut out: Vec<(NodeId, Body)> = complete
                .iter()
                .enumerate()
                .map(|(n, ok)| {
                    let (item, supplier) = PURCHASES[n % PURCHASES.len()];
                    entry(
                        LedgerKind::Purchase,
                        format!("pu-{}-{}", date(*day), n + 1),
                        *day,
                        purchase(item, supplier, &format!("B{}{}", date(*day), n + 1), now, *ok),
                    )
                })
                .collect();
            if *test && !complete.is_empty() {
                out.push(entry(
                    LedgerKind::PesticideTest,
                    format!("pt-{}-1", date(*day)),
                    *day,
                    LedgerRecord::PesticideTest(PesticideTest {
                        item: "青菜".into(),
                        purchase: format!("pu-{}-1", date(*day)),
                        inhibition_pct: 12,
                        handling: String::new(),
                        tested_by: "食品安全员".into(),
                    }),
                ));
            }
            out
        }
        SchoolWork::PurchaseFiled { day, n, received } => {
            let (item, supplier) = PURCHASES[usize::from(n.saturating_sub(1)) % PURCHASES.len()];
            vec![entry(
                LedgerKind::Purchase,
                format!("pu-{}-{n}", date(*day)),
                *day,
                purchase(item, supplier, &format!("B{}{n}", date(*day)), *received, true),
            )]
        }
        SchoolWork::Meal { day, meal, grams, leader, parent } => {
            let slot = p.meals.iter().find(|m| m.meal == *meal).copied();
            let sampled = slot.map_or(now, |s| at_minute(*day, s.start_min));
            let dishes = ["主食", "荤菜", "素菜"];
            let mut out: Vec<(NodeId, Body)> = grams
                .iter()
                .enumerate()
                .map(|(k, g)| {
                    entry(
                        LedgerKind::FoodSample,
                        format!("fs-{}-{}-{}", date(*day), meal.as_str(), k + 1),
                        *day,
                        LedgerRecord::FoodSample(FoodSample {
                            canteen: CANTEEN.into(),
                            meal: *meal,
                            dish: dishes[k % dishes.len()].into(),
                            grams: *g,
                            sampled_at_ms: sampled,
                            refrigerated: true,
                            disposed_at_ms: None,
                            batches: Vec::new(),
                            sampled_by: "留样员".into(),
                        }),
                    )
                })
                .collect();
            if *leader {
                out.push(companion(school, *day, *meal, Companion::Leader));
            }
            if *parent {
                out.push(companion(school, *day, *meal, Companion::Parent));
            }
            out
        }
        SchoolWork::LateLeader { day, meal } => vec![companion(school, *day, *meal, Companion::Leader)],
        SchoolWork::Afternoon { day, disinfection, hazard } => {
            let mut out = Vec::new();
            if *disinfection {
                out.push(entry(
                    LedgerKind::Disinfection,
                    format!("ds-{}-1", date(*day)),
                    *day,
                    LedgerRecord::Disinfection(Disinfection {
                        canteen: CANTEEN.into(),
                        target: "餐饮具".into(),
                        method: DisinfectMethod::Heat,
                        minutes: 15,
                        done_at_ms: now,
                        done_by: "帮厨".into(),
                    }),
                ));
            }
            for level in hazard {
                out.push(entry(
                    LedgerKind::HazardCheck,
                    format!("hz-{}-{}", date(*day), level.as_str()),
                    *day,
                    LedgerRecord::HazardCheck(HazardCheck {
                        level: *level,
                        items_checked: 20,
                        problems_found: 0,
                        problems: String::new(),
                        measures: String::new(),
                        checked_by: "食品安全员".into(),
                    }),
                ));
            }
            out
        }
        SchoolWork::Register | SchoolWork::Certificate { .. } | SchoolWork::CamerasBack { .. } => Vec::new(),
    }
}

fn purchase(item: &str, supplier: &str, batch: &str, received: u64, complete: bool) -> LedgerRecord {
    LedgerRecord::Purchase(Purchase {
        supplier: supplier.into(),
        item: item.into(),
        batch: batch.into(),
        quantity_milli: 25_000,
        unit: "kg".into(),
        received_at_ms: received,
        inspection_cert: format!("JY-{batch}"),
        invoice: if complete { format!("FP-{batch}") } else { String::new() },
    })
}

fn companion(school: NodeId, day: u32, meal: Meal, who: Companion) -> (NodeId, Body) {
    let (id, name) = match who {
        Companion::Leader => (format!("am-{}-{}-leader", day_str(day).replace('-', ""), meal.as_str()), "王校长"),
        Companion::Parent => (format!("am-{}-{}-parent", day_str(day).replace('-', ""), meal.as_str()), "家长代表"),
    };
    let record = LedgerRecord::AccompaniedMeal(AccompaniedMeal {
        canteen: CANTEEN.into(),
        meal,
        companion: who,
        name: name.into(),
        rating: 5,
        remarks: String::new(),
    });
    (school, Body::Ledger(LedgerEntry { kind: LedgerKind::AccompaniedMeal, id, day, op: LedgerOp::Record(record) }))
}

/// Draws one working day `day` of a school (`day_start`: its midnight, simulated ms since the run
/// began, which is wall time `wall0`): `(at, work)` pairs.
pub fn draw_day(
    rng: &mut ChaCha8Rng,
    p: &SchoolPlan,
    day: u32,
    day_start: u64,
    wall0: u64,
    weekday: u32,
) -> Vec<(u64, SchoolWork)> {
    let at = |m: u16| day_start + u64::from(m) * MIN;
    let mut out = Vec::new();
    // Morning checks: one session 5–60 min before prep start; 4 % of staff late (10–150 min after
    // it), 1 % never checked; 0.3 % abnormal, of whom 60 % are sent home at once and the rest
    // left on duty until a correction 20–90 min later.
    let prep = p.prep_start_min;
    let session = at(prep) - rng.random_range(5..=60) * MIN;
    let mut on_time = Vec::new();
    for i in 0..p.staff.len() as u8 {
        let r = rng.random::<f64>();
        if r < 0.01 {
            continue;
        }
        if r < 0.05 {
            out.push((at(prep) + rng.random_range(10..=150) * MIN, SchoolWork::LateCheck { day, staff: i }));
            continue;
        }
        let checked = match rng.random_bool(0.003) {
            false => Checked::Normal,
            true if rng.random_bool(0.6) => Checked::SentHome,
            true => Checked::Abnormal,
        };
        on_time.push((i, checked));
        if checked == Checked::Abnormal {
            let fixed = session + rng.random_range(20..=90) * MIN;
            out.push((fixed, SchoolWork::SentHome { day, staff: i, checked_at: wall0 + session }));
        }
    }
    if !on_time.is_empty() {
        out.push((session, SchoolWork::MorningChecks { day, staff: on_time }));
    }
    // Purchases: one or two deliveries 06:00–09:00, 8 % without the invoice (70 % of those filed
    // 1–8 h later); a pesticide rapid test on half the days.
    let n = 1 + usize::from(rng.random_bool(0.5));
    let complete: Vec<bool> = (0..n).map(|_| !rng.random_bool(0.08)).collect();
    let received = at(6 * 60) + rng.random_range(0..180) * MIN;
    for (k, ok) in complete.iter().enumerate() {
        if !ok && rng.random_bool(0.7) {
            let filed = received + rng.random_range(60..=480) * MIN;
            out.push((filed, SchoolWork::PurchaseFiled { day, n: k as u8 + 1, received: wall0 + received }));
        }
    }
    out.push((received, SchoolWork::Purchases { day, complete, test: rng.random_bool(0.5) }));
    // Meals: every served meal's samples (1–3 dishes, 2 % under 125 g) with the leader who ate
    // (92 %; a quarter of the rest entered after the grace), written 5–45 min after the meal; a
    // parent at lunch on 4 % of days.
    for slot in &p.meals {
        let grams: Vec<u32> = (0..rng.random_range(1..=3))
            .map(|_| if rng.random_bool(0.02) { rng.random_range(60..125) } else { rng.random_range(125..=250) })
            .collect();
        let leader = rng.random_bool(0.92);
        let parent = slot.meal == Meal::Lunch && rng.random_bool(0.04);
        let end = at(slot.end_min);
        out.push((
            end + rng.random_range(5..=45) * MIN,
            SchoolWork::Meal { day, meal: slot.meal, grams, leader, parent },
        ));
        if !leader && rng.random_bool(0.25) {
            out.push((end + rng.random_range(150..=300) * MIN, SchoolWork::LateLeader { day, meal: slot.meal }));
        }
    }
    // Afternoon: disinfection (98 %) and the daily hazard check (95 %), the weekly one on Fridays.
    let mut hazard = Vec::new();
    if rng.random_bool(0.95) {
        hazard.push(HazardLevel::Daily);
    }
    if weekday == 4 {
        hazard.push(HazardLevel::Weekly);
    }
    let disinfection = rng.random_bool(0.98);
    if disinfection || !hazard.is_empty() {
        out.push((
            at(13 * 60 + 30) + rng.random_range(0..180) * MIN,
            SchoolWork::Afternoon { day, disinfection, hazard },
        ));
    }
    // Certificates: half the staff on duty without one get one today, 30 % of the expired and
    // 10 % of those expiring within 30 days are renewed (office hours).
    let today = at_minute(day, 0);
    for (i, s) in p.staff.iter().enumerate() {
        let renew = match s.cert {
            CertPlan::Missing => rng.random_bool(0.5),
            CertPlan::Until(u) if u < today => rng.random_bool(0.3),
            CertPlan::Until(u) if u < today + 30 * DAY_MS => rng.random_bool(0.1),
            CertPlan::Until(_) => false,
        };
        if renew {
            out.push((at(8 * 60) + rng.random_range(0..540) * MIN, SchoolWork::Certificate { staff: i as u8 }));
        }
    }
    out
}

/// A camera outage: cameras (by number) dark from `from` to `until` (simulated ms; `None`: for the
/// rest of the run).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outage {
    pub cameras: Vec<u8>,
    pub from: u64,
    pub until: Option<u64>,
}

/// Draws a day's camera outages at a school: 0.2 % of schools lose every camera at once for 1–6 h
/// (06:00–16:00); otherwise each camera goes dark with 3 % a day (06:00–20:00), for 5–30 min
/// (70 %), 30 min – 4 h (25 %) or for good (5 %).
pub fn draw_outages(rng: &mut ChaCha8Rng, p: &SchoolPlan, day_start: u64) -> Vec<Outage> {
    if rng.random_bool(0.002) {
        let from = day_start + rng.random_range(6 * 60..16 * 60) * MIN;
        return vec![Outage {
            cameras: (1..=p.cameras).collect(),
            from,
            until: Some(from + rng.random_range(60..=360) * MIN),
        }];
    }
    let mut out = Vec::new();
    for k in 1..=p.cameras {
        if !rng.random_bool(0.03) {
            continue;
        }
        let from = day_start + rng.random_range(6 * 60..20 * 60) * MIN;
        let r = rng.random::<f64>();
        let until = if r < 0.7 {
            Some(from + rng.random_range(5..=30) * MIN)
        } else if r < 0.95 {
            Some(from + rng.random_range(30..=240) * MIN)
        } else {
            None
        };
        out.push(Outage { cameras: vec![k], from, until });
    }
    out
}

/// How far past the end of the run an online stretch that no outage ends is stamped.
pub const FAR_AHEAD_MS: u64 = 3 * DAY_MS;
