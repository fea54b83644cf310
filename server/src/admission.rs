//! Connection admission: whether an accepted socket may stay, decided at once, before a byte is
//! read from it, and what the node's sockets add up to.
//!
//! Three budgets, each checked at accept ([`Admission::admit`]):
//!
//! - **descriptors**: the process's open-file limit (its soft `RLIMIT_NOFILE`, raised to the
//!   hard one at start by [`OpenFiles::raise`]) minus what was open at start minus
//!   `http.fd_reserve`. Past it, a new socket is closed at once, so the process never runs out
//!   of descriptors for Redis, its logs or its own listener;
//! - **per address**: open connections (HTTP and WebSocket) from one IPv4 address or one IPv6
//!   /64, at most `http.max_connections_per_ip` (0: no limit). Past it, a new socket from that
//!   address is closed at once;
//! - **handshakes**: connections that have not yet sent a complete first request head (a silent
//!   socket, an HTTP/2 preface with no request, half a WebSocket handshake), at most
//!   `http.max_handshakes` and never more than half the descriptor budget, so slow or silent
//!   clients cannot take the descriptors that served clients need. Past it, the connection
//!   that has waited longest is closed to make room: a client that behaves sends its request
//!   within a round trip, so the oldest waiting is the likeliest to be one that never will, and
//!   a flood of silent sockets cannot keep new clients out.
//!
//! A refused socket is closed at once without an answer (the client sees the connection
//! closed or reset); refusals and evictions are counted, and refusals logged as a warning at
//! most once per [`WARN_EVERY`] with the number since. The [`Ticket`] of an admitted socket
//! travels with it (into the WebSocket connection after an upgrade) and gives its place back
//! when the socket is closed.

use crate::settings::HttpLimits;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// At most one warning per this period about refused sockets or failing accepts.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// The process's open-file limits, and the descriptors it held at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit (`ulimit -Sn`), if the platform has one.
    pub soft: Option<u64>,
    /// The hard limit (`ulimit -Hn`), if the platform has one.
    pub hard: Option<u64>,
    /// Descriptors open when the limits were read (0 where they cannot be counted).
    pub at_start: usize,
}

impl OpenFiles {
    /// Raise the soft open-file limit to the hard one (a process may, without privilege), then
    /// read both and count the descriptors open now.
    pub fn raise() -> Self {
        #[cfg(unix)]
        {
            if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
                tracing::warn!(error = %e, "could not raise the open-file limit");
            }
            let (soft, hard) = match rlimit::getrlimit(rlimit::Resource::NOFILE) {
                Ok((soft, hard)) => (Some(soft), Some(hard)),
                Err(_) => (None, None),
            };
            OpenFiles {
                soft,
                hard,
                at_start: open_descriptors(),
            }
        }
        #[cfg(not(unix))]
        OpenFiles {
            soft: None,
            hard: None,
            at_start: 0,
        }
    }

    /// Client sockets the node may hold: the soft limit minus what was open at start minus
    /// `reserve`; unbounded without a limit.
    pub fn budget(&self, reserve: usize) -> usize {
        match self.soft {
            Some(soft) => usize::try_from(soft)
                .unwrap_or(usize::MAX)
                .saturating_sub(self.at_start)
                .saturating_sub(reserve),
            None => usize::MAX,
        }
    }
}

/// Descriptors this process holds now, where the platform lists them.
#[cfg(unix)]
fn open_descriptors() -> usize {
    ["/proc/self/fd", "/dev/fd"]
        .iter()
        .find_map(|dir| std::fs::read_dir(dir).ok())
        .map_or(0, Iterator::count)
}

/// Why a socket was closed at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The descriptor budget is spent.
    Descriptors,
    /// The address holds `max_connections_per_ip` connections.
    PerIp,
}

impl Refusal {
    /// Every refusal, in the order of [`AdmissionStats::refused`].
    pub const ALL: [Refusal; 2] = [Refusal::Descriptors, Refusal::PerIp];

    /// The `reason` label in `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Descriptors => "descriptors",
            Refusal::PerIp => "per_ip",
        }
    }
}

/// Where a connection was closed for taking too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// No complete first request head within `handshake_timeout`.
    Handshake,
    /// No request for `idle_timeout`.
    Idle,
}

