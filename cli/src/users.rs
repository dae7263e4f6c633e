//! `mingchu user …`: the people who sign in at a node. The first administrator of a node is
//! created here, from the node's own shell; the password is read without echo from the terminal,
//! or as the first line of standard input with `--password-stdin` (for scripts).

use std::io::{BufRead, IsTerminal};

use clap::Subcommand;
use node::api::accounts::{AccountRequest, AccountView, SignIn};
use topology::NodeId;

use crate::cli::{Target, print_json};

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create (or change) an account of the node: its id, name and role, and its password.
    Add {
        #[command(flatten)]
        target: Target,
        /// The name the person signs in with, e.g. li.na (2–32 of a-z 0-9 . _ -).
        #[arg(long)]
        id: String,
        /// The name shown beside their steps, e.g. 李娜.
        #[arg(long)]
        name: String,
        /// 管理员, 监管员, 巡查员, 领导 (只读) at a province, city or county; 校长, 食品安全员, 家长 at a school.
        #[arg(long)]
        role: String,
        /// Read the password from the first line of standard input instead of asking for it.
        #[arg(long)]
        password_stdin: bool,
        /// Create the account disabled (it cannot sign in).
        #[arg(long)]
        disabled: bool,
        #[arg(long)]
        json: bool,
    },
    /// List the accounts the node holds (its own, and by the holds rule those of its subtree and
    /// its ancestors): who they are, never their passwords.
    List {
        #[command(flatten)]
        target: Target,
        /// Only accounts of units in this subtree.
        #[arg(long)]
        under: Option<NodeId>,
        #[arg(long)]
        json: bool,
    },
    /// The node's audit log: sign-ins (refused and throttled ones too) and account changes.
    Audit {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        limit: crate::cli::Limit,
        #[arg(long)]
        json: bool,
    },
    /// Check an account's password at its node (as the console's sign-in does).
    Check {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        id: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

/// The password: the first line of stdin (`--password-stdin`), or asked without echo.
fn password(from_stdin: bool, prompt: &str) -> anyhow::Result<String> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    Ok(rpassword::prompt_password(prompt)?)
}

fn render(accounts: &[AccountView]) -> String {
    client::render::render_accounts(accounts)
}

pub fn run(cmd: UserCmd) -> anyhow::Result<()> {
    match cmd {
        UserCmd::Add { target, id, name, role, password_stdin, disabled, json } => {
            let password = password(password_stdin, "密码 (password): ")?;
            let req = AccountRequest { id, display_name: name, role, password, disabled };
            let a = target.client()?.add_account(&req)?;
            if json {
                return print_json(&a);
            }
            println!(
                "已建立账号 {}（{}，{}），属于 {}",
                a.id,
                client::render::clean(&a.display_name),
                a.role_zh,
                a.unit
            );
            Ok(())
        }
        UserCmd::List { target, under, json } => {
            let accounts = target.client()?.accounts(under)?;
            if json {
                return print_json(&accounts);
            }
            print!("{}", render(&accounts));
            Ok(())
        }
        UserCmd::Audit { target, limit, json } => {
            let lines = target.client()?.audit(limit.limit)?;
            if json {
                return print_json(&lines);
            }
            print!("{}", client::render::render_audit(&lines));
            Ok(())
        }
        UserCmd::Check { target, id, password_stdin } => {
            let password = password(password_stdin, "密码 (password): ")?;
            let a = target.client()?.sign_in(&SignIn { id, password })?;
            println!("密码正确：{}（{}，{}）", a.id, client::render::clean(&a.display_name), a.role_zh);
            Ok(())
        }
    }
}
