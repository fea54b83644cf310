//! Server settings: a preset, then `switchboard.toml`, then `SWITCHBOARD_*` environment
//! variables and command-line flags, each overriding the one before.
//!
//! Everything has a working default for development. Staging and production refuse to start
//! without their own strong auth secret and API key, and the public development credentials
//! listen on loopback only (see [`crate::credentials`]). The HTTP front's budgets are the
//! `[http]` section ([`HttpLimits`]); how client tokens are checked is `[auth]`
//! ([`AuthConfig`]); the hub's budgets are `[limits]`, `[heartbeat]`, `[history]` and
//! `[backpressure]` ([`LimitSettings`] and its neighbours); the log format and the dashboard are `[log]` and
//! `[dashboard]` ([`LogFormat`], [`DashboardConfig`]); joining a cluster is `[redis]`
//! ([`RedisTuning`]).

mod auth;
mod http;
mod hub;
mod keys;
mod ops;
mod presence;
mod producer;
mod redis;
mod webhook;

pub use auth::{AuthConfig, AuthOverrides, AuthSettings, TicketLimits};
pub use http::{HttpLimits, HttpOverrides, HttpSettings};
pub use hub::{
    BackpressureSettings, HeartbeatSettings, HistorySettings, LimitSettings, PolicySetting,
};
pub use keys::{JwksConfig, JwksSettings, KeyAlgorithm, KeySettings, PublicKey};
pub use ops::{DashboardConfig, DashboardSettings, LogFormat, LogSettings};
pub use presence::PresenceSettings;
pub use producer::{ProducerLimits, ProducerSettings};
pub use redis::{RedisSettings, RedisTuning};
pub use webhook::{
    FrameSettings, LifecycleEvent, WebhookConfig, WebhookOverrides, WebhookSettings,
};

use crate::credentials::{Credentials, Secret};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use switchboard::{Config, TokenConfig};

/// The JWT secret used when none is configured, in development only.
pub const DEVELOPMENT_SECRET: &str = "switchboard-development-secret-do-not-use-in-production";
/// The backend API key used when none is configured, in development only.
pub const DEVELOPMENT_API_KEY: &str = "switchboard-development-api-key";
/// Where the server listens when nothing else is configured.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The most worker threads `workers` may ask for: as many as there may be shards.
pub const MAX_WORKERS: usize = 256;

/// The core preset a deployment starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Short heartbeats, 100 connections, development credentials allowed.
    #[default]
    Development,
    /// 30 s pings, 10 000 connections; credentials required.
    Staging,
    /// 25 s pings, 100 000 connections; credentials required.
    Production,
}

impl Environment {
    /// The core configuration preset of this environment.
    pub fn preset(self) -> Config {
        match self {
            Environment::Development => Config::development(),
            Environment::Staging => Config::staging(),
            Environment::Production => Config::production(),
        }
    }
}

/// The contents of `switchboard.toml`. Every key is optional; see `docs/OPERATIONS.md`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    /// `host:port` to listen on.
    pub listen: Option<SocketAddr>,
    /// The preset.
    pub env: Option<Environment>,
    /// Worker threads of the runtime; 0 = one per core.
    pub workers: Option<usize>,
    /// Hubs; 0 = one per two worker threads.
    pub shards: Option<usize>,
    /// Seconds to wait for connections to flush and close on shutdown.
    pub shutdown_grace_secs: Option<u64>,
    /// Seconds a node shutting down keeps serving its clients, refusing new ones, before it
    /// closes them.
    pub shutdown_drain_secs: Option<u64>,
    /// Largest backend API request body, in bytes.
    pub max_body_bytes: Option<usize>,
    /// Most messages of one `POST /api/publish/batch`.
    pub max_publish_batch: Option<usize>,
    /// Credentials.
    #[serde(default)]
    pub auth: AuthSettings,
    /// Overrides of the preset's limits.
    #[serde(default)]
    pub limits: LimitSettings,
    /// Overrides of the preset's heartbeat.
    #[serde(default)]
    pub heartbeat: HeartbeatSettings,
    /// Overrides of the preset's history bounds.
    #[serde(default)]
    pub history: HistorySettings,
    /// Overrides of the preset's per-connection outbound budgets.
    #[serde(default)]
    pub backpressure: BackpressureSettings,
    /// Joining other nodes over Redis.
    #[serde(default)]
    pub redis: RedisSettings,
    /// The HTTP front's budgets: timeouts, connection caps, HTTP/2.
    #[serde(default)]
    pub http: HttpSettings,
    /// The demo page.
    #[serde(default)]
    pub demo: DemoSettings,
    /// The log format.
    #[serde(default)]
    pub log: LogSettings,
    /// The operations dashboard.
    #[serde(default)]
    pub dashboard: DashboardSettings,
    /// Client frame types forwarded to the backend.
    #[serde(default)]
    pub frames: FrameSettings,
    /// How frames and lifecycle events reach the backend.
    #[serde(default)]
    pub webhook: WebhookSettings,
    /// Which rooms tell their members who comes and goes.
    #[serde(default)]
    pub presence: PresenceSettings,
    /// The producer channel (`/api/producer`).
    #[serde(default)]
    pub producer: ProducerSettings,
}

