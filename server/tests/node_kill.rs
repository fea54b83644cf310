//! A node of a cluster killed outright (SIGKILL: no shutdown, no close frame, nothing
//! flushed, its Redis leases left to expire): its clients lose nothing that shared streams
//! numbered, because they resume on another node from their own positions. Starts
//! `redis-server` from PATH on a free port and the `switchboard` binary as the node to kill.

mod support;

use serde_json::{json, Value};
use support::*;
use switchboard_testing::{Received, Redis};

/// A client that read part of its stream on a node that is then killed reconnects to the
/// other node with its position and receives exactly what was published meanwhile, with the
/// same numbers and epoch, then what follows live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_on_another_node_after_its_node_is_killed_outright() {
    let redis = Redis::start().await;
    let mut doomed = ServerProcess::serve(&[("SWITCHBOARD_REDIS_URL", &redis.url())]);
    let survivor = TestServer::with(&format!("[redis]\nurl = \"{}\"\n", redis.url())).await;
    let mut alice = doomed.server.connect("alice").await;
    let publish =
        |event: &'static str| survivor.publish(json!({"user": "alice"}), event, json!(null));
    publish("m1").await;
    publish("m2").await;
    let mut last = Value::Null;
    for expected in ["m1", "m2"] {
        last = alice.next_of("message").await;
        assert_eq!(last["event"], expected, "{last}");
    }
    let (epoch, seq) = (
        last["epoch"].as_u64().unwrap(),
        last["seq"].as_u64().unwrap(),
    );

    doomed.kill();
    assert_eq!(
        alice.read().await,
        Received::Closed(None),
        "a killed node sends no close frame"
    );
    publish("m3").await;
    publish("m4").await;

    let mut back = survivor
        .connect_with("alice", &format!("&resume={epoch}:{seq}"))
        .await;
    for (event, n) in [("m3", seq + 1), ("m4", seq + 2)] {
        let frame = back.next_of("message").await;
        assert_eq!(
            (
                &frame["event"],
                frame["seq"].as_u64(),
                frame["epoch"].as_u64()
            ),
            (&json!(event), Some(n), Some(epoch)),
            "{frame}"
        );
    }
    publish("m5").await;
    let live = back.next_of("message").await;
    assert_eq!(
        (&live["event"], live["seq"].as_u64()),
        (&json!("m5"), Some(seq + 3))
    );
    assert_eq!(back.fence().await, Vec::<Value>::new(), "nothing twice");
}
