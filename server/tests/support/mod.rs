//! A server on an ephemeral port, real WebSocket clients and a real HTTP client.

#![allow(dead_code)] // each test file uses its own subset

pub mod cluster;
pub mod hook;
pub mod keys;
pub mod producer;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use switchboard_server::auth::TokenKeys;
use switchboard_server::settings::{FileSettings, Overrides, Settings};
use switchboard_server::Running;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub use switchboard_testing::WsClient;

pub const SECRET: &str = "a-test-secret-that-is-long-enough";
pub const API_KEY: &str = "test-api-key";
/// An API key long enough for staging and production.
pub const STRONG_API_KEY: &str = "a-test-api-key-that-production-takes";
/// Upper bound for anything to arrive: a hang guard, not a timing assertion.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Settings for a test server: ephemeral port, test credentials, fast heartbeats.
pub fn settings(file: &str) -> Settings {
    let file: FileSettings = toml::from_str(file).expect("valid test settings");
    let overrides = Overrides {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        secret: Some(SECRET.into()),
        api_key: Some(API_KEY.into()),
        shards: Some(2),
        ..Overrides::default()
    };
    Settings::resolve(file, &overrides).expect("valid settings")
}

/// Settings for a test server in production (`file` adds to them): ephemeral port, the test
/// secret and [`STRONG_API_KEY`].
pub fn production_settings(file: &str) -> Result<Settings, String> {
    let file: FileSettings = toml::from_str(file).map_err(|e| e.to_string())?;
    let overrides = Overrides {
        env: Some(switchboard_server::settings::Environment::Production),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        secret: Some(SECRET.into()),
        api_key: Some(STRONG_API_KEY.into()),
        shards: Some(2),
        ..Overrides::default()
    };
    Settings::resolve(file, &overrides).map_err(|e| e.to_string())
}

