//! `mingchu warnings …`: early warnings (预警) from the command line, against a node's admin API:
//! the warnings a node holds about the schools of its subtree (`list`, the default), the 约谈 and
//! 问责 candidates, and a run of the warning engine now (`evaluate`).

use clap::{Args, Subcommand};
use client::WarningQuery;
use client::render::{render_candidates, render_warnings};
use node::api::warnings::WARNINGS_LIMIT_MAX;
use protocol::warning::{Level, RuleId};
use topology::{NodeId, Tier};

use crate::cli::{Target, print_json};

/// `mingchu warnings [list] …`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WarningsArgs {
    #[command(subcommand)]
    pub cmd: Option<WarningsCmd>,
    #[command(flatten)]
    pub list: ListArgs,
}

#[derive(Subcommand, Debug)]
pub enum WarningsCmd {
    /// The warnings a node holds about the schools of its subtree: active ones (red first), or
    /// with --all the resolved ones too (the default command).
    List(ListArgs),
    /// 约谈候选 (the same problem confirmed again and again at a canteen) and 问责记录 (a
    /// rectification notice refused, a rectification rejected three times).
    Candidates {
        #[command(flatten)]
        target: Target,
        /// Only schools under this unit.
        #[arg(long)]
        under: Option<NodeId>,
        #[arg(long)]
        json: bool,
    },
    /// Run the warning engine now and print what it wrote (a school judges its own rules; a
    /// county what a silent school cannot report, its cases' deadlines, and opens the automatic
    /// cases). The engine also runs on its own, on a schedule and after every ledger record.
    Evaluate {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub target: Target,
    /// Only this school's warnings.
    #[arg(long)]
    pub school: Option<NodeId>,
    /// Only warnings about schools under this unit, e.g. 130102.
    #[arg(long)]
    pub under: Option<NodeId>,
    /// Resolved warnings too (已解除).
    #[arg(long)]
    pub all: bool,
    /// Only one rule, e.g. health-cert-missing or 在岗人员无健康证 (`registry rules show` lists them).
    #[arg(long)]
    pub rule: Option<RuleId>,
    /// Only one level: 红 (red), 橙 (orange) or 黄 (yellow).
    #[arg(long)]
    pub level: Option<Level>,
    /// How many: 1 to 5000, or `all`.
    #[arg(long, default_value = "100", value_parser = parse_warning_limit)]
    pub limit: usize,
    #[arg(long)]
    pub json: bool,
}

/// `--limit`: 1 to [`WARNINGS_LIMIT_MAX`], or `all`.
pub fn parse_warning_limit(s: &str) -> Result<usize, String> {
    match s.trim() {
        "all" => Ok(WARNINGS_LIMIT_MAX),
        t => match t.parse::<usize>() {
            Ok(n) if (1..=WARNINGS_LIMIT_MAX).contains(&n) => Ok(n),
            _ => Err(format!(
                "条数“{t}”须为 1 至 {WARNINGS_LIMIT_MAX}，或 all / give 1 to {WARNINGS_LIMIT_MAX}, or `all`"
            )),
        },
    }
}

fn list(a: ListArgs) -> anyhow::Result<()> {
    let q = WarningQuery {
        school: a.school,
        under: a.under,
        all: a.all,
        rule: a.rule,
        level: a.level,
        limit: Some(a.limit),
    };
    let warnings = a.target.client()?.warnings(&q)?;
    if a.json {
        return print_json(&warnings);
    }
    print!("{}", render_warnings(&warnings, Some(a.limit)));
    Ok(())
}

/// Runs a `mingchu warnings` command.
pub fn run(args: WarningsArgs) -> anyhow::Result<()> {
    match args.cmd {
        None => list(args.list),
        Some(WarningsCmd::List(a)) => list(a),
        Some(WarningsCmd::Candidates { target, under, json }) => {
            let c = target.client()?.warning_candidates(under)?;
            if json {
                return print_json(&c);
            }
            print!("{}", render_candidates(&c));
            Ok(())
        }
        Some(WarningsCmd::Evaluate { target, json }) => {
            let client = target.client()?;
            let done = client.evaluate_warnings()?;
            if json {
                return print_json(&done);
            }
            println!(
                "预警判定已运行：新发或升级预警 {} 条，解除 {} 条，自动挂账 {} 件",
                done.raised, done.resolved, done.cases
            );
            if done.raised + done.resolved + done.cases > 0 {
                return Ok(());
            }
            // Only schools and counties judge: say so where nothing could happen.
            match client.status() {
                Ok(st) if matches!(st.node.tier(), Tier::City | Tier::Province) => println!(
                    "（{} 是{}节点：预警由学校判定本校规则、由县级判定学校失联与整改期限，这里只汇总查看）",
                    st.node,
                    client::render::tier_zh(st.node.tier())
                ),
                _ => println!("（没有新的变化：预警引擎在每次填报、登记后和定时自动运行，已判定的不再重复）"),
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<crate::cli::Cli, clap::Error> {
        crate::cli::Cli::try_parse_from(["mingchu", "warnings"].iter().chain(args))
    }

    #[test]
    fn warnings_list_is_the_default_and_levels_and_rules_parse_in_chinese() {
        let cli = parse(&["--admin", "127.0.0.1:9", "--level", "红", "--rule", "在岗人员无健康证", "--all"]).unwrap();
        let crate::cli::Cmd::Warnings(WarningsArgs { cmd: None, list }) = cli.cmd else { panic!("not a listing") };
        assert_eq!(list.level, Some(Level::Red));
        assert_eq!(list.rule, Some(RuleId::HealthCertMissing));
        assert!(list.all);
        assert_eq!(list.limit, 100);
        let cli = parse(&["list", "--admin", "127.0.0.1:9", "--level", "orange", "--limit", "all"]).unwrap();
        let crate::cli::Cmd::Warnings(WarningsArgs { cmd: Some(WarningsCmd::List(list)), .. }) = cli.cmd else {
            panic!("not a listing")
        };
        assert_eq!((list.level, list.limit), (Some(Level::Orange), WARNINGS_LIMIT_MAX));
        assert!(parse(&["--admin", "127.0.0.1:9", "--level", "紫"]).unwrap_err().to_string().contains("yellow"));
        assert!(parse(&["--admin", "127.0.0.1:9", "--limit", "0"]).is_err());
        assert!(parse(&["candidates", "--admin", "127.0.0.1:9", "--under", "130102"]).is_ok());
        assert!(parse(&["evaluate", "--admin", "127.0.0.1:9"]).is_ok());
    }
}
