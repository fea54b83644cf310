//! Admission: a connection counted against the cluster-wide limit before it opens, so that one
//! over the limit is refused before its `welcome`, as a single hub refuses it.
//!
//! [`Bridge::admit`](crate::Bridge::admit) runs the `OPEN` script for the user and, if the
//! user is under the limit, keeps a reservation: the next connection of that user to open on
//! this node claims it instead of being counted again. A reservation never claimed (the client
//! vanished during the upgrade, or the hub refused the open) is dropped at the first heartbeat
//! after its deadline, which rewrites the node's count in Redis without it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;
use switchboard::UserId;

/// What [`Bridge::admit`](crate::Bridge::admit) decided about a connection of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Counted across the cluster: open the connection on this node. It is not counted again
    /// when it opens.
    Admitted,
    /// The user already has the cluster-wide limit of connections: refuse this one before it
    /// opens, as a hub refuses a connection over its own limit
    /// ([`OpenError::UserLimit`](switchboard::OpenError::UserLimit), close code 4003).
    Refused,
}

/// The admitted connections of this node that have not opened yet, each counted in its user's
/// presence in Redis, and the users whose count a failed admission may have left wrong.
#[derive(Debug, Default)]
pub(crate) struct Reservations {
    /// Each user's reservations by deadline, oldest first.
    pending: HashMap<UserId, VecDeque<Instant>>,
    /// Users whose count in Redis may be off: an admission failed after Redis may have run
    /// its script.
    stale: HashSet<UserId>,
}

impl Reservations {
    /// Keep one reservation of `user` until `deadline`.
    pub fn reserve(&mut self, user: UserId, deadline: Instant) {
        let deadlines = self.pending.entry(user).or_default();
        let at = deadlines.partition_point(|d| *d <= deadline);
        deadlines.insert(at, deadline);
    }

    /// A connection of `user` opened: claim the user's oldest reservation. False if it has
    /// none (the connection was not admitted, or its reservation was dropped).
    pub fn claim(&mut self, user: &UserId) -> bool {
        let Some(deadlines) = self.pending.get_mut(user) else {
            return false;
        };
        deadlines.pop_front();
        if deadlines.is_empty() {
            self.pending.remove(user);
        }
        true
    }

    /// Drop the reservations whose deadline is past; the users that lost one.
    pub fn expire(&mut self, now: Instant) -> Vec<UserId> {
        let mut expired = Vec::new();
        self.pending.retain(|user, deadlines| {
            let before = deadlines.len();
            while deadlines.front().is_some_and(|d| *d <= now) {
                deadlines.pop_front();
            }
            if deadlines.len() < before {
                expired.push(user.clone());
            }
            !deadlines.is_empty()
        });
        expired
    }

    /// Note that `user`'s count in Redis may be off.
    pub fn mark_stale(&mut self, user: UserId) {
        self.stale.insert(user);
    }

    /// The users noted by [`Reservations::mark_stale`] since the last call.
    pub fn take_stale(&mut self) -> HashSet<UserId> {
        std::mem::take(&mut self.stale)
    }

    /// The reservations of each user that has some.
    pub fn counts(&self) -> HashMap<UserId, usize> {
        self.pending
            .iter()
            .map(|(user, deadlines)| (user.clone(), deadlines.len()))
            .collect()
    }

    /// Forget everything; the users concerned.
    pub fn clear(&mut self) -> Vec<UserId> {
        let stale = std::mem::take(&mut self.stale);
        let pending = std::mem::take(&mut self.pending);
        stale.into_iter().chain(pending.into_keys()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn user(id: &str) -> UserId {
        UserId::from(id)
    }

    /// An opened connection claims one reservation of its user, and only of its user.
    #[test]
    fn a_connection_claims_one_reservation_of_its_user() {
        let now = Instant::now();
        let mut reservations = Reservations::default();
        reservations.reserve(user("alice"), now);
        reservations.reserve(user("alice"), now);
        assert!(!reservations.claim(&user("bob")));
        assert!(reservations.claim(&user("alice")));
        assert_eq!(reservations.counts(), HashMap::from([(user("alice"), 1)]));
        assert!(reservations.claim(&user("alice")));
        assert!(!reservations.claim(&user("alice")));
        assert!(reservations.counts().is_empty());
    }

    /// Reservations past their deadline are dropped, the others kept.
    #[test]
    fn reservations_past_their_deadline_are_dropped() {
        let now = Instant::now();
        let later = now + Duration::from_secs(10);
        let mut reservations = Reservations::default();
        reservations.reserve(user("alice"), later);
        reservations.reserve(user("alice"), now);
        reservations.reserve(user("bob"), now);
        reservations.reserve(user("carol"), later);

        let mut expired = reservations.expire(now);
        expired.sort();
        assert_eq!(expired, [user("alice"), user("bob")]);
        assert_eq!(
            reservations.counts(),
            HashMap::from([(user("alice"), 1), (user("carol"), 1)])
        );
        assert!(reservations.expire(now).is_empty());
        assert_eq!(reservations.expire(later).len(), 2);
        assert!(reservations.counts().is_empty());
    }

    /// Stale users are handed over once; clearing forgets every user concerned.
    #[test]
    fn stale_users_are_handed_over_once() {
        let mut reservations = Reservations::default();
        reservations.mark_stale(user("alice"));
        assert_eq!(reservations.take_stale(), HashSet::from([user("alice")]));
        assert!(reservations.take_stale().is_empty());

        reservations.mark_stale(user("bob"));
        reservations.reserve(user("carol"), Instant::now());
        let mut cleared = reservations.clear();
        cleared.sort();
        assert_eq!(cleared, [user("bob"), user("carol")]);
        assert!(reservations.counts().is_empty());
    }
}
