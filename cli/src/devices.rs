//! `mingchu device …`: a school's devices — the AI boxes (AI 分析盒) and video recorders
//! (硬盘录像机, NVR) that post detections and camera heartbeats to its device intake. A new device
//! and a rotated one get a token, printed once: configure it on the device at once, the node keeps
//! only its hash.

use clap::Subcommand;
use node::api::devices::{AddDevice, DeviceToken};

use crate::cli::{Target, print_json};

#[derive(Subcommand, Debug)]
pub enum DeviceCmd {
    /// Register a device of the school: its id, kind and name, and the registered cameras it
    /// speaks for. Prints its token once.
    Add {
        #[command(flatten)]
        target: Target,
        /// School-local id, e.g. box-1 (letters, digits, - _ .; never reused, even after revoking).
        #[arg(long)]
        id: String,
        /// ai-box (AI 分析盒) or nvr (硬盘录像机).
        #[arg(long)]
        kind: String,
        /// A name people read, e.g. 后厨 AI 分析盒.
        #[arg(long)]
        name: String,
        /// A camera it speaks for (a registered camera of the school); repeat, or separate with commas.
        #[arg(long = "camera", required = true, value_delimiter = ',')]
        cameras: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List the school's devices: kind, cameras, who added them, their last request (never tokens).
    List {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a device: its token stops working at once (its id is not used again).
    Revoke {
        #[command(flatten)]
        target: Target,
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Give a device a new token (printed once); the old one stops working at once.
    Rotate {
        #[command(flatten)]
        target: Target,
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// The school's cameras: online or not, the last heartbeat, days of recording.
    Cameras {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
}

fn print_token(t: &DeviceToken, what: &str) {
    let d = &t.device;
    println!(
        "{what} {}（{}，{}；摄像头 {}）",
        client::render::clean(&d.id),
        d.kind_zh,
        client::render::clean(&d.name),
        client::render::clean(&d.cameras.join("、"))
    );
    println!("令牌（只显示这一次，请立即配置到设备上；节点只保存其摘要）：");
    println!("{}", t.token);
    println!("设备每个请求带上：Authorization: Bearer <令牌>");
}

pub fn run(cmd: DeviceCmd) -> anyhow::Result<()> {
    match cmd {
        DeviceCmd::Add { target, id, kind, name, cameras, json } => {
            let t = target.client()?.add_device(&AddDevice { id, kind, name, cameras })?;
            if json {
                return print_json(&t);
            }
            print_token(&t, "已登记设备");
            Ok(())
        }
        DeviceCmd::List { target, json } => {
            let devices = target.client()?.devices()?;
            if json {
                return print_json(&devices);
            }
            print!("{}", client::render::render_devices(&devices));
            Ok(())
        }
        DeviceCmd::Revoke { target, id, json } => {
            let d = target.client()?.revoke_device(&id)?;
            if json {
                return print_json(&d);
            }
            println!("已吊销设备 {}：它的令牌已失效", client::render::clean(&d.id));
            Ok(())
        }
        DeviceCmd::Rotate { target, id, json } => {
            let t = target.client()?.rotate_device(&id)?;
            if json {
                return print_json(&t);
            }
            print_token(&t, "已为设备换新令牌（旧令牌已失效）");
            Ok(())
        }
        DeviceCmd::Cameras { target, json } => {
            let v = target.client()?.cameras()?;
            if json {
                return print_json(&v);
            }
            print!("{}", client::render::render_cameras(&v));
            Ok(())
        }
    }
}
