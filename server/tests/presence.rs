//! Room presence over real WebSockets against the server (two shards, no Redis): watchers hear
//! a user arrive once and leave with its last connection, whichever shards they are on, no
//! change is told above `[presence] max_members`, `[presence] rooms` makes members watch
//! without asking, and hostile joins get an error and learn nothing.

mod support;

use serde_json::{json, Value};
use support::*;
use switchboard_testing::WsClient;

/// `client` joins `room` with `presence: true`; its `joined`.
async fn watch(client: &mut WsClient, room: &str) -> Value {
    client
        .send(json!({"type": "join", "room": room, "presence": true}))
        .await;
    client.next_of("joined").await
}

/// The next frame, which must be `presence`: `(event, user)`.
async fn presence(client: &mut WsClient) -> (String, String) {
    let frame = client.json().await;
    assert_eq!(frame["type"], "presence", "{frame}");
    let field = |k: &str| frame[k].as_str().unwrap().to_owned();
    (field("event"), field("user"))
}

fn said(event: &str, user: &str) -> (String, String) {
    (event.to_owned(), user.to_owned())
}

#[tokio::test]
async fn a_second_tab_is_not_announced_and_the_last_tab_closing_is() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    let joined = watch(&mut alice, "chat").await;
    assert_eq!(
        (&joined["members"], &joined["count"]),
        (&json!(["alice"]), &json!(1))
    );
    assert_eq!(presence(&mut alice).await, said("join", "alice"));

    let mut tab1 = server.connect("bob").await;
    tab1.join("chat").await;
    assert_eq!(presence(&mut alice).await, said("join", "bob"));
    let mut tab2 = server.connect("bob").await;
    tab2.join("chat").await;
    tab1.send(json!({"type": "leave", "room": "chat"})).await;
    tab1.next_of("left").await;
    tab2.close().await;
    // Everything bob's tabs caused comes from bob's shard in order: had the second tab been
    // announced, or the first tab's leave, it would come before this.
    assert_eq!(presence(&mut alice).await, said("leave", "bob"));
    assert_eq!(alice.fence().await, Vec::<Value>::new());
}

#[tokio::test]
async fn configured_rooms_watch_without_asking_and_above_the_cap_no_change_is_told() {
    let server = TestServer::with("[presence]\nrooms = [\"chat:*\"]\nmax_members = 2\n").await;
    let mut alice = server.connect("alice").await;
    alice.send(json!({"type": "join", "room": "chat:1"})).await;
    let joined = alice.next_of("joined").await;
    assert_eq!(joined["members"], json!(["alice"]), "{joined}");
    assert_eq!(presence(&mut alice).await, said("join", "alice"));

    let mut bob = server.connect("bob").await;
    bob.join("chat:1").await;
    assert_eq!(presence(&mut alice).await, said("join", "bob"));

    let mut carol = server.connect("carol").await;
    carol.send(json!({"type": "join", "room": "chat:1"})).await;
    carol.next_of("joined").await;
    // Carol's publish travels the way her arrival would have: it comes first.
    carol
        .send(json!({"type": "publish", "room": "chat:1", "event": "hi"}))
        .await;
    assert_eq!(alice.event().await, "hi", "no presence above the cap");
    // Back to two users: carol's departure is told, and nothing of her arrival came before it.
    carol.send(json!({"type": "leave", "room": "chat:1"})).await;
    assert_eq!(presence(&mut alice).await, said("leave", "carol"));

    let mut dave = server.connect("dave").await;
    dave.join("game").await;
    assert!(
        dave.fence().await.is_empty(),
        "a room outside the patterns says nothing"
    );
}

#[tokio::test]
async fn a_presence_flag_that_is_not_a_boolean_is_an_invalid_frame() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    for bad in [json!("yes"), json!(1), json!({"on": true})] {
        alice
            .send(json!({"type": "join", "room": "chat", "presence": bad, "ref": 5}))
            .await;
        let error = alice.json().await;
        assert_eq!(
            (&error["type"], &error["code"], &error["ref"]),
            (&json!("error"), &json!("invalid_frame"), &json!(5)),
            "{error}"
        );
    }
    let (_, room) = server.api("GET", "/api/rooms/chat", None).await;
    assert_eq!(room["total"], 0, "{room}");
}

#[tokio::test]
async fn a_room_the_token_may_not_join_is_forbidden_and_lists_no_member() {
    let server = TestServer::start().await;
    let mut insider = server.connect("insider").await;
    watch(&mut insider, "secret").await;
    assert_eq!(presence(&mut insider).await, said("join", "insider"));

    let token = server.token("eve", Some(&["lobby"]));
    let mut eve = server.connect_token(&token).await;
    eve.send(json!({"type": "join", "room": "secret", "presence": true, "ref": 1}))
        .await;
    let error = eve.json().await;
    assert_eq!(
        (&error["code"], &error["ref"]),
        (&json!("forbidden"), &json!(1))
    );
    assert!(error.get("members").is_none() && error.get("count").is_none());
    assert!(
        eve.fence().await.is_empty(),
        "nothing about the room reached eve"
    );
    let (_, room) = server.api("GET", "/api/rooms/secret", None).await;
    assert_eq!(room["total"], 1, "eve never arrived: {room}");
    assert!(insider.fence().await.is_empty());
}

#[tokio::test]
async fn a_watcher_learns_every_user_of_the_node_once_whatever_their_shards() {
    let server = TestServer::start().await;
    let mut others = Vec::new();
    for user in ["bob", "carol", "dave", "erin"] {
        let mut client = server.connect(user).await;
        client.join("chat").await;
        others.push(client);
    }
    let mut alice = server.connect("alice").await;
    let joined = watch(&mut alice, "chat").await;
    let mut known: Vec<String> = (joined["members"].as_array().expect("members").iter())
        .map(|u| u.as_str().unwrap().to_owned())
        .collect();
    // Users on the other shard that this shard's `joined` did not know yet follow as arrivals,
    // and alice's own arrival (like every watcher's) once.
    let mut own = 0;
    while known.len() < 5 || own == 0 {
        let (event, user) = presence(&mut alice).await;
        assert_eq!(event, "join");
        if user == "alice" {
            own += 1;
            continue;
        }
        assert!(!known.contains(&user), "{user} told twice: {known:?}");
        known.push(user);
    }
    known.sort();
    assert_eq!(known, ["alice", "bob", "carol", "dave", "erin"]);
    assert_eq!(alice.fence().await, Vec::<Value>::new());
}
