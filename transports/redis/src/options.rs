//! [`BridgeOptions`]: how a node joins the cluster, and what [`BridgeOptions::check`] refuses
//! in them ([`BadOptions`]).

use crate::keys::Keys;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use switchboard::{Config, HistoryConfig};

/// How a node joins the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct BridgeOptions {
    /// The Redis URL, e.g. `redis://127.0.0.1:6379/`.
    pub url: String,
    /// This node's id, unique in the cluster. Default: the process id, the time, and a
    /// counter (unique even for several nodes in one process).
    pub node: String,
    /// The prefix of every channel and key. Default `sb`.
    pub prefix: String,
    /// How long a node's presence lasts without a heartbeat. Default 15 s.
    pub lease: Duration,
    /// How often the node refreshes its lease and re-announces its presence. Default 5 s.
    pub heartbeat: Duration,
    /// The per-user connection limit across the cluster (`None`: only each hub's own). A
    /// connection refused by [`Bridge::admit`](crate::Bridge::admit) never opens; one that
    /// opens without admission over the limit is closed with 4003 (after its `welcome`).
    pub max_connections_per_user: Option<usize>,
    /// How long an admitted connection (see [`Bridge::admit`](crate::Bridge::admit)) has to
    /// open on this node: its reservation is dropped at the first heartbeat after that, and
    /// no longer counts. Default 10 s.
    pub admission_timeout: Duration,
    /// The connection and response timeout of Redis requests. Default 2 s.
    pub timeout: Duration,
    /// How long a node waits for the other nodes' verdicts on a client's `cancel` for a run
    /// it does not have in progress (`cancels.rs`): past it, with no node having answered for
    /// the run, the client hears `backend_unavailable`. Default 2 s.
    pub cancel_timeout: Duration,
    /// The first wait before reconnecting to Redis; it doubles after each failure. Default
    /// 100 ms.
    pub backoff_min: Duration,
    /// The largest wait between two reconnection attempts. Default 5 s.
    pub backoff_max: Duration,
    /// The bounds of each stream's shared history: pass the hubs' own
    /// (`Config::history`), so that Redis keeps what a node keeps and a node loads only what
    /// it keeps. The sequencer drops the oldest entries beyond `max_messages`, beyond
    /// `max_bytes` of frame bytes (the bytes a hub counts), and older than `max_age`, when
    /// it appends; a history read drops those older than this node's `max_age` and returns,
    /// newest first, at most this node's `max_messages` and `max_bytes`. A stream's keys
    /// (its numbering included) outlive its last entry by `max_age`. Default:
    /// `HistoryConfig`'s defaults (1000 messages, 1 MiB, 10 minutes).
    pub history: HistoryConfig,
}

impl BridgeOptions {
    /// Default options for the Redis at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Self {
            url: url.into(),
            node: format!("{}-{started}-{}", std::process::id(), next_local_id()),
            prefix: "sb".to_owned(),
            lease: Duration::from_secs(15),
            heartbeat: Duration::from_secs(5),
            max_connections_per_user: None,
            admission_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            cancel_timeout: Duration::from_secs(2),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            history: Config::default().history,
        }
    }

    /// Whether these options make a working node: a prefix [`Keys::check_prefix`] accepts,
    /// no zero duration, a heartbeat shorter than the lease, and a first backoff no longer
    /// than the longest. [`Bridge::start`](crate::Bridge::start) refuses options that fail it.
    pub fn check(&self) -> Result<(), BadOptions> {
        Keys::check_prefix(&self.prefix).map_err(|why| BadOptions::Prefix {
            prefix: self.prefix.clone(),
            why,
        })?;
        let timings = [
            (Timing::Lease, self.lease),
            (Timing::Heartbeat, self.heartbeat),
            (Timing::AdmissionTimeout, self.admission_timeout),
            (Timing::Timeout, self.timeout),
            (Timing::CancelTimeout, self.cancel_timeout),
            (Timing::BackoffMin, self.backoff_min),
            (Timing::BackoffMax, self.backoff_max),
        ];
        if let Some((timing, _)) = timings.into_iter().find(|(_, d)| d.is_zero()) {
            return Err(BadOptions::Zero(timing));
        }
        // A lease that runs out between two heartbeats makes a live node look dead to the
        // others (its users' presence and room memberships swept).
        if self.heartbeat >= self.lease {
            return Err(BadOptions::HeartbeatNotShorterThanLease);
        }
        if self.backoff_min > self.backoff_max {
            return Err(BadOptions::BackoffAboveMax);
        }
        Ok(())
    }
}

