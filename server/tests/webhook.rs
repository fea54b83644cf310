//! The webhook against a real backend: a real HTTP server in the test receives the client
//! frames and lifecycle events a real server POSTs, verifies their signatures with the recipe
//! of `docs/API.md`, and answers as each test scripts it; real WebSocket clients send the
//! frames and read the answers.

mod support;

use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use support::hook::*;
use support::*;
use switchboard_testing::eventually;

/// The `reply` or `error` answering each of `refs`, in the order they come: one per ref.
async fn answers(client: &mut WsClient, count: usize) -> Vec<Value> {
    let mut answers = Vec::new();
    while answers.len() < count {
        let frame = client.json().await;
        if frame["type"] == "reply" || frame["type"] == "error" {
            answers.push(frame);
        }
    }
    answers
}

fn user_message(text: &str, reference: Value) -> Value {
    json!({"type": "user_message", "data": {"text": text}, "ref": reference})
}

#[tokio::test]
async fn a_signed_frame_reaches_the_backend_and_its_reply_only_the_sending_connection() {
    let backend = Backend::echo().await;
    let server = server(&backend.url, "").await;
    let mut sender = server.connect_with("alice", "&thread=t1").await;
    let mut sibling = server.connect("alice").await;
    let mut bob = server.connect("bob").await;

    sender.send(user_message("hi", json!({"n": 1}))).await;

    let reply = sender.next_of("reply").await;
    assert_eq!(
        reply,
        json!({"type": "reply", "data": {"echo": {"text": "hi"}}, "ref": {"n": 1}})
    );
    let delivery = backend.deliveries().pop().unwrap();
    assert!(delivery.signed, "signed with the documented recipe");
    let event = delivery.event;
    assert_eq!(event["event"], "frame");
    assert_eq!(event["type"], "user_message");
    assert_eq!(event["data"], json!({"text": "hi"}));
    assert_eq!(event["user"], "alice");
    assert_eq!(event["conn"], sender.id());
    assert_eq!(event["thread"], "t1");
    assert!(event["node"].as_str().is_some_and(|n| !n.is_empty()));
    assert!(event["id"].as_str().is_some_and(|n| !n.is_empty()));
    assert!(event["timestamp"].as_u64().is_some());
    for other in [&mut sibling, &mut bob] {
        let seen = other.fence().await;
        assert!(
            seen.iter()
                .all(|f| f["type"] != "reply" && f["type"] != "error"),
            "{seen:?}"
        );
    }
}

/// The documented event (`docs/API.md`) has exactly the fields a real frame event has.
#[tokio::test]
async fn the_documented_frame_event_has_the_fields_of_a_real_one() {
    let api = include_str!("../../docs/API.md");
    let start = api.find("```json webhook event\n").expect("the example") + 22;
    let end = start + api[start..].find("```").unwrap();
    let documented: Value = serde_json::from_str(&api[start..end]).unwrap();
    let backend = Backend::echo().await;
    let server = server(&backend.url, "").await;
    let mut client = server.connect_with("alice", "&thread=t1").await;
    client.send(user_message("hi", json!(1))).await;
    client.next_of("reply").await;

    let real = backend.events().pop().unwrap();
    let keys = |v: &Value| {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&documented), keys(&real));
}

