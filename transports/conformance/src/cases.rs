//! The cases: what every transport must do, as a client sees it (`docs/PROTOCOL.md`). Each
//! is generic over the [`Transport`] and starts its own switchboard; [`suite!`](crate::suite)
//! runs each over a transport.
//!
//! [`frame`] and [`close_code`] are public for transports' own tests.
//!
//! Ordering rules the cases rely on, true of every transport: what the application publishes
//! is handed to the connections before the publish returns; a client's frames are handled in
//! the order it sent them. So a ping sent after a publish is answered after anything that
//! publish gave the client (the `quiet` check).

use crate::{Client, Connect, Received, Transport};
use serde_json::{json, Value};
use std::time::Duration;
use switchboard::{
    AgentEvent, AgentUpdate, Audience, Config, ConnId, Delivery, HeartbeatConfig, Message,
    Position, PublishError, RunError, Target,
};

/// A development config whose heartbeat stays out of the way of cases that are not about it.
fn config() -> Config {
    let minute = Duration::from_secs(60);
    let development = Config::development();
    Config {
        heartbeat: HeartbeatConfig {
            interval: minute,
            timeout: 3 * minute,
            grace: minute,
            ..development.heartbeat
        },
        ..development
    }
}

/// Small outbound budgets, so that a reader that stops reading overflows soon.
fn tight_backpressure() -> Config {
    let mut config = config();
    config.backpressure.inflight_bytes = 16 * 1024;
    config.backpressure.queue_messages = 64;
    config.backpressure.queue_bytes = 256 * 1024;
    config
}

fn message(event: &str) -> Message {
    Message::new(event, json!({"n": 1}))
}

/// The next frame, which must not be the close.
pub async fn frame(client: &mut impl Client) -> Value {
    match client.recv().await {
        Received::Frame(frame) => frame,
        Received::Closed(code) => panic!("closed with {code:?} while a frame was expected"),
    }
}

/// The next frame, which must be a `message`; its `event`.
async fn event(client: &mut impl Client) -> String {
    let frame = frame(client).await;
    assert_eq!(frame["type"], "message", "unexpected frame {frame}");
    frame["event"].as_str().expect("an event").to_owned()
}

/// Read past any frames until the close; its code.
pub async fn close_code(client: &mut impl Client) -> Option<u16> {
    loop {
        if let Received::Closed(code) = client.recv().await {
            return code;
        }
    }
}

