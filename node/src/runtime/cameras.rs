//! A school's cameras as its devices report them: each camera's last heartbeat (when the node
//! received it, whether the device said the camera was online, how many days of recording it
//! holds), kept as last values — in memory, and in [`Space::Devices`] so a restart does not forget
//! them; never an event, never replicated.
//!
//! A camera is **online** at `now_ms` while its last heartbeat said so and is younger than the
//! settings' `camera_offline_after_s` (180 s by default); a camera never heard of is offline.
//! [`camera_liveness`] answers that for every registered camera of the school — the function
//! the rules engine calls — and [`report_counts`] gives the node's health report its
//! `(registered, online)`.
//!
//! The device intake (`api::intake`) writes the heartbeats; the root actor reads the counts.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use protocol::registry::EntityData;
use serde::{Deserialize, Serialize};
use topology::{NodeId, Tier};

use crate::runtime::reads::Reads;
use crate::runtime::store::{LocalOp, LocalSpace};
use crate::storage::{Space, Storage, StorageError};

/// Key prefix of a camera's last heartbeat in [`Space::Devices`] (then the camera id).
pub const BEAT_PREFIX: &[u8] = b"cam/";
/// Key prefix of a registered device in [`Space::Devices`] (then the device id): the root actor
/// only asks whether there is any.
pub const DEVICE_PREFIX: &[u8] = b"dev/";

/// A camera's last heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beat {
    /// When this node received it (unix ms, the node's clock).
    pub at_ms: u64,
    /// What the device said: the camera is up and recording.
    pub online: bool,
    /// Days of video the recorder holds for it, as last told (a heartbeat without it keeps the
    /// value before).
    #[serde(default)]
    pub recording_days: Option<u32>,
    /// The device that sent it.
    pub device: String,
}

impl Beat {
    /// Online at `now_ms`: it said so, less than `offline_after_ms` ago.
    pub fn online_at(&self, offline_after_ms: u64, now_ms: u64) -> bool {
        self.online && now_ms.saturating_sub(self.at_ms) < offline_after_ms
    }
}

/// The last heartbeats of the school's cameras, shared by the root actor (its health report),
/// the device intake (which writes them) and the admin API and console (which show them).
#[derive(Clone, Default)]
pub struct SharedCameras {
    beats: Arc<Mutex<BTreeMap<String, Beat>>>,
    /// The school's devices feed it: one is registered, or a heartbeat is kept.
    in_use: Arc<AtomicBool>,
    /// Heartbeats kept so far ([`SharedCameras::record`], the only writer of `beats` after
    /// [`load`]): unchanged, so are the beats.
    changes: Arc<AtomicU64>,
    /// The registered cameras and the offline threshold as last read, with the node's stored
    /// cursors then: kept until registry events arrive (the health report asks every flush).
    registered: Arc<Mutex<Option<Registered>>>,
}

/// The registered cameras (ids) and the offline threshold (ms), as of the node's stored cursors.
type Registered = (protocol::Cursors, Vec<String>, u64);

impl SharedCameras {
    pub fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Beat>> {
        self.beats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the school's devices feed it (before that, the health report says nothing of
    /// cameras rather than "0 online").
    pub fn in_use(&self) -> bool {
        self.in_use.load(Ordering::Relaxed)
    }

    /// A device was registered: from now on the report counts cameras.
    pub fn mark_in_use(&self) {
        self.in_use.store(true, Ordering::Relaxed);
    }

    /// Keeps `beat` as `camera`'s last heartbeat (in memory; [`beat_op`] persists it). Returns
    /// whether the camera's online state at `beat.at_ms` changed with it.
    pub fn record(&self, camera: &str, beat: Beat, offline_after_ms: u64) -> bool {
        self.mark_in_use();
        let mut beats = self.lock();
        let was = beats.get(camera).is_some_and(|b| b.online_at(offline_after_ms, beat.at_ms));
        let now = beat.online;
        beats.insert(camera.to_string(), beat);
        self.changes.fetch_add(1, Ordering::Release);
        was != now
    }

    /// How many heartbeats were kept so far: while it is the same, the beats are (read it before
    /// the beats: they are then at least as new as the count says).
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }
}

