//! The coordinator: starts the worker processes, publishes once every client is in the room,
//! merges the workers' reports and prints the figures.

use crate::histogram::Histogram;
use crate::worker::{FromWorker, Ready, Report, ServerReport};
use crate::{now_us, Cli, Scenario};
use serde_json::json;
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// One worker process and its pipes.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Worker {
    fn spawn(index: usize) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
        let mut child = Command::new(exe)
            .args(std::env::args_os().skip(1))
            .arg("--worker")
            .arg(index.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start worker {index}: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout is piped");
        Ok(Self {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        })
    }

    async fn next(&mut self) -> Result<FromWorker, String> {
        match self.lines.next_line().await {
            Ok(Some(line)) => serde_json::from_str(&line)
                .map_err(|e| format!("unreadable worker line {line:?}: {e}")),
            Ok(None) => Err("a worker ended early".to_owned()),
            Err(e) => Err(format!("reading a worker: {e}")),
        }
    }

    async fn tell(&mut self, command: &str) {
        if let Some(stdin) = &mut self.stdin {
            // A worker that already finished has closed its stdin: nothing to tell.
            let _ = stdin.write_all(format!("{command}\n").as_bytes()).await;
            let _ = stdin.flush().await;
        }
    }
}

/// Resident memory of a process, in KiB (`VmRSS` in `/proc/<pid>/status`).
fn rss_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot read /proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// CPU time a process has used, user and system, in seconds (`/proc/<pid>/stat`, whose
/// clock ticks are 1/100 s on Linux).
fn cpu_secs(pid: u32) -> Result<f64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("cannot read /proc/{pid}/stat: {e}"))?;
    // The fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => Ok((user + system) as f64 / 100.0),
        _ => Err(format!("unexpected /proc/{pid}/stat")),
    }
}

/// `figure` of every server process added up (`None` without `--server-pid`).
fn servers_total<T: std::iter::Sum<T>>(
    cli: &Cli,
    figure: fn(u32) -> Result<T, String>,
) -> Result<Option<T>, String> {
    if cli.server_pids.is_empty() {
        return Ok(None);
    }
    let figures = cli
        .server_pids
        .iter()
        .map(|&pid| figure(pid))
        .collect::<Result<Vec<T>, String>>()?;
    Ok(Some(figures.into_iter().sum()))
}

/// Add `from` to `into` index by index, growing `into` as needed.
fn add_by_index<T: Default>(into: &mut Vec<T>, from: Vec<T>, add: impl Fn(&mut T, T)) {
    if into.len() < from.len() {
        into.resize_with(from.len(), T::default);
    }
    for (slot, value) in into.iter_mut().zip(from) {
        add(slot, value);
    }
}

/// What the publisher did.
#[derive(Debug, Default)]
pub(crate) struct Published {
    /// Publishes the server accepted.
    pub(crate) accepted: usize,
    /// Publishes refused or failed, by reason.
    pub(crate) failed: BTreeMap<String, usize>,
    /// Deliveries the server reported (`reached`).
    pub(crate) reached: u64,
    pub(crate) first_us: u64,
    pub(crate) last_us: u64,
}

