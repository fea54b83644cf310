//! The `switchboard` binary itself: `token` mints a verifiable development token, `serve` runs
//! with no settings at all, refuses production without credentials, and on SIGTERM closes its
//! clients with 1001 and exits 0.

mod support;

use std::time::Duration;
use support::{switchboard_binary, ServerProcess, WsClient};
use switchboard_server::auth::TokenKeys;
use switchboard_server::settings::DEVELOPMENT_SECRET;

/// `switchboard token` prints a token that the development secret verifies, with its rooms.
#[test]
fn the_token_command_mints_a_development_token() {
    let output = switchboard_binary()
        .args(["token", "alice", "--rooms", "lobby,team-*", "--ttl", "60"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let token = String::from_utf8(output.stdout).unwrap();
    let claims = TokenKeys::new(DEVELOPMENT_SECRET)
        .verify(token.trim())
        .unwrap();
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.rooms, Some(vec!["lobby".into(), "team-*".into()]));
    assert!(claims.exp - claims.iat == 60);
}

/// Production without its own secret and API key does not start.
#[test]
fn production_without_credentials_does_not_start() {
    let output = switchboard_binary()
        .args(["serve", "--env", "production", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("auth secret"), "{stderr}");
}

/// `switchboard serve` with nothing configured accepts a client with a development token; on
/// SIGTERM the client is closed with 1001 and the process exits successfully.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_with_defaults_and_shuts_down_gracefully_on_sigterm() {
    let mut command = switchboard_binary();
    command.args(["serve", "--listen", "127.0.0.1:0"]);
    let mut process = ServerProcess::spawn(command);
    let addr = process.server.addr();

    let token = TokenKeys::new(DEVELOPMENT_SECRET).mint("alice", None, Duration::from_secs(60));
    let mut client = WsClient::connect(addr, &format!("token={token}")).await;
    assert_eq!(client.json().await["type"], "welcome");

    process.terminate();
    assert_eq!(client.closed().await, 1001);
    let (success, log) = process.exited().await;
    assert!(success, "{log}");
    assert!(log.contains("DEVELOPMENT credentials"), "{log}");
}
