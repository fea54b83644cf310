//! Building blocks shared by the delivery and resume specifications: a small configuration whose
//! budgets a test can reach in a few messages, agent run updates, and readers for the frames a
//! recorded client received.
#![allow(dead_code)]

pub mod sequencer;

use serde_json::{json, Value};
use std::time::Duration;
use switchboard::testing::Harness;
use switchboard::{
    AgentEvent, AgentUpdate, BackpressureConfig, Config, ConnId, Delivery, HistoryConfig, Message,
    Position, Reason, StreamId, Target,
};

/// Bytes a connection may have in flight before the hub queues for it.
pub const INFLIGHT: usize = 2048;
/// Frames a connection may have queued past its in-flight budget.
pub const QUEUE: usize = 8;
/// Messages kept per stream.
pub const HISTORY: usize = 16;
/// Age after which a message leaves history.
pub const MAX_AGE: Duration = Duration::from_secs(60);
/// Interval of the clean-up sweep that enforces `MAX_AGE`.
pub const CLEANUP: Duration = Duration::from_secs(1);

/// A configuration with small budgets: 2 KiB in flight, 8 queued frames, 16 messages of
/// history kept for a minute.
pub fn small_config() -> Config {
    let mut config = Config::development();
    config.backpressure = BackpressureConfig {
        inflight_bytes: INFLIGHT,
        queue_messages: QUEUE,
        queue_bytes: 64 * 1024,
        ..config.backpressure
    };
    config.history = HistoryConfig {
        max_messages: HISTORY,
        max_bytes: 64 * 1024,
        max_age: MAX_AGE,
        ..Config::development().history
    };
    config.backpressure.replay_messages =
        BackpressureConfig::replay_messages_for(&config.limits, &config.history);
    config.cleanup_interval = CLEANUP;
    config
}

/// A harness around a hub with [`small_config`].
pub fn harness() -> Harness {
    Harness::new(small_config())
}

/// A reliable message named `event` with a small payload.
pub fn msg(event: &str) -> Message {
    Message::new(event, json!({ "name": event }))
}

/// A reliable message named `event` with a payload of about 400 bytes, so that a few of them
/// exceed the in-flight budget.
pub fn big(event: &str) -> Message {
    Message::new(event, json!({ "name": event, "pad": "x".repeat(400) }))
}

/// Names `m1`..`m{n}` (inclusive range of indices).
pub fn names(range: std::ops::RangeInclusive<usize>) -> Vec<String> {
    range.map(|i| format!("m{i}")).collect()
}

/// Publish `m{i}` for every `i` of `range` to `to`; returns the deliveries.
pub fn publish_each(
    h: &mut Harness,
    to: &Target,
    range: std::ops::RangeInclusive<usize>,
) -> Vec<Delivery> {
    range
        .map(|i| h.publish(to.clone(), msg(&format!("m{i}"))))
        .collect()
}

/// The target of every connection of `user`.
pub fn user(user: &str) -> Target {
    Target::User(user.into())
}

/// The target of a room.
pub fn room(room: &str) -> Target {
    Target::Room(room.into())
}

/// The target of one thread of `user`.
pub fn thread(user: &str, thread: &str) -> Target {
    Target::Thread {
        user: user.into(),
        thread: thread.into(),
    }
}

/// The stream of `user`.
pub fn user_stream(user: &str) -> StreamId {
    StreamId::User(user.into())
}

/// The stream of a room.
pub fn room_stream(room: &str) -> StreamId {
    StreamId::Room(room.into())
}

/// `conn` joins `room` (without `since`) and the hub answers `joined`.
pub fn join(h: &mut Harness, conn: ConnId, room: &str) {
    h.send(conn, &json!({"type": "join", "room": room}).to_string());
    let joined = h.frames_of(conn, "joined");
    assert!(
        joined.iter().any(|f| f["room"] == room),
        "{conn:?} did not join {room}: {:?}",
        h.frames(conn)
    );
}

/// `conn` sends a `resume` frame for one stream at `position`, with `ref` set to `reference`.
pub fn send_resume(
    h: &mut Harness,
    conn: ConnId,
    stream: &StreamId,
    position: Position,
    reference: u64,
) {
    let frame = json!({
        "type": "resume",
        "ref": reference,
        "streams": [{"stream": stream, "epoch": position.epoch, "seq": position.seq}],
    });
    h.send(conn, &frame.to_string());
}

/// `conn` sends a `join` with `since`.
pub fn join_since(h: &mut Harness, conn: ConnId, room: &str, since: Position) {
    let frame = json!({
        "type": "join",
        "room": room,
        "since": {"epoch": since.epoch, "seq": since.seq},
    });
    h.send(conn, &frame.to_string());
}

/// A short label per frame: the `event` of a `message`, the `type` of anything else.
pub fn labels(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .map(|f| match f["type"].as_str() {
            Some("message") => f["event"].as_str().unwrap_or_default().to_owned(),
            Some(kind) => kind.to_owned(),
            None => String::new(),
        })
        .collect()
}

/// The labels of the frames that `conn` took since the last [`Harness::take`].
pub fn take_labels(h: &mut Harness, conn: ConnId) -> Vec<String> {
    labels(&h.take(conn))
}

/// The `seq` of every frame of `stream`, in the order received.
pub fn seqs(frames: &[Value], stream: &StreamId) -> Vec<u64> {
    let stream = stream.to_string();
    frames
        .iter()
        .filter(|f| f["stream"] == stream.as_str() && f["seq"].is_u64())
        .filter(|f| !matches!(f["type"].as_str(), Some("welcome" | "joined" | "resumed")))
        .map(|f| f["seq"].as_u64().expect("checked"))
        .collect()
}

