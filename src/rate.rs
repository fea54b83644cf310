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
        let per_period = u128::from(self.per_period * MILLI);
        let period = self.period.as_nanos();
        let gained = elapsed * per_period / period;
        if gained == 0 {
            return;
        }
        let tokens = u128::from(self.milli_tokens) + gained;
        if tokens >= u128::from(self.capacity) {
            self.milli_tokens = self.capacity;
            self.last = now;
        } else {
            self.milli_tokens = tokens as u64;
            // Only the time the whole thousandths took is spent: the rest counts next time, so
            // time that comes in small steps refills exactly as much as in one.
            let spent = u64::try_from(gained * period / per_period).unwrap_or(u64::MAX);
            self.last = self
                .last
                .checked_add(Duration::from_nanos(spent))
                .map_or(now, |t| t.min(now));
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

    #[test]
    fn time_in_small_steps_refills_as_much_as_in_one() {
        // A token every 2 s is a thousandth every 2 ms: each 3 ms step holds one and a half.
        let t0 = Instant::now();
        let mut b = TokenBucket::new(t0, 1, 1, Duration::from_secs(2));
        assert!(b.try_take(t0));
        let mut t = t0;
        for _ in 0..666 {
            t += Duration::from_millis(3);
            assert!(!b.try_take(t), "less than a token after {:?}", t - t0);
        }
        assert!(
            b.try_take(t0 + Duration::from_secs(2)),
            "a whole token after 2 s"
        );
    }
}
