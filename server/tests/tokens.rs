//! Client tokens against a real server: RS256, ES256 and EdDSA public keys from the settings
//! (inline and from files), a key used only with its own algorithm, the time and lifetime
//! claims, audience and issuer, the publish grant, the default grants of staging and production,
//! the token in `Sec-WebSocket-Protocol` through a real WebSocket client, and the origin
//! allowlist. Tokens are signed by jsonwebtoken with the test keys of `tests/keys`.

mod support;

use futures_util::StreamExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::time::Duration;
use support::keys::{claims, now, with, TestKey};
use support::*;
use switchboard_server::auth::TokenKeys;
use switchboard_server::settings::{Environment, FileSettings, Overrides, Settings};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const MINUTE: Duration = Duration::from_secs(60);

/// `claims` signed with the test secret (HS256).
fn hs256(claims: &Value) -> String {
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).unwrap()
}

/// `[[auth.keys]]` entries: RS256 inline with kid `rsa`, ES256 from a file with kid `ec`,
/// EdDSA inline without a kid.
fn key_settings() -> String {
    let (rsa, ec, ed) = (TestKey::rsa_a(), TestKey::ec(), TestKey::ed25519());
    format!(
        "[[auth.keys]]\nkid = \"rsa\"\nalg = \"RS256\"\npem = '''\n{}'''\n\
         [[auth.keys]]\nkid = \"ec\"\nalg = \"ES256\"\npem_file = \"{}\"\n\
         [[auth.keys]]\nalg = \"EdDSA\"\npem = '''\n{}'''\n",
        rsa.public_pem(),
        ec.public_pem_file(),
        ed.public_pem()
    )
}

/// RS256, ES256 and EdDSA tokens signed with the configured keys open connections for their
/// users; an RS256 token naming no key is tried against the RS256 keys; HS256 still works.
#[tokio::test]
async fn tokens_signed_with_configured_public_keys_open_connections() {
    let server = TestServer::with(&key_settings()).await;
    let cases = [
        (
            TestKey::rsa_a().sign(Some("rsa"), &claims("rosa", 60)),
            "rosa",
        ),
        (TestKey::rsa_a().sign(None, &claims("rita", 60)), "rita"),
        (TestKey::ec().sign(Some("ec"), &claims("eve", 60)), "eve"),
        (TestKey::ed25519().sign(None, &claims("ed", 60)), "ed"),
        (server.token("hal", None), "hal"),
    ];
    for (token, user) in cases {
        let client = server.connect_token(&token).await;
        assert_eq!(client.welcome()["user"], user);
    }
}

/// A key verifies only tokens of its own algorithm signed with it: another RSA key under the
/// same `kid`, an ES256 token naming the RSA key, and an HS256 token "signed" with the RSA
/// public key as its secret (the algorithm confusion attack) are `bad_signature`; an
/// algorithm without a key is `unsupported`; a `kid` the server does not have is
/// `unknown_key`.
#[tokio::test]
async fn a_key_verifies_only_its_own_algorithm_and_signatures() {
    let server = TestServer::with(&key_settings()).await;
    let alice = claims("alice", 60);
    let confusion = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("rsa".into());
        let secret = EncodingKey::from_secret(TestKey::rsa_a().public_pem().as_bytes());
        jsonwebtoken::encode(&header, &alice, &secret).unwrap()
    };
    let cases = [
        (TestKey::rsa_b().sign(Some("rsa"), &alice), "bad_signature"),
        (TestKey::rsa_b().sign(None, &alice), "bad_signature"),
        (TestKey::ec().sign(Some("rsa"), &alice), "bad_signature"),
        (confusion, "bad_signature"),
        (
            TestKey::rsa_a().sign_as(Algorithm::RS384, Some("rsa"), &alice),
            "unsupported",
        ),
        (
            TestKey::rsa_a().sign_as(Algorithm::PS256, None, &alice),
            "unsupported",
        ),
        (
            TestKey::rsa_a().sign(Some("retired"), &alice),
            "unknown_key",
        ),
    ];
    for (token, reason) in cases {
        assert_eq!(server.token_refusal(&token).await, reason);
    }
}

/// A deployment whose tokens are all signed with public keys needs no HS256 secret, and then
/// accepts no HS256 token.
#[tokio::test]
async fn a_deployment_with_only_public_keys_refuses_hs256_tokens() {
    let file: FileSettings = toml::from_str(&key_settings()).unwrap();
    let overrides = Overrides {
        env: Some(Environment::Production),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        api_key: Some(STRONG_API_KEY.into()),
        ..Overrides::default()
    };
    let settings = Settings::resolve(file, &overrides).unwrap();
    assert!(settings.auth.secret.is_none());
    let server = TestServer::with_settings(settings).await;
    assert_eq!(
        server.token_refusal(&server.token("alice", None)).await,
        "unsupported"
    );
    let rsa = TestKey::rsa_a().sign(Some("rsa"), &claims("alice", 60));
    assert_eq!(server.connect_token(&rsa).await.welcome()["user"], "alice");
}

