//! Several nodes joined by one real Redis: each node is a sharded switchboard with its own
//! WebSocket listener, its own bridge and its own Redis connections, in this process. The
//! tests start `redis-server` from PATH on a free port (and stop it at the end). Timeouts only
//! guard against hangs; nothing asserts how long anything took.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::{node, room, shared_node};
use switchboard::Target;
use switchboard_redis::{Admission, BridgeOptions};
use switchboard_testing::{eventually, Redis, WsClient};

// ----- tests ----------------------------------------------------------------------------------

/// A publish on one node reaches the room's members, the user's connections, the thread's
/// connections and everyone on the other nodes; a client's room `publish` frame does too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_reach_rooms_users_threads_and_everyone_on_other_nodes() {
    let redis = Redis::start().await;
    let a = node(&redis, "a", |_| {}).await;
    let b = node(&redis, "b", |_| {}).await;
    let c = node(&redis, "c", |_| {}).await;
    let mut alice = WsClient::welcomed(b.addr, "user=alice").await;
    alice.join("lobby").await;
    let mut bob = WsClient::welcomed(b.addr, "user=bob&thread=t1").await;
    let mut carol = WsClient::welcomed(c.addr, "user=carol").await;
    carol.join("lobby").await;
    b.subscribed("sb:room:lobby").await;
    b.subscribed("sb:user:bob").await;
    c.subscribed("sb:room:lobby").await;

    a.publish(room("lobby"), "to-room").await;
    assert_eq!(alice.event().await, "to-room");
    assert_eq!(carol.event().await, "to-room");
    a.publish(Target::User("bob".into()), "to-user").await;
    assert_eq!(bob.event().await, "to-user");
    let thread = Target::Thread {
        user: "bob".into(),
        thread: "t1".into(),
    };
    a.publish(thread, "to-thread").await;
    assert_eq!(bob.event().await, "to-thread");
    a.publish(Target::All, "to-all").await;
    for client in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(client.event().await, "to-all");
    }

    alice
        .send(json!({"type": "publish", "room": "lobby", "event": "hi", "data": 1}))
        .await;
    let frame = carol.json().await;
    assert_eq!(
        (frame["event"].as_str(), frame["from"].as_str()),
        (Some("hi"), Some("alice"))
    );
}

/// Interest routing: a node receives only the envelopes of rooms and users it serves (and
/// those for everyone), never the others; its own echoes are ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_interest_receives_nothing() {
    let redis = Redis::start().await;
    let a = node(&redis, "a", |_| {}).await;
    let b = node(&redis, "b", |_| {}).await;
    let c = node(&redis, "c", |_| {}).await;
    let mut alice = WsClient::welcomed(b.addr, "user=alice").await;
    alice.join("lobby").await;
    let mut dave = WsClient::welcomed(a.addr, "user=dave").await;
    dave.join("lobby").await;
    b.subscribed("sb:room:lobby").await;
    a.subscribed("sb:room:lobby").await;

    for _ in 0..5 {
        a.publish(room("lobby"), "news").await;
        a.publish(Target::User("alice".into()), "direct").await;
    }
    for _ in 0..5 {
        assert_eq!(dave.event().await, "news");
    }
    let mut received = Vec::new();
    for _ in 0..10 {
        received.push(alice.event().await);
    }
    received.sort();
    assert_eq!(received, [["direct"; 5], ["news"; 5]].concat());
    // A publish is counted when Redis answers it, which may come after the subscriber
    // already delivered: wait for the count instead of racing it.
    eventually("a's ten publishes to be counted", || async {
        a.bridge.stats().published >= 10
    })
    .await;
    let (a_stats, b_stats, c_stats) = (a.bridge.stats(), b.bridge.stats(), c.bridge.stats());
    assert_eq!(a_stats.published, 10, "each publish leaves once");
    assert_eq!(b_stats.received, 10);
    assert_eq!(
        c_stats.received, 0,
        "c has no member and no user: {c_stats:?}"
    );
    assert_eq!(
        a_stats.received, 0,
        "a's own envelopes are not delivered twice"
    );

    // Alice leaves: b stops listening to the room, and receives nothing more of it.
    alice.send(json!({"type": "leave", "room": "lobby"})).await;
    b.unsubscribed("sb:room:lobby").await;
    a.publish(room("lobby"), "later").await;
    assert_eq!(dave.event().await, "later");
    a.publish(Target::All, "everyone").await;
    assert_eq!(dave.event().await, "everyone");
    assert_eq!(alice.json().await["type"], "left");
    assert_eq!(alice.event().await, "everyone");
    assert_eq!(
        b.bridge.stats().received,
        11,
        "only the publish to everyone"
    );
}

