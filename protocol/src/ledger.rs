//! The food-safety database a school fills in (食品安全台账): morning checks (晨检), food samples
//! (留样), purchases with their certificates (索证索票), accompanied meals (校长陪餐 / 家长陪餐),
//! hazard checks (日管控 / 周排查 / 月调度), disinfection and pesticide rapid tests.
//!
//! **Owner-written records.** A ledger record is an event `Body::Ledger` written by the school about
//! itself (origin = scope = the school), so the holds rule places it at the school, its county,
//! city and the province. A record has a school-local `id` and the China-time `day` it belongs to;
//! a later event with the same id replaces it (a correction, a sample's disposal) and a `Void`
//! withdraws it, with the reason — [`ledger_view`] folds them, later events winning in event order,
//! exactly like the registry. Records are never deleted: the history stays.
//!
//! [`LedgerEntry::validate`] checks the fields a person or peer could get wrong (every message in
//! Chinese: a school's staff read them); [`check_against`] checks a new record against the
//! school's registry (the staff member, canteen and supplier exist; no purchase from a supplier
//! whose licence has expired) — run at the school when it writes, not on arrival (a peer's records
//! were checked where they were written).
//!
//! Wire: encoded positionally by bincode 2 through serde. Variants and fields are only ever
//! appended; no floats (a temperature is in tenths of a degree).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use topology::NodeId;

use crate::alert::ParseNameError;
use crate::calendar::{CHINA_OFFSET_MS, ChinaTime, DAY_MS};
use crate::event::{Body, Event, EventId, Hlc};
use crate::registry::{Entity, EntityData, EntityKind, EntityRef, local_id};

/// Longest free text in a record (bytes).
pub const LEDGER_TEXT_BYTES_MAX: usize = 512;
/// Most items in a list field (symptoms, batches).
pub const LEDGER_LIST_MAX: usize = 16;

/// The China-time day number (days since 1970-01-01) of an instant.
pub fn china_day(ms: u64) -> u32 {
    u32::try_from(ms.saturating_add(CHINA_OFFSET_MS) / DAY_MS).unwrap_or(u32::MAX)
}

/// Minutes since China-time midnight of an instant.
pub fn china_minute(ms: u64) -> u16 {
    (ms.saturating_add(CHINA_OFFSET_MS) % DAY_MS / 60_000) as u16
}

/// The instant `minute` minutes after China-time midnight of `day`.
pub fn at_minute(day: u32, minute: u16) -> u64 {
    (u64::from(day) * DAY_MS + u64::from(minute) * 60_000).saturating_sub(CHINA_OFFSET_MS)
}

/// `2026-12-05` for a day number.
pub fn day_str(day: u32) -> String {
    ChinaTime(at_minute(day, 0)).date()
}

macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident, $what:literal, [$(($v:ident, $s:literal, $zh:literal)),+ $(,)?]) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum $name { $($v),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            /// The name in JSON and on the command line.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }
            /// The name a person reads.
            pub fn zh(self) -> &'static str {
                match self { $($name::$v => $zh),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.zh())
            }
        }

        impl FromStr for $name {
            type Err = ParseNameError;
            /// The English name (`lunch`) or the Chinese one (`午餐`).
            fn from_str(s: &str) -> Result<$name, ParseNameError> {
                let t = s.trim();
                let want = t.to_ascii_lowercase().replace('_', "-");
                $name::ALL.iter().copied().find(|v| v.as_str() == want || v.zh() == t).ok_or_else(|| ParseNameError {
                    what: $what,
                    given: s.to_string(),
                    expected: $name::ALL.iter().map(|v| format!("{}（{}）", v.as_str(), v.zh())).collect::<Vec<_>>().join(", "),
                })
            }
        }
    };
}

named_enum!(
    /// A meal a canteen serves.
    Meal, "餐次", [(Breakfast, "breakfast", "早餐"), (Lunch, "lunch", "午餐"), (Dinner, "dinner", "晚餐")]
);

named_enum!(
    /// A symptom asked at the morning check (晨检).
    Symptom, "症状", [
        (Diarrhea, "diarrhea", "腹泻"),
        (Vomiting, "vomiting", "呕吐"),
        (Jaundice, "jaundice", "黄疸"),
        (SoreThroat, "sore-throat", "咽部炎症"),
        (SkinInfection, "skin-infection", "手部外伤或皮肤化脓"),
        (Cough, "cough", "咳嗽"),
    ]
);

named_enum!(
    /// Who accompanied a meal.
    Companion, "陪餐类型", [(Leader, "leader", "校长陪餐"), (Parent, "parent", "家长陪餐")]
);

