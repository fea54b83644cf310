//! The process's own resources (`process_*`, the names every Prometheus client library uses),
//! from [`ProcessStats`], registered without the `switchboard` prefix.

use super::families::Families;
use crate::process::ProcessStats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;
use std::fmt;

/// The process's resources under the names every Prometheus client library uses.
#[derive(Debug)]
pub(super) struct ProcessCollector(pub(super) ProcessStats);

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
