//! Room presence on two servers joined by one real Redis, with the default shared streams: a
//! watcher on one node hears a user of the other arrive and leave once, however many tabs it
//! has on both, and hears the users of a node that shuts down leave. Starts `redis-server`
//! from PATH on a free port.

mod support;

use serde_json::{json, Value};
use support::cluster::*;
use switchboard_testing::{Redis, WsClient};

/// The next `presence` frame: `(event, user)`.
async fn presence(client: &mut WsClient) -> (String, String) {
    let frame: Value = client.next_of("presence").await;
    let field = |k: &str| frame[k].as_str().unwrap().to_owned();
    (field("event"), field("user"))
}

fn said(event: &str, user: &str) -> (String, String) {
    (event.to_owned(), user.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_on_both_nodes_arrives_and_leaves_once_and_a_stopped_nodes_users_leave() {
    let redis = Redis::start().await;
    let [one, mut two] = two_nodes(&redis).await;
    let mut alice = one.connect("alice").await;
    alice
        .send(json!({"type": "join", "room": "chat", "presence": true}))
        .await;
    let joined = alice.next_of("joined").await;
    assert_eq!(joined["members"], json!(["alice"]), "{joined}");
    subscribed(&one, "sb:room:chat").await;

    let mut bob_two = two.connect("bob").await;
    bob_two.join("chat").await;
    let mut bob_one = one.connect("bob").await;
    bob_one.join("chat").await;
    let mut carol = two.connect("carol").await;
    carol.join("chat").await;
    let mut seen = Vec::new();
    while seen.last() != Some(&said("join", "carol")) {
        let (event, user) = presence(&mut alice).await;
        if user != "alice" {
            seen.push((event, user));
        }
    }
    assert_eq!(
        seen,
        [said("join", "bob"), said("join", "carol")],
        "bob's second node is not announced"
    );

    bob_one.close().await;
    two.shutdown().await;
    let mut left = Vec::new();
    while left.len() < 2 {
        left.push(presence(&mut alice).await);
    }
    left.sort();
    assert_eq!(
        left,
        [said("leave", "bob"), said("leave", "carol")],
        "bob left with his last node, carol with hers"
    );
    drop((bob_two, carol));
}
