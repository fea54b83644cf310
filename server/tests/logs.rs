//! The server's logs, read from the stderr of a `switchboard serve` process: JSON lines on
//! request, a request id on every API request and WebSocket session (echoed in
//! `x-request-id`), the session's lines in a span of its own with its user and connection id,
//! and no token or key anywhere.

mod support;

use serde_json::Value;
use support::{ServerProcess, WsClient, API_KEY, SECRET};
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
