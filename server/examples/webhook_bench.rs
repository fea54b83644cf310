//! `webhook_bench`: how many client frames a server forwards to a local backend per second,
//! and the reply round trip a client sees (frame sent → `reply` received, p50 and p99).
//!
//! It starts a server in this process (`[frames] types = ["user_message"]`, the webhook at a
//! local backend that answers every event with a reply, as an array of answers for a batch),
//! connects `--users` clients (one per user, so the backend sees that many independent
//! streams), and has each send a frame, wait for its reply and send the next, for `--seconds`.
//! The client rate limit is lifted so that it is the webhook that is measured.
//!
//! ```sh
//! cargo build --release -p switchboard-server --example webhook_bench
//! target/release/examples/webhook_bench --users 100 --seconds 10
//! target/release/examples/webhook_bench --users 100 --seconds 10 --batch-max 32
//! ```

use axum::body::Bytes;
use axum::routing::post;
use axum::Router;
use clap::Parser;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use switchboard_server::auth::TokenKeys;
use switchboard_server::settings::{FileSettings, Overrides, Settings};
use switchboard_testing::WsClient;

const SECRET: &str = "webhook-bench-secret-0123456789abcdef";

#[derive(Parser)]
struct Args {
    /// Clients, one per user.
    #[arg(long, default_value_t = 100)]
    users: usize,
    /// How long the clients send.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// `[webhook] batch_max` (1: no batching).
    #[arg(long, default_value_t = 1)]
    batch_max: usize,
}

/// The backend: a reply to every event, by id for a batch.
async fn backend(body: Bytes) -> String {
    let event: Value = serde_json::from_slice(&body).unwrap_or_default();
    match event.as_array() {
        Some(batch) => {
            let answers: Vec<Value> = (batch.iter())
                .map(|e| json!({"id": e["id"], "reply": {"ok": true}}))
                .collect();
            json!({ "answers": answers }).to_string()
        }
        None => json!({"reply": {"ok": true}}).to_string(),
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = Router::new().route("/hook", post(backend));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let file: FileSettings = toml::from_str(&format!(
        "[frames]\ntypes = [\"user_message\"]\n[webhook]\nurl = \"{hook}\"\nsecret = \"{SECRET}\"\n\
         queue_size = 100000\nbatch_max = {}\n[limits]\nmessages_per_second = 1000000\n\
         message_burst = 1000000\nmax_connections = 100000",
        args.batch_max
    ))
    .expect("valid settings");
    let overrides = Overrides {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        secret: Some(SECRET.into()),
        ..Overrides::default()
    };
    let settings = Settings::resolve(file, &overrides).expect("valid settings");
    let running = switchboard_server::start(settings).await.expect("a server");
    let addr = running.addr;

    // The clients start sending as each connects: the clock starts before the first.
    let started = Instant::now();
    let until = started + Duration::from_secs(args.seconds);
    let mut clients = Vec::new();
    for i in 0..args.users {
        let token = TokenKeys::new(SECRET).mint(&format!("u{i}"), None, Duration::from_secs(600));
        let mut client = WsClient::welcomed(addr, &format!("token={token}")).await;
        clients.push(tokio::spawn(async move {
            let mut round_trips = Vec::new();
            let mut n = 0u64;
            while Instant::now() < until {
                let sent = Instant::now();
                client
                    .send(json!({"type": "user_message", "data": {"n": n}, "ref": n}))
                    .await;
                let reply = client.next_of("reply").await;
                assert_eq!(reply["ref"], n, "{reply}");
                round_trips.push(sent.elapsed());
                n += 1;
            }
            round_trips
        }));
    }
    let mut all = Vec::new();
    for client in clients {
        all.extend(client.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    println!(
        "users {} batch_max {}: {} frames in {:.1} s = {:.0} frames/s; reply round trip p50 {:.2} ms, p99 {:.2} ms",
        args.users,
        args.batch_max,
        all.len(),
        elapsed,
        all.len() as f64 / elapsed,
        at(0.50).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0,
    );
}