/// The epoch the `welcome` frame of `conn` announced.
pub fn welcome_epoch(h: &Harness, conn: ConnId) -> u64 {
    let welcome = &h.frames_of(conn, "welcome")[0];
    welcome["epoch"].as_u64().expect("welcome has an epoch")
}

/// The position of `conn`'s client on `stream` (what it read last).
pub fn client_position(h: &Harness, conn: ConnId, stream: &StreamId) -> Position {
    h.client(conn).positions[stream]
}

/// How many drops of `reason` the hub counted.
pub fn drops(h: &Harness, reason: Reason) -> u64 {
    h.hub().stats().counters.drops.get(reason)
}

/// How many closes for `reason` the hub counted.
pub fn closes(h: &Harness, reason: Reason) -> u64 {
    h.hub().stats().counters.closes.get(reason)
}

/// Frames queued for `conn` past its in-flight budget.
pub fn queued(h: &Harness, conn: ConnId) -> usize {
    h.hub()
        .connection_info(conn)
        .expect("open connection")
        .queued_messages
}

/// The names [`fill_queue`] gives its first `n` messages: `fill1`..`fill{n}`.
pub fn fills(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("fill{i}")).collect()
}

/// Publish big reliable messages `fill1`, `fill2`, ... to `to` until `conn` (which must not be
/// reading) has `n` frames queued. Returns how many were published.
pub fn fill_queue(h: &mut Harness, to: &Target, conn: ConnId, n: usize) -> usize {
    let mut published = 0;
    while queued(h, conn) < n {
        published += 1;
        h.publish(to.clone(), big(&format!("fill{published}")));
        assert!(h.closed(conn).is_none(), "closed while filling its queue");
    }
    published
}

// ----- agent runs ---------------------------------------------------------------------------

/// Publish one event of `user`'s run `run` (on `thread`, if any); panics if refused.
pub fn agent(
    h: &mut Harness,
    user: &str,
    run: &str,
    thread: Option<&str>,
    event: AgentEvent,
) -> Delivery {
    let update = AgentUpdate {
        run: run.into(),
        agent: "planner".into(),
        thread: thread.map(Into::into),
        event,
    };
    let user = user.into();
    h.with_hub(|hub, now| hub.send_agent_update(now, &user, update))
        .expect("event in order")
}

/// `agent_started`.
pub fn started() -> AgentEvent {
    AgentEvent::AgentStarted { data: json!(null) }
}

/// `agent_thinking` with `thought`.
pub fn thinking(thought: &str) -> AgentEvent {
    AgentEvent::AgentThinking {
        thought: thought.to_owned(),
    }
}

/// `tool_executing` of `tool`.
pub fn tool_executing(tool: &str) -> AgentEvent {
    AgentEvent::ToolExecuting {
        tool: tool.to_owned(),
        call_id: None,
        input: json!(null),
    }
}

/// `tool_completed` of `tool`.
pub fn tool_completed(tool: &str) -> AgentEvent {
    AgentEvent::ToolCompleted {
        tool: tool.to_owned(),
        call_id: None,
        output: json!(null),
    }
}

/// `agent_completed`.
pub fn completed() -> AgentEvent {
    AgentEvent::AgentCompleted {
        result: json!(null),
    }
}

/// The agent frames (of any run) among `frames`, as (type, run, seq).
pub fn run_frames(frames: &[Value]) -> Vec<(String, String, u64)> {
    frames
        .iter()
        .filter(|f| f["run"].is_string())
        .map(|f| {
            (
                f["type"].as_str().unwrap_or_default().to_owned(),
                f["run"].as_str().unwrap_or_default().to_owned(),
                f["seq"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// The types of the agent frames of `run` among `frames`, in order.
pub fn run_kinds(frames: &[Value], run: &str) -> Vec<String> {
    run_frames(frames)
        .into_iter()
        .filter(|(_, r, _)| r == run)
        .map(|(kind, _, _)| kind)
        .collect()
}

/// The thoughts of the `agent_thinking` frames among `frames`, in order.
pub fn thoughts(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .filter(|f| f["type"] == "agent_thinking")
        .map(|f| f["thought"].as_str().unwrap_or_default().to_owned())
        .collect()
}

// ----- driving a hub directly ---------------------------------------------------------------

/// Every output `hub` has, drained in order (the drain invariant).
pub fn drain(hub: &mut switchboard::Hub) -> Vec<switchboard::Output> {
    std::iter::from_fn(|| hub.poll_output()).collect()
}

/// The frames among `outputs` written to `conn`, in order.
pub fn sent_to(outputs: &[switchboard::Output], conn: ConnId) -> Vec<bytes::Bytes> {
    outputs
        .iter()
        .filter_map(|o| match o {
            switchboard::Output::Socket(switchboard::SocketOutput::Send { conn: c, frame })
                if *c == conn =>
            {
                Some(frame.clone())
            }
            _ => None,
        })
        .collect()
}

/// The notices among `outputs`, in order.
pub fn notices_in(outputs: &[switchboard::Output]) -> Vec<switchboard::Notice> {
    outputs
        .iter()
        .filter_map(|o| match o {
            switchboard::Output::Notice(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

/// A frame as JSON.
pub fn parse(frame: &[u8]) -> Value {
    serde_json::from_slice(frame).expect("the hub sends JSON")
}

// ----- reading client frames ----------------------------------------------------------------

/// The `code` of every `error` frame among `frames`, in order.
pub fn error_codes(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .filter(|f| f["type"] == "error")
        .map(|f| f["code"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The `type` of every frame among `frames`, in order.
pub fn types(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .map(|f| f["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The head of `stream` in the hub.
pub fn head(h: &Harness, stream: &StreamId) -> Position {
    h.hub().stream_position(stream).expect("stream kept")
}