/// Connect, read the welcome, and return the client with its connection id.
async fn welcomed<T: Transport>(t: &T, connect: Connect) -> (T::Client, ConnId) {
    let mut client = t.connect(connect).await;
    let welcome = frame(&mut client).await;
    assert_eq!(
        welcome["type"], "welcome",
        "unexpected first frame {welcome}"
    );
    let conn = welcome["conn"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .expect("welcome names the connection");
    (client, conn)
}

/// Send `frame` and return the reply.
async fn request(client: &mut impl Client, frame: Value) -> Value {
    client.send(&frame.to_string()).await;
    self::frame(client).await
}

/// Join `room`; the position `joined` reports.
async fn join(client: &mut impl Client, room: &str) -> Position {
    let joined = request(client, json!({"type": "join", "room": room})).await;
    assert_eq!(joined["type"], "joined", "unexpected frame {joined}");
    position(&joined)
}

/// The `epoch` and `seq` of a frame.
fn position(frame: &Value) -> Position {
    Position {
        epoch: frame["epoch"].as_u64().expect("an epoch"),
        seq: frame["seq"].as_u64().expect("a seq"),
    }
}

/// Nothing reached `client` since its last frame: a ping now is answered next.
async fn quiet(client: &mut impl Client, who: &str) {
    let reply = request(client, json!({"type": "ping", "ref": "quiet"})).await;
    assert_eq!(
        (&reply["type"], &reply["ref"]),
        (&json!("pong"), &json!("quiet")),
        "{who} received {reply}, meant for someone else"
    );
}

async fn publish<T: Transport>(t: &T, to: impl Into<Audience>, message: Message) -> Delivery {
    t.publish(to.into(), message).await.expect("published")
}

fn user(user: &str) -> Target {
    Target::User(user.into())
}

fn room(room: &str) -> Target {
    Target::Room(room.into())
}

fn thread(user: &str, thread: &str) -> Target {
    Target::Thread {
        user: user.into(),
        thread: thread.into(),
    }
}

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

/// A frame that is not JSON gets `error` `malformed_json`, without `ref`, and the
/// connection stays open.
pub async fn malformed_json_gets_an_error_frame<T: Transport>() {
    let t = T::start(config()).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice")).await;
    alice.send("{not json").await;
    let error = frame(&mut alice).await;
    assert_eq!(
        (&error["type"], &error["code"]),
        (&json!("error"), &json!("malformed_json"))
    );
    assert_eq!(error.get("ref"), None);
    quiet(&mut alice, "alice").await;
    drop(alice);
    t.shutdown().await;
}

/// A frame of an unknown `type` gets `error` `unknown_type` with its `ref`.
pub async fn an_unknown_type_gets_an_error_frame<T: Transport>() {
    let t = T::start(config()).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice")).await;
    let error = request(&mut alice, json!({"type": "dance", "ref": 5})).await;
    assert_eq!(
        (&error["type"], &error["code"], &error["ref"]),
        (&json!("error"), &json!("unknown_type"), &json!(5))
    );
    quiet(&mut alice, "alice").await;
    drop(alice);
    t.shutdown().await;
}

/// A known `type` with a missing field gets `error` `invalid_frame` with its `ref`.
pub async fn an_invalid_frame_gets_an_error_frame<T: Transport>() {
    let t = T::start(config()).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice")).await;
    let error = request(&mut alice, json!({"type": "join", "ref": 6})).await;
    assert_eq!(
        (&error["type"], &error["code"], &error["ref"]),
        (&json!("error"), &json!("invalid_frame"), &json!(6))
    );
    quiet(&mut alice, "alice").await;
    drop(alice);
    t.shutdown().await;
}

/// Ten bad frames are answered with `error` frames; the eleventh, with no strike left,
/// closes the connection with 1008.
pub async fn garbage_exhausts_the_strikes_and_closes_with_1008<T: Transport>() {
    let t = T::start(config()).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice")).await;
    for strike in 1..=10 {
        alice.send("garbage").await;
        let error = frame(&mut alice).await;
        assert_eq!(error["code"], "malformed_json", "strike {strike}");
    }
    alice.send("garbage").await;
    assert_eq!(close_code(&mut alice).await, Some(1008));
    t.shutdown().await;
}

/// A binary frame closes the connection with 1003.
pub async fn a_binary_frame_closes_with_1003<T: Transport>() {
    let t = T::start(config()).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice")).await;
    alice.send_binary(&[1, 2, 3]).await;
    assert_eq!(close_code(&mut alice).await, Some(1003));
    t.shutdown().await;
}

/// More control frames than the rate limit's burst and the strikes together (100 + 10 with
/// the defaults), three times over: sent faster than the rate refills them, whatever the
/// machine.
const CONTROL_FLOOD: usize = 3 * (100 + 10);

/// A client that floods WebSocket pings is limited like one that floods text frames: past the
/// burst each ping takes a strike (with no `error` frame), and the ping that finds no strike
/// left closes the connection with 4029. The pongs the WebSocket layer answers with are all it
/// reads before the close.
pub async fn a_ping_flood_closes_with_4029<T: Transport>() {
    let t = T::start(config()).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice")).await;
    for _ in 0..CONTROL_FLOOD {
        alice.send_ping(b"flood").await;
    }
    assert_eq!(alice.recv().await, Received::Closed(Some(4029)));
    t.shutdown().await;
}

/// Pongs that answer none of the server's pings count against the rate limit as pings do: a
/// flood of them closes the connection with 4029, with no `error` frame before it.
pub async fn an_unsolicited_pong_flood_closes_with_4029<T: Transport>() {
    let t = T::start(config()).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice")).await;
    for _ in 0..CONTROL_FLOOD {
        alice.send_unsolicited_pong(b"flood").await;
    }
    assert_eq!(alice.recv().await, Received::Closed(Some(4029)));
    t.shutdown().await;
}

/// A text frame that is not UTF-8 closes the connection with 1007.
pub async fn invalid_utf8_closes_with_1007<T: Transport>() {
    let t = T::start(config()).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice")).await;
    alice
        .send_raw_text(b"{\"type\":\"ping\",\"x\":\"\xff\xfe\"}")
        .await;
    assert_eq!(close_code(&mut alice).await, Some(1007));
    t.shutdown().await;
}

/// A frame larger than `max_frame_bytes` closes the connection with 1009, whether it is a
/// little or much larger.
pub async fn an_oversized_frame_closes_with_1009<T: Transport>() {
    let mut config = config();
    config.limits.max_frame_bytes = 1024;
    let t = T::start(config).await;
    for (name, size) in [("alice", 1500), ("bob", 3000)] {
        let (mut client, _) = welcomed(&t, Connect::user(name)).await;
        let frame = json!({"type": "ping", "pad": "x".repeat(size)});
        client.send(&frame.to_string()).await;
        assert_eq!(close_code(&mut client).await, Some(1009), "{size} bytes");
    }
    t.shutdown().await;
}

/// A user's connection past `max_connections_per_user` (3) is refused with 4003 before any
/// frame; the user's open connections are untouched.
pub async fn the_per_user_limit_refuses_with_4003<T: Transport>() {
    let t = T::start(config()).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(welcomed(&t, Connect::user("alice")).await.0);
    }
    let mut fourth = t.connect(Connect::user("alice")).await;
    assert_eq!(fourth.recv().await, Received::Closed(Some(4003)));
    for client in &mut open {
        quiet(client, "an open connection of alice").await;
    }
    drop(open);
    t.shutdown().await;
}

