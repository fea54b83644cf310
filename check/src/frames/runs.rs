//! The run automaton of `docs/PROTOCOL.md` section 8, as far as the `frames` target can know
//! it, for each user's run `r1`: an event the automaton accepts must be accepted and one it
//! refuses must be refused (to the producer), except where the timing of the hub's sweep
//! decides (a run silent for `run_idle_timeout` ends with `producer_lost` at the next sweep; an
//! ended run is forgotten `run_retention` after its end, at a sweep, and may then start again).

use super::*;
use std::collections::BTreeSet;

/// What the oracle knows of one run.
#[derive(Debug, Clone, Default)]
pub(super) enum RunModel {
    /// Never started: only `agent_started` is accepted.
    #[default]
    Absent,
    /// In progress since its last accepted event at `last`.
    Running {
        last: Instant,
        /// Each message's length so far (in Unicode scalar values) and whether it ended.
        messages: BTreeMap<String, (u64, bool)>,
        /// The tool calls open, by `call_id` or, without one, by `tool`.
        calls: BTreeSet<String>,
    },
    /// Ended, at `at` or later: refused whole until `run_retention` after `at`.
    Ended { at: Instant },
    /// Ended and possibly forgotten: `agent_started` may start it again, nothing else may come.
    Forgotten,
}

/// The timing that decides when a run ends or is forgotten without an event.
#[derive(Debug, Clone, Copy)]
struct RunTimes {
    pub idle: Duration,
    pub retention: Duration,
    /// How late after its deadline a sweep may come.
    pub sweep: Duration,
}

/// Messages a run may open (section 8, `too_many_messages`).
const MAX_MESSAGES: usize = 1000;

fn call_key(tool: &str, call_id: &Option<String>) -> String {
    call_id.clone().unwrap_or_else(|| tool.to_owned())
}

impl RunModel {
    /// Bring the model to `now`: a silent run past its idle deadline and the next sweep has
    /// ended; a run ended `retention` ago may be forgotten.
    fn advance(&mut self, now: Instant, t: RunTimes) {
        if let RunModel::Running { last, .. } = self {
            if now >= *last + t.idle + t.sweep {
                *self = RunModel::Ended { at: *last + t.idle };
            }
        }
        if let RunModel::Ended { at } = self {
            if now >= *at + t.retention {
                *self = RunModel::Forgotten;
            }
        }
    }

    /// Whether the silent run may have ended already (its idle deadline passed, the sweep not
    /// yet certainly).
    fn may_have_idled(&self, now: Instant, t: RunTimes) -> bool {
        matches!(self, RunModel::Running { last, .. } if now >= *last + t.idle)
    }

    /// Whether the automaton of a run in progress accepts `event`.
    fn accepts(&self, event: &AgentEvent) -> bool {
        let RunModel::Running {
            messages, calls, ..
        } = self
        else {
            return false;
        };
        match event {
            AgentEvent::AgentStarted { .. } => false,
            AgentEvent::AgentMessageDelta {
                message, offset, ..
            } => match messages.get(message) {
                Some(&(_, true)) => false,
                Some(&(len, false)) => *offset == len,
                None => *offset == 0 && messages.len() < MAX_MESSAGES,
            },
            AgentEvent::ToolExecuting { tool, call_id, .. } => {
                !calls.contains(&call_key(tool, call_id))
            }
            AgentEvent::ToolCompleted { tool, call_id, .. } => {
                calls.contains(&call_key(tool, call_id))
            }
            AgentEvent::AgentCompleted { .. } => {
                calls.is_empty() && messages.values().all(|&(_, ended)| ended)
            }
            _ => true,
        }
    }

    /// Whether `event` at `now` must be accepted (`Some(true)`), must be refused, or either.
    fn decides(&mut self, now: Instant, t: RunTimes, event: &AgentEvent) -> Option<bool> {
        self.advance(now, t);
        let start = matches!(event, AgentEvent::AgentStarted { .. });
        match self {
            RunModel::Absent => Some(start),
            RunModel::Forgotten if start => None,
            RunModel::Forgotten | RunModel::Ended { .. } => Some(false),
            RunModel::Running { .. } if !self.accepts(event) => Some(false),
            RunModel::Running { .. } if self.may_have_idled(now, t) => None,
            RunModel::Running { .. } => Some(true),
        }
    }

