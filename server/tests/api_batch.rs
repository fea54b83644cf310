//! `POST /api/publish/batch` against the real server over real HTTP and real WebSockets:
//! messages reach clients in the batch's order with exactly the positions the answer reports;
//! each message is answered on its own (a malformed one or one to a connection that is not
//! open is refused alone); a body that cannot be read, an empty batch, one over
//! `max_publish_batch` or `max_body_bytes`, and a request without the key publish nothing; a
//! node shutting down refuses each message with 503.

mod support;

use serde_json::{json, Value};
use support::*;

/// `POST /api/publish/batch` with `messages`: its status and answer.
async fn batch(server: &TestServer, messages: Value) -> (u16, Value) {
    server
        .api(
            "POST",
            "/api/publish/batch",
            Some(json!({ "messages": messages })),
        )
        .await
}

/// A publish of `event` to `to`, as a message of a batch.
fn message(to: Value, event: &str) -> Value {
    json!({"to": to, "event": event, "data": {"event": event}})
}

/// `client` received nothing more than what it read: a fence comes back empty.
async fn nothing_more(client: &mut WsClient) {
    let after = client.fence().await;
    assert!(after.is_empty(), "unexpected frames: {after:?}");
}

#[tokio::test]
async fn a_batch_reaches_a_client_in_order_with_exactly_the_positions_it_answered() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    alice.join("lobby").await;
    // Alternating her own stream and the room's, 40 messages: each stream's numbering and
    // the order across both are checked.
    let messages: Vec<Value> = (0..40)
        .map(|i| {
            let to = if i % 2 == 0 {
                json!({"user": "alice"})
            } else {
                json!({"room": "lobby"})
            };
            message(to, &format!("m{i}"))
        })
        .collect();
    let (status, answer) = batch(&server, json!(messages)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["refused"], 0, "{answer}");
    assert_eq!(answer["reached"], 40, "{answer}");
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 40);
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result["status"], 200, "message {i}: {result}");
        let stream = if i % 2 == 0 {
            "user:alice"
        } else {
            "room:lobby"
        };
        let frame = alice.next_of("message").await;
        assert_eq!(frame["event"], format!("m{i}"), "out of order: {frame}");
        assert_eq!(frame["stream"], stream, "{frame}");
        let position = &result["deliveries"][0]["position"];
        assert!(
            position.is_object(),
            "message {i} has no position: {result}"
        );
        assert_eq!(
            frame["seq"], position["seq"],
            "message {i}: {frame} / {result}"
        );
        assert_eq!(
            frame["epoch"], position["epoch"],
            "message {i}: {frame} / {result}"
        );
    }
    nothing_more(&mut alice).await;
}

#[tokio::test]
async fn each_message_is_answered_alone_and_a_refused_one_does_not_stop_the_others() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    let messages = json!([
        message(json!({"user": "alice"}), "first"),
        {"to": {"user": "alice"}},
        message(json!({"connection": "0.999.0"}), "to-nobody"),
        message(json!({"user": ""}), "empty-user"),
        42,
        {"to": {"user": "alice"}, "event": "x", "surprise": true},
        message(json!([{"user": "alice"}, {"user": "bob"}]), "both"),
        message(json!([{"user": "bob"}, {"connection": "1.999.0"}]), "half"),
        message(json!({"user": "alice"}), "last"),
    ]);
    let (status, answer) = batch(&server, messages).await;
    assert_eq!(status, 200, "{answer}");
    let statuses: Vec<u64> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [200, 400, 404, 400, 400, 400, 200, 404, 200],
        "{answer}"
    );
    assert_eq!(answer["refused"], 6, "{answer}");
    // 1 (first) + 2 (both) + 1 (last): a refused message counts for nothing.
    assert_eq!(answer["reached"], 4, "{answer}");
    let results = &answer["results"];
    assert!(results[1]["message"]
        .as_str()
        .unwrap()
        .contains("messages[1]"));
    assert!(results[1]["message"].as_str().unwrap().contains("event"));
    assert_eq!(results[2]["error"], "unknown_connection", "{answer}");
    assert_eq!(results[3]["error"], "bad_request", "{answer}");
    assert!(results[4]["message"]
        .as_str()
        .unwrap()
        .contains("messages[4]"));
    assert!(results[5]["message"].as_str().unwrap().contains("surprise"));
    assert_eq!(results[6]["deliveries"].as_array().unwrap().len(), 2);
    assert_eq!(results[7]["error"], "unknown_connection", "{answer}");

    for event in ["first", "both", "last"] {
        assert_eq!(alice.next_of("message").await["event"], event);
    }
    // A message refused for one of its targets is still delivered to the others, as a
    // single publish does.
    for event in ["both", "half"] {
        assert_eq!(bob.next_of("message").await["event"], event);
    }
    nothing_more(&mut alice).await;
    nothing_more(&mut bob).await;
}

