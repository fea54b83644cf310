//! Attacks on the connection front of a real server, each in a bounded form: sockets that
//! never finish a request (silent, an HTTP/2 preface and nothing more, half a request head, a
//! body that stalls or trickles), more connections waiting for their first request than the
//! node admits, too many connections from one address, HTTP/2 connections that idle or hold
//! streams, and bodies sent without the API key.
//!
//! Each test asserts the bound (the close, the status, the counter in `/metrics`) and that a
//! client who behaves is still served meanwhile. No timing is asserted: deadlines are
//! configured short (or, where only counts matter, far beyond every guard), and every wait is
//! bounded by a generous guard. The test's own requests during an attack on handshakes go over
//! one connection opened before it ([`OneConnection`]), never a new one that the attack would
//! count.

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::time::Duration;
use support::*;
use switchboard_testing::guard;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// What a client that speaks HTTP/2 without TLS sends first (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty HTTP/2 SETTINGS frame.
const H2_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];
/// The deadlines these tests configure.
const DEADLINE: Duration = Duration::from_secs(1);

/// A client that behaves: its ping is answered and a publish through the API (over `http`)
/// reaches it.
async fn still_served(http: &OneConnection, client: &mut WsClient, n: u64) {
    client.send(json!({"type": "ping", "ref": n})).await;
    assert_eq!(client.next_of("pong").await["ref"], n);
    let user = client.welcome()["user"]
        .as_str()
        .expect("welcomed")
        .to_owned();
    let publish = json!({"to": {"user": user}, "event": "still-here", "data": n});
    let (status, answer) = http.request("POST", "/api/publish", Some(publish)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(client.next_of("message").await["data"], n);
}

/// The test's own HTTP/1.1 connection to the server, past its first request before an attack
/// starts, kept open between requests and never replaced. A pooled client (reqwest) opens a
/// new connection when its last one is not back in the pool yet, which happens under load: that
/// connection would wait for its first request among the attack's sockets, where the handshake
/// cap may evict it or the descriptor budget refuse it.
struct OneConnection(tokio::sync::Mutex<SendRequest<Full<Bytes>>>);

impl OneConnection {
    /// A new connection to `server`, whose first request is the next one made.
    async fn connect(server: &TestServer) -> Self {
        let stream = TcpStream::connect(server.addr()).await.unwrap();
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(connection);
        OneConnection(tokio::sync::Mutex::new(sender))
    }

    /// A new connection to `server` past its first request, which an attack on handshakes
    /// does not touch (while each next request comes within the handshake timeout).
    async fn established(server: &TestServer) -> Self {
        let http = Self::connect(server).await;
        let (status, answer) = http.request("GET", "/healthz", None).await;
        assert_eq!(status, 200, "{answer}");
        http
    }

    /// `METHOD path` (with the API key under `/api`, and `body` as JSON): the answer's status
    /// and text.
    async fn request(&self, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
        let mut sender = self.0.lock().await;
        guard("the connection to be ready", sender.ready())
            .await
            .expect("the connection is open");
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "switchboard");
        if path.starts_with("/api/") {
            request = request.header("authorization", format!("Bearer {API_KEY}"));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let request = request.body(Full::new(body)).unwrap();
        let response = guard("an answer", sender.send_request(request))
            .await
            .expect("an answer");
        let status = response.status().as_u16();
        let text = guard("the answer's body", response.into_body().collect())
            .await
            .expect("the whole body")
            .to_bytes();
        (status, String::from_utf8_lossy(&text).into_owned())
    }
}

/// The value of `switchboard_<sample>` (labels included) in `/metrics`, read over `http`.
async fn metric(http: &OneConnection, sample: &str) -> f64 {
    let (status, text) = http.request("GET", "/metrics", None).await;
    assert_eq!(status, 200, "{text}");
    let prefix = format!("switchboard_{sample} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {sample} in {text}"))
        .parse()
        .expect("a number")
}

/// Wait until `switchboard_<sample>` reads `value`.
async fn metric_reaches(http: &OneConnection, sample: &str, value: f64) {
    switchboard_testing::eventually(&format!("{sample} at {value}"), || async {
        metric(http, sample).await == value
    })
    .await;
}

async fn write(stream: &mut TcpStream, bytes: &[u8]) {
    stream.write_all(bytes).await.expect("the server reads");
}