named_enum!(
    /// How often a hazard check is done: 日管控、周排查、月调度.
    HazardLevel, "排查频次", [(Daily, "daily", "日管控"), (Weekly, "weekly", "周排查"), (Monthly, "monthly", "月调度")]
);

named_enum!(
    /// How a canteen is run.
    OperationMode, "经营方式", [
        (SelfRun, "self-run", "自营"),
        (Contracted, "contracted", "承包经营"),
        (Entrusted, "entrusted", "委托经营"),
        (Delivered, "delivered", "校外供餐"),
    ]
);

named_enum!(
    /// How something was disinfected.
    DisinfectMethod, "消毒方式", [
        (Heat, "heat", "热力消毒"),
        (Steam, "steam", "蒸汽消毒"),
        (Chemical, "chemical", "化学消毒"),
        (Ultraviolet, "ultraviolet", "紫外线消毒"),
        (Other, "other", "其他"),
    ]
);

/// Fever at the morning check: 37.3 °C, in tenths of a degree.
pub const FEVER_DECI_C: u16 = 373;
/// A rapid test with an enzyme inhibition of this many percent or more is positive (GB/T 5009.199).
pub const PESTICIDE_POSITIVE_PCT: u8 = 50;

/// 晨检: one staff member checked on one working day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MorningCheck {
    /// The school's staff member (registry id).
    pub staff: String,
    /// Body temperature in tenths of a degree Celsius (365 = 36.5 ℃).
    pub temperature_dc: u16,
    pub symptoms: Vec<Symptom>,
    /// Sent home (not on duty today) after the check.
    pub sent_home: bool,
    pub checked_at_ms: u64,
    pub note: String,
}

impl MorningCheck {
    /// Fever or any symptom.
    pub fn abnormal(&self) -> bool {
        self.temperature_dc >= FEVER_DECI_C || !self.symptoms.is_empty()
    }
}

/// 留样: one dish of one meal kept as a sample.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoodSample {
    /// The school's canteen (registry id).
    pub canteen: String,
    pub meal: Meal,
    pub dish: String,
    pub grams: u32,
    pub sampled_at_ms: u64,
    /// Kept in the sample refrigerator.
    pub refrigerated: bool,
    /// When it was disposed of (set by a later correction of the same record).
    pub disposed_at_ms: Option<u64>,
    /// The purchase records (batches) the dish was made from: traceability batch → dish → meal.
    pub batches: Vec<String>,
    pub sampled_by: String,
}

/// A purchase and its certificates (索证索票).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purchase {
    /// The supplier (registry id of the school's supplier).
    pub supplier: String,
    pub item: String,
    pub batch: String,
    /// Quantity in the unit given (`12.5 kg` is `12500` milli-units of `kg`).
    pub quantity_milli: u64,
    pub unit: String,
    pub received_at_ms: u64,
    /// The inspection certificate (检验合格证明) reference; empty while not yet obtained.
    pub inspection_cert: String,
    /// The invoice or delivery note (票据) reference; empty while not yet obtained.
    pub invoice: String,
}

impl Purchase {
    /// Both the certificate and the invoice are on file.
    pub fn complete(&self) -> bool {
        !self.inspection_cert.trim().is_empty() && !self.invoice.trim().is_empty()
    }
}

/// 陪餐: a leader or a parent ate the meal with the pupils.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccompaniedMeal {
    pub canteen: String,
    pub meal: Meal,
    pub companion: Companion,
    /// Who: `王校长`, `三年级二班家长 李女士`.
    pub name: String,
    /// Their rating, 1 (poor) to 5 (good); 0 when not given.
    pub rating: u8,
    pub remarks: String,
}

/// 日管控 / 周排查 / 月调度: a hazard check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HazardCheck {
    pub level: HazardLevel,
    pub items_checked: u16,
    pub problems_found: u16,
    /// What was found (required when something was).
    pub problems: String,
    /// What was done about it.
    pub measures: String,
    pub checked_by: String,
}

/// A disinfection (餐饮具、工用具、环境).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disinfection {
    pub canteen: String,
    /// What: `餐饮具`, `砧板刀具`, `操作间环境`.
    pub target: String,
    pub method: DisinfectMethod,
    pub minutes: u16,
    pub done_at_ms: u64,
    pub done_by: String,
}

