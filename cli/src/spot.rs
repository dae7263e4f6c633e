//! `mingchu spot …`: online spot checks (网络巡查) from the command line, against a node's admin API.

use clap::{Args, Subcommand};
use client::render::{render_check, render_rates};
use node::api::spot::RecordSpotCheck;
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
        SpotCmd::Record { target, school, canteen, fail, note, severity, json } => {
            let req = RecordSpotCheck { school, canteen, failed: fail, note, severity };
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
