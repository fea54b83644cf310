//! The client endpoint `/ws` of a real server on an ephemeral port: authentication of the
//! handshake, room permissions from the token, and delivery of backend publishes to real
//! WebSocket clients.

mod support;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::*;
use switchboard_server::auth::{Claims, TokenError, TokenKeys};

/// No token, a garbage token, a forged token and an expired token are refused with 401 before
/// any WebSocket exists.
#[tokio::test]
async fn a_handshake_without_a_valid_token_is_refused_with_401() {
    let server = TestServer::start().await;
    assert_eq!(server.refused("", None).await, 401);
    assert_eq!(server.refused("?token=garbage", None).await, 401);
    let forged =
        TokenKeys::new("some-other-secret-of-length").mint("alice", None, Duration::from_secs(60));
    assert_eq!(server.refused(&format!("?token={forged}"), None).await, 401);
    assert_eq!(server.refused("", Some(&forged)).await, 401);
    // Expired a minute ago: beyond the default leeway (30 s).
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = TokenKeys::new(SECRET).sign(&Claims {
        sub: "alice".into(),
        exp: now - 60,
        iat: Some(now - 120),
        ..Claims::default()
    });
    assert_eq!(
        server.refused(&format!("?token={expired}"), None).await,
        401
    );
}

/// A malformed resume position is a 400, not a silent fresh start.
#[tokio::test]
async fn a_malformed_resume_position_is_refused_with_400() {
    let server = TestServer::start().await;
    let token = server.token("alice", None);
    assert_eq!(
        server
            .refused(&format!("?token={token}&resume=yesterday"), None)
            .await,
        400
    );
}

/// A token in the `Authorization` header works as well as one in the query.
#[tokio::test]
async fn a_bearer_token_in_the_header_opens_a_connection_for_its_user() {
    let server = TestServer::start().await;
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{}/ws",
            server.addr()
        ))
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", server.token("alice", None))
            .parse()
            .unwrap(),
    );
    let mut client = WsClient::request(server.addr(), request).await.unwrap();
    let welcome = client.json().await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["user"], "alice");
}

/// A join to a room the token does not allow is an `error` with code `forbidden`, and the
/// connection is not a member; an allowed room joins.
#[tokio::test]
async fn a_join_outside_the_tokens_rooms_is_forbidden_and_joins_nothing() {
    let server = TestServer::start().await;
    let token = server.token("alice", Some(&["team-*"]));
    let mut alice = WsClient::connect(server.addr(), &format!("token={token}")).await;
    alice.next_of("welcome").await;
    alice
        .send(json!({"type": "join", "room": "admin", "ref": 1}))
        .await;
    let error = alice.next_of("error").await;
    assert_eq!(error["code"], "forbidden");
    assert_eq!(error["ref"], 1);
    let (_, members) = server.api("GET", "/api/rooms/admin", None).await;
    assert_eq!(members["members"], json!([]));

    alice.join("team-red").await;
    let (_, members) = server.api("GET", "/api/rooms/team-red", None).await;
    assert_eq!(members["members"].as_array().unwrap().len(), 1);
}

/// A backend publish to a room reaches every member on every shard, and nobody else.
#[tokio::test]
async fn a_room_publish_reaches_every_member_and_only_members() {
    let server = TestServer::start().await;
    let mut members = Vec::new();
    for user in ["alice", "bob", "carol", "dave"] {
        let mut c = server.connect(user).await;
        c.join("lobby").await;
        members.push(c);
    }
    let mut outsider = server.connect("eve").await;

    let answer = server
        .publish(json!({"room": "lobby"}), "news", json!({"n": 1}))
        .await;
    assert_eq!(answer["reached"], 4);
    for m in &mut members {
        let frame = m.next_of("message").await;
        assert_eq!(
            (&frame["event"], &frame["data"]["n"]),
            (&json!("news"), &json!(1))
        );
    }
    assert_eq!(outsider.fence().await, Vec::<Value>::new());
}