/// A pesticide residue rapid test (农药残留快检).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PesticideTest {
    pub item: String,
    /// The purchase record (batch) tested, if any.
    pub purchase: String,
    /// Enzyme inhibition in percent; ≥ [`PESTICIDE_POSITIVE_PCT`] is positive.
    pub inhibition_pct: u8,
    /// What was done with a positive batch (required then).
    pub handling: String,
    pub tested_by: String,
}

impl PesticideTest {
    pub fn positive(&self) -> bool {
        self.inhibition_pct >= PESTICIDE_POSITIVE_PCT
    }
}

/// The kinds of ledger record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LedgerKind {
    MorningCheck,
    FoodSample,
    Purchase,
    AccompaniedMeal,
    HazardCheck,
    Disinfection,
    PesticideTest,
}

impl LedgerKind {
    pub const ALL: [LedgerKind; 7] = [
        LedgerKind::MorningCheck,
        LedgerKind::FoodSample,
        LedgerKind::Purchase,
        LedgerKind::AccompaniedMeal,
        LedgerKind::HazardCheck,
        LedgerKind::Disinfection,
        LedgerKind::PesticideTest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LedgerKind::MorningCheck => "morning-check",
            LedgerKind::FoodSample => "food-sample",
            LedgerKind::Purchase => "purchase",
            LedgerKind::AccompaniedMeal => "accompanied-meal",
            LedgerKind::HazardCheck => "hazard-check",
            LedgerKind::Disinfection => "disinfection",
            LedgerKind::PesticideTest => "pesticide-test",
        }
    }

    /// Two letters: the prefix of a record id made for it (`mc-20261201-1`) and of its form's fields.
    pub fn short(self) -> &'static str {
        match self {
            LedgerKind::MorningCheck => "mc",
            LedgerKind::FoodSample => "fs",
            LedgerKind::Purchase => "pu",
            LedgerKind::AccompaniedMeal => "am",
            LedgerKind::HazardCheck => "hz",
            LedgerKind::Disinfection => "ds",
            LedgerKind::PesticideTest => "pt",
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            LedgerKind::MorningCheck => "晨检",
            LedgerKind::FoodSample => "留样",
            LedgerKind::Purchase => "采购索证索票",
            LedgerKind::AccompaniedMeal => "陪餐",
            LedgerKind::HazardCheck => "隐患排查",
            LedgerKind::Disinfection => "消毒",
            LedgerKind::PesticideTest => "农残快检",
        }
    }
}

impl fmt::Display for LedgerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.zh())
    }
}

impl FromStr for LedgerKind {
    type Err = ParseNameError;
    fn from_str(s: &str) -> Result<LedgerKind, ParseNameError> {
        let t = s.trim();
        let want = t.to_ascii_lowercase().replace('_', "-");
        LedgerKind::ALL.into_iter().find(|k| k.as_str() == want || k.zh() == t).ok_or_else(|| ParseNameError {
            what: "台账种类",
            given: s.to_string(),
            expected: LedgerKind::ALL.map(|k| format!("{}（{}）", k.as_str(), k.zh())).join(", "),
        })
    }
}

/// One record's data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LedgerRecord {
    MorningCheck(MorningCheck),
    FoodSample(FoodSample),
    Purchase(Purchase),
    AccompaniedMeal(AccompaniedMeal),
    HazardCheck(HazardCheck),
    Disinfection(Disinfection),
    PesticideTest(PesticideTest),
}

impl LedgerRecord {
    pub fn kind(&self) -> LedgerKind {
        match self {
            LedgerRecord::MorningCheck(_) => LedgerKind::MorningCheck,
            LedgerRecord::FoodSample(_) => LedgerKind::FoodSample,
            LedgerRecord::Purchase(_) => LedgerKind::Purchase,
            LedgerRecord::AccompaniedMeal(_) => LedgerKind::AccompaniedMeal,
            LedgerRecord::HazardCheck(_) => LedgerKind::HazardCheck,
            LedgerRecord::Disinfection(_) => LedgerKind::Disinfection,
            LedgerRecord::PesticideTest(_) => LedgerKind::PesticideTest,
        }
    }

