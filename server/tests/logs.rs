//! The server's logs, read from the stderr of a `switchboard serve` process: JSON lines on
//! request, a request id on every API request and WebSocket session (echoed in
//! `x-request-id`), the session's lines in a span of its own with its user and connection id,
//! no token or key anywhere, and a stderr nobody reads stops nothing.

mod support;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use support::{ServerProcess, TestServer, WsClient, API_KEY, SECRET};
use switchboard_server::logging::LOG_QUEUE_LINES;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Every line parsed as JSON; panics on a line that is not.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// The value of `field` in a line's event or in any of its spans.
fn field<'a>(line: &'a Value, name: &str) -> Option<&'a Value> {
    line.get(name).or_else(|| {
        line["spans"]
            .as_array()?
            .iter()
            .find_map(|span| span.get(name))
    })
}

#[tokio::test]
async fn json_logs_carry_request_ids_and_connection_ids_and_never_a_credential() {
    let mut process = ServerProcess::serve(&[
        ("SWITCHBOARD_LOG_FORMAT", "json"),
        // The transport's connection events are at debug level.
        ("RUST_LOG", "info,switchboard_transport=debug"),
    ]);
    let server = &process.server;

    // A WebSocket session with the token in the query, as browsers connect, and its own id.
    let token = server.token("alice", None);
    let url = format!("ws://{}/ws?token={token}&thread=t-1", server.addr());
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("x-request-id", "session-7f3a".parse().unwrap());
    let mut client = WsClient::request(server.addr(), request).await.unwrap();
    let welcome = client.json().await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let conn = welcome["conn"]
        .as_str()
        .expect("a connection id")
        .to_owned();

    // API requests: one names its id, one gets a new one; both are echoed.
    let named = server
        .http
        .get(format!("{}/api/stats", server.base))
        .bearer_auth(API_KEY)
        .header("x-request-id", "api-call-1")
        .send()
        .await
        .unwrap();
    assert_eq!(named.headers()["x-request-id"], "api-call-1");
    let made = server
        .http
        .get(format!("{}/api/users/alice", server.base))
        .bearer_auth(API_KEY)
        .header("x-request-id", "not a usable {\"id\"}")
        .send()
        .await
        .unwrap();
    let made_id = made.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(
        made_id.len(),
        36,
        "a UUID replaces an unusable id: {made_id}"
    );
    client.close().await;

    process.terminate();
    let (exited, log) = process.exited().await;
    assert!(exited, "{log}");
    for secret in [token.as_str(), API_KEY, SECRET] {
        assert!(!log.contains(secret), "a credential is in the log:\n{log}");
    }
    let lines = json_lines(&log);

    // The session's lines are in its own `connection` span, not in its handshake's request
    // span (which ended with the 101), and name its handshake's request id, its user and its
    // connection id.
    for message in ["connection opened", "connection ended"] {
        let line = lines
            .iter()
            .find(|l| l["message"] == message)
            .unwrap_or_else(|| panic!("no '{message}' line:\n{log}"));
        let spans: Vec<&Value> = line["spans"].as_array().expect("spans").iter().collect();
        assert_eq!(spans.len(), 1, "{line}");
        assert_eq!(spans[0]["name"], "connection", "{line}");
        assert_eq!(spans[0]["request_id"], "session-7f3a", "{line}");
        assert_eq!(spans[0]["user"], "alice", "{line}");
        assert_eq!(spans[0]["conn"], conn.as_str(), "{line}");
    }

    // The access log of the handshake shows the query without the token.
    let handshake = lines
        .iter()
        .find(|l| {
            l["message"] == "finished processing request"
                && field(l, "request_id") == Some(&"session-7f3a".into())
        })
        .unwrap_or_else(|| panic!("no access-log line for the handshake:\n{log}"));
    assert_eq!(
        field(handshake, "uri").unwrap(),
        "/ws?token=[redacted]&thread=t-1",
        "{handshake}"
    );
    assert_eq!(handshake["status"], 101, "{handshake}");

    // Each API request has its access-log line under its id.
    for id in ["api-call-1", made_id.as_str()] {
        let id = Value::String(id.to_owned());
        assert!(
            lines
                .iter()
                .any(|l| l["message"] == "finished processing request"
                    && field(l, "request_id") == Some(&id)
                    && l["status"] == 200),
            "no access-log line for {id}:\n{log}"
        );
    }
}

#[tokio::test]
async fn text_logs_stay_the_default_and_redact_the_token_too() {
    let mut process = ServerProcess::serve(&[("RUST_LOG", "info")]);
    let server = &process.server;
    let token = server.token("bob", None);
    let client = WsClient::welcomed(server.addr(), &format!("token={token}")).await;
    client.close().await;
    process.terminate();
    let (exited, log) = process.exited().await;
    assert!(exited, "{log}");
    assert!(log.contains("switchboard listening on http://"), "{log}");
    assert!(log.contains("/ws?token=[redacted]"), "{log}");
    // Read through a pipe, as a file or journald reads it: plain text, no colour codes.
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a piped log:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains(" INFO ") && l.contains("switchboard listening addr=")),
        "{log}"
    );
    assert!(!log.contains(&token), "the token is in the log:\n{log}");
}

/// A `serve` process whose stderr the test reads itself; killed when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A stderr nobody reads (a stalled log shipper, a full pipe) stops nothing: the server answers
/// every request while the lines past its log queue are dropped and counted, and its lines
/// reach stderr again once stderr is read. (Before the log writer had a thread of its own, the
/// first write to the full pipe stopped a worker thread, and a few hundred requests later the
/// whole node.)
#[tokio::test]
async fn a_stderr_nobody_reads_drops_log_lines_and_stops_nothing() {
    let mut process = Killed(
        support::serving(support::switchboard_binary(), &[("RUST_LOG", "info")])
            .stderr(Stdio::piped())
            .spawn()
            .expect("the switchboard binary starts"),
    );
    let mut stderr = BufReader::new(process.0.stderr.take().expect("piped"));
    let addr = loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no address");
        if let Some(addr) = support::listening_on(line.trim_end()) {
            break addr;
        }
    };
    // From here on nobody reads stderr until the test says so: the pipe (64 KiB) fills, then
    // the writer's buffer, then the queue.
    let server = TestServer::at(addr);
    let requests = LOG_QUEUE_LINES + 4_000;
    for n in 0..requests {
        let answer = server
            .http
            .get(format!("{}/healthz", server.base))
            .timeout(support::PATIENCE)
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {n} of {requests} failed: {e}"));
        assert_eq!(answer.status(), 200, "request {n}");
    }
    let dropped = server.metric("log_lines_dropped_total").await;
    assert!(
        dropped.is_some_and(|dropped| dropped > 0.0),
        "{requests} access lines to an unread stderr, and none dropped: {dropped:?}"
    );

    // Read again: the queue drains, and new lines get through.
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        while stderr.read_line(&mut line).is_ok_and(|n| n > 0) {
            if lines.send(std::mem::take(&mut line)).is_err() {
                return;
            }
        }
    });
    let deadline = std::time::Instant::now() + support::PATIENCE;
    'found: loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no line of a request reached stderr once it was read"
        );
        // A request whose line may be dropped while the queue is still full: another follows.
        server
            .http
            .get(format!("{}/healthz", server.base))
            .header("x-request-id", "after-the-stall")
            .send()
            .await
            .expect("answered");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        while let Ok(line) = seen.try_recv() {
            if line.contains("request_id=after-the-stall") {
                break 'found;
            }
        }
    }
}
