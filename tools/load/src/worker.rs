//! A worker process: its share of the clients, each a connection ([`Link`]: a WebSocket or
//! Server-Sent Events) that joins the room and counts and times the messages it receives.
//!
//! Talks to the coordinator in lines: it prints [`FromWorker::Ready`] once every client has
//! joined (or failed), then waits on stdin for `go` (every message is published: wait at most
//! `--timeout` for the rest, reading nothing more) or `stop` (or the end of its input: end
//! now). When messages were expected it prints [`FromWorker::Done`] as soon as every client has
//! them all or the time is up, then closes its clients and prints [`FromWorker::Report`].

use crate::histogram::Histogram;
use crate::link::{Link, Protocol, Read, Transport};
use crate::{now_us, Cli};
use crate::{socketio, token};
use jsonwebtoken::EncodingKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// A line from a worker to the coordinator.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromWorker {
    /// Every client joined or failed.
    Ready(Ready),
    /// Every client has every message, or the time is up; the clients close next.
    Done,
    /// The clients are done.
    Report(Box<Report>),
}

/// The connect phase of one worker.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Ready {
    /// Clients that connected and joined the room.
    pub joined: usize,
    /// Clients that could not connect or join, by error.
    pub failed: BTreeMap<String, usize>,
    /// When the first handshake started (µs since the epoch).
    pub first_connect_us: u64,
    /// When the last client joined.
    pub last_joined_us: u64,
    /// Clients that joined, by server (index into `--server`).
    pub joined_by_server: Vec<usize>,
}

/// What one worker's clients received.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Distinct messages received, all clients together.
    pub received: u64,
    /// Messages received more than once.
    pub duplicates: u64,
    /// Clients that received every message.
    pub complete: usize,
    /// Clients the server closed before the end, by close code.
    pub closed: BTreeMap<u16, usize>,
    /// The first and last delivery (µs since the epoch; 0 if none).
    pub first_receive_us: u64,
    /// See `first_receive_us`.
    pub last_receive_us: u64,
    /// Delivery latency (µs from the publisher's timestamp to the client's read).
    pub latency: Histogram,
    /// What the clients of each server received (index into `--server`).
    pub by_server: Vec<ServerReport>,
}

/// What the clients of one server received.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ServerReport {
    /// Distinct messages received, all its clients together.
    pub received: u64,
    /// Delivery latency of its clients.
    pub latency: Histogram,
}

/// One client's outcome after joining.
#[derive(Debug, Default)]
struct Outcome {
    /// The server the client connected to.
    server: usize,
    received: u64,
    duplicates: u64,
    closed: Option<u16>,
    first_receive_us: u64,
    last_receive_us: u64,
    latencies: Vec<u32>,
}

/// The frames a client reads, with only the fields it needs.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default)]
    event: Option<&'a str>,
    #[serde(default)]
    data: Option<Stamp>,
}

/// The data of a load message: its index and send time.
#[derive(Debug, PartialEq, Eq, Deserialize)]
struct Stamp {
    i: usize,
    t: u64,
}

/// What a frame means to a load client, whichever protocol carried it.
#[derive(Debug, PartialEq, Eq)]
enum Frame {
    /// The room join is confirmed.
    Joined,
    /// The join was refused.
    Refused,
    /// A load message.
    Load(Stamp),
    /// Anything else (`welcome`, other events).
    Other,
}

impl Frame {
    /// Read a frame's text (with Socket.IO, an event's array).
    fn read(protocol: Protocol, text: &str) -> Self {
        match protocol {
            Protocol::Switchboard => match serde_json::from_str::<Incoming>(text) {
                Ok(frame) if frame.kind == "joined" => Frame::Joined,
                Ok(frame) if frame.kind == "error" => Frame::Refused,
                Ok(Incoming {
                    kind: "message",
                    event: Some("load"),
                    data: Some(stamp),
                }) => Frame::Load(stamp),
                _ => Frame::Other,
            },
            Protocol::Socketio => match socketio::event(text) {
                socketio::Event::Joined => Frame::Joined,
                socketio::Event::Load(stamp) => Frame::Load(stamp),
                socketio::Event::Other => Frame::Other,
            },
        }
    }

