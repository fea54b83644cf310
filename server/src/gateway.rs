//! `GET /ws`: the client endpoint. Checks the handshake's origin and credential, then hands
//! the upgraded socket to the switchboard.
//!
//! A browser handshake from an origin outside `[http] allowed_origins` is answered 403
//! ([`origin`]). The credential is, in this order of precedence, `Authorization: Bearer
//! <token>`; a token in `Sec-WebSocket-Protocol`, offered as `token.<token>` beside
//! [`SUBPROTOCOL`] (the server answers with `switchboard.v1`, never with the token); the
//! `token` query parameter; or a one-time `ticket` query parameter. One that is missing or
//! refused is answered 401 with its stable reason (see [`TokenError::reason`]) and no
//! WebSocket. While the server shuts down, a new client is closed at once with 1001 (1012 on
//! a node of a cluster). Optional query parameters: `thread` (bind the connection to a
//! conversation thread at once), `resume=<epoch>:<seq>` (the client's last user-stream
//! position: the server replays what it missed, see `docs/PROTOCOL.md`) and `batch=1` (frames
//! ready together sent as one WebSocket message holding a JSON array; `0` or absent: one frame
//! per message; any other value is answered 400). A token's `exp` goes
//! to the hub as `Open::expires_at`, so the connection is asked for a fresh token ahead of it and
//! closed with 4005 after it (`crate::refresh` answers the fresh tokens); a ticket has no expiry.
//!
//! On a node of a cluster, the connection is first admitted across the cluster: a user who
//! already has `max_connections_per_user` connections on live nodes (policy `reject_new`) is
//! refused with 4003 before `welcome`, exactly as a single node refuses it.

pub mod origin;
pub mod sse;

use crate::api::ApiError;
use crate::auth::{instant_of, Credential, TokenError};
use crate::logging;
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use switchboard::{Open, OpenError, Position};
use switchboard_redis::{Admission, Bridge};
use switchboard_tokio::axum::WebSocketUpgrade;
use switchboard_tokio::{Framing, Tokio};

/// The WebSocket subprotocol of this protocol's version: a client that passes its token in
/// `Sec-WebSocket-Protocol` offers it, and the server answers with it.
pub const SUBPROTOCOL: &str = "switchboard.v1";
/// What a `Sec-WebSocket-Protocol` entry carrying a token starts with: `token.<token>` (a
/// JWT is base64url parts joined by dots, a valid protocol token of RFC 6455).
pub const TOKEN_PROTOCOL_PREFIX: &str = "token.";

/// The query parameters of the handshake.
#[derive(Debug, Default, Deserialize)]
pub struct Handshake {
    /// The client token, when not in a header.
    pub token: Option<String>,
    /// A one-time ticket from `POST /api/tickets`, instead of a token.
    pub ticket: Option<String>,
    /// A thread to bind the connection to.
    pub thread: Option<String>,
    /// The last user-stream position seen, `<epoch>:<seq>`.
    pub resume: Option<String>,
    /// `1`: several frames per WebSocket message when they are ready together (`GET /ws` only;
    /// `/sse` ignores it, its events carry one frame each).
    pub batch: Option<String>,
}

pub(crate) fn refuse(status: StatusCode, code: &str, message: String) -> Response {
    (status, Json(json!({"error": code, "message": message}))).into_response()
}

/// The handler of `GET /ws`.
pub async fn connect(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<Handshake>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let framing = match query.batch.as_deref().map(Framing::from_parameter) {
        None => Framing::Single,
        Some(Ok(framing)) => framing,
        Some(Err(bad)) => return refuse(StatusCode::BAD_REQUEST, "bad_request", bad.to_string()),
    };
    let offered: Vec<&HeaderValue> = upgrade.requested_protocols().collect();
    let credential = credential(&headers, &query, &offered);
    match admit_client(
        &state,
        &headers,
        credential,
        &query,
        query.resume.as_deref(),
    )
    .await
    {
        Admitted::Open(open) => {
            let upgrade = upgrade.protocols([SUBPROTOCOL]);
            // The session runs in its own span: the request's ends with the `101`.
            logging::connection_span(&headers, &open.user).in_scope(|| {
                switchboard_tokio::axum::upgrade_framed(&state.handle, upgrade, open, framing)
            })
        }
        Admitted::Refused(refused) => {
            switchboard_tokio::axum::refuse(&state.handle, upgrade, refused)
        }
        Admitted::Answer(answer) => answer,
    }
}

/// What the checks every client connection passes (serving, origin, credential, position)
/// decided.
pub(crate) enum Admitted {
    /// Open this connection.
    Open(Open),
    /// Refuse it with this close code, as the hub refuses an open.
    Refused(OpenError),
    /// Answer the request with this, opening nothing.
    Answer(Response),
}

