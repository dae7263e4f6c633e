//! The registry: who and what exists in the federation, as replicated events.
//!
//! **One owner, only writer.** Every entity has exactly one owner node, the only node allowed to
//! write it:
//!
//! | entity | [`EntityRef::node`] (= the event's scope) | `id` | owner (the only writer) |
//! |---|---|---|---|
//! | [`City`] | the city | empty | the province |
//! | [`Settings`] | the province | empty | the province |
//! | [`School`] | the school | empty | the school's county |
//! | [`Canteen`], [`Camera`], [`Staff`], [`HealthCertificate`] | the school | the school's own id | the school |
//! | [`CameraStream`] | the school | the camera's id | the school |
//! | [`Revocation`] | the revoking unit (a county, a city, the province) | the certificate's SHA-256 (hex) | that unit |
//!
//! The scope of a registry event is always the entity's node, so the holds rule places it: a
//! school's registration and its canteens, cameras, staff and certificates live at the school, its
//! county, city and the province, and nowhere else; a city at the city's subtree and the province;
//! the settings everywhere. [`check_registry`] enforces the owner rule (a city cannot register a
//! school, a school cannot register itself, a county cannot register another county's school, only
//! the province writes settings and cities) and validates the body; it runs on every local write
//! and on every received event (via [`crate::holds::check_event`]).
//!
//! [`registry_view`] folds registry events into the current entities: later changes of an entity
//! replace earlier ones in `(hlc, origin, seq)` order. Each entity has one writer, so that order is
//! simply the writer's own history; an event that fails [`check_registry`] is skipped.
//!
//! Wire: these types are encoded by bincode 2 through serde, positionally. Enum variants and struct
//! fields are only ever appended; no untagged, flattened or floating-point fields.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use topology::{NodeId, Tier};

use crate::alert::{ParseNameError, Zone};
use crate::event::{Event, EventId, Hlc};

/// Longest name, address, certificate number or removal reason (bytes).
pub const REGISTRY_TEXT_BYTES_MAX: usize = 256;
/// Longest school-local entity id (bytes).
pub const REGISTRY_ID_BYTES_MAX: usize = 64;

/// The kinds of registry entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntityKind {
    City,
    Settings,
    School,
    Canteen,
    Camera,
    Staff,
    HealthCertificate,
    /// A person's account directory entry (no secret), of the unit it signs in at.
    Account,
    /// A school's food supplier with its licence (食品经营许可证).
    Supplier,
    /// A canteen's own licence, operation mode and serving plan (id = the canteen's id).
    CanteenLicence,
    /// Early-warning thresholds and actions: the province's default, a county's override.
    RuleSettings,
    /// One year's public holidays and 调休 working days (id = the year, `2027`), by the province.
    Calendar,
    /// Where a camera's live picture is (id = the camera's id): a kind of its own beside
    /// [`Camera`], whose positional encoding cannot grow a field without breaking stored events.
    CameraStream,
    /// A node certificate revoked by a unit above it (id = the certificate's SHA-256 in hex): held
    /// by the unit's whole subtree and its ancestors, so every node that could link with the
    /// certificate's holder refuses it. Never removed.
    Revocation,
}

impl EntityKind {
    pub const ALL: [EntityKind; 14] = [
        EntityKind::City,
        EntityKind::Settings,
        EntityKind::School,
        EntityKind::Canteen,
        EntityKind::Camera,
        EntityKind::Staff,
        EntityKind::HealthCertificate,
        EntityKind::Account,
        EntityKind::Supplier,
        EntityKind::CanteenLicence,
        EntityKind::RuleSettings,
        EntityKind::Calendar,
        EntityKind::CameraStream,
        EntityKind::Revocation,
    ];

    /// The name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::City => "city",
            EntityKind::Settings => "settings",
            EntityKind::School => "school",
            EntityKind::Canteen => "canteen",
            EntityKind::Camera => "camera",
            EntityKind::Staff => "staff",
            EntityKind::HealthCertificate => "health-certificate",
            EntityKind::Account => "account",
            EntityKind::Supplier => "supplier",
            EntityKind::CanteenLicence => "canteen-licence",
            EntityKind::RuleSettings => "rule-settings",
            EntityKind::Calendar => "calendar",
            EntityKind::CameraStream => "camera-stream",
            EntityKind::Revocation => "revocation",
        }
    }

    /// The name a person reads: `食堂`.
    pub fn zh(self) -> &'static str {
        match self {
            EntityKind::City => "地市",
            EntityKind::Settings => "设置",
            EntityKind::School => "学校",
            EntityKind::Canteen => "食堂",
            EntityKind::Camera => "摄像头",
            EntityKind::Staff => "从业人员",
            EntityKind::HealthCertificate => "健康证",
            EntityKind::Account => "账号",
            EntityKind::Supplier => "供应商",
            EntityKind::CanteenLicence => "食堂许可证",
            EntityKind::RuleSettings => "预警规则设置",
            EntityKind::Calendar => "节假日安排",
            EntityKind::CameraStream => "摄像头视频流",
            EntityKind::Revocation => "证书吊销",
        }
    }

    /// Whether the entity is the node itself (city, settings, school: empty `id`) rather than a
    /// school-local entity with its own id.
    pub fn is_node_entity(self) -> bool {
        matches!(self, EntityKind::City | EntityKind::Settings | EntityKind::School | EntityKind::RuleSettings)
    }

    /// The tier of [`EntityRef::node`] for this kind.
    pub fn node_tier(self) -> Tier {
        match self {
            EntityKind::City => Tier::City,
            EntityKind::Settings | EntityKind::RuleSettings | EntityKind::Calendar => Tier::Province,
            _ => Tier::School,
        }
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EntityKind {
    type Err = ParseNameError;
    fn from_str(s: &str) -> Result<EntityKind, ParseNameError> {
        let want = s.trim().to_ascii_lowercase().replace('_', "-");
        let want = if want == "cert" || want == "certificate" { "health-certificate".to_string() } else { want };
        EntityKind::ALL.into_iter().find(|k| k.as_str() == want).ok_or_else(|| ParseNameError {
            what: "登记种类",
            given: s.to_string(),
            expected: EntityKind::ALL.map(|k| k.as_str()).join(", "),
        })
    }
}

/// Which entity a change is about. The key of the registry: `(kind, node, id)`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EntityRef {
    pub kind: EntityKind,
    /// The node the entity belongs to (the city, the province, the school) and the event's scope.
    pub node: NodeId,
    /// The entity's id within its school (`c1`, `cam-3`); empty for city, settings and school.
    pub id: String,
}

