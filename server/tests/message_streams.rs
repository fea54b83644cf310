//! Agent answers streamed token by token over the real server: a producer POSTs
//! `agent_message_delta` events to the agent events endpoint, WebSocket readers assemble the
//! text by offset, and late joiners, binds and resumes get the text so far in one frame.

mod support;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;
use support::TestServer;
use support::WsClient;

/// POST one event of alice's run `r1` (on thread `t1`).
async fn post(server: &TestServer, event: Value) -> (u16, Value) {
    server
        .api("POST", "/api/runs/alice/r1/events", Some(event))
        .await
}

/// The producer of one message: posts each piece at the message's length so far.
#[derive(Default)]
struct Producer {
    text: String,
    len: u64,
}

impl Producer {
    async fn send(&mut self, server: &TestServer, piece: &str, last: bool) {
        let event = json!({"event": "agent_message_delta", "message": "m1",
            "offset": self.len, "text": piece, "final": last});
        let (status, body) = post(server, event).await;
        assert_eq!(status, 200, "{body}");
        self.text.push_str(piece);
        self.len += piece.chars().count() as u64;
    }

    /// Send the tokens `range` of the answer; the last one is `final` if `ends`.
    async fn tokens(&mut self, server: &TestServer, range: Range<usize>, ends: bool) {
        let last = range.end - 1;
        for n in range {
            self.send(server, &token(n), ends && n == last).await;
        }
    }
}

/// The `n`th token of an answer: accents, an emoji, quotes, newlines.
fn token(n: usize) -> String {
    match n % 4 {
        0 => format!("mot{n} "),
        1 => "é😀 ".to_owned(),
        2 => "\"q\" ".to_owned(),
        _ => "line\n".to_owned(),
    }
}

/// A reader's text of message `m1`, assembled by offset, and the last position it saw.
#[derive(Default)]
struct Reader {
    text: String,
    frames: usize,
    ended: bool,
    position: Option<(u64, u64)>,
}

impl Reader {
    /// Read one frame; true if it was a delta.
    fn take(&mut self, frame: &Value) -> bool {
        if let (Some(epoch), Some(seq)) = (frame["epoch"].as_u64(), frame["seq"].as_u64()) {
            self.position = Some((epoch, seq));
        }
        if frame["type"] != "agent_message_delta" {
            return false;
        }
        self.frames += 1;
        let have = self.text.chars().count() as u64;
        let offset = frame["offset"].as_u64().expect("an offset");
        assert!(offset <= have, "a hole: offset {offset} past {have}");
        let piece = frame["text"].as_str().expect("a text");
        self.text
            .extend(piece.chars().skip((have - offset) as usize));
        self.ended |= frame["final"] == true;
        true
    }

    /// Read frames until the text is `len` characters long.
    async fn until(&mut self, ws: &mut WsClient, len: usize) {
        while self.text.chars().count() < len {
            let frame = tokio::time::timeout(Duration::from_secs(10), ws.json())
                .await
                .expect("the rest of the text within 10 s");
            self.take(&frame);
        }
    }

    /// Read frames until a delta, and return it.
    async fn next_delta(&mut self, ws: &mut WsClient) -> Value {
        loop {
            let frame = ws.json().await;
            if self.take(&frame) {
                return frame;
            }
        }
    }
}

