//! Two servers joined by one real Redis: presence, room members and stats answer for the whole
//! cluster on either node, a disconnect through the node without the user closes the user's
//! connections with 4002, and a membership change through either node reaches the user's
//! connections on both. Each test starts `redis-server` from PATH on a free port.

mod support;

use serde_json::{json, Value};
use support::cluster::*;
use support::*;
use switchboard_testing::{eventually, Redis};

/// Wait until `GET path` on both nodes answers a body for which `check` holds; the answers.
async fn both_answer(
    nodes: &[TestServer; 2],
    path: &str,
    check: impl Fn(&Value) -> bool,
) -> [Value; 2] {
    let mut answers = [Value::Null, Value::Null];
    for (i, node) in nodes.iter().enumerate() {
        eventually(&format!("{path} on node {i}"), || async {
            let (status, body) = node.api("GET", path, None).await;
            assert_eq!(status, 200, "{body}");
            check(&body)
        })
        .await;
        answers[i] = node.api("GET", path, None).await.1;
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_room_members_and_stats_agree_on_both_nodes() {
    let redis = Redis::start().await;
    let nodes = two_nodes(&redis).await;
    let [one, two] = &nodes;
    let (id_one, id_two) = (bridge(one).node().to_owned(), bridge(two).node().to_owned());
    let mut alice = [one.connect("alice").await, one.connect("alice").await];
    let mut bob = two.connect("bob").await;
    alice[0].join("lobby").await;
    bob.join("lobby").await;

    let [on_one, on_two] = both_answer(&nodes, "/api/users/alice", |b| b["total"] == 2).await;
    assert_eq!(on_one["nodes"], json!({ &id_one: 2 }));
    assert_eq!(on_two["nodes"], on_one["nodes"]);
    assert_eq!(
        (&on_two["connected"], &on_two["connections"]),
        (&json!(true), &json!([]))
    );
    let conns = on_one["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 2);
    assert!(
        conns.iter().all(|c| c["node"] == id_one.as_str()),
        "{on_one}"
    );

    let both_nodes = json!({ &id_one: 1, &id_two: 1 });
    let rooms = both_answer(&nodes, "/api/rooms/lobby", |b| b["nodes"] == both_nodes).await;
    for (room, user) in rooms.iter().zip(["alice", "bob"]) {
        assert_eq!(room["total"], 2);
        assert_eq!(room["members"].as_array().unwrap().len(), 1);
        assert_eq!(room["members"][0]["user"], user);
    }

    let stats = both_answer(&nodes, "/api/stats", |b| b["cluster"]["connections"] == 3).await;
    assert_eq!(stats[0]["cluster"]["nodes"], stats[1]["cluster"]["nodes"]);
    assert_eq!(stats[0]["cluster"]["node"], id_one.as_str());
    let on_one = &stats[0]["cluster"]["nodes"][&id_one];
    assert_eq!(
        (&on_one["connections"], &on_one["users"], &on_one["rooms"]),
        (&json!(2), &json!(1), &json!(1))
    );
    assert_eq!(stats[1]["cluster"]["nodes"][&id_two]["connections"], 1);

    // From the node without the user: every connection of alice closes with 4002.
    let (status, answer) = two.api("POST", "/api/users/alice/disconnect", None).await;
    assert_eq!((status, &answer["closed"]), (200, &json!(0)));
    for client in &mut alice {
        assert_eq!(client.closed().await, 4002);
    }
    let gone = both_answer(&nodes, "/api/users/alice", |b| b["total"] == 0).await;
    for answer in gone {
        assert_eq!(
            (&answer["connected"], &answer["nodes"]),
            (&json!(false), &json!({}))
        );
    }
    let [one, two] = nodes;
    shut_down([one, two]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_change_through_either_node_reaches_the_users_connections_on_both() {
    let redis = Redis::start().await;
    let [one, two] = two_nodes(&redis).await;
    let only_mine = one.token("alice", Some(&["mine"]));
    let mut here = one.connect_token(&only_mine).await;
    let mut there = two.connect_token(&only_mine).await;
    let mut bob = two.connect("bob").await;
    bob.join("lobby").await;

    let (status, answer) = one.api("POST", "/api/users/alice/rooms/lobby", None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (&answer["changed"], &answer["cluster"]),
        (&json!(1), &json!(true))
    );
    for client in [&mut here, &mut there] {
        let joined = client.next_of("joined").await;
        assert_eq!(joined["room"], "lobby");
        assert!(joined.get("ref").is_none(), "{joined}");
    }
    subscribed(&one, "sb:room:lobby").await;
    two.publish(json!({"room": "lobby"}), "news", json!(1))
        .await;
    for client in [&mut here, &mut there, &mut bob] {
        assert_eq!(client.next_of("message").await["event"], "news");
    }

    let (status, answer) = two
        .api("DELETE", "/api/users/alice/rooms/lobby", None)
        .await;
    assert_eq!((status, &answer["changed"]), (200, &json!(1)), "{answer}");
    for client in [&mut here, &mut there] {
        assert_eq!(
            client.next_of("left").await,
            json!({"type": "left", "room": "lobby"})
        );
    }
    eventually("bridge one counted the membership commands", || async {
        one.metric("cluster_memberships_total").await == Some(1.0)
    })
    .await;
    two.publish(json!({"room": "lobby"}), "after", json!(2))
        .await;
    assert_eq!(bob.next_of("message").await["event"], "after");
    assert!(here.silent_for(std::time::Duration::from_millis(200)).await);
    assert!(
        there
            .silent_for(std::time::Duration::from_millis(200))
            .await
    );
    shut_down([one, two]).await;
}
