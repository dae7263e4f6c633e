//! What a school's devices post to its intake (`/device/v1/detections`, `/device/v1/heartbeat`),
//! as values, and the rules a request's body must pass before the node looks at its store: the
//! JSON parse with its refusal in Chinese, and each field's check. Pure functions of the bytes (and
//! of the node's clock, passed in), so they can be tested and fuzzed without a node; the node's
//! intake (`node::api::intake`) adds what needs its state: the token, the rate limit, whether the
//! device speaks for the camera, the detection ids already seen.

use serde::{Deserialize, Serialize};

use crate::alert::{ALERT_TEXT_BYTES_MAX, AlertType};

/// A detection id is remembered this long after it was recorded, and a detection older than this
/// is refused (so a forgotten id cannot come back as a new alert).
pub const DETECTION_KEEP_MS: u64 = 7 * 86_400_000;
/// Longest detection id (bytes).
pub const DETECTION_ID_BYTES_MAX: usize = 128;
/// A detection may be stamped at most this far ahead of the node's clock (a box's clock drifts).
pub const FUTURE_SLACK_MS: u64 = 10 * 60_000;
/// The most days of recording a heartbeat may claim.
pub const RECORDING_DAYS_MAX: u32 = 3_650;
/// The most cameras one device speaks for (and so one heartbeat names).
pub const DEVICE_CAMERAS_MAX: usize = 256;

/// A refusal of a device's request body: a stable code a device's firmware can act on, and the
/// reason in Chinese (its English after a slash). The node answers it as a 400.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct IntakeError {
    pub code: &'static str,
    pub error: String,
}

fn bad(code: &'static str, error: String) -> IntakeError {
    IntakeError { code, error }
}

/// One detection, as a device posts it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detection {
    /// The device's own id of this detection (a UUID, a counter): the same id again is the same
    /// detection.
    pub detection_id: String,
    pub camera: String,
    /// A taxonomy code: `NO_MASK`, `RODENT`, …
    #[serde(rename = "type")]
    pub alert_type: String,
    /// When the device saw it (unix ms; default: when the node receives it).
    #[serde(default)]
    pub detected_at_ms: Option<u64>,
    /// The model's confidence, from 0 to 1.
    pub confidence: f64,
    /// A reference to the snapshot (a file name or URL on the device; at most 128 bytes).
    #[serde(default)]
    pub snapshot: Option<String>,
}

/// A detection whose fields passed [`Detection::check`]: what the alert is raised with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedDetection {
    /// Trimmed; whether the device speaks for it is the node's check.
    pub camera: String,
    pub alert_type: AlertType,
    pub confidence_permille: u16,
    /// Trimmed, `None` when empty.
    pub snapshot: Option<String>,
    pub detected_at_ms: u64,
}

/// A heartbeat: the cameras a device speaks for, each with its state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub cameras: Vec<CameraBeat>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraBeat {
    pub camera: String,
    /// The camera is up (streaming, recording).
    pub online: bool,
    /// Days of video the recorder holds for it (absent: the last value stands).
    #[serde(default)]
    pub recording_days: Option<u32>,
}

/// A JSON body as `T`, or a refusal saying in Chinese what is wrong with it (code `bad-json`).
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, IntakeError> {
    serde_json::from_slice(body).map_err(|e| bad("bad-json", json_error_zh(&e)))
}

/// What serde_json found wrong, in Chinese (its own words after the slash).
pub fn json_error_zh(e: &serde_json::Error) -> String {
    let raw = e.to_string();
    let quoted = |m: &str| raw.split('`').nth(1).filter(|_| raw.starts_with(m)).map(str::to_owned);
    let zh = if let Some(f) = quoted("missing field") {
        format!("缺少字段 {f}")
    } else if let Some(f) = quoted("unknown field") {
        format!("没有字段 {f}")
    } else if raw.starts_with("invalid type") || raw.starts_with("invalid value") {
        "有字段的类型或取值不对".to_string()
    } else if e.is_eof() {
        "JSON 不完整".to_string()
    } else if e.is_syntax() {
        "不是有效的 JSON".to_string()
    } else {
        "内容无法识别".to_string()
    };
    format!("请求体{zh} / {raw}")
}

