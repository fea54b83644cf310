//! Two servers in this process joined by one real Redis, and what a test asks of their
//! bridges.

use super::TestServer;
use switchboard_testing::{eventually, Redis};

/// The server settings that join a node to a [`Redis`].
pub trait RedisSettings {
    /// The settings of a node joined to it.
    fn settings(&self) -> String;
    /// The settings of a node whose users may hold `limit` connections across the cluster.
    fn settings_with_user_limit(&self, limit: usize) -> String;
}

impl RedisSettings for Redis {
    fn settings(&self) -> String {
        format!("[redis]\nurl = \"{}\"\n", self.url())
    }

    fn settings_with_user_limit(&self, limit: usize) -> String {
        let limits = "[limits]\nuser_limit_policy = \"reject_new\"\nmax_connections_per_user";
        format!("{}{limits} = {limit}\n", self.settings())
    }
}

/// Two nodes (in this process) joined by `redis`.
pub async fn two_nodes(redis: &Redis) -> [TestServer; 2] {
    let settings = redis.settings();
    [
        TestServer::with(&settings).await,
        TestServer::with(&settings).await,
    ]
}

/// Shut both nodes down.
pub async fn shut_down(nodes: [TestServer; 2]) {
    for mut node in nodes {
        node.shutdown().await;
    }
}

/// Wait until the bridge of `server` (in this process) has subscribed
/// `channel`: a publish on another node before that does not reach it.
pub async fn subscribed(server: &TestServer, channel: &str) {
    subscription(server, channel, true).await;
}

/// Wait until the bridge of `server` (in this process) no longer subscribes `channel`.
pub async fn unsubscribed(server: &TestServer, channel: &str) {
    subscription(server, channel, false).await;
}

async fn subscription(server: &TestServer, channel: &str, wanted: bool) {
    let bridge = bridge(server);
    eventually(&format!("{channel} subscribed: {wanted}"), || {
        let subscribed = bridge.subscriptions().iter().any(|c| c == channel);
        async move { subscribed == wanted }
    })
    .await;
}

/// The bridge of `server` (in this process).
pub fn bridge(server: &TestServer) -> switchboard_redis::Bridge<switchboard_tokio::Tokio> {
    server
        .running
        .as_ref()
        .expect("a server in this process")
        .bridge
        .clone()
        .expect("a bridge")
}
