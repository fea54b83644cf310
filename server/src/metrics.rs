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

use crate::admission::{AdmissionStats, Refusal};
use crate::process::ProcessStats;
use crate::webhook::metrics::WebhookMetrics;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    prometheus_text, DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeMetric,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use std::fmt;
use switchboard::{Config, Reason, Stats, RTT_BUCKETS_MS};
use switchboard_redis::BridgeStats;

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The version in `switchboard_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit in `switchboard_build_info`, when the build set `SWITCHBOARD_COMMIT`
/// (`SWITCHBOARD_COMMIT=$(git rev-parse --short HEAD) cargo build --release`).
pub const COMMIT: Option<&str> = option_env!("SWITCHBOARD_COMMIT");

/// The node's budgets, fixed at start: what its gauges are measured against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budgets {
    /// Open connections the node takes (`limits.max_connections` per shard, times the shards).
    pub max_connections: usize,
    /// Bytes all histories of the node keep together (`history.max_total_bytes`).
    pub history_bytes: usize,
    /// Bytes queued for one connection before it is closed with 4008
    /// (`backpressure.queue_bytes`).
    pub queue_bytes: usize,
    /// Bytes written to one connection and not yet flushed (`backpressure.inflight_bytes`).
    pub inflight_bytes: usize,
}

impl Budgets {
    /// The budgets of hubs configured with `config`, `shards` of them.
    pub fn of(config: &Config, shards: usize) -> Self {
        Budgets {
            max_connections: config.limits.max_connections.saturating_mul(shards),
            history_bytes: config.history.max_total_bytes,
            queue_bytes: config.backpressure.queue_bytes,
            inflight_bytes: config.backpressure.inflight_bytes,
        }
    }
}

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

/// Writes families through a collector's encoder.
struct Families<'a, 'b>(&'a mut DescriptorEncoder<'b>);

impl Families<'_, '_> {
    fn gauge(&mut self, name: &str, help: &str, value: impl EncodeGaugeValue) -> fmt::Result {
        let metric = self
            .0
            .encode_descriptor(name, help, None, MetricType::Gauge)?;
        ConstGauge::new(value).encode(metric)
    }

    /// A counter; `name` without the `_total` the format adds.
    fn counter(&mut self, name: &str, help: &str, value: u64) -> fmt::Result {
        let metric = self
            .0
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        ConstCounter::new(value).encode(metric)
    }

    /// A family of counters or gauges, one sample per label set.
    fn labelled<L: EncodeLabelSet>(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        samples: impl IntoIterator<Item = (L, u64)>,
    ) -> fmt::Result {
        let mut metric = self.0.encode_descriptor(name, help, None, kind)?;
        for (labels, value) in samples {
            let sample = metric.encode_family(&labels)?;
            match kind {
                MetricType::Counter => ConstCounter::new(value).encode(sample)?,
                _ => ConstGauge::new(value).encode(sample)?,
            }
        }
        Ok(())
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let mut f = Families(&mut encoder);
        render_hub(&mut f, &self.stats, self.uptime_secs)?;
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
        render_budgets(&mut f, &self.budgets)?;
        render_front(&mut f, &self.front)?;
        if let Some(cluster) = &self.cluster {
            render_cluster(&mut f, cluster)?;
        }
        let mut build =
            f.0.encode_descriptor("build", "The running build.", None, MetricType::Info)?;
        match COMMIT {
            Some(commit) => build.encode_info(&[("version", VERSION), ("commit", commit)]),
            None => build.encode_info(&[("version", VERSION)]),
        }
    }
}

/// The hub's gauges, counters, closes and drops by reason, the RTT histogram and the health
/// bands.
fn render_hub(f: &mut Families, stats: &Stats, uptime_secs: f64) -> fmt::Result {
    let gauges: [(&str, &str, usize); 12] = [
        (
            "connections",
            "Open client connections (WebSocket and Server-Sent Events).",
            stats.connections,
        ),
        (
            "users",
            "Users with at least one open connection.",
            stats.users,
        ),
        ("rooms", "Rooms with at least one member.", stats.rooms),
        (
            "threads",
            "Threads with at least one bound connection.",
            stats.threads,
        ),
        (
            "streams",
            "Streams kept (with members or history).",
            stats.streams,
        ),
        ("runs_active", "Agent runs in progress.", stats.runs_active),
        (
            "waiters",
            "Pending wait_for_connection registrations.",
            stats.waiters,
        ),
        (
            "queued_messages",
            "Frames waiting in outbound queues.",
            stats.queued_messages,
        ),
        (
            "queued_bytes",
            "Bytes waiting in outbound queues.",
            stats.queued_bytes,
        ),
        (
            "inflight_bytes",
            "Bytes written to sockets and not yet flushed.",
            stats.inflight_bytes,
        ),
        (
            "history_messages",
            "Messages kept in stream histories.",
            stats.history_messages,
        ),
        (
            "history_bytes",
            "Bytes kept in stream histories.",
            stats.history_bytes,
        ),
    ];
    for (name, help, value) in gauges {
        f.gauge(name, help, value)?;
    }
    f.gauge(
        "uptime_seconds",
        "Seconds since the server started.",
        uptime_secs,
    )?;

    let c = &stats.counters;
    let counters: [(&str, &str, u64); 13] = [
        ("connections_opened", "Connections opened.", c.opened),
        (
            "connections_refused",
            "Connections refused at open.",
            c.refused_opens,
        ),
        (
            "publishes",
            "Messages published (backend and clients).",
            c.publishes,
        ),
        ("messages_in", "Client frames received.", c.messages_in),
        ("bytes_in", "Client bytes received.", c.bytes_in),
        ("messages_out", "Frames handed to sockets.", c.messages_out),
        ("bytes_out", "Bytes handed to sockets.", c.bytes_out),
        (
            "resurrections",
            "Dead connections that came back.",
            c.resurrections,
        ),
        (
            "missed_pongs",
            "Pings that went unanswered.",
            c.missed_pongs,
        ),
        ("replayed", "Frames replayed from history.", c.replayed),
        ("gaps", "gap frames sent.", c.gaps),
        (
            "duplicates",
            "Sequenced entries received again and ignored.",
            c.duplicates,
        ),
        (
            "history_trimmed",
            "History entries trimmed to fit the node's history budget.",
            c.history_trimmed,
        ),
    ];
    for (name, help, value) in counters {
        f.counter(name, help, value)?;
    }

    let codes: Vec<(Reason, String)> = Reason::ALL
        .iter()
        .filter(|r| r.close_code().is_some() || **r == Reason::PeerClosed)
        .map(|&r| {
            (
                r,
                r.close_code().map_or("none".to_owned(), |c| c.to_string()),
            )
        })
        .collect();
    f.labelled(
        "closes",
        "Connections closed, by reason.",
        MetricType::Counter,
        codes.iter().map(|(reason, code)| {
            (
                [("reason", reason.as_str()), ("code", code.as_str())],
                c.closes.get(*reason),
            )
        }),
    )?;
    f.labelled(
        "drops",
        "Frames dropped or refused, by reason.",
        MetricType::Counter,
        Reason::ALL
            .iter()
            .filter(|r| r.close_code().is_none() && **r != Reason::PeerClosed)
            .map(|&r| ([("reason", r.as_str())], c.drops.get(r))),
    )?;

    let buckets: Vec<(f64, u64)> = RTT_BUCKETS_MS
        .iter()
        .zip(c.rtt.buckets)
        .map(|(bound, n)| (*bound as f64 / 1000.0, n))
        .collect();
    f.0.encode_descriptor(
        "rtt_seconds",
        "Ping round-trip times.",
        None,
        MetricType::Histogram,
    )?
    .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
        c.rtt.sum.as_secs_f64(),
        c.rtt.count,
        &buckets,
        None,
    )?;

    let bands: Vec<String> = (0..stats.health.len())
        .map(|i| format!("{}-{}", i * 20, if i == 4 { 100 } else { i * 20 + 19 }))
        .collect();
    f.labelled(
        "connection_health",
        "Open connections by health score band (0-19, 20-39, 40-59, 60-79, 80-100).",
        MetricType::Gauge,
        bands
            .iter()
            .zip(stats.health)
            .map(|(band, n)| ([("band", band.as_str())], n as u64)),
    )
}

/// The budgets the hub's gauges are measured against.
fn render_budgets(f: &mut Families, budgets: &Budgets) -> fmt::Result {
    f.gauge(
        "connections_max",
        "Open connections the node takes (limits.max_connections per shard, times the shards).",
        budgets.max_connections,
    )?;
    f.gauge(
        "history_max_bytes",
        "Bytes all stream histories of the node keep together (history.max_total_bytes).",
        budgets.history_bytes,
    )?;
    f.gauge(
        "queue_max_bytes",
        "Bytes queued for one connection before it is closed with 4008 (backpressure.queue_bytes).",
        budgets.queue_bytes,
    )?;
    f.gauge(
        "inflight_max_bytes",
        "Bytes written to one connection and not yet flushed, at most (backpressure.inflight_bytes).",
        budgets.inflight_bytes,
    )
}

/// The connection front: sockets held, refusals at accept, deadlines hit, accept failures and
/// the open-file limits.
fn render_front(f: &mut Families, front: &AdmissionStats) -> fmt::Result {
    f.gauge(
        "http_connections",
        "Client sockets held (HTTP connections and WebSockets).",
        front.connections,
    )?;
    f.gauge(
        "http_handshakes",
        "Client sockets that have not sent a complete first request head.",
        front.handshakes,
    )?;
    f.labelled(
        "http_refused",
        "Sockets closed at accept, by the budget that was spent: descriptors, per_ip.",
        MetricType::Counter,
        Refusal::ALL
            .iter()
            .zip(front.refused)
            .map(|(refusal, n)| ([("reason", refusal.label())], n)),
    )?;
    f.counter(
        "http_handshakes_evicted",
        "Connections closed in their handshake to make room for a new one, the oldest first.",
        front.evicted,
    )?;
    f.labelled(
        "http_timeouts",
        "Connections closed for taking too long: no complete first request head in time (handshake), no request for the idle timeout (idle).",
        MetricType::Counter,
        [
            ([("stage", "handshake")], front.handshake_timeouts),
            ([("stage", "idle")], front.idle_timeouts),
        ],
    )?;
    f.counter(
        "accept_errors",
        "Failed accepts (out of file descriptors, usually); accepting pauses after each.",
        front.accept_errors,
    )?;
    f.labelled(
        "open_files_limit",
        "The process's open-file limit (RLIMIT_NOFILE), soft and hard.",
        MetricType::Gauge,
        [
            ("soft", front.open_files_soft),
            ("hard", front.open_files_hard),
        ]
        .into_iter()
        .filter_map(|(kind, limit)| Some(([("kind", kind)], limit?))),
    )
}

/// The bridge's counters and its subscription gauge, every field of [`BridgeStats`].
fn render_cluster(f: &mut Families, cluster: &BridgeStats) -> fmt::Result {
    // Destructured without `..`: a field added to the bridge's statistics must be exposed here.
    let BridgeStats {
        published,
        unpublished,
        received,
        echoes,
        malformed,
        reconnects,
        resubscribed,
        refused,
        disconnects,
        memberships,
        sequenced,
        unsequenced,
        entries,
        subscriptions,
    } = *cluster;
    let counters: [(&str, &str, u64); 13] = [
        (
            "cluster_sequenced",
            "Stream entries of this node numbered by the shared sequencer in Redis.",
            sequenced,
        ),
        (
            "cluster_unsequenced",
            "Stream entries that could not be numbered (Redis unreachable): delivered on this node only.",
            unsequenced,
        ),
        (
            "cluster_entries",
            "Sequenced stream entries delivered to this node's hubs.",
            entries,
        ),
        (
            "cluster_published",
            "Publishes sent to Redis for the other nodes.",
            published,
        ),
        (
            "cluster_unpublished",
            "Publishes that could not reach Redis (lost for the other nodes).",
            unpublished,
        ),
        (
            "cluster_received",
            "Publishes received from other nodes and delivered here.",
            received,
        ),
        (
            "cluster_echoes",
            "This node's own publishes received back from Redis and ignored.",
            echoes,
        ),
        (
            "cluster_malformed",
            "Messages on the cluster channels that could not be parsed.",
            malformed,
        ),
        (
            "cluster_reconnects",
            "Times a Redis command connection (commands, or history reads) came back after being lost.",
            reconnects,
        ),
        (
            "cluster_resubscribed",
            "Times the Redis subscription connection came back and subscribed again.",
            resubscribed,
        ),
        (
            "cluster_refused",
            "Connections closed because their user was over the cluster-wide limit.",
            refused,
        ),
        (
            "cluster_disconnects",
            "Disconnect commands received from other nodes.",
            disconnects,
        ),
        (
            "cluster_memberships",
            "Membership commands (a user's connections join or leave a room) received from other nodes.",
            memberships,
        ),
    ];
    for (name, help, value) in counters {
        f.counter(name, help, value)?;
    }
    f.gauge(
        "cluster_subscriptions",
        "Redis channels subscribed now.",
        subscriptions,
    )
}

/// The process's resources under the names every Prometheus client library uses.
#[derive(Debug)]
struct ProcessCollector(ProcessStats);

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let p = &self.0;
        let mut f = Families(&mut encoder);
        let cpu = f.0.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(p.cpu_seconds).encode(cpu)?;
        f.gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            p.resident_bytes,
        )?;
        f.gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            p.virtual_bytes,
        )?;
        f.gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            p.open_fds,
        )?;
        if let Some(max) = p.max_fds {
            f.gauge(
                "process_max_fds",
                "Maximum number of open file descriptors (the soft limit).",
                max,
            )?;
        }
        f.gauge("process_threads", "Number of OS threads.", p.threads)?;
        f.gauge(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch in seconds.",
            p.start_time_seconds,
        )
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
        assert!(text.contains("switchboard_history_max_bytes 67108864\n"));
        assert!(text.contains(&format!("switchboard_build_info{{version=\"{VERSION}\"")));
        assert!(text
            .contains("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 2.5\n"));
        assert!(text.contains("process_resident_memory_bytes 4096\n"));
        assert!(text.contains("process_open_fds 12\n"));
        assert!(text.contains("process_max_fds 1024\n"));
        assert!(text.contains("process_threads 3\n"));
    }

    /// The RTT histogram is cumulative over its bounds in seconds, with `+Inf` counting every
    /// sample (the ones over the last bound included), and closes carry their code.
    #[test]
    fn the_rtt_histogram_is_cumulative_in_seconds() {
        let mut stats = Stats::default();
        stats.counters.rtt.buckets[0] = 2; // <= 1 ms
        stats.counters.rtt.buckets[2] = 3; // <= 10 ms
        stats.counters.rtt.buckets[11] = 1; // over 5 s
        stats.counters.rtt.count = 6;
        stats.counters.rtt.sum = std::time::Duration::from_millis(6040);
        let text = Scrape {
            stats,
            ..Scrape::default()
        }
        .render();
        for line in [
            "switchboard_rtt_seconds_bucket{le=\"0.001\"} 2\n",
            "switchboard_rtt_seconds_bucket{le=\"0.005\"} 2\n",
            "switchboard_rtt_seconds_bucket{le=\"0.01\"} 5\n",
            "switchboard_rtt_seconds_bucket{le=\"5\"} 5\n",
            "switchboard_rtt_seconds_bucket{le=\"+Inf\"} 6\n",
            "switchboard_rtt_seconds_sum 6.04\n",
            "switchboard_rtt_seconds_count 6\n",
            "switchboard_closes_total{reason=\"peer_closed\",code=\"none\"} 0\n",
            "switchboard_drops_total{reason=\"over_rate\"} 0\n",
            "switchboard_connection_health{band=\"80-100\"} 0\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(!text.contains("process_"), "no process figures were given");
    }

    /// A node of a cluster exposes every field of its bridge's statistics, each with its own
    /// value: the counters as `switchboard_cluster_*_total`, the subscriptions as a gauge.
    #[test]
    fn a_clustered_node_exposes_every_bridge_statistic() {
        let cluster = BridgeStats {
            published: 1,
            unpublished: 2,
            received: 3,
            echoes: 4,
            malformed: 5,
            reconnects: 6,
            resubscribed: 7,
            refused: 8,
            disconnects: 9,
            memberships: 14,
            sequenced: 11,
            unsequenced: 12,
            entries: 13,
            subscriptions: 10,
        };
        let text = Scrape {
            cluster: Some(cluster),
            ..Scrape::default()
        }
        .render();
        let expected = [
            ("cluster_published_total", "counter", 1),
            ("cluster_unpublished_total", "counter", 2),
            ("cluster_received_total", "counter", 3),
            ("cluster_echoes_total", "counter", 4),
            ("cluster_malformed_total", "counter", 5),
            ("cluster_sequenced_total", "counter", 11),
            ("cluster_unsequenced_total", "counter", 12),
            ("cluster_entries_total", "counter", 13),
            ("cluster_reconnects_total", "counter", 6),
            ("cluster_resubscribed_total", "counter", 7),
            ("cluster_refused_total", "counter", 8),
            ("cluster_disconnects_total", "counter", 9),
            ("cluster_memberships_total", "counter", 14),
            ("cluster_subscriptions", "gauge", 10),
        ];
        for (name, kind, value) in expected {
            assert!(
                text.contains(&format!("# HELP switchboard_{name} ")),
                "{name}"
            );
            assert!(
                text.contains(&format!("# TYPE switchboard_{name} {kind}\n")),
                "{name}"
            );
            assert!(
                text.contains(&format!("\nswitchboard_{name} {value}\n")),
                "{name}"
            );
        }
        let families = text
            .lines()
            .filter(|l| l.starts_with("# TYPE switchboard_cluster_"))
            .count();
        assert_eq!(families, expected.len());
    }

    /// A single node (no bridge) has no cluster family at all.
    #[test]
    fn a_single_node_exposes_no_cluster_statistic() {
        let text = Scrape::default().render();
        assert!(!text.contains("switchboard_cluster_"), "{text}");
    }
}
