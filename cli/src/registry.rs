//! `mingchu registry …`: the registry from the command line, against a node's admin API.
//!
//! Each entity is written at its one owner: the province registers cities and sets the settings, a
//! county registers its schools, a school its canteens, cameras, staff and health certificates.
//! Every listing shows what the node holds (its subtree, plus its city and the province's
//! settings) and takes `--json`; so does every write.

use std::net::SocketAddr;

use clap::{Args, Subcommand};
use client::render::{clean, render_registry};
use node::api::registry::{RegistryRequest, RegistryWritten};
use protocol::Zone;
use protocol::calendar::{Holiday, YearSchedule};
use protocol::ledger::{Meal, OperationMode};
use protocol::registry::{
    Camera, CameraStream, Canteen, CanteenLicence, City, EntityData, EntityKind, HealthCertificate, MealSlot,
    RegistryOp, School, Staff, StaffRole, Supplier,
};
use protocol::warning::{RuleAction, RuleId, RuleSettings};
use topology::{NodeId, Tier};

use crate::cli::{BadInput, Target, print_json};

#[derive(Subcommand, Debug)]
pub enum RegistryCmd {
    /// List the registry a node holds (optionally one kind, optionally only under one unit).
    List {
        #[command(flatten)]
        target: Target,
        /// city, settings, school, canteen, camera, staff, health-certificate (cert), account,
        /// supplier, canteen-licence, rule-settings or calendar.
        #[arg(long)]
        kind: Option<EntityKind>,
        #[command(flatten)]
        list: ListOpts,
    },
    /// Schools: registered by their county.
    #[command(subcommand)]
    School(SchoolCmd),
    /// Canteens: registered by their school.
    #[command(subcommand)]
    Canteen(CanteenCmd),
    /// Kitchen cameras: registered by their school.
    #[command(subcommand)]
    Camera(CameraCmd),
    /// Canteen staff: registered by their school.
    #[command(subcommand)]
    Staff(StaffCmd),
    /// Health certificates (健康证) of staff: registered by their school.
    #[command(subcommand)]
    Cert(CertCmd),
    /// Cities: registered by the province.
    #[command(subcommand)]
    City(CityCmd),
    /// Province-wide settings (rule thresholds, deadlines by severity): set by the province.
    #[command(subcommand)]
    Settings(SettingsCmd),
    /// Food suppliers (供应商) of a school with their licences: registered by their school.
    #[command(subcommand)]
    Supplier(SupplierCmd),
    /// A canteen's own licence (食品经营许可证), how it is run, and its working day (prep start,
    /// meals served): registered by its school.
    #[command(subcommand)]
    Licence(LicenceCmd),
    /// Early-warning rules (预警规则): what each rule's warnings do and the thresholds — the
    /// province's default, a county's override.
    #[command(subcommand)]
    Rules(RulesCmd),
    /// The working-day calendar (工作日历): public holidays and 调休 working days per year, set by
    /// the province.
    #[command(subcommand)]
    Calendar(CalendarCmd),
    /// Remove an entity the node owns.
    Remove {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        kind: EntityKind,
        /// The entity's node (a school, a city); default the node itself.
        #[arg(long)]
        of: Option<NodeId>,
        /// The school-local id (canteen, camera, staff, certificate).
        #[arg(long, default_value = "")]
        id: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug, Clone)]
pub struct ListOpts {
    /// Only entities of this unit's subtree.
    #[arg(long)]
    pub under: Option<NodeId>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ListArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub list: ListOpts,
}

#[derive(Subcommand, Debug)]
pub enum SchoolCmd {
    /// Register (or update) a school of this county.
    Add {
        #[command(flatten)]
        target: Target,
        /// The school, e.g. 130102-S0017.
        #[arg(long)]
        school: NodeId,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        address: String,
        #[arg(long, default_value_t = 1)]
        canteens: u32,
        /// Where the school's node listens for QUIC.
        #[arg(long)]
        school_quic: Option<SocketAddr>,
        /// The school node's admin API address.
        #[arg(long)]
        school_admin: Option<SocketAddr>,
        #[arg(long)]
        json: bool,
    },
    List(ListArgs),
}

#[derive(Subcommand, Debug)]
pub enum CanteenCmd {
    /// Register (or update) a canteen of this school.
    Add {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        address: String,
        #[arg(long)]
        json: bool,
    },
    List(ListArgs),
}

