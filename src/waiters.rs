//! Waiters: the application's `wait_for_connection` registrations, each resolved by the
//! user's next connection or expired at its deadline.

use crate::directory::Directory;
use crate::id::{ConnId, UserId};
use crate::io::{Notice, WaiterId};
use crate::outputs::Outputs;
use crate::timer::Deadlines;
use hashbrown::HashMap;
use smallvec::SmallVec;
use std::time::Instant;

/// The registrations waiting for a user to connect, and their deadlines: by id, and listed
/// per user so that a connection opening resolves its user's without a walk over everyone's.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    waiting: HashMap<WaiterId, UserId>,
    /// The registrations of each user still waiting, oldest first (ids only grow); users with
    /// none are absent.
    by_user: HashMap<UserId, SmallVec<[WaiterId; 2]>>,
    /// Deadlines of the registrations (those resolved or cancelled meanwhile are stale).
    deadlines: Deadlines<WaiterId>,
    next: u64,
}

impl Waiters {
    /// Register a wait for `user` until `deadline`: resolved at once if the user has a
    /// connection ([`Notice::UserConnected`]), otherwise by its next one or expired then.
    pub fn wait(
        &mut self,
        user: &UserId,
        deadline: Instant,
        conns: &Directory,
        out: &mut Outputs,
    ) -> WaiterId {
        let waiter = WaiterId(self.next);
        self.next += 1;
        if let Some(&conn) = conns.user_connections(user).first() {
            out.notice(Notice::UserConnected {
                waiter,
                user: user.clone(),
                conn,
            });
        } else {
            self.waiting.insert(waiter, user.clone());
            self.by_user.entry(user.clone()).or_default().push(waiter);
            self.deadlines.schedule(deadline, waiter);
        }
        waiter
    }

    /// Withdraw a registration. False if it already resolved or expired.
    pub fn cancel(&mut self, waiter: WaiterId) -> bool {
        self.forget(waiter).is_some()
    }

    /// Take `waiter` out of the registrations still waiting; its user, if it was.
    fn forget(&mut self, waiter: WaiterId) -> Option<UserId> {
        let user = self.waiting.remove(&waiter)?;
        if let Some(of_user) = self.by_user.get_mut(&user) {
            of_user.retain(|w| *w != waiter);
            if of_user.is_empty() {
                self.by_user.remove(&user);
            }
        }
        Some(user)
    }

    /// `user`'s connection `conn` opened: every registration for the user resolves, oldest
    /// first.
    pub fn resolve(&mut self, user: &UserId, conn: ConnId, out: &mut Outputs) {
        let Some(resolved) = self.by_user.remove(user) else {
            return;
        };
        for waiter in resolved {
            self.waiting.remove(&waiter);
            out.notice(Notice::UserConnected {
                waiter,
                user: user.clone(),
                conn,
            });
        }
    }

    /// The earliest deadline (possibly of a registration that resolved since).
    pub fn next_deadline(&self) -> Option<(Instant, WaiterId)> {
        self.deadlines.next()
    }

    /// The earliest deadline came: its registration, if still waiting, expires.
    pub fn expire_next(&mut self, out: &mut Outputs) {
        let Some(waiter) = self.deadlines.pop() else {
            return;
        };
        if let Some(user) = self.forget(waiter) {
            out.notice(Notice::WaitExpired { waiter, user });
        }
    }

    /// Registrations waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::io::{Open, Output};
    use std::time::Duration;

    fn notices(out: &mut Outputs) -> Vec<Notice> {
        std::iter::from_fn(|| out.pop())
            .filter_map(|o| match o {
                Output::Notice(n) => Some(n),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_wait_resolves_with_the_users_connection_or_expires_at_its_deadline() {
        let now = Instant::now();
        let config = Config::development();
        let mut conns = Directory::new(&config);
        let mut out = Outputs::default();
        let mut waiters = Waiters::default();
        let ana = UserId::from("ana");
        let first = waiters.wait(&ana, now + Duration::from_secs(1), &conns, &mut out);
        let second = waiters.wait(&ana, now + Duration::from_secs(2), &conns, &mut out);
        assert!(waiters.cancel(second));
        let third = waiters.wait(&"ben".into(), now, &conns, &mut out);
        assert_eq!(waiters.len(), 2);
        let conn = conns.insert(now, Open::new("ana"), &config).0;
        waiters.resolve(&ana, conn, &mut out);
        let user = UserId::from("ana");
        assert_eq!(
            notices(&mut out),
            [Notice::UserConnected {
                waiter: first,
                user,
                conn
            }]
        );
        assert_eq!(waiters.next_deadline().map(|(_, w)| w), Some(third));
        waiters.expire_next(&mut out);
        let expired = Notice::WaitExpired {
            waiter: third,
            user: "ben".into(),
        };
        assert_eq!(notices(&mut out), [expired]);
        waiters.expire_next(&mut out);
        waiters.expire_next(&mut out);
        assert!(
            notices(&mut out).is_empty(),
            "resolved and cancelled waits are stale"
        );
        assert!(waiters.is_empty());
        let ben = conns.insert(now, Open::new("ben"), &config).0;
        waiters.resolve(&"ben".into(), ben, &mut out);
        assert!(
            notices(&mut out).is_empty(),
            "an expired wait is not resolved"
        );
        assert!(waiters.by_user.is_empty(), "no user is left listed");
    }
}
