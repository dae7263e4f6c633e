//! Faults: drawn from the seed, or read from a scenario file (`simulations/scenarios/*.toml`).
//!
//! A scenario file lists faults by time of day and duration:
//!
//! ```toml
//! name = "county dark for an hour"
//! [[fault]]
//! kind = "dark"          # dark | partition | crash | wipe | flap | lossy
//! node = "130102"
//! at = "09:30"
//! for_minutes = 60
//! ```
//!
//! `dark`: the node's network is cut (it keeps running); `partition`: `node` and `peer` cannot reach
//! each other; `crash`: killed, restarted after `for_minutes` from what it had flushed; `wipe`: its
//! disk is lost and it restarts at once (it must restore from its parent); `flap`: the link between
//! `node` and its parent breaks every second for `for_minutes`×60 s, at most 20 times; `lossy`: every
//! link drops, duplicates and reorders `rate` of its frames for `for_minutes`.

use serde::Deserialize;
use topology::{NodeId, Tier, Topology};

use rand::Rng;

const MIN: u64 = 60_000;

/// One fault as scheduled.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    Dark { node: NodeId, ms: u64 },
    Partition { a: NodeId, b: NodeId, ms: u64 },
    Crash { node: NodeId, ms: u64 },
    Wipe { node: NodeId },
    Flap { node: NodeId, times: u32 },
    Lossy { rate: f64, ms: u64 },
}

impl Fault {
    pub fn describe(&self) -> String {
        match self {
            Fault::Dark { node, ms } => format!("{node} dark for {} min", ms / MIN),
            Fault::Partition { a, b, ms } => format!("{a} partitioned from {b} for {} min", ms / MIN),
            Fault::Crash { node, ms } => format!("{node} crashed, restarted after {} min", ms / MIN),
            Fault::Wipe { node } => format!("{node} wiped and restored"),
            Fault::Flap { node, times } => format!("{node}'s uplink flapping {times}× (1 s down / 1 s up)"),
            Fault::Lossy { rate, ms } => {
                format!("all links lose/duplicate/reorder {:.1}% for {} min", rate * 100.0, ms / MIN)
            }
        }
    }
}

/// Faults at simulated times (ms since the day began), in time order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultPlan {
    pub name: String,
    pub faults: Vec<(u64, Fault)>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    name: String,
    #[serde(default, rename = "fault")]
    faults: Vec<FaultSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultSpec {
    kind: String,
    #[serde(default)]
    node: Option<String>,
    #[serde(default)]
    peer: Option<String>,
    at: String,
    #[serde(default)]
    for_minutes: Option<u64>,
    #[serde(default)]
    rate: Option<f64>,
}

fn parse_at(s: &str, day_ms: u64) -> Result<u64, String> {
    let (h, m) = s.split_once(':').ok_or_else(|| format!("time `{s}`: expected HH:MM"))?;
    let h: u64 = h.trim().parse().map_err(|_| format!("time `{s}`: bad hour"))?;
    let m: u64 = m.trim().parse().map_err(|_| format!("time `{s}`: bad minute"))?;
    if h > 23 || m > 59 {
        return Err(format!("time `{s}` is not a time of day"));
    }
    // Scaled to the simulated day's length.
    Ok(((h * 60 + m) as f64 / (24.0 * 60.0) * day_ms as f64) as u64)
}

impl FaultPlan {
    /// Reads a scenario file; every node must be in `topology`.
    pub fn load(text: &str, topology: &Topology, day_ms: u64) -> Result<FaultPlan, String> {
        let file: ScenarioFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut faults = Vec::new();
        for (i, f) in file.faults.iter().enumerate() {
            let what = format!("fault #{} ({})", i + 1, f.kind);
            let node = |n: &Option<String>| -> Result<NodeId, String> {
                let s = n.as_deref().ok_or_else(|| format!("{what}: `node` missing"))?;
                let id: NodeId = s.parse().map_err(|e| format!("{what}: {e}"))?;
                if !topology.contains(id) {
                    return Err(format!("{what}: {id} is not in the simulated tree"));
                }
                Ok(id)
            };
            let at = parse_at(&f.at, day_ms).map_err(|e| format!("{what}: {e}"))?;
            let ms = f.for_minutes.unwrap_or(10) * MIN;
            let fault = match f.kind.as_str() {
                "dark" => Fault::Dark { node: node(&f.node)?, ms },
                "partition" => Fault::Partition { a: node(&f.node)?, b: node(&f.peer)?, ms },
                "crash" => Fault::Crash { node: node(&f.node)?, ms },
                "wipe" => Fault::Wipe { node: node(&f.node)? },
                "flap" => Fault::Flap { node: node(&f.node)?, times: (f.for_minutes.unwrap_or(1) * 30).min(20) as u32 },
                "lossy" => {
                    let rate = f.rate.unwrap_or(0.02);
                    if !(0.0..=0.5).contains(&rate) {
                        return Err(format!("{what}: rate {rate} outside 0..=0.5"));
                    }
                    Fault::Lossy { rate, ms }
                }
                other => {
                    return Err(format!("{what}: unknown kind `{other}` (dark, partition, crash, wipe, flap, lossy)"));
                }
            };
            faults.push((at, fault));
        }
        faults.sort_by_key(|f| f.0);
        Ok(FaultPlan { name: file.name, faults })
    }

    /// The seed's faults over a day of `day_ms`: a county dark for an hour, a city partitioned from
    /// the province for half an hour, a few crashes with restarts, a wiped school, a lossy hour on
    /// every link and a flapping school uplink. All are over well before the day ends.
    pub fn random(rng: &mut impl Rng, topology: &Topology, day_ms: u64) -> FaultPlan {
        let of = |t: Tier| topology.nodes().map(|e| e.id).filter(|n| n.tier() == t).collect::<Vec<_>>();
        let (cities, counties, schools) = (of(Tier::City), of(Tier::County), of(Tier::School));
        let hour = day_ms / 24;
        let at = |rng: &mut dyn rand::RngCore, from_h: u64, to_h: u64| {
            from_h * hour + rng.random_range(0..(to_h - from_h).max(1) * hour)
        };
        let mut faults = Vec::new();
        if let Some(&c) = counties.get(rng.random_range(0..counties.len().max(1))) {
            faults.push((at(rng, 8, 12), Fault::Dark { node: c, ms: hour }));
        }
        if let Some(&c) = cities.get(rng.random_range(0..cities.len().max(1))) {
            faults.push((at(rng, 13, 16), Fault::Partition { a: c, b: topology.root(), ms: hour / 2 }));
        }
        let all: Vec<NodeId> = topology.nodes().map(|e| e.id).collect();
        let crashes = (all.len() / 500).clamp(3, 40);
        for _ in 0..crashes {
            let n = all[rng.random_range(0..all.len())];
            let down = rng.random_range(MIN..=10 * MIN).min(hour);
            faults.push((at(rng, 6, 18), Fault::Crash { node: n, ms: down }));
        }
        if let Some(&s) = schools.get(rng.random_range(0..schools.len().max(1))) {
            faults.push((at(rng, 10, 17), Fault::Wipe { node: s }));
        }
        faults.push((at(rng, 6, 18), Fault::Lossy { rate: 0.02, ms: hour }));
        if let Some(&s) = schools.get(rng.random_range(0..schools.len().max(1))) {
            faults.push((at(rng, 9, 17), Fault::Flap { node: s, times: 20 }));
        }
        faults.sort_by_key(|f| f.0);
        FaultPlan { name: "random faults from the seed".into(), faults }
    }
}
