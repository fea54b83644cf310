//! Configuration: every limit, timer and policy of a [`Hub`](crate::Hub), with presets.
//!
//! Each field documents its default. The three presets differ in heartbeat timing (45 s,
//! 90 s and 75 s timeouts for development, staging and production) and in capacity.

use crate::presence::PresenceConfig;
use std::time::Duration;

/// Everything a [`Hub`](crate::Hub) can be tuned with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Connection, room, frame and rate limits.
    pub limits: Limits,
    /// Ping schedule, timeouts and health scoring.
    pub heartbeat: HeartbeatConfig,
    /// Backpressure budgets and queue limits.
    pub backpressure: BackpressureConfig,
    /// Stream history bounds (resume and offline buffering).
    pub history: HistoryConfig,
    /// When a connection whose token expires ([`Open::expires_at`](crate::Open::expires_at)) is
    /// asked for a fresh one, and how long after the expiry it is closed without one.
    pub tokens: TokenConfig,
    /// Which rooms tell their members who comes and goes, and the largest room that does
    /// (default: rooms whose joins ask, up to 1000 users).
    pub presence: PresenceConfig,
    /// How often idle state is swept (expired history, idle runs). Default 5 s.
    pub cleanup_interval: Duration,
    /// An agent run with no event for this long ends with `producer_lost`. Default 10 min.
    pub run_idle_timeout: Duration,
    /// How long the report of an ended run stays queryable. Default 5 min.
    pub run_retention: Duration,
    /// Reports of ended runs a hub keeps at most: past it, the run that ended first is
    /// forgotten before its `run_retention` is up, so that runs started and ended in a burst
    /// cannot grow the hub without bound. Default 10 000.
    pub max_ended_runs: usize,
    /// Client frame types handed to the application as [`Notice::App`](crate::Notice::App)
    /// instead of being rejected as unknown. Default: none.
    pub app_frame_types: Vec<String>,
    /// Emit [`ClusterOutput::Envelope`](crate::ClusterOutput::Envelope)s for publishes that other hubs
    /// (the other shards of a process, or other nodes) may have to serve: the application's
    /// publishes to users, threads, rooms and everyone, and clients' room `publish` frames.
    /// Envelopes fed back with [`ClusterInput::Envelope`](crate::ClusterInput::Envelope) are not
    /// sent on again.
    /// Default `false` (a single hub).
    pub cluster: bool,
    /// Let the cluster's sequencer number the user and room streams: every reliable entry of
    /// one (the application's publishes to users, threads and rooms, clients' room `publish`
    /// frames, agent run events) goes out as a [`ClusterOutput::Sequence`](crate::ClusterOutput::Sequence)
    /// and is delivered when it comes back sealed through
    /// [`ClusterInput::Sequenced`](crate::ClusterInput::Sequenced), on this hub as on every other one
    /// serving the stream. See [`Unsequenced`](crate::Unsequenced). Default `false` (the hub
    /// numbers its streams).
    pub shared_streams: bool,
    /// The first stream epoch this hub hands out. Streams created later get larger epochs.
    /// Pass something that differs across restarts (e.g. the start time in milliseconds) so a
    /// client can tell that history was lost. Default 1.
    pub epoch_base: u64,
    /// Which hub of a process this is, when a transport shards connections over several
    /// hubs. Stamped into every [`ConnId`](crate::ConnId) it issues, so ids stay unique across
    /// the hubs and a transport can route an id to its hub; an id of another shard is unknown
    /// here. Default 0.
    pub shard: u8,
}

/// What happens when a user opens one connection more than `max_connections_per_user`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserLimitPolicy {
    /// The new connection is refused with close code 4003.
    RejectNew,
    /// The user's oldest connection is closed with close code 4001 and the new one opens.
    EvictOldest,
}

