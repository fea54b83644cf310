//! Cross-node latency of a publish → receive loop between two nodes over one redis-server, with
//! and without a concurrent join/leave loop that names an old position in a room with a large
//! shared history.
//!
//! ```sh
//! cargo run --release -p switchboard-redis --example cross_node_latency -- [rounds] [pings]
//! ```
//!
//! Starts `redis-server` from PATH on a free port and two nodes in this process (two shards
//! each, shared streams, default history bounds), each with its own WebSocket listener and its
//! own bridge. Node A publishes 200 messages of 64 KiB to the room `archive`. Then, `rounds`
//! times (default 3), it measures `pings` (default 200) publishes through node A's handle to
//! the room `ping`, one every 20 ms, each timed until a client on node B receives it: first
//! alone (`quiet`), then while another client on node B joins `archive` with `since` its first
//! entry (an old position), reads the `joined`, the `gap` and the replay, leaves, and joins
//! again, at most ten times a second (`joins`). It prints the p50, p99 and maximum of each
//! phase over all rounds, the joins made and their ratio.

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard::{Config, Message, Target};
use switchboard_redis::{Bridge, BridgeOptions};
use switchboard_testing::{authenticate, Redis, WsClient};
use switchboard_tokio::{cluster_channel, Builder, Handle, Tokio};
use tokio::net::TcpListener;

const ARCHIVE_ENTRIES: usize = 200;
const ARCHIVE_ENTRY_BYTES: usize = 64 * 1024;
const PING_EVERY: Duration = Duration::from_millis(20);
const JOIN_EVERY: Duration = Duration::from_millis(100);

struct Node {
    handle: Handle,
    _bridge: Bridge<Tokio>,
    addr: SocketAddr,
}

async fn node(redis: &Redis, name: &str) -> Node {
    let mut config = Config::development();
    config.shared_streams = true;
    config.heartbeat.interval = Duration::from_secs(60);
    config.heartbeat.timeout = Duration::from_secs(180);
    config.limits.messages_per_second = 10_000;
    config.limits.message_burst = 10_000;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("bound");
    let (sink, cluster) = cluster_channel();
    let (handle, _events) = Builder::new(config).shards(2).cluster(sink).start();
    let mut options = BridgeOptions::new(redis.url());
    options.node = name.to_owned();
    let bridge = Bridge::start(handle.clone(), cluster, options)
        .await
        .expect("the bridge starts");
    tokio::spawn(handle.clone().serve(listener, authenticate));
    Node {
        handle,
        _bridge: bridge,
        addr,
    }
}

/// Join `archive` with `since`, read up to the room's head, leave; until `stop`.
async fn join_leave_loop(
    addr: SocketAddr,
    since: Value,
    stop: Arc<AtomicBool>,
    joins: Arc<AtomicU64>,
) {
    let mut client = WsClient::welcomed(addr, "user=joiner").await;
    let mut tick = tokio::time::interval(JOIN_EVERY);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        client
            .send(json!({"type": "join", "room": "archive", "since": since}))
            .await;
        let joined = client.next_of("joined").await;
        loop {
            let frame = client.json().await;
            if frame["type"] == "message" && frame["seq"] == joined["seq"] {
                break;
            }
        }
        client
            .send(json!({"type": "leave", "room": "archive"}))
            .await;
        client.next_of("left").await;
        joins.fetch_add(1, Ordering::Relaxed);
    }
}

/// `pings` publishes through `from` to `ping`, each timed until `receiver` reads it.
async fn pings(from: &Handle, receiver: &mut WsClient, pings: usize, out: &mut Vec<Duration>) {
    let mut tick = tokio::time::interval(PING_EVERY);
    for i in 0..pings {
        tick.tick().await;
        let sent = Instant::now();
        from.publish(Target::Room("ping".into()), Message::new("ping", json!(i)))
            .await
            .expect("published");
        loop {
            let frame = receiver.json().await;
            if frame["type"] == "message" && frame["data"] == json!(i) {
                break;
            }
        }
        out.push(sent.elapsed());
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn summary(mut latencies: Vec<Duration>) -> (f64, f64, f64) {
    latencies.sort();
    let max = latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    (
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        max,
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let rounds = args.next().unwrap_or(3);
    let per_round = args.next().unwrap_or(200);
    let redis = Redis::start().await;
    let a = node(&redis, "a").await;
    let b = node(&redis, "b").await;

    // The archive: 200 x 64 KiB, numbered by Redis (read back by a member on node A).
    let mut reader = WsClient::welcomed(a.addr, "user=archivist").await;
    reader.join("archive").await;
    let payload = "x".repeat(ARCHIVE_ENTRY_BYTES);
    let mut first = Value::Null;
    for i in 0..ARCHIVE_ENTRIES {
        let message = Message::new("archived", json!({"i": i, "payload": payload}));
        a.handle
            .publish(Target::Room("archive".into()), message)
            .await
            .expect("published");
        // Read as it comes: 12 MiB at once would overflow the reader's queue.
        let frame = reader.json().await;
        if i == 0 {
            first = frame;
        }
    }
    reader.close().await;
    let since = json!({"epoch": first["epoch"], "seq": first["seq"]});

    let mut receiver = WsClient::welcomed(b.addr, "user=receiver").await;
    receiver.join("ping").await;
    let (mut quiet, mut loaded) = (Vec::new(), Vec::new());
    let joins = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut joining = Duration::ZERO;
    for _ in 0..rounds {
        pings(&a.handle, &mut receiver, per_round, &mut quiet).await;
        let stop = Arc::new(AtomicBool::new(false));
        let looping = tokio::spawn(join_leave_loop(
            b.addr,
            since.clone(),
            stop.clone(),
            joins.clone(),
        ));
        let from = Instant::now();
        pings(&a.handle, &mut receiver, per_round, &mut loaded).await;
        joining += from.elapsed();
        stop.store(true, Ordering::Relaxed);
        looping.await.expect("the join loop ends");
    }
    let (q50, q99, qmax) = summary(quiet);
    let (l50, l99, lmax) = summary(loaded);
    let joins = joins.load(Ordering::Relaxed);
    println!(
        "rounds {rounds} x {per_round} pings every {PING_EVERY:?}, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("phase   p50 ms   p99 ms   max ms");
    println!("quiet {q50:8.2} {q99:8.2} {qmax:8.2}");
    println!(
        "joins {l50:8.2} {l99:8.2} {lmax:8.2}   ({joins} joins, {:.1}/s)",
        joins as f64 / joining.as_secs_f64()
    );
    println!(
        "ratio {:8.2} {:8.2} {:8.2}",
        l50 / q50,
        l99 / q99,
        lmax / qmax
    );
}
