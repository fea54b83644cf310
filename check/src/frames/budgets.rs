//! What the `frames` oracle must know of each connection to require an outcome: its two
//! budgets of section 4 (module `budgets` of the crate, held as bounds: the `error` to a reader
//! that stopped reading may stay queued in the hub, so the oracle does not always see whether
//! a frame took a strike), the hub's unanswered ping, its last sign of life, and what it owes a
//! stopped reader.

use crate::budgets::Budget;
use std::time::Instant;

/// The budgets of one connection, and what else the oracle must know of it to require an
/// outcome: the hub's unanswered ping, its last sign of life, what it owes a stopped reader.
#[derive(Debug)]
pub(super) struct Ledger {
    pub rate: Budget,
    pub strikes: Budget,
    /// The payload of the hub's latest ping while unanswered: a pong echoing it answers the
    /// hub, any other pong is unsolicited (and limited).
    pub ping: Option<Vec<u8>>,
    /// The last frame or pong from the client.
    pub alive_at: Instant,
    /// Since the client stopped reading: reliable live frames the hub had to send it, and
    /// frames it did send (so at least the difference is queued).
    pub owed: usize,
    pub sent: usize,
}

impl Ledger {
    /// A connection opened at `now` under `limits`.
    pub fn new(now: Instant, limits: &switchboard::Limits) -> Self {
        Self {
            rate: Budget::rate(now, limits),
            strikes: Budget::strikes(now, limits),
            ping: None,
            alive_at: now,
            owed: 0,
            sent: 0,
        }
    }
}
