//! The command line: the report is headed by a complete command that reruns the same run (same
//! digest), and `--keepalive-s` takes fractions of a second and refuses what is not a duration.

use clap::Parser;
use simulations::cli::{SimArgs, simulate};
use simulations::report::render;

#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    args: SimArgs,
}

fn parse<S: AsRef<str>>(words: &[S]) -> Result<SimArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("mingchu-sim").chain(words.iter().map(AsRef::as_ref))).map(|c| c.args)
}

/// Splits a command line as a POSIX shell would for what `SimArgs::command` writes: words
/// separated by spaces, single quotes taken literally, `\'` outside quotes.
fn shell_split(line: &str) -> Vec<String> {
    let (mut words, mut word, mut in_word, mut quoted) = (Vec::new(), String::new(), false, false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            '\\' if !quoted => {
                word.extend(chars.next());
                in_word = true;
            }
            ' ' if !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                }
                in_word = false;
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Runs `args`, takes the command from the text report's header (and checks the JSON report has
/// the same), parses it back, reruns it and compares digests. Returns the command.
fn rerun_from_header(args: &SimArgs) -> String {
    let first = simulate(args).unwrap();
    assert!(first.passed(), "{:?}", first.failures);
    let text = render(&first);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("reproduce with: "))
        .unwrap_or_else(|| panic!("no command in the report:\n{text}"));
    let json = serde_json::to_value(&first).unwrap();
    assert_eq!(json["command"], line, "the JSON report has another command");
    let words = shell_split(line);
    assert_eq!(words[..2], ["mingchu", "sim"], "{line}");
    let again = parse(&words[2..]).unwrap_or_else(|e| panic!("the header does not parse: {line}\n{e}"));
    assert_eq!(again.command(), line, "the command is not a fixed point");
    let second = simulate(&again).unwrap();
    assert_eq!(first.digest, second.digest, "{line} gave another run");
    assert_eq!(first.workload, second.workload);
    line.to_string()
}

#[test]
fn the_report_header_reruns_the_same_run() {
    // Every argument given, a fractional keep-alive, faults drawn from the seed.
    let args = parse(&[
        "--cities",
        "2",
        "--counties",
        "2",
        "--schools",
        "6",
        "--hours",
        "12",
        "--intensity",
        "4",
        "--check-every-min",
        "30",
        "--keepalive-s",
        "90.5",
        "--seed",
        "5",
    ])
    .unwrap();
    let line = rerun_from_header(&args);
    assert_eq!(
        line,
        "mingchu sim --cities 2 --counties 2 --schools 6 --hours 12 --intensity 4 --keepalive-s 90.5 \
         --check-every-min 30 --seed 5"
    );
}

#[test]
fn the_report_header_resolves_defaults_and_the_scenario_path() {
    // The seed, keep-alive and check interval left to their defaults; the scenario by a path
    // relative to the package (cargo runs tests there).
    let args = parse(&[
        "--cities",
        "1",
        "--counties",
        "2",
        "--schools",
        "3",
        "--hours",
        "6",
        "--scenario",
        "scenarios/crashes.toml",
    ])
    .unwrap();
    let line = rerun_from_header(&args);
    let scenario = std::fs::canonicalize("scenarios/crashes.toml").unwrap();
    assert!(scenario.is_absolute());
    assert_eq!(
        line,
        format!(
            "mingchu sim --cities 1 --counties 2 --schools 3 --hours 6 --intensity 1 --keepalive-s 300 \
             --check-every-min 60 --scenario {} --seed 1",
            scenario.display()
        )
    );
    // No faults, the whole province: named as such (not run here).
    let hebei = parse(&["--hebei", "--no-faults", "--seed", "7"]).unwrap();
    assert_eq!(
        hebei.command(),
        "mingchu sim --hebei --hours 24 --intensity 1 --keepalive-s 300 --check-every-min 60 --no-faults --seed 7"
    );
}

#[test]
fn keepalive_takes_fractions_of_a_second() {
    assert_eq!(parse(&["--keepalive-s", "0.5"]).unwrap().keepalive_s.ms(), 500);
    assert_eq!(parse(&["--keepalive-s=0.5"]).unwrap().keepalive_s.ms(), 500);
    assert_eq!(parse(&["--keepalive-s", "2"]).unwrap().keepalive_s.ms(), 2_000);
    assert_eq!(parse::<&str>(&[]).unwrap().keepalive_s.ms(), 300_000);
    let cfg = parse(&["--keepalive-s", "0.5"]).unwrap().config().unwrap();
    assert_eq!(cfg.settings.session.keepalive_ms, 500);
    assert_eq!((cfg.settings.session.idle_timeout_ms, cfg.settings.failover_after_ms), (1_500, 1_500));
}

#[test]
fn keepalive_refuses_what_is_not_a_duration() {
    for (value, want) in [
        ("0", "more than 0 seconds"),
        ("0.0", "more than 0 seconds"),
        ("-1", "more than 0 seconds"),
        ("-0.5", "more than 0 seconds"),
        ("abc", "not a number of seconds"),
        ("", "not a number of seconds"),
        ("inf", "not a finite number"),
        ("NaN", "not a finite number"),
        ("3601", "at most 3600 seconds"),
        ("0.0001", "at least 0.001 seconds"),
    ] {
        for words in [vec!["--keepalive-s".to_string(), value.to_string()], vec![format!("--keepalive-s={value}")]] {
            let err = parse(&words).expect_err(value).to_string();
            assert!(err.contains(want) && err.contains("--keepalive-s"), "{words:?}: {err}");
        }
    }
}

#[test]
fn bad_hours_and_intensity_are_refused_before_running() {
    for (words, want) in [
        (["--hours", "0"], "--hours 0 outside (0, 720]"),
        (["--hours", "-2"], "--hours -2 outside (0, 720]"),
        (["--hours", "721"], "--hours 721 outside (0, 720]"),
        (["--intensity", "0"], "--intensity 0 outside (0, 100]"),
    ] {
        let err = parse(&words).unwrap().config().unwrap_err();
        assert_eq!(err, want);
    }
    assert!(parse(&["--check-every-min", "0"]).is_err());
}
