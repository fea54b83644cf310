//! `POST /api/publish/batch`: several publish requests in one, each with its own targets and
//! its own answer, handed to the shards in one command per shard.
//!
//! The body is `{"messages": [...]}`, each element what `POST /api/publish` takes. What cannot
//! be read as a whole (not JSON, no `messages` array, an empty one) is a 400 and nothing is
//! published; more than `max_publish_batch` messages is a 413 `too_many_messages`, the body
//! over `max_body_bytes` a 413 `body_too_large`, and nothing is published either. Past that,
//! each message is answered on its own, in order, with the status and body `POST /api/publish`
//! would have answered it: one that is malformed or names a connection that is not open is
//! refused alone, the others are published. The answer comes once the shards have taken
//! every message (numbered it and queued its frames to each connection's writer): it waits
//! for no socket write.

use super::publish::{answer, Checked};
use super::{ApiError, ErrorBody, PublishRequest, PublishResponse};
use crate::lifecycle::{ShuttingDown, Write, WritePermit};
use crate::state::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::sync::Arc;
use utoipa::ToSchema;

/// The most messages of one batch by default (`max_publish_batch`).
pub const DEFAULT_MAX_PUBLISH_BATCH: usize = 1000;

/// `POST /api/publish/batch`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishBatchRequest {
    /// The messages, published in this order: each what `POST /api/publish` takes. 1 to
    /// `max_publish_batch` (default 1000) of them.
    #[schema(value_type = Vec<PublishRequest>)]
    pub messages: Vec<Box<RawValue>>,
}

/// How one message of a batch was answered.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Outcome {
    /// Published: what `POST /api/publish` answers with 200.
    Published(PublishResponse),
    /// Refused: the error `POST /api/publish` would have answered.
    Refused(ErrorBody),
}

/// The answer to one message of a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResult {
    /// The status `POST /api/publish` would have answered: 200 when published.
    pub status: u16,
    /// Its body.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The answer to `POST /api/publish/batch`: one result per message, in order.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishBatchResponse {
    /// Connections reached, over every message published.
    pub reached: usize,
    /// Messages refused (their `status` is not 200).
    pub refused: usize,
    /// What became of each message, in the order of `messages`.
    pub results: Vec<BatchResult>,
}

impl BatchResult {
    fn of(answer: Result<PublishResponse, ApiError>) -> Self {
        match answer {
            Ok(published) => BatchResult {
                status: StatusCode::OK.as_u16(),
                outcome: Outcome::Published(published),
            },
            Err(refused) => {
                let (status, body) = refused.into_parts();
                BatchResult {
                    status: status.as_u16(),
                    outcome: Outcome::Refused(body),
                }
            }
        }
    }
}

/// Which writes the node takes now: the permit holds the phase until the batch is handed over,
/// as [`crate::lifecycle::Lifecycle::admit`]'s does for one publish.
async fn admitted(state: &AppState) -> (Option<WritePermit<'_>>, fn(Write) -> bool) {
    // Serving takes every write; draining only what the shared history keeps. One permit at
    // a time: a second read of the phase while shutdown waits to change it would deadlock.
    match state.lifecycle.admit(Write::ThisNode).await {
        Ok(permit) => (Some(permit), |_| true),
        Err(ShuttingDown) => match state.lifecycle.admit(Write::SharedHistory).await {
            Ok(permit) => (Some(permit), |w| w == Write::SharedHistory),
            Err(ShuttingDown) => (None, |_| false),
        },
    }
}

/// Several messages, each to its own targets, in one request.
#[utoipa::path(
    post,
    path = "/api/publish/batch",
    tag = "publish",
    request_body = PublishBatchRequest,
    responses(
        (status = 200, description = "Every message answered in order: published (`status` 200, what `POST /api/publish` answers) or refused alone (its status and error)", body = PublishBatchResponse),
        (status = 400, description = "Not JSON, no `messages` array, or an empty one: nothing is published", body = ErrorBody),
        (status = 413, description = "More than `max_publish_batch` messages (`too_many_messages`), or a body larger than `max_body_bytes` (`body_too_large`): nothing is published", body = ErrorBody),
        (status = 503, description = "The switchboard has stopped (the end of a shutdown)", body = ErrorBody),
    )
)]
pub(crate) async fn publish_batch(
    State(state): State<Arc<AppState>>,
    body: Result<Json<PublishBatchRequest>, JsonRejection>,
) -> Result<Json<PublishBatchResponse>, ApiError> {
    let Json(req) = body?;
    let max = state.max_publish_batch;
    if req.messages.is_empty() {
        return Err(ApiError::bad_request(format!(
            "`messages` is empty: a batch holds 1 to {max} messages"
        )));
    }
    if req.messages.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_messages",
            format!(
                "{} messages in one batch: at most {max} (max_publish_batch)",
                req.messages.len()
            ),
        ));
    }
    let (_taken, takes) = admitted(&state).await;
    let checked: Vec<Result<Checked, ApiError>> = req
        .messages
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            let req = serde_json::from_str::<PublishRequest>(raw.get())
                .map_err(|e| ApiError::bad_request(format!("messages[{i}]: {e}")))?;
            let checked = Checked::new(req)?;
            if takes(checked.write) {
                Ok(checked)
            } else {
                Err(ShuttingDown.into())
            }
        })
        .collect();
    let publishes = checked
        .iter()
        .map(|c| c.as_ref().map_or(0, Checked::len))
        .sum();
    let mut to_publish = Vec::with_capacity(publishes);
    let mut plan = Vec::with_capacity(checked.len());
    for c in checked {
        plan.push(c.map(|c| {
            let n = c.len();
            to_publish.extend(c.into_publishes());
            n
        }));
    }
    let mut deliveries = state.handle.publish_batch(to_publish).await?.into_iter();
    let results: Vec<BatchResult> = plan
        .into_iter()
        .map(|targets| {
            // Taken whole, so that a refusal does not leave deliveries for the next message.
            let own = targets.map(|n| deliveries.by_ref().take(n).collect::<Vec<_>>());
            BatchResult::of(own.and_then(answer))
        })
        .collect();
    Ok(Json(PublishBatchResponse {
        reached: results
            .iter()
            .map(|r| match &r.outcome {
                Outcome::Published(p) => p.reached,
                Outcome::Refused(_) => 0,
            })
            .sum(),
        refused: results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Refused(_)))
            .count(),
        results,
    }))
}