    /// One line a person reads in a listing.
    pub fn summary(&self) -> String {
        match self {
            LedgerRecord::MorningCheck(m) => {
                let t = format!("{}.{}℃", m.temperature_dc / 10, m.temperature_dc % 10);
                let sym: Vec<&str> = m.symptoms.iter().map(|s| s.zh()).collect();
                let state = if m.sent_home {
                    "已劝离岗"
                } else if m.abnormal() {
                    "异常仍在岗"
                } else {
                    "正常"
                };
                if sym.is_empty() { format!("{t} {state}") } else { format!("{t} {} {state}", sym.join("、")) }
            }
            LedgerRecord::FoodSample(f) => {
                let kept = match f.disposed_at_ms {
                    Some(d) => format!("已于 {} 处置", ChinaTime(d).minute()),
                    None if f.refrigerated => "冷藏留存中".to_string(),
                    None => "未冷藏".to_string(),
                };
                format!("{} {} {} 克 {kept}", f.meal.zh(), f.dish, f.grams)
            }
            LedgerRecord::Purchase(p) => format!(
                "{} 批次 {} {} {}，{}",
                p.item,
                p.batch,
                quantity(p.quantity_milli),
                p.unit,
                if p.complete() { "证票齐全" } else { "证票不全" }
            ),
            LedgerRecord::AccompaniedMeal(a) => format!("{} {} {}", a.meal.zh(), a.companion.zh(), a.name),
            LedgerRecord::HazardCheck(h) => {
                format!("{} 检查 {} 项，发现问题 {} 项", h.level.zh(), h.items_checked, h.problems_found)
            }
            LedgerRecord::Disinfection(d) => format!("{} {} {} 分钟", d.target, d.method.zh(), d.minutes),
            LedgerRecord::PesticideTest(p) => {
                format!("{} 抑制率 {}% {}", p.item, p.inhibition_pct, if p.positive() { "阳性" } else { "阴性" })
            }
        }
    }
}

/// `12500` milli-units → `12.5`.
pub fn quantity(milli: u64) -> String {
    let (whole, frac) = (milli / 1000, milli % 1000);
    if frac == 0 { whole.to_string() } else { format!("{whole}.{}", format!("{frac:03}").trim_end_matches('0')) }
}

/// What happens to the record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LedgerOp {
    /// Record it, or replace the record with this id (a correction, a sample's disposal).
    Record(LedgerRecord),
    /// Withdraw it (entered by mistake), with the reason; the history keeps it.
    Void { reason: String },
}

/// The body of a ledger event (`Body::Ledger`); its scope is the school that writes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub kind: LedgerKind,
    /// The school-local record id (`mc-20261201-st1`).
    pub id: String,
    /// The China-time day the record belongs to (days since 1970-01-01).
    pub day: u32,
    pub op: LedgerOp,
}

fn text(field: &str, v: &str, required: bool) -> Result<(), String> {
    if required && v.trim().is_empty() {
        return Err(format!("请填写{field}"));
    }
    if v.len() > LEDGER_TEXT_BYTES_MAX {
        return Err(format!("{field}太长：{} 字节，最多 {LEDGER_TEXT_BYTES_MAX} 字节", v.len()));
    }
    if v.chars().any(|c| c.is_control() && c != '\n') {
        return Err(format!("{field}含有控制字符"));
    }
    Ok(())
}

fn same_day(field: &str, ms: u64, day: u32) -> Result<(), String> {
    if china_day(ms) != day {
        return Err(format!("{field} {} 不在台账日期 {} 这一天", ChinaTime(ms).minute(), day_str(day)));
    }
    Ok(())
}

fn list_len<T>(field: &str, v: &[T]) -> Result<(), String> {
    if v.len() > LEDGER_LIST_MAX {
        return Err(format!("{field}最多 {LEDGER_LIST_MAX} 项，收到 {} 项", v.len()));
    }
    Ok(())
}

