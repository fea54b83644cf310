//! The backend HTTP API under `/api`: publish, agent-run events, presence, stats, disconnect,
//! rooms the backend joins users to; and the identity routes ([`identity`]): tickets and
//! revocations.
//!
//! On a node of a cluster, presence, rooms and stats answer for every node (counts from the
//! Redis presence registry, details of this node's own connections), and disconnect and
//! membership act on every node (through the control channel).
//!
//! Every route needs `Authorization: Bearer <api key>`, checked before a byte of the body is
//! read (401 at once otherwise). Bodies are JSON; a body that does not parse or names an
//! impossible target is a 400 with `{"error": code, "message"}`, a body over the configured
//! size a 413, a body that stalls longer than `http.body_timeout_secs` between two chunks or a
//! request that takes longer than `http.request_timeout_secs` as a whole a 408. While the
//! server shuts down, writes it would lose are a 503 `shutting_down` ([`crate::lifecycle`]).
//! `docs/API.md` lists every route with a curl example.

pub mod identity;
pub(crate) mod membership;

use identity::DisconnectRequest;
use membership::{add_to_room, remove_from_room};
mod views;

pub use views::{
    AgentEventRequest, AgentEventSchema, ClusterView, ConnectionView, CountersView, DeliveryView,
    DisconnectView, ErrorBody, MembershipView, NodeView, PositionSchema, PresenceView,
    PublishRequest, PublishResponse, RoomView, StatsView, TargetSpec, Targets,
};

use crate::auth::same_secret;
use crate::lifecycle::{ShuttingDown, Write};
use crate::openapi;
use crate::settings::HttpLimits;
use crate::state::AppState;
use axum::body::Bytes;
use axum::error_handling::HandleErrorLayer;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::handler::Handler;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, on, MethodFilter, MethodRouter};
use axum::{BoxError, Json, Router};
use std::sync::Arc;
use switchboard::{
    AgentUpdate, ConnId, ConnectionInfo, Delivery, Message, PublishError, RunError, Target, UserId,
};
use switchboard_tokio::{Error, Handle};
use tower::ServiceBuilder;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutError};

/// One `/api` route: its method, its path under `/api`, and its handler.
pub struct ApiRoute {
    /// The HTTP method.
    pub method: Method,
    /// The path under `/api`, with `{name}` for a path parameter.
    pub path: &'static str,
    handler: MethodRouter<Arc<AppState>>,
}

impl ApiRoute {
    fn new<H, T>(method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, Arc<AppState>>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a method axum routes");
        ApiRoute {
            method,
            path,
            handler: on(filter, handler),
        }
    }
}

/// Every `/api` route. The router is built from this list alone, and a test checks that the
/// OpenAPI document (`/api/openapi.json`) describes exactly these routes: a route added here
/// without its `#[utoipa::path]` in the document fails it.
pub fn table() -> Vec<ApiRoute> {
    vec![
        ApiRoute::new(Method::POST, "/publish", publish),
        ApiRoute::new(Method::POST, "/runs/{user}/{run}/events", agent_event),
        ApiRoute::new(Method::GET, "/stats", stats),
        ApiRoute::new(Method::GET, "/users/{user}", user_presence),
        ApiRoute::new(Method::POST, "/users/{user}/disconnect", disconnect),
        ApiRoute::new(Method::POST, "/users/{user}/rooms/{room}", add_to_room),
        ApiRoute::new(
            Method::DELETE,
            "/users/{user}/rooms/{room}",
            remove_from_room,
        ),
        ApiRoute::new(Method::GET, "/rooms/{room}", room_members),
        ApiRoute::new(Method::POST, "/tickets", identity::issue_ticket),
        ApiRoute::new(Method::POST, "/tokens/revoke", identity::revoke_token),
        ApiRoute::new(Method::GET, "/openapi.json", openapi::document),
    ]
}

/// The API routes, to be nested under `/api`: the key is checked first, bodies are limited to
/// `max_body_bytes` and read under `limits`' body and request timeouts.
pub fn routes(
    state: Arc<AppState>,
    limits: &HttpLimits,
    max_body_bytes: usize,
) -> Router<Arc<AppState>> {
    table()
        .into_iter()
        .fold(Router::new(), |router, route| {
            router.route(route.path, route.handler)
        })
        // Outermost last: the whole-request timeout, then the key, then the body's bounds.
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(RequestBodyTimeoutLayer::new(limits.body_timeout))
        .layer(middleware::from_fn_with_state(state, require_api_key))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(request_timed_out))
                .timeout(limits.request_timeout),
        )
        // A channel lasts as long as its producer: outside the request timeout. It checks the
        // key itself, before the upgrade.
        .route("/producer", get(crate::producer::connect))
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
    /// A refused message delta: the offset the message's next delta must have.
    expected_offset: Option<u64>,
}