#[derive(Subcommand, Debug)]
pub enum CameraCmd {
    /// Register (or update) a kitchen camera of this school.
    Add {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        id: String,
        /// The canteen it watches (registered first).
        #[arg(long)]
        canteen: String,
        #[arg(long)]
        name: String,
        /// rough-processing, cutting, cooking, special-room, washing, serving, sampling, storage,
        /// entrance, dining.
        #[arg(long)]
        zone: Zone,
        /// AI detection off.
        #[arg(long)]
        no_ai: bool,
        /// Parents may watch it.
        #[arg(long)]
        parent_visible: bool,
        #[arg(long)]
        json: bool,
    },
    /// Set where a registered camera's live picture is: its HLS address, or its stream's path at
    /// the media server (`[video] hls_base` of the watching node), plus its RTSP source or GB/T
    /// 28181 channel for the media server's operators.
    Stream {
        #[command(flatten)]
        target: Target,
        /// The camera's id (registered first).
        #[arg(long)]
        id: String,
        /// The HLS playlist's full address (http(s)://…/….m3u8).
        #[arg(long, default_value = "")]
        hls_url: String,
        /// The stream's path at the media server (cam1, live/cam1/hls.m3u8).
        #[arg(long, default_value = "")]
        stream: String,
        /// The camera's RTSP address.
        #[arg(long, default_value = "")]
        rtsp_url: String,
        /// The camera's GB/T 28181 channel id (20 digits).
        #[arg(long, default_value = "")]
        gb_channel: String,
        #[arg(long)]
        json: bool,
    },
    List(ListArgs),
}

#[derive(Subcommand, Debug)]
pub enum StaffCmd {
    /// Register (or update) a staff member of this school.
    Add {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// principal, food-safety-officer, canteen-manager, cook or helper.
        #[arg(long)]
        role: StaffRole,
        /// Registered as not on duty.
        #[arg(long)]
        off_duty: bool,
        #[arg(long)]
        json: bool,
    },
    List(ListArgs),
}

#[derive(Subcommand, Debug)]
pub enum CertCmd {
    /// Register (or renew) a staff member's health certificate.
    Add {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        id: String,
        /// The staff member (registered first).
        #[arg(long)]
        staff: String,
        #[arg(long)]
        number: String,
        /// Last valid day, e.g. 2026-12-05 (China time).
        #[arg(long, value_name = "DATE")]
        valid_until: String,
        #[arg(long)]
        json: bool,
    },
    List(ListArgs),
}

#[derive(Subcommand, Debug)]
pub enum CityCmd {
    /// Register (or rename) a city of the province.
    Add {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        city: NodeId,
        #[arg(long)]
        name: String,
        #[arg(long)]
        json: bool,
    },
    List(ListArgs),
}