impl LedgerEntry {
    /// Checks the entry's shape and fields (the same at the writer and on arrival). Every message
    /// is Chinese.
    pub fn validate(&self) -> Result<(), String> {
        local_id("记录编号", &self.id).map_err(|_| {
            format!(
                "记录编号“{}”不合规：须为 1 至 64 个英文字母、数字或 - _ .",
                self.id.chars().take(80).collect::<String>()
            )
        })?;
        if !(18_000..=80_000).contains(&self.day) {
            return Err(format!("台账日期（第 {} 天）不在 2019 年至 2189 年之间", self.day));
        }
        let record = match &self.op {
            LedgerOp::Void { reason } => return text("作废原因", reason, true),
            LedgerOp::Record(r) => r,
        };
        if record.kind() != self.kind {
            return Err(format!("记录类型为“{}”，内容却是“{}”", self.kind.zh(), record.kind().zh()));
        }
        match record {
            LedgerRecord::MorningCheck(m) => {
                text("人员编号", &m.staff, true)?;
                if !(340..=430).contains(&m.temperature_dc) {
                    return Err(format!(
                        "体温 {}.{}℃ 不在 34.0℃ 至 43.0℃ 之间，请核对",
                        m.temperature_dc / 10,
                        m.temperature_dc % 10
                    ));
                }
                list_len("症状", &m.symptoms)?;
                same_day("晨检时间", m.checked_at_ms, self.day)?;
                text("备注", &m.note, false)
            }
            LedgerRecord::FoodSample(f) => {
                text("食堂编号", &f.canteen, true)?;
                text("菜品名称", &f.dish, true)?;
                text("留样人", &f.sampled_by, true)?;
                if f.grams == 0 || f.grams > 5_000 {
                    return Err(format!("留样重量 {} 克不合理（应为 1 至 5000 克，规定不少于 125 克）", f.grams));
                }
                same_day("留样时间", f.sampled_at_ms, self.day)?;
                if let Some(d) = f.disposed_at_ms
                    && d < f.sampled_at_ms
                {
                    return Err(format!(
                        "处置时间 {} 早于留样时间 {}",
                        ChinaTime(d).minute(),
                        ChinaTime(f.sampled_at_ms).minute()
                    ));
                }
                list_len("原料批次", &f.batches)?;
                f.batches.iter().try_for_each(|b| text("原料批次", b, true))
            }
            LedgerRecord::Purchase(p) => {
                text("供应商编号", &p.supplier, true)?;
                text("品名", &p.item, true)?;
                text("批次", &p.batch, true)?;
                text("单位", &p.unit, true)?;
                text("检验合格证明", &p.inspection_cert, false)?;
                text("票据", &p.invoice, false)?;
                if p.quantity_milli == 0 {
                    return Err("采购数量须大于 0".into());
                }
                same_day("验收时间", p.received_at_ms, self.day)
            }
            LedgerRecord::AccompaniedMeal(a) => {
                text("食堂编号", &a.canteen, true)?;
                text("陪餐人", &a.name, true)?;
                text("陪餐意见", &a.remarks, false)?;
                if a.rating > 5 {
                    return Err(format!("评分 {} 不在 1 至 5 之间（0 表示未评分）", a.rating));
                }
                Ok(())
            }
            LedgerRecord::HazardCheck(h) => {
                text("检查人", &h.checked_by, true)?;
                if h.items_checked == 0 {
                    return Err("检查项数须大于 0".into());
                }
                if h.problems_found > h.items_checked {
                    return Err(format!("发现问题 {} 项多于检查项 {} 项", h.problems_found, h.items_checked));
                }
                text("问题描述", &h.problems, h.problems_found > 0)?;
                text("整改措施", &h.measures, h.problems_found > 0)
            }
            LedgerRecord::Disinfection(d) => {
                text("食堂编号", &d.canteen, true)?;
                text("消毒对象", &d.target, true)?;
                text("消毒人", &d.done_by, true)?;
                if d.minutes == 0 || d.minutes > 600 {
                    return Err(format!("消毒时长 {} 分钟不合理（1 至 600 分钟）", d.minutes));
                }
                same_day("消毒时间", d.done_at_ms, self.day)
            }
            LedgerRecord::PesticideTest(p) => {
                text("检测品名", &p.item, true)?;
                text("检测人", &p.tested_by, true)?;
                text("采购批次", &p.purchase, false)?;
                if p.inhibition_pct > 100 {
                    return Err(format!("抑制率 {}% 超过 100%", p.inhibition_pct));
                }
                text("阳性处理措施", &p.handling, p.positive())
            }
        }
    }
}