/// `[demo]`: the demo page at `/demo` (see `docs/OPERATIONS.md`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoSettings {
    /// Serve it. Default: in development only.
    pub enabled: Option<bool>,
}

/// Overrides from the command line and `SWITCHBOARD_*` variables (clap reads both).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Overrides {
    /// Settings file (TOML).
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Preset: development, staging or production.
    #[arg(long, value_enum, env = "SWITCHBOARD_ENV")]
    pub env: Option<Environment>,
    /// Address to listen on, e.g. 0.0.0.0:8080.
    #[arg(long, env = "SWITCHBOARD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// HS256 secret of client tokens.
    #[arg(long, env = "SWITCHBOARD_AUTH_SECRET", hide_env_values = true)]
    pub secret: Option<Secret>,
    /// Bearer key of the backend HTTP API.
    #[arg(long, env = "SWITCHBOARD_API_KEY", hide_env_values = true)]
    pub api_key: Option<Secret>,
    /// Worker threads of the runtime (0 = one per core, at most 256).
    #[arg(long, env = "SWITCHBOARD_WORKERS")]
    pub workers: Option<usize>,
    /// Hubs (0 = one per two worker threads).
    #[arg(long, env = "SWITCHBOARD_SHARDS")]
    pub shards: Option<usize>,
    /// Open connections per node.
    #[arg(long, env = "SWITCHBOARD_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Seconds to let connections flush and close on shutdown.
    #[arg(long, env = "SWITCHBOARD_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// Seconds to keep serving the connected clients on shutdown before closing them.
    #[arg(long, env = "SWITCHBOARD_SHUTDOWN_DRAIN_SECS")]
    pub shutdown_drain_secs: Option<u64>,
    /// The Redis URL that joins this node to a cluster (none: a single node).
    #[arg(long, env = "SWITCHBOARD_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<Secret>,
    /// Number streams in Redis, shared by every node (with a Redis URL).
    #[arg(long, env = "SWITCHBOARD_REDIS_SHARED_STREAMS")]
    pub redis_shared_streams: Option<bool>,
    /// The prefix of the cluster's keys and channels in Redis (default sb).
    #[arg(long, env = "SWITCHBOARD_REDIS_PREFIX")]
    pub redis_prefix: Option<String>,
    /// Serve the demo page at /demo (default: in development only).
    #[arg(long, env = "SWITCHBOARD_DEMO")]
    pub demo: Option<bool>,
    /// Seconds from accept to a complete first request head.
    #[arg(long, env = "SWITCHBOARD_HANDSHAKE_TIMEOUT_SECS")]
    pub handshake_timeout_secs: Option<u64>,
    /// Connections before their first complete request head, on the node.
    #[arg(long, env = "SWITCHBOARD_MAX_HANDSHAKES")]
    pub max_handshakes: Option<usize>,
    /// Open connections from one address (0: no limit).
    #[arg(long, env = "SWITCHBOARD_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
    /// Serve HTTP/2 (cleartext) besides HTTP/1.1.
    #[arg(long, env = "SWITCHBOARD_HTTP2")]
    pub http2: Option<bool>,
    /// Log format: text or json.
    #[arg(long, value_enum, env = "SWITCHBOARD_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Serve the operations dashboard at /dashboard (default: in development only).
    #[arg(long, env = "SWITCHBOARD_DASHBOARD")]
    pub dashboard: Option<bool>,
    /// How client tokens are checked.
    #[command(flatten)]
    pub auth: AuthOverrides,
    /// Frames and lifecycle events to the backend.
    #[command(flatten)]
    pub webhook: WebhookOverrides,
}

