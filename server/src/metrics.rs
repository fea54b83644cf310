//! `/metrics`: the hub's [`Stats`] in the Prometheus text exposition format (version 0.0.4),
//! the connection front's [`AdmissionStats`] (`switchboard_http_*`, accept errors, the
//! open-file limits), and on a node of a cluster its Redis bridge's [`BridgeStats`]
//! (`switchboard_cluster_*`).
//!
//! Every family has `# HELP` and `# TYPE`; counters end in `_total`; closes and drops carry a
//! `reason` label from the core's one reason enum (and closes their `code`); the RTT and health
//! histograms are cumulative with `le` buckets, `_sum` and `_count`.

use crate::admission::{AdmissionStats, Refusal};
use std::fmt::Write;
use switchboard::{Reason, Stats, RTT_BUCKETS_MS};
use switchboard_redis::BridgeStats;

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP switchboard_{name} {help}");
        let _ = writeln!(self.0, "# TYPE switchboard_{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "switchboard_{name} {value}");
        } else {
            let _ = writeln!(self.0, "switchboard_{name}{{{labels}}} {value}");
        }
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, "", value);
    }
}

/// Render `stats`, the bridge's statistics when the node is part of a cluster (`None` for a
/// single node, which then has no `switchboard_cluster_*` family), the connection front's
/// figures and the uptime as Prometheus text.
pub fn render(
    stats: &Stats,
    cluster: Option<&BridgeStats>,
    front: &AdmissionStats,
    uptime_secs: f64,
) -> String {
    let mut t = Text(String::with_capacity(8 * 1024));
    let gauges: [(&str, &str, usize); 12] = [
        (
            "connections",
            "Open WebSocket connections.",
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
        t.single(name, "gauge", help, value);
    }
    t.single(
        "uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        uptime_secs,
    );

    let c = &stats.counters;
    let counters: [(&str, &str, u64); 13] = [
        ("connections_opened_total", "Connections opened.", c.opened),
        (
            "connections_refused_total",
            "Connections refused at open.",
            c.refused,
        ),
        (
            "publishes_total",
            "Messages published (backend and clients).",
            c.publishes,
        ),
        (
            "messages_in_total",
            "Client frames received.",
            c.messages_in,
        ),
        ("bytes_in_total", "Client bytes received.", c.bytes_in),
        (
            "messages_out_total",
            "Frames handed to sockets.",
            c.messages_out,
        ),
        ("bytes_out_total", "Bytes handed to sockets.", c.bytes_out),
        (
            "resurrections_total",
            "Dead connections that came back.",
            c.resurrections,
        ),
        (
            "missed_pongs_total",
            "Pings that went unanswered.",
            c.missed_pongs,
        ),
        (
            "replayed_total",
            "Frames replayed from history.",
            c.replayed,
        ),
        ("gaps_total", "gap frames sent.", c.gaps),
        (
            "duplicates_total",
            "Sequenced entries received again and ignored.",
            c.duplicates,
        ),
        (
            "history_trimmed_total",
            "History entries trimmed to fit the node's history budget.",
            c.history_trimmed,
        ),
    ];
    for (name, help, value) in counters {
        t.single(name, "counter", help, value);
    }

    t.family("closes_total", "counter", "Connections closed, by reason.");
    for &reason in Reason::ALL {
        if reason.close_code().is_some() || reason == Reason::PeerClosed {
            let code = reason
                .close_code()
                .map_or("none".to_owned(), |c| c.to_string());
            let labels = format!("reason=\"{reason}\",code=\"{code}\"");
            t.sample("closes_total", &labels, c.closes.get(reason));
        }
    }
    t.family(
        "drops_total",
        "counter",
        "Frames dropped or refused, by reason.",
    );
    for &reason in Reason::ALL {
        if reason.close_code().is_none() && reason != Reason::PeerClosed {
            t.sample(
                "drops_total",
                &format!("reason=\"{reason}\""),
                c.drops.get(reason),
            );
        }
    }

    t.family("rtt_seconds", "histogram", "Ping round-trip times.");
    let mut cumulative = 0;
    for (i, bound) in RTT_BUCKETS_MS.iter().enumerate() {
        cumulative += c.rtt.buckets[i];
        let le = format!("le=\"{}\"", *bound as f64 / 1000.0);
        t.sample("rtt_seconds_bucket", &le, cumulative);
    }
    t.sample("rtt_seconds_bucket", "le=\"+Inf\"", c.rtt.count);
    t.sample("rtt_seconds_sum", "", c.rtt.sum.as_secs_f64());
    t.sample("rtt_seconds_count", "", c.rtt.count);

    t.family(
        "connection_health",
        "gauge",
        "Open connections by health score band (0-19, 20-39, 40-59, 60-79, 80-100).",
    );
    for (i, n) in stats.health.iter().enumerate() {
        let band = format!(
            "band=\"{}-{}\"",
            i * 20,
            if i == 4 { 100 } else { i * 20 + 19 }
        );
        t.sample("connection_health", &band, n);
    }
    render_front(&mut t, front);
    if let Some(cluster) = cluster {
        render_cluster(&mut t, cluster);
    }
    t.0
}

/// The connection front: sockets held, refusals at accept, deadlines hit, accept failures and
/// the open-file limits.
fn render_front(t: &mut Text, front: &AdmissionStats) {
    t.single(
        "http_connections",
        "gauge",
        "Client sockets held (HTTP connections and WebSockets).",
        front.connections,
    );
    t.single(
        "http_handshakes",
        "gauge",
        "Client sockets that have not sent a complete first request head.",
        front.handshakes,
    );
    t.family(
        "http_refused_total",
        "counter",
        "Sockets closed at accept, by the budget that was spent: descriptors, per_ip.",
    );
    for (refusal, n) in Refusal::ALL.iter().zip(front.refused) {
        let labels = format!("reason=\"{}\"", refusal.label());
        t.sample("http_refused_total", &labels, n);
    }
    t.single(
        "http_handshakes_evicted_total",
        "counter",
        "Connections closed in their handshake to make room for a new one, the oldest first.",
        front.evicted,
    );
    t.family(
        "http_timeouts_total",
        "counter",
        "Connections closed for taking too long: no complete first request head in time (handshake), no request for the idle timeout (idle).",
    );
    t.sample(
        "http_timeouts_total",
        "stage=\"handshake\"",
        front.handshake_timeouts,
    );
    t.sample("http_timeouts_total", "stage=\"idle\"", front.idle_timeouts);
    t.single(
        "accept_errors_total",
        "counter",
        "Failed accepts (out of file descriptors, usually); accepting pauses after each.",
        front.accept_errors,
    );
    t.family(
        "open_files_limit",
        "gauge",
        "The process's open-file limit (RLIMIT_NOFILE), soft and hard.",
    );
    for (kind, limit) in [
        ("soft", front.open_files_soft),
        ("hard", front.open_files_hard),
    ] {
        if let Some(limit) = limit {
            t.sample("open_files_limit", &format!("kind=\"{kind}\""), limit);
        }
    }
}

/// The bridge's counters and its subscription gauge, every field of [`BridgeStats`].
fn render_cluster(t: &mut Text, cluster: &BridgeStats) {
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
        sequenced,
        unsequenced,
        entries,
        subscriptions,
    } = *cluster;
    let counters: [(&str, &str, u64); 12] = [
        (
            "cluster_sequenced_total",
            "Stream entries of this node numbered by the shared sequencer in Redis.",
            sequenced,
        ),
        (
            "cluster_unsequenced_total",
            "Stream entries that could not be numbered (Redis unreachable): delivered on this node only.",
            unsequenced,
        ),
        (
            "cluster_entries_total",
            "Sequenced stream entries delivered to this node's hubs.",
            entries,
        ),
        (
            "cluster_published_total",
            "Publishes sent to Redis for the other nodes.",
            published,
        ),
        (
            "cluster_unpublished_total",
            "Publishes that could not reach Redis (lost for the other nodes).",
            unpublished,
        ),
        (
            "cluster_received_total",
            "Publishes received from other nodes and delivered here.",
            received,
        ),
        (
            "cluster_echoes_total",
            "This node's own publishes received back from Redis and ignored.",
            echoes,
        ),
        (
            "cluster_malformed_total",
            "Messages on the cluster channels that could not be parsed.",
            malformed,
        ),
        (
            "cluster_reconnects_total",
            "Times a Redis command connection (commands, or history reads) came back after being lost.",
            reconnects,
        ),
        (
            "cluster_resubscribed_total",
            "Times the Redis subscription connection came back and subscribed again.",
            resubscribed,
        ),
        (
            "cluster_refused_total",
            "Connections closed because their user was over the cluster-wide limit.",
            refused,
        ),
        (
            "cluster_disconnects_total",
            "Disconnect commands received from other nodes.",
            disconnects,
        ),
    ];
    for (name, help, value) in counters {
        t.single(name, "counter", help, value);
    }
    t.single(
        "cluster_subscriptions",
        "gauge",
        "Redis channels subscribed now.",
        subscriptions,
    );
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
        let text = render(&stats, Some(&cluster), &front, 1.5);
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
            sequenced: 11,
            unsequenced: 12,
            entries: 13,
            subscriptions: 10,
        };
        let front = AdmissionStats::default();
        let text = render(&Stats::default(), Some(&cluster), &front, 0.0);
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
        let text = render(&Stats::default(), None, &AdmissionStats::default(), 0.0);
        assert!(!text.contains("switchboard_cluster_"), "{text}");
    }
}