/// Capacity and abuse limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Open connections of one user. Default 3.
    pub max_connections_per_user: usize,
    /// Policy when a user is at `max_connections_per_user`. Default `RejectNew`.
    pub user_limit_policy: UserLimitPolicy,
    /// Open connections in the hub. Development 100, staging 10 000, production 100 000.
    pub max_connections: usize,
    /// Rooms one connection may be in. Default 64.
    pub max_rooms_per_connection: usize,
    /// Members of one room. Default 100 000.
    pub max_members_per_room: usize,
    /// Largest client frame accepted, in bytes; larger closes with 1009. Default 64 KiB.
    pub max_frame_bytes: usize,
    /// Sustained client frames per second. Default 50.
    pub messages_per_second: u32,
    /// Client frames allowed in a burst above the sustained rate. Default 100.
    pub message_burst: u32,
    /// Bad frames (malformed, unknown type, over rate, forbidden) tolerated before the
    /// connection is closed with 1008 (or 4029 for a flood). Refills one per
    /// `strike_refill`. Default 10.
    pub max_strikes: u32,
    /// How fast one strike is forgiven. Default 6 s.
    pub strike_refill: Duration,
    /// Agent runs of one user in progress at once; a new run past it is refused with
    /// [`PublishError::TooManyRuns`](crate::PublishError::TooManyRuns). Default 100.
    pub max_active_runs_per_user: usize,
    /// Agent runs in progress in the hub (per shard, like `max_connections`); a new run past
    /// it is refused the same way. Development 100, staging 10 000, production 100 000.
    pub max_active_runs: usize,
    /// The flush window of an agent message's deltas to a reader that keeps up: the first
    /// delta of a message goes out at once, those that follow within the window go out
    /// together, joined into one frame, when it closes (or at once with the message's `final`
    /// delta, a run's end or any other frame to the connection). Zero sends every delta at
    /// once. Default 40 ms.
    pub message_flush: Duration,
}

/// Ping schedule and liveness.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatConfig {
    /// Time between pings to a connection.
    pub interval: Duration,
    /// A connection silent (no frame, no pong) this long is marked dead.
    pub timeout: Duration,
    /// A dead connection that shows life within this grace is resurrected; otherwise it is
    /// closed with 4000 when the grace ends.
    pub grace: Duration,
    /// A pong slower than this counts as late and lowers the health score.
    pub late_pong: Duration,
}

/// Per-connection outbound budgets.
#[derive(Debug, Clone, PartialEq)]
pub struct BackpressureConfig {
    /// Bytes handed to the transport and not yet reported flushed, per connection, before
    /// the hub starts queueing. Default 256 KiB.
    pub inflight_bytes: usize,
    /// Messages queued for one connection past its in-flight budget. Default 1024.
    pub queue_messages: usize,
    /// Bytes queued for one connection past its in-flight budget. Default 1 MiB.
    pub queue_bytes: usize,
    /// Replayed frames (catch-up from history: on open, `join` with `since`, `resume`, `bind`)
    /// queued for one connection past its in-flight budget. A replay is exempt from
    /// `queue_messages` and `queue_bytes`, so that a long catch-up is not a slow consumer; this
    /// bounds it instead (a client that joins, leaves and joins again with `since` without
    /// reading would otherwise queue history without end). Past it the connection is closed
    /// as a slow consumer (4008). Default: what one catch-up of the user stream and
    /// `max_rooms_per_connection` full rooms holds, (1 + 64) × `history.max_messages` = 65 000.
    pub replay_messages: usize,
}

impl BackpressureConfig {
    /// The default `replay_messages`: one full history for the user stream and for each room
    /// a connection may be in.
    pub fn replay_messages_for(limits: &Limits, history: &HistoryConfig) -> usize {
        (limits.max_rooms_per_connection.saturating_add(1)).saturating_mul(history.max_messages)
    }
}

/// Bounds of each stream's history, kept for resume and for offline users.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryConfig {
    /// Messages kept per stream. Default 1000.
    pub max_messages: usize,
    /// Bytes kept per stream. Default 1 MiB.
    pub max_bytes: usize,
    /// Age after which a message leaves history. Default 10 min.
    pub max_age: Duration,
    /// Age after which a message leaves the history of a room that has no member (here):
    /// nobody is left to resume it but a member that drops and comes back. Default 1 min.
    pub empty_room_max_age: Duration,
    /// Frame bytes kept in the histories of all the hub's streams together. Past it, the
    /// streams that went longest without a new entry lose their oldest entries first (readers
    /// behind them get a `history` gap, pending entries are announced as lost). Default
    /// 256 MiB. A transport that runs several hubs in one process divides it among them
    /// (`switchboard-transport`'s `Builder` gives each of N shards 1/N), so that it bounds the
    /// process.
    pub max_total_bytes: usize,
}