    /// The frame that joins `room`.
    fn join(protocol: Protocol, room: &str) -> String {
        match protocol {
            Protocol::Switchboard => format!(
                r#"{{"type":"join","room":{}}}"#,
                serde_json::Value::from(room)
            ),
            Protocol::Socketio => socketio::event_packet("join", &room),
        }
    }
}

/// Shared by the clients of one worker.
struct Shared {
    /// The base URL of each server.
    servers: Vec<String>,
    transport: Transport,
    protocol: Protocol,
    /// The HTTP client of Server-Sent Events links.
    http: reqwest::Client,
    room: String,
    expected: usize,
    /// Clients that have every message; when all joined ones do, the worker stops early.
    complete: AtomicUsize,
    complete_changed: tokio::sync::Notify,
    /// Set to stop every client.
    stop: watch::Receiver<bool>,
}

fn emit(line: &FromWorker) {
    println!(
        "{}",
        serde_json::to_string(line).expect("reports serialize")
    );
}

/// Run worker `index`: connect its clients, report ready, receive, report. Returns true if
/// every client joined and received everything.
pub async fn run(cli: Cli, index: usize) -> Result<bool, String> {
    let (first, count) = cli.share(index);
    let key = EncodingKey::from_secret(cli.token_secret.as_bytes());
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        servers: (cli.servers.iter())
            .map(|s| s.trim_end_matches('/').to_owned())
            .collect(),
        transport: cli.transport,
        protocol: cli.protocol,
        http: reqwest::Client::new(),
        room: cli.room.clone(),
        expected: cli.expected(),
        complete: AtomicUsize::new(0),
        complete_changed: tokio::sync::Notify::new(),
        stop: stop_rx,
    });
    let handshakes = Arc::new(Semaphore::new(cli.connect_concurrency.max(1)));
    let (joined_tx, mut joined_rx) = tokio::sync::mpsc::unbounded_channel();
    let first_connect_us = now_us();
    let mut clients = JoinSet::new();
    for n in first..first + count {
        let user = format!("{}-{n}", cli.user_prefix);
        let token = token::sign(&key, &user, 24 * 3600)?;
        let shared = shared.clone();
        let handshakes = handshakes.clone();
        let joined = joined_tx.clone();
        let server = cli.server_of(n);
        clients.spawn(async move { client(shared, server, token, handshakes, joined).await });
    }
    drop(joined_tx);
    let mut ready = Ready {
        first_connect_us,
        joined_by_server: vec![0; cli.servers.len()],
        ..Ready::default()
    };
    while let Some(result) = joined_rx.recv().await {
        match result {
            Ok(server) => {
                ready.joined += 1;
                ready.joined_by_server[server] += 1;
                ready.last_joined_us = now_us();
            }
            Err(e) => *ready.failed.entry(e).or_default() += 1,
        }
        if ready.joined + ready.failed.values().sum::<usize>() == count {
            break;
        }
    }
    emit(&FromWorker::Ready(ready.clone()));

    let mut commands = BufReader::new(tokio::io::stdin()).lines();
    let timeout = Duration::from_secs_f64(cli.timeout.max(0.0));
    let joined = ready.joined;
    let everyone_done = async {
        loop {
            let notified = shared.complete_changed.notified();
            if shared.expected > 0 && shared.complete.load(Ordering::SeqCst) >= joined {
                return;
            }
            notified.await;
        }
    };
    tokio::pin!(everyone_done);
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let until_deadline = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            line = commands.next_line(), if deadline.is_none() => match line {
                Ok(Some(line)) if line.trim() == "go" => {
                    deadline = Some(tokio::time::Instant::now() + timeout);
                }
                // `stop`, or the coordinator went away.
                _ => break,
            },
            () = &mut everyone_done => break,
            () = until_deadline => break,
        }
    }
    if shared.expected > 0 {
        emit(&FromWorker::Done);
    }
    let _ = stop_tx.send(true);

    let mut report = Report::default();
    let mut latency = Histogram::default();
    let mut by_server = vec![(0, Histogram::default()); cli.servers.len()];
    while let Some(result) = clients.join_next().await {
        let Ok(Some(outcome)) = result else { continue };
        report.received += outcome.received;
        report.duplicates += outcome.duplicates;
        if outcome.received as usize >= shared.expected {
            report.complete += 1;
        }
        if let Some(code) = outcome.closed {
            *report.closed.entry(code).or_default() += 1;
        }
        if outcome.first_receive_us > 0
            && (report.first_receive_us == 0 || outcome.first_receive_us < report.first_receive_us)
        {
            report.first_receive_us = outcome.first_receive_us;
        }
        report.last_receive_us = report.last_receive_us.max(outcome.last_receive_us);
        let (server_received, server_latency) = &mut by_server[outcome.server];
        *server_received += outcome.received;
        for us in outcome.latencies {
            latency.record(u64::from(us));
            server_latency.record(u64::from(us));
        }
    }
    report.latency = latency.compact();
    report.by_server = by_server
        .into_iter()
        .map(|(received, latency)| ServerReport {
            received,
            latency: latency.compact(),
        })
        .collect();
    let ok = ready.failed.is_empty() && report.complete == count;
    emit(&FromWorker::Report(Box::new(report)));
    Ok(ok)
}

