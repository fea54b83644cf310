//! `/metrics`: one [`Scrape`] rendered with `prometheus-client` in the Prometheus text format
//! (version 0.0.4): the hub's [`Stats`], the node's budgets, the connection front's
//! [`AdmissionStats`] (`switchboard_http_*`, accept errors, the open-file limits), on a node of
//! a cluster its Redis bridge's [`BridgeStats`] (`switchboard_cluster_*`), the build
//! (`switchboard_build_info`), and the process's own resources (`process_*`, the names every
//! Prometheus client uses, from [`ProcessStats`]).
//!
//! Every family has `# HELP` and `# TYPE`; counters end in `_total`; closes and drops carry a
//! `reason` label from the core's one reason enum (and closes their `code`); the RTT histogram
//! is cumulative with `le` buckets, `_sum` and `_count`. A scrape renders a snapshot whose size
//! does not depend on the connections or streams held: the hub's gauges are kept as its state
//! changes, and the collectors below only format them.
//!
//! This file owns what a scrape holds and its rendering; each group of families has its own
//! module: `hub`, `budgets`, `front`, `cluster`, `process`, written through `families`.

mod budgets;
mod cluster;
mod families;
mod front;
mod hub;
mod process;

pub use budgets::Budgets;

use crate::admission::AdmissionStats;
use crate::process::ProcessStats;
use crate::webhook::metrics::WebhookMetrics;
use families::Families;
use process::ProcessCollector;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::fmt;
use switchboard::Stats;
use switchboard_redis::BridgeStats;

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The version in `switchboard_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit in `switchboard_build_info`, when the build set `SWITCHBOARD_COMMIT`
/// (`SWITCHBOARD_COMMIT=$(git rev-parse --short HEAD) cargo build --release`).
pub const COMMIT: Option<&str> = option_env!("SWITCHBOARD_COMMIT");

/// Everything one scrape reports.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// The hubs' statistics, summed over the shards.
    pub stats: Stats,
    /// The bridge's statistics on a node of a cluster; `None` for a single node, which then
    /// has no `switchboard_cluster_*` family.
    pub cluster: Option<BridgeStats>,
    /// The connection front.
    pub front: AdmissionStats,
    /// The node's budgets.
    pub budgets: Budgets,
    /// Seconds since the server started.
    pub uptime_secs: f64,
    /// The process's resources, where the platform reports them.
    pub process: Option<ProcessStats>,
    /// The webhook's counters (`switchboard_webhook_*`), when one is configured.
    pub webhook: Option<WebhookMetrics>,
    /// Open Server-Sent Events connections (the others are WebSockets).
    pub sse_connections: usize,
    /// Log lines dropped because stderr was too far behind ([`crate::logging::dropped_lines`]).
    pub log_lines_dropped: u64,
}

impl Scrape {
    /// The text exposition of this scrape.
    pub fn render(self) -> String {
        let mut registry = Registry::default();
        if let Some(process) = self.process {
            registry.register_collector(Box::new(ProcessCollector(process)));
        }
        let switchboard = registry.sub_registry_with_prefix("switchboard");
        if let Some(webhook) = self.webhook.clone() {
            switchboard.register_collector(Box::new(webhook));
        }
        switchboard.register_collector(Box::new(self));
        let mut text = String::with_capacity(16 * 1024);
        prometheus_text::encode(&mut text, &registry).expect("writing to a String cannot fail");
        text
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let mut f = Families(&mut encoder);
        hub::render_hub(&mut f, &self.stats, self.uptime_secs)?;
        // Counted apart while they register, so an SSE connection that just closed is never
        // taken from the WebSockets.
        let sse = self.sse_connections.min(self.stats.connections);
        f.labelled(
            "connections_by_transport",
            "Open connections by transport (websocket, sse).",
            MetricType::Gauge,
            [
                (
                    [("transport", "websocket")],
                    (self.stats.connections - sse) as u64,
                ),
                ([("transport", "sse")], sse as u64),
            ],
        )?;
        budgets::render_budgets(&mut f, &self.budgets)?;
        front::render_front(&mut f, &self.front)?;
        if let Some(cluster) = &self.cluster {
            cluster::render_cluster(&mut f, cluster)?;
        }
        f.counter(
            "log_lines_dropped",
            "Log lines dropped because stderr was not read fast enough (the log writer's queue was full).",
            self.log_lines_dropped,
        )?;
        let mut build =
            f.0.encode_descriptor("build", "The running build.", None, MetricType::Info)?;
        match COMMIT {
            Some(commit) => build.encode_info(&[("version", VERSION), ("commit", commit)]),
            None => build.encode_info(&[("version", VERSION)]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every sample line is `name{labels} number`, and every sample's family was declared.
    #[test]
    fn every_sample_belongs_to_a_declared_family_and_parses_as_a_number() {
        let stats = Stats {
            connections: 3,
            counters: switchboard::Counters {
                opened: 7,
                ..Default::default()
            },
            ..Default::default()
        };
        let cluster = BridgeStats {
            published: 4,
            subscriptions: 2,
            ..Default::default()
        };
        let front = AdmissionStats {
            connections: 5,
            refused: [1, 3],
            evicted: 2,
            open_files_soft: Some(1024),
            open_files_hard: Some(4096),
            ..Default::default()
        };
        let process = ProcessStats {
            cpu_seconds: 2.5,
            resident_bytes: 4096,
            virtual_bytes: 8192,
            open_fds: 12,
            max_fds: Some(1024),
            threads: 3,
            start_time_seconds: 1.7e9,
        };
        let budgets = Budgets {
            max_connections: 200,
            history_bytes: 64 << 20,
            queue_bytes: 1 << 20,
            inflight_bytes: 256 << 10,
        };
        let text = Scrape {
            stats,
            cluster: Some(cluster),
            front,
            budgets,
            uptime_secs: 1.5,
            process: Some(process),
            webhook: Some(WebhookMetrics::default()),
            sse_connections: 0,
            log_lines_dropped: 5,
        }
        .render();
        let mut families = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                families.push(rest.split(' ').next().unwrap().to_owned());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (name_labels, value) = line.rsplit_once(' ').unwrap();
            let name = name_labels.split('{').next().unwrap();
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|b| families.iter().any(|f| f == b))
                .unwrap_or(name);
            assert!(families.iter().any(|f| f == base), "undeclared: {line}");
            assert!(value.parse::<f64>().is_ok(), "not a number: {line}");
        }
        assert!(text.contains("switchboard_connections 3\n"));
        assert!(text.contains("switchboard_connections_opened_total 7\n"));
        assert!(
            text.contains("switchboard_closes_total{reason=\"slow_consumer\",code=\"4008\"} 0\n")
        );
        assert!(text.contains("switchboard_rtt_seconds_bucket{le=\"+Inf\"} 0\n"));
        assert!(text.contains("switchboard_cluster_published_total 4\n"));
        assert!(text.contains("switchboard_cluster_subscriptions 2\n"));
        assert!(text.contains("switchboard_http_connections 5\n"));
        assert!(text.contains("switchboard_http_refused_total{reason=\"per_ip\"} 3\n"));
        assert!(text.contains("switchboard_http_handshakes_evicted_total 2\n"));
        assert!(text.contains("switchboard_open_files_limit{kind=\"soft\"} 1024\n"));
        assert!(text.contains("switchboard_open_files_limit{kind=\"hard\"} 4096\n"));
        assert!(text.contains("switchboard_connections_max 200\n"));
        assert!(text.contains("switchboard_log_lines_dropped_total 5\n"));
        assert!(text.contains("switchboard_history_max_bytes 67108864\n"));
        assert!(text.contains(&format!("switchboard_build_info{{version=\"{VERSION}\"")));
        assert!(text
            .contains("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 2.5\n"));
        assert!(text.contains("process_resident_memory_bytes 4096\n"));
        assert!(text.contains("process_open_fds 12\n"));
        assert!(text.contains("process_max_fds 1024\n"));
        assert!(text.contains("process_threads 3\n"));
    }
}
