//! `siege`: measures what a hostile client costs a `switchboard serve` process and the clients
//! it serves. It starts the given binary (optionally under `ulimit -n`), connects a bystander
//! WebSocket client, and measures for `--seconds` before and then during an attack by
//! `--count` hostile sockets (or HTTP/2 streams, or WebSocket clients):
//!
//! - the server's resident memory (`VmRSS`, the largest of the samples);
//! - the bystander's ping→pong round trip (p50, p99, max), one ping every 40 ms;
//! - `/healthz` over a new connection every 100 ms (answered within 2 s, p99);
//! - the lines the server logged at `WARN` or above;
//! - the server's `switchboard_history_bytes` gauge at the end of the phase (`n/a` if its
//!   `/metrics` has none).
//!
//! A hostile connection the server closes is reopened a second later; how each ended is
//! tallied and printed, so a run shows whether the attack was refused or kept going. An attack
//! that grows the server past `--rss-cap-mib` ends the measurement there, so that it cannot
//! exhaust the memory of the machine it runs on.
//!
//! Attacks: `silent` (connect, send nothing), `h2c` (the HTTP/2 preface and SETTINGS, then
//! nothing), `stalled-body` (an API request head announcing 1000 bytes, 10 sent), `bodies`
//! (API requests without the key, each sending 1 MiB − 1 of a 1 MiB body), `h2-streams` (one
//! HTTP/2 connection with `--count` such requests as streams), `ping-flood` (WebSocket clients
//! that send pings as fast as they can and never read), `room-churn` (WebSocket clients that
//! each join a fresh room, publish 15 frames of 64 KiB to it and leave, again and again, at 47
//! frames a second: under the hub's rate limit, so the server has no reason to close them).
//!
//! ```sh
//! cargo build --release -p switchboard-server --example siege
//! target/release/examples/siege --binary target/release/switchboard --attack silent \
//!     --count 300 --ulimit 300
//! ```

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::collections::BTreeMap;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_testing::WsClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const SECRET: &str = "siege-secret-0123456789abcdef0123456789";
const API_KEY: &str = "siege-api-key-0123456789abcdef012345";
const MIB: usize = 1024 * 1024;
/// The largest client frame the hub reads by default (`limits.max_frame_bytes`).
const FRAME_BYTES: usize = 64 * 1024;
/// Publishes per room in `room-churn`: 15 frames of 64 KiB stay within a stream's history
/// bound (1 MiB), so all of them are kept.
const CHURN_PUBLISHES: usize = 15;
/// The time between two frames of a `room-churn` client: 47 a second, under the hub's
/// inbound rate limit (50 a second, bursts of 100).
const CHURN_PACE: Duration = Duration::from_millis(21);
/// The `ref` of the bystander's next ping.
static PINGS: AtomicUsize = AtomicUsize::new(1);
/// The number of the next room `room-churn` joins, so that every room is a fresh one.
static ROOMS: AtomicUsize = AtomicUsize::new(1);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Attack {
    Silent,
    H2c,
    StalledBody,
    Bodies,
    H2Streams,
    PingFlood,
    RoomChurn,
}

impl Attack {
    /// The hostile sockets, streams or clients of a run without `--count`.
    fn default_count(self) -> usize {
        match self {
            Attack::Silent | Attack::H2c | Attack::StalledBody | Attack::Bodies => 300,
            Attack::H2Streams => 150,
            Attack::PingFlood => 1,
            Attack::RoomChurn => 10,
        }
    }
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
    /// Hostile sockets (HTTP/2 streams for `h2-streams`, WebSocket clients for `ping-flood`
    /// and `room-churn`) kept open [default: 300; 150 for h2-streams, 1 for ping-flood, 10
    /// for room-churn].
    #[arg(long)]
    count: Option<usize>,
    /// Run the server under `ulimit -n` this (soft and hard).
    #[arg(long)]
    ulimit: Option<u32>,
    /// Seconds measured before, and again during, the attack.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// End a phase early once the server's resident memory passes this many MiB.
    #[arg(long, default_value_t = 3072)]
    rss_cap_mib: u64,
}

