//! The simulator's command line, shared by `mingchu sim` and the standalone `mingchu-sim`: the
//! arguments ([`SimArgs`]), the run ([`run`]), and the complete command that reproduces a run
//! ([`SimArgs::command`]), which heads every report.

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use crate::faults::FaultPlan;
use crate::sim::{Report, Scale, SimConfig};

/// The simulator's arguments. Every one that shapes the run appears, resolved, in
/// [`SimArgs::command`]; `--json` and `--progress` only change what is printed.
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct SimArgs {
    /// The seed: the same seed gives the same run and the same digest.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulate all of Hebei (1 + 11 + 167 + 17,183 nodes).
    #[arg(long, conflicts_with_all = ["cities", "counties", "schools"])]
    pub hebei: bool,
    /// A smaller regular tree instead: this many cities (with --counties and --schools).
    #[arg(long, default_value_t = 2)]
    pub cities: u32,
    /// Counties per city (the smaller tree).
    #[arg(long, default_value_t = 3)]
    pub counties: u32,
    /// Schools per county (the smaller tree).
    #[arg(long, default_value_t = 10)]
    pub schools: u32,
    /// Simulated length of the run in hours, in (0, 720] (the day's 24 hours of workload are
    /// scaled onto it).
    #[arg(long, default_value_t = 24.0, allow_negative_numbers = true)]
    pub hours: f64,
    /// Alert rate relative to DOMAIN.md's, in (0, 100] (1.0 ≈ 33,600 alerts a day for Hebei).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub intensity: f64,
    /// A scenario file (simulations/scenarios/*.toml) instead of faults drawn from the seed.
    #[arg(long, conflicts_with = "no_faults")]
    pub scenario: Option<PathBuf>,
    /// No faults at all.
    #[arg(long)]
    pub no_faults: bool,
    /// Full safety check of every node every this many simulated minutes.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub check_every_min: u64,
    /// Keep-alive interval of the simulated links in seconds, fractions allowed (e.g. 0.5), in
    /// (0, 3600]; idle timeout and failover: 3×. Production uses 0.5 s; a day of 17,000
    /// simulated links is dominated by keep-alives.
    #[arg(long, default_value_t = KeepAlive::from_ms(300_000), allow_negative_numbers = true)]
    pub keepalive_s: KeepAlive,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Progress on stderr, 24 times over the run: simulated hours done of --hours, percent, the
    /// day's clock.
    #[arg(long)]
    pub progress: bool,
    /// After the run, write every event the province (the root) holds to this file, for
    /// `mingchu bench --year` (it does not change the run).
    #[arg(long, value_name = "FILE")]
    pub export_root: Option<PathBuf>,
}

/// A keep-alive interval typed in seconds (fractions allowed), held in whole milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeepAlive(u64);

impl KeepAlive {
    /// The longest keep-alive accepted, in seconds.
    pub const MAX_S: f64 = 3_600.0;

    pub const fn from_ms(ms: u64) -> KeepAlive {
        KeepAlive(ms)
    }

    pub fn ms(self) -> u64 {
        self.0
    }
}

impl FromStr for KeepAlive {
    type Err = String;

    fn from_str(s: &str) -> Result<KeepAlive, String> {
        let secs: f64 = s.trim().parse().map_err(|_| format!("'{s}' is not a number of seconds (e.g. 0.5 or 300)"))?;
        if !secs.is_finite() {
            return Err(format!("'{s}' is not a finite number of seconds"));
        }
        if secs <= 0.0 {
            return Err(format!("the keep-alive must be more than 0 seconds, not {s}"));
        }
        if secs > KeepAlive::MAX_S {
            return Err(format!("the keep-alive must be at most {} seconds, not {s}", KeepAlive::MAX_S));
        }
        let ms = (secs * 1_000.0).round() as u64;
        if ms == 0 {
            return Err(format!("the keep-alive must be at least 0.001 seconds (1 ms), not {s}"));
        }
        Ok(KeepAlive(ms))
    }
}

impl fmt::Display for KeepAlive {
    /// Seconds, as short as they go: `300`, `0.5`, `1.25`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, ms) = (self.0 / 1_000, self.0 % 1_000);
        if ms == 0 {
            write!(f, "{s}")
        } else {
            let frac = format!("{ms:03}");
            write!(f, "{s}.{}", frac.trim_end_matches('0'))
        }
    }
}

/// Why `mingchu sim` did not pass: bad arguments (nothing ran), or the run failed its checks.
#[derive(Debug)]
pub enum SimError {
    Bad(String),
    Failed { failures: usize, command: String },
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Bad(e) => write!(f, "{e}"),
            SimError::Failed { failures, command } => {
                write!(f, "the simulation failed ({failures} failures)\nreproduce with: {command}")
            }
        }
    }
}

impl std::error::Error for SimError {}

/// A word for a POSIX shell: as it is when plain, else in single quotes.
fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

impl SimArgs {
    pub fn scale(&self) -> Scale {
        if self.hebei {
            Scale::Hebei
        } else {
            Scale::Small { cities: self.cities, counties_per_city: self.counties, schools_per_county: self.schools }
        }
    }

