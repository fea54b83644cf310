//! Hostile clients against a real server on an ephemeral port: every abuse is answered with its
//! documented code (`docs/PROTOCOL.md` sections 4 and 5, `docs/API.md`), while a well-behaved
//! client on the same server receives every message published meanwhile, in order, and the
//! server's queues and history stay within their configured bounds.
//!
//! Each test runs its attacks during one [`round`]: a witness joins room `calm` and reads in the
//! background while the backend publishes a numbered sequence there.

mod support;

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::*;
use switchboard_server::auth::{Claims, TokenKeys};
use switchboard_testing::{guard, Received};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Messages the witness must receive during each round.
const SEQUENCE: usize = 30;
/// The development preset's bounds the gauges are checked against.
const QUEUE_BYTES: u64 = 1024 * 1024;
const HISTORY_BYTES: u64 = 1024 * 1024;

/// Run `attack` while the backend publishes `m0..m29` to room `calm`; a witness in the room
/// receives all of them in order, and the gauges stay bounded.
async fn round<F: Future<Output = ()>>(server: &TestServer, attack: F) {
    let mut witness = server.connect("witness").await;
    witness.join("calm").await;
    let reader = tokio::spawn(async move {
        let mut events = Vec::new();
        while events.len() < SEQUENCE {
            let frame = witness.next_of("message").await;
            events.push(frame["event"].as_str().unwrap_or_default().to_owned());
        }
        events
    });
    let publish = async {
        for i in 0..SEQUENCE {
            server
                .publish(json!({"room": "calm"}), &format!("m{i}"), json!(i))
                .await;
            tokio::task::yield_now().await;
        }
    };
    tokio::join!(publish, attack);
    let events = tokio::time::timeout(PATIENCE, reader)
        .await
        .expect("the witness receives the whole sequence")
        .expect("the witness's reader");
    let expected: Vec<String> = (0..SEQUENCE).map(|i| format!("m{i}")).collect();
    assert_eq!(events, expected, "the witness's messages, in order");
    assert_bounded(&server.api("GET", "/api/stats", None).await.1);
}

/// Queued bytes stay within one queue per connection, history within one per stream.
fn assert_bounded(stats: &Value) {
    let n = |k: &str| {
        stats[k]
            .as_u64()
            .unwrap_or_else(|| panic!("no {k}: {stats}"))
    };
    assert!(
        n("queued_bytes") <= n("connections") * QUEUE_BYTES,
        "{stats}"
    );
    assert!(
        n("history_bytes") <= n("streams") * HISTORY_BYTES,
        "{stats}"
    );
}

/// Base64url without padding, as JSON Web Tokens use it.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
        }
    }
    out
}

/// Malformed JSON is a `malformed_json` error and JSON nested past the parser's depth an
/// `invalid_frame` error (the connection stays open); invalid UTF-8 closes with 1007, binary frames with 1003, frames over
/// `max_frame_bytes` with 1009, whether the WebSocket layer still reads them (under twice the
/// limit) or cuts them off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_get_their_documented_answers() {
    let server = TestServer::start().await;
    round(&server, async {
        let mut c = server.connect("mallory-1").await;
        c.send("{not json").await;
        let error = c.next_of("error").await;
        assert_eq!(error["code"], "malformed_json");
        assert!(error.get("ref").is_none(), "{error}");

        // Nested past serde_json's depth where the frame is read into values: `invalid_frame`;
        // in `ref`, which is not read into values but is longer than the 256 bytes a reply
        // echoes: `invalid_frame` too, without the `ref`.
        let deep = "[".repeat(5000) + &"]".repeat(5000);
        let frame = format!(r#"{{"type":"join","room":"x","since":{deep}}}"#);
        c.send(&frame).await;
        assert_eq!(c.next_of("error").await["code"], "invalid_frame");
        c.send(&format!(r#"{{"type":"ping","ref":{deep}}}"#)).await;
        let refused = c.next_of("error").await;
        assert_eq!(refused["code"], "invalid_frame");
        assert!(refused.get("ref").is_none(), "{refused}");
        let nested = format!(
            r#"{{"type":"ping","ref":{}1{}}}"#,
            "[".repeat(50),
            "]".repeat(50)
        );
        c.send(&nested).await;
        let pong = c.next_of("pong").await;
        assert_eq!(
            pong["ref"].to_string(),
            format!("{}1{}", "[".repeat(50), "]".repeat(50))
        );

        c.send_raw_text(b"{\"type\":\"ping\",\"ref\":\"\xff\xfe\"}")
            .await;
        assert_eq!(c.close_code().await, Some(1007), "invalid UTF-8");

        let mut c = server.connect("mallory-2").await;
        c.send_binary(&[1, 2, 3]).await;
        assert_eq!(c.close_code().await, Some(1003), "binary frame");

        let mut c = server.connect("mallory-3").await;
        let over = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(70 * 1024));
        c.send(&over).await;
        assert_eq!(c.close_code().await, Some(1009), "a frame over the limit");

        let mut c = server.connect("mallory-4").await;
        let huge = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(300 * 1024));
        c.send(&huge).await;
        assert_eq!(
            c.close_code().await,
            Some(1009),
            "a frame past twice the limit"
        );
    })
    .await;
}

