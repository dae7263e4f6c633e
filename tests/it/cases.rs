//! The case lifecycle across real processes: a case opened by a county, rectified by its school
//! while the county is down, reviewed and closed after it returns; an overdue case escalating
//! county → city → province on schedule; alerts confirmed into cases or dismissed; steps without
//! authority refused and counted.

use std::time::Duration;

use harness::cluster::Cluster;
use node::api::alerts::AlertVerdict;
use node::api::alerts::RaiseAlert;
use node::api::cases::{OpenCase, StepRequest};
use protocol::case::{CaseState, CaseStatus, add_working_days};
use topology::generate::SmallSpec;
use topology::{NodeId, Tier};

use crate::{eventually, federation};

fn id(s: &str) -> NodeId {
    s.parse().unwrap()
}

/// The case as `node` folds it, once it satisfies `ok`.
fn case_at(cluster: &Cluster, node: NodeId, case: &str, what: &str, ok: impl Fn(&CaseState) -> bool) -> CaseState {
    eventually(Duration::from_secs(30), &format!("{what} at {node}"), || {
        cluster.client(node).case(case).ok().filter(|c| ok(c))
    })
}

fn refused(cluster: &Cluster, node: NodeId) -> u64 {
    cluster.status(node).unwrap().store.refused_steps
}

/// Every node on the case's path folds exactly the same state, history included.
fn same_everywhere(cluster: &Cluster, nodes: &[NodeId], case: &str) -> CaseState {
    let states: Vec<CaseState> = nodes.iter().map(|n| cluster.client(*n).case(case).unwrap()).collect();
    for (n, s) in nodes.iter().zip(&states) {
        assert_eq!(s, &states[0], "{n} folds the case differently from {}", nodes[0]);
    }
    states[0].clone()
}

#[test]
fn a_case_runs_its_lifecycle_with_the_county_offline_in_the_middle() {
    let (_dir, mut cluster) = federation(1, 2, 2);
    let (province, city, county, other_county) = (id("13"), id("1301"), id("130102"), id("130104"));
    let school = NodeId::school(county, 1).unwrap();
    let path = [school, county, city, province];

    // 挂账 + 整改通知 by the county.
    let opened = cluster
        .client(county)
        .open_case(&OpenCase {
            school,
            severity: "serious".into(),
            source: Some("spot-check".into()),
            title: "staff without hats in the cooking zone".into(),
            detail: "online spot check, item: staff attire".into(),
            notice: true,
            notice_text: None,
            deadline_ms: None,
        })
        .unwrap();
    let case = opened.id.to_string();
    assert_eq!(opened.status, CaseStatus::NoticeIssued);
    case_at(&cluster, school, &case, "the notice", |c| c.status == CaseStatus::NoticeIssued);

    // A school may not close its own case; a county may not touch another county's case.
    let err = cluster.client(school).case_step(&case, &StepRequest::Close { comment: "done".into() }).unwrap_err();
    assert!(err.to_string().contains(&format!("只有 {school} 的上级监管部门（县级及以上）可以执行“销号”")), "{err}");
    assert_eq!(refused(&cluster, school), 1);
    let err = cluster.client(other_county).case_step(&case, &StepRequest::Close { comment: "x".into() }).unwrap_err();
    assert!(err.to_string().contains(&format!("无权操作：{county} 不在本单位（{other_county}）的管辖范围内")), "{err}");
    let audit = cluster.client(other_county).audit(10).unwrap();
    assert!(audit.iter().any(|r| r.what == "denied"), "refused as outside its subtree, and audited: {audit:?}");
    assert!(cluster.client(other_county).cases(None, None, false).unwrap().is_empty(), "a sibling county holds it");

    // The school acknowledges; then the county goes down and the school rectifies meanwhile.
    cluster.client(school).case_step(&case, &StepRequest::Ack).unwrap();
    cluster.kill(county).unwrap();
    let submitted = cluster
        .client(school)
        .case_step(&case, &StepRequest::Submit { evidence: vec!["after/hats.jpg".into()], note: "hats on".into() })
        .unwrap();
    assert_eq!(submitted.status, CaseStatus::Submitted);
    // The rectification reaches the province by failover while the county is down.
    case_at(&cluster, province, &case, "the rectification (by failover)", |c| c.status == CaseStatus::Submitted);
    cluster.start(county).unwrap();
    case_at(&cluster, county, &case, "the rectification after catch-up", |c| c.status == CaseStatus::Submitted);

    // 复核 and 销号 by the county; every node ends with the same state.
    cluster
        .client(county)
        .case_step(
            &case,
            &StepRequest::Review { passed: true, comment: "checked on video".into(), new_deadline_ms: None },
        )
        .unwrap();
    cluster.client(county).case_step(&case, &StepRequest::Close { comment: "rectified".into() }).unwrap();
    for n in path {
        case_at(&cluster, n, &case, "the closing", |c| c.status == CaseStatus::Closed);
    }
    let end = same_everywhere(&cluster, &path, &case);
    assert!(end.refused().next().is_none(), "no step was refused: {:?}", end.history);
    assert_eq!(cluster.client(city).cases(Some(county), Some("closed"), false).unwrap().len(), 1);
}

