//! Two servers joined by one real Redis (`[redis] url`): the backend API of either node reaches
//! clients on the other. The test starts `redis-server` from PATH on a free port.

mod support;

use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::*;

/// A redis-server process on a free port, without persistence, killed when dropped.
struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    async fn start() -> Redis {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            probe.local_addr().expect("bound").port()
        };
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "these tests need redis-server on PATH (apt-get install -y redis-server): {e}"
                )
            });
        let listening = async {
            while tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(PATIENCE, listening)
            .await
            .expect("redis-server listens");
        Redis { port, child }
    }

    fn settings(&self) -> String {
        format!("[redis]\nurl = \"redis://127.0.0.1:{}/\"\n", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// With `[redis] url`, a publish through one node's API reaches a room member on the other
/// node, and disconnecting a user through one node's API closes the user's connections on the
/// other with 4002.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_of_one_node_reaches_clients_on_another() {
    let redis = Redis::start().await;
    let mut one = TestServer::with(&redis.settings()).await;
    let mut two = TestServer::with(&redis.settings()).await;
    let mut alice = two.connect("alice").await;
    alice.join("lobby").await;
    let bridge = two
        .running
        .as_ref()
        .unwrap()
        .bridge
        .clone()
        .expect("a bridge");
    let subscribed = async {
        while !bridge.subscriptions().iter().any(|c| c == "sb:room:lobby") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PATIENCE, subscribed)
        .await
        .expect("the room subscribed");

    one.publish(json!({"room": "lobby"}), "hello", json!(1))
        .await;
    assert_eq!(alice.next_of("message").await["event"], "hello");

    let (status, answer) = one.api("POST", "/api/users/alice/disconnect", None).await;
    assert_eq!((status, answer["closed"].clone()), (200, json!(0)));
    assert_eq!(alice.closed().await, 4002);
    one.shutdown().await;
    two.shutdown().await;
}
