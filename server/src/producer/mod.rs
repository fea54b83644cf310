//! The producer channel: `GET /api/producer`, a WebSocket over which a producer sends its run
//! events (one JSON object per text frame, as the body of `POST /api/runs/{user}/{run}/events`
//! plus `user`, `run` and an optional `ref`), each answered in order with an `ack` carrying the
//! event's delivery (its position in the user's stream) or an `error` with the status and body
//! the HTTP API would give. The server hands the producer the cancels its clients ask for
//! (`{"type":"cancel","user","run"}`: [`registry`]).
//!
//! Bounds: one event is handled at a time and at most `producer.max_in_flight` answers wait to
//! be written; once they do, the server stops reading the socket, so a producer that sends
//! faster than its events are taken (or reads no answer) is held back by TCP. A frame is at
//! most `max_body_bytes`. A bad frame (not JSON, not an event, binary) is answered with an
//! `error` and takes a strike; past `producer.max_strikes` the channel closes with 1008.
//!
//! Liveness: the server pings every `producer.ping_interval_secs`; a channel that sends nothing
//! (not even a pong) for `producer.timeout_secs` is dead and closed (1001), as is one that reads
//! no answer for as long (4008). However the channel ends, every run it started and that is
//! still in progress ends at once with `producer_lost`; runs sent over HTTP are not affected.

pub mod registry;

use crate::api::{agent_update, authorize, send_agent_update, AgentEventRequest, ApiError};
use crate::api::{DeliveryView, ErrorBody};
use crate::state::AppState;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use registry::{CancelOrder, ChannelId, CANCELS_QUEUED};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use switchboard::{EventKind, RunId, UserId, MAX_REF_BYTES};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Open a producer channel: the API key is checked before the upgrade (401 otherwise).
pub async fn connect(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Err(refused) = authorize(&state, &headers) {
        return refused.into_response();
    }
    upgrade
        .max_message_size(state.max_body_bytes)
        .max_frame_size(state.max_body_bytes)
        .on_upgrade(move |socket| serve(state, socket))
}

/// One frame from the producer.
#[derive(Deserialize)]
struct EventFrame {
    user: String,
    run: String,
    #[serde(flatten)]
    request: AgentEventRequest,
}

/// Only the `ref` of a frame, read first so that even a frame that is not an event has its
/// `ref` echoed.
#[derive(Deserialize)]
struct Head {
    #[serde(rename = "ref", default)]
    reference: Option<Value>,
}

/// A channel's state: the runs it owns and the strikes it took.
struct Channel {
    id: ChannelId,
    owned: HashSet<(UserId, RunId)>,
    strikes: u32,
    cancels: mpsc::Sender<CancelOrder>,
}

/// Why the server ends a channel, when it is the one ending it.
fn close(code: u16, reason: &'static str) -> Option<CloseFrame> {
    Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    })
}

async fn serve(state: Arc<AppState>, socket: WebSocket) {
    let limits = state.producer;
    let (sink, mut stream) = socket.split();
    let (answers, queued) = mpsc::channel(limits.max_in_flight);
    let (cancels, cancel_orders) = mpsc::channel(CANCELS_QUEUED);
    let writer = tokio::spawn(write(sink, queued, cancel_orders, limits.ping_interval));
    let mut channel = Channel {
        id: state.producers.channel(),
        owned: HashSet::new(),
        strikes: 0,
        cancels,
    };
    let closing = loop {
        let message = match timeout(limits.timeout, stream.next()).await {
            Err(_) => break close(1001, "no frame and no pong within producer.timeout_secs"),
            Ok(None) | Ok(Some(Ok(Message::Close(_)))) => break None,
            Ok(Some(Err(e))) => break read_error(e),
            Ok(Some(Ok(message))) => message,
        };
        let answer = match message {
            Message::Text(text) => channel.event(&state, text.as_str()).await,
            Message::Binary(_) => channel.refuse(
                None,
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "binary_frame",
                    "events are JSON text frames",
                ),
            ),
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => continue,
        };
        if channel.strikes > limits.max_strikes {
            break close(1008, "too many bad frames");
        }
        // Waiting here is the backpressure: the socket is not read meanwhile.
        match timeout(limits.timeout, answers.send(Message::Text(answer.into()))).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break None,
            Err(_) => break close(4008, "answers unread for producer.timeout_secs"),
        }
    };
    channel.lose_runs(&state).await;
    if let Some(frame) = closing {
        let _ = answers.try_send(Message::Close(Some(frame)));
    }
    drop(answers);
    // The writer ends after the close frame, or when the peer is gone; one that cannot write
    // (the peer reads nothing) is not waited for.
    let mut writer = writer;
    if timeout(limits.ping_interval, &mut writer).await.is_err() {
        writer.abort();
    }
}

