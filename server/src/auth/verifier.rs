//! [`Verifier`]: a token's signature, its times and its claims, into an [`Identity`].
//!
//! In order: the header (no `crit`; an algorithm the server has a key for), the signature
//! (each candidate key of [`KeyRing`] in turn), then the claims: `exp` past by more than the
//! leeway is `expired`; `nbf`, or `iat`, later than now plus the leeway is `not_yet_valid`;
//! a lifetime (`exp - iat`, or `exp - now` without `iat`) longer than
//! `auth.max_token_lifetime_secs` is `lifetime_too_long` (so `exp` at the largest integer is
//! refused); `aud` must name a configured audience (and a token with `aud` is refused when
//! none is configured, as RFC 7519 §4.1.3 asks); `iss` must name a configured issuer when
//! some are (then it is required); `sub` must be a valid user id; `rooms` and `publish` must
//! be bounded pattern lists. No claim is looked at before the signature verified.

use super::claims::{valid_user, Claims, Identity, InvalidPatterns, JoinGrant, PublishGrant};
use super::jwks::Jwks;
use super::keys::KeyRing;
use super::tickets::TicketGrant;
use super::{claims::MAX_TOKEN_ID_BYTES, unix_now, TokenError};
use crate::settings::AuthConfig;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use std::sync::Arc;
use switchboard::RoomAccess;

/// Checks client tokens against the server's keys and claim rules.
#[derive(Debug)]
pub struct Verifier {
    keys: KeyRing,
    /// One per algorithm with a key, all with the same claim rules.
    validations: Vec<Validation>,
    leeway: u64,
    max_lifetime: u64,
    default_rooms: RoomAccess,
    default_publish: RoomAccess,
}

impl Verifier {
    /// A verifier for `config`, with its JWKS cache if any.
    pub fn new(config: &AuthConfig, jwks: Option<Arc<Jwks>>) -> Self {
        let validation = |alg: Algorithm| {
            let mut v = Validation::new(alg);
            v.leeway = config.leeway.as_secs();
            v.validate_nbf = true;
            v.validate_aud = true;
            let mut required = vec!["exp", "sub"];
            if !config.audience.is_empty() {
                v.set_audience(&config.audience);
                required.push("aud");
            }
            if !config.issuer.is_empty() {
                v.set_issuer(&config.issuer);
                required.push("iss");
            }
            v.set_required_spec_claims(&required);
            v
        };
        let algorithms = [
            Algorithm::HS256,
            Algorithm::RS256,
            Algorithm::ES256,
            Algorithm::EdDSA,
        ];
        Verifier {
            keys: KeyRing::new(config, jwks),
            validations: algorithms.into_iter().map(validation).collect(),
            leeway: config.leeway.as_secs(),
            max_lifetime: config.max_token_lifetime.as_secs(),
            default_rooms: config.default_rooms.clone(),
            default_publish: config.default_publish.clone(),
        }
    }

