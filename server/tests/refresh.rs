//! Token lifetimes on live connections, against a real server over real WebSockets: a client
//! whose token expires in a few seconds is sent `refresh` (`auth.refresh_ahead_secs` = 1), and
//! with `auth.leeway_secs` = 0 is closed with 4005 at its `exp` unless it answered with a fresh
//! token of its own user (minted here with jsonwebtoken, as an application's backend would),
//! which the server verifies as it verifies a handshake and whose grants apply at once.

mod support;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::time::Duration;
use support::keys::{claims, now, with};
use support::*;
use switchboard_testing::Received;

/// The settings of every test here: asked one second ahead, closed at `exp` itself.
const SETTINGS: &str = "[auth]\nrefresh_ahead_secs = 1\nleeway_secs = 0";
/// The lifetime of the tokens the clients connect with, in seconds.
const SHORT: u64 = 3;

/// `claims` signed with the test secret (HS256).
fn hs256(claims: &Value) -> String {
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).unwrap()
}

/// `claims` signed with a secret the server does not have.
fn forged(claims: &Value) -> String {
    let key = EncodingKey::from_secret(b"not-the-servers-secret-at-all-xx");
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).unwrap()
}

/// A token of `sub` that expires in `ttl` seconds, for `rooms`.
fn token(sub: &str, ttl: u64, rooms: &[&str]) -> (String, u64) {
    let claims = with(claims(sub, ttl), json!({"rooms": rooms}));
    let exp = claims["exp"].as_u64().unwrap();
    (hs256(&claims), exp)
}

/// The value of `switchboard_closes_total` for `reason` and `code`.
async fn closes(server: &TestServer, reason: &str, code: u16) -> u64 {
    let (status, text) = server.get_text("/metrics").await;
    assert_eq!(status, 200, "{text}");
    let prefix = format!("switchboard_closes_total{{reason=\"{reason}\",code=\"{code}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |value| value.parse().expect("a number"))
}

/// A client that answers `refresh` with a fresh token stays open past its old `exp`, with the
/// fresh token's grants: the room the fresh token no longer allows is left.
#[tokio::test]
async fn a_client_that_answers_refresh_with_a_fresh_token_stays_open_with_its_grants() {
    let server = TestServer::with(SETTINGS).await;
    let (first, old_exp) = token("alice", SHORT, &["lobby", "team-*"]);
    let mut alice = server.connect_token(&first).await;
    alice.join("lobby").await;
    alice.join("team-1").await;
    let asked = alice.json().await;
    assert_eq!(asked["type"], "refresh", "{asked}");
    assert!(asked["expires_in"].as_u64().unwrap() <= SHORT, "{asked}");

    let (fresh, _) = token("alice", 60, &["team-*"]);
    alice
        .send(json!({"type": "refresh", "token": fresh, "ref": 9}))
        .await;
    let left = alice.json().await;
    assert_eq!(
        left,
        json!({"type": "left", "room": "lobby", "reason": "forbidden"})
    );
    let refreshed = alice.json().await;
    assert_eq!(
        (&refreshed["type"], &refreshed["ref"]),
        (&json!("refreshed"), &json!(9))
    );
    let expires_in = refreshed["expires_in"].as_u64().unwrap();
    assert!((55..=60).contains(&expires_in), "{refreshed}");

    // Past the old expiry: still open, still receiving.
    while now() <= old_exp + 1 {
        assert!(
            alice.silent_for(Duration::from_millis(500)).await,
            "nothing arrives"
        );
    }
    server
        .publish(json!({"user": "alice"}), "after", json!(null))
        .await;
    assert_eq!(alice.event().await, "after");
    assert_eq!(closes(&server, "token_expired", 4005).await, 0);
}

/// A client that does not answer is closed with 4005 at its `exp`, and the close is counted.
#[tokio::test]
async fn a_client_that_does_not_answer_refresh_is_closed_with_4005_at_its_expiry() {
    let server = TestServer::with(SETTINGS).await;
    let (first, exp) = token("bob", SHORT, &["lobby"]);
    let mut bob = server.connect_token(&first).await;
    assert_eq!(bob.json().await["type"], "refresh");
    assert_eq!(bob.closed().await, 4005);
    assert!(now() >= exp, "not closed before its exp");
    assert_eq!(closes(&server, "token_expired", 4005).await, 1);
}

/// Another user's token is refused with `forbidden`, a token that does not verify with
/// `invalid_token` and its 401 reason; the connection keeps its expiry and closes at it.
#[tokio::test]
async fn a_refused_fresh_token_leaves_the_connection_to_close_at_its_expiry() {
    let server = TestServer::with(SETTINGS).await;
    let (first, exp) = token("carol", SHORT, &["lobby"]);
    let mut carol = server.connect_token(&first).await;
    let (mallorys, _) = token("mallory", 60, &["lobby"]);
    carol
        .send(json!({"type": "refresh", "token": mallorys, "ref": 1}))
        .await;
    let refused = carol.next_of("error").await;
    assert_eq!(
        (&refused["code"], &refused["ref"]),
        (&json!("forbidden"), &json!(1))
    );
    let forged = forged(&claims("carol", 60));
    carol
        .send(json!({"type": "refresh", "token": forged, "ref": 2}))
        .await;
    let refused = carol.next_of("error").await;
    assert_eq!(refused["code"], "invalid_token");
    assert_eq!(refused["reason"], "bad_signature");
    assert_eq!(refused["ref"], 2);
    loop {
        match carol.read().await {
            Received::Frame(frame) => assert_eq!(frame["type"], "refresh", "{frame}"),
            Received::Closed(code) => {
                assert_eq!(code, Some(4005));
                break;
            }
        }
    }
    assert!(now() >= exp, "not closed before its exp");
}

/// A `refresh` frame with a token over 8 KiB is `invalid_frame` with its `ref`, never
/// verified; a second one while the first is verified is `refresh_in_progress`, or answered in
/// turn once the first was. The connection stays open either way.
#[tokio::test]
async fn hostile_refresh_frames_are_refused_and_the_connection_stays() {
    let server = TestServer::with(SETTINGS).await;
    let (first, _) = token("dave", 60, &["lobby"]);
    let mut dave = server.connect_token(&first).await;
    let huge = "x".repeat(8 * 1024 + 1);
    dave.send(json!({"type": "refresh", "token": huge, "ref": 1}))
        .await;
    let refused = dave.json().await;
    assert_eq!(
        (&refused["code"], &refused["ref"]),
        (&json!("invalid_frame"), &json!(1))
    );
    let (fresh, _) = token("dave", 60, &["lobby"]);
    for reference in [2, 3] {
        dave.send(json!({"type": "refresh", "token": fresh, "ref": reference}))
            .await;
    }
    let answers = [dave.json().await, dave.json().await];
    let refreshed = answers.iter().filter(|a| a["type"] == "refreshed").count();
    let in_progress = answers
        .iter()
        .filter(|a| a["code"] == "refresh_in_progress")
        .count();
    assert!(
        refreshed >= 1 && refreshed + in_progress == 2,
        "{answers:?}"
    );
    dave.send(json!({"type": "ping", "ref": 4})).await;
    assert_eq!(dave.next_of("pong").await["ref"], 4);
}
