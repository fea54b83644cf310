//! The identity routes of the backend API: one-time tickets (`POST /api/tickets`), revoking
//! one token (`POST /api/tokens/revoke`), and revoking a user's credentials with
//! `POST /api/users/{user}/disconnect` `{"revoke": true}` (the route itself is with the
//! other questions about connections). Every answer is described in `docs/API.md`.

use super::{nonempty, ApiError, ErrorBody};
use crate::auth::claims::{valid_user, MAX_TOKEN_ID_BYTES};
use crate::auth::{unix_now, RevokeError, TicketError, TicketGrant};
use crate::state::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// `POST /api/tickets`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketRequest {
    /// The user the connection opens for.
    pub user: String,
    /// Rooms it may join (absent: the server's default).
    #[serde(default)]
    pub rooms: Option<Vec<String>>,
    /// Rooms it may publish to (absent: the server's default).
    #[serde(default)]
    pub publish: Option<Vec<String>>,
    /// The ticket's lifetime in seconds (default `auth.tickets.ttl_secs`, cut to
    /// `auth.tickets.max_ttl_secs`).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// `POST /api/tokens/revoke`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeTokenRequest {
    /// The token's `jti`.
    pub jti: String,
    /// The token's `exp`: the revocation is kept until then (plus the leeway). Absent: as
    /// long as any token may live.
    #[serde(default)]
    pub exp: Option<u64>,
}

/// `POST /api/tickets`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TicketView {
    /// The ticket: 64 hex digits, for `/ws?ticket=`; it opens one connection.
    pub ticket: String,
    /// Seconds until it is refused.
    pub expires_in: u64,
}

/// `POST /api/tokens/revoke`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RevokedTokenView {
    /// The token's `jti`.
    pub jti: String,
    /// Until when the revocation is kept (seconds since the epoch).
    pub until: u64,
}

/// `POST /api/users/{user}/disconnect`'s optional body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisconnectRequest {
    /// Also refuse the user's credentials issued until now, on every node.
    #[serde(default)]
    pub revoke: bool,
}

impl DisconnectRequest {
    /// The request in `body`: an empty body (whatever its content type) is the plain
    /// disconnect it always was; anything else must be this JSON object.
    pub fn from_body(body: &[u8]) -> Result<Self, JsonRejection> {
        if body.trim_ascii().is_empty() {
            return Ok(DisconnectRequest::default());
        }
        Json::<DisconnectRequest>::from_bytes(body).map(|Json(request)| request)
    }
}

impl From<TicketError> for ApiError {
    fn from(e: TicketError) -> Self {
        let message = e.to_string();
        match e {
            TicketError::TooMany => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_tickets", message)
            }
            TicketError::Cluster => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "cluster_unavailable",
                message,
            ),
        }
    }
}

impl From<RevokeError> for ApiError {
    fn from(e: RevokeError) -> Self {
        let message = e.to_string();
        match e {
            RevokeError::Full => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_revocations",
                message,
            ),
            RevokeError::Cluster => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "cluster_unavailable",
                message,
            ),
        }
    }
}

/// Issue a one-time ticket: `{"ticket", "expires_in"}`.
#[utoipa::path(
    post,
    path = "/api/tickets",
    tag = "identity",
    request_body = TicketRequest,
    responses(
        (status = 200, description = "A ticket that opens one connection as the user, with its grants", body = TicketView),
        (status = 400, description = "Not JSON, an empty user or one with control characters, grants past their bounds, or `ttl_secs` 0", body = ErrorBody),
        (status = 429, description = "The node's outstanding tickets are at their bound (`too_many_tickets`)", body = ErrorBody),
        (status = 503, description = "Redis could not store it (`cluster_unavailable`), or the single node is shutting down", body = ErrorBody),
    )
)]
pub async fn issue_ticket(
    State(state): State<Arc<AppState>>,
    body: Result<Json<TicketRequest>, JsonRejection>,
) -> Result<Json<TicketView>, ApiError> {
    let Json(request) = body?;
    if !valid_user(&request.user) {
        return Err(ApiError::bad_request(
            "`user` is empty or contains control characters",
        ));
    }
    let auth = &state.auth;
    auth.verifier
        .grants(request.rooms.clone(), request.publish.clone())
        .map_err(|e| ApiError::bad_request(format!("`rooms` or `publish`: {e}")))?;
    let ttl = auth
        .tickets
        .lifetime(request.ttl_secs)
        .ok_or_else(|| ApiError::bad_request("`ttl_secs` must be at least 1"))?;
    // A single node that stopped taking clients would issue a ticket nobody can use.
    if state.bridge.is_none() && !state.lifecycle.is_serving() {
        return Err(crate::lifecycle::ShuttingDown.into());
    }
    let grant = TicketGrant {
        user: request.user,
        rooms: request.rooms,
        publish: request.publish,
        issued_at: unix_now(),
    };
    let ticket = auth.tickets.issue(grant, ttl).await?;
    Ok(Json(TicketView {
        ticket,
        expires_in: ttl.as_secs(),
    }))
}

/// Revoke one token by its `jti`: `{"jti", "until"}`.
#[utoipa::path(
    post,
    path = "/api/tokens/revoke",
    tag = "identity",
    request_body = RevokeTokenRequest,
    responses(
        (status = 200, description = "The token is refused on every node until `until`", body = RevokedTokenView),
        (status = 400, description = "Not JSON, or an empty `jti` or one over 256 bytes", body = ErrorBody),
        (status = 429, description = "The node keeps as many revocations as it may (`too_many_revocations`)", body = ErrorBody),
        (status = 503, description = "Redis could not store it (`cluster_unavailable`)", body = ErrorBody),
    )
)]
pub async fn revoke_token(
    State(state): State<Arc<AppState>>,
    body: Result<Json<RevokeTokenRequest>, JsonRejection>,
) -> Result<Json<RevokedTokenView>, ApiError> {
    let Json(request) = body?;
    let jti = nonempty("jti", &request.jti)?;
    if jti.len() > MAX_TOKEN_ID_BYTES {
        return Err(ApiError::bad_request(format!(
            "`jti` is longer than {MAX_TOKEN_ID_BYTES} bytes"
        )));
    }
    let until = state
        .auth
        .revocations
        .revoke_token(jti, request.exp)
        .await?;
    Ok(Json(RevokedTokenView {
        jti: jti.to_owned(),
        until,
    }))
}
