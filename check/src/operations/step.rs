//! One operation applied to the hub and to the model: what it must deliver, and the rules
//! (joins refused, resumes, publishes) it shares with nothing else.

use super::checks::check_delivery;
use super::*;

/// Apply `op` to the hub and to the model; returns what the step must deliver.
pub(super) fn step(
    h: &mut Harness,
    m: &mut Model,
    seen: &mut Seen,
    limits: &Limits,
    op: &Op,
) -> Result<Expect, String> {
    let mut expect = Expect::default();
    match *op {
        Op::Open { user, thread } => {
            let (user, thread) = (usize::from(user), thread.map(usize::from));
            let mut open = Open::new(USERS[user]);
            if let Some(t) = thread {
                open = open.thread(THREADS[t]);
            }
            let result = h.open(open);
            // The per-user limit first: refuse, or evict the oldest; then the hub's limit.
            let at_limit = m.user_conns(user).len() >= usize::from(limits.per_user);
            if at_limit && limits.evict_oldest {
                let oldest = m.user_conns(user)[0];
                ensure_eq!(h.closed(oldest), Some((4001, Reason::Evicted)), "eviction");
                m.remove(oldest);
            }
            let predicted = if at_limit && !limits.evict_oldest {
                Err(OpenError::UserLimit)
            } else if m.conns.len() >= usize::from(limits.max_connections) {
                Err(OpenError::ServerFull)
            } else {
                Ok(())
            };
            match (result, predicted) {
                (Ok(conn), Ok(())) => {
                    ensure!(!m.ever.contains(&conn), "{conn:?} was handed out before");
                    m.add(conn, user, thread);
                    expect.frame(conn, m.head("welcome", Key::User(user)));
                    let frames = m.take_pending(user, thread);
                    if frames.iter().any(|f| f.n().is_some()) {
                        // It holds what it selects up to the head `welcome` reported.
                        let head = m.streams[&Key::User(user)].head;
                        m.conns.get_mut(&conn).expect("open").user_from = head + 1;
                    }
                    expect.replay(seen, conn, frames);
                }
                (Err(e), Err(p)) => ensure_eq!(e, p, "refusal"),
                (result, predicted) => {
                    return Err(format!("open: hub {result:?}, model {predicted:?}"))
                }
            }
        }
        Op::Close { conn, by_app } => {
            if let Some(conn) = m.pick_open(conn) {
                if by_app {
                    let r = h.with_hub(|hub, _| hub.close_connection(conn, Reason::Normal));
                    ensure!(r.is_ok(), "close refused: {r:?}");
                    ensure_eq!(h.closed(conn), Some((1000, Reason::Normal)), "close code");
                } else {
                    h.drop_connection(conn);
                }
                m.remove(conn);
            }
        }
        Op::Disconnect { user } => {
            let user = usize::from(user);
            let conns = m.user_conns(user).to_vec();
            let closed = h.with_hub(|hub, _| hub.scope(USERS[user]).disconnect());
            ensure_eq!(closed, conns.len(), "connections disconnected");
            for conn in conns {
                ensure_eq!(h.closed(conn), Some((4002, Reason::Disconnected)), "close");
                m.remove(conn);
            }
        }
        Op::Join {
            conn,
            room,
            by_server,
        } => {
            let Some(conn) = m.pick_open(conn) else {
                return Ok(expect);
            };
            let room = usize::from(room);
            let already = m.conns[&conn].rooms.contains_key(&room);
            let refusal = join_refusal(m, limits, conn, room);
            if by_server {
                let r = h.with_hub(|hub, now| hub.join_room(now, conn, &ROOMS[room].into()));
                ensure_eq!(r.err(), refusal.clone(), "join_room");
            } else {
                h.send(
                    conn,
                    &json!({"type": "join", "room": ROOMS[room]}).to_string(),
                );
                if !within_rate(h, m, &mut expect, conn)? {
                    return Ok(expect);
                }
            }
            if refusal.is_none() && !already {
                m.join(conn, room);
            }
            // A `join` frame is answered (`joined` again if it is in already), or refused with
            // a strike; the server's join is refused to the application, or sends `joined`
            // once per connection.
            match (by_server, refusal_label(&refusal)) {
                (false, Some(refused)) => {
                    strike(h, m, &mut expect, conn, refused, PROTOCOL_VIOLATION)?;
                }
                (true, Some(_)) => {}
                (true, None) if already => {}
                (_, None) => expect.frame(conn, m.head("joined", Key::Room(room))),
            }
        }
        Op::Leave {
            conn,
            room,
            by_server,
        } => {
            let Some(conn) = m.pick_open(conn) else {
                return Ok(expect);
            };
            let room = usize::from(room);
            let member = m.conns[&conn].rooms.contains_key(&room);
            if by_server {
                let r = h.with_hub(|hub, _| hub.leave_room(conn, &ROOMS[room].into()));
                ensure_eq!(r.err(), (!member).then_some(RoomError::NotMember), "leave");
                if member {
                    expect.plain(conn, "left");
                }
            } else {
                h.send(
                    conn,
                    &json!({"type": "leave", "room": ROOMS[room]}).to_string(),
                );
                if !within_rate(h, m, &mut expect, conn)? {
                    return Ok(expect);
                }
                expect.plain(conn, if member { "left" } else { "error:not_member" });
            }
            if member {
                m.conns.get_mut(&conn).expect("open").rooms.remove(&room);
                m.remove_member(room, conn);
            }
        }
        Op::Bind {
            conn,
            thread,
            ref by,
        } => {
            let Some(conn) = m.pick_ever(conn) else {
                return Ok(expect);
            };
            let thread = thread.map(usize::from);
            let open = m.conns.contains_key(&conn);
            let new = thread.map(thread_id);
            let allowed = match *by {
                BindBy::Frame => {
                    if !open {
                        return Ok(expect);
                    }
                    let frame =
                        json!({"type": "bind", "thread": new.as_ref().map(ThreadId::as_str)});
                    h.send(conn, &frame.to_string());
                    if !within_rate(h, m, &mut expect, conn)? {
                        return Ok(expect);
                    }
                    true
                }
                BindBy::Hub => {
                    let r = h.with_hub(|hub, _| hub.update_connection_thread(conn, new));
                    ensure_eq!(r.is_ok(), open, "update_connection_thread");
                    open
                }
                BindBy::Scope(user) => {
                    let user = usize::from(user);
                    let r = h.with_hub(|hub, _| {
                        hub.scope(USERS[user]).update_connection_thread(conn, new)
                    });
                    let owned = m.owns(user, conn);
                    ensure_eq!(r.is_ok(), owned, "a scope rebinds only its own connections");
                    owned
                }
            };
            if allowed {
                let c = m.conns.get_mut(&conn).expect("open");
                let changed = c.thread != thread;
                c.thread = thread;
                let user = c.user;
                expect.plain(conn, "bound");
                if changed {
                    let frames = m.take_pending(user, thread);
                    expect.replay(seen, conn, frames);
                }
            }
        }
        Op::Publish {
            ref to,
            ref except,
            ephemeral,
        } => {
            seen.published += 1;
            let n = seen.published;
            let except: Vec<ConnId> = except.iter().filter_map(|&p| m.pick_ever(p)).collect();
            let (target, reached, want, pending): (Target, Vec<ConnId>, Want, bool) = match *to {
                To::Connection(p) => {
                    let Some(conn) = m.pick_ever(p) else {
                        return Ok(expect);
                    };
                    let open = m.conns.contains_key(&conn);
                    let target = Target::Connection(conn);
                    let r = publish(h, target.except(except.clone()), n, ephemeral);
                    if !open {
                        ensure!(
                            matches!(r, Err(PublishError::UnknownConnection(_))),
                            "a publish to a closed connection: {r:?}"
                        );
                        return Ok(expect);
                    }
                    let reached: Vec<ConnId> =
                        [conn].into_iter().filter(|c| !except.contains(c)).collect();
                    check_delivery(&r, &reached, false)?;
                    expect.message(&reached, &Want::message(n, None));
                    return Ok(expect);
                }
                To::User(u) => {
                    let u = usize::from(u);
                    let (reached, want, pending) = m.user_audience(u, None, &except, n, !ephemeral);
                    (Target::User(user_id(u)), reached, want, pending)
                }
                To::Thread(u, t) => {
                    let (u, t) = (usize::from(u), usize::from(t));
                    let (reached, want, pending) =
                        m.user_audience(u, Some(t), &except, n, !ephemeral);
                    let target = Target::Thread {
                        user: user_id(u),
                        thread: thread_id(t),
                    };
                    (target, reached, want, pending)
                }
                To::Room(r) => {
                    let r = usize::from(r);
                    let reached: Vec<ConnId> = m
                        .members(r)
                        .into_iter()
                        .filter(|c| !except.contains(c))
                        .collect();
                    let want = m.room_message(r, &except, (n, None), !ephemeral);
                    (Target::Room(ROOMS[r].into()), reached, want, false)
                }
                To::All => {
                    let open = m.open().into_iter();
                    (
                        Target::All,
                        open.filter(|c| !except.contains(c)).collect(),
                        Want::message(n, None),
                        false,
                    )
                }
            };
            let r = publish(h, target.except(except), n, ephemeral);
            check_delivery(&r, &reached, pending)?;
            expect.message(&reached, &want);
        }
        Op::ClientPublish { conn, room } => {
            let Some(conn) = m.pick_open(conn) else {
                return Ok(expect);
            };
            let room = usize::from(room);
            seen.published += 1;
            let n = seen.published;
            let frame =
                json!({"type": "publish", "room": ROOMS[room], "event": event(n), "data": n});
            h.send(conn, &frame.to_string());
            if !within_rate(h, m, &mut expect, conn)? {
                return Ok(expect);
            }
            if m.conns[&conn].rooms.contains_key(&room) {
                let others: Vec<ConnId> =
                    m.members(room).into_iter().filter(|c| *c != conn).collect();
                let from = m.conns[&conn].user;
                let want = m.room_message(room, &[conn], (n, Some(from)), true);
                expect.message(&others, &want);
            } else {
                expect.plain(conn, "error:not_member");
            }
        }
        Op::Scope { user, ref what } => {
            let user = usize::from(user);
            seen.published += 1;
            let n = seen.published;
            seen.scoped.insert(n, user);
            let message = Message::new(event(n), json!(n));
            let name = USERS[user];
            match *what {
                Scoped::Publish => {
                    let (reached, want, pending) = m.user_audience(user, None, &[], n, true);
                    let r = h.with_hub(|hub, now| hub.scope(name).publish(now, &message));
                    check_delivery(&r, &reached, pending)?;
                    expect.message(&reached, &want);
                }
                Scoped::Thread(t) => {
                    let t = usize::from(t);
                    let (reached, want, pending) = m.user_audience(user, Some(t), &[], n, true);
                    let r = h.with_hub(|hub, now| {
                        hub.scope(name)
                            .publish_to_thread(now, thread_id(t), &message)
                    });
                    check_delivery(&r, &reached, pending)?;
                    expect.message(&reached, &want);
                }
                Scoped::Send(p) => {
                    let Some(conn) = m.pick_ever(p) else {
                        return Ok(expect);
                    };
                    let r = h.with_hub(|hub, now| {
                        hub.scope(name).send_to_connection(now, conn, &message)
                    });
                    if m.owns(user, conn) {
                        check_delivery(&r, &[conn], false)?;
                        expect.message(&[conn], &Want::message(n, None));
                    } else {
                        ensure!(
                            matches!(r, Err(PublishError::UnknownConnection(_))),
                            "a scope reached a connection that is not its user's: {r:?}"
                        );
                    }
                }
            }
        }
        Op::Resume { conn, ref streams } => {
            let Some(conn) = m.pick_open(conn) else {
                return Ok(expect);
            };
            resume(h, m, seen, limits, conn, streams, &mut expect)?;
        }
        Op::Reading { conn, reading } => {
            let Some(conn) = m.pick_open(conn) else {
                return Ok(expect);
            };
            h.set_reading(conn, reading);
            if reading {
                m.deaf.remove(&conn);
                for f in m.backlog.remove(&conn).unwrap_or_default() {
                    expect.frame(conn, f);
                }
            } else {
                m.deaf.insert(conn);
            }
        }
        Op::Tick { ms } => {
            let by = Duration::from_millis(u64::from(ms / SWEEP_MS * SWEEP_MS));
            m.now += by;
            h.advance(by);
            m.sweep();
        }
    }
    Ok(expect)
}

