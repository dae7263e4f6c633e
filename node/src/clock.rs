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
}

/// Real time: tokio's monotonic clock and the system's wall clock.
#[derive(Debug)]
pub struct SystemClock {
    start: Instant,
}

impl SystemClock {
    pub fn new() -> SystemClock {
        SystemClock { start: Instant::now() }
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
        unix_ms()
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