impl EntityRef {
    /// The only node that may write this entity (`None` when `node` has the wrong tier for the
    /// kind).
    pub fn owner(&self) -> Option<NodeId> {
        // Settings: the province's are the default, a county's override them for its schools.
        // Accounts: every unit has its own people.
        let tier_ok = match self.kind {
            EntityKind::Settings | EntityKind::RuleSettings => {
                matches!(self.node.tier(), Tier::Province | Tier::County)
            }
            EntityKind::Account => true,
            // Schools enrol nobody: a county, a city or the province revokes.
            EntityKind::Revocation => self.node.tier() != Tier::School,
            _ => self.node.tier() == self.kind.node_tier(),
        };
        if !tier_ok {
            return None;
        }
        match self.kind {
            EntityKind::City | EntityKind::School => self.node.parent(),
            _ => Some(self.node),
        }
    }
}

impl EntityRef {
    /// The entity as a person reads it: `130102-S0001 的食堂 main`, `学校 130102-S0001`.
    pub fn zh(&self) -> EntityZh<'_> {
        EntityZh(self)
    }
}

/// [`EntityRef::zh`]: the entity in Chinese, for messages a person reads.
pub struct EntityZh<'a>(&'a EntityRef);

impl fmt::Display for EntityZh<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        if e.id.is_empty() {
            write!(f, "{} {}", e.kind.zh(), e.node)
        } else {
            write!(f, "{} 的{} {}", e.node, e.kind.zh(), e.id)
        }
    }
}

impl fmt::Display for EntityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.id.is_empty() {
            write!(f, "{} {}", self.kind, self.node)
        } else {
            write!(f, "{} {}/{}", self.kind, self.node, self.id)
        }
    }
}

/// A city (地市), registered by the province.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct City {
    pub name: String,
}

/// Province-wide settings: rule thresholds and case deadlines by severity. The defaults are
/// DOMAIN.md's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// 一般: rectify within this many working days.
    pub deadline_general_days: u32,
    /// 较重: working days.
    pub deadline_serious_days: u32,
    /// 严重: rectify within this many hours.
    pub deadline_severe_hours: u32,
    /// A review is due this many working days after a submission.
    pub review_days: u32,
    /// Warn when a health certificate expires within this many days.
    pub health_cert_warn_days: u32,
    /// Smallest food sample kept (grams).
    pub sample_min_grams: u32,
    /// Food samples are kept at least this many hours.
    pub sample_keep_hours: u32,
    /// A camera counts as offline after this many seconds without a keep-alive.
    pub camera_offline_after_s: u32,
    /// Recordings are kept at least this many days.
    pub recording_keep_days: u32,
    /// Overdue this many working days → the case goes from the county to the city (county 督办).
    pub overdue_county_days: u32,
    /// Overdue this many working days → from the city to the province (city 督办).
    pub overdue_city_days: u32,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            deadline_general_days: 1,
            deadline_serious_days: 3,
            deadline_severe_hours: 72,
            review_days: 2,
            health_cert_warn_days: 30,
            sample_min_grams: 125,
            sample_keep_hours: 48,
            camera_offline_after_s: 180,
            recording_keep_days: 30,
            overdue_county_days: 3,
            overdue_city_days: 7,
        }
    }
}

/// Where the settings in force for a unit come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SettingsSource {
    /// Nobody wrote settings: the built-in defaults.
    Default,
    /// The province's settings.
    Province,
    /// The county's override.
    County,
}

/// The working-day calendar in force: the built-in years, each replaced by the province's
/// `calendar` entity for that year when it wrote one (an invalid one is skipped: it could not have
/// been written).
pub fn effective_calendar(view: &BTreeMap<EntityRef, Entity>) -> crate::calendar::WorkCalendar {
    let years: Vec<crate::calendar::YearSchedule> = view
        .values()
        .filter_map(|e| match &e.data {
            EntityData::Calendar(y) if e.entity.node.tier() == Tier::Province => Some(y.clone()),
            _ => None,
        })
        .collect();
    if years.is_empty() {
        crate::calendar::WorkCalendar::builtin().clone()
    } else {
        crate::calendar::WorkCalendar::with_years(&years)
    }
}

/// The settings in force for `unit` (a school, or a county): its county's override if the county
/// wrote one, else the province's, else the built-in defaults — with where they came from.
pub fn effective_settings(view: &BTreeMap<EntityRef, Entity>, unit: NodeId) -> (Settings, SettingsSource) {
    let of = |node: NodeId| match view.get(&EntityRef { kind: EntityKind::Settings, node, id: String::new() }) {
        Some(Entity { data: EntityData::Settings(s), .. }) => Some(s.clone()),
        _ => None,
    };
    let county = unit.ancestor_at(Tier::County);
    if let Some(s) = county.and_then(of) {
        return (s, SettingsSource::County);
    }
    match unit.ancestor_at(Tier::Province).and_then(of) {
        Some(s) => (s, SettingsSource::Province),
        None => (Settings::default(), SettingsSource::Default),
    }
}

/// A school (and its canteen operation), registered by its county.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct School {
    pub name: String,
    pub address: String,
    /// How many canteens the school runs (as registered by the county).
    pub canteens: u32,
    /// Where the school's node listens for QUIC (`ip:port`; empty when not known yet). Informative:
    /// children dial parents, so the county does not dial it, but operators see it here.
    pub quic_addr: String,
    /// The school node's admin API address (`ip:port`; empty when not known yet).
    pub admin_addr: String,
}

/// One canteen of a school.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Canteen {
    pub name: String,
    pub address: String,
}

/// One kitchen camera.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Camera {
    /// The id of the school's canteen it watches.
    pub canteen: String,
    pub name: String,
    pub zone: Zone,
    /// AI detection on.
    pub ai_enabled: bool,
    /// Parents may watch it (明厨亮灶 public view).
    pub parent_visible: bool,
}

