//! A school's devices: the AI boxes (AI 分析盒) and video recorders (硬盘录像机, NVR) on its LAN that
//! feed its node detections and camera heartbeats through the device intake (`api::intake`).
//!
//! - The registry is the school's own and never leaves its node: each device's record (id, kind,
//!   name, the cameras it speaks for, who added it) in [`Space::Devices`], and the SHA-256 of its
//!   token in [`Space::Secrets`] (tokens are 32 random bytes, so a fast hash is enough; the token
//!   itself is shown once and never kept). Nothing of it is an event.
//! - Routes (admin API; the console's 设备 page calls the same functions): `GET /api/devices`,
//!   `POST /api/devices` (answers the token, once), `POST /api/devices/{id}/revoke` (the token
//!   stops working at once), `POST /api/devices/{id}/rotate` (a new token; the old one stops),
//!   and `GET /api/cameras`: the school's cameras with their online state.
//! - Changing a device needs [`Action::ManageDevices`] (a school's principal or food-safety
//!   officer, or the node's operator); listing, [`Action::ViewSubtree`]. Every change is in the
//!   audit log (`device-added`, `device-revoked`, `device-rotated`).
//!
//! A device id is used once: a revoked device keeps its id (and its past detections), so a new
//! box takes a new id.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use protocol::people::{Action, Person};
use protocol::registry::{EntityData, EntityKind, local_id};
use serde::{Deserialize, Serialize};
use topology::{NodeId, Tier};

use crate::api::AdminState;
use crate::api::audit::{audit, write_local};
use crate::api::kit::{ApiFail, ApiResult, api_err, bad, internal, read_fail};
use crate::api::principal::Principal;
use crate::runtime::cameras::{self, DEVICE_PREFIX};
use crate::runtime::root::NodeMsg;
use crate::runtime::store::{LocalOp, LocalSpace};
use crate::storage::{Space, Storage, StorageError};

/// Most cameras one device speaks for (a large NVR has 64 channels).
pub use protocol::intake::DEVICE_CAMERAS_MAX;
/// Longest device name (characters).
pub const DEVICE_NAME_CHARS_MAX: usize = 64;
/// Random bytes in a device token (shown as hex).
pub const TOKEN_BYTES: usize = 32;
/// Key prefix of a device's last request in [`Space::Devices`] (then its id).
const SEEN_PREFIX: &[u8] = b"seen/";
/// A device's last request is kept on disk at most this often (it is shown, not relied on).
const SEEN_KEEP_EVERY_MS: u64 = 60_000;

/// What a device is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceKind {
    /// AI 分析盒: runs the detection models on the cameras' streams.
    AiBox,
    /// 硬盘录像机 (NVR): records the cameras; reports whether each is up and how many days it holds.
    Nvr,
}

impl DeviceKind {
    pub const ALL: [DeviceKind; 2] = [DeviceKind::AiBox, DeviceKind::Nvr];

    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::AiBox => "ai-box",
            DeviceKind::Nvr => "nvr",
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            DeviceKind::AiBox => "AI 分析盒",
            DeviceKind::Nvr => "硬盘录像机",
        }
    }
}

impl std::str::FromStr for DeviceKind {
    type Err = String;

    /// `ai-box` or `nvr`, or the Chinese name (`AI 分析盒`, `分析盒`, `硬盘录像机`, `录像机`).
    fn from_str(s: &str) -> Result<DeviceKind, String> {
        match s.trim() {
            "ai-box" | "AI 分析盒" | "AI分析盒" | "分析盒" => Ok(DeviceKind::AiBox),
            "nvr" | "NVR" | "硬盘录像机" | "录像机" => Ok(DeviceKind::Nvr),
            other => Err(format!("没有“{other}”这种设备，可选：ai-box（AI 分析盒）、nvr（硬盘录像机）")),
        }
    }
}

/// A device as the school's node keeps it (never its token).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub id: String,
    pub kind: DeviceKind,
    pub name: String,
    /// The school's cameras it speaks for (sorted).
    pub cameras: Vec<String>,
    pub added_at_ms: u64,
    /// Who added it (`None`: the node's operator).
    #[serde(default)]
    pub added_by: Option<Person>,
    /// When its current token was issued (at adding, or the last rotation).
    pub token_at_ms: u64,
    #[serde(default)]
    pub revoked_at_ms: Option<u64>,
    #[serde(default)]
    pub revoked_by: Option<Person>,
}

