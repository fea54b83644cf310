//! The `switchboard` binary itself: `token` mints a verifiable development token, `serve` runs
//! with no settings at all, refuses production without strong credentials of its own and the
//! development credentials off loopback, and on SIGTERM refuses writes it would lose with 503,
//! closes its clients with 1001 and exits 0.

mod support;

use serde_json::json;
use std::time::Duration;
use support::{switchboard_binary, ServerProcess, WsClient};
use switchboard_server::auth::{Claims, TokenKeys};
use switchboard_server::settings::{DEVELOPMENT_API_KEY, DEVELOPMENT_SECRET};

/// `switchboard token` prints a token that the development secret verifies, with its rooms.
#[test]
fn the_token_command_mints_a_development_token() {
    let output = switchboard_binary()
        .args([
            "token",
            "alice",
            "--rooms",
            "lobby,team-*",
            "--publish",
            "lobby",
        ])
        .args(["--ttl", "60"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let token = String::from_utf8(output.stdout).unwrap();
    let key = jsonwebtoken::DecodingKey::from_secret(DEVELOPMENT_SECRET.as_bytes());
    let validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    let claims = jsonwebtoken::decode::<Claims>(token.trim(), &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.rooms, Some(vec!["lobby".into(), "team-*".into()]));
    assert_eq!(claims.publish, Some(vec!["lobby".into()]));
    assert_eq!(claims.iat.map(|iat| claims.exp - iat), Some(60));
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

/// `serve`'s error output with `args` and `env`; panics if it starts.
fn refused_to_start(args: &[&str], env: &[(&str, &str)]) -> String {
    let output = switchboard_binary()
        .arg("serve")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(!output.status.success(), "{args:?} started");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Staging and production refuse the published development secret and key, a 1-character API
/// key and a 16-byte secret, without printing what they refused; the development credentials
/// refuse to listen anywhere but on loopback.
#[test]
fn weak_or_public_credentials_do_not_start() {
    let strong = "0123456789abcdef0123456789abcdef";
    let production = [("SWITCHBOARD_ENV", "production")];
    let cases = [
        (DEVELOPMENT_SECRET, strong, "development"),
        (strong, DEVELOPMENT_API_KEY, "development"),
        (strong, "k", "at least 32 characters"),
        ("0123456789abcdef", strong, "at least 32 bytes"),
    ];
    for (secret, key, named) in cases {
        let listen = [
            "--listen",
            "127.0.0.1:0",
            "--secret",
            secret,
            "--api-key",
            key,
        ];
        let stderr = refused_to_start(&listen, &production);
        assert!(stderr.contains(named), "{stderr}");
        assert!(!stderr.contains(strong), "{stderr}");
    }
    let stderr = refused_to_start(&["--listen", "0.0.0.0:0"], &[]);
    assert!(stderr.contains("loopback"), "{stderr}");
}

/// After SIGTERM, while the node drains (`shutdown_drain_secs`), `/readyz` answers 503, a
/// publish is refused with 503 `shutting_down` instead of being buffered in a process about to
/// exit, and a new client is closed with 1001; then the connected client is closed with 1001
/// and the process exits successfully.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigterm_writes_are_refused_with_503_until_exit() {
    let mut process = ServerProcess::serve(&[("SWITCHBOARD_SHUTDOWN_DRAIN_SECS", "3")]);
    let server = &process.server;
    let mut alice = server.connect("alice").await;

    process.terminate();
    let server = &process.server;
    switchboard_testing::eventually("/readyz to answer 503", || async {
        server.get_text("/readyz").await.0 == 503
    })
    .await;
    let publish = json!({"to": {"user": "zoe"}, "event": "lost"});
    let (status, answer) = server.api("POST", "/api/publish", Some(publish)).await;
    assert_eq!(
        (status, answer["error"].clone()),
        (503, json!("shutting_down"))
    );
    let query = format!("token={}", server.token("bob", None));
    let mut late = WsClient::connect(server.addr(), &query).await;
    assert_eq!(late.close_code().await, Some(1001));

    assert_eq!(alice.closed().await, 1001);
    let (success, log) = process.exited().await;
    assert!(success, "{log}");
}