/// Where one camera's live picture can be had (entity kind [`EntityKind::CameraStream`], id = the
/// camera's id, written by the school). The console plays HLS from a media server (ZLMediaKit,
/// MediaMTX, the NVR's own, nginx-rtmp): [`CameraStream::hls_url`] when set, else the console
/// node's `[video] hls_base` joined with [`CameraStream::stream`] ([`CameraStream::playlist`]).
/// The camera's own source (RTSP, or its GB/T 28181 channel) is recorded for the media server's
/// operators; the console never connects to it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraStream {
    /// The HLS playlist's full address (`http(s)://…/….m3u8`), or empty.
    pub hls_url: String,
    /// The stream's path at the media server (`cam1`, `live/cam1/hls.m3u8`), or empty.
    pub stream: String,
    /// The camera's RTSP address (`rtsp://…`), or empty.
    pub rtsp_url: String,
    /// The camera's GB/T 28181 channel id (20 digits), or empty.
    pub gb_channel: String,
}

/// Longest stream address or path (bytes).
pub const STREAM_TEXT_BYTES_MAX: usize = 512;

impl CameraStream {
    /// Checks the addresses: the HLS one an `http(s)` URL, the stream a relative path of plain
    /// characters, the RTSP one `rtsp(s)://`, the channel 20 digits; at least one of the HLS
    /// address and the stream, so the console can play it.
    pub fn validate(&self) -> Result<(), String> {
        let plain = |v: &str| {
            v.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b'<' | b'>' | b'\\' | b'`'))
        };
        for (label, v) in [("HLS 地址", &self.hls_url), ("流路径", &self.stream), ("RTSP 地址", &self.rtsp_url)]
        {
            if v.len() > STREAM_TEXT_BYTES_MAX {
                return Err(format!("{label}长 {} 字节，超过 {STREAM_TEXT_BYTES_MAX} 字节的上限", v.len()));
            }
            if !plain(v) {
                return Err(format!("{label}“{v}”含有空格、引号或其他不允许的字符"));
            }
        }
        if self.hls_url.is_empty() && self.stream.is_empty() {
            return Err("请填写 HLS 地址或媒体服务器上的流路径（至少一项），否则无法播放".into());
        }
        if !self.hls_url.is_empty() && http_origin(&self.hls_url).is_none() {
            return Err(format!("HLS 地址“{}”须以 http:// 或 https:// 开头并带主机名", self.hls_url));
        }
        if !self.stream.is_empty()
            && (self.stream.starts_with('/') || self.stream.contains("..") || self.stream.contains("://"))
        {
            return Err(format!("流路径“{}”须是媒体服务器上的相对路径，如 live/cam1", self.stream));
        }
        let rtsp = ["rtsp://", "rtsps://"].iter().any(|p| self.rtsp_url.starts_with(p));
        if !self.rtsp_url.is_empty() && !rtsp {
            return Err(format!("RTSP 地址“{}”须以 rtsp:// 或 rtsps:// 开头", self.rtsp_url));
        }
        if !self.gb_channel.is_empty()
            && (self.gb_channel.len() != 20 || !self.gb_channel.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!("国标通道编号“{}”须是 20 位数字（GB/T 28181）", self.gb_channel));
        }
        Ok(())
    }

    /// The HLS playlist the console plays: [`Self::hls_url`] when set; else `hls_base` (the
    /// console node's media server, without a trailing `/`) joined with [`Self::stream`], which
    /// gets `.m3u8` appended unless it names a playlist already. `None` when neither applies.
    pub fn playlist(&self, hls_base: Option<&str>) -> Option<String> {
        if !self.hls_url.is_empty() {
            return Some(self.hls_url.clone());
        }
        let base = hls_base.filter(|b| !b.is_empty())?.trim_end_matches('/');
        if self.stream.is_empty() {
            return None;
        }
        let ext = if self.stream.ends_with(".m3u8") { "" } else { ".m3u8" };
        Some(format!("{base}/{}{ext}", self.stream))
    }
}

/// The origin (`http://host:port`) of an `http(s)` URL, or `None` when it is not one.
pub fn http_origin(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"))?;
    let host_end = rest.find('/').unwrap_or(rest.len());
    if host_end == 0 {
        return None;
    }
    Some(&url[..url.len() - rest.len() + host_end])
}

/// A staff member's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StaffRole {
    /// 校长 (first responsible for food safety)
    Principal,
    /// 食品安全员
    FoodSafetyOfficer,
    /// 食堂经理
    CanteenManager,
    /// 厨师
    Cook,
    /// 帮厨 / 勤杂
    Helper,
}

const ROLES: [(StaffRole, &str, &str); 5] = [
    (StaffRole::Principal, "principal", "校长"),
    (StaffRole::FoodSafetyOfficer, "food-safety-officer", "食品安全员"),
    (StaffRole::CanteenManager, "canteen-manager", "食堂经理"),
    (StaffRole::Cook, "cook", "厨师"),
    (StaffRole::Helper, "helper", "帮厨"),
];

impl StaffRole {
    pub fn as_str(self) -> &'static str {
        ROLES[self as usize].1
    }
    pub fn zh(self) -> &'static str {
        ROLES[self as usize].2
    }
}

impl FromStr for StaffRole {
    type Err = ParseNameError;
    fn from_str(s: &str) -> Result<StaffRole, ParseNameError> {
        let want = s.trim().to_ascii_lowercase().replace('_', "-");
        ROLES.iter().find(|r| r.1 == want || r.2 == s.trim()).map(|r| r.0).ok_or_else(|| ParseNameError {
            what: "岗位",
            given: s.to_string(),
            expected: ROLES.iter().map(|r| r.1).collect::<Vec<_>>().join(", "),
        })
    }
}

/// A member of a school's canteen staff.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staff {
    pub name: String,
    pub role: StaffRole,
    pub on_duty: bool,
}

/// A health certificate (健康证) of a staff member; valid one year.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCertificate {
    /// The id of the school's staff member it belongs to.
    pub staff: String,
    pub number: String,
    /// Unix ms after which it is expired.
    pub valid_until_ms: u64,
}

