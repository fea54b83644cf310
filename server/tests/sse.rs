//! `GET /sse` and `POST /sse/{conn}` over real HTTP: the event stream carries the frames a
//! WebSocket connection receives, the user stream resumes from `Last-Event-ID`, posted frames
//! are bound to their connection's user, and every hostile request is refused cleanly.

mod support;

use serde_json::json;
use std::time::Duration;
use support::TestServer;
use switchboard_testing::{guard, post, Received, SseClient};

/// A stream of `user` on `server`, authenticated with a token in the query.
async fn stream(server: &TestServer, user: &str, headers: &[(&str, &str)]) -> SseClient {
    let auth = format!("token={}", server.token(user, None));
    SseClient::welcomed(server.addr(), &auth, headers).await
}

/// The server's count of closes for `reason`.
async fn closes_for(server: &TestServer, reason: &str) -> u64 {
    let (_, stats) = server.api("GET", "/api/stats", None).await;
    stats["counters"]["closes"][reason].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_is_an_uncached_unbuffered_event_stream_opening_with_welcome() {
    let server = TestServer::start().await;
    let response = server
        .http
        .get(format!(
            "{}/sse?token={}",
            server.base,
            server.token("alice", None)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "text/event-stream");
    assert_eq!(header("cache-control"), "no-cache");
    assert_eq!(header("x-accel-buffering"), "no");
    let mut response = response;
    let first = guard("the first chunk", response.chunk())
        .await
        .unwrap()
        .unwrap();
    let first = String::from_utf8(first.to_vec()).unwrap();
    assert!(first.starts_with("data: {\"type\":\"welcome\""), "{first}");
    assert!(first.ends_with("\n\n"), "{first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posted_frames_are_answered_on_the_stream_with_their_ref() {
    let server = TestServer::start().await;
    let mut alice = stream(&server, "alice", &[]).await;
    alice
        .send(json!({"type": "join", "room": "lobby", "ref": 1}))
        .await;
    let joined = alice.json().await;
    assert_eq!(
        (&joined["type"], &joined["ref"]),
        (&json!("joined"), &json!(1))
    );
    alice.send(json!({"type": "ping", "ref": "p"})).await;
    assert_eq!(alice.json().await, json!({"type": "pong", "ref": "p"}));
    // A room message reaches the SSE member as it reaches a WebSocket member.
    let mut bob = server.connect("bob").await;
    bob.join("lobby").await;
    server
        .publish(json!({"room": "lobby"}), "hello", json!(1))
        .await;
    let message = alice.json().await;
    assert_eq!(
        (&message["event"], &message["room"]),
        (&json!("hello"), &json!("lobby"))
    );
    assert_eq!(bob.event().await, "hello");
    // A client's publish from the SSE connection reaches the WebSocket member.
    let publish = json!({"type": "publish", "room": "lobby", "event": "chat", "data": "hi"});
    alice.send(publish).await;
    let chat = bob.json().await;
    assert_eq!(
        (&chat["event"], &chat["from"]),
        (&json!("chat"), &json!("alice"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newline_delimited_frames_in_one_post_arrive_in_order() {
    let server = TestServer::start().await;
    let mut alice = stream(&server, "alice", &[]).await;
    let body: String = (0..5)
        .map(|i| format!("{}\n", json!({"type": "ping", "ref": i})))
        .collect();
    let answer = alice.post(body).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (202, r#"{"accepted":5}"#)
    );
    for i in 0..5 {
        assert_eq!(alice.json().await, json!({"type": "pong", "ref": i}));
    }
}

/// Each user-stream frame carries its position as the id; a client that reconnects with the
/// last id as `Last-Event-ID` receives exactly what it missed, once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_with_last_event_id_resumes_the_user_stream_exactly() {
    let server = TestServer::start().await;
    let mut alice = stream(&server, "alice", &[]).await;
    for i in 0..3 {
        server
            .publish(json!({"user": "alice"}), &format!("m{i}"), json!(i))
            .await;
    }
    let mut seqs = Vec::new();
    for i in 0..3 {
        let event = alice.next_event().await.expect("an event");
        let frame: serde_json::Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(frame["event"], format!("m{i}"));
        let position = format!("{}:{}", frame["epoch"], frame["seq"]);
        assert_eq!(event.id.as_deref(), Some(position.as_str()));
        seqs.push(frame["seq"].as_u64().unwrap());
    }
    let last_id = alice.last_event_id().expect("an id").to_owned();
    alice.drop_stream();
    guard("the connection to close", async {
        while server.api("GET", "/api/stats", None).await.1["connections"] != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    for i in 3..6 {
        server
            .publish(json!({"user": "alice"}), &format!("m{i}"), json!(i))
            .await;
    }
    let mut again = stream(&server, "alice", &[("last-event-id", &last_id)]).await;
    for i in 3..6 {
        let frame = again.json().await;
        assert_eq!(frame["event"], format!("m{i}"), "{frame}");
        assert_eq!(frame["seq"].as_u64().unwrap(), seqs[2] + (i - 2) as u64);
    }
    again.send(json!({"type": "ping", "ref": "fence"})).await;
    assert_eq!(
        again.json().await["type"],
        "pong",
        "nothing repeated or extra"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_event_id_wins_over_the_resume_parameter_and_a_malformed_one_is_refused() {
    let server = TestServer::start().await;
    let token = server.token("alice", None);
    let refused = SseClient::open(
        server.addr(),
        &format!("token={token}"),
        &[("last-event-id", "x")],
        false,
    )
    .await
    .err()
    .expect("refused");
    assert_eq!(refused.status, 400, "{refused:?}");
    let mut alice = stream(&server, "alice", &[]).await;
    server
        .publish(json!({"user": "alice"}), "a", json!(0))
        .await;
    server
        .publish(json!({"user": "alice"}), "b", json!(1))
        .await;
    let a = alice.json().await;
    assert_eq!(alice.json().await["event"], "b");
    drop(alice);
    // resume= asks for everything, Last-Event-ID for what follows `a`: only `b` comes.
    let auth = format!("token={token}&resume={}:0", a["epoch"]);
    let last = format!("{}:{}", a["epoch"], a["seq"]);
    let mut again = SseClient::welcomed(server.addr(), &auth, &[("last-event-id", &last)]).await;
    let frame = again.json().await;
    assert_eq!(frame["event"], "b", "{frame}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_bad_token_is_refused_with_401_and_no_stream() {
    let server = TestServer::start().await;
    for auth in ["", "token=not-a-jwt"] {
        let refused = SseClient::open(server.addr(), auth, &[], false).await.err();
        let refused = refused.expect("refused");
        assert_eq!(refused.status, 401, "{refused:?}");
    }
    let alice = stream(&server, "alice", &[]).await;
    let answer = post(server.addr(), &alice.conn(), "token=not-a-jwt", "{}".into()).await;
    assert_eq!(answer.status, 401, "{answer:?}");
    let answer = post(server.addr(), &alice.conn(), "", "{}".into()).await;
    assert_eq!(answer.status, 401, "{answer:?}");
}

/// Another user's token cannot post to a connection, and learns nothing from trying: the
/// answer is the one for a connection that does not exist, and nothing reaches the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_token_cannot_post_to_a_connection_and_learns_nothing() {
    let server = TestServer::start().await;
    let mut alice = stream(&server, "alice", &[]).await;
    let mallory = format!("token={}", server.token("mallory", None));
    let ping = r#"{"type":"ping","ref":"stolen"}"#;
    let theirs = post(server.addr(), &alice.conn(), &mallory, ping.into()).await;
    let unknown = post(server.addr(), "1.4000.9", &mallory, ping.into()).await;
    let garbage = post(server.addr(), "not-a-conn", &mallory, ping.into()).await;
    assert_eq!(theirs.status, 404, "{theirs:?}");
    assert_eq!(theirs, unknown);
    assert_eq!(theirs, garbage);
    alice.send(json!({"type": "ping", "ref": "mine"})).await;
    assert_eq!(
        alice.json().await["ref"],
        "mine",
        "the stolen ping never arrived"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_post_is_refused_with_413_and_closes_with_1009() {
    let server = TestServer::start().await;
    let mut alice = stream(&server, "alice", &[]).await;
    let huge = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(300 * 1024));
    let answer = alice.post(huge).await;
    assert_eq!(answer.status, 413, "{answer:?}");
    assert!(answer.body.contains("too_large"), "{answer:?}");
    assert_eq!(alice.close_code().await, Some(1009));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_of_too_many_frames_is_refused_whole_and_the_connection_stays() {
    let server = TestServer::start().await;
    let mut alice = stream(&server, "alice", &[]).await;
    let body = format!("{}\n", r#"{"type":"ping"}"#).repeat(65);
    let answer = alice.post(body).await;
    assert_eq!(answer.status, 413, "{answer:?}");
    assert!(answer.body.contains("too_many_frames"), "{answer:?}");
    alice.send(json!({"type": "ping", "ref": 1})).await;
    assert_eq!(
        alice.json().await,
        json!({"type": "pong", "ref": 1}),
        "nothing delivered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_that_is_not_utf8_closes_with_1007() {
    let server = TestServer::start().await;
    let mut alice = stream(&server, "alice", &[]).await;
    let answer = alice
        .post(&b"{\"type\":\"ping\",\"x\":\"\xff\xfe\"}"[..])
        .await;
    assert_eq!(answer.status, 202, "delivered to the hub, which refuses it");
    assert_eq!(alice.close_code().await, Some(1007));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_answered_with_an_error_and_garbage_closes_with_1008() {
    let server = TestServer::start().await;
    let mut alice = stream(&server, "alice", &[]).await;
    alice.send("{not json").await;
    let error = alice.json().await;
    assert_eq!(error["type"], "error", "{error}");
    let code = guard("the strikes to run out", async {
        loop {
            let answer = alice.post("{not json").await;
            if answer.status != 202 {
                return alice.close_code().await;
            }
            if let Received::Closed(code) = alice.read().await {
                return code;
            }
        }
    })
    .await;
    assert_eq!(code, Some(1008));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_posted_frames_is_closed_with_4029() {
    let server = TestServer::start().await;
    let mut alice = stream(&server, "alice", &[]).await;
    let body = format!("{}\n", r#"{"type":"ping"}"#).repeat(64);
    for _ in 0..7 {
        if alice.post(body.clone()).await.status != 202 {
            break;
        }
    }
    assert_eq!(alice.close_code().await, Some(4029));
    assert_eq!(closes_for(&server, "rate_limited").await, 1);
}

/// An idle stream receives keep-alive comment lines and is not taken for dead: the pings it
/// cannot answer are answered as the HTTP layer takes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_stream_gets_keep_alives_and_outlives_the_heartbeat_timeout() {
    let server = TestServer::with("[heartbeat]\ninterval_secs = 1\ntimeout_secs = 2").await;
    let mut alice = stream(&server, "alice", &[]).await;
    alice.idle(Duration::from_secs(5)).await;
    assert!(alice.comments() >= 3, "{} keep-alives", alice.comments());
    assert_eq!(closes_for(&server, "heartbeat_timeout").await, 0);
    alice.send(json!({"type": "ping", "ref": 1})).await;
    assert_eq!(alice.json().await["type"], "pong");
}

/// An open stream is a request in progress, however long it lasts: the connection front does
/// not take it for an idle connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_outlives_the_idle_and_request_timeouts() {
    let file = "[http]\nidle_timeout_secs = 1\nrequest_timeout_secs = 1\n\n[heartbeat]\ninterval_secs = 1\ntimeout_secs = 2";
    let server = TestServer::with(file).await;
    let mut alice = stream(&server, "alice", &[]).await;
    alice.idle(Duration::from_secs(4)).await;
    server
        .publish(json!({"user": "alice"}), "still", json!(0))
        .await;
    assert_eq!(alice.json().await["event"], "still");
}

/// A stream that is not read is closed as a slow consumer (4008), and, as its client does not
/// read again within the close timeout, its `close` event never fits: the server gives up on
/// it and the stream just ends after what the socket held (docs/PROTOCOL.md, section 10).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_nobody_reads_is_closed_as_a_slow_consumer_and_just_ends() {
    let server = TestServer::with("[heartbeat]\ninterval_secs = 600\ntimeout_secs = 1800").await;
    let auth = format!("token={}", server.token("sloth", None));
    let mut sloth = SseClient::open(server.addr(), &auth, &[], true)
        .await
        .unwrap();
    let welcome = sloth.json().await;
    assert_eq!(welcome["type"], "welcome");
    let conn = welcome["conn"]
        .as_str()
        .expect("a connection id")
        .to_owned();
    let big = "x".repeat(512 * 1024);
    let mut sent = 0;
    guard("the slow-consumer close", async {
        while closes_for(&server, "slow_consumer").await == 0 {
            assert!(sent < 64, "32 MiB sent and the reader not closed");
            let event = format!("big{sent}");
            server
                .publish(json!({"user": "sloth"}), &event, json!(big))
                .await;
            sent += 1;
        }
    })
    .await;
    // The fence: the connection's task has ended (its posts are no longer routed) once the
    // writer, stuck behind what the client left unread, ran out of its close timeout.
    guard("the connection's end", async {
        let ping = || post(server.addr(), &conn, &auth, r#"{"type":"ping"}"#.into());
        while ping().await.status == 202 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(sloth.close_code().await, None);
    assert_eq!(closes_for(&server, "slow_consumer").await, 1);
    assert_eq!(closes_for(&server, "heartbeat_timeout").await, 0);
}

/// A burst past a stream's queue closes it as a slow consumer in the one turn the hub takes
/// the batch, whatever the reader does meanwhile; the frames handed to the socket before it
/// fit, and so does the terminal event `close` with 4008, which the client reads after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_past_a_streams_queue_ends_it_with_the_close_event_4008() {
    let server = TestServer::with("[backpressure]\ninflight_bytes = 1\nqueue_messages = 4").await;
    let mut alice = stream(&server, "alice", &[]).await;
    let messages: Vec<_> = (0..16)
        .map(|i| json!({"to": {"user": "alice"}, "event": format!("m{i}"), "data": i}))
        .collect();
    let (status, answer) = server
        .api(
            "POST",
            "/api/publish/batch",
            Some(json!({ "messages": messages })),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(closes_for(&server, "slow_consumer").await, 1);
    let mut events = Vec::new();
    let code = loop {
        match alice.read().await {
            Received::Closed(code) => break code,
            Received::Frame(frame) => events.push(frame["event"].clone()),
        }
    };
    assert_eq!(code, Some(4008));
    // What reached the client came in order, from the first message, and not all of them.
    let expected: Vec<_> = (0..events.len()).map(|i| json!(format!("m{i}"))).collect();
    assert_eq!(events, expected);
    assert!(events.len() < 16, "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_to_a_stream_that_ended_is_not_found() {
    let server = TestServer::start().await;
    let mut alice = stream(&server, "alice", &[]).await;
    let conn = alice.conn();
    alice.drop_stream();
    let auth = format!("token={}", server.token("alice", None));
    let answer = guard("the connection to be forgotten", async {
        loop {
            let answer = post(server.addr(), &conn, &auth, r#"{"type":"ping"}"#.into()).await;
            if answer.status != 202 {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(answer.status, 404, "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_the_stream_with_the_close_event_1001() {
    let mut server = TestServer::start().await;
    let mut alice = stream(&server, "alice", &[]).await;
    server
        .publish(json!({"user": "alice"}), "last", json!(0))
        .await;
    server.shutdown().await;
    assert_eq!(alice.json().await["event"], "last");
    assert_eq!(alice.close_code().await, Some(1001));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_user_limit_refuses_a_stream_with_the_close_event_4003() {
    let server = TestServer::with("[limits]\nmax_connections_per_user = 1").await;
    let _first = stream(&server, "alice", &[]).await;
    let auth = format!("token={}", server.token("alice", None));
    let mut second = SseClient::open(server.addr(), &auth, &[], false)
        .await
        .unwrap();
    assert_eq!(second.read().await, Received::Closed(Some(4003)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_connections_by_transport() {
    let server = TestServer::start().await;
    let _ws = server.connect("bob").await;
    let _sse = stream(&server, "alice", &[]).await;
    let (_, text) = server.get_text("/metrics").await;
    let sample = |transport: &str| {
        let prefix = format!("switchboard_connections_by_transport{{transport=\"{transport}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map(|v| v.parse::<f64>().unwrap())
    };
    assert_eq!(sample("sse"), Some(1.0), "{text}");
    assert_eq!(sample("websocket"), Some(1.0), "{text}");
}

/// A page of an allowed origin may read the stream and post to it across origins: the answers
/// carry the CORS headers its browser requires (the origin echoed, never `*`), and the
/// preflight of a post with a token header is allowed. A page of another origin gets no CORS
/// header, and the endpoints themselves refuse it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_allowed_origins_get_cors_answers_and_others_none() {
    let server = TestServer::with("[http]\nallowed_origins = [\"https://app.example\"]").await;
    let allow_origin = |response: &reqwest::Response| {
        (response.headers())
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let token = server.token("alice", None);
    let preflight = |origin: &'static str| {
        server
            .http
            .request(reqwest::Method::OPTIONS, format!("{}/sse/1", server.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let allowed = preflight("https://app.example").await.unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        allow_origin(&allowed).as_deref(),
        Some("https://app.example")
    );
    let header = |name: &str| {
        allowed.headers()[name]
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
    };
    assert!(header("access-control-allow-methods").contains("post"));
    assert!(header("access-control-allow-headers").contains("authorization"));
    assert!(header("vary").contains("origin"));
    let foreign = preflight("https://evil.example").await.unwrap();
    assert_eq!(allow_origin(&foreign), None);

    // The stream itself, read by a page of the allowed origin.
    let mut alice = stream(&server, "alice", &[("origin", "https://app.example")]).await;
    let response = server
        .http
        .get(format!("{}/sse?token={token}", server.base))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        allow_origin(&response).as_deref(),
        Some("https://app.example")
    );
    drop(response);
    // A post from the page is delivered, and its answer readable by the page.
    let conn = alice.conn();
    let post = |origin: &'static str| {
        server
            .http
            .post(format!("{}/sse/{conn}", server.base))
            .header("origin", origin)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(json!({"type": "ping", "ref": "cors"}).to_string())
            .send()
    };
    let posted = post("https://app.example").await.unwrap();
    assert_eq!(posted.status(), 202);
    assert_eq!(
        allow_origin(&posted).as_deref(),
        Some("https://app.example")
    );
    assert_eq!(alice.json().await, json!({"type": "pong", "ref": "cors"}));

    // Another origin: refused by the endpoints, with nothing its page could read.
    let refused = post("https://evil.example").await.unwrap();
    assert_eq!(
        (refused.status().as_u16(), allow_origin(&refused)),
        (403, None)
    );
    let refused = server
        .http
        .get(format!("{}/sse?token={token}", server.base))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (refused.status().as_u16(), allow_origin(&refused)),
        (403, None)
    );
}

/// With no origin list (any origin), every page gets its own origin back, never `*`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_origin_list_any_page_gets_its_own_origin_back() {
    let server = TestServer::start().await;
    let response = server
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/sse", server.base))
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let allow_origin = &response.headers()["access-control-allow-origin"];
    assert_eq!(allow_origin, "http://localhost:5173");
}