#[tokio::test]
async fn a_frame_without_ref_that_succeeds_gets_nothing() {
    let backend = Backend::echo().await;
    let server = server(&backend.url, "").await;
    let mut client = server.connect("alice").await;

    client
        .send(json!({"type": "user_message", "data": {"text": "fire and forget"}}))
        .await;
    eventually("the backend received it", || async {
        !backend.events().is_empty()
    })
    .await;
    // The event is settled once it left the queue: anything sent in answer comes before the pong.
    eventually("the event settled", || async {
        server.metric("webhook_sent_total").await == Some(1.0)
            && server.metric("webhook_queue_depth").await == Some(0.0)
    })
    .await;

    assert_eq!(client.fence().await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_backend_that_is_down_is_retried_then_the_client_gets_backend_unavailable_with_its_ref() {
    // A port nothing listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let server = server(&url, "max_attempts = 3").await;
    let mut client = server.connect("alice").await;

    client.send(user_message("anyone?", json!("r1"))).await;

    let error = client.next_of("error").await;
    assert_eq!(error["code"], "backend_unavailable");
    assert_eq!(error["ref"], "r1");
    assert_eq!(server.metric("webhook_retried_total").await, Some(2.0));
    assert_eq!(
        server
            .metric("webhook_failed_total{reason=\"exhausted\"}")
            .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn a_slow_backend_holds_the_queue_bound_and_every_frame_is_answered_once() {
    let backend = Backend::start(|_, _| Scripted::Hold).await;
    let server = server(&backend.url, "queue_size = 2").await;
    let mut client = server.connect("alice").await;

    for n in 1..=5 {
        client.send(user_message("m", json!(n))).await;
    }
    // Two fit (one in flight, one behind it); the other three are refused at once.
    let refused = answers(&mut client, 3).await;
    for (frame, n) in refused.iter().zip(3..) {
        assert_eq!(frame["type"], "error", "{frame}");
        assert_eq!(frame["code"], "backend_unavailable");
        assert_eq!(frame["ref"], n);
    }
    backend.open_gate(2);
    let replies = answers(&mut client, 2).await;
    assert_eq!(
        replies
            .iter()
            .map(|f| (f["type"].clone(), f["ref"].clone()))
            .collect::<Vec<_>>(),
        vec![(json!("reply"), json!(1)), (json!("reply"), json!(2))]
    );
    assert_eq!(client.fence().await, Vec::<Value>::new(), "nothing more");
    assert_eq!(backend.events().len(), 2);
    assert_eq!(
        server
            .metric("webhook_failed_total{reason=\"queue_full\"}")
            .await,
        Some(3.0)
    );
}

#[tokio::test]
async fn a_4xx_answer_becomes_an_error_with_the_backends_code_or_a_generic_one() {
    let backend = Backend::start(|event, _| {
        let code = event["data"]["code"].as_str().unwrap_or_default();
        let body = json!({"error": {"code": code, "message": "no"}}).to_string();
        Scripted::Answer(422, body)
    })
    .await;
    let server = server(&backend.url, "").await;
    let mut client = server.connect("alice").await;

    for (n, code) in ["quota_exceeded", "Not A Code", "x".repeat(65).as_str()]
        .into_iter()
        .enumerate()
    {
        client
            .send(json!({"type": "user_message", "data": {"code": code}, "ref": n}))
            .await;
    }

    let errors = answers(&mut client, 3).await;
    let codes: Vec<(Value, Value)> = (errors.iter())
        .map(|e| (e["code"].clone(), e["ref"].clone()))
        .collect();
    assert_eq!(
        codes,
        vec![
            (json!("quota_exceeded"), json!(0)),
            (json!("backend_error"), json!(1)),
            (json!("backend_error"), json!(2)),
        ]
    );
    assert_eq!(errors[0]["message"], "no");
    assert_eq!(backend.events().len(), 3, "a 4xx is not retried");
}

#[tokio::test]
async fn a_retried_event_carries_the_same_id_and_body_and_is_answered_once() {
    let backend = Backend::start(|event, before| match before {
        0 => Scripted::Answer(500, "try again".into()),
        _ => Scripted::Answer(200, echo(event)),
    })
    .await;
    let server = server(&backend.url, "").await;
    let mut client = server.connect("alice").await;

    client.send(user_message("twice", json!(9))).await;

    assert_eq!(client.next_of("reply").await["ref"], 9);
    let events = backend.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0], events[1], "the same id and the same body");
    assert_eq!(client.fence().await, Vec::<Value>::new(), "one answer");
}

#[tokio::test]
async fn a_users_events_arrive_in_send_order_per_connection_and_never_overlap() {
    users_events_keep_their_order("").await;
}

#[tokio::test]
async fn a_users_events_keep_their_order_when_batched() {
    users_events_keep_their_order("batch_max = 8\nbatch_wait_ms = 1").await;
}

/// Many frames of two connections of a user and of another user, sent at once, with `extra`
/// in `[webhook]`: each connection's arrive in order, a user's never two at a time.
async fn users_events_keep_their_order(extra: &str) {
    let backend = Backend::echo().await;
    let server = server(&backend.url, extra).await;
    let mut a1 = server.connect("alice").await;
    let mut a2 = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    const N: usize = 20;

    for n in 0..N {
        for (client, who) in [(&mut a1, "a1"), (&mut a2, "a2"), (&mut bob, "b")] {
            client
                .send(json!({"type": "user_message", "data": {"who": who, "n": n}, "ref": n}))
                .await;
        }
    }

    for client in [&mut a1, &mut a2, &mut bob] {
        let refs: Vec<Value> = answers(client, N)
            .await
            .iter()
            .map(|f| f["ref"].clone())
            .collect();
        assert_eq!(refs, (0..N).map(|n| json!(n)).collect::<Vec<_>>());
    }
    let events: Vec<Value> = (backend.events().into_iter())
        .flat_map(|e| match e {
            Value::Array(batch) => batch,
            event => vec![event],
        })
        .collect();
    for who in ["a1", "a2", "b"] {
        let order: Vec<u64> = (events.iter())
            .filter(|e| e["data"]["who"] == who)
            .map(|e| e["data"]["n"].as_u64().unwrap())
            .collect();
        assert_eq!(order, (0..N as u64).collect::<Vec<_>>(), "{who}");
    }
    assert_eq!(
        backend.inner.overlaps.load(Ordering::SeqCst),
        0,
        "one event of a user in flight at a time"
    );
}

#[tokio::test]
async fn subscribed_lifecycle_events_arrive_in_order_with_the_frames() {
    let backend = Backend::echo().await;
    let events = "events = [\"connect\", \"disconnect\", \"join\", \"leave\"]";
    let server = server(&backend.url, events).await;
    let mut client = server.connect_with("alice", "&thread=t1").await;
    let conn = client.id();

    client.join("lobby").await;
    client.send(user_message("in between", json!(1))).await;
    client.next_of("reply").await;
    client.send(json!({"type": "leave", "room": "lobby"})).await;
    client.next_of("left").await;
    let (status, _) = server
        .api("POST", "/api/users/alice/disconnect", None)
        .await;
    assert_eq!(status, 200);
    let code = client.closed().await;

    eventually("the disconnect", || async { backend.events().len() == 5 }).await;
    let events = backend.events();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["connect", "join", "frame", "leave", "disconnect"]);
    assert!(events
        .iter()
        .all(|e| e["conn"] == conn && e["user"] == "alice"));
    assert_eq!(events[0]["thread"], "t1");
    assert_eq!(
        (&events[1]["room"], &events[3]["room"]),
        (&json!("lobby"), &json!("lobby"))
    );
    assert_eq!(events[4]["code"], code);
    assert!(events[4]["reason"].as_str().is_some_and(|r| !r.is_empty()));
    let ids: std::collections::HashSet<&str> =
        events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 5, "every event its own id");
}

