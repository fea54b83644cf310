//! The two budgets `docs/PROTOCOL.md` section 4 gives every connection, as token buckets that
//! refill continuously as the injected clock moves: the message rate (`messages_per_second`
//! sustained, bursts of `message_burst`; text frames, WebSocket pings and unsolicited pongs all
//! take from it) and the strikes (`max_strikes`, one back every `strike_refill`). Written from
//! the document, not from the hub's code, and shared by the checks that follow them: the
//! `frames` oracle, which does not always see a take and holds each bucket as bounds, and the
//! operations model, which sees every take and so knows each bucket exactly.
//!
//! A bucket is held as bounds, the fewest tokens it can hold and the most. A take the bounds
//! decide is a required outcome; one they do not decide is read from what the hub did, which
//! narrows them again. A follower that sees every take keeps the bounds equal: every take is
//! decided.

use std::time::{Duration, Instant};

/// A token bucket in exact integer arithmetic: a token is `token` units (the refill period in
/// nanoseconds) and each nanosecond adds `per_ns` units (the tokens per period).
#[derive(Debug, Clone)]
struct Bucket {
    units: u128,
    capacity: u128,
    per_ns: u128,
    token: u128,
    last: Instant,
}

impl Bucket {
    fn full(now: Instant, capacity: u32, per_period: u32, period: Duration) -> Self {
        let token = period.as_nanos().max(1);
        let capacity = u128::from(capacity) * token;
        Self {
            units: capacity,
            capacity,
            per_ns: u128::from(per_period),
            token,
            last: now,
        }
    }

    fn advance(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_nanos();
        self.units = (self.units + elapsed * self.per_ns).min(self.capacity);
        self.last = self.last.max(now);
    }

    fn has_token(&self) -> bool {
        self.units >= self.token
    }
}

/// A token bucket known within bounds.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    least: Bucket,
    most: Bucket,
}

impl Budget {
    /// A full bucket of `capacity` tokens, `per_period` back every `period`.
    pub fn full(now: Instant, capacity: u32, per_period: u32, period: Duration) -> Self {
        let bucket = Bucket::full(now, capacity, per_period, period);
        Self {
            least: bucket.clone(),
            most: bucket,
        }
    }

    /// The message rate of a connection opened at `now` under `limits`: `message_burst`
    /// tokens, `messages_per_second` back every second.
    pub fn rate(now: Instant, limits: &switchboard::Limits) -> Self {
        let second = Duration::from_secs(1);
        Self::full(
            now,
            limits.message_burst,
            limits.messages_per_second,
            second,
        )
    }

    /// The strikes of a connection opened at `now` under `limits`: `max_strikes`, one back
    /// every `strike_refill`.
    pub fn strikes(now: Instant, limits: &switchboard::Limits) -> Self {
        Self::full(now, limits.max_strikes, 1, limits.strike_refill)
    }

    /// A take at `now` by a follower that sees every take: whether a token was there (and is
    /// now gone). An error if the bounds do not decide it, which only a take it did not see
    /// can cause.
    pub fn take(&mut self, now: Instant) -> Result<bool, String> {
        let there = self
            .decides(now)
            .ok_or("a bucket whose every take was seen is undecided")?;
        self.took(now, there)?;
        Ok(there)
    }

    /// Whether a take at `now` must succeed (`Some(true)`), must fail (`Some(false)`), or may
    /// do either as far as the oracle knows (`None`).
    pub fn decides(&mut self, now: Instant) -> Option<bool> {
        self.least.advance(now);
        self.most.advance(now);
        if self.least.has_token() {
            Some(true)
        } else if !self.most.has_token() {
            Some(false)
        } else {
            None
        }
    }

    /// The hub's take at `now` succeeded (`took`) or failed; an error if the bounds say it
    /// could not have.
    pub fn took(&mut self, now: Instant, took: bool) -> Result<(), String> {
        let decided = self.decides(now);
        if decided.is_some_and(|d| d != took) {
            return Err(format!(
                "a take that must {} {}",
                if took { "fail" } else { "succeed" },
                if took { "succeeded" } else { "failed" }
            ));
        }
        let token = self.least.token;
        if took {
            self.least.units = self.least.units.saturating_sub(token);
            self.most.units -= token;
        } else {
            // Less than a token is left; the least stays (it is below one token already).
            self.most.units = self.most.units.min(token - 1);
        }
        Ok(())
    }

    /// A take at `now` that may or may not have happened (its outcome is not visible).
    pub fn may_have_taken(&mut self, now: Instant) {
        self.decides(now);
        self.least.units = self.least.units.saturating_sub(self.least.token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_decides_the_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = Budget::full(t0, 3, 2, Duration::from_secs(1));
        for _ in 0..3 {
            assert_eq!(b.decides(t0), Some(true));
            b.took(t0, true).unwrap();
        }
        assert_eq!(b.decides(t0), Some(false));
        assert!(b.took(t0, true).is_err(), "a take from an empty bucket");
        let half = t0 + Duration::from_millis(499);
        assert_eq!(b.decides(half), Some(false));
        assert_eq!(b.decides(t0 + Duration::from_millis(500)), Some(true));
    }

    #[test]
    fn fractions_of_a_token_add_up() {
        let t0 = Instant::now();
        let mut b = Budget::full(t0, 1, 1, Duration::from_secs(2));
        b.took(t0, true).unwrap();
        let mut t = t0;
        for _ in 0..3 {
            t += Duration::from_millis(666);
            assert_eq!(b.decides(t), Some(false));
        }
        assert_eq!(b.decides(t0 + Duration::from_secs(2)), Some(true));
    }

    #[test]
    fn a_follower_that_sees_every_take_knows_each_outcome() {
        let t0 = Instant::now();
        let mut b = Budget::full(t0, 2, 1, Duration::from_secs(1));
        assert_eq!(b.take(t0), Ok(true));
        assert_eq!(b.take(t0), Ok(true));
        assert_eq!(b.take(t0), Ok(false));
        assert_eq!(b.take(t0 + Duration::from_millis(999)), Ok(false));
        assert_eq!(b.take(t0 + Duration::from_secs(1)), Ok(true));
        let t2 = t0 + Duration::from_secs(2);
        b.may_have_taken(t2);
        assert!(
            b.take(t2).is_err(),
            "after an unseen take, the next is undecided"
        );
    }

    #[test]
    fn an_unseen_take_leaves_the_next_undecided_until_the_hub_shows_it() {
        let t0 = Instant::now();
        let mut b = Budget::full(t0, 1, 1, Duration::from_secs(1));
        b.may_have_taken(t0);
        assert_eq!(b.decides(t0), None);
        b.took(t0, false).unwrap();
        assert_eq!(b.decides(t0), Some(false));
        assert_eq!(b.decides(t0 + Duration::from_secs(1)), Some(true));
    }
}
