//! `mingchu case …` and `mingchu alert confirm|dismiss`: the case lifecycle from the command line
//! (挂账 → 整改通知 → 整改 → 复核 → 销号, 督办), against a node's admin API.

use clap::Subcommand;
use client::render::render_case;
use node::api::alerts::{AlertVerdict, VerdictKind};
use node::api::cases::{OpenCase, StepRequest};
use topology::NodeId;

use crate::cli::{Target, print_json};

#[derive(Subcommand, Debug)]
pub enum CaseCmd {
    /// Put a problem on the books (挂账) at a school, with its rectification notice (supervisors).
    Open {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        school: NodeId,
        /// general (一般), serious (较重) or severe (严重): sets the deadline.
        #[arg(long)]
        severity: String,
        #[arg(long)]
        title: String,
        #[arg(long, default_value = "")]
        detail: String,
        /// spot-check, on-site, rule-warning, complaint or self-check.
        #[arg(long)]
        source: Option<String>,
        /// Open without issuing the notice yet.
        #[arg(long)]
        no_notice: bool,
        /// The notice's text (default: a standard request to rectify and upload evidence).
        #[arg(long)]
        notice_text: Option<String>,
        /// Deadline, China time: 2026-12-05 (the end of that day) or "2026-12-05 17:00"
        /// (default: by severity, in working days, from the settings in force).
        #[arg(long = "deadline", value_name = "DATE", value_parser = crate::registry::parse_date_arg)]
        deadline_ms: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Issue the rectification notice of an open case (supervisors).
    Notice {
        #[command(flatten)]
        target: Target,
        id: String,
        #[arg(long)]
        text: String,
        /// Deadline, China time: 2026-12-05 or "2026-12-05 17:00" (default: by severity).
        #[arg(long = "deadline", value_name = "DATE", value_parser = crate::registry::parse_date_arg)]
        deadline_ms: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// The school acknowledges the notice and starts rectifying (the school).
    Ack {
        #[command(flatten)]
        target: Target,
        id: String,
        /// Refuse the notice instead (recorded).
        #[arg(long)]
        refuse: bool,
        #[arg(long)]
        json: bool,
    },
    /// The school reports its rectification with evidence (the school).
    Submit {
        #[command(flatten)]
        target: Target,
        id: String,
        /// Evidence references or descriptions (one or more, with or without photos).
        #[arg(long = "evidence", required_unless_present = "photo")]
        evidence: Vec<String>,
        /// A photo of the rectification (JPEG or PNG, up to 4 MiB): uploaded to the school's node
        /// first, its reference added to the evidence. May be given several times.
        #[arg(long = "photo", value_name = "FILE")]
        photo: Vec<std::path::PathBuf>,
        #[arg(long, default_value = "")]
        note: String,
        #[arg(long)]
        json: bool,
    },
    /// Review a submitted rectification: pass, or fail it back to rework (supervisors).
    Review {
        #[command(flatten)]
        target: Target,
        id: String,
        #[arg(long, conflicts_with = "fail")]
        pass: bool,
        #[arg(long)]
        fail: bool,
        #[arg(long, default_value = "")]
        comment: String,
        /// New deadline after a failed review, China time: 2026-12-05 or "2026-12-05 17:00"
        /// (at most half the first span).
        #[arg(long = "deadline", value_name = "DATE", value_parser = crate::registry::parse_date_arg)]
        deadline_ms: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Close (销号) a reviewed case (supervisors).
    Close {
        #[command(flatten)]
        target: Target,
        id: String,
        #[arg(long, default_value = "整改到位，予以销号")]
        comment: String,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a case opened in error (误判), with the reason (supervisors).
    Cancel {
        #[command(flatten)]
        target: Target,
        id: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// Escalate (督办) an overdue case one level up (supervisors; the scheduler does it on time).
    Escalate {
        #[command(flatten)]
        target: Target,
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// List the cases a node holds (newest first).
    List {
        #[command(flatten)]
        target: Target,
        /// Only cases of schools in this unit's subtree.
        #[arg(long)]
        under: Option<NodeId>,
        /// `open`, or one status: open, notice-issued, rectifying, submitted, reviewed, closed, cancelled.
        #[arg(long)]
        status: Option<String>,
        /// Only cases this node supervises now (its 督办 list).
        #[arg(long)]
        supervised_here: bool,
        #[arg(long)]
        json: bool,
    },
    /// One case with its whole history, refused steps included.
    Show {
        #[command(flatten)]
        target: Target,
        id: String,
        #[arg(long)]
        json: bool,
    },
}

/// Prints `text` (a rendered view) and succeeds.
fn show(text: String) -> anyhow::Result<()> {
    print!("{text}");
    Ok(())
}

fn step(target: Target, id: &str, req: StepRequest, json: bool) -> anyhow::Result<()> {
    let c = target.client()?.case_step(id, &req)?;
    if json { print_json(&c) } else { show(render_case(&c)) }
}

pub fn run(cmd: CaseCmd) -> anyhow::Result<()> {
    match cmd {
        CaseCmd::Open {
            target,
            school,
            severity,
            title,
            detail,
            source,
            no_notice,
            notice_text,
            deadline_ms,
            json,
        } => {
            let req =
                OpenCase { school, severity, source, title, detail, notice: !no_notice, notice_text, deadline_ms };
            let c = target.client()?.open_case(&req)?;
            if json { print_json(&c) } else { show(format!("opened {}", render_case(&c))) }
        }
        CaseCmd::Notice { target, id, text, deadline_ms, json } => {
            step(target, &id, StepRequest::Notice { text, deadline_ms }, json)
        }
        CaseCmd::Ack { target, id, refuse, json } => {
            step(target, &id, if refuse { StepRequest::RefuseNotice } else { StepRequest::Ack }, json)
        }
        CaseCmd::Submit { target, id, mut evidence, photo, note, json } => {
            // Every photo is read and checked before any is uploaded.
            let mut photos = Vec::new();
            for p in &photo {
                let bytes = std::fs::read(p).map_err(|e| anyhow::anyhow!("读不了照片 {}：{e}", p.display()))?;
                if protocol::files::ContentType::sniff(&bytes).is_none() {
                    return Err(crate::cli::BadInput(format!("{} 不是 JPEG 或 PNG 图片", p.display())).into());
                }
                if bytes.len() > protocol::files::FILE_BYTES_MAX {
                    return Err(crate::cli::BadInput(format!(
                        "{} 有 {} 字节，超过 4 MiB 的上限",
                        p.display(),
                        bytes.len()
                    ))
                    .into());
                }
                photos.push(bytes);
            }
            let client = target.client()?;
            for bytes in photos {
                evidence.push(client.upload_file("evidence", &bytes)?.file);
            }
            step(target, &id, StepRequest::Submit { evidence, note }, json)
        }
        CaseCmd::Review { target, id, pass, fail, comment, deadline_ms, json } => {
            if pass == fail {
                anyhow::bail!("say --pass or --fail");
            }
            step(target, &id, StepRequest::Review { passed: pass, comment, new_deadline_ms: deadline_ms }, json)
        }
        CaseCmd::Close { target, id, comment, json } => step(target, &id, StepRequest::Close { comment }, json),
        CaseCmd::Cancel { target, id, reason, json } => step(target, &id, StepRequest::Cancel { reason }, json),
        CaseCmd::Escalate { target, id, json } => step(target, &id, StepRequest::Escalate, json),
        CaseCmd::List { target, under, status, supervised_here, json } => {
            let cases = target.client()?.cases(under, status.as_deref(), supervised_here)?;
            if json { print_json(&cases) } else { show(client::render::render_cases(&cases)) }
        }
        CaseCmd::Show { target, id, json } => {
            let c = target.client()?.case(&id)?;
            if json { print_json(&c) } else { show(render_case(&c)) }
        }
    }
}

/// `alert confirm` / `alert dismiss`.
pub fn verdict(target: Target, id: &str, kind: VerdictKind, verdict: AlertVerdict, json: bool) -> anyhow::Result<()> {
    let client = target.client()?;
    let v = match kind {
        VerdictKind::Confirm => client.confirm_alert(id, &verdict)?,
        VerdictKind::Dismiss => client.dismiss_alert(id, &verdict)?,
        VerdictKind::Overturn => client.overturn_alert(id, &verdict)?,
    };
    if json {
        return print_json(&v);
    }
    let status = v.state.status.zh();
    let mut line = format!("告警 {} {status}", v.id);
    if let Some(o) = &v.state.overturned {
        line.push_str(&format!(
            "（推翻了 {} 的误报判定）",
            client::render::acted(o.dismissed_by, o.dismissed_by_person.as_ref())
        ));
    }
    if let Some(case) = v.state.case {
        line.push_str(&format!("；已挂账 {case} 并下发整改通知"));
    }
    println!("{line}");
    Ok(())
}
