//! The dashboard's feed: one sampler task per node takes the node's statistics once a second
//! ([`INTERVAL`]), whatever the number of dashboards watching, and every open feed sends the
//! latest [`Feed`] as it is made (a `watch` channel: one value, never a queue).
//!
//! A sample costs one `stats()` call over the shards (gauges kept as the hubs change, no walk
//! over connections) and the admission counters. Rates are the counters' differences between
//! two samples over the time between them.
//!
//! **A cluster.** A node of a cluster also writes its own sample to Redis under
//! `<prefix>:dashboard:<node>` (expiring after [`CLUSTER_TTL`]) and reads the samples of the
//! other live nodes (`Bridge::live_nodes`, one `MGET`): the feed has one row per node. A node
//! whose sample is missing or older than the TTL is left out. When Redis cannot be reached the
//! feed carries this node alone and says why in `cluster_error`.

use crate::admission::{Admission, AdmissionStats, Refusal};
use crate::api::StatsView;
use crate::metrics::Budgets;
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use switchboard::{Stats, RTT_BUCKETS_MS};
use switchboard_redis::Bridge;
use switchboard_tokio::{Handle, Tokio};
use tokio::sync::watch;

/// How often a node samples its statistics and every feed is sent.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// How long a node's sample stays in Redis for the other nodes' dashboards.
pub const CLUSTER_TTL: Duration = Duration::from_secs(3);

/// Messages and bytes per second, from two samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// Client frames received per second.
    pub messages_in: f64,
    /// Frames handed to sockets per second.
    pub messages_out: f64,
    /// Client bytes received per second.
    pub bytes_in: f64,
    /// Bytes handed to sockets per second.
    pub bytes_out: f64,
    /// Publishes per second.
    pub publishes: f64,
}

/// The ping round-trip histogram of a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rtt {
    /// Upper bounds of the buckets, in milliseconds; the last bucket has none.
    pub le_ms: Vec<u64>,
    /// Round trips per bucket (not cumulative), one more than `le_ms`.
    pub buckets: Vec<u64>,
    /// Round trips measured.
    pub count: u64,
    /// Their sum, in milliseconds.
    pub sum_ms: f64,
}

/// The connection front of a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Front {
    /// Client sockets held.
    pub sockets: usize,
    /// Sockets before their first request head.
    pub handshakes: usize,
    /// Sockets closed at accept, by the budget that was spent.
    pub refused: BTreeMap<String, u64>,
}

/// One node's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSample {
    /// The node's id in the cluster (`local` for a single node).
    pub node: String,
    /// When it was taken, in milliseconds since the Unix epoch.
    pub at: u64,
    /// The node's statistics, as `GET /api/stats` answers them.
    pub stats: StatsView,
    /// Rates since the node's previous sample.
    pub rates: Rates,
    /// Bytes written to sockets and not yet flushed.
    pub inflight_bytes: usize,
    /// The ping round trips.
    pub rtt: Rtt,
    /// The connection front.
    pub front: Front,
    /// The budgets the gauges are measured against.
    pub budgets: Budgets,
}

/// The sums over the nodes. A user with connections on two nodes counts on both.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    /// Open connections.
    pub connections: usize,
    /// Users with an open connection (per node).
    pub users: usize,
    /// Rooms with a member (per node and shard).
    pub rooms: usize,
    /// Threads with a bound connection.
    pub threads: usize,
    /// Agent runs in progress.
    pub runs_active: usize,
    /// Bytes waiting in outbound queues.
    pub queued_bytes: usize,
    /// Bytes kept in histories.
    pub history_bytes: usize,
    /// The rates, summed.
    pub rates: Rates,
}

impl Totals {
    fn of(nodes: &[NodeSample]) -> Self {
        let mut t = Totals::default();
        for n in nodes {
            let s = &n.stats;
            t.connections += s.connections;
            t.users += s.users;
            t.rooms += s.rooms;
            t.threads += s.threads;
            t.runs_active += s.runs_active;
            t.queued_bytes += s.queued_bytes;
            t.history_bytes += s.history_bytes;
            t.rates.messages_in += n.rates.messages_in;
            t.rates.messages_out += n.rates.messages_out;
            t.rates.bytes_in += n.rates.bytes_in;
            t.rates.bytes_out += n.rates.bytes_out;
            t.rates.publishes += n.rates.publishes;
        }
        t
    }
}

