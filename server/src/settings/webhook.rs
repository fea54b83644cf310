//! `[frames]` and `[webhook]`: the client frame types the server forwards to the backend, and
//! how it forwards them (with the lifecycle events the backend subscribed to): the URL, the
//! signing secrets, the timeouts, the per-node queue and the retry budget.
//!
//! [`WebhookConfig`] holds them resolved; `docs/OPERATIONS.md` ("Talking to your backend")
//! lists each with its default and what happens when it is reached.

use super::{Environment, SettingsError};
use crate::credentials::Secret;
use serde::Deserialize;
use std::time::Duration;

/// `[frames]` as written in the settings file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameSettings {
    /// Client frame types forwarded to the backend (`user_message`, `cancel_run`, ...).
    pub types: Option<Vec<String>>,
}

/// `[webhook]` as written in the settings file. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Where events are POSTed.
    pub url: Option<String>,
    /// The signing secret.
    pub secret: Option<Secret>,
    /// Secrets that also sign, while the backend moves to a new one.
    pub previous_secrets: Option<Vec<Secret>>,
    /// Milliseconds one attempt may take, from connect to the end of the answer.
    pub timeout_ms: Option<u64>,
    /// Events waiting or in flight on the node.
    pub queue_size: Option<usize>,
    /// Attempts per event.
    pub max_attempts: Option<u32>,
    /// Milliseconds an event may spend from its arrival to its last attempt.
    pub max_age_ms: Option<u64>,
    /// The first retry's backoff ceiling, in milliseconds; it doubles with each attempt.
    pub backoff_ms: Option<u64>,
    /// The largest backoff ceiling, in milliseconds.
    pub max_backoff_ms: Option<u64>,
    /// The largest backend answer read, in bytes.
    pub max_answer_bytes: Option<usize>,
    /// Lifecycle events sent besides the frames.
    pub events: Option<Vec<LifecycleEvent>>,
    /// Events sent together in one POST, at most (1: no batching).
    pub batch_max: Option<usize>,
    /// Milliseconds a batch waits to fill.
    pub batch_wait_ms: Option<u64>,
}

/// A lifecycle event the backend may subscribe to (`[webhook] events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleEvent {
    /// A connection opened.
    Connect,
    /// A connection closed.
    Disconnect,
    /// A connection joined a room.
    Join,
    /// A connection left a room.
    Leave,
    /// An agent run ended.
    RunEnded,
}

impl LifecycleEvent {
    /// The event's name in the `event` field.
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleEvent::Connect => "connect",
            LifecycleEvent::Disconnect => "disconnect",
            LifecycleEvent::Join => "join",
            LifecycleEvent::Leave => "leave",
            LifecycleEvent::RunEnded => "run_ended",
        }
    }
}

/// What the command line and the environment may override in `[frames]` and `[webhook]`.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct WebhookOverrides {
    /// Client frame types forwarded to the backend, comma-separated.
    #[arg(long, env = "SWITCHBOARD_FRAME_TYPES", value_delimiter = ',')]
    pub frame_types: Option<Vec<String>>,
    /// Where frames and lifecycle events are POSTed.
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    /// The secret that signs them.
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<Secret>,
    /// Lifecycle events sent, comma-separated.
    #[arg(
        long,
        value_enum,
        env = "SWITCHBOARD_WEBHOOK_EVENTS",
        value_delimiter = ','
    )]
    pub webhook_events: Option<Vec<LifecycleEvent>>,
}

/// The webhook, resolved.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Where events are POSTed.
    pub url: reqwest::Url,
    /// The signing secrets, the current one first; none: unsigned (development only).
    pub secrets: Vec<Secret>,
    /// One attempt, from connect to the end of the answer. Default 5 s.
    pub timeout: Duration,
    /// Events waiting or in flight on the node. Default 1024.
    pub queue_size: usize,
    /// Attempts per event. Default 5.
    pub max_attempts: u32,
    /// From an event's arrival to its last attempt. Default 30 s.
    pub max_age: Duration,
    /// The first retry's backoff ceiling. Default 100 ms.
    pub backoff: Duration,
    /// The largest backoff ceiling. Default 5 s.
    pub max_backoff: Duration,
    /// The largest backend answer read, in bytes. Default 64 KiB.
    pub max_answer_bytes: usize,
    /// The lifecycle events sent. Default none.
    pub events: Vec<LifecycleEvent>,
    /// Events sent together in one POST, at most. Default 1: no batching.
    pub batch_max: usize,
    /// How long a batch waits to fill. Default 0: it takes what is ready.
    pub batch_wait: Duration,
}