/// The time claims over HTTP: `iat` is optional; `exp` at the largest integer, or further
/// from `iat` than the longest lifetime, is `lifetime_too_long`; a future `nbf` or `iat` is
/// `not_yet_valid`; a token for an audience is `invalid_claims` when the server has none.
#[tokio::test]
async fn lifetimes_and_times_are_checked_with_stable_reasons() {
    let server = TestServer::with("[auth]\nmax_token_lifetime_secs = 3600").await;
    let sign = |claims: Value| hs256(&claims);
    let now = now();
    let without_iat = json!({"sub": "alice", "exp": now + 60});
    assert_eq!(
        server.connect_token(&sign(without_iat)).await.welcome()["user"],
        "alice"
    );
    let cases = [
        (
            json!({"sub": "a", "iat": now, "exp": u64::MAX}),
            "lifetime_too_long",
        ),
        (json!({"sub": "a", "exp": u64::MAX}), "lifetime_too_long"),
        (
            json!({"sub": "a", "iat": now, "exp": now + 3601}),
            "lifetime_too_long",
        ),
        (
            json!({"sub": "a", "exp": now + 600, "nbf": now + 300}),
            "not_yet_valid",
        ),
        (
            json!({"sub": "a", "exp": now + 600, "iat": now + 300}),
            "not_yet_valid",
        ),
        (
            json!({"sub": "a", "exp": now - 120, "iat": now - 180}),
            "expired",
        ),
        (
            json!({"sub": "a", "exp": now + 60, "aud": "switchboard"}),
            "invalid_claims",
        ),
    ];
    for (claims, reason) in cases {
        assert_eq!(
            server.token_refusal(&sign(claims.clone())).await,
            reason,
            "{claims}"
        );
    }
}

/// With an audience and issuers configured, a token naming them connects; another audience
/// or issuer, or none, is `invalid_claims`.
#[tokio::test]
async fn a_token_for_the_configured_audience_and_issuer_connects() {
    let settings = "[auth]\naudience = \"switchboard\"\nissuer = [\"https://id.test\"]";
    let server = TestServer::with(settings).await;
    let good = json!({"aud": "switchboard", "iss": "https://id.test"});
    let token = hs256(&with(claims("alice", 60), good));
    assert_eq!(
        server.connect_token(&token).await.welcome()["user"],
        "alice"
    );
    for bad in [
        json!({"aud": "another-service", "iss": "https://id.test"}),
        json!({"aud": "switchboard", "iss": "https://elsewhere.test"}),
        json!({"iss": "https://id.test"}),
        json!({"aud": "switchboard"}),
    ] {
        let token = hs256(&with(claims("alice", 60), bad.clone()));
        assert_eq!(
            server.token_refusal(&token).await,
            "invalid_claims",
            "{bad}"
        );
    }
}

/// In production a token without `rooms` joins nothing, unless `default_rooms` grants some;
/// a `rooms` claim grants exactly its rooms.
#[tokio::test]
async fn in_production_a_token_without_rooms_joins_only_the_default_rooms() {
    for (file, lobby) in [("", false), ("[auth]\ndefault_rooms = [\"lobby\"]", true)] {
        let server = TestServer::with_settings(production_settings(file).unwrap()).await;
        let mut bare = server.connect_token(&server.token("alice", None)).await;
        bare.send(json!({"type": "join", "room": "lobby", "ref": 1}))
            .await;
        let answer = bare.json().await;
        match lobby {
            true => assert_eq!(answer["type"], "joined", "{answer}"),
            false => assert_eq!(answer["code"], "forbidden", "{answer}"),
        }
        bare.send(json!({"type": "join", "room": "admin", "ref": 2}))
            .await;
        assert_eq!(bare.next_of("error").await["code"], "forbidden");

        let mut granted = server
            .connect_token(&server.token("bob", Some(&["admin"])))
            .await;
        granted.join("admin").await;
    }
}

/// A token's `publish` claim is enforced apart from `rooms`: a client with `rooms: [lobby, news]`
/// and `publish: [lobby]` joins both and publishes to lobby, but a publish to news is answered
/// `forbidden` with its `ref` and reaches nobody (the reader's next message is the sender's
/// next publish to lobby).
#[tokio::test]
async fn a_publish_outside_the_tokens_publish_claim_is_forbidden() {
    let server = TestServer::start().await;
    let grants = json!({"rooms": ["lobby", "news"], "publish": ["lobby"]});
    let mut sender = server
        .connect_token(&hs256(&with(claims("alice", 600), grants)))
        .await;
    let mut reader = server.connect("bob").await;
    for room in ["lobby", "news"] {
        sender.join(room).await;
        reader.join(room).await;
    }

    sender
        .send(json!({"type": "publish", "room": "lobby", "event": "first", "ref": 1}))
        .await;
    assert_eq!(reader.event().await, "first");
    sender
        .send(json!({"type": "publish", "room": "news", "event": "refused", "ref": 2}))
        .await;
    let error = sender.json().await;
    assert_eq!(
        (&error["code"], &error["ref"]),
        (&json!("forbidden"), &json!(2)),
        "{error}"
    );
    sender
        .send(json!({"type": "publish", "room": "lobby", "event": "after", "ref": 3}))
        .await;
    let next = reader.json().await;
    assert_eq!(
        (&next["event"], &next["room"]),
        (&json!("after"), &json!("lobby")),
        "{next}"
    );
}

