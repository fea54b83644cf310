//! The backend HTTP API under `/api`: publish, agent-run events, presence, stats, disconnect.
//!
//! Every route needs `Authorization: Bearer <api key>` (401 otherwise). Bodies are JSON; a body
//! that does not parse or names an impossible target is a 400 with `{"error": code, "message"}`,
//! a body over the configured size a 413. `docs/API.md` lists every route with a curl example.

use crate::auth::same_secret;
use crate::state::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use switchboard::{
    AgentEvent, AgentUpdate, ConnId, ConnectionInfo, Delivery, Message, Position, PublishError,
    Target,
};
use switchboard_tokio::{Error, Handle};

/// The API routes, to be nested under `/api`.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/publish", post(publish))
        .route("/runs/{user}/{run}/events", post(agent_event))
        .route("/stats", get(stats))
        .route("/users/{user}", get(user_presence))
        .route("/users/{user}/disconnect", post(disconnect))
        .route("/rooms/{room}", get(room_members))
}

/// An API failure: a status and a stable code with a message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": self.code, "message": self.message}));
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("valid"));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "body_too_large"
        } else {
            "bad_request"
        };
        // Axum answers 415 for a missing JSON content type and 422 for a body of the wrong
        // shape; to the API both are a request it cannot read: 400.
        let status = match status {
            StatusCode::PAYLOAD_TOO_LARGE => status,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, code, rejection.body_text())
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e {
            Error::UnknownConnection(_) | Error::Publish(PublishError::UnknownConnection(_)) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_connection", message)
            }
            Error::Publish(PublishError::Run(_)) => {
                ApiError::new(StatusCode::CONFLICT, "run_order", message)
            }
            Error::Publish(PublishError::TooManyRuns(_)) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_runs", message)
            }
            Error::Room(_) => ApiError::new(StatusCode::CONFLICT, "room", message),
            Error::Stopped => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", message)
            }
        }
    }
}

/// Check the API key of a request.
pub fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(key) if same_secret(key, &state.api_key) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "wrong API key",
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing `Authorization: Bearer <api key>`",
        )),
    }
}

/// Where a published message goes, as written in a request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetSpec {
    /// Every connection of a user.
    User(String),
    /// Every member of a room.
    Room(String),
    /// The user's connections bound to a thread.
    Thread {
        /// The user.
        user: String,
        /// The thread.
        thread: String,
    },
    /// One connection, by the id its `welcome` frame gave.
    Connection(String),
    /// Every open connection.
    All,
}

/// One target or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Targets {
    /// One target.
    One(TargetSpec),
    /// Several: the message is published to each.
    Many(Vec<TargetSpec>),
}

/// `POST /api/publish`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// Where to: `{"user": "alice"}`, `{"room": "lobby"}`, `{"thread": {"user", "thread"}}`,
    /// `{"connection": "3.0"}`, `"all"`, or an array of those.
    pub to: Targets,
    /// Connection ids to leave out.
    #[serde(default)]
    pub except: Vec<String>,
    /// The event name clients see.
    pub event: String,
    /// Any JSON.
    #[serde(default)]
    pub data: Value,
    /// Publish in the lossy lane under this coalescing key (not sequenced, not kept).
    #[serde(default)]
    pub ephemeral: Option<String>,
}

/// What one publish did, as answered.
#[derive(Debug, Serialize)]
pub struct DeliveryView {
    /// Connections reached.
    pub reached: usize,
    /// Kept for a connection of the user that is not open yet.
    pub buffered: bool,
    /// The stream position given to the message, if sequenced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        DeliveryView {
            reached: d.reached,
            buffered: d.buffered,
            position: d.position,
        }
    }
}

fn parse_conn(s: &str) -> Result<ConnId, ApiError> {
    s.parse()
        .map_err(|_| ApiError::bad_request(format!("{s:?} is not a connection id like \"3.0\"")))
}

