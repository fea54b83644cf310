//! Room presence across nodes joined by one real Redis: a user's arrival and departure reach
//! the watchers on every node once, however many connections the user has on however many
//! nodes, and the users of a crashed node leave once its lease expires. Each test starts
//! `redis-server` from PATH on a free port; timeouts only guard against hangs.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::node;
use switchboard_redis::BridgeOptions;
use switchboard_testing::{Redis, WsClient};

/// A connection of `user` on the node at `addr` that joins `room` watching presence; its
/// `joined`.
async fn watcher(addr: std::net::SocketAddr, user: &str, room: &str) -> (WsClient, Value) {
    let mut client = WsClient::welcomed(addr, &format!("user={user}")).await;
    client
        .send(json!({"type": "join", "room": room, "presence": true}))
        .await;
    let joined = client.next_of("joined").await;
    (client, joined)
}

/// A connection of `user` on the node at `addr`, in `room` (not watching).
async fn member(addr: std::net::SocketAddr, user: &str, room: &str) -> WsClient {
    let mut client = WsClient::welcomed(addr, &format!("user={user}")).await;
    client.join(room).await;
    client
}

/// Read `client`'s `presence` frames until `(event, user)` arrives: every one about `about`
/// on the way, as `event` strings, the awaited one included.
async fn presence_until(
    client: &mut WsClient,
    event: &str,
    user: &str,
    about: &str,
) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let frame = client.next_of("presence").await;
        if frame["user"] == about {
            seen.push(frame["event"].as_str().unwrap().to_owned());
        }
        if frame["event"] == event && frame["user"] == user {
            return seen;
        }
    }
}

fn short_lease(o: &mut BridgeOptions) {
    o.lease = Duration::from_millis(800);
    o.heartbeat = Duration::from_millis(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_on_two_nodes_arrives_once_and_leaves_once_for_watchers_on_both() {
    let redis = Redis::start().await;
    let a = node(&redis, "a", |_| {}).await;
    let b = node(&redis, "b", |_| {}).await;
    let (mut on_a, _) = watcher(a.addr, "wendy", "chat").await;
    let (mut on_b, _) = watcher(b.addr, "xavier", "chat").await;
    a.subscribed("sb:room:chat").await;
    b.subscribed("sb:room:chat").await;

    let mut bob_b1 = member(b.addr, "bob", "chat").await;
    let bob_a = member(a.addr, "bob", "chat").await;
    let bob_b2 = member(b.addr, "bob", "chat").await;
    bob_b1.send(json!({"type": "leave", "room": "chat"})).await;
    bob_b1.next_of("left").await;
    bob_b2.close().await;
    bob_a.close().await;
    // Carol comes after everything bob did: whatever bob caused is before her on the channel.
    let _carol = member(b.addr, "carol", "chat").await;

    for watcher in [&mut on_a, &mut on_b] {
        assert_eq!(
            presence_until(watcher, "join", "carol", "bob").await,
            ["join", "leave"],
            "bob arrived and left once, whatever his tabs and nodes"
        );
    }

    // A new watcher on a learns every node's users: from `joined`, then as arrivals.
    let (mut zoe, joined) = watcher(a.addr, "zoe", "chat").await;
    let mut known: Vec<String> = (joined["members"].as_array().unwrap().iter())
        .map(|u| u.as_str().unwrap().to_owned())
        .collect();
    while known.len() < 4 {
        let frame = zoe.next_of("presence").await;
        let user = frame["user"].as_str().unwrap().to_owned();
        assert_eq!(frame["event"], "join", "{frame}");
        if !known.contains(&user) {
            known.push(user);
        }
    }
    known.sort();
    assert_eq!(known, ["carol", "wendy", "xavier", "zoe"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_of_a_crashed_node_leave_once_its_lease_expires() {
    let redis = Redis::start().await;
    let a = node(&redis, "a", short_lease).await;
    let b = node(&redis, "b", short_lease).await;
    let (mut watching, _) = watcher(a.addr, "wendy", "chat").await;
    a.subscribed("sb:room:chat").await;
    let _alice_a = member(a.addr, "alice", "chat").await;
    let _alice_b = member(b.addr, "alice", "chat").await;
    let _bob_b = member(b.addr, "bob", "chat").await;
    assert_eq!(
        presence_until(&mut watching, "join", "bob", "alice").await,
        ["join"],
        "alice arrived once"
    );

    b.bridge.abort();
    assert_eq!(
        presence_until(&mut watching, "leave", "bob", "alice").await,
        Vec::<String>::new(),
        "bob, on the crashed node only, left; alice is still in through a"
    );
    let (_, joined) = watcher(a.addr, "yann", "chat").await;
    assert_eq!(joined["members"], json!(["alice", "wendy", "yann"]));
}
