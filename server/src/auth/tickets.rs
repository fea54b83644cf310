//! [`Tickets`]: one-time tickets, so that a browser need not put a long-lived token in a URL.
//!
//! The application's backend asks `POST /api/tickets` for a ticket naming a user (and
//! optionally the rooms it may join and publish to), hands it to its page, and the page
//! connects with `?ticket=<ticket>`. A ticket is 32 random bytes (64 hex digits), opens one
//! connection, and expires after its lifetime (default 30 s, at most
//! `auth.tickets.max_ttl_secs`) whether used or not.
//!
//! With Redis, tickets live there (`<prefix>:ticket:<ticket>`, set only if absent, expiring
//! with the ticket, taken and deleted in one step): single use across the cluster, usable on
//! any node. Without, the node that issued a ticket holds it, and only that node accepts it.
//! Either way a node issues at most `auth.tickets.max_outstanding` tickets that have not
//! expired (used or not): past that, `POST /api/tickets` answers 429, so a flood of requests
//! cannot grow the node's memory (or Redis') beyond that bound.

use super::TokenError;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use switchboard_redis::Bridge;
use switchboard_tokio::Tokio;

use crate::settings::TicketLimits;

/// The random bytes of a ticket.
const TICKET_BYTES: usize = 32;

/// What a ticket grants, as kept until it is used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketGrant {
    /// The user the connection opens for.
    pub user: String,
    /// Rooms it may join (absent: the server's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rooms: Option<Vec<String>>,
    /// Rooms it may publish to (absent: the server's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<Vec<String>>,
    /// When the ticket was issued, seconds since the Unix epoch (a user's revocation
    /// refuses the tickets issued until it).
    pub issued_at: u64,
}

/// Why no ticket was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// The node has `max_outstanding` unexpired tickets.
    #[error(
        "this node has issued as many unexpired tickets as auth.tickets.max_outstanding allows"
    )]
    TooMany,
    /// Redis could not store it.
    #[error("the ticket could not be stored in Redis; retry")]
    Cluster,
}

/// The tickets a single node holds, and the deadlines of those it issued.
#[derive(Debug, Default)]
struct Local {
    /// Every ticket issued and not yet expired, by deadline: the bound counts them.
    issued: BinaryHeap<Reverse<(Instant, String)>>,
    /// Without Redis: the tickets not yet used.
    held: HashMap<String, (TicketGrant, Instant)>,
}

impl Local {
    /// Forget what expired by `now`.
    fn expire(&mut self, now: Instant) {
        while let Some(Reverse((deadline, _))) = self.issued.peek() {
            if *deadline > now {
                break;
            }
            if let Some(Reverse((_, ticket))) = self.issued.pop() {
                self.held.remove(&ticket);
            }
        }
    }
}

/// Issues and redeems one-time tickets.
#[derive(Debug)]
pub struct Tickets {
    limits: TicketLimits,
    bridge: Option<Bridge<Tokio>>,
    local: Mutex<Local>,
}

impl Tickets {
    /// Tickets within `limits`; kept in Redis with a bridge.
    pub fn new(limits: TicketLimits, bridge: Option<Bridge<Tokio>>) -> Self {
        Tickets {
            limits,
            bridge,
            local: Mutex::new(Local::default()),
        }
    }

    /// The lifetime of a ticket for which `asked` seconds were asked: the default if none,
    /// cut to the maximum. `None` for 0.
    pub fn lifetime(&self, asked: Option<u64>) -> Option<Duration> {
        match asked {
            None => Some(self.limits.ttl),
            Some(0) => None,
            Some(secs) => Some(Duration::from_secs(secs).min(self.limits.max_ttl)),
        }
    }

