//! `mingchu-sim`: the whole province (or a smaller tree) through a simulated school day, with
//! faults from a seed or a scenario file, and a verdict.

use std::process::ExitCode;

use clap::Parser;
use simulations::faults::FaultPlan;
use simulations::sim::{Report, Scale, SimConfig, run};

#[derive(Parser, Debug)]
#[command(
    name = "mingchu-sim",
    version,
    about = "Deterministic simulation of the mingchu federation: real node actors, \
    seeded in-memory network and storage, paused clock, faults, invariant checks and a report."
)]
struct Args {
    /// The seed: the same seed gives the same run and the same digest.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Simulate all of Hebei (1 + 11 + 167 + 17,183 nodes).
    #[arg(long, conflicts_with_all = ["cities", "counties", "schools"])]
    hebei: bool,
    /// A smaller regular tree: cities, counties per city, schools per county.
    #[arg(long, default_value_t = 2)]
    cities: u32,
    #[arg(long, default_value_t = 3)]
    counties: u32,
    #[arg(long, default_value_t = 10)]
    schools: u32,
    /// Simulated length of the day in hours (the day's 24 hours of workload are scaled onto it).
    #[arg(long, default_value_t = 24.0)]
    hours: f64,
    /// Alert rate relative to DOMAIN.md's (1.0 ≈ 33,600 alerts a day for Hebei).
    #[arg(long, default_value_t = 1.0)]
    intensity: f64,
    /// A scenario file (simulations/scenarios/*.toml) instead of faults drawn from the seed.
    #[arg(long, conflicts_with = "no_faults")]
    scenario: Option<std::path::PathBuf>,
    /// No faults at all.
    #[arg(long)]
    no_faults: bool,
    /// Full safety check of every node every this many simulated minutes.
    #[arg(long, default_value_t = 60)]
    check_every_min: u64,
    /// Keep-alive interval of the simulated links in seconds (idle timeout and failover: 3×).
    /// Production uses 0.5 s; a day of 17,000 simulated links is dominated by keep-alives.
    #[arg(long, default_value_t = 300)]
    keepalive_s: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Progress every simulated hour (stderr).
    #[arg(long)]
    progress: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match main_inner(&args) {
        Ok(report) => {
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                eprintln!("reproduce with: {}", reproduce(&args));
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("mingchu-sim: {e}");
            ExitCode::from(2)
        }
    }
}

fn reproduce(args: &Args) -> String {
    let scale = if args.hebei {
        "--hebei".to_string()
    } else {
        format!("--cities {} --counties {} --schools {}", args.cities, args.counties, args.schools)
    };
    let mut cmd = format!(
        "cargo run --release -p simulations --bin mingchu-sim -- {scale} --hours {} --intensity {} --keepalive-s {}",
        args.hours, args.intensity, args.keepalive_s
    );
    if let Some(s) = &args.scenario {
        cmd.push_str(&format!(" --scenario {}", s.display()));
    }
    if args.no_faults {
        cmd.push_str(" --no-faults");
    }
    format!("{cmd} --seed {}", args.seed)
}

fn main_inner(args: &Args) -> Result<Report, String> {
    let scale = if args.hebei {
        Scale::Hebei
    } else {
        Scale::Small { cities: args.cities, counties_per_city: args.counties, schools_per_county: args.schools }
    };
    if !(args.hours > 0.0 && args.hours <= 720.0) {
        return Err(format!("--hours {} outside (0, 720]", args.hours));
    }
    if !(args.intensity > 0.0 && args.intensity <= 100.0) {
        return Err(format!("--intensity {} outside (0, 100]", args.intensity));
    }
    let mut cfg = SimConfig::new(args.seed, scale);
    cfg.day_ms = (args.hours * 3_600_000.0) as u64;
    cfg.intensity = args.intensity;
    cfg.check_every_ms = args.check_every_min.max(1) * 60_000;
    cfg.progress = args.progress;
    let keepalive_ms = args.keepalive_s.clamp(1, 3_600) * 1_000;
    cfg.settings.session.keepalive_ms = keepalive_ms;
    cfg.settings.session.idle_timeout_ms = 3 * keepalive_ms;
    cfg.settings.failover_after_ms = 3 * keepalive_ms;
    if args.no_faults {
        cfg.faults = Some(FaultPlan::default());
    }
    if let Some(path) = &args.scenario {
        let text = std::fs::read_to_string(path).map_err(|e| format!("scenario {}: {e}", path.display()))?;
        let topology = cfg.scale.topology(cfg.seed)?;
        let plan =
            FaultPlan::load(&text, &topology, cfg.day_ms).map_err(|e| format!("scenario {}: {e}", path.display()))?;
        cfg.faults = Some(plan);
    }
    if !args.json {
        eprintln!("mingchu-sim: seed {} ({}), {} simulated hours ...", args.seed, cfg.scale.flag(), args.hours);
    }
    let report = run(&cfg)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    } else {
        print!("{}", simulations::report::render(&report));
    }
    Ok(report)
}
