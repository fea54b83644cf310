//! The hub's budgets in the settings file: `[limits]`, `[heartbeat]`, `[history]` and
//! `[backpressure]`, each key overriding the preset's value (`switchboard::Config`), checked
//! for values that cannot work (a zero run timeout, a flush window past a second, a heartbeat
//! no shorter than its timeout, empty outbound queues).

use super::{FileSettings, SettingsError};
use serde::Deserialize;
use std::time::Duration;
use switchboard::{BackpressureConfig, Config, UserLimitPolicy};

/// The longest flush window `limits.message_flush_ms` may set.
const MAX_MESSAGE_FLUSH: Duration = Duration::from_millis(1_000);

/// `[limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Open connections per node.
    pub max_connections: Option<usize>,
    /// Open connections per user.
    pub max_connections_per_user: Option<usize>,
    /// `reject_new` or `evict_oldest`.
    pub user_limit_policy: Option<PolicySetting>,
    /// Rooms per connection.
    pub max_rooms_per_connection: Option<usize>,
    /// Members per room.
    pub max_members_per_room: Option<usize>,
    /// Largest client frame, in bytes.
    pub max_frame_bytes: Option<usize>,
    /// Sustained client frames per second.
    pub messages_per_second: Option<u32>,
    /// Burst above the sustained rate.
    pub message_burst: Option<u32>,
    /// Agent runs of one user in progress at once.
    pub max_active_runs_per_user: Option<usize>,
    /// Agent runs in progress per shard.
    pub max_active_runs: Option<usize>,
    /// Seconds a run in progress may go without an event before it ends with `producer_lost`.
    pub run_idle_timeout_secs: Option<u64>,
    /// Reports of ended runs each shard keeps at most (the oldest forgotten first).
    pub max_ended_runs: Option<usize>,
    /// Milliseconds an agent message's deltas to a reader that keeps up are rolled up for
    /// (0: every delta at once); at most 1 000.
    pub message_flush_ms: Option<u64>,
}

/// The per-user limit policy as written in the settings file.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicySetting {
    /// Refuse the new connection (4003).
    RejectNew,
    /// Close the user's oldest connection (4001).
    EvictOldest,
}

/// `[heartbeat]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatSettings {
    /// Seconds between pings.
    pub interval_secs: Option<u64>,
    /// Seconds of silence before a connection is dead.
    pub timeout_secs: Option<u64>,
}

/// `[history]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistorySettings {
    /// Messages kept per stream.
    pub max_messages: Option<usize>,
    /// Bytes kept per stream.
    pub max_bytes: Option<usize>,
    /// Seconds a message stays in history.
    pub max_age_secs: Option<u64>,
    /// Seconds a message stays in the history of a room without members.
    pub empty_room_max_age_secs: Option<u64>,
    /// Bytes kept in all histories of the node together.
    pub max_total_bytes: Option<usize>,
}

/// `[backpressure]`: what one connection may have unwritten before it is closed as a slow
/// consumer (4008, `docs/PROTOCOL.md` §4). The WebSocket write buffer follows them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackpressureSettings {
    /// Bytes handed to the socket and not yet written, before frames queue in the hub.
    pub inflight_bytes: Option<usize>,
    /// Frames queued past the in-flight bytes.
    pub queue_messages: Option<usize>,
    /// Bytes queued past the in-flight bytes; at least `limits.max_frame_bytes`.
    pub queue_bytes: Option<usize>,
    /// Replayed frames (catch-up from history) queued past the in-flight bytes; at least
    /// `history.max_messages`. Unset: one full history for the user stream and for each of
    /// `limits.max_rooms_per_connection` rooms, as those are set.
    pub replay_messages: Option<usize>,
}

/// Apply `file`'s budgets to the preset `hub`, then the `--max-connections` flag.
pub(super) fn apply(
    hub: &mut Config,
    file: &FileSettings,
    max_connections: Option<usize>,
) -> Result<(), SettingsError> {
    apply_limits(hub, &file.limits);
    if hub.run_idle_timeout.is_zero() {
        return Err(SettingsError::Invalid(
            "limits.run_idle_timeout_secs must be at least 1".into(),
        ));
    }
    if hub.limits.message_flush > MAX_MESSAGE_FLUSH {
        return Err(SettingsError::Invalid(format!(
            "limits.message_flush_ms must be at most {}",
            MAX_MESSAGE_FLUSH.as_millis()
        )));
    }
    if let Some(n) = max_connections {
        hub.limits.max_connections = n;
    }
    apply_heartbeat(hub, &file.heartbeat)?;
    apply_history(hub, &file.history);
    apply_backpressure(hub, &file.backpressure)
}