/// Publish the scenario's messages to the room.
async fn publish(cli: &Cli) -> Published {
    let http = reqwest::Client::new();
    let url = cli.publish_url();
    let pad = "x".repeat(cli.payload);
    let mut published = Published {
        first_us: now_us(),
        ..Published::default()
    };
    let body = |i: usize| {
        let mut data = json!({"i": i, "t": now_us()});
        if !pad.is_empty() {
            data["pad"] = json!(pad);
        }
        json!({"to": {"room": cli.room}, "event": "load", "data": data}).to_string()
    };
    let send = |body: String| {
        http.post(&url)
            .bearer_auth(&cli.api_key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let mut pending = Vec::new();
    match cli.scenario {
        Scenario::Burst => {
            for i in 0..cli.messages {
                let outcome = send(body(i)).await;
                settle(&mut published, outcome).await;
            }
        }
        Scenario::Rate => {
            // Each publish on its own task, so a slow answer does not lower the offered rate.
            let period = Duration::from_secs_f64(1.0 / cli.rate.max(1e-3));
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for i in 0..cli.messages {
                ticks.tick().await;
                pending.push(tokio::spawn(send(body(i))));
            }
        }
        Scenario::Idle => {}
    }
    for task in pending {
        match task.await {
            Ok(outcome) => settle(&mut published, outcome).await,
            Err(e) => *published.failed.entry(e.to_string()).or_default() += 1,
        }
    }
    published.last_us = now_us();
    published
}

async fn settle(published: &mut Published, outcome: reqwest::Result<reqwest::Response>) {
    let response = match outcome {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            *published.failed.entry(r.status().to_string()).or_default() += 1;
            return;
        }
        Err(e) => {
            *published.failed.entry(e.to_string()).or_default() += 1;
            return;
        }
    };
    published.accepted += 1;
    let answer = response.bytes().await.ok();
    if let Some(answer) = answer.and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    {
        published.reached += answer["reached"].as_u64().unwrap_or(0);
    }
}

/// One server's share of the figures.
struct ServerFigures {
    /// Its base URL, without a trailing slash.
    url: String,
    /// Clients that joined on it.
    joined: usize,
    /// Deliveries its clients should have had.
    expected: u64,
    /// What its clients received.
    report: ServerReport,
}

impl ServerFigures {
    fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.report.received)
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Run the scenario with `--processes` workers; prints the report. True if nothing was lost.
pub async fn run(cli: Cli) -> Result<bool, String> {
    crate::publisher::check(&cli)?;
    let rss_before = servers_total(&cli, rss_kib)?;
    let connect_cpu_before = servers_total(&cli, cpu_secs)?;
    let started = Instant::now();
    let mut workers = (0..cli.processes.max(1))
        .map(Worker::spawn)
        .collect::<Result<Vec<_>, _>>()?;

    let mut connect = Ready::default();
    for worker in &mut workers {
        match worker.next().await? {
            FromWorker::Ready(ready) => {
                connect.joined += ready.joined;
                for (reason, n) in ready.failed {
                    *connect.failed.entry(reason).or_default() += n;
                }
                if connect.first_connect_us == 0
                    || ready.first_connect_us < connect.first_connect_us
                {
                    connect.first_connect_us = ready.first_connect_us;
                }
                connect.last_joined_us = connect.last_joined_us.max(ready.last_joined_us);
                add_by_index(
                    &mut connect.joined_by_server,
                    ready.joined_by_server,
                    |a, b| *a += b,
                );
            }
            FromWorker::Report(_) | FromWorker::Done => {
                return Err("a worker reported before it was ready".into())
            }
        }
    }
    let connect_secs = connect
        .last_joined_us
        .saturating_sub(connect.first_connect_us) as f64
        / 1e6;
    let failed: usize = connect.failed.values().sum();
    // The servers' CPU while the clients connected and joined (the workers' start costs them
    // nothing): what a handshake and a join cost.
    let connect_cpu = match (connect_cpu_before, servers_total(&cli, cpu_secs)?) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };

    tokio::time::sleep(Duration::from_secs_f64(cli.settle_secs())).await;
    let mut rss_after = None;
    let server_cpu_before = servers_total(&cli, cpu_secs)?;
    let published = match cli.scenario {
        Scenario::Idle => {
            rss_after = servers_total(&cli, rss_kib)?;
            for worker in &mut workers {
                worker.tell("stop").await;
                worker.stdin = None;
            }
            Published::default()
        }
        Scenario::Burst | Scenario::Rate => {
            let published = if cli.publishing.chosen() {
                crate::publisher::publish(&cli).await
            } else {
                publish(&cli).await
            };
            for worker in &mut workers {
                worker.tell("go").await;
                worker.stdin = None;
            }
            published
        }
    };

    // Server CPU is counted until every worker is done receiving, before the clients close.
    let mut server_cpu = None;
    if cli.scenario != Scenario::Idle {
        for worker in &mut workers {
            if !matches!(worker.next().await?, FromWorker::Done) {
                return Err("a worker reported before it was done".into());
            }
        }
        if let (Some(before), Some(after)) = (server_cpu_before, servers_total(&cli, cpu_secs)?) {
            server_cpu = Some(after - before);
        }
    }

    let mut report = Report::default();
    let mut latency = Histogram::default();
    let mut worker_cpu = 0.0;
    for worker in &mut workers {
        match worker.next().await? {
            FromWorker::Report(r) => {
                report.received += r.received;
                report.duplicates += r.duplicates;
                report.complete += r.complete;
                for (code, n) in r.closed {
                    *report.closed.entry(code).or_default() += n;
                }
                if r.first_receive_us > 0
                    && (report.first_receive_us == 0
                        || r.first_receive_us < report.first_receive_us)
                {
                    report.first_receive_us = r.first_receive_us;
                }
                report.last_receive_us = report.last_receive_us.max(r.last_receive_us);
                latency.merge(&r.latency);
                add_by_index(&mut report.by_server, r.by_server, |a, b| {
                    a.received += b.received;
                    a.latency.merge(&b.latency);
                });
            }
            FromWorker::Ready(_) | FromWorker::Done => {
                return Err("a worker spoke out of turn".into())
            }
        }
        // Not waited for yet, so its figures are still readable even if it has exited.
        if let Some(pid) = worker.child.id() {
            worker_cpu += cpu_secs(pid).unwrap_or(0.0);
        }
        let _ = worker.child.wait().await;
    }

    let expected = (connect.joined * cli.expected()) as u64;
    // Every joined client should have every message; a publish that failed is lost as well.
    let lost = expected.saturating_sub(report.received);
    let delivery_secs = report.last_receive_us.saturating_sub(published.first_us) as f64 / 1e6;
    let deliveries_per_sec = if delivery_secs > 0.0 {
        report.received as f64 / delivery_secs
    } else {
        0.0
    };
    let connect_rate = if connect_secs > 0.0 {
        connect.joined as f64 / connect_secs
    } else {
        0.0
    };
    let publish_secs = published.last_us.saturating_sub(published.first_us) as f64 / 1e6;
    let servers: Vec<ServerFigures> = cli
        .servers
        .iter()
        .enumerate()
        .map(|(i, url)| {
            let joined = connect.joined_by_server.get(i).copied().unwrap_or(0);
            ServerFigures {
                url: url.trim_end_matches('/').to_owned(),
                joined,
                expected: (joined * cli.expected()) as u64,
                report: report.by_server.get(i).cloned().unwrap_or_default(),
            }
        })
        .collect();

    println!("scenario        {:?}", cli.scenario);
    println!(
        "clients         {} joined of {} ({} failed) over {} process(es)",
        connect.joined,
        cli.clients,
        failed,
        workers.len()
    );
    for (reason, n) in &connect.failed {
        println!("  failed        {n} x {reason}");
    }
    println!(
        "connect         {connect_secs:.2} s: {connect_rate:.0} connections/s (handshake + join)"
    );
    if let Some(cpu) = connect_cpu {
        println!(
            "connect cpu     {cpu:.2} s of server CPU: {:.1} µs per connection",
            cpu * 1e6 / connect.joined.max(1) as f64
        );
    }
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        let per = (after.saturating_sub(before) * 1024) as f64 / connect.joined.max(1) as f64;
        println!(
            "server rss      {before} KiB before, {after} KiB with {} idle connections: {per:.0} bytes per connection",
            connect.joined
        );
    }
    if cli.scenario != Scenario::Idle {
        println!(
            "published       {} of {} messages in {publish_secs:.3} s ({} failed), server reached {}",
            published.accepted,
            cli.messages,
            published.failed.values().sum::<usize>(),
            published.reached
        );
        for (reason, n) in &published.failed {
            println!("  failed        {n} x {reason}");
        }
        println!(
            "deliveries      {} of {expected} in {delivery_secs:.3} s: {deliveries_per_sec:.0} deliveries/s",
            report.received
        );
        println!(
            "lost            {lost} (duplicates {}, clients closed by the server {:?})",
            report.duplicates, report.closed
        );
        println!(
            "latency         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            ms(latency.quantile(0.50)),
            ms(latency.quantile(0.99)),
            ms(latency.max)
        );
        if servers.len() > 1 {
            for (i, server) in servers.iter().enumerate() {
                let through = if server.url == cli.publish_base() {
                    ", published through"
                } else {
                    ""
                };
                println!(
                    "  server {i}      {}{through}: {} clients, {} of {} deliveries (lost {}), p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                    server.url,
                    server.joined,
                    server.report.received,
                    server.expected,
                    server.lost(),
                    ms(server.report.latency.quantile(0.50)),
                    ms(server.report.latency.quantile(0.99)),
                    ms(server.report.latency.max)
                );
            }
        }
        if let Some(cpu) = server_cpu {
            println!(
                "server cpu      {cpu:.2} s from the first publish to the last delivery: {:.0} deliveries per server CPU-second",
                report.received as f64 / cpu.max(0.01)
            );
        }
        println!("load tool cpu   {worker_cpu:.2} s (workers, whole run)");
    }
    println!("elapsed         {:.2} s", started.elapsed().as_secs_f64());
    if cli.json {
        let line = json!({
            "scenario": format!("{:?}", cli.scenario).to_lowercase(),
            "clients": cli.clients,
            "joined": connect.joined,
            "connect_failed": failed,
            "connect_secs": connect_secs,
            "connections_per_sec": connect_rate,
            "connect_server_cpu_secs": connect_cpu,
            "messages": cli.messages,
            "published": published.accepted,
            "expected": expected,
            "received": report.received,
            "lost": lost,
            "duplicates": report.duplicates,
            "closed_by_server": report.closed,
            "deliveries_per_sec": deliveries_per_sec,
            "latency_ms": {
                "p50": ms(latency.quantile(0.50)),
                "p99": ms(latency.quantile(0.99)),
                "max": ms(latency.max),
            },
            "server_rss_kib": {"before": rss_before, "after": rss_after},
            "server_cpu_secs": server_cpu,
            "worker_cpu_secs": worker_cpu,
            "publish_to": cli.publish_base(),
            "servers": servers.iter().map(|s| json!({
                "url": s.url,
                "joined": s.joined,
                "expected": s.expected,
                "received": s.report.received,
                "lost": s.lost(),
                "latency_ms": {
                    "p50": ms(s.report.latency.quantile(0.50)),
                    "p99": ms(s.report.latency.quantile(0.99)),
                    "max": ms(s.report.latency.max),
                },
            })).collect::<Vec<_>>(),
        });
        println!("{line}");
    }
    Ok(failed == 0 && lost == 0 && report.duplicates == 0 && published.failed.is_empty())
}
