//! `[auth]`: how client tokens are checked. The HS256 secrets (the current one and those
//! still accepted during a rotation), public keys in PEM (RS256, ES256, EdDSA) and a JWKS URL
//! (both read and parsed by the `keys` module beside this one);
//! the audience and issuer a token must name; the clock leeway, how long before a token's
//! expiry a live connection is asked for a fresh one, and the longest token lifetime;
//! the default grants of tokens without `rooms` or `publish`; the bounds of the revocation
//! store and of one-time tickets. Also `[http] allowed_origins`, the browser origins a
//! WebSocket may come from.
//!
//! [`AuthConfig`] holds them resolved, with every key parsed: a key that cannot be read
//! stops the server at start, never at a client's handshake. `docs/OPERATIONS.md` lists each
//! setting with its default.

use super::keys::{check_jwks_url, load_key, JwksConfig, JwksSettings, KeySettings, PublicKey};
use super::{Environment, SettingsError};
use crate::auth::claims::default_access;
use crate::credentials::Secret;
use crate::gateway::origin::AllowedOrigins;
use serde::Deserialize;
use std::time::Duration;
use switchboard::RoomAccess;

/// `[auth]` as written in the settings file. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// The HS256 secret of client tokens (also signs `switchboard token`).
    pub secret: Option<Secret>,
    /// HS256 secrets still accepted besides `secret`, during a rotation.
    pub previous_secrets: Option<Vec<Secret>>,
    /// Bearer key of the backend HTTP API.
    pub api_key: Option<Secret>,
    /// Public keys of asymmetric tokens (`[[auth.keys]]`).
    #[serde(default)]
    pub keys: Vec<KeySettings>,
    /// A JWKS endpoint of the token issuer (`[auth.jwks]`).
    #[serde(default)]
    pub jwks: JwksSettings,
    /// The audience a token's `aud` must name: a string or a list. None: a token with `aud`
    /// is refused.
    pub audience: Option<OneOrMany>,
    /// The issuers a token's `iss` may name: a string or a list. None: `iss` is not checked.
    pub issuer: Option<OneOrMany>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds; also how long after its
    /// token's `exp` a connection without a fresh token is closed (4005).
    pub leeway_secs: Option<u64>,
    /// How long before its token's `exp` a connection is sent a `refresh` frame, in seconds.
    pub refresh_ahead_secs: Option<u64>,
    /// The longest token lifetime accepted (`exp - iat`, or `exp - now` without `iat`).
    pub max_token_lifetime_secs: Option<u64>,
    /// The rooms a token without `rooms` may join.
    pub default_rooms: Option<Vec<String>>,
    /// The rooms a token without `publish` may publish to.
    pub default_publish: Option<Vec<String>>,
    /// Revocations (users and token ids) a node keeps in memory.
    pub max_revocations: Option<usize>,
    /// One-time tickets (`[auth.tickets]`).
    #[serde(default)]
    pub tickets: TicketSettings,
}

/// A string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One value.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl From<OneOrMany> for Vec<String> {
    fn from(value: OneOrMany) -> Self {
        match value {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

/// `[auth.tickets]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketSettings {
    /// Seconds a ticket lives when the request names no `ttl_secs`.
    pub ttl_secs: Option<u64>,
    /// The longest `ttl_secs` granted (longer requests are cut to it).
    pub max_ttl_secs: Option<u64>,
    /// Tickets a node has issued that have not expired, at most.
    pub max_outstanding: Option<usize>,
}

/// Identity settings from the command line and `SWITCHBOARD_*` variables.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct AuthOverrides {
    /// HS256 secrets still accepted besides the current one, comma-separated (a rotation).
    #[arg(
        long,
        env = "SWITCHBOARD_AUTH_PREVIOUS_SECRETS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub previous_secrets: Option<Vec<Secret>>,
    /// The JWKS URL of the token issuer.
    #[arg(long, env = "SWITCHBOARD_AUTH_JWKS_URL")]
    pub jwks_url: Option<String>,
    /// The audience tokens must name (`aud`), comma-separated.
    #[arg(long, env = "SWITCHBOARD_AUTH_AUDIENCE", value_delimiter = ',')]
    pub audience: Option<Vec<String>>,
    /// The issuers tokens may name (`iss`), comma-separated.
    #[arg(long, env = "SWITCHBOARD_AUTH_ISSUER", value_delimiter = ',')]
    pub issuer: Option<Vec<String>>,
    /// Browser origins a WebSocket may come from, comma-separated (`*`: any).
    #[arg(long, env = "SWITCHBOARD_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Option<Vec<String>>,
}

/// One-time tickets' lifetimes and bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketLimits {
    /// A ticket's lifetime when none is asked for. Default 30 s.
    pub ttl: Duration,
    /// The longest lifetime granted. Default 300 s.
    pub max_ttl: Duration,
    /// Unexpired tickets issued by a node (used or not). Default 10 000.
    pub max_outstanding: usize,
}

