//! Credentials: the [`Secret`] newtype that never prints its value, and the rules a server's
//! auth secret and API key must meet before it starts.
//!
//! Development may run on the published development credentials, but only on a loopback
//! address: anyone who read the README could mint tokens and call the API of a server that
//! listens elsewhere. Staging and production need their own: a secret of at least
//! [`MIN_SECRET_BYTES`] bytes (or, instead of a secret, public keys that verify tokens: see
//! [`crate::settings::AuthConfig`]), a key of at least [`MIN_API_KEY_CHARS`] characters, and
//! never the development values. Secrets still accepted during a rotation meet the same
//! rules as the current one.

use crate::settings::{Environment, SettingsError, DEVELOPMENT_API_KEY, DEVELOPMENT_SECRET};
use serde::Deserialize;
use std::net::SocketAddr;

/// The shortest auth secret staging and production accept (HS256 wants at least its hash
/// size, 256 bits).
pub const MIN_SECRET_BYTES: usize = 32;
/// The shortest API key staging and production accept.
pub const MIN_API_KEY_CHARS: usize = 32;
/// The shortest auth secret development accepts.
const MIN_DEVELOPMENT_SECRET_BYTES: usize = 16;

/// A credential (a secret, a key, a URL that may hold a password). Its `Debug` output is
/// redacted, so settings and errors can be logged whole; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wrap `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret::new(s))
    }
}

/// The credentials a server runs with, checked.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// HS256 secret of client tokens; `None` in staging and production when public keys
    /// verify the tokens instead.
    pub secret: Option<Secret>,
    /// Bearer key of the backend API.
    pub api_key: Secret,
    /// True when either is the published development value.
    pub development: bool,
}

impl Credentials {
    /// Check the configured `secret` and `api_key` (absent: the development values, in
    /// development only) for `env`, listening on `listen`. With `public_keys` (asymmetric
    /// keys or a JWKS URL configured), staging and production may run without a secret.
    pub fn check(
        env: Environment,
        secret: Option<Secret>,
        api_key: Option<Secret>,
        listen: SocketAddr,
        public_keys: bool,
    ) -> Result<Self, SettingsError> {
        let deployed = env != Environment::Development;
        if deployed {
            if secret.is_none() && !public_keys {
                return Err(SettingsError::MissingCredential("the auth secret"));
            }
            if api_key.is_none() {
                return Err(SettingsError::MissingCredential("the API key"));
            }
        }
        let secret = match secret {
            None if !deployed => Some(Secret::new(DEVELOPMENT_SECRET)),
            secret => secret,
        };
        let api_key = api_key.unwrap_or_else(|| Secret::new(DEVELOPMENT_API_KEY));
        let development = secret
            .as_ref()
            .is_some_and(|s| s.expose() == DEVELOPMENT_SECRET)
            || api_key.expose() == DEVELOPMENT_API_KEY;
        let invalid = |message: String| Err(SettingsError::Invalid(message));
        if deployed {
            if development {
                return invalid(format!(
                    "{env:?} cannot run on the public development credentials: set your own \
                     auth secret and API key"
                ));
            }
            if api_key.expose().chars().count() < MIN_API_KEY_CHARS {
                return invalid(format!(
                    "the API key must be at least {MIN_API_KEY_CHARS} characters in {env:?} \
                     (e.g. `openssl rand -hex 32`)"
                ));
            }
        }
        if let Some(secret) = &secret {
            check_secret(env, secret, "the auth secret")?;
        }
        if api_key.expose().is_empty() {
            return invalid("the API key is empty".into());
        }
        if development && !listen.ip().is_loopback() {
            return invalid(format!(
                "the development credentials are public: listen on a loopback address \
                 (127.0.0.1, ::1) instead of {listen}, or set your own auth secret and API key"
            ));
        }
        Ok(Credentials {
            secret,
            api_key,
            development,
        })
    }
}

/// Check the secrets still accepted during a rotation (`auth.previous_secrets`): each as
/// strong as the current secret must be in `env`.
pub fn check_previous_secrets(env: Environment, secrets: &[Secret]) -> Result<(), SettingsError> {
    secrets
        .iter()
        .try_for_each(|secret| check_secret(env, secret, "each of auth.previous_secrets"))
}

