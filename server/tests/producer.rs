//! The producer channel (`/api/producer`) over real sockets: each event acknowledged with its
//! position or refused as the runs API refuses it, the API key required, bad frames answered
//! and struck, a flooding producer held back by TCP, a channel that drops or goes silent ending
//! its runs with `producer_lost` (and only its own), and clients' cancels routed to the
//! producer that owns the run.

mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::producer::{delta, frame, started, Producer};
use support::{TestServer, PATIENCE};
use switchboard::EventKind;
use tokio_tungstenite::tungstenite::Message;

/// Run idle timeout far beyond any test: a `producer_lost` can only come from the channel.
const LONG_IDLE: &str = "[limits]\nrun_idle_timeout_secs = 3600\n";

/// The next frame of `kind` a reader gets.
async fn reader_next(reader: &mut support::WsClient, kind: &str) -> Value {
    reader.next_of(kind).await
}

async fn run_ending(server: &TestServer, user: &str, run: &str) -> Option<EventKind> {
    let handle = &server.running.as_ref().unwrap().handle;
    let report = handle.run_report(user, run).await.unwrap();
    report.expect("the run is known").ended
}

#[tokio::test]
async fn each_event_is_acknowledged_with_its_position_in_the_users_stream() {
    let server = TestServer::with(LONG_IDLE).await;
    let mut reader = server.connect("alice").await;
    let mut producer = Producer::open(&server).await;
    let ack = producer.event("alice", "r1", 1, started(None)).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(
        (ack["ref"].clone(), ack["run"].clone()),
        (json!(1), json!("r1"))
    );
    assert_eq!(ack["reached"], 1);
    let first = reader_next(&mut reader, "agent_started").await;
    assert_eq!(ack["position"]["seq"], first["seq"], "{ack} {first}");
    for (i, (offset, text)) in [(0, "Hel"), (3, "lo")].into_iter().enumerate() {
        let ack = producer
            .event("alice", "r1", 2 + i as u64, delta(offset, text))
            .await;
        let got = reader_next(&mut reader, "agent_message_delta").await;
        assert_eq!(ack["ref"], json!(2 + i as u64));
        assert_eq!(ack["position"]["seq"], got["seq"], "{ack} {got}");
        assert_eq!(got["text"], text);
    }
    // Runs over HTTP keep working beside the channel.
    let path = "/api/runs/alice/r2/events";
    let (status, body) = server.api("POST", path, Some(started(None))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(reader_next(&mut reader, "agent_started").await["run"], "r2");
}

#[tokio::test]
async fn a_delta_out_of_order_is_refused_on_the_channel_as_the_runs_api_refuses_it() {
    let server = TestServer::with(LONG_IDLE).await;
    let mut producer = Producer::open(&server).await;
    producer.event("alice", "r1", 1, started(None)).await;
    producer.event("alice", "r1", 2, delta(0, "abc")).await;
    let refused = producer.event("alice", "r1", 3, delta(1, "x")).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["ref"], 3);
    assert_eq!(refused["status"], 409);
    assert_eq!(refused["error"], "run_order");
    assert_eq!(refused["reason"], "wrong_offset");
    assert_eq!(refused["expected_offset"], 3);
    let path = "/api/runs/alice/r1/events";
    let (status, body) = server.api("POST", path, Some(delta(1, "x"))).await;
    assert_eq!(status, 409);
    assert_eq!(
        (body["error"].clone(), body["reason"].clone()),
        (json!("run_order"), json!("wrong_offset"))
    );
    let ack = producer.event("alice", "r1", 4, delta(3, "d")).await;
    assert_eq!(
        ack["type"], "ack",
        "a refusal costs the channel nothing: {ack}"
    );
    let unstarted = producer.event("alice", "r9", 5, delta(0, "x")).await;
    assert_eq!(
        (unstarted["status"].clone(), unstarted["error"].clone()),
        (json!(409), json!("run_order"))
    );
}