fn apply_limits(hub: &mut Config, l: &LimitSettings) {
    let limits = &mut hub.limits;
    set(&mut limits.max_connections, l.max_connections);
    set(
        &mut limits.max_connections_per_user,
        l.max_connections_per_user,
    );
    set(
        &mut limits.max_rooms_per_connection,
        l.max_rooms_per_connection,
    );
    set(&mut limits.max_members_per_room, l.max_members_per_room);
    set(&mut limits.max_frame_bytes, l.max_frame_bytes);
    set(&mut limits.messages_per_second, l.messages_per_second);
    set(&mut limits.message_burst, l.message_burst);
    set(
        &mut limits.max_active_runs_per_user,
        l.max_active_runs_per_user,
    );
    set(&mut limits.max_active_runs, l.max_active_runs);
    set(
        &mut hub.run_idle_timeout,
        l.run_idle_timeout_secs.map(Duration::from_secs),
    );
    set(&mut hub.max_ended_runs, l.max_ended_runs);
    set(
        &mut limits.message_flush,
        l.message_flush_ms.map(Duration::from_millis),
    );
    if let Some(p) = l.user_limit_policy {
        limits.user_limit_policy = match p {
            PolicySetting::RejectNew => UserLimitPolicy::RejectNew,
            PolicySetting::EvictOldest => UserLimitPolicy::EvictOldest,
        };
    }
}

fn apply_heartbeat(hub: &mut Config, h: &HeartbeatSettings) -> Result<(), SettingsError> {
    let hb = &mut hub.heartbeat;
    if let Some(s) = h.interval_secs {
        hb.interval = Duration::from_secs(s);
        hb.grace = hb.interval;
    }
    set(&mut hb.timeout, h.timeout_secs.map(Duration::from_secs));
    if hb.interval.is_zero() || hb.interval >= hb.timeout {
        return Err(SettingsError::Invalid(format!(
            "heartbeat interval ({:?}) must be positive and shorter than the timeout ({:?})",
            hb.interval, hb.timeout
        )));
    }
    Ok(())
}

fn apply_history(hub: &mut Config, h: &HistorySettings) {
    let history = &mut hub.history;
    set(&mut history.max_messages, h.max_messages);
    set(&mut history.max_bytes, h.max_bytes);
    set(
        &mut history.max_age,
        h.max_age_secs.map(Duration::from_secs),
    );
    set(
        &mut history.empty_room_max_age,
        h.empty_room_max_age_secs.map(Duration::from_secs),
    );
    set(&mut history.max_total_bytes, h.max_total_bytes);
}

