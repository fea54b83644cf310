//! `POST` and `DELETE /api/users/{user}/rooms/{room}` on a single node: every open connection
//! of the user joins or leaves the room on the backend's decision, whatever its token allows,
//! and is told with `joined` or `left` without a `ref`; hostile requests are refused.

mod support;

use serde_json::json;
use support::*;

#[tokio::test]
async fn the_backend_joins_every_connection_of_the_user_whatever_its_token_allows() {
    let server = TestServer::start().await;
    let only_mine = server.token("alice", Some(&["mine"]));
    let mut first = server.connect_token(&only_mine).await;
    let mut second = server.connect("alice").await;
    let mut bob = server.connect("bob").await;

    let (status, answer) = server
        .api("POST", "/api/users/alice/rooms/lobby", None)
        .await;

    assert_eq!(status, 200, "{answer}");
    let expected =
        json!({"user": "alice", "room": "lobby", "changed": 2, "unchanged": 0, "refused": 0});
    assert_eq!(answer, expected, "no `cluster` on a single node");
    for client in [&mut first, &mut second] {
        let joined = client.json().await;
        assert_eq!(
            (&joined["type"], &joined["room"]),
            (&json!("joined"), &json!("lobby"))
        );
        assert!(joined.get("ref").is_none(), "{joined}");
    }
    server
        .publish(json!({"room": "lobby"}), "news", json!(1))
        .await;
    assert_eq!(first.event().await, "news");
    assert_eq!(second.event().await, "news");
    let (_, room) = server.api("GET", "/api/rooms/lobby", None).await;
    assert_eq!(room["total"], 2);
    assert!(
        bob.silent_for(std::time::Duration::from_millis(200)).await,
        "bob is not in it"
    );

    let (status, again) = server
        .api("POST", "/api/users/alice/rooms/lobby", None)
        .await;
    assert_eq!(
        (status, &again["changed"], &again["unchanged"]),
        (200, &json!(0), &json!(2))
    );

    let (status, answer) = server
        .api("DELETE", "/api/users/alice/rooms/lobby", None)
        .await;
    assert_eq!((status, &answer["changed"]), (200, &json!(2)), "{answer}");
    for client in [&mut first, &mut second] {
        assert_eq!(
            client.json().await,
            json!({"type": "left", "room": "lobby"})
        );
    }
    let (_, room) = server.api("GET", "/api/rooms/lobby", None).await;
    assert_eq!((&room["total"], &room["members"]), (&json!(0), &json!([])));
}

#[tokio::test]
async fn a_user_without_connections_is_answered_with_nothing_changed() {
    let server = TestServer::start().await;
    for method in ["POST", "DELETE"] {
        let (status, answer) = server
            .api(method, "/api/users/nobody/rooms/lobby", None)
            .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            (&answer["changed"], &answer["unchanged"]),
            (&json!(0), &json!(0))
        );
    }
    let (_, room) = server.api("GET", "/api/rooms/lobby", None).await;
    assert_eq!(room["total"], 0);
}

#[tokio::test]
async fn hostile_membership_requests_are_refused_and_change_nothing() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    let long = "r".repeat(257);
    let refused = [
        format!("/api/users/alice/rooms/{long}"),
        format!("/api/users/{long}/rooms/lobby"),
        "/api/users/alice/rooms/bad%0Aroom".to_owned(),
        "/api/users/al%00ice/rooms/lobby".to_owned(),
    ];
    for path in &refused {
        for method in ["POST", "DELETE"] {
            let (status, answer) = server.api(method, path, None).await;
            assert_eq!(
                (status, &answer["error"]),
                (400, &json!("bad_request")),
                "{path}"
            );
        }
    }
    let at_the_bound = format!("/api/users/alice/rooms/{}", "r".repeat(256));
    let (status, _) = server.api("POST", &at_the_bound, None).await;
    assert_eq!(status, 200, "256 bytes is allowed");
    assert_eq!(alice.json().await["type"], "joined");

    let url = format!("{}/api/users/alice/rooms/lobby", server.base);
    let missing = server.http.post(&url).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 401);
    let (wrong, body) = server
        .api_as("wrong", "POST", "/api/users/alice/rooms/lobby", None)
        .await;
    assert_eq!((wrong, &body["reason"]), (401, &json!("wrong_key")));
    let (status, _) = server
        .api("GET", "/api/users/alice/rooms/lobby", None)
        .await;
    assert_eq!(status, 405, "only POST and DELETE");

    assert!(
        alice
            .silent_for(std::time::Duration::from_millis(200))
            .await
    );
    let (_, presence) = server.api("GET", "/api/users/alice", None).await;
    assert_eq!(
        presence["connections"][0]["rooms"],
        json!(["r".repeat(256)])
    );
}