/// A server to test: in this process (`running`), or the address of one in a child process
/// (see [`ServerProcess`]).
pub struct TestServer {
    pub running: Option<Running>,
    pub http: reqwest::Client,
    pub base: String,
    addr: SocketAddr,
    /// The key [`TestServer::api`] calls with.
    api_key: String,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with("").await
    }

    pub async fn with(file: &str) -> Self {
        Self::with_settings(settings(file)).await
    }

    /// A server running `settings` in this process.
    pub async fn with_settings(settings: Settings) -> Self {
        let api_key = settings.api_key.expose().to_owned();
        let running = switchboard_server::start(settings).await.unwrap();
        let mut server = Self::at(running.addr);
        server.running = Some(running);
        server.api_key = api_key;
        server
    }

    /// The server listening on `addr` (with the test credentials), run by someone else.
    pub fn at(addr: SocketAddr) -> Self {
        // Idle connections are dropped before the shortest deadline a test configures (1 s),
        // so a request never races the server closing the connection it reuses.
        let http = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_millis(500))
            .build()
            .expect("an HTTP client");
        TestServer {
            running: None,
            http,
            base: format!("http://{addr}"),
            addr,
            api_key: API_KEY.to_owned(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn token(&self, user: &str, rooms: Option<&[&str]>) -> String {
        TokenKeys::new(SECRET).mint(
            user,
            rooms.map(|r| r.iter().map(|s| s.to_string()).collect()),
            Duration::from_secs(600),
        )
    }

    /// Connect as `user` (any room) with extra query parameters, and read the `welcome`;
    /// panics if refused.
    pub async fn connect_with(&self, user: &str, query: &str) -> WsClient {
        let query = format!("token={}{query}", self.token(user, None));
        WsClient::welcomed(self.addr(), &query).await
    }

    /// Connect as `user`; panics if refused.
    pub async fn connect(&self, user: &str) -> WsClient {
        self.connect_with(user, "").await
    }

    /// The HTTP status of a handshake to `/ws` with this URL tail and headers.
    pub async fn refused(&self, tail: &str, bearer: Option<&str>) -> u16 {
        let mut request = format!("ws://{}/ws{tail}", self.addr())
            .into_client_request()
            .unwrap();
        if let Some(b) = bearer {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {b}").parse().unwrap());
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok(_) => panic!("the handshake was accepted"),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                response.status().as_u16()
            }
            Err(e) => panic!("unexpected handshake error: {e}"),
        }
    }

    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.api_as(&self.api_key, method, path, body).await
    }

    /// The answer to a WebSocket handshake to `/ws{tail}` with `headers`, when it is not
    /// accepted: its status and JSON body. Panics if the connection is upgraded.
    pub async fn handshake_refusal(&self, tail: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut request = self
            .http
            .get(format!("{}/ws{tail}", self.base))
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        assert_ne!(status, 101, "the handshake was accepted");
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The reason of the 401 answered to a handshake to `/ws{tail}` with `headers`.
    pub async fn refusal_reason(&self, tail: &str, headers: &[(&str, &str)]) -> String {
        let (status, body) = self.handshake_refusal(tail, headers).await;
        assert_eq!(status, 401, "{body}");
        body["reason"].as_str().expect("a reason").to_owned()
    }

    /// The reason of the 401 answered to a handshake with `token` in the query.
    pub async fn token_refusal(&self, token: &str) -> String {
        self.refusal_reason(&format!("?token={token}"), &[]).await
    }

    /// Connect with `token` in the query and read the `welcome`; panics if refused.
    pub async fn connect_token(&self, token: &str) -> WsClient {
        WsClient::welcomed(self.addr(), &format!("token={token}")).await
    }

    pub async fn api_as(
        &self,
        key: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method.parse().unwrap(), url)
            .bearer_auth(key);
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    pub async fn publish(&self, to: Value, event: &str, data: Value) -> Value {
        let (status, body) = self
            .api(
                "POST",
                "/api/publish",
                Some(json!({"to": to, "event": event, "data": data})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The value of the unlabelled sample `switchboard_<name>` in `/metrics`, if present.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let (status, text) = self.get_text("/metrics").await;
        assert_eq!(status, 200, "{text}");
        let prefix = format!("switchboard_{name} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map(|value| value.parse().expect("a number"))
    }

    pub async fn shutdown(&mut self) {
        self.running.take().unwrap().shutdown().await.unwrap();
    }
}

/// The `switchboard` binary, with no `SWITCHBOARD_*` variable inherited from the caller.
pub fn switchboard_binary() -> Command {
    without_settings(Command::new(env!("CARGO_BIN_EXE_switchboard")))
}

/// The `switchboard` binary run by `sh` after `ulimit {limits}` (e.g. `-n 64`), with no
/// `SWITCHBOARD_*` variable inherited from the caller; arguments added go to the binary.
pub fn switchboard_with_ulimit(limits: &str) -> Command {
    let mut command = Command::new("sh");
    command.args([
        "-c",
        &format!("ulimit {limits} && exec \"$0\" \"$@\""),
        env!("CARGO_BIN_EXE_switchboard"),
    ]);
    without_settings(command)
}

fn without_settings(mut command: Command) -> Command {
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("SWITCHBOARD_")) {
        command.env_remove(key);
    }
    command
}

/// `switchboard serve` in a child process on an ephemeral port, with the test credentials and
/// two shards (like [`settings`]); killed when dropped if it is still running.
pub struct ServerProcess {
    /// The server, to connect to and call.
    pub server: TestServer,
    child: Child,
    log: Option<std::thread::JoinHandle<String>>,
}

impl ServerProcess {
    /// Start it with `env` set (e.g. `SWITCHBOARD_REDIS_URL`) and wait until it listens.
    pub fn serve(env: &[(&str, &str)]) -> Self {
        Self::serve_from(switchboard_binary(), env)
    }

    /// [`ServerProcess::serve`] through `command` (the binary, or a shell that runs it).
    pub fn serve_from(command: Command, env: &[(&str, &str)]) -> Self {
        Self::spawn(serving(command, env))
    }

    /// Run `command` (a `serve` that listens on an ephemeral port) and wait until it listens.
    /// Its [`TestServer`] mints tokens with the test secret.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stderr(Stdio::piped())
            .spawn()
            .expect("the switchboard binary starts");
        let stderr = child.stderr.take().expect("piped");
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let log = std::thread::spawn(move || {
            let mut log = String::new();
            for line in BufReader::new(stderr).lines() {
                let line = line.expect("utf-8 log lines");
                if let Some(addr) = listening_on(&line) {
                    let _ = addr_tx.send(addr);
                }
                log.push_str(&line);
                log.push('\n');
            }
            log
        });
        let addr = addr_rx
            .recv_timeout(PATIENCE)
            .expect("the server announces its address");
        ServerProcess {
            server: TestServer::at(addr),
            child,
            log: Some(log),
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident memory (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the server's /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a VmRSS line")
    }

    /// Kill it outright (SIGKILL): no shutdown, no close frames, nothing flushed.
    pub fn kill(&mut self) {
        self.child.kill().expect("the server can be killed");
        self.child.wait().expect("the killed server is reaped");
    }

    /// Send it SIGTERM.
    pub fn terminate(&self) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(killed.success());
    }

    /// Wait (at most the patience) for it to exit: whether it exited successfully, and what it
    /// logged.
    pub async fn exited(&mut self) -> (bool, String) {
        let exited = async {
            loop {
                if let Some(status) = self.child.try_wait().expect("the child can be waited") {
                    return status.success();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let success = tokio::time::timeout(PATIENCE, exited)
            .await
            .expect("the server exits within the patience");
        let log = self.log.take().expect("waited once").join().expect("log");
        (success, log)
    }
}

/// `command` (the binary, or a shell that runs it) made a `serve` on an ephemeral port with the
/// test credentials, two shards and `env` set.
pub fn serving(mut command: Command, env: &[(&str, &str)]) -> Command {
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("SWITCHBOARD_AUTH_SECRET", SECRET)
        .env("SWITCHBOARD_API_KEY", API_KEY)
        .env("SWITCHBOARD_SHARDS", "2")
        .envs(env.iter().copied());
    command
}

/// The address a log line announces: `switchboard listening on http://ADDR` (text logs), or
/// the JSON line of the event `switchboard listening` with its `addr` (`[log] format = "json"`).
pub fn listening_on(line: &str) -> Option<SocketAddr> {
    if let Some(addr) = line.strip_prefix("switchboard listening on http://") {
        return Some(addr.parse().expect("an address"));
    }
    let json: Value = serde_json::from_str(line).ok()?;
    if json["message"] != "switchboard listening" {
        return None;
    }
    Some(json["addr"].as_str()?.parse().expect("an address"))
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP connection to `addr` from the loopback address `127.0.0.<host>`, so that a test can
/// be several clients' addresses at once.
pub async fn connect_from(host: u8, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, host], 0)))
        .expect("bind a loopback source address");
    socket.connect(addr).await.expect("connect")
}

/// Read from `stream` until the server closes it (or resets it), and return what it sent
/// before; panics if it is still open after `within` (a hang guard, not a timing assertion).
pub async fn closed_within(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut received = Vec::new();
    let read_all = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read_all)
        .await
        .unwrap_or_else(|_| panic!("the server kept the connection open past {within:?}"));
    received
}

/// The status line of an HTTP/1.1 answer, e.g. `HTTP/1.1 408 Request Timeout`.
pub fn status_line(answer: &[u8]) -> String {
    let text = String::from_utf8_lossy(answer);
    text.lines().next().unwrap_or_default().to_owned()
}