#[tokio::test]
async fn unsubscribed_lifecycle_events_are_not_sent() {
    let backend = Backend::echo().await;
    let server = server(&backend.url, "events = [\"disconnect\"]").await;
    let mut client = server.connect("alice").await;
    client.join("lobby").await;
    client.close().await;

    eventually("the disconnect", || async { !backend.events().is_empty() }).await;
    let names: Vec<Value> = backend
        .events()
        .iter()
        .map(|e| e["event"].clone())
        .collect();
    assert_eq!(names, [json!("disconnect")]);
}

#[tokio::test]
async fn an_oversized_or_invalid_answer_is_an_error_to_the_client() {
    let backend = Backend::start(|event, _| match event["data"]["text"].as_str() {
        Some("big") => {
            let reply = json!({"reply": "x".repeat(200 * 1024)}).to_string();
            Scripted::Answer(200, reply)
        }
        _ => Scripted::Answer(200, "<html>not json</html>".into()),
    })
    .await;
    let server = server(&backend.url, "").await;
    let mut client = server.connect("alice").await;

    client.send(user_message("big", json!("b"))).await;
    client.send(user_message("html", json!("h"))).await;

    let errors = answers(&mut client, 2).await;
    for (error, reference) in errors.iter().zip(["b", "h"]) {
        assert_eq!(error["type"], "error");
        assert_eq!(error["code"], "backend_error");
        assert_eq!(error["ref"], reference);
    }
    assert_eq!(
        backend.events().len(),
        2,
        "an invalid answer is not retried"
    );
}

#[tokio::test]
async fn a_backend_that_never_answers_times_out_into_backend_unavailable() {
    let backend = Backend::start(|_, _| Scripted::Hold).await;
    let server = server(&backend.url, "timeout_ms = 100\nmax_attempts = 2").await;
    let mut client = server.connect("alice").await;

    client.send(user_message("hello?", json!(5))).await;

    let error = client.next_of("error").await;
    assert_eq!(
        (&error["code"], &error["ref"]),
        (&json!("backend_unavailable"), &json!(5))
    );
    assert_eq!(backend.events().len(), 2, "both attempts reached it");
}

#[tokio::test]
async fn frame_types_without_a_webhook_url_refuse_to_start() {
    let file: switchboard_server::settings::FileSettings =
        toml::from_str("[frames]\ntypes = [\"user_message\"]").unwrap();
    let resolved = switchboard_server::settings::Settings::resolve(file, &Default::default());
    assert!(resolved.unwrap_err().to_string().contains("webhook.url"));
}