/// Shared streams: publishers on two nodes at once to one room; the room's members on both
/// nodes receive one order, numbered 1, 2, 3... by Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_on_two_nodes_agree_on_one_order() {
    let redis = Redis::start().await;
    let a = shared_node(&redis, "a").await;
    let b = shared_node(&redis, "b").await;
    let mut alice = WsClient::welcomed(a.addr, "user=alice").await;
    alice.join("lobby").await;
    let mut bob = WsClient::welcomed(b.addr, "user=bob").await;
    bob.join("lobby").await;
    a.subscribed("sb:room:lobby").await;
    b.subscribed("sb:room:lobby").await;

    let from_a = async {
        for i in 0..20 {
            a.publish(room("lobby"), &format!("a{i}")).await;
        }
    };
    let from_b = async {
        for i in 0..20 {
            b.publish(room("lobby"), &format!("b{i}")).await;
        }
    };
    tokio::join!(from_a, from_b);
    let (mut seen_alice, mut seen_bob) = (Vec::new(), Vec::new());
    for _ in 0..40 {
        let frame = alice.json().await;
        seen_alice.push((frame["event"].clone(), frame["seq"].clone()));
        let frame = bob.json().await;
        seen_bob.push((frame["event"].clone(), frame["seq"].clone()));
    }
    assert_eq!(seen_alice, seen_bob, "one order on both nodes");
    let seqs: Vec<Value> = seen_alice.iter().map(|(_, seq)| seq.clone()).collect();
    assert_eq!(seqs, (1..=40).map(Value::from).collect::<Vec<_>>());
    // An entry is counted when Redis answers its node's pipeline, which may come after the
    // subscriptions delivered it: wait for the counts instead of racing them.
    let sequenced = || a.bridge.stats().sequenced + b.bridge.stats().sequenced;
    eventually("the 40 entries counted", || {
        let counted = sequenced();
        async move { counted >= 40 }
    })
    .await;
    assert_eq!(sequenced(), 40);
}

/// Shared history: a client that read part of its stream on a node that then stops (its
/// bridge aborted, its hub shut down; `server/tests/node_kill.rs` kills a node outright)
/// reconnects to another node with its position, and receives exactly what it missed,
/// published meanwhile by a third node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_on_another_node_after_its_node_stops() {
    let redis = Redis::start().await;
    let a = shared_node(&redis, "a").await;
    let b = shared_node(&redis, "b").await;
    let c = shared_node(&redis, "c").await;
    let mut alice = WsClient::welcomed(a.addr, "user=alice").await;
    a.subscribed("sb:user:alice").await;
    c.publish(Target::User("alice".into()), "m1").await;
    c.publish(Target::User("alice".into()), "m2").await;
    let mut position = (0, 0);
    for expected in ["m1", "m2"] {
        let frame = alice.json().await;
        assert_eq!(frame["event"], expected);
        position = (
            frame["epoch"].as_u64().unwrap(),
            frame["seq"].as_u64().unwrap(),
        );
    }
    a.bridge.abort();
    a.handle.shutdown().await;
    drop(alice);
    let before = c.bridge.stats().sequenced;
    c.publish(Target::User("alice".into()), "m3").await;
    c.publish(Target::User("alice".into()), "m4").await;
    // A publish returns once the hub took it; it is in Redis once the bridge counts it.
    eventually("m3 and m4 numbered in Redis", || {
        let sequenced = c.bridge.stats().sequenced;
        async move { sequenced >= before + 2 }
    })
    .await;

    let from = switchboard::Position {
        epoch: position.0,
        seq: position.1,
    };
    let loaded = b
        .bridge
        .prepare(&"alice".into(), Some(from))
        .await
        .expect("history read");
    assert_eq!(loaded, 2);
    let query = format!("user=alice&resume={}:{}", position.0, position.1);
    let mut again = WsClient::welcomed(b.addr, &query).await;
    for (event, seq) in [("m3", 3), ("m4", 4)] {
        let frame = again.json().await;
        assert_eq!(
            (frame["event"].as_str(), frame["seq"].as_u64()),
            (Some(event), Some(seq))
        );
        assert_eq!(frame["epoch"].as_u64(), Some(position.0));
    }
}

