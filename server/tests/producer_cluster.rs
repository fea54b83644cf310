//! The producer channel in a cluster (two servers joined by one real Redis, shared streams):
//! a run produced over a channel on one node reaches its reader on the other, and when the
//! channel drops the reader there gets `producer_lost`. A client's cancel on one node reaches
//! the run's producer on the other, over Redis, and the client is answered once the producer
//! was told (the asking node's `/metrics` counts it asked and answered); a run no node has for
//! the client's user is `unknown_run`. A tab opened on the other node mid-run gets the run so
//! far. Starts `redis-server` from PATH on a free port.

mod support;

use serde_json::json;
use support::cluster::*;
use support::producer::{delta, started, Producer};
use switchboard_testing::Redis;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_dropped_on_one_node_ends_its_run_for_readers_on_the_other() {
    let redis = Redis::start().await;
    let [one, two] = two_nodes(&redis).await;
    let mut alice = two.connect("alice").await;
    let mut producer = Producer::open(&one).await;
    assert_eq!(
        producer.event("alice", "r1", 1, started(None)).await["type"],
        "ack"
    );
    assert_eq!(alice.next_of("agent_started").await["run"], "r1");
    let ack = producer.event("alice", "r1", 2, delta(0, "half")).await;
    // Redis numbers shared streams: as over HTTP, the ack carries no position.
    assert_eq!(
        (&ack["type"], ack.get("position")),
        (&json!("ack"), None),
        "{ack}"
    );
    assert_eq!(alice.next_of("agent_message_delta").await["text"], "half");
    drop(producer);
    let lost = alice.next_of("producer_lost").await;
    assert_eq!(lost["run"], "r1");
    shut_down([one, two]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_on_one_node_reaches_the_runs_producer_on_the_other_and_is_answered() {
    let redis = Redis::start().await;
    let [one, two] = two_nodes(&redis).await;
    let mut alice = two.connect("alice").await;
    let mut producer = Producer::open(&one).await;
    producer.event("alice", "r1", 1, started(None)).await;
    assert_eq!(alice.next_of("agent_started").await["run"], "r1");
    alice
        .send(json!({"type": "cancel", "run": "r1", "ref": 9}))
        .await;
    let order = producer.answer().await;
    assert_eq!(
        order,
        json!({"type": "cancel", "user": "alice", "run": "r1"})
    );
    let reply = alice.next_of("reply").await;
    assert_eq!(
        (reply["ref"].clone(), reply["data"]["run"].clone()),
        (json!(9), json!("r1"))
    );
    // The asking node counts the cancel before it answers the client.
    for (name, count) in [
        ("cluster_cancels_asked_total", 1.0),
        ("cluster_cancels_answered_total", 1.0),
        ("cluster_cancels_timed_out_total", 0.0),
        ("cluster_cancels_unasked_total", 0.0),
    ] {
        assert_eq!(two.metric(name).await, Some(count), "{name}");
    }
    assert_eq!(one.metric("cluster_cancels_asked_total").await, Some(0.0));
    let reason = json!({"event": "agent_cancelled", "reason": "the user asked"});
    assert_eq!(
        producer.event("alice", "r1", 2, reason).await["type"],
        "ack"
    );
    let cancelled = alice.next_of("agent_cancelled").await;
    assert_eq!(cancelled["reason"], "the user asked");
    shut_down([one, two]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_for_a_run_no_node_has_for_the_user_is_unknown_run_and_tells_no_producer() {
    let redis = Redis::start().await;
    let [one, two] = two_nodes(&redis).await;
    let mut mallory = two.connect("mallory").await;
    let mut producer = Producer::open(&one).await;
    producer.event("alice", "r1", 1, started(None)).await;
    // Alice's run on node one, under mallory's user: no node has it for her.
    mallory
        .send(json!({"type": "cancel", "run": "r1", "ref": 1}))
        .await;
    let theirs = mallory.next_of("error").await;
    mallory
        .send(json!({"type": "cancel", "run": "nothing", "ref": 1}))
        .await;
    let unknown = mallory.next_of("error").await;
    assert_eq!(theirs["code"], "unknown_run", "{theirs}");
    assert_eq!(
        theirs, unknown,
        "another user's run is answered as a run no node has"
    );
    // The producer heard no cancel: the next frame it reads is the ack of its next event.
    let ack = producer.event("alice", "r1", 2, delta(0, "on")).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    shut_down([one, two]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_opened_on_another_node_mid_run_catches_up_with_the_run_so_far() {
    let redis = Redis::start().await;
    let [one, two] = two_nodes(&redis).await;
    // Alice is online on node one when her run starts there: nothing waits as pending.
    let mut first_tab = one.connect("alice").await;
    let mut producer = Producer::open(&one).await;
    producer.event("alice", "r1", 1, started(None)).await;
    producer.event("alice", "r1", 2, delta(0, "half")).await;
    assert_eq!(first_tab.next_of("agent_started").await["run"], "r1");
    assert_eq!(
        first_tab.next_of("agent_message_delta").await["text"],
        "half"
    );
    // A second tab lands on node two, without a position: it gets the run so far, as a tab on
    // the run's own node would.
    let mut on_two = two.connect("alice").await;
    let mut on_one = one.connect("alice").await;
    for tab in [&mut on_two, &mut on_one] {
        let started = tab.next_of("agent_started").await;
        assert_eq!(started["run"], "r1", "{started}");
        assert_eq!(tab.next_of("agent_message_delta").await["text"], "half");
    }
    let last = json!({"event": "agent_message_delta", "message": "m", "offset": 4,
        "text": "!", "final": true});
    producer.event("alice", "r1", 3, last).await;
    let done = json!({"event": "agent_completed", "result": "done"});
    let ack = producer.event("alice", "r1", 4, done).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(on_two.next_of("agent_completed").await["run"], "r1");
    // Once the run has ended a new tab is not told of it, on either node (a user may have
    // three connections: two close first).
    first_tab.close().await;
    on_one.close().await;
    let mut late_two = two.connect("alice").await;
    let mut late_one = one.connect("alice").await;
    assert_eq!(late_two.fence().await, Vec::<serde_json::Value>::new());
    assert_eq!(late_one.fence().await, Vec::<serde_json::Value>::new());
    shut_down([one, two]).await;
}