fn nonempty<'a>(what: &str, s: &'a str) -> Result<&'a str, ApiError> {
    if s.is_empty() {
        Err(ApiError::bad_request(format!("empty {what}")))
    } else {
        Ok(s)
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

async fn publish(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Json<PublishRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let Json(req) = body?;
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
    if let Some(key) = req.ephemeral {
        message = message.ephemeral(key);
    }
    let mut deliveries = Vec::with_capacity(targets.len());
    for t in targets {
        let delivery = state
            .handle
            .publish_except(t, except.iter().copied(), message.clone())
            .await?;
        deliveries.push(DeliveryView::from(delivery));
    }
    let reached: usize = deliveries.iter().map(|d| d.reached).sum();
    Ok(Json(json!({"reached": reached, "deliveries": deliveries})))
}

/// `POST /api/runs/{user}/{run}/events`: one agent-run event.
#[derive(Debug, Deserialize)]
pub struct AgentEventRequest {
    /// The agent (taken from `agent_started`).
    #[serde(default)]
    pub agent: Option<String>,
    /// The run's thread (taken from `agent_started`).
    #[serde(default)]
    pub thread: Option<String>,
    /// The event, tagged by `event`.
    #[serde(flatten)]
    pub event: AgentEvent,
}

async fn agent_event(
    State(state): State<Arc<AppState>>,
    Path((user, run)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Json<AgentEventRequest>, JsonRejection>,
) -> Result<Json<DeliveryView>, ApiError> {
    authorize(&state, &headers)?;
    let Json(req) = body?;
    let update = AgentUpdate {
        run: run.as_str().into(),
        agent: req.agent.as_deref().unwrap_or("agent").into(),
        thread: req.thread.as_deref().map(Into::into),
        event: req.event,
    };
    let delivery = state
        .handle
        .send_agent_update(user.as_str(), update)
        .await?;
    Ok(Json(delivery.into()))
}

async fn stats(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let s = state.handle.stats().await.total;
    let c = &s.counters;
    let closes: serde_json::Map<String, Value> = c
        .closes
        .iter()
        .map(|(r, n)| (r.to_string(), json!(n)))
        .collect();
    let drops: serde_json::Map<String, Value> = c
        .drops
        .iter()
        .map(|(r, n)| (r.to_string(), json!(n)))
        .collect();
    Ok(Json(json!({
        "connections": s.connections,
        "users": s.users,
        "rooms": s.rooms,
        "threads": s.threads,
        "streams": s.streams,
        "runs_active": s.runs_active,
        "queued_messages": s.queued_messages,
        "queued_bytes": s.queued_bytes,
        "history_messages": s.history_messages,
        "history_bytes": s.history_bytes,
        "health": s.health,
        "counters": {
            "opened": c.opened,
            "refused": c.refused,
            "publishes": c.publishes,
            "messages_in": c.messages_in,
            "messages_out": c.messages_out,
            "bytes_in": c.bytes_in,
            "bytes_out": c.bytes_out,
            "closes": closes,
            "drops": drops,
        },
    })))
}

/// Snapshots of `conns`, leaving out any that closed meanwhile.
async fn infos(handle: &Handle, conns: Vec<ConnId>) -> Vec<ConnectionInfo> {
    let mut infos = Vec::with_capacity(conns.len());
    for conn in conns {
        infos.extend(handle.connection_info(conn).await);
    }
    infos
}

fn connection_view(info: &ConnectionInfo) -> Value {
    json!({
        "id": info.id.to_string(),
        "user": info.user.as_str(),
        "thread": info.thread.as_ref().map(|t| t.as_str()),
        "rooms": info.rooms.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        "health": info.health,
        "rtt_ms": info.rtt.last.map(|d| d.as_secs_f64() * 1000.0),
        "messages_in": info.traffic.messages_in,
        "messages_out": info.traffic.messages_out,
        "queued_messages": info.queued_messages,
    })
}

async fn user_presence(
    State(state): State<Arc<AppState>>,
    Path(user): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let conns = state.handle.user_connections(user.as_str()).await;
    let conns = infos(&state.handle, conns).await;
    Ok(Json(json!({
        "user": user,
        "connected": !conns.is_empty(),
        "connections": conns.iter().map(connection_view).collect::<Vec<_>>(),
    })))
}

async fn room_members(
    State(state): State<Arc<AppState>>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let members = state.handle.room_members(room.as_str()).await;
    let members = infos(&state.handle, members).await;
    Ok(Json(json!({
        "room": room,
        "members": members.iter().map(connection_view).collect::<Vec<_>>(),
    })))
}

async fn disconnect(
    State(state): State<Arc<AppState>>,
    Path(user): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let closed = match &state.bridge {
        // On every node; this node's connections are closed even if Redis is unreachable.
        Some(bridge) => {
            let (closed, told_others) = bridge.disconnect_user(user.as_str()).await;
            if let Err(e) = told_others {
                tracing::warn!(%user, error = %e, "could not disconnect the user on other nodes");
            }
            closed
        }
        None => state.handle.disconnect_user(user.as_str()).await,
    };
    Ok(Json(json!({"user": user, "closed": closed})))
}