/// Why `conn` may not join `room`, if it may not (it may if it is in already).
fn join_refusal(m: &Model, limits: &Limits, conn: ConnId, room: usize) -> Option<RoomError> {
    let rooms = &m.conns[&conn].rooms;
    if rooms.contains_key(&room) {
        None
    } else if rooms.len() >= usize::from(limits.rooms_per_connection) {
        Some(RoomError::TooManyRooms)
    } else if m.members(room).len() >= usize::from(limits.members_per_room) {
        Some(RoomError::RoomFull)
    } else {
        None
    }
}

fn refusal_label(refusal: &Option<RoomError>) -> Option<&'static str> {
    match refusal {
        None => None,
        Some(RoomError::TooManyRooms) => Some("error:too_many_rooms"),
        Some(_) => Some("error:room_full"),
    }
}

/// A `resume` frame from `conn` listing `streams`: each answered in order (`docs/PROTOCOL.md`
/// section 7).
fn resume(
    h: &mut Harness,
    m: &mut Model,
    seen: &mut Seen,
    limits: &Limits,
    conn: ConnId,
    streams: &[(Resumed, Since)],
    expect: &mut Expect,
) -> Result<(), String> {
    let own = m.conns[&conn].user;
    let mut entries = Vec::new();
    let mut resolved = Vec::new();
    for (stream, from) in streams {
        let key = match *stream {
            Resumed::Own => Key::User(own),
            Resumed::User(u) => Key::User(usize::from(u)),
            Resumed::Room(r) => Key::Room(usize::from(r)),
            Resumed::Invalid => {
                entries.push(json!({"stream": "thread:t0", "epoch": 1, "seq": 0}));
                continue;
            }
        };
        let p = position_for(m, seen, conn, key, from);
        entries.push(json!({"stream": key.id(), "epoch": p.epoch, "seq": p.seq}));
        resolved.push((key, p));
    }
    h.send(
        conn,
        &json!({"type": "resume", "streams": entries}).to_string(),
    );
    if !within_rate(h, m, expect, conn)? {
        return Ok(());
    }
    let too_many = streams.len() > usize::from(limits.rooms_per_connection) + 1;
    if resolved.len() < streams.len() || too_many {
        strike(
            h,
            m,
            expect,
            conn,
            "error:invalid_frame",
            PROTOCOL_VIOLATION,
        )?;
        return Ok(());
    }
    for (key, p) in resolved {
        // Each refused stream takes a strike; the one that finds none left closes the
        // connection, and the streams after it are not read.
        let open = match key {
            Key::User(u) if u == own => {
                let frames = m.resume_user(conn, p);
                expect.replay(seen, conn, frames);
                true
            }
            Key::User(_) => strike(h, m, expect, conn, "error:forbidden", PROTOCOL_VIOLATION)?,
            Key::Room(room) => {
                if let Some(&from) = m.conns[&conn].rooms.get(&room) {
                    match answer(&m.streams[&key], &m.epochs, from, p) {
                        Answer::Resumed => expect.frame(conn, m.head("resumed", key)),
                        Answer::AlreadyLive => expect.plain(conn, "error:already_live"),
                        Answer::Replay => {
                            let (frames, from) = m.replay_room(room, p);
                            set_room_from(m, conn, room, from);
                            expect.replay(seen, conn, frames);
                            expect.frame(conn, m.head("resumed", key));
                        }
                    }
                    true
                } else if let Some(refusal) = refusal_label(&join_refusal(m, limits, conn, room)) {
                    strike(h, m, expect, conn, refusal, PROTOCOL_VIOLATION)?
                } else {
                    m.join(conn, room);
                    expect.frame(conn, m.head("joined", key));
                    let (frames, from) = m.replay_room(room, p);
                    set_room_from(m, conn, room, from);
                    expect.replay(seen, conn, frames);
                    true
                }
            }
        };
        if !open {
            break;
        }
    }
    Ok(())
}

