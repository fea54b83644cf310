//! A throwaway `redis-server`.

use crate::eventually;
use std::process::{Child, Command, Stdio};

/// A redis-server process from PATH on a free port, without persistence, killed when dropped.
#[derive(Debug)]
pub struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    /// Start one and wait until it listens. Panics if `redis-server` is not on PATH.
    pub async fn start() -> Redis {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            probe.local_addr().expect("bound").port()
        };
        let mut redis = Redis { port, child: None };
        redis.run().await;
        redis
    }

    /// Its URL, `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    async fn run(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "these tests need redis-server on PATH (apt-get install -y redis-server): {e}"
                )
            });
        self.child = Some(child);
        let port = self.port;
        eventually("redis-server to listen", || async move {
            async_net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
    }

    /// Kill it (an outage): every key is lost.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port, empty, after [`Redis::kill`].
    pub async fn restart(&mut self) {
        self.run().await;
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