/// A node prepared for a user's connection (its stream's channel subscribed before the
/// connection opens, as the server does) delivers an entry published on another node right
/// after the connection opened, without waiting for anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_connection_misses_nothing_published_right_after_it_opens() {
    let redis = Redis::start().await;
    let a = shared_node(&redis, "a").await;
    let b = shared_node(&redis, "b").await;
    for round in 0..5 {
        let user = format!("user{round}");
        b.bridge
            .prepare(&user.as_str().into(), None)
            .await
            .expect("subscribed");
        let mut client = WsClient::welcomed(b.addr, &format!("user={user}")).await;
        a.publish(Target::User(user.as_str().into()), "right-after")
            .await;
        assert_eq!(client.event().await, "right-after");
    }
}

/// With shared streams, a join to a room new on a node is answered once the node listens to
/// the room, with the room's position in Redis: an entry published on another node right
/// after `joined` reaches the member, numbered next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_misses_nothing_published_right_after_joined() {
    let redis = Redis::start().await;
    let a = shared_node(&redis, "a").await;
    let b = shared_node(&redis, "b").await;
    let mut alice = WsClient::welcomed(a.addr, "user=alice").await;
    alice.join("lobby").await;
    a.publish(room("lobby"), "early").await;
    assert_eq!(alice.event().await, "early");
    for round in 0..5 {
        let mut member = WsClient::welcomed(b.addr, &format!("user=bob{round}")).await;
        member
            .send(json!({"type": "join", "room": format!("room{round}")}))
            .await;
        let joined = member.json().await;
        assert_eq!(joined["type"], "joined");
        a.publish(room(&format!("room{round}")), "right-after")
            .await;
        let frame = member.json().await;
        assert_eq!(frame["event"], "right-after");
        assert_eq!(frame["epoch"], joined["epoch"]);
        assert_eq!(frame["seq"], 1);
    }
    let mut late = WsClient::welcomed(b.addr, "user=carol").await;
    late.send(json!({"type": "join", "room": "lobby"})).await;
    let joined = late.json().await;
    assert_eq!(
        (joined["type"].as_str(), joined["seq"].as_u64()),
        (Some("joined"), Some(1))
    );
}

/// With shared streams, a node whose subscription connection is cut loads what its streams
/// missed from the shared history when it comes back: a reader receives every entry, in
/// order, without a gap, whenever the cut happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_missed_while_the_subscription_was_down_are_loaded_from_history() {
    let redis = Redis::start().await;
    let a = shared_node(&redis, "a").await;
    let b = shared_node(&redis, "b").await;
    let mut alice = WsClient::welcomed(b.addr, "user=alice").await;
    b.subscribed("sb:user:alice").await;
    a.publish(Target::User("alice".into()), "m0").await;
    assert_eq!(alice.event().await, "m0");

    let client = redis::Client::open(redis.url()).expect("a url");
    let mut control = client
        .get_multiplexed_async_connection()
        .await
        .expect("connected");
    let killed: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut control)
        .await
        .expect("killed");
    assert!(killed >= 2, "both nodes' subscriptions cut");
    for i in 1..=100 {
        a.publish(Target::User("alice".into()), &format!("m{i}"))
            .await;
    }
    for i in 1..=100 {
        let frame = alice.json().await;
        assert_eq!(frame["event"], format!("m{i}"), "{frame}");
        assert_eq!(frame["seq"], i + 1);
    }
    eventually("b's subscription restored", || async {
        b.bridge.stats().resubscribed >= 1
    })
    .await;
}

