//! Liveness of one connection: ping schedule, pong round-trip times, a 0–100 health score,
//! death after the timeout and resurrection within the grace.
//!
//! A connection is pinged every `interval`. Any frame or pong from it is "traffic". Silence
//! for `timeout` marks it dead; a dead connection that shows traffic before `grace` runs out
//! is resurrected, otherwise the hub closes it with 4000. Health starts at 100, falls by 25 for
//! each missed pong and by 10 for each late one, and recovers by 5 with each sign of life.

use crate::config::HeartbeatConfig;
use std::time::{Duration, Instant};

const MISSED_PONG_PENALTY: u8 = 25;
const LATE_PONG_PENALTY: u8 = 10;
const RECOVERY: u8 = 5;

/// Round-trip time statistics of one connection's pongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RttStats {
    /// The most recent round trip.
    pub last: Option<Duration>,
    /// The fastest round trip.
    pub min: Option<Duration>,
    /// The slowest round trip.
    pub max: Option<Duration>,
    /// Sum of all round trips (for the average).
    pub total: Duration,
    /// Number of pongs measured.
    pub samples: u32,
}

impl RttStats {
    /// The mean round trip, if any pong was measured.
    pub fn average(&self) -> Option<Duration> {
        (self.samples > 0).then(|| self.total / self.samples)
    }
}

/// Whether the connection is considered alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Traffic within the timeout.
    Alive,
    /// Silent past the timeout; closed at `close_at` unless it shows life first.
    Dead {
        /// When the hub closes the connection.
        close_at: Instant,
    },
}

/// What a heartbeat tick asks of the hub.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Tick {
    /// Send a ping with this payload.
    pub ping: Option<u64>,
    /// The connection just died (silent past the timeout).
    pub died: bool,
    /// The grace ran out: close the connection.
    pub close: bool,
    /// A ping went unanswered.
    pub missed_pong: bool,
}

/// An instant, as signed nanoseconds from the connection's open ([`Heartbeat::opened_at`]):
/// 8 bytes instead of the 16 of an `Instant`, and exact for ±292 years around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct At(i64);

impl At {
    fn of(base: Instant, t: Instant) -> Self {
        match t.checked_duration_since(base) {
            Some(after) => At(after.as_nanos() as i64),
            None => At(-(base.duration_since(t).as_nanos() as i64)),
        }
    }

    fn instant(self, base: Instant) -> Instant {
        match u64::try_from(self.0) {
            Ok(after) => base + Duration::from_nanos(after),
            Err(_) => base - Duration::from_nanos(self.0.unsigned_abs()),
        }
    }
}

/// Round-trip statistics in nanoseconds; `last`, `min` and `max` mean something once
/// `samples` > 0. Converted to [`RttStats`] on demand.
#[derive(Debug, Clone, Copy, Default)]
struct Rtt {
    last: u64,
    min: u64,
    max: u64,
    total: u64,
    samples: u32,
}

impl Rtt {
    fn record(&mut self, rtt: Duration) {
        let rtt = rtt.as_nanos() as u64;
        let first = self.samples == 0;
        self.last = rtt;
        self.min = if first { rtt } else { self.min.min(rtt) };
        self.max = if first { rtt } else { self.max.max(rtt) };
        self.total = self.total.saturating_add(rtt);
        self.samples += 1;
    }

    fn stats(&self) -> RttStats {
        let some = |nanos: u64| (self.samples > 0).then(|| Duration::from_nanos(nanos));
        RttStats {
            last: some(self.last),
            min: some(self.min),
            max: some(self.max),
            total: Duration::from_nanos(self.total),
            samples: self.samples,
        }
    }
}

/// Heartbeat state of one connection.
///
/// Instants are kept as offsets from `opened_at` ([`At`]) and round trips in nanoseconds: 120
/// bytes per connection instead of 160 (plus the 16 of a separate open time), for the same
/// behaviour.
#[derive(Debug, Clone)]
pub(crate) struct Heartbeat {
    opened_at: Instant,
    last_seen: At,
    next_ping: At,
    /// When ping number `pings_sent` was sent, while it is unanswered.
    outstanding: Option<At>,
    pings_sent: u64,
    /// Dead, to be closed at this instant; `None` while alive.
    close_at: Option<At>,
    health: u8,
    rtt: Rtt,
}

impl Heartbeat {
    pub fn new(now: Instant, config: &HeartbeatConfig) -> Self {
        Self {
            opened_at: now,
            last_seen: At(0),
            next_ping: At::of(now, now + config.interval),
            outstanding: None,
            pings_sent: 0,
            close_at: None,
            health: 100,
            rtt: Rtt::default(),
        }
    }

    fn at(&self, t: Instant) -> At {
        At::of(self.opened_at, t)
    }

    fn instant(&self, at: At) -> Instant {
        at.instant(self.opened_at)
    }

    /// When the connection opened (the `now` it was created with).
    pub fn opened_at(&self) -> Instant {
        self.opened_at
    }

    pub fn health(&self) -> u8 {
        self.health
    }

    pub fn liveness(&self) -> Liveness {
        match self.close_at {
            None => Liveness::Alive,
            Some(close_at) => Liveness::Dead {
                close_at: self.instant(close_at),
            },
        }
    }

    pub fn rtt(&self) -> RttStats {
        self.rtt.stats()
    }

    /// Any frame from the client. Returns true if this resurrected a dead connection.
    pub fn on_traffic(&mut self, now: Instant) -> bool {
        self.health = self.health.saturating_add(RECOVERY).min(100);
        self.seen(now)
    }

