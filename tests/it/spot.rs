//! Online spot checks on real processes: counties record checks (API and CLI), failures open
//! cases at the school, and every level rolls up its own subtree's pass rates from what it holds.

use std::time::Duration;

use node::api::spot::{RateView, RecordSpotCheck, SpotCheckRecorded};
use protocol::case::{CaseSource, CaseStatus, ChinaTime};
use protocol::spot::FocusArea;
use topology::NodeId;

use crate::{eventually, federation, mingchu};

fn id(s: &str) -> NodeId {
    s.parse().unwrap()
}

fn rate_of(rates: &[RateView], unit: &str) -> Option<(u64, u64)> {
    rates.iter().find(|r| r.unit == id(unit)).map(|r| (r.checked, r.passed))
}

#[test]
fn spot_checks_open_cases_for_failures_and_roll_up_pass_rates_per_level() {
    let (_dir, cluster) = federation(1, 2, 2);
    let (province, city, county, other_county) = (id("13"), id("1301"), id("130102"), id("130104"));
    let (s1, s2, other_school) = (id("130102-S0001"), id("130102-S0002"), id("130104-S0001"));
    let admin = |n: NodeId| cluster.admin_addr(n).to_string();
    let pass = |school| RecordSpotCheck {
        school,
        canteen: "main".into(),
        failed: vec![],
        note: String::new(),
        severity: None,
        snapshots: Vec::new(),
    };

    // A pass by the API; a failure in two areas by the CLI, opening a case for each.
    let ok = cluster.client(county).spot_check(&pass(s1)).unwrap();
    assert!(ok.check.passed && ok.cases.is_empty(), "{ok:?}");
    let (done, out, err) = mingchu(&[
        "spot",
        "record",
        "--admin",
        &admin(county),
        "--school",
        "130102-S0002",
        "--fail",
        "staff-attire",
        "--fail",
        "food-processing",
        "--note",
        "no hats; raw and cooked on one board",
        "--json",
    ]);
    assert!(done, "{err}");
    let failed: SpotCheckRecorded = serde_json::from_str(&out).unwrap();
    assert!(!failed.check.passed, "{failed:?}");
    assert_eq!(failed.check.failed, [FocusArea::FoodProcessing, FocusArea::StaffAttire]);
    assert_eq!(failed.cases.len(), 2, "a case per failed area");
    cluster.client(other_county).spot_check(&pass(other_school)).unwrap();

    // Refused, and nothing written: a school checking itself, a county outside its subtree, bad areas.
    let e = cluster.client(s1).spot_check(&pass(s1)).unwrap_err().to_string();
    assert!(e.contains("学校不做网络巡查"), "{e}");
    let e = cluster.client(county).spot_check(&pass(other_school)).unwrap_err().to_string();
    assert!(e.contains("不在本辖区"), "{e}");
    let (done, _, err) =
        mingchu(&["spot", "record", "--admin", &admin(county), "--school", "130102-S0001", "--fail", "attire"]);
    assert!(!done && err.contains("没有“attire”这一抽查项目") && err.contains("staff-attire"), "{err}");
    let mut twice = pass(s1);
    twice.failed = vec![FocusArea::StaffAttire, FocusArea::StaffAttire];
    let e = cluster.client(county).spot_check(&twice).unwrap_err().to_string();
    assert!(e.contains("重复"), "{e}");
    let e = cluster.client(province).pass_rates(None, Some("2026-13"), None).unwrap_err().to_string();
    assert!(e.contains("2026-12-05"), "{e}");

    // The province rolls up every level; each level only its own subtree.
    let rates = eventually(Duration::from_secs(15), "all three checks at the province", || {
        let r = cluster.client(province).pass_rates(None, None, None).ok()?;
        (rate_of(&r, "13") == Some((3, 2))).then_some(r)
    });
    assert_eq!(rate_of(&rates, "1301"), Some((3, 2)));
    assert_eq!(rate_of(&rates, "130102"), Some((2, 1)));
    assert_eq!(rate_of(&rates, "130104"), Some((1, 1)));
    let at_county = cluster.client(county).pass_rates(None, None, None).unwrap();
    assert_eq!(at_county.iter().map(|r| r.unit).collect::<Vec<_>>(), [county], "{at_county:?}");
    assert_eq!(rate_of(&at_county, "130102"), Some((2, 1)));
    let at_city = cluster.client(city).pass_rates(Some(county), None, None).unwrap();
    assert_eq!(at_city.iter().map(|r| r.unit).collect::<Vec<_>>(), [county], "under narrows: {at_city:?}");

    // Today's checks by day and month; none on a day long ago.
    let today = ChinaTime(node::clock::unix_ms()).date();
    let on = |day: &str| cluster.client(province).spot_checks(None, Some(day), None, 100).unwrap().len();
    assert_eq!(on(&today), 3);
    assert_eq!(on("2020-01-01"), 0);
    let month = cluster.client(province).spot_checks(None, None, Some(&today[..7]), 100).unwrap();
    assert_eq!(month.len(), 3);
    assert!(month.iter().any(|c| c.school == s2 && !c.passed && c.by == county));
    let (done, out, err) = mingchu(&["spot", "rates", "--admin", &admin(province), "--day", &today]);
    assert!(done && out.contains("66.67%") && out.contains("50.00%"), "{out}{err}");

    // The failing school holds both cases, noticed, from the spot check.
    let cases = eventually(Duration::from_secs(15), "both cases at the failing school", || {
        let c = cluster.client(s2).cases(None, None, false).ok()?;
        (c.len() == 2).then_some(c)
    });
    for c in &cases {
        assert_eq!(c.status, CaseStatus::NoticeIssued, "{c:?}");
        assert!(failed.cases.contains(&c.id), "{c:?}");
        let state = cluster.client(s2).case(&c.id).unwrap();
        assert_eq!(state.source, CaseSource::SpotCheck);
    }
    assert!(cases.iter().any(|c| c.title.contains("人员着装")) && cases.iter().any(|c| c.title.contains("食品加工")));
    assert!(cluster.client(s1).cases(None, None, false).unwrap().is_empty(), "the passing school has none");
}