/// A food supplier of a school, with its licence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supplier {
    pub name: String,
    /// 食品经营许可证 (or business licence) number.
    pub licence_no: String,
    /// Unix ms after which the licence is expired.
    pub licence_valid_until_ms: u64,
    pub contact: String,
}

/// One meal a canteen serves on a working day, in China-time minutes after midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MealSlot {
    pub meal: crate::ledger::Meal,
    pub start_min: u16,
    pub end_min: u16,
}

/// A canteen's own licence (食品经营许可证), how it is run, and when it works: prep start and
/// the meals it serves on working days (the rules judge samples, companions and morning checks
/// by them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanteenLicence {
    pub licence_no: String,
    /// Unix ms after which the licence is expired.
    pub valid_until_ms: u64,
    pub mode: crate::ledger::OperationMode,
    /// Work (and the morning check) starts at this China time, minutes after midnight.
    pub prep_start_min: u16,
    pub meals: Vec<MealSlot>,
}

impl CanteenLicence {
    fn validate(&self) -> Result<(), String> {
        name("许可证编号", &self.licence_no)?;
        if self.prep_start_min >= 24 * 60 {
            return Err("开工时间须在 00:00 至 23:59 之间".into());
        }
        if self.meals.len() > 3 {
            return Err(format!("一天最多登记 3 餐，收到 {} 餐", self.meals.len()));
        }
        for (i, m) in self.meals.iter().enumerate() {
            if m.start_min >= m.end_min || m.end_min >= 24 * 60 {
                return Err(format!("{}的开始时间须早于结束时间，且在当天之内", m.meal.zh()));
            }
            if self.meals[..i].iter().any(|o| o.meal == m.meal) {
                return Err(format!("{}登记了两次", m.meal.zh()));
            }
        }
        Ok(())
    }
}

/// An entity's data; the variant must match [`EntityRef::kind`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntityData {
    City(City),
    Settings(Settings),
    School(School),
    Canteen(Canteen),
    Camera(Camera),
    Staff(Staff),
    HealthCertificate(HealthCertificate),
    Account(crate::people::AccountEntry),
    Supplier(Supplier),
    CanteenLicence(CanteenLicence),
    RuleSettings(crate::warning::RuleSettings),
    Calendar(crate::calendar::YearSchedule),
    CameraStream(CameraStream),
    Revocation(Revocation),
}

/// A revoked node certificate: whose it was and why. The entity's id is the certificate's SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The node the certificate names.
    pub node: NodeId,
    /// Why (`学校电脑被盗`), for the people who read the registry.
    pub reason: String,
}

/// Whether `id` is a certificate fingerprint as revocations are keyed: 64 lowercase hex digits.
pub fn is_fingerprint(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl EntityData {
    pub fn kind(&self) -> EntityKind {
        match self {
            EntityData::City(_) => EntityKind::City,
            EntityData::Settings(_) => EntityKind::Settings,
            EntityData::School(_) => EntityKind::School,
            EntityData::Canteen(_) => EntityKind::Canteen,
            EntityData::Camera(_) => EntityKind::Camera,
            EntityData::Staff(_) => EntityKind::Staff,
            EntityData::HealthCertificate(_) => EntityKind::HealthCertificate,
            EntityData::Account(_) => EntityKind::Account,
            EntityData::Supplier(_) => EntityKind::Supplier,
            EntityData::CanteenLicence(_) => EntityKind::CanteenLicence,
            EntityData::RuleSettings(_) => EntityKind::RuleSettings,
            EntityData::Calendar(_) => EntityKind::Calendar,
            EntityData::CameraStream(_) => EntityKind::CameraStream,
            EntityData::Revocation(_) => EntityKind::Revocation,
        }
    }

    /// A short human description (the name, or a certificate's number).
    pub fn label(&self) -> &str {
        match self {
            EntityData::City(c) => &c.name,
            EntityData::Settings(_) => "设置",
            EntityData::School(s) => &s.name,
            EntityData::Canteen(c) => &c.name,
            EntityData::Camera(c) => &c.name,
            EntityData::Staff(s) => &s.name,
            EntityData::HealthCertificate(h) => &h.number,
            EntityData::Account(a) => &a.display_name,
            EntityData::Supplier(s) => &s.name,
            EntityData::CanteenLicence(l) => &l.licence_no,
            EntityData::RuleSettings(_) => "预警规则设置",
            EntityData::Calendar(_) => "节假日安排",
            EntityData::CameraStream(_) => "视频流",
            EntityData::Revocation(r) => &r.reason,
        }
    }

    /// Checks the fields a user or peer could get wrong.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            EntityData::City(c) => name("名称", &c.name),
            EntityData::Settings(s) => {
                for (field, v) in [
                    ("一般问题整改期限（工作日）", s.deadline_general_days),
                    ("较重问题整改期限（工作日）", s.deadline_serious_days),
                    ("严重问题整改期限（小时）", s.deadline_severe_hours),
                    ("复核期限（工作日）", s.review_days),
                    ("留样保存时长（小时）", s.sample_keep_hours),
                    ("摄像头离线判定时长（秒）", s.camera_offline_after_s),
                    ("录像保存天数", s.recording_keep_days),
                    ("逾期转市级督办（工作日）", s.overdue_county_days),
                    ("逾期转省级督办（工作日）", s.overdue_city_days),
                ] {
                    if v == 0 {
                        return Err(format!("{field}至少为 1，现为 0"));
                    }
                }
                Ok(())
            }
            EntityData::School(s) => {
                name("名称", &s.name)?;
                text("地址", &s.address)?;
                addr("QUIC 地址（quic_addr）", &s.quic_addr)?;
                addr("管理接口地址（admin_addr）", &s.admin_addr)
            }
            EntityData::Canteen(c) => {
                name("名称", &c.name)?;
                text("地址", &c.address)
            }
            EntityData::Camera(c) => {
                local_id("所属食堂", &c.canteen)?;
                name("名称", &c.name)
            }
            EntityData::Staff(s) => name("姓名", &s.name),
            EntityData::HealthCertificate(h) => {
                local_id("持证人员", &h.staff)?;
                name("健康证编号", &h.number)
            }
            EntityData::Account(a) => name("姓名", &a.display_name),
            EntityData::Supplier(s) => {
                name("名称", &s.name)?;
                name("许可证编号", &s.licence_no)?;
                text("联系方式", &s.contact)
            }
            EntityData::CanteenLicence(l) => l.validate(),
            EntityData::RuleSettings(r) => r.validate(),
            EntityData::Calendar(y) => y.validate(),
            EntityData::CameraStream(v) => v.validate(),
            EntityData::Revocation(r) => name("吊销原因", &r.reason),
        }
    }
}