/// What the connection front holds and did, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdmissionStats {
    /// Sockets held (HTTP connections and WebSockets).
    pub connections: usize,
    /// Sockets that have not sent a complete first request head.
    pub handshakes: usize,
    /// Sockets closed at accept, by [`Refusal::ALL`].
    pub refused: [u64; 2],
    /// Connections closed in their handshake to make room for a new one.
    pub evicted: u64,
    /// Connections closed without a complete first request head in time.
    pub handshake_timeouts: u64,
    /// Connections closed after `idle_timeout` without a request.
    pub idle_timeouts: u64,
    /// `accept` failures (out of descriptors, usually), after each of which accepting backs off.
    pub accept_errors: u64,
    /// The soft open-file limit.
    pub open_files_soft: Option<u64>,
    /// The hard open-file limit.
    pub open_files_hard: Option<u64>,
}

#[derive(Debug, Default)]
struct Counts {
    open: usize,
    per_ip: HashMap<Address, usize>,
    /// The connections in their handshake, oldest first: each one's eviction signal.
    waiting: BTreeMap<u64, Arc<Notify>>,
    /// The number the next admitted socket gets.
    next: u64,
}

/// The unit of the per-address limit: an IPv4 address, or an IPv6 /64 (what one host, or one
/// customer of a provider, usually holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Address {
    V4(std::net::Ipv4Addr),
    V6Prefix(u64),
}

impl From<IpAddr> for Address {
    fn from(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Address::V4(v4),
            IpAddr::V6(v6) => Address::V6Prefix((v6.to_bits() >> 64) as u64),
        }
    }
}

/// The node's connection budgets and what holds them.
#[derive(Debug)]
pub struct Admission {
    budget: usize,
    max_handshakes: usize,
    max_per_ip: usize,
    open_files: OpenFiles,
    counts: Mutex<Counts>,
    refused: [AtomicU64; 2],
    evicted: AtomicU64,
    handshake_timeouts: AtomicU64,
    idle_timeouts: AtomicU64,
    accept_errors: AtomicU64,
    /// Warnings about refusals, and about failing accepts, each at most once per period.
    refusal_warnings: Throttle,
    failure_warnings: Throttle,
}

impl Admission {
    /// Budgets from `limits` and the process's `open_files`. Fails if the open-file limit
    /// leaves no descriptor for clients.
    pub fn new(limits: &HttpLimits, open_files: OpenFiles) -> std::io::Result<Self> {
        let budget = open_files.budget(limits.fd_reserve);
        if budget == 0 {
            return Err(std::io::Error::other(format!(
                "the open-file limit ({:?}) leaves no descriptor for clients after the {} open \
                 at start and http.fd_reserve ({}): raise `ulimit -n` or lower fd_reserve",
                open_files.soft, open_files.at_start, limits.fd_reserve
            )));
        }
        Ok(Admission {
            budget,
            max_handshakes: limits.max_handshakes.min((budget / 2).max(1)),
            max_per_ip: limits.max_connections_per_ip,
            open_files,
            counts: Mutex::new(Counts::default()),
            refused: Default::default(),
            evicted: AtomicU64::new(0),
            handshake_timeouts: AtomicU64::new(0),
            idle_timeouts: AtomicU64::new(0),
            accept_errors: AtomicU64::new(0),
            refusal_warnings: Throttle::default(),
            failure_warnings: Throttle::default(),
        })
    }

    /// The most connections that may wait for their first request at once.
    pub fn max_handshakes(&self) -> usize {
        self.max_handshakes
    }

