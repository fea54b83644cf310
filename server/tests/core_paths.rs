//! Behaviours of the hub that the core's tests prove with injected time, driven here through
//! the real server (axum, two shards, real sockets): the node's and the user's connection
//! limits (4004, and 4001 under `evict_oldest`), a resume past history (an exact `gap`), a
//! `resume` frame after live messages (`already_live`, or `resumed` when nothing is missing),
//! thoughts coalesced for a reader that fell behind, and the `[backpressure]` budgets.

mod support;

use serde_json::{json, Value};
use support::*;
use switchboard_testing::Received;

/// What a client that asked to connect as `user` reads first: its `welcome`, or the refusal.
async fn first_read(server: &TestServer, user: &str) -> (WsClient, Received) {
    let query = format!("token={}", server.token(user, None));
    let mut client = WsClient::connect(server.addr(), &query).await;
    let first = client.read().await;
    (client, first)
}

/// A node at `limits.max_connections` per shard refuses every further connection with 4004
/// (`server_full`) before any frame; the ones it took stay served.
#[tokio::test]
async fn a_node_at_its_connection_limit_refuses_with_4004_before_any_frame() {
    let server = TestServer::with("[limits]\nmax_connections = 1").await;
    let (mut taken, mut refused) = (Vec::new(), 0);
    for i in 0..12 {
        match first_read(&server, &format!("user-{i}")).await {
            (client, Received::Frame(welcome)) => {
                assert_eq!(welcome["type"], "welcome", "{welcome}");
                taken.push(client);
            }
            (_, closed) => {
                assert_eq!(closed, Received::Closed(Some(4004)));
                refused += 1;
            }
        }
    }
    // Two shards of one connection each: twelve users cannot all fit.
    assert!((1..=2).contains(&taken.len()), "{} taken", taken.len());
    assert_eq!(taken.len() + refused, 12);
    let (_, stats) = server.api("GET", "/api/stats", None).await;
    assert_eq!(stats["connections"], taken.len(), "{stats}");
    for client in &mut taken {
        assert_eq!(client.fence().await, Vec::<Value>::new());
    }
}

/// Under `evict_oldest`, a user's connection past `max_connections_per_user` closes the
/// user's oldest one with 4001 (`evicted`); the others stay served.
#[tokio::test]
async fn a_connection_past_the_users_limit_evicts_the_oldest_with_4001() {
    let server = TestServer::with(
        "[limits]\nmax_connections_per_user = 2\nuser_limit_policy = \"evict_oldest\"",
    )
    .await;
    let mut oldest = server.connect("alice").await;
    let mut second = server.connect("alice").await;
    let mut newest = server.connect("alice").await;
    assert_eq!(oldest.closed().await, 4001);
    let answer = server
        .publish(json!({"user": "alice"}), "after", json!(null))
        .await;
    assert_eq!(answer["reached"], 2, "{answer}");
    for client in [&mut second, &mut newest] {
        assert_eq!(client.event().await, "after");
    }
}

/// A client that reconnects from a position older than the history keeps is told exactly
/// what it lost (`gap` with reason `history`), then receives what history still has, in order.
#[tokio::test]
async fn a_resume_past_history_opens_with_the_exact_gap_then_the_rest() {
    let server = TestServer::with("[history]\nmax_messages = 3").await;
    let mut alice = server.connect("alice").await;
    server
        .publish(json!({"user": "alice"}), "m1", json!(null))
        .await;
    let first = alice.next_of("message").await;
    let (epoch, seq) = (&first["epoch"], first["seq"].as_u64().unwrap());
    alice.close().await;
    for n in 2..=10 {
        server
            .publish(json!({"user": "alice"}), &format!("m{n}"), json!(null))
            .await;
    }
    let mut back = server
        .connect_with("alice", &format!("&resume={epoch}:{seq}"))
        .await;
    let gap = back.json().await;
    assert_eq!(
        (&gap["type"], &gap["stream"], &gap["reason"]),
        (&json!("gap"), &json!("user:alice"), &json!("history")),
        "{gap}"
    );
    assert_eq!(
        (gap["from"].as_u64(), gap["to"].as_u64()),
        (Some(seq + 1), Some(seq + 6))
    );
    for n in 8..=10 {
        assert_eq!(back.event().await, format!("m{n}"));
    }
    assert_eq!(back.fence().await, Vec::<Value>::new());
}

