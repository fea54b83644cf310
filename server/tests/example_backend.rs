//! The example backend (`examples/backend.py`, Python's standard library only) against the
//! real server: a client's `user_message` reaches it signed, its reply comes back with the
//! frame's `ref`, and the agent run it streams through the runs API reaches the client.

mod support;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use support::*;

const HOOK_SECRET: &str = "the-example-backend-secret";

/// The example backend, killed when dropped.
struct Example(Child);

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `examples/backend.py` on a free port, calling the server at `server`.
fn example_backend(server: &str) -> (Example, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/backend.py");
    let mut child = Command::new("python3")
        .arg(script)
        .env("PORT", port.to_string())
        .env("SWITCHBOARD_URL", server)
        .env("SWITCHBOARD_API_KEY", API_KEY)
        .env("WEBHOOK_SECRET", HOOK_SECRET)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs the example backend");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening on"), "{line}");
    (Example(child), format!("http://127.0.0.1:{port}/hook"))
}

#[tokio::test]
async fn a_user_message_gets_the_example_backends_reply_and_its_agent_run() {
    // The server's port must be known before the backend starts, and the backend's before the
    // server does: the server takes a free port chosen here.
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let (_backend, hook) = example_backend(&format!("http://{listen}"));
    let mut settings = settings(&format!(
        "[frames]\ntypes = [\"user_message\"]\n[webhook]\nurl = \"{hook}\"\nsecret = \"{HOOK_SECRET}\""
    ));
    settings.listen = listen;
    let server = TestServer::with_settings(settings).await;
    let mut client = server.connect("alice").await;

    client
        .send(json!({"type": "user_message", "data": {"text": "what is rust?"}, "ref": "q1"}))
        .await;

    let mut reply = None;
    let mut run = Vec::new();
    while reply.is_none() || run.last().map(String::as_str) != Some("agent_completed") {
        let frame: Value = client.json().await;
        match frame["type"].as_str().unwrap_or_default() {
            "reply" => reply = Some(frame),
            "error" => panic!("{frame}"),
            kind if kind.starts_with("agent_") || kind.starts_with("tool_") => {
                run.push(kind.to_owned())
            }
            _ => {}
        }
    }
    let reply = reply.unwrap();
    assert_eq!(reply["ref"], "q1");
    assert_eq!(reply["data"]["text"], "on it");
    assert_eq!(
        run,
        [
            "agent_started",
            "agent_thinking",
            "tool_executing",
            "tool_completed",
            "agent_completed"
        ]
    );
}