    /// The hub accepted `event` at `now` (`accepted`) or refused it: follow it.
    fn apply(&mut self, now: Instant, t: RunTimes, event: &AgentEvent, accepted: bool) {
        if !accepted {
            if self.may_have_idled(now, t) && self.accepts(event) {
                // Refused although in order: the sweep ended it.
                if let RunModel::Running { last, .. } = self {
                    *self = RunModel::Ended { at: *last + t.idle };
                }
            }
            return;
        }
        if matches!(event, AgentEvent::AgentStarted { .. }) {
            *self = RunModel::Running {
                last: now,
                messages: BTreeMap::new(),
                calls: BTreeSet::new(),
            };
            return;
        }
        let RunModel::Running {
            last,
            messages,
            calls,
        } = self
        else {
            unreachable!("an accepted event of a run not in progress was checked before");
        };
        *last = now;
        match event {
            AgentEvent::AgentMessageDelta {
                message,
                last,
                text,
                ..
            } => {
                let entry = messages.entry(message.clone()).or_default();
                entry.0 += text.chars().count() as u64;
                entry.1 = *last;
            }
            AgentEvent::ToolExecuting { tool, call_id, .. } => {
                calls.insert(call_key(tool, call_id));
            }
            AgentEvent::ToolCompleted { tool, call_id, .. } => {
                calls.remove(&call_key(tool, call_id));
            }
            AgentEvent::AgentCompleted { .. }
            | AgentEvent::AgentFailed { .. }
            | AgentEvent::AgentCancelled { .. } => *self = RunModel::Ended { at: now },
            _ => {}
        }
    }

    /// Whether the hub's `producer_lost` at `now` must end the run (`Some(true)`), must find
    /// none in progress, or either.
    fn decides_lost(&mut self, now: Instant, t: RunTimes) -> Option<bool> {
        self.advance(now, t);
        match self {
            RunModel::Running { .. } if self.may_have_idled(now, t) => None,
            RunModel::Running { .. } => Some(true),
            _ => Some(false),
        }
    }

    /// The hub's `producer_lost` at `now` ended the run (`ended`) or found none in progress.
    fn apply_lost(&mut self, now: Instant, t: RunTimes, ended: bool) {
        if let RunModel::Running { last, .. } = self {
            *self = RunModel::Ended {
                at: if ended { now } else { *last + t.idle },
            };
        }
    }
}

impl Script {
    fn run_times(&self) -> RunTimes {
        let config = self.hub.config();
        RunTimes {
            idle: config.run_idle_timeout,
            retention: config.run_retention,
            // A sweep runs every `cleanup_interval` while anything remains: allow two.
            sweep: 2 * config.cleanup_interval,
        }
    }

    /// The application sends `event` of the slot's user's run `r1`: accepted exactly when the
    /// automaton says so.
    pub(super) fn agent_update(&mut self, slot: usize, event: AgentEvent) {
        let user = slot_open(slot).user;
        let times = self.run_times();
        let now = self.now;
        let model = self.runs.entry(user.clone()).or_default();
        let decided = model.decides(now, times, &event);
        let update = AgentUpdate {
            run: "r1".into(),
            agent: "fuzz".into(),
            thread: (slot == 1).then(|| "t1".into()),
            event: event.clone(),
        };
        let result = self.hub.send_agent_update(now, &user, update);
        let accepted = result.is_ok();
        assert!(
            decided.is_none_or(|d| d == accepted),
            "{user}'s run r1 in {model:?}: {event:?} {} ({result:?})",
            if accepted { "accepted" } else { "refused" }
        );
        model.apply(now, times, &event, accepted);
        let (yes, no) = &mut self.outcomes.updates;
        *if accepted { yes } else { no } += 1;
        self.drain(&Cause::default());
    }

    /// The producer of the slot's user's run `r1` is lost: the run ends exactly when it was in
    /// progress.
    pub(super) fn producer_lost(&mut self, slot: usize) {
        let user = slot_open(slot).user;
        let times = self.run_times();
        let now = self.now;
        let model = self.runs.entry(user.clone()).or_default();
        let decided = model.decides_lost(now, times);
        let ended = self.hub.producer_lost(now, &user, &"r1".into()).is_some();
        assert!(
            decided.is_none_or(|d| d == ended),
            "{user}'s run r1 in {model:?}: producer_lost {}",
            if ended {
                "ended it"
            } else {
                "found it not in progress"
            }
        );
        model.apply_lost(now, times, ended);
        self.drain(&Cause::default());
    }
}