/// The checks of a client connection, whatever its transport: the server is serving, the
/// origin is allowed, the credential proves a user, `resume` (if any) is a position; on a node
/// of a cluster, the user is under the cluster-wide limit.
pub(crate) async fn admit_client(
    state: &AppState,
    headers: &HeaderMap,
    credential: Result<Option<Credential<'_>>, WithoutSubprotocol>,
    query: &Handshake,
    resume: Option<&str>,
) -> Admitted {
    if !state.lifecycle.is_serving() {
        let restart = state.bridge.is_some();
        return Admitted::Refused(OpenError::ShuttingDown { restart });
    }
    if !state.origins.allows(headers.get(header::ORIGIN)) {
        tracing::debug!("handshake refused: origin not allowed");
        return Admitted::Answer(refuse(
            StatusCode::FORBIDDEN,
            "forbidden_origin",
            "this origin may not open a connection here (http.allowed_origins)".into(),
        ));
    }
    let verified = match credential {
        Ok(Some(credential)) => state.auth.authenticate(credential).await,
        Ok(None) => Err(TokenError::Missing),
        Err(WithoutSubprotocol) => {
            return Admitted::Answer(refuse(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!(
                    "offer the subprotocol {SUBPROTOCOL} beside {TOKEN_PROTOCOL_PREFIX}<token>"
                ),
            ))
        }
    };
    let identity = match verified {
        Ok(identity) => identity,
        Err(e) => {
            tracing::debug!(reason = e.reason(), "handshake refused");
            let refused = ApiError::unauthorized(e.reason(), e.to_string());
            return Admitted::Answer(refused.into_response());
        }
    };
    let mut open = Open::new(identity.user)
        .access(identity.join.access())
        .publish(identity.publish.access());
    // The hub asks for a fresh token ahead of `exp` and closes with 4005 after it.
    if let Some(exp) = identity.expires_at {
        open = open.expires_at(instant_of(exp));
    }
    if let Some(thread) = query.thread.as_ref().filter(|t| !t.is_empty()) {
        open = open.thread(thread.clone());
    }
    if let Some(resume) = resume {
        match resume.parse::<Position>() {
            Ok(position) => open = open.resume(position),
            Err(_) => {
                return Admitted::Answer(refuse(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("resume={resume:?}: expected <epoch>:<seq>"),
                ))
            }
        }
    }
    if let Some(bridge) = &state.bridge {
        if !admit(bridge, &open).await {
            return Admitted::Refused(OpenError::UserLimit);
        }
        if state.shared_streams {
            prepare(bridge, &open).await;
        }
    }
    Admitted::Open(open)
}

/// A token offered in `Sec-WebSocket-Protocol` without [`SUBPROTOCOL`] beside it: the server
/// could not answer with a protocol the client offered, and browsers fail such a handshake
/// (400).
pub(crate) struct WithoutSubprotocol;

/// The credential of a handshake, by precedence (see the module's documentation), among
/// `offered` WebSocket subprotocols (none for other transports); `None` without one.
pub(crate) fn credential<'a>(
    headers: &'a HeaderMap,
    query: &'a Handshake,
    offered: &[&'a HeaderValue],
) -> Result<Option<Credential<'a>>, WithoutSubprotocol> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(token) = bearer {
        return Ok(Some(Credential::Token(token)));
    }
    let in_protocol = (offered.iter())
        .filter_map(|p| p.to_str().ok())
        .find_map(|p| p.strip_prefix(TOKEN_PROTOCOL_PREFIX));
    if let Some(token) = in_protocol {
        if !offered.iter().any(|p| *p == SUBPROTOCOL) {
            return Err(WithoutSubprotocol);
        }
        return Ok(Some(Credential::Token(token)));
    }
    Ok(match (&query.token, &query.ticket) {
        (Some(token), _) => Some(Credential::Token(token)),
        (None, Some(ticket)) => Some(Credential::Ticket(ticket)),
        (None, None) => None,
    })
}

/// Whether the connection may open on a node of a cluster: false if its user is at the
/// cluster-wide limit. Without Redis it is admitted unchecked, and counted when it opens.
async fn admit(bridge: &Bridge<Tokio>, open: &Open) -> bool {
    match bridge.admit(&open.user).await {
        Ok(Admission::Admitted) => true,
        Ok(Admission::Refused) => false,
        Err(e) => {
            tracing::warn!(error = %e, "admitted without the cluster-wide connection limit");
            true
        }
    }
}

/// Before a connection opens on a node whose streams are shared: the node listens to the
/// user's stream from now on, and, for a client that may come from another node, what it
/// missed is loaded from the shared history. Without Redis the connection still opens; it is
/// told of what it cannot receive with a `gap`.
async fn prepare(bridge: &Bridge<Tokio>, open: &Open) {
    if let Err(e) = bridge.prepare(&open.user, open.resume).await {
        tracing::warn!(error = %e, "the user's shared stream could not be prepared");
    }
}
