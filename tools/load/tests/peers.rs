//! The load tool drives the fan-out peers of the benchmarks over real sockets: every client
//! of a `burst` run receives every message from the raw peer (Switchboard's protocol) and from
//! the socketioxide peer (`--protocol socketio`), published through their `POST /api/publish`.

use std::process::Command;
use std::time::Duration;
use switchboard_raw_peer::Publishing;
use tokio::net::TcpListener;

/// Run the load tool's `burst` against `server` with `extra` arguments; its JSON report.
fn burst(server: &str, extra: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard-load"))
        .args([
            "burst",
            "--server",
            server,
            "--clients",
            "6",
            "--processes",
            "2",
        ])
        .args(["--messages", "20", "--timeout", "20", "--json"])
        .args(extra)
        .output()
        .expect("the load tool runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the load tool failed ({:?}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().expect("a report");
    serde_json::from_str(last).expect("the last line is the JSON report")
}

fn assert_every_delivery(report: &serde_json::Value) {
    assert_eq!(report["joined"], 6);
    assert_eq!(report["expected"], 120);
    assert_eq!(report["received"], 120);
    assert_eq!(report["lost"], 0);
    assert_eq!(report["duplicates"], 0);
}

/// A peer on a port the system picks, served on its own runtime thread; its base URL.
fn start(
    serve: impl FnOnce(
            TcpListener,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send>>
        + Send
        + 'static,
) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
            tx.send(listener.local_addr().expect("its address"))
                .unwrap();
            serve(listener).await.expect("the peer serves");
        });
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the peer listens");
    format!("http://{addr}")
}

#[test]
fn every_client_of_the_raw_peer_receives_every_message() {
    for publishing in [Publishing::Inline, Publishing::HubTask] {
        let server = start(move |listener| {
            Box::pin(switchboard_raw_peer::serve(
                listener,
                switchboard_peer::Secrets::default(),
                publishing,
                std::future::pending(),
            ))
        });
        let report = burst(&server, &[]);
        assert_every_delivery(&report);
    }
}

#[test]
fn every_socket_io_client_of_the_socketioxide_peer_receives_every_message() {
    let server = start(|listener| {
        Box::pin(switchboard_socketio_peer::serve(
            listener,
            switchboard_peer::Secrets::default(),
            std::future::pending(),
        ))
    });
    let report = burst(&server, &["--protocol", "socketio"]);
    assert_every_delivery(&report);
}
