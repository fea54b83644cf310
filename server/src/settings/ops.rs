//! `[log]` and `[dashboard]`: the format of the server's logs, and the operations dashboard
//! (`/dashboard`, see [`crate::dashboard`]).
//!
//! [`DashboardConfig`] holds the dashboard's settings resolved; `docs/OPERATIONS.md` lists
//! each with its default.

use super::{Environment, SettingsError};
use serde::Deserialize;
use std::time::Duration;

/// How log lines are written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line, for a log pipeline.
    Json,
}

/// `[log]` as written in the settings file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `text` (default) or `json`.
    pub format: Option<LogFormat>,
}

/// `[dashboard]` as written in the settings file. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardSettings {
    /// Serve `/dashboard`. Default: in development only.
    pub enabled: Option<bool>,
    /// Seconds a dashboard session lasts after the API key was given.
    pub session_ttl_secs: Option<u64>,
    /// Dashboard sessions held at once; the oldest is ended to make room.
    pub max_sessions: Option<usize>,
    /// Mark the session cookie `Secure` (sent over HTTPS only). Default: outside development.
    pub secure_cookie: Option<bool>,
}

/// The dashboard's settings, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardConfig {
    /// Whether `/dashboard` is served. Default: in development only.
    pub enabled: bool,
    /// How long a session lasts. Default 1 hour.
    pub session_ttl: Duration,
    /// Sessions held at once. Default 16.
    pub max_sessions: usize,
    /// Whether the session cookie is `Secure`. Default: outside development.
    pub secure_cookie: bool,
}

impl DashboardConfig {
    /// The defaults of `env`, then `file`, then `enabled` from the command line or the
    /// environment. The session lifetime must be at least a second and at most a day, and at
    /// least one session must be allowed.
    pub fn resolve(
        file: &DashboardSettings,
        enabled: Option<bool>,
        env: Environment,
    ) -> Result<Self, SettingsError> {
        let development = env == Environment::Development;
        let ttl = file.session_ttl_secs.unwrap_or(3600);
        if !(1..=86_400).contains(&ttl) {
            return Err(SettingsError::Invalid(
                "dashboard.session_ttl_secs must be between 1 and 86400".into(),
            ));
        }
        let max_sessions = file.max_sessions.unwrap_or(16);
        if max_sessions == 0 {
            return Err(SettingsError::Invalid(
                "dashboard.max_sessions must be at least 1".into(),
            ));
        }
        Ok(DashboardConfig {
            enabled: enabled.or(file.enabled).unwrap_or(development),
            session_ttl: Duration::from_secs(ttl),
            max_sessions,
            secure_cookie: file.secure_cookie.unwrap_or(!development),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dashboard_is_on_in_development_only_with_a_secure_cookie_elsewhere() {
        let none = DashboardSettings::default();
        let dev = DashboardConfig::resolve(&none, None, Environment::Development).unwrap();
        assert!(dev.enabled && !dev.secure_cookie);
        assert_eq!(dev.session_ttl, Duration::from_secs(3600));
        assert_eq!(dev.max_sessions, 16);
        let prod = DashboardConfig::resolve(&none, None, Environment::Production).unwrap();
        assert!(!prod.enabled && prod.secure_cookie);
        let on = DashboardConfig::resolve(&none, Some(true), Environment::Production).unwrap();
        assert!(on.enabled);
        let file: DashboardSettings =
            toml::from_str("enabled = true\nsecure_cookie = false").unwrap();
        let off = DashboardConfig::resolve(&file, Some(false), Environment::Staging).unwrap();
        assert!(
            !off.enabled && !off.secure_cookie,
            "the flag wins over the file"
        );
    }

    #[test]
    fn impossible_dashboard_settings_are_errors() {
        for text in [
            "session_ttl_secs = 0",
            "session_ttl_secs = 86401",
            "max_sessions = 0",
        ] {
            let file: DashboardSettings = toml::from_str(text).unwrap();
            let err = DashboardConfig::resolve(&file, None, Environment::Development);
            assert!(matches!(err, Err(SettingsError::Invalid(_))), "{text}");
        }
        assert!(toml::from_str::<LogSettings>("format = \"xml\"").is_err());
        let json: LogSettings = toml::from_str("format = \"json\"").unwrap();
        assert_eq!(json.format, Some(LogFormat::Json));
    }
}