    /// A sign of life that does not count towards recovery (a late pong).
    fn seen(&mut self, now: Instant) -> bool {
        self.last_seen = self.at(now);
        self.close_at.take().is_some()
    }

    /// A pong with `payload`. Returns the measured round trip (if it answers our ping) and
    /// whether this resurrected the connection.
    pub fn on_pong(
        &mut self,
        now: Instant,
        payload: &[u8],
        config: &HeartbeatConfig,
    ) -> (Option<Duration>, bool) {
        let mut measured = None;
        if let Some(sent) = self.outstanding {
            if payload == self.pings_sent.to_be_bytes() {
                let rtt = now.saturating_duration_since(self.instant(sent));
                self.rtt.record(rtt);
                self.outstanding = None;
                measured = Some(rtt);
            }
        }
        let resurrected = match measured {
            Some(rtt) if rtt > config.late_pong => {
                self.health = self.health.saturating_sub(LATE_PONG_PENALTY);
                self.seen(now)
            }
            _ => self.on_traffic(now),
        };
        (measured, resurrected)
    }

    /// Advance to `now`: ping if due, die if silent, ask for the close if the grace is over.
    pub fn poll(&mut self, now: Instant, config: &HeartbeatConfig) -> Tick {
        let mut tick = Tick::default();
        if let Some(close_at) = self.close_at {
            if now >= self.instant(close_at) {
                tick.close = true;
                return tick;
            }
        } else if now >= self.instant(self.last_seen) + config.timeout {
            self.close_at = Some(self.at(now + config.grace));
            self.health = 0;
            tick.died = true;
        }
        if now >= self.instant(self.next_ping) {
            if self.outstanding.is_some() {
                self.health = self.health.saturating_sub(MISSED_PONG_PENALTY);
                tick.missed_pong = true;
            }
            self.pings_sent += 1;
            self.outstanding = Some(self.at(now));
            self.next_ping = self.at(now + config.interval);
            tick.ping = Some(self.pings_sent);
        }
        tick
    }

    /// When [`Heartbeat::poll`] next has something to do.
    pub fn deadline(&self, config: &HeartbeatConfig) -> Instant {
        let next_ping = self.instant(self.next_ping);
        match self.close_at {
            Some(close_at) => self.instant(close_at).min(next_ping),
            None => (self.instant(self.last_seen) + config.timeout).min(next_ping),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> HeartbeatConfig {
        HeartbeatConfig {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            grace: Duration::from_secs(10),
            late_pong: Duration::from_secs(1),
        }
    }

    /// An instant kept as an offset from the open time comes back exactly, before or after it.
    #[test]
    fn an_instant_round_trips_through_its_offset() {
        let base = Instant::now() + Duration::from_secs(3600);
        for t in [
            base,
            base + Duration::from_nanos(1),
            base + Duration::from_secs(86_400 * 365),
            base - Duration::from_nanos(1),
            base - Duration::from_secs(3599),
        ] {
            assert_eq!(At::of(base, t).instant(base), t);
        }
    }

    #[test]
    fn pings_on_schedule_and_measures_rtt() {
        let c = config();
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(t0, &c);
        assert_eq!(hb.deadline(&c), t0 + c.interval);
        let tick = hb.poll(t0 + c.interval, &c);
        let nonce = tick.ping.unwrap();
        let (rtt, _) = hb.on_pong(
            t0 + c.interval + Duration::from_millis(40),
            &nonce.to_be_bytes(),
            &c,
        );
        assert_eq!(rtt, Some(Duration::from_millis(40)));
        assert_eq!(hb.rtt().samples, 1);
        assert_eq!(hb.health(), 100);
    }

    #[test]
    fn a_wrong_pong_payload_measures_nothing() {
        let c = config();
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(t0, &c);
        hb.poll(t0 + c.interval, &c);
        let (rtt, _) = hb.on_pong(t0 + c.interval, b"nonsense", &c);
        assert_eq!(rtt, None);
    }

    #[test]
    fn silence_kills_then_grace_closes() {
        let c = config();
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(t0, &c);
        let mut t = t0;
        let mut missed = 0;
        while hb.liveness() == Liveness::Alive {
            t = hb.deadline(&c);
            let tick = hb.poll(t, &c);
            missed += usize::from(tick.missed_pong);
        }
        assert_eq!(t, t0 + c.timeout);
        assert_eq!(hb.health(), 0);
        assert!(missed >= 1);
        let t = hb.deadline(&c).max(t + c.grace);
        assert!(hb.poll(t, &c).close);
    }

    #[test]
    fn a_dead_connection_that_answers_is_resurrected() {
        let c = config();
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(t0, &c);
        hb.poll(t0 + c.timeout, &c);
        assert!(matches!(hb.liveness(), Liveness::Dead { .. }));
        assert!(hb.on_traffic(t0 + c.timeout + Duration::from_secs(1)));
        assert_eq!(hb.liveness(), Liveness::Alive);
        assert!(hb.health() > 0);
    }

    #[test]
    fn late_pongs_lower_health() {
        let c = config();
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(t0, &c);
        let nonce = hb.poll(t0 + c.interval, &c).ping.unwrap();
        hb.on_pong(
            t0 + c.interval + Duration::from_secs(3),
            &nonce.to_be_bytes(),
            &c,
        );
        assert_eq!(
            hb.health(),
            100 - LATE_PONG_PENALTY,
            "no recovery for a late pong"
        );
    }
}
