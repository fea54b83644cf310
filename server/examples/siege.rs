//! `siege`: measures what a hostile client costs a `switchboard serve` process and the clients
//! it serves. It starts the given binary (optionally under `ulimit -n`), connects a bystander
//! WebSocket client, and measures for `--seconds` before and then during an attack that keeps
//! `--count` hostile sockets (or HTTP/2 streams) open, reopening each the server closes:
//!
//! - the server's resident memory (`VmRSS`, the largest of the samples);
//! - the bystander's ping→pong round trip (p50, p99, max), one ping every 40 ms;
//! - `/healthz` over a new connection every 100 ms (answered within 2 s, p99);
//! - the lines the server logged at `WARN` or above.
//!
//! A hostile socket the server closes is reopened a second later.
//!
//! Attacks: `silent` (connect, send nothing), `h2c` (the HTTP/2 preface and SETTINGS, then
//! nothing), `stalled-body` (an API request head announcing 1000 bytes, 10 sent), `bodies`
//! (API requests without the key, each sending 1 MiB − 1 of a 1 MiB body), `h2-streams` (one
//! HTTP/2 connection with `--count` such requests as streams).
//!
//! ```sh
//! cargo build --release -p switchboard-server --example siege
//! target/release/examples/siege --binary target/release/switchboard --attack silent \
//!     --count 300 --ulimit 300
//! ```

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "siege-secret-0123456789abcdef0123456789";
const API_KEY: &str = "siege-api-key-0123456789abcdef012345";
const MIB: usize = 1024 * 1024;
/// The `ref` of the bystander's next ping.
static PINGS: AtomicUsize = AtomicUsize::new(1);

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Attack {
    Silent,
    H2c,
    StalledBody,
    Bodies,
    H2Streams,
}

/// Measure a hostile client's cost to a switchboard server and its bystanders.
#[derive(Debug, Parser)]
struct Cli {
    /// The `switchboard` binary to start.
    #[arg(long, default_value = "target/release/switchboard")]
    binary: String,
    /// What the hostile client does.
    #[arg(long, value_enum)]
    attack: Attack,
    /// Hostile sockets (HTTP/2 streams for `h2-streams`) kept open.
    #[arg(long, default_value_t = 300)]
    count: usize,
    /// Run the server under `ulimit -n` this (soft and hard).
    #[arg(long)]
    ulimit: Option<u32>,
    /// Seconds measured before, and again during, the attack.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
}