    /// Issue a ticket for `grant`, valid for `ttl`.
    pub async fn issue(&self, grant: TicketGrant, ttl: Duration) -> Result<String, TicketError> {
        let ticket = new_ticket();
        {
            let now = Instant::now();
            let mut local = self.local.lock().expect("not poisoned");
            local.expire(now);
            if local.issued.len() >= self.limits.max_outstanding {
                return Err(TicketError::TooMany);
            }
            local.issued.push(Reverse((now + ttl, ticket.clone())));
            if self.bridge.is_none() {
                local
                    .held
                    .insert(ticket.clone(), (grant.clone(), now + ttl));
            }
        }
        if let Some(bridge) = &self.bridge {
            let value = serde_json::to_string(&grant).expect("plain data serializes");
            match bridge.put_ticket(&ticket, &value, ttl).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!("a new ticket collided with an existing one");
                    return Err(TicketError::Cluster);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a ticket could not be stored in Redis");
                    return Err(TicketError::Cluster);
                }
            }
        }
        Ok(ticket)
    }

    /// Use `ticket`: what it grants, once. Unknown, used or expired: `invalid_ticket` (also
    /// when Redis cannot be asked).
    pub async fn redeem(&self, ticket: &str) -> Result<TicketGrant, TokenError> {
        let well_formed = ticket.len() == TICKET_BYTES * 2
            && ticket
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !well_formed {
            return Err(TokenError::InvalidTicket);
        }
        let Some(bridge) = &self.bridge else {
            let mut local = self.local.lock().expect("not poisoned");
            return match local.held.remove(ticket) {
                Some((grant, deadline)) if deadline > Instant::now() => Ok(grant),
                _ => Err(TokenError::InvalidTicket),
            };
        };
        match bridge.take_ticket(ticket).await {
            Ok(Some(value)) => serde_json::from_str(&value).map_err(|_| TokenError::InvalidTicket),
            Ok(None) => Err(TokenError::InvalidTicket),
            Err(e) => {
                tracing::warn!(error = %e, "a ticket could not be checked: redis unreachable");
                Err(TokenError::InvalidTicket)
            }
        }
    }
}

/// A new ticket: [`TICKET_BYTES`] bytes from the operating system's generator, in hex.
fn new_ticket() -> String {
    let mut bytes = [0u8; TICKET_BYTES];
    getrandom::fill(&mut bytes).expect("the operating system's random generator");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tickets(max_outstanding: usize) -> Tickets {
        Tickets::new(
            TicketLimits {
                ttl: Duration::from_secs(30),
                max_ttl: Duration::from_secs(300),
                max_outstanding,
            },
            None,
        )
    }

    fn grant(user: &str) -> TicketGrant {
        TicketGrant {
            user: user.into(),
            rooms: Some(vec!["lobby".into()]),
            publish: None,
            issued_at: 1,
        }
    }

    #[tokio::test]
    async fn a_ticket_opens_once_and_tickets_are_unique() {
        let store = tickets(10);
        let ttl = Duration::from_secs(30);
        let one = store.issue(grant("alice"), ttl).await.unwrap();
        let two = store.issue(grant("bob"), ttl).await.unwrap();
        assert_ne!(one, two);
        assert_eq!(one.len(), 64);
        assert_eq!(store.redeem(&one).await, Ok(grant("alice")));
        assert_eq!(store.redeem(&one).await, Err(TokenError::InvalidTicket));
        assert_eq!(store.redeem(&two).await.unwrap().user, "bob");
        for forged in ["", "zz", &"0".repeat(64), &one.to_uppercase()] {
            assert_eq!(store.redeem(forged).await, Err(TokenError::InvalidTicket));
        }
    }

    #[tokio::test]
    async fn outstanding_tickets_are_bounded_until_they_expire() {
        let store = tickets(2);
        let short = Duration::from_millis(1);
        let first = store.issue(grant("a"), short).await.unwrap();
        store
            .issue(grant("b"), Duration::from_secs(30))
            .await
            .unwrap();
        // Used or not, an unexpired ticket counts.
        assert_eq!(
            store.issue(grant("c"), Duration::from_secs(30)).await,
            Err(TicketError::TooMany)
        );
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            store.redeem(&first).await,
            Err(TokenError::InvalidTicket),
            "expired"
        );
        assert!(store
            .issue(grant("c"), Duration::from_secs(30))
            .await
            .is_ok());
        let local = store.local.lock().unwrap();
        assert_eq!((local.issued.len(), local.held.len()), (2, 2));
    }

    #[test]
    fn lifetimes_default_and_are_capped() {
        let store = tickets(1);
        assert_eq!(store.lifetime(None), Some(Duration::from_secs(30)));
        assert_eq!(store.lifetime(Some(5)), Some(Duration::from_secs(5)));
        assert_eq!(store.lifetime(Some(86_400)), Some(Duration::from_secs(300)));
        assert_eq!(store.lifetime(Some(0)), None);
    }
}