/// A client that answers no ping and sends nothing is closed with 4000 once the heartbeat
/// timeout and grace have passed; a client that answers stays open.
pub async fn a_silent_client_is_closed_with_4000<T: Transport>() {
    let mut config = config();
    // The healthy client has 2.5 s to answer a ping: a loaded machine does not make it silent.
    config.heartbeat.interval = Duration::from_millis(200);
    config.heartbeat.timeout = Duration::from_millis(1500);
    config.heartbeat.grace = Duration::from_millis(1000);
    let t = T::start(config).await;
    let (mut silent, _) = welcomed(&t, Connect::user("silent")).await;
    silent.silence();
    let (mut healthy, _) = welcomed(&t, Connect::user("healthy")).await;
    let wait = Duration::from_millis(3500);
    futures_util::join!(t.advance(wait), healthy.idle(wait));
    assert_eq!(close_code(&mut silent).await, Some(4000));
    quiet(&mut healthy, "the healthy client").await;
    drop(healthy);
    t.shutdown().await;
}

fn run_event(event: AgentEvent) -> AgentUpdate {
    AgentUpdate {
        run: "r1".into(),
        agent: "helper".into(),
        thread: Some("t1".into()),
        event,
    }
}

/// The five agent events of a run reach the user's connections bound to the run's thread,
/// in order, in the user stream; a connection on another thread sees none of them.
pub async fn agent_events_arrive_in_order_on_the_run_thread<T: Transport>() {
    let t = T::start(config()).await;
    let (mut on_thread, _) = welcomed(&t, Connect::user("alice").thread("t1")).await;
    let (mut elsewhere, _) = welcomed(&t, Connect::user("alice").thread("t2")).await;
    let events = [
        AgentEvent::AgentStarted {
            data: json!({"prompt": "p"}),
        },
        AgentEvent::AgentThinking {
            thought: "looking it up".into(),
        },
        AgentEvent::ToolExecuting {
            tool: "search".into(),
            call_id: Some("c1".into()),
            input: json!({"q": "x"}),
        },
        AgentEvent::ToolCompleted {
            tool: "search".into(),
            call_id: Some("c1".into()),
            output: json!([1]),
        },
        AgentEvent::AgentCompleted {
            result: json!({"ok": true}),
        },
    ];
    for event in events {
        let delivery = t.agent_update("alice", run_event(event)).await;
        assert_eq!(delivery.expect("in order").reached, 1);
    }
    let mut last_seq = 0;
    for kind in [
        "agent_started",
        "agent_thinking",
        "tool_executing",
        "tool_completed",
        "agent_completed",
    ] {
        let frame = frame(&mut on_thread).await;
        assert_eq!(
            (
                &frame["type"],
                &frame["run"],
                &frame["agent"],
                &frame["thread"]
            ),
            (&json!(kind), &json!("r1"), &json!("helper"), &json!("t1"))
        );
        assert_eq!(frame["stream"], "user:alice");
        let seq = position(&frame).seq;
        assert!(seq > last_seq, "{kind} after seq {last_seq}");
        last_seq = seq;
    }
    quiet(&mut elsewhere, "alice on another thread").await;
    drop((on_thread, elsewhere));
    t.shutdown().await;
}

