//! The backend HTTP API under `/api`: publish, agent-run events, presence, stats, disconnect;
//! and the identity routes ([`identity`]): tickets and revocations.
//!
//! Every route needs `Authorization: Bearer <api key>`, checked before a byte of the body is
//! read (401 at once otherwise). Bodies are JSON; a body that does not parse or names an
//! impossible target is a 400 with `{"error": code, "message"}`, a body over the configured
//! size a 413, a body that stalls longer than `http.body_timeout_secs` between two chunks or a
//! request that takes longer than `http.request_timeout_secs` as a whole a 408. While the
//! server shuts down, writes it would lose are a 503 `shutting_down` ([`crate::lifecycle`]).
//! `docs/API.md` lists every route with a curl example.

pub mod identity;

use identity::DisconnectRequest;

use crate::auth::same_secret;
use crate::lifecycle::{ShuttingDown, Write};
use crate::settings::HttpLimits;
use crate::state::AppState;
use axum::body::Bytes;
use axum::error_handling::HandleErrorLayer;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{BoxError, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use switchboard::{
    AgentEvent, AgentUpdate, ConnId, ConnectionInfo, Delivery, Message, Position, PublishError,
    Target,
};
use switchboard_tokio::{Error, Handle};
use tower::ServiceBuilder;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutError};

/// The API routes, to be nested under `/api`: the key is checked first, bodies are limited to
/// `max_body_bytes` and read under `limits`' body and request timeouts.
pub fn routes(
    state: Arc<AppState>,
    limits: &HttpLimits,
    max_body_bytes: usize,
) -> Router<Arc<AppState>> {
    Router::new()
        .route("/publish", post(publish))
        .route("/runs/{user}/{run}/events", post(agent_event))
        .route("/stats", get(stats))
        .route("/users/{user}", get(user_presence))
        .route("/users/{user}/disconnect", post(disconnect))
        .route("/rooms/{room}", get(room_members))
        .route("/tickets", post(identity::issue_ticket))
        .route("/tokens/revoke", post(identity::revoke_token))
        // Outermost last: the whole-request timeout, then the key, then the body's bounds.
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(RequestBodyTimeoutLayer::new(limits.body_timeout))
        .layer(middleware::from_fn_with_state(state, require_api_key))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(request_timed_out))
                .timeout(limits.request_timeout),
        )
}

/// The only error of the timeout layer: the request took too long as a whole.
async fn request_timed_out(_: BoxError) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        "the request took longer than the server's request timeout (http.request_timeout_secs)",
    )
}

/// Refuse a request without the API key before its body is read.
async fn require_api_key(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    match authorize(&state, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

/// An API failure: a status and a stable code with a message; a 401 also names its stable
/// reason.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    reason: Option<&'static str>,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            reason: None,
            message: message.into(),
        }
    }

    /// A 401 `unauthorized` for a stable `reason` (with `WWW-Authenticate: Bearer`).
    pub fn unauthorized(reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            reason: Some(reason),
            ..Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.code, "message": self.message});
        if let Some(reason) = self.reason {
            body["reason"] = reason.into();
        }
        let body = Json(body);
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
        let mut causes = std::iter::successors(
            Some(&rejection as &(dyn std::error::Error + 'static)),
            |e| e.source(),
        );
        if causes.any(|e| e.is::<TimeoutError>()) {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                "the request body stalled longer than the server's body timeout \
                 (http.body_timeout_secs)",
            );
        }
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

impl From<ShuttingDown> for ApiError {
    fn from(_: ShuttingDown) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "this node is shutting down and would lose the message: send it to another node",
        )
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
        Some(key) if same_secret(key, state.api_key.expose()) => Ok(()),
        Some(_) => Err(ApiError::unauthorized("wrong_key", "wrong API key")),
        None => Err(ApiError::unauthorized(
            "missing",
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

async fn publish(
    State(state): State<Arc<AppState>>,
    body: Result<Json<PublishRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
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
    let write = durability(&targets, req.ephemeral.is_some());
    if let Some(key) = req.ephemeral {
        message = message.ephemeral(key);
    }
    let _taken = state.lifecycle.admit(write).await?;
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
    body: Result<Json<AgentEventRequest>, JsonRejection>,
) -> Result<Json<DeliveryView>, ApiError> {
    let Json(req) = body?;
    let user = nonempty("user id", &user)?;
    let update = AgentUpdate {
        run: nonempty("run id", &run)?.into(),
        agent: nonempty("agent", req.agent.as_deref().unwrap_or("agent"))?.into(),
        thread: req
            .thread
            .as_deref()
            .map(|thread| nonempty("thread", thread))
            .transpose()?
            .map(Into::into),
        event: req.event,
    };
    let _taken = state.lifecycle.admit(Write::SharedHistory).await?;
    let delivery = state.handle.send_agent_update(user, update).await?;
    Ok(Json(delivery.into()))
}

async fn stats(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
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
) -> Result<Json<Value>, ApiError> {
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
) -> Result<Json<Value>, ApiError> {
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
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request = DisconnectRequest::from_body(&body.map_err(JsonRejection::from)?)?;
    // Revoke first: a client closed below must not get back in with the same credential.
    let revoked = match request.revoke {
        true => Some(
            state
                .auth
                .revocations
                .revoke_user(&user.as_str().into())
                .await,
        ),
        false => None,
    };
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
    match revoked {
        None => Ok(Json(json!({"user": user, "closed": closed}))),
        Some(Ok(cutoff)) => Ok(Json(
            json!({"user": user, "closed": closed, "cutoff": cutoff}),
        )),
        Some(Err(e)) => Err(e.into()),
    }
}