async fn started(server: &TestServer) {
    let (status, body) = post(
        server,
        json!({"event": "agent_started", "agent": "writer", "thread": "t1"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// A server, and alice reading thread `t1`, where her run `r1` has started.
async fn alice_reading_a_started_run() -> (TestServer, WsClient) {
    let server = TestServer::start().await;
    let alice = server.connect_with("alice", "&thread=t1").await;
    started(&server).await;
    (server, alice)
}

#[tokio::test]
async fn a_live_reader_assembles_exactly_the_200_deltas_a_producer_posted() {
    let (server, mut alice) = alice_reading_a_started_run().await;
    let mut producer = Producer::default();
    producer.tokens(&server, 0..200, true).await;
    let mut reader = Reader::default();
    reader.until(&mut alice, producer.len as usize).await;
    assert_eq!(reader.text, producer.text);
    assert!(reader.ended, "the last delta ends the message");
}

/// The flush window holds the deltas that follow a message's first; the server's timer sends
/// them when it closes: the text arrives whole although no `final` delta or other frame comes.
#[tokio::test]
async fn the_text_held_by_a_flush_window_arrives_on_the_servers_timer() {
    let (server, mut alice) = alice_reading_a_started_run().await;
    let mut producer = Producer::default();
    producer.tokens(&server, 0..50, false).await;
    let mut reader = Reader::default();
    reader.until(&mut alice, producer.len as usize).await;
    assert_eq!(reader.text, producer.text);
    assert!(!reader.ended);
}

#[tokio::test]
async fn a_reader_resuming_mid_answer_gets_the_text_so_far_then_continues_exactly() {
    let (server, mut alice) = alice_reading_a_started_run().await;
    let mut producer = Producer::default();
    producer.tokens(&server, 0..50, false).await;
    let mut reader = Reader::default();
    reader.until(&mut alice, producer.len as usize).await;
    alice.close().await;
    producer.tokens(&server, 50..100, false).await;
    let (epoch, seq) = reader.position.expect("positions seen");
    let mut again = server
        .connect_with("alice", &format!("&thread=t1&resume={epoch}:{seq}"))
        .await;
    let first = reader.next_delta(&mut again).await;
    assert_eq!(
        first["offset"], 0,
        "the text so far, from the start: {first}"
    );
    assert_eq!(reader.text, producer.text, "one frame holds it all");
    producer.tokens(&server, 100..150, true).await;
    reader.until(&mut again, producer.len as usize).await;
    assert_eq!(reader.text, producer.text);
}

#[tokio::test]
async fn a_late_joiner_and_a_bind_get_the_answer_so_far_in_one_frame() {
    let server = TestServer::start().await;
    started(&server).await;
    let mut producer = Producer::default();
    producer.tokens(&server, 0..100, false).await;
    let mut late = server.connect_with("alice", "&thread=t1").await;
    let mut binder = server.connect("alice").await;
    binder.send(json!({"type": "bind", "thread": "t1"})).await;
    for ws in [&mut late, &mut binder] {
        let mut reader = Reader::default();
        let frame = reader.next_delta(ws).await;
        assert_eq!(frame["offset"], 0);
        assert_eq!((reader.frames, &reader.text), (1, &producer.text));
    }
    producer.send(&server, "end", true).await;
    for ws in [&mut late, &mut binder] {
        let frame = ws.next_of("agent_message_delta").await;
        assert_eq!(
            (frame["offset"].as_u64(), &frame["text"]),
            (Some(producer.len - 3), &json!("end"))
        );
    }
}

#[tokio::test]
async fn deltas_out_of_order_are_409_with_their_reason_and_the_offset_expected() {
    let server = TestServer::start().await;
    let mut alice = server.connect_with("alice", "&thread=t1").await;
    let delta = |offset: Value, text: &str, last: bool| {
        json!({"event": "agent_message_delta", "message": "m1", "offset": offset,
            "text": text, "final": last})
    };
    let (status, body) = post(&server, delta(json!(0), "early", false)).await;
    assert_eq!(
        (status, &body["error"]),
        (409, &json!("run_order")),
        "{body}"
    );
    started(&server).await;
    let (status, _) = post(&server, delta(json!(0), "héllo", false)).await;
    assert_eq!(status, 200);
    let (status, body) = post(&server, delta(json!(3), "!", false)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        (&body["reason"], &body["expected_offset"]),
        (&json!("wrong_offset"), &json!(5))
    );
    let (status, body) = post(&server, json!({"event": "agent_completed"})).await;
    assert_eq!(
        (status, &body["reason"]),
        (409, &json!("messages_open")),
        "{body}"
    );
    let (status, _) = post(&server, delta(json!(5), "!", true)).await;
    assert_eq!(status, 200);
    let (status, body) = post(&server, delta(json!(6), "?", false)).await;
    assert_eq!(
        (status, &body["reason"]),
        (409, &json!("message_ended")),
        "{body}"
    );
    for hostile in [
        json!(-1),
        json!("5"),
        json!(1.5),
        json!(u64::MAX as f64 * 2.0),
    ] {
        let (status, body) = post(&server, delta(hostile.clone(), "x", false)).await;
        assert_eq!(status, 400, "{hostile} -> {body}");
    }
    let mut texts = BTreeMap::new();
    for _ in 0..2 {
        let frame = alice.next_of("agent_message_delta").await;
        texts.insert(frame["offset"].as_u64(), frame["text"].clone());
    }
    assert_eq!(
        texts,
        BTreeMap::from([(Some(0), json!("héllo")), (Some(5), json!("!"))])
    );
    assert!(
        alice.silent_for(Duration::from_millis(300)).await,
        "nothing refused reached her"
    );
}