/// The server process, its address, and the warnings it logged (how many; the first few).
struct Server {
    child: Child,
    addr: SocketAddr,
    warnings: Arc<AtomicUsize>,
    first_warnings: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    fn start(cli: &Cli) -> Self {
        let limit = cli
            .ulimit
            .map_or_else(String::new, |n| format!("ulimit -n {n} && "));
        let mut child = Command::new("sh")
            .args(["-c", &format!("{limit}exec \"$0\" \"$@\"")])
            .args([&cli.binary, "serve", "--listen", "127.0.0.1:0"])
            .env("SWITCHBOARD_AUTH_SECRET", SECRET)
            .env("SWITCHBOARD_API_KEY", API_KEY)
            .env("SWITCHBOARD_SHARDS", "2")
            .env("RUST_LOG", "warn")
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server starts");
        let stderr = child.stderr.take().expect("piped");
        let warnings = Arc::new(AtomicUsize::new(0));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let first_warnings = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (counted, kept) = (warnings.clone(), first_warnings.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("switchboard listening on http://") {
                    let _ = addr_tx.send(addr.parse::<SocketAddr>().expect("an address"));
                } else if line.contains("WARN") || line.contains("ERROR") {
                    counted.fetch_add(1, Ordering::Relaxed);
                    let mut kept = kept.lock().expect("not poisoned");
                    if kept.len() < 3 {
                        kept.push(line);
                    }
                }
            }
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the server announces its address");
        Server {
            child,
            addr,
            warnings,
            first_warnings,
        }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server's status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client token for `user`, signed with the server's secret.
fn token(user: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({"sub": user, "iat": now, "exp": now + 3600});
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}

/// What one phase measured.
#[derive(Debug, Default)]
struct Figures {
    rss_kib: u64,
    rtts: Vec<Duration>,
    ping_timeouts: usize,
    probes_ok: usize,
    probes_failed: usize,
    probe_times: Vec<Duration>,
    warnings: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

impl Figures {
    fn print(&mut self, phase: &str) {
        self.rtts.sort();
        self.probe_times.sort();
        println!(
            "{phase:<7} rss {:>7} KiB | ping rtt p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} pings, {} unanswered | /healthz {} ok, {} failed, p99 {:.2} ms | {} warnings logged",
            self.rss_kib,
            percentile(&self.rtts, 0.5),
            percentile(&self.rtts, 0.99),
            self.rtts.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
            self.rtts.len(),
            self.ping_timeouts,
            self.probes_ok,
            self.probes_failed,
            percentile(&self.probe_times, 0.99),
            self.warnings,
        );
    }
}

/// Measure for `seconds`: the bystander's pings, `/healthz` probes, the largest RSS.
async fn measure<S>(server: &Server, bystander: &mut S, seconds: u64) -> Figures
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + futures_util::Sink<Message>
        + Unpin,
{
    let warnings_before = server.warnings.load(Ordering::Relaxed);
    let end = Instant::now() + Duration::from_secs(seconds);
    let addr = server.addr;
    let probes = tokio::spawn(async move {
        let mut figures = Figures::default();
        while Instant::now() < end {
            let started = Instant::now();
            match tokio::time::timeout(Duration::from_secs(2), healthz(addr)).await {
                Ok(true) => {
                    figures.probes_ok += 1;
                    figures.probe_times.push(started.elapsed());
                }
                _ => figures.probes_failed += 1,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        figures
    });
    let mut figures = Figures::default();
    while Instant::now() < end {
        let n = PINGS.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let ping = format!(r#"{{"type":"ping","ref":{n}}}"#);
        if bystander.send(Message::text(ping)).await.is_err() {
            panic!("the bystander was disconnected");
        }
        let answered = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(message)) = bystander.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let frame: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                if frame["type"] == "pong" && frame["ref"] == n {
                    return true;
                }
            }
            false
        })
        .await;
        match answered {
            Ok(true) => figures.rtts.push(started.elapsed()),
            _ => figures.ping_timeouts += 1,
        }
        figures.rss_kib = figures.rss_kib.max(server.rss_kib());
        // 25 pings a second: under the hub's inbound rate limit (50 a second).
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let probed = probes.await.expect("the prober");
    figures.probes_ok = probed.probes_ok;
    figures.probes_failed = probed.probes_failed;
    figures.probe_times = probed.probe_times;
    figures.warnings = server.warnings.load(Ordering::Relaxed) - warnings_before;
    figures
}

/// `GET /healthz` over a new connection: answered 200.
async fn healthz(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return false;
    };
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if stream.write_all(request).await.is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    answer.starts_with(b"HTTP/1.1 200")
}

/// One hostile socket, reopened each time the server closes it, until the task is aborted.
async fn hostile_socket(addr: SocketAddr, attack: Attack) {
    let stalled = "POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
    loop {
        if let Ok(mut stream) = TcpStream::connect(addr).await {
            let opening = match attack {
                Attack::Silent => Vec::new(),
                Attack::H2c => [
                    &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..],
                    &[0, 0, 0, 4, 0, 0, 0, 0, 0],
                ]
                .concat(),
                Attack::StalledBody => {
                    format!("{stalled}Content-Length: 1000\r\n\r\n{{\"to\":\"a").into_bytes()
                }
                Attack::Bodies => {
                    let mut bytes = format!("{stalled}Content-Length: {MIB}\r\n\r\n").into_bytes();
                    bytes.resize(bytes.len() + MIB - 1, b' ');
                    bytes
                }
                Attack::H2Streams => unreachable!("one connection of streams"),
            };
            let _ = stream.write_all(&opening).await;
            let mut sink = [0u8; 4096];
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One HTTP/2 connection with `count` unauthenticated API requests whose 1 MiB bodies never
/// end, reopened each time the server closes it, until the task is aborted.
async fn hostile_streams(addr: SocketAddr, count: usize) {
    loop {
        if let Ok(tcp) = TcpStream::connect(addr).await {
            if let Ok((send, connection)) = h2::client::handshake(tcp).await {
                let connection = tokio::spawn(connection);
                let mut held = Vec::new();
                for _ in 0..count {
                    let Ok(mut ready) = send.clone().ready().await else {
                        break;
                    };
                    let request = http::Request::post(format!("http://{addr}/api/publish"))
                        .header("content-type", "application/json")
                        .header("content-length", MIB.to_string())
                        .body(())
                        .unwrap();
                    let Ok((response, mut body)) = ready.send_request(request, false) else {
                        break;
                    };
                    let _ = body.send_data(Bytes::from(vec![b' '; MIB - 1]), false);
                    held.push((response, body));
                }
                let _ = connection.await;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let server = Server::start(&cli);
    let url = format!("ws://{}/ws?token={}", server.addr, token("bystander"));
    let (mut bystander, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("the bystander connects");
    println!(
        "{:?} x {} against {} (ulimit -n {})",
        cli.attack,
        cli.count,
        cli.binary,
        cli.ulimit.map_or("unchanged".into(), |n| n.to_string())
    );
    measure(&server, &mut bystander, 2).await; // warm-up
    measure(&server, &mut bystander, cli.seconds)
        .await
        .print("before");
    let attackers: Vec<_> = match cli.attack {
        Attack::H2Streams => vec![tokio::spawn(hostile_streams(server.addr, cli.count))],
        attack => (0..cli.count)
            .map(|_| tokio::spawn(hostile_socket(server.addr, attack)))
            .collect(),
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    measure(&server, &mut bystander, cli.seconds)
        .await
        .print("during");
    for attacker in attackers {
        attacker.abort();
    }
    for line in server.first_warnings.lock().expect("not poisoned").iter() {
        println!("logged: {line}");
    }
}
