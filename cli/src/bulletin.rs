//! `mingchu bulletin …`: 通报 from the command line — generate a draft at a province or city node,
//! list drafts and published bulletins, show one with its ranked tables, publish a draft (a
//! 管理员: `mingchu --as ACCOUNT bulletin publish …`).

use clap::Subcommand;
use node::api::bulletins::BulletinView;
use protocol::bulletin::{MEASURES, pct};

use crate::cli::{Target, print_json};

#[derive(Subcommand, Debug)]
pub enum BulletinCmd {
    /// Generate a draft (kept at this node only) for a week or a month.
    Generate {
        #[command(flatten)]
        target: Target,
        /// weekly (周通报) or monthly (月通报).
        #[arg(long, default_value = "weekly")]
        kind: String,
        /// A day of the week (2026-11-23) or a month (2026-11); default: the last whole period.
        #[arg(long)]
        period: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Published bulletins this node holds; with --drafts, the drafts kept here.
    List {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        drafts: bool,
        #[arg(long)]
        json: bool,
    },
    /// One bulletin with its ranked tables: a published one (`13#5`) or a draft (`d…`).
    Show {
        #[command(flatten)]
        target: Target,
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Publish a draft down the tree (optionally replacing its summary first).
    Publish {
        #[command(flatten)]
        target: Target,
        id: String,
        /// The reviewed summary text.
        #[arg(long)]
        summary: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// The bulletin as text: title, summary, each table, examples, cases.
pub fn render(v: &BulletinView) -> String {
    let mut out = format!("{}\n{}\n", v.doc.issuer_name, v.title);
    out.push_str(&format!(
        "编号：{}　状态：{}　统计周期：{}\n\n",
        v.id,
        if v.published { "已发布" } else { "草稿" },
        v.doc.period.label()
    ));
    out.push_str(&format!("{}\n", v.doc.summary));
    for t in &v.tables {
        out.push_str(&format!("\n【{}】\n名次\t单位\t综合得分\t{}\n", t.title, MEASURES.join("\t")));
        for r in &t.rows {
            let rank = r.rank.map(|k| k.to_string()).unwrap_or_else(|| "—".into());
            let score = r.score.map(pct).unwrap_or_else(|| "无数据".into());
            let ms: Vec<String> = r
                .figures
                .measures()
                .iter()
                .map(|m| if m.whole > 0 { format!("{}({}/{})", m.percent(), m.part, m.whole) } else { "—".into() })
                .collect();
            out.push_str(&format!("{rank}\t{}\t{score}\t{}\n", r.figures.name, ms.join("\t")));
        }
        for e in &t.good {
            out.push_str(&format!("好的典型：{}：{}\n", e.name, e.evidence));
        }
        for e in &t.bad {
            out.push_str(&format!("问题与不足：{}：{}\n", e.name, e.evidence));
        }
    }
    if !v.doc.bad_cases.is_empty() {
        out.push_str("\n【逾期或督办的问题】\n");
        for c in &v.doc.bad_cases {
            out.push_str(&format!("{}\t{}\t{}\t{}\t{}\n", c.number, c.school_name, c.title, c.status, c.why));
        }
    }
    out
}

fn print_list(rows: &[BulletinView]) {
    if rows.is_empty() {
        println!("（没有通报）");
    }
    for b in rows {
        println!("{}\t{}\t{}", b.id, if b.published { "已发布" } else { "草稿" }, b.title);
    }
}

/// Runs a `mingchu bulletin` command.
pub fn run(cmd: BulletinCmd) -> anyhow::Result<()> {
    let (v, json) = match cmd {
        BulletinCmd::Generate { target, kind, period, json } => {
            (target.client()?.generate_bulletin(&kind, period.as_deref())?, json)
        }
        BulletinCmd::List { target, drafts, json } => {
            let c = target.client()?;
            let rows = if drafts { c.bulletin_drafts()? } else { c.bulletins()? };
            if json {
                return print_json(&rows);
            }
            print_list(&rows);
            return Ok(());
        }
        BulletinCmd::Show { target, id, json } => {
            let c = target.client()?;
            let v = if id.trim().starts_with('d') { c.bulletin_draft(&id)? } else { c.bulletin(&id)? };
            (v, json)
        }
        BulletinCmd::Publish { target, id, summary, json } => {
            let c = target.client()?;
            if let Some(s) = summary {
                c.edit_bulletin(&id, &s)?;
            }
            (c.publish_bulletin(&id)?, json)
        }
    };
    if json {
        return print_json(&v);
    }
    print!("{}", render(&v));
    Ok(())
}