/// A device as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceView {
    pub id: String,
    pub kind: DeviceKind,
    pub kind_zh: String,
    pub name: String,
    pub cameras: Vec<String>,
    pub added_at_ms: u64,
    pub added_at: String,
    pub added_by: Option<Person>,
    pub token_at_ms: u64,
    pub revoked: bool,
    pub revoked_at_ms: Option<u64>,
    pub revoked_by: Option<Person>,
    /// When it last made a request with a valid token (`None`: never).
    pub last_request_ms: Option<u64>,
}

impl DeviceView {
    fn of(r: &DeviceRecord, last_request_ms: Option<u64>) -> DeviceView {
        DeviceView {
            id: r.id.clone(),
            kind: r.kind,
            kind_zh: r.kind.zh().into(),
            name: r.name.clone(),
            cameras: r.cameras.clone(),
            added_at_ms: r.added_at_ms,
            added_at: protocol::calendar::rfc3339(r.added_at_ms),
            added_by: r.added_by.clone(),
            token_at_ms: r.token_at_ms,
            revoked: r.revoked_at_ms.is_some(),
            revoked_at_ms: r.revoked_at_ms,
            revoked_by: r.revoked_by.clone(),
            last_request_ms,
        }
    }
}

/// A device to register (`mingchu device add`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddDevice {
    /// School-local id: `box-1` (letters, digits, `-`, `_`, `.`).
    pub id: String,
    /// `ai-box` or `nvr`.
    pub kind: String,
    pub name: String,
    /// The registered cameras of the school it speaks for.
    pub cameras: Vec<String>,
}

/// The answer to adding a device or rotating its token: the token, shown this once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceToken {
    pub device: DeviceView,
    /// `Authorization: Bearer <token>` on every request of the device. Not kept by the node.
    pub token: String,
}

/// A fresh device token: [`TOKEN_BYTES`] from the OS's random source, as hex.
pub fn new_token() -> String {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    let mut bytes = [0u8; TOKEN_BYTES];
    OsRng.fill_bytes(&mut bytes);
    hex(&bytes)
}