    /// Admit a socket accepted from `peer`, or say why it must be closed at once. With
    /// `max_handshakes` connections in their handshake, the one admitted longest ago is told
    /// to close ([`Ticket::evicted`]) to make room.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Ticket, Refusal> {
        let address = Address::from(peer);
        let admitted = {
            let mut counts = self.counts.lock().expect("not poisoned");
            let from_peer = counts.per_ip.get(&address).copied().unwrap_or(0);
            if counts.open >= self.budget {
                Err(Refusal::Descriptors)
            } else if self.max_per_ip > 0 && from_peer >= self.max_per_ip {
                Err(Refusal::PerIp)
            } else {
                if counts.waiting.len() >= self.max_handshakes {
                    if let Some((_, oldest)) = counts.waiting.pop_first() {
                        oldest.notify_one();
                        self.evicted.fetch_add(1, Ordering::Relaxed);
                    }
                }
                counts.open += 1;
                if self.max_per_ip > 0 {
                    *counts.per_ip.entry(address).or_default() += 1;
                }
                let serial = counts.next;
                counts.next += 1;
                let evicted = Arc::new(Notify::new());
                counts.waiting.insert(serial, evicted.clone());
                Ok((serial, evicted))
            }
        };
        match admitted {
            Ok((serial, evicted)) => Ok(Ticket {
                admission: self.clone(),
                address: (self.max_per_ip > 0).then_some(address),
                serial,
                evicted,
            }),
            Err(refusal) => {
                let index = Refusal::ALL.iter().position(|r| *r == refusal);
                self.refused[index.expect("listed")].fetch_add(1, Ordering::Relaxed);
                self.refusal_warnings.warn(|since| {
                    tracing::warn!(
                        reason = refusal.label(),
                        refused_since_last_warning = since,
                        "connections refused at accept"
                    );
                });
                Err(refusal)
            }
        }
    }

    /// Count a connection closed at `stage` for taking too long.
    pub fn timed_out(&self, stage: Stage) {
        let counter = match stage {
            Stage::Handshake => &self.handshake_timeouts,
            Stage::Idle => &self.idle_timeouts,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Count an `accept` failure (the caller backs off); warn at most once per [`WARN_EVERY`].
    pub fn accept_failed(&self, error: &std::io::Error) {
        self.accept_errors.fetch_add(1, Ordering::Relaxed);
        self.failure_warnings.warn(|since| {
            tracing::warn!(
                %error,
                failures_since_last_warning = since,
                "accept failed (out of file descriptors?): accepting more slowly"
            );
        });
    }

    /// A snapshot for `/metrics`.
    pub fn stats(&self) -> AdmissionStats {
        let (connections, handshakes) = {
            let counts = self.counts.lock().expect("not poisoned");
            (counts.open, counts.waiting.len())
        };
        AdmissionStats {
            connections,
            handshakes,
            refused: self.refused.each_ref().map(|c| c.load(Ordering::Relaxed)),
            evicted: self.evicted.load(Ordering::Relaxed),
            handshake_timeouts: self.handshake_timeouts.load(Ordering::Relaxed),
            idle_timeouts: self.idle_timeouts.load(Ordering::Relaxed),
            accept_errors: self.accept_errors.load(Ordering::Relaxed),
            open_files_soft: self.open_files.soft,
            open_files_hard: self.open_files.hard,
        }
    }
}

/// An admitted socket's place in the budgets, given back when dropped.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    /// Counted per address (only with a per-address limit).
    address: Option<Address>,
    /// Its place in the order of admission.
    serial: u64,
    /// Signalled when it must close to make room for a newer handshake.
    evicted: Arc<Notify>,
}

impl Ticket {
    /// The socket sent a complete request head: it no longer counts as a handshake (and can no
    /// longer be evicted).
    pub fn established(&self) {
        let mut counts = self.admission.counts.lock().expect("not poisoned");
        counts.waiting.remove(&self.serial);
    }

    /// Resolves once this connection, still in its handshake, must close to make room.
    pub async fn evicted(&self) {
        self.evicted.notified().await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut counts = self.admission.counts.lock().expect("not poisoned");
        counts.open -= 1;
        counts.waiting.remove(&self.serial);
        if let Some(address) = &self.address {
            if let Some(n) = counts.per_ip.get_mut(address) {
                *n -= 1;
                if *n == 0 {
                    counts.per_ip.remove(address);
                }
            }
        }
    }
}

/// Logs at most once per [`WARN_EVERY`], telling how many it kept quiet since.
#[derive(Debug, Default)]
struct Throttle {
    last: Mutex<Option<Instant>>,
    quiet: AtomicU64,
}

