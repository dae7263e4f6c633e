//! Online spot checks (网络巡查): an inspector at a supervising node views a canteen's cameras and
//! scores four focus areas, pass or fail each; any failure fails the check (and opens a case per
//! problem, as separate case events). Pass rates roll up per county, city and province.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use topology::NodeId;

use crate::event::{Body, Event};

/// The four focus areas of DOMAIN.md. Named in kebab case in JSON and on the command line
/// (`staff-attire`); on the wire (bincode) by position, so the order is fixed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FocusArea {
    FoodProcessing,
    IngredientPlacement,
    StaffAttire,
    EnvironmentalHygiene,
}

impl FocusArea {
    pub const ALL: [FocusArea; 4] = [
        FocusArea::FoodProcessing,
        FocusArea::IngredientPlacement,
        FocusArea::StaffAttire,
        FocusArea::EnvironmentalHygiene,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FocusArea::FoodProcessing => "food processing",
            FocusArea::IngredientPlacement => "ingredient placement",
            FocusArea::StaffAttire => "staff attire",
            FocusArea::EnvironmentalHygiene => "environmental hygiene",
        }
    }

    /// The name the API and the command line use: `food-processing`.
    pub fn key(self) -> &'static str {
        match self {
            FocusArea::FoodProcessing => "food-processing",
            FocusArea::IngredientPlacement => "ingredient-placement",
            FocusArea::StaffAttire => "staff-attire",
            FocusArea::EnvironmentalHygiene => "environmental-hygiene",
        }
    }

    /// 食品加工, 食材摆放, 人员着装, 环境卫生.
    pub fn zh(self) -> &'static str {
        match self {
            FocusArea::FoodProcessing => "食品加工",
            FocusArea::IngredientPlacement => "食材摆放",
            FocusArea::StaffAttire => "人员着装",
            FocusArea::EnvironmentalHygiene => "环境卫生",
        }
    }
}

impl std::fmt::Display for FocusArea {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

impl std::str::FromStr for FocusArea {
    type Err = String;

    fn from_str(s: &str) -> Result<FocusArea, String> {
        FocusArea::ALL.into_iter().find(|a| a.key() == s.trim()).ok_or_else(|| {
            let keys: Vec<&str> = FocusArea::ALL.iter().map(|a| a.key()).collect();
            format!("没有“{s}”这一抽查项目，可选：{}", keys.join(", "))
        })
    }
}

/// Longest canteen name or note on a spot check (bytes).
pub const SPOT_TEXT_BYTES_MAX: usize = 512;

/// One spot check of one canteen of the scope's school (the event's scope is the school).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpotCheck {
    pub canteen: String,
    /// Each focus area scored at most once: `true` = pass.
    pub results: Vec<(FocusArea, bool)>,
    pub note: String,
}

impl SpotCheck {
    /// A check passes when every area scored passes.
    pub fn passed(&self) -> bool {
        self.results.iter().all(|(_, ok)| *ok)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.canteen.trim().is_empty() {
            return Err("抽查须写明所查的食堂".into());
        }
        if self.canteen.len() > SPOT_TEXT_BYTES_MAX || self.note.len() > SPOT_TEXT_BYTES_MAX {
            return Err(format!("食堂名称和备注各最多 {SPOT_TEXT_BYTES_MAX} 字节"));
        }
        if self.results.is_empty() {
            return Err("抽查须至少评定一个项目".into());
        }
        for (i, (a, _)) in self.results.iter().enumerate() {
            if self.results[..i].iter().any(|(b, _)| b == a) {
                return Err(format!("抽查项目“{}”评定了两次", a.zh()));
            }
        }
        Ok(())
    }
}

/// Checks and passes of a unit's subtree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassRate {
    pub checked: u64,
    pub passed: u64,
}

impl PassRate {
    /// Passed / checked, in percent (0 when nothing was checked).
    pub fn percent(&self) -> f64 {
        if self.checked == 0 { 0.0 } else { self.passed as f64 * 100.0 / self.checked as f64 }
    }
}

/// Pass rates rolled up to every unit above the checked schools (county, city, province), from
/// the spot-check events among `events`.
pub fn pass_rates<'a>(events: impl IntoIterator<Item = &'a Event>) -> BTreeMap<NodeId, PassRate> {
    let mut out: BTreeMap<NodeId, PassRate> = BTreeMap::new();
    for e in events {
        let Body::SpotCheck(c) = &e.body else { continue };
        for unit in e.scope.ancestors() {
            let r = out.entry(unit).or_default();
            r.checked += 1;
            r.passed += u64::from(c.passed());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Hlc;

    #[test]
    fn checks_validate_and_roll_up() {
        let school: NodeId = "130102-S0001".parse().unwrap();
        let other: NodeId = "130104-S0001".parse().unwrap();
        let check = |ok: bool| SpotCheck {
            canteen: "main".into(),
            results: vec![(FocusArea::StaffAttire, ok), (FocusArea::FoodProcessing, true)],
            note: String::new(),
        };
        assert!(check(true).validate().is_ok() && check(true).passed() && !check(false).passed());
        let mut twice = check(true);
        twice.results.push((FocusArea::StaffAttire, true));
        assert!(twice.validate().unwrap_err().contains("抽查项目“人员着装”评定了两次"));
        let province: NodeId = "13".parse().unwrap();
        let ev = |seq, scope, ok| Event {
            by: None,
            origin: province,
            seq,
            hlc: Hlc::default(),
            scope,
            body: Body::SpotCheck(check(ok)),
        };
        let events = [ev(1, school, true), ev(2, school, false), ev(3, other, true)];
        let rates = pass_rates(events.iter());
        assert_eq!(rates[&"130102".parse().unwrap()], PassRate { checked: 2, passed: 1 });
        assert_eq!(rates[&province], PassRate { checked: 3, passed: 2 });
        assert!((rates[&province].percent() - 66.666).abs() < 0.01);
        assert!(!rates.contains_key(&school), "rates roll up to units above the school");
    }

    #[test]
    fn focus_areas_parse_from_their_keys_and_nothing_else() {
        for a in FocusArea::ALL {
            assert_eq!(a.key().parse::<FocusArea>(), Ok(a));
            assert_eq!(serde_json::to_string(&a).unwrap(), format!("\"{}\"", a.key()));
        }
        let e = "staff attire".parse::<FocusArea>().unwrap_err();
        assert!(e.contains("没有“staff attire”这一抽查项目") && e.contains("staff-attire"), "{e}");
    }
}
