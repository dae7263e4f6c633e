//! People act as themselves: the CLI acts as a local account (`--as`), every step carries that
//! person's name wherever it is shown, the role decides what they may do, ids outside the node's
//! subtree are refused as such (403, audited), and a school's own dismissal of a severe alert is
//! seen — and can be overturned — by its county.

use std::time::Duration;

use client::CallError;
use node::api::accounts::AccountRequest;
use node::api::alerts::{AlertVerdict, RaiseAlert};
use node::api::cases::StepRequest;
use topology::{NodeId, Tier};

use crate::{eventually, federation, mingchu};

fn status_of(e: &anyhow::Error) -> u16 {
    match e.downcast_ref::<CallError>() {
        Some(CallError::Refused { status, .. }) => *status,
        _ => panic!("not a refusal: {e:#}"),
    }
}

#[test]
fn people_act_as_themselves_within_their_role_and_subtree() {
    let (_dir, cluster) = federation(1, 2, 1);
    let province: NodeId = "13".parse().unwrap();
    let counties: Vec<NodeId> = cluster.ids().into_iter().filter(|n| n.tier() == Tier::County).collect();
    let (county, other_county) = (counties[0], counties[1]);
    let school = NodeId::school(county, 1).unwrap();
    let other_school = NodeId::school(other_county, 1).unwrap();
    let account = |node: NodeId, id: &str, name: &str, role: &str| {
        let req = AccountRequest {
            id: id.into(),
            display_name: name.into(),
            role: role.into(),
            password: "a long password".into(),
            disabled: false,
        };
        cluster.client(node).add_account(&req).unwrap();
    };
    account(county, "li.na", "李娜", "监管员");
    account(county, "zhao", "赵领导", "领导");
    account(school, "wang", "王安全", "食品安全员");
    account(school, "chen", "陈校长", "校长");
    let admin = |n: NodeId| cluster.admin_addr(n).to_string();

    // A severe alert at the school (the camera gateway: the local operator).
    let raise = |school: NodeId, camera: &str| {
        let req = RaiseAlert { camera: camera.into(), alert_type: "RODENT".into(), ..RaiseAlert::default() };
        cluster.client(school).raise_alert(&req).unwrap().id
    };
    let alert = raise(school, "cam-01");
    let other_alert = raise(other_school, "cam-01");

    // The school's food-safety officer dismisses it from the CLI, as himself.
    let (ok, out, err) =
        mingchu(&["--as", "wang", "alert", "dismiss", &alert, "--admin", &admin(school), "--reason", "影子"]);
    assert!(ok, "{out}{err}");
    // The county sees who did it and why — at the county, with the person's name.
    let seen = eventually(Duration::from_secs(20), "the dismissal at the county", || {
        let a = cluster.client(county).alert(&alert).ok()?;
        (a.status == "dismissed").then_some(a)
    });
    assert_eq!(seen.verdict_by, Some(school));
    assert_eq!(seen.verdict_person.as_ref().map(|p| p.name.as_str()), Some("王安全"));
    let (ok, out, _) = mingchu(&["alert", "show", &alert, "--admin", &admin(county)]);
    assert!(ok && out.contains("王安全（wang）") && out.contains("影子"), "{out}");

    // A viewer may not overturn it; a school may not; the supervisor does, with the reason.
    let overturn = AlertVerdict { reason: "画面清楚是老鼠".into(), ..AlertVerdict::default() };
    let e = cluster.client(county).acting_as("zhao").overturn_alert(&alert, &overturn).unwrap_err();
    assert_eq!(status_of(&e), 403, "{e:#}");
    assert!(e.to_string().contains("领导不能"), "{e:#}");
    let (ok, _, err) = mingchu(&["--as", "zhao", "alert", "confirm", &alert, "--admin", &admin(county)]);
    assert!(!ok && err.contains("无权操作"), "{err}");
    let e = cluster.client(school).acting_as("chen").overturn_alert(&alert, &overturn).unwrap_err();
    assert_eq!(status_of(&e), 403, "{e:#}");
    let (ok, out, err) = mingchu(&[
        "--as",
        "li.na",
        "alert",
        "overturn",
        &alert,
        "--admin",
        &admin(county),
        "--reason",
        "画面清楚是老鼠",
    ]);
    assert!(ok && out.contains("推翻了") && out.contains("王安全"), "{out}{err}");

    // Everywhere it is shown — the school, the province — both steps keep their people.
    for node in [school, province] {
        let a = eventually(Duration::from_secs(20), "the overturn everywhere", || {
            let a = cluster.client(node).alert(&alert).ok()?;
            (a.status == "confirmed").then_some(a)
        });
        assert_eq!(a.verdict_person.as_ref().map(|p| p.account.as_str()), Some("li.na"), "{node}");
        let o = a.overturned.expect("the dismissal stays on record");
        assert_eq!(
            (o.dismissed_by_person.map(|p| p.account), o.dismissal_reason.as_str()),
            (Some("wang".into()), "影子")
        );
    }

    // A case opened by the supervisor and answered by the principal: every step names its person.
    let (ok, out, err) = mingchu(&[
        "--as",
        "li.na",
        "alert",
        "confirm",
        &raise(school, "cam-02"),
        "--open-case",
        "--admin",
        &admin(county),
    ]);
    assert!(ok && out.contains("挂账"), "{out}{err}");
    let case = cluster.client(county).cases(None, Some("open"), false).unwrap().remove(0).id;
    eventually(Duration::from_secs(20), "the case at the school", || cluster.client(school).case(&case).ok());
    let e = cluster.client(school).acting_as("wang").case_step(&case, &StepRequest::Ack).unwrap_err();
    assert_eq!(status_of(&e), 403, "a safety officer does not answer notices: {e:#}");
    cluster.client(school).acting_as("chen").case_step(&case, &StepRequest::Ack).unwrap();
    let c = eventually(Duration::from_secs(20), "the acknowledgement at the county", || {
        let c = cluster.client(county).case(&case).ok()?;
        (c.history.len() == 4).then_some(c)
    });
    let people: Vec<String> =
        c.history.iter().map(|s| s.person.as_ref().map(|p| p.name.clone()).unwrap_or_default()).collect();
    assert_eq!(people, ["李娜", "李娜", "陈校长", "陈校长"], "{:?}", c.history);
    let (ok, out, _) = mingchu(&["case", "show", &case, "--admin", &admin(province)]);
    assert!(ok && out.contains("李娜（li.na）") && out.contains("陈校长（chen）"), "{out}");

    // Another county's alert and case, guessed by id: refused as outside the subtree, audited.
    let e = cluster.client(county).acting_as("li.na").alert(&other_alert).unwrap_err();
    assert_eq!(status_of(&e), 403, "{e:#}");
    let e =
        cluster.client(county).acting_as("li.na").confirm_alert(&other_alert, &AlertVerdict::default()).unwrap_err();
    assert_eq!(status_of(&e), 403, "{e:#}");
    let e = cluster.client(county).acting_as("li.na").case(&format!("{other_county}#1")).unwrap_err();
    assert_eq!(status_of(&e), 403, "{e:#}");
    let audit = cluster.client(county).audit(100).unwrap();
    let denied = audit.iter().filter(|r| r.what == "denied").count();
    assert!(denied >= 5, "viewer ×2, and three ids of another county: {audit:?}");
    assert!(
        audit
            .iter()
            .any(|r| r.what == "denied" && r.account == "li.na" && r.detail.contains(&other_school.to_string()))
    );
    let st = cluster.client(county).status().unwrap();
    assert!(st.denied_requests >= 5, "counted in the node's status: {}", st.denied_requests);
    let (ok, out, _) = mingchu(&["topology", "show", "--links", "--admin", &admin(county)]);
    assert!(ok && out.contains("无权操作被拒"), "{out}");

    // An unknown or disabled account cannot be acted as.
    let e = cluster.client(county).acting_as("nobody").alerts(5, None).unwrap_err();
    assert_eq!(status_of(&e), 401, "{e:#}");
}