/// Everything the server runs with, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The preset it started from.
    pub env: Environment,
    /// Worker threads of the runtime; 0 = one per core.
    pub workers: usize,
    /// Hubs: as set, else one per two worker threads; 0 = one per two cores.
    pub shards: usize,
    /// How long shutdown waits for connections to flush and close.
    pub shutdown_grace: Duration,
    /// How long a node shutting down keeps serving its clients before it closes them.
    pub shutdown_drain: Duration,
    /// Largest backend API request body, in bytes.
    pub max_body_bytes: usize,
    /// Most messages of one `POST /api/publish/batch` (at least 1).
    pub max_publish_batch: usize,
    /// Bearer key of the backend HTTP API.
    pub api_key: Secret,
    /// How client tokens are checked: secrets, keys, claims, grants, tickets, origins.
    pub auth: AuthConfig,
    /// True when the development credentials are in use.
    pub development_credentials: bool,
    /// The core's configuration.
    pub hub: Config,
    /// The Redis of the cluster this node joins; `None`: a single node.
    pub redis_url: Option<Secret>,
    /// How the node's bridge uses that Redis.
    pub redis: RedisTuning,
    /// Whether `/demo` is served.
    pub demo: bool,
    /// The HTTP front's budgets.
    pub http: HttpLimits,
    /// How logs are written.
    pub log: LogFormat,
    /// The operations dashboard.
    pub dashboard: DashboardConfig,
    /// Where client frames and lifecycle events are POSTed; `None`: nowhere.
    pub webhook: Option<WebhookConfig>,
    /// The producer channel's bounds and liveness timings.
    pub producer: ProducerLimits,
}

/// Why settings could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The settings file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The settings file is not valid.
    #[error("invalid settings in {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// A deployment preset without its own credentials.
    #[error(
        "{0} is not set: staging and production need their own auth secret and API key \
         (--secret/--api-key, SWITCHBOARD_AUTH_SECRET/SWITCHBOARD_API_KEY, or [auth] in the settings file)"
    )]
    MissingCredential(&'static str),
    /// A value that cannot work.
    #[error("invalid setting: {0}")]
    Invalid(String),
}

impl FileSettings {
    /// Read and parse a settings file.
    pub fn load(path: &Path) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| SettingsError::Parse {
            path: path.display().to_string(),
            source: Box::new(source),
        })
    }
}