/// A `resume` frame on a connection that already received live messages of the stream: from
/// a position that leaves messages missing before them, the answer is `already_live` (the
/// replay would interleave with live frames); from one that leaves nothing missing, `resumed`.
#[tokio::test]
async fn a_resume_frame_after_live_messages_is_already_live_unless_nothing_is_missing() {
    let server = TestServer::start().await;
    let mut laptop = server.connect("alice").await;
    for event in ["m1", "m2"] {
        server
            .publish(json!({"user": "alice"}), event, json!(null))
            .await;
    }
    assert_eq!(laptop.event().await, "m1");
    assert_eq!(laptop.event().await, "m2");
    let mut phone = server.connect("alice").await;
    let epoch = phone.welcome()["epoch"].clone();
    server
        .publish(json!({"user": "alice"}), "m3", json!(null))
        .await;
    let live = phone.next_of("message").await;
    let head = live["seq"].as_u64().unwrap();
    let resume = |seq: u64, reference: u64| {
        json!({"type": "resume", "ref": reference,
               "streams": [{"stream": "user:alice", "epoch": epoch, "seq": seq}]})
    };

    phone.send(resume(head - 3, 1)).await;
    let refused = phone.json().await;
    assert_eq!(
        (&refused["type"], &refused["code"], &refused["ref"]),
        (&json!("error"), &json!("already_live"), &json!(1)),
        "{refused}"
    );
    phone.send(resume(head - 1, 2)).await;
    let resumed = phone.json().await;
    assert_eq!(
        (&resumed["type"], &resumed["ref"], &resumed["seq"]),
        (&json!("resumed"), &json!(2), &json!(head)),
        "{resumed}"
    );
    assert_eq!(phone.fence().await, Vec::<Value>::new(), "nothing replayed");
}

/// A reader that fell behind (its socket full, frames waiting in its queue) receives only the
/// latest of the thoughts that queued up for a run, in its place among the run's events; the
/// reliable frames around them all arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_behind_receives_only_the_latest_queued_thought() {
    let server = TestServer::start().await;
    let query = format!("token={}", server.token("alice", None));
    let mut alice = WsClient::open(server.addr(), &query, true).await.unwrap();
    assert_eq!(alice.json().await["type"], "welcome");
    let event = |body: Value| server.api("POST", "/api/runs/alice/r1/events", Some(body));
    let filler = "x".repeat(64 * 1024);
    let mut fillers = 0;
    loop {
        assert!(fillers < 64, "4 MiB published and nothing queued");
        server
            .publish(json!({"user": "alice"}), "filler", json!(filler))
            .await;
        fillers += 1;
        let (_, stats) = server.api("GET", "/api/stats", None).await;
        if stats["queued_bytes"].as_u64() > Some(0) {
            break;
        }
    }
    let started = event(json!({"event": "agent_started", "agent": "a"})).await;
    assert_eq!(started.0, 200, "{started:?}");
    for n in 1..=50 {
        let thought = event(json!({"event": "agent_thinking", "thought": format!("t{n}")})).await;
        assert_eq!(thought.0, 200, "{thought:?}");
    }
    let done = event(json!({"event": "agent_completed", "result": null})).await;
    assert_eq!(done.0, 200, "{done:?}");

    let mut kinds = Vec::new();
    loop {
        let frame = alice.json().await;
        match frame["type"].as_str() {
            Some("message") => assert_eq!(frame["event"], "filler"),
            Some("agent_thinking") => kinds.push(frame["thought"].as_str().unwrap().to_owned()),
            Some(kind) => kinds.push(kind.to_owned()),
            None => panic!("{frame}"),
        }
        if frame["type"] == "agent_completed" {
            break;
        }
    }
    let thoughts = kinds.len() - 2;
    assert!(
        thoughts < 50,
        "{thoughts} thoughts of 50 reached a reader behind"
    );
    assert_eq!(kinds.first().map(String::as_str), Some("agent_started"));
    assert_eq!(
        kinds[kinds.len() - 2..],
        ["t50".to_owned(), "agent_completed".to_owned()],
        "the latest thought, then the ending: {kinds:?}"
    );
    let (_, stats) = server.api("GET", "/api/stats", None).await;
    assert!(
        stats["counters"]["drops"]["coalesced"].as_u64() >= Some(1),
        "{stats}"
    );
}