/// User and thread targets reach exactly that user's (thread's) connections.
#[tokio::test]
async fn user_and_thread_targets_reach_only_their_connections() {
    let server = TestServer::start().await;
    let mut phone = server.connect_with("alice", "&thread=t1").await;
    let mut laptop = server.connect_with("alice", "&thread=t2").await;
    let mut bob = server.connect("bob").await;

    let answer = server
        .publish(json!({"user": "alice"}), "hello", json!(null))
        .await;
    assert_eq!(answer["reached"], 2);
    assert_eq!(phone.next_of("message").await["event"], "hello");
    assert_eq!(laptop.next_of("message").await["event"], "hello");

    let answer = server
        .publish(
            json!({"thread": {"user": "alice", "thread": "t2"}}),
            "for-t2",
            json!(null),
        )
        .await;
    assert_eq!(answer["reached"], 1);
    assert_eq!(laptop.next_of("message").await["event"], "for-t2");
    assert_eq!(phone.fence().await, Vec::<Value>::new());
    assert_eq!(bob.fence().await, Vec::<Value>::new());
}

/// A publish to one connection uses the id from its `welcome`; `except` leaves connections
/// out of a broadcast.
#[tokio::test]
async fn connection_targets_and_except_sets_use_the_welcome_ids() {
    let server = TestServer::start().await;
    let mut a = server.connect("alice").await;
    let mut b = server.connect("bob").await;

    let answer = server
        .publish(json!({"connection": a.id()}), "direct", json!(null))
        .await;
    assert_eq!(answer["reached"], 1);
    assert_eq!(a.next_of("message").await["event"], "direct");

    let (status, answer) = server
        .api(
            "POST",
            "/api/publish",
            Some(json!({"to": "all", "except": [a.id()], "event": "all-but-a"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["reached"], 1);
    assert_eq!(b.next_of("message").await["event"], "all-but-a");
    assert_eq!(a.fence().await, Vec::<Value>::new());
}

/// The 401 answer to a WebSocket handshake with `token`: its JSON body.
async fn refusal(server: &TestServer, token: Option<&str>) -> Value {
    let query = token.map(|t| format!("?token={t}")).unwrap_or_default();
    let response = server
        .http
        .get(format!("{}/ws{query}", server.base))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    response.json().await.unwrap()
}

/// Every token the server refuses is answered 401 with its stable reason and that reason's
/// own message, never the words of the JSON or base64 parser: no token, garbage, a header that
/// is not JSON, a forged signature, an algorithm other than HS256, a `crit` header (no
/// extension is understood, RFC 7515 §4.1.11), expired, not yet valid, and a `sub` that is
/// empty or carries a NUL or a line break (log injection).
#[tokio::test]
async fn refused_tokens_get_a_stable_reason_and_no_parser_internals() {
    let server = TestServer::start().await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sign = |header: &Header, claims: Value, secret: &str| {
        let key = EncodingKey::from_secret(secret.as_bytes());
        Some(jsonwebtoken::encode(header, &claims, &key).unwrap())
    };
    let hs256 = Header::new(Algorithm::HS256);
    let claims = |sub: &str| json!({"sub": sub, "iat": now, "exp": now + 600});
    let mut critical = hs256.clone();
    critical.crit = Some(vec!["exp".into()]);
    let expired = json!({"sub": "a", "iat": now - 90, "exp": now - 60});
    let early = json!({"sub": "a", "iat": now, "exp": now + 600, "nbf": now + 300});
    let forger = "another-secret-of-some-length";
    let cases = [
        (None, TokenError::Missing),
        (Some("garbage".to_owned()), TokenError::Malformed),
        (
            Some("e30K.eyJzdWIiOiJhIn0.c2ln".to_owned()),
            TokenError::Malformed,
        ),
        (
            sign(&hs256, claims("alice"), forger),
            TokenError::BadSignature,
        ),
        (
            sign(&Header::new(Algorithm::HS384), claims("alice"), SECRET),
            TokenError::Unsupported,
        ),
        (
            sign(&critical, claims("alice"), SECRET),
            TokenError::Unsupported,
        ),
        (sign(&hs256, expired, SECRET), TokenError::Expired),
        (sign(&hs256, early, SECRET), TokenError::NotYetValid),
        (sign(&hs256, claims(""), SECRET), TokenError::InvalidSubject),
        (
            sign(&hs256, claims("al\u{0}ice"), SECRET),
            TokenError::InvalidSubject,
        ),
        (
            sign(&hs256, claims("alice\r\nlevel=ERROR forged"), SECRET),
            TokenError::InvalidSubject,
        ),
    ];
    for (token, expected) in cases {
        let body = refusal(&server, token.as_deref()).await;
        assert_eq!(body["error"], "unauthorized", "{body}");
        assert_eq!(body["reason"], expected.reason(), "{token:?}: {body}");
        assert_eq!(body["message"], expected.to_string(), "{token:?}: {body}");
    }
}

/// A dropped client that reconnects with its user-stream position gets what it missed.
#[tokio::test]
async fn a_client_that_reconnects_with_its_position_gets_what_it_missed() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice").await;
    server
        .publish(json!({"user": "alice"}), "m1", json!(null))
        .await;
    let m1 = alice.next_of("message").await;
    drop(alice);
    // Wait until the server saw the close, so the next publishes are not for that socket.
    for _ in 0..100 {
        let (_, presence) = server.api("GET", "/api/users/alice", None).await;
        if presence["connected"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server
        .publish(json!({"user": "alice"}), "m2", json!(null))
        .await;
    server
        .publish(json!({"user": "alice"}), "m3", json!(null))
        .await;

    let resume = format!("&resume={}:{}", m1["epoch"], m1["seq"]);
    let mut back = server.connect_with("alice", &resume).await;
    assert_eq!(back.next_of("message").await["event"], "m2");
    assert_eq!(back.next_of("message").await["event"], "m3");
}

/// A client that never finishes its handshake is disconnected after the handshake timeout,
/// and other clients connect meanwhile.
#[tokio::test]
async fn a_half_open_handshake_is_dropped_and_blocks_no_one() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::with("[http]\nhandshake_timeout_secs = 1").await;
    let mut stalled = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    stalled
        .write_all(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n")
        .await
        .unwrap();
    let mut other = server.connect("bob").await;
    assert_eq!(other.welcome()["user"], "bob");
    other.join("lobby").await;

    let wait = Duration::from_secs(1) + PATIENCE;
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(wait, stalled.read(&mut buf))
        .await
        .expect("the server hangs up within the handshake timeout");
    // Hyper may answer 408 before closing; either way the connection ends.
    match read {
        Ok(0) | Err(_) => {}
        Ok(n) => {
            let head = String::from_utf8_lossy(&buf[..n]);
            assert!(head.starts_with("HTTP/1.1 408"), "{head}");
        }
    }
}

/// Once the server closes its clients (past the drain, in which a new client is closed with
/// 1001, see `api.rs`), a handshake that still reaches it is answered 503 and upgrades nothing.
/// A client that does not read its close frame keeps the server closing for its close timeout
/// while it still serves HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_while_the_server_closes_its_clients_is_answered_503() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::{protocol::frame::coding::CloseCode, Error, Message};
    let mut server = TestServer::start().await;
    let holdout = format!("token={}", server.token("holdout", None));
    // Open on its shard (its `welcome` read) before the shutdown starts, so that closing it
    // waits for its close frame, which it never sends: the server stays in the phase where it
    // closes its clients for the whole close timeout.
    let mut holdout = WsClient::open(server.addr(), &holdout, true).await.unwrap();
    assert_eq!(holdout.json().await["type"], "welcome");
    // Draining before the first late handshake: none of them can be admitted.
    let running = server.running.take().unwrap();
    running.drain().await;
    let stopping = tokio::spawn(running.shutdown());
    let url = format!(
        "ws://{}/ws?token={}",
        server.addr(),
        server.token("late", None)
    );
    let status = switchboard_testing::guard("a handshake answered 503", async {
        loop {
            match tokio_tungstenite::connect_async(url.as_str()).await {
                // Still draining: the client is closed with 1001 before any frame.
                Ok((mut ws, _)) => match ws.next().await {
                    Some(Ok(Message::Close(Some(close)))) => {
                        assert_eq!(close.code, CloseCode::Away)
                    }
                    other => panic!("a draining server sent {other:?}"),
                },
                Err(Error::Http(response)) => return response.status().as_u16(),
                Err(e) => panic!("unexpected handshake error: {e}"),
            }
        }
    })
    .await;
    assert_eq!(status, 503);
    stopping.await.unwrap().expect("the server shuts down");
}
