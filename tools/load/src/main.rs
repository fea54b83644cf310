//! `switchboard-load`: drives a Switchboard server (or the baseline hub, which speaks the same
//! subset of the protocol) with many WebSocket clients in one room, and measures what it
//! delivers. With `--transport sse` the clients use Server-Sent Events instead (Switchboard
//! only), so the two transports are measured on the same load. With `--protocol socketio`
//! they are Socket.IO clients (Engine.IO v4 over WebSocket, `/socket.io/`) of a Socket.IO hub
//! that serves the same `POST /api/publish` (the socketioxide peer), so a Socket.IO hub is
//! measured on the same load too.
//!
//! The coordinator (the process you start) re-executes itself as `--processes` workers, each
//! holding its share of the clients over its own worker threads (one process may only hold so
//! many open files). Every client connects with its own user's token, joins the room and
//! reports ready; the coordinator then publishes `--messages` messages to the room through the
//! HTTP API (`POST /api/publish`), each carrying its send time and index, either as fast as
//! possible (`burst`) or at `--rate` per second (`rate`). Workers time every delivery against
//! the send time (the clock of one machine), count what is missing, and send their results
//! back; the coordinator merges them. `idle` only connects, waits, and reads the server's
//! resident memory from `/proc/<server-pid>/status`.
//!
//! Given several `--server`s (the nodes of a cluster), client `n` connects to server
//! `n mod count`, and messages are published through one node (`--publish-to`, by default the
//! first server): the report then also gives each node's deliveries and latency.
//!
//! The exit status is 0 when every client connected and every message reached every client,
//! 2 otherwise.

mod coordinator;
mod histogram;
mod link;
mod publisher;
mod socketio;
mod token;
mod worker;

use clap::{Parser, ValueEnum};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

/// The development secret and API key of `switchboard serve` (public: development only).
const DEVELOPMENT_SECRET: &str = "switchboard-development-secret-do-not-use-in-production";
const DEVELOPMENT_API_KEY: &str = "switchboard-development-api-key";

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Publish `--messages` messages to the room as fast as one publisher can.
    Burst,
    /// Publish `--messages` messages to the room at `--rate` per second.
    Rate,
    /// Connect and join, hold the connections idle for `--settle` seconds, read the server's
    /// resident memory (with `--server-pid`).
    Idle,
}

/// Load generator for Switchboard and the baseline hub.
#[derive(Debug, Clone, Parser)]
#[command(name = "switchboard-load", version)]
pub struct Cli {
    /// What to measure.
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// A server's base URL: clients connect to `<server>/ws`. Repeat it for the nodes of a
    /// cluster: client `n` connects to the `n mod count`-th.
    #[arg(
        long = "server",
        value_name = "URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub servers: Vec<String>,
    /// The base URL messages are published through (`<url>/api/publish`) [default: the first
    /// `--server`].
    #[arg(long, value_name = "URL")]
    pub publish_to: Option<String>,
    /// Clients, each its own user.
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    /// How the clients connect: WebSockets (`/ws`) or Server-Sent Events (`/sse`, their
    /// frames posted to `/sse/{conn}`).
    #[arg(long, value_enum, default_value_t = link::Transport::Websocket)]
    pub transport: link::Transport,
    /// The protocol the clients speak: Switchboard's (also the baseline's and the raw
    /// peer's), or Socket.IO's (`/socket.io/`, WebSocket transport only; the token is the
    /// connect packet's auth, the room is joined with a `join` event).
    #[arg(long, value_enum, default_value_t = link::Protocol::Switchboard)]
    pub protocol: link::Protocol,
    /// Messages published to the room.
    #[arg(long, default_value_t = 10)]
    pub messages: usize,
    /// Messages per second published to the room (scenario `rate`); every client receives
    /// this many per second.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// The room every client joins.
    #[arg(long, default_value = "load")]
    pub room: String,
    /// Worker processes holding the clients (at most ~19 000 clients per process under a
    /// 20 000 open-file limit).
    #[arg(long, default_value_t = 1)]
    pub processes: usize,
    /// Runtime threads per worker process (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// WebSocket handshakes in progress at once, per worker process.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// How `burst` publishes: batches, several publishers, or clients of the room.
    #[command(flatten)]
    pub publishing: publisher::PublishArgs,
    /// Bytes of padding added to each message's data.
    #[arg(long, default_value_t = 0)]
    pub payload: usize,
    /// Seconds to wait for deliveries after the last publish before counting the rest lost.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Seconds the joined clients are held idle before the measurement: before the server's
    /// memory is read (`idle`; default 5) or before the first publish (`burst`, `rate`;
    /// default 0), e.g. to let the nodes of a cluster finish the joins' bookkeeping.
    #[arg(long, value_name = "SECS")]
    pub settle: Option<f64>,
    /// The HS256 secret client tokens are signed with (the server's auth secret).
    #[arg(long, env = "SWITCHBOARD_AUTH_SECRET", default_value = DEVELOPMENT_SECRET, hide_default_value = true, hide_env_values = true)]
    pub token_secret: String,
    /// The server's API key, for publishing.
    #[arg(long, env = "SWITCHBOARD_API_KEY", default_value = DEVELOPMENT_API_KEY, hide_default_value = true, hide_env_values = true)]
    pub api_key: String,
    /// The server's process id, to read its resident memory (VmRSS) before and after and its
    /// CPU time. Repeat it for the nodes of a cluster: their figures are added up.
    #[arg(long = "server-pid", value_name = "PID")]
    pub server_pids: Vec<u32>,
    /// Prefix of the clients' user ids (`<prefix>-<n>`).
    #[arg(long, default_value = "load")]
    pub user_prefix: String,
    /// Also print the report as one line of JSON.
    #[arg(long)]
    pub json: bool,
    /// Internal: run as worker number N (set by the coordinator).
    #[arg(long, hide = true)]
    pub worker: Option<usize>,
}

