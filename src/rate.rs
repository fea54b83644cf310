//! A token bucket: the inbound message rate of a connection and its budget of bad frames.
//!
//! Tokens are counted in thousandths so that refill is exact integer arithmetic on the
//! elapsed time passed in; nothing reads a clock.

use std::time::{Duration, Instant};

const MILLI: u64 = 1000;

/// A bucket of `capacity` tokens that refills `per_period` tokens every `period`.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    milli_tokens: u64,
    capacity: u64,
    per_period: u64,
    period: Duration,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(now: Instant, capacity: u32, per_period: u32, period: Duration) -> Self {
        let capacity = u64::from(capacity) * MILLI;
        Self {
            milli_tokens: capacity,
            capacity,
            per_period: u64::from(per_period),
            period: period.max(Duration::from_nanos(1)),
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_nanos();
        let gained = elapsed * u128::from(self.per_period * MILLI) / self.period.as_nanos();
        if gained > 0 {
            self.milli_tokens =
                (u128::from(self.milli_tokens) + gained).min(u128::from(self.capacity)) as u64;
            self.last = now;
        }
    }

    /// Take one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.milli_tokens >= MILLI {
            self.milli_tokens -= MILLI;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(t0, 3, 2, Duration::from_secs(1));
        assert!((0..3).all(|_| b.try_take(t0)));
        assert!(!b.try_take(t0));
        assert!(b.try_take(t0 + Duration::from_millis(500)));
        assert!(!b.try_take(t0 + Duration::from_millis(500)));
        let later = t0 + Duration::from_secs(100);
        assert_eq!((0..10).filter(|_| b.try_take(later)).count(), 3);
    }
}