/// The SHA-256 of a token: what the node keeps and looks tokens up by.
pub fn token_hash(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(text: &[u8]) -> Option<[u8; 32]> {
    let text = std::str::from_utf8(text).ok()?;
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn record_key(id: &str) -> Vec<u8> {
    [DEVICE_PREFIX, id.as_bytes()].concat()
}

fn secret_key(id: &str) -> Vec<u8> {
    format!("device/{id}").into_bytes()
}

fn seen_key(id: &str) -> Vec<u8> {
    [SEEN_PREFIX, id.as_bytes()].concat()
}

/// The school's devices in memory, loaded at start and changed together with their stored records.
#[derive(Default)]
pub struct DeviceBook {
    records: BTreeMap<String, DeviceRecord>,
    /// Token hash → device, for devices not revoked.
    tokens: HashMap<[u8; 32], String>,
    /// When each device last made a request with a valid token, and when that was last kept.
    last_seen: HashMap<String, u64>,
    last_kept: HashMap<String, u64>,
}

impl DeviceBook {
    pub fn get(&self, id: &str) -> Option<&DeviceRecord> {
        self.records.get(id)
    }

    /// The device holding `token`, if that token is current (not rotated away, not revoked).
    pub fn by_token(&self, token: &str) -> Option<&DeviceRecord> {
        let id = self.tokens.get(&token_hash(token))?;
        self.records.get(id).filter(|r| r.revoked_at_ms.is_none())
    }

    pub fn views(&self) -> Vec<DeviceView> {
        self.records.values().map(|r| DeviceView::of(r, self.last_seen.get(&r.id).copied())).collect()
    }

    pub fn view(&self, id: &str) -> Option<DeviceView> {
        self.records.get(id).map(|r| DeviceView::of(r, self.last_seen.get(id).copied()))
    }

    /// The devices not revoked that speak for `camera`.
    pub fn speaking_for(&self, camera: &str) -> Vec<String> {
        self.records
            .values()
            .filter(|r| r.revoked_at_ms.is_none() && r.cameras.iter().any(|c| c == camera))
            .map(|r| r.id.clone())
            .collect()
    }

    fn set(&mut self, record: DeviceRecord, token: Option<[u8; 32]>) {
        self.tokens.retain(|_, id| *id != record.id);
        if let Some(h) = token.filter(|_| record.revoked_at_ms.is_none()) {
            self.tokens.insert(h, record.id.clone());
        }
        self.records.insert(record.id.clone(), record);
    }
}

/// The school's devices, shared by the admin API, the console and the device intake.
#[derive(Clone, Default)]
pub struct Devices {
    book: Arc<Mutex<DeviceBook>>,
    /// Changes (add, revoke, rotate) one at a time: check, write, then update the book.
    changes: Arc<tokio::sync::Mutex<()>>,
}

impl Devices {
    pub fn lock(&self) -> MutexGuard<'_, DeviceBook> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The devices as kept (records, token hashes, last requests); a record that does not decode
    /// is skipped and logged.
    pub fn load(storage: &dyn Storage) -> Result<Devices, StorageError> {
        let mut book = DeviceBook::default();
        for item in storage.scan_prefix(Space::Devices, DEVICE_PREFIX) {
            let (k, v) = item?;
            match serde_json::from_slice::<DeviceRecord>(&v) {
                Ok(r) => {
                    let hash = storage.get(Space::Secrets, &secret_key(&r.id))?.and_then(|h| unhex32(&h));
                    book.set(r, hash);
                }
                Err(e) => {
                    tracing::warn!(key = %String::from_utf8_lossy(&k), error = %e, "a device record is unreadable")
                }
            }
        }
        for item in storage.scan_prefix(Space::Devices, SEEN_PREFIX) {
            let (k, v) = item?;
            let id = String::from_utf8_lossy(&k[SEEN_PREFIX.len()..]).into_owned();
            if let Ok(ms) = <[u8; 8]>::try_from(v.as_slice()) {
                book.last_seen.insert(id.clone(), u64::from_be_bytes(ms));
                book.last_kept.insert(id, u64::from_be_bytes(ms));
            }
        }
        Ok(Devices { book: Arc::new(Mutex::new(book)), changes: Default::default() })
    }

    /// Notes a request of device `id` with a valid token at `now_ms`; answers the write that keeps
    /// it, at most every [`SEEN_KEEP_EVERY_MS`].
    pub fn touch(&self, id: &str, now_ms: u64) -> Option<LocalOp> {
        let mut book = self.lock();
        book.last_seen.insert(id.to_string(), now_ms);
        let kept = book.last_kept.get(id).copied().unwrap_or(0);
        if now_ms.saturating_sub(kept) < SEEN_KEEP_EVERY_MS {
            return None;
        }
        book.last_kept.insert(id.to_string(), now_ms);
        Some(LocalOp { space: LocalSpace::Devices, key: seen_key(id), value: Some(now_ms.to_be_bytes().to_vec()) })
    }
}

/// Devices are a school's: anywhere else, a clear refusal.
fn school_only(s: &AdminState) -> Result<(), ApiFail> {
    if s.me.tier() == Tier::School {
        return Ok(());
    }
    Err(bad(format!("设备（AI 分析盒、硬盘录像机）登记在学校节点上；{} 不是学校", s.me)))
}

/// The cameras registered at this school, by id, with what they are.
pub async fn school_cameras(s: &AdminState) -> Result<BTreeMap<String, protocol::registry::Camera>, ApiFail> {
    let view = s.reads.registry_of(s.me).await.map_err(read_fail)?;
    Ok(view
        .into_values()
        .filter(|e| e.entity.node == s.me && e.entity.kind == EntityKind::Camera)
        .filter_map(|e| match e.data {
            EntityData::Camera(c) => Some((e.entity.id, c)),
            _ => None,
        })
        .collect())
}

/// Checks a device to add: its id, kind, name and cameras (registered here, at least one).
fn check_add(
    req: &AddDevice,
    registered: &BTreeMap<String, protocol::registry::Camera>,
) -> Result<DeviceRecord, String> {
    let id = req.id.trim();
    local_id("device", id).map_err(|e| format!("设备编号“{id}”不合规：只能用 1 到 64 个字母、数字或 - _ .（{e}）"))?;
    let kind: DeviceKind = req.kind.parse()?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > DEVICE_NAME_CHARS_MAX || name.chars().any(char::is_control) {
        return Err(format!("设备名称不能为空，最多 {DEVICE_NAME_CHARS_MAX} 个字，不能含控制字符"));
    }
    let cameras: BTreeSet<String> =
        req.cameras.iter().map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect();
    if cameras.is_empty() {
        return Err("请至少给出一个它负责的摄像头".into());
    }
    if cameras.len() > DEVICE_CAMERAS_MAX {
        return Err(format!("一台设备最多负责 {DEVICE_CAMERAS_MAX} 个摄像头，现在 {} 个", cameras.len()));
    }
    let unknown: Vec<&str> = cameras.iter().map(String::as_str).filter(|c| !registered.contains_key(*c)).collect();
    if !unknown.is_empty() {
        return Err(format!("摄像头 {} 未在本校登记，请先用 mingchu registry camera add 登记", unknown.join("、")));
    }
    Ok(DeviceRecord {
        id: id.to_string(),
        kind,
        name: name.to_string(),
        cameras: cameras.into_iter().collect(),
        added_at_ms: 0,
        added_by: None,
        token_at_ms: 0,
        revoked_at_ms: None,
        revoked_by: None,
    })
}

fn record_op(r: &DeviceRecord) -> Result<LocalOp, ApiFail> {
    Ok(LocalOp {
        space: LocalSpace::Devices,
        key: record_key(&r.id),
        value: Some(serde_json::to_vec(r).map_err(internal)?),
    })
}

fn token_op(id: &str, hash: Option<[u8; 32]>) -> LocalOp {
    LocalOp { space: LocalSpace::Secrets, key: secret_key(id), value: hash.map(|h| hex(&h).into_bytes()) }
}

/// Registers a device of this school on behalf of `who`; answers its token (shown once).
pub async fn add_device_as(s: &AdminState, who: &Principal, req: AddDevice) -> Result<DeviceToken, ApiFail> {
    who.require(s, Action::ManageDevices).await?;
    school_only(s)?;
    let registered = school_cameras(s).await?;
    let mut record = check_add(&req, &registered).map_err(bad)?;
    let _one = s.devices.changes.lock().await;
    if let Some(old) = s.devices.lock().get(&record.id) {
        let why = if old.revoked_at_ms.is_some() {
            format!(
                "设备编号 {} 已被一台已吊销的设备用过（编号不重复使用，以免新旧设备的检测编号混淆），请换一个编号 / \
                 device id {} belonged to a revoked device; choose another",
                record.id, record.id
            )
        } else {
            format!("设备 {} 已登记；要换令牌请用 rotate", record.id)
        };
        return Err(api_err(StatusCode::CONFLICT, why));
    }
    let now = s.clock.wall_ms();
    record.added_at_ms = now;
    record.token_at_ms = now;
    record.added_by = who.person();
    let token = new_token();
    let hash = token_hash(&token);
    write_local(s, vec![token_op(&record.id, Some(hash)), record_op(&record)?]).await?;
    s.devices.lock().set(record.clone(), Some(hash));
    s.cameras.mark_in_use();
    let _ = s.node.cast(NodeMsg::CamerasChanged);
    let detail = format!(
        "{}（{}，{}；摄像头 {}） by {}",
        record.id,
        record.kind.zh(),
        record.name,
        record.cameras.join("、"),
        who.label()
    );
    audit(s, "device-added", who.account(), &detail).await?;
    tracing::info!(node = %s.me, device = %record.id, by = %who.label(), "device registered");
    let device = s.devices.lock().view(&record.id).ok_or_else(|| internal("the device was not kept"))?;
    Ok(DeviceToken { device, token })
}

/// The device `id` of this school, or 404.
fn known(s: &AdminState, id: &str) -> Result<DeviceRecord, ApiFail> {
    s.devices
        .lock()
        .get(id.trim())
        .cloned()
        .ok_or_else(|| api_err(StatusCode::NOT_FOUND, format!("本校没有编号为 {} 的设备", id.trim())))
}

fn revoked_already(r: &DeviceRecord) -> ApiFail {
    api_err(
        StatusCode::CONFLICT,
        format!(
            "设备 {} 已于 {} 吊销",
            r.id,
            protocol::calendar::ChinaTime(r.revoked_at_ms.unwrap_or_default()).minute()
        ),
    )
}

/// Revokes device `id` on behalf of `who`: its token stops working at once.
pub async fn revoke_device_as(s: &AdminState, who: &Principal, id: &str) -> Result<DeviceView, ApiFail> {
    who.require(s, Action::ManageDevices).await?;
    school_only(s)?;
    let _one = s.devices.changes.lock().await;
    let mut record = known(s, id)?;
    if record.revoked_at_ms.is_some() {
        return Err(revoked_already(&record));
    }
    record.revoked_at_ms = Some(s.clock.wall_ms());
    record.revoked_by = who.person();
    // Its token out of the book first: from here on no request with it passes, written or not
    // (if the write fails, the device stays registered without a working token; revoke again).
    s.devices.lock().set(DeviceRecord { revoked_at_ms: None, revoked_by: None, ..record.clone() }, None);
    write_local(s, vec![token_op(&record.id, None), record_op(&record)?]).await?;
    s.devices.lock().set(record.clone(), None);
    audit(s, "device-revoked", who.account(), &format!("{} by {}", record.id, who.label())).await?;
    tracing::info!(node = %s.me, device = %record.id, by = %who.label(), "device revoked");
    s.devices.lock().view(&record.id).ok_or_else(|| internal("the device was not kept"))
}

/// Gives device `id` a new token on behalf of `who` (shown once); the old one stops working.
pub async fn rotate_device_as(s: &AdminState, who: &Principal, id: &str) -> Result<DeviceToken, ApiFail> {
    who.require(s, Action::ManageDevices).await?;
    school_only(s)?;
    let _one = s.devices.changes.lock().await;
    let mut record = known(s, id)?;
    if record.revoked_at_ms.is_some() {
        return Err(revoked_already(&record));
    }
    record.token_at_ms = s.clock.wall_ms();
    let token = new_token();
    let hash = token_hash(&token);
    // The old token stops before the new one is written; the new one works once it is kept.
    s.devices.lock().set(record.clone(), None);
    write_local(s, vec![token_op(&record.id, Some(hash)), record_op(&record)?]).await?;
    s.devices.lock().set(record.clone(), Some(hash));
    audit(s, "device-rotated", who.account(), &format!("{} by {}", record.id, who.label())).await?;
    tracing::info!(node = %s.me, device = %record.id, by = %who.label(), "device token rotated");
    let device = s.devices.lock().view(&record.id).ok_or_else(|| internal("the device was not kept"))?;
    Ok(DeviceToken { device, token })
}

/// The school's devices, for `who`.
pub async fn device_views(s: &AdminState, who: &Principal) -> Result<Vec<DeviceView>, ApiFail> {
    who.require(s, Action::ViewSubtree).await?;
    school_only(s)?;
    Ok(s.devices.lock().views())
}

/// One camera of the school with its online state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraView {
    pub camera: String,
    pub name: String,
    pub canteen: String,
    pub zone: String,
    pub zone_zh: String,
    /// Its last heartbeat said online, less than `offline_after_s` ago.
    pub online: bool,
    pub last_heartbeat_ms: Option<u64>,
    /// `last_heartbeat_ms` in RFC 3339, China time (empty: never).
    pub last_heartbeat: String,
    /// What its last heartbeat said (`None`: never heard of).
    pub reported_online: Option<bool>,
    pub recording_days: Option<u32>,
    /// The device that sent its last heartbeat.
    pub reported_by: Option<String>,
    /// The devices (not revoked) that speak for it.
    pub devices: Vec<String>,
}

/// `GET /api/cameras`: the school's cameras and their online state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CamerasView {
    pub school: NodeId,
    pub now_ms: u64,
    /// A camera is offline once its last heartbeat is this old (the settings in force).
    pub offline_after_s: u32,
    pub registered: u32,
    pub online: u32,
    pub cameras: Vec<CameraView>,
}

