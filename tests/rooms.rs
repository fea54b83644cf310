//! Rooms: joining and leaving (by the client and by the application), membership queries,
//! rooms that vanish with their last member, the room limits and the access a token grants.

mod support;

use serde_json::{json, Value};
use support::*;
use switchboard::testing::Harness;
use switchboard::{Open, Reason, RoomAccess, RoomError, RoomId};

fn lobby() -> RoomId {
    "lobby".into()
}

/// The last frame `conn` received.
fn last(h: &Harness, conn: switchboard::ConnId) -> Value {
    h.frames(conn).last().cloned().expect("a frame")
}

/// A harness whose connections may be in `rooms` rooms and whose rooms hold `members`.
fn limited(rooms: usize, members: usize) -> Harness {
    let mut config = small_config();
    config.limits.max_rooms_per_connection = rooms;
    config.limits.max_members_per_room = members;
    Harness::new(config)
}

/// `join` answers `joined` with the room stream's head and the `ref`, and makes a member.
#[test]
fn join_answers_joined_with_the_streams_head_and_the_ref() {
    let mut h = harness();
    let conn = h.connect("alice");

    h.send(conn, r#"{"type":"join","room":"lobby","ref":1}"#);

    let joined = last(&h, conn);
    assert_eq!(joined["type"], "joined");
    assert_eq!(joined["room"], "lobby");
    assert_eq!(joined["stream"], "room:lobby");
    assert_eq!(joined["seq"], 0, "no message in the room yet");
    assert!(joined["epoch"].as_u64().is_some());
    assert_eq!(joined["ref"], 1);
    assert_eq!(h.hub().room_members(&lobby()), vec![conn]);
    assert_eq!(h.hub().connection_info(conn).unwrap().rooms, vec![lobby()]);
    assert_eq!(h.hub().stats().rooms, 1);
}

/// `joined` reports the head of a room that already has messages.
#[test]
fn joined_reports_the_head_of_a_room_with_messages() {
    let mut h = harness();
    let first = h.connect("alice");
    join(&mut h, first, "lobby");
    publish_each(&mut h, &room("lobby"), 1..=3);

    let late = h.connect("bob");
    join(&mut h, late, "lobby");
    assert_eq!(h.frames_of(late, "joined")[0]["seq"], 3);
    assert!(
        h.events(late).is_empty(),
        "a join without `since` replays nothing"
    );
}

/// `leave` answers `left` with the `ref` and ends the membership.
#[test]
fn leave_answers_left_with_the_ref_and_ends_the_membership() {
    let mut h = harness();
    let conn = h.connect("alice");
    let other = h.connect("bob");
    join(&mut h, conn, "lobby");
    join(&mut h, other, "lobby");

    h.send(conn, r#"{"type":"leave","room":"lobby","ref":"x"}"#);

    assert_eq!(
        last(&h, conn),
        json!({"type": "left", "room": "lobby", "ref": "x"})
    );
    assert_eq!(h.hub().room_members(&lobby()), vec![other]);
    assert!(h.hub().connection_info(conn).unwrap().rooms.is_empty());
    assert_eq!(h.publish(room("lobby"), msg("after")).reached, 1);
    assert!(h.events(conn).is_empty());
}

/// `room_members` lists every member of the room and nobody else.
#[test]
fn room_members_lists_exactly_the_members() {
    let mut h = harness();
    let a = h.connect("alice");
    let b = h.connect("bob");
    let c = h.connect("carol");
    join(&mut h, a, "lobby");
    join(&mut h, b, "lobby");
    join(&mut h, c, "kitchen");

    let mut members = h.hub().room_members(&lobby());
    members.sort();
    assert_eq!(members, vec![a, b]);
    assert_eq!(h.hub().room_members(&"kitchen".into()), vec![c]);
    assert!(h.hub().room_members(&"attic".into()).is_empty());
}

/// Joining a room again answers `joined` again and keeps a single membership.
#[test]
fn joining_a_room_twice_keeps_one_membership() {
    let mut h = harness();
    let conn = h.connect("alice");
    join(&mut h, conn, "lobby");
    h.send(conn, r#"{"type":"join","room":"lobby","ref":2}"#);

    assert_eq!(last(&h, conn)["type"], "joined");
    assert_eq!(last(&h, conn)["ref"], 2);
    assert_eq!(h.hub().room_members(&lobby()), vec![conn]);
    assert_eq!(h.publish(room("lobby"), msg("once")).reached, 1);
    assert_eq!(h.events(conn), vec!["once"]);
}

/// Leaving a room the connection is not in answers `not_member` and takes no strike.
#[test]
fn leaving_a_room_the_connection_is_not_in_answers_not_member_without_a_strike() {
    let mut h = harness();
    let conn = h.connect("alice");
    let max_strikes = small_config().limits.max_strikes as usize;

    for i in 0..max_strikes * 2 {
        h.send(
            conn,
            &json!({"type": "leave", "room": "lobby", "ref": i}).to_string(),
        );
    }

    let errors = h.frames_of(conn, "error");
    assert_eq!(errors.len(), max_strikes * 2);
    assert!(errors.iter().all(|e| e["code"] == "not_member"));
    assert_eq!(errors[3]["ref"], 3);
    assert_eq!(h.closed(conn), None);
}

/// The application joins and removes a connection; the client gets `joined`/`left` without ref.
#[test]
fn the_application_joins_and_removes_a_connection_and_the_client_is_told() {
    let mut h = harness();
    let conn = h.connect("alice");
    h.take(conn);

    h.with_hub(|hub, now| hub.join_room(now, conn, &lobby()))
        .unwrap();
    let joined = last(&h, conn);
    assert_eq!(joined["type"], "joined");
    assert!(joined.get("ref").is_none());
    assert_eq!(h.hub().room_members(&lobby()), vec![conn]);

    h.with_hub(|hub, _| hub.leave_room(conn, &lobby())).unwrap();
    assert_eq!(last(&h, conn), json!({"type": "left", "room": "lobby"}));
    assert!(h.hub().room_members(&lobby()).is_empty());

    let again = h.with_hub(|hub, _| hub.leave_room(conn, &lobby()));
    assert_eq!(again, Err(RoomError::NotMember));
}

/// A closed connection leaves every room it was in, and the other members stay members.
#[test]
fn a_closed_connection_leaves_every_room_and_the_others_stay() {
    let mut h = harness();
    let a = h.connect("alice");
    let b = h.connect("bob");
    let c = h.connect("carol");
    for conn in [a, b, c] {
        join(&mut h, conn, "lobby");
    }
    join(&mut h, a, "kitchen");
    join(&mut h, c, "kitchen");

    h.drop_connection(a);
    let mut lobby_members = h.hub().room_members(&lobby());
    lobby_members.sort();
    assert_eq!(lobby_members, vec![b, c]);
    assert_eq!(h.hub().room_members(&"kitchen".into()), vec![c]);

    h.send(c, r#"{"type":"leave","room":"lobby"}"#);
    assert_eq!(h.hub().room_members(&lobby()), vec![b]);
    assert_eq!(h.publish(room("lobby"), msg("to b")).reached, 1);
    assert_eq!(h.events(b), vec!["to b"]);
    assert!(h.events(c).is_empty());
}

/// Members leaving in any order leave exactly the others as members, still receiving.
#[test]
fn members_leaving_in_any_order_leave_exactly_the_others() {
    let mut h = harness();
    let conns: Vec<_> = (0..5).map(|i| h.connect(&format!("u{i}"))).collect();
    for &conn in &conns {
        join(&mut h, conn, "lobby");
    }
    let mut remaining = conns.clone();
    for i in [1, 3, 0, 4] {
        h.send(conns[i], r#"{"type":"leave","room":"lobby"}"#);
        remaining.retain(|&c| c != conns[i]);
        let mut members = h.hub().room_members(&lobby());
        members.sort();
        assert_eq!(members, remaining);
        let event = format!("after-{i}");
        assert_eq!(
            h.publish(room("lobby"), msg(&event)).reached,
            remaining.len()
        );
    }
    assert_eq!(
        h.events(conns[2]),
        vec!["after-1", "after-3", "after-0", "after-4"]
    );
}

/// A room vanishes with its last member: no room in the gauges and nothing left in the hub.
#[test]
fn the_last_member_leaving_frees_the_room() {
    let mut h = harness();
    let a = h.connect("alice");
    let b = h.connect("bob");
    join(&mut h, a, "lobby");
    join(&mut h, b, "lobby");

    h.send(a, r#"{"type":"leave","room":"lobby"}"#);
    assert_eq!(h.hub().stats().rooms, 1);
    h.drop_connection(b);

    assert_eq!(h.hub().stats().rooms, 0);
    assert_eq!(h.hub().stream_position(&room_stream("lobby")), None);
    h.drop_connection(a);
    assert!(h.hub().is_idle());
}

/// A room's history outlives its last member until `max_age`; then the hub holds nothing.
#[test]
fn a_rooms_history_outlives_its_members_until_max_age() {
    let mut h = harness();
    let a = h.connect("alice");
    join(&mut h, a, "lobby");
    h.publish(room("lobby"), msg("kept"));

    h.drop_connection(a);
    assert_eq!(h.hub().stats().rooms, 0);
    assert!(h.hub().stream_position(&room_stream("lobby")).is_some());
    assert!(!h.hub().is_idle());

    h.advance(MAX_AGE + CLEANUP);
    assert_eq!(h.hub().stream_position(&room_stream("lobby")), None);
    assert!(h.hub().is_idle());
}

/// A join past `max_rooms_per_connection` is refused with `too_many_rooms`; nothing is joined.
#[test]
fn a_join_past_the_rooms_per_connection_limit_is_refused_with_too_many_rooms() {
    let mut h = limited(2, 100);
    let conn = h.connect("alice");
    join(&mut h, conn, "r1");
    join(&mut h, conn, "r2");

    h.send(conn, r#"{"type":"join","room":"r3","ref":3}"#);

    assert_eq!(error_codes(h.frames(conn)), vec!["too_many_rooms"]);
    assert_eq!(last(&h, conn)["ref"], 3);
    assert!(h.hub().room_members(&"r3".into()).is_empty());
    assert_eq!(h.hub().connection_info(conn).unwrap().rooms.len(), 2);
    assert_eq!(drops(&h, Reason::LimitReached), 1);
    let server = h.with_hub(|hub, now| hub.join_room(now, conn, &"r3".into()));
    assert_eq!(server, Err(RoomError::TooManyRooms));
}

/// A join past `max_members_per_room` is refused with `room_full`; nothing is joined.
#[test]
fn a_join_past_the_members_per_room_limit_is_refused_with_room_full() {
    let mut h = limited(8, 2);
    let a = h.connect("a");
    let b = h.connect("b");
    let c = h.connect("c");
    join(&mut h, a, "lobby");
    join(&mut h, b, "lobby");

    h.send(c, r#"{"type":"join","room":"lobby","ref":1}"#);

    assert_eq!(error_codes(h.frames(c)), vec!["room_full"]);
    assert_eq!(last(&h, c)["ref"], 1);
    assert!(h.hub().connection_info(c).unwrap().rooms.is_empty());
    assert_eq!(h.hub().room_members(&lobby()).len(), 2);
    assert_eq!(drops(&h, Reason::LimitReached), 1);
    let server = h.with_hub(|hub, now| hub.join_room(now, c, &lobby()));
    assert_eq!(server, Err(RoomError::RoomFull));

    h.drop_connection(a);
    join(&mut h, c, "lobby");
}

/// A room the token does not allow is refused with `forbidden`; no room or stream is created.
#[test]
fn a_room_the_token_does_not_allow_is_refused_with_forbidden() {
    let mut h = harness();
    let access = RoomAccess::Only(vec!["team-*".into(), "lobby".into()]);
    let conn = h.open(Open::new("alice").access(access)).unwrap();

    h.send(conn, r#"{"type":"join","room":"admin","ref":9}"#);

    let error = last(&h, conn);
    assert_eq!(error["code"], "forbidden");
    assert_eq!(error["ref"], 9);
    assert!(h.hub().room_members(&"admin".into()).is_empty());
    assert!(h.hub().connection_info(conn).unwrap().rooms.is_empty());
    assert_eq!(h.hub().stats().rooms, 0);
    assert_eq!(h.hub().stream_position(&room_stream("admin")), None);
    assert_eq!(drops(&h, Reason::Forbidden), 1);
    let server = h.with_hub(|hub, now| hub.join_room(now, conn, &"admin".into()));
    assert_eq!(server, Err(RoomError::Forbidden));

    join(&mut h, conn, "team-7");
    join(&mut h, conn, "lobby");
}

/// Join refusals are checked in order: `forbidden`, `too_many_rooms`, then `room_full`.
#[test]
fn join_refusals_are_checked_forbidden_then_too_many_rooms_then_room_full() {
    let mut h = limited(1, 1);
    let owner = h.connect("owner");
    join(&mut h, owner, "full");
    let access = RoomAccess::Only(vec!["mine".into(), "full".into()]);
    let conn = h.open(Open::new("alice").access(access)).unwrap();
    join(&mut h, conn, "mine");

    h.send(conn, r#"{"type":"join","room":"elsewhere"}"#);
    h.send(conn, r#"{"type":"join","room":"full"}"#);
    h.send(conn, r#"{"type":"leave","room":"mine"}"#);
    h.send(conn, r#"{"type":"join","room":"full"}"#);

    assert_eq!(
        error_codes(h.frames(conn)),
        vec!["forbidden", "too_many_rooms", "room_full"]
    );
}

/// A member's `publish` reaches the other members with `from`; a non-member gets `not_member`.
#[test]
fn a_members_publish_reaches_the_other_members_with_from() {
    let mut h = harness();
    let a = h.connect("alice");
    let b = h.connect("bob");
    let outsider = h.connect("carol");
    join(&mut h, a, "lobby");
    join(&mut h, b, "lobby");

    h.send(
        a,
        r#"{"type":"publish","room":"lobby","event":"chat","data":{"text":"hi"}}"#,
    );
    h.send(
        outsider,
        r#"{"type":"publish","room":"lobby","event":"chat","ref":4}"#,
    );

    let received = h.frames_of(b, "message");
    assert_eq!(received.len(), 1);
    assert_eq!(received[0]["from"], "alice");
    assert_eq!(received[0]["room"], "lobby");
    assert_eq!(received[0]["data"], json!({"text": "hi"}));
    assert!(
        h.events(a).is_empty(),
        "the sender does not get its own message"
    );
    assert_eq!(error_codes(h.frames(outsider)), vec!["not_member"]);
    assert_eq!(
        h.hub().stream_position(&room_stream("lobby")).unwrap().seq,
        1
    );
}

/// A member whose publish grant leaves a room out gets `forbidden` with its `ref` (a drop and a
/// strike, like a forbidden join) and nothing is delivered or kept; the application may still
/// publish to that room.
#[test]
fn a_publish_outside_the_publish_grant_is_forbidden_and_delivers_nothing() {
    let mut h = harness();
    let open = Open::new("alice").publish(RoomAccess::Only(vec![]));
    let muted = h.open(open).unwrap();
    let other = h.connect("bob");
    join(&mut h, muted, "lobby");
    join(&mut h, other, "lobby");
    h.take(muted);
    h.take(other);

    h.send(
        muted,
        r#"{"type":"publish","room":"lobby","event":"chat","ref":"p1"}"#,
    );

    let error = last(&h, muted);
    assert_eq!(error["code"], "forbidden");
    assert_eq!(error["ref"], "p1");
    assert_eq!(error_codes(h.frames(muted)), vec!["forbidden"]);
    assert!(h.frames(other).is_empty(), "nobody receives anything");
    assert_eq!(
        h.hub().stream_position(&room_stream("lobby")).unwrap().seq,
        0
    );
    assert_eq!(drops(&h, Reason::Forbidden), 1);

    h.publish(room("lobby"), msg("from-the-application"));
    assert_eq!(h.events(muted), vec!["from-the-application"]);
    assert_eq!(h.events(other), vec!["from-the-application"]);
}

/// A pattern publish grant: `team-*` allows publishing to `team-a`, not to `lobby`, though the
/// connection may join both. A non-member still gets `not_member`, inside the grant or not.
#[test]
fn a_pattern_publish_grant_allows_only_its_rooms() {
    let mut h = harness();
    let open = Open::new("alice").publish(RoomAccess::Only(vec!["team-*".into()]));
    let sender = h.open(open).unwrap();
    let reader = h.connect("bob");
    for room in ["team-a", "lobby"] {
        join(&mut h, sender, room);
        join(&mut h, reader, room);
    }
    h.take(sender);
    h.take(reader);

    h.send(
        sender,
        r#"{"type":"publish","room":"team-a","event":"a","ref":1}"#,
    );
    h.send(
        sender,
        r#"{"type":"publish","room":"lobby","event":"b","ref":2}"#,
    );
    h.send(
        sender,
        r#"{"type":"publish","room":"team-b","event":"c","ref":3}"#,
    );
    h.send(
        sender,
        r#"{"type":"publish","room":"admin","event":"d","ref":4}"#,
    );

    assert_eq!(h.events(reader), vec!["a"]);
    let errors = h.frames_of(sender, "error");
    let answers: Vec<_> = errors.iter().map(|e| (&e["code"], &e["ref"])).collect();
    assert_eq!(
        answers,
        vec![
            (&json!("forbidden"), &json!(2)),
            (&json!("not_member"), &json!(3)),
            (&json!("not_member"), &json!(4)),
        ]
    );
    assert_eq!(
        drops(&h, Reason::Forbidden),
        1,
        "not_member takes no strike"
    );
}

/// `Open::new` grants publishing to every room the connection is in, as before grants.
#[test]
fn a_default_open_publishes_to_any_room_it_is_in() {
    let mut h = harness();
    let sender = h.open(Open::new("alice")).unwrap();
    let reader = h.connect("bob");
    join(&mut h, sender, "anything");
    join(&mut h, reader, "anything");

    h.send(
        sender,
        r#"{"type":"publish","room":"anything","event":"hi"}"#,
    );

    assert_eq!(h.events(reader), vec!["hi"]);
    assert!(error_codes(h.frames(sender)).is_empty());
}

/// Forbidden publishes count against the strikes: past them the connection closes with 1008.
#[test]
fn forbidden_publishes_past_the_strikes_close_the_connection() {
    let mut h = harness();
    let strikes = small_config().limits.max_strikes;
    let open = Open::new("alice").publish(RoomAccess::Only(vec![]));
    let conn = h.open(open).unwrap();
    join(&mut h, conn, "lobby");

    for _ in 0..=strikes {
        h.send(conn, r#"{"type":"publish","room":"lobby","event":"x"}"#);
    }

    assert_eq!(error_codes(h.frames(conn)).len(), strikes as usize);
    assert_eq!(h.closed(conn), Some((1008, Reason::ProtocolViolation)));
}

/// The rooms gauge counts rooms with at least one member.
#[test]
fn the_rooms_gauge_counts_rooms_with_members() {
    let mut h = harness();
    let a = h.connect("alice");
    let b = h.connect("bob");
    join(&mut h, a, "r1");
    join(&mut h, a, "r2");
    join(&mut h, b, "r2");
    assert_eq!(h.hub().stats().rooms, 2);
    h.drop_connection(a);
    assert_eq!(h.hub().stats().rooms, 1);
}
