//! A throwaway `redis-server`.

use crate::guard;
use async_io::Timer;
use async_net::TcpStream;
use futures_util::future::{self, Either};
use futures_util::{AsyncReadExt, AsyncWriteExt};
use std::pin::pin;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A redis-server process from PATH on a free port, without persistence, killed when dropped.
#[derive(Debug)]
pub struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    /// Start one and wait until it answers. Panics if `redis-server` is not on PATH.
    ///
    /// A port found free may be taken by another test's listener before redis-server binds
    /// it: redis-server then exits, and another port is tried.
    pub async fn start() -> Redis {
        loop {
            let port = {
                let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
                probe.local_addr().expect("bound").port()
            };
            let mut redis = Redis { port, child: None };
            if redis.run().await {
                return redis;
            }
        }
    }

    /// Its URL, `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Start redis-server on the port and wait until it answers as itself; false if it exited
    /// first (the port was taken).
    async fn run(&mut self) -> bool {
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "these tests need redis-server on PATH (apt-get install -y redis-server): {e}"
                )
            });
        let port = self.port;
        let started = guard("redis-server to answer", async {
            loop {
                if answers_as(port, child.id()).await {
                    return true;
                }
                if let Ok(Some(_)) = child.try_wait() {
                    return false;
                }
                Timer::after(Duration::from_millis(20)).await;
            }
        })
        .await;
        self.child = Some(child);
        started
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
        assert!(self.run().await, "redis-server restarts on its port");
    }
}

/// Whether the redis-server with process id `pid` listens on `port`: its `INFO server` answer
/// names that process. Another test's redis-server that won the port first answers with its
/// own id (and whatever else listens there does not answer, or not within a moment), so a
/// test never shares a server it did not start.
async fn answers_as(port: u16, pid: u32) -> bool {
    let info = async {
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        tcp.write_all(b"INFO server\r\n").await.ok()?;
        let mut reply = Vec::new();
        let mut chunk = [0u8; 4096];
        while reply.len() < 64 * 1024 {
            let read = tcp.read(&mut chunk).await.ok()?;
            if read == 0 {
                return None;
            }
            reply.extend_from_slice(&chunk[..read]);
            let text = String::from_utf8_lossy(&reply);
            if let Some(line) = text.split("\r\n").find(|l| l.starts_with("process_id:")) {
                if text.contains(&format!("{line}\r\n")) {
                    return Some(line["process_id:".len()..] == pid.to_string());
                }
            }
        }
        None
    };
    let moment = pin!(Timer::after(Duration::from_millis(500)));
    match future::select(pin!(info), moment).await {
        Either::Left((answered, _)) => answered == Some(true),
        Either::Right(_) => false,
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