/// `secret` (named `what` in the error) is long enough for `env`, and in staging and
/// production not the development secret.
fn check_secret(env: Environment, secret: &Secret, what: &str) -> Result<(), SettingsError> {
    let deployed = env != Environment::Development;
    let bytes = secret.expose().len();
    if deployed && secret.expose() == DEVELOPMENT_SECRET {
        return Err(SettingsError::Invalid(format!(
            "{what} cannot be the public development secret in {env:?}"
        )));
    }
    let (min, hint) = if deployed {
        (MIN_SECRET_BYTES, " (e.g. `openssl rand -hex 32`)")
    } else {
        (MIN_DEVELOPMENT_SECRET_BYTES, "")
    };
    if bytes < min {
        let env = if deployed {
            format!(" in {env:?}")
        } else {
            String::new()
        };
        return Err(SettingsError::Invalid(format!(
            "{what} must be at least {min} bytes{env}{hint}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRONG_SECRET: &str = "0123456789abcdef0123456789abcdef";
    const STRONG_KEY: &str = "fedcba9876543210fedcba9876543210";

    fn loopback() -> SocketAddr {
        "127.0.0.1:8080".parse().unwrap()
    }

    fn check(env: Environment, secret: &str, key: &str) -> Result<Credentials, SettingsError> {
        Credentials::check(
            env,
            Some(Secret::new(secret)),
            Some(Secret::new(key)),
            loopback(),
            false,
        )
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let credentials = check(Environment::Production, STRONG_SECRET, STRONG_KEY).unwrap();
        let shown = format!("{credentials:?}");
        assert!(!shown.contains(STRONG_SECRET) && !shown.contains(STRONG_KEY));
        assert!(shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn deployments_refuse_weak_and_published_credentials() {
        for env in [Environment::Staging, Environment::Production] {
            assert!(check(env, STRONG_SECRET, STRONG_KEY).is_ok());
            let refused = [
                (DEVELOPMENT_SECRET, STRONG_KEY, "development"),
                (STRONG_SECRET, DEVELOPMENT_API_KEY, "development"),
                (STRONG_SECRET, "k", "API key"),
                ("sixteen-bytes-xx", STRONG_KEY, "auth secret"),
                (&STRONG_SECRET[1..], STRONG_KEY, "auth secret"),
                (STRONG_SECRET, &STRONG_KEY[1..], "API key"),
            ];
            for (secret, key, named) in refused {
                let err = check(env, secret, key).unwrap_err().to_string();
                assert!(err.contains(named), "{env:?} {secret} {key}: {err}");
                assert!(
                    !err.contains(STRONG_SECRET) && !err.contains(STRONG_KEY),
                    "{err}"
                );
            }
        }
    }

    #[test]
    fn development_credentials_listen_on_loopback_only() {
        let dev = Environment::Development;
        let anywhere: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let defaulted = Credentials::check(dev, None, None, loopback(), false).unwrap();
        assert!(defaulted.development);
        assert!(Credentials::check(dev, None, None, "[::1]:80".parse().unwrap(), false).is_ok());
        let err = Credentials::check(dev, None, None, anywhere, false).unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
        let explicit = Some(Secret::new(DEVELOPMENT_SECRET));
        let own_key = Some(Secret::new(STRONG_KEY));
        assert!(Credentials::check(dev, explicit, own_key, anywhere, false).is_err());
        let own = Credentials::check(
            dev,
            Some(Secret::new(STRONG_SECRET)),
            Some(Secret::new("short")),
            anywhere,
            false,
        )
        .unwrap();
        assert!(
            !own.development,
            "own credentials, however short, may listen anywhere"
        );
    }

    /// With public keys configured, staging and production need no HS256 secret (and then
    /// accept no HS256 token); without them the secret stays required.
    #[test]
    fn public_keys_stand_in_for_the_secret_in_deployments() {
        let key = Some(Secret::new(STRONG_KEY));
        for env in [Environment::Staging, Environment::Production] {
            let keyed = Credentials::check(env, None, key.clone(), loopback(), true).unwrap();
            assert!(keyed.secret.is_none() && !keyed.development);
            let err = Credentials::check(env, None, key.clone(), loopback(), false).unwrap_err();
            assert!(matches!(err, SettingsError::MissingCredential(_)), "{err}");
        }
        let dev = Credentials::check(Environment::Development, None, None, loopback(), true);
        assert!(
            dev.unwrap().development,
            "development still signs with its public secret"
        );
    }

    #[test]
    fn secrets_of_a_rotation_meet_the_rules_of_the_current_one() {
        let strong = Secret::new(STRONG_SECRET);
        let production = Environment::Production;
        assert!(check_previous_secrets(production, std::slice::from_ref(&strong)).is_ok());
        for weak in [
            Secret::new("sixteen-bytes-xx"),
            Secret::new(DEVELOPMENT_SECRET),
        ] {
            let err = check_previous_secrets(production, &[strong.clone(), weak]).unwrap_err();
            assert!(err.to_string().contains("previous_secrets"), "{err}");
            assert!(!err.to_string().contains(STRONG_SECRET), "{err}");
        }
        let dev = Environment::Development;
        assert!(check_previous_secrets(dev, &[Secret::new("sixteen-bytes-xx")]).is_ok());
        assert!(check_previous_secrets(dev, &[Secret::new("short")]).is_err());
    }
}