/// One of the durations of [`BridgeOptions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// [`BridgeOptions::lease`].
    Lease,
    /// [`BridgeOptions::heartbeat`].
    Heartbeat,
    /// [`BridgeOptions::admission_timeout`].
    AdmissionTimeout,
    /// [`BridgeOptions::timeout`].
    Timeout,
    /// [`BridgeOptions::cancel_timeout`].
    CancelTimeout,
    /// [`BridgeOptions::backoff_min`].
    BackoffMin,
    /// [`BridgeOptions::backoff_max`].
    BackoffMax,
}

impl Timing {
    /// The field's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Timing::Lease => "lease",
            Timing::Heartbeat => "heartbeat",
            Timing::AdmissionTimeout => "admission_timeout",
            Timing::Timeout => "timeout",
            Timing::CancelTimeout => "cancel_timeout",
            Timing::BackoffMin => "backoff_min",
            Timing::BackoffMax => "backoff_max",
        }
    }
}

/// What [`BridgeOptions::check`] refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadOptions {
    /// The prefix, and why it is refused ([`Keys::check_prefix`]).
    Prefix {
        /// The prefix.
        prefix: String,
        /// Why not.
        why: String,
    },
    /// A duration that is zero.
    Zero(Timing),
    /// The heartbeat is not shorter than the lease.
    HeartbeatNotShorterThanLease,
    /// The first backoff is longer than the longest.
    BackoffAboveMax,
}

impl fmt::Display for BadOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadOptions::Prefix { prefix, why } => write!(f, "prefix {prefix:?} {why}"),
            BadOptions::Zero(timing) => write!(f, "{} must not be zero", timing.as_str()),
            BadOptions::HeartbeatNotShorterThanLease => {
                f.write_str("heartbeat must be shorter than lease")
            }
            BadOptions::BackoffAboveMax => f.write_str("backoff_min must not exceed backoff_max"),
        }
    }
}

impl std::error::Error for BadOptions {}

/// The time in milliseconds since the Unix epoch: the epoch of a stream numbered anew.
pub(crate) fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A number unique within this process.
fn next_local_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_make_a_working_node() {
        assert_eq!(BridgeOptions::new("redis://h/").check(), Ok(()));
    }

    #[test]
    fn nonsense_is_refused_with_what_is_wrong() {
        let refused = |change: fn(&mut BridgeOptions)| {
            let mut options = BridgeOptions::new("redis://h/");
            change(&mut options);
            options.check().unwrap_err()
        };
        assert_eq!(
            refused(|o| o.prefix = "a:b".into()).to_string(),
            "prefix \"a:b\" may hold only ASCII letters, digits, '-', '_' and '.', not ':'"
        );
        assert!(matches!(
            refused(|o| o.prefix = String::new()),
            BadOptions::Prefix { .. }
        ));
        assert_eq!(
            refused(|o| o.timeout = Duration::ZERO),
            BadOptions::Zero(Timing::Timeout)
        );
        // A zero lease is named as such, not as a heartbeat longer than it.
        assert_eq!(
            refused(|o| o.lease = Duration::ZERO),
            BadOptions::Zero(Timing::Lease)
        );
        assert_eq!(
            refused(|o| o.heartbeat = o.lease),
            BadOptions::HeartbeatNotShorterThanLease
        );
        assert_eq!(
            refused(|o| o.backoff_min = o.backoff_max + Duration::from_millis(1)),
            BadOptions::BackoffAboveMax
        );
    }
}