/// Checks a new record against the school's registry at `now_ms` (at the school, when it writes):
/// the staff member, canteen, supplier and batches it names exist; a morning check or sample is
/// not in the future; no purchase from a supplier whose licence has expired. `records` is the
/// school's ledger (for the batches a sample names).
pub fn check_against(
    school: NodeId,
    entry: &LedgerEntry,
    registry: &BTreeMap<EntityRef, Entity>,
    records: &BTreeMap<String, LedgerItem>,
    now_ms: u64,
) -> Result<(), String> {
    let has = |kind: EntityKind, id: &str| registry.contains_key(&EntityRef { kind, node: school, id: id.to_string() });
    if china_day(now_ms).saturating_add(1) < entry.day {
        return Err(format!("台账日期 {} 在将来", day_str(entry.day)));
    }
    if let Some(old) = records.get(&entry.id)
        && old.entry.kind != entry.kind
    {
        return Err(format!("记录编号 {} 已用于一条{}记录", entry.id, old.entry.kind.zh()));
    }
    let LedgerOp::Record(record) = &entry.op else {
        return match records.get(&entry.id) {
            Some(old) if !old.voided => Ok(()),
            Some(_) => Err(format!("记录 {} 已作废", entry.id)),
            None => Err(format!("没有编号为 {} 的台账记录", entry.id)),
        };
    };
    let canteen = |id: &str| {
        if has(EntityKind::Canteen, id) { Ok(()) } else { Err(format!("本校没有编号为 {id} 的食堂")) }
    };
    let future = |field: &str, ms: u64| {
        if ms > now_ms.saturating_add(5 * 60_000) {
            Err(format!("{field} {} 晚于现在", ChinaTime(ms).minute()))
        } else {
            Ok(())
        }
    };
    match record {
        LedgerRecord::MorningCheck(m) => {
            if !has(EntityKind::Staff, &m.staff) {
                return Err(format!("本校没有编号为 {} 的从业人员", m.staff));
            }
            future("晨检时间", m.checked_at_ms)
        }
        LedgerRecord::FoodSample(f) => {
            canteen(&f.canteen)?;
            future("留样时间", f.sampled_at_ms)?;
            if let Some(d) = f.disposed_at_ms {
                future("处置时间", d)?;
            }
            for b in &f.batches {
                match records.get(b) {
                    Some(r) if r.entry.kind == LedgerKind::Purchase && !r.voided => {}
                    _ => return Err(format!("没有编号为 {b} 的采购批次记录")),
                }
            }
            Ok(())
        }
        LedgerRecord::Purchase(p) => {
            let Some(Entity { data: EntityData::Supplier(s), .. }) =
                registry.get(&EntityRef { kind: EntityKind::Supplier, node: school, id: p.supplier.clone() })
            else {
                return Err(format!("本校没有编号为 {} 的供应商，请先登记供应商及其许可证", p.supplier));
            };
            future("验收时间", p.received_at_ms)?;
            if s.licence_valid_until_ms < p.received_at_ms {
                return Err(format!(
                    "供应商“{}”的许可证（{}）已于 {} 过期，不得向其采购",
                    s.name,
                    s.licence_no,
                    ChinaTime(s.licence_valid_until_ms).date()
                ));
            }
            Ok(())
        }
        LedgerRecord::AccompaniedMeal(a) => canteen(&a.canteen),
        LedgerRecord::HazardCheck(_) => Ok(()),
        LedgerRecord::Disinfection(d) => {
            canteen(&d.canteen)?;
            future("消毒时间", d.done_at_ms)
        }
        LedgerRecord::PesticideTest(p) => {
            if !p.purchase.is_empty() {
                match records.get(&p.purchase) {
                    Some(r) if r.entry.kind == LedgerKind::Purchase && !r.voided => {}
                    _ => return Err(format!("没有编号为 {} 的采购批次记录", p.purchase)),
                }
            }
            Ok(())
        }
    }
}

/// One record as the ledger holds it: the last entry written with its id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerItem {
    pub entry: LedgerEntry,
    /// Withdrawn: the last entry was a `Void` (then `record` is the one it voided, if any).
    pub voided: bool,
    /// The record in force (or the last one before it was voided).
    pub record: Option<LedgerRecord>,
    /// How many entries wrote this id (1: never corrected).
    pub versions: u32,
    pub school: NodeId,
    pub updated_by: EventId,
    pub updated_by_person: Option<crate::people::Person>,
    pub updated_hlc: Hlc,
    /// When the first version was written.
    pub created_hlc: Hlc,
}

impl LedgerItem {
    /// The record, if in force.
    pub fn live(&self) -> Option<&LedgerRecord> {
        if self.voided { None } else { self.record.as_ref() }
    }
}