/// What a feed sends once a second.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Feed {
    /// The sample's number on this node, from 1.
    pub seq: u64,
    /// The interval between two samples, in milliseconds.
    pub interval_ms: u64,
    /// The node serving this dashboard.
    pub this_node: String,
    /// One row per live node, this node first, then the others by id.
    pub nodes: Vec<NodeSample>,
    /// The sums over `nodes`.
    pub totals: Totals,
    /// Why the other nodes' rows are missing (Redis unreachable), on a node of a cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_error: Option<String>,
}

/// The latest feed, as JSON text; `None` until the first sample.
pub type Latest = watch::Receiver<Option<Arc<str>>>;

/// What the sampler reads.
pub struct Sources {
    /// The node's hubs.
    pub handle: Handle,
    /// The connection front.
    pub admission: Arc<Admission>,
    /// The node's budgets.
    pub budgets: Budgets,
    /// The cluster, if the node is part of one: its bridge, its Redis URL and key prefix.
    pub cluster: Option<ClusterLink>,
}

/// How the sampler shares samples with the other nodes.
pub struct ClusterLink {
    /// The node's bridge (its id, the live nodes).
    pub bridge: Bridge<Tokio>,
    /// The cluster's Redis.
    pub url: String,
    /// The prefix of the cluster's keys.
    pub prefix: String,
    /// How long one Redis request may take to connect or to be answered (`redis.timeout_ms`,
    /// as the bridge's own requests).
    pub timeout: Duration,
}

/// Start the sampler; it stops when the node's hubs shut down.
pub fn spawn(sources: Sources) -> Latest {
    let (send, latest) = watch::channel(None);
    tokio::spawn(run(sources, send));
    latest
}

async fn run(sources: Sources, send: watch::Sender<Option<Arc<str>>>) {
    let node = sources
        .cluster
        .as_ref()
        .map_or("local".to_owned(), |c| c.bridge.node().to_owned());
    let mut redis = sources.cluster.as_ref().map(SharedSamples::new);
    let mut previous: Option<(Instant, Stats)> = None;
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut seq = 0;
    loop {
        ticks.tick().await;
        if sources.handle.is_shutting_down() {
            return;
        }
        // Stopped (the end of a shutdown): nothing more to report.
        let Ok(stats) = sources.handle.stats().await else {
            return;
        };
        let stats = stats.total;
        let now = Instant::now();
        let rates = previous
            .as_ref()
            .map_or(Rates::default(), |(then, before)| {
                rates(before, &stats, now.duration_since(*then))
            });
        let own = sample(
            &node,
            &stats,
            rates,
            &sources.admission.stats(),
            sources.budgets,
        );
        previous = Some((now, stats));
        let (mut nodes, cluster_error) = match redis.as_mut() {
            Some(redis) => match redis.exchange(&own).await {
                Ok(others) => (others, None),
                Err(e) => (Vec::new(), Some(e)),
            },
            None => (Vec::new(), None),
        };
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        nodes.insert(0, own);
        seq += 1;
        let feed = Feed {
            seq,
            interval_ms: INTERVAL.as_millis() as u64,
            this_node: node.clone(),
            totals: Totals::of(&nodes),
            nodes,
            cluster_error,
        };
        let text = serde_json::to_string(&feed).expect("the feed serializes");
        // No dashboard watching is no reason to stop: the other nodes read this one's samples.
        send.send_replace(Some(text.into()));
    }
}

/// The counters' differences over `elapsed`.
fn rates(before: &Stats, after: &Stats, elapsed: Duration) -> Rates {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return Rates::default();
    }
    let (b, a) = (&before.counters, &after.counters);
    let per_second = |then: u64, now: u64| now.saturating_sub(then) as f64 / secs;
    Rates {
        messages_in: per_second(b.messages_in, a.messages_in),
        messages_out: per_second(b.messages_out, a.messages_out),
        bytes_in: per_second(b.bytes_in, a.bytes_in),
        bytes_out: per_second(b.bytes_out, a.bytes_out),
        publishes: per_second(b.publishes, a.publishes),
    }
}

fn sample(
    node: &str,
    stats: &Stats,
    rates: Rates,
    front: &AdmissionStats,
    budgets: Budgets,
) -> NodeSample {
    let rtt = &stats.counters.rtt;
    NodeSample {
        node: node.to_owned(),
        at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        stats: StatsView::from(stats),
        rates,
        inflight_bytes: stats.inflight_bytes,
        rtt: Rtt {
            le_ms: RTT_BUCKETS_MS.to_vec(),
            buckets: rtt.buckets.to_vec(),
            count: rtt.count,
            sum_ms: rtt.sum.as_secs_f64() * 1000.0,
        },
        front: Front {
            sockets: front.connections,
            handshakes: front.handshakes,
            refused: Refusal::ALL
                .iter()
                .zip(front.refused)
                .map(|(r, n)| (r.label().to_owned(), n))
                .collect(),
        },
        budgets,
    }
}