impl ApiError {
    /// A failure with `status` and the stable `code`.
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            reason: None,
            message: message.into(),
            expected_offset: None,
        }
    }

    /// A 401 `unauthorized` for a stable `reason` (with `WWW-Authenticate: Bearer`).
    pub fn unauthorized(reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            reason: Some(reason),
            ..Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
        }
    }

    /// The same failure naming its stable `reason`.
    pub(crate) fn with_reason(self, reason: &'static str) -> Self {
        ApiError {
            reason: Some(reason),
            ..self
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl ApiError {
    /// Its status and the body a response carries.
    pub(crate) fn into_parts(self) -> (StatusCode, ErrorBody) {
        let body = ErrorBody {
            error: self.code.to_owned(),
            message: self.message,
            reason: self.reason.map(str::to_owned),
            expected_offset: self.expected_offset,
        };
        (self.status, body)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.into_parts();
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
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
            Error::Publish(PublishError::Run(e)) => run_order(e, message),
            Error::Publish(PublishError::TooManyRuns(_)) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_runs", message)
            }
            // A refusal added to the hub after this server was written: its meaning is unknown
            // here, so it is reported as the server's failure rather than guessed at.
            Error::Publish(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
            }
            Error::Room(_) => ApiError::new(StatusCode::CONFLICT, "room", message),
            Error::Stopped => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", message)
            }
        }
    }
}

/// A 409 `run_order`; a refused message delta names its stable reason, and a delta at the
/// wrong offset the offset expected, so that a producer can tell what to resend.
fn run_order(e: RunError, message: String) -> ApiError {
    let error = ApiError::new(StatusCode::CONFLICT, "run_order", message);
    match e {
        RunError::WrongOffset { expected, .. } => ApiError {
            expected_offset: Some(expected),
            ..error.with_reason("wrong_offset")
        },
        RunError::MessageEnded { .. } => error.with_reason("message_ended"),
        RunError::MessagesStillOpen { .. } => error.with_reason("messages_open"),
        RunError::TooManyMessages(_) => error.with_reason("too_many_messages"),
        _ => error,
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

/// The most bytes of a user or room named in a membership request.
pub const MAX_NAME_BYTES: usize = 256;

/// `s` as the `what` of a membership request: 1 to [`MAX_NAME_BYTES`] bytes, no control
/// character (a name reaches logs).
fn name<'a>(what: &str, s: &'a str) -> Result<&'a str, ApiError> {
    if s.is_empty() || s.len() > MAX_NAME_BYTES || s.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "a {what} of 1 to {MAX_NAME_BYTES} bytes without control characters"
        )));
    }
    Ok(s)
}

/// Redis could not answer a cluster-wide question or carry a cluster-wide command.
fn cluster_unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "cluster_unavailable",
        format!("the other nodes could not be reached through Redis: {e}"),
    )
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
    let reached = deliveries.iter().map(|d| d.reached).sum();
    Ok(Json(PublishResponse {
        reached,
        deliveries,
    }))
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

/// Gauges and counters summed over the node's shards; in a cluster, what every node held at
/// its last heartbeat.
#[utoipa::path(
    get,
    path = "/api/stats",
    tag = "operations",
    responses(
        (status = 200, description = "The node's statistics, and in a cluster every live node's load (left out if Redis could not be asked)", body = StatsView),
        (status = 503, description = "The switchboard has stopped (the end of a shutdown)", body = ErrorBody),
    )
)]
pub(crate) async fn stats(State(state): State<Arc<AppState>>) -> Result<Json<StatsView>, ApiError> {
    let mut view = StatsView::from(&state.handle.stats().await?.total);
    if let Some(bridge) = &state.bridge {
        match bridge.node_loads().await {
            Ok(loads) => view.cluster = Some(ClusterView::new(bridge.node(), loads)),
            Err(e) => tracing::warn!(error = %e, "stats without the cluster: redis unreachable"),
        }
    }
    Ok(Json(view))
}

