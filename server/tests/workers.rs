//! `workers` (`--workers`, `SWITCHBOARD_WORKERS`): the runtime's worker threads, read from a
//! `switchboard serve` process itself. The hubs follow (one per two worker threads unless `shards`
//! says otherwise), and a count the server cannot honour is refused at start.

mod support;

use serde_json::{json, Value};
use std::process::Stdio;
use support::{switchboard_binary, ServerProcess};

/// The process's threads named as tokio names its runtime's threads (`tokio-rt-worker`): its
/// workers, and blocking threads once something needs one, which a server that has just
/// started and served nothing has not.
fn runtime_workers(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the server's threads")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "tokio-rt-worker")
        .count()
}

/// A server on `workers` threads with `shards` hubs, logging JSON lines.
fn serve(workers: &str, shards: &str) -> ServerProcess {
    ServerProcess::serve(&[
        ("SWITCHBOARD_WORKERS", workers),
        ("SWITCHBOARD_SHARDS", shards),
        ("SWITCHBOARD_LOG_FORMAT", "json"),
        ("RUST_LOG", "info"),
    ])
}

#[tokio::test]
async fn one_worker_runs_one_hub_and_serves() {
    let mut process = serve("1", "0");
    assert_eq!(runtime_workers(process.pid()), 1);
    let server = &process.server;
    let mut alice = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    let published = server
        .publish(json!({"room": "lobby"}), "note", json!({"n": 1}))
        .await;
    assert_eq!(published["reached"], 2, "{published}");
    for client in [&mut alice, &mut bob] {
        let message = client.next_of("message").await;
        assert_eq!(message["data"], json!({"n": 1}), "{message}");
    }
    process.terminate();
    let (exited, log) = process.exited().await;
    assert!(exited, "{log}");
    assert_eq!(start_line(&log), (Some(1), Some(1)));
}

/// The `workers` and `shards` of the start line in `log`.
fn start_line(log: &str) -> (Option<u64>, Option<u64>) {
    let started = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["message"] == "switchboard listening")
        .unwrap_or_else(|| panic!("no start line:\n{log}"));
    (started["workers"].as_u64(), started["shards"].as_u64())
}

/// The runtime's threads, and the start line's `workers` and `shards`, of a server started
/// with `workers` and `shards` as set.
async fn started(workers: &str, shards: &str) -> (usize, (Option<u64>, Option<u64>)) {
    let mut process = serve(workers, shards);
    let threads = runtime_workers(process.pid());
    process.terminate();
    let (exited, log) = process.exited().await;
    assert!(exited, "{log}");
    (threads, start_line(&log))
}

#[tokio::test]
async fn shards_set_apart_from_workers_are_kept() {
    assert_eq!(started("2", "3").await, (2, (Some(2), Some(3))));
}

#[tokio::test]
async fn by_default_there_is_one_hub_per_two_worker_threads() {
    assert_eq!(started("2", "0").await, (2, (Some(2), Some(1))));
    assert_eq!(started("4", "0").await, (4, (Some(4), Some(2))));
}

/// More worker threads than the server takes: it says which setting and exits, serving nothing.
#[test]
fn too_many_workers_are_refused_at_start() {
    let out = switchboard_binary()
        .args(["serve", "--listen", "127.0.0.1:0", "--workers", "100000"])
        .stdin(Stdio::null())
        .output()
        .expect("the switchboard binary runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("workers is 100000: at most 256 worker threads"),
        "{stderr}"
    );
}
