//! `[redis]`: the Redis that joins this node to the others of a cluster, and how the node's
//! bridge uses it: the prefix of its keys and channels, its lease and heartbeat, its timeouts
//! and its reconnection backoff ([`RedisTuning`], applied to the bridge's
//! [`BridgeOptions`]). `docs/OPERATIONS.md` lists each key with its default; the defaults are
//! the bridge's own.

use super::SettingsError;
use crate::credentials::Secret;
use serde::Deserialize;
use std::time::Duration;
use switchboard_redis::{BadOptions, BridgeOptions, Timing};

/// `[redis]` as written in the settings file. Every key is optional; without a URL the server
/// is a single node and the other keys are still checked.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port/[db]`.
    pub url: Option<Secret>,
    /// Number user and room streams in Redis, with a shared history, so that every node
    /// delivers them in one order and a client resumes on any node. Default `true`.
    pub shared_streams: Option<bool>,
    /// The prefix of every key and channel of the cluster, so that several deployments can
    /// share one Redis. Default `sb`.
    pub prefix: Option<String>,
    /// Seconds a node's lease (its presence in the cluster) lasts without a heartbeat.
    /// Default 15.
    pub lease_secs: Option<u64>,
    /// Seconds between two heartbeats of the node (lease refreshed, presence re-announced);
    /// shorter than the lease. Default 5.
    pub heartbeat_secs: Option<u64>,
    /// Seconds a connection admitted by the cluster-wide per-user limit has to open. Default 10.
    pub admission_timeout_secs: Option<u64>,
    /// Milliseconds to connect to Redis, and for each answer of a Redis request. Default 2000.
    pub timeout_ms: Option<u64>,
    /// Milliseconds a client's `cancel` for a run on another node waits for the other nodes'
    /// verdicts before it is answered `backend_unavailable`. Default 2000.
    pub cancel_timeout_ms: Option<u64>,
    /// Milliseconds of the first wait before reconnecting to Redis; it doubles after each
    /// failure. Default 100.
    pub backoff_ms: Option<u64>,
    /// Milliseconds of the longest wait between two reconnection attempts. Default 5000.
    pub max_backoff_ms: Option<u64>,
}

/// How the node's bridge uses Redis, resolved from `[redis]` and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTuning {
    /// The prefix of every key and channel.
    pub prefix: String,
    /// How long a node's lease lasts without a heartbeat.
    pub lease: Duration,
    /// Between two heartbeats; shorter than the lease.
    pub heartbeat: Duration,
    /// How long an admitted connection has to open.
    pub admission_timeout: Duration,
    /// The connection and answer timeout of Redis requests.
    pub timeout: Duration,
    /// How long a cross-node cancel waits for verdicts.
    pub cancel_timeout: Duration,
    /// The first wait before reconnecting.
    pub backoff_min: Duration,
    /// The longest wait between reconnection attempts; at least `backoff_min`.
    pub backoff_max: Duration,
}

impl Default for RedisTuning {
    /// The bridge's own defaults.
    fn default() -> Self {
        let o = BridgeOptions::new("");
        RedisTuning {
            prefix: o.prefix,
            lease: o.lease,
            heartbeat: o.heartbeat,
            admission_timeout: o.admission_timeout,
            timeout: o.timeout,
            cancel_timeout: o.cancel_timeout,
            backoff_min: o.backoff_min,
            backoff_max: o.backoff_max,
        }
    }
}

impl RedisTuning {
    /// The defaults, then `file`, then `prefix` from the command line or the environment,
    /// refused as the bridge refuses them ([`BridgeOptions::check`]), with the key to change.
    pub fn resolve(file: &RedisSettings, prefix: Option<String>) -> Result<Self, SettingsError> {
        let d = RedisTuning::default();
        let secs = |value: Option<u64>, default| value.map_or(default, Duration::from_secs);
        let ms = |value: Option<u64>, default| value.map_or(default, Duration::from_millis);
        let tuning = RedisTuning {
            prefix: prefix.or_else(|| file.prefix.clone()).unwrap_or(d.prefix),
            lease: secs(file.lease_secs, d.lease),
            heartbeat: secs(file.heartbeat_secs, d.heartbeat),
            admission_timeout: secs(file.admission_timeout_secs, d.admission_timeout),
            timeout: ms(file.timeout_ms, d.timeout),
            cancel_timeout: ms(file.cancel_timeout_ms, d.cancel_timeout),
            backoff_min: ms(file.backoff_ms, d.backoff_min),
            backoff_max: ms(file.max_backoff_ms, d.backoff_max),
        };
        let mut options = BridgeOptions::new("");
        tuning.apply(&mut options);
        options
            .check()
            .map_err(|bad| SettingsError::Invalid(format!("redis.{}", refusal(&bad))))?;
        Ok(tuning)
    }

    /// Set these on `options`.
    pub fn apply(&self, options: &mut BridgeOptions) {
        options.prefix = self.prefix.clone();
        options.lease = self.lease;
        options.heartbeat = self.heartbeat;
        options.admission_timeout = self.admission_timeout;
        options.timeout = self.timeout;
        options.cancel_timeout = self.cancel_timeout;
        options.backoff_min = self.backoff_min;
        options.backoff_max = self.backoff_max;
    }
}

