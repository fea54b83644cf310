//! `GET /sse` and `POST /sse/{conn}` over HTTP/2 (cleartext, prior knowledge), the protocol a
//! proxy in front speaks to browsers so that a page's stream and its posts do not count
//! against the six HTTP/1.1 connections a browser allows per origin: each event arrives as it
//! is written, and the posts of the same client, multiplexed beside the open stream, are
//! answered on it in order.

mod support;

use serde_json::{json, Value};
use support::TestServer;
use switchboard_testing::guard;

/// Reads the data events of an event stream, one at a time.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    /// The next event's data as JSON (comments, keep-alives and ids skipped).
    async fn next(&mut self) -> Value {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|line| line.strip_prefix("data: "))
                    .collect();
                if !data.is_empty() {
                    return serde_json::from_str(&data.join("\n")).expect("JSON data");
                }
                continue;
            }
            let chunk = guard("an event", self.response.chunk())
                .await
                .expect("the stream goes on")
                .expect("a chunk");
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http2_events_flow_and_posts_beside_the_stream_are_answered_in_order() {
    let server = TestServer::start().await;
    // The sockets the server holds before: the test's own kept-alive one for `/metrics`, ...
    let before = server.metric("http_connections").await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("an HTTP/2 client");
    let token = server.token("alice", None);
    let response = client
        .get(format!("{}/sse?token={token}", server.base))
        .send()
        .await
        .expect("the stream");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut events = Events {
        response,
        buffer: String::new(),
    };
    let welcome = events.next().await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let conn = welcome["conn"]
        .as_str()
        .expect("a connection id")
        .to_owned();

    // More posts than a browser's HTTP/1.1 connections per origin, while the stream is open.
    for r in 1..=8 {
        let answer = client
            .post(format!("{}/sse/{conn}", server.base))
            .bearer_auth(&token)
            .body(json!({"type": "ping", "ref": r}).to_string())
            .send()
            .await
            .expect("an answer");
        assert_eq!(answer.version(), reqwest::Version::HTTP_2);
        assert_eq!(answer.status(), 202, "{r}");
    }
    for r in 1..=8 {
        let pong = events.next().await;
        assert_eq!((&pong["type"], &pong["ref"]), (&json!("pong"), &json!(r)));
    }
    let during = server.metric("http_connections").await;
    assert_eq!(
        during.zip(before).map(|(d, b)| d - b),
        Some(1.0),
        "the stream and its eight posts took one connection"
    );

    // A message published to the user arrives on the stream without waiting for more.
    let (status, _) = server
        .api(
            "POST",
            "/api/publish",
            Some(json!({"to": {"user": "alice"}, "event": "note", "data": 1})),
        )
        .await;
    assert_eq!(status, 200);
    let note = events.next().await;
    assert_eq!(
        (&note["type"], &note["event"]),
        (&json!("message"), &json!("note"))
    );
}
