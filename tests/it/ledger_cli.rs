//! The food-safety ledgers and early warnings through the `mingchu` CLI, as a school's officer and
//! a county administrator type it, on real processes: a school registers its canteen, staff,
//! supplier and canteen licence, writes one record of every kind (with a correction, a disposal and
//! a void), lists them; the county reads which schools filled in the day's ledgers after
//! replication, and the warnings — a staff member on duty without a health certificate is red and
//! opens an automatic case. The province sets the rule settings and a year's calendar.

use std::time::Duration;

use node::api::ledgers::{LedgerDay, LedgerView};
use node::api::warnings::WarningView;
use protocol::calendar::ChinaTime;
use protocol::ledger::{LedgerKind, LedgerRecord, china_day, day_str};
use protocol::warning::{Level, RuleId};
use topology::NodeId;

use crate::{binary, eventually, federation};

/// Runs `mingchu args…`: (exit code, stdout, stderr).
fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(binary()).args(args).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// Runs a command that must succeed; its standard output.
fn ok(args: &[&str]) -> String {
    let (code, out, err) = run(args);
    assert_eq!(code, Some(0), "`mingchu {}` failed:\n{out}{err}", args.join(" "));
    out
}

/// Runs a command that must succeed with `--json`; its output parsed (the type from the call site).
macro_rules! json {
    ($args:expr) => {{
        let mut all: Vec<String> = $args.iter().map(|a| a.to_string()).collect();
        all.push("--json".into());
        let out = ok(&all.iter().map(String::as_str).collect::<Vec<_>>());
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("`mingchu {}` printed bad JSON ({e}):\n{out}", all.join(" ")))
    }};
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Runs a command that must fail with `code`; its standard error.
fn refused(args: &[&str], code: i32) -> String {
    let (got, out, err) = run(args);
    assert_eq!(got, Some(code), "`mingchu {}`:\n{out}{err}", args.join(" "));
    err
}

