//! What a client sends: text frames, read against the frame size, UTF-8 and the message rate,
//! parsed (`protocol`), and answered; and the control frames that count against the same
//! rate. A bad frame is rejected: counted as dropped, a strike, and an `error` frame, until
//! the strikes run out and the connection closes (1008, or 4029 for a flood).

use super::cancel;
use super::delivery::Fanout;
use super::membership::{self, Ask};
use super::refresh;
use super::replay;
use super::reply::Reply;
use crate::config::Config;
use crate::error::{RoomError, UnknownConnection};
use crate::id::ConnId;
use crate::io::{AppMessage, ClientRef, Notice};
use crate::message::Message;
use crate::mutation::{self, Fault};
use crate::protocol::{self, ClientFrame, ErrorCode, ServerFrame};
use crate::reason::Reason;
use crate::run::Runs;
use crate::stream::StreamId;
use crate::target::Target;
use std::time::Instant;

/// A text frame from `id`.
pub(super) fn text(
    config: &Config,
    runs: &Runs,
    f: &mut Fanout<'_>,
    now: Instant,
    id: ConnId,
    bytes: &[u8],
) -> Result<(), UnknownConnection> {
    f.conns.received(now, id, bytes.len(), f.out)?;
    if bytes.len() > config.limits.max_frame_bytes {
        f.close(id, Reason::FrameTooLarge);
        return Ok(());
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        f.close(id, Reason::InvalidUtf8);
        return Ok(());
    };
    if !f.conns.conn_mut(id).rate.try_take(now) {
        let message = "slow down: frame dropped";
        reject(
            f,
            now,
            Reply::to(id),
            Reason::OverRate,
            ErrorCode::RateLimited,
            message,
        );
        return Ok(());
    }
    match protocol::parse(text, config) {
        Ok(parsed) => {
            let reply = Reply::asked(id, parsed.reference.as_deref());
            frame(config, runs, f, now, reply, parsed.frame);
        }
        Err(e) => {
            let reason = match e.code {
                ErrorCode::UnknownType => Reason::UnknownType,
                _ => Reason::Malformed,
            };
            let reply = Reply::asked(id, e.reference.as_deref());
            reject(f, now, reply, reason, e.code, &e.message);
        }
    }
    Ok(())
}

/// A control frame from `id` (open) that answers nothing of the hub's (a ping, or a pong to
/// no ping of ours) takes a token of the message rate as a text frame does. Past the rate it is
/// counted as dropped (`over_rate`) and takes a strike, but gets no `error` frame: a flood of
/// control frames may come from a client that never reads, and the answer to it must not be
/// more to write. With no strike left the connection closes with 4029.
pub(super) fn control_frame(f: &mut Fanout<'_>, now: Instant, id: ConnId) {
    if !f.conns.conn_mut(id).rate.try_take(now) {
        strike(f, now, id, Reason::OverRate);
    }
}

