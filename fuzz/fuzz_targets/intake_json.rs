//! The device intake's bodies (`protocol::intake`): a detection or a heartbeat as JSON, parsed and
//! checked against the node's clock (now, and the ends of its range). A refusal with a code and a Chinese reason, never a
//! panic; an accepted detection is within the limits the checks promise.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::alert::ALERT_TEXT_BYTES_MAX;
use protocol::intake::{DETECTION_KEEP_MS, Detection, FUTURE_SLACK_MS, Heartbeat, RECORDING_DAYS_MAX, parse_json};

/// The node's clock: now, and the ends of its range.
const CLOCKS: [u64; 3] = [1_764_400_000_000, 0, u64::MAX];

fuzz_target!(|body: &[u8]| {
    match parse_json::<Detection>(body) {
        Ok(d) => {
            for now_ms in CLOCKS {
                match d.check(now_ms) {
                    Ok(c) => {
                        assert!(c.confidence_permille <= 1_000);
                        assert!(c.detected_at_ms <= now_ms.saturating_add(FUTURE_SLACK_MS));
                        assert!(c.detected_at_ms.saturating_add(DETECTION_KEEP_MS) > now_ms);
                        assert!(c.snapshot.as_ref().is_none_or(|s| s.len() <= ALERT_TEXT_BYTES_MAX && !s.is_empty()));
                    }
                    Err(e) => assert!(!e.code.is_empty() && !e.error.is_empty()),
                }
            }
        }
        Err(e) => assert!(e.code == "bad-json" && e.error.starts_with("请求体")),
    }
    if let Ok(hb) = parse_json::<Heartbeat>(body)
        && hb.check().is_ok()
    {
        for c in &hb.cameras {
            if c.check().is_ok() {
                assert!(c.recording_days.is_none_or(|d| d <= RECORDING_DAYS_MAX));
            }
        }
    }
});