#[test]
fn an_overdue_case_escalates_county_city_province_on_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SmallSpec { cities: 1, counties_per_city: 1, schools_per_county: 1 };
    let mut cluster = Cluster::create(dir.path(), &spec, &crate::binary()).unwrap();
    for n in cluster.ids() {
        cluster
            .edit_config(n, |c| {
                c.clock_control = true;
                c.case_scan_ms = 200;
            })
            .unwrap();
    }
    cluster.start_all().unwrap();
    cluster.wait_links_up(Duration::from_secs(30)).unwrap();
    cluster.register_cameras().unwrap();
    let (province, city, county) = (id("13"), id("1301"), id("130102"));
    let school = NodeId::school(county, 1).unwrap();
    let path = [school, county, city, province];
    let opened = cluster
        .client(county)
        .open_case(&OpenCase {
            school,
            severity: "general".into(),
            source: None,
            title: "food sample missing".into(),
            detail: String::new(),
            notice: true,
            notice_text: None,
            deadline_ms: None,
        })
        .unwrap();
    let case = opened.id.to_string();
    let deadline = opened.deadline_ms.unwrap();
    case_at(&cluster, school, &case, "the notice", |c| c.status == CaseStatus::NoticeIssued);
    // Moves every node's clock to `to` (they all run on this machine's clock plus one offset).
    let move_to = |cluster: &Cluster, to: u64| {
        let now = cluster.client(county).advance_clock(Duration::ZERO).unwrap().wall_ms;
        for n in cluster.ids() {
            cluster.client(n).advance_clock(Duration::from_millis(to.saturating_sub(now))).unwrap();
        }
    };
    let hour = 3_600_000;

    // Past the deadline: overdue, still the county's.
    move_to(&cluster, deadline + hour);
    let c = case_at(&cluster, province, &case, "overdue", |c| c.overdue);
    assert_eq!(c.supervisor, county);
    // Overdue 3 working days: county 督办 puts it on the city's list.
    move_to(&cluster, add_working_days(deadline, 3) + hour);
    for n in path {
        case_at(&cluster, n, &case, "escalation to the city", |c| c.supervisor == city);
    }
    assert_eq!(cluster.client(city).cases(None, Some("open"), true).unwrap().len(), 1, "on the city's list");
    // Overdue 7 working days: the city escalates to the province.
    move_to(&cluster, add_working_days(deadline, 7) + hour);
    for n in path {
        case_at(&cluster, n, &case, "escalation to the province", |c| c.supervisor == province);
    }
    let end = same_everywhere(&cluster, &path, &case);
    let escalations: Vec<_> = end.history.iter().filter(|s| s.action.as_str() == "escalate").collect();
    assert!(
        escalations.iter().filter(|s| s.outcome == protocol::case::StepOutcome::Applied).count() == 2,
        "{escalations:?}"
    );
    assert_eq!(end.status, CaseStatus::NoticeIssued, "escalation does not change the status");

    // An alert nobody handles for 24 h shows in the county's queue, until somebody judges it.
    let a = cluster
        .client(school)
        .raise_alert(&RaiseAlert { camera: "cam-01".into(), alert_type: "PHONE".into(), ..RaiseAlert::default() })
        .unwrap();
    eventually(Duration::from_secs(15), "the alert at the county", || {
        cluster.client(county).alerts(100, None).ok()?.iter().any(|x| x.id == a.id).then_some(())
    });
    let queue = |cluster: &Cluster| cluster.client(county).alerts_where(100, None, None, Some(24)).unwrap();
    assert!(queue(&cluster).iter().all(|x| x.id != a.id), "not yet 24 h old");
    let now = cluster.client(county).advance_clock(Duration::ZERO).unwrap().wall_ms;
    move_to(&cluster, now + 25 * hour);
    assert!(queue(&cluster).iter().any(|x| x.id == a.id), "in the county's queue after 24 h");
    cluster
        .client(county)
        .dismiss_alert(&a.id, &AlertVerdict { reason: "staff break".into(), ..AlertVerdict::default() })
        .unwrap();
    assert!(queue(&cluster).iter().all(|x| x.id != a.id), "judged: out of the queue");
    cluster.stop_all();
}