/// An agent event out of order is refused to the producer and reaches no one: anything
/// before `agent_started`, a second start, a tool completion without its execution, and
/// anything after the end.
pub async fn agent_events_out_of_order_are_refused<T: Transport>() {
    let t = T::start(config()).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice").thread("t1")).await;
    let thinking = || AgentEvent::AgentThinking {
        thought: "hmm".into(),
    };
    let started = || AgentEvent::AgentStarted { data: json!(null) };
    let update = |event| t.agent_update("alice", run_event(event));
    let refused = |result: Result<Delivery, PublishError>| match result {
        Err(PublishError::Run(error)) => error,
        other => panic!("accepted out of order: {other:?}"),
    };
    assert!(matches!(
        refused(update(thinking()).await),
        RunError::NotStarted(_)
    ));
    update(started()).await.expect("the start");
    assert!(matches!(
        refused(update(started()).await),
        RunError::AlreadyStarted(_)
    ));
    let orphan = AgentEvent::ToolCompleted {
        tool: "search".into(),
        call_id: None,
        output: json!(null),
    };
    assert!(matches!(
        refused(update(orphan).await),
        RunError::ToolNotExecuting { .. }
    ));
    let done = AgentEvent::AgentCompleted { result: json!(1) };
    update(done).await.expect("the end");
    assert!(matches!(
        refused(update(thinking()).await),
        RunError::Ended(_)
    ));
    assert_eq!(frame(&mut alice).await["type"], "agent_started");
    assert_eq!(frame(&mut alice).await["type"], "agent_completed");
    quiet(&mut alice, "alice, after the refused events").await;
    drop(alice);
    t.shutdown().await;
}

/// How many messages the backpressure cases publish: far more than a reader that stopped can
/// hold (socket buffers, in-flight budget and queue).
const FLOOD: usize = 200;

/// A 2 KiB room message numbered `i`.
fn padded(i: usize) -> Message {
    Message::new("tick", json!({"i": i, "pad": "x".repeat(2048)}))
}

/// Read `client`'s messages until its close: their seqs and the close code.
async fn drain(client: &mut impl Client) -> (Vec<u64>, Option<u16>) {
    let mut seqs = Vec::new();
    loop {
        match client.recv().await {
            Received::Frame(frame) if frame["type"] == "message" => {
                seqs.push(position(&frame).seq);
            }
            Received::Frame(_) => {}
            Received::Closed(code) => return (seqs, code),
        }
    }
}

