//! One-time tickets on a single node: `POST /api/tickets` by the backend, `?ticket=` by the
//! client, once; expiry; the grants a ticket carries; the node's bound on outstanding
//! tickets (429); the requests it refuses; a revocation of the user refuses the tickets
//! issued before it.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::*;

async fn ticket(server: &TestServer, request: Value) -> (u16, Value) {
    server.api("POST", "/api/tickets", Some(request)).await
}

async fn issued(server: &TestServer, request: Value) -> String {
    let (status, answer) = ticket(server, request).await;
    assert_eq!(status, 200, "{answer}");
    answer["ticket"].as_str().expect("a ticket").to_owned()
}

/// A ticket opens one connection for its user with its rooms to join and to publish to; the
/// second use is `invalid_ticket`, as is a ticket nobody issued.
#[tokio::test]
async fn a_ticket_opens_one_connection_with_its_grants() {
    let server = TestServer::start().await;
    let grants = json!({"user": "alice", "rooms": ["lobby"], "publish": ["news"]});
    let (status, answer) = ticket(&server, grants).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["expires_in"], 30, "the default lifetime");
    let once = answer["ticket"].as_str().unwrap();
    let mut alice = WsClient::welcomed(server.addr(), &format!("ticket={once}")).await;
    assert_eq!(alice.welcome()["user"], "alice");
    alice
        .send(json!({"type": "join", "room": "admin", "ref": 1}))
        .await;
    assert_eq!(alice.next_of("error").await["code"], "forbidden");
    alice.join("lobby").await;
    alice
        .send(json!({"type": "publish", "room": "lobby", "event": "hi", "ref": 2}))
        .await;
    let refused = alice.json().await;
    assert_eq!(
        (&refused["code"], &refused["ref"]),
        (&json!("forbidden"), &json!(2))
    );

    let again = server.refusal_reason(&format!("?ticket={once}"), &[]).await;
    assert_eq!(again, "invalid_ticket");
    let forged = "0".repeat(64);
    let forged = server
        .refusal_reason(&format!("?ticket={forged}"), &[])
        .await;
    assert_eq!(forged, "invalid_ticket");
}

/// A ticket not used within its lifetime is `invalid_ticket`; a lifetime past the maximum is
/// cut to it.
#[tokio::test]
async fn an_unused_ticket_expires() {
    let server = TestServer::start().await;
    let short = issued(&server, json!({"user": "alice", "ttl_secs": 1})).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let reason = server
        .refusal_reason(&format!("?ticket={short}"), &[])
        .await;
    assert_eq!(reason, "invalid_ticket");
    let (_, answer) = ticket(&server, json!({"user": "alice", "ttl_secs": 86_400})).await;
    assert_eq!(answer["expires_in"], 300, "auth.tickets.max_ttl_secs");
}

/// Past `auth.tickets.max_outstanding` unexpired tickets (used or not), the node answers
/// 429 `too_many_tickets`; once they expire it issues again.
#[tokio::test]
async fn outstanding_tickets_are_bounded_per_node() {
    let server = TestServer::with("[auth.tickets]\nmax_outstanding = 2").await;
    let first = issued(&server, json!({"user": "a", "ttl_secs": 1})).await;
    issued(&server, json!({"user": "b", "ttl_secs": 1})).await;
    WsClient::welcomed(server.addr(), &format!("ticket={first}")).await;
    let (status, answer) = ticket(&server, json!({"user": "c"})).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (429, Some("too_many_tickets"))
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    issued(&server, json!({"user": "c"})).await;
}

/// Requests the route cannot honour are 400 with a clear message.
#[tokio::test]
async fn bad_ticket_requests_are_400() {
    let server = TestServer::start().await;
    for bad in [
        json!({"user": ""}),
        json!({"user": "al\nice"}),
        json!({"user": "alice", "rooms": vec!["r"; 65]}),
        json!({"user": "alice", "publish": [""]}),
        json!({"user": "alice", "ttl_secs": 0}),
        json!({"user": "alice", "expires": 1}),
        json!({"rooms": ["lobby"]}),
    ] {
        let (status, answer) = ticket(&server, bad.clone()).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("bad_request")),
            "{bad}: {answer}"
        );
    }
}

/// A ticket issued before its user was revoked is `revoked` when used.
#[tokio::test]
async fn a_revocation_refuses_the_tickets_issued_before_it() {
    let server = TestServer::start().await;
    let before = issued(&server, json!({"user": "alice"})).await;
    let (status, _) = server
        .api(
            "POST",
            "/api/users/alice/disconnect",
            Some(json!({"revoke": true})),
        )
        .await;
    assert_eq!(status, 200);
    let reason = server
        .refusal_reason(&format!("?ticket={before}"), &[])
        .await;
    assert_eq!(reason, "revoked");
}

/// A single node that began shutting down takes no new client, so it issues no ticket: 503
/// `shutting_down`.
#[tokio::test]
async fn a_single_node_shutting_down_issues_no_ticket() {
    let server = TestServer::start().await;
    server.running.as_ref().unwrap().drain().await;
    let (status, answer) = ticket(&server, json!({"user": "alice"})).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (503, Some("shutting_down"))
    );
}
