//! `[http]`: the budgets of the HTTP front, which every socket meets before the switchboard
//! sees it: how long a client may take to send a request, how many connections may wait for
//! theirs, how many one address may hold, how many descriptors stay free, and HTTP/2.
//!
//! [`HttpLimits`] holds them resolved; `docs/OPERATIONS.md` ("Limits and budgets") lists each
//! with its default and what a client gets at the limit.

use super::SettingsError;
use serde::Deserialize;
use std::time::Duration;

/// `[http]` as written in the settings file. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Seconds from accept to a complete first request head (any protocol); also how long a
    /// kept-alive HTTP/1.1 connection may take to send its next request head.
    pub handshake_timeout_secs: Option<u64>,
    /// Seconds an API request body may stall between two chunks.
    pub body_timeout_secs: Option<u64>,
    /// Seconds an API request may take as a whole, its body included.
    pub request_timeout_secs: Option<u64>,
    /// Seconds a connection may stay open with no request in progress.
    pub idle_timeout_secs: Option<u64>,
    /// Connections that have not completed their first request head, on the whole node.
    pub max_handshakes: Option<usize>,
    /// Open connections (HTTP and WebSocket) from one address; 0: no limit.
    pub max_connections_per_ip: Option<usize>,
    /// File descriptors kept free for everything but client sockets.
    pub fd_reserve: Option<usize>,
    /// Serve HTTP/2 (cleartext, prior knowledge) besides HTTP/1.1.
    pub http2: Option<bool>,
    /// Streams one HTTP/2 connection may have open at once.
    pub http2_max_concurrent_streams: Option<u32>,
    /// Seconds between HTTP/2 keep-alive pings, and how long one may go unanswered.
    pub http2_keep_alive_secs: Option<u64>,
    /// Browser origins a WebSocket may come from (resolved into
    /// [`AuthConfig::allowed_origins`](super::AuthConfig::allowed_origins)).
    pub allowed_origins: Option<Vec<String>>,
}

/// The HTTP front's budgets, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// From accept to a complete first request head. Default 10 s.
    pub handshake_timeout: Duration,
    /// An API request body's longest stall between two chunks. Default 10 s.
    pub body_timeout: Duration,
    /// An API request as a whole. Default 30 s.
    pub request_timeout: Duration,
    /// A connection with no request in progress. Default 60 s.
    pub idle_timeout: Duration,
    /// Connections before their first complete request head, on the node. Default 1024.
    pub max_handshakes: usize,
    /// Open connections per address (IPv4 address, IPv6 /64); 0: none. Default 0.
    pub max_connections_per_ip: usize,
    /// Descriptors kept free for everything but client sockets. Default 64.
    pub fd_reserve: usize,
    /// HTTP/2 served besides HTTP/1.1. Default true.
    pub http2: bool,
    /// HTTP/2 streams per connection. Default 100.
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2 keep-alive ping interval and timeout. Default 20 s.
    pub http2_keep_alive: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            handshake_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_handshakes: 1024,
            max_connections_per_ip: 0,
            fd_reserve: 64,
            http2: true,
            http2_max_concurrent_streams: 100,
            http2_keep_alive: Duration::from_secs(20),
        }
    }
}

/// What the command line and the environment may override in `[http]`.
#[derive(Debug, Default, Clone, Copy)]
pub struct HttpOverrides {
    /// `handshake_timeout_secs`.
    pub handshake_timeout_secs: Option<u64>,
    /// `max_handshakes`.
    pub max_handshakes: Option<usize>,
    /// `max_connections_per_ip`.
    pub max_connections_per_ip: Option<usize>,
    /// `http2`.
    pub http2: Option<bool>,
}

impl HttpLimits {
    /// The defaults, then `file`, then `overrides`. Durations must be at least a second and
    /// counts at least one (`max_connections_per_ip` may be 0: no limit).
    pub fn resolve(file: &HttpSettings, overrides: HttpOverrides) -> Result<Self, SettingsError> {
        let d = HttpLimits::default();
        let secs = |key: &str, value: Option<u64>, default: Duration| match value {
            None => Ok(default),
            Some(0) => Err(SettingsError::Invalid(format!(
                "http.{key} must be at least 1"
            ))),
            Some(s) => Ok(Duration::from_secs(s)),
        };
        let handshake = overrides
            .handshake_timeout_secs
            .or(file.handshake_timeout_secs);
        let limits = HttpLimits {
            handshake_timeout: secs("handshake_timeout_secs", handshake, d.handshake_timeout)?,
            body_timeout: secs("body_timeout_secs", file.body_timeout_secs, d.body_timeout)?,
            request_timeout: secs(
                "request_timeout_secs",
                file.request_timeout_secs,
                d.request_timeout,
            )?,
            idle_timeout: secs("idle_timeout_secs", file.idle_timeout_secs, d.idle_timeout)?,
            max_handshakes: overrides
                .max_handshakes
                .or(file.max_handshakes)
                .unwrap_or(d.max_handshakes),
            max_connections_per_ip: overrides
                .max_connections_per_ip
                .or(file.max_connections_per_ip)
                .unwrap_or(d.max_connections_per_ip),
            fd_reserve: file.fd_reserve.unwrap_or(d.fd_reserve),
            http2: overrides.http2.or(file.http2).unwrap_or(d.http2),
            http2_max_concurrent_streams: file
                .http2_max_concurrent_streams
                .unwrap_or(d.http2_max_concurrent_streams),
            http2_keep_alive: secs(
                "http2_keep_alive_secs",
                file.http2_keep_alive_secs,
                d.http2_keep_alive,
            )?,
        };
        if limits.max_handshakes == 0 || limits.http2_max_concurrent_streams == 0 {
            return Err(SettingsError::Invalid(
                "http.max_handshakes and http.http2_max_concurrent_streams must be at least 1"
                    .into(),
            ));
        }
        Ok(limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_configured_gives_the_documented_defaults() {
        let limits = HttpLimits::resolve(&HttpSettings::default(), HttpOverrides::default());
        assert_eq!(limits.unwrap(), HttpLimits::default());
        let d = HttpLimits::default();
        assert_eq!(d.handshake_timeout, Duration::from_secs(10));
        assert_eq!((d.max_handshakes, d.max_connections_per_ip), (1024, 0));
    }

    #[test]
    fn overrides_win_over_the_file_and_zero_durations_are_refused() {
        let file: HttpSettings =
            toml::from_str("handshake_timeout_secs = 3\nmax_connections_per_ip = 5").unwrap();
        let overrides = HttpOverrides {
            max_connections_per_ip: Some(7),
            ..HttpOverrides::default()
        };
        let limits = HttpLimits::resolve(&file, overrides).unwrap();
        assert_eq!(limits.handshake_timeout, Duration::from_secs(3));
        assert_eq!(limits.max_connections_per_ip, 7);
        let zero: HttpSettings = toml::from_str("body_timeout_secs = 0").unwrap();
        let err = HttpLimits::resolve(&zero, HttpOverrides::default()).unwrap_err();
        assert!(err.to_string().contains("body_timeout_secs"), "{err}");
        let none: HttpSettings = toml::from_str("max_handshakes = 0").unwrap();
        assert!(HttpLimits::resolve(&none, HttpOverrides::default()).is_err());
    }
}
