//! The standalone server's `batch` handshake parameter, end to end over real sockets: the
//! frames a connection's writer finds ready together go out as JSON arrays when the client asked
//! with `batch=1` (at most 64 frames each), one per message otherwise; any other value is
//! answered 400.

use serde_json::{json, Value};
use std::net::SocketAddr;
use switchboard::{Config, Message, Target};
use switchboard_testing::{authenticate, guard, WsClient};
use switchboard_tokio::{Builder, Handle, BATCH_MESSAGE_BYTES};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite;

async fn start() -> (Handle, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("bound");
    let (handle, _events) = Builder::new(Config::development()).shards(2).start();
    tokio::spawn(handle.clone().serve(listener, authenticate));
    (handle, addr)
}

/// The frames of the messages `client` receives until they hold `count`, and how many of those
/// messages were arrays (each of at least two frames, within the cap).
async fn frames(client: &mut WsClient, count: usize) -> (Vec<Value>, usize) {
    let (mut frames, mut arrays) = (Vec::new(), 0);
    while frames.len() < count {
        let message = client.text().await;
        let parsed: Value = serde_json::from_str(&message).expect("JSON");
        match parsed {
            Value::Array(batch) => {
                assert!(batch.len() >= 2, "{message}");
                assert!(message.len() <= BATCH_MESSAGE_BYTES);
                arrays += 1;
                frames.extend(batch);
            }
            frame => frames.push(frame),
        }
    }
    assert_eq!(frames.len(), count);
    (frames, arrays)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_waiting_at_connect_come_in_arrays_only_for_a_client_that_asked() {
    let (handle, addr) = start().await;
    for user in ["alice", "bob"] {
        for n in 0..100 {
            let message = Message::new(format!("m{n}"), json!({"n": n}));
            let delivery = handle.publish(Target::User(user.into()), message).await;
            assert!(delivery.expect("running").buffered, "{user} is offline");
        }
    }
    let expected: Vec<String> = (0..100).map(|n| format!("m{n}")).collect();
    for (user, query, batched) in [("alice", "&batch=1", true), ("bob", "", false)] {
        let mut client = WsClient::connect(addr, &format!("user={user}{query}")).await;
        let (frames, arrays) = frames(&mut client, 101).await;
        assert_eq!(frames[0]["type"], "welcome");
        let events: Vec<&str> = frames[1..]
            .iter()
            .map(|f| f["event"].as_str().unwrap())
            .collect();
        assert_eq!(events, expected, "{user}");
        assert_eq!(arrays > 0, batched, "{user}: {arrays} arrays");
    }
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_value_other_than_0_or_1_is_refused_with_400() {
    let (handle, addr) = start().await;
    let url = format!("ws://{addr}/ws?user=alice&batch=on");
    match guard("the handshake", tokio_tungstenite::connect_async(url)).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400);
            let body = response.body().as_deref().unwrap_or_default();
            assert_eq!(body, b"batch=\"on\": expected 0 or 1");
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("the handshake was accepted"),
    }
    let stats = handle.stats().await.expect("running");
    assert_eq!(stats.total.counters.opened, 0);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batched_message_holds_at_most_64_frames_however_many_are_queued_together() {
    // 150 messages and the welcome, all queued in the drain that opens the connection, before
    // its writer first wakes: the writer takes them in one batch, and splits its messages at
    // the protocol's 64 frames.
    let (handle, addr) = start().await;
    for n in 0..150 {
        let message = Message::new(format!("m{n}"), json!({"n": n}));
        let delivery = handle.publish(Target::User("carol".into()), message).await;
        assert!(delivery.expect("running").buffered, "carol is offline");
    }
    let mut client = WsClient::connect(addr, "user=carol&batch=1").await;
    let (mut frames, mut sizes) = (Vec::new(), Vec::new());
    while frames.len() < 151 {
        let message = client.text().await;
        match serde_json::from_str(&message).expect("JSON") {
            Value::Array(batch) => {
                sizes.push(batch.len());
                frames.extend(batch);
            }
            frame => {
                sizes.push(1);
                frames.push(frame);
            }
        }
    }
    assert_eq!(sizes, [64, 64, 23]);
    assert_eq!(frames[0]["type"], "welcome");
    let events: Vec<&str> = frames[1..]
        .iter()
        .map(|f| f["event"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..150).map(|n| format!("m{n}")).collect();
    assert_eq!(events, expected);
    handle.shutdown().await;
}
