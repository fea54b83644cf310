//! Writing through the API: `POST /api/publish` (one message to one or more targets, in one
//! hand-off to the shards; `batch` sends several such requests in one) and
//! `POST /api/runs/{user}/{run}/events` (an event of an AI-agent run, also what the producer
//! channel sends through), each admitted only while the node takes writes.

use super::{nonempty, parse_conn, ApiError, ErrorBody};
use super::{
    AgentEventRequest, DeliveryView, PublishRequest, PublishResponse, TargetSpec, Targets,
};
use crate::lifecycle::Write;
use crate::state::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::Json;
use std::sync::Arc;
use switchboard::{AgentUpdate, Audience, Delivery, Message, Target, UserId};
use switchboard_tokio::Error as HandleError;

/// What a publish to these targets leaves behind once this process exits.
fn durability(targets: &[Target], ephemeral: bool) -> Write {
    let streams = targets
        .iter()
        .all(|t| matches!(t, Target::User(_) | Target::Room(_) | Target::Thread { .. }));
    if streams && !ephemeral {
        Write::SharedHistory
    } else {
        Write::ThisNode
    }
}

fn target(spec: &TargetSpec) -> Result<Target, ApiError> {
    Ok(match spec {
        TargetSpec::User(u) => Target::User(nonempty("user", u)?.into()),
        TargetSpec::Room(r) => Target::Room(nonempty("room", r)?.into()),
        TargetSpec::Thread { user, thread } => Target::Thread {
            user: nonempty("user", user)?.into(),
            thread: nonempty("thread", thread)?.into(),
        },
        TargetSpec::Connection(c) => Target::Connection(parse_conn(c)?),
        TargetSpec::All => Target::All,
    })
}

/// A publish request, checked: one audience per target, the message, and what publishing it
/// leaves behind (what the lifecycle must admit).
pub(super) struct Checked {
    audiences: Vec<Audience>,
    message: Message,
    pub(super) write: Write,
}

impl Checked {
    /// The request's targets, or a 400 naming what is impossible in it.
    pub(super) fn new(req: PublishRequest) -> Result<Self, ApiError> {
        let except = req
            .except
            .iter()
            .map(|c| parse_conn(c))
            .collect::<Result<Vec<_>, _>>()?;
        let specs = match req.to {
            Targets::One(t) => vec![t],
            Targets::Many(ts) if !ts.is_empty() => ts,
            Targets::Many(_) => return Err(ApiError::bad_request("`to` is an empty list")),
        };
        let targets = specs.iter().map(target).collect::<Result<Vec<_>, _>>()?;
        let mut message = Message::new(nonempty("event", &req.event)?, req.data);
        let write = durability(&targets, req.ephemeral.is_some());
        if let Some(key) = req.ephemeral {
            message = message.ephemeral(key);
        }
        let audiences = targets
            .into_iter()
            .map(|t| t.except(except.iter().copied()))
            .collect();
        Ok(Checked {
            audiences,
            message,
            write,
        })
    }

    /// How many publishes it takes: one per target.
    pub(super) fn len(&self) -> usize {
        self.audiences.len()
    }

    /// The message for each target, in the order of `to`.
    pub(super) fn into_publishes(self) -> impl Iterator<Item = (Audience, Message)> {
        let message = self.message;
        self.audiences
            .into_iter()
            .map(move |audience| (audience, message.clone()))
    }
}

/// The answer to one publish request from what each of its targets' publishes did: the first
/// refusal, or every delivery.
pub(super) fn answer(
    deliveries: impl IntoIterator<Item = Result<Delivery, HandleError>>,
) -> Result<PublishResponse, ApiError> {
    let deliveries = deliveries
        .into_iter()
        .map(|d| d.map(DeliveryView::from))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PublishResponse {
        reached: deliveries.iter().map(|d| d.reached).sum(),
        deliveries,
    })
}

/// Publish one message to one or more targets.
#[utoipa::path(
    post,
    path = "/api/publish",
    tag = "publish",
    request_body = PublishRequest,
    responses(
        (status = 200, description = "Handed or queued to `reached` connections, one delivery per target", body = PublishResponse),
        (status = 400, description = "Not JSON, the wrong shape, or an impossible target", body = ErrorBody),
        (status = 404, description = "A `connection` target that is not open", body = ErrorBody),
        (status = 413, description = "The body is larger than `max_body_bytes`", body = ErrorBody),
        (status = 503, description = "The node is shutting down and would lose the message", body = ErrorBody),
    )
)]
pub(crate) async fn publish(
    State(state): State<Arc<AppState>>,
    body: Result<Json<PublishRequest>, JsonRejection>,
) -> Result<Json<PublishResponse>, ApiError> {
    let Json(req) = body?;
    let checked = Checked::new(req)?;
    let _taken = state.lifecycle.admit(checked.write).await?;
    // Every target in one hand-off to the shards.
    let deliveries = state.handle.publish_batch(checked.into_publishes()).await?;
    Ok(Json(answer(deliveries)?))
}

/// One event of an AI-agent run of `user`, tagged by `event`; order is enforced.
#[utoipa::path(
    post,
    path = "/api/runs/{user}/{run}/events",
    tag = "runs",
    params(
        ("user" = String, Path, description = "The user the run belongs to"),
        ("run" = String, Path, description = "The run id"),
    ),
    request_body = AgentEventRequest,
    responses(
        (status = 200, description = "The event's delivery", body = DeliveryView),
        (status = 400, description = "Not an event, or an empty user, run, agent or thread", body = ErrorBody),
        (status = 409, description = "The event is out of order (`run_order`); a refused message delta names its `reason`, and `expected_offset` when at the wrong offset", body = ErrorBody),
        (status = 429, description = "A new run past the runs in progress allowed (`too_many_runs`)", body = ErrorBody),
        (status = 503, description = "The node is shutting down and would lose the event", body = ErrorBody),
    )
)]
pub(crate) async fn agent_event(
    State(state): State<Arc<AppState>>,
    Path((user, run)): Path<(String, String)>,
    body: Result<Json<AgentEventRequest>, JsonRejection>,
) -> Result<Json<DeliveryView>, ApiError> {
    let Json(req) = body?;
    let (user, update) = agent_update(&user, &run, req)?;
    Ok(Json(send_agent_update(&state, user, update).await?.into()))
}

/// The run event `req` of `user`'s `run`, checked as the runs API checks it: a user, a run id,
/// an agent and a thread must not be empty.
pub(crate) fn agent_update(
    user: &str,
    run: &str,
    req: AgentEventRequest,
) -> Result<(UserId, AgentUpdate), ApiError> {
    let user = nonempty("user id", user)?.into();
    let update = AgentUpdate {
        run: nonempty("run id", run)?.into(),
        agent: nonempty("agent", req.agent.as_deref().unwrap_or("agent"))?.into(),
        thread: req
            .thread
            .as_deref()
            .map(|thread| nonempty("thread", thread))
            .transpose()?
            .map(Into::into),
        event: req.event,
    };
    Ok((user, update))
}

/// Publish one run event as long as the node takes writes (503 `shutting_down` after).
pub(crate) async fn send_agent_update(
    state: &AppState,
    user: UserId,
    update: AgentUpdate,
) -> Result<Delivery, ApiError> {
    let _taken = state.lifecycle.admit(Write::SharedHistory).await?;
    Ok(state.handle.send_agent_update(user, update).await?)
}