/// The samples of a cluster's nodes in Redis.
struct SharedSamples {
    bridge: Bridge<Tokio>,
    client: Option<redis::Client>,
    connection: Option<MultiplexedConnection>,
    prefix: String,
    timeout: Duration,
}

impl SharedSamples {
    fn new(link: &ClusterLink) -> Self {
        SharedSamples {
            bridge: link.bridge.clone(),
            client: redis::Client::open(link.url.as_str()).ok(),
            connection: None,
            prefix: link.prefix.clone(),
            timeout: link.timeout,
        }
    }

    fn key(&self, node: &str) -> String {
        format!("{}:dashboard:{node}", self.prefix)
    }

    /// Write this node's sample, read the other live nodes'. A failure drops the connection
    /// (the next tick connects again) and says why. The exchange's requests (a connection,
    /// `SET`, the live nodes, `MGET`) are given four request timeouts together, and never more
    /// than [`CLUSTER_TTL`]: a sample that late has expired anyway, and the node's own figures
    /// wait for it.
    async fn exchange(&mut self, own: &NodeSample) -> Result<Vec<NodeSample>, String> {
        let deadline = (self.timeout * 4).min(CLUSTER_TTL);
        match tokio::time::timeout(deadline, self.try_exchange(own)).await {
            Ok(Ok(others)) => Ok(others),
            Ok(Err(e)) => {
                self.connection = None;
                Err(format!("the other nodes' figures are unavailable: {e}"))
            }
            Err(_) => {
                self.connection = None;
                Err("the other nodes' figures are unavailable: redis did not answer in time".into())
            }
        }
    }

    async fn try_exchange(&mut self, own: &NodeSample) -> redis::RedisResult<Vec<NodeSample>> {
        let mut conn = match self.connection.clone() {
            Some(conn) => conn,
            None => {
                let client = self.client.as_ref().ok_or_else(|| {
                    redis::RedisError::from(std::io::Error::other("an invalid redis url"))
                })?;
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(self.timeout)
                    .set_response_timeout(self.timeout);
                let conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                self.connection = Some(conn.clone());
                conn
            }
        };
        let text = serde_json::to_string(own).expect("a sample serializes");
        redis::cmd("SET")
            .arg(self.key(&own.node))
            .arg(text)
            .arg("PX")
            .arg(CLUSTER_TTL.as_millis() as u64)
            .query_async::<()>(&mut conn)
            .await?;
        let others: Vec<String> = self
            .bridge
            .live_nodes()
            .await?
            .into_iter()
            .filter(|n| *n != own.node)
            .collect();
        if others.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = others.iter().map(|n| self.key(n)).collect();
        let values: Vec<Option<String>> =
            redis::cmd("MGET").arg(keys).query_async(&mut conn).await?;
        Ok(values
            .into_iter()
            .flatten()
            .filter_map(|text| serde_json::from_str(&text).ok())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_the_counters_differences_per_second() {
        let mut before = Stats::default();
        before.counters.messages_out = 100;
        before.counters.bytes_in = 10;
        let mut after = before.clone();
        after.counters.messages_out = 400;
        after.counters.bytes_in = 30;
        let r = rates(&before, &after, Duration::from_millis(1500));
        assert_eq!(r.messages_out, 200.0);
        assert_eq!(r.bytes_in, 20.0 / 1.5);
        assert_eq!(rates(&before, &after, Duration::ZERO), Rates::default());
    }

    #[test]
    fn totals_add_the_nodes_up() {
        let stats = Stats {
            connections: 3,
            users: 2,
            ..Stats::default()
        };
        let budgets = Budgets::default();
        let front = AdmissionStats::default();
        let rates = Rates {
            messages_out: 5.0,
            ..Rates::default()
        };
        let a = sample("a", &stats, rates, &front, budgets);
        let b = sample("b", &stats, rates, &front, budgets);
        let totals = Totals::of(&[a.clone(), b]);
        assert_eq!((totals.connections, totals.users), (6, 4));
        assert_eq!(totals.rates.messages_out, 10.0);
        assert_eq!(a.rtt.buckets.len(), a.rtt.le_ms.len() + 1);
        let back: NodeSample = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back, a, "a sample survives its trip through Redis");
    }
}