fn apply_backpressure(hub: &mut Config, b: &BackpressureSettings) -> Result<(), SettingsError> {
    let budgets = &mut hub.backpressure;
    set(&mut budgets.inflight_bytes, b.inflight_bytes);
    set(&mut budgets.queue_messages, b.queue_messages);
    set(&mut budgets.queue_bytes, b.queue_bytes);
    budgets.replay_messages = b
        .replay_messages
        .unwrap_or_else(|| BackpressureConfig::replay_messages_for(&hub.limits, &hub.history));
    // One stream's whole catch-up must fit, or a client resuming it would be closed each time.
    if budgets.replay_messages < hub.history.max_messages {
        return Err(SettingsError::Invalid(format!(
            "backpressure.replay_messages ({}) must be at least history.max_messages ({})",
            budgets.replay_messages, hub.history.max_messages
        )));
    }
    if budgets.inflight_bytes == 0 || budgets.queue_messages == 0 {
        return Err(SettingsError::Invalid(
            "backpressure.inflight_bytes and backpressure.queue_messages must be at least 1".into(),
        ));
    }
    // A frame a client may send (a publish) must fit in a reader's queue, or every reader
    // that is behind would be closed by any large publish.
    if budgets.queue_bytes < hub.limits.max_frame_bytes {
        return Err(SettingsError::Invalid(format!(
            "backpressure.queue_bytes ({}) must be at least limits.max_frame_bytes ({})",
            budgets.queue_bytes, hub.limits.max_frame_bytes
        )));
    }
    Ok(())
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Overrides, Settings};
    use super::*;

    fn parse(text: &str) -> FileSettings {
        toml::from_str(text).expect("valid settings")
    }

    /// A run's idle timeout is a limit like the others; zero would end every run at once.
    #[test]
    fn the_run_idle_timeout_is_a_setting_of_at_least_one_second() {
        let default = Settings::resolve(FileSettings::default(), &Overrides::default()).unwrap();
        assert_eq!(default.hub.run_idle_timeout, Duration::from_secs(600));
        let short = parse("[limits]\nrun_idle_timeout_secs = 30");
        let short = Settings::resolve(short, &Overrides::default()).unwrap();
        assert_eq!(short.hub.run_idle_timeout, Duration::from_secs(30));
        let zero = parse("[limits]\nrun_idle_timeout_secs = 0");
        assert!(matches!(
            Settings::resolve(zero, &Overrides::default()),
            Err(SettingsError::Invalid(_))
        ));
    }

    /// The flush window of message deltas: 40 ms unless set, 0 turns it off, past a second is
    /// refused (a reader would see an answer stall).
    #[test]
    fn the_message_flush_window_is_a_setting_of_at_most_a_second() {
        let default = Settings::resolve(FileSettings::default(), &Overrides::default()).unwrap();
        assert_eq!(default.hub.limits.message_flush, Duration::from_millis(40));
        for (ms, expected) in [
            (0, Some(0)),
            (15, Some(15)),
            (1000, Some(1000)),
            (1001, None),
        ] {
            let file = parse(&format!("[limits]\nmessage_flush_ms = {ms}"));
            let resolved = Settings::resolve(file, &Overrides::default());
            let window = resolved
                .ok()
                .map(|s| s.hub.limits.message_flush.as_millis() as u64);
            assert_eq!(window, expected, "{ms} ms");
        }
    }

    /// The per-connection queues: the preset's unless set, never empty, and never smaller
    /// than the largest frame a client may publish.
    #[test]
    fn the_outbound_queues_are_settings_that_hold_a_largest_frame() {
        let default = Settings::resolve(FileSettings::default(), &Overrides::default()).unwrap();
        assert_eq!(default.hub.backpressure, Config::development().backpressure);
        let file = parse(
            "[backpressure]\ninflight_bytes = 65536\nqueue_messages = 10000\nqueue_bytes = 8388608",
        );
        let set = Settings::resolve(file, &Overrides::default()).unwrap();
        let b = &set.hub.backpressure;
        assert_eq!(
            (b.inflight_bytes, b.queue_messages, b.queue_bytes),
            (65536, 10000, 8388608)
        );
        // The replay bound follows the rooms and the history unless it is set.
        let file = parse("[limits]\nmax_rooms_per_connection = 9\n[history]\nmax_messages = 50");
        let set = Settings::resolve(file, &Overrides::default()).unwrap();
        assert_eq!(set.hub.backpressure.replay_messages, 10 * 50);
        let file = parse("[backpressure]\nreplay_messages = 5000");
        let set = Settings::resolve(file, &Overrides::default()).unwrap();
        assert_eq!(set.hub.backpressure.replay_messages, 5000);
        for refused in [
            "[backpressure]\nreplay_messages = 999",
            "[backpressure]\nqueue_messages = 0",
            "[backpressure]\ninflight_bytes = 0",
            "[backpressure]\nqueue_bytes = 1000",
            "[limits]\nmax_frame_bytes = 2000000",
        ] {
            let resolved = Settings::resolve(parse(refused), &Overrides::default());
            assert!(
                matches!(resolved, Err(SettingsError::Invalid(_))),
                "{refused}"
            );
        }
        assert!(toml::from_str::<FileSettings>("[backpressure]\nqueue = 1").is_err());
    }

    #[test]
    fn unknown_keys_and_impossible_heartbeats_are_errors() {
        assert!(toml::from_str::<FileSettings>("lisen = \"x\"").is_err());
        let file = parse("[heartbeat]\ninterval_secs = 90\ntimeout_secs = 30");
        assert!(matches!(
            Settings::resolve(file, &Overrides::default()),
            Err(SettingsError::Invalid(_))
        ));
    }
}