impl Throttle {
    /// Run `log` with the number of calls kept quiet since the last, unless one ran within
    /// [`WARN_EVERY`].
    fn warn(&self, log: impl FnOnce(u64)) {
        let mut last = self.last.lock().expect("not poisoned");
        if last.is_some_and(|at| at.elapsed() < WARN_EVERY) {
            self.quiet.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = Some(Instant::now());
        log(self.quiet.swap(0, Ordering::Relaxed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(limits: HttpLimits, soft: u64) -> Arc<Admission> {
        let open_files = OpenFiles {
            soft: Some(soft),
            hard: Some(soft),
            at_start: 10,
        };
        Arc::new(Admission::new(&limits, open_files).unwrap())
    }

    const ALICE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const BOB: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    /// Whether `ticket` was told to close.
    async fn was_evicted(ticket: &Ticket) -> bool {
        let evicted = ticket.evicted();
        tokio::time::timeout(Duration::from_millis(10), evicted)
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn past_the_handshake_cap_the_oldest_waiting_makes_room() {
        let limits = HttpLimits {
            max_handshakes: 2,
            ..HttpLimits::default()
        };
        let node = admission(limits, 10_000);
        let first = node.admit(ALICE).unwrap();
        let second = node.admit(BOB).unwrap();
        first.established();
        let third = node.admit(ALICE).unwrap();
        assert!(!was_evicted(&second).await, "two waiting: room for both");
        let fourth = node.admit(BOB).unwrap();
        assert!(was_evicted(&second).await, "the oldest waiting goes");
        assert!(!was_evicted(&first).await && !was_evicted(&third).await);
        let stats = node.stats();
        assert_eq!(
            (stats.connections, stats.handshakes, stats.evicted),
            (4, 2, 1)
        );
        drop((second, third, fourth));
        let stats = node.stats();
        assert_eq!((stats.connections, stats.handshakes), (1, 0));
    }

    #[test]
    fn one_address_holds_at_most_its_share_and_ipv6_counts_by_prefix() {
        let limits = HttpLimits {
            max_connections_per_ip: 2,
            ..HttpLimits::default()
        };
        let node = admission(limits, 10_000);
        let held: Vec<Ticket> = ["2001:db8::1", "2001:db8::2"]
            .iter()
            .map(|ip| node.admit(ip.parse().unwrap()).unwrap())
            .collect();
        let same_prefix = "2001:db8::ffff".parse().unwrap();
        assert_eq!(node.admit(same_prefix).unwrap_err(), Refusal::PerIp);
        assert!(node.admit("2001:db8:0:1::1".parse().unwrap()).is_ok());
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let _a = node.admit(ALICE).unwrap();
        let _b = node.admit(mapped).unwrap();
        assert_eq!(
            node.admit(ALICE).unwrap_err(),
            Refusal::PerIp,
            "v4-mapped is v4"
        );
        drop(held);
        assert!(node.admit(same_prefix).is_ok());
    }

    #[test]
    fn the_descriptor_budget_leaves_the_reserve_and_bounds_handshakes() {
        let limits = HttpLimits {
            fd_reserve: 4,
            ..HttpLimits::default()
        };
        // 20 descriptors, 10 open at start, 4 reserved: 6 sockets, at most 3 in handshake.
        let node = admission(limits.clone(), 20);
        assert_eq!(node.max_handshakes(), 3);
        let mut held: Vec<Ticket> = (0..6).map(|_| node.admit(ALICE).unwrap()).collect();
        assert_eq!(node.stats().handshakes, 3, "the three oldest made room");
        assert_eq!(node.admit(BOB).unwrap_err(), Refusal::Descriptors);
        held.truncate(5);
        assert!(node.admit(BOB).is_ok());
        assert_eq!(node.stats().refused, [1, 0]);
        let open_files = OpenFiles {
            soft: Some(14),
            hard: Some(14),
            at_start: 10,
        };
        assert!(Admission::new(&limits, open_files).is_err(), "nothing left");
    }

    #[test]
    fn warnings_are_throttled_and_count_what_they_kept_quiet() {
        let throttle = Throttle::default();
        let mut logged = Vec::new();
        for _ in 0..5 {
            throttle.warn(|quiet| logged.push(quiet));
        }
        assert_eq!(logged, vec![0]);
        *throttle.last.lock().unwrap() = Some(Instant::now() - WARN_EVERY);
        throttle.warn(|quiet| logged.push(quiet));
        assert_eq!(logged, vec![0, 4]);
    }
}
