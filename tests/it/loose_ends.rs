//! What a new administrator ran into, each fixed and held here: a refused command writes nothing,
//! the settings drive deadlines (with a county's override), directives are listed by the node
//! before the limit, limits and dates a person types are checked, and exit codes tell refusals
//! apart.

use node::api::alerts::RaiseAlert;
use node::api::cases::OpenCase;
use node::api::directives::SendDirective;
use node::api::registry::RegistryRequest;
use protocol::case::add_working_days;
use protocol::registry::{EntityData, EntityKind, RegistryOp, Settings};
use topology::NodeId;

use crate::{federation, mingchu};

fn id(s: &str) -> NodeId {
    s.parse().unwrap()
}

fn open(school: NodeId, title: &str) -> OpenCase {
    OpenCase {
        school,
        severity: "general".into(),
        source: None,
        title: title.into(),
        detail: String::new(),
        notice: true,
        notice_text: None,
        deadline_ms: None,
    }
}

#[test]
fn refusals_write_nothing_settings_apply_and_listings_filter_on_the_node() {
    let (_dir, cluster) = federation(1, 1, 1);
    let (province, county) = (id("13"), id("130102"));
    let school = NodeId::school(county, 1).unwrap();
    let admin = cluster.admin_addr(county).to_string();

    // A case with a blank title: refused as a bad request, and nothing is written (it used to
    // write the open and notice events first: "ghost" cases at the province).
    let before = cluster.status(county).unwrap().store.own_seq;
    let e = cluster.client(county).open_case(&open(school, "")).unwrap_err();
    assert!(e.to_string().contains("不能挂账：案件标题不能为空"), "{e}");
    let (ok, _, err) = mingchu(&[
        "case",
        "open",
        "--admin",
        &admin,
        "--school",
        &school.to_string(),
        "--severity",
        "general",
        "--title",
        "",
    ]);
    assert!(!ok && err.contains("案件标题不能为空"), "{err}");
    assert_eq!(cluster.status(county).unwrap().store.own_seq, before, "a refused case open wrote events");

    // The county overrides the deadline of 一般 problems: 5 working days, not the default 1.
    let settings = Settings { deadline_general_days: 5, ..Settings::default() };
    cluster
        .client(county)
        .registry_write(&RegistryRequest {
            kind: EntityKind::Settings,
            node: None,
            id: String::new(),
            op: RegistryOp::Upsert(EntityData::Settings(settings)),
        })
        .unwrap();
    let case = cluster.client(county).open_case(&open(school, "抹布未分类")).unwrap();
    let opened = case.opened_at_ms;
    let deadline = case.deadline_ms.unwrap();
    assert!(
        deadline.abs_diff(add_working_days(opened, 5)) < 60_000,
        "deadline {deadline} is not 5 working days after {opened}"
    );

    // Directives: 3 sent, then many other events; `directive list --limit 2` lists 2 directives.
    for n in 0..3 {
        let d =
            SendDirective { to: school.to_string(), title: format!("通知 {n}"), text: format!("第 {n} 号正文") };
        cluster.client(county).send_directive(&d).unwrap();
    }
    for n in 0..5 {
        cluster.client(county).open_case(&open(school, &format!("问题 {n}"))).unwrap();
    }
    let listed = cluster.client(county).directives(2).unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0].title, "通知 2");
    assert_eq!(listed[0].text, "第 2 号正文", "the body is shown, not only the title");
    let (ok, out, _) = mingchu(&["directive", "list", "--admin", &admin, "--limit", "all"]);
    assert!(ok && out.contains("第 0 号正文") && out.contains("通知 1"), "{out}");

    // A limit of 0, an unknown filter value, a date that is not one: refused, with what is valid.
    let (ok, _, err) = mingchu(&["directive", "list", "--admin", &admin, "--limit", "0"]);
    assert!(!ok && err.contains("all"), "{err}");
    let (ok, _, err) = mingchu(&["case", "list", "--admin", &admin, "--status", "bogus"]);
    assert!(!ok && err.contains("rectifying"), "{err}");
    let out = std::process::Command::new(crate::binary())
        .args(["case", "list", "--admin", &admin, "--status", "bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a bad request exits with 2");
    let s_admin = cluster.admin_addr(school).to_string();
    let (ok, _, err) =
        mingchu(&["registry", "staff", "add", "--admin", &s_admin, "--id", "s1", "--name", "张三", "--role", "cook"]);
    assert!(ok, "{err}");
    let cert_add = |id: &str, until: &str| {
        let (ok, _, err) = mingchu(&[
            "registry",
            "cert",
            "add",
            "--admin",
            &s_admin,
            "--id",
            id,
            "--staff",
            "s1",
            "--number",
            id,
            "--valid-until",
            until,
        ]);
        (ok, err)
    };
    let (ok, err) = cert_add("c1", "20261210");
    assert!(!ok && err.contains("2026-12-05"), "{err}");
    // Certificate warnings follow the settings in force (30 days by default): an expired one and
    // one expiring in 10 days are flagged, one valid for a year is not.
    let in_days = |d: u64| protocol::calendar::ChinaTime(node::clock::unix_ms() + d * 86_400_000).date();
    for (id, until) in [("old", "1970-01-02".to_string()), ("soon", in_days(10)), ("fine", in_days(365))] {
        let (ok, err) = cert_add(id, &until);
        assert!(ok, "{err}");
    }
    let (ok, out, _) = mingchu(&["registry", "list", "--admin", &s_admin, "--kind", "cert"]);
    assert!(ok && out.contains("健康证已过期（1970-01-02）") && out.contains("天后到期"), "{out}");
    assert_eq!(out.matches('⚠').count(), 2, "{out}");

    // An alert takes its canteen and zone from the registered camera; an unregistered camera is
    // refused with the command that registers it.
    let raised = cluster
        .client(school)
        .raise_alert(&RaiseAlert { camera: "cam-07".into(), alert_type: "RODENT".into(), ..RaiseAlert::default() })
        .unwrap();
    assert_eq!((raised.zone.as_str(), raised.canteen.as_str()), ("sampling", "main"), "{raised:?}");
    let e = cluster
        .client(school)
        .raise_alert(&RaiseAlert { camera: "cam-99".into(), alert_type: "RODENT".into(), ..RaiseAlert::default() })
        .unwrap_err();
    assert!(e.to_string().contains("mingchu registry camera add --id cam-99"), "{e}");
    let e = cluster
        .client(school)
        .raise_alert(&RaiseAlert {
            camera: "cam-07".into(),
            alert_type: "RODENT".into(),
            zone: Some("cooking".into()),
            ..RaiseAlert::default()
        })
        .unwrap_err();
    assert!(e.to_string().contains("sampling"), "{e}");

    // Everything written can be read: the dismissal's reason in `alert show` and `alert list`.
    let rodent = cluster
        .client(school)
        .raise_alert(&RaiseAlert { camera: "cam-03".into(), alert_type: "RODENT".into(), ..RaiseAlert::default() })
        .unwrap();
    let (ok, _, err) = mingchu(&["alert", "dismiss", "--admin", &admin, &rodent.id, "--reason", "是一只猫"]);
    assert!(ok, "{err}");
    let (ok, out, _) = mingchu(&["alert", "show", "--admin", &admin, &rodent.id]);
    assert!(ok && out.contains("误报原因: 是一只猫"), "{out}");
    let (ok, out, _) = mingchu(&["alert", "list", "--admin", &admin, "--status", "dismissed", "--json"]);
    assert!(ok && out.contains("是一只猫") && out.contains("\"verdict_by\": \"130102\""), "{out}");

    // The CLI checks that the node which answered is the node it asked for.
    let (ok, _, err) = mingchu(&["case", "list", "--admin", &admin, "--node", "130102-S0001"]);
    assert!(!ok && err.contains("130102"), "{err}");

    // Case numbers a person can say: the county's running number for the year, shown and accepted.
    let number = case.ledger_no();
    assert!(number.starts_with("130102-20") && number.ends_with("-0001"), "{number}");
    let (ok, out, err) = mingchu(&["case", "show", "--admin", &admin, &number]);
    assert!(ok && out.contains(&number) && out.contains("抹布未分类") && out.contains("整改期限"), "{out}{err}");
    let (ok, out, _) = mingchu(&["case", "list", "--admin", &admin]);
    assert!(ok && out.contains("130102-20") && out.contains("台账编号"), "{out}");
    // JSON: ids as strings, enums in kebab case, times also in RFC 3339 with +08:00.
    let (ok, out, _) = mingchu(&["case", "show", "--admin", &admin, &case.id.to_string(), "--json"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(ok && json["id"] == serde_json::json!(case.id.to_string()), "{out}");
    assert_eq!(json["status"], serde_json::json!("notice-issued"), "{out}");
    let (ok, out, _) = mingchu(&["case", "list", "--admin", &admin, "--json"]);
    assert!(ok && out.contains("+08:00") && out.contains("\"opened_at_ms\""), "{out}");

    // Text a peer wrote never reaches a terminal raw: an ESC sequence in a directive is escaped.
    let d = SendDirective { to: school.to_string(), title: "通知\u{1b}[2J清屏".into(), text: String::new() };
    cluster.client(county).send_directive(&d).unwrap();
    let (ok, out, _) = mingchu(&["directive", "list", "--admin", &s_admin, "--limit", "1"]);
    assert!(ok && !out.contains('\u{1b}') && out.contains("\\u{1b}[2J"), "{out:?}");

    // The settings in force, and where they come from.
    let (ok, out, _) = mingchu(&["registry", "settings", "show", "--admin", &s_admin]);
    assert!(ok && out.contains("县级") && out.contains("deadline_general_days = 5"), "{out}");

    // Logs written to a file: no colour codes, times in China time with the offset shown.
    let log = std::fs::read_to_string(cluster.log_path(county)).unwrap();
    assert!(!log.contains('\u{1b}'), "ANSI colour in a log file");
    assert!(log.lines().any(|l| l.starts_with("20") && l.get(23..29) == Some("+08:00")), "{log}");
    let (ok, _, err) = mingchu(&["--log-format", "json", "case", "list", "--admin", "127.0.0.1:9"]);
    assert!(!ok && err.contains("cannot reach"), "{err}");

    // The loopback admin API answers only requests carrying the node's token, which only root
    // and the node's user can read.
    let raw = |auth: &str| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(cluster.admin_addr(county)).unwrap();
        write!(s, "GET /api/status HTTP/1.1\r\nhost: x\r\n{auth}connection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    assert!(raw("").starts_with("HTTP/1.1 401"), "no token");
    assert!(raw("authorization: Bearer 0000\r\n").starts_with("HTTP/1.1 401"), "a wrong token");
    let token_file = node::config::admin_token_path(cluster.admin_addr(county));
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert!(raw(&format!("authorization: Bearer {token}\r\n")).starts_with("HTTP/1.1 200"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(token_file.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);

    // A refusal for lack of authority exits with 3: the province may not write the county's school.
    let out = std::process::Command::new(crate::binary())
        .args(["case", "ack", "--admin", &cluster.admin_addr(province).to_string(), &case.id.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
}
