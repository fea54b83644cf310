//! `producer_bench`: producer → client latency of streamed answer deltas over the producer
//! channel (`/api/producer`, events pipelined, acknowledged asynchronously) against the HTTP
//! runs API (one `POST` per event, each awaited: a run's events must arrive in order), and the
//! time from a producer channel's drop to its reader's `producer_lost`.
//!
//! It starts a server in this process, connects one reader (the run's user), and streams
//! `--events` deltas of an 8-character token at `--rate` events/s (0: as fast as the path
//! takes them). Each delta's latency is its due time (its send at full speed) → the reader's
//! frame holding its text (frames joined for a reader behind count for every delta they hold),
//! so a delta waiting for the previous request to finish counts that wait. Then `--drops` times: a channel
//! starts a run, sends a delta, is dropped, and the reader's wait for `producer_lost` is timed.
//!
//! ```sh
//! cargo build --release -p switchboard-server --example producer_bench
//! target/release/examples/producer_bench --via channel --events 20000 --rate 0
//! target/release/examples/producer_bench --via http --events 20000 --rate 0
//! ```

use clap::{Parser, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_server::auth::TokenKeys;
use switchboard_server::settings::{FileSettings, Overrides, Settings};
use switchboard_testing::WsClient;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "producer-bench-secret-0123456789abcdef";
const KEY: &str = "producer-bench-api-key";
/// Characters per delta.
const TOKEN: u64 = 8;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Via {
    Channel,
    Http,
}

#[derive(Parser)]
struct Args {
    /// How the producer sends.
    #[arg(long, value_enum, default_value = "channel")]
    via: Via,
    /// Deltas streamed.
    #[arg(long, default_value_t = 20_000)]
    events: u64,
    /// Deltas per second (0: as fast as the path takes them).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Channel drops timed.
    #[arg(long, default_value_t = 20)]
    drops: usize,
}

fn delta(user: &str, run: &str, i: u64) -> Value {
    json!({"user": user, "run": run, "ref": i, "event": "agent_message_delta",
           "message": "m", "offset": i * TOKEN, "text": format!("{i:0>8}")})
}

async fn channel(
    addr: std::net::SocketAddr,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let mut request = format!("ws://{addr}/api/producer")
        .into_client_request()
        .unwrap();
    let bearer = format!("Bearer {KEY}").parse().unwrap();
    request.headers_mut().insert("authorization", bearer);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    tokio_tungstenite::client_async(request, tcp)
        .await
        .unwrap()
        .0
}

/// Wait until `sent[i]` is due at `rate` from `start`.
async fn pace(start: Instant, rate: u64, i: u64) {
    if rate > 0 {
        tokio::time::sleep_until((start + Duration::from_secs_f64(i as f64 / rate as f64)).into())
            .await;
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let file: FileSettings =
        toml::from_str("[limits]\nrun_idle_timeout_secs = 3600\n").expect("valid settings");
    let overrides = Overrides {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        secret: Some(SECRET.into()),
        api_key: Some(KEY.into()),
        ..Overrides::default()
    };
    let settings = Settings::resolve(file, &overrides).expect("valid settings");
    let running = switchboard_server::start(settings).await.expect("a server");
    let addr = running.addr;
    let token = TokenKeys::new(SECRET).mint("alice", None, Duration::from_secs(3600));
    let mut reader = WsClient::welcomed(addr, &format!("token={token}")).await;
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/api/runs/alice/r1/events");
    let started = json!({"event": "agent_started", "agent": "bench"});
    let (status, _) = (
        http.post(&url)
            .bearer_auth(KEY)
            .json(&started)
            .send()
            .await
            .unwrap()
            .status(),
        (),
    );
    assert!(status.is_success());
    reader.next_of("agent_started").await;

    let base = Instant::now();
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..args.events).map(|_| AtomicU64::new(0)).collect());
    let (n, rate, via) = (args.events, args.rate, args.via);
    let producer = {
        let sent = sent.clone();
        tokio::spawn(async move {
            // A token is born at its due time (at `--rate`), and waits from then if the path
            // is still busy with the previous one: that wait is part of its latency.
            let stamp = |i: u64| {
                let born = match rate {
                    0 => base.elapsed(),
                    rate => Duration::from_secs_f64(i as f64 / rate as f64),
                };
                sent[i as usize].store(born.as_nanos() as u64, Ordering::Release)
            };
            match via {
                Via::Channel => {
                    let (mut sink, mut acks) = channel(addr).await.split();
                    let acked = tokio::spawn(async move {
                        let mut count = 0;
                        while count < n {
                            match acks.next().await {
                                Some(Ok(Message::Text(t))) => {
                                    assert!(t.contains("\"ack\""), "{t}");
                                    count += 1;
                                }
                                Some(Ok(_)) => {}
                                _ => panic!("the channel closed"),
                            }
                        }
                    });
                    for i in 0..n {
                        pace(base, rate, i).await;
                        stamp(i);
                        sink.send(Message::text(delta("alice", "r1", i).to_string()))
                            .await
                            .unwrap();
                    }
                    acked.await.unwrap();
                }
                Via::Http => {
                    for i in 0..n {
                        pace(base, rate, i).await;
                        stamp(i);
                        let body = delta("alice", "r1", i);
                        let response = http
                            .post(&url)
                            .bearer_auth(KEY)
                            .json(&body)
                            .send()
                            .await
                            .unwrap();
                        assert!(response.status().is_success());
                    }
                }
            }
        })
    };
    let mut latencies = Vec::with_capacity(n as usize);
    let mut received = 0;
    let mut frames = 0u64;
    while received < n * TOKEN {
        let frame = reader.next_of("agent_message_delta").await;
        let at = base.elapsed().as_nanos() as u64;
        let offset = frame["offset"].as_u64().unwrap();
        let len = frame["text"].as_str().unwrap().chars().count() as u64;
        frames += 1;
        for i in (offset.max(received) / TOKEN)..((offset + len) / TOKEN) {
            let s = sent[i as usize].load(Ordering::Acquire);
            latencies.push(Duration::from_nanos(at.saturating_sub(s)));
        }
        received = received.max(offset + len);
    }
    let elapsed = base.elapsed().as_secs_f64();
    producer.await.unwrap();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let name = match via {
        Via::Channel => "channel",
        Via::Http => "http",
    };
    println!(
        "{name}: {n} deltas at {} in {elapsed:.2} s = {:.0} deltas/s; {frames} frames; producer -> client p50 {:.3} ms, p99 {:.3} ms",
        if rate == 0 { "full speed".to_owned() } else { format!("{rate}/s") },
        n as f64 / elapsed,
        at(0.50).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0,
    );

    let mut lost = Vec::new();
    for k in 0..args.drops {
        let run = format!("drop-{k}");
        let mut ws = channel(addr).await;
        let start =
            json!({"user": "alice", "run": run, "event": "agent_started", "agent": "bench"});
        ws.send(Message::text(start.to_string())).await.unwrap();
        ws.send(Message::text(delta("alice", &run, 0).to_string()))
            .await
            .unwrap();
        reader.next_of("agent_message_delta").await;
        let dropped = Instant::now();
        drop(ws);
        let frame = reader.next_of("producer_lost").await;
        lost.push(dropped.elapsed());
        assert_eq!(frame["run"], run.as_str());
    }
    if !lost.is_empty() {
        lost.sort();
        println!(
            "producer_lost after a channel drop ({} drops): p50 {:.3} ms, max {:.3} ms",
            lost.len(),
            lost[lost.len() / 2].as_secs_f64() * 1000.0,
            lost[lost.len() - 1].as_secs_f64() * 1000.0,
        );
    }
}
