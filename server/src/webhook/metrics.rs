//! The webhook's metrics, rendered on `/metrics` with the prefix `switchboard_`:
//! `webhook_sent_total` (events the backend answered, 2xx or 4xx), `webhook_retried_total`
//! (attempts after the first), `webhook_failed_total{reason}` (events given up:
//! `queue_full`, `exhausted`, `invalid_answer`), `webhook_queue_depth` (events waiting or in
//! flight) and `webhook_latency_seconds` (a histogram of the answered attempts' durations).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use std::fmt;
use std::time::Duration;

/// Why an event was given up.
#[derive(Debug, Clone, Copy)]
pub enum Failure {
    /// The node's queue was full.
    QueueFull,
    /// Its attempts or its age ran out.
    Exhausted,
    /// The backend answered 2xx with a body that is too large or not the documented JSON.
    InvalidAnswer,
}

impl Failure {
    fn label(self) -> &'static str {
        match self {
            Failure::QueueFull => "queue_full",
            Failure::Exhausted => "exhausted",
            Failure::InvalidAnswer => "invalid_answer",
        }
    }
}

/// The webhook's counters, shared by its tasks and the metrics route (cloning shares them).
#[derive(Debug, Clone)]
pub struct WebhookMetrics {
    sent: Counter,
    retried: Counter,
    failed: Family<Vec<(&'static str, &'static str)>, Counter>,
    depth: Gauge,
    latency: Histogram,
}

impl Default for WebhookMetrics {
    fn default() -> Self {
        WebhookMetrics {
            sent: Counter::default(),
            retried: Counter::default(),
            failed: Family::default(),
            depth: Gauge::default(),
            // 1 ms to about 33 s.
            latency: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
        }
    }
}

impl WebhookMetrics {
    /// The backend answered an event after `took`.
    pub fn sent(&self, took: Duration) {
        self.sent.inc();
        self.latency.observe(took.as_secs_f64());
    }

    /// An attempt after the first.
    pub fn retried(&self) {
        self.retried.inc();
    }

    /// An event given up.
    pub fn failed(&self, why: Failure) {
        self.failed
            .get_or_create(&vec![("reason", why.label())])
            .inc();
    }

    /// Events waiting or in flight now.
    pub fn depth(&self, depth: usize) {
        self.depth.set(i64::try_from(depth).unwrap_or(i64::MAX));
    }
}

impl Collector for WebhookMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let families: [(&str, &str, &dyn EncodeMetric); 5] = [
            (
                "webhook_sent",
                "Events the backend answered (2xx or 4xx)",
                &self.sent,
            ),
            (
                "webhook_retried",
                "Webhook attempts after the first",
                &self.retried,
            ),
            ("webhook_failed", "Events given up, by reason", &self.failed),
            (
                "webhook_queue_depth",
                "Webhook events waiting or in flight",
                &self.depth,
            ),
            (
                "webhook_latency_seconds",
                "Duration of answered webhook attempts",
                &self.latency,
            ),
        ];
        for (name, help, metric) in families {
            let sample = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
            metric.encode(sample)?;
        }
        Ok(())
    }
}
