//! The Clock seam: monotonic milliseconds for session timers, wall-clock milliseconds for HLC
//! timestamps. Production reads tokio's clock (so a paused tokio clock drives it in simulation)
//! and the system time.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

pub trait Clock: Send + Sync + 'static {
    /// Milliseconds on a monotonic scale (since this clock was made).
    fn now_ms(&self) -> u64;
    /// Unix milliseconds.
    fn wall_ms(&self) -> u64;
    /// Unix microseconds (latency measurements); by default `wall_ms` × 1000.
    fn wall_us(&self) -> u64 {
        self.wall_ms().saturating_mul(1000)
    }
    /// Moves wall time forward by `ms` (tests of deadlines); returns the total offset. Clocks that
    /// cannot be moved refuse.
    fn advance_ms(&self, _ms: u64) -> Result<u64, String> {
        Err("this clock cannot be moved".into())
    }
}

/// Real time: tokio's monotonic clock and the system's wall clock.
#[derive(Debug)]
pub struct SystemClock {
    start: Instant,
    /// Added to the wall clock: 0 unless a test moved time forward.
    offset_ms: std::sync::atomic::AtomicU64,
}

impl SystemClock {
    pub fn new() -> SystemClock {
        SystemClock { start: Instant::now(), offset_ms: std::sync::atomic::AtomicU64::new(0) }
    }
}

impl Default for SystemClock {
    fn default() -> SystemClock {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn wall_ms(&self) -> u64 {
        unix_ms().saturating_add(self.offset_ms.load(std::sync::atomic::Ordering::SeqCst))
    }

    fn wall_us(&self) -> u64 {
        unix_us().saturating_add(self.offset_ms.load(std::sync::atomic::Ordering::SeqCst).saturating_mul(1000))
    }

    fn advance_ms(&self, ms: u64) -> Result<u64, String> {
        Ok(self.offset_ms.fetch_add(ms, std::sync::atomic::Ordering::SeqCst).saturating_add(ms))
    }
}

/// The system's wall clock in unix milliseconds (0 if the clock is before 1970).
pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Unix microseconds, for latency measurements finer than a millisecond.
pub fn unix_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}
