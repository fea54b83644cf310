//! What the hub of each target runs with: the two cases' budgets, history bounds, sweeps and
//! ticks (`Profile`), and the configuration they give.

use super::*;

/// Live frames a stopped reader's queue holds (`queue_messages`).
pub(super) const QUEUE: usize = 4;
/// How long the `resume` cases' history keeps a message, and their long tick.
const RESUME_MAX_AGE: Duration = Duration::from_secs(1);
/// The `resume` cases' clean-up sweep, and the step their ticks move in: every operation
/// comes at a multiple of it, and so does every sweep.
const RESUME_SWEEP: Duration = Duration::from_millis(50);
const _: () = assert!(RESUME_MAX_AGE.as_millis() % RESUME_SWEEP.as_millis() == 0);
/// The bytes of frames the `resume` cases' history keeps per stream: two or three large
/// messages (about 500 bytes each), or ten small ones (about 100).
const RESUME_MAX_BYTES: usize = 1024;

/// What differs between the two targets' hubs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Profile {
    /// `runs`: an in-flight budget of 512 bytes (a flush window also ends once what it holds
    /// reaches it), history kept by count for hours, ticks of any millisecond.
    Runs,
    /// `resume`: the limits the model predicts. An in-flight budget of one byte, so that of
    /// the frames offered to a reader that stopped reading the first is written and every
    /// later one waits in its queue: which frame overflows it (4008) follows from counts
    /// alone (section 6, "Slow consumers"). History kept by count, by [`RESUME_MAX_BYTES`]
    /// of frames and for [`RESUME_MAX_AGE`], swept every [`RESUME_SWEEP`], and ticks in
    /// whole sweeps: a message is gone exactly at the first operation at least `max_age`
    /// after it was kept (section 6, "History": up to a sweep later, and no operation falls
    /// between).
    Resume,
}

impl Profile {
    fn inflight_bytes(self) -> usize {
        match self {
            Profile::Runs => 512,
            Profile::Resume => 1,
        }
    }

    /// How long history keeps a message; `None`: longer than every tick but the long one.
    pub(super) fn max_age(self) -> Option<Duration> {
        match self {
            Profile::Runs => None,
            Profile::Resume => Some(RESUME_MAX_AGE),
        }
    }

    pub(super) fn long_tick(self) -> Duration {
        self.max_age().unwrap_or(LONG_TICK)
    }

    /// A tick of `ms` milliseconds (taken modulo 501), in whole sweeps where the model
    /// predicts expiry.
    pub(super) fn tick(self, ms: u16) -> Duration {
        let ms = u64::from(ms % 501);
        match self {
            Profile::Runs => Duration::from_millis(ms),
            Profile::Resume => {
                let sweep = RESUME_SWEEP.as_millis() as u64;
                Duration::from_millis(ms / sweep * sweep)
            }
        }
    }
}

pub(super) fn config(history: u8, profile: Profile) -> Config {
    let mut config = Config::development();
    config.limits.max_connections_per_user = MAX_DEVICES;
    config.limits.max_strikes = 1_000_000;
    config.limits.message_burst = 1_000_000;
    config.backpressure = BackpressureConfig {
        inflight_bytes: profile.inflight_bytes(),
        queue_messages: QUEUE,
        queue_bytes: 64 * 1024,
        ..config.backpressure
    };
    let max_age = profile.max_age().unwrap_or(MAX_AGE);
    config.history = HistoryConfig {
        max_messages: 3 + usize::from(history) % 10,
        max_bytes: match profile {
            Profile::Runs => 1 << 20,
            Profile::Resume => RESUME_MAX_BYTES,
        },
        max_age,
        // The shadow keeps a room's history as long as any other (the shorter age of rooms
        // without members and the hub-wide budget have tests of their own).
        empty_room_max_age: max_age,
        max_total_bytes: usize::MAX,
    };
    config.cleanup_interval = match profile {
        Profile::Runs => CLEANUP,
        Profile::Resume => RESUME_SWEEP,
    };
    if profile == Profile::Resume {
        config.epoch_base = EPOCH_BASE;
    }
    // Clients answer pings; rare pings keep the long ticks cheap.
    config.heartbeat.interval = Duration::from_secs(600);
    config.heartbeat.grace = Duration::from_secs(600);
    config.heartbeat.timeout = Duration::from_secs(1800);
    config.run_idle_timeout = RUN_IDLE;
    config.run_retention = LONG_TICK * 2;
    config
}