/// How client tokens are checked, resolved.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The current HS256 secret (signs development tokens); `None` when only public keys
    /// are configured.
    pub secret: Option<Secret>,
    /// HS256 secrets still accepted (a rotation).
    pub previous_secrets: Vec<Secret>,
    /// Public keys from the settings.
    pub keys: Vec<PublicKey>,
    /// The JWKS endpoint, if any.
    pub jwks: Option<JwksConfig>,
    /// Audiences accepted in `aud` (then required); empty: a token with `aud` is refused.
    pub audience: Vec<String>,
    /// Issuers accepted in `iss` (then required); empty: `iss` is not checked.
    pub issuer: Vec<String>,
    /// Clock skew allowed on `exp`, `nbf`, `iat`, and after `exp` on a live connection.
    /// Default 30 s.
    pub leeway: Duration,
    /// How long before its token expires a connection is asked for a fresh one (at half the
    /// remaining life for a shorter token). Default 60 s.
    pub refresh_ahead: Duration,
    /// The longest token lifetime. Default 24 h.
    pub max_token_lifetime: Duration,
    /// What a token without `rooms` may join: development any room, else none, unless set.
    pub default_rooms: RoomAccess,
    /// What a token without `publish` may publish to: as `default_rooms`.
    pub default_publish: RoomAccess,
    /// Revocations a node keeps in memory. Default 100 000.
    pub max_revocations: usize,
    /// One-time tickets.
    pub tickets: TicketLimits,
    /// Browser origins a WebSocket may come from (`[http] allowed_origins`).
    pub allowed_origins: AllowedOrigins,
}

/// The defaults of the documented settings.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// The default time before a token's `exp` at which a connection is asked for a fresh one.
pub const DEFAULT_REFRESH_AHEAD: Duration = Duration::from_secs(60);
/// The default longest token lifetime: 24 hours.
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

impl AuthSettings {
    /// True if asymmetric keys are configured (in the file or `overrides`): then staging
    /// and production may run without an HS256 secret.
    pub fn has_public_keys(&self, overrides: &AuthOverrides) -> bool {
        !self.keys.is_empty() || self.jwks.url.is_some() || overrides.jwks_url.is_some()
    }
}

impl AuthConfig {
    /// Resolve `file` and `overrides` for `env`, with the checked current `secret` and the
    /// `[http] allowed_origins` of the file.
    pub fn resolve(
        env: Environment,
        file: AuthSettings,
        overrides: &AuthOverrides,
        secret: Option<Secret>,
        allowed_origins: Option<Vec<String>>,
    ) -> Result<Self, SettingsError> {
        let invalid = |message: String| SettingsError::Invalid(message);
        let previous_secrets = overrides
            .previous_secrets
            .clone()
            .or(file.previous_secrets)
            .unwrap_or_default();
        crate::credentials::check_previous_secrets(env, &previous_secrets)?;
        let keys = file
            .keys
            .into_iter()
            .enumerate()
            .map(|(i, key)| load_key(i, key))
            .collect::<Result<Vec<_>, _>>()?;
        let jwks = match overrides.jwks_url.clone().or(file.jwks.url) {
            None => None,
            Some(url) => Some(JwksConfig {
                url: check_jwks_url(url)?,
                timeout: secs("jwks.timeout_secs", file.jwks.timeout_secs, 5)?,
                max_age: secs("jwks.max_age_secs", file.jwks.max_age_secs, 300)?,
                refetch_interval: secs(
                    "jwks.refetch_interval_secs",
                    file.jwks.refetch_interval_secs,
                    10,
                )?,
            }),
        };
        let list = |o: Option<Vec<String>>, f: Option<OneOrMany>| -> Vec<String> {
            o.or(f.map(Vec::from)).unwrap_or_default()
        };
        let audience = list(overrides.audience.clone(), file.audience);
        let issuer = list(overrides.issuer.clone(), file.issuer);
        if audience.iter().chain(&issuer).any(String::is_empty) {
            return Err(invalid(
                "auth.audience and auth.issuer may not be empty".into(),
            ));
        }
        // Development keeps its open default; staging and production grant nothing by default.
        let open = env == Environment::Development;
        let grant = |key: &str, list: Option<Vec<String>>| match list {
            Some(list) => default_access(list).map_err(|e| invalid(format!("auth.{key}: {e}"))),
            None if open => Ok(RoomAccess::Any),
            None => Ok(RoomAccess::Only(vec![])),
        };
        let tickets = TicketLimits {
            ttl: secs("tickets.ttl_secs", file.tickets.ttl_secs, 30)?,
            max_ttl: secs("tickets.max_ttl_secs", file.tickets.max_ttl_secs, 300)?,
            max_outstanding: file.tickets.max_outstanding.unwrap_or(10_000),
        };
        if tickets.ttl > tickets.max_ttl || tickets.max_outstanding == 0 {
            return Err(invalid(
                "auth.tickets: ttl_secs must not exceed max_ttl_secs, and max_outstanding must \
                 be at least 1"
                    .into(),
            ));
        }
        let max_revocations = file.max_revocations.unwrap_or(100_000);
        if max_revocations == 0 {
            return Err(invalid("auth.max_revocations must be at least 1".into()));
        }
        let origins = overrides.allowed_origins.clone().or(allowed_origins);
        let allowed_origins = match origins {
            None => AllowedOrigins::Any,
            Some(list) => AllowedOrigins::parse(&list).map_err(invalid)?,
        };
        Ok(AuthConfig {
            secret,
            previous_secrets,
            keys,
            jwks,
            audience,
            issuer,
            leeway: Duration::from_secs(file.leeway_secs.unwrap_or(DEFAULT_LEEWAY.as_secs())),
            refresh_ahead: secs(
                "refresh_ahead_secs",
                file.refresh_ahead_secs,
                DEFAULT_REFRESH_AHEAD.as_secs(),
            )?,
            max_token_lifetime: secs(
                "max_token_lifetime_secs",
                file.max_token_lifetime_secs,
                DEFAULT_MAX_TOKEN_LIFETIME.as_secs(),
            )?,
            default_rooms: grant("default_rooms", file.default_rooms)?,
            default_publish: grant("default_publish", file.default_publish)?,
            max_revocations,
            tickets,
            allowed_origins,
        })
    }