    /// The complete command that reproduces this run (same events, same digest): `mingchu sim`
    /// and every argument that shapes the run, defaults included, the scenario by its absolute
    /// path.
    pub fn command(&self) -> String {
        let mut words: Vec<String> = vec!["mingchu".into(), "sim".into()];
        words.extend(self.scale().flag().split(' ').map(str::to_string));
        words.extend([
            "--hours".into(),
            self.hours.to_string(),
            "--intensity".into(),
            self.intensity.to_string(),
            "--keepalive-s".into(),
            self.keepalive_s.to_string(),
            "--check-every-min".into(),
            self.check_every_min.max(1).to_string(),
        ]);
        if let Some(path) = &self.scenario {
            let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
            words.extend(["--scenario".into(), path.display().to_string()]);
        }
        if self.no_faults {
            words.push("--no-faults".into());
        }
        words.extend(["--seed".into(), self.seed.to_string()]);
        words.iter().map(|w| shell_word(w)).collect::<Vec<_>>().join(" ")
    }

    /// The run these arguments describe (the scenario file read and checked against the tree).
    pub fn config(&self) -> Result<SimConfig, String> {
        if !(self.hours > 0.0 && self.hours <= 720.0) {
            return Err(format!("--hours {} outside (0, 720]", self.hours));
        }
        if !(self.intensity > 0.0 && self.intensity <= 100.0) {
            return Err(format!("--intensity {} outside (0, 100]", self.intensity));
        }
        let mut cfg = SimConfig::new(self.seed, self.scale());
        cfg.day_ms = (self.hours * 3_600_000.0) as u64;
        cfg.intensity = self.intensity;
        cfg.check_every_ms = self.check_every_min.max(1) * 60_000;
        cfg.progress = self.progress;
        cfg.export_root = self.export_root.clone();
        let keepalive_ms = self.keepalive_s.ms();
        cfg.settings.session.keepalive_ms = keepalive_ms;
        cfg.settings.session.idle_timeout_ms = 3 * keepalive_ms;
        cfg.settings.failover_after_ms = 3 * keepalive_ms;
        if self.no_faults {
            cfg.faults = Some(FaultPlan::default());
        }
        if let Some(path) = &self.scenario {
            let text = std::fs::read_to_string(path).map_err(|e| format!("scenario {}: {e}", path.display()))?;
            let topology = cfg.scale.topology(cfg.seed)?;
            let plan = FaultPlan::load(&text, &topology, cfg.day_ms)
                .map_err(|e| format!("scenario {}: {e}", path.display()))?;
            cfg.faults = Some(plan);
        }
        Ok(cfg)
    }
}

/// Runs the simulation and returns its report (headed by the command that reproduces it),
/// printing nothing.
pub fn simulate(args: &SimArgs) -> Result<Report, String> {
    let cfg = args.config()?;
    let mut report = crate::sim::run(&cfg)?;
    report.command = args.command();
    Ok(report)
}

/// Runs `f` with the nodes' log lines muted, unless `RUST_LOG` asks for them. Every fault makes
/// the nodes it touches warn (link lost, parent unreachable, failing over): expected in a
/// simulation, and thousands of lines a day for the province, wall-clock stamped, drowning the
/// progress. (`mingchu-sim` sets up no logging at all; under `mingchu sim` this keeps the two
/// alike.)
fn quietly<T>(f: impl FnOnce() -> T) -> T {
    if std::env::var_os("RUST_LOG").is_some() {
        f()
    } else {
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), f)
    }
}

/// `mingchu sim`: runs, prints the report (text, or JSON with `--json`), and fails with the
/// reproducing command if any check failed.
pub fn run(args: SimArgs) -> Result<Report, SimError> {
    let cfg = args.config().map_err(SimError::Bad)?;
    if !args.json {
        eprintln!("simulating: {}", args.command());
    }
    let mut report = quietly(|| crate::sim::run(&cfg)).map_err(SimError::Bad)?;
    report.command = args.command();
    if args.json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| SimError::Bad(e.to_string()))?;
        println!("{json}");
    } else {
        print!("{}", crate::report::render(&report));
    }
    if report.passed() {
        Ok(report)
    } else {
        Err(SimError::Failed { failures: report.failures.len(), command: report.command.clone() })
    }
}

/// The standalone `mingchu-sim`'s `main`: exit 0 on a pass, 1 on a failed run (with the command
/// that reproduces it), 2 on bad arguments.
pub fn main(args: SimArgs) -> ExitCode {
    match run(args) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e @ SimError::Failed { .. }) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
        Err(e @ SimError::Bad(_)) => {
            eprintln!("mingchu-sim: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_seconds_print_as_short_as_they_go() {
        for (ms, s) in [(300_000, "300"), (500, "0.5"), (1_250, "1.25"), (1, "0.001"), (90_500, "90.5")] {
            assert_eq!(KeepAlive::from_ms(ms).to_string(), s);
            assert_eq!(s.parse::<KeepAlive>().unwrap().ms(), ms);
        }
    }

    #[test]
    fn a_failed_run_ends_with_the_command_that_reproduces_it() {
        let e = SimError::Failed { failures: 2, command: "mingchu sim --hours 12 --seed 3".into() };
        assert_eq!(
            e.to_string(),
            "the simulation failed (2 failures)\nreproduce with: mingchu sim --hours 12 --seed 3"
        );
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_word("/a/b-c_d.toml"), "/a/b-c_d.toml");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }
}