/// The stored key of `camera`'s heartbeat.
pub fn beat_key(camera: &str) -> Vec<u8> {
    let mut k = BEAT_PREFIX.to_vec();
    k.extend_from_slice(camera.as_bytes());
    k
}

/// The local write that keeps `beat` across a restart.
pub fn beat_op(camera: &str, beat: &Beat) -> LocalOp {
    LocalOp {
        space: LocalSpace::Devices,
        key: beat_key(camera),
        value: Some(serde_json::to_vec(beat).unwrap_or_default()),
    }
}

/// Reads the kept heartbeats back at start (one that does not decode is skipped: last-value
/// state, the next heartbeat replaces it).
pub fn load(storage: &dyn Storage) -> Result<SharedCameras, StorageError> {
    let mut beats = BTreeMap::new();
    for item in storage.scan_prefix(Space::Devices, BEAT_PREFIX) {
        let (k, v) = item?;
        let Ok(camera) = String::from_utf8(k[BEAT_PREFIX.len()..].to_vec()) else { continue };
        if let Ok(b) = serde_json::from_slice::<Beat>(&v) {
            beats.insert(camera, b);
        }
    }
    let devices = storage.scan_prefix(Space::Devices, DEVICE_PREFIX).next().is_some();
    let shared = SharedCameras::default();
    shared.in_use.store(devices || !beats.is_empty(), Ordering::Relaxed);
    *shared.lock() = beats;
    Ok(shared)
}

/// One camera's liveness at a moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraLiveness {
    /// The camera's id at the school (`cam-01`).
    pub camera: String,
    /// Its last heartbeat said online, less than `camera_offline_after_s` ago.
    pub online: bool,
    /// When the node last heard of it (`None`: never).
    pub last_heartbeat_ms: Option<u64>,
    /// Days of recording, as last told.
    pub recording_days: Option<u32>,
}

/// The liveness of each of `registered` (camera ids, in their order) at `now_ms`, from the last
/// heartbeats `beats`; a heartbeat for a camera not registered any more is ignored.
pub fn liveness(
    beats: &BTreeMap<String, Beat>,
    registered: &[String],
    offline_after_ms: u64,
    now_ms: u64,
) -> Vec<CameraLiveness> {
    registered
        .iter()
        .map(|c| {
            let b = beats.get(c);
            CameraLiveness {
                camera: c.clone(),
                online: b.is_some_and(|b| b.online_at(offline_after_ms, now_ms)),
                last_heartbeat_ms: b.map(|b| b.at_ms),
                recording_days: b.and_then(|b| b.recording_days),
            }
        })
        .collect()
}

/// The cameras registered at school `me` (ids, sorted).
pub async fn registered_cameras(reads: &Reads, me: NodeId) -> Result<Vec<String>, StorageError> {
    let view = reads.registry_of(me).await?;
    Ok(view
        .into_values()
        .filter(|e| e.entity.node == me && matches!(e.data, EntityData::Camera(_)))
        .map(|e| e.entity.id)
        .collect())
}

/// How long after its last heartbeat a camera counts as offline at `me` (the settings in force).
pub async fn offline_after_ms(reads: &Reads, me: NodeId) -> Result<u64, StorageError> {
    Ok(u64::from(reads.settings_for(me).await?.0.camera_offline_after_s) * 1_000)
}

