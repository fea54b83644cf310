//! The events of an agent run: [`AgentEvent`], what a producer publishes (tagged by `event`),
//! and [`EventKind`], its kind without the payload, with the wire names both use.

use serde::{Deserialize, Serialize};

/// One lifecycle event of an agent run, as published by the producer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AgentEvent {
    /// The run began. Must come first.
    AgentStarted {
        /// Free-form details (the prompt, the model, ...).
        #[serde(default)]
        data: serde_json::Value,
    },
    /// An intermediate thought. Coalesced for readers that fall behind.
    AgentThinking {
        /// The thought, as text.
        thought: String,
    },
    /// A piece of the agent's answer: `text` appended to `message` at `offset`, the message's
    /// length before it in Unicode scalar values. `final` ends the message. Deltas that follow
    /// each other are joined, never dropped, for readers that fall behind and in history.
    AgentMessageDelta {
        /// The message within the run.
        message: String,
        /// The message's length before this delta, in Unicode scalar values.
        offset: u64,
        /// The message's last delta: nothing may be appended after it.
        #[serde(rename = "final", default)]
        last: bool,
        /// The text appended.
        text: String,
    },
    /// A tool call began.
    ToolExecuting {
        /// The tool's name.
        tool: String,
        /// Identifies the call when the same tool runs more than once; defaults to the name.
        #[serde(default)]
        call_id: Option<String>,
        /// The tool's input.
        #[serde(default)]
        input: serde_json::Value,
    },
    /// A tool call finished. Must follow its `tool_executing`.
    ToolCompleted {
        /// The tool's name.
        tool: String,
        /// The call id given in `tool_executing`, if any.
        #[serde(default)]
        call_id: Option<String>,
        /// The tool's output.
        #[serde(default)]
        output: serde_json::Value,
    },
    /// The run finished successfully. No tool call may still be open.
    AgentCompleted {
        /// The run's result.
        #[serde(default)]
        result: serde_json::Value,
    },
    /// The run failed.
    AgentFailed {
        /// What went wrong.
        error: String,
    },
    /// The run was cancelled.
    AgentCancelled {
        /// Why, if known.
        #[serde(default)]
        reason: Option<String>,
    },
}

/// The kind of a run event, without its payload (also `producer_lost`, which only the hub emits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// `agent_started`
    AgentStarted,
    /// `agent_thinking`
    AgentThinking,
    /// `agent_message_delta`
    AgentMessageDelta,
    /// `tool_executing`
    ToolExecuting,
    /// `tool_completed`
    ToolCompleted,
    /// `agent_completed`
    AgentCompleted,
    /// `agent_failed`
    AgentFailed,
    /// `agent_cancelled`
    AgentCancelled,
    /// `producer_lost`: the producer went away before ending the run.
    ProducerLost,
}

impl EventKind {
    /// The frame type on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::AgentStarted => "agent_started",
            EventKind::AgentThinking => "agent_thinking",
            EventKind::AgentMessageDelta => "agent_message_delta",
            EventKind::ToolExecuting => "tool_executing",
            EventKind::ToolCompleted => "tool_completed",
            EventKind::AgentCompleted => "agent_completed",
            EventKind::AgentFailed => "agent_failed",
            EventKind::AgentCancelled => "agent_cancelled",
            EventKind::ProducerLost => "producer_lost",
        }
    }

    /// True for the events that end a run.
    pub fn is_ending(self) -> bool {
        matches!(
            self,
            EventKind::AgentCompleted
                | EventKind::AgentFailed
                | EventKind::AgentCancelled
                | EventKind::ProducerLost
        )
    }
}

impl AgentEvent {
    /// The event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            AgentEvent::AgentStarted { .. } => EventKind::AgentStarted,
            AgentEvent::AgentThinking { .. } => EventKind::AgentThinking,
            AgentEvent::AgentMessageDelta { .. } => EventKind::AgentMessageDelta,
            AgentEvent::ToolExecuting { .. } => EventKind::ToolExecuting,
            AgentEvent::ToolCompleted { .. } => EventKind::ToolCompleted,
            AgentEvent::AgentCompleted { .. } => EventKind::AgentCompleted,
            AgentEvent::AgentFailed { .. } => EventKind::AgentFailed,
            AgentEvent::AgentCancelled { .. } => EventKind::AgentCancelled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse_from_their_wire_names() {
        let e: AgentEvent =
            serde_json::from_str(r#"{"event":"tool_executing","tool":"search","input":{"q":1}}"#)
                .unwrap();
        assert_eq!(e.kind(), EventKind::ToolExecuting);
        assert_eq!(e.kind().as_str(), "tool_executing");
    }
}
