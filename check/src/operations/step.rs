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
                    expect.frame(conn, "welcome");
                    let (gap, taken) = m.take_pending(user, thread);
                    if !taken.is_empty() {
                        let head = m.streams[&user].head;
                        m.conns.get_mut(&conn).expect("open").user_from = head + 1;
                    }
                    let frames = gap.into_iter().chain(taken.into_iter().map(event));
                    expect.replay(seen, conn, frames.collect());
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
                if refusal.is_none() && !already {
                    expect.frame(conn, "joined");
                }
            } else {
                h.send(
                    conn,
                    &json!({"type": "join", "room": ROOMS[room]}).to_string(),
                );
                expect.frame(conn, refusal_label(&refusal).unwrap_or("joined"));
            }
            if refusal.is_none() && !already {
                m.join(conn, room);
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
                    expect.frame(conn, "left");
                }
            } else {
                h.send(
                    conn,
                    &json!({"type": "leave", "room": ROOMS[room]}).to_string(),
                );
                expect.frame(conn, if member { "left" } else { "error:not_member" });
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
                expect.frame(conn, "bound");
                if changed {
                    let (gap, taken) = m.take_pending(user, thread);
                    let frames = gap.into_iter().chain(taken.into_iter().map(event));
                    expect.replay(seen, conn, frames.collect());
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
            let (target, reached, pending): (Target, Vec<ConnId>, bool) = match *to {
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
                    expect.message(&reached, n);
                    return Ok(expect);
                }
                To::User(u) => {
                    let u = usize::from(u);
                    let (reached, pending) = m.user_audience(u, None, &except, n, !ephemeral);
                    (Target::User(user_id(u)), reached, pending)
                }
                To::Thread(u, t) => {
                    let (u, t) = (usize::from(u), usize::from(t));
                    let (reached, pending) = m.user_audience(u, Some(t), &except, n, !ephemeral);
                    let target = Target::Thread {
                        user: user_id(u),
                        thread: thread_id(t),
                    };
                    (target, reached, pending)
                }
                To::Room(r) => {
                    let r = usize::from(r);
                    let reached: Vec<ConnId> = m
                        .members(r)
                        .into_iter()
                        .filter(|c| !except.contains(c))
                        .collect();
                    let history = m.history;
                    if let (false, Some(s)) = (ephemeral, m.room_streams.get_mut(&r)) {
                        let seq = s.append(n, history);
                        for c in &reached {
                            let from = m.conns.get_mut(c).expect("open").rooms.get_mut(&r);
                            let from = from.expect("member");
                            if *from == 0 {
                                *from = seq;
                            }
                        }
                    }
                    (Target::Room(ROOMS[r].into()), reached, false)
                }
                To::All => {
                    let open = m.open().into_iter();
                    (
                        Target::All,
                        open.filter(|c| !except.contains(c)).collect(),
                        false,
                    )
                }
            };
            let r = publish(h, target.except(except), n, ephemeral);
            check_delivery(&r, &reached, pending)?;
            expect.message(&reached, n);
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
            if m.conns[&conn].rooms.contains_key(&room) {
                let others: Vec<ConnId> =
                    m.members(room).into_iter().filter(|c| *c != conn).collect();
                let history = m.history;
                let seq = m
                    .room_streams
                    .get_mut(&room)
                    .expect("a member's room has a stream")
                    .append(n, history);
                for c in &others {
                    let from = m.conns.get_mut(c).expect("open").rooms.get_mut(&room);
                    let from = from.expect("member");
                    if *from == 0 {
                        *from = seq;
                    }
                }
                expect.message(&others, n);
            } else {
                expect.frame(conn, "error:not_member");
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
                    let (reached, pending) = m.user_audience(user, None, &[], n, true);
                    let r = h.with_hub(|hub, now| hub.scope(name).publish(now, &message));
                    check_delivery(&r, &reached, pending)?;
                    expect.message(&reached, n);
                }
                Scoped::Thread(t) => {
                    let t = usize::from(t);
                    let (reached, pending) = m.user_audience(user, Some(t), &[], n, true);
                    let r = h.with_hub(|hub, now| {
                        hub.scope(name)
                            .publish_to_thread(now, thread_id(t), &message)
                    });
                    check_delivery(&r, &reached, pending)?;
                    expect.message(&reached, n);
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
                        expect.message(&[conn], n);
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
        Op::Tick { ms } => h.advance(Duration::from_millis(u64::from(ms))),
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
        let id = match *stream {
            Resumed::Own => StreamId::User(user_id(own)),
            Resumed::User(u) => StreamId::User(user_id(usize::from(u))),
            Resumed::Room(r) => StreamId::Room(ROOMS[usize::from(r)].into()),
            Resumed::Invalid => {
                entries.push(json!({"stream": "thread:t0", "epoch": 1, "seq": 0}));
                continue;
            }
        };
        let p = position_for(h, conn, &id, from);
        entries.push(json!({"stream": id, "epoch": p.epoch, "seq": p.seq}));
        resolved.push((id, p));
    }
    h.send(
        conn,
        &json!({"type": "resume", "streams": entries}).to_string(),
    );
    let too_many = streams.len() > usize::from(limits.rooms_per_connection) + 1;
    if resolved.len() < streams.len() || too_many {
        expect.frame(conn, "error:invalid_frame");
        return Ok(());
    }
    for (id, p) in resolved {
        let current = || h.hub().stream_position(&id).unwrap_or_default();
        match &id {
            StreamId::User(u) if *u == user_id(own) => {
                let frames = m.resume_user(conn, p, current());
                expect.replay(seen, conn, frames);
            }
            StreamId::User(_) => expect.frame(conn, "error:forbidden"),
            StreamId::Room(r) => {
                let room = ROOMS.iter().position(|x| *x == r.as_str()).expect("a room");
                if let Some(&from) = m.conns[&conn].rooms.get(&room) {
                    match standing(from, p, current()) {
                        Standing::UpToDate => expect.frame(conn, "resumed"),
                        Standing::Behind => expect.frame(conn, "error:already_live"),
                        Standing::Fresh => {
                            let (frames, from) = m.replay_room(room, p, current());
                            set_room_from(m, conn, room, from);
                            expect.replay(seen, conn, frames);
                            expect.frame(conn, "resumed");
                        }
                    }
                } else if let Some(refusal) = refusal_label(&join_refusal(m, limits, conn, room)) {
                    expect.frame(conn, refusal);
                } else {
                    m.join(conn, room);
                    expect.frame(conn, "joined");
                    let (frames, from) = m.replay_room(room, p, current());
                    set_room_from(m, conn, room, from);
                    expect.replay(seen, conn, frames);
                }
            }
        }
    }
    Ok(())
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