/// The server process, its address, and the warnings it logged (how many; the first few).
struct Server {
    child: Child,
    addr: SocketAddr,
    warnings: Arc<AtomicUsize>,
    first_warnings: Arc<Mutex<Vec<String>>>,
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
        let first_warnings = Arc::new(Mutex::new(Vec::new()));
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
    let claims = json!({"sub": user, "iat": now, "exp": now + 3600});
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}

/// A WebSocket client of the server as `user`.
async fn connect(addr: SocketAddr, user: &str) -> Result<Ws, String> {
    let url = format!("ws://{addr}/ws?token={}", token(user));
    match tokio_tungstenite::connect_async(url).await {
        Ok((ws, _)) => Ok(ws),
        Err(error) => Err(format!("refused: {error}")),
    }
}

/// What one phase measured.
#[derive(Debug, Default)]
struct Figures {
    rss_kib: u64,
    rtts: Vec<Duration>,
    ping_timeouts: usize,
    probes: Probes,
    warnings: usize,
    history_bytes: Option<u64>,
    /// When the phase ended early at the memory cap.
    capped_after: Option<Duration>,
}

/// The `/healthz` probes of one phase.
#[derive(Debug, Default)]
struct Probes {
    ok: usize,
    failed: usize,
    times: Vec<Duration>,
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
        self.probes.times.sort();
        let history = self
            .history_bytes
            .map_or_else(|| "n/a".to_owned(), |b| b.to_string());
        let capped = self.capped_after.map_or_else(String::new, |after| {
            format!(
                " | stopped at the RSS cap after {:.1} s",
                after.as_secs_f64()
            )
        });
        println!(
            "{phase:<7} rss {:>7} KiB | ping rtt p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} pings, {} unanswered | /healthz {} ok, {} failed, p99 {:.2} ms | {} warnings logged | history {history} bytes{capped}",
            self.rss_kib,
            percentile(&self.rtts, 0.5),
            percentile(&self.rtts, 0.99),
            self.rtts.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
            self.rtts.len(),
            self.ping_timeouts,
            self.probes.ok,
            self.probes.failed,
            percentile(&self.probes.times, 0.99),
            self.warnings,
        );
    }
}

/// Measure for `seconds`, or until the server's memory passes `rss_cap_kib`: the bystander's
/// pings, `/healthz` probes, the largest RSS, then the history gauge.
async fn measure(server: &Server, bystander: &mut Ws, seconds: u64, rss_cap_kib: u64) -> Figures {
    let warnings_before = server.warnings.load(Ordering::Relaxed);
    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let stop = Arc::new(AtomicBool::new(false));
    let probes = tokio::spawn(probe_healthz(server.addr, end, stop.clone()));
    let mut figures = Figures::default();
    while Instant::now() < end {
        match round_trip(bystander).await {
            Some(rtt) => figures.rtts.push(rtt),
            None => figures.ping_timeouts += 1,
        }
        figures.rss_kib = figures.rss_kib.max(server.rss_kib());
        if figures.rss_kib > rss_cap_kib {
            figures.capped_after = Some(started.elapsed());
            break;
        }
        // 25 pings a second: under the hub's inbound rate limit (50 a second).
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    stop.store(true, Ordering::Relaxed);
    figures.probes = probes.await.expect("the prober");
    figures.warnings = server.warnings.load(Ordering::Relaxed) - warnings_before;
    figures.history_bytes = gauge(server.addr, "switchboard_history_bytes").await;
    figures
}

/// One `ping` frame of the bystander and its `pong`: the round trip, or `None` if no answer
/// came within 2 s.
async fn round_trip(bystander: &mut Ws) -> Option<Duration> {
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
    matches!(answered, Ok(true)).then(|| started.elapsed())
}

/// `GET /healthz` over a new connection every 100 ms until `end` or `stop`.
async fn probe_healthz(addr: SocketAddr, end: Instant, stop: Arc<AtomicBool>) -> Probes {
    let mut probes = Probes::default();
    while Instant::now() < end && !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(2), get(addr, "/healthz")).await;
        match answer {
            Ok(Some(answer)) if answer.starts_with(b"HTTP/1.1 200") => {
                probes.ok += 1;
                probes.times.push(started.elapsed());
            }
            _ => probes.failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    probes
}

/// The value of the gauge `name` in the server's `/metrics`, if it has one (an older server
/// may lack it).
async fn gauge(addr: SocketAddr, name: &str) -> Option<u64> {
    let answer = tokio::time::timeout(Duration::from_secs(5), get(addr, "/metrics"))
        .await
        .ok()??;
    let prefix = format!("{name} ");
    String::from_utf8_lossy(&answer)
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
}

/// `GET path` over a new connection: the whole answer, if the request could be sent.
async fn get(addr: SocketAddr, path: &str) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    Some(answer)
}

