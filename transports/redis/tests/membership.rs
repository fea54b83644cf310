//! Membership commands and per-node answers across nodes joined by one real Redis: a node
//! without the user joins (and takes out) the user's connections on every other node, and the
//! per-node counts leave out a crashed node once its lease expires. Each test starts
//! `redis-server` from PATH on a free port; timeouts only guard against hangs.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;
use support::{node, room};
use switchboard::UserMembership;
use switchboard_redis::{BridgeOptions, NodeLoad};
use switchboard_testing::{eventually, Redis, WsClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_command_reaches_the_users_connections_on_every_node() {
    let redis = Redis::start().await;
    let a = node(&redis, "a", |_| {}).await;
    let b = node(&redis, "b", |_| {}).await;
    let c = node(&redis, "c", |_| {}).await;
    let mut on_b = WsClient::welcomed(b.addr, "user=alice").await;
    let mut on_c = WsClient::welcomed(c.addr, "user=alice").await;
    let mut bob = WsClient::welcomed(c.addr, "user=bob").await;

    let (here, told) = a.bridge.add_user_to_room("alice", "lobby").await;
    assert_eq!(
        here,
        Ok(UserMembership::default()),
        "no connection of alice on a"
    );
    told.expect("the other nodes were told");
    for client in [&mut on_b, &mut on_c] {
        let joined = client.json().await;
        assert_eq!(
            (&joined["type"], &joined["room"]),
            (&"joined".into(), &"lobby".into())
        );
    }
    assert_eq!(b.handle.room_members("lobby").await.unwrap().len(), 1);
    assert_eq!(c.handle.room_members("lobby").await.unwrap().len(), 1);
    b.subscribed("sb:room:lobby").await;
    c.subscribed("sb:room:lobby").await;
    a.publish(room("lobby"), "news").await;
    assert_eq!(on_b.event().await, "news");
    assert_eq!(on_c.event().await, "news");

    let (here, told) = b.bridge.remove_user_from_room("alice", "lobby").await;
    assert_eq!(here.map(|m| m.changed), Ok(1));
    told.expect("the other nodes were told");
    for client in [&mut on_b, &mut on_c] {
        assert_eq!(
            client.json().await,
            serde_json::json!({"type": "left", "room": "lobby"})
        );
    }
    eventually("c to take alice out", || async {
        c.handle.room_members("lobby").await.unwrap().is_empty()
    })
    .await;
    assert!(
        bob.silent_for(Duration::from_millis(200)).await,
        "bob is not touched"
    );
    assert_eq!(c.bridge.stats().memberships, 2);
    assert_eq!(
        b.bridge.stats().memberships,
        1,
        "its own command is an echo"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_node_counts_leave_out_a_crashed_node_once_its_lease_expires() {
    let redis = Redis::start().await;
    let short = |o: &mut BridgeOptions| {
        o.lease = Duration::from_millis(800);
        o.heartbeat = Duration::from_millis(200);
    };
    let a = node(&redis, "a", short).await;
    let b = node(&redis, "b", short).await;
    let mut alice_on_a = WsClient::welcomed(a.addr, "user=alice").await;
    alice_on_a.join("lobby").await;
    let mut alice_on_b = [
        WsClient::welcomed(b.addr, "user=alice").await,
        WsClient::welcomed(b.addr, "user=alice").await,
    ];
    alice_on_b[0].join("lobby").await;
    let counts = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
        pairs.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    };
    eventually("both nodes counted", || async {
        a.bridge.user_connections_by_node("alice").await.unwrap() == counts(&[("a", 1), ("b", 2)])
            && a.bridge.room_members_by_node("lobby").await.unwrap()
                == counts(&[("a", 1), ("b", 1)])
    })
    .await;
    eventually("both nodes' loads", || async {
        let loads = b.bridge.node_loads().await.unwrap();
        let b_load = NodeLoad {
            connections: 2,
            users: 1,
            rooms: 1,
        };
        let a_load = NodeLoad {
            connections: 1,
            ..b_load
        };
        loads.get("a") == Some(&a_load) && loads.get("b") == Some(&b_load)
    })
    .await;

    b.bridge.abort();
    eventually("b's counts to expire", || async {
        a.bridge.user_connections_by_node("alice").await.unwrap() == counts(&[("a", 1)])
            && a.bridge.room_members_by_node("lobby").await.unwrap() == counts(&[("a", 1)])
            && a.bridge.node_loads().await.unwrap().keys().eq(["a"])
    })
    .await;
    assert_eq!(
        a.bridge.user_connections_by_node("nobody").await.unwrap(),
        BTreeMap::new()
    );
}
