//! Bulletins (通报): a province or a city ranks the units of its subtree over a week or a month by
//! five figures — spot-check pass rate, camera online rate, on-time rectification, ledger
//! completeness and warnings resolved — and names good and bad examples.
//!
//! Pure: the node gathers each unit's figures from its own store ([`UnitFigures`]); [`rank`] orders
//! them, the same everywhere (a bulletin published down the tree carries the figures, and every
//! reader ranks them again to the same table).

use serde::{Deserialize, Serialize};
use topology::NodeId;

use crate::ledger::day_str;

/// Weekly or monthly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeriodKind {
    Weekly,
    Monthly,
}

impl PeriodKind {
    pub fn zh(self) -> &'static str {
        match self {
            PeriodKind::Weekly => "周通报",
            PeriodKind::Monthly => "月通报",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PeriodKind::Weekly => "weekly",
            PeriodKind::Monthly => "monthly",
        }
    }
}

impl std::str::FromStr for PeriodKind {
    type Err = String;
    fn from_str(s: &str) -> Result<PeriodKind, String> {
        match s.trim() {
            "weekly" | "week" | "周" | "周通报" => Ok(PeriodKind::Weekly),
            "monthly" | "month" | "月" | "月通报" => Ok(PeriodKind::Monthly),
            other => Err(format!("“{other}”不是通报周期：请选择 weekly（周通报）或 monthly（月通报）")),
        }
    }
}

/// The China-time days a bulletin covers, first and last included (day numbers since 1970-01-01).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub kind: PeriodKind,
    pub first_day: u32,
    pub last_day: u32,
}

impl Period {
    /// The week (Monday to Sunday) holding `day`.
    pub fn week_of(day: u32) -> Period {
        let monday = day - (day + 3) % 7;
        Period { kind: PeriodKind::Weekly, first_day: monday, last_day: monday + 6 }
    }

    /// The calendar month holding `day`.
    pub fn month_of(day: u32) -> Period {
        let (y, m, d) = ymd(day);
        let first = day + 1 - d;
        let next = if m == 12 { civil(y + 1, 1) } else { civil(y, m + 1) };
        Period { kind: PeriodKind::Monthly, first_day: first, last_day: next - 1 }
    }

    /// The last whole period before `today`: last week, or last month.
    pub fn last_complete(kind: PeriodKind, today: u32) -> Period {
        match kind {
            PeriodKind::Weekly => Period::week_of(Period::week_of(today).first_day.saturating_sub(1)),
            PeriodKind::Monthly => Period::month_of(Period::month_of(today).first_day.saturating_sub(1)),
        }
    }

    /// `2026年11月` or `2026年11月23日至11月29日`.
    pub fn label(&self) -> String {
        let (y, m, d) = ymd(self.first_day);
        match self.kind {
            PeriodKind::Monthly => format!("{y}年{m}月"),
            PeriodKind::Weekly => {
                let (_, m2, d2) = ymd(self.last_day);
                format!("{y}年{m}月{d}日至{m2}月{d2}日")
            }
        }
    }

    pub fn days(&self) -> std::ops::RangeInclusive<u32> {
        self.first_day..=self.last_day
    }
}

fn ymd(day: u32) -> (u32, u32, u32) {
    let s = day_str(day);
    let n = |r: std::ops::Range<usize>| s.get(r).and_then(|p| p.parse().ok()).unwrap_or(1);
    (n(0..4), n(5..7), n(8..10))
}

fn civil(y: u32, m: u32) -> u32 {
    crate::calendar::days_from_civil(i64::from(y), i64::from(m), 1) as u32
}

/// `part` of `whole`: a rate with its counts (a unit with nothing to count has no rate).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ratio {
    pub part: u64,
    pub whole: u64,
}

impl Ratio {
    pub fn new(part: u64, whole: u64) -> Ratio {
        Ratio { part: part.min(whole), whole }
    }

    /// In hundredths of a percent (10000 = 100%), rounded down; `None` when there is nothing.
    pub fn basis_points(&self) -> Option<u32> {
        (self.whole > 0).then(|| (u128::from(self.part) * 10_000 / u128::from(self.whole)) as u32)
    }

    /// `87.5%`, or `—` when there is nothing to count.
    pub fn percent(&self) -> String {
        match self.basis_points() {
            Some(b) => pct(b),
            None => "—".into(),
        }
    }
}

/// `87.5%` from basis points (one decimal, trailing zero dropped).
pub fn pct(bp: u32) -> String {
    let tenths = bp / 10;
    if tenths.is_multiple_of(10) { format!("{}%", tenths / 10) } else { format!("{}.{}%", tenths / 10, tenths % 10) }
}