    /// The identity `token` proves.
    pub async fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| refusal(&e))?;
        if header.crit.is_some() {
            return Err(TokenError::Unsupported);
        }
        let validation = self
            .validations
            .iter()
            .find(|v| v.algorithms == [header.alg])
            .ok_or(TokenError::Unsupported)?;
        for key in self.keys.candidates(&header).await? {
            match jsonwebtoken::decode::<Claims>(token, &key, validation) {
                Ok(data) => return self.identity(data.claims, unix_now()),
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => continue,
                Err(e) => return Err(refusal(&e)),
            }
        }
        Err(TokenError::BadSignature)
    }

    /// What verified `claims` grant at `now` (seconds since the Unix epoch), once `exp`,
    /// `nbf`, `aud` and `iss` passed.
    fn identity(&self, claims: Claims, now: u64) -> Result<Identity, TokenError> {
        if !valid_user(&claims.sub) {
            return Err(TokenError::InvalidSubject);
        }
        if claims
            .iat
            .is_some_and(|iat| iat > now.saturating_add(self.leeway))
        {
            return Err(TokenError::NotYetValid);
        }
        // Measured from `iat`, the lifetime does not depend on the clocks; from now, it may
        // differ by the clocks' skew.
        let (start, allowed) = match claims.iat {
            Some(iat) => (iat, self.max_lifetime),
            None => (now, self.max_lifetime.saturating_add(self.leeway)),
        };
        if claims.exp.saturating_sub(start) > allowed {
            return Err(TokenError::LifetimeTooLong);
        }
        if claims
            .jti
            .as_ref()
            .is_some_and(|jti| jti.is_empty() || jti.len() > MAX_TOKEN_ID_BYTES)
        {
            return Err(TokenError::InvalidClaims);
        }
        let (join, publish) = self
            .grants(claims.rooms, claims.publish)
            .map_err(|_| TokenError::InvalidClaims)?;
        Ok(Identity {
            user: claims.sub.into(),
            expires_at: Some(claims.exp),
            issued_at: claims.iat,
            token_id: claims.jti,
            join,
            publish,
        })
    }

    /// The grants of `rooms` and `publish` lists, or the server's defaults for those absent.
    pub fn grants(
        &self,
        rooms: Option<Vec<String>>,
        publish: Option<Vec<String>>,
    ) -> Result<(JoinGrant, PublishGrant), InvalidPatterns> {
        Ok((
            JoinGrant::from_claim(rooms, &self.default_rooms)?,
            PublishGrant::from_claim(publish, &self.default_publish)?,
        ))
    }

    /// The identity a redeemed ticket grants: no expiry of its own, issued when the ticket
    /// was.
    pub fn ticket_identity(&self, ticket: TicketGrant) -> Result<Identity, InvalidPatterns> {
        let (join, publish) = self.grants(ticket.rooms, ticket.publish)?;
        Ok(Identity {
            user: ticket.user.into(),
            expires_at: None,
            issued_at: Some(ticket.issued_at),
            token_id: None,
            join,
            publish,
        })
    }
}