/// Act on a parsed frame.
fn frame(
    config: &Config,
    runs: &Runs,
    f: &mut Fanout<'_>,
    now: Instant,
    reply: Reply<'_>,
    frame: ClientFrame,
) {
    let id = reply.conn;
    let limits = &config.limits;
    match frame {
        ClientFrame::Join {
            room,
            since,
            presence,
        } => {
            if f.conns.conn(id).membership(&room).is_some() {
                match since {
                    Some(since) => {
                        replay::resume_room(f.conns, f.rooms, f.streams, f.out, reply, &room, since)
                    }
                    None => {
                        let parts = (&mut *f.conns, &*f.rooms, &*f.cluster);
                        membership::reply_joined(parts, f.streams, f.out, reply, &room)
                    }
                }
                return;
            }
            let ask = Ask { since, presence };
            if let Err(e) = membership::join(f, limits, now, reply, &room, ask) {
                room_error(f, now, reply, e);
            }
        }
        ClientFrame::Leave { room } => match f.leave(id, &room) {
            Ok(()) => {
                let reference = reply.reference;
                reply.send(
                    f.conns,
                    f.out,
                    &ServerFrame::Left {
                        room: &room,
                        reason: None,
                        reference,
                    },
                );
            }
            Err(e) => room_error(f, now, reply, e),
        },
        ClientFrame::Publish { room, event, data } => {
            let conn = f.conns.conn(id);
            if conn.membership(&room).is_none() {
                return room_error(f, now, reply, RoomError::NotMember);
            }
            if !conn.may_publish(&room) {
                let (reason, code) = (Reason::Forbidden, ErrorCode::Forbidden);
                let message = "the connection may not publish to that room";
                return reject(f, now, reply, reason, code, message);
            }
            let user = conn.user.clone();
            let message = Message::new(event, data);
            let audience = Target::Room(room).except([id]);
            f.publish(now, &audience, &message, Some(&user));
        }
        ClientFrame::Bind { thread } => membership::bind(f.conns, f.streams, f.out, reply, thread),
        ClientFrame::Ping => {
            let reference = reply.reference;
            reply.send(f.conns, f.out, &ServerFrame::Pong { reference });
        }
        ClientFrame::Resume { streams } => {
            for s in streams {
                match &s.stream {
                    StreamId::User(user) if *user == f.conns.conn(id).user => {
                        replay::resume_user(f.conns, f.streams, f.out, reply, s.position)
                    }
                    StreamId::User(_) => {
                        let (reason, code) = (Reason::Forbidden, ErrorCode::Forbidden);
                        reject(f, now, reply, reason, code, "not your stream");
                    }
                    StreamId::Room(room) => {
                        if f.conns.conn(id).membership(room).is_some() {
                            let position = s.position;
                            replay::resume_room(
                                f.conns, f.rooms, f.streams, f.out, reply, room, position,
                            );
                        } else if let Err(e) = membership::join(
                            f,
                            limits,
                            now,
                            reply,
                            room,
                            Ask::since(Some(s.position)),
                        ) {
                            room_error(f, now, reply, e);
                        }
                    }
                }
                // The connection may have run out of strikes.
                if f.conns.check(id).is_err() {
                    return;
                }
            }
        }
        ClientFrame::Refresh { token } => refresh::requested(f, reply, token),
        ClientFrame::Cancel { run } => cancel::requested(runs, f, reply, id, run),
        ClientFrame::App { kind, payload } => {
            let conn = f.conns.conn(id);
            let app = AppMessage {
                conn: id,
                user: conn.user.clone(),
                thread: conn.thread.clone(),
                kind,
                data: payload,
                reference: reply.reference.map(ClientRef::from_raw),
            };
            f.out.notice(Notice::App(Box::new(app)));
        }
    }
}

/// Reject a request: counted as dropped for `reason`, a strike, and an `error` frame with
/// `code` (unless that was the last strike: then the connection closes instead).
fn reject(
    f: &mut Fanout<'_>,
    now: Instant,
    reply: Reply<'_>,
    reason: Reason,
    code: ErrorCode,
    message: &str,
) {
    if strike(f, now, reply.conn, reason) {
        reply.error(f.conns, f.out, code, message);
    }
}

/// Answer a room request that failed: `not_member` without a strike, the others rejected.
fn room_error(f: &mut Fanout<'_>, now: Instant, reply: Reply<'_>, e: RoomError) {
    let (reason, code) = match e {
        RoomError::Forbidden => (Reason::Forbidden, ErrorCode::Forbidden),
        RoomError::RoomFull => (Reason::LimitReached, ErrorCode::RoomFull),
        RoomError::TooManyRooms => (Reason::LimitReached, ErrorCode::TooManyRooms),
        RoomError::NotMember | RoomError::UnknownConnection(_) => {
            let message = "not a member of that room";
            return reply.error(f.conns, f.out, ErrorCode::NotMember, message);
        }
    };
    reject(f, now, reply, reason, code, &e.to_string());
}

/// Count a frame dropped or rejected for `reason` and take a strike for it; with no strike
/// left, close the connection: 4029 if the frame was over the rate, 1008 otherwise. Whether
/// the connection is still open.
pub(super) fn strike(f: &mut Fanout<'_>, now: Instant, id: ConnId, reason: Reason) -> bool {
    f.out.counters.drops.add(reason);
    if f.conns.conn_mut(id).strikes.try_take(now) || mutation::injected(Fault::EndlessStrikes) {
        return true;
    }
    let close_for = match reason {
        Reason::OverRate => Reason::RateLimited,
        _ => Reason::ProtocolViolation,
    };
    f.close(id, close_for);
    false
}