impl Settings {
    /// Resolve: the preset, then `file`, then `overrides`.
    pub fn resolve(mut file: FileSettings, overrides: &Overrides) -> Result<Self, SettingsError> {
        let env = overrides.env.or(file.env).unwrap_or_default();
        let mut hub = env.preset();
        hub::apply(&mut hub, &file, overrides.max_connections)?;
        let workers = overrides.workers.or(file.workers).unwrap_or(0);
        if workers > MAX_WORKERS {
            return Err(SettingsError::Invalid(format!(
                "workers is {workers}: at most {MAX_WORKERS} worker threads"
            )));
        }
        if file.max_publish_batch == Some(0) {
            return Err(SettingsError::Invalid(
                "max_publish_batch must be at least 1".into(),
            ));
        }
        hub.presence = presence::resolve(file.presence)?;
        let redis = RedisTuning::resolve(&file.redis, overrides.redis_prefix.clone())?;
        let redis_url = overrides.redis_url.clone().or(file.redis.url);
        hub.cluster = redis_url.is_some();
        hub.shared_streams = hub.cluster
            && overrides
                .redis_shared_streams
                .or(file.redis.shared_streams)
                .unwrap_or(true);

        let listen = overrides
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("a valid default address"));
        let public_keys = file.auth.has_public_keys(&overrides.auth);
        let credentials = Credentials::check(
            env,
            overrides.secret.clone().or(file.auth.secret.take()),
            overrides.api_key.clone().or(file.auth.api_key.take()),
            listen,
            public_keys,
        )?;
        let auth = AuthConfig::resolve(
            env,
            file.auth,
            &overrides.auth,
            credentials.secret,
            file.http.allowed_origins.take(),
        )?;
        hub.tokens = TokenConfig {
            refresh_ahead: auth.refresh_ahead,
            leeway: auth.leeway,
        };
        let http = HttpLimits::resolve(
            &file.http,
            HttpOverrides {
                handshake_timeout_secs: overrides.handshake_timeout_secs,
                max_handshakes: overrides.max_handshakes,
                max_connections_per_ip: overrides.max_connections_per_ip,
                http2: overrides.http2,
            },
        )?;
        let dashboard = DashboardConfig::resolve(&file.dashboard, overrides.dashboard, env)?;
        let (frame_types, webhook) =
            webhook::resolve(env, file.frames, file.webhook, &overrides.webhook)?;
        hub.app_frame_types = frame_types;
        Ok(Settings {
            listen,
            env,
            workers,
            // One hub per two worker threads unless told otherwise (both 0: the builder's
            // default, from the cores, as the runtime's threads).
            shards: match (overrides.shards.or(file.shards).unwrap_or(0), workers) {
                (0, 0) => 0,
                (0, workers) => switchboard_tokio::default_shards(workers),
                (shards, _) => shards,
            },
            shutdown_grace: Duration::from_secs(
                overrides
                    .shutdown_grace_secs
                    .or(file.shutdown_grace_secs)
                    .unwrap_or(10),
            ),
            shutdown_drain: Duration::from_secs(
                overrides
                    .shutdown_drain_secs
                    .or(file.shutdown_drain_secs)
                    .unwrap_or(0),
            ),
            max_body_bytes: file.max_body_bytes.unwrap_or(1024 * 1024),
            max_publish_batch: file
                .max_publish_batch
                .unwrap_or(crate::api::DEFAULT_MAX_PUBLISH_BATCH),
            api_key: credentials.api_key,
            auth,
            development_credentials: credentials.development,
            hub,
            redis_url,
            redis,
            demo: overrides
                .demo
                .or(file.demo.enabled)
                .unwrap_or(env == Environment::Development),
            http,
            log: overrides.log_format.or(file.log.format).unwrap_or_default(),
            dashboard,
            webhook,
            producer: ProducerLimits::resolve(&file.producer)?,
        })
    }

    /// Resolve from the settings file named by `overrides` (if any) and the overrides.
    pub fn from_overrides(overrides: &Overrides) -> Result<Self, SettingsError> {
        let file = match &overrides.config {
            Some(path) => FileSettings::load(path)?,
            None => FileSettings::default(),
        };
        Self::resolve(file, overrides)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard::UserLimitPolicy;

    fn parse(text: &str) -> FileSettings {
        toml::from_str(text).expect("valid settings")
    }

    #[test]
    fn development_runs_with_no_settings_at_all() {
        let s = Settings::resolve(FileSettings::default(), &Overrides::default()).unwrap();
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(s.env, Environment::Development);
        assert!(s.development_credentials);
        let mut hub = Config::development();
        hub.tokens.leeway = auth::DEFAULT_LEEWAY;
        assert_eq!(
            s.hub, hub,
            "the preset, with [auth]'s leeway on live connections"
        );
        assert_eq!(s.hub.tokens.refresh_ahead, Duration::from_secs(60));
    }

    #[test]
    fn a_live_connections_token_deadlines_come_from_auth() {
        let file = parse(
            "[auth]
refresh_ahead_secs = 5
leeway_secs = 0",
        );
        let s = Settings::resolve(file, &Overrides::default()).unwrap();
        let tokens = TokenConfig {
            refresh_ahead: Duration::from_secs(5),
            leeway: Duration::ZERO,
        };
        assert_eq!(s.hub.tokens, tokens);
        let never = parse(
            "[auth]
refresh_ahead_secs = 0",
        );
        assert!(Settings::resolve(never, &Overrides::default()).is_err());
    }

    /// No Redis URL: a single node. A URL from the file, or from the environment (which wins),
    /// joins a cluster.
    #[test]
    fn the_redis_url_comes_from_the_file_or_the_environment() {
        let url = |s: &Settings| s.redis_url.as_ref().map(|u| u.expose().to_owned());
        let single = Settings::resolve(FileSettings::default(), &Overrides::default()).unwrap();
        assert_eq!(single.redis_url, None);
        let file = parse("[redis]\nurl = \"redis://file:6379/\"");
        let from_file = Settings::resolve(file, &Overrides::default()).unwrap();
        assert_eq!(url(&from_file).as_deref(), Some("redis://file:6379/"));
        let overrides = Overrides {
            redis_url: Some(Secret::new("redis://env:6379/")),
            ..Overrides::default()
        };
        let file = parse("[redis]\nurl = \"redis://file:6379/\"");
        assert!(from_file.hub.cluster && from_file.hub.shared_streams);
        let own = parse("[redis]\nurl = \"redis://file:6379/\"\nshared_streams = false");
        let own = Settings::resolve(own, &Overrides::default()).unwrap();
        assert!(
            own.hub.cluster && !own.hub.shared_streams,
            "numbered per node if asked"
        );
        let alone = parse("[redis]\nshared_streams = true");
        let alone = Settings::resolve(alone, &Overrides::default()).unwrap();
        assert!(!alone.hub.shared_streams, "nothing to share without redis");
        let from_env = Settings::resolve(file, &overrides).unwrap();
        assert_eq!(url(&from_env).as_deref(), Some("redis://env:6379/"));
    }

    #[test]
    fn the_demo_is_served_in_development_only_unless_a_setting_says_otherwise() {
        let dev = Settings::resolve(FileSettings::default(), &Overrides::default()).unwrap();
        assert!(dev.demo);
        let staging = parse(
            "env = \"staging\"\n[auth]\nsecret = \"a-staging-secret-of-32-bytes-xxx\"\napi_key = \"a-staging-api-key-of-32-chars-xx\"",
        );
        assert!(
            !Settings::resolve(staging, &Overrides::default())
                .unwrap()
                .demo
        );
        let enabled = parse(
            "env = \"staging\"\n[demo]\nenabled = true\n[auth]\nsecret = \"a-staging-secret-of-32-bytes-xxx\"\napi_key = \"a-staging-api-key-of-32-chars-xx\"",
        );
        assert!(
            Settings::resolve(enabled, &Overrides::default())
                .unwrap()
                .demo
        );
        let off = Overrides {
            demo: Some(false),
            ..Overrides::default()
        };
        assert!(
            !Settings::resolve(FileSettings::default(), &off)
                .unwrap()
                .demo
        );
    }

    #[test]
    fn production_refuses_to_start_on_development_credentials() {
        let overrides = Overrides {
            env: Some(Environment::Production),
            ..Overrides::default()
        };
        let err = Settings::resolve(FileSettings::default(), &overrides).unwrap_err();
        assert!(matches!(err, SettingsError::MissingCredential(_)), "{err}");
    }

    #[test]
    fn the_file_overrides_the_preset_and_flags_override_the_file() {
        let file = parse(
            r#"
            env = "staging"
            listen = "0.0.0.0:9000"
            [auth]
            secret = "a-staging-secret-of-32-bytes-xxx"
            api_key = "a-staging-api-key-of-32-chars-xx"
            [limits]
            max_connections = 500
            user_limit_policy = "evict_oldest"
            [heartbeat]
            interval_secs = 5
            timeout_secs = 20
            [history]
            max_age_secs = 60
            [http]
            max_connections_per_ip = 50
            http2 = false
            "#,
        );
        let overrides = Overrides {
            max_connections: Some(700),
            listen: Some("127.0.0.1:9001".parse().unwrap()),
            ..Overrides::default()
        };
        let s = Settings::resolve(file, &overrides).unwrap();
        assert_eq!(s.env, Environment::Staging);
        assert_eq!(s.listen.port(), 9001);
        assert_eq!(s.hub.limits.max_connections, 700);
        assert_eq!(s.hub.limits.user_limit_policy, UserLimitPolicy::EvictOldest);
        assert_eq!(s.hub.heartbeat.timeout, Duration::from_secs(20));
        assert_eq!(s.hub.history.max_age, Duration::from_secs(60));
        assert!(!s.development_credentials);
        assert_eq!(s.http.max_connections_per_ip, 50);
        assert!(!s.http.http2);
    }

    #[test]
    fn workers_come_from_the_file_or_the_flag_and_are_bounded() {
        let default = Settings::resolve(FileSettings::default(), &Overrides::default()).unwrap();
        assert_eq!((default.workers, default.shards), (0, 0), "one per core");
        let file = parse("workers = 2\nshards = 4");
        let flag = Overrides {
            workers: Some(1),
            ..Overrides::default()
        };
        let s = Settings::resolve(file, &flag).unwrap();
        assert_eq!((s.workers, s.shards), (1, 4));
        for (workers, shards) in [(1, 1), (2, 1), (3, 2), (8, 4)] {
            let file = parse(&format!("workers = {workers}"));
            let s = Settings::resolve(file, &Overrides::default()).unwrap();
            assert_eq!(
                s.shards, shards,
                "one hub per two of {workers} worker threads"
            );
        }
        let too_many = Overrides {
            workers: Some(MAX_WORKERS + 1),
            ..Overrides::default()
        };
        let err = Settings::resolve(FileSettings::default(), &too_many).unwrap_err();
        assert!(
            matches!(&err, SettingsError::Invalid(m) if m.contains("workers")),
            "{err}"
        );
    }

    /// Settings can be logged whole: no credential appears in their `Debug` output.
    #[test]
    fn debug_output_shows_no_credential() {
        let file = parse(
            r#"
            [auth]
            secret = "the-secret-nobody-may-read-xxxxx"
            previous_secrets = ["the-old-secret-nobody-may-read-x"]
            api_key = "the-key-nobody-may-read-xxxxxxxx"
            [redis]
            url = "redis://:the-redis-password@localhost:6379/"
            "#,
        );
        let s = Settings::resolve(file, &Overrides::default()).unwrap();
        let shown = format!("{s:?}");
        for secret in [
            "the-secret-nobody",
            "the-old-secret-nobody",
            "the-key-nobody",
            "the-redis-password",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
}
