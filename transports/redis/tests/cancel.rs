//! A client's `cancel` for a run produced on another node, carried by the bridges over a real
//! Redis: the run's node hands it to its application (`Notice::Cancel` from
//! `CancelFrom::Node`), whose answer reaches the client; a run no node has for the client's
//! user is `unknown_run`; a node that does not answer in time (its application silent, or the
//! node dead) leaves the client `backend_unavailable`, and so does a cancel that cannot be
//! asked (Redis gone); the asking node counts each way its cancels end. The tests start
//! `redis-server` from PATH on a free port. Timeouts only guard against hangs; nothing asserts
//! how long anything took.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::{node, Node};
use switchboard::{AgentEvent, AgentUpdate, Answer, CancelFrom, CancelRequest, Notice};
use switchboard_testing::{eventually, Redis, WsClient};

/// Start `user`'s run `run` on `node`.
async fn started(node: &Node, user: &str, run: &str) {
    let update = AgentUpdate {
        run: run.into(),
        agent: "planner".into(),
        thread: None,
        event: AgentEvent::AgentStarted { data: Value::Null },
    };
    node.handle
        .send_agent_update(user, update)
        .await
        .expect("the run starts");
}

/// The next cancel `node`'s application is handed.
async fn next_cancel(node: &mut Node) -> CancelRequest {
    let wait = async {
        loop {
            let event = node.events.recv().await.expect("the node runs");
            if let Notice::Cancel(request) = event.notice {
                return *request;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("a cancel within the hang guard")
}

/// Send a `cancel` for `run` and read its answer.
async fn cancel(client: &mut WsClient, run: &str, reference: u64) -> Value {
    client
        .send(json!({"type": "cancel", "run": run, "ref": reference}))
        .await;
    client.json().await
}

/// What `node`'s bridge counted of its clients' cancels: asked, unasked, answered, timed out.
fn cancels(node: &Node) -> [u64; 4] {
    let s = node.bridge.stats();
    [
        s.cancels_asked,
        s.cancels_unasked,
        s.cancels_answered,
        s.cancels_timed_out,
    ]
}

/// Both nodes' bridges hear the control channel.
async fn joined(nodes: &[&Node]) {
    for node in nodes {
        node.subscribed("sb:control").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_reaches_the_application_of_the_runs_node_and_its_answer_the_client() {
    let redis = Redis::start().await;
    let mut a = node(&redis, "a", |_| {}).await;
    let b = node(&redis, "b", |_| {}).await;
    joined(&[&a, &b]).await;
    started(&a, "alice", "r1").await;
    let mut phone = WsClient::welcomed(b.addr, "user=alice").await;
    phone
        .send(json!({"type": "cancel", "run": "r1", "ref": 3}))
        .await;
    let request = next_cancel(&mut a).await;
    assert_eq!(
        (request.user.as_str(), request.run.as_str()),
        ("alice", "r1")
    );
    let CancelFrom::Node(ticket) = &request.from else {
        panic!("asked from another node: {:?}", request.from);
    };
    assert_eq!(ticket.node, "b");
    let told = Answer::Reply(json!({"run": "r1", "told": true}));
    (a.handle.answer_cancel(request.from, told).await).expect("answered");
    assert_eq!(
        phone.json().await,
        json!({"type": "reply", "data": {"run": "r1", "told": true}, "ref": 3})
    );
    assert_eq!(
        cancels(&b),
        [1, 0, 1, 0],
        "b asked the other nodes once and was answered"
    );
    assert_eq!(cancels(&a), [0; 4], "a only judged it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_no_node_has_for_the_users_client_is_unknown_run_and_reaches_no_application() {
    let redis = Redis::start().await;
    let mut a = node(&redis, "a", |_| {}).await;
    let b = node(&redis, "b", |_| {}).await;
    let c = node(&redis, "c", |_| {}).await;
    joined(&[&a, &b, &c]).await;
    started(&a, "alice", "r1").await;
    let mut mallory = WsClient::welcomed(b.addr, "user=mallory").await;
    let theirs = cancel(&mut mallory, "r1", 1).await;
    let unknown = cancel(&mut mallory, "nothing", 1).await;
    assert_eq!(theirs["code"], "unknown_run", "{theirs}");
    assert_eq!(theirs, unknown, "another user's run is answered as no run");
    assert_eq!(
        cancels(&b),
        [2, 0, 2, 0],
        "every node's not_here is an answer"
    );
    // What a's application was told: nothing but mallory's connection on b is unknown to
    // it, so its next cancel is the one asked now, by alice.
    let mut alice = WsClient::welcomed(c.addr, "user=alice").await;
    alice
        .send(json!({"type": "cancel", "run": "r1", "ref": 2}))
        .await;
    let request = next_cancel(&mut a).await;
    assert_eq!(
        (request.user.as_str(), request.run.as_str()),
        ("alice", "r1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_alone_answers_unknown_run_for_a_run_it_does_not_have() {
    let redis = Redis::start().await;
    let b = node(&redis, "b", |_| {}).await;
    joined(&[&b]).await;
    let mut alice = WsClient::welcomed(b.addr, "user=alice").await;
    let answer = cancel(&mut alice, "r1", 5).await;
    assert_eq!(
        (&answer["code"], &answer["ref"]),
        (&json!("unknown_run"), &json!(5))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_node_that_dies_before_answering_leaves_the_client_backend_unavailable() {
    let redis = Redis::start().await;
    let mut a = node(&redis, "a", |_| {}).await;
    let b = node(&redis, "b", |o| {
        o.cancel_timeout = Duration::from_millis(300)
    })
    .await;
    joined(&[&a, &b]).await;
    started(&a, "alice", "r1").await;
    let mut phone = WsClient::welcomed(b.addr, "user=alice").await;
    phone
        .send(json!({"type": "cancel", "run": "r1", "ref": 8}))
        .await;
    let request = next_cancel(&mut a).await;
    // The node crashes before its application answers.
    a.bridge.abort();
    let answer = phone.json().await;
    assert_eq!(
        (&answer["code"], &answer["ref"]),
        (&json!("backend_unavailable"), &json!(8)),
        "{answer}"
    );
    assert_eq!(
        cancels(&b),
        [1, 0, 0, 1],
        "the silent node's cancel timed out"
    );
    // A late answer finds no one waiting on b, and b keeps serving.
    let _ = a
        .handle
        .answer_cancel(request.from, Answer::Reply(json!({})))
        .await;
    let again = cancel(&mut phone, "r1", 9).await;
    assert_eq!(again["ref"], 9, "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_that_cannot_be_asked_with_redis_gone_is_answered_at_once_and_counted_unasked() {
    let mut redis = Redis::start().await;
    // A timeout far past the Redis timeout (2 s): an answer before it was not a timeout.
    let b = node(&redis, "b", |o| o.cancel_timeout = Duration::from_secs(60)).await;
    joined(&[&b]).await;
    let mut alice = WsClient::welcomed(b.addr, "user=alice").await;
    redis.kill();
    let answer = cancel(&mut alice, "r1", 4).await;
    assert_eq!(
        (&answer["code"], &answer["ref"]),
        (&json!("backend_unavailable"), &json!(4)),
        "{answer}"
    );
    assert_eq!(cancels(&b), [1, 1, 0, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_cancels_and_verdicts_on_the_control_channel_are_counted_and_ignored() {
    let redis = Redis::start().await;
    let b = node(&redis, "b", |_| {}).await;
    joined(&[&b]).await;
    let client = redis::Client::open(redis.url()).expect("a url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let hostile = [
        json!({"origin": "x", "cancel": {"ticket": 1, "user": "alice"}}),
        json!({"origin": "x", "verdict": {"ticket": {"node": "b", "id": 0}, "outcome": "maybe"}}),
        json!({"origin": "x", "verdict": {"ticket": {"node": "b", "id": 0},
            "outcome": {"error": {"code": "Not A Code", "message": ""}}}}),
    ];
    for message in &hostile {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("sb:control")
            .arg(message.to_string())
            .query_async(&mut conn)
            .await
            .expect("published");
    }
    eventually("the malformed messages counted", || {
        let malformed = b.bridge.stats().malformed;
        async move { malformed >= 3 }
    })
    .await;
    let mut alice = WsClient::welcomed(b.addr, "user=alice").await;
    let answer = cancel(&mut alice, "r1", 1).await;
    assert_eq!(answer["code"], "unknown_run", "{answer}");
}
