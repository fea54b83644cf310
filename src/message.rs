//! An application message: an event name and a JSON payload, reliable or ephemeral.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// How a message travels to a reader that falls behind.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    /// Sequenced, kept in history, never dropped (a reader too slow for it is closed with
    /// 4008 and resumes).
    #[default]
    Reliable,
    /// Not sequenced and not kept: while the reader is behind, a newer message with the same
    /// key replaces the queued one (latest state wins), and one that does not fit is shed.
    Ephemeral {
        /// Messages with equal keys supersede each other.
        key: Arc<str>,
    },
}

/// What a publisher sends: `event` names it, `data` is any JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The application's name for the message.
    pub event: String,
    /// The payload.
    #[serde(default)]
    pub data: serde_json::Value,
    /// Reliable (default) or ephemeral.
    #[serde(default)]
    pub lane: Lane,
}

impl Message {
    /// A reliable message.
    pub fn new(event: impl Into<String>, data: serde_json::Value) -> Self {
        Self {
            event: event.into(),
            data,
            lane: Lane::Reliable,
        }
    }

    /// Make the message ephemeral: coalesced under `key` for readers that are behind.
    pub fn ephemeral(mut self, key: impl Into<Arc<str>>) -> Self {
        self.lane = Lane::Ephemeral { key: key.into() };
        self
    }
}
