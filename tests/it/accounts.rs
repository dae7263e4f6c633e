//! Accounts: the first administrator created from the node's shell, its directory entry replicated
//! up the tree without its secret, and its password checked only at its own node.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use topology::NodeId;

use crate::{binary, eventually, federation};

/// Runs `mingchu args…` with `input` on its standard input; returns (exit code, stdout, stderr).
fn mingchu_with_input(args: &[&str], input: &str) -> (Option<i32>, String, String) {
    let mut child = Command::new(binary())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn the_first_administrator_is_created_at_the_node_and_signs_in_only_there() {
    let (_dir, cluster) = federation(1, 1, 1);
    let (province, county) = ("13".parse::<NodeId>().unwrap(), "130102".parse::<NodeId>().unwrap());
    let school = NodeId::school(county, 1).unwrap();
    let add = |node: NodeId, id: &str, name: &str, role: &str, password: &str| {
        let a = cluster.admin_addr(node).to_string();
        mingchu_with_input(
            &["user", "add", "--admin", &a, "--id", id, "--name", name, "--role", role, "--password-stdin"],
            &format!("{password}\n"),
        )
    };

    let (code, out, err) = add(county, "li.na", "李娜", "管理员", "县级管理员-2026");
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("li.na") && out.contains("管理员"), "{out}");

    // Refused, with the reason, and nothing written: a role the unit does not have, a short
    // password, a bad id.
    let (code, _, err) = add(school, "wang", "王校长", "管理员", "long enough pw");
    assert!(code == Some(2) && err.contains("学校级单位没有管理员"), "{err}");
    let (code, _, err) = add(county, "zhao", "赵", "监管员", "short");
    assert!(code == Some(2) && err.contains("至少 8"), "{err}");
    let (code, _, err) = add(county, "Zhao Si", "赵四", "监管员", "long enough pw");
    assert!(code == Some(2) && err.contains("账号名"), "{err}");
    let (code, _, err) = add(school, "wang", "王校长", "校长", "long enough pw");
    assert_eq!(code, Some(0), "{err}");

    // The directory entry (no secret) reaches the province; the refused accounts never existed.
    let listed = eventually(Duration::from_secs(20), "the county's account at the province", || {
        let l = cluster.client(province).accounts(None).ok()?;
        (l.iter().any(|a| a.id == "li.na") && l.iter().any(|a| a.id == "wang")).then_some(l)
    });
    assert_eq!(listed.len(), 2, "{listed:?}");
    let (code, out, _) =
        mingchu_with_input(&["user", "list", "--admin", &cluster.admin_addr(province).to_string()], "");
    assert!(code == Some(0) && out.contains("李娜") && out.contains("校长") && !out.contains("argon2"), "{out}");

    // The password is checked at the account's own node, and only there.
    let check = |node: NodeId, password: &str| {
        let a = cluster.admin_addr(node).to_string();
        mingchu_with_input(
            &["user", "check", "--admin", &a, "--id", "li.na", "--password-stdin"],
            &format!("{password}\n"),
        )
    };
    let (code, out, err) = check(county, "县级管理员-2026");
    assert!(code == Some(0) && out.contains("李娜"), "{out}{err}");
    let (code, _, err) = check(county, "县级管理员-2027");
    assert!(code == Some(3) && err.contains("账号或密码不对"), "{err}");
    let (code, _, err) = check(province, "县级管理员-2026");
    assert_eq!(code, Some(3), "a county account signed in at the province: {err}");

    // Five failures lock the account for the rest of the quarter hour, right password or not.
    for _ in 0..4 {
        assert_eq!(check(county, "wrong password").0, Some(3));
    }
    let (code, _, err) = check(county, "县级管理员-2026");
    assert!(code == Some(6) && err.contains("登录失败次数过多"), "{err}");

    // Every attempt is in the county's audit log, newest first; the province's has none of them.
    let (code, out, _) = mingchu_with_input(&["user", "audit", "--admin", &cluster.admin_addr(county).to_string()], "");
    assert!(
        code == Some(0) && out.contains("登录受限") && out.contains("登录被拒") && out.contains("登录成功"),
        "{out}"
    );
    let lines = cluster.client(county).audit(100).unwrap();
    assert_eq!(lines.first().map(|l| l.what.as_str()), Some("sign-in-throttled"));
    assert_eq!(lines.iter().filter(|l| l.what == "sign-in-refused").count(), 5, "{lines:?}");
    let province_lines = cluster.client(province).audit(100).unwrap();
    assert!(province_lines.iter().all(|l| l.account != "li.na" || l.what == "sign-in-refused"), "{province_lines:?}");
}