/// Every registered camera of school `me` with its liveness at `now_ms`: `(camera id, online,
/// last heartbeat, recording days)`, by camera id. For the rules engine (a camera offline too
/// long, too few days of recording) and the pages. At another tier: none.
pub async fn camera_liveness(
    reads: &Reads,
    me: NodeId,
    cameras: &SharedCameras,
    now_ms: u64,
) -> Result<Vec<CameraLiveness>, StorageError> {
    if me.tier() != Tier::School {
        return Ok(Vec::new());
    }
    // The registered cameras and the threshold come from registry events: kept while none arrived.
    let kept = cameras.registered.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let (now, kept) = reads
        .run(move |st| {
            let now = crate::runtime::store::all_cursors(st)?;
            let Some((before, registered, after)) = kept else { return Ok((now, None)) };
            let arrived = crate::runtime::store::read::arrived(st, &before, &now)?;
            let same = arrived.is_some_and(|a| a.values().all(|k| !k.contains(&protocol::EventKind::Registry)));
            Ok::<_, StorageError>((now, same.then_some((registered, after))))
        })
        .await?;
    let (registered, after) = match kept {
        Some(kept) => kept,
        None => (registered_cameras(reads, me).await?, offline_after_ms(reads, me).await?),
    };
    *cameras.registered.lock().unwrap_or_else(|e| e.into_inner()) = Some((now, registered.clone(), after));
    Ok(liveness(&cameras.lock(), &registered, after, now_ms))
}

/// `(registered, online)` for the node's health report: `None` at other tiers, and at a school
/// whose devices do not feed it yet (nothing to say, rather than "0 online").
pub async fn report_counts(
    reads: &Reads,
    me: NodeId,
    cameras: &SharedCameras,
    now_ms: u64,
) -> Result<Option<(u32, u32)>, StorageError> {
    if me.tier() != Tier::School || !cameras.in_use() {
        return Ok(None);
    }
    let all = camera_liveness(reads, me, cameras, now_ms).await?;
    let online = all.iter().filter(|c| c.online).count();
    Ok(Some((all.len() as u32, online as u32)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(at_ms: u64, online: bool) -> Beat {
        Beat { at_ms, online, recording_days: Some(30), device: "nvr-1".into() }
    }

    #[test]
    fn a_camera_is_online_while_its_last_heartbeat_said_so_and_is_young() {
        let mut beats = BTreeMap::new();
        beats.insert("cam-01".to_string(), beat(1_000, true));
        beats.insert("cam-02".to_string(), beat(1_000, false));
        beats.insert("gone".to_string(), beat(1_000, true));
        let registered: Vec<String> = ["cam-01", "cam-02", "cam-03"].map(String::from).to_vec();
        let at = |now| liveness(&beats, &registered, 180_000, now);
        let l = at(100_000);
        assert_eq!(l.len(), 3, "only registered cameras");
        assert!(l[0].online && !l[1].online && !l[2].online);
        assert_eq!(l[0].last_heartbeat_ms, Some(1_000));
        assert_eq!(l[2].last_heartbeat_ms, None);
        assert_eq!(l[0].recording_days, Some(30));
        assert!(at(180_999).first().unwrap().online, "just under the threshold");
        assert!(!at(181_000).first().unwrap().online, "silent for the whole threshold");
    }

    #[test]
    fn recording_says_whether_the_online_state_changed_and_loading_brings_it_back() {
        let shared = SharedCameras::default();
        assert!(!shared.in_use());
        assert!(shared.record("cam-01", beat(1_000, true), 180_000), "first heartbeat: now online");
        assert!(shared.in_use());
        assert!(!shared.record("cam-01", beat(2_000, true), 180_000), "still online");
        assert!(shared.record("cam-01", beat(500_000, true), 180_000), "back after silence");
        assert!(shared.record("cam-01", beat(501_000, false), 180_000), "said offline");

        let storage = crate::storage::mem::MemStorage::new();
        let loaded = load(&storage).unwrap();
        assert!(!loaded.in_use() && loaded.lock().is_empty());
        let op = beat_op("cam-01", &beat(7, true));
        storage.put(Space::Devices, &op.key, op.value.unwrap()).unwrap();
        let loaded = load(&storage).unwrap();
        assert!(loaded.in_use());
        assert_eq!(loaded.lock().get("cam-01"), Some(&beat(7, true)));
    }
}