/// The lifetime of the tokens connections opened with: when the hub asks a client for a fresh
/// token (a `refresh` frame) and when it closes a connection that brought none (4005).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenConfig {
    /// How long before its token expires a connection is sent `refresh`; a token that lives
    /// less than this is asked for at half its remaining life. Default 60 s.
    pub refresh_ahead: Duration,
    /// How long after its token expired a connection without a fresh one is closed with 4005
    /// (the clock skew allowed between the token's issuer and the hub's clock). Default 0.
    pub leeway: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self::production()
    }
}

impl Config {
    fn with(heartbeat_interval: u64, heartbeat_timeout: u64, max_connections: usize) -> Self {
        let interval = Duration::from_secs(heartbeat_interval);
        let limits = Limits {
            max_connections_per_user: 3,
            user_limit_policy: UserLimitPolicy::RejectNew,
            max_connections,
            max_rooms_per_connection: 64,
            max_members_per_room: 100_000,
            max_frame_bytes: 64 * 1024,
            messages_per_second: 50,
            message_burst: 100,
            max_strikes: 10,
            strike_refill: Duration::from_secs(6),
            max_active_runs_per_user: 100,
            max_active_runs: max_connections,
            message_flush: Duration::from_millis(40),
        };
        let history = HistoryConfig {
            max_messages: 1000,
            max_bytes: 1024 * 1024,
            max_age: Duration::from_secs(600),
            empty_room_max_age: Duration::from_secs(60),
            max_total_bytes: 256 * 1024 * 1024,
        };
        Self {
            backpressure: BackpressureConfig {
                inflight_bytes: 256 * 1024,
                queue_messages: 1024,
                queue_bytes: 1024 * 1024,
                replay_messages: BackpressureConfig::replay_messages_for(&limits, &history),
            },
            limits,
            heartbeat: HeartbeatConfig {
                interval,
                timeout: Duration::from_secs(heartbeat_timeout),
                grace: interval,
                late_pong: Duration::from_secs(2),
            },
            history,
            tokens: TokenConfig {
                refresh_ahead: Duration::from_secs(60),
                leeway: Duration::ZERO,
            },
            presence: PresenceConfig::default(),
            cleanup_interval: Duration::from_secs(5),
            run_idle_timeout: Duration::from_secs(600),
            run_retention: Duration::from_secs(300),
            max_ended_runs: 10_000,
            app_frame_types: Vec::new(),
            cluster: false,
            shared_streams: false,
            epoch_base: 1,
            shard: 0,
        }
    }

    /// Development: ping every 15 s, dead after 45 s of silence, at most 100 connections and
    /// 100 agent runs in progress.
    pub fn development() -> Self {
        Self::with(15, 45, 100)
    }

    /// Staging: ping every 30 s, dead after 90 s of silence, at most 10 000 connections and
    /// 10 000 agent runs in progress.
    pub fn staging() -> Self {
        Self::with(30, 90, 10_000)
    }

    /// Production: ping every 25 s, dead after 75 s of silence, at most 100 000 connections
    /// and 100 000 agent runs in progress.
    pub fn production() -> Self {
        Self::with(25, 75, 100_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_keep_the_seed_timeouts() {
        assert_eq!(
            Config::development().heartbeat.timeout,
            Duration::from_secs(45)
        );
        assert_eq!(Config::staging().heartbeat.timeout, Duration::from_secs(90));
        assert_eq!(
            Config::production().heartbeat.timeout,
            Duration::from_secs(75)
        );
        for c in [
            Config::development(),
            Config::staging(),
            Config::production(),
        ] {
            assert!(c.heartbeat.interval < c.heartbeat.timeout);
            assert_eq!(c.limits.max_connections_per_user, 3);
            assert_eq!(c.limits.max_active_runs_per_user, 100);
            assert_eq!(c.limits.max_active_runs, c.limits.max_connections);
            assert_eq!(c.history.max_total_bytes, 256 << 20);
            assert!(c.history.empty_room_max_age < c.history.max_age);
        }
    }
}
