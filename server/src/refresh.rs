//! Fresh tokens on live connections: the server's answer to a client's `refresh` frame.
//!
//! The hub asks a client for a fresh token ahead of its token's `exp` and closes the
//! connection with 4005 once `exp` and the leeway passed (`auth.refresh_ahead_secs`,
//! `auth.leeway_secs`). It cannot verify a token itself: each fresh one reaches the
//! application as a [`Notice::Refresh`], and [`serve`] verifies it exactly as the handshake
//! verifies a token (the same [`Authenticator`]: signature, times, claims, revocations), in a
//! task of its own so that a slow key fetch holds up no other event. The fresh token must be
//! the same user's (`sub`): then its grants and expiry replace the connection's at once
//! ([`Handle::refreshed`]); another user's is refused with `forbidden`, and a token that does
//! not verify with `invalid_token` and the handshake's 401 reason
//! ([`Handle::refresh_refused`]). The hub holds at most one fresh token per connection at a
//! time, so the verifications in progress are bounded by the connections.
//!
//! The same loop reads every other notice: the webhook's, and the clients' `cancel` requests,
//! handed to the producer channel that owns the run ([`crate::producer`]).

use crate::auth::{instant_of, Authenticator, Credential};
use crate::producer::registry::Producers;
use crate::webhook::Webhook;
use std::sync::Arc;
use switchboard::{Notice, RefreshGrant, RefreshRefusal, RefreshRequest};
use switchboard_tokio::{Events, Handle};

/// Read the hubs' events until they stop: answer every fresh token, hand every event to the
/// `webhook` (if one is configured: see [`crate::webhook`]), hand every client's cancel to the
/// producer channel that owns the run ([`Producers`]) and answer the client, and log every
/// event.
pub fn serve(
    mut events: Events,
    handle: Handle,
    auth: Arc<Authenticator>,
    webhook: Option<Webhook>,
    producers: Arc<Producers>,
) {
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            tracing::debug!(?event, "switchboard event");
            if let Some(webhook) = &webhook {
                webhook.notice(&event.notice);
            }
            match event.notice {
                Notice::Refresh(request) => {
                    tokio::spawn(answer(handle.clone(), auth.clone(), *request));
                }
                Notice::Cancel(request) => {
                    let answer = producers.cancel(&request);
                    let handle = handle.clone();
                    tokio::spawn(async move {
                        // A connection closed meanwhile has no one to answer; a client of
                        // another node is answered through the cluster.
                        let _ = handle.answer_cancel(request.from, answer).await;
                    });
                }
                _ => {}
            }
        }
    });
}

/// Verify one fresh token and answer the hub.
async fn answer(handle: Handle, auth: Arc<Authenticator>, request: RefreshRequest) {
    let RefreshRequest { conn, user, token } = request;
    let answered = match auth.authenticate(Credential::Token(&token)).await {
        Ok(identity) if identity.user == user => {
            let grant = RefreshGrant {
                expires_at: identity.expires_at.map(instant_of),
                join: identity.join.access(),
                publish: identity.publish.access(),
            };
            handle.refreshed(conn, grant).await
        }
        Ok(_) => {
            tracing::debug!(%conn, "refresh refused: another user's token");
            handle
                .refresh_refused(conn, RefreshRefusal::Forbidden)
                .await
        }
        Err(e) => {
            tracing::debug!(%conn, reason = e.reason(), "refresh refused");
            let refusal = RefreshRefusal::InvalidToken { reason: e.reason() };
            handle.refresh_refused(conn, refusal).await
        }
    };
    // The connection closed meanwhile (its old token expired first) or the server stopped:
    // there is no one left to answer.
    if let Err(e) = answered {
        tracing::debug!(%conn, error = %e, "refresh answered to no one");
    }
}
