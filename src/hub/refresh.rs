//! Token refresh: a connection's token lifetime is enforced after the handshake.
//!
//! A connection opened with a token that expires ([`Open::expires_at`]) is sent a `refresh`
//! frame ahead of the expiry (`TokenConfig::refresh_ahead`, at half the remaining life for a
//! shorter token) and is closed with 4005 (`token_expired`) once the expiry and the leeway
//! passed without a fresh token accepted. The client answers with a `refresh` frame carrying
//! a fresh token (it may also send one on its own, any time). The hub cannot verify tokens: it
//! hands the token to the application ([`Notice::Refresh`]), at most one per connection at a
//! time (a second `refresh` is answered `refresh_in_progress`), and the application answers:
//!
//! - [`refreshed`]: the fresh token's grants apply at once (the rooms it no longer allows are
//!   left, each with a `left` frame with reason `forbidden`; the publish grant is replaced)
//!   and its expiry starts a new lifetime; the client gets `refreshed`;
//! - [`refused`]: the client gets `error` `forbidden` (another user's token) or
//!   `invalid_token` (with the verifier's reason), with a strike, and keeps its old expiry.
//!
//! A refresh that races the close (the connection closed with 4005 while its token was being
//! verified) finds the connection unknown: the answer does nothing.
//!
//! [`Open::expires_at`]: crate::Open::expires_at

use super::client;
use super::delivery::Fanout;
use super::reply::Reply;
use crate::config::TokenConfig;
use crate::error::UnknownConnection;
use crate::id::{ConnId, RoomId};
use crate::io::{Notice, RefreshGrant, RefreshRefusal, RefreshRequest};
use crate::protocol::{ErrorCode, LeftReason, ServerFrame};
use crate::reason::Reason;
use crate::token::{Due, Refreshing, TokenLife};
use smallvec::SmallVec;
use std::time::Instant;

/// A `refresh` frame with a fresh `token` from `reply.conn` (open): handed to the application,
/// unless one is being verified already.
pub(super) fn requested(f: &mut Fanout<'_>, reply: Reply<'_>, token: String) {
    let id = reply.conn;
    let conn = f.conns.conn_mut(id);
    if conn.is_refreshing() {
        let message = "a fresh token of this connection is being verified already";
        return reply.error(f.conns, f.out, ErrorCode::RefreshInProgress, message);
    }
    let reference = reply.reference.map(ToOwned::to_owned);
    conn.credential_mut().refreshing = Refreshing::Verifying(reference);
    let user = conn.user.clone();
    let request = RefreshRequest {
        conn: id,
        user,
        token,
    };
    f.out.notice(Notice::Refresh(Box::new(request)));
}

/// The earliest token deadline came: ask its connection for a fresh token, or close it (4005).
pub(super) fn due(f: &mut Fanout<'_>, now: Instant, config: &TokenConfig) {
    let Some((id, due)) = f.conns.token_due(now, config) else {
        return;
    };
    match due {
        Due::Ask { expires_in } => {
            Reply::to(id).send(f.conns, f.out, &ServerFrame::Refresh { expires_in })
        }
        Due::Wait => {}
        Due::Close => f.close(id, Reason::TokenExpired),
    }
}

/// The application verified `id`'s fresh token: its grants and expiry replace the old ones.
pub(super) fn refreshed(
    f: &mut Fanout<'_>,
    now: Instant,
    config: &TokenConfig,
    id: ConnId,
    grant: RefreshGrant,
) -> Result<(), UnknownConnection> {
    f.conns.check(id)?;
    let life = grant.expires_at.map(|at| TokenLife::new(now, at, config));
    let expires_in = life.as_ref().map(|life| life.expires_in(now));
    f.conns.set_token_life(id, life);
    let conn = f.conns.conn_mut(id);
    let credential = conn.credential_mut();
    let reference = credential.refreshing.finish();
    credential.join = grant.join;
    credential.publish = grant.publish;
    let gone: SmallVec<[RoomId; 2]> = (conn.rooms.iter())
        .filter(|m| !m.by_backend && !conn.may_join(&m.room))
        .map(|m| m.room.clone())
        .collect();
    for room in gone {
        // A member of `room`: leaving cannot fail.
        let _ = f.leave(id, &room);
        let left = ServerFrame::Left {
            room: &room,
            reason: Some(LeftReason::Forbidden),
            reference: None,
        };
        Reply::to(id).send(f.conns, f.out, &left);
    }
    let reply = Reply::asked(id, reference.as_deref());
    let refreshed = ServerFrame::Refreshed {
        expires_in,
        reference: reply.reference,
    };
    reply.send(f.conns, f.out, &refreshed);
    Ok(())
}

/// The application refused `id`'s fresh token: an `error` with a strike; the connection keeps
/// its grants and its expiry.
pub(super) fn refused(
    f: &mut Fanout<'_>,
    now: Instant,
    id: ConnId,
    refusal: RefreshRefusal,
) -> Result<(), UnknownConnection> {
    f.conns.check(id)?;
    let reference = f.conns.conn_mut(id).credential_mut().refreshing.finish();
    let (reason, code, detail, message) = match refusal {
        RefreshRefusal::Forbidden => (
            Reason::Forbidden,
            ErrorCode::Forbidden,
            None,
            "the fresh token is another user's",
        ),
        RefreshRefusal::InvalidToken { reason } => (
            Reason::InvalidToken,
            ErrorCode::InvalidToken,
            Some(reason),
            "the fresh token was refused",
        ),
    };
    if client::strike(f, now, id, reason) {
        let error = ServerFrame::Error {
            code,
            message,
            reason: detail,
            reference: reference.as_deref(),
        };
        Reply::to(id).send(f.conns, f.out, &error);
    }
    Ok(())
}