/// Checks a device's detection id: 1 to [`DETECTION_ID_BYTES_MAX`] printable ASCII characters,
/// no spaces (a UUID, a counter, `cam-01/1764400000123`).
pub fn check_detection_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > DETECTION_ID_BYTES_MAX || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "detection_id 须为 1 到 {DETECTION_ID_BYTES_MAX} 个可见 ASCII 字符（不含空格），现为“{}” / detection_id: 1 \
             to {DETECTION_ID_BYTES_MAX} printable ASCII characters",
            id.chars().take(40).collect::<String>()
        ));
    }
    Ok(())
}

impl Detection {
    /// Checks the fields (all but whether the device speaks for the camera) against the node's
    /// wall clock `now_ms`: the detection to raise, or the refusal.
    pub fn check(&self, now_ms: u64) -> Result<CheckedDetection, IntakeError> {
        check_detection_id(&self.detection_id).map_err(|e| bad("bad-detection-id", e))?;
        let alert_type: AlertType = self.alert_type.parse().map_err(|_| {
            let known: Vec<String> = AlertType::all().map(|t| format!("{}（{}）", t.code(), t.zh())).collect();
            let given: String = self.alert_type.trim().chars().take(40).collect();
            bad("bad-type", format!("没有告警类型“{given}”，可用：{} / unknown type", known.join("、")))
        })?;
        if !(self.confidence.is_finite() && (0.0..=1.0).contains(&self.confidence)) {
            return Err(bad(
                "bad-confidence",
                format!("confidence 须为 0 到 1 之间的数（如 0.87），现为 {} / confidence: 0 to 1", self.confidence),
            ));
        }
        let detected_at = self.detected_at_ms.unwrap_or(now_ms);
        if detected_at.saturating_add(DETECTION_KEEP_MS) <= now_ms {
            return Err(bad(
                "bad-time",
                format!(
                    "检测时间 {} 早于 7 天前，不再受理 / detected_at_ms is more than 7 days old",
                    crate::calendar::ChinaTime(detected_at).minute()
                ),
            ));
        }
        if detected_at > now_ms.saturating_add(FUTURE_SLACK_MS) {
            return Err(bad(
                "bad-time",
                format!(
                    "检测时间 {} 晚于学校节点的时钟 10 分钟以上，请校准设备时钟 / detected_at_ms is in the future",
                    crate::calendar::ChinaTime(detected_at).minute()
                ),
            ));
        }
        let snapshot = self.snapshot.as_deref().map(str::trim).unwrap_or_default();
        if snapshot.len() > ALERT_TEXT_BYTES_MAX || snapshot.chars().any(char::is_control) {
            return Err(bad(
                "bad-snapshot",
                format!(
                    "snapshot 最多 {ALERT_TEXT_BYTES_MAX} 字节，不能含控制字符 / snapshot: at most \
                     {ALERT_TEXT_BYTES_MAX} bytes"
                ),
            ));
        }
        Ok(CheckedDetection {
            camera: self.camera.trim().to_string(),
            alert_type,
            confidence_permille: (self.confidence * 1_000.0).round() as u16,
            snapshot: (!snapshot.is_empty()).then(|| snapshot.to_string()),
            detected_at_ms: detected_at,
        })
    }
}

impl Heartbeat {
    /// Checks the number of cameras (each camera's own fields: [`CameraBeat::check`]).
    pub fn check(&self) -> Result<(), IntakeError> {
        if self.cameras.len() > DEVICE_CAMERAS_MAX {
            return Err(bad(
                "too-many-cameras",
                format!(
                    "一次心跳最多 {DEVICE_CAMERAS_MAX} 个摄像头，现在 {} 个 / too many cameras",
                    self.cameras.len()
                ),
            ));
        }
        Ok(())
    }
}