/// A member that read a room on one node joins it on another node, where the room is new,
/// with `since`: it receives exactly what it missed, from the shared history, then what follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_with_since_on_another_node_replays_the_shared_history() {
    let redis = Redis::start().await;
    let a = shared_node(&redis, "a").await;
    let b = shared_node(&redis, "b").await;
    let mut alice = WsClient::welcomed(a.addr, "user=alice").await;
    alice.join("lobby").await;
    a.publish(room("lobby"), "m1").await;
    a.publish(room("lobby"), "m2").await;
    let mut read = Value::Null;
    for expected in ["m1", "m2"] {
        read = alice.json().await;
        assert_eq!(read["event"], expected);
    }
    drop(alice);
    a.publish(room("lobby"), "m3").await;
    a.publish(room("lobby"), "m4").await;

    let mut again = WsClient::welcomed(b.addr, "user=alice").await;
    let since = json!({"epoch": read["epoch"], "seq": read["seq"]});
    again
        .send(json!({"type": "join", "room": "lobby", "since": since}))
        .await;
    assert_eq!(again.json().await["type"], "joined");
    for (event, seq) in [("m3", 3), ("m4", 4)] {
        let frame = again.json().await;
        assert_eq!(
            (frame["event"].as_str(), frame["seq"].as_u64()),
            (Some(event), Some(seq))
        );
    }
    a.publish(room("lobby"), "m5").await;
    assert_eq!(again.event().await, "m5");
}

/// Redis stops and starts again (losing every key) under nodes with shared streams: the
/// publishing node keeps delivering to its own clients, numbered in its own epoch and announced
/// with an `epoch` gap; once Redis is back the stream is numbered there again, in a new epoch,
/// announced the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_under_shared_streams_keeps_local_delivery_with_gaps() {
    let mut redis = Redis::start().await;
    let a = shared_node(&redis, "a").await;
    let mut alice = WsClient::welcomed(a.addr, "user=alice").await;
    a.subscribed("sb:user:alice").await;
    a.publish(Target::User("alice".into()), "before").await;
    let before = alice.json().await;
    assert_eq!(before["event"], "before");

    redis.kill();
    a.publish(Target::User("alice".into()), "during").await;
    let gap = alice.json().await;
    assert_eq!(
        (gap["type"].as_str(), gap["reason"].as_str()),
        (Some("gap"), Some("epoch"))
    );
    let during = alice.json().await;
    assert_eq!(during["event"], "during");
    assert_ne!(during["epoch"], before["epoch"]);
    assert!(a.bridge.stats().unsequenced >= 1);

    redis.restart().await;
    a.subscribed("sb:user:alice").await;
    // The bridge reconnects with backoff: publish until Redis numbers an entry again.
    let sequenced = a.bridge.stats().sequenced;
    eventually("redis to number entries again", || async {
        a.publish(Target::User("alice".into()), "after").await;
        a.bridge.stats().sequenced > sequenced
    })
    .await;
    // Entries published while the bridge was still reconnecting stay in the node's epoch; the
    // first one Redis numbered comes after an epoch gap, in a new epoch.
    let mut previous = during.clone();
    let first_shared = loop {
        let frame = alice.json().await;
        if frame["type"] == "message" && frame["epoch"] != during["epoch"] {
            break frame;
        }
        previous = frame;
    };
    assert_eq!(
        (previous["type"].as_str(), previous["reason"].as_str()),
        (Some("gap"), Some("epoch"))
    );
    assert_eq!(first_shared["event"], "after");
    assert_eq!(first_shared["seq"], 1);
    assert_ne!(first_shared["epoch"], before["epoch"]);
}

