//! The hub's families: its gauges and counters, closes and drops by reason (closes with their
//! code), the RTT histogram and the health bands, from the [`Stats`] summed over the shards.

use super::families::Families;
use prometheus_client::metrics::MetricType;
use std::fmt;
use switchboard::{Reason, Stats, RTT_BUCKETS_MS};

/// The hub's gauges, counters, closes and drops by reason, the RTT histogram and the health
/// bands.
pub(super) fn render_hub(f: &mut Families, stats: &Stats, uptime_secs: f64) -> fmt::Result {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Scrape;

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
}
