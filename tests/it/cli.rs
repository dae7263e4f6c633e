//! Bad input on the command line and in files gives a clear error and a failing exit code.

use crate::mingchu;

fn check_fails(args: &[&str], expect: &[&str]) {
    let (ok, _, err) = mingchu(args);
    assert!(!ok, "`mingchu {}` should fail", args.join(" "));
    for e in expect {
        assert!(err.contains(e), "`mingchu {}`: stderr lacks {e:?}:\n{err}", args.join(" "));
    }
}

#[test]
fn bad_cli_input_is_reported_clearly() {
    check_fails(
        &["alert", "raise", "--admin", "127.0.0.1:9", "--camera", "c1", "--type", "NO_HAT"],
        &["没有“NO_HAT”这种告警类型", "NO_CHEF_HAT"],
    );
    check_fails(
        &["alert", "raise", "--admin", "127.0.0.1:9", "--camera", "c1", "--type", "NO_MASK", "--severity", "huge"],
        &["没有“huge”这种严重程度"],
    );
    check_fails(&["alert", "list", "--node", "1300", "--topology", "x.toml"], &["1300", "not a node id"]);
    check_fails(&["alert", "list"], &["say which node"]);
    check_fails(&["topology", "show", "--admin", "127.0.0.1:9"], &["cannot reach the node's admin API"]);
    check_fails(&["node", "run", "--config", "/nonexistent/node.toml"], &["cannot read config /nonexistent/node.toml"]);
    check_fails(&["ca", "issue", "--node", "130102-S0001", "--dir", "/nonexistent/certs"], &["/nonexistent/certs"]);
    check_fails(&["topology", "generate", "--cities", "12", "--out", "-"], &["12 cities", "11"]);
    check_fails(&["frobnicate"], &["unrecognized subcommand"]);
}

#[test]
fn malformed_topology_files_name_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str]); 4] = [
        (
            "version = 1\n[[node]]\nid = \"13\"\nname = \"p\"\nquic = \"127.0.0.1:1\"\nadmin = \"127.0.0.1:2\"\n[[node]]\nid = \"130102\"\nname = \"c\"\nquic = \"127.0.0.1:3\"\nadmin = \"127.0.0.1:4\"\n",
            &["130102", "parent 1301"],
        ),
        (
            "version = 1\n[[node]]\nid = \"13\"\nname = \"p\"\nquic = \"127.0.0.1:1\"\nadmn = \"127.0.0.1:2\"\n",
            &["admn"],
        ),
        (
            "version = 1\n[[node]]\nid = \"13\"\nname = \"p\"\nquic = \"nowhere\"\nadmin = \"127.0.0.1:2\"\n",
            &["13", "quic"],
        ),
        ("version = 1\n[[node]\n", &["line"]),
    ];
    for (i, (text, expect)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        check_fails(&["topology", "check", path.to_str().unwrap()], expect);
    }
    // And a good one passes, counting what it holds.
    let good = dir.path().join("good.toml");
    let (ok, out, err) = mingchu(&["topology", "generate", "--out", good.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("16 schools"), "{out}");
    let (ok, out, _) = mingchu(&["topology", "check", good.to_str().unwrap()]);
    assert!(ok && out.contains("valid"), "{out}");
}

#[test]
fn ca_commands_make_certificates_that_name_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let c = certs.to_str().unwrap();
    let (ok, _, err) = mingchu(&["ca", "init", "--dir", c]);
    assert!(ok, "{err}");
    check_fails(&["ca", "init", "--dir", c], &["already"]);
    let (ok, out, err) = mingchu(&["ca", "issue", "--node", "130102-S0042", "--dir", c]);
    assert!(ok, "{err}");
    assert!(out.contains("s0042.130102.1301.13.mingchu"), "{out}");
    let creds = node::tls::NodeCredentials::load(&certs, "130102-S0042".parse().unwrap()).unwrap();
    assert_eq!(node::tls::node_id_from_cert(creds.cert()).unwrap().to_string(), "130102-S0042");
    // Issuing again would replace the key of a node that may be running: refused without --force,
    // and nothing is written.
    let key = certs.join("nodes").join("130102-S0042.key");
    let before = std::fs::read(&key).unwrap();
    check_fails(&["ca", "issue", "--node", "130102-S0042", "--dir", c], &["--force", "130102-S0042.key"]);
    assert_eq!(std::fs::read(&key).unwrap(), before, "the refused issue changed the key");
    let (ok, _, err) = mingchu(&["ca", "issue", "--node", "130102-S0042", "--dir", c, "--force"]);
    assert!(ok, "{err}");
    assert_ne!(std::fs::read(&key).unwrap(), before, "--force issues a new key");
}

