//! A client that floods WebSocket pings and never reads, against the real `switchboard` binary:
//! its pings count against the rate limit, so it is closed with 4029 (`rate_limited`); its
//! connection's write buffer is bounded, so even a flood the rate limit lets through holds
//! little memory and ends in 4008 (`slow_consumer`) once the server must write to it. The
//! server process's resident memory (`VmRSS` in `/proc/<pid>/status`) grows by at most
//! [`RSS_GROWTH`] over the baseline measured just before the flood, and a bystander receives
//! everything published meanwhile.

mod support;

use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;
use switchboard_testing::{guard, Received};

/// How much the server's resident memory may grow during a flood from one client: generous
/// against allocator noise, and far below what an unbounded write buffer takes (the flood of
/// the second test owes its client 32 MiB of pongs).
const RSS_GROWTH: u64 = 10 << 20;

/// The resident memory of process `pid`, in bytes.
fn vm_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server runs");
    // A process that exited but was not yet reaped has no VmRSS line.
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .expect("the server runs: a VmRSS line");
    kib * 1024
}

/// The process that listens on `addr` (an IPv4 address): the inode of its listening socket
/// in `/proc/net/tcp`, found among the processes' open files.
fn pid_listening_on(addr: SocketAddr) -> u32 {
    let port = format!(":{:04X}", addr.port());
    let tcp = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let inode = tcp
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|fields| fields[1].ends_with(&port) && fields[3] == "0A")
        .map(|fields| fields[9].to_owned())
        .expect("a listening socket on the port");
    let socket = format!("socket:[{inode}]");
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
                fds.filter_map(Result::ok).any(|fd| {
                    std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == &*socket)
                })
            })
        })
        .expect("the process that listens")
}

/// The largest resident memory of `pid` seen until stopped.
struct Peak {
    bytes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Peak {
    fn watch(pid: u32) -> Self {
        let bytes = Arc::new(AtomicU64::new(vm_rss(pid)));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, s) = (bytes.clone(), stop.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                b.fetch_max(vm_rss(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        Peak { bytes, stop, task }
    }

    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("the watcher");
        self.bytes.load(Ordering::Relaxed)
    }
}

/// The value of `switchboard_closes_total` for `reason` and `code`.
async fn closes(server: &TestServer, reason: &str, code: u16) -> u64 {
    let (status, text) = server.get_text("/metrics").await;
    assert_eq!(status, 200, "{text}");
    let prefix = format!("switchboard_closes_total{{reason=\"{reason}\",code=\"{code}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |value| value.parse().expect("a number"))
}

/// A client of `server` as `user`, with small socket buffers, its `welcome` read.
async fn flooder(server: &TestServer, user: &str) -> WsClient {
    let query = format!("token={}", server.token(user, None));
    let mut client = WsClient::open(server.addr(), &query, true)
        .await
        .expect("accepted");
    assert_eq!(client.json().await["type"], "welcome");
    client
}

/// With the default settings: a client pings as fast as it can and reads nothing. The rate
/// limit closes it with 4029 and the server drops its socket; the server's memory barely
/// moves; a bystander receives every message published during the flood, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_is_closed_with_4029_and_costs_the_server_no_memory() {
    let process = ServerProcess::serve(&[]);
    let server = &process.server;
    let pid = pid_listening_on(server.addr());
    let mut bystander = server.connect("bystander").await;
    bystander.join("calm").await;
    let mut flooder = flooder(server, "flooder").await;
    let baseline = vm_rss(pid);
    let peak = Peak::watch(pid);

    // Floods until the server drops the socket (a write fails); the guard fails the test if
    // it never does.
    let flood = tokio::spawn(async move {
        guard(
            "the server to drop the flooder",
            flooder.flood_pings(usize::MAX),
        )
        .await;
    });
    for i in 0..10 {
        server
            .publish(json!({"room": "calm"}), &format!("m{i}"), json!(i))
            .await;
    }
    let received: Vec<String> = {
        let mut events = Vec::new();
        for _ in 0..10 {
            events.push(bystander.event().await);
        }
        events
    };
    flood.await.expect("the flood ends");
    let peak = peak.stop().await;

    let expected: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    assert_eq!(received, expected, "the bystander's messages, in order");
    assert_eq!(closes(server, "rate_limited", 4029).await, 1);
    let growth = peak.saturating_sub(baseline);
    eprintln!("VmRSS before the flood {baseline} bytes, peak {peak} bytes: +{growth}");
    assert!(
        growth <= RSS_GROWTH,
        "VmRSS grew by {growth} bytes during the flood ({baseline} before)"
    );
}

/// With a rate limit the flood cannot reach: the client owes the server 32 MiB of pongs, of
/// which the server keeps no more than its connection's write buffer holds (1.375 MiB with the
/// default budgets) plus what the kernel buffers. When the server must write to it, the frame
/// does not fit: the client is closed as a slow consumer (4008) and its socket dropped, without
/// the reply it asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_past_the_rate_limit_holds_no_more_than_the_write_buffer() {
    let file = std::env::temp_dir().join(format!(
        "switchboard-ping-flood-{}.toml",
        std::process::id()
    ));
    std::fs::write(
        &file,
        "[limits]\nmessages_per_second = 4000000000\nmessage_burst = 4000000000\n\
         [heartbeat]\ninterval_secs = 600\ntimeout_secs = 1800\n",
    )
    .expect("a settings file");
    let mut command = switchboard_binary();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&file)
        .env("SWITCHBOARD_AUTH_SECRET", SECRET)
        .env("SWITCHBOARD_API_KEY", API_KEY);
    let process = ServerProcess::spawn(command);
    let server = &process.server;
    let pid = pid_listening_on(server.addr());
    let mut flooder = flooder(server, "flooder").await;
    let baseline = vm_rss(pid);
    let peak = Peak::watch(pid);

    flooder.leave_pongs_unread(32 << 20).await;
    guard("the slow consumer's close", async {
        while closes(server, "slow_consumer", 4008).await == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let peak = peak.stop().await;
    std::fs::remove_file(&file).expect("the settings file");

    assert_eq!(flooder.read().await, Received::Closed(None));
    let growth = peak.saturating_sub(baseline);
    eprintln!("VmRSS before the flood {baseline} bytes, peak {peak} bytes: +{growth}");
    assert!(
        growth <= RSS_GROWTH,
        "VmRSS grew by {growth} bytes during the flood ({baseline} before)"
    );
}
