//! The connections' token deadlines: each connection whose token expires has exactly one, the
//! next step of its [`TokenLife`] (ask for a fresh token, or close), kept in a [`Timers`] so
//! that a fresh token moving it earlier or later costs O(log n) and leaves nothing stale.
//!
//! [`Timers`]: crate::timer::Timers

use super::Directory;
use crate::config::TokenConfig;
use crate::id::ConnId;
use crate::token::{Due, TokenLife};
use std::time::Instant;

impl Directory {
    /// The earliest token deadline.
    pub fn next_token(&self) -> Option<(Instant, ConnId)> {
        self.tokens.next()
    }

    /// The earliest token deadline came (at or before `now`): what it asks of which
    /// connection. After an ask, the connection's close is its next deadline.
    pub fn token_due(&mut self, now: Instant, config: &TokenConfig) -> Option<(ConnId, Due)> {
        let (_, id) = self.tokens.pop()?;
        // An entry leaves with its connection, so it names an open one.
        let conn = &mut self.conns[id.index()];
        let due = conn.token_due(now, config)?;
        if due != Due::Close {
            let next = conn.token_life().map(TokenLife::deadline);
            self.tokens.set(id, None, next);
        }
        Some((id, due))
    }

    /// Give `id` (open) a fresh token's lifetime (`None`: it does not expire), moving its
    /// deadline.
    pub fn set_token_life(&mut self, id: ConnId, life: Option<TokenLife>) {
        let conn = self.conn_mut(id);
        let from = conn.token_life().map(TokenLife::deadline);
        let to = life.as_ref().map(TokenLife::deadline);
        conn.credential_mut().life = life;
        self.tokens.set(id, from, to);
    }
}
