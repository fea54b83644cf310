//! A node with shared streams whose call to the sequencer fails after Redis ran it: the
//! entry was numbered, published and delivered (this node's subscription included), but the
//! reply never reached the node. A proxy in front of Redis holds back Redis' answers on the
//! command connection that sent the entry, then cuts that connection, so the failure falls
//! exactly there. The node must not deliver the entry again in its own epoch. Timeouts only
//! guard against hangs; nothing asserts how long anything took.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::proxy::Proxy;
use support::{shared_node_at, Node};
use switchboard::Target;
use switchboard_redis::BridgeOptions;
use switchboard_testing::{eventually, Redis, WsClient};

/// Redis answers late enough for the proxy to hold its answer as long as the test needs: the
/// failure is the cut, never a timeout.
fn patient(options: &mut BridgeOptions) {
    options.timeout = Duration::from_secs(60);
}

fn alice() -> Target {
    Target::User("alice".into())
}

/// Node `a` over a proxy in front of `redis`, with alice connected there.
async fn alice_on_a(redis: &Redis) -> (Proxy, Node, WsClient) {
    let proxy = Proxy::start(redis).await;
    let a = shared_node_at(&proxy.url(), "a", patient).await;
    let alice = WsClient::welcomed(a.addr, "user=alice").await;
    a.subscribed("sb:user:alice").await;
    (proxy, a, alice)
}

/// Publish `event` to alice with Redis' reply to its script held back; what alice reads:
/// the entry as the sequencer published it, before the node has its reply.
async fn publish_with_reply_held(
    proxy: &Proxy,
    a: &Node,
    alice_ws: &mut WsClient,
    event: &str,
) -> Value {
    proxy.hold_answers_to(&format!(r#""event":"{event}""#));
    a.publish(alice(), event).await;
    let read = alice_ws.json().await;
    assert_eq!(read["event"], event, "{read}");
    eventually("the script's reply held", || {
        let holding = proxy.holding();
        async move { holding }
    })
    .await;
    read
}

/// Redis stays up; only the command connection is cut after the script ran. The entry's
/// readers get it once, and the next entry follows it in the same epoch, without a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_whose_reply_was_cut_is_delivered_once() {
    let redis = Redis::start().await;
    let (proxy, a, mut alice_ws) = alice_on_a(&redis).await;
    let first = publish_with_reply_held(&proxy, &a, &mut alice_ws, "first").await;
    proxy.cut();

    a.publish(alice(), "second").await;
    let second = alice_ws.json().await;
    assert_eq!(second["event"], "second", "{second}");
    assert_eq!(
        (&second["epoch"], second["seq"].as_u64()),
        (&first["epoch"], first["seq"].as_u64().map(|seq| seq + 1))
    );
    // Counted once the reply is read, which may come after the delivery.
    eventually("the second entry counted", || async {
        a.bridge.stats().sequenced == 2
    })
    .await;
    assert_eq!(a.bridge.stats().unsequenced, 0);
}

/// Redis dies after the script ran and before its reply reached the node: the readers, who
/// got the entry from the sequencer, get it once; what follows is delivered in the node's own
/// epoch after an `epoch` gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_sequenced_before_redis_died_is_not_delivered_again() {
    let mut redis = Redis::start().await;
    let (proxy, a, mut alice_ws) = alice_on_a(&redis).await;
    let before = publish_with_reply_held(&proxy, &a, &mut alice_ws, "before").await;
    redis.kill();
    proxy.cut();

    a.publish(alice(), "during").await;
    let gap = alice_ws.json().await;
    assert_eq!(
        (gap["type"].as_str(), gap["reason"].as_str()),
        (Some("gap"), Some("epoch")),
        "{gap}"
    );
    let during = alice_ws.json().await;
    assert_eq!(during["event"], "during", "{during}");
    assert_ne!(during["epoch"], before["epoch"]);
    let stats = a.bridge.stats();
    assert_eq!((stats.sequenced, stats.unsequenced), (1, 1));
}
