//! Agent runs: the typed lifecycle events and the automaton that keeps them in order.
//!
//! A run goes `agent_started` → any number of `agent_thinking`, `tool_executing`,
//! `tool_completed` (each completion after its execution) and `agent_message_delta` (each at
//! its message's current length, none after its message's `final` one: module `message`) →
//! exactly one ending:
//! `agent_completed`, `agent_failed`, `agent_cancelled`, or `producer_lost` when the
//! producer goes away. An event out of order is a [`RunError`] and is delivered to no one.
//! The run remembers, per event, how many connections it reached, for [`RunReport`] (module
//! `report`, bounded by [`MAX_REPORT_EVENTS`]). The
//! hub's runs (`Runs`) count those in progress, per user and in all, for their caps. The
//! events themselves, [`AgentEvent`] and [`EventKind`], are in module `event`.

mod event;
mod joined;
mod message;
mod report;
mod runs;

pub use event::{AgentEvent, EventKind};
pub(crate) use joined::{Body, Delta};
pub(crate) use message::Messages;
pub use message::MAX_MESSAGES_PER_RUN;
pub use report::{EventRecord, RunReport, MAX_REPORT_EVENTS};
pub(crate) use runs::Runs;

use crate::id::{AgentId, RunId, ThreadId, UserId};
use smallvec::SmallVec;
use std::fmt;
use std::time::Instant;
use thiserror::Error;

/// Why an agent event was refused. Nothing was delivered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RunError {
    /// The first event of a run must be `agent_started`.
    #[error("run {0} has not started: the first event must be agent_started")]
    NotStarted(RunId),
    /// `agent_started` for a run that already started.
    #[error("run {0} has already started")]
    AlreadyStarted(RunId),
    /// An event after the run ended.
    #[error("run {0} has already ended")]
    Ended(RunId),
    /// `tool_completed` without a matching open `tool_executing`.
    #[error("run {run}: tool_completed for {call:?} without its tool_executing")]
    ToolNotExecuting {
        /// The run.
        run: RunId,
        /// The call id (or tool name) that was not executing.
        call: String,
    },
    /// `tool_executing` for a call that is already executing.
    #[error("run {run}: tool call {call:?} is already executing")]
    ToolAlreadyExecuting {
        /// The run.
        run: RunId,
        /// The call id (or tool name).
        call: String,
    },
    /// `agent_message_delta` for a message whose `final` delta was accepted.
    #[error("run {run}: message {message:?} has already ended")]
    MessageEnded {
        /// The run.
        run: RunId,
        /// The message.
        message: String,
    },
    /// `agent_message_delta` at another offset than the message's current length.
    #[error("run {run}: message {message:?} is {expected} characters long, not {offset}: the next delta's offset must be {expected}")]
    WrongOffset {
        /// The run.
        run: RunId,
        /// The message.
        message: String,
        /// The offset the next delta must have: the message's length so far.
        expected: u64,
        /// The offset given.
        offset: u64,
    },
    /// A delta opening one message more than [`MAX_MESSAGES_PER_RUN`].
    #[error("run {0} has opened as many messages as a run may ({MAX_MESSAGES_PER_RUN})")]
    TooManyMessages(RunId),
    /// `agent_completed` while messages are still open (no `final` delta yet).
    #[error("run {run}: agent_completed with messages still open: {open:?}")]
    MessagesStillOpen {
        /// The run.
        run: RunId,
        /// The open message ids.
        open: Vec<String>,
    },
    /// `agent_completed` while tool calls are still open.
    #[error("run {run}: agent_completed with tool calls still executing: {open:?}")]
    ToolsStillExecuting {
        /// The run.
        run: RunId,
        /// The open call ids.
        open: Vec<String>,
    },
}

/// Where a run is in its lifecycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// Started, not ended; the open tool calls.
    Running {
        /// Call ids of tools executing now.
        open_calls: SmallVec<[String; 2]>,
    },
    /// Ended with this event.
    Ended(EventKind),
}

/// A run in the hub: its automaton state and its report.
#[derive(Debug)]
pub(crate) struct Run {
    pub state: RunState,
    /// The run's messages: their lengths, and which ended.
    pub messages: Messages,
    pub report: RunReport,
    pub last_event_at: Instant,
}

