//! A connection's token lifetime: when the hub asks the client for a fresh token, when it
//! closes the connection for want of one, and whether a fresh token is being verified.
//!
//! A connection opened with a token that expires ([`Open::expires_at`](crate::Open::expires_at))
//! has a [`TokenLife`]: `refresh_ahead` before the expiry (at half the remaining life for a
//! token that lives less than that) the client is asked for a fresh token, and `leeway` after
//! it the connection is closed with 4005 unless a fresh token was accepted meanwhile, which
//! starts a new lifetime. One deadline at a time: [`TokenLife::deadline`].

use crate::config::TokenConfig;
use serde_json::value::RawValue;
use std::time::Instant;

/// The lifetime of the token a connection holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenLife {
    /// The token's expiry (`exp`), on the hub's clock.
    expires_at: Instant,
    /// What the hub does next about it, and when.
    next: Step,
}

/// The next thing a token's lifetime asks of the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Ask the client for a fresh token at this instant.
    Ask(Instant),
    /// The client was asked (or was verifying one already): close at this instant.
    Close(Instant),
}

/// What a deadline of a token's lifetime asks of the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// Send the client a `refresh` frame: its token expires in this many whole seconds.
    Ask { expires_in: u64 },
    /// The client was asked already, or a fresh token is being verified: nothing to send.
    Wait,
    /// The token expired, with the leeway, and no fresh one came: close the connection.
    Close,
}

impl TokenLife {
    /// A token that expires at `expires_at`, received at `now`.
    pub fn new(now: Instant, expires_at: Instant, config: &TokenConfig) -> Self {
        let remaining = expires_at.saturating_duration_since(now);
        let ask_at = match remaining.checked_sub(config.refresh_ahead) {
            Some(_) => expires_at - config.refresh_ahead,
            None => now + remaining / 2,
        };
        Self {
            expires_at,
            next: Step::Ask(ask_at),
        }
    }

    /// When the lifetime next has something to do.
    pub fn deadline(&self) -> Instant {
        match self.next {
            Step::Ask(at) | Step::Close(at) => at,
        }
    }

    /// Whole seconds from `now` until the token expires (0 once it has).
    pub fn expires_in(&self, now: Instant) -> u64 {
        self.expires_at.saturating_duration_since(now).as_secs()
    }

    /// The deadline came (`now` is at or after it): what to do. After an ask, the next
    /// deadline is the close, `leeway` after the expiry. `verifying`: a fresh token the client
    /// sent on its own is being verified, so it is not asked again.
    pub fn fire(&mut self, now: Instant, verifying: bool, config: &TokenConfig) -> Due {
        match self.next {
            Step::Close(_) => Due::Close,
            Step::Ask(_) => {
                self.next = Step::Close(self.expires_at + config.leeway);
                match verifying {
                    true => Due::Wait,
                    false => Due::Ask {
                        expires_in: self.expires_in(now),
                    },
                }
            }
        }
    }
}

/// A fresh token the client sent, while the application verifies it: at most one per
/// connection. Holds the `ref` of the client's `refresh` frame, echoed in the answer.
#[derive(Debug, Default)]
pub(crate) enum Refreshing {
    /// No fresh token is being verified.
    #[default]
    Idle,
    /// One is, asked with this `ref` (if any).
    Verifying(Option<Box<RawValue>>),
}

impl Refreshing {
    pub fn is_verifying(&self) -> bool {
        matches!(self, Refreshing::Verifying(_))
    }

    /// The verification ended: the `ref` to answer with.
    pub fn finish(&mut self) -> Option<Box<RawValue>> {
        match std::mem::take(self) {
            Refreshing::Idle => None,
            Refreshing::Verifying(reference) => reference,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config() -> TokenConfig {
        TokenConfig {
            refresh_ahead: Duration::from_secs(60),
            leeway: Duration::from_secs(5),
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_long_token_is_asked_for_refresh_ahead_of_its_expiry_then_closed_after_the_leeway() {
        let t0 = Instant::now();
        let mut life = TokenLife::new(t0, t0 + secs(600), &config());
        assert_eq!(life.deadline(), t0 + secs(540));
        let due = life.fire(t0 + secs(540), false, &config());
        assert_eq!(due, Due::Ask { expires_in: 60 });
        assert_eq!(life.deadline(), t0 + secs(605), "the expiry and the leeway");
        assert_eq!(life.fire(t0 + secs(605), false, &config()), Due::Close);
    }

    #[test]
    fn a_short_token_is_asked_for_at_half_its_remaining_life() {
        let t0 = Instant::now();
        let life = TokenLife::new(t0, t0 + secs(20), &config());
        assert_eq!(life.deadline(), t0 + secs(10));
        let expired = TokenLife::new(t0, t0 - secs(3), &config());
        assert_eq!(expired.deadline(), t0, "already expired: asked at once");
        assert_eq!(expired.expires_in(t0), 0);
    }

    #[test]
    fn a_client_verifying_a_fresh_token_is_not_asked_again() {
        let t0 = Instant::now();
        let mut life = TokenLife::new(t0, t0 + secs(600), &config());
        assert_eq!(life.fire(t0 + secs(540), true, &config()), Due::Wait);
        assert_eq!(life.deadline(), t0 + secs(605));
    }

    #[test]
    fn a_verification_ends_once_with_its_ref() {
        let mut r = Refreshing::Verifying(Some(RawValue::from_string("7".into()).unwrap()));
        assert!(r.is_verifying());
        assert_eq!(r.finish().map(|r| r.get().to_owned()), Some("7".to_owned()));
        assert!(!r.is_verifying());
        assert!(r.finish().is_none());
    }
}