#[tokio::test]
async fn a_batch_that_cannot_be_read_as_a_whole_publishes_nothing() {
    let server = TestServer::with("max_publish_batch = 3\nmax_body_bytes = 4096").await;
    let mut alice = server.connect("alice").await;
    let one = message(json!({"user": "alice"}), "never");
    let unreadable = [
        json!({}),
        json!({"messages": "all"}),
        json!({"messages": one}),
        json!({"messages": [one], "extra": 1}),
        json!([one]),
    ];
    for body in unreadable {
        let (status, answer) = server
            .api("POST", "/api/publish/batch", Some(body.clone()))
            .await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert_eq!(answer["error"], "bad_request", "{answer}");
    }
    let response = server
        .http
        .post(format!("{}/api/publish/batch", server.base))
        .bearer_auth(API_KEY)
        .header("content-type", "application/json")
        .body(r#"{"messages": [{"to": "all", "event": "x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);

    let (status, empty) = batch(&server, json!([])).await;
    assert_eq!(status, 400, "{empty}");
    assert!(
        empty["message"].as_str().unwrap().contains("empty"),
        "{empty}"
    );

    let (status, over) = batch(&server, json!([one, one, one, one])).await;
    assert_eq!(status, 413, "{over}");
    assert_eq!(over["error"], "too_many_messages", "{over}");
    assert!(
        over["message"].as_str().unwrap().contains("at most 3"),
        "{over}"
    );

    let big = json!({"to": {"user": "alice"}, "event": "big", "data": "y".repeat(4096)});
    let (status, too_big) = batch(&server, json!([one, big])).await;
    assert_eq!(status, 413, "{too_big}");
    assert_eq!(too_big["error"], "body_too_large", "{too_big}");

    nothing_more(&mut alice).await;
    let (status, answer) = batch(&server, json!([one, one, one])).await;
    assert_eq!((status, &answer["reached"]), (200, &json!(3)), "{answer}");
}

#[tokio::test]
async fn a_batch_without_the_api_key_is_401_and_publishes_nothing() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    let body = json!({"messages": [message(json!({"user": "alice"}), "never")]});
    let (status, refused) = server
        .api_as(
            "wrong-key",
            "POST",
            "/api/publish/batch",
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, 401, "{refused}");
    assert_eq!(refused["reason"], "wrong_key");
    let response = server
        .http
        .post(format!("{}/api/publish/batch", server.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    nothing_more(&mut alice).await;
}

#[tokio::test]
async fn a_zero_batch_limit_is_refused_at_start() {
    let file = toml::from_str("max_publish_batch = 0").unwrap();
    let refused = switchboard_server::settings::Settings::resolve(
        file,
        &switchboard_server::settings::Overrides::default(),
    )
    .unwrap_err();
    assert!(
        refused.to_string().contains("max_publish_batch"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_single_node_shutting_down_refuses_every_message_of_a_batch_with_503() {
    let mut server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    server.running.as_ref().unwrap().drain().await;
    let messages = json!([
        message(json!({"user": "alice"}), "lost"),
        message(json!("all"), "lost"),
        {"to": {"user": "alice"}},
    ]);
    let (status, answer) = batch(&server, messages).await;
    assert_eq!(status, 200, "{answer}");
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for result in &results[..2] {
        assert_eq!(result["status"], 503, "{answer}");
        assert_eq!(result["error"], "shutting_down", "{answer}");
    }
    assert_eq!(
        results[2]["status"], 400,
        "a malformed message is still malformed"
    );
    assert_eq!(answer["refused"], 3);
    nothing_more(&mut alice).await;
    let ((), code) = tokio::join!(server.shutdown(), alice.closed());
    assert_eq!(code, 1001);
}