#[tokio::test]
async fn batched_events_share_a_post_and_each_gets_its_own_answer() {
    let backend = Backend::start(|batch, _| {
        let answers: Vec<Value> = (batch.as_array().unwrap().iter())
            .filter_map(|event| match event["user"].as_str() {
                Some("ana") => Some(json!({"id": event["id"], "reply": {"to": "ana"}})),
                Some("ben") => {
                    Some(json!({"id": event["id"], "error": {"code": "busy", "message": "later"}}))
                }
                _ => None,
            })
            .collect();
        Scripted::Answer(200, json!({"answers": answers}).to_string())
    })
    .await;
    // The batch goes as soon as three events wait; the wait is only a fallback.
    let server = server(&backend.url, "batch_max = 3\nbatch_wait_ms = 5000").await;
    let mut ana = server.connect("ana").await;
    let mut ben = server.connect("ben").await;
    let mut cid = server.connect("cid").await;

    for client in [&mut ana, &mut ben, &mut cid] {
        client.send(user_message("hi", json!("q"))).await;
    }

    let (a, b, c) = (
        ana.next_of("reply").await,
        ben.next_of("error").await,
        cid.next_of("reply").await,
    );
    assert_eq!(
        (&a["data"], &a["ref"]),
        (&json!({"to": "ana"}), &json!("q"))
    );
    assert_eq!((&b["code"], &b["ref"]), (&json!("busy"), &json!("q")));
    assert_eq!(
        (&c["data"], &c["ref"]),
        (&json!(null), &json!("q")),
        "not mentioned: no reply"
    );
    assert_eq!(
        *backend.inner.batches.lock().unwrap(),
        [3],
        "one POST of three events"
    );
    assert!(backend.deliveries()[0].signed);
}

/// A backend subscribed to `run_ended` receives each run's report when it ends: its events in
/// order with how many connections each reached, the ending, and, for a run longer than the
/// report's bound, the events it only counts (and whether one of them reached no one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_ended_event_carries_the_runs_bounded_report() {
    let backend = Backend::echo().await;
    let server = server(&backend.url, "events = [\"run_ended\"]").await;
    let client = server.connect_with("alice", "&thread=t1").await;
    let event = |run: &str, body: Value| {
        let path = format!("/api/runs/alice/{run}/events");
        let server = &server;
        async move {
            let (status, answer) = server.api("POST", &path, Some(body)).await;
            assert_eq!(status, 200, "{answer}");
        }
    };
    event(
        "short",
        json!({"event": "agent_started", "agent": "helper", "thread": "t1"}),
    )
    .await;
    event("short", json!({"event": "agent_thinking", "thought": "hm"})).await;
    event(
        "short",
        json!({"event": "agent_completed", "result": "done"}),
    )
    .await;
    eventually("the first report", || async { backend.events().len() == 1 }).await;
    let report = &backend.events()[0];
    assert_eq!(
        (&report["event"], &report["user"]),
        (&json!("run_ended"), &json!("alice"))
    );
    let run = &report["run"];
    assert_eq!(
        (&run["run"], &run["agent"], &run["thread"]),
        (&json!("short"), &json!("helper"), &json!("t1"))
    );
    let kinds: Vec<&Value> = run["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["kind"])
        .collect();
    assert_eq!(
        kinds,
        [
            &json!("agent_started"),
            &json!("agent_thinking"),
            &json!("agent_completed")
        ]
    );
    assert!(run["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["reached"] == 1));
    assert_eq!(
        (&run["ended"], &run["omitted"]),
        (&json!("agent_completed"), &json!(0))
    );

    // A run longer than the report's bound, whose last thoughts nobody receives.
    let bound = switchboard::MAX_REPORT_EVENTS;
    event(
        "long",
        json!({"event": "agent_started", "agent": "helper", "thread": "t1"}),
    )
    .await;
    for i in 0..bound + 5 {
        event(
            "long",
            json!({"event": "agent_thinking", "thought": i.to_string()}),
        )
        .await;
    }
    client.close().await;
    eventually("alice gone", || async {
        let (_, stats) = server.api("GET", "/api/stats", None).await;
        stats["connections"] == 0
    })
    .await;
    for i in bound + 5..bound + 9 {
        event(
            "long",
            json!({"event": "agent_thinking", "thought": i.to_string()}),
        )
        .await;
    }
    event("long", json!({"event": "agent_failed", "error": "gave up"})).await;
    eventually("the second report", || async {
        backend.events().len() == 2
    })
    .await;
    let run = &backend.events()[1]["run"];
    assert_eq!(run["events"].as_array().unwrap().len(), bound);
    // Listed: started and the first bound - 1 thoughts; counted: the other 10 thoughts and the
    // ending, of which the 4 thoughts and the ending after the close reached no one.
    assert_eq!(
        (&run["omitted"], &run["omitted_undelivered"]),
        (&json!(11), &json!(5))
    );
    assert_eq!(run["ended"], "agent_failed");
}