/// Snapshots of `conns`, leaving out any that closed meanwhile.
async fn infos(handle: &Handle, conns: Vec<ConnId>) -> Result<Vec<ConnectionInfo>, Error> {
    let mut infos = Vec::with_capacity(conns.len());
    for conn in conns {
        match handle.connection_info(conn).await {
            Ok(info) => infos.push(info),
            Err(Error::UnknownConnection(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(infos)
}

/// A user's presence on this node (also what the dashboard's look-up shows).
pub async fn presence(handle: &Handle, user: String) -> Result<PresenceView, Error> {
    let conns = handle.user_connections(user.as_str()).await?;
    let conns = infos(handle, conns).await?;
    Ok(PresenceView {
        user,
        connected: !conns.is_empty(),
        total: conns.len() as u64,
        connections: conns.iter().map(ConnectionView::from).collect(),
        nodes: None,
    })
}

/// A user's presence: whether connected (on any node), each open connection of this node, and
/// in a cluster the count on every node.
#[utoipa::path(
    get,
    path = "/api/users/{user}",
    tag = "presence",
    params(("user" = String, Path, description = "The user id (1 to 256 bytes, no control character)")),
    responses(
        (status = 200, description = "The user's connections on this node, and in a cluster their count on every node", body = PresenceView),
        (status = 400, description = "An empty user id, one over 256 bytes, or one with control characters", body = ErrorBody),
        (status = 503, description = "In a cluster, Redis could not be asked (`cluster_unavailable`); or the switchboard has stopped (the end of a shutdown)", body = ErrorBody),
    )
)]
pub(crate) async fn user_presence(
    State(state): State<Arc<AppState>>,
    Path(user): Path<String>,
) -> Result<Json<PresenceView>, ApiError> {
    name("user", &user)?;
    let view = presence(&state.handle, user).await?;
    let Some(bridge) = &state.bridge else {
        return Ok(Json(view));
    };
    let nodes = bridge.user_connections_by_node(view.user.as_str()).await;
    let nodes = nodes.map_err(cluster_unavailable)?;
    Ok(Json(view.in_cluster(bridge.node(), nodes)))
}

/// A room's members on every shard of this node, and in a cluster the count on every node.
#[utoipa::path(
    get,
    path = "/api/rooms/{room}",
    tag = "presence",
    params(("room" = String, Path, description = "The room (1 to 256 bytes, no control character)")),
    responses(
        (status = 200, description = "The room's members on this node, and in a cluster their count on every node", body = RoomView),
        (status = 400, description = "An empty room, one over 256 bytes, or one with control characters", body = ErrorBody),
        (status = 503, description = "In a cluster, Redis could not be asked (`cluster_unavailable`); or the switchboard has stopped (the end of a shutdown)", body = ErrorBody),
    )
)]
pub(crate) async fn room_members(
    State(state): State<Arc<AppState>>,
    Path(room): Path<String>,
) -> Result<Json<RoomView>, ApiError> {
    name("room", &room)?;
    let members = state.handle.room_members(room.as_str()).await?;
    let members = infos(&state.handle, members).await?;
    let view = RoomView {
        room,
        total: members.len() as u64,
        members: members.iter().map(ConnectionView::from).collect(),
        nodes: None,
    };
    let Some(bridge) = &state.bridge else {
        return Ok(Json(view));
    };
    let nodes = bridge.room_members_by_node(view.room.as_str()).await;
    let nodes = nodes.map_err(cluster_unavailable)?;
    Ok(Json(view.in_cluster(bridge.node(), nodes)))
}

/// Close every connection of `user` with 4002, on this node and (on a node of a cluster) on
/// every other node; how many were closed on this node (also the dashboard's disconnect).
pub async fn disconnect_user(state: &AppState, user: String) -> Result<DisconnectView, Error> {
    let closed = match &state.bridge {
        // On every node; this node's connections are closed even if Redis is unreachable.
        Some(bridge) => {
            let (closed, told_others) = bridge.disconnect_user(user.as_str()).await;
            if let Err(e) = told_others {
                tracing::warn!(%user, error = %e, "could not disconnect the user on other nodes");
            }
            closed?
        }
        None => state.handle.disconnect_user(user.as_str()).await?,
    };
    Ok(DisconnectView {
        user,
        closed,
        cutoff: None,
    })
}

/// Close every connection of the user with 4002 (on every node of a cluster); with
/// `{"revoke": true}`, refuse the user's credentials issued until now first.
#[utoipa::path(
    post,
    path = "/api/users/{user}/disconnect",
    tag = "presence",
    params(("user" = String, Path, description = "The user id (1 to 256 bytes, no control character)")),
    request_body(content = Option<DisconnectRequest>, description = "Optional: `{\"revoke\": true}` also revokes the user's credentials issued until now"),
    responses(
        (status = 200, description = "How many connections were closed on this node, and the revocation's cut-off", body = DisconnectView),
        (status = 400, description = "A body that is not `{\"revoke\": bool}`; an empty user id, one over 256 bytes, or one with control characters", body = ErrorBody),
        (status = 429, description = "The node keeps as many revocations as it may (`auth.max_revocations`)", body = ErrorBody),
        (status = 503, description = "Redis could not store the revocation (`cluster_unavailable`), or the switchboard has stopped (`shutting_down`, the end of a shutdown)", body = ErrorBody),
    )
)]
pub(crate) async fn disconnect(
    State(state): State<Arc<AppState>>,
    Path(user): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<DisconnectView>, ApiError> {
    name("user", &user)?;
    let request = DisconnectRequest::from_body(&body.map_err(JsonRejection::from)?)?;
    // Revoke first: a client closed below must not get back in with the same credential.
    // A revocation Redis could not store still holds on this node: close the connections
    // anyway, then answer the error so that the caller retries.
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
    let view = disconnect_user(&state, user).await?;
    let cutoff = revoked.transpose()?;
    Ok(Json(DisconnectView { cutoff, ..view }))
}