#[test]
fn ca_issue_web_writes_the_consoles_certificate_and_refuses_bad_hosts() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let certs_s = certs.to_str().unwrap();
    assert!(mingchu(&["ca", "init", "--dir", certs_s]).0);

    check_fails(
        &["ca", "issue", "--web", "--host", "bad host", "--dir", certs_s],
        &["“bad host”不是有效的主机名或 IP 地址"],
    );
    check_fails(&["ca", "issue", "--web", "--host", "*.lunan.cn", "--dir", certs_s], &["通配符"]);
    check_fails(&["ca", "issue", "--web", "--dir", certs_s], &["--host"]);
    check_fails(&["ca", "issue", "--web", "--node", "130102", "--host", "x.cn", "--dir", certs_s], &["--node"]);
    assert!(!certs.join("web.key").exists(), "a refused command wrote nothing");

    let (ok, out, err) = mingchu(&[
        "ca",
        "issue",
        "--web",
        "--host",
        "192.168.10.5",
        "--host",
        "mingchu.lunan.edu.cn",
        "--dir",
        certs_s,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("已签发控制台网页证书") && out.contains("192.168.10.5") && out.contains("ca.pem"), "{out}");
    assert!(certs.join("web.pem").is_file());
    assert_eq!(std::fs::metadata(certs.join("web.key")).unwrap().permissions().mode() & 0o777, 0o600);

    // Replacing it takes --force.
    let key = std::fs::read(certs.join("web.key")).unwrap();
    check_fails(
        &["ca", "issue", "--web", "--host", "192.168.10.5", "--dir", certs_s],
        &["已有网页证书的密钥", "--force"],
    );
    assert_eq!(std::fs::read(certs.join("web.key")).unwrap(), key);
    assert!(mingchu(&["ca", "issue", "--web", "--host", "192.168.10.5", "--dir", certs_s, "--force"]).0);
    assert_ne!(std::fs::read(certs.join("web.key")).unwrap(), key);
}

/// `ca expiring` lists the certificates with the days they have left, and says by its exit code
/// whether any needs renewing: 0 none within --days, 1 some, (2 expired: see the node's unit test).
#[test]
fn ca_expiring_lists_certificates_by_days_left_with_check_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let certs_s = certs.to_str().unwrap();
    assert!(mingchu(&["ca", "init", "--dir", certs_s]).0);
    assert!(mingchu(&["ca", "issue", "--node", "130102", "--dir", certs_s]).0);
    let run = |args: &[&str]| {
        let out = std::process::Command::new(crate::binary()).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&["ca", "expiring", "--dir", certs_s]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("没有 30 天内到期的证书") && out.contains("共 2 张证书"), "{out}");
    // Node certificates last two years, the CA ten: with a horizon of 800 days the node's is due.
    let (code, out, err) = run(&["ca", "expiring", "--dir", certs_s, "--days", "800"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("节点 130102") && out.contains("即将到期") && !out.contains("联邦 CA"), "{out}");
    let (code, out, _) = run(&["ca", "expiring", "--dir", certs_s, "--all", "--json"]);
    assert_eq!(code, Some(0));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(rows[0]["days_left"].as_i64().unwrap() < rows[1]["days_left"].as_i64().unwrap(), "soonest first");
    // A file that is not a certificate is named.
    std::fs::write(certs.join("nodes").join("130104.pem"), "not a certificate").unwrap();
    let (code, _, err) = run(&["ca", "expiring", "--dir", certs_s]);
    assert_eq!(code, Some(1));
    assert!(err.contains("130104.pem"), "{err}");
}
