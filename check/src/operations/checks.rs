//! The checks after every step: a publish's delivery, the frames each connection received,
//! and the hub's state and gauges against the model.

use super::*;

/// The delivery reports the model's count, and whether the message is pending.
pub(super) fn check_delivery(
    r: &Result<Delivery, PublishError>,
    reached: &[ConnId],
    pending: bool,
) -> Result<(), String> {
    let Ok(delivery) = r else {
        return Err(format!("publish refused: {r:?}"));
    };
    ensure_eq!(delivery.reached, reached.len(), "Delivery::reached");
    ensure_eq!(delivery.buffered, pending, "Delivery::buffered");
    Ok(())
}

/// Every connection received exactly what the step predicts, live messages in publish order,
/// and a scoped publish reached only its user's connections. Each frame that carries an epoch
/// carries its stream incarnation's (learned from the first such frame read); each position it
/// gives is kept as the client algorithm keeps it.
pub(super) fn check_frames(
    h: &Harness,
    m: &mut Model,
    seen: &mut Seen,
    expect: &Expect,
) -> Result<(), String> {
    for &conn in &m.ever {
        let frames = h.frames(conn);
        let from = seen.frames.insert(conn, frames.len()).unwrap_or(0);
        let new = &frames[from..];
        let labels: Vec<String> = new.iter().map(label).collect();
        for frame in new.iter().filter(|f| f["type"] == "message") {
            let n: u64 = frame["event"].as_str().unwrap_or_default()[1..]
                .parse()
                .map_err(|e| format!("not p<n>: {e}"))?;
            if let Some(&user) = seen.scoped.get(&n) {
                ensure_eq!(
                    &h.client(conn).user,
                    &user_id(user),
                    "a message published through {}'s scope reached {:?}",
                    USERS[user],
                    conn
                );
            }
            if !seen.replayed.contains(&(conn, n)) {
                let last = seen.last.insert(conn, n).unwrap_or(0);
                ensure!(last < n, "{conn:?} received p{n} after p{last}");
            }
        }
        let wants = expect.frames.get(&conn).map_or(&[][..], Vec::as_slice);
        let expected: Vec<&str> = wants.iter().map(|w| w.label.as_str()).collect();
        ensure_eq!(labels, expected, "frames of {:?}", conn);
        for (frame, want) in new.iter().zip(wants) {
            if let Some(inc) = want.inc {
                let epoch = frame["epoch"].as_u64().ok_or("a frame without its epoch")?;
                m.epochs
                    .learn(inc, epoch)
                    .map_err(|e| format!("{conn:?} read {frame}: {e}"))?;
            }
            if let (Some((key, seq)), Some(inc)) = (want.at, want.inc) {
                // Section 7, step 1: a new epoch replaces the position, a larger number moves
                // it on, nothing moves it back.
                let p = seen.positions.entry((conn, key)).or_insert((inc, seq));
                if p.0 != inc || seq > p.1 {
                    *p = (inc, seq);
                }
            }
        }
    }
    Ok(())
}

/// The hub's users, connections, threads, rooms (members and users) and gauges equal the
/// model's, within limits.
pub(super) fn check_state(h: &Harness, m: &Model, limits: &Limits) -> Result<(), String> {
    let hub = h.hub();
    ensure!(
        hub.connection_count() <= usize::from(limits.max_connections),
        "past max_connections"
    );
    ensure_eq!(hub.connection_count(), m.conns.len(), "connections");
    let users: BTreeSet<UserId> = hub.users().cloned().collect();
    let model_users: BTreeSet<UserId> = m.users.keys().map(|&u| user_id(u)).collect();
    ensure_eq!(users, model_users, "users");
    for (u, name) in USERS.iter().enumerate() {
        let conns = hub.user_connections(&(*name).into());
        ensure!(
            conns.len() <= usize::from(limits.per_user),
            "{} has {} connections",
            name,
            conns.len()
        );
        ensure_eq!(conns, m.user_conns(u), "connections of {}", name);
        for (t, thread) in THREADS.iter().enumerate() {
            let bound: BTreeSet<ConnId> = hub
                .thread_connections(&(*name).into(), &(*thread).into())
                .into_iter()
                .collect();
            let model: BTreeSet<ConnId> = m
                .user_conns(u)
                .iter()
                .copied()
                .filter(|c| m.conns[c].thread == Some(t))
                .collect();
            ensure_eq!(bound, model, "{}'s connections on {}", name, thread);
        }
    }
    for &conn in &m.ever {
        let info = hub.connection_info(conn);
        match m.conns.get(&conn) {
            Some(c) => {
                let info = info.ok_or_else(|| format!("{conn:?} not open in the hub"))?;
                ensure!(h.closed(conn).is_none(), "{conn:?} was closed");
                ensure_eq!(&info.user, &user_id(c.user), "user of {:?}", conn);
                ensure_eq!(info.thread, c.thread.map(thread_id), "thread of {:?}", conn);
                ensure!(
                    info.rooms.len() <= usize::from(limits.rooms_per_connection),
                    "past max_rooms_per_connection"
                );
                let rooms: BTreeSet<String> =
                    info.rooms.iter().map(|r| r.as_str().to_owned()).collect();
                let model: BTreeSet<String> =
                    c.rooms.keys().map(|&r| ROOMS[r].to_owned()).collect();
                ensure_eq!(rooms, model, "rooms of {:?}", conn);
            }
            None => ensure!(info.is_none(), "{conn:?} should be closed"),
        }
    }
    for (r, room) in ROOMS.iter().enumerate() {
        let members: BTreeSet<ConnId> = hub.room_members(&(*room).into()).into_iter().collect();
        ensure!(
            members.len() <= usize::from(limits.members_per_room),
            "past max_members_per_room"
        );
        let model: BTreeSet<ConnId> = m.members(r).into_iter().collect();
        // The room's users: each member's user, once however many of its connections are in.
        let users: BTreeSet<UserId> = model.iter().map(|c| user_id(m.conns[c].user)).collect();
        let hub_users: BTreeSet<UserId> = hub.room_users(&(*room).into()).into_iter().collect();
        ensure_eq!(hub_users, users, "users of {}", room);
        ensure_eq!(members, model, "members of {}", room);
    }
    // The hub reports the streams the model keeps, at the model's heads and in their epochs.
    for key in Key::all() {
        let reported = hub.stream_position(&key.id());
        match (reported, m.streams.get(&key)) {
            (None, None) => {}
            (Some(p), Some(s)) => {
                ensure_eq!(p.seq, s.head, "the head of {}", key);
                m.epochs.check(s.inc, p.epoch)?;
            }
            (reported, _) => return Err(format!("the hub reports {key} at {reported:?}")),
        }
    }
    let stats = hub.stats();
    let kept: usize = m.streams.values().map(|s| s.kept.len()).sum();
    ensure_eq!(stats.history_messages, kept, "messages in history");
    ensure_eq!(stats.connections, m.conns.len(), "stats.connections");
    ensure_eq!(stats.users, m.users.len(), "stats.users");
    ensure_eq!(stats.rooms, m.rooms.len(), "stats.rooms");
    ensure_eq!(stats.threads, m.threads().len(), "stats.threads");
    ensure_eq!(
        stats,
        hub.recounted_stats(),
        "gauges kept against a recount"
    );
    Ok(())
}