fn call_key(tool: &str, call_id: &Option<String>) -> String {
    call_id.clone().unwrap_or_else(|| tool.to_owned())
}

impl Run {
    /// Start a run with its first event, which must be `agent_started`.
    pub fn start(
        now: Instant,
        run: RunId,
        user: UserId,
        agent: AgentId,
        thread: Option<ThreadId>,
        event: &AgentEvent,
    ) -> Result<Run, RunError> {
        if event.kind() != EventKind::AgentStarted {
            return Err(RunError::NotStarted(run));
        }
        Ok(Run {
            state: RunState::Running {
                open_calls: SmallVec::new(),
            },
            messages: Messages::default(),
            report: RunReport::new(run, user, agent, thread),
            last_event_at: now,
        })
    }

    /// Check that `event` may come next, without changing anything.
    pub fn check(&self, event: &AgentEvent) -> Result<(), RunError> {
        let run = || self.report.run.clone();
        let RunState::Running { open_calls } = &self.state else {
            return Err(RunError::Ended(run()));
        };
        match event {
            AgentEvent::AgentStarted { .. } if !self.report.is_empty() => {
                Err(RunError::AlreadyStarted(run()))
            }
            AgentEvent::ToolExecuting { tool, call_id, .. } => {
                let call = call_key(tool, call_id);
                if open_calls.contains(&call) {
                    Err(RunError::ToolAlreadyExecuting { run: run(), call })
                } else {
                    Ok(())
                }
            }
            AgentEvent::ToolCompleted { tool, call_id, .. } => {
                let call = call_key(tool, call_id);
                if open_calls.contains(&call) {
                    Ok(())
                } else {
                    Err(RunError::ToolNotExecuting { run: run(), call })
                }
            }
            AgentEvent::AgentMessageDelta {
                message, offset, ..
            } => self.messages.check(&self.report.run, message, *offset),
            AgentEvent::AgentCompleted { .. } if !open_calls.is_empty() => {
                Err(RunError::ToolsStillExecuting {
                    run: run(),
                    open: open_calls.to_vec(),
                })
            }
            AgentEvent::AgentCompleted { .. } => match self.messages.open() {
                open if open.is_empty() => Ok(()),
                open => Err(RunError::MessagesStillOpen { run: run(), open }),
            },
            _ => Ok(()),
        }
    }

    /// Apply an event that passed [`Run::check`] (or the hub's `producer_lost`).
    pub fn record(
        &mut self,
        now: Instant,
        kind: EventKind,
        event: Option<&AgentEvent>,
        seq: u64,
        reached: usize,
    ) {
        self.last_event_at = now;
        self.report.record(EventRecord { kind, seq, reached });
        if let RunState::Running { open_calls } = &mut self.state {
            match event {
                Some(AgentEvent::AgentMessageDelta {
                    message,
                    last,
                    text,
                    ..
                }) => self.messages.append(message, text, *last),
                Some(AgentEvent::ToolExecuting { tool, call_id, .. }) => {
                    open_calls.push(call_key(tool, call_id))
                }
                Some(AgentEvent::ToolCompleted { tool, call_id, .. }) => {
                    let call = call_key(tool, call_id);
                    open_calls.retain(|c| *c != call);
                }
                _ => {}
            }
        }
        if kind.is_ending() {
            self.state = RunState::Ended(kind);
            self.report.ended = Some(kind);
        }
    }

    /// True while the run has not ended.
    pub fn is_running(&self) -> bool {
        matches!(self.state, RunState::Running { .. })
    }
}

/// Which cap refused a new agent run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunLimit {
    /// `Limits::max_active_runs_per_user`.
    User,
    /// `Limits::max_active_runs`.
    Hub,
}