/// What a school typed shows as text, never as markup; a refused form writes nothing and says why
/// in Chinese.
#[test]
fn the_console_escapes_what_people_typed_and_refuses_bad_forms_without_writing() {
    use protocol::registry::{Canteen, EntityData, EntityKind, RegistryOp};
    let (_dir, mut cluster) = federation(1, 1, 1);
    let county: NodeId = "130102".parse().unwrap();
    let school = NodeId::school(county, 1).unwrap();
    let add = |node: NodeId, id: &str, role: &str| {
        let req = AccountRequest {
            id: id.into(),
            display_name: format!("<b>{id}</b>"),
            role: role.into(),
            password: "a long password".into(),
            disabled: false,
        };
        cluster.client(node).add_account(&req).unwrap();
    };
    add(school, "chen", "校长");
    add(county, "li.na", "监管员");
    let evil = "<script>alert(1)</script>";
    let canteen = Canteen { name: evil.into(), address: "\"><img src=x onerror=alert(2)>".into() };
    let req = node::api::registry::RegistryRequest {
        kind: EntityKind::Canteen,
        node: None,
        id: "evil".into(),
        op: RegistryOp::Upsert(EntityData::Canteen(canteen)),
    };
    cluster.client(school).registry_write(&req).unwrap();

    let mut web = crate::console::Web::new(&cluster, school);
    assert_eq!(web.sign_in("chen", "a long password").status, 303);
    let page = web.get("/registry?kind=canteen");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{}", page.body);
    assert!(!page.body.contains(evil) && !page.body.contains("<img src=x"), "markup got through");
    assert!(page.body.contains("&lt;b&gt;chen&lt;/b&gt;"), "the person's name is escaped too");

    // The principal adds a parent in the console; the account carries who created it.
    let csrf = web.csrf();
    let fields = [
        ("csrf", csrf.as_str()),
        ("id", "wang.jia"),
        ("display_name", "王家长"),
        ("role", "parent"),
        ("password", "short"),
    ];
    let page = web.post("/accounts", &fields);
    assert!(page.status == 400 && page.body.contains("密码至少 8"), "{}", page.body);
    let mut fields = fields;
    fields[4].1 = "a long password";
    assert_eq!(web.post("/accounts", &fields).status, 303);
    let parent = cluster.client(school).accounts(None).unwrap().into_iter().find(|a| a.id == "wang.jia").unwrap();
    assert_eq!(parent.updated_by_person.map(|p| p.account), Some("chen".into()));

    // A directive without a title: refused with the reason, nothing sent.
    let mut web = crate::console::Web::new(&cluster, county);
    assert_eq!(web.sign_in("li.na", "a long password").status, 303);
    let csrf = web.csrf();
    let before = cluster.client(county).directives(100).unwrap().len();
    let page = web.post("/directives", &[("csrf", &csrf), ("to", &school.to_string()), ("title", " "), ("text", "x")]);
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("请填写标题"), "{}", page.body);
    let page = web.post("/directives", &[("csrf", &csrf), ("to", "13"), ("title", "越级"), ("text", "x")]);
    assert_eq!(page.status, 400, "a unit outside the subtree: {}", page.body);
    let page = web.post("/alerts/verdict", &[("csrf", &csrf), ("id", "130104-S0001#1"), ("kind", "confirm")]);
    assert_eq!(page.status, 403, "an alert of another county: {}", page.body);
    assert_eq!(cluster.client(county).directives(100).unwrap().len(), before, "nothing was written");
    let page =
        web.post("/directives", &[("csrf", &csrf), ("to", &school.to_string()), ("title", "明日检查"), ("text", "")]);
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(cluster.client(county).directives(100).unwrap().len(), before + 1);
    // The sender sees it delivered once the school holds it; one sent while the school is down
    // waits.
    eventually(Duration::from_secs(20), "the directive delivered", || {
        web.get("/directives").body.contains(">已送达<").then_some(())
    });
    cluster.stop(school).unwrap();
    let page =
        web.post("/directives", &[("csrf", &csrf), ("to", &school.to_string()), ("title", "停电通知"), ("text", "")]);
    assert_eq!(page.status, 303, "{}", page.body);
    let page = web.get("/directives");
    assert!(page.body.contains("已送达 0/1 个下级，其余待送达") && page.body.contains(">已送达<"), "{}", page.body);
}
