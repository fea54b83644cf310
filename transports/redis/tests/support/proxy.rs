//! A TCP proxy in front of a redis-server that can hold back Redis' answers on the
//! connections that named a given key, until released: a Redis read made as long as a test
//! needs, without slowing anything else down (Redis itself, and every other connection, go on).
//! Or, instead of releasing them, cut those connections: Redis carried out the request, and
//! its answer never arrives.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use switchboard_testing::Redis;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The proxy; it stops with the test's runtime.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

struct Shared {
    /// What a connection must send for Redis' answers to it to be held.
    needle: Mutex<Option<Vec<u8>>>,
    /// Connections whose answers are being held right now.
    holding: AtomicUsize,
    released: watch::Sender<Held>,
}

/// What becomes of held answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    Holding,
    Released,
    Cut,
}

impl Proxy {
    /// Listen on a free port, forwarding every connection to `redis`.
    pub async fn start(redis: &Redis) -> Proxy {
        let target: SocketAddr = redis
            .url()
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .parse()
            .expect("redis://<address>/");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound");
        let shared = Arc::new(Shared {
            needle: Mutex::new(None),
            holding: AtomicUsize::new(0),
            released: watch::Sender::new(Held::Holding),
        });
        let serving = shared.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(redis) = TcpStream::connect(target).await else {
                    continue;
                };
                tokio::spawn(forward(client, redis, serving.clone()));
            }
        });
        Proxy { addr, shared }
    }

    /// The URL to give a node instead of Redis'.
    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// From now on, hold Redis' answers on every connection that sends `needle` (from the
    /// first answer after it), until [`Proxy::release`].
    pub fn hold_answers_to(&self, needle: &str) {
        *self.shared.needle.lock().unwrap() = Some(needle.as_bytes().to_vec());
    }

    /// True while some answer is held.
    pub fn holding(&self) -> bool {
        self.shared.holding.load(Ordering::SeqCst) > 0
    }

    /// Let every held answer through, and hold nothing any more.
    pub fn release(&self) {
        self.shared.released.send_replace(Held::Released);
    }

    /// Close every connection whose answers are held, without them, and hold nothing any more.
    pub fn cut(&self) {
        self.shared.released.send_replace(Held::Cut);
    }
}

async fn forward(client: TcpStream, redis: TcpStream, shared: Arc<Shared>) {
    let _ = client.set_nodelay(true);
    let _ = redis.set_nodelay(true);
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_redis, mut to_redis) = redis.into_split();
    let named = Arc::new(AtomicBool::new(false));
    let naming = named.clone();
    let requests_shared = shared.clone();
    let requests = async move {
        let mut buf = vec![0; 64 * 1024];
        // The end of the previous read, so that a needle cut in two is still found.
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let n = match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let needle = requests_shared.needle.lock().unwrap().clone();
            if let Some(needle) = needle {
                tail.extend_from_slice(&buf[..n]);
                if tail.windows(needle.len()).any(|w| w == needle.as_slice()) {
                    naming.store(true, Ordering::SeqCst);
                }
                let keep = tail.len().saturating_sub(needle.len());
                tail.drain(..keep);
            }
            if to_redis.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let answers = async move {
        let mut buf = vec![0; 64 * 1024];
        let mut released = shared.released.subscribe();
        loop {
            let n = match from_redis.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if named.load(Ordering::SeqCst) && *released.borrow() == Held::Holding {
                shared.holding.fetch_add(1, Ordering::SeqCst);
                let held = released.wait_for(|held| *held != Held::Holding).await;
                let cut = held.is_ok_and(|held| *held == Held::Cut);
                shared.holding.fetch_sub(1, Ordering::SeqCst);
                if cut {
                    // Dropping the half towards the client ends the connection for it.
                    return;
                }
            }
            if to_client.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::join!(requests, answers);
}