impl fmt::Display for RunLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RunLimit::User => "for the user",
            RunLimit::Hub => "in the hub",
        })
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

    fn tool(kind: EventKind, name: &str) -> AgentEvent {
        match kind {
            EventKind::ToolExecuting => AgentEvent::ToolExecuting {
                tool: name.into(),
                call_id: None,
                input: serde_json::Value::Null,
            },
            _ => AgentEvent::ToolCompleted {
                tool: name.into(),
                call_id: None,
                output: serde_json::Value::Null,
            },
        }
    }

    fn new_run(now: Instant) -> Run {
        Run::start(now, "r".into(), "u".into(), "a".into(), None, &started()).unwrap()
    }

    fn apply(run: &mut Run, now: Instant, e: &AgentEvent) -> Result<(), RunError> {
        run.check(e)?;
        run.record(now, e.kind(), Some(e), 0, 1);
        Ok(())
    }

    #[test]
    fn the_golden_path_is_accepted() {
        let now = Instant::now();
        let mut run = new_run(now);
        for e in [
            started(),
            AgentEvent::AgentThinking {
                thought: "hm".into(),
            },
            tool(EventKind::ToolExecuting, "search"),
            tool(EventKind::ToolCompleted, "search"),
            AgentEvent::AgentCompleted {
                result: serde_json::Value::Null,
            },
        ] {
            apply(&mut run, now, &e).unwrap();
        }
        assert_eq!(run.state, RunState::Ended(EventKind::AgentCompleted));
        assert_eq!(run.report.events.len(), 5);
    }

    #[test]
    fn out_of_order_events_are_refused() {
        let now = Instant::now();
        assert!(matches!(
            Run::start(
                now,
                "r".into(),
                "u".into(),
                "a".into(),
                None,
                &AgentEvent::AgentThinking {
                    thought: String::new()
                }
            ),
            Err(RunError::NotStarted(_))
        ));
        let mut run = new_run(now);
        apply(&mut run, now, &started()).unwrap();
        assert!(matches!(
            apply(&mut run, now, &started()),
            Err(RunError::AlreadyStarted(_))
        ));
        assert!(matches!(
            apply(&mut run, now, &tool(EventKind::ToolCompleted, "x")),
            Err(RunError::ToolNotExecuting { .. })
        ));
        apply(&mut run, now, &tool(EventKind::ToolExecuting, "x")).unwrap();
        assert!(matches!(
            apply(&mut run, now, &tool(EventKind::ToolExecuting, "x")),
            Err(RunError::ToolAlreadyExecuting { .. })
        ));
        assert!(matches!(
            apply(
                &mut run,
                now,
                &AgentEvent::AgentCompleted {
                    result: serde_json::Value::Null
                }
            ),
            Err(RunError::ToolsStillExecuting { .. })
        ));
        apply(
            &mut run,
            now,
            &AgentEvent::AgentFailed {
                error: "boom".into(),
            },
        )
        .unwrap();
        assert!(matches!(
            apply(
                &mut run,
                now,
                &AgentEvent::AgentThinking {
                    thought: String::new()
                }
            ),
            Err(RunError::Ended(_))
        ));
    }

    #[test]
    fn message_deltas_that_follow_each_other_share_one_report_record() {
        let now = Instant::now();
        let mut run = new_run(now);
        let delta = |offset, text: &str| AgentEvent::AgentMessageDelta {
            message: "m".into(),
            offset,
            last: false,
            text: text.into(),
        };
        run.record(now, EventKind::AgentStarted, Some(&started()), 1, 1);
        for (seq, reached, offset, text) in [(2, 2, 0, "ab"), (3, 0, 2, "c"), (4, 1, 3, "d")] {
            let e = delta(offset, text);
            run.check(&e).unwrap();
            run.record(now, e.kind(), Some(&e), seq, reached);
        }
        let thinking = AgentEvent::AgentThinking {
            thought: "t".into(),
        };
        run.record(now, thinking.kind(), Some(&thinking), 5, 1);
        let e = delta(4, "e");
        run.check(&e).unwrap();
        run.record(now, e.kind(), Some(&e), 6, 1);
        let records: Vec<(EventKind, u64, usize)> = (run.report.events.iter())
            .map(|r| (r.kind, r.seq, r.reached))
            .collect();
        assert_eq!(
            records,
            vec![
                (EventKind::AgentStarted, 1, 1),
                (EventKind::AgentMessageDelta, 4, 0),
                (EventKind::AgentThinking, 5, 1),
                (EventKind::AgentMessageDelta, 6, 1),
            ]
        );
        assert!(!run.report.fully_delivered(), "one delta reached no one");
    }
}
