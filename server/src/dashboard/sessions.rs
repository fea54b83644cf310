//! Dashboard sessions: what an operator gets for the API key, so that the page never holds the
//! key after signing in and never puts it in a URL.
//!
//! A session is a random 256-bit id, sent back only in an `HttpOnly`, `SameSite=Strict` cookie
//! scoped to `/dashboard` (scripts cannot read it; other sites' requests do not carry it), and
//! a second random value, the CSRF token, that the page keeps in memory and sends in the
//! `x-csrf-token` header of every action that changes something (disconnecting a user, signing
//! out). A session ends after `dashboard.session_ttl_secs`; at most `dashboard.max_sessions`
//! are held, and a new one ends the oldest when they are all taken.

use crate::auth::same_secret;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Random bytes in a session id and in a CSRF token.
const TOKEN_BYTES: usize = 32;

/// A session as the handlers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The value the page must send in `x-csrf-token`.
    pub csrf: String,
    /// When it ends.
    pub expires: Instant,
}

/// The sessions of one node.
#[derive(Debug)]
pub struct Sessions {
    ttl: Duration,
    max: usize,
    held: Mutex<HashMap<String, (Session, Instant)>>,
}

impl Sessions {
    /// No session yet; each lasts `ttl`, at most `max` at once.
    pub fn new(ttl: Duration, max: usize) -> Self {
        Sessions {
            ttl,
            max: max.max(1),
            held: Mutex::new(HashMap::new()),
        }
    }

    /// How long a session lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Open a session at `now`: its id (for the cookie) and the session. Ends expired
    /// sessions, then the oldest if all are taken. `None` if the system has no randomness to
    /// give.
    pub fn open(&self, now: Instant) -> Option<(String, Session)> {
        let id = random_token()?;
        let session = Session {
            csrf: random_token()?,
            expires: now + self.ttl,
        };
        let mut held = self.held.lock().expect("not poisoned");
        held.retain(|_, (s, _)| s.expires > now);
        if held.len() >= self.max {
            let oldest = held
                .iter()
                .min_by_key(|(_, (_, opened))| *opened)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                held.remove(&oldest);
            }
        }
        held.insert(id.clone(), (session.clone(), now));
        Some((id, session))
    }

    /// The live session with this id at `now`, if any.
    pub fn get(&self, id: &str, now: Instant) -> Option<Session> {
        let mut held = self.held.lock().expect("not poisoned");
        match held.get(id) {
            Some((session, _)) if session.expires > now => Some(session.clone()),
            Some(_) => {
                held.remove(id);
                None
            }
            None => None,
        }
    }

    /// The live session with this id whose CSRF token is `csrf`.
    pub fn authorize(&self, id: &str, csrf: &str, now: Instant) -> Result<Session, Refused> {
        let session = self.get(id, now).ok_or(Refused::NoSession)?;
        if same_secret(csrf, &session.csrf) {
            Ok(session)
        } else {
            Err(Refused::Csrf)
        }
    }

    /// End the session with this id.
    pub fn close(&self, id: &str) {
        self.held.lock().expect("not poisoned").remove(id);
    }

    /// Sessions held now (expired ones included until they are looked at).
    pub fn len(&self) -> usize {
        self.held.lock().expect("not poisoned").len()
    }

    /// True when no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why an action was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No session cookie, or its session ended.
    NoSession,
    /// The CSRF token is missing or is not the session's.
    Csrf,
}

/// 256 random bits, hex-encoded.
fn random_token() -> Option<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_lives_for_its_ttl_and_its_actions_need_its_own_csrf_token() {
        let sessions = Sessions::new(Duration::from_secs(60), 4);
        let start = Instant::now();
        let (id, session) = sessions.open(start).unwrap();
        assert_eq!(id.len(), 64);
        assert_ne!(id, session.csrf);
        assert_eq!(sessions.get(&id, start), Some(session.clone()));
        assert!(sessions.authorize(&id, &session.csrf, start).is_ok());
        assert_eq!(sessions.authorize(&id, "forged", start), Err(Refused::Csrf));
        assert_eq!(
            sessions.authorize("unknown", &session.csrf, start),
            Err(Refused::NoSession)
        );
        let later = start + Duration::from_secs(61);
        assert_eq!(sessions.get(&id, later), None);
        assert!(sessions.is_empty(), "an expired session is forgotten");
    }

    #[test]
    fn past_the_limit_the_oldest_session_ends() {
        let sessions = Sessions::new(Duration::from_secs(60), 2);
        let t = Instant::now();
        let (first, _) = sessions.open(t).unwrap();
        let (second, _) = sessions.open(t + Duration::from_secs(1)).unwrap();
        let (third, _) = sessions.open(t + Duration::from_secs(2)).unwrap();
        let now = t + Duration::from_secs(3);
        assert_eq!(sessions.len(), 2);
        assert!(sessions.get(&first, now).is_none());
        assert!(sessions.get(&second, now).is_some() && sessions.get(&third, now).is_some());
        sessions.close(&second);
        assert!(sessions.get(&second, now).is_none());
    }
}
