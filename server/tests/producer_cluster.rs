//! The producer channel in a cluster (two servers joined by one real Redis, shared streams):
//! a run produced over a channel on one node reaches its reader on the other, and when the
//! channel drops the reader there gets `producer_lost`. A cancel reaches the run only through
//! the node whose API its producer uses. Starts `redis-server` from PATH on a free port.

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
    // Only the run's node knows the run: a cancel through the other node finds none.
    alice
        .send(json!({"type": "cancel", "run": "r1", "ref": 1}))
        .await;
    assert_eq!(alice.next_of("error").await["code"], "unknown_run");
    drop(producer);
    let lost = alice.next_of("producer_lost").await;
    assert_eq!(lost["run"], "r1");
    shut_down([one, two]).await;
}
