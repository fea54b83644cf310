//! A bridge refuses options that cannot make a working node (`BridgeOptions::check`) before it
//! reaches Redis: the URL here answers nothing, so a bridge that tried would fail with a
//! connection error instead.

use redis::ErrorKind;
use std::time::Duration;
use switchboard::Config;
use switchboard_redis::{Bridge, BridgeOptions};
use switchboard_tokio::{cluster_channel, Builder};

async fn start(change: fn(&mut BridgeOptions)) -> redis::RedisError {
    let (sink, cluster) = cluster_channel();
    let (handle, _events) = Builder::new(Config::development()).cluster(sink).start();
    // Port 1: nothing listens there.
    let mut options = BridgeOptions::new("redis://127.0.0.1:1/");
    change(&mut options);
    let refused = Bridge::start(handle.clone(), cluster, options).await;
    handle.shutdown().await;
    refused.expect_err("the bridge must not start")
}

#[tokio::test]
async fn a_bridge_with_a_prefix_that_could_name_another_clusters_keys_does_not_start() {
    let e = start(|o| o.prefix = "sb:room".into()).await;
    assert_eq!(e.kind(), ErrorKind::InvalidClientConfig, "{e}");
    assert!(e.to_string().contains("prefix \"sb:room\""), "{e}");
}

#[tokio::test]
async fn a_bridge_whose_lease_would_lapse_between_heartbeats_does_not_start() {
    let e = start(|o| o.heartbeat = Duration::from_secs(20)).await;
    assert_eq!(e.kind(), ErrorKind::InvalidClientConfig, "{e}");
    assert!(e.to_string().contains("heartbeat"), "{e}");
}

#[tokio::test]
async fn good_options_reach_redis() {
    // The same start with valid options does try the URL: the refusals above are the check's.
    let e = start(|_| {}).await;
    assert_ne!(e.kind(), ErrorKind::InvalidClientConfig, "{e}");
}