/// The school's cameras with their online state at the node's clock, for `who`.
pub async fn camera_views(s: &AdminState, who: &Principal) -> Result<CamerasView, ApiFail> {
    who.require(s, Action::ViewSubtree).await?;
    school_only(s)?;
    let now = s.clock.wall_ms();
    let registered = school_cameras(s).await?;
    let offline_after_s = s.reads.settings_for(s.me).await.map_err(read_fail)?.0.camera_offline_after_s;
    let ids: Vec<String> = registered.keys().cloned().collect();
    let beats = s.cameras.lock().clone();
    let live = cameras::liveness(&beats, &ids, u64::from(offline_after_s) * 1_000, now);
    let book = s.devices.lock();
    let views: Vec<CameraView> = live
        .into_iter()
        .filter_map(|l| {
            let c = registered.get(&l.camera)?;
            let beat = beats.get(&l.camera);
            Some(CameraView {
                name: c.name.clone(),
                canteen: c.canteen.clone(),
                zone: c.zone.as_str().into(),
                zone_zh: c.zone.zh().into(),
                online: l.online,
                last_heartbeat: l.last_heartbeat_ms.map(protocol::calendar::rfc3339).unwrap_or_default(),
                last_heartbeat_ms: l.last_heartbeat_ms,
                reported_online: beat.map(|b| b.online),
                recording_days: l.recording_days,
                reported_by: beat.map(|b| b.device.clone()),
                devices: book.speaking_for(&l.camera),
                camera: l.camera,
            })
        })
        .collect();
    drop(book);
    Ok(CamerasView {
        school: s.me,
        now_ms: now,
        offline_after_s,
        registered: views.len() as u32,
        online: views.iter().filter(|c| c.online).count() as u32,
        cameras: views,
    })
}