/// Folds ledger events into each school's records by id, later entries (event order) replacing
/// earlier ones; events the origin could not write (another school's ledger) are skipped.
/// Keyed by `(school, id)`.
pub fn ledger_view<'a>(events: impl IntoIterator<Item = &'a Event>) -> BTreeMap<(NodeId, String), LedgerItem> {
    let mut mine: Vec<(&Event, &LedgerEntry)> = events
        .into_iter()
        .filter_map(|e| match &e.body {
            Body::Ledger(l) if e.origin == e.scope => Some((e, l)),
            _ => None,
        })
        .collect();
    mine.sort_by_key(|(e, _)| e.order_key());
    mine.dedup_by_key(|(e, _)| e.id());
    let mut view: BTreeMap<(NodeId, String), LedgerItem> = BTreeMap::new();
    for (e, l) in mine {
        let key = (e.origin, l.id.clone());
        let prev = view.remove(&key);
        let (record, voided) = match &l.op {
            LedgerOp::Record(r) => (Some(r.clone()), false),
            LedgerOp::Void { .. } => (prev.as_ref().and_then(|p| p.record.clone()), true),
        };
        view.insert(
            key,
            LedgerItem {
                entry: l.clone(),
                voided,
                record,
                versions: prev.as_ref().map_or(1, |p| p.versions + 1),
                school: e.origin,
                updated_by: e.id(),
                updated_by_person: e.by.clone(),
                updated_hlc: e.hlc,
                created_hlc: prev.map_or(e.hlc, |p| p.created_hlc),
            },
        );
    }
    view
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Canteen, Staff, StaffRole, Supplier};

    fn id(s: &str) -> NodeId {
        s.parse().unwrap()
    }

    const DAY: u32 = 20_423; // 2025-12-01, a Monday
    fn at(h: u16, m: u16) -> u64 {
        at_minute(DAY, h * 60 + m)
    }

    fn check(staff: &str, t: u16) -> LedgerEntry {
        LedgerEntry {
            kind: LedgerKind::MorningCheck,
            id: format!("mc-{staff}"),
            day: DAY,
            op: LedgerOp::Record(LedgerRecord::MorningCheck(MorningCheck {
                staff: staff.into(),
                temperature_dc: t,
                symptoms: vec![],
                sent_home: false,
                checked_at_ms: at(6, 30),
                note: String::new(),
            })),
        }
    }

    fn ev(seq: u64, wall: u64, l: LedgerEntry) -> Event {
        Event {
            origin: id("130102-S0001"),
            seq,
            hlc: Hlc { wall_ms: wall, logical: 0 },
            scope: id("130102-S0001"),
            body: Body::Ledger(l),
            by: None,
        }
    }

    #[test]
    fn days_and_minutes_are_china_time() {
        assert_eq!(day_str(DAY), "2025-12-01");
        assert_eq!(china_day(at(0, 0)), DAY);
        assert_eq!(china_day(at(23, 59)), DAY);
        assert_eq!(china_minute(at(6, 30)), 390);
        assert_eq!(quantity(12_500), "12.5");
        assert_eq!(quantity(3_000), "3");
        assert_eq!(quantity(1), "0.001");
    }

    #[test]
    fn validation_speaks_chinese() {
        assert_eq!(check("st1", 365).validate(), Ok(()));
        assert!(check("st1", 480).validate().unwrap_err().contains("体温 48.0℃"));
        let mut bad_id = check("st1", 365);
        bad_id.id = "a b".into();
        assert!(bad_id.validate().unwrap_err().contains("记录编号"));
        let mut other_day = check("st1", 365);
        other_day.day = DAY + 1;
        assert!(other_day.validate().unwrap_err().contains("不在台账日期"));
        let mut mismatch = check("st1", 365);
        mismatch.kind = LedgerKind::FoodSample;
        assert!(mismatch.validate().unwrap_err().contains("内容却是"));
        let sample = |grams, disposed| LedgerEntry {
            kind: LedgerKind::FoodSample,
            id: "fs-1".into(),
            day: DAY,
            op: LedgerOp::Record(LedgerRecord::FoodSample(FoodSample {
                canteen: "c1".into(),
                meal: Meal::Lunch,
                dish: "番茄炒蛋".into(),
                grams,
                sampled_at_ms: at(12, 0),
                refrigerated: true,
                disposed_at_ms: disposed,
                batches: vec![],
                sampled_by: "李四".into(),
            })),
        };
        assert_eq!(sample(150, None).validate(), Ok(()));
        // Under 125 g is recorded (the rule warns); zero is not a sample.
        assert_eq!(sample(100, None).validate(), Ok(()));
        assert!(sample(0, None).validate().unwrap_err().contains("留样重量"));
        assert!(sample(150, Some(at(11, 0))).validate().unwrap_err().contains("早于留样时间"));
        let hazard = |items, problems, text: &str| LedgerEntry {
            kind: LedgerKind::HazardCheck,
            id: "hz-1".into(),
            day: DAY,
            op: LedgerOp::Record(LedgerRecord::HazardCheck(HazardCheck {
                level: HazardLevel::Weekly,
                items_checked: items,
                problems_found: problems,
                problems: text.into(),
                measures: text.into(),
                checked_by: "王五".into(),
            })),
        };
        assert_eq!(hazard(20, 0, "").validate(), Ok(()));
        assert!(hazard(20, 1, "").validate().unwrap_err().contains("请填写问题描述"));
        assert!(hazard(2, 3, "x").validate().unwrap_err().contains("多于检查项"));
        let void = LedgerEntry {
            kind: LedgerKind::MorningCheck,
            id: "mc-1".into(),
            day: DAY,
            op: LedgerOp::Void { reason: " ".into() },
        };
        assert!(void.validate().unwrap_err().contains("作废原因"));
    }

    #[test]
    fn records_are_checked_against_the_registry() {
        let s = id("130102-S0001");
        let mut reg = BTreeMap::new();
        let mut put = |kind, eid: &str, data| {
            let r = EntityRef { kind, node: s, id: eid.into() };
            reg.insert(
                r.clone(),
                Entity {
                    entity: r,
                    data,
                    updated_by: EventId { origin: s, seq: 1 },
                    updated_by_person: None,
                    updated_hlc: Hlc::default(),
                },
            );
        };
        put(
            EntityKind::Staff,
            "st1",
            EntityData::Staff(Staff { name: "张三".into(), role: StaffRole::Cook, on_duty: true }),
        );
        put(EntityKind::Canteen, "c1", EntityData::Canteen(Canteen { name: "一食堂".into(), address: String::new() }));
        put(
            EntityKind::Supplier,
            "sp1",
            EntityData::Supplier(Supplier {
                name: "放心菜店".into(),
                licence_no: "JY1".into(),
                licence_valid_until_ms: at(0, 0),
                contact: String::new(),
            }),
        );
        let none = BTreeMap::new();
        let now = at(9, 0);
        assert_eq!(check_against(s, &check("st1", 365), &reg, &none, now), Ok(()));
        assert!(check_against(s, &check("st9", 365), &reg, &none, now).unwrap_err().contains("没有编号为 st9"));
        let purchase = LedgerEntry {
            kind: LedgerKind::Purchase,
            id: "p1".into(),
            day: DAY,
            op: LedgerOp::Record(LedgerRecord::Purchase(Purchase {
                supplier: "sp1".into(),
                item: "大米".into(),
                batch: "B1".into(),
                quantity_milli: 50_000,
                unit: "kg".into(),
                received_at_ms: at(7, 0),
                inspection_cert: String::new(),
                invoice: String::new(),
            })),
        };
        let err = check_against(s, &purchase, &reg, &none, now).unwrap_err();
        assert!(err.contains("已于") && err.contains("过期"), "{err}");
        let mut future = check("st1", 365);
        if let LedgerOp::Record(LedgerRecord::MorningCheck(m)) = &mut future.op {
            m.checked_at_ms = at(10, 0);
        }
        assert!(check_against(s, &future, &reg, &none, now).unwrap_err().contains("晚于现在"));
    }

    #[test]
    fn the_fold_keeps_the_last_version_and_voids() {
        let first = check("st1", 380);
        let corrected = check("st1", 365);
        let void = LedgerEntry {
            kind: LedgerKind::MorningCheck,
            id: "mc-st1".into(),
            day: DAY,
            op: LedgerOp::Void { reason: "录错".into() },
        };
        let events = vec![ev(1, 10, first), ev(2, 20, corrected.clone()), ev(3, 30, void)];
        let mut shuffled = events.clone();
        shuffled.reverse();
        shuffled.push(events[0].clone());
        for evs in [&events, &shuffled] {
            let view = ledger_view(evs.iter());
            let item = &view[&(id("130102-S0001"), "mc-st1".to_string())];
            assert!(item.voided);
            assert_eq!(item.versions, 3);
            assert!(item.live().is_none());
            let LedgerOp::Record(r) = &corrected.op else { unreachable!() };
            assert_eq!(item.record.as_ref(), Some(r));
            assert_eq!(item.created_hlc.wall_ms, 10);
        }
        let two = ledger_view(events[..2].iter());
        assert_eq!(two.values().next().unwrap().live().map(|r| r.summary()), Some("36.5℃ 正常".to_string()));
    }

    #[test]
    fn names_parse_both_ways() {
        assert_eq!("午餐".parse::<Meal>().unwrap(), Meal::Lunch);
        assert_eq!("LUNCH".parse::<Meal>().unwrap(), Meal::Lunch);
        assert_eq!("晨检".parse::<LedgerKind>().unwrap(), LedgerKind::MorningCheck);
        assert_eq!("food_sample".parse::<LedgerKind>().unwrap(), LedgerKind::FoodSample);
        assert!("brunch".parse::<Meal>().unwrap_err().to_string().contains("lunch"));
        assert_eq!("周排查".parse::<HazardLevel>().unwrap(), HazardLevel::Weekly);
    }
}