/// The stable refusal of a jsonwebtoken error.
fn refusal(error: &jsonwebtoken::errors::Error) -> TokenError {
    match error.kind() {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::MissingAlgorithm => TokenError::Unsupported,
        ErrorKind::InvalidAudience | ErrorKind::InvalidIssuer | ErrorKind::InvalidSubject => {
            TokenError::InvalidClaims
        }
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" || claim == "iss" => {
            TokenError::InvalidClaims
        }
        _ => TokenError::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::Secret;
    use crate::settings::{AuthOverrides, AuthSettings, Environment};
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::{json, Value};

    const SECRET: &str = "a-test-secret-of-some-length";

    fn verifier(env: Environment, file: &str) -> Verifier {
        let file: AuthSettings = toml::from_str(file).unwrap();
        let secret = Some(Secret::new(SECRET));
        let config =
            AuthConfig::resolve(env, file, &AuthOverrides::default(), secret, None).unwrap();
        Verifier::new(&config, None)
    }

    fn sign_with(header: &Header, claims: &Value, secret: &str) -> String {
        jsonwebtoken::encode(header, claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    }

    fn sign(claims: Value) -> String {
        sign_with(&Header::new(Algorithm::HS256), &claims, SECRET)
    }

    async fn verify(v: &Verifier, claims: Value) -> Result<Identity, TokenError> {
        v.verify(&sign(claims)).await
    }

    #[tokio::test]
    async fn a_token_verifies_into_its_identity_and_grants() {
        let v = verifier(Environment::Production, "default_rooms = [\"lobby\"]");
        let now = unix_now();
        let claims = json!({"sub": "alice", "exp": now + 60, "jti": "t-1",
            "rooms": ["team-*"], "publish": ["team-red"]});
        let identity = verify(&v, claims).await.unwrap();
        assert_eq!(identity.user.as_str(), "alice");
        assert_eq!(
            (identity.expires_at, identity.issued_at),
            (Some(now + 60), None)
        );
        assert_eq!(identity.token_id.as_deref(), Some("t-1"));
        assert!(identity.join.allows(&"team-blue".into()));
        assert!(!identity.join.allows(&"lobby".into()));
        assert!(identity.publish.allows(&"team-red".into()));
        assert!(!identity.publish.allows(&"team-blue".into()));

        let bare = verify(&v, json!({"sub": "bob", "exp": now + 60, "iat": now})).await;
        let bare = bare.unwrap();
        assert!(bare.join.allows(&"lobby".into()), "the configured default");
        assert!(
            !bare.publish.allows(&"lobby".into()),
            "production publishes nowhere by default"
        );
        assert_eq!(bare.issued_at, Some(now));
    }

    #[tokio::test]
    async fn development_grants_any_room_to_a_token_without_claims() {
        let v = verifier(Environment::Development, "");
        let now = unix_now();
        let identity = verify(&v, json!({"sub": "a", "exp": now + 60}))
            .await
            .unwrap();
        assert!(identity.join.allows(&"x".into()) && identity.publish.allows(&"x".into()));
    }

    #[tokio::test]
    async fn lifetimes_past_the_maximum_are_refused() {
        let v = verifier(Environment::Production, "max_token_lifetime_secs = 3600");
        let now = unix_now();
        let cases = [
            (json!({"sub": "a", "iat": now, "exp": now + 3600}), Ok(())),
            (
                json!({"sub": "a", "iat": now, "exp": now + 3601}),
                Err(TokenError::LifetimeTooLong),
            ),
            (
                json!({"sub": "a", "iat": now, "exp": u64::MAX}),
                Err(TokenError::LifetimeTooLong),
            ),
            (
                json!({"sub": "a", "exp": u64::MAX}),
                Err(TokenError::LifetimeTooLong),
            ),
            // Without `iat`, measured from now, with the leeway for the issuer's clock.
            (json!({"sub": "a", "exp": now + 3600 + 20}), Ok(())),
            (
                json!({"sub": "a", "exp": now + 3600 + 60}),
                Err(TokenError::LifetimeTooLong),
            ),
            // An old token whose lifetime was too long is refused even near its end.
            (
                json!({"sub": "a", "iat": now - 7000, "exp": now + 10}),
                Err(TokenError::LifetimeTooLong),
            ),
        ];
        for (claims, expected) in cases {
            let got = verify(&v, claims.clone()).await.map(drop);
            assert_eq!(got, expected, "{claims}");
        }
    }

    #[tokio::test]
    async fn times_within_the_leeway_pass_and_beyond_it_do_not() {
        let v = verifier(Environment::Production, "leeway_secs = 30");
        let now = unix_now();
        let cases = [
            (json!({"sub": "a", "exp": now - 10}), Ok(())),
            (
                json!({"sub": "a", "exp": now - 60}),
                Err(TokenError::Expired),
            ),
            (
                json!({"sub": "a", "exp": now + 60, "nbf": now + 10}),
                Ok(()),
            ),
            (
                json!({"sub": "a", "exp": now + 600, "nbf": now + 120}),
                Err(TokenError::NotYetValid),
            ),
            (
                json!({"sub": "a", "exp": now + 600, "iat": now + 10}),
                Ok(()),
            ),
            (
                json!({"sub": "a", "exp": now + 600, "iat": now + 120}),
                Err(TokenError::NotYetValid),
            ),
        ];
        for (claims, expected) in cases {
            let got = verify(&v, claims.clone()).await.map(drop);
            assert_eq!(got, expected, "{claims}");
        }
    }

    #[tokio::test]
    async fn audience_and_issuer_are_checked_when_configured() {
        let now = unix_now();
        let claims = |extra: Value| {
            let mut c = json!({"sub": "a", "exp": now + 60});
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            c
        };
        let open = verifier(Environment::Production, "");
        assert_eq!(
            verify(&open, claims(json!({"aud": "switchboard"})))
                .await
                .map(drop),
            Err(TokenError::InvalidClaims),
            "no audience configured: a token for some audience is not for this server"
        );
        assert!(verify(&open, claims(json!({"iss": "anyone"})))
            .await
            .is_ok());

        let strict = verifier(
            Environment::Production,
            "audience = \"switchboard\"\nissuer = [\"https://id.example\", \"https://id2.example\"]",
        );
        let good = json!({"aud": ["other", "switchboard"], "iss": "https://id2.example"});
        assert!(verify(&strict, claims(good)).await.is_ok());
        for bad in [
            json!({"aud": "other", "iss": "https://id.example"}),
            json!({"aud": "switchboard", "iss": "https://evil.example"}),
            json!({"iss": "https://id.example"}),
            json!({"aud": "switchboard"}),
        ] {
            let got = verify(&strict, claims(bad.clone())).await.map(drop);
            assert_eq!(got, Err(TokenError::InvalidClaims), "{bad}");
        }
    }

    #[tokio::test]
    async fn each_refusal_has_its_stable_reason() {
        let v = verifier(Environment::Production, "");
        let now = unix_now();
        let hs256 = Header::new(Algorithm::HS256);
        let claims = |sub: &str| json!({"sub": sub, "exp": now + 60});
        let mut critical = hs256.clone();
        critical.crit = Some(vec!["exp".into()]);
        let cases = [
            (
                sign_with(&hs256, &claims("a"), "another-secret"),
                TokenError::BadSignature,
            ),
            (
                sign_with(&critical, &claims("a"), SECRET),
                TokenError::Unsupported,
            ),
            (
                sign_with(&Header::new(Algorithm::HS512), &claims("a"), SECRET),
                TokenError::Unsupported,
            ),
            (sign(claims("")), TokenError::InvalidSubject),
            (sign(claims("al\nice")), TokenError::InvalidSubject),
            (sign(json!({"exp": now + 60})), TokenError::Malformed),
            (sign(json!({"sub": "a"})), TokenError::Malformed),
            (
                sign(json!({"sub": "a", "exp": "tomorrow"})),
                TokenError::Malformed,
            ),
            (
                sign(json!({"sub": "a", "exp": now + 60, "rooms": "lobby"})),
                TokenError::Malformed,
            ),
            (
                sign(json!({"sub": "a", "exp": now + 60, "rooms": vec!["r"; 65]})),
                TokenError::InvalidClaims,
            ),
            (
                sign(json!({"sub": "a", "exp": now + 60, "jti": "j".repeat(257)})),
                TokenError::InvalidClaims,
            ),
            (
                sign(json!({"sub": "a", "exp": now + 60, "jti": ""})),
                TokenError::InvalidClaims,
            ),
            ("not.a.token".to_owned(), TokenError::Malformed),
            ("garbage".to_owned(), TokenError::Malformed),
        ];
        for (token, expected) in cases {
            assert_eq!(v.verify(&token).await.map(drop), Err(expected), "{token}");
        }
    }

    #[tokio::test]
    async fn during_a_rotation_old_and_new_secrets_verify_and_only_they() {
        let old = "the-secret-being-retired-xxxxxxxxxxx";
        let file = format!("previous_secrets = [\"{old}\"]");
        let v = verifier(Environment::Development, &file);
        let claims = json!({"sub": "a", "exp": unix_now() + 60});
        let hs256 = Header::new(Algorithm::HS256);
        assert!(v.verify(&sign_with(&hs256, &claims, SECRET)).await.is_ok());
        assert!(v.verify(&sign_with(&hs256, &claims, old)).await.is_ok());
        assert_eq!(
            v.verify(&sign_with(&hs256, &claims, "a-third-secret-nobody-set"))
                .await
                .map(drop),
            Err(TokenError::BadSignature)
        );
    }
}