/// A flood past the rate limit is answered with `rate_limited` errors, then closed with 4029.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_past_the_rate_limit_is_closed_with_4029() {
    let server = TestServer::start().await;
    round(&server, async {
        let mut c = server.connect("flooder").await;
        for _ in 0..400 {
            c.send(r#"{"type":"ping"}"#).await;
        }
        let mut limited = 0;
        let code = loop {
            match c.read().await {
                Received::Frame(frame) => {
                    if frame["code"] == "rate_limited" {
                        assert!(frame.get("ref").is_none(), "{frame}");
                        limited += 1;
                    }
                }
                Received::Closed(code) => break code,
            }
        };
        assert_eq!(code, Some(4029), "after {limited} rate_limited errors");
        assert_eq!(limited, 10, "one error per strike before the close");
    })
    .await;
    let (_, stats) = server.api("GET", "/api/stats", None).await;
    assert_eq!(stats["counters"]["closes"]["rate_limited"], 1, "{stats}");
}

/// The server's count of closes for `reason`.
async fn closes_for(server: &TestServer, reason: &str) -> u64 {
    let (_, stats) = server.api("GET", "/api/stats", None).await;
    stats["counters"]["closes"][reason].as_u64().unwrap_or(0)
}

/// A client that never reads and is sent nothing answers no ping: once silent past the
/// heartbeat timeout it is closed with 4000 (the close frame fits its idle socket).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_closed_with_4000_past_the_heartbeat_timeout() {
    let server = TestServer::with("[heartbeat]\ninterval_secs = 1\ntimeout_secs = 2").await;
    let mut sloth = server.connect("sloth").await;
    guard("the heartbeat close", async {
        while closes_for(&server, "heartbeat_timeout").await == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(sloth.close_code().await, Some(4000));
    assert_eq!(closes_for(&server, "slow_consumer").await, 0);
}

/// A client that never reads what it is sent (small socket buffers, a heartbeat too slow to
/// fire first) is closed as a slow consumer (4008) once its queue overflows, and what was
/// queued for it stays within the queue bound meanwhile; the witness receives everything. The
/// server writes the close frame after what the socket already holds, waiting for the peer to
/// take it: the client, reading at once when the server counts the close, reads what was
/// buffered for it, then the close frame with 4008.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_closed_with_4008_and_its_queue_stays_bounded() {
    let server = TestServer::with("[heartbeat]\ninterval_secs = 600\ntimeout_secs = 1800").await;
    let query = format!("token={}", server.token("sloth", None));
    let mut sloth = WsClient::open(server.addr(), &query, true).await.unwrap();
    assert_eq!(sloth.json().await["type"], "welcome");
    sloth.join("calm").await;
    let mut code = None;
    round(&server, async {
        let big = "x".repeat(512 * 1024);
        let mut sent = 0;
        while closes_for(&server, "slow_consumer").await == 0 {
            assert!(sent < 64, "32 MiB sent and the reader not closed");
            server
                .publish(json!({"user": "sloth"}), &format!("big{sent}"), json!(big))
                .await;
            assert_bounded(&server.api("GET", "/api/stats", None).await.1);
            sent += 1;
        }
        code = sloth.close_code().await;
    })
    .await;
    assert_eq!(code, Some(4008), "the slow consumer's close frame");
    assert_eq!(closes_for(&server, "slow_consumer").await, 1);
    assert_eq!(closes_for(&server, "heartbeat_timeout").await, 0);
}

/// Half-open handshakes that never finish tie up nothing the other clients need: while they
/// hang, a client connects and the witness receives everything. A user past its connection
/// limit (3) is refused with 4003 before any frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_handshakes_and_excess_connections_do_not_disturb_others() {
    let server = TestServer::start().await;
    let token = server.token("halfway", None);
    let mut hanging = Vec::new();
    for _ in 0..20 {
        let mut tcp = TcpStream::connect(server.addr()).await.unwrap();
        let partial =
            format!("GET /ws?token={token} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n");
        tcp.write_all(partial.as_bytes()).await.unwrap();
        hanging.push(tcp);
    }
    round(&server, async {
        let mut crowd = Vec::new();
        for _ in 0..3 {
            crowd.push(server.connect("crowd").await);
        }
        let query = format!("token={}", server.token("crowd", None));
        let mut fourth = WsClient::connect(server.addr(), &query).await;
        assert_eq!(
            fourth.close_code().await,
            Some(4003),
            "past the per-user limit"
        );
        let mut late = server.connect("latecomer").await;
        late.send(json!({"type": "ping", "ref": 1})).await;
        assert_eq!(late.next_of("pong").await["ref"], 1);
    })
    .await;
    let (_, stats) = server.api("GET", "/api/stats", None).await;
    assert!(stats["counters"]["refused"].as_u64() >= Some(1), "{stats}");
    drop(hanging);
}