/// How the hostile connections ended, tallied by kind: an attack the server refuses at once
/// measures little, so the report says so.
#[derive(Debug, Default)]
struct Endings(Mutex<BTreeMap<String, usize>>);

impl Endings {
    fn record(&self, how: String) {
        *self.0.lock().expect("not poisoned").entry(how).or_default() += 1;
    }

    fn summary(&self) -> String {
        let endings = self.0.lock().expect("not poisoned");
        if endings.is_empty() {
            return "none (the attack ran throughout)".to_owned();
        }
        let each: Vec<String> = endings
            .iter()
            .map(|(how, times)| format!("{how} × {times}"))
            .collect();
        each.join(", ")
    }
}

/// Start the attack: `count` hostile sessions, each run again a second after it ends.
fn launch(
    attack: Attack,
    addr: SocketAddr,
    count: usize,
    endings: &Arc<Endings>,
) -> Vec<JoinHandle<()>> {
    match attack {
        Attack::H2Streams => vec![tokio::spawn(reopened(endings.clone(), move || {
            hostile_streams(addr, count)
        }))],
        Attack::PingFlood => (0..count)
            .map(|i| {
                let user = format!("flooder-{i}");
                tokio::spawn(reopened(endings.clone(), move || {
                    ping_flood(addr, user.clone())
                }))
            })
            .collect(),
        Attack::RoomChurn => (0..count)
            .map(|i| {
                let user = format!("churner-{i}");
                tokio::spawn(reopened(endings.clone(), move || {
                    room_churn(addr, user.clone())
                }))
            })
            .collect(),
        Attack::Silent | Attack::H2c | Attack::StalledBody | Attack::Bodies => {
            let opening = Bytes::from(opening(attack));
            (0..count)
                .map(|_| {
                    let opening = opening.clone();
                    tokio::spawn(reopened(endings.clone(), move || {
                        hostile_socket(addr, opening.clone())
                    }))
                })
                .collect()
        }
    }
}