async fn list(State(s): State<AdminState>, who: Principal) -> ApiResult<Vec<DeviceView>> {
    device_views(&s, &who).await.map(Json)
}

async fn add(State(s): State<AdminState>, who: Principal, Json(req): Json<AddDevice>) -> ApiResult<DeviceToken> {
    add_device_as(&s, &who, req).await.map(Json)
}

async fn revoke(State(s): State<AdminState>, who: Principal, Path(id): Path<String>) -> ApiResult<DeviceView> {
    revoke_device_as(&s, &who, &id).await.map(Json)
}

async fn rotate(State(s): State<AdminState>, who: Principal, Path(id): Path<String>) -> ApiResult<DeviceToken> {
    rotate_device_as(&s, &who, &id).await.map(Json)
}

async fn cameras_list(State(s): State<AdminState>, who: Principal) -> ApiResult<CamerasView> {
    camera_views(&s, &who).await.map(Json)
}

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/devices", get(list).post(add))
        .route("/api/devices/{id}/revoke", post(revoke))
        .route("/api/devices/{id}/rotate", post(rotate))
        .route("/api/cameras", get(cameras_list))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_and_kept_only_as_their_hash() {
        let a = new_token();
        assert_eq!(a.len(), 2 * TOKEN_BYTES);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, new_token());
        let h = token_hash(&a);
        assert_eq!(unhex32(hex(&h).as_bytes()), Some(h));
        // The SHA-256 of "abc" (FIPS 180-2).
        assert_eq!(hex(&token_hash("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(unhex32(b"zz"), None);
    }

    #[test]
    fn the_book_finds_a_device_by_its_current_token_only() {
        let mut book = DeviceBook::default();
        let record = DeviceRecord {
            id: "box-1".into(),
            kind: DeviceKind::AiBox,
            name: "一号盒".into(),
            cameras: vec!["cam-01".into()],
            added_at_ms: 1,
            added_by: None,
            token_at_ms: 1,
            revoked_at_ms: None,
            revoked_by: None,
        };
        book.set(record.clone(), Some(token_hash("old")));
        assert_eq!(book.by_token("old").map(|r| r.id.as_str()), Some("box-1"));
        book.set(record.clone(), Some(token_hash("new")));
        assert!(book.by_token("old").is_none(), "a rotated token stops");
        assert!(book.by_token("new").is_some());
        assert_eq!(book.speaking_for("cam-01"), vec!["box-1".to_string()]);
        book.set(DeviceRecord { revoked_at_ms: Some(2), ..record }, Some(token_hash("new")));
        assert!(book.by_token("new").is_none(), "a revoked device has no token");
        assert!(book.speaking_for("cam-01").is_empty());
    }

    #[test]
    fn a_device_to_add_is_checked_before_anything_is_written() {
        let mut cams = BTreeMap::new();
        cams.insert(
            "cam-01".to_string(),
            protocol::registry::Camera {
                canteen: "main".into(),
                name: "切配".into(),
                zone: protocol::Zone::Cutting,
                ai_enabled: true,
                parent_visible: false,
            },
        );
        let req = |id: &str, kind: &str, cams: &[&str]| AddDevice {
            id: id.into(),
            kind: kind.into(),
            name: "盒子".into(),
            cameras: cams.iter().map(|c| c.to_string()).collect(),
        };
        let ok = check_add(&req(" box-1 ", "分析盒", &["cam-01", "cam-01 "]), &cams).unwrap();
        assert_eq!((ok.id.as_str(), ok.kind, ok.cameras.len()), ("box-1", DeviceKind::AiBox, 1));
        assert!(check_add(&req("box 1", "nvr", &["cam-01"]), &cams).unwrap_err().contains("不合规"));
        assert!(check_add(&req("box-1", "tv", &["cam-01"]), &cams).unwrap_err().contains("没有“tv”这种设备"));
        assert!(check_add(&req("box-1", "nvr", &[]), &cams).unwrap_err().contains("至少给出一个"));
        assert!(check_add(&req("box-1", "nvr", &["cam-09"]), &cams).unwrap_err().contains("cam-09 未在本校登记"));
    }
}