/// The per-user connection limit holds across nodes for connections opened without admission
/// (as the accept loop opens them): a connection over it, wherever it opens, receives its
/// `welcome` and is then closed with 4003; once one closes, a new one is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_limit_holds_across_nodes() {
    let redis = Redis::start().await;
    let limit = |o: &mut BridgeOptions| o.max_connections_per_user = Some(2);
    let a = node(&redis, "a", limit).await;
    let b = node(&redis, "b", limit).await;
    let first = WsClient::welcomed(a.addr, "user=alice").await;
    let _second = WsClient::welcomed(b.addr, "user=alice").await;
    eventually("two connections counted", || async {
        a.bridge.user_connections("alice").await.unwrap() == 2
    })
    .await;

    let mut third = WsClient::connect(a.addr, "user=alice").await;
    assert_eq!(third.close_code().await, Some(4003));
    assert_eq!(a.bridge.stats().refused, 1);
    assert_eq!(a.bridge.user_connections("alice").await.unwrap(), 2);

    drop(first);
    eventually("the first connection uncounted", || async {
        b.bridge.user_connections("alice").await.unwrap() == 1
    })
    .await;
    let _fourth = WsClient::welcomed(b.addr, "user=alice").await;
    eventually("the new connection counted", || async {
        a.bridge.user_connections("alice").await.unwrap() == 2
    })
    .await;
}

/// An admission counts the connection across the cluster before it opens: over the limit,
/// on any node, the next admission is refused. The admitted connection then opens without
/// being counted again (nor closed for being over the limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admitted_connection_is_counted_once() {
    let redis = Redis::start().await;
    let limit = |o: &mut BridgeOptions| o.max_connections_per_user = Some(1);
    let a = node(&redis, "a", limit).await;
    let b = node(&redis, "b", limit).await;
    let alice = "alice".into();
    assert_eq!(a.bridge.admit(&alice).await.unwrap(), Admission::Admitted);
    assert_eq!(a.bridge.user_connections("alice").await.unwrap(), 1);
    assert_eq!(b.bridge.admit(&alice).await.unwrap(), Admission::Refused);
    assert_eq!(b.bridge.stats().refused, 1);

    let mut client = WsClient::welcomed(a.addr, "user=alice").await;
    // Joining a room makes the bridge subscribe after it has handled the connection's opening.
    client.join("lobby").await;
    a.subscribed("sb:room:lobby").await;
    assert_eq!(a.bridge.stats().refused, 0);
    assert_eq!(a.bridge.user_connections("alice").await.unwrap(), 1);
    a.publish(Target::User("alice".into()), "still-open").await;
    assert_eq!(client.event().await, "still-open");
}

/// An admission whose connection never opens (the client went away during the upgrade) stops
/// counting once its time to open has passed, and the user may connect again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admission_never_claimed_stops_counting() {
    let redis = Redis::start().await;
    let a = node(&redis, "a", |o| {
        o.max_connections_per_user = Some(1);
        o.admission_timeout = Duration::from_millis(200);
        o.heartbeat = Duration::from_millis(100);
    })
    .await;
    let alice = "alice".into();
    assert_eq!(a.bridge.admit(&alice).await.unwrap(), Admission::Admitted);
    assert_eq!(a.bridge.admit(&alice).await.unwrap(), Admission::Refused);
    eventually("the unclaimed admission dropped", || async {
        a.bridge.user_connections("alice").await.unwrap() == 0
    })
    .await;
    assert_eq!(a.bridge.admit(&alice).await.unwrap(), Admission::Admitted);
}

/// Disconnecting a user on one node closes the user's connections on every node with 4002.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnecting_a_user_anywhere_closes_it_everywhere() {
    let redis = Redis::start().await;
    let a = node(&redis, "a", |_| {}).await;
    let b = node(&redis, "b", |_| {}).await;
    let c = node(&redis, "c", |_| {}).await;
    let mut on_b = WsClient::welcomed(b.addr, "user=alice").await;
    let mut on_c = WsClient::welcomed(c.addr, "user=alice").await;
    let mut other = WsClient::welcomed(c.addr, "user=bob").await;

    let (closed_on_a, told_others) = a.bridge.disconnect_user("alice").await;
    assert_eq!(closed_on_a, Ok(0));
    told_others.expect("the other nodes were told");
    assert_eq!(on_b.close_code().await, Some(4002));
    assert_eq!(on_c.close_code().await, Some(4002));
    c.publish(Target::User("bob".into()), "still-here").await;
    assert_eq!(other.event().await, "still-here");
}