/// Run `session` again a second after each time it ends, tallying how it ended, until the task
/// is aborted.
async fn reopened<F, S>(endings: Arc<Endings>, mut session: F)
where
    F: FnMut() -> S,
    S: Future<Output = String>,
{
    loop {
        endings.record(session().await);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// What a raw hostile socket sends before it waits.
fn opening(attack: Attack) -> Vec<u8> {
    let stalled = "POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
    match attack {
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
        Attack::H2Streams | Attack::PingFlood | Attack::RoomChurn => {
            unreachable!("{attack:?} speaks a protocol, not a fixed opening")
        }
    }
}

/// One hostile socket: sends `opening`, then waits, reading, until the server closes it.
async fn hostile_socket(addr: SocketAddr, opening: Bytes) -> String {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return "connect failed".to_owned();
    };
    let _ = stream.write_all(&opening).await;
    let mut sink = [0u8; 4096];
    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    "closed by the server".to_owned()
}

/// One HTTP/2 connection with `count` unauthenticated API requests whose 1 MiB bodies never
/// end, until the server closes it.
async fn hostile_streams(addr: SocketAddr, count: usize) -> String {
    let Ok(tcp) = TcpStream::connect(addr).await else {
        return "connect failed".to_owned();
    };
    let Ok((send, connection)) = h2::client::handshake(tcp).await else {
        return "HTTP/2 handshake failed".to_owned();
    };
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
    "closed by the server".to_owned()
}

/// One WebSocket client as `user` that sends pings (125 bytes each, the most a control frame
/// carries) as fast as its socket takes them and never reads, with small socket buffers so
/// that the pongs it owes back up into the server at once; until the server drops it. Then it
/// reads what is left for the close frame: how it ended, and within how many seconds.
async fn ping_flood(addr: SocketAddr, user: String) -> String {
    let query = format!("token={}", token(&user));
    let mut client = match WsClient::open(addr, &query, true).await {
        Ok(client) => client,
        Err(error) => return format!("refused: {error}"),
    };
    let started = Instant::now();
    client.flood_pings(usize::MAX).await;
    let seconds = started.elapsed().as_secs().saturating_add(1);
    // The pongs owed before the close are read past; a socket reset before the close frame
    // arrived leaves no code.
    let code = tokio::time::timeout(Duration::from_secs(5), client.close_code()).await;
    match code {
        Ok(Some(code)) => format!("closed {code} within {seconds} s"),
        _ => format!("dropped without a close frame within {seconds} s"),
    }
}

/// One WebSocket client as `user` that joins a fresh room, publishes [`CHURN_PUBLISHES`] frames
/// of 64 KiB to it, leaves it, and starts again with a new room, one frame every
/// [`CHURN_PACE`]; it reads (and drops) what the server sends, so it is never a slow reader.
/// Until the server closes it: the close code says why.
async fn room_churn(addr: SocketAddr, user: String) -> String {
    let (mut sink, mut stream) = match connect(addr, &user).await {
        Ok(ws) => ws.split(),
        Err(refused) => return refused,
    };
    let mut frames = churn_frames();
    let mut pace = tokio::time::interval(CHURN_PACE);
    pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            received = stream.next() => match received {
                Some(Ok(Message::Close(frame))) => {
                    return frame.map_or("closed without a code".to_owned(), |frame| {
                        format!("closed {}", u16::from(frame.code))
                    });
                }
                Some(Ok(_)) => {}
                _ => return "connection lost".to_owned(),
            },
            _ = pace.tick() => {
                let frame = frames.next().expect("endless");
                if sink.send(Message::text(frame)).await.is_err() {
                    return "write failed".to_owned();
                }
            }
        }
    }
}

/// The frames of `room-churn`, endlessly: join a room never used before, publish to it
/// [`CHURN_PUBLISHES`] times, leave it.
fn churn_frames() -> impl Iterator<Item = String> {
    std::iter::repeat_with(|| format!("churn-{}", ROOMS.fetch_add(1, Ordering::Relaxed))).flat_map(
        |room| {
            let publish = publish_frame(&room);
            std::iter::once(json!({"type": "join", "room": room}).to_string())
                .chain(std::iter::repeat_n(publish, CHURN_PUBLISHES))
                .chain(std::iter::once(
                    json!({"type": "leave", "room": room}).to_string(),
                ))
        },
    )
}

/// A `publish` to `room` of exactly [`FRAME_BYTES`]: the largest frame the hub reads.
fn publish_frame(room: &str) -> String {
    let frame = |data: &str| {
        json!({"type": "publish", "room": room, "event": "churn", "data": data}).to_string()
    };
    let overhead = frame("").len();
    frame(&"x".repeat(FRAME_BYTES - overhead))
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let count = cli.count.unwrap_or(cli.attack.default_count());
    let rss_cap_kib = cli.rss_cap_mib * 1024;
    let server = Server::start(&cli);
    let mut bystander = connect(server.addr, "bystander")
        .await
        .expect("the bystander connects");
    println!(
        "{:?} x {count} against {} (ulimit -n {})",
        cli.attack,
        cli.binary,
        cli.ulimit.map_or("unchanged".into(), |n| n.to_string())
    );
    measure(&server, &mut bystander, 2, rss_cap_kib).await; // warm-up
    measure(&server, &mut bystander, cli.seconds, rss_cap_kib)
        .await
        .print("before");
    let endings = Arc::new(Endings::default());
    let attackers = launch(cli.attack, server.addr, count, &endings);
    tokio::time::sleep(Duration::from_secs(1)).await;
    measure(&server, &mut bystander, cli.seconds, rss_cap_kib)
        .await
        .print("during");
    for attacker in attackers {
        attacker.abort();
    }
    println!("hostile sessions ended: {}", endings.summary());
    for line in server.first_warnings.lock().expect("not poisoned").iter() {
        println!("logged: {line}");
    }
}