/// One client of server `server`: connect, join, then read until it has every message and is
/// told to stop. Reports the join (its server, or why it failed) on `joined`; returns `None`
/// if it never joined.
async fn client(
    shared: Arc<Shared>,
    server: usize,
    token: String,
    handshakes: Arc<Semaphore>,
    joined: tokio::sync::mpsc::UnboundedSender<Result<usize, String>>,
) -> Option<Outcome> {
    let permit = handshakes.acquire_owned().await.ok()?;
    let server_url = &shared.servers[server];
    let opened = Link::open(
        shared.transport,
        shared.protocol,
        &shared.http,
        server_url,
        &token,
    );
    let mut link = match opened.await {
        Ok(link) => link,
        Err(e) => {
            let _ = joined.send(Err(e));
            return None;
        }
    };
    if let Err(e) = link.send(Frame::join(shared.protocol, &shared.room)).await {
        let _ = joined.send(Err(format!("join: {e}")));
        return None;
    }
    loop {
        match link.read().await {
            Read::Text(text) => match Frame::read(shared.protocol, &text) {
                Frame::Joined => break,
                Frame::Refused => {
                    let _ = joined.send(Err(format!("join refused: {text}")));
                    return None;
                }
                Frame::Load(_) | Frame::Other => {}
            },
            Read::Closed(code) => {
                let _ = joined.send(Err(format!("closed with {code} before joining")));
                return None;
            }
            Read::Other => {}
        }
    }
    drop(permit);
    let _ = joined.send(Ok(server));

    let expected = shared.expected;
    let mut outcome = Outcome {
        server,
        latencies: Vec::with_capacity(expected),
        ..Outcome::default()
    };
    let mut seen = vec![false; expected];
    let mut stop = shared.stop.clone();
    loop {
        let message = tokio::select! {
            message = link.read() => message,
            _ = stop.wait_for(|&stop| stop) => break,
        };
        match message {
            Read::Text(text) => {
                let Frame::Load(stamp) = Frame::read(shared.protocol, &text) else {
                    continue;
                };
                if stamp.i >= expected {
                    continue;
                }
                let now = now_us();
                if std::mem::replace(&mut seen[stamp.i], true) {
                    outcome.duplicates += 1;
                    continue;
                }
                outcome.received += 1;
                if outcome.first_receive_us == 0 {
                    outcome.first_receive_us = now;
                }
                outcome.last_receive_us = now;
                outcome
                    .latencies
                    .push(now.saturating_sub(stamp.t).min(u64::from(u32::MAX)) as u32);
                if outcome.received as usize == expected {
                    shared.complete.fetch_add(1, Ordering::SeqCst);
                    shared.complete_changed.notify_one();
                }
            }
            Read::Closed(code) => {
                outcome.closed = Some(code);
                break;
            }
            Read::Other => {}
        }
    }
    link.close().await;
    Some(outcome)
}