    /// What an operator should know at start about these settings in `env`: open defaults
    /// in development, no origin allowlist in production.
    pub fn warnings(&self, env: Environment) -> Vec<String> {
        let mut warnings = Vec::new();
        if env == Environment::Development {
            if self.default_rooms == RoomAccess::Any || self.default_publish == RoomAccess::Any {
                warnings.push(
                    "development: a token without `rooms` may join any room and one without \
                     `publish` may publish to any room (staging and production: none, unless \
                     [auth] default_rooms / default_publish say otherwise)"
                        .to_owned(),
                );
            }
        } else if self.allowed_origins == AllowedOrigins::Any {
            warnings.push(format!(
                "{env:?}: WebSockets are accepted from any browser origin; set [http] \
                 allowed_origins to your application's origins"
            ));
        }
        warnings
    }
}

/// `value` seconds (at least 1), or `default`.
fn secs(key: &str, value: Option<u64>, default: u64) -> Result<Duration, SettingsError> {
    match value.unwrap_or(default) {
        0 => Err(SettingsError::Invalid(format!(
            "auth.{key} must be at least 1"
        ))),
        s => Ok(Duration::from_secs(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(env: Environment, file: &str) -> Result<AuthConfig, SettingsError> {
        let file: AuthSettings = toml::from_str(file).expect("valid toml");
        let secret = Some(Secret::new("a-secret-of-32-bytes-or-more-xxxx"));
        AuthConfig::resolve(env, file, &AuthOverrides::default(), secret, None)
    }

    fn invalid(env: Environment, file: &str) -> String {
        resolve(env, file).unwrap_err().to_string()
    }

    #[test]
    fn nothing_configured_gives_the_documented_defaults() {
        let dev = resolve(Environment::Development, "").unwrap();
        assert_eq!(
            (dev.leeway, dev.max_token_lifetime),
            (DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_LIFETIME)
        );
        assert_eq!(dev.leeway.as_secs(), 30);
        assert_eq!(dev.max_token_lifetime.as_secs(), 86_400);
        let t = dev.tickets;
        assert_eq!(
            (t.ttl.as_secs(), t.max_ttl.as_secs(), t.max_outstanding),
            (30, 300, 10_000)
        );
        assert_eq!(dev.max_revocations, 100_000);
        assert!(dev.audience.is_empty() && dev.issuer.is_empty() && dev.jwks.is_none());
        assert_eq!(dev.allowed_origins, AllowedOrigins::Any);
        assert_eq!(
            (&dev.default_rooms, &dev.default_publish),
            (&RoomAccess::Any, &RoomAccess::Any)
        );
        for env in [Environment::Staging, Environment::Production] {
            let deployed = resolve(env, "").unwrap();
            let nothing = RoomAccess::Only(vec![]);
            assert_eq!(
                (&deployed.default_rooms, &deployed.default_publish),
                (&nothing, &nothing)
            );
        }
        let jwks = resolve(
            Environment::Production,
            "[jwks]\nurl = \"https://id.example/jwks\"",
        );
        let jwks = jwks.unwrap().jwks.unwrap();
        let secs = |d: Duration| d.as_secs();
        assert_eq!(
            (
                secs(jwks.timeout),
                secs(jwks.max_age),
                secs(jwks.refetch_interval)
            ),
            (5, 300, 10)
        );
    }

    #[test]
    fn a_jwks_url_is_https_or_loopback_http() {
        for good in [
            "https://id.example/jwks",
            "http://127.0.0.1:9000/jwks",
            "http://localhost/k",
            "http://[::1]:80/k",
        ] {
            let file = format!("[jwks]\nurl = \"{good}\"");
            assert!(resolve(Environment::Production, &file).is_ok(), "{good}");
        }
        for bad in [
            "http://id.example/jwks",
            "ftp://127.0.0.1/jwks",
            "not a url",
        ] {
            let file = format!("[jwks]\nurl = \"{bad}\"");
            assert!(
                invalid(Environment::Production, &file).contains("jwks"),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_key_that_cannot_be_read_stops_the_start_and_is_named() {
        let both = "[[keys]]\nkid = \"k1\"\nalg = \"RS256\"\npem = \"x\"\npem_file = \"/x\"";
        assert!(invalid(Environment::Development, both).contains("exactly one"));
        let neither = "[[keys]]\nalg = \"ES256\"";
        assert!(invalid(Environment::Development, neither).contains("auth.keys[0]"));
        let garbage = "[[keys]]\nkid = \"k1\"\nalg = \"EdDSA\"\npem = \"not a key\"";
        let err = invalid(Environment::Development, garbage);
        assert!(err.contains("k1") && err.contains("EdDSA"), "{err}");
        let missing = "[[keys]]\nalg = \"RS256\"\npem_file = \"/nonexistent/key.pem\"";
        let err = resolve(Environment::Development, missing).unwrap_err();
        assert!(matches!(err, SettingsError::Read { .. }), "{err}");
        assert!(toml::from_str::<AuthSettings>("[[keys]]\nalg = \"HS256\"\npem = \"x\"").is_err());
    }

    #[test]
    fn impossible_values_are_refused() {
        for (file, named) in [
            ("audience = \"\"", "audience"),
            ("issuer = [\"ok\", \"\"]", "issuer"),
            ("max_token_lifetime_secs = 0", "max_token_lifetime_secs"),
            ("default_rooms = [\"\"]", "default_rooms"),
            ("max_revocations = 0", "max_revocations"),
            ("[tickets]\nttl_secs = 600", "tickets"),
            ("[tickets]\nmax_outstanding = 0", "tickets"),
            (
                "[jwks]\nurl = \"https://a.example\"\ntimeout_secs = 0",
                "timeout_secs",
            ),
        ] {
            let err = invalid(Environment::Production, file);
            assert!(err.contains(named), "{file}: {err}");
        }
    }

    #[test]
    fn overrides_win_over_the_file() {
        let file: AuthSettings =
            toml::from_str("audience = \"file\"\n[jwks]\nurl = \"https://file.example/\"").unwrap();
        let overrides = AuthOverrides {
            audience: Some(vec!["env-a".into(), "env-b".into()]),
            jwks_url: Some("https://env.example/".into()),
            allowed_origins: Some(vec!["https://app.example".into()]),
            ..AuthOverrides::default()
        };
        let file_origins = Some(vec!["https://file.example".into()]);
        let config = AuthConfig::resolve(
            Environment::Production,
            file,
            &overrides,
            None,
            file_origins,
        )
        .unwrap();
        assert_eq!(config.audience, ["env-a", "env-b"]);
        assert_eq!(config.jwks.unwrap().url, "https://env.example/");
        let only = AllowedOrigins::Only(vec!["https://app.example".into()]);
        assert_eq!(config.allowed_origins, only);
    }

    #[test]
    fn start_up_warnings_name_the_open_defaults() {
        let dev = resolve(Environment::Development, "").unwrap();
        let warnings = dev.warnings(Environment::Development);
        assert!(
            warnings.iter().any(|w| w.contains("any room")),
            "{warnings:?}"
        );
        let closed = resolve(
            Environment::Development,
            "default_rooms = []\ndefault_publish = []",
        );
        assert!(closed
            .unwrap()
            .warnings(Environment::Development)
            .is_empty());

        let production = resolve(Environment::Production, "").unwrap();
        let warnings = production.warnings(Environment::Production);
        assert!(
            warnings.iter().any(|w| w.contains("allowed_origins")),
            "{warnings:?}"
        );
        let file: AuthSettings = toml::from_str("").unwrap();
        let origins = Some(vec!["https://app.example".to_owned()]);
        let listed = AuthConfig::resolve(
            Environment::Production,
            file,
            &AuthOverrides::default(),
            None,
            origins,
        )
        .unwrap();
        assert!(listed.warnings(Environment::Production).is_empty());
    }
}
