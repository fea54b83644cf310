//! Revocation on a single node through the backend API: a user's credentials issued until
//! the revocation are refused (`revoked`) while their connections close with 4002, later
//! tokens pass; one token is revoked by its `jti`; the bodies the routes refuse; the store's
//! bound.

mod support;

use serde_json::json;
use support::keys::{claims, now, with};
use support::*;
use switchboard_server::auth::{Claims, TokenKeys};

/// An HS256 token for `user` with exactly these times and id.
fn token(user: &str, iat: Option<u64>, jti: Option<&str>) -> String {
    TokenKeys::new(SECRET).sign(&Claims {
        sub: user.into(),
        exp: now() + 600,
        iat,
        jti: jti.map(str::to_owned),
        ..Claims::default()
    })
}

/// `disconnect` with `{"revoke": true}` closes the user's connections with 4002 and answers
/// the cut-off; from then on the user's tokens issued at or before it, and those without
/// `iat`, are `revoked`, while a token issued after it connects; another user is untouched.
#[tokio::test]
async fn revoking_a_user_refuses_the_tokens_issued_until_then() {
    let server = TestServer::start().await;
    let issued = now() - 5;
    let old = token("alice", Some(issued), None);
    let mut alice = server.connect_token(&old).await;
    let mut bob = server
        .connect_token(&token("bob", Some(issued), None))
        .await;

    let (status, answer) = server
        .api(
            "POST",
            "/api/users/alice/disconnect",
            Some(json!({"revoke": true})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["closed"], 1);
    let cutoff = answer["cutoff"].as_u64().expect("the cut-off");
    assert!(cutoff >= issued);
    assert_eq!(alice.closed().await, 4002);

    assert_eq!(server.token_refusal(&old).await, "revoked");
    let at_cutoff = token("alice", Some(cutoff), None);
    assert_eq!(server.token_refusal(&at_cutoff).await, "revoked");
    let without_iat = token("alice", None, None);
    assert_eq!(server.token_refusal(&without_iat).await, "revoked");
    let newer = token("alice", Some(cutoff + 1), None);
    assert_eq!(
        server.connect_token(&newer).await.welcome()["user"],
        "alice"
    );
    bob.join("lobby").await;
    server.connect_token(&token("bob", None, None)).await;
}

/// Without a body (with or without a JSON content type), or with `{"revoke": false}`,
/// `disconnect` only closes; a body it cannot read is a 400 and closes nothing.
#[tokio::test]
async fn disconnect_without_revoke_only_closes() {
    let server = TestServer::start().await;
    let old = token("alice", Some(now() - 5), None);
    for body in [None, Some(json!({"revoke": false}))] {
        let mut alice = server.connect_token(&old).await;
        let (status, answer) = server
            .api("POST", "/api/users/alice/disconnect", body.clone())
            .await;
        assert_eq!(
            (status, answer.get("cutoff")),
            (200, None),
            "{body:?}: {answer}"
        );
        assert_eq!(alice.closed().await, 4002);
        server.connect_token(&old).await.close().await;
    }
    let mut alice = server.connect_token(&old).await;
    let empty_json = server
        .http
        .post(format!("{}/api/users/alice/disconnect", server.base))
        .bearer_auth(API_KEY)
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(empty_json.status().as_u16(), 200);
    assert_eq!(alice.closed().await, 4002);
    server.connect_token(&old).await.close().await;

    let mut alice = server.connect_token(&old).await;
    for bad in [json!({"revoke": "yes"}), json!({"revoke": true, "why": 1})] {
        let (status, answer) = server
            .api("POST", "/api/users/alice/disconnect", Some(bad))
            .await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("bad_request")),
            "{answer}"
        );
    }
    alice.join("still-here").await;
}

/// `POST /api/tokens/revoke` refuses one token by its `jti` until its `exp` (and the leeway);
/// the user's other tokens still connect. An empty or over-long `jti` is a 400.
#[tokio::test]
async fn revoking_one_token_refuses_it_and_only_it() {
    let server = TestServer::start().await;
    let stolen = token("alice", Some(now()), Some("t-1"));
    let other = token("alice", Some(now()), Some("t-2"));
    let exp = now() + 600;
    let (status, answer) = server
        .api(
            "POST",
            "/api/tokens/revoke",
            Some(json!({"jti": "t-1", "exp": exp})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["jti"].as_str(), answer["until"].as_u64()),
        (Some("t-1"), Some(exp + 30))
    );
    assert_eq!(server.token_refusal(&stolen).await, "revoked");
    server.connect_token(&other).await;

    // Without `exp`, kept as long as any token may live.
    let (status, answer) = server
        .api("POST", "/api/tokens/revoke", Some(json!({"jti": "t-2"})))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["until"].as_u64().unwrap() >= now() + 24 * 3600);
    assert_eq!(server.token_refusal(&other).await, "revoked");

    // An `exp` at the largest integer is kept no longer than any token may live.
    let body = json!({"jti": "t-3", "exp": u64::MAX});
    let (status, answer) = server.api("POST", "/api/tokens/revoke", Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["until"].as_u64().unwrap() <= now() + 24 * 3600 + 60);

    for bad in [
        json!({"jti": ""}),
        json!({"jti": "j".repeat(257)}),
        json!({"exp": exp}),
    ] {
        let (status, answer) = server.api("POST", "/api/tokens/revoke", Some(bad)).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("bad_request")),
            "{answer}"
        );
    }
}

/// A node keeps at most `auth.max_revocations` revocations that have not expired: past
/// that, a single node answers 429 `too_many_revocations` and keeps what it had.
#[tokio::test]
async fn the_revocations_a_node_keeps_are_bounded() {
    let server = TestServer::with("[auth]\nmax_revocations = 2").await;
    for user in ["a", "b"] {
        let path = format!("/api/users/{user}/disconnect");
        let (status, _) = server
            .api("POST", &path, Some(json!({"revoke": true})))
            .await;
        assert_eq!(status, 200);
    }
    let (status, answer) = server
        .api("POST", "/api/tokens/revoke", Some(json!({"jti": "t"})))
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (429, Some("too_many_revocations"))
    );
    let (status, _) = server
        .api(
            "POST",
            "/api/users/a/disconnect",
            Some(json!({"revoke": true})),
        )
        .await;
    assert_eq!(status, 200, "a newer cut-off for a kept user takes no room");
    let old = with(claims("b", 60), json!({"iat": now() - 60}));
    let old = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &old,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(server.token_refusal(&old).await, "revoked");
}
