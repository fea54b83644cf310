//! What the backend receives: one JSON object per event, the same bytes on every attempt.
//!
//! Every event has `id` (unique per event, the same on every retry: the backend's key for
//! de-duplication), `event` (`frame`, or the lifecycle event's name), `timestamp` (Unix
//! milliseconds when the node took it), `node`, `user` and `conn`; then what the event adds:
//!
//! | `event` | adds |
//! |---|---|
//! | `frame` | `type`, `data`, `thread` (bound at the time) |
//! | `connect` | `thread` (bound when the event is sent; `null` if it closed already) |
//! | `disconnect` | `code` (the close code, `null` without one), `reason` (its label) |
//! | `join`, `leave` | `room` |
//! | `run_ended` | `run` (the report: run, agent, thread, its first events, those omitted, ending) |

use serde::Serialize;
use serde_json::Value;
use std::time::Instant;
use switchboard::{ClientRef, ConnId, RoomId, RunReport, ThreadId, UserId};

/// One event for the backend, built when the node takes it.
#[derive(Debug, Serialize)]
pub struct Event {
    /// Unique, the same on every retry.
    pub id: String,
    /// `frame` or a lifecycle event's name.
    pub event: &'static str,
    /// When the node took it, Unix milliseconds.
    pub timestamp: u64,
    /// The node that took it.
    pub node: String,
    /// The user.
    pub user: UserId,
    /// The connection (none for `run_ended`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conn: Option<ConnId>,
    /// The event's own fields.
    #[serde(flatten)]
    pub body: Body,
}

/// What an event adds to the common fields.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Body {
    /// A client frame of a forwarded type.
    Frame {
        /// Its `type`.
        #[serde(rename = "type")]
        kind: String,
        /// Its `data`.
        data: Value,
        /// The thread its connection was bound to.
        thread: Option<ThreadId>,
    },
    /// A connection opened; the thread is looked up when the event is sent.
    Connect {
        /// The thread the connection is bound to.
        thread: Option<ThreadId>,
    },
    /// A connection closed.
    Disconnect {
        /// The close code, if the reason has one.
        code: Option<u16>,
        /// The reason's label.
        reason: &'static str,
    },
    /// A connection joined or left a room.
    Room {
        /// The room.
        room: RoomId,
    },
    /// An agent run ended.
    RunEnded {
        /// Its report.
        run: Box<RunReport>,
    },
}

/// Where an event came from, which says who hears how it went.
#[derive(Debug)]
pub enum Origin {
    /// A lifecycle event: only the logs and the metrics.
    Lifecycle,
    /// A client frame: its sender gets the `reply` or the `error` (a frame without `ref`
    /// only an `error`).
    Frame {
        /// The frame's `ref`.
        reference: Option<ClientRef>,
    },
}

/// An event on its way.
#[derive(Debug)]
pub struct Job {
    /// The event.
    pub event: Event,
    /// Where it came from.
    pub origin: Origin,
    /// When the node took it: its age bounds its retries.
    pub taken: Instant,
}
