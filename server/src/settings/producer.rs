//! `[producer]`: the producer channel (`GET /api/producer`, see [`crate::producer`]): how many
//! events a channel may have read and not yet acknowledged, how often the server pings it, and
//! how long it may stay silent. `docs/OPERATIONS.md` lists each with its default.

use super::SettingsError;
use serde::Deserialize;
use std::time::Duration;

/// `[producer]` as written in the settings file. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProducerSettings {
    /// Acknowledgements a channel may have waiting to be written before the server stops
    /// reading it. Default 64.
    pub max_in_flight: Option<usize>,
    /// Seconds between the server's pings. Default 5.
    pub ping_interval_secs: Option<u64>,
    /// Seconds a channel may send nothing (not even a pong) or read no acknowledgement before
    /// the server counts it dead and closes it. Default 15.
    pub timeout_secs: Option<u64>,
    /// Bad frames a channel may send before it is closed (1008). Default 10.
    pub max_strikes: Option<u32>,
}

/// The producer channel's settings, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerLimits {
    /// Acknowledgements waiting to be written, per channel, before the server stops reading.
    pub max_in_flight: usize,
    /// Between two pings.
    pub ping_interval: Duration,
    /// Silence (or acknowledgements unread) after which a channel is dead.
    pub timeout: Duration,
    /// Bad frames before the channel closes.
    pub max_strikes: u32,
}

impl Default for ProducerLimits {
    fn default() -> Self {
        ProducerLimits {
            max_in_flight: 64,
            ping_interval: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
            max_strikes: 10,
        }
    }
}

impl ProducerLimits {
    /// The defaults, then `file`. At least one event in flight; the timeout must be longer
    /// than the ping interval (a live producer answers a ping within it).
    pub fn resolve(file: &ProducerSettings) -> Result<Self, SettingsError> {
        let d = ProducerLimits::default();
        let limits = ProducerLimits {
            max_in_flight: file.max_in_flight.unwrap_or(d.max_in_flight),
            ping_interval: file
                .ping_interval_secs
                .map_or(d.ping_interval, Duration::from_secs),
            timeout: file.timeout_secs.map_or(d.timeout, Duration::from_secs),
            max_strikes: file.max_strikes.unwrap_or(d.max_strikes),
        };
        if limits.max_in_flight == 0 {
            return Err(SettingsError::Invalid(
                "producer.max_in_flight must be at least 1".into(),
            ));
        }
        if limits.ping_interval.is_zero() || limits.timeout <= limits.ping_interval {
            return Err(SettingsError::Invalid(
                "producer.ping_interval_secs must be at least 1 and below producer.timeout_secs"
                    .into(),
            ));
        }
        Ok(limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<ProducerLimits, SettingsError> {
        ProducerLimits::resolve(&toml::from_str(toml).unwrap())
    }

    #[test]
    fn every_producer_setting_has_a_default_and_impossible_values_are_refused() {
        assert_eq!(parse("").unwrap(), ProducerLimits::default());
        let set = parse("max_in_flight = 2\nping_interval_secs = 1\ntimeout_secs = 3").unwrap();
        assert_eq!(
            (set.max_in_flight, set.ping_interval, set.timeout),
            (2, Duration::from_secs(1), Duration::from_secs(3))
        );
        assert!(parse("max_in_flight = 0").is_err());
        assert!(parse("ping_interval_secs = 0").is_err());
        assert!(parse("ping_interval_secs = 5\ntimeout_secs = 5").is_err());
    }
}