/// A socket that sends nothing, one that sends the HTTP/2 preface, one that sends the preface
/// and its SETTINGS, and one that sends half a request head are each closed once the handshake
/// deadline passed, and counted; a client that behaves is served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_that_never_finish_a_request_are_closed_at_the_handshake_deadline() {
    let server = TestServer::with("[http]\nhandshake_timeout_secs = 1").await;
    let mut bystander = server.connect("bystander").await;
    let mut silent = TcpStream::connect(server.addr()).await.unwrap();
    let mut preface = TcpStream::connect(server.addr()).await.unwrap();
    write(&mut preface, H2_PREFACE).await;
    let mut settings = TcpStream::connect(server.addr()).await.unwrap();
    write(&mut settings, &[H2_PREFACE, H2_SETTINGS].concat()).await;
    let mut half = TcpStream::connect(server.addr()).await.unwrap();
    write(&mut half, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;

    still_served(&OneConnection::connect(&server).await, &mut bystander, 1).await;
    for socket in [&mut silent, &mut preface, &mut settings, &mut half] {
        closed_within(socket, DEADLINE + PATIENCE).await;
    }
    // hyper's own header timeout may close the half head first; the three others are ours.
    let closed = server
        .metric("http_timeouts_total{stage=\"handshake\"}")
        .await;
    assert!(closed >= Some(3.0), "{closed:?}");
    still_served(&OneConnection::connect(&server).await, &mut bystander, 2).await;
}

