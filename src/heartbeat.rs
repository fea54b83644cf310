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
    fn record(&mut self, rtt: Duration) {
        self.last = Some(rtt);
        self.min = Some(self.min.map_or(rtt, |m| m.min(rtt)));
        self.max = Some(self.max.map_or(rtt, |m| m.max(rtt)));
        self.total += rtt;
        self.samples += 1;
    }

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

/// Heartbeat state of one connection.
#[derive(Debug, Clone)]
pub(crate) struct Heartbeat {
    last_seen: Instant,
    next_ping: Instant,
    outstanding: Option<(u64, Instant)>,
    pings_sent: u64,
    health: u8,
    liveness: Liveness,
    rtt: RttStats,
}

impl Heartbeat {
    pub fn new(now: Instant, config: &HeartbeatConfig) -> Self {
        Self {
            last_seen: now,
            next_ping: now + config.interval,
            outstanding: None,
            pings_sent: 0,
            health: 100,
            liveness: Liveness::Alive,
            rtt: RttStats::default(),
        }
    }

    pub fn health(&self) -> u8 {
        self.health
    }

    pub fn liveness(&self) -> Liveness {
        self.liveness
    }

    pub fn rtt(&self) -> RttStats {
        self.rtt
    }

    /// Any frame from the client. Returns true if this resurrected a dead connection.
    pub fn on_traffic(&mut self, now: Instant) -> bool {
        self.health = self.health.saturating_add(RECOVERY).min(100);
        self.seen(now)
    }

    /// A sign of life that does not count towards recovery (a late pong).
    fn seen(&mut self, now: Instant) -> bool {
        self.last_seen = now;
        let resurrected = matches!(self.liveness, Liveness::Dead { .. });
        self.liveness = Liveness::Alive;
        resurrected
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
        if let Some((nonce, sent)) = self.outstanding {
            if payload == nonce.to_be_bytes() {
                let rtt = now.saturating_duration_since(sent);
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
        if let Liveness::Dead { close_at } = self.liveness {
            if now >= close_at {
                tick.close = true;
                return tick;
            }
        } else if now >= self.last_seen + config.timeout {
            self.liveness = Liveness::Dead {
                close_at: now + config.grace,
            };
            self.health = 0;
            tick.died = true;
        }
        if now >= self.next_ping {
            if self.outstanding.is_some() {
                self.health = self.health.saturating_sub(MISSED_PONG_PENALTY);
                tick.missed_pong = true;
            }
            self.pings_sent += 1;
            self.outstanding = Some((self.pings_sent, now));
            self.next_ping = now + config.interval;
            tick.ping = Some(self.pings_sent);
        }
        tick
    }

    /// When [`Heartbeat::poll`] next has something to do.
    pub fn deadline(&self, config: &HeartbeatConfig) -> Instant {
        match self.liveness {
            Liveness::Dead { close_at } => close_at.min(self.next_ping),
            Liveness::Alive => (self.last_seen + config.timeout).min(self.next_ping),
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
