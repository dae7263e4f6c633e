//! The device intake's rate limit: a token bucket per device. A bucket holds up to `burst`
//! tokens and gains `rate_per_s` a second; a request takes one, and a request that finds none is
//! refused (429) with how long until one is there. Time is the node's monotonic clock
//! ([`crate::clock::Clock::now_ms`]), so moving the wall clock in a test does not refill it.

use std::collections::HashMap;
use std::sync::Mutex;

/// One device's bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    at_ms: u64,
}

impl TokenBucket {
    /// A full bucket at `now_ms`.
    pub fn full(burst: u32, now_ms: u64) -> TokenBucket {
        TokenBucket { tokens: f64::from(burst), at_ms: now_ms }
    }

    /// Takes a token at `now_ms`; without one, `Err` with the milliseconds until there is one.
    pub fn take(&mut self, now_ms: u64, rate_per_s: u32, burst: u32) -> Result<(), u64> {
        let rate = f64::from(rate_per_s.max(1));
        let elapsed = now_ms.saturating_sub(self.at_ms);
        self.at_ms = self.at_ms.max(now_ms);
        self.tokens = (self.tokens + elapsed as f64 * rate / 1_000.0).min(f64::from(burst.max(1)));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - self.tokens) * 1_000.0 / rate).ceil().max(1.0) as u64)
        }
    }
}

/// The buckets of every device that made a request since the node started.
#[derive(Debug)]
pub struct RateLimiter {
    pub rate_per_s: u32,
    pub burst: u32,
    buckets: Mutex<HashMap<String, TokenBucket>>,
}

impl RateLimiter {
    pub fn new(rate_per_s: u32, burst: u32) -> RateLimiter {
        RateLimiter { rate_per_s: rate_per_s.max(1), burst: burst.max(1), buckets: Mutex::default() }
    }

    /// Takes a token of `device`'s bucket at `now_ms` (see [`TokenBucket::take`]).
    pub fn check(&self, device: &str, now_ms: u64) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (rate, burst) = (self.rate_per_s, self.burst);
        buckets.entry(device.to_string()).or_insert_with(|| TokenBucket::full(burst, now_ms)).take(now_ms, rate, burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_and_the_wait_is_said() {
        let mut b = TokenBucket::full(3, 1_000);
        for _ in 0..3 {
            assert_eq!(b.take(1_000, 2, 3), Ok(()));
        }
        // Empty: at 2 a second, the next token is 500 ms away.
        assert_eq!(b.take(1_000, 2, 3), Err(500));
        assert_eq!(b.take(1_200, 2, 3), Err(300));
        assert_eq!(b.take(1_500, 2, 3), Ok(()));
        // A long pause refills up to the burst, never beyond.
        for _ in 0..3 {
            assert_eq!(b.take(60_000, 2, 3), Ok(()));
        }
        assert!(b.take(60_000, 2, 3).is_err());
        // A clock that goes back (it does not: monotonic) neither refills nor panics.
        assert!(b.take(10, 2, 3).is_err());
    }

    #[test]
    fn each_device_has_its_own_bucket() {
        let l = RateLimiter::new(20, 100);
        let passed = (0..150).filter(|_| l.check("box-1", 5_000).is_ok()).count();
        assert_eq!(passed, 100, "the burst, then nothing within the same millisecond");
        assert_eq!(l.check("box-1", 5_000), Err(50), "one token every 50 ms at 20 a second");
        assert!(l.check("nvr-1", 5_000).is_ok(), "another device is not held up");
        assert!(l.check("box-1", 5_050).is_ok());
        // At 20 a second, a second later twenty more.
        let passed = (0..40).filter(|_| l.check("box-1", 6_050).is_ok()).count();
        assert_eq!(passed, 20);
    }
}
