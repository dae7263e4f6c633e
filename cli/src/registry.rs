//! `mingchu registry …`: the registry from the command line, against a node's admin API.
//!
//! Each entity is written at its one owner: the province registers cities and sets the settings, a
//! county registers its schools, a school its canteens, cameras, staff and health certificates.
//! Every listing shows what the node holds (its subtree, plus its city and the province's
//! settings) and takes `--json`; so does every write.

use std::net::SocketAddr;

use clap::{Args, Subcommand};
use client::render::render_registry;
use node::api::registry::{RegistryRequest, RegistryWritten};
use protocol::Zone;
use protocol::registry::{
    Camera, Canteen, City, EntityData, EntityKind, HealthCertificate, RegistryOp, School, Staff, StaffRole,
};
use topology::NodeId;

use crate::cli::{Target, print_json};

#[derive(Subcommand, Debug)]
pub enum RegistryCmd {
    /// List the registry a node holds (optionally one kind, optionally only under one unit).
    List {
        #[command(flatten)]
        target: Target,
        /// city, settings, school, canteen, camera, staff or health-certificate (cert).
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

fn write(target: &Target, req: RegistryRequest, json: bool) -> anyhow::Result<()> {
    let done: RegistryWritten = target.client()?.registry_write(&req)?;
    if json {
        return print_json(&done);
    }
    let what = if done.id.is_empty() { done.node.to_string() } else { format!("{}/{}", done.node, done.id) };
    let op = if done.op == "remove" { "已删除" } else { "已登记" };
    println!("{op} {} {what}（事件 {}）", done.kind, done.event);
    Ok(())
}

fn upsert(target: &Target, node: Option<NodeId>, id: String, data: EntityData, json: bool) -> anyhow::Result<()> {
    // Checked here too, so a typo is reported without a running node.
    data.validate().map_err(|e| anyhow::anyhow!(e))?;
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
    fn a_date_is_a_date_never_unix_ms() {
        assert_eq!(protocol::calendar::ChinaTime(parse_date("2025-03-01").unwrap()).date(), "2025-03-01");
        // `--valid-until 20261210` was stored as 20,261,210 ms after 1970.
        for bad in ["20261210", "1740844799999", "2025-02-30", "2025-3-1", ""] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }
}
