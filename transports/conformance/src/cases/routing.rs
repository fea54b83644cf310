//! Who receives what: the welcome, rooms, every audience of a publish, threads, and the
//! isolation of users.

use super::*;

/// The first frame on an accepted connection is `welcome`: the connection's id, the
/// authenticated user, the thread bound at connect, the ping interval and the user stream.
pub async fn welcome_is_the_first_frame<T: Transport>() {
    let t = T::start(config()).await;
    let mut alice = t.connect(Connect::user("alice").thread("t1")).await;
    let welcome = frame(&mut alice).await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["user"], "alice");
    assert_eq!(welcome["thread"], "t1");
    assert_eq!(welcome["heartbeat_ms"], 60_000);
    assert_eq!(welcome["stream"], "user:alice");
    assert!(welcome["conn"]
        .as_str()
        .is_some_and(|c| c.parse::<ConnId>().is_ok()));
    assert_eq!(position(&welcome).seq, 0, "nothing published to alice yet");
    drop(alice);
    t.shutdown().await;
}

/// `join` answers `joined` (echoing `ref`) with the room stream's head; the member then
/// receives the room's messages, sequenced in the room stream; `leave` answers `left` and
/// the room's messages stop.
pub async fn join_then_leave<T: Transport>() {
    let t = T::start(config()).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice")).await;
    let joined = request(
        &mut alice,
        json!({"type": "join", "room": "lobby", "ref": 1}),
    )
    .await;
    assert_eq!(
        (
            &joined["type"],
            &joined["room"],
            &joined["stream"],
            &joined["seq"],
            &joined["ref"]
        ),
        (
            &json!("joined"),
            &json!("lobby"),
            &json!("room:lobby"),
            &json!(0),
            &json!(1)
        )
    );
    assert_eq!(publish(&t, room("lobby"), message("news")).await.reached, 1);
    let news = frame(&mut alice).await;
    assert_eq!(
        (&news["event"], &news["room"], &news["stream"], &news["seq"]),
        (
            &json!("news"),
            &json!("lobby"),
            &json!("room:lobby"),
            &json!(1)
        )
    );
    let left = request(
        &mut alice,
        json!({"type": "leave", "room": "lobby", "ref": 2}),
    )
    .await;
    assert_eq!(
        (&left["type"], &left["room"], &left["ref"]),
        (&json!("left"), &json!("lobby"), &json!(2))
    );
    assert_eq!(
        publish(&t, room("lobby"), message("after")).await.reached,
        0
    );
    quiet(&mut alice, "alice, who left").await;
    drop(alice);
    t.shutdown().await;
}

/// Leaving a room the connection is not in answers `error` `not_member` with the `ref`, and
/// the connection stays open.
pub async fn leaving_a_room_not_joined_is_an_error<T: Transport>() {
    let t = T::start(config()).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice")).await;
    let error = request(
        &mut alice,
        json!({"type": "leave", "room": "nowhere", "ref": 7}),
    )
    .await;
    assert_eq!(
        (&error["type"], &error["code"], &error["ref"]),
        (&json!("error"), &json!("not_member"), &json!(7))
    );
    quiet(&mut alice, "alice").await;
    drop(alice);
    t.shutdown().await;
}

/// A publish to one connection reaches that connection only, unsequenced (no stream);
/// another connection of the same user receives nothing.
pub async fn publish_to_one_connection<T: Transport>() {
    let t = T::start(config()).await;
    let (mut first, conn) = welcomed(&t, Connect::user("alice")).await;
    let (mut second, _) = welcomed(&t, Connect::user("alice")).await;
    let delivery = publish(&t, Target::Connection(conn), message("only-you")).await;
    assert_eq!((delivery.reached, delivery.position), (1, None));
    let only = frame(&mut first).await;
    assert_eq!(only["event"], "only-you");
    assert_eq!(only.get("stream"), None, "unsequenced");
    quiet(&mut second, "alice's other connection").await;
    drop((first, second));
    t.shutdown().await;
}