fn text(field: &str, v: &str) -> Result<(), String> {
    if v.len() > REGISTRY_TEXT_BYTES_MAX {
        return Err(format!("{field}长 {} 字节，超过 {REGISTRY_TEXT_BYTES_MAX} 字节的上限", v.len()));
    }
    Ok(())
}

fn name(field: &str, v: &str) -> Result<(), String> {
    if v.trim().is_empty() {
        return Err(format!("{field}不能为空"));
    }
    text(field, v)
}

fn addr(field: &str, v: &str) -> Result<(), String> {
    if !v.is_empty() && v.parse::<SocketAddr>().is_err() {
        return Err(format!("{field}“{v}”不是“IP:端口”形式的地址"));
    }
    Ok(())
}

/// A school-local id: 1..=[`REGISTRY_ID_BYTES_MAX`] bytes of ASCII letters, digits, `-`, `_`, `.`.
pub fn local_id(field: &str, v: &str) -> Result<(), String> {
    if v.is_empty() || v.len() > REGISTRY_ID_BYTES_MAX {
        return Err(format!("{field}编号须为 1 到 {REGISTRY_ID_BYTES_MAX} 字节，现为 {} 字节", v.len()));
    }
    if !v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        return Err(format!("{field}编号“{v}”只能含英文字母、数字和 - _ ."));
    }
    Ok(())
}

/// What happens to the entity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RegistryOp {
    /// Create it, or replace all its data.
    Upsert(EntityData),
    /// It no longer exists (a closed canteen, a staff member who left).
    Remove { reason: String },
}

/// The body of a registry event (`Body::Registry`); its scope is `entity.node`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryChange {
    pub entity: EntityRef,
    pub op: RegistryOp,
}

/// Why a registry change is refused. The variant says which rule: the one-owner rule (the writer
/// has no authority: a 403 at the admin API) or the change's own shape and data (a 400). The
/// message is for a person and names the rule broken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegistryRefusal {
    /// The writer is not the entity's owner (one owner, only writer).
    #[error("{0}")]
    NotOwner(String),
    /// The change is malformed: wrong scope, tier, id or data.
    #[error("{0}")]
    Invalid(String),
}

impl RegistryRefusal {
    /// True when the writer has no authority over the entity (rather than a malformed change).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, RegistryRefusal::NotOwner(_))
    }

    /// The message for a person.
    pub fn message(&self) -> &str {
        match self {
            RegistryRefusal::NotOwner(m) | RegistryRefusal::Invalid(m) => m,
        }
    }
}

impl From<String> for RegistryRefusal {
    fn from(m: String) -> RegistryRefusal {
        RegistryRefusal::Invalid(m)
    }
}

/// Checks a registry change written by `origin` with event scope `scope`: the entity's shape, the
/// one-owner rule, and the data. The refusal says which rule was broken, in words for a person.
pub fn check_registry(origin: NodeId, scope: NodeId, change: &RegistryChange) -> Result<(), RegistryRefusal> {
    let e = &change.entity;
    let ez = e.zh();
    if scope != e.node {
        return Err(format!("{ez} 的登记变更须记在 {} 名下，而不是 {scope}", e.node).into());
    }
    if e.kind.is_node_entity() {
        if !e.id.is_empty() {
            return Err(format!("{}以节点本身为准，不带编号；收到编号“{}”", e.kind.zh(), e.id).into());
        }
    } else {
        local_id(e.kind.zh(), &e.id)?;
    }
    let Some(owner) = e.owner() else {
        return Err(format!(
            "{}须登记在{}节点上；{} 是{}节点",
            e.kind.zh(),
            e.kind.node_tier().zh(),
            e.node,
            e.node.tier().zh()
        )
        .into());
    };
    if origin != owner {
        let who = match e.kind {
            EntityKind::City | EntityKind::Calendar => format!("省级 {owner} "),
            EntityKind::Settings | EntityKind::RuleSettings => format!(" {owner} 自己"),
            EntityKind::School => format!("其所属县 {owner} "),
            EntityKind::Account => format!(" {owner} 自己（账号属于所在单位）"),
            EntityKind::Revocation => format!(" {owner} 自己（在哪一级吊销，就由哪一级写入）"),
            _ => format!("该学校 {owner} 自己"),
        };
        let verb = match e.kind {
            EntityKind::Settings | EntityKind::RuleSettings | EntityKind::Calendar => "设置",
            _ => "登记",
        };
        return Err(RegistryRefusal::NotOwner(format!(
            "{ez} 只能由{who}{verb}，{origin} 无权写入（一个实体只有一个所有者，只有它能写）"
        )));
    }
    if e.kind == EntityKind::Account {
        crate::people::check_account_id(&e.id)?;
    }
    if e.kind == EntityKind::Revocation && !is_fingerprint(&e.id) {
        return Err(format!("{ez}：编号须为证书的 SHA-256 指纹（64 位小写十六进制）").into());
    }
    match &change.op {
        RegistryOp::Upsert(data) => {
            if data.kind() != e.kind {
                return Err(format!("{ez} 的内容却是{}数据，种类不符", data.kind().zh()).into());
            }
            if let EntityData::Account(a) = data {
                a.validate(e.node.tier())?;
            }
            if let EntityData::Calendar(y) = data
                && e.id != y.year.to_string()
            {
                return Err(format!("{ez}：日历的编号须为其年份 {}", y.year).into());
            }
            if let EntityData::Revocation(r) = data
                && !r.node.is_descendant_of(e.node)
            {
                return Err(format!("{ez}：{} 只能吊销其下级节点的证书，{} 不是它的下级", e.node, r.node).into());
            }
            data.validate().map_err(|m| format!("{ez}：{m}").into())
        }
        RegistryOp::Remove { .. } if e.kind == EntityKind::Revocation => {
            Err(format!("{ez}：吊销不能撤回；该节点需要新的证书（mingchu ca issue --force）").into())
        }
        RegistryOp::Remove { reason } => name("删除原因", reason).map_err(|m| format!("{ez}：{m}").into()),
    }
}