/// The five measures, in the order of [`UnitFigures::measures`].
pub const MEASURES: [&str; 5] = ["网络巡查合格率", "摄像头在线率", "按期整改率", "晨检台账完整率", "预警处置率"];

/// What a unit did in the period, counted from the issuing node's store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitFigures {
    pub unit: NodeId,
    pub name: String,
    /// Spot checks passed / done.
    pub spot: Ratio,
    /// Cameras online / registered.
    pub cameras: Ratio,
    /// Cases rectified by their deadline / cases due.
    pub on_time: Ratio,
    /// School working days with a morning check / school working days.
    pub ledger: Ratio,
    /// Warnings resolved / raised.
    pub warnings: Ratio,
}

impl UnitFigures {
    pub fn new(unit: NodeId, name: impl Into<String>) -> UnitFigures {
        UnitFigures {
            unit,
            name: name.into(),
            spot: Ratio::default(),
            cameras: Ratio::default(),
            on_time: Ratio::default(),
            ledger: Ratio::default(),
            warnings: Ratio::default(),
        }
    }

    pub fn measures(&self) -> [Ratio; 5] {
        [self.spot, self.cameras, self.on_time, self.ledger, self.warnings]
    }

    /// The mean of the rates the unit has (equal weights), in basis points; `None` if it has none.
    pub fn score(&self) -> Option<u32> {
        let rates: Vec<u32> = self.measures().iter().filter_map(Ratio::basis_points).collect();
        (!rates.is_empty()).then(|| rates.iter().sum::<u32>() / rates.len() as u32)
    }
}

/// One row of a ranked table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankedRow {
    /// 1-based; units with the same score share a rank (1, 2, 2, 4); `None`: nothing to rank on.
    pub rank: Option<u32>,
    pub score: Option<u32>,
    pub figures: UnitFigures,
}

/// Orders units by score, best first. Equal scores share a rank and are listed by unit code; units
/// with no figures at all come last, unranked, by unit code. The same input in any order gives the
/// same table.
pub fn rank(units: &[UnitFigures]) -> Vec<RankedRow> {
    let mut rows: Vec<RankedRow> =
        units.iter().map(|f| RankedRow { rank: None, score: f.score(), figures: f.clone() }).collect();
    rows.sort_by(|a, b| match (a.score, b.score) {
        (Some(x), Some(y)) => y.cmp(&x).then(a.figures.unit.cmp(&b.figures.unit)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.figures.unit.cmp(&b.figures.unit),
    });
    let mut prev: Option<(u32, u32)> = None;
    for (i, row) in rows.iter_mut().enumerate() {
        let Some(score) = row.score else { continue };
        let r = match prev {
            Some((s, r)) if s == score => r,
            _ => i as u32 + 1,
        };
        row.rank = Some(r);
        prev = Some((score, r));
    }
    rows
}

/// A good or bad example with its evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    pub unit: NodeId,
    pub name: String,
    pub evidence: String,
}

/// Good examples of a ranked table: the first-ranked units (when more than one unit is ranked: a
/// unit alone in its table is first of nobody), and every unit with a 100% spot-check pass rate
/// and 100% on-time rectification (both with something counted).
pub fn good_examples(rows: &[RankedRow]) -> Vec<Example> {
    let mut out: Vec<Example> = Vec::new();
    let ranked = rows.iter().filter(|r| r.rank.is_some()).count();
    for r in rows {
        let f = &r.figures;
        let perfect =
            f.spot.whole > 0 && f.spot.part == f.spot.whole && f.on_time.whole > 0 && f.on_time.part == f.on_time.whole;
        let first = ranked > 1 && r.rank == Some(1);
        if first || perfect {
            let mut why = Vec::new();
            if first {
                why.push(format!("综合得分 {} 排名第一", r.score.map(pct).unwrap_or_default()));
            }
            if perfect {
                why.push(format!("网络巡查 {} 次全部合格，{} 件到期整改全部按期完成", f.spot.whole, f.on_time.whole));
            }
            out.push(Example { unit: f.unit, name: f.name.clone(), evidence: why.join("；") });
        }
    }
    out
}

