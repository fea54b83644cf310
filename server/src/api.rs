//! The backend HTTP API under `/api`: the route table, the API key, the bounds every request
//! is read under, and the stats. Its routes live by concept: `publish` (publish, agent-run
//! events), `batch` (several publishes in one request), `connections` (presence, room members, disconnect), `membership` (rooms the
//! backend joins users to), [`identity`] (tickets and revocations); `error` holds
//! [`ApiError`], the answer to every failure.
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

pub(crate) mod batch;
pub(crate) mod connections;
mod error;
pub mod identity;
pub(crate) mod membership;
pub(crate) mod publish;
mod views;

pub use batch::{
    BatchResult, Outcome, PublishBatchRequest, PublishBatchResponse, DEFAULT_MAX_PUBLISH_BATCH,
};
pub use connections::{disconnect_user, presence};
pub use error::ApiError;
pub(crate) use publish::{agent_update, send_agent_update};
pub use views::{
    core_schemas, AgentEventRequest, AgentEventSchema, ClusterView, ConnectionView, CountersView,
    DeliveryView, DisconnectView, ErrorBody, MembershipView, NodeView, PositionSchema,
    PresenceView, PublishRequest, PublishResponse, RoomView, StatsView, TargetSpec, Targets,
};

use crate::auth::same_secret;
use crate::openapi;
use crate::settings::HttpLimits;
use crate::state::AppState;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::handler::Handler;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, on, MethodFilter, MethodRouter};
use axum::{BoxError, Json, Router};
use std::sync::Arc;
use switchboard::ConnId;
use tower::ServiceBuilder;
use tower_http::timeout::RequestBodyTimeoutLayer;

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
        ApiRoute::new(Method::POST, "/publish", publish::publish),
        ApiRoute::new(Method::POST, "/publish/batch", batch::publish_batch),
        ApiRoute::new(
            Method::POST,
            "/runs/{user}/{run}/events",
            publish::agent_event,
        ),
        ApiRoute::new(Method::GET, "/stats", stats),
        ApiRoute::new(Method::GET, "/users/{user}", connections::user_presence),
        ApiRoute::new(
            Method::POST,
            "/users/{user}/disconnect",
            connections::disconnect,
        ),
        ApiRoute::new(
            Method::POST,
            "/users/{user}/rooms/{room}",
            membership::add_to_room,
        ),
        ApiRoute::new(
            Method::DELETE,
            "/users/{user}/rooms/{room}",
            membership::remove_from_room,
        ),
        ApiRoute::new(Method::GET, "/rooms/{room}", connections::room_members),
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
