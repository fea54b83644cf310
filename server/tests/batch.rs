//! Several frames per WebSocket message (`/ws?batch=1`) against the real server over real
//! sockets: frames ready together arrive as JSON arrays holding exactly, in order, the frames a
//! client without the parameter receives one per message; no batched message passes
//! `BATCH_MESSAGE_BYTES` and a larger frame goes alone; a bad value is refused with 400.

mod support;

use serde_json::{json, Value};
use support::*;
use switchboard_tokio::BATCH_MESSAGE_BYTES;

/// The frames in one WebSocket message: the array's elements (an array always holds two or
/// more), or the message itself.
fn frames_of(message: &str) -> Vec<Value> {
    if message.starts_with('[') {
        let frames: Vec<Value> = serde_json::from_str(message).expect("a JSON array");
        assert!(frames.len() >= 2, "an array of one frame: {message}");
        frames
    } else {
        let frame: Value = serde_json::from_str(message).expect("a JSON object");
        assert!(frame.is_object(), "{message}");
        vec![frame]
    }
}

/// The messages `client` receives until they hold `count` frames, as received.
async fn messages(client: &mut WsClient, count: usize) -> Vec<String> {
    let mut messages = Vec::new();
    let mut frames = 0;
    while frames < count {
        let message = client.text().await;
        frames += frames_of(&message).len();
        messages.push(message);
    }
    assert_eq!(
        frames, count,
        "a message held frames past those expected: {messages:?}"
    );
    messages
}

/// Publish a message to `alice` with each of `pads` (the length of its `data.pad`), while she
/// has no connection, after one she saw; then connect as her, resuming from it, with each of
/// `queries` (`&batch=...` or nothing). The hub hands the whole replay to the connection's
/// writer at once: each client's messages, `welcome` and the replay.
async fn replayed(server: &TestServer, pads: &[usize], queries: &[&str]) -> Vec<Vec<String>> {
    let mut alice = server.connect("alice").await;
    server
        .publish(json!({"user": "alice"}), "seen", json!(null))
        .await;
    let seen = alice.next_of("message").await;
    alice.close().await;
    let resume = format!("&resume={}:{}", seen["epoch"], seen["seq"]);
    for (n, pad) in pads.iter().enumerate() {
        let data = json!({"n": n, "pad": "x".repeat(*pad)});
        server
            .publish(json!({"user": "alice"}), &format!("m{n}"), data)
            .await;
    }
    let mut received = Vec::new();
    for query in queries {
        let query = format!("token={}{resume}{query}", server.token("alice", None));
        let mut client = WsClient::connect(server.addr(), &query).await;
        received.push(messages(&mut client, 1 + pads.len()).await);
        assert_eq!(client.fence().await, Vec::<Value>::new());
    }
    received
}

/// Every frame of `messages` but the first (`welcome`, whose `conn` differs per connection),
/// after checking that it is a `welcome`.
fn after_welcome(messages: &[String]) -> Vec<Value> {
    let frames: Vec<Value> = messages.iter().flat_map(|m| frames_of(m)).collect();
    assert_eq!(frames[0]["type"], "welcome", "{}", frames[0]);
    frames[1..].to_vec()
}

#[tokio::test]
async fn frames_ready_together_arrive_as_arrays_holding_exactly_the_frames_of_a_client_without_batching(
) {
    let server = TestServer::start().await;
    let pads = vec![150; 200];
    let [batched, single] = &replayed(&server, &pads, &["&batch=1", ""]).await[..] else {
        unreachable!()
    };
    assert!(
        batched.iter().any(|m| frames_of(m).len() >= 2),
        "no message held several frames: {} messages",
        batched.len()
    );
    assert!(batched.len() < single.len(), "{} messages", batched.len());
    assert!(batched.iter().all(|m| m.len() <= BATCH_MESSAGE_BYTES));
    // Without the parameter: every message is one object, as before.
    assert!(single.iter().all(|m| m.starts_with('{')));
    assert_eq!(single.len(), 1 + pads.len());

    let (in_batches, one_by_one) = (after_welcome(batched), after_welcome(single));
    assert_eq!(in_batches, one_by_one);
    let events: Vec<&str> = (in_batches.iter())
        .map(|f| f["event"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..pads.len()).map(|n| format!("m{n}")).collect();
    assert_eq!(events, expected);
    let seqs: Vec<u64> = in_batches
        .iter()
        .map(|f| f["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
}

#[tokio::test]
async fn no_batched_message_passes_the_cap_and_a_frame_larger_than_it_goes_alone() {
    let server = TestServer::start().await;
    // Frames of about 20 KiB, three to a message at most, and one over the cap on its own.
    let mut pads = vec![20_000; 12];
    pads.insert(5, BATCH_MESSAGE_BYTES + 1000);
    let [batched, single] = &replayed(&server, &pads, &["&batch=1", "&batch=0"]).await[..] else {
        unreachable!()
    };
    let large = |m: &&String| m.len() > BATCH_MESSAGE_BYTES;
    let too_large: Vec<&String> = batched.iter().filter(large).collect();
    assert_eq!(too_large.len(), 1, "only the large frame passes the cap");
    assert!(too_large[0].starts_with('{'), "alone, as a plain object");
    assert_eq!(frames_of(too_large[0])[0]["event"], "m5");
    assert!(batched.iter().any(|m| m.starts_with('[')));
    assert!(single.iter().all(|m| m.starts_with('{')));
    assert_eq!(after_welcome(batched), after_welcome(single));
}

#[tokio::test]
async fn a_frame_ready_alone_is_a_plain_object_even_with_batching() {
    let server = TestServer::start().await;
    let mut alice = server.connect_with("alice", "&batch=1").await;
    for n in 0..3 {
        let event = format!("live{n}");
        server
            .publish(json!({"user": "alice"}), &event, json!(null))
            .await;
        // Read before the next publish: each frame is alone in the writer when it wakes.
        let message = alice.text().await;
        assert!(message.starts_with('{'), "{message}");
        assert_eq!(frames_of(&message)[0]["event"], event.as_str());
    }
}

#[tokio::test]
async fn a_batch_value_other_than_0_or_1_is_refused_with_400_and_no_websocket() {
    let server = TestServer::start().await;
    let token = server.token("alice", None);
    for bad in ["yes", "true", "2", ""] {
        let (status, body) = server
            .handshake_refusal(&format!("?token={token}&batch={bad}"), &[])
            .await;
        assert_eq!(status, 400, "batch={bad}: {body}");
        assert_eq!(body["error"], "bad_request", "{body}");
        assert_eq!(
            body["message"],
            format!("batch={bad:?}: expected 0 or 1"),
            "{body}"
        );
    }
    // The values it takes open a connection.
    for good in ["0", "1"] {
        server
            .connect_with("alice", &format!("&batch={good}"))
            .await;
    }
}
