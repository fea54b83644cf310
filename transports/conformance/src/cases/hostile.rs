//! Bad input and limits: malformed and unknown frames, strikes, binary and non-UTF-8
//! frames, control-frame floods, oversized frames, the per-user limit and silent clients.

use super::*;

/// A frame that is not JSON gets `error` `malformed_json`, without `ref`, and the
/// connection stays open.
pub async fn malformed_json_gets_an_error_frame<T: Transport>() {
    let t = T::start(config()).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice")).await;
    alice.send("{not json").await;
    let error = frame(&mut alice).await;
    assert_eq!(
        (&error["type"], &error["code"]),
        (&json!("error"), &json!("malformed_json"))
    );
    assert_eq!(error.get("ref"), None);
    quiet(&mut alice, "alice").await;
    drop(alice);
    t.shutdown().await;
}

/// A frame of an unknown `type` gets `error` `unknown_type` with its `ref`.
pub async fn an_unknown_type_gets_an_error_frame<T: Transport>() {
    let t = T::start(config()).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice")).await;
    let error = request(&mut alice, json!({"type": "dance", "ref": 5})).await;
    assert_eq!(
        (&error["type"], &error["code"], &error["ref"]),
        (&json!("error"), &json!("unknown_type"), &json!(5))
    );
    quiet(&mut alice, "alice").await;
    drop(alice);
    t.shutdown().await;
}

/// A known `type` with a missing field gets `error` `invalid_frame` with its `ref`.
pub async fn an_invalid_frame_gets_an_error_frame<T: Transport>() {
    let t = T::start(config()).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice")).await;
    let error = request(&mut alice, json!({"type": "join", "ref": 6})).await;
    assert_eq!(
        (&error["type"], &error["code"], &error["ref"]),
        (&json!("error"), &json!("invalid_frame"), &json!(6))
    );
    quiet(&mut alice, "alice").await;
    drop(alice);
    t.shutdown().await;
}

/// Ten bad frames are answered with `error` frames; the eleventh, with no strike left,
/// closes the connection with 1008.
pub async fn garbage_exhausts_the_strikes_and_closes_with_1008<T: Transport>() {
    let t = T::start(config()).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice")).await;
    for strike in 1..=10 {
        alice.send("garbage").await;
        let error = frame(&mut alice).await;
        assert_eq!(error["code"], "malformed_json", "strike {strike}");
    }
    alice.send("garbage").await;
    assert_eq!(close_code(&mut alice).await, Some(1008));
    t.shutdown().await;
}

/// A binary frame closes the connection with 1003.
pub async fn a_binary_frame_closes_with_1003<T: Transport>() {
    let t = T::start(config()).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice")).await;
    alice.send_binary(&[1, 2, 3]).await;
    assert_eq!(close_code(&mut alice).await, Some(1003));
    t.shutdown().await;
}

/// More control frames than the rate limit's burst and the strikes together (100 + 10 with
/// the defaults), three times over: sent faster than the rate refills them, whatever the
/// machine.
const CONTROL_FLOOD: usize = 3 * (100 + 10);

/// A client that floods WebSocket pings is limited like one that floods text frames: past the
/// burst each ping takes a strike (with no `error` frame), and the ping that finds no strike
/// left closes the connection with 4029. The pongs the WebSocket layer answers with are all it
/// reads before the close.
pub async fn a_ping_flood_closes_with_4029<T: Transport>() {
    let t = T::start(config()).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice")).await;
    for _ in 0..CONTROL_FLOOD {
        alice.send_ping(b"flood").await;
    }
    assert_eq!(alice.recv().await, Received::Closed(Some(4029)));
    t.shutdown().await;
}

/// Pongs that answer none of the server's pings count against the rate limit as pings do: a
/// flood of them closes the connection with 4029, with no `error` frame before it.
pub async fn an_unsolicited_pong_flood_closes_with_4029<T: Transport>() {
    let t = T::start(config()).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice")).await;
    for _ in 0..CONTROL_FLOOD {
        alice.send_unsolicited_pong(b"flood").await;
    }
    assert_eq!(alice.recv().await, Received::Closed(Some(4029)));
    t.shutdown().await;
}

/// A text frame that is not UTF-8 closes the connection with 1007.
pub async fn invalid_utf8_closes_with_1007<T: Transport>() {
    let t = T::start(config()).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice")).await;
    alice
        .send_raw_text(b"{\"type\":\"ping\",\"x\":\"\xff\xfe\"}")
        .await;
    assert_eq!(close_code(&mut alice).await, Some(1007));
    t.shutdown().await;
}

/// A frame larger than `max_frame_bytes` closes the connection with 1009, whether it is a
/// little or much larger.
pub async fn an_oversized_frame_closes_with_1009<T: Transport>() {
    let mut config = config();
    config.limits.max_frame_bytes = 1024;
    let t = T::start(config).await;
    for (name, size) in [("alice", 1500), ("bob", 3000)] {
        let (mut client, _) = welcomed(&t, Connect::user(name)).await;
        let frame = json!({"type": "ping", "pad": "x".repeat(size)});
        client.send(&frame.to_string()).await;
        assert_eq!(close_code(&mut client).await, Some(1009), "{size} bytes");
    }
    t.shutdown().await;
}

/// A user's connection past `max_connections_per_user` (3) is refused with 4003 before any
/// frame; the user's open connections are untouched.
pub async fn the_per_user_limit_refuses_with_4003<T: Transport>() {
    let t = T::start(config()).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(welcomed(&t, Connect::user("alice")).await.0);
    }
    let mut fourth = t.connect(Connect::user("alice")).await;
    assert_eq!(fourth.recv().await, Received::Closed(Some(4003)));
    for client in &mut open {
        quiet(client, "an open connection of alice").await;
    }
    drop(open);
    t.shutdown().await;
}

/// A client that answers no ping and sends nothing is closed with 4000 once the heartbeat
/// timeout and grace have passed; a client that answers stays open.
pub async fn a_silent_client_is_closed_with_4000<T: Transport>() {
    let mut config = config();
    // The healthy client has 2.5 s to answer a ping: a loaded machine does not make it silent.
    config.heartbeat.interval = Duration::from_millis(200);
    config.heartbeat.timeout = Duration::from_millis(1500);
    config.heartbeat.grace = Duration::from_millis(1000);
    let t = T::start(config).await;
    let (mut silent, _) = welcomed(&t, Connect::user("silent")).await;
    silent.silence();
    let (mut healthy, _) = welcomed(&t, Connect::user("healthy")).await;
    let wait = Duration::from_millis(3500);
    futures_util::join!(t.advance(wait), healthy.idle(wait));
    assert_eq!(close_code(&mut silent).await, Some(4000));
    quiet(&mut healthy, "the healthy client").await;
    drop(healthy);
    t.shutdown().await;
}
