//! Nodes joined by a real Redis, in this process: each a sharded switchboard with its own
//! WebSocket listener, its own bridge and its own Redis connections, started as the server
//! starts one (the hubs and the bridge keep the same history bounds).

#![allow(dead_code)] // each test file uses its own subset

pub mod proxy;

use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;
use switchboard::{Config, HistoryConfig, Message, Target};
use switchboard_redis::{Bridge, BridgeOptions};
use switchboard_testing::{authenticate, eventually, Redis};
use switchboard_tokio::{cluster_channel, Builder, Events, Handle, Tokio};
use tokio::net::TcpListener;

fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// One node: two shards in a cluster, a WebSocket listener, a bridge reading the hubs' cluster
/// sink, and the application's events (read only by the tests of what the application is
/// told: nothing of the cluster depends on them).
pub struct Node {
    pub handle: Handle,
    pub bridge: Bridge<Tokio>,
    pub addr: SocketAddr,
    pub events: Events,
}

/// A node whose streams are numbered per node.
pub async fn node(redis: &Redis, name: &str, tune: impl FnOnce(&mut BridgeOptions)) -> Node {
    start_node(&redis.url(), name, false, None, tune).await
}

/// A node whose user and room streams are numbered by the shared sequencer in Redis.
pub async fn shared_node(redis: &Redis, name: &str) -> Node {
    start_node(&redis.url(), name, true, None, |_| {}).await
}

/// A node with shared streams over the Redis at `url` (a proxy in front of one).
pub async fn shared_node_at(url: &str, name: &str, tune: impl FnOnce(&mut BridgeOptions)) -> Node {
    start_node(url, name, true, None, tune).await
}

/// A node with shared streams over the Redis at `url`, whose hubs and bridge keep `history`.
pub async fn history_node(
    url: &str,
    name: &str,
    history: &HistoryConfig,
    tune: impl FnOnce(&mut BridgeOptions),
) -> Node {
    start_node(url, name, true, Some(history), tune).await
}

async fn start_node(
    url: &str,
    name: &str,
    shared_streams: bool,
    history: Option<&HistoryConfig>,
    tune: impl FnOnce(&mut BridgeOptions),
) -> Node {
    let mut config = Config::development();
    config.shared_streams = shared_streams;
    config.heartbeat.interval = Duration::from_secs(60);
    config.heartbeat.timeout = Duration::from_secs(180);
    config.limits.max_connections_per_user = 10;
    if let Some(history) = history {
        config.history = history.clone();
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("bound");
    let mut options = BridgeOptions::new(url);
    options.node = name.to_owned();
    options.backoff_max = Duration::from_millis(300);
    options.timeout = Duration::from_millis(500);
    options.history = config.history.clone();
    tune(&mut options);
    let (sink, cluster) = cluster_channel();
    let (handle, events) = Builder::new(config)
        .shards(2)
        .close_timeout(Duration::from_millis(500))
        .cluster(sink)
        .start();
    let bridge = Bridge::start(handle.clone(), cluster, options)
        .await
        .expect("the bridge starts");
    tokio::spawn(handle.clone().serve(listener, authenticate));
    Node {
        handle,
        bridge,
        addr,
        events,
    }
}

impl Node {
    /// Wait until this node's bridge is subscribed to `channel`.
    pub async fn subscribed(&self, channel: &str) {
        let bridge = &self.bridge;
        eventually(&format!("{} to subscribe {channel}", bridge.node()), || {
            let subscribed = bridge.subscriptions().iter().any(|c| c == channel);
            async move { subscribed }
        })
        .await;
    }

    /// Wait until this node's bridge is no longer subscribed to `channel`.
    pub async fn unsubscribed(&self, channel: &str) {
        let bridge = &self.bridge;
        eventually(
            &format!("{} to unsubscribe {channel}", bridge.node()),
            || {
                let subscribed = bridge.subscriptions().iter().any(|c| c == channel);
                async move { !subscribed }
            },
        )
        .await;
    }

    /// Publish an empty `event` to `to`.
    pub async fn publish(&self, to: Target, event: &str) {
        self.publish_data(to, event, json!({})).await;
    }

    /// Publish `event` with `data` to `to`.
    pub async fn publish_data(&self, to: Target, event: &str, data: serde_json::Value) {
        self.handle
            .publish(to, Message::new(event, data))
            .await
            .expect("published");
    }
}

pub fn room(name: &str) -> Target {
    Target::Room(name.into())
}
