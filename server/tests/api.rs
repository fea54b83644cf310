//! The backend HTTP API of a real server: keys, bodies, agent runs, presence, disconnect,
//! stats, metrics and shutdown.

mod support;

use serde_json::{json, Value};
use support::*;

/// Every API route refuses a missing or wrong key with 401 and a `WWW-Authenticate` header.
#[tokio::test]
async fn every_route_needs_the_api_key() {
    let server = TestServer::start().await;
    let routes = [
        ("POST", "/api/publish"),
        ("POST", "/api/publish/batch"),
        ("POST", "/api/runs/alice/r1/events"),
        ("GET", "/api/stats"),
        ("GET", "/api/users/alice"),
        ("POST", "/api/users/alice/disconnect"),
        ("GET", "/api/rooms/lobby"),
        ("POST", "/api/tickets"),
        ("POST", "/api/tokens/revoke"),
    ];
    for (method, path) in routes {
        let (status, body) = server
            .api_as("wrong-key", method, path, Some(json!({})))
            .await;
        assert_eq!(status, 401, "{method} {path}: {body}");
        assert_eq!(body["error"], "unauthorized");
        let response = server
            .http
            .request(method.parse().unwrap(), format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            401,
            "{method} {path} without a key"
        );
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
    }
}

/// Bodies that are not JSON, of the wrong shape, or naming impossible targets are 400 with a
/// message; a body over the limit is 413.
#[tokio::test]
async fn bad_bodies_are_400_and_oversized_bodies_413() {
    let server = TestServer::with("max_body_bytes = 2048").await;
    let bad = [
        json!({"event": "x"}),
        json!({"to": {"planet": "mars"}, "event": "x"}),
        json!({"to": {"user": ""}, "event": "x"}),
        json!({"to": [], "event": "x"}),
        json!({"to": {"connection": "not-an-id"}, "event": "x"}),
        json!({"to": "all", "event": "x", "except": ["nope"]}),
        json!({"to": "all", "event": ""}),
    ];
    for body in bad {
        let (status, answer) = server.api("POST", "/api/publish", Some(body.clone())).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let response = server
        .http
        .post(format!("{}/api/publish", server.base))
        .bearer_auth(API_KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);

    let big = json!({"to": "all", "event": "x", "data": "y".repeat(4096)});
    let (status, answer) = server.api("POST", "/api/publish", Some(big)).await;
    assert_eq!(status, 413, "{answer}");
}

/// One call publishes to several targets and reports each delivery.
#[tokio::test]
async fn one_call_publishes_to_many_targets() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    let answer = server
        .publish(
            json!([{"user": "alice"}, {"user": "bob"}]),
            "both",
            json!(1),
        )
        .await;
    assert_eq!(answer["reached"], 2);
    assert_eq!(answer["deliveries"].as_array().unwrap().len(), 2);
    assert_eq!(alice.next_of("message").await["event"], "both");
    assert_eq!(bob.next_of("message").await["event"], "both");
}

/// A publish to a user with no connection is buffered and delivered when one opens.
#[tokio::test]
async fn a_publish_to_an_offline_user_is_buffered_then_delivered() {
    let server = TestServer::start().await;
    let answer = server
        .publish(json!({"user": "zoe"}), "later", json!(null))
        .await;
    assert_eq!(answer["deliveries"][0]["buffered"], true);
    assert_eq!(answer["reached"], 0);
    let mut zoe = server.connect("zoe").await;
    assert_eq!(zoe.next_of("message").await["event"], "later");
}

async fn run_event(server: &TestServer, body: Value) -> (u16, Value) {
    server
        .api("POST", "/api/runs/alice/r1/events", Some(body))
        .await
}