/// In production a token without `publish` publishes nowhere, even to a room it joined,
/// unless `auth.default_publish` grants it; the backend still publishes to the room (the
/// reader's next message is the backend's).
#[tokio::test]
async fn in_production_a_token_without_publish_publishes_only_to_the_default_rooms() {
    let rooms = "[auth]\ndefault_rooms = [\"lobby\"]\n";
    for (file, allowed) in [
        (rooms.to_owned(), false),
        (format!("{rooms}default_publish = [\"lobby\"]"), true),
    ] {
        let server = TestServer::with_settings(production_settings(&file).unwrap()).await;
        let mut sender = server.connect_token(&server.token("alice", None)).await;
        let mut reader = server.connect_token(&server.token("bob", None)).await;
        sender.join("lobby").await;
        reader.join("lobby").await;

        sender
            .send(json!({"type": "publish", "room": "lobby", "event": "hi", "ref": 1}))
            .await;
        sender.send(json!({"type": "ping", "ref": 2})).await;
        let answer = sender.json().await;
        match allowed {
            true => {
                assert_eq!(answer["type"], "pong", "{answer}");
                assert_eq!(reader.event().await, "hi");
            }
            false => assert_eq!(answer["code"], "forbidden", "{answer}"),
        }
        server
            .publish(json!({"room": "lobby"}), "backend", json!(null))
            .await;
        assert_eq!(reader.event().await, "backend");
    }
}

/// A token in `Sec-WebSocket-Protocol` as `token.<jwt>` beside `switchboard.v1` opens the
/// connection through a real WebSocket client; the server answers with `switchboard.v1`
/// only, never with the token. Without `switchboard.v1` it is a 400; a bad token there is a
/// 401 with its reason.
#[tokio::test]
async fn the_token_may_travel_in_the_websocket_subprotocol() {
    let server = TestServer::start().await;
    let token = server.token("alice", None);
    let mut request = format!("ws://{}/ws", server.addr())
        .into_client_request()
        .unwrap();
    let offered = format!("switchboard.v1, token.{token}");
    request
        .headers_mut()
        .insert("sec-websocket-protocol", offered.parse().unwrap());
    let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    let answered = response.headers().get("sec-websocket-protocol");
    assert_eq!(answered, Some(&HeaderValue::from_static("switchboard.v1")));
    let welcome = ws.next().await.unwrap().unwrap().into_text().unwrap();
    let welcome: Value = serde_json::from_str(&welcome).unwrap();
    assert_eq!(
        (welcome["type"].as_str(), welcome["user"].as_str()),
        (Some("welcome"), Some("alice"))
    );

    let alone = format!("token.{token}");
    let (status, body) = server
        .handshake_refusal("", &[("sec-websocket-protocol", &alone)])
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        !body.to_string().contains(&token),
        "the token is never echoed: {body}"
    );
    let forged = TokenKeys::new("a-secret-this-server-never-had").mint("alice", None, MINUTE);
    let offered = format!("switchboard.v1, token.{forged}");
    let reason = server
        .refusal_reason("", &[("sec-websocket-protocol", &offered)])
        .await;
    assert_eq!(reason, "bad_signature");
}

/// With `[http] allowed_origins`, a browser handshake from another origin is a 403 even with
/// a valid token; a listed origin (in any case) and a client without `Origin` connect.
#[tokio::test]
async fn websockets_from_origins_outside_the_allowlist_are_forbidden() {
    let server = TestServer::with("[http]\nallowed_origins = [\"https://app.example\"]").await;
    let token = server.token("alice", None);
    let tail = format!("?token={token}");
    for foreign in ["https://evil.example", "http://app.example", "null"] {
        let (status, body) = server
            .handshake_refusal(&tail, &[("origin", foreign)])
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("forbidden_origin")),
            "{foreign}"
        );
    }
    for origin in [
        Some("https://app.example"),
        Some("HTTPS://APP.EXAMPLE"),
        None,
    ] {
        let mut request = format!("ws://{}/ws{tail}", server.addr())
            .into_client_request()
            .unwrap();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        let mut client = WsClient::request(server.addr(), request).await.unwrap();
        assert_eq!(client.json().await["type"], "welcome", "{origin:?}");
    }
}
