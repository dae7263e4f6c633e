//! `mingchu file …`: a snapshot or rectification photo to a node, or one fetched from it (through
//! the tree from the school that holds it).

use std::path::PathBuf;

use clap::Subcommand;
use topology::NodeId;

use crate::cli::{BadInput, Target, print_json};

#[derive(Subcommand, Debug)]
pub enum FileCmd {
    /// Store a JPEG or PNG at the node (a detection's snapshot, a rectification's photo) and print
    /// its reference `sha256:…`, which an alert's snapshot or a submission's evidence then names.
    Put {
        #[command(flatten)]
        target: Target,
        path: PathBuf,
        /// snapshot (kept the configured days, 30 by default) or evidence (kept for good).
        #[arg(long, default_value = "snapshot", value_parser = ["snapshot", "evidence"])]
        kind: String,
        #[arg(long)]
        json: bool,
    },
    /// Fetch a file held at a school (through the tree if need be) into a local file.
    Get {
        #[command(flatten)]
        target: Target,
        /// The reference, `sha256:…`.
        reference: String,
        /// The school that holds it (the alert's or the case's school); default the node asked.
        #[arg(long)]
        holder: Option<NodeId>,
        /// Where to write it.
        #[arg(long, short)]
        out: PathBuf,
    },
}

pub fn run(cmd: FileCmd) -> anyhow::Result<()> {
    match cmd {
        FileCmd::Put { target, path, kind, json } => {
            let bytes = std::fs::read(&path).map_err(|e| anyhow::anyhow!("读不了 {}：{e}", path.display()))?;
            if protocol::files::ContentType::sniff(&bytes).is_none() {
                return Err(BadInput(format!("{} 不是 JPEG 或 PNG 图片 / not a JPEG or PNG", path.display())).into());
            }
            let stored = target.client()?.upload_file(&kind, &bytes)?;
            if json {
                return print_json(&stored);
            }
            println!("已保存 {} （{} 字节，{}）", stored.file, stored.size, stored.content_type);
            Ok(())
        }
        FileCmd::Get { target, reference, holder, out } => {
            if protocol::files::parse_ref(&reference).is_none() {
                return Err(BadInput(format!("“{reference}”不是文件引用（sha256:…）")).into());
            }
            let client = target.client()?;
            let holder = match holder {
                Some(h) => h,
                None => client.status()?.node,
            };
            let (kind, bytes) = client.file(&reference, holder)?;
            std::fs::write(&out, &bytes).map_err(|e| anyhow::anyhow!("写不了 {}：{e}", out.display()))?;
            println!("已取回 {reference}（{} 字节，{kind}）→ {}", bytes.len(), out.display());
            Ok(())
        }
    }
}