/// A member that stops reading is closed with 4008 once its queue overflows, without
/// receiving everything; a member that reads receives every message, in order.
pub async fn a_slow_reader_is_closed_with_4008_and_a_fast_reader_gets_everything<T: Transport>() {
    let t = T::start(tight_backpressure()).await;
    let (mut slow, _) = welcomed(&t, Connect::user("slow").small_buffers()).await;
    join(&mut slow, "feed").await;
    slow.pause();
    let (mut fast, _) = welcomed(&t, Connect::user("fast")).await;
    join(&mut fast, "feed").await;
    let mut seqs = Vec::new();
    for batch in (0..FLOOD).step_by(8) {
        for i in batch..batch + 8 {
            publish(&t, room("feed"), padded(i)).await;
        }
        for _ in 0..8 {
            let frame = frame(&mut fast).await;
            assert_eq!(frame["type"], "message", "unexpected frame {frame}");
            seqs.push(position(&frame).seq);
        }
    }
    assert_eq!(seqs.len(), FLOOD);
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "in order, none missing"
    );
    let (received, code) = drain(&mut slow).await;
    assert_eq!(code, Some(4008));
    assert!(received.len() < FLOOD, "the slow reader was cut off");
    quiet(&mut fast, "the fast reader").await;
    drop(fast);
    t.shutdown().await;
}

/// A reader whose in-flight budget is far smaller than what a writer gathers before it reports
/// its writes (`FLUSH_REPORT_BYTES`) still receives everything, in order: each time the hub
/// holds frames back for it, the writer is told and reports at once.
pub async fn a_reader_behind_a_budget_smaller_than_a_report_gets_everything<T: Transport>() {
    let mut config = config();
    config.backpressure.inflight_bytes = 1024;
    let t = T::start(config).await;
    let (mut reader, _) = welcomed(&t, Connect::user("reader")).await;
    join(&mut reader, "feed").await;
    const MESSAGES: usize = 40;
    for i in 0..MESSAGES {
        let message = Message::new("tick", json!({"i": i, "pad": "x".repeat(200)}));
        publish(&t, room("feed"), message).await;
    }
    for i in 0..MESSAGES {
        let frame = frame(&mut reader).await;
        assert_eq!(frame["data"]["i"], i, "unexpected frame {frame}");
    }
    quiet(&mut reader, "the reader").await;
    drop(reader);
    t.shutdown().await;
}

/// A member closed with 4008 reconnects and resumes the room from the last message it
/// received: `joined`, then every message it missed, in order, with no gap.
pub async fn a_slow_reader_closed_with_4008_resumes_what_it_missed<T: Transport>() {
    let t = T::start(tight_backpressure()).await;
    let (mut slow, _) = welcomed(&t, Connect::user("slow").small_buffers()).await;
    let joined = join(&mut slow, "feed").await;
    slow.pause();
    for i in 0..FLOOD {
        publish(&t, room("feed"), padded(i)).await;
    }
    let (received, code) = drain(&mut slow).await;
    assert_eq!(code, Some(4008));
    let last = received.last().copied().unwrap_or(joined.seq);
    let (mut again, _) = welcomed(&t, Connect::user("slow")).await;
    let resume = json!({
        "type": "resume",
        "streams": [{"stream": "room:feed", "epoch": joined.epoch, "seq": last}]
    });
    let rejoined = request(&mut again, resume).await;
    assert_eq!(rejoined["type"], "joined", "unexpected frame {rejoined}");
    let head = position(&rejoined).seq;
    assert!(head > last, "messages were missed");
    for seq in last + 1..=head {
        let frame = frame(&mut again).await;
        assert_eq!(
            (&frame["type"], position(&frame).seq),
            (&json!("message"), seq),
            "replayed in order without a gap"
        );
        if seq == head {
            assert_eq!(frame["data"]["i"], FLOOD - 1, "up to the last message");
        }
    }
    quiet(&mut again, "the resumed reader").await;
    drop(again);
    t.shutdown().await;
}