impl CameraBeat {
    /// Checks a camera's recording days (whether the device speaks for it is the node's check).
    pub fn check(&self) -> Result<(), IntakeError> {
        if self.recording_days.is_some_and(|d| d > RECORDING_DAYS_MAX) {
            return Err(bad(
                "bad-recording-days",
                format!(
                    "摄像头 {} 的 recording_days 最多 {RECORDING_DAYS_MAX} / recording_days is too large",
                    self.camera.trim()
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detection(json: &str) -> Result<Detection, String> {
        parse_json::<Detection>(json.as_bytes()).map_err(|e| e.error)
    }

    #[test]
    fn a_bad_body_is_refused_in_chinese() {
        assert!(detection(r#"{"camera":"cam-01"}"#).unwrap_err().starts_with("请求体缺少字段 detection_id"));
        let e = detection(r#"{"detection_id":"1","camera":"c","type":"NO_MASK","confidence":0.9,"x":1}"#).unwrap_err();
        assert!(e.starts_with("请求体没有字段 x"), "{e}");
        let e = detection(r#"{"detection_id":"1","camera":"c","type":"NO_MASK","confidence":"high"}"#).unwrap_err();
        assert!(e.starts_with("请求体有字段的类型或取值不对"), "{e}");
        assert!(detection("{").unwrap_err().starts_with("请求体JSON 不完整"));
        assert!(detection("nope").unwrap_err().starts_with("请求体不是有效的 JSON"));
    }

    #[test]
    fn a_detection_is_checked_field_by_field() {
        let now = 1_764_400_000_000;
        let d = |f: &dyn Fn(&mut Detection)| {
            let mut d = Detection {
                detection_id: "d-1".into(),
                camera: " cam-01 ".into(),
                alert_type: "no-mask".into(),
                detected_at_ms: None,
                confidence: 0.8765,
                snapshot: Some("snap/1.jpg".into()),
            };
            f(&mut d);
            d.check(now)
        };
        let ok = d(&|_| {}).unwrap();
        assert_eq!(ok.camera, "cam-01");
        assert_eq!(ok.alert_type, AlertType::NoMask);
        assert_eq!(ok.confidence_permille, 877);
        assert_eq!(ok.detected_at_ms, now);
        let code = |r: Result<CheckedDetection, IntakeError>| r.unwrap_err().code;
        assert_eq!(code(d(&|d| d.alert_type = "NO_HAT".into())), "bad-type");
        assert_eq!(code(d(&|d| d.confidence = 87.0)), "bad-confidence");
        assert_eq!(code(d(&|d| d.confidence = f64::NAN)), "bad-confidence");
        assert_eq!(code(d(&|d| d.detection_id = "a b".into())), "bad-detection-id");
        assert_eq!(code(d(&|d| d.detected_at_ms = Some(now - DETECTION_KEEP_MS))), "bad-time");
        assert_eq!(code(d(&|d| d.detected_at_ms = Some(now + FUTURE_SLACK_MS + 1))), "bad-time");
        assert_eq!(code(d(&|d| d.snapshot = Some("x".repeat(200)))), "bad-snapshot");
        assert!(d(&|d| d.detected_at_ms = Some(now - DETECTION_KEEP_MS + 60_000)).is_ok());
        assert!(d(&|d| d.confidence = 0.0).is_ok() && d(&|d| d.confidence = 1.0).is_ok());
    }

    #[test]
    fn a_heartbeat_is_checked() {
        let beat = |days| CameraBeat { camera: "cam-01".into(), online: true, recording_days: days };
        assert!(beat(Some(RECORDING_DAYS_MAX)).check().is_ok() && beat(None).check().is_ok());
        assert_eq!(beat(Some(RECORDING_DAYS_MAX + 1)).check().unwrap_err().code, "bad-recording-days");
        let hb = Heartbeat { cameras: vec![beat(None); DEVICE_CAMERAS_MAX + 1] };
        assert_eq!(hb.check().unwrap_err().code, "too-many-cameras");
        let hb: Heartbeat = parse_json(br#"{"cameras":[{"camera":"cam-01","online":true}]}"#).unwrap();
        assert!(hb.check().is_ok());
    }
}