/// A token's room grant holds on every path into a room: a `join` with `since` and a `resume`
/// of a room outside it are `forbidden` (with their `ref`) and replay nothing, while the same
/// frames for a granted room are served.
#[tokio::test]
async fn join_with_since_and_resume_are_refused_outside_the_rooms_grant() {
    let server = TestServer::start().await;
    let mut insider = server.connect("insider").await;
    insider.join("secret").await;
    server
        .publish(json!({"room": "secret"}), "classified", json!(null))
        .await;
    let secret = insider.next_of("message").await;
    let epoch = secret["epoch"].clone();

    let token = server.token("bob", Some(&["lobby"]));
    let mut bob = server.connect_token(&token).await;
    let since = json!({"epoch": epoch, "seq": 0});
    bob.send(json!({"type": "join", "room": "secret", "since": since, "ref": 1}))
        .await;
    bob.send(json!({"type": "resume", "ref": 2,
                    "streams": [{"stream": "room:secret", "epoch": epoch, "seq": 0}]}))
        .await;
    for reference in [1, 2] {
        let refused = bob.json().await;
        assert_eq!(
            (&refused["type"], &refused["code"], &refused["ref"]),
            (&json!("error"), &json!("forbidden"), &json!(reference)),
            "{refused}"
        );
    }
    bob.send(json!({"type": "join", "room": "lobby", "since": {"epoch": 1, "seq": 0}, "ref": 3}))
        .await;
    let joined = bob.next_of("joined").await;
    assert_eq!(
        (&joined["room"], &joined["ref"]),
        (&json!("lobby"), &json!(3))
    );
    let seen = bob.fence().await;
    assert!(
        seen.iter().all(|f| f["stream"] != "room:secret"),
        "nothing of the secret room: {seen:?}"
    );
}

/// A run whose producer falls silent past `limits.run_idle_timeout_secs` ends with
/// `producer_lost` for its readers (at the next clean-up sweep), and is over: a late event of
/// its producer is refused.
#[tokio::test]
async fn a_run_whose_producer_falls_silent_ends_with_producer_lost() {
    let server = TestServer::with("[limits]\nrun_idle_timeout_secs = 1").await;
    let mut alice = server.connect("alice").await;
    let event = |body: Value| server.api("POST", "/api/runs/alice/r1/events", Some(body));
    let started = event(json!({"event": "agent_started", "agent": "a"})).await;
    assert_eq!(started.0, 200, "{started:?}");
    assert_eq!(alice.next_of("agent_started").await["run"], "r1");

    let lost = alice.next_of("producer_lost").await;
    assert_eq!(
        (&lost["run"], &lost["agent"]),
        (&json!("r1"), &json!("a")),
        "{lost}"
    );
    let late = event(json!({"event": "agent_thinking", "thought": "still here"})).await;
    assert_eq!(late.0, 409, "{late:?}");
    assert_eq!(
        alice.fence().await,
        Vec::<Value>::new(),
        "nothing after the ending"
    );
}

/// `[backpressure]` sets the budgets every connection of the node gets: the node reports them
/// (`queue_max_bytes`, `inflight_max_bytes`), and a queue that could not hold the largest client
/// frame is refused at start.
#[tokio::test]
async fn the_backpressure_settings_are_the_budgets_of_the_node() {
    let server =
        TestServer::with("[backpressure]\ninflight_bytes = 65536\nqueue_bytes = 4194304").await;
    assert_eq!(server.metric("queue_max_bytes").await, Some(4194304.0));
    assert_eq!(server.metric("inflight_max_bytes").await, Some(65536.0));
    let too_small = production_settings("[backpressure]\nqueue_bytes = 100");
    let refused = too_small.expect_err("a queue smaller than a frame");
    assert!(refused.contains("backpressure.queue_bytes"), "{refused}");
}
