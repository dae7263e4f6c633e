//! `mingchu ledger …`: a school's food-safety ledgers (食品安全台账) from the command line, against
//! a node's admin API.
//!
//! A school writes its own records (one subcommand per kind, the flags its food-safety officer
//! fills in on paper); every level above reads them: `ledger list` one school's records,
//! `ledger days` which schools of a unit filled in a day's ledgers. Numbers a person types
//! (`--temp 36.5`, `--quantity 20.5`) are checked here, with a Chinese message, before any request.

use clap::{ArgGroup, Args, Subcommand};
use client::AdminClient;
use client::render::{LedgerNames, render_ledger, render_ledger_days, render_ledger_written};
use node::api::ledgers::{Dispose, LedgerView, LedgerWrite};
use protocol::ledger::{
    AccompaniedMeal, Companion, DisinfectMethod, Disinfection, FoodSample, HazardCheck, HazardLevel, LedgerKind,
    LedgerRecord, Meal, MorningCheck, PesticideTest, Purchase, Symptom,
};
use topology::NodeId;

use crate::cli::{Target, print_json};

/// What every record write takes: which record (a correction), which day, and the output.
#[derive(Args, Debug, Clone)]
pub struct Entry {
    /// Correct the record with this id (更正): the new version replaces the whole record (give
    /// every field again; a sample's disposal is recorded again with `ledger dispose`), the
    /// history keeps the old one. Without it, a new record gets the next id (`mc-20261201-3`).
    #[arg(long)]
    pub id: Option<String>,
    /// The day the record belongs to (台账日期), e.g. 2026-12-01 (default: today, China time).
    #[arg(long, value_name = "DATE", value_parser = parse_date_only)]
    pub date: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// When it happened.
#[derive(Args, Debug, Clone)]
pub struct At {
    /// When it happened, China time: 07:10 on the record's day, or "2026-12-01 07:10" (default:
    /// now; for another day, 12:00 that day).
    #[arg(long, value_name = "TIME", value_parser = parse_at)]
    pub at: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum LedgerCmd {
    /// 晨检: a staff member's morning health check (temperature, symptoms, sent home or not).
    MorningCheck {
        #[command(flatten)]
        target: Target,
        /// The staff member checked (their registry id, e.g. st1).
        #[arg(long)]
        staff: String,
        /// Body temperature in ℃, e.g. 36.5 (one decimal at most).
        #[arg(long = "temp", value_name = "℃", value_parser = parse_temperature)]
        temperature_dc: u16,
        /// A symptom found (症状), repeat for several: 腹泻 diarrhea, 呕吐 vomiting, 黄疸 jaundice,
        /// 咽部炎症 sore-throat, 手部外伤或皮肤化脓 skin-infection, 咳嗽 cough.
        #[arg(long = "symptom")]
        symptoms: Vec<Symptom>,
        /// Sent home (劝离岗位) after the check.
        #[arg(long)]
        sent_home: bool,
        #[command(flatten)]
        at: At,
        /// 备注.
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        entry: Entry,
    },
    /// 留样: a dish of a meal kept as a sample (at least 125 g, refrigerated, 48 hours).
    Sample {
        #[command(flatten)]
        target: Target,
        /// The canteen (its registry id).
        #[arg(long)]
        canteen: String,
        /// 早餐 breakfast, 午餐 lunch or 晚餐 dinner.
        #[arg(long)]
        meal: Meal,
        /// The dish (菜品), e.g. 番茄炒蛋.
        #[arg(long)]
        dish: String,
        /// Weight in grams (克).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=5000))]
        grams: u32,
        /// Who took the sample (留样人).
        #[arg(long)]
        by: String,
        /// Not kept in the sample refrigerator (未冷藏).
        #[arg(long)]
        not_refrigerated: bool,
        /// A purchase record the dish was made from (原料批次: the purchase's record id), repeat
        /// for several.
        #[arg(long = "batch")]
        batches: Vec<String>,
        #[command(flatten)]
        at: At,
        #[command(flatten)]
        entry: Entry,
    },
    /// 留样处置: record that a sample was disposed of (keep it 48 hours: earlier is a red warning).
    Dispose {
        #[command(flatten)]
        target: Target,
        /// The sample's record id.
        #[arg(long)]
        id: String,
        /// When, China time: 12:30 today or "2026-12-03 12:30" (default: now).
        #[arg(long, value_name = "TIME", value_parser = parse_at)]
        at: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// 采购索证索票: a purchase received, with its inspection certificate and invoice.
    Purchase {
        #[command(flatten)]
        target: Target,
        /// The supplier (its registry id; its licence must be valid).
        #[arg(long)]
        supplier: String,
        /// 品名, e.g. 猪肉.
        #[arg(long)]
        item: String,
        /// 批次 (the delivery's batch number).
        #[arg(long)]
        batch: String,
        /// 数量, e.g. 20.5 (at most three decimals).
        #[arg(long = "quantity", value_parser = parse_quantity)]
        quantity_milli: u64,
        /// 单位, e.g. kg, 箱, 袋.
        #[arg(long)]
        unit: String,
        /// 检验合格证明 reference (leave out while not yet obtained: it warns after 24 hours).
        #[arg(long, default_value = "")]
        cert: String,
        /// 票据 (invoice or delivery note) reference.
        #[arg(long, default_value = "")]
        invoice: String,
        #[command(flatten)]
        at: At,
        #[command(flatten)]
        entry: Entry,
    },
    /// 陪餐: a school leader (校长陪餐) or a parent (家长陪餐) ate the meal with the pupils.
    #[command(group(ArgGroup::new("companion").required(true).args(["leader", "parent"])))]
    Meal {
        #[command(flatten)]
        target: Target,
        /// The canteen (its registry id).
        #[arg(long)]
        canteen: String,
        /// 早餐 breakfast, 午餐 lunch or 晚餐 dinner.
        #[arg(long)]
        meal: Meal,
        /// A school leader accompanied the meal (校长陪餐).
        #[arg(long)]
        leader: bool,
        /// A parent accompanied the meal (家长陪餐).
        #[arg(long)]
        parent: bool,
        /// Who, e.g. 王校长 or "三年级二班家长 李女士".
        #[arg(long)]
        name: String,
        /// Their rating (评分), 1 poor to 5 good.
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=5))]
        rating: Option<u8>,
        /// Their remarks (陪餐意见).
        #[arg(long, default_value = "")]
        remarks: String,
        #[command(flatten)]
        entry: Entry,
    },
    /// 隐患排查: a hazard check — 日管控 daily, 周排查 weekly, 月调度 monthly.
    Hazard {
        #[command(flatten)]
        target: Target,
        /// 日管控 (daily), 周排查 (weekly) or 月调度 (monthly).
        #[arg(long)]
        level: HazardLevel,
        /// Items checked (检查项数).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        items: u16,
        /// Problems found (发现问题项数); with --found and --measures.
        #[arg(long, default_value_t = 0)]
        problems: u16,
        /// What was found (问题描述).
        #[arg(long, default_value = "")]
        found: String,
        /// What was done about it (整改措施).
        #[arg(long, default_value = "")]
        measures: String,
        /// Who checked (检查人).
        #[arg(long)]
        by: String,
        #[command(flatten)]
        entry: Entry,
    },
    /// 消毒: tableware, tools or the kitchen disinfected.
    Disinfect {
        #[command(flatten)]
        target: Target,
        /// The canteen (its registry id).
        #[arg(long)]
        canteen: String,
        /// What (消毒对象), e.g. 餐饮具, 砧板刀具, 操作间环境.
        #[arg(long = "target")]
        object: String,
        /// 热力消毒 heat, 蒸汽消毒 steam, 化学消毒 chemical, 紫外线消毒 ultraviolet, 其他 other.
        #[arg(long)]
        method: DisinfectMethod,
        /// How long, in minutes (1 to 600).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=600))]
        minutes: u16,
        /// Who disinfected (消毒人).
        #[arg(long)]
        by: String,
        #[command(flatten)]
        at: At,
        #[command(flatten)]
        entry: Entry,
    },
    /// 农残快检: a pesticide residue rapid test (enzyme inhibition ≥ 50% is positive).
    Pesticide {
        #[command(flatten)]
        target: Target,
        /// 品名, e.g. 青菜.
        #[arg(long)]
        item: String,
        /// Enzyme inhibition in percent (抑制率, 0 to 100).
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
        inhibition: u8,
        /// Who tested (检测人).
        #[arg(long)]
        by: String,
        /// The purchase record (batch) tested.
        #[arg(long, default_value = "")]
        purchase: String,
        /// What was done with a positive batch (阳性处理措施; required when positive).
        #[arg(long, default_value = "")]
        handling: String,
        #[command(flatten)]
        entry: Entry,
    },
    /// 作废: withdraw a record entered by mistake, with the reason (the history keeps it).
    Void {
        #[command(flatten)]
        target: Target,
        /// The record's id.
        #[arg(long)]
        id: String,
        /// Its kind: morning-check 晨检, food-sample 留样, purchase 采购索证索票,
        /// accompanied-meal 陪餐, hazard-check 隐患排查, disinfection 消毒, pesticide-test 农残快检.
        #[arg(long)]
        kind: LedgerKind,
        /// Why (作废原因).
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// One school's records (the school itself, or --school at a unit above), newest day first.
    List {
        #[command(flatten)]
        target: Target,
        /// The school, e.g. 130102-S0001 (default at a school: itself).
        #[arg(long)]
        school: Option<NodeId>,
        /// Only one kind: morning-check 晨检, food-sample 留样, purchase, accompanied-meal 陪餐,
        /// hazard-check, disinfection 消毒, pesticide-test.
        #[arg(long)]
        kind: Option<LedgerKind>,
        /// One day (default: today).
        #[arg(long, value_name = "DATE", value_parser = parse_date_only, conflicts_with_all = ["from", "to"])]
        date: Option<String>,
        /// From this day (at most 62 days in one listing).
        #[arg(long, value_name = "DATE", value_parser = parse_date_only)]
        from: Option<String>,
        /// To this day (default: today).
        #[arg(long, value_name = "DATE", value_parser = parse_date_only)]
        to: Option<String>,
        /// Voided records too.
        #[arg(long)]
        voided: bool,
        #[arg(long)]
        json: bool,
    },
    /// Which schools of a unit filled in one day's ledgers: per school the records of each kind,
    /// the staff on duty, and whether the four daily records (晨检、留样、校领导陪餐、消毒) are there.
    Days {
        #[command(flatten)]
        target: Target,
        /// Only schools under this unit.
        #[arg(long)]
        under: Option<NodeId>,
        /// The day (default: today).
        #[arg(long, value_name = "DATE", value_parser = parse_date_only)]
        date: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// `--temp 36.5` → 365 tenths of a degree. A malformed reading, or one no person has, is refused
/// in Chinese before any request.
pub fn parse_temperature(s: &str) -> Result<u16, String> {
    let t = s.trim().trim_end_matches(['℃', 'C', 'c']).trim_end_matches('°').trim();
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 3 || !digits(whole) || frac.len() > 1 || !digits(frac) || t.ends_with('.') {
        return Err(format!(
            "体温“{s}”不是有效读数：请写摄氏度数，如 36.5（最多一位小数） / `{s}` is not a temperature: write degrees Celsius like 36.5"
        ));
    }
    let dc = whole.parse::<u16>().unwrap_or(0) * 10 + frac.parse::<u16>().unwrap_or(0);
    if !(340..=430).contains(&dc) {
        return Err(format!(
            "体温 {}.{}℃ 不在 34.0℃ 至 43.0℃ 之间，请核对（是不是漏了小数点？） / {}.{} ℃ is not a body temperature",
            dc / 10,
            dc % 10,
            dc / 10,
            dc % 10
        ));
    }
    Ok(dc)
}

/// `--quantity 20.5` → 20500 milli-units: a positive number with at most three decimals.
pub fn parse_quantity(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    let bad = || {
        format!(
            "数量“{s}”不是有效的数：请写成 20 或 20.5 这样的形式（最多三位小数） / `{s}` is not a quantity: write 20 or 20.5"
        )
    };
    if whole.is_empty() || whole.len() > 12 || !digits(whole) || frac.len() > 3 || !digits(frac) || t.ends_with('.') {
        return Err(bad());
    }
    let milli =
        whole.parse::<u64>().map_err(|_| bad())? * 1000 + format!("{frac:0<3}").parse::<u64>().map_err(|_| bad())?;
    if milli == 0 {
        return Err(format!("数量须大于 0 / the quantity must be above 0 (`{s}`)"));
    }
    Ok(milli)
}

/// A day, `2026-12-01` (China time).
pub fn parse_date_only(s: &str) -> Result<String, String> {
    protocol::calendar::parse_day(s).map(|_| s.trim().to_string()).map_err(|e| e.to_string())
}

/// A time of a record: `07:10` (on the record's day) or `2026-12-01 07:10`.
pub fn parse_at(s: &str) -> Result<String, String> {
    let t = s.trim();
    let ok = if t.len() <= 5 {
        protocol::calendar::parse_instant(&format!("2026-01-01 {t}")).is_ok()
    } else {
        t.contains([' ', 'T']) && protocol::calendar::parse_instant(t).is_ok()
    };
    if ok {
        Ok(t.to_string())
    } else {
        Err(format!(
            "时间“{s}”应写成 07:10 或 \"2026-12-01 07:10\"（北京时间） / `{s}` is not a time: write 07:10 or \"2026-12-01 07:10\""
        ))
    }
}

/// The day of a full `--at` ("2026-12-01 07:10"), so a record at another day's time belongs to that
/// day without `--date` too.
fn day_of_at(at: Option<&str>) -> Option<String> {
    let (day, _) = at?.split_once([' ', 'T'])?;
    Some(day.to_string())
}

/// The names of a school's staff, canteens and suppliers (ids shown when the lookup fails: the
/// record was written anyway).
fn names(client: &AdminClient, school: NodeId) -> LedgerNames {
    client.registry(None, Some(school)).map(|e| LedgerNames::from_registry(&e, school)).unwrap_or_default()
}

fn written(client: &AdminClient, v: &LedgerView, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(v);
    }
    print!("{}", render_ledger_written(v, &names(client, v.school)));
    Ok(())
}

/// Writes `record` (new, or a correction of `entry.id`).
fn write(target: &Target, entry: Entry, at: Option<String>, record: LedgerRecord) -> anyhow::Result<()> {
    let client = target.client()?;
    let req = LedgerWrite {
        kind: record.kind(),
        date: entry.date.or_else(|| day_of_at(at.as_deref())),
        id: entry.id,
        record: Some(record),
        void_reason: None,
        at,
    };
    let v = client.ledger_write(&req)?;
    written(&client, &v, entry.json)
}

/// Runs a `mingchu ledger` command.
pub fn run(cmd: LedgerCmd) -> anyhow::Result<()> {
    match cmd {
        LedgerCmd::MorningCheck { target, staff, temperature_dc, symptoms, sent_home, at, note, entry } => {
            let r = MorningCheck { staff, temperature_dc, symptoms, sent_home, checked_at_ms: 0, note };
            write(&target, entry, at.at, LedgerRecord::MorningCheck(r))
        }
        LedgerCmd::Sample { target, canteen, meal, dish, grams, by, not_refrigerated, batches, at, entry } => {
            let r = FoodSample {
                canteen,
                meal,
                dish,
                grams,
                sampled_at_ms: 0,
                refrigerated: !not_refrigerated,
                disposed_at_ms: None,
                batches,
                sampled_by: by,
            };
            write(&target, entry, at.at, LedgerRecord::FoodSample(r))
        }
        LedgerCmd::Dispose { target, id, at, json } => {
            let client = target.client()?;
            let v = client.ledger_dispose(&Dispose { id, at })?;
            written(&client, &v, json)
        }
        LedgerCmd::Purchase { target, supplier, item, batch, quantity_milli, unit, cert, invoice, at, entry } => {
            let r = Purchase {
                supplier,
                item,
                batch,
                quantity_milli,
                unit,
                received_at_ms: 0,
                inspection_cert: cert,
                invoice,
            };
            write(&target, entry, at.at, LedgerRecord::Purchase(r))
        }
        LedgerCmd::Meal { target, canteen, meal, leader, parent: _, name, rating, remarks, entry } => {
            let companion = if leader { Companion::Leader } else { Companion::Parent };
            let r = AccompaniedMeal { canteen, meal, companion, name, rating: rating.unwrap_or(0), remarks };
            write(&target, entry, None, LedgerRecord::AccompaniedMeal(r))
        }
        LedgerCmd::Hazard { target, level, items, problems, found, measures, by, entry } => {
            let r = HazardCheck {
                level,
                items_checked: items,
                problems_found: problems,
                problems: found,
                measures,
                checked_by: by,
            };
            write(&target, entry, None, LedgerRecord::HazardCheck(r))
        }
        LedgerCmd::Disinfect { target, canteen, object, method, minutes, by, at, entry } => {
            let r = Disinfection { canteen, target: object, method, minutes, done_at_ms: 0, done_by: by };
            write(&target, entry, at.at, LedgerRecord::Disinfection(r))
        }
        LedgerCmd::Pesticide { target, item, inhibition, by, purchase, handling, entry } => {
            let r = PesticideTest { item, purchase, inhibition_pct: inhibition, handling, tested_by: by };
            write(&target, entry, None, LedgerRecord::PesticideTest(r))
        }
        LedgerCmd::Void { target, id, kind, reason, json } => {
            let client = target.client()?;
            let req = LedgerWrite { kind, date: None, id: Some(id), record: None, void_reason: Some(reason), at: None };
            let v = client.ledger_write(&req)?;
            written(&client, &v, json)
        }
        LedgerCmd::List { target, school, kind, date, from, to, voided, json } => {
            let client = target.client()?;
            let (from, to) = match date {
                Some(d) => (Some(d.clone()), Some(d)),
                None => (from, to),
            };
            let q = client::LedgerQuery { school, kind, from, to, voided };
            let records = client.ledger(&q)?;
            if json {
                return print_json(&records);
            }
            let names = match records.first() {
                Some(r) => names(&client, r.school),
                None => LedgerNames::default(),
            };
            print!("{}", render_ledger(&records, &names));
            Ok(())
        }
        LedgerCmd::Days { target, under, date, json } => {
            let client = target.client()?;
            let days = client.ledger_days(under, date.as_deref())?;
            if json {
                return print_json(&days);
            }
            // Whether the day is a working day, by the calendar in force (unknown if unreadable).
            let working = days.first().and_then(|d| {
                let day = protocol::calendar::parse_day(&d.date).ok()?;
                Some(client.calendar().ok()?.0.is_working_date(day))
            });
            print!("{}", render_ledger_days(&days, working));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn temperatures_are_tenths_and_malformed_ones_are_refused_in_chinese() {
        assert_eq!(parse_temperature("36.5"), Ok(365));
        assert_eq!(parse_temperature("37"), Ok(370));
        assert_eq!(parse_temperature(" 36.8℃ "), Ok(368));
        assert_eq!(parse_temperature("36.5°C"), Ok(365));
        for bad in ["36,5", "36.55", "abc", "", ".5", "36.", "-36.5", "３６.５"] {
            let e = parse_temperature(bad).unwrap_err();
            assert!(e.contains("不是有效读数"), "{bad}: {e}");
        }
        // Typed in tenths, or off the scale: the range, with a hint.
        let e = parse_temperature("365").unwrap_err();
        assert!(e.contains("365.0℃ 不在 34.0℃ 至 43.0℃ 之间") && e.contains("小数点"), "{e}");
        assert!(parse_temperature("33.9").is_err() && parse_temperature("43.1").is_err());
    }

    #[test]
    fn quantities_are_milli_units() {
        assert_eq!(parse_quantity("20.5"), Ok(20_500));
        assert_eq!(parse_quantity("3"), Ok(3_000));
        assert_eq!(parse_quantity("0.125"), Ok(125));
        for bad in ["0", "0.000", "1.2345", "1,5", "abc", "-1", "1."] {
            assert!(parse_quantity(bad).is_err(), "{bad}");
        }
        assert!(parse_quantity("1,5").unwrap_err().contains("不是有效的数"));
    }

    #[test]
    fn times_and_days_are_checked_before_any_request() {
        assert_eq!(parse_at("07:10").as_deref(), Ok("07:10"));
        assert_eq!(parse_at("2026-12-01 07:10").as_deref(), Ok("2026-12-01 07:10"));
        for bad in ["7.10", "25:00", "2026-12-01", "2026-13-01 07:10", "noon"] {
            assert!(parse_at(bad).unwrap_err().contains("07:10"), "{bad}");
        }
        assert_eq!(day_of_at(Some("2026-12-01 07:10")).as_deref(), Some("2026-12-01"));
        assert_eq!(day_of_at(Some("07:10")), None);
        assert!(parse_date_only("2026-02-30").is_err());
    }

    #[test]
    fn the_ledger_commands_parse_as_an_officer_types_them() {
        let cli = crate::cli::Cli::try_parse_from([
            "mingchu",
            "ledger",
            "morning-check",
            "--admin",
            "127.0.0.1:9",
            "--staff",
            "st1",
            "--temp",
            "37.6",
            "--symptom",
            "腹泻",
            "--symptom",
            "cough",
            "--sent-home",
            "--at",
            "07:10",
        ])
        .unwrap();
        let crate::cli::Cmd::Ledger(LedgerCmd::MorningCheck { temperature_dc, symptoms, sent_home, at, .. }) = cli.cmd
        else {
            panic!("not a morning check")
        };
        assert_eq!((temperature_dc, sent_home, at.at.as_deref()), (376, true, Some("07:10")));
        assert_eq!(symptoms, [Symptom::Diarrhea, Symptom::Cough]);

        let meal = ["mingchu", "ledger", "meal", "--admin", "127.0.0.1:9", "--canteen", "c1", "--meal", "午餐"];
        let e = crate::cli::Cli::try_parse_from(meal.iter().chain(&["--name", "王校长"])).unwrap_err().to_string();
        assert!(e.contains("--leader") && e.contains("--parent"), "{e}");
        assert!(crate::cli::Cli::try_parse_from(meal.iter().chain(&["--name", "王校长", "--leader"])).is_ok());
        let e = crate::cli::Cli::try_parse_from(meal.iter().chain(&["--name", "王校长", "--leader", "--rating", "6"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("6"), "{e}");
        let e = crate::cli::Cli::try_parse_from([
            "mingchu",
            "ledger",
            "morning-check",
            "--admin",
            "127.0.0.1:9",
            "--staff",
            "st1",
            "--temp",
            "36,5",
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("体温“36,5”不是有效读数"), "{e}");
        let hazard = crate::cli::Cli::try_parse_from([
            "mingchu",
            "ledger",
            "hazard",
            "--admin",
            "127.0.0.1:9",
            "--level",
            "周排查",
            "--items",
            "20",
            "--by",
            "王五",
        ]);
        assert!(hazard.is_ok(), "{hazard:?}");
    }
}