#[derive(Subcommand, Debug)]
pub enum SettingsCmd {
    /// Change the settings: at the province the default for every school, at a county its
    /// override for its own schools (unnamed ones keep their value in force).
    Set {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        deadline_general_days: Option<u32>,
        #[arg(long)]
        deadline_serious_days: Option<u32>,
        #[arg(long)]
        deadline_severe_hours: Option<u32>,
        #[arg(long)]
        review_days: Option<u32>,
        #[arg(long)]
        health_cert_warn_days: Option<u32>,
        #[arg(long)]
        sample_min_grams: Option<u32>,
        /// Overdue this many working days: the case goes from the county to the city (督办).
        #[arg(long)]
        overdue_county_days: Option<u32>,
        /// Overdue this many working days: from the city to the province.
        #[arg(long)]
        overdue_city_days: Option<u32>,
        #[arg(long)]
        json: bool,
    },
    /// Show the settings in force (the county's override, the province's, or the defaults) and
    /// where they come from.
    Show {
        #[command(flatten)]
        target: Target,
        /// For this unit (default: the node asked).
        #[arg(long)]
        unit: Option<NodeId>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum SupplierCmd {
    /// Register (or update) a food supplier of this school with its licence; a purchase from a
    /// supplier whose licence has expired is refused.
    Add {
        #[command(flatten)]
        target: Target,
        /// The supplier's id at this school, e.g. sp1.
        #[arg(long)]
        id: String,
        /// 供应商名称, e.g. 放心菜店.
        #[arg(long)]
        name: String,
        /// 食品经营许可证 number, e.g. JY11301020000001.
        #[arg(long)]
        licence: String,
        /// Last valid day of the licence, e.g. 2027-06-30 (China time).
        #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
        valid_until: u64,
        /// 联系人或电话.
        #[arg(long, default_value = "")]
        contact: String,
        #[arg(long)]
        json: bool,
    },
    List(ListArgs),
}

#[derive(Subcommand, Debug)]
pub enum LicenceCmd {
    /// Register (or renew) a canteen's licence with its operation mode and working day; the rules
    /// judge morning checks from the prep start, samples and leader meals by the meals served.
    Add {
        #[command(flatten)]
        target: Target,
        /// The canteen (registered first); the licence is kept under the canteen's id.
        #[arg(long)]
        canteen: String,
        /// 食品经营许可证 number.
        #[arg(long)]
        licence: String,
        /// Last valid day, e.g. 2027-06-30 (China time).
        #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
        valid_until: u64,
        /// 自营 (self-run), 承包经营 (contracted), 委托经营 (entrusted) or 校外供餐 (delivered).
        #[arg(long)]
        mode: OperationMode,
        /// When work and the morning check start (开工时间), e.g. 07:00.
        #[arg(long, value_name = "HH:MM", value_parser = parse_hm)]
        prep: u16,
        /// A meal served on working days: MEAL=START-END, e.g. 午餐=11:30-12:30 or
        /// breakfast=07:00-07:40; repeat for each (at most three).
        #[arg(long = "meal", value_name = "MEAL=HH:MM-HH:MM", value_parser = parse_meal_slot, required = true)]
        meals: Vec<MealSlot>,
        #[arg(long)]
        json: bool,
    },
    List(ListArgs),
}

/// The thresholds of the rule settings, each a flag of `registry rules set` (unnamed ones keep the
/// value in force).
#[derive(Args, Debug, Clone, Default)]
pub struct Thresholds {
    /// A health certificate this many days from expiry is orange (yellow: the settings'
    /// health_cert_warn_days).
    #[arg(long)]
    pub health_cert_orange_days: Option<u32>,
    /// An on-duty staff member still unchecked this many minutes after prep start is orange.
    #[arg(long)]
    pub morning_check_orange_min: Option<u32>,
    /// A served meal without a sample this many minutes after it ends is orange.
    #[arg(long)]
    pub sample_grace_min: Option<u32>,
    /// A served meal without a leader companion this many minutes after it ends is yellow.
    #[arg(long)]
    pub leader_meal_grace_min: Option<u32>,
    /// This many served meals in a row without a leader is orange.
    #[arg(long)]
    pub leader_meal_streak: Option<u32>,
    /// Parent-accompanied meals expected per month.
    #[arg(long)]
    pub parent_meals_per_month: Option<u32>,
    /// A purchase's certificates incomplete this many hours after receipt: yellow …
    #[arg(long)]
    pub purchase_yellow_hours: Option<u32>,
    /// … and orange.
    #[arg(long)]
    pub purchase_orange_hours: Option<u32>,
    /// A supplier licence this many days from expiry is yellow.
    #[arg(long)]
    pub supplier_warn_days: Option<u32>,
    /// The canteen licence this many days from expiry: yellow …
    #[arg(long)]
    pub canteen_licence_yellow_days: Option<u32>,
    /// … and orange.
    #[arg(long)]
    pub canteen_licence_orange_days: Option<u32>,
    /// A canteen with under this share of its cameras online (percent) …
    #[arg(long)]
    pub camera_rate_min_pct: Option<u32>,
    /// … for this many minutes is orange.
    #[arg(long)]
    pub camera_rate_after_min: Option<u32>,
    /// No camera online for this many hours is red.
    #[arg(long)]
    pub camera_none_hours: Option<u32>,
    /// When a working day's ledgers are judged complete, China time (e.g. 20:00).
    #[arg(long, value_name = "HH:MM", value_parser = parse_hm)]
    pub daily_report_at: Option<u16>,
    /// Confirmations of the same problem at a canteen that make a repeat (in 7 and in 30 days).
    #[arg(long)]
    pub repeat_count: Option<u32>,
    /// An alert nobody judged for this many hours moves to the county's queue.
    #[arg(long)]
    pub alert_escalate_hours: Option<u32>,
    /// The county warns of a silent school this many minutes after prep start.
    #[arg(long)]
    pub school_silent_after_min: Option<u32>,
}

impl Thresholds {
    /// Sets the fields given.
    pub fn apply(&self, r: &mut RuleSettings) {
        let fields = [
            (&mut r.health_cert_orange_days, self.health_cert_orange_days),
            (&mut r.morning_check_orange_min, self.morning_check_orange_min),
            (&mut r.sample_grace_min, self.sample_grace_min),
            (&mut r.leader_meal_grace_min, self.leader_meal_grace_min),
            (&mut r.leader_meal_streak, self.leader_meal_streak),
            (&mut r.parent_meals_per_month, self.parent_meals_per_month),
            (&mut r.purchase_yellow_hours, self.purchase_yellow_hours),
            (&mut r.purchase_orange_hours, self.purchase_orange_hours),
            (&mut r.supplier_warn_days, self.supplier_warn_days),
            (&mut r.canteen_licence_yellow_days, self.canteen_licence_yellow_days),
            (&mut r.canteen_licence_orange_days, self.canteen_licence_orange_days),
            (&mut r.camera_rate_min_pct, self.camera_rate_min_pct),
            (&mut r.camera_rate_after_min, self.camera_rate_after_min),
            (&mut r.camera_none_hours, self.camera_none_hours),
            (&mut r.daily_report_minute, self.daily_report_at.map(u32::from)),
            (&mut r.repeat_count, self.repeat_count),
            (&mut r.alert_escalate_hours, self.alert_escalate_hours),
            (&mut r.school_silent_after_min, self.school_silent_after_min),
        ];
        for (field, given) in fields {
            if let Some(v) = given {
                *field = v;
            }
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum RulesCmd {
    /// Change the early-warning rule settings: at the province the default for every school, at
    /// a county its override for its own schools (what is not named keeps the value in force).
    Set {
        #[command(flatten)]
        target: Target,
        /// What a rule's warnings do: RULE=notify (仅提醒), case (自动挂账), case-and-notice
        /// (自动挂账并下发整改通知) or default; e.g. purchase-certs-incomplete=case. Repeat for
        /// several (`registry rules show` lists the rules).
        #[arg(long = "action", value_name = "RULE=ACTION", value_parser = parse_rule_action)]
        actions: Vec<(RuleId, RuleAction)>,
        #[command(flatten)]
        thresholds: Thresholds,
        #[arg(long)]
        json: bool,
    },
    /// Show the rule settings in force (the county's override, the province's, or the defaults):
    /// every rule with its Chinese name and what its warnings do, then the thresholds.
    Show {
        #[command(flatten)]
        target: Target,
        /// For this unit (default: the node asked).
        #[arg(long)]
        unit: Option<NodeId>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum CalendarCmd {
    /// The working-day calendar in force: each year's public holidays and 调休 working days —
    /// the built-in years (published, or projected: 预排) with the years the province registered.
    Show {
        #[command(flatten)]
        target: Target,
        /// Only this year.
        #[arg(long)]
        year: Option<u16>,
        #[arg(long)]
        json: bool,
    },
    /// Register one year's arrangement from the State Council's notice (at the province): it
    /// replaces the built-in or projected year everywhere (deadlines, rules).
    Set {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        year: u16,
        /// A holiday's days off: NAME=FIRST..LAST, e.g. 春节=2027-02-06..2027-02-14, or NAME=DAY
        /// for one day; repeat for each.
        #[arg(long = "holiday", value_name = "NAME=FIRST..LAST", value_parser = parse_holiday, required = true)]
        holidays: Vec<Holiday>,
        /// A weekend day that is a working day (调休上班), e.g. 2027-02-20; repeat for each.
        #[arg(long = "workday", value_name = "DATE", value_parser = crate::ledger::parse_date_only)]
        workdays: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

/// `07:00` → minutes after midnight.
pub fn parse_hm(s: &str) -> Result<u16, String> {
    let t = s.trim();
    let bad = || format!("时间“{s}”应写成 07:00 这样的形式（00:00 至 23:59） / `{s}` is not a time of day like 07:00");
    let (h, m) = t.split_once([':', '：']).ok_or_else(bad)?;
    let digits = |p: &str| !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || m.len() != 2 || !digits(m) {
        return Err(bad());
    }
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h >= 24 || m >= 60 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// `午餐=11:30-12:30` (or `lunch=11:30-12:30`) → a meal slot.
pub fn parse_meal_slot(s: &str) -> Result<MealSlot, String> {
    let bad =
        || format!("餐次“{s}”应写成 午餐=11:30-12:30 这样的形式 / `{s}`: write MEAL=START-END, e.g. lunch=11:30-12:30");
    let (meal, span) = s.split_once(['=', '＝']).ok_or_else(bad)?;
    let meal: Meal = meal.parse().map_err(|e: protocol::alert::ParseNameError| e.to_string())?;
    let (start, end) = span.split_once(['-', '–', '~', '～', '至']).ok_or_else(bad)?;
    let (start_min, end_min) = (parse_hm(start)?, parse_hm(end)?);
    if start_min >= end_min {
        return Err(format!("{}的开始时间 {} 须早于结束时间 {}", meal.zh(), start.trim(), end.trim()));
    }
    Ok(MealSlot { meal, start_min, end_min })
}

/// `春节=2027-02-06..2027-02-14` (or `清明节=2027-04-05`, one day) → a holiday; the dates are
/// checked with the whole year by [`YearSchedule::validate`].
pub fn parse_holiday(s: &str) -> Result<Holiday, String> {
    let bad = || {
        format!(
            "节假日“{s}”应写成 春节=2027-02-06..2027-02-14（一天的写 清明节=2027-04-05） / `{s}`: write NAME=FIRST..LAST"
        )
    };
    let (name, span) = s.split_once(['=', '＝']).ok_or_else(bad)?;
    let span = span.trim();
    let (first, last) =
        ["..", "至", "~", "～", "—"].iter().find_map(|sep| span.split_once(sep)).unwrap_or((span, span));
    let (first, last) = (first.trim(), last.trim());
    if name.trim().is_empty() || first.is_empty() || last.is_empty() {
        return Err(bad());
    }
    for d in [first, last] {
        protocol::calendar::parse_day(d).map_err(|e| e.to_string())?;
    }
    Ok(Holiday::new(name.trim(), first, last))
}

/// `purchase-certs-incomplete=case`, `在岗人员无健康证=自动挂账并下发整改通知`, `RULE=default`.
pub fn parse_rule_action(s: &str) -> Result<(RuleId, RuleAction), String> {
    let (rule, action) = s.split_once(['=', '＝']).ok_or_else(|| {
        format!("“{s}”应写成 规则=动作，如 purchase-certs-incomplete=case / `{s}`: write RULE=ACTION, e.g. purchase-certs-incomplete=case")
    })?;
    let rule: RuleId = rule.parse().map_err(|e: protocol::alert::ParseNameError| e.to_string())?;
    let action = match action.trim() {
        "default" | "默认" => rule.default_action(),
        a => a.parse().map_err(|e: protocol::alert::ParseNameError| e.to_string())?,
    };
    Ok((rule, action))
}

/// `r` with `rule`'s action set; an action equal to the rule's default is not stored.
pub fn set_action(r: &mut RuleSettings, rule: RuleId, action: RuleAction) {
    r.actions.retain(|(x, _)| *x != rule);
    if action != rule.default_action() {
        r.actions.push((rule, action));
    }
}

/// What changed between two rule settings, one line each: `采购证票不全 仅提醒 → 自动挂账`.
pub fn rule_changes(old: &RuleSettings, new: &RuleSettings) -> Vec<String> {
    let mut out: Vec<String> = RuleId::ALL
        .into_iter()
        .filter(|r| old.action(*r) != new.action(*r))
        .map(|r| format!("{}（{}）：{} → {}", r.zh(), r.as_str(), old.action(r).zh(), new.action(r).zh()))
        .collect();
    let (a, b) = (client::render::rule_thresholds(old), client::render::rule_thresholds(new));
    for ((label, _, was), (_, _, now)) in a.into_iter().zip(b) {
        if was != now {
            out.push(format!("{label}：{was} → {now}"));
        }
    }
    out
}

fn write(target: &Target, req: RegistryRequest, json: bool) -> anyhow::Result<()> {
    let done: RegistryWritten = target.client()?.registry_write(&req)?;
    if json {
        return print_json(&done);
    }
    let what = if done.id.is_empty() { done.node.to_string() } else { format!("{}/{}", done.node, clean(&done.id)) };
    let op = if done.op == "remove" { "已删除" } else { "已登记" };
    println!("{op}{} {what}（事件 {}）", done.kind.zh(), done.event);
    Ok(())
}

fn upsert(target: &Target, node: Option<NodeId>, id: String, data: EntityData, json: bool) -> anyhow::Result<()> {
    // Checked here too, so a typo is reported without a running node.
    data.validate().map_err(BadInput)?;
    write(target, RegistryRequest { kind: data.kind(), node, id, op: RegistryOp::Upsert(data) }, json)
}

fn list(target: &Target, kind: Option<EntityKind>, opts: &ListOpts) -> anyhow::Result<()> {
    let entities = target.client()?.registry(kind, opts.under)?;
    if opts.json {
        return print_json(&entities);
    }
    print!("{}", render_registry(&entities));
    Ok(())
}

/// Runs a `mingchu registry` command.
pub fn run(cmd: RegistryCmd) -> anyhow::Result<()> {
    match cmd {
        RegistryCmd::List { target, kind, list: opts } => list(&target, kind, &opts),
        RegistryCmd::School(SchoolCmd::Add {
            target,
            school,
            name,
            address,
            canteens,
            school_quic,
            school_admin,
            json,
        }) => {
            let s = School {
                name,
                address,
                canteens,
                quic_addr: school_quic.map(|a| a.to_string()).unwrap_or_default(),
                admin_addr: school_admin.map(|a| a.to_string()).unwrap_or_default(),
            };
            upsert(&target, Some(school), String::new(), EntityData::School(s), json)
        }
        RegistryCmd::School(SchoolCmd::List(a)) => list(&a.target, Some(EntityKind::School), &a.list),
        RegistryCmd::Canteen(CanteenCmd::Add { target, id, name, address, json }) => {
            upsert(&target, None, id, EntityData::Canteen(Canteen { name, address }), json)
        }
        RegistryCmd::Canteen(CanteenCmd::List(a)) => list(&a.target, Some(EntityKind::Canteen), &a.list),
        RegistryCmd::Camera(CameraCmd::Add { target, id, canteen, name, zone, no_ai, parent_visible, json }) => {
            let c = Camera { canteen, name, zone, ai_enabled: !no_ai, parent_visible };
            upsert(&target, None, id, EntityData::Camera(c), json)
        }
        RegistryCmd::Camera(CameraCmd::Stream { target, id, hls_url, stream, rtsp_url, gb_channel, json }) => {
            let v = CameraStream { hls_url, stream, rtsp_url, gb_channel };
            upsert(&target, None, id, EntityData::CameraStream(v), json)
        }
        RegistryCmd::Camera(CameraCmd::List(a)) => list(&a.target, Some(EntityKind::Camera), &a.list),
        RegistryCmd::Staff(StaffCmd::Add { target, id, name, role, off_duty, json }) => {
            upsert(&target, None, id, EntityData::Staff(Staff { name, role, on_duty: !off_duty }), json)
        }
        RegistryCmd::Staff(StaffCmd::List(a)) => list(&a.target, Some(EntityKind::Staff), &a.list),
        RegistryCmd::Cert(CertCmd::Add { target, id, staff, number, valid_until, json }) => {
            let valid_until_ms = parse_date(&valid_until)?;
            let h = HealthCertificate { staff, number, valid_until_ms };
            upsert(&target, None, id, EntityData::HealthCertificate(h), json)
        }
        RegistryCmd::Cert(CertCmd::List(a)) => list(&a.target, Some(EntityKind::HealthCertificate), &a.list),
        RegistryCmd::City(CityCmd::Add { target, city, name, json }) => {
            upsert(&target, Some(city), String::new(), EntityData::City(City { name }), json)
        }
        RegistryCmd::City(CityCmd::List(a)) => list(&a.target, Some(EntityKind::City), &a.list),
        RegistryCmd::Settings(SettingsCmd::Set {
            target,
            deadline_general_days,
            deadline_serious_days,
            deadline_severe_hours,
            review_days,
            health_cert_warn_days,
            sample_min_grams,
            overdue_county_days,
            overdue_city_days,
            json,
        }) => {
            let mut s = target.client()?.settings(None)?.settings;
            let fields = [
                (&mut s.deadline_general_days, deadline_general_days),
                (&mut s.deadline_serious_days, deadline_serious_days),
                (&mut s.deadline_severe_hours, deadline_severe_hours),
                (&mut s.review_days, review_days),
                (&mut s.health_cert_warn_days, health_cert_warn_days),
                (&mut s.sample_min_grams, sample_min_grams),
                (&mut s.overdue_county_days, overdue_county_days),
                (&mut s.overdue_city_days, overdue_city_days),
            ];
            for (field, given) in fields {
                if let Some(v) = given {
                    *field = v;
                }
            }
            upsert(&target, None, String::new(), EntityData::Settings(s), json)
        }
        RegistryCmd::Settings(SettingsCmd::Show { target, unit, json }) => {
            let v = target.client()?.settings(unit)?;
            if json {
                return print_json(&v);
            }
            let from = match v.source {
                protocol::registry::SettingsSource::County => "县级单位的设置（覆盖省级）",
                protocol::registry::SettingsSource::Province => "省级设置",
                protocol::registry::SettingsSource::Default => "内置默认值（省里尚未设置）",
            };
            println!("{} 现行设置，来自{from}:", v.unit);
            let s = &v.settings;
            for (label, value, key) in [
                ("一般问题整改期限（工作日）", s.deadline_general_days, "deadline_general_days"),
                ("较重问题整改期限（工作日）", s.deadline_serious_days, "deadline_serious_days"),
                ("严重问题整改期限（小时）", s.deadline_severe_hours, "deadline_severe_hours"),
                ("复核期限（工作日）", s.review_days, "review_days"),
                ("逾期督办至市（工作日）", s.overdue_county_days, "overdue_county_days"),
                ("逾期督办至省（工作日）", s.overdue_city_days, "overdue_city_days"),
                ("健康证到期提前预警（天）", s.health_cert_warn_days, "health_cert_warn_days"),
                ("留样最少（克）", s.sample_min_grams, "sample_min_grams"),
                ("留样最短保存（小时）", s.sample_keep_hours, "sample_keep_hours"),
                ("摄像头离线判定（秒）", s.camera_offline_after_s, "camera_offline_after_s"),
                ("录像最短保存（天）", s.recording_keep_days, "recording_keep_days"),
            ] {
                println!("  {label:<width$} {key} = {value}", width = 28 - label.chars().count());
            }
            Ok(())
        }
        RegistryCmd::Supplier(SupplierCmd::Add { target, id, name, licence, valid_until, contact, json }) => {
            let sp = Supplier { name, licence_no: licence, licence_valid_until_ms: valid_until, contact };
            upsert(&target, None, id, EntityData::Supplier(sp), json)
        }
        RegistryCmd::Supplier(SupplierCmd::List(a)) => list(&a.target, Some(EntityKind::Supplier), &a.list),
        RegistryCmd::Licence(LicenceCmd::Add { target, canteen, licence, valid_until, mode, prep, meals, json }) => {
            let l =
                CanteenLicence { licence_no: licence, valid_until_ms: valid_until, mode, prep_start_min: prep, meals };
            EntityData::CanteenLicence(l.clone()).validate().map_err(BadInput)?;
            // The licence is the canteen's: a typo in --canteen would register a licence of no
            // canteen, which no rule reads.
            let client = target.client()?;
            let canteens = client.registry(Some(EntityKind::Canteen), None)?;
            if !canteens.iter().any(|c| c.id == canteen) {
                let known: Vec<String> = canteens.iter().map(|c| clean(&c.id)).collect();
                return Err(BadInput(format!(
                    "本校没有编号为 {} 的食堂（已登记：{}），请先用 registry canteen add 登记 / canteen `{}` is not registered",
                    clean(&canteen),
                    if known.is_empty() { "无".to_string() } else { known.join("、") },
                    clean(&canteen)
                ))
                .into());
            }
            upsert(&target, None, canteen, EntityData::CanteenLicence(l), json)
        }
        RegistryCmd::Licence(LicenceCmd::List(a)) => list(&a.target, Some(EntityKind::CanteenLicence), &a.list),
        RegistryCmd::Rules(RulesCmd::Set { target, actions, thresholds, json }) => {
            let client = target.client()?;
            let now = client.rule_settings(None)?;
            if !matches!(now.unit.tier(), Tier::Province | Tier::County) {
                return Err(BadInput(format!(
                    "预警规则由省级设置，县级可为本县学校覆盖；{} 是{}节点，不能设置 / only the province (default) or a county \
                     (override) sets the rule settings",
                    now.unit,
                    client::render::tier_zh(now.unit.tier())
                ))
                .into());
            }
            let mut r = now.settings.clone();
            for (rule, action) in actions {
                set_action(&mut r, rule, action);
            }
            thresholds.apply(&mut r);
            let changes = rule_changes(&now.settings, &r);
            let data = EntityData::RuleSettings(r);
            data.validate().map_err(BadInput)?;
            let done = client.registry_write(&RegistryRequest {
                kind: EntityKind::RuleSettings,
                node: None,
                id: String::new(),
                op: RegistryOp::Upsert(data),
            })?;
            if json {
                return print_json(&done);
            }
            println!("已更新 {} 的预警规则设置（事件 {}）", done.node, done.event);
            if changes.is_empty() {
                println!("  与原先在用的设置相同（此后本单位使用自己的设置）");
            }
            for c in changes {
                println!("  {c}");
            }
            Ok(())
        }
        RegistryCmd::Rules(RulesCmd::Show { target, unit, json }) => {
            let v = target.client()?.rule_settings(unit)?;
            if json {
                return print_json(&v);
            }
            print!("{}", client::render::render_rule_settings(&v));
            Ok(())
        }
        RegistryCmd::Calendar(CalendarCmd::Show { target, year, json }) => {
            let (calendar, registered) = target.client()?.calendar()?;
            let years: Vec<&YearSchedule> = calendar.schedules().filter(|y| year.is_none_or(|w| y.year == w)).collect();
            if json {
                let rows: Vec<serde_json::Value> = years
                    .iter()
                    .map(|y| {
                        let source = if registered.contains(&y.year) { "province" } else { "builtin" };
                        serde_json::json!({
                            "year": y.year,
                            "holidays": y.holidays,
                            "workdays": y.workdays,
                            "projected": y.projected,
                            "source": source,
                        })
                    })
                    .collect();
                return print_json(&rows);
            }
            if let (Some(y), true) = (year, years.is_empty()) {
                println!(
                    "{y} 年没有节假日安排：工作日按周一至周五计算（省里可用 registry calendar set --year {y} 登记） / no schedule for {y}"
                );
                return Ok(());
            }
            print!("{}", client::render::render_calendar(&years, &registered));
            Ok(())
        }
        RegistryCmd::Calendar(CalendarCmd::Set { target, year, holidays, workdays, json }) => {
            let y = YearSchedule { year, holidays, workdays, projected: false };
            y.validate().map_err(BadInput)?;
            let client = target.client()?;
            let me = client.status()?.node;
            if me.tier() != Tier::Province {
                return Err(BadInput(format!(
                    "节假日安排由省级登记；{me} 是{}节点 / only the province registers the calendar",
                    client::render::tier_zh(me.tier())
                ))
                .into());
            }
            let done = client.registry_write(&RegistryRequest {
                kind: EntityKind::Calendar,
                node: None,
                id: year.to_string(),
                op: RegistryOp::Upsert(EntityData::Calendar(y.clone())),
            })?;
            if json {
                return print_json(&done);
            }
            println!("已登记 {year} 年节假日安排（事件 {}），替代内置的 {year} 年安排:", done.event);
            print!("{}", client::render::render_calendar(&[&y], &[year]));
            Ok(())
        }
        RegistryCmd::Remove { target, kind, of, id, reason, json } => {
            write(&target, RegistryRequest { kind, node: of, id, op: RegistryOp::Remove { reason } }, json)
        }
    }
}

/// [`parse_date`] for clap's `value_parser`.
pub fn parse_date_arg(s: &str) -> Result<u64, String> {
    protocol::calendar::parse_deadline(s).map_err(|e| e.to_string())
}

/// A date a person typed, `2026-12-05` (the end of that day, China time) or `2026-12-05 17:00`.
pub fn parse_date(s: &str) -> anyhow::Result<u64> {
    protocol::calendar::parse_deadline(s).map_err(|e| anyhow::anyhow!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meal_slots_parse_in_chinese_and_english() {
        let lunch = parse_meal_slot("午餐=11:30-12:30").unwrap();
        assert_eq!(lunch, MealSlot { meal: Meal::Lunch, start_min: 690, end_min: 750 });
        assert_eq!(parse_meal_slot("breakfast=7:00～7:40").unwrap().start_min, 420);
        assert_eq!(parse_meal_slot("晚餐＝17:30至18:10").unwrap().end_min, 1090);
        assert!(parse_meal_slot("午餐=12:30-11:30").unwrap_err().contains("须早于结束时间"));
        assert!(parse_meal_slot("午餐 11:30-12:30").unwrap_err().contains("午餐=11:30-12:30"));
        assert!(parse_meal_slot("brunch=10:00-11:00").unwrap_err().contains("lunch"));
        assert!(parse_meal_slot("午餐=11:30-24:00").unwrap_err().contains("07:00"));
        assert_eq!(parse_hm("07:00"), Ok(420));
        for bad in ["7", "07:0", "24:00", "07:60", "a:bc", ""] {
            assert!(parse_hm(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn holiday_ranges_parse_and_the_year_is_validated_before_any_request() {
        let h = parse_holiday("春节=2027-02-06..2027-02-14").unwrap();
        assert_eq!(h, Holiday::new("春节", "2027-02-06", "2027-02-14"));
        assert_eq!(parse_holiday("清明节=2027-04-05").unwrap(), Holiday::new("清明节", "2027-04-05", "2027-04-05"));
        assert_eq!(parse_holiday("国庆节=2027-10-01至2027-10-07").unwrap().last, "2027-10-07");
        assert!(parse_holiday("春节 2027-02-06..2027-02-14").unwrap_err().contains("春节=2027-02-06..2027-02-14"));
        assert!(parse_holiday("春节=2027-02-30..2027-03-01").unwrap_err().contains("2027-02-30"));
        assert!(parse_holiday("=2027-02-06").is_err());
        // The year as a whole: a workday on a weekday, overlapping holidays.
        let y = |holidays: Vec<Holiday>, workdays: &[&str]| YearSchedule {
            year: 2027,
            holidays,
            workdays: workdays.iter().map(|d| d.to_string()).collect(),
            projected: false,
        };
        assert_eq!(y(vec![h.clone()], &["2027-02-20"]).validate(), Ok(()));
        assert!(y(vec![h.clone()], &["2027-02-17"]).validate().unwrap_err().contains("不是周六或周日"));
        let overlap = parse_holiday("元宵=2027-02-14..2027-02-15").unwrap();
        assert!(y(vec![h, overlap], &[]).validate().unwrap_err().contains("重叠"));
        // Through the command line: refused with exit code 2, before any node is asked.
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "mingchu",
            "registry",
            "calendar",
            "set",
            "--admin",
            "127.0.0.1:9",
            "--year",
            "2027",
            "--holiday",
            "春节=2027-02-06..2027-02-14",
            "--workday",
            "2027-02-17",
        ])
        .unwrap();
        let e = crate::cli::run(cli).unwrap_err();
        assert!(e.to_string().contains("不是周六或周日"), "{e}");
        assert_eq!(crate::cli::exit_code(&e), 2);
    }

    #[test]
    fn rule_actions_parse_and_only_differences_from_the_default_are_kept() {
        assert_eq!(
            parse_rule_action("purchase-certs-incomplete=case"),
            Ok((RuleId::PurchaseCertsIncomplete, RuleAction::Case))
        );
        assert_eq!(parse_rule_action("在岗人员无健康证=仅提醒"), Ok((RuleId::HealthCertMissing, RuleAction::Notify)));
        assert_eq!(parse_rule_action("sample-missing=default"), Ok((RuleId::SampleMissing, RuleAction::Notify)));
        assert!(parse_rule_action("sample-missing").unwrap_err().contains("规则=动作"));
        assert!(parse_rule_action("no-such-rule=case").unwrap_err().contains("health-cert-missing"));
        assert!(parse_rule_action("sample-missing=open").unwrap_err().contains("case-and-notice"));

        let mut r = RuleSettings::default();
        set_action(&mut r, RuleId::PurchaseCertsIncomplete, RuleAction::Case);
        set_action(&mut r, RuleId::PurchaseCertsIncomplete, RuleAction::CaseAndNotice);
        set_action(&mut r, RuleId::HealthCertMissing, RuleAction::CaseAndNotice);
        assert_eq!(r.actions, [(RuleId::PurchaseCertsIncomplete, RuleAction::CaseAndNotice)]);
        let t = Thresholds { purchase_yellow_hours: Some(12), daily_report_at: Some(19 * 60), ..Default::default() };
        t.apply(&mut r);
        let changes = rule_changes(&RuleSettings::default(), &r);
        assert_eq!(changes.len(), 3, "{changes:?}");
        assert!(changes[0].contains("采购证票不全") && changes[0].contains("仅提醒 → 自动挂账并下发整改通知"));
        assert!(changes.iter().any(|c| c.contains("24 → 12")) && changes.iter().any(|c| c.contains("20:00 → 19:00")));
    }

    #[test]
    fn every_threshold_shown_is_a_flag_of_rules_set() {
        use clap::CommandFactory;
        let cmd = crate::cli::Cli::command();
        let set = cmd
            .find_subcommand("registry")
            .and_then(|c| c.find_subcommand("rules"))
            .and_then(|c| c.find_subcommand("set"))
            .unwrap();
        let flags: Vec<&str> = set.get_arguments().filter_map(|a| a.get_long()).collect();
        let shown = client::render::rule_thresholds(&RuleSettings::default());
        // A field added to the rule settings must be shown and settable: 18 thresholds + actions.
        let fields = serde_json::to_value(RuleSettings::default()).unwrap();
        assert_eq!(fields.as_object().map(|o| o.len()), Some(shown.len() + 1), "{fields}");
        assert_eq!(shown.len(), 18);
        for (label, key, _) in shown {
            assert!(flags.contains(&key), "{label}: --{key} is not a flag of `registry rules set`");
        }
    }

    #[test]
    fn a_date_is_a_date_never_unix_ms() {
        assert_eq!(protocol::calendar::ChinaTime(parse_date("2025-03-01").unwrap()).date(), "2025-03-01");
        // `--valid-until 20261210` was stored as 20,261,210 ms after 1970.
        for bad in ["20261210", "1740844799999", "2025-02-30", "2025-3-1", ""] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }
}