#[test]
fn a_confirmed_alert_opens_a_case_and_a_dismissed_one_is_recorded() {
    let (_dir, cluster) = federation(1, 1, 2);
    let (province, county) = (id("13"), id("130102"));
    let school = NodeId::school(county, 1).unwrap();
    let raise = |camera: &str| {
        cluster
            .client(school)
            .raise_alert(&RaiseAlert { camera: camera.into(), alert_type: "RODENT".into(), ..RaiseAlert::default() })
            .unwrap()
            .id
    };
    let (real, false_positive) = (raise("cam-04"), raise("cam-06"));
    // The same camera seeing the same thing again within 30 min is one alert with two detections.
    let again = cluster
        .client(school)
        .raise_alert(&RaiseAlert { camera: "cam-04".into(), alert_type: "RODENT".into(), ..RaiseAlert::default() })
        .unwrap();
    assert!(again.merged && again.id == real && again.detections == 2, "{again:?}");
    eventually(Duration::from_secs(15), "the repeat at the province", || {
        let held = cluster.client(province).alerts(100, None).ok()?;
        held.iter().find(|a| a.id == real && a.detections == 2).map(|_| ())
    });
    eventually(Duration::from_secs(15), "both alerts at the county", || {
        let held = cluster.client(county).alerts(100, None).ok()?;
        (held.iter().filter(|a| a.id == real || a.id == false_positive).count() == 2).then_some(())
    });
    // The school may not open cases.
    let v = AlertVerdict { open_case: true, ..AlertVerdict::default() };
    assert!(cluster.client(school).confirm_alert(&real, &v).is_err());
    // The county confirms one and opens its case; the school dismisses the other.
    let confirmed = cluster.client(county).confirm_alert(&real, &v).unwrap();
    let case = confirmed.state.case.expect("a case was opened").to_string();
    let dismissed = cluster
        .client(school)
        .dismiss_alert(&false_positive, &AlertVerdict { reason: "a cat toy".into(), ..AlertVerdict::default() })
        .unwrap();
    assert_eq!(dismissed.state.status.as_str(), "dismissed");
    // A later contradicting verdict (once the county holds the dismissal) is refused and counted.
    eventually(Duration::from_secs(15), "the dismissal at the county", || {
        let held = cluster.client(county).alerts(100, None).ok()?;
        held.iter().any(|a| a.id == false_positive && a.status == "dismissed").then_some(())
    });
    let before = refused(&cluster, county);
    assert!(cluster.client(county).confirm_alert(&false_positive, &AlertVerdict::default()).is_err());
    assert_eq!(refused(&cluster, county), before + 1);
    // The drafted case and its notice reach the school and the province.
    eventually(Duration::from_secs(15), "the verdicts listed at the province", || {
        let held = cluster.client(province).alerts(100, None).ok()?;
        let status = |id: &str| held.iter().find(|a| a.id == id).map(|a| a.status.clone());
        (status(&real)? == "confirmed" && status(&false_positive)? == "dismissed").then_some(())
    });
    // A status filter looks past newer alerts of other statuses: the newest is the dismissed one.
    let confirmed_only = cluster.client(province).alerts_where(1, None, Some("confirmed"), None).unwrap();
    assert_eq!(confirmed_only.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), [real.as_str()]);
    // A status only older alerts have: the listing gives up folding the newest one by one and
    // folds every alert instead, and still finds it.
    let newer: Vec<RaiseAlert> = (0..2 * node::api::alerts::LAZY_FOLDS_PER_ROW)
        .map(|n| RaiseAlert {
            camera: format!("cam-{:02}", n % 8 + 1),
            alert_type: "PHONE".into(),
            no_merge: true,
            ..RaiseAlert::default()
        })
        .collect();
    cluster.client(school).raise_alerts(newer).unwrap();
    let dismissed_only = cluster.client(school).alerts_where(1, None, Some("dismissed"), None).unwrap();
    assert_eq!(dismissed_only.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), [false_positive.as_str()]);
    for n in [school, province] {
        let c = case_at(&cluster, n, &case, "the drafted case", |c| c.status == CaseStatus::NoticeIssued);
        assert!(c.title.contains("RODENT"), "{}", c.title);
        assert!(matches!(c.source, protocol::case::CaseSource::AiAlert { .. }));
    }
    assert!(
        cluster.ids().iter().all(|n| n.tier() != Tier::School || *n == school || {
            cluster.client(*n).cases(None, None, false).unwrap().is_empty()
        }),
        "the sibling school holds none of it"
    );
}