#[test]
fn a_school_keeps_its_ledgers_by_cli_and_the_county_sees_days_and_warnings() {
    let (_dir, cluster) = federation(1, 1, 1);
    let id = |s: &str| s.parse::<NodeId>().unwrap();
    let (province, county, school) = (id("13"), id("130102"), id("130102-S0001"));
    let (p_admin, c_admin, s_admin) = (
        cluster.admin_addr(province).to_string(),
        cluster.admin_addr(county).to_string(),
        cluster.admin_addr(school).to_string(),
    );
    let at_school = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend(["--admin".to_string(), s_admin.clone()]);
        v
    };
    let now = node::clock::unix_ms();
    let today_n = china_day(now);
    let (today, yesterday, two_days_ago) = (day_str(today_n), day_str(today_n - 1), day_str(today_n - 2));
    let year = ChinaTime(now).date()[..4].parse::<u32>().unwrap();
    let cert_valid = format!("{}-12-31", year + 1);

    // The school registers what its records name, through the CLI.
    for args in [
        vec!["registry", "canteen", "add", "--id", "c1", "--name", "第一食堂"],
        vec!["registry", "staff", "add", "--id", "st1", "--name", "张三", "--role", "cook"],
        vec!["registry", "staff", "add", "--id", "st2", "--name", "李四", "--role", "food-safety-officer"],
        vec![
            "registry",
            "cert",
            "add",
            "--id",
            "hc2",
            "--staff",
            "st2",
            "--number",
            "JK2026001",
            "--valid-until",
            &cert_valid,
        ],
        vec![
            "registry",
            "supplier",
            "add",
            "--id",
            "sp1",
            "--name",
            "放心菜店",
            "--licence",
            "JY11301020000001",
            "--valid-until",
            "2099-06-30",
            "--contact",
            "王经理 13800000000",
        ],
        vec![
            "registry",
            "licence",
            "add",
            "--canteen",
            "c1",
            "--licence",
            "JY21301020000009",
            "--mode",
            "自营",
            "--valid-until",
            "2099-12-31",
            "--prep",
            "07:00",
            "--meal",
            "早餐=07:00-07:40",
            "--meal",
            "午餐=11:30-12:30",
        ],
    ] {
        let out = ok(&strs(&at_school(&args)));
        assert!(out.starts_with("已登记"), "{out}");
    }
    let list = ok(&strs(&at_school(&["registry", "licence", "list"])));
    assert!(
        list.contains("食堂许可证") && list.contains("自营") && list.contains("早餐 07:00–07:40、午餐 11:30–12:30"),
        "{list}"
    );
    // A licence of a canteen the school does not have is refused before the request (2).
    let err = refused(
        &strs(&at_school(&[
            "registry",
            "licence",
            "add",
            "--canteen",
            "c9",
            "--licence",
            "JY1",
            "--valid-until",
            "2099-12-31",
            "--mode",
            "承包经营",
            "--prep",
            "07:00",
            "--meal",
            "午餐=11:30-12:30",
        ])),
        2,
    );
    assert!(err.contains("没有编号为 c9 的食堂") && err.contains("c1"), "{err}");

    // One record of every kind. A purchase two days back without certificates; a morning check
    // yesterday at 07:10, then corrected; today's daily four (morning check, sample, leader meal,
    // disinfection).
    let write = |args: &[&str]| -> LedgerView { json!(&strs(&at_school(args))) };
    let purchase = write(&[
        "ledger",
        "purchase",
        "--supplier",
        "sp1",
        "--item",
        "猪肉",
        "--batch",
        "B7",
        "--quantity",
        "20.5",
        "--unit",
        "kg",
        "--date",
        &two_days_ago,
        "--at",
        "07:30",
    ]);
    let Some(LedgerRecord::Purchase(p)) = &purchase.record else { panic!("{purchase:?}") };
    assert_eq!((p.quantity_milli, purchase.date.as_str()), (20_500, two_days_ago.as_str()));
    assert_eq!(ChinaTime(p.received_at_ms).minute(), format!("{two_days_ago} 07:30"));

    let check =
        write(&["ledger", "morning-check", "--staff", "st1", "--temp", "37.8", "--date", &yesterday, "--at", "07:10"]);
    let corrected = write(&[
        "ledger",
        "morning-check",
        "--id",
        &check.id,
        "--staff",
        "st1",
        "--temp",
        "36.4",
        "--date",
        &yesterday,
        "--at",
        "07:10",
    ]);
    assert_eq!((corrected.id.as_str(), corrected.versions), (check.id.as_str(), 2));
    let Some(LedgerRecord::MorningCheck(m)) = &corrected.record else { panic!("{corrected:?}") };
    assert_eq!(m.temperature_dc, 364);
    assert_eq!(ChinaTime(m.checked_at_ms).minute(), format!("{yesterday} 07:10"));
    // A malformed temperature is a Chinese error before any request: exit code 2.
    let err = refused(&strs(&at_school(&["ledger", "morning-check", "--staff", "st2", "--temp", "36,5"])), 2);
    assert!(err.contains("体温“36,5”不是有效读数"), "{err}");
    // The node refuses what the registry does not hold, in Chinese: 400, exit code 2.
    let err = refused(&strs(&at_school(&["ledger", "morning-check", "--staff", "st9", "--temp", "36.5"])), 2);
    assert!(err.contains("本校没有编号为 st9 的从业人员"), "{err}");

    let today_check = write(&["ledger", "morning-check", "--staff", "st2", "--temp", "36.6"]);
    let sample = write(&[
        "ledger",
        "sample",
        "--canteen",
        "c1",
        "--meal",
        "午餐",
        "--dish",
        "番茄炒蛋",
        "--grams",
        "150",
        "--by",
        "李四",
        "--batch",
        &purchase.id,
    ]);
    let disposed: LedgerView = json!(&strs(&at_school(&["ledger", "dispose", "--id", &sample.id])));
    let Some(LedgerRecord::FoodSample(f)) = &disposed.record else { panic!("{disposed:?}") };
    assert!(f.disposed_at_ms.is_some() && disposed.versions == 2, "{disposed:?}");
    write(&[
        "ledger",
        "meal",
        "--canteen",
        "c1",
        "--meal",
        "lunch",
        "--leader",
        "--name",
        "王校长",
        "--rating",
        "5",
        "--remarks",
        "菜品可口",
    ]);
    write(&[
        "ledger",
        "hazard",
        "--level",
        "周排查",
        "--items",
        "20",
        "--problems",
        "1",
        "--found",
        "地面湿滑",
        "--measures",
        "已清理并放置警示牌",
        "--by",
        "王五",
    ]);
    write(&[
        "ledger",
        "disinfect",
        "--canteen",
        "c1",
        "--target",
        "餐饮具",
        "--method",
        "热力消毒",
        "--minutes",
        "15",
        "--by",
        "赵六",
    ]);
    write(&["ledger", "pesticide", "--item", "青菜", "--inhibition", "20", "--by", "李四", "--purchase", &purchase.id]);
    let twice = write(&["ledger", "pesticide", "--item", "青菜", "--inhibition", "20", "--by", "李四"]);
    let voided = write(&["ledger", "void", "--id", &twice.id, "--kind", "农残快检", "--reason", "重复录入"]);
    assert!(voided.voided && voided.void_reason == "重复录入", "{voided:?}");

    // The listing: every kind once, the void only with --voided.
    let span = ["--from", two_days_ago.as_str(), "--to", today.as_str()];
    let listed: Vec<LedgerView> = json!(&strs(&at_school(&[&["ledger", "list"][..], &span].concat())));
    let mut kinds: Vec<LedgerKind> = listed.iter().map(|v| v.kind).collect();
    kinds.sort();
    let mut every = LedgerKind::ALL.to_vec();
    every.push(LedgerKind::MorningCheck); // yesterday's and today's
    every.sort();
    assert_eq!(kinds, every);
    assert!(listed.iter().all(|v| !v.voided) && listed.iter().any(|v| v.id == today_check.id));
    let with_void: Vec<LedgerView> = json!(&strs(&at_school(&[&["ledger", "list", "--voided"][..], &span].concat())));
    assert_eq!(with_void.len(), listed.len() + 1);
    let text = ok(&strs(&at_school(&[&["ledger", "list", "--voided"][..], &span].concat())));
    for want in [
        "张三 36.4℃，正常",
        "放心菜店 猪肉 批次 B7 20.5 kg，证票不全",
        "【已作废：重复录入】",
        "第一食堂 午餐 番茄炒蛋 150 克，已于",
    ] {
        assert!(text.contains(want), "lacks {want:?}:\n{text}");
    }
    assert!(text.contains("07:10") && text.contains("07:30") && text.contains("本机操作员"), "{text}");

    // The county: which schools filled in today's ledgers, once replicated; the school's list.
    let days: Vec<LedgerDay> = eventually(Duration::from_secs(30), "today's ledgers at the county", || {
        let days: Vec<LedgerDay> = json!(&["ledger", "days", "--admin", &c_admin]);
        days.iter().any(|d| d.school == school && d.complete && d.on_duty == 2).then_some(days)
    });
    let row = days.iter().find(|d| d.school == school).unwrap();
    let n = |k: LedgerKind| row.counts.iter().find(|(c, _)| *c == k).map(|(_, n)| *n);
    assert_eq!(n(LedgerKind::MorningCheck), Some(1));
    assert_eq!(n(LedgerKind::PesticideTest), Some(1), "the void does not count");
    let text = ok(&["ledger", "days", "--admin", &c_admin, "--date", &today]);
    assert!(text.contains("130102-S0001") && text.contains("1/2") && text.contains("✓"), "{text}");
    assert!(text.contains("当日台账完整 1 所"), "{text}");
    let text = ok(&["ledger", "list", "--admin", &c_admin, "--school", "130102-S0001", "--date", &yesterday]);
    assert!(text.contains("张三 36.4℃") && text.contains("共 1 条"), "{text}");

    // Warnings: the school judges now; 张三 is on duty without a health certificate — red.
    let out = ok(&strs(&at_school(&["warnings", "evaluate"])));
    assert!(out.contains("预警判定已运行"), "{out}");
    let at_school_w: Vec<WarningView> = json!(&strs(&at_school(&["warnings", "--rule", "health-cert-missing"])));
    let red = at_school_w.iter().find(|w| w.subject == "st1").unwrap_or_else(|| panic!("{at_school_w:?}"));
    assert_eq!(red.level, Some(Level::Red));
    assert!(red.text.contains("张三"), "{red:?}");
    // At the county, once it arrived: the county's pass opens the automatic case (by default
    // for this rule, with its notice) and the listing names its ledger number.
    let warned: Vec<WarningView> = eventually(Duration::from_secs(30), "the red warning's case at the county", || {
        ok(&["warnings", "evaluate", "--admin", &c_admin]);
        let w: Vec<WarningView> = json!(&["warnings", "--admin", &c_admin, "--level", "红"]);
        w.iter().any(|w| w.rule == RuleId::HealthCertMissing && w.case_no.is_some()).then_some(w)
    });
    let case_no = warned.iter().find(|w| w.rule == RuleId::HealthCertMissing).unwrap().case_no.clone().unwrap();
    let text = ok(&["warnings", "--admin", &c_admin]);
    assert!(text.contains("在岗人员无健康证") && text.contains("红色") && text.contains(&case_no), "{text}");
    assert!(text.contains("生效中的预警") && text.contains("已自动挂账"), "{text}");
    let text = ok(&["warnings", "candidates", "--admin", &c_admin]);
    assert!(text.contains("约谈候选") && text.contains("问责记录"), "{text}");
    let out = ok(&["warnings", "evaluate", "--admin", &p_admin]);
    assert!(out.contains("这里只汇总查看"), "{out}");

    // The province sets the rule settings and a year's calendar; the school reads them in force.
    let out = ok(&[
        "registry",
        "rules",
        "set",
        "--admin",
        &p_admin,
        "--action",
        "purchase-certs-incomplete=case",
        "--purchase-yellow-hours",
        "12",
    ]);
    assert!(out.contains("采购证票不全") && out.contains("24 → 12"), "{out}");
    let err = refused(&strs(&at_school(&["registry", "rules", "set", "--repeat-count", "4"])), 2);
    assert!(err.contains("预警规则由省级设置"), "{err}");
    let err = refused(
        &[
            "registry",
            "calendar",
            "set",
            "--admin",
            &c_admin,
            "--year",
            "2027",
            "--holiday",
            "春节=2027-02-06..2027-02-14",
        ],
        2,
    );
    assert!(err.contains("节假日安排由省级登记"), "{err}");
    let shown = eventually(Duration::from_secs(30), "the province's rule settings at the school", || {
        let t = ok(&strs(&at_school(&["registry", "rules", "show"])));
        t.contains("来自省级设置").then_some(t)
    });
    assert!(shown.contains("自动挂账（已调整）") && shown.contains("--purchase-yellow-hours"), "{shown}");
    ok(&[
        "registry",
        "calendar",
        "set",
        "--admin",
        &p_admin,
        "--year",
        "2027",
        "--holiday",
        "春节=2027-02-06..2027-02-14",
        "--holiday",
        "清明节=2027-04-05",
        "--workday",
        "2027-02-20",
    ]);
    let err = refused(
        &[
            "registry",
            "calendar",
            "set",
            "--admin",
            &p_admin,
            "--year",
            "2027",
            "--holiday",
            "春节=2027-02-06..2027-02-14",
            "--workday",
            "2027-02-17",
        ],
        2,
    );
    assert!(err.contains("不是周六或周日"), "{err}");
    let cal = eventually(Duration::from_secs(30), "the 2027 calendar at the school", || {
        let t = ok(&strs(&at_school(&["registry", "calendar", "show", "--year", "2027"])));
        t.contains("省级登记").then_some(t)
    });
    assert!(
        cal.contains("2027-02-20（星期六）") && cal.contains("2027-02-06（星期六） 至 2027-02-14（星期日）"),
        "{cal}"
    );
    let projected = ok(&strs(&at_school(&["registry", "calendar", "show", "--year", "2028"])));
    assert!(projected.contains("预排"), "{projected}");
}
