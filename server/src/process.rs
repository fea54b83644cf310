//! The process's own resources, as the kernel reports them: resident and virtual memory, CPU
//! seconds, threads, open descriptors and their limit, start time. Read from `/proc/self` on
//! Linux at each scrape ([`ProcessStats::sample`]); elsewhere there is nothing to report.
//!
//! A sample costs a few small file reads, whatever the server holds: the number of open
//! descriptors is the size the kernel reports for `/proc/self/fd` (Linux 6.2 and later count
//! them in `stat` without listing them); only older kernels, which report 0, have the directory
//! listed.

/// One sample of the process's resources.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    /// User and system CPU time since start, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory, in bytes.
    pub resident_bytes: u64,
    /// Virtual memory, in bytes.
    pub virtual_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The soft open-file limit, if there is one.
    pub max_fds: Option<u64>,
    /// Threads.
    pub threads: u64,
    /// When the process started, in seconds since the Unix epoch.
    pub start_time_seconds: f64,
}

impl ProcessStats {
    /// Read the process's resources now; `None` where `/proc` cannot be read (not Linux).
    pub fn sample() -> Option<Self> {
        #[cfg(target_os = "linux")]
        {
            let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
            let boot = std::fs::read_to_string("/proc/stat").ok()?;
            let kernel = Kernel {
                ticks_per_second: rustix::param::clock_ticks_per_second(),
                page_bytes: rustix::param::page_size() as u64,
                boot_time: boot_time(&boot)?,
            };
            let mut sample = parse_stat(&stat, &kernel)?;
            sample.open_fds = open_descriptors();
            sample.max_fds = rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft);
            Some(sample)
        }
        #[cfg(not(target_os = "linux"))]
        None
    }
}

/// What the kernel's figures are counted in.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
struct Kernel {
    /// `sysconf(_SC_CLK_TCK)`: the unit of CPU times and the start time.
    ticks_per_second: u64,
    /// The unit of the resident set size.
    page_bytes: u64,
    /// Seconds since the Unix epoch when the machine booted (`btime` in `/proc/stat`).
    boot_time: u64,
}

/// `btime` of `/proc/stat`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The figures of `/proc/self/stat` (proc(5)); descriptors are filled in by the caller.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_stat(stat: &str, kernel: &Kernel) -> Option<ProcessStats> {
    // The command name (field 2) is in parentheses and may hold spaces and parentheses: the
    // fields that follow start after the last `)`, with field 3 (the state) at index 0.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    let ticks = kernel.ticks_per_second.max(1) as f64;
    Some(ProcessStats {
        cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
        threads: field(20)?,
        start_time_seconds: kernel.boot_time as f64 + field(22)? as f64 / ticks,
        virtual_bytes: field(23)?,
        resident_bytes: field(24)? * kernel.page_bytes,
        open_fds: 0,
        max_fds: None,
    })
}

/// Descriptors open now.
#[cfg(target_os = "linux")]
fn open_descriptors() -> u64 {
    match std::fs::metadata("/proc/self/fd") {
        Ok(meta) if meta.len() > 0 => meta.len(),
        _ => std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count() as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fields_of_proc_self_stat_are_read_after_the_command_name() {
        // A command name with a space and a parenthesis; utime 250, stime 50 ticks, 7
        // threads, started 1 000 ticks after boot, 3 MB virtual, 371 pages resident.
        let stat = "28633 (my (odd) cmd) R 28575 28575 20519 0 -1 4194304 122 0 0 0 250 50 0 0 20 0 7 0 1000 3133440 371 18446744073709551615";
        let kernel = Kernel {
            ticks_per_second: 100,
            page_bytes: 4096,
            boot_time: 1_700_000_000,
        };
        let sample = parse_stat(stat, &kernel).expect("parses");
        assert_eq!(sample.cpu_seconds, 3.0);
        assert_eq!(sample.threads, 7);
        assert_eq!(sample.start_time_seconds, 1_700_000_010.0);
        assert_eq!(sample.virtual_bytes, 3_133_440);
        assert_eq!(sample.resident_bytes, 371 * 4096);
        assert_eq!(parse_stat("12 (truncated) R 1 2", &kernel), None);
        assert_eq!(
            boot_time("cpu 1 2 3\nbtime 1700000000\nprocesses 9\n"),
            Some(1_700_000_000)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_reports_memory_threads_and_descriptors() {
        let before = ProcessStats::sample().expect("/proc is readable on Linux");
        assert!(before.resident_bytes > 0 && before.threads >= 1);
        let files: Vec<std::fs::File> = (0..5)
            .map(|_| std::fs::File::open("/proc/self/stat").unwrap())
            .collect();
        let during = ProcessStats::sample().unwrap();
        // Other tests of this binary open and close files meanwhile: a lower bound only.
        assert!(during.open_fds >= 5, "{during:?}");
        assert!(during.max_fds.is_some_and(|max| max >= during.open_fds));
        drop(files);
    }
}