/// A body that stalls after its headers is answered 408 `body_timeout` once it has been quiet
/// for the body timeout; one that trickles a byte at a time, 408 `request_timeout` once the
/// whole request took the request timeout. Both connections are then closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_stall_or_trickle_are_answered_408() {
    let server = TestServer::with("[http]\nbody_timeout_secs = 1\nrequest_timeout_secs = 2").await;
    let head = format!(
        "POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    );
    let mut stalled = TcpStream::connect(server.addr()).await.unwrap();
    write(&mut stalled, format!("{head}{{\"to\":").as_bytes()).await;
    let answer = closed_within(&mut stalled, DEADLINE + PATIENCE).await;
    assert!(
        status_line(&answer).starts_with("HTTP/1.1 408"),
        "{answer:?}"
    );
    assert!(String::from_utf8_lossy(&answer).contains("\"body_timeout\""));

    let mut trickle = TcpStream::connect(server.addr()).await.unwrap();
    write(&mut trickle, head.as_bytes()).await;
    let (mut reader, mut writer) = trickle.into_split();
    let dripping = tokio::spawn(async move {
        for _ in 0..1000 {
            if writer.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(2 * DEADLINE + PATIENCE, reader.read_to_end(&mut answer));
    let _ = read.await.expect("the server answers and closes");
    assert!(
        status_line(&answer).starts_with("HTTP/1.1 408"),
        "{answer:?}"
    );
    assert!(String::from_utf8_lossy(&answer).contains("\"request_timeout\""));
    dripping.abort();
}

/// A request without the API key is answered 401 before its body is read: the client sent
/// only its head, announcing a 1 MiB body, and gets the answer, then the connection closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_is_checked_before_the_body_is_read() {
    let server = TestServer::start().await;
    for authorization in ["", "Authorization: Bearer wrong-key\r\n"] {
        let mut client = TcpStream::connect(server.addr()).await.unwrap();
        let head = format!(
            "POST /api/publish HTTP/1.1\r\nHost: x\r\n{authorization}\
             Content-Type: application/json\r\nContent-Length: 1048576\r\n\r\n"
        );
        write(&mut client, head.as_bytes()).await;
        let answer = closed_within(&mut client, PATIENCE).await;
        let text = String::from_utf8_lossy(&answer);
        assert!(status_line(&answer).starts_with("HTTP/1.1 401"), "{text}");
        let reason = if authorization.is_empty() {
            "missing"
        } else {
            "wrong_key"
        };
        assert!(text.contains(&format!("\"reason\":\"{reason}\"")), "{text}");
    }
}

/// With `max_handshakes` connections waiting for their first request, a new one is admitted
/// and the one that waited longest is closed at once (long before the handshake deadline), and
/// counted: a flood of silent sockets cannot keep a client who behaves from connecting, and
/// connected clients are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_handshake_cap_the_oldest_waiting_connection_makes_room() {
    let server =
        TestServer::with("[http]\nmax_handshakes = 20\nhandshake_timeout_secs = 600").await;
    let mut bystander = server.connect("bystander").await;
    let http = OneConnection::established(&server).await;
    let mut waiting = Vec::new();
    for _ in 0..20 {
        waiting.push(TcpStream::connect(server.addr()).await.unwrap());
    }
    metric_reaches(&http, "http_handshakes", 20.0).await;

    let mut newcomer = server.connect("newcomer").await;
    let answer = closed_within(&mut waiting[0], PATIENCE).await;
    assert!(answer.is_empty(), "closed without an answer: {answer:?}");
    assert_eq!(metric(&http, "http_handshakes_evicted_total").await, 1.0);
    // The newcomer leaves the handshakes once its upgrade is done: the gauge settles at 19.
    metric_reaches(&http, "http_handshakes", 19.0).await;
    still_served(&http, &mut newcomer, 1).await;
    still_served(&http, &mut bystander, 2).await;

    // A second wave: every connection of the first is older than every one of the second.
    for _ in 0..20 {
        waiting.push(TcpStream::connect(server.addr()).await.unwrap());
    }
    metric_reaches(&http, "http_handshakes_evicted_total", 20.0).await;
    for first_wave in &mut waiting[1..20] {
        closed_within(first_wave, PATIENCE).await;
    }
    // The gauge counts the second wave whole once the last of it is taken in.
    metric_reaches(&http, "http_handshakes", 20.0).await;
}

/// Send a complete request on `stream` and read its whole answer, keeping the connection.
async fn healthz(stream: &mut TcpStream) {
    write(stream, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.ends_with(b"\r\n\r\nok\n") {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("an answer")
            .expect("a readable socket");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
}

/// One address holds at most `max_connections_per_ip` connections: the next from it is closed
/// at once and counted; another address is served meanwhile; once one of its connections
/// closes, the first address connects again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_its_share_of_connections() {
    let server =
        TestServer::with("[http]\nmax_connections_per_ip = 5\nhandshake_timeout_secs = 60").await;
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut stream = connect_from(2, server.addr()).await;
        healthz(&mut stream).await;
        held.push(stream);
    }
    let mut sixth = connect_from(2, server.addr()).await;
    assert!(closed_within(&mut sixth, PATIENCE).await.is_empty());
    assert_eq!(
        server.metric("http_refused_total{reason=\"per_ip\"}").await,
        Some(1.0)
    );
    let mut other = server.connect("other-address").await;
    still_served(&OneConnection::connect(&server).await, &mut other, 1).await;

    held.pop();
    switchboard_testing::eventually("a place for 127.0.0.2 again", || async {
        let mut stream = connect_from(2, server.addr()).await;
        let written = stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await;
        written.is_ok() && matches!(read, Ok(Ok(n)) if n > 0)
    })
    .await;
}

/// An HTTP/2 client over TCP (prior knowledge): the request sender, the connection's task,
/// and the peer's `SETTINGS_MAX_CONCURRENT_STREAMS` as the client last saw it.
async fn h2_client(
    server: &TestServer,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
    watch::Receiver<usize>,
) {
    let tcp = TcpStream::connect(server.addr()).await.unwrap();
    let (send, mut connection) = h2::client::handshake(tcp).await.expect("an h2 handshake");
    let (streams, seen) = watch::channel(usize::MAX);
    let driver = tokio::spawn(async move {
        poll_fn(|cx| {
            let polled = Pin::new(&mut connection).poll(cx);
            streams.send_replace(connection.max_concurrent_send_streams());
            polled
        })
        .await
    });
    (send, driver, seen)
}

fn h2_request(
    server: &TestServer,
    method: &str,
    path: &str,
    key: Option<&str>,
) -> http::Request<()> {
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", server.base))
        .header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    request.body(()).unwrap()
}

/// HTTP/2 is served with its bounds: the server announces `http2_max_concurrent_streams`, and
/// a connection with no request for the idle timeout is closed and counted. With
/// `http2 = false` the preface is not understood.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_connections_are_bounded_and_closed_when_idle() {
    let server =
        TestServer::with("[http]\nhttp2_max_concurrent_streams = 7\nidle_timeout_secs = 1").await;
    let (send, driver, mut streams) = h2_client(&server).await;
    // Held until the end: a client with no sender left closes the connection itself.
    let mut send = send.ready().await.unwrap();
    let request = h2_request(&server, "GET", "/healthz", None);
    let (response, _) = send.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    streams.wait_for(|n| *n == 7).await.unwrap();
    let ended = tokio::time::timeout(DEADLINE + PATIENCE, driver).await;
    ended
        .expect("the server closes the idle connection")
        .unwrap()
        .ok();
    let idle = server.metric("http_timeouts_total{stage=\"idle\"}").await;
    assert!(idle >= Some(1.0), "{idle:?}");
    drop(send);

    let h1_only = TestServer::with("[http]\nhttp2 = false").await;
    let (send, _driver, _) = h2_client(&h1_only).await;
    let refused = async {
        let (response, _) = send
            .ready()
            .await?
            .send_request(h2_request(&h1_only, "GET", "/healthz", None), true)?;
        response.await
    };
    assert!(refused.await.is_err(), "no HTTP/2 without http2 = true");
}

