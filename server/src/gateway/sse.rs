//! `GET /sse` and `POST /sse/{conn}`: the client endpoint over Server-Sent Events, for clients
//! (and networks) without WebSockets. The connection is the one `GET /ws` opens, with the same
//! checks (`gateway::admit_client`): origin, credential (`Authorization: Bearer <token>`, or the
//! `token` or one-time `ticket` query parameter; an `EventSource` sets no headers), `thread`,
//! and the user-stream position to resume from — the `Last-Event-ID` header a reconnecting
//! `EventSource` sends (the events' ids are user-stream positions), else `resume=`. Its frames
//! are the events of a `text/event-stream` (`docs/PROTOCOL.md`, "Server-Sent Events").
//!
//! The client's frames are posted to `/sse/{conn}` (`conn` is `welcome.conn`) with a token of
//! the connection's user, in the header or the `token` query parameter: one frame, or
//! newline-delimited frames. A ticket cannot authenticate a `POST` (it was spent on the
//! stream). 202 once delivered; 404 for an unknown connection and for another user's alike.

use super::{admit_client, credential, refuse, Admitted, Handshake};
use crate::api::ApiError;
use crate::auth::{Credential, TokenError};
use crate::logging;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use switchboard_tokio::axum::{last_event_position, sse, sse_post, sse_refuse};

/// The handler of `GET /sse`.
pub async fn connect(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<Handshake>,
) -> Response {
    let last_event = match last_event_position(&headers) {
        Ok(position) => position.map(|p| p.to_string()),
        Err(id) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("Last-Event-ID {id:?}: expected <epoch>:<seq>"),
            )
        }
    };
    // The browser's own position is newer than the one in the URL it reconnects to.
    let resume = last_event.as_deref().or(query.resume.as_deref());
    let credential = credential(&headers, &query, &[]);
    match admit_client(&state, &headers, credential, &query, resume).await {
        Admitted::Open(open) => logging::connection_span(&headers, &open.user)
            .in_scope(|| sse(&state.handle, &state.sse, open)),
        Admitted::Refused(refused) => sse_refuse(&refused),
        Admitted::Answer(answer) => answer,
    }
}

/// The handler of `POST /sse/{conn}`.
pub async fn post(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(conn): Path<String>,
    Query(query): Query<Handshake>,
    body: Body,
) -> Response {
    if !state.origins.allows(headers.get(header::ORIGIN)) {
        return refuse(
            StatusCode::FORBIDDEN,
            "forbidden_origin",
            "this origin may not post to a connection here (http.allowed_origins)".into(),
        );
    }
    let token = match credential(&headers, &query, &[]) {
        Ok(Some(Credential::Token(token))) => token,
        Ok(Some(Credential::Ticket(_))) => {
            let e = "a ticket opens one connection; post with a token";
            return ApiError::unauthorized(TokenError::Missing.reason(), e).into_response();
        }
        Ok(None) | Err(_) => {
            let e = TokenError::Missing;
            return ApiError::unauthorized(e.reason(), e.to_string()).into_response();
        }
    };
    let identity = match state.auth.authenticate(Credential::Token(token)).await {
        Ok(identity) => identity,
        Err(e) => return ApiError::unauthorized(e.reason(), e.to_string()).into_response(),
    };
    let user = identity.user.as_str();
    sse_post(&state.handle, &state.sse, user, &conn, body).await
}