/// Resolve `[frames]` and `[webhook]`: the forwarded frame types and the webhook, if any.
/// Frame types need a webhook URL, and staging and production a secret with it.
pub fn resolve(
    env: Environment,
    frames: FrameSettings,
    file: WebhookSettings,
    overrides: &WebhookOverrides,
) -> Result<(Vec<String>, Option<WebhookConfig>), SettingsError> {
    let invalid = |m: String| Err(SettingsError::Invalid(m));
    let types = overrides
        .frame_types
        .clone()
        .or(frames.types)
        .unwrap_or_default();
    for t in &types {
        if t.is_empty() || switchboard::CLIENT_FRAME_TYPES.contains(&t.as_str()) {
            return invalid(format!(
                "frames.types: {t:?} is not an application frame type"
            ));
        }
    }
    let Some(url) = overrides.webhook_url.clone().or(file.url) else {
        if !types.is_empty() {
            return invalid("frames.types needs webhook.url: nothing would answer them".into());
        }
        return Ok((types, None));
    };
    let url = match reqwest::Url::parse(&url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => url,
        _ => return invalid("webhook.url must be an http or https URL".into()),
    };
    let mut secrets: Vec<Secret> = overrides
        .webhook_secret
        .clone()
        .or(file.secret)
        .into_iter()
        .collect();
    if secrets.is_empty() && env != Environment::Development {
        return invalid(
            "webhook.secret is required with webhook.url in staging and production".into(),
        );
    }
    let previous = file.previous_secrets.unwrap_or_default();
    if secrets.is_empty() && !previous.is_empty() {
        // Signing with only the old secrets would look like a rotation that never started.
        return invalid(
            "webhook.previous_secrets needs webhook.secret, the one that signs first".into(),
        );
    }
    secrets.extend(previous);
    let ms = |key: &str, value: Option<u64>, default: u64| match value {
        Some(0) => Err(SettingsError::Invalid(format!(
            "webhook.{key} must be at least 1"
        ))),
        v => Ok(Duration::from_millis(v.unwrap_or(default))),
    };
    let at_least_one = |key: &str, value: Option<usize>, default: usize| match value {
        Some(0) => Err(SettingsError::Invalid(format!(
            "webhook.{key} must be at least 1"
        ))),
        v => Ok(v.unwrap_or(default)),
    };
    let backoff = ms("backoff_ms", file.backoff_ms, 100)?;
    let max_backoff = ms("max_backoff_ms", file.max_backoff_ms, 5_000)?;
    if backoff > max_backoff {
        return Err(SettingsError::Invalid(format!(
            "webhook.backoff_ms ({} ms) is above webhook.max_backoff_ms ({} ms): the first ceiling may not exceed the largest",
            backoff.as_millis(),
            max_backoff.as_millis()
        )));
    }
    Ok((
        types,
        Some(WebhookConfig {
            url,
            secrets,
            timeout: ms("timeout_ms", file.timeout_ms, 5_000)?,
            queue_size: at_least_one("queue_size", file.queue_size, 1024)?,
            max_attempts: at_least_one("max_attempts", file.max_attempts.map(|n| n as usize), 5)?
                as u32,
            max_age: ms("max_age_ms", file.max_age_ms, 30_000)?,
            backoff,
            max_backoff,
            max_answer_bytes: at_least_one("max_answer_bytes", file.max_answer_bytes, 64 * 1024)?,
            batch_max: at_least_one("batch_max", file.batch_max, 1)?,
            batch_wait: Duration::from_millis(file.batch_wait_ms.unwrap_or(0)),
            events: overrides
                .webhook_events
                .clone()
                .or(file.events)
                .unwrap_or_default(),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_url(
        env: Environment,
        secret: Option<&str>,
    ) -> Result<Option<WebhookConfig>, SettingsError> {
        let file = WebhookSettings {
            url: Some("http://127.0.0.1:9/hook".into()),
            secret: secret.map(Secret::new),
            ..WebhookSettings::default()
        };
        let frames = FrameSettings {
            types: Some(vec!["user_message".into()]),
        };
        resolve(env, frames, file, &WebhookOverrides::default()).map(|(_, w)| w)
    }

    #[test]
    fn staging_and_production_refuse_a_webhook_without_a_secret() {
        assert!(with_url(Environment::Staging, None).is_err());
        assert!(with_url(Environment::Production, None).is_err());
        assert!(with_url(Environment::Production, Some("s"))
            .unwrap()
            .is_some());
        let unsigned = with_url(Environment::Development, None).unwrap().unwrap();
        assert!(unsigned.secrets.is_empty());
    }

    #[test]
    fn previous_secrets_without_a_secret_are_refused() {
        let file = |secret: Option<&str>| WebhookSettings {
            url: Some("http://127.0.0.1:9/hook".into()),
            secret: secret.map(Secret::new),
            previous_secrets: Some(vec![Secret::new("old")]),
            ..WebhookSettings::default()
        };
        let none = WebhookOverrides::default();
        let env = Environment::Development;
        let refused = resolve(env, FrameSettings::default(), file(None), &none);
        assert!(
            matches!(refused, Err(SettingsError::Invalid(m)) if m.contains("previous_secrets"))
        );
        let (_, rotating) =
            resolve(env, FrameSettings::default(), file(Some("new")), &none).unwrap();
        assert_eq!(
            rotating.unwrap().secrets.len(),
            2,
            "the secret, then the previous one"
        );
    }

    #[test]
    fn a_first_backoff_above_the_largest_is_refused_not_raised() {
        let file = |backoff_ms, max_backoff_ms| WebhookSettings {
            url: Some("http://127.0.0.1:9/hook".into()),
            backoff_ms,
            max_backoff_ms,
            ..WebhookSettings::default()
        };
        let none = WebhookOverrides::default();
        let env = Environment::Development;
        let resolved =
            |backoff, max| resolve(env, FrameSettings::default(), file(backoff, max), &none);
        for (backoff, max) in [(Some(300), Some(200)), (Some(6_000), None)] {
            let refused = resolved(backoff, max);
            assert!(
                matches!(&refused, Err(SettingsError::Invalid(m)) if m.contains("webhook.backoff_ms") && m.contains("webhook.max_backoff_ms")),
                "{backoff:?} over {max:?}: {refused:?}"
            );
        }
        let (_, equal) = resolved(Some(200), Some(200)).unwrap();
        let equal = equal.unwrap();
        assert_eq!(
            (equal.backoff, equal.max_backoff),
            (Duration::from_millis(200), Duration::from_millis(200))
        );
    }

    #[test]
    fn frame_types_need_a_url_and_may_not_shadow_the_protocol() {
        let frames = |types: &[&str]| FrameSettings {
            types: Some(types.iter().map(|t| t.to_string()).collect()),
        };
        let none = WebhookOverrides::default();
        let env = Environment::Development;
        assert!(resolve(
            env,
            frames(&["user_message"]),
            WebhookSettings::default(),
            &none
        )
        .is_err());
        let file = || WebhookSettings {
            url: Some("http://127.0.0.1:9/".into()),
            ..WebhookSettings::default()
        };
        assert!(resolve(env, frames(&["join"]), file(), &none).is_err());
        let (types, hook) = resolve(env, frames(&["user_message"]), file(), &none).unwrap();
        assert_eq!(types, ["user_message"]);
        let hook = hook.unwrap();
        assert_eq!((hook.queue_size, hook.max_attempts), (1024, 5));
        assert!(
            hook.events.is_empty(),
            "no lifecycle event unless subscribed"
        );
    }
}