/// Presence is cluster-wide, and a node that stops refreshing its lease (crashed) stops
/// counting once the lease expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_of_a_crashed_node_expires_with_its_lease() {
    let redis = Redis::start().await;
    let short = |o: &mut BridgeOptions| {
        o.lease = Duration::from_millis(800);
        o.heartbeat = Duration::from_millis(200);
    };
    let a = node(&redis, "a", short).await;
    let b = node(&redis, "b", short).await;
    let _alice = WsClient::welcomed(a.addr, "user=alice").await;
    let mut alice_on_b = WsClient::welcomed(b.addr, "user=alice").await;
    alice_on_b.join("lobby").await;
    let mut bob = WsClient::welcomed(b.addr, "user=bob").await;
    bob.join("lobby").await;
    eventually("presence on both nodes", || async {
        a.bridge.user_connections("alice").await.unwrap() == 2
            && a.bridge.room_members("lobby").await.unwrap() == 2
            && a.bridge.is_user_connected("bob").await.unwrap()
    })
    .await;
    assert_eq!(a.bridge.live_nodes().await.unwrap(), ["a", "b"]);

    b.bridge.abort();
    eventually("b's presence to expire", || async {
        a.bridge.live_nodes().await.unwrap() == ["a"]
            && a.bridge.user_connections("alice").await.unwrap() == 1
            && a.bridge.room_members("lobby").await.unwrap() == 0
            && !a.bridge.is_user_connected("bob").await.unwrap()
    })
    .await;
}

/// A node that leaves gracefully withdraws its presence at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_withdraws_its_presence() {
    let redis = Redis::start().await;
    let a = node(&redis, "a", |_| {}).await;
    let b = node(&redis, "b", |_| {}).await;
    let _bob = WsClient::welcomed(b.addr, "user=bob").await;
    eventually("bob's presence", || async {
        a.bridge.is_user_connected("bob").await.unwrap()
    })
    .await;
    b.bridge.stop().await;
    assert!(!a.bridge.is_user_connected("bob").await.unwrap());
    assert_eq!(a.bridge.live_nodes().await.unwrap(), ["a"]);
}

/// While Redis is down, local delivery goes on and the envelopes that could not leave are
/// counted; once Redis is back, every subscription of current interest is restored and
/// cross-node delivery and presence resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_keeps_local_delivery_and_restores_subscriptions() {
    let mut redis = Redis::start().await;
    let fast = |o: &mut BridgeOptions| o.heartbeat = Duration::from_millis(200);
    let a = node(&redis, "a", fast).await;
    let b = node(&redis, "b", fast).await;
    let mut alice = WsClient::welcomed(a.addr, "user=alice").await;
    alice.join("lobby").await;
    let mut bob = WsClient::welcomed(b.addr, "user=bob").await;
    bob.join("lobby").await;
    b.subscribed("sb:room:lobby").await;

    redis.kill();
    b.unsubscribed("sb:room:lobby").await;
    a.publish(room("lobby"), "during-outage").await;
    assert_eq!(
        alice.event().await,
        "during-outage",
        "local delivery continues"
    );
    eventually("the lost envelope counted", || async {
        a.bridge.stats().unpublished >= 1
    })
    .await;

    redis.restart().await;
    b.subscribed("sb:room:lobby").await;
    b.subscribed("sb:user:bob").await;
    assert!(b.bridge.stats().resubscribed >= 1);
    eventually("presence re-announced", || async {
        a.bridge.is_user_connected("bob").await.unwrap_or(false)
    })
    .await;
    a.publish(room("lobby"), "after-outage").await;
    assert_eq!(alice.event().await, "after-outage");
    assert_eq!(bob.event().await, "after-outage");
}