/// A publish to a user reaches every connection of that user, with the same place in the
/// user's stream, and no other user.
pub async fn publish_to_a_user_reaches_all_their_connections<T: Transport>() {
    let t = T::start(config()).await;
    let (mut first, _) = welcomed(&t, Connect::user("alice")).await;
    let (mut second, _) = welcomed(&t, Connect::user("alice")).await;
    let (mut bob, _) = welcomed(&t, Connect::user("bob")).await;
    let delivery = publish(&t, user("alice"), message("for-alice")).await;
    assert_eq!(delivery.reached, 2);
    let at = delivery.position.expect("sequenced in alice's stream");
    for client in [&mut first, &mut second] {
        let frame = frame(client).await;
        assert_eq!(
            (&frame["event"], &frame["stream"]),
            (&json!("for-alice"), &json!("user:alice"))
        );
        assert_eq!(position(&frame), at);
    }
    quiet(&mut bob, "bob").await;
    drop((first, second, bob));
    t.shutdown().await;
}

/// A publish to a user that leaves out one of the user's connections reaches the others.
pub async fn publish_to_a_user_except_one_connection<T: Transport>() {
    let t = T::start(config()).await;
    let (mut left_out, conn) = welcomed(&t, Connect::user("alice")).await;
    let (mut other, _) = welcomed(&t, Connect::user("alice")).await;
    let to = user("alice").except([conn]);
    assert_eq!(publish(&t, to, message("not-you")).await.reached, 1);
    assert_eq!(event(&mut other).await, "not-you");
    quiet(&mut left_out, "the connection left out").await;
    drop((left_out, other));
    t.shutdown().await;
}

/// A publish to a room that leaves out one member reaches the other members and no one
/// outside the room.
pub async fn publish_to_a_room_except_one_member<T: Transport>() {
    let t = T::start(config()).await;
    let mut members = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let (mut client, conn) = welcomed(&t, Connect::user(name)).await;
        join(&mut client, "lobby").await;
        members.push((client, conn));
    }
    let (mut outsider, _) = welcomed(&t, Connect::user("dave")).await;
    let to = room("lobby").except([members[1].1]);
    assert_eq!(publish(&t, to, message("most-of-you")).await.reached, 2);
    let [(alice, _), (bob, _), (carol, _)] = &mut members[..] else {
        unreachable!("three members")
    };
    assert_eq!(event(alice).await, "most-of-you");
    assert_eq!(event(carol).await, "most-of-you");
    quiet(bob, "bob, left out").await;
    quiet(&mut outsider, "dave, outside the room").await;
    drop((members, outsider));
    t.shutdown().await;
}

/// A publish to a user's thread reaches only that user's connections bound to it: not the
/// user's other connections, and not another user's connection bound to a thread of the
/// same name.
pub async fn publish_to_a_thread<T: Transport>() {
    let t = T::start(config()).await;
    let (mut on_thread, _) = welcomed(&t, Connect::user("alice").thread("t1")).await;
    let (mut other_thread, _) = welcomed(&t, Connect::user("alice").thread("t2")).await;
    let (mut unbound, _) = welcomed(&t, Connect::user("alice")).await;
    let (mut bob, _) = welcomed(&t, Connect::user("bob").thread("t1")).await;
    let delivery = publish(&t, thread("alice", "t1"), message("for-t1")).await;
    assert_eq!(delivery.reached, 1);
    assert!(delivery.position.is_some(), "sequenced in alice's stream");
    let frame = frame(&mut on_thread).await;
    assert_eq!(
        (&frame["event"], &frame["thread"], &frame["stream"]),
        (&json!("for-t1"), &json!("t1"), &json!("user:alice"))
    );
    quiet(&mut other_thread, "alice on t2").await;
    quiet(&mut unbound, "alice unbound").await;
    quiet(&mut bob, "bob on his own t1").await;
    drop((on_thread, other_thread, unbound, bob));
    t.shutdown().await;
}

/// A publish to everyone that leaves out one connection reaches every other open connection,
/// unsequenced.
pub async fn publish_to_everyone_except_one_connection<T: Transport>() {
    let t = T::start(config()).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice")).await;
    let (mut bob, _) = welcomed(&t, Connect::user("bob")).await;
    let (mut carol, carol_conn) = welcomed(&t, Connect::user("carol")).await;
    let to = Target::All.except([carol_conn]);
    assert_eq!(publish(&t, to, message("hear-ye")).await.reached, 2);
    for client in [&mut alice, &mut bob] {
        let frame = frame(client).await;
        assert_eq!(frame["event"], "hear-ye");
        assert_eq!(frame.get("stream"), None, "unsequenced");
    }
    quiet(&mut carol, "carol, left out").await;
    drop((alice, bob, carol));
    t.shutdown().await;
}