/// One HTTP/2 connection opens 150 streams to the API without the key, each announcing and
/// starting a 1 MiB body it never finishes: every one is answered 401 at once (more than the
/// 100 concurrent streams allowed, so each answered stream gave its place back). A stream with
/// the key whose body stalls is answered 408 `body_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_http2_streams_are_refused_before_their_bodies_are_read() {
    let server = TestServer::with("[http]\nbody_timeout_secs = 1").await;
    let (send, _driver, mut streams) = h2_client(&server).await;
    // Until the server's SETTINGS arrive the client may open any number of streams, and the
    // server refuses those past its limit (REFUSED_STREAM): wait for them, as a client would.
    tokio::time::timeout(PATIENCE, streams.wait_for(|n| *n != usize::MAX))
        .await
        .expect("the server's SETTINGS")
        .expect("the connection's driver");
    let mut answers = Vec::new();
    let mut bodies = Vec::new();
    for _ in 0..150 {
        let mut ready = send.clone().ready().await.unwrap();
        let request = h2_request(&server, "POST", "/api/publish", None);
        let (response, mut body) = ready.send_request(request, false).unwrap();
        // The answer may come, and close the stream, before the first byte of the body.
        let _ = body.send_data(Bytes::from(vec![b' '; 16 * 1024]), false);
        answers.push(tokio::spawn(response));
        bodies.push(body);
    }
    for answer in answers {
        let response = tokio::time::timeout(PATIENCE, answer).await.unwrap();
        assert_eq!(response.unwrap().unwrap().status(), 401);
    }

    let request = h2_request(&server, "POST", "/api/publish", Some(API_KEY));
    let (response, mut body) = send
        .ready()
        .await
        .unwrap()
        .send_request(request, false)
        .unwrap();
    body.send_data(Bytes::from_static(b"{\"to\":"), false)
        .unwrap();
    let response = tokio::time::timeout(DEADLINE + PATIENCE, response)
        .await
        .unwrap();
    let mut response = response.unwrap();
    assert_eq!(response.status(), 408);
    let mut text = Vec::new();
    while let Some(chunk) = response.body_mut().data().await {
        text.extend_from_slice(&chunk.unwrap());
    }
    assert!(String::from_utf8_lossy(&text).contains("body_timeout"));
}

/// Attack 2 against the binary, in bounded form: 100 connections each announce and send a
/// 1 MiB body to the API without the key, and one HTTP/2 connection opens 150 such streams.
/// Each is answered 401 before its body is read, the server's resident memory grows by less
/// than 32 MiB (when the bodies were read first, 300 of them held 311 MiB), and a client that
/// behaves is served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_bodies_hold_no_memory_in_the_server() {
    const MIB: usize = 1024 * 1024;
    let process = ServerProcess::serve(&[]);
    let server = &process.server;
    let mut bystander = server.connect("bystander").await;
    still_served(&OneConnection::connect(server).await, &mut bystander, 1).await;
    let before = process.rss_kib();

    let mut attackers = Vec::new();
    for _ in 0..100 {
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        let head = format!(
            "POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {MIB}\r\n\r\n"
        );
        write(&mut stream, head.as_bytes()).await;
        attackers.push(tokio::spawn(async move {
            let (mut reader, mut writer) = stream.into_split();
            let sending = tokio::spawn(async move {
                let chunk = vec![b' '; 64 * 1024];
                for _ in 0..MIB / chunk.len() {
                    if writer.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
            });
            let mut answer = Vec::new();
            let read = tokio::time::timeout(PATIENCE, reader.read_to_end(&mut answer)).await;
            sending.abort();
            read.expect("an answer, then the close").ok();
            status_line(&answer)
        }));
    }
    let (send, _driver, _) = h2_client(server).await;
    let mut streams = Vec::new();
    for _ in 0..150 {
        let mut ready = send.clone().ready().await.unwrap();
        let request = h2_request(server, "POST", "/api/publish", None);
        let (response, mut body) = ready.send_request(request, false).unwrap();
        let _ = body.send_data(Bytes::from(vec![b' '; MIB]), false);
        streams.push((tokio::spawn(response), body));
    }
    still_served(&OneConnection::connect(server).await, &mut bystander, 2).await;

    for attacker in attackers {
        let status = attacker.await.unwrap();
        assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    }
    for (response, _body) in streams {
        let response = tokio::time::timeout(PATIENCE, response).await.unwrap();
        assert_eq!(response.unwrap().unwrap().status(), 401);
    }
    let grown = process.rss_kib().saturating_sub(before);
    assert!(grown < 32 * 1024, "the server grew by {grown} KiB");
    still_served(&OneConnection::connect(server).await, &mut bystander, 3).await;
}