/// A token signed with the wrong secret, expired, unsigned (`alg: none`), garbage, without a
/// user, or missing is refused with 401 before any WebSocket exists; a join outside the token's
/// rooms is an `error` with code `forbidden`, and the connection stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_get_401_and_forbidden_rooms_an_error() {
    let server = TestServer::start().await;
    round(&server, async {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = |sub: &str, exp: u64| Claims {
            sub: sub.into(),
            exp,
            iat: Some(now - 600),
            ..Claims::default()
        };
        let sign = |claims: &Claims, secret: &str| {
            jsonwebtoken::encode(
                &Header::default(),
                claims,
                &EncodingKey::from_secret(secret.as_bytes()),
            )
            .unwrap()
        };
        let expired = sign(&claims("mallory", now - 60), SECRET);
        let forged = sign(
            &claims("mallory", now + 600),
            "another-secret-of-some-length",
        );
        let nobody = sign(&claims("", now + 600), SECRET);
        let unsigned = format!(
            "{}.{}.",
            base64url(br#"{"alg":"none","typ":"JWT"}"#),
            base64url(format!(r#"{{"sub":"mallory","exp":{},"iat":{now}}}"#, now + 600).as_bytes())
        );
        for token in [&expired, &forged, &nobody, &unsigned, "garbage", "a.b.c"] {
            assert_eq!(
                server.refused(&format!("?token={token}"), None).await,
                401,
                "{token}"
            );
            assert_eq!(server.refused("", Some(token)).await, 401, "{token}");
        }
        assert_eq!(server.refused("", None).await, 401, "no token");

        let limited = TokenKeys::new(SECRET).mint(
            "guest",
            Some(vec!["lobby".into()]),
            Duration::from_secs(600),
        );
        let mut guest = WsClient::connect(server.addr(), &format!("token={limited}")).await;
        assert_eq!(guest.json().await["type"], "welcome");
        guest
            .send(json!({"type": "join", "room": "admin", "ref": 1}))
            .await;
        let error = guest.next_of("error").await;
        assert_eq!(
            (error["code"].as_str(), error["ref"].as_i64()),
            (Some("forbidden"), Some(1))
        );
        guest.join("lobby").await;
    })
    .await;
}

/// The backend API refuses a wrong or missing key with 401, bodies it cannot read (not JSON,
/// invalid UTF-8, nested past the parser's depth, the wrong shape, impossible targets) with
/// 400, and a body over `max_body_bytes` with 413; none of it disturbs the clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_wrong_keys_and_malformed_bodies() {
    let server = TestServer::start().await;
    round(&server, async {
        let body = json!({"to": {"room": "calm"}, "event": "intruder"});
        let (status, _) = server
            .api_as("wrong-key", "POST", "/api/publish", Some(body.clone()))
            .await;
        assert_eq!(status, 401);
        let (status, _) = server.api_as("", "GET", "/api/stats", None).await;
        assert_eq!(status, 401);

        let raw = |bytes: Vec<u8>| {
            server
                .http
                .post(format!("{}/api/publish", server.base))
                .bearer_auth(API_KEY)
                .header("content-type", "application/json")
                .body(bytes)
                .send()
        };
        let deep = format!(
            r#"{{"to":{{"room":"calm"}},"event":"e","data":{}{}}}"#,
            "[".repeat(5000),
            "]".repeat(5000)
        );
        let bad: Vec<Vec<u8>> = vec![
            b"{".to_vec(),
            b"".to_vec(),
            b"{\"to\":{\"room\":\"calm\"},\"event\":\"\xff\"}".to_vec(),
            deep.into_bytes(),
            br#"{"to":5,"event":"e"}"#.to_vec(),
            br#"{"to":{"room":"calm"}}"#.to_vec(),
            br#"{"to":[],"event":"e"}"#.to_vec(),
            br#"{"to":{"connection":"not-an-id"},"event":"e"}"#.to_vec(),
            br#"{"to":{"room":""},"event":"e"}"#.to_vec(),
            br#"{"to":{"room":"calm"},"event":"e","surprise":1}"#.to_vec(),
        ];
        for bytes in bad {
            let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(60)]).into_owned();
            let response = raw(bytes).await.unwrap();
            assert_eq!(response.status().as_u16(), 400, "{shown}");
        }
        let oversized = format!(
            r#"{{"to":{{"room":"calm"}},"event":"e","data":"{}"}}"#,
            "x".repeat(2 * 1024 * 1024)
        );
        let response = raw(oversized.into_bytes()).await.unwrap();
        assert_eq!(response.status().as_u16(), 413);
    })
    .await;
}