/// A client that reconnects with its last user-stream position receives everything after
/// it — what it missed and what was published while it was away — and nothing before it.
pub async fn resume_after_reconnect_without_gap<T: Transport>() {
    let t = T::start(config()).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice")).await;
    publish(&t, user("alice"), message("m1")).await;
    publish(&t, user("alice"), message("m2")).await;
    let m1 = frame(&mut alice).await;
    assert_eq!(m1["event"], "m1");
    assert_eq!(event(&mut alice).await, "m2");
    alice.close().await;
    let delivery = publish(&t, user("alice"), message("m3")).await;
    assert!(delivery.buffered, "kept for alice's next connection");
    // As if m2 was lost with the connection: resume right after m1.
    let (mut again, _) = welcomed(&t, Connect::user("alice").resume(position(&m1))).await;
    assert_eq!(event(&mut again).await, "m2");
    assert_eq!(event(&mut again).await, "m3");
    quiet(&mut again, "alice, resumed").await;
    drop(again);
    t.shutdown().await;
}

/// A client that reconnects from a position history no longer reaches back to receives a
/// `gap` naming what is lost, then what history still holds.
pub async fn resume_after_reconnect_with_gap<T: Transport>() {
    let mut config = config();
    config.history.max_messages = 3;
    let t = T::start(config).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice")).await;
    publish(&t, user("alice"), message("m1")).await;
    let m1 = frame(&mut alice).await;
    alice.close().await;
    for i in 2..=7 {
        publish(&t, user("alice"), message(&format!("m{i}"))).await;
    }
    let (mut again, _) = welcomed(&t, Connect::user("alice").resume(position(&m1))).await;
    let gap = frame(&mut again).await;
    assert_eq!(
        (&gap["type"], &gap["stream"], &gap["reason"]),
        (&json!("gap"), &json!("user:alice"), &json!("history"))
    );
    assert_eq!((&gap["from"], &gap["to"]), (&json!(2), &json!(4)));
    for kept in ["m5", "m6", "m7"] {
        assert_eq!(event(&mut again).await, kept);
    }
    quiet(&mut again, "alice, resumed").await;
    drop(again);
    t.shutdown().await;
}

/// Messages to a user with no connection wait for the next one (`buffered`): unthreaded ones
/// right after `welcome`, a thread's right after the connection binds to it.
pub async fn offline_messages_wait_for_the_next_connection<T: Transport>() {
    let t = T::start(config()).await;
    let away = publish(&t, user("carol"), message("while-away")).await;
    assert_eq!((away.reached, away.buffered), (0, true));
    let for_thread = publish(&t, thread("carol", "t9"), message("for-t9")).await;
    assert_eq!((for_thread.reached, for_thread.buffered), (0, true));
    let (mut carol, _) = welcomed(&t, Connect::user("carol")).await;
    assert_eq!(event(&mut carol).await, "while-away");
    let bound = request(&mut carol, json!({"type": "bind", "thread": "t9"})).await;
    assert_eq!(bound["type"], "bound");
    assert_eq!(event(&mut carol).await, "for-t9");
    quiet(&mut carol, "carol").await;
    drop(carol);
    t.shutdown().await;
}

/// The next message's event, then the close code.
async fn last_words(client: &mut impl Client) -> (String, Option<u16>) {
    (event(client).await, close_code(client).await)
}

/// Shutdown closes every client with 1001 after what was already sent to it.
pub async fn shutdown_closes_with_1001_after_what_was_sent<T: Transport>() {
    let t = T::start(config()).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice")).await;
    let (mut bob, _) = welcomed(&t, Connect::user("bob")).await;
    let delivery = publish(&t, Target::All, message("last-words")).await;
    assert_eq!(delivery.reached, 2);
    let ((), alice_saw, bob_saw) =
        futures_util::join!(t.shutdown(), last_words(&mut alice), last_words(&mut bob));
    for saw in [alice_saw, bob_saw] {
        assert_eq!(saw, ("last-words".to_owned(), Some(1001)));
    }
}