impl Cli {
    /// The WebSocket endpoint of server `index` (an index into `--server`).
    pub fn ws_url(&self, index: usize) -> String {
        link::ws_url(&self.servers[index])
    }

    /// The server (an index into `--server`) client number `client` connects to: round-robin,
    /// so every worker's share is spread over every server.
    pub fn server_of(&self, client: usize) -> usize {
        client % self.servers.len().max(1)
    }

    /// The base URL messages are published through, without a trailing slash.
    pub fn publish_base(&self) -> &str {
        self.publish_to
            .as_ref()
            .unwrap_or(&self.servers[0])
            .trim_end_matches('/')
    }

    /// The publishing endpoint.
    pub fn publish_url(&self) -> String {
        format!("{}/api/publish", self.publish_base())
    }

    /// Clients of worker `index`: (first client number, how many).
    pub fn share(&self, index: usize) -> (usize, usize) {
        let k = self.processes.max(1);
        let (each, extra) = (self.clients / k, self.clients % k);
        let first = index * each + index.min(extra);
        (first, each + usize::from(index < extra))
    }

    /// Seconds the joined clients are held idle before the measurement (see `--settle`).
    pub fn settle_secs(&self) -> f64 {
        let default = match self.scenario {
            Scenario::Idle => 5.0,
            Scenario::Burst | Scenario::Rate => 0.0,
        };
        self.settle.unwrap_or(default).max(0.0)
    }

    /// Messages each client expects (none when idle).
    pub fn expected(&self) -> usize {
        match self.scenario {
            Scenario::Idle => 0,
            Scenario::Burst | Scenario::Rate => self.messages,
        }
    }
}

/// Microseconds since the Unix epoch: the clock senders and receivers share on one machine.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = cli
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.worker {
        Some(index) => runtime.block_on(worker::run(cli, index)),
        None => runtime.block_on(coordinator::run(cli)),
    };
    // A worker's read of its stdin may still be blocked in a thread: do not wait for it.
    runtime.shutdown_background();
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clients are split over the workers with none left out and none twice.
    #[test]
    fn shares_cover_every_client_once() {
        let cli = Cli::parse_from([
            "switchboard-load",
            "burst",
            "--clients",
            "10",
            "--processes",
            "3",
        ]);
        let shares: Vec<_> = (0..3).map(|i| cli.share(i)).collect();
        assert_eq!(shares, vec![(0, 4), (4, 3), (7, 3)]);
    }

    /// The WebSocket URL is derived from the HTTP base URL.
    #[test]
    fn websocket_url_from_the_server_url() {
        let cli = Cli::parse_from(["switchboard-load", "idle", "--server", "http://h:1/"]);
        assert_eq!(cli.ws_url(0), "ws://h:1/ws");
    }

    /// With one server, every client connects to it and messages are published through it.
    #[test]
    fn one_server_takes_every_client_and_the_publishes() {
        let cli = Cli::parse_from(["switchboard-load", "burst", "--clients", "5"]);
        assert_eq!(cli.servers, ["http://127.0.0.1:8080"]);
        assert!((0..5).all(|n| cli.server_of(n) == 0));
        assert_eq!(cli.publish_url(), "http://127.0.0.1:8080/api/publish");
    }

    /// Clients alternate over the servers in client order, so each worker's share (a run of
    /// consecutive clients) is spread over every server and the servers' counts differ by at
    /// most one; messages are published through the first server unless told otherwise.
    #[test]
    fn clients_alternate_over_several_servers() {
        let cli = Cli::parse_from([
            "switchboard-load",
            "burst",
            "--clients",
            "7",
            "--processes",
            "2",
            "--server",
            "http://a:1",
            "--server",
            "http://b:2/",
        ]);
        let servers: Vec<_> = (0..7).map(|n| cli.server_of(n)).collect();
        assert_eq!(servers, [0, 1, 0, 1, 0, 1, 0]);
        let (first, count) = cli.share(1);
        let second_worker: Vec<_> = (first..first + count).map(|n| cli.server_of(n)).collect();
        assert_eq!(second_worker, [0, 1, 0]);
        assert_eq!(cli.ws_url(1), "ws://b:2/ws");
        assert_eq!(cli.publish_url(), "http://a:1/api/publish");
    }

    /// Idle connections settle for 5 s by default, publishes start at once; `--settle` sets
    /// either.
    #[test]
    fn settle_defaults_by_scenario() {
        let parse = |args: &[&str]| Cli::parse_from([&["switchboard-load"], args].concat());
        assert_eq!(parse(&["idle"]).settle_secs(), 5.0);
        assert_eq!(parse(&["burst"]).settle_secs(), 0.0);
        assert_eq!(parse(&["rate", "--settle", "2"]).settle_secs(), 2.0);
    }

    /// `--publish-to` chooses the node the messages are published through.
    #[test]
    fn publishes_go_where_chosen() {
        let cli = Cli::parse_from([
            "switchboard-load",
            "rate",
            "--server",
            "http://a:1",
            "--server",
            "http://b:2",
            "--publish-to",
            "http://b:2/",
        ]);
        assert_eq!(cli.publish_url(), "http://b:2/api/publish");
    }
}