/// A settings file for the binary, removed when dropped.
struct SettingsFile(std::path::PathBuf);

impl SettingsFile {
    fn new(name: &str, text: &str) -> Self {
        let path = std::env::temp_dir().join(format!("{name}-{}.toml", std::process::id()));
        std::fs::write(&path, text).expect("a writable temporary directory");
        SettingsFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 path")
    }
}

impl Drop for SettingsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The binary raises its soft open-file limit to the hard one at start, and `/metrics` shows
/// both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_soft_open_file_limit_is_raised_to_the_hard_one() {
    let process = ServerProcess::serve_from(switchboard_with_ulimit("-S -n 256"), &[]);
    let server = &process.server;
    let soft = server.metric("open_files_limit{kind=\"soft\"}").await;
    let hard = server.metric("open_files_limit{kind=\"hard\"}").await;
    assert_eq!(soft, hard);
    assert!(soft > Some(256.0), "{soft:?}");
}

/// Under an open-file limit of 64 that cannot be raised, clients past the descriptor budget
/// are closed at once: the process never runs out of descriptors (no accept fails), the
/// clients it holds are served, `/metrics` counts the refusals and shows the limits, the log
/// warns once, then at most once per 10 s however many were refused, and once clients leave, new
/// ones connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_its_descriptor_limit_the_server_sheds_clients_without_a_log_storm() {
    // The handshake timeout leaves the test's own connection open between its requests.
    let settings = SettingsFile::new(
        "switchboard-fd-budget",
        "[http]\nfd_reserve = 8\nhandshake_timeout_secs = 600\n",
    );
    let env = [("SWITCHBOARD_CONFIG", settings.path())];
    let mut process = ServerProcess::serve_from(switchboard_with_ulimit("-n 64"), &env);
    let server = &process.server;
    let http = OneConnection::established(server).await;
    let started = std::time::Instant::now();
    let mut held = Vec::new();
    let mut refused = 0;
    for i in 0..80 {
        let query = format!("token={}", server.token(&format!("user-{i}"), None));
        match WsClient::open(server.addr(), &query, false).await {
            Ok(client) => held.push(client),
            Err(_) => refused += 1,
        }
    }
    assert!(refused > 0 && !held.is_empty(), "{} held", held.len());
    let shed = metric(&http, "http_refused_total{reason=\"descriptors\"}").await;
    assert_eq!(shed, f64::from(refused));
    assert_eq!(metric(&http, "accept_errors_total").await, 0.0);
    assert_eq!(metric(&http, "open_files_limit{kind=\"soft\"}").await, 64.0);
    assert_eq!(metric(&http, "open_files_limit{kind=\"hard\"}").await, 64.0);
    let mut first = held.remove(0);
    assert_eq!(first.json().await["type"], "welcome");
    first.send(json!({"type": "ping", "ref": 1})).await;
    assert_eq!(first.next_of("pong").await["ref"], 1);

    held.truncate(held.len() / 2);
    switchboard_testing::eventually("room for a new client", || async {
        let query = format!("token={}", server.token("latecomer", None));
        WsClient::open(server.addr(), &query, false).await.is_ok()
    })
    .await;
    process.terminate();
    // The refusals spanned this long: one warning at the first, then at most one per
    // WARN_EVERY (10 s) however many followed (a loaded machine only stretches the span).
    let span = started.elapsed().as_secs() as usize;
    let (success, log) = process.exited().await;
    assert!(success, "{log}");
    let warnings = log.matches("connections refused at accept").count();
    assert!(
        (1..=1 + span.div_ceil(10)).contains(&warnings),
        "{warnings} warnings for {refused} in {span} s:\n{log}"
    );
}
