//! A cluster node's families (`switchboard_cluster_*`): every field of its Redis bridge's
//! [`BridgeStats`]. A single node has none.

use super::families::Families;
use std::fmt;
use switchboard_redis::BridgeStats;

/// The bridge's counters and its subscription gauge, every field of [`BridgeStats`].
pub(super) fn render_cluster(f: &mut Families, cluster: &BridgeStats) -> fmt::Result {
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
        cancels_asked,
        cancels_unasked,
        cancels_answered,
        cancels_timed_out,
        subscriptions,
    } = *cluster;
    let counters: [(&str, &str, u64); 17] = [
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
        (
            "cluster_cancels_asked",
            "Client cancels for runs not in progress on this node, asked of the other nodes.",
            cancels_asked,
        ),
        (
            "cluster_cancels_unasked",
            "Cancels that could not be asked of the other nodes (too many waiting, or Redis unreachable): answered backend_unavailable at once.",
            cancels_unasked,
        ),
        (
            "cluster_cancels_answered",
            "Asked cancels answered in time: by the run's node, or unknown_run from every node.",
            cancels_answered,
        ),
        (
            "cluster_cancels_timed_out",
            "Asked cancels not answered in time by every node: answered backend_unavailable.",
            cancels_timed_out,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Scrape;

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
            cancels_asked: 15,
            cancels_unasked: 16,
            cancels_answered: 17,
            cancels_timed_out: 18,
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
            ("cluster_cancels_asked_total", "counter", 15),
            ("cluster_cancels_unasked_total", "counter", 16),
            ("cluster_cancels_answered_total", "counter", 17),
            ("cluster_cancels_timed_out_total", "counter", 18),
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