/// One entity as the registry holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entity {
    pub entity: EntityRef,
    pub data: EntityData,
    /// The event that last set it.
    pub updated_by: EventId,
    /// The person who set it there (`None`: the node's operator).
    #[serde(default)]
    pub updated_by_person: Option<crate::people::Person>,
    pub updated_hlc: Hlc,
}

/// The current registry from registry events: later changes of an entity replace earlier ones in
/// `(hlc, origin, seq)` order (the events may come in any order; duplicates and non-registry events
/// are ignored, and so is an event that fails [`check_registry`]). A removed entity is absent.
pub fn registry_view<'a>(events: impl IntoIterator<Item = &'a Event>) -> BTreeMap<EntityRef, Entity> {
    let mut changes: Vec<(&Event, &RegistryChange)> = events
        .into_iter()
        .filter_map(|e| match &e.body {
            crate::event::Body::Registry(c) => Some((e, c)),
            _ => None,
        })
        .filter(|(e, c)| check_registry(e.origin, e.scope, c).is_ok())
        .collect();
    changes.sort_by_key(|(e, _)| e.order_key());
    let mut view = BTreeMap::new();
    for (event, change) in changes {
        match &change.op {
            RegistryOp::Upsert(data) => {
                view.insert(
                    change.entity.clone(),
                    Entity {
                        entity: change.entity.clone(),
                        data: data.clone(),
                        updated_by: event.id(),
                        updated_by_person: event.by.clone(),
                        updated_hlc: event.hlc,
                    },
                );
            }
            RegistryOp::Remove { .. } => {
                view.remove(&change.entity);
            }
        }
    }
    view
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Body;
    use crate::holds::{Violation, check_event};

    fn id(s: &str) -> NodeId {
        s.parse().unwrap()
    }

    fn school(n: &str) -> EntityData {
        EntityData::School(School {
            name: n.into(),
            address: String::new(),
            canteens: 1,
            quic_addr: "127.0.0.1:4000".into(),
            admin_addr: String::new(),
        })
    }

    fn canteen(n: &str) -> EntityData {
        EntityData::Canteen(Canteen { name: n.into(), address: String::new() })
    }

    fn upsert(kind: EntityKind, node: &str, eid: &str, data: EntityData) -> RegistryChange {
        RegistryChange { entity: EntityRef { kind, node: id(node), id: eid.into() }, op: RegistryOp::Upsert(data) }
    }

    fn ev(origin: &str, seq: u64, wall_ms: u64, change: RegistryChange) -> Event {
        Event {
            by: None,
            origin: id(origin),
            seq,
            hlc: Hlc { wall_ms, logical: 0 },
            scope: change.entity.node,
            body: Body::Registry(change),
        }
    }

    #[test]
    fn one_owner_only_writer() {
        let reg = upsert(EntityKind::School, "130102-S0017", "", school("new school"));
        let s = id("130102-S0017");
        // Its county registers it.
        assert_eq!(check_registry(id("130102"), s, &reg), Ok(()));
        // Nobody else: not the school itself, not a sibling school, not the city or province, not
        // another county. That is a matter of authority (forbidden), said in Chinese.
        for who in ["130102-S0017", "130102-S0001", "1301", "13", "130104"] {
            let err = check_registry(id(who), s, &reg).unwrap_err();
            assert!(err.is_forbidden(), "{who}: {err}");
            assert_eq!(
                err.to_string(),
                format!(
                    "学校 130102-S0017 只能由其所属县 130102 登记，{who} 无权写入（一个实体只有一个所有者，只有它能写）"
                )
            );
        }
        // School-owned entities: only the school.
        let c = upsert(EntityKind::Canteen, "130102-S0001", "c1", canteen("一食堂"));
        assert_eq!(check_registry(id("130102-S0001"), id("130102-S0001"), &c), Ok(()));
        for who in ["130102", "13", "130102-S0002"] {
            let err = check_registry(id(who), id("130102-S0001"), &c).unwrap_err();
            assert!(err.is_forbidden(), "{who}: {err}");
            assert!(
                err.message().starts_with("130102-S0001 的食堂 c1 只能由该学校 130102-S0001 自己登记"),
                "{who}: {err}"
            );
        }
        // Province-owned: cities and settings.
        let city = upsert(EntityKind::City, "1301", "", EntityData::City(City { name: "石家庄市".into() }));
        assert_eq!(check_registry(id("13"), id("1301"), &city), Ok(()));
        let err = check_registry(id("1301"), id("1301"), &city).unwrap_err();
        assert!(err.is_forbidden() && err.message().contains("只能由省级 13 登记"), "{err}");
        let settings = upsert(EntityKind::Settings, "13", "", EntityData::Settings(Settings::default()));
        assert_eq!(check_registry(id("13"), id("13"), &settings), Ok(()));
        let err = check_registry(id("1301"), id("13"), &settings).unwrap_err();
        assert!(err.is_forbidden() && err.message().contains("设置 13 只能由 13 自己设置"), "{err}");
    }

    #[test]
    fn shape_and_data_are_checked() {
        let s = id("130102-S0001");
        // The scope must be the entity's node.
        let c = upsert(EntityKind::Canteen, "130102-S0001", "c1", canteen("x"));
        // Every shape or data refusal is a bad request, not a matter of authority.
        let invalid = |r: Result<(), RegistryRefusal>| {
            let err = r.unwrap_err();
            assert!(!err.is_forbidden(), "{err}");
            err.to_string()
        };
        let err = invalid(check_registry(s, id("130102"), &c));
        assert_eq!(err, "130102-S0001 的食堂 c1 的登记变更须记在 130102-S0001 名下，而不是 130102");
        // Wrong tier for the kind: a "school" that is a county.
        let bad = upsert(EntityKind::School, "130102", "", school("x"));
        assert_eq!(
            invalid(check_registry(id("1301"), id("130102"), &bad)),
            "学校须登记在学校节点上；130102 是县级节点"
        );
        // Data of another kind.
        let mixed = upsert(EntityKind::Camera, "130102-S0001", "cam1", canteen("x"));
        assert!(invalid(check_registry(s, s, &mixed)).contains("内容却是食堂数据"));
        // Ids: node entities have none, local ones need a clean one.
        let with_id = upsert(EntityKind::School, "130102-S0001", "x", school("x"));
        assert!(invalid(check_registry(id("130102"), s, &with_id)).contains("不带编号；收到编号“x”"));
        for (bad_id, want) in [
            ("", "食堂编号须为 1 到 64 字节，现为 0 字节"),
            ("a b", "食堂编号“a b”只能含"),
            ("c/1", "食堂编号“c/1”只能含"),
            (&"x".repeat(REGISTRY_ID_BYTES_MAX + 1), "现为 65 字节"),
        ] {
            let c = upsert(EntityKind::Canteen, "130102-S0001", bad_id, canteen("x"));
            let err = invalid(check_registry(s, s, &c));
            assert!(err.contains(want), "{bad_id:?}: {err}");
        }
        // Names and lengths.
        let err = invalid(check_registry(s, s, &upsert(EntityKind::Canteen, "130102-S0001", "c1", canteen("  "))));
        assert_eq!(err, "130102-S0001 的食堂 c1：名称不能为空");
        let long = "长".repeat(REGISTRY_TEXT_BYTES_MAX);
        let err = invalid(check_registry(s, s, &upsert(EntityKind::Canteen, "130102-S0001", "c1", canteen(&long))));
        assert!(err.ends_with("名称长 768 字节，超过 256 字节的上限"), "{err}");
        let mut sch = school("x");
        if let EntityData::School(d) = &mut sch {
            d.quic_addr = "not-an-address".into();
        }
        let err = invalid(check_registry(id("130102"), s, &upsert(EntityKind::School, "130102-S0001", "", sch)));
        assert!(err.contains("QUIC 地址（quic_addr）“not-an-address”不是“IP:端口”形式的地址"), "{err}");
        let zero = Settings { deadline_general_days: 0, ..Settings::default() };
        let err = invalid(check_registry(
            id("13"),
            id("13"),
            &upsert(EntityKind::Settings, "13", "", EntityData::Settings(zero)),
        ));
        assert!(err.contains("一般问题整改期限（工作日）至少为 1"), "{err}");
        // A removal needs a reason.
        let rm = RegistryChange {
            entity: EntityRef { kind: EntityKind::Canteen, node: s, id: "c1".into() },
            op: RegistryOp::Remove { reason: String::new() },
        };
        assert_eq!(invalid(check_registry(s, s, &rm)), "130102-S0001 的食堂 c1：删除原因不能为空");
    }

    #[test]
    fn check_event_applies_the_registry_rules() {
        let reg = upsert(EntityKind::School, "130102-S0017", "", school("new"));
        assert!(check_event(&ev("130102", 1, 1, reg.clone())).is_ok());
        let err = check_event(&ev("130102-S0017", 1, 1, reg)).unwrap_err();
        assert!(matches!(&err, Violation::Registry(r) if r.is_forbidden()), "{err}");
        assert!(err.to_string().contains("只能由其所属县 130102 登记"), "{err}");
        // A county writing a school of another county fails the scope rule already.
        let other = upsert(EntityKind::School, "130104-S0001", "", school("other"));
        assert!(check_event(&ev("130102", 2, 2, other)).is_err());
    }

    #[test]
    fn the_fold_keeps_the_last_change_whatever_the_arrival_order() {
        let s = "130102-S0001";
        let events = vec![
            ev(s, 1, 10, upsert(EntityKind::Canteen, s, "c1", canteen("old name"))),
            ev(s, 2, 20, upsert(EntityKind::Canteen, s, "c2", canteen("second"))),
            ev(s, 3, 30, upsert(EntityKind::Canteen, s, "c1", canteen("new name"))),
            ev(
                s,
                4,
                40,
                RegistryChange {
                    entity: EntityRef { kind: EntityKind::Canteen, node: id(s), id: "c2".into() },
                    op: RegistryOp::Remove { reason: "closed".into() },
                },
            ),
            ev("130102", 7, 5, upsert(EntityKind::School, s, "", school("一中"))),
            // Not the owner: ignored by the fold.
            ev("130102", 8, 50, upsert(EntityKind::Canteen, s, "c9", canteen("forged"))),
        ];
        let expect = |view: &BTreeMap<EntityRef, Entity>| {
            let got: Vec<(String, String)> =
                view.values().map(|e| (e.entity.to_string(), e.data.label().to_string())).collect();
            assert_eq!(
                got,
                vec![
                    ("school 130102-S0001".to_string(), "一中".to_string()),
                    ("canteen 130102-S0001/c1".to_string(), "new name".to_string()),
                ]
            );
            let c1 = view.values().find(|e| e.entity.id == "c1").unwrap();
            assert_eq!(c1.updated_by, EventId { origin: id(s), seq: 3 });
        };
        expect(&registry_view(&events));
        let mut reversed = events.clone();
        reversed.reverse();
        // Duplicates are harmless too.
        reversed.extend(events.iter().cloned());
        expect(&registry_view(&reversed));
    }

    #[test]
    fn bodies_survive_the_wire_codec() {
        let changes = [
            upsert(EntityKind::Settings, "13", "", EntityData::Settings(Settings::default())),
            upsert(
                EntityKind::Camera,
                "130102-S0001",
                "cam1",
                EntityData::Camera(Camera {
                    canteen: "c1".into(),
                    name: "后厨".into(),
                    zone: Zone::Cooking,
                    ai_enabled: true,
                    parent_visible: false,
                }),
            ),
            upsert(
                EntityKind::Staff,
                "130102-S0001",
                "st1",
                EntityData::Staff(Staff { name: "张三".into(), role: StaffRole::Cook, on_duty: true }),
            ),
        ];
        for (i, c) in changes.into_iter().enumerate() {
            let e = ev(&c.entity.node.to_string(), i as u64 + 1, 1, c);
            let bytes = crate::wire::encode_event(&e).unwrap();
            assert_eq!(crate::wire::decode_event(&bytes).unwrap(), e);
        }
    }

    #[test]
    fn camera_streams_check_their_addresses_and_name_their_playlist() {
        let by_base = CameraStream { stream: "cam1".into(), ..CameraStream::default() };
        assert!(by_base.validate().is_ok());
        assert_eq!(
            by_base.playlist(Some("http://127.0.0.1:8080/hls/")).as_deref(),
            Some("http://127.0.0.1:8080/hls/cam1.m3u8")
        );
        assert_eq!(by_base.playlist(None), None);
        let zlm = CameraStream { stream: "live/cam1/hls.m3u8".into(), ..CameraStream::default() };
        assert_eq!(zlm.playlist(Some("http://nvr:80")).as_deref(), Some("http://nvr:80/live/cam1/hls.m3u8"));
        let own = CameraStream { hls_url: "https://media.example:8443/a/b.m3u8".into(), ..by_base.clone() };
        assert_eq!(own.playlist(Some("http://x")).as_deref(), Some("https://media.example:8443/a/b.m3u8"));
        assert_eq!(http_origin(&own.hls_url), Some("https://media.example:8443"));
        assert_eq!(http_origin("http:///x"), None);
        let bad = [
            (CameraStream::default(), "至少一项"),
            (CameraStream { hls_url: "ftp://x/a.m3u8".into(), ..CameraStream::default() }, "http://"),
            (CameraStream { hls_url: "javascript:alert(1)".into(), ..CameraStream::default() }, "http://"),
            (CameraStream { stream: "../etc".into(), ..CameraStream::default() }, "相对路径"),
            (CameraStream { stream: "a b".into(), ..CameraStream::default() }, "空格"),
            (CameraStream { stream: "a\"b".into(), ..CameraStream::default() }, "引号"),
            (CameraStream { stream: "c".into(), rtsp_url: "http://x".into(), ..CameraStream::default() }, "rtsp://"),
            (CameraStream { stream: "c".into(), gb_channel: "123".into(), ..CameraStream::default() }, "20 位"),
            (CameraStream { stream: "x".repeat(600), ..CameraStream::default() }, "上限"),
        ];
        for (s, want) in bad {
            let e = s.validate().unwrap_err();
            assert!(e.contains(want), "{s:?}: {e}");
        }
        // The school writes it; a county may not; its id is the camera's.
        let change = upsert(
            EntityKind::CameraStream,
            "130102-S0001",
            "cam1",
            EntityData::CameraStream(CameraStream {
                stream: "cam1".into(),
                gb_channel: "34020000001320000001".into(),
                rtsp_url: "rtsp://192.168.1.64:554/Streaming/Channels/101".into(),
                ..CameraStream::default()
            }),
        );
        assert!(check_registry(id("130102-S0001"), id("130102-S0001"), &change).is_ok());
        assert!(check_registry(id("130102"), id("130102-S0001"), &change).unwrap_err().is_forbidden());
        let e = ev("130102-S0001", 1, 1, change);
        assert_eq!(crate::wire::decode_event(&crate::wire::encode_event(&e).unwrap()).unwrap(), e);
        assert_eq!("camera-stream".parse::<EntityKind>().unwrap(), EntityKind::CameraStream);
    }

    #[test]
    fn names_parse() {
        assert_eq!("cert".parse::<EntityKind>().unwrap(), EntityKind::HealthCertificate);
        assert_eq!("School".parse::<EntityKind>().unwrap(), EntityKind::School);
        assert!("schul".parse::<EntityKind>().unwrap_err().to_string().contains("school"));
        assert_eq!("food_safety_officer".parse::<StaffRole>().unwrap(), StaffRole::FoodSafetyOfficer);
        assert_eq!("厨师".parse::<StaffRole>().unwrap(), StaffRole::Cook);
    }
    #[test]
    fn a_revocation_is_written_by_a_unit_above_the_node_keyed_by_fingerprint_and_never_removed() {
        let fp = "ab".repeat(32);
        let revoke = |node: &str, who: &str| {
            upsert(
                EntityKind::Revocation,
                node,
                &fp,
                EntityData::Revocation(Revocation { node: id(who), reason: "学校电脑被盗".into() }),
            )
        };
        // The county revokes its school; the province any node.
        check_registry(id("130102"), id("130102"), &revoke("130102", "130102-S0001")).unwrap();
        check_registry(id("13"), id("13"), &revoke("13", "130104-S0009")).unwrap();
        // Not above the node: refused.
        let err = check_registry(id("130102"), id("130102"), &revoke("130102", "130104-S0001")).unwrap_err();
        assert!(err.to_string().contains("只能吊销其下级节点的证书"), "{err}");
        let err = check_registry(id("130102"), id("130102"), &revoke("130102", "130102")).unwrap_err();
        assert!(err.to_string().contains("只能吊销其下级节点的证书"), "{err}");
        // Written by another node than the revoking unit: not the owner.
        let err = check_registry(id("1301"), id("130102"), &revoke("130102", "130102-S0001")).unwrap_err();
        assert!(err.is_forbidden(), "{err}");
        // A school cannot revoke.
        assert!(
            check_registry(id("130102-S0001"), id("130102-S0001"), &revoke("130102-S0001", "130102-S0001")).is_err()
        );
        // The id must be a fingerprint.
        let mut bad = revoke("130102", "130102-S0001");
        bad.entity.id = "AB".repeat(32);
        assert!(check_registry(id("130102"), id("130102"), &bad).unwrap_err().to_string().contains("SHA-256"));
        // Never removed.
        let removal = RegistryChange {
            entity: revoke("130102", "130102-S0001").entity,
            op: RegistryOp::Remove { reason: "搞错了".into() },
        };
        let err = check_registry(id("130102"), id("130102"), &removal).unwrap_err();
        assert!(err.to_string().contains("吊销不能撤回"), "{err}");
    }
}