#[tokio::test]
async fn a_channel_dropped_mid_answer_ends_its_runs_with_producer_lost_and_no_other() {
    let server = TestServer::with(LONG_IDLE).await;
    let mut reader = server.connect("alice").await;
    let path = "/api/runs/alice/over-http/events";
    assert_eq!(server.api("POST", path, Some(started(None))).await.0, 200);
    reader_next(&mut reader, "agent_started").await;
    let mut producer = Producer::open(&server).await;
    producer.event("alice", "r1", 1, started(None)).await;
    producer
        .event("alice", "r1", 2, delta(0, "half an ans"))
        .await;
    reader_next(&mut reader, "agent_message_delta").await;
    let dropped = Instant::now();
    drop(producer);
    let lost = reader_next(&mut reader, "producer_lost").await;
    let latency = dropped.elapsed();
    assert_eq!(lost["run"], "r1", "{lost}");
    eprintln!("producer_lost {latency:?} after the channel dropped");
    assert_eq!(
        run_ending(&server, "alice", "r1").await,
        Some(EventKind::ProducerLost)
    );
    assert_eq!(
        run_ending(&server, "alice", "over-http").await,
        None,
        "the HTTP run goes on"
    );
    let (status, body) = server
        .api(
            "POST",
            "/api/runs/alice/over-http/events",
            Some(delta(0, "x")),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_silent_producer_is_found_dead_by_its_pings_and_its_runs_end() {
    let settings = format!("{LONG_IDLE}[producer]\nping_interval_secs = 1\ntimeout_secs = 2\n");
    let server = TestServer::with(&settings).await;
    let mut reader = server.connect("alice").await;
    let mut producer = Producer::open(&server).await;
    producer.event("alice", "r1", 1, started(None)).await;
    // The producer now reads nothing, so it answers no ping: a hung process.
    let lost = reader_next(&mut reader, "producer_lost").await;
    assert_eq!(lost["run"], "r1");
    drop(producer);
}

#[tokio::test]
async fn a_channel_without_the_api_key_is_refused_with_401() {
    let server = TestServer::start().await;
    assert_eq!(Producer::refused(&server, None).await, 401);
    assert_eq!(Producer::refused(&server, Some("wrong")).await, 401);
}

#[tokio::test]
async fn bad_frames_are_answered_and_struck_until_the_channel_closes_with_1008() {
    let server = TestServer::with("[producer]\nmax_strikes = 4\n").await;
    let mut producer = Producer::open(&server).await;
    producer.sink.send_raw(b"\x01\x02", true).await;
    assert_eq!(producer.answer().await["error"], "binary_frame");
    producer.sink.send_raw(b"{not json", false).await;
    assert_eq!(producer.answer().await["status"], 400);
    producer
        .send(json!({"ref": "a", "user": "alice", "run": "r1", "event": "nope"}))
        .await;
    let not_event = producer.answer().await;
    assert_eq!(
        (not_event["error"].clone(), not_event["ref"].clone()),
        (json!("bad_request"), json!("a"))
    );
    producer.send(frame("", "r1", 4, started(None))).await;
    assert_eq!(producer.answer().await["status"], 400, "an empty user");
    producer.send(json!([1])).await;
    assert_eq!(producer.closed().await, Some(1008));
}

#[tokio::test]
async fn a_frame_over_the_body_limit_closes_with_1009_and_text_not_utf8_with_1007() {
    let server = TestServer::with("max_body_bytes = 1024\n").await;
    let mut producer = Producer::open(&server).await;
    producer
        .send(frame("alice", "r1", 1, delta(0, &"x".repeat(2048))))
        .await;
    assert_eq!(producer.closed().await, Some(1009));
    let mut producer = Producer::open(&server).await;
    producer.sink.send_raw(b"{\"ref\":\xff}", false).await;
    assert_eq!(producer.closed().await, Some(1007));
}

/// A flood's `ref` and run id: 200 characters each, so that every answer weighs about 500
/// bytes and the kernel's socket buffers (Linux grows a send buffer to at most 4 MiB,
/// `net.ipv4.tcp_wmem`) hold fewer than 9 000 of them.
fn padded(prefix: &str, i: u64) -> String {
    format!("{prefix}{i:0>199}")
}

#[tokio::test]
async fn a_flooding_producer_that_reads_nothing_is_held_back_and_loses_nothing() {
    const EVENTS: u64 = 20_000;
    let server = TestServer::with(&format!("{LONG_IDLE}[producer]\nmax_in_flight = 4\n")).await;
    // A reader that reads nothing either.
    let _slow = server.connect("alice").await;
    let run = padded("r", 0);
    let mut producer = Producer::open_small(&server).await;
    producer.event("alice", &run, 0, started(None)).await;
    let Producer {
        mut sink,
        mut answers,
    } = producer;
    let flooded = run.clone();
    let flood = tokio::spawn(async move {
        for i in 0..EVENTS {
            let mut event = frame("alice", &flooded, 0, delta(i, "x"));
            event["ref"] = json!(padded("f", i));
            sink.send(event).await;
        }
        sink
    });
    // The producer reads nothing: once its answers fill the sockets, the server stops reading.
    let handle = server.running.as_ref().unwrap().handle.clone();
    let taken = || async {
        let report = handle
            .run_report("alice", run.as_str())
            .await
            .unwrap()
            .unwrap();
        let deltas = report
            .events
            .iter()
            .filter(|e| e.kind == EventKind::AgentMessageDelta);
        // The run started at seq 1 of alice's stream; each delta took the next.
        deltas.map(|e| e.seq - 1).max().unwrap_or(0)
    };
    let mut last = 0;
    let mut still = 0;
    while still < 3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = taken().await;
        still = if now == last { still + 1 } else { 0 };
        last = now;
    }
    assert!(
        last < EVENTS,
        "the server stopped taking events at {last} of {EVENTS}"
    );
    eprintln!("events taken while the producer read nothing: {last} of {EVENTS}");
    // Reading again, every event is acknowledged in order: none was dropped.
    for i in 0..EVENTS {
        let ack = loop {
            let read = tokio::time::timeout(PATIENCE, futures_util::StreamExt::next(&mut answers));
            let message = read.await.expect("answers keep coming").unwrap().unwrap();
            if let Message::Text(text) = message {
                break serde_json::from_str::<Value>(&text).unwrap();
            }
        };
        assert_eq!(
            (&ack["type"], &ack["ref"]),
            (&json!("ack"), &json!(padded("f", i)))
        );
    }
    flood.await.unwrap();
    assert_eq!(taken().await, EVENTS);
}

#[tokio::test]
async fn a_cancel_by_the_runs_user_reaches_its_producer_and_agent_cancelled_reaches_readers() {
    let server = TestServer::with(LONG_IDLE).await;
    let mut alice = server.connect("alice").await;
    let mut mallory = server.connect("mallory").await;
    let mut producer = Producer::open(&server).await;
    producer.event("alice", "r1", 1, started(None)).await;
    reader_next(&mut alice, "agent_started").await;
    mallory
        .send(json!({"type": "cancel", "run": "r1", "ref": 1}))
        .await;
    mallory
        .send(json!({"type": "cancel", "run": "nothing", "ref": 1}))
        .await;
    let (theirs, unknown) = (mallory.json().await, mallory.json().await);
    assert_eq!(theirs["code"], "unknown_run", "{theirs}");
    assert_eq!(
        theirs, unknown,
        "another user's run is answered as an unknown one"
    );
    alice
        .send(json!({"type": "cancel", "run": "r1", "ref": 9}))
        .await;
    let reply = alice.next_of("reply").await;
    assert_eq!(
        (reply["ref"].clone(), reply["data"]["run"].clone()),
        (json!(9), json!("r1"))
    );
    let order = producer.answer().await;
    assert_eq!(
        order,
        json!({"type": "cancel", "user": "alice", "run": "r1"})
    );
    let reason = json!({"event": "agent_cancelled", "reason": "the user asked"});
    assert_eq!(
        producer.event("alice", "r1", 2, reason).await["type"],
        "ack"
    );
    let cancelled = reader_next(&mut alice, "agent_cancelled").await;
    assert_eq!(
        (cancelled["run"].clone(), cancelled["reason"].clone()),
        (json!("r1"), json!("the user asked"))
    );
    // The run ended: the channel no longer owns it, and dropping it loses nothing.
    drop(producer);
    assert_eq!(
        run_ending(&server, "alice", "r1").await,
        Some(EventKind::AgentCancelled)
    );
}

#[tokio::test]
async fn a_cancel_for_a_run_sent_over_http_says_no_producer_can_hear_it() {
    let server = TestServer::with(LONG_IDLE).await;
    let mut alice = server.connect("alice").await;
    let path = "/api/runs/alice/r1/events";
    assert_eq!(server.api("POST", path, Some(started(None))).await.0, 200);
    reader_next(&mut alice, "agent_started").await;
    alice
        .send(json!({"type": "cancel", "run": "r1", "ref": 2}))
        .await;
    let refused = alice.next_of("error").await;
    assert_eq!(
        (refused["code"].clone(), refused["ref"].clone()),
        (json!("no_producer"), json!(2))
    );
    assert_eq!(run_ending(&server, "alice", "r1").await, None);
}

/// The frames of `docs/API.md`'s ```` ```json producer {part} ```` blocks, one per line.
fn documented(part: &str) -> Vec<Value> {
    let markdown = include_str!("../../docs/API.md");
    let info = format!("```json producer {part}");
    let mut lines = markdown.lines().skip_while(|l| *l != info).skip(1);
    let block = lines.by_ref().take_while(|l| !l.starts_with("```"));
    block
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn keys(frame: &Value) -> Vec<&String> {
    frame.as_object().expect("an object").keys().collect()
}

#[tokio::test]
async fn the_frames_the_api_documentation_shows_are_the_channels_own() {
    let server = TestServer::with(LONG_IDLE).await;
    let mut alice = server.connect("alice").await;
    let mut producer = Producer::open(&server).await;
    let mut acks = Vec::new();
    for event in documented("events") {
        producer.send(event).await;
        acks.push(producer.answer().await);
    }
    assert_eq!(acks.len(), 2);
    let answers = documented("answers");
    assert_eq!(keys(&acks[1]), keys(&answers[0]), "{}", acks[1]);
    assert_eq!(acks[1]["ref"], answers[0]["ref"]);
    // The documented refusal: a delta at offset 3 of the 8 characters sent.
    let mut late = frame("alice", "run-1", 3, delta(3, "x"));
    late["message"] = json!("m1");
    producer.send(late).await;
    assert_eq!(producer.answer().await, answers[1]);
    alice.send(json!({"type": "cancel", "run": "run-1"})).await;
    assert_eq!(alice.next_of("reply").await["data"]["run"], "run-1");
    assert_eq!(vec![producer.answer().await], documented("cancel"));
}