/// The five agent events arrive in order on the run's thread; an event out of order is a 409
/// and reaches nobody.
#[tokio::test]
async fn agent_events_arrive_in_order_and_out_of_order_is_409() {
    let server = TestServer::start().await;
    let mut alice = server.connect_with("alice", "&thread=t1").await;

    let (status, body) =
        run_event(&server, json!({"event": "agent_thinking", "thought": "?"})).await;
    assert_eq!((status, body["error"].clone()), (409, json!("run_order")));

    let events = [
        json!({"event": "agent_started", "agent": "helper", "thread": "t1"}),
        json!({"event": "agent_thinking", "thought": "looking"}),
        json!({"event": "tool_executing", "tool": "search", "input": {"q": "x"}}),
        json!({"event": "tool_completed", "tool": "search", "output": [1]}),
        json!({"event": "agent_completed", "result": "done"}),
    ];
    for e in &events {
        let (status, body) = run_event(&server, e.clone()).await;
        assert_eq!(status, 200, "{e} -> {body}");
        assert_eq!(body["reached"], 1);
    }
    for e in &events {
        let frame = alice.json().await;
        assert_eq!(frame["type"], e["event"], "{frame}");
        assert_eq!(frame["run"], "r1");
    }
    let (status, _) = run_event(
        &server,
        json!({"event": "agent_thinking", "thought": "late"}),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(alice.fence().await, Vec::<Value>::new());
}

/// A run past the user's cap of runs in progress (`limits.max_active_runs_per_user`) is a 429
/// and reaches nobody; once a run ends, a new one is accepted.
#[tokio::test]
async fn a_run_past_the_users_runs_in_progress_is_429_and_reaches_nobody() {
    let server = TestServer::with("[limits]\nmax_active_runs_per_user = 1").await;
    let mut alice = server.connect("alice").await;
    let start = json!({"event": "agent_started", "agent": "helper"});
    let (status, _) = run_event(&server, start.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(alice.json().await["type"], "agent_started");

    let (status, body) = server
        .api("POST", "/api/runs/alice/r2/events", Some(start.clone()))
        .await;
    assert_eq!(
        (status, body["error"].clone()),
        (429, json!("too_many_runs"))
    );
    assert_eq!(alice.fence().await, Vec::<Value>::new());

    let (status, _) = run_event(&server, json!({"event": "agent_failed", "error": "x"})).await;
    assert_eq!(status, 200);
    let (status, _) = server
        .api("POST", "/api/runs/alice/r2/events", Some(start))
        .await;
    assert_eq!(status, 200, "r1 ended: a place is free");
}

/// Presence answers who is connected where; disconnect closes every connection of the user
/// with 4002.
#[tokio::test]
async fn presence_and_disconnect() {
    let server = TestServer::start().await;
    let mut one = server.connect("alice").await;
    let mut two = server.connect_with("alice", "&thread=t9").await;
    one.join("lobby").await;

    let (status, presence) = server.api("GET", "/api/users/alice", None).await;
    assert_eq!(status, 200);
    assert_eq!(presence["connected"], true);
    let conns = presence["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 2);
    assert!(conns.iter().any(|c| c["thread"] == "t9"));
    assert!(conns.iter().any(|c| c["id"] == json!(one.id())));
    let (_, room) = server.api("GET", "/api/rooms/lobby", None).await;
    assert_eq!(room["members"][0]["user"], "alice");

    let (status, answer) = server
        .api("POST", "/api/users/alice/disconnect", None)
        .await;
    assert_eq!((status, answer["closed"].clone()), (200, json!(2)));
    assert_eq!(one.closed().await, 4002);
    assert_eq!(two.closed().await, 4002);
    let (_, presence) = server.api("GET", "/api/users/nobody", None).await;
    assert_eq!(presence["connected"], false);
}

/// The presence routes refuse a name no connection could hold (empty, over 256 bytes, with
/// control characters) with 400, as the membership routes do, instead of looking it up.
#[tokio::test]
async fn presence_routes_refuse_names_no_connection_could_hold() {
    let server = TestServer::start().await;
    let long = "u".repeat(257);
    let refused = [
        ("GET", format!("/api/users/{long}")),
        ("GET", "/api/users/al%0Aice".to_owned()),
        ("GET", format!("/api/rooms/{long}")),
        ("GET", "/api/rooms/lob%00by".to_owned()),
        ("POST", format!("/api/users/{long}/disconnect")),
        ("POST", "/api/users/al%1Bice/disconnect".to_owned()),
    ];
    for (method, path) in &refused {
        let (status, answer) = server.api(method, path, None).await;
        assert_eq!(
            (status, &answer["error"]),
            (400, &json!("bad_request")),
            "{method} {path}"
        );
    }
    let at_the_bound = format!("/api/users/{}", "u".repeat(256));
    let (status, presence) = server.api("GET", &at_the_bound, None).await;
    assert_eq!((status, &presence["connected"]), (200, &json!(false)));
}

/// Stats count what happened; `/metrics` is Prometheus text with the same figures.
#[tokio::test]
async fn stats_and_metrics_report_connections_and_closes() {
    let server = TestServer::start().await;
    let _a = server.connect("alice").await;
    let _b = server.connect("bob").await;
    let (status, stats) = server.api("GET", "/api/stats", None).await;
    assert_eq!(status, 200);
    assert_eq!(stats["connections"], 2);
    assert_eq!(stats["users"], 2);

    let (status, text) = server.get_text("/metrics").await;
    assert_eq!(status, 200);
    assert!(text.contains("switchboard_connections 2\n"), "{text}");
    assert!(text.contains("# TYPE switchboard_closes_total counter"));
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, value) = line.rsplit_once(' ').expect("name and value");
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
    assert_eq!(server.get_text("/healthz").await.0, 200);
    assert_eq!(server.get_text("/readyz").await.0, 200);
}

/// A single node (no `[redis] url`) has no cluster statistics in `/metrics`.
#[tokio::test]
async fn a_single_node_has_no_cluster_metrics() {
    let server = TestServer::start().await;
    let (status, text) = server.get_text("/metrics").await;
    assert_eq!(status, 200);
    assert!(text.contains("switchboard_connections 0\n"), "{text}");
    assert!(!text.contains("switchboard_cluster_"), "{text}");
}

/// Graceful shutdown closes every client with 1001.
#[tokio::test]
async fn shutdown_closes_clients_with_1001() {
    let mut server = TestServer::start().await;
    let mut a = server.connect("alice").await;
    let mut b = server.connect("bob").await;
    server.publish(json!("all"), "last", json!(null)).await;
    server.shutdown().await;
    assert_eq!(a.next_of("message").await["event"], "last");
    assert_eq!(a.closed().await, 1001);
    assert_eq!(b.next_of("message").await["event"], "last");
    assert_eq!(b.closed().await, 1001);
}

/// The runs API names what is missing: an empty user id or run id in the path, an empty
/// thread or agent in the body is a 400 with a message saying which.
#[tokio::test]
async fn empty_ids_in_the_runs_api_are_400_with_a_clear_message() {
    let server = TestServer::start().await;
    let started = json!({"event": "agent_started", "agent": "helper", "thread": "t1"});
    let cases = [
        ("/api/runs//r1/events", started.clone(), "user id"),
        ("/api/runs/alice//events", started.clone(), "run id"),
        (
            "/api/runs/alice/r1/events",
            json!({"event": "agent_started", "thread": ""}),
            "thread",
        ),
        (
            "/api/runs/alice/r1/events",
            json!({"event": "agent_started", "agent": ""}),
            "agent",
        ),
    ];
    for (path, body, named) in cases {
        let (status, answer) = server.api("POST", path, Some(body)).await;
        assert_eq!(status, 400, "{path}: {answer}");
        assert_eq!(answer["error"], "bad_request");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(named), "{path}: {message}");
    }
    let (status, _) = server
        .api("POST", "/api/runs/alice/r1/events", Some(started))
        .await;
    assert_eq!(status, 200, "a run with every id set starts");
}

/// A single node that began shutting down answers every write 503 `shutting_down` (it would
/// lose what it buffered), `/readyz` 503, and a new client is closed with 1001 before its
/// `welcome`; reads still answer and the connected client stays until the shutdown closes it.
#[tokio::test]
async fn a_single_node_shutting_down_refuses_writes_with_503() {
    let mut server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    server.running.as_ref().unwrap().drain().await;

    let writes = [
        (
            "/api/publish",
            json!({"to": {"user": "zoe"}, "event": "lost"}),
        ),
        ("/api/publish", json!({"to": "all", "event": "lost"})),
        (
            "/api/runs/alice/r1/events",
            json!({"event": "agent_started", "agent": "a"}),
        ),
    ];
    for (path, body) in writes {
        let (status, answer) = server.api("POST", path, Some(body)).await;
        assert_eq!(
            (status, answer["error"].clone()),
            (503, json!("shutting_down"))
        );
    }
    assert_eq!(server.get_text("/readyz").await.0, 503);
    assert_eq!(server.api("GET", "/api/stats", None).await.0, 200);
    let query = format!("token={}", server.token("bob", None));
    let mut late = WsClient::connect(server.addr(), &query).await;
    assert_eq!(late.close_code().await, Some(1001));

    assert_eq!(alice.fence().await, Vec::<Value>::new());
    let ((), code) = tokio::join!(server.shutdown(), alice.closed());
    assert_eq!(code, 1001);
}
