//! `mingchu spot …`: online spot checks (网络巡查) from the command line, against a node's admin API.

use clap::{Args, Subcommand};
use client::render::{render_check, render_rates};
use node::api::spot::{AreaSnapshot, RecordSpotCheck};
use protocol::draw::DrawInputs;
use protocol::spot::FocusArea;
use topology::NodeId;

use crate::cli::{Target, print_json};

#[derive(Subcommand, Debug)]
pub enum SpotCmd {
    /// Record a spot check of a school canteen (county, city or province). Each failed focus area
    /// opens a case at the school with its rectification notice.
    Record {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        school: NodeId,
        #[arg(long, default_value = "main")]
        canteen: String,
        /// A focus area that failed (repeat for several): food-processing, ingredient-placement,
        /// staff-attire or environmental-hygiene. None: the canteen passed.
        #[arg(long = "fail")]
        fail: Vec<FocusArea>,
        #[arg(long, default_value = "")]
        note: String,
        /// Severity of the cases opened: general (default), serious or severe.
        #[arg(long)]
        severity: Option<String>,
        /// A failed area's snapshot, AREA=sha256:… (upload it first with `mingchu files upload`);
        /// repeat for several areas. It is named in the case that area opens.
        #[arg(long = "snapshot", value_parser = parse_snapshot)]
        snapshot: Vec<AreaSnapshot>,
        #[arg(long)]
        json: bool,
    },
    /// The province's daily draw of canteens to spot-check (每日抽查名单) with its worklist: the
    /// seed and inputs, the spread over counties, each canteen's inspector and done / not done.
    /// Today's is drawn on first asking (a working day only) and kept; the same day always prints
    /// the same list. Only at the province.
    Draw {
        #[command(flatten)]
        target: Target,
        /// The day (2026-12-01, China time); default today.
        #[arg(long)]
        day: Option<String>,
        /// Re-run the kept draw from its seed and inputs and say whether it comes out the same.
        #[arg(long, conflicts_with = "inputs")]
        verify: bool,
        /// Print the kept draw's inputs in full as JSON (seed, quota, candidate canteens, those
        /// drawn within the window), for `mingchu spot rerun`.
        #[arg(long)]
        inputs: bool,
        #[arg(long)]
        json: bool,
    },
    /// Re-run a draw from its inputs (the JSON of `spot draw --inputs`) here, without any node:
    /// prints the canteens drawn, in order. An auditor compares them with the kept list.
    Rerun {
        /// The inputs file.
        #[arg(long)]
        inputs: std::path::PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// The daily draw's settings at the province: show them, or change them (管理员).
    DrawSettings {
        #[command(flatten)]
        target: Target,
        /// Canteens drawn per school day (default 200).
        #[arg(long)]
        quota: Option<u32>,
        /// A canteen drawn is not drawn again within this many weeks (default 4; 0: no such rule).
        #[arg(long)]
        window_weeks: Option<u32>,
        #[arg(long)]
        json: bool,
    },
    /// List the spot checks a node holds, newest first.
    List {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        period: Period,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Pass rates (passed / checked) of every unit of a node's subtree.
    Rates {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        period: Period,
        #[arg(long)]
        json: bool,
    },
}

/// Which checks: under one unit, on one day or in one month (China time).
#[derive(Args, Debug)]
pub struct Period {
    /// Only schools under this unit.
    #[arg(long)]
    under: Option<NodeId>,
    /// One day: 2026-11-28.
    #[arg(long, conflicts_with = "month")]
    day: Option<String>,
    /// One month: 2026-11.
    #[arg(long)]
    month: Option<String>,
}

pub fn run(cmd: SpotCmd) -> anyhow::Result<()> {
    match cmd {
        SpotCmd::Rerun { inputs, json } => {
            let text = std::fs::read_to_string(&inputs)
                .map_err(|e| anyhow::anyhow!("读不了抽查依据文件 {}：{e}", inputs.display()))?;
            let inputs: DrawInputs = serde_json::from_str(&text).map_err(|e| {
                anyhow::anyhow!("{} 不是抽查依据（mingchu spot draw --inputs 的输出）：{e}", inputs.display())
            })?;
            let drawn = inputs.rerun();
            if json {
                return print_json(&drawn);
            }
            println!(
                "{} 以种子 {} 从 {} 个候选食堂（排除 {} 个）重新抽取 {} 个：",
                inputs.day,
                inputs.seed,
                inputs.candidates.len(),
                inputs.recent.len(),
                drawn.items.len()
            );
            for (i, c) in drawn.items.iter().enumerate() {
                println!("{:>4}  {} {}", i + 1, c.school, client::render::clean(&c.canteen));
            }
            Ok(())
        }
        SpotCmd::Draw { target, day, verify, inputs, json } => {
            let client = target.client()?;
            if inputs {
                return print_json(&client.spot_draw_inputs(day.as_deref())?);
            }
            if verify {
                let v = client.spot_draw_verify(day.as_deref())?;
                if json {
                    return print_json(&v);
                }
                print!("{}", client::render::render_draw_verified(&v));
                if !v.same {
                    anyhow::bail!("抽查名单复核不一致 / the draw does not re-run to the same list");
                }
                return Ok(());
            }
            let v = client.spot_draw(day.as_deref())?;
            if json {
                return print_json(&v);
            }
            print!("{}", client::render::render_draw(&v));
            Ok(())
        }
        SpotCmd::DrawSettings { target, quota, window_weeks, json } => {
            let client = target.client()?;
            let mut s = client.draw_settings()?;
            if quota.is_some() || window_weeks.is_some() {
                s.quota = quota.unwrap_or(s.quota);
                s.window_weeks = window_weeks.unwrap_or(s.window_weeks);
                s = client.set_draw_settings(&s)?;
            }
            if json {
                return print_json(&s);
            }
            println!("每日抽查 {} 个食堂；{} 周内抽过的食堂不再抽", s.quota, s.window_weeks);
            Ok(())
        }
        SpotCmd::Record { target, school, canteen, fail, note, severity, snapshot, json } => {
            let req = RecordSpotCheck { school, canteen, failed: fail, note, severity, snapshots: snapshot };
            let done = target.client()?.spot_check(&req)?;
            if json {
                return print_json(&done);
            }
            print!("已记录巡查:\n{}", render_check(&done.check));
            for case in &done.cases {
                println!("  已对 {school} 挂账 {case} 并下发整改通知");
            }
            Ok(())
        }
        SpotCmd::List { target, period: p, limit, json } => {
            let checks = target.client()?.spot_checks(p.under, p.day.as_deref(), p.month.as_deref(), limit)?;
            if json {
                return print_json(&checks);
            }
            print!("{}", client::render::render_checks(&checks));
            Ok(())
        }
        SpotCmd::Rates { target, period: p, json } => {
            let rates = target.client()?.pass_rates(p.under, p.day.as_deref(), p.month.as_deref())?;
            if json {
                return print_json(&rates);
            }
            print!("{}", render_rates(&rates));
            Ok(())
        }
    }
}

/// `staff-attire=sha256:…`
fn parse_snapshot(s: &str) -> Result<AreaSnapshot, String> {
    let (area, file) =
        s.split_once('=').ok_or_else(|| format!("“{s}”应写成 方面=文件引用，如 staff-attire=sha256:…"))?;
    Ok(AreaSnapshot { area: area.trim().parse()?, file: file.trim().to_string() })
}