/// Bad examples of a ranked table: the last-ranked units (when more than one rank exists), with
/// their weakest measure.
pub fn bad_examples(rows: &[RankedRow]) -> Vec<Example> {
    let last = rows.iter().filter_map(|r| r.rank).max();
    if last.is_none_or(|l| l == 1) {
        return Vec::new();
    }
    rows.iter()
        .filter(|r| r.rank == last)
        .map(|r| {
            let f = &r.figures;
            let weakest = f
                .measures()
                .iter()
                .zip(MEASURES)
                .filter_map(|(m, name)| m.basis_points().map(|b| (b, name, *m)))
                .min_by_key(|(b, _, _)| *b);
            let mut why = format!("综合得分 {} 排名末位", r.score.map(pct).unwrap_or_default());
            if let Some((_, name, m)) = weakest {
                why.push_str(&format!("；{name}仅 {}（{}/{}）", m.percent(), m.part, m.whole));
            }
            Example { unit: f.unit, name: f.name.clone(), evidence: why }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(code: &str, spot: (u64, u64), on_time: (u64, u64)) -> UnitFigures {
        let mut f = UnitFigures::new(code.parse().unwrap(), code);
        f.spot = Ratio::new(spot.0, spot.1);
        f.on_time = Ratio::new(on_time.0, on_time.1);
        f
    }

    fn order(rows: &[RankedRow]) -> Vec<(String, Option<u32>)> {
        rows.iter().map(|r| (r.figures.unit.to_string(), r.rank)).collect()
    }

    #[test]
    fn known_figures_rank_in_a_known_order() {
        // 130102: (100% + 100%) / 2 = 100%; 130104: (50% + 100%) / 2 = 75%; 130105: 0% + 50% = 25%.
        let units = [unit("130105", (0, 2), (1, 2)), unit("130102", (3, 3), (2, 2)), unit("130104", (1, 2), (1, 1))];
        let rows = rank(&units);
        assert_eq!(order(&rows), [("130102".into(), Some(1)), ("130104".into(), Some(2)), ("130105".into(), Some(3))]);
        assert_eq!(rows[1].score, Some(7_500));
        assert_eq!(pct(7_500), "75%");
        assert_eq!(Ratio::new(2, 3).percent(), "66.6%");
        let good = good_examples(&rows);
        assert_eq!(good.len(), 1);
        assert!(good[0].evidence.contains("排名第一") && good[0].evidence.contains("全部合格"), "{good:?}");
        let bad = bad_examples(&rows);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].unit, "130105".parse().unwrap());
        assert!(bad[0].evidence.contains("网络巡查合格率仅 0%（0/2）"), "{bad:?}");
    }

    #[test]
    fn a_unit_alone_in_its_table_is_praised_only_for_its_own_figures() {
        let rows = rank(&[unit("1301", (1, 2), (1, 1))]);
        assert_eq!(rows[0].rank, Some(1));
        assert!(good_examples(&rows).is_empty(), "first of one is no example");
        assert!(bad_examples(&rows).is_empty());
        let rows = rank(&[unit("1301", (2, 2), (1, 1))]);
        let good = good_examples(&rows);
        assert_eq!(good.len(), 1);
        assert!(!good[0].evidence.contains("排名第一") && good[0].evidence.contains("全部合格"), "{good:?}");
    }

    #[test]
    fn ties_share_a_rank_and_list_by_code_whatever_the_input_order() {
        let a = unit("130109", (1, 2), (0, 0));
        let b = unit("130102", (2, 4), (0, 0));
        let c = unit("130104", (4, 4), (0, 0));
        let none = UnitFigures::new("130101".parse().unwrap(), "无数据");
        let one = rank(&[a.clone(), b.clone(), c.clone(), none.clone()]);
        let two = rank(&[none, b, c, a]);
        assert_eq!(one, two);
        assert_eq!(
            order(&one),
            [
                ("130104".into(), Some(1)),
                ("130102".into(), Some(2)),
                ("130109".into(), Some(2)),
                ("130101".into(), None)
            ]
        );
        // Both tied units are last, both are bad examples; a table of one rank has none.
        assert_eq!(bad_examples(&one).len(), 2);
        assert!(bad_examples(&rank(&[unit("130102", (1, 1), (0, 0))])).is_empty());
        assert!(rank(&[]).is_empty());
    }

    #[test]
    fn periods_are_whole_weeks_and_months() {
        let day = crate::calendar::parse_day("2026-11-25").unwrap() as u32; // a Wednesday
        let w = Period::week_of(day);
        assert_eq!((day_str(w.first_day), day_str(w.last_day)), ("2026-11-23".into(), "2026-11-29".into()));
        assert_eq!(w.label(), "2026年11月23日至11月29日");
        let m = Period::month_of(day);
        assert_eq!((day_str(m.first_day), day_str(m.last_day)), ("2026-11-01".into(), "2026-11-30".into()));
        assert_eq!(m.label(), "2026年11月");
        let dec = Period::month_of(crate::calendar::parse_day("2026-12-31").unwrap() as u32);
        assert_eq!(day_str(dec.last_day), "2026-12-31");
        let last = Period::last_complete(PeriodKind::Weekly, day);
        assert_eq!(day_str(last.first_day), "2026-11-16");
        assert_eq!(day_str(Period::last_complete(PeriodKind::Monthly, day).first_day), "2026-10-01");
        assert!("yearly".parse::<PeriodKind>().unwrap_err().contains("weekly"));
    }
}