impl Channel {
    /// Handle one event frame; the answer to write back.
    async fn event(&mut self, state: &AppState, text: &str) -> String {
        let reference = match serde_json::from_str::<Head>(text) {
            Ok(head) => head.reference,
            Err(e) => return self.refuse(None, bad_request(format!("not a JSON object: {e}"))),
        };
        if reference
            .as_ref()
            .is_some_and(|r| r.to_string().len() > MAX_REF_BYTES)
        {
            let message = format!("`ref` is longer than {MAX_REF_BYTES} bytes");
            return self.refuse(None, bad_request(message));
        }
        let frame = match serde_json::from_str::<EventFrame>(text) {
            Ok(frame) => frame,
            Err(e) => return self.refuse(reference, bad_request(format!("not an event: {e}"))),
        };
        let (user, update) = match agent_update(&frame.user, &frame.run, frame.request) {
            Ok(checked) => checked,
            Err(e) => return self.refuse(reference, e),
        };
        let key = (user.clone(), update.run.clone());
        let kind = update.event.kind();
        match send_agent_update(state, user, update).await {
            Ok(delivery) => {
                self.accepted(state, key.clone(), kind);
                let mut ack = object(DeliveryView::from(delivery));
                ack.insert("type".into(), json!("ack"));
                ack.insert("run".into(), json!(key.1));
                answer(ack, reference)
            }
            // A refusal of the hub is not the channel's fault: no strike, as over HTTP.
            Err(e) => error_frame(e, reference),
        }
    }

    /// The channel owns the runs it starts, until they end.
    fn accepted(&mut self, state: &AppState, key: (UserId, RunId), kind: EventKind) {
        if kind == EventKind::AgentStarted {
            (state.producers).own(self.id, key.clone(), self.cancels.clone());
            self.owned.insert(key);
        } else if kind.is_ending() && self.owned.remove(&key) {
            state.producers.release(self.id, &key);
        }
    }

    /// A bad frame: a strike, and its error.
    fn refuse(&mut self, reference: Option<Value>, e: ApiError) -> String {
        self.strikes += 1;
        error_frame(e, reference)
    }

    /// The channel is gone: every run it still owns ends with `producer_lost`.
    async fn lose_runs(&mut self, state: &AppState) {
        for (user, run) in self.owned.drain() {
            state
                .producers
                .release(self.id, &(user.clone(), run.clone()));
            if let Err(e) = state.handle.producer_lost(user, run).await {
                tracing::debug!(error = %e, "producer_lost not delivered: the hubs stopped");
            }
        }
    }
}

fn bad_request(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
}

/// `value` as a JSON object.
fn object(value: impl serde::Serialize) -> Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// An `error` frame: the HTTP status and the body the runs API would answer.
fn error_frame(e: ApiError, reference: Option<Value>) -> String {
    let (status, body): (StatusCode, ErrorBody) = e.into_parts();
    let mut frame = object(body);
    frame.insert("type".into(), json!("error"));
    frame.insert("status".into(), json!(status.as_u16()));
    answer(frame, reference)
}

/// `frame` with the `ref` echoed, as text.
fn answer(mut frame: Map<String, Value>, reference: Option<Value>) -> String {
    if let Some(reference) = reference {
        frame.insert("ref".into(), reference);
    }
    Value::Object(frame).to_string()
}

/// The close frame for a read that failed: a frame over the size limit (1009), text that is
/// not UTF-8 (1007), a protocol violation (1002); nothing to send when the peer is gone.
fn read_error(e: axum::Error) -> Option<CloseFrame> {
    use tungstenite::error::{CapacityError, Error};
    let inner = e.into_inner();
    match inner.downcast_ref::<Error>() {
        Some(Error::Capacity(CapacityError::MessageTooLong { .. })) => {
            close(1009, "frame larger than max_body_bytes")
        }
        Some(Error::Utf8(_)) => close(1007, "text frame that is not UTF-8"),
        Some(Error::Protocol(_)) => close(1002, "WebSocket protocol violation"),
        _ => None,
    }
}

/// Write the answers in order, the cancels of the channel's runs, and a ping every
/// `ping_interval`, until the answers end (the reader is done) or the peer is gone.
async fn write(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut answers: mpsc::Receiver<Message>,
    mut cancels: mpsc::Receiver<CancelOrder>,
    ping_interval: Duration,
) {
    let mut pings = tokio::time::interval(ping_interval);
    pings.tick().await;
    loop {
        let message = tokio::select! {
            biased;
            answer = answers.recv() => match answer {
                Some(answer) => answer,
                None => break,
            },
            Some(order) = cancels.recv() => {
                let mut frame = object(order);
                frame.insert("type".into(), json!("cancel"));
                Message::Text(Value::Object(frame).to_string().into())
            }
            _ = pings.tick() => Message::Ping(Default::default()),
        };
        let last = matches!(message, Message::Close(_));
        if sink.send(message).await.is_err() || last {
            break;
        }
    }
}