/// What is wrong, in the settings' words: the key to change, in its unit.
fn refusal(bad: &BadOptions) -> String {
    match bad {
        BadOptions::Prefix { prefix, why } => format!("prefix {prefix:?} {why}"),
        BadOptions::Zero(timing) => format!("{} must be at least 1", key(*timing)),
        BadOptions::HeartbeatNotShorterThanLease => {
            "heartbeat_secs must be shorter than redis.lease_secs".into()
        }
        BadOptions::BackoffAboveMax => "backoff_ms must not exceed redis.max_backoff_ms".into(),
    }
}

/// The `[redis]` key of a duration of the bridge.
fn key(timing: Timing) -> &'static str {
    match timing {
        Timing::Lease => "lease_secs",
        Timing::Heartbeat => "heartbeat_secs",
        Timing::AdmissionTimeout => "admission_timeout_secs",
        Timing::Timeout => "timeout_ms",
        Timing::CancelTimeout => "cancel_timeout_ms",
        Timing::BackoffMin => "backoff_ms",
        Timing::BackoffMax => "max_backoff_ms",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RedisTuning, SettingsError> {
        RedisTuning::resolve(&toml::from_str(text).expect("valid TOML"), None)
    }

    #[test]
    fn the_defaults_are_the_bridges_own() {
        let tuning = parse("").unwrap();
        let mut options = BridgeOptions::new("redis://127.0.0.1:6379/");
        let before = options.clone();
        tuning.apply(&mut options);
        assert_eq!(options, before);
        assert_eq!(tuning.prefix, "sb");
        assert_eq!(tuning.lease, Duration::from_secs(15));
    }

    #[test]
    fn every_key_is_read_and_applied() {
        let tuning = parse(
            "prefix = \"staging\"
lease_secs = 30
heartbeat_secs = 10
admission_timeout_secs = 20
timeout_ms = 500
cancel_timeout_ms = 1500
backoff_ms = 50
max_backoff_ms = 2000",
        )
        .unwrap();
        let mut options = BridgeOptions::new("redis://127.0.0.1:6379/");
        tuning.apply(&mut options);
        let (s, ms) = (Duration::from_secs, Duration::from_millis);
        assert_eq!(options.prefix, "staging");
        assert_eq!(
            (options.lease, options.heartbeat, options.admission_timeout),
            (s(30), s(10), s(20))
        );
        assert_eq!(
            (options.timeout, options.cancel_timeout),
            (ms(500), ms(1500))
        );
        assert_eq!(
            (options.backoff_min, options.backoff_max),
            (ms(50), ms(2000))
        );
    }

    #[test]
    fn the_prefix_from_the_environment_wins_over_the_file() {
        let file = toml::from_str("prefix = \"file\"").unwrap();
        let tuning = RedisTuning::resolve(&file, Some("env".into())).unwrap();
        assert_eq!(tuning.prefix, "env");
        let bad = RedisTuning::resolve(&file, Some("a:b".into()));
        assert!(bad.is_err(), "the environment's prefix is checked too");
    }

    /// The file's `[redis]` and `--redis-prefix` reach the server's settings, and nonsense stops
    /// the start even without a URL.
    #[test]
    fn the_server_settings_carry_the_tuning_and_the_prefix_from_the_environment() {
        use crate::settings::{FileSettings, Overrides, Settings};
        let file: FileSettings = toml::from_str(
            "[redis]\nurl = \"redis://h:6379/\"\nprefix = \"file\"\nlease_secs = 30",
        )
        .unwrap();
        let overrides = Overrides {
            redis_prefix: Some("env".into()),
            ..Overrides::default()
        };
        let s = Settings::resolve(file, &overrides).unwrap();
        assert_eq!(
            (s.redis.prefix.as_str(), s.redis.lease),
            ("env", Duration::from_secs(30))
        );
        let alone: FileSettings = toml::from_str("[redis]\ntimeout_ms = 0").unwrap();
        assert!(Settings::resolve(alone, &Overrides::default()).is_err());
    }

    #[test]
    fn nonsense_is_refused_with_its_key() {
        for (text, key) in [
            ("prefix = \"\"", "redis.prefix"),
            ("prefix = \"sb:room\"", "redis.prefix"),
            ("prefix = \"sb*\"", "redis.prefix"),
            ("lease_secs = 0", "redis.lease_secs"),
            ("heartbeat_secs = 0", "redis.heartbeat_secs"),
            ("admission_timeout_secs = 0", "redis.admission_timeout_secs"),
            ("timeout_ms = 0", "redis.timeout_ms"),
            ("cancel_timeout_ms = 0", "redis.cancel_timeout_ms"),
            ("backoff_ms = 0", "redis.backoff_ms"),
            ("max_backoff_ms = 0", "redis.max_backoff_ms"),
            ("heartbeat_secs = 15", "redis.heartbeat_secs"),
            ("lease_secs = 4", "redis.heartbeat_secs"),
            ("backoff_ms = 6000", "redis.backoff_ms"),
            ("backoff_ms = 300\nmax_backoff_ms = 200", "redis.backoff_ms"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(matches!(e, SettingsError::Invalid(_)), "{text}: {e}");
            assert!(e.to_string().contains(key), "{text}: {e}");
        }
        assert!(toml::from_str::<RedisSettings>("lease = \"15s\"").is_err());
    }
}