/// A client's room `publish` reaches the room's other members with the sender named in
/// `from`, and not the sender.
pub async fn a_clients_room_publish_reaches_the_other_members<T: Transport>() {
    let t = T::start(config()).await;
    let mut members = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let (mut client, _) = welcomed(&t, Connect::user(name)).await;
        join(&mut client, "lobby").await;
        members.push(client);
    }
    let publish_frame = json!({
        "type": "publish", "room": "lobby", "event": "chat", "data": {"text": "hi"}
    });
    members[0].send(&publish_frame.to_string()).await;
    for member in &mut members[1..] {
        let frame = frame(member).await;
        assert_eq!(
            (
                &frame["event"],
                &frame["from"],
                &frame["room"],
                &frame["data"]
            ),
            (
                &json!("chat"),
                &json!("alice"),
                &json!("lobby"),
                &json!({"text": "hi"})
            )
        );
    }
    // The members have it: the sender's hub has handled the frame.
    publish(&t, user("alice"), message("sentinel")).await;
    assert_eq!(
        event(&mut members[0]).await,
        "sentinel",
        "the sender got its own message"
    );
    drop(members);
    t.shutdown().await;
}

/// `bind` answers `bound` (echoing `ref`); the connection then receives its thread's
/// messages, and after binding to `null` no longer does.
pub async fn bind_and_unbind_a_thread<T: Transport>() {
    let t = T::start(config()).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice")).await;
    let bound = request(
        &mut alice,
        json!({"type": "bind", "thread": "t1", "ref": 3}),
    )
    .await;
    assert_eq!(
        (&bound["type"], &bound["thread"], &bound["ref"]),
        (&json!("bound"), &json!("t1"), &json!(3))
    );
    let delivery = publish(&t, thread("alice", "t1"), message("in-t1")).await;
    assert_eq!(delivery.reached, 1);
    assert_eq!(event(&mut alice).await, "in-t1");
    let unbound = request(
        &mut alice,
        json!({"type": "bind", "thread": null, "ref": 4}),
    )
    .await;
    assert_eq!(
        (&unbound["type"], &unbound["thread"], &unbound["ref"]),
        (&json!("bound"), &json!(null), &json!(4))
    );
    let delivery = publish(&t, thread("alice", "t1"), message("not-bound")).await;
    assert_eq!(delivery.reached, 0);
    quiet(&mut alice, "alice, unbound").await;
    drop(alice);
    t.shutdown().await;
}

/// Users are isolated: what is published to one user or one user's thread reaches none of
/// another user's connections, even on a thread of the same name, and a client may not
/// resume another user's stream (`forbidden`).
pub async fn users_are_isolated<T: Transport>() {
    let t = T::start(config()).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice").thread("t1")).await;
    let (mut bob, _) = welcomed(&t, Connect::user("bob").thread("t1")).await;
    publish(&t, user("alice"), message("alice-only")).await;
    publish(&t, thread("alice", "t1"), message("alice-t1-only")).await;
    assert_eq!(event(&mut alice).await, "alice-only");
    assert_eq!(event(&mut alice).await, "alice-t1-only");
    quiet(&mut bob, "bob").await;
    let steal = json!({
        "type": "resume", "ref": 9,
        "streams": [{"stream": "user:alice", "epoch": 1, "seq": 0}]
    });
    let refused = request(&mut bob, steal).await;
    assert_eq!(
        (&refused["type"], &refused["code"], &refused["ref"]),
        (&json!("error"), &json!("forbidden"), &json!(9))
    );
    quiet(&mut bob, "bob, after asking for alice's stream").await;
    drop((alice, bob));
    t.shutdown().await;
}

/// An application-level `ping` is answered with `pong` echoing the `ref` verbatim.
pub async fn an_application_ping_is_answered_with_its_ref<T: Transport>() {
    let t = T::start(config()).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice")).await;
    let reference = json!({"n": [1, 2], "s": "x"});
    let pong = request(&mut alice, json!({"type": "ping", "ref": reference})).await;
    assert_eq!((&pong["type"], &pong["ref"]), (&json!("pong"), &reference));
    drop(alice);
    t.shutdown().await;
}