/// The close of a connection whose bad frame found no strike left (section 4).
const PROTOCOL_VIOLATION: (u16, Reason) = (1008, Reason::ProtocolViolation);

/// `conn` sent a frame: it takes a token of the message rate (section 4). Past the rate the
/// hub drops it unread and it takes a strike, answered `rate_limited`, or, with none left,
/// closes the connection with 4029. Whether the hub reads the frame.
fn within_rate(
    h: &Harness,
    m: &mut Model,
    expect: &mut Expect,
    conn: ConnId,
) -> Result<bool, String> {
    let now = m.now;
    if m.conns.get_mut(&conn).expect("open").rate.take(now)? {
        return Ok(true);
    }
    let limited = (4029, Reason::RateLimited);
    strike(h, m, expect, conn, "error:rate_limited", limited)?;
    Ok(false)
}

/// A frame of `conn` that the hub refuses with `error` takes a strike (section 4): while one
/// is left the client gets the `error`; with none left it gets nothing and the connection
/// closes with `close`. Whether it is still open.
fn strike(
    h: &Harness,
    m: &mut Model,
    expect: &mut Expect,
    conn: ConnId,
    error: &str,
    close: (u16, Reason),
) -> Result<bool, String> {
    let now = m.now;
    if m.conns.get_mut(&conn).expect("open").strikes.take(now)? {
        expect.plain(conn, error);
        return Ok(true);
    }
    ensure_eq!(h.closed(conn), Some(close), "{:?} out of strikes", conn);
    m.remove(conn);
    Ok(false)
}

fn set_room_from(m: &mut Model, conn: ConnId, room: usize, from: u64) {
    let rooms = &mut m.conns.get_mut(&conn).expect("open").rooms;
    *rooms.get_mut(&room).expect("member") = from;
}

/// Publish the `n`th message at the harness's time.
fn publish(
    h: &mut Harness,
    to: Audience,
    n: u64,
    ephemeral: bool,
) -> Result<Delivery, PublishError> {
    let mut message = Message::new(event(n), json!(n));
    if ephemeral {
        message = message.ephemeral("state");
    }
    h.with_hub(|hub, now| hub.publish(now, to, &message))
}
