//! A client's `cancel` on a sharded node that is not part of a cluster, over real sockets: a
//! run in progress reaches the application as `Notice::Cancel` from the client, answered
//! with `Handle::answer_cancel`; a run the user does not have is `unknown_run` at once (the
//! shards run as a cluster of their own, but a user's runs all live on its shard, so no
//! other shard is asked).

use serde_json::{json, Value};
use switchboard::{AgentEvent, AgentUpdate, Answer, CancelFrom, Config, Notice};
use switchboard_testing::{authenticate, guard, WsClient};
use switchboard_tokio::{Builder, Events};
use tokio::net::TcpListener;

/// The next cancel the application is handed.
async fn next_cancel(events: &mut Events) -> switchboard::CancelRequest {
    guard("a cancel", async {
        loop {
            if let Notice::Cancel(request) = events.recv().await.expect("running").notice {
                return *request;
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_sharded_node_alone_a_cancel_is_answered_by_the_application_or_unknown_run() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("bound");
    let (handle, mut events) = Builder::new(Config::development()).shards(4).start();
    tokio::spawn(handle.clone().serve(listener, authenticate));
    let update = AgentUpdate {
        run: "r1".into(),
        agent: "planner".into(),
        thread: None,
        event: AgentEvent::AgentStarted { data: Value::Null },
    };
    handle
        .send_agent_update("alice", update)
        .await
        .expect("started");
    let mut alice = WsClient::welcomed(addr, "user=alice").await;
    alice.next_of("agent_started").await;

    alice
        .send(json!({"type": "cancel", "run": "other", "ref": 1}))
        .await;
    let unknown = alice.json().await;
    assert_eq!(
        (&unknown["code"], &unknown["ref"]),
        (&json!("unknown_run"), &json!(1))
    );

    alice
        .send(json!({"type": "cancel", "run": "r1", "ref": 2}))
        .await;
    let request = next_cancel(&mut events).await;
    assert!(
        matches!(request.from, CancelFrom::Client { .. }),
        "{:?}",
        request.from
    );
    let told = Answer::Reply(json!({"run": "r1"}));
    handle
        .answer_cancel(request.from, told)
        .await
        .expect("answered");
    assert_eq!(
        alice.json().await,
        json!({"type": "reply", "data": {"run": "r1"}, "ref": 2})
    );
}
