//! The hub's runs: every run by user and run id, the caps on runs in progress, and the
//! timings of the sweep (idle runs end, ended runs are forgotten). Ended runs are kept in the
//! order they ended, so forgetting them takes the oldest first and never walks the rest, and
//! their number stays within `Config::max_ended_runs`.

use super::{AgentEvent, EventKind, Run, RunLimit};
use crate::config::Config;
use crate::id::{RunId, UserId};
use hashbrown::HashMap;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Every run of a hub by user and run id, with the runs in progress counted (in all and per
/// user) as runs start and end, so that the caps are checked and reported without a scan.
#[derive(Debug)]
pub(crate) struct Runs {
    runs: HashMap<(UserId, RunId), Run>,
    /// `Limits::max_active_runs_per_user` and `Limits::max_active_runs`.
    max_per_user: usize,
    max: usize,
    /// `Config::run_idle_timeout`: a run in progress silent this long ends (`producer_lost`).
    idle_timeout: Duration,
    /// `Config::run_retention`: the report of an ended run is kept this long.
    retention: Duration,
    /// `Config::max_ended_runs`: the reports of ended runs kept at most.
    max_ended: usize,
    /// The runs that ended, in the order they did, with when: each is in `runs`, ended.
    ended: VecDeque<((UserId, RunId), Instant)>,
    /// Runs in progress.
    active: usize,
    /// Runs in progress per user (users with none are absent).
    active_per_user: HashMap<UserId, usize>,
}

impl Runs {
    /// No run yet, with the caps and timings of `config`.
    pub fn new(config: &Config) -> Self {
        Self {
            runs: HashMap::new(),
            max_per_user: config.limits.max_active_runs_per_user,
            max: config.limits.max_active_runs,
            idle_timeout: config.run_idle_timeout,
            retention: config.run_retention,
            max_ended: config.max_ended_runs,
            ended: VecDeque::new(),
            active: 0,
            active_per_user: HashMap::new(),
        }
    }

    pub fn get(&self, key: &(UserId, RunId)) -> Option<&Run> {
        self.runs.get(key)
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Runs in progress.
    pub fn active(&self) -> usize {
        self.active
    }

    /// Keep `run`, which just started, unless its user or the hub is at its cap of runs in
    /// progress.
    pub fn start(&mut self, run: Run) -> Result<(), RunLimit> {
        let user = run.report.user.clone();
        let of_user = self.active_per_user.get(&user).copied().unwrap_or(0);
        if of_user >= self.max_per_user {
            return Err(RunLimit::User);
        }
        if self.active >= self.max {
            return Err(RunLimit::Hub);
        }
        self.active += 1;
        *self.active_per_user.entry(user.clone()).or_default() += 1;
        self.runs.insert((user, run.report.run.clone()), run);
        Ok(())
    }

    /// Apply an event to the run `key` (see [`Run::record`]); an ending leaves the counts of
    /// runs in progress.
    pub fn record(
        &mut self,
        key: &(UserId, RunId),
        now: Instant,
        kind: EventKind,
        event: Option<&AgentEvent>,
        seq: u64,
        reached: usize,
    ) -> &Run {
        let run = self.runs.get_mut(key).expect("the run exists");
        let was_running = run.is_running();
        run.record(now, kind, event, seq, reached);
        if was_running && !run.is_running() {
            self.active -= 1;
            if let Some(n) = self.active_per_user.get_mut(&key.0) {
                *n -= 1;
                if *n == 0 {
                    self.active_per_user.remove(&key.0);
                }
            }
            self.ended.push_back((key.clone(), now));
            while self.ended.len() > self.max_ended {
                self.forget_oldest();
            }
        }
        &self.runs[key]
    }

    /// The runs in progress without an event for `run_idle_timeout`.
    pub fn idle(&self, now: Instant) -> Vec<(UserId, RunId)> {
        let timeout = self.idle_timeout;
        self.runs
            .iter()
            .filter(|(_, r)| {
                r.is_running() && now.saturating_duration_since(r.last_event_at) >= timeout
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Forget the runs that ended at least `run_retention` before `now`.
    pub fn forget_ended(&mut self, now: Instant) {
        while let Some((_, at)) = self.ended.front() {
            if now.saturating_duration_since(*at) < self.retention {
                break;
            }
            self.forget_oldest();
        }
    }

    /// Forget the run that ended first.
    fn forget_oldest(&mut self) {
        if let Some((key, _)) = self.ended.pop_front() {
            self.runs.remove(&key);
        }
    }

    /// Runs in progress counted anew, to check the count kept as runs start and end.
    #[cfg(any(test, feature = "testing"))]
    pub fn recount(&self) -> usize {
        self.runs.values().filter(|r| r.is_running()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started() -> AgentEvent {
        AgentEvent::AgentStarted {
            data: serde_json::Value::Null,
        }
    }

    #[test]
    fn runs_in_progress_are_capped_per_user_and_in_all_and_an_ending_frees_a_place() {
        let now = Instant::now();
        let mut config = Config::development();
        config.limits.max_active_runs_per_user = 2;
        config.limits.max_active_runs = 3;
        config.run_retention = Duration::ZERO;
        let start = |user: &str, run: &str| {
            Run::start(now, run.into(), user.into(), "a".into(), None, &started()).unwrap()
        };
        let mut runs = Runs::new(&config);
        runs.start(start("u", "r1")).unwrap();
        runs.start(start("u", "r2")).unwrap();
        assert_eq!(runs.start(start("u", "r3")), Err(RunLimit::User));
        runs.start(start("v", "r1")).unwrap();
        assert_eq!(runs.start(start("w", "r1")), Err(RunLimit::Hub));
        let ended = AgentEvent::AgentFailed { error: "x".into() };
        let key = ("u".into(), "r1".into());
        runs.record(&key, now, ended.kind(), Some(&ended), 1, 0);
        assert_eq!((runs.active(), runs.recount()), (2, 2));
        runs.start(start("u", "r3")).unwrap();
        runs.forget_ended(now + Duration::from_secs(1));
        assert!(runs.get(&key).is_none(), "the ended run is forgotten");
        assert_eq!((runs.active(), runs.recount()), (3, 3));
    }
}
