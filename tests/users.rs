//! Users: who is connected, disconnecting a user, the per-user and total connection limits
//! with their policies and close codes, and waiting for a user to connect.

mod support;

use std::time::Duration;
use support::*;
use switchboard::testing::Harness;
use switchboard::{Config, Notice, Open, OpenError, Reason, UserId, UserLimitPolicy};

fn alice() -> UserId {
    "alice".into()
}

/// A harness whose users may hold `per_user` connections each, under `policy`.
fn limited(per_user: usize, policy: UserLimitPolicy) -> Harness {
    let mut config = small_config();
    config.limits.max_connections_per_user = per_user;
    config.limits.user_limit_policy = policy;
    Harness::new(config)
}

/// A user is connected exactly while at least one of its connections is open.
#[test]
fn a_user_is_connected_while_at_least_one_of_its_connections_is_open() {
    let mut h = harness();
    assert!(!h.hub().is_user_connected(&alice()));
    let phone = h.connect("alice");
    let laptop = h.connect("alice");
    assert!(h.hub().is_user_connected(&alice()));

    h.drop_connection(phone);
    assert!(h.hub().is_user_connected(&alice()));
    h.drop_connection(laptop);
    assert!(!h.hub().is_user_connected(&alice()));
    assert_eq!(h.hub().users().count(), 0);
}

/// `user_connections` lists the user's open connections, oldest first, and no one else's.
#[test]
fn user_connections_lists_the_users_open_connections_oldest_first() {
    let mut h = harness();
    let a = h.connect("alice");
    let _bob = h.connect("bob");
    let b = h.connect("alice");
    let c = h.connect("alice");
    h.drop_connection(b);

    assert_eq!(h.hub().user_connections(&alice()), &[a, c]);
    let mut users: Vec<String> = h.hub().users().map(|u| u.to_string()).collect();
    users.sort();
    assert_eq!(users, vec!["alice", "bob"]);
    assert!(h.hub().user_connections(&"carol".into()).is_empty());
}

/// `disconnect_user` closes every connection of the user with 4002 and no other connection.
#[test]
fn disconnect_user_closes_all_of_the_users_connections_with_4002() {
    let mut h = harness();
    let conns = [h.connect("alice"), h.connect("alice"), h.connect("alice")];
    let bob = h.connect("bob");
    h.notices();

    let closed = h.with_hub(|hub, _| hub.disconnect_user(&alice()));

    assert_eq!(closed, 3);
    for conn in conns {
        assert_eq!(h.closed(conn), Some((4002, Reason::Disconnected)));
    }
    assert_eq!(h.closed(bob), None);
    assert!(!h.hub().is_user_connected(&alice()));
    let notices = h.notices();
    assert_eq!(notices.len(), 3);
    assert!(notices.iter().all(|n| matches!(
        n,
        Notice::Closed { user, reason: Reason::Disconnected, .. } if *user == alice()
    )));
    assert_eq!(closes(&h, Reason::Disconnected), 3);
}

/// Disconnecting a user with no connection closes nothing.
#[test]
fn disconnecting_a_user_without_connections_closes_nothing() {
    let mut h = harness();
    let bob = h.connect("bob");
    assert_eq!(h.with_hub(|hub, _| hub.disconnect_user(&alice())), 0);
    assert_eq!(h.closed(bob), None);
}

/// By default a user may hold 3 connections and a fourth is refused with 4003; the three stay.
#[test]
fn a_fourth_connection_of_a_user_is_refused_with_4003_by_default() {
    let mut h = Harness::new(Config::production());
    let conns = [h.connect("alice"), h.connect("alice"), h.connect("alice")];
    h.notices();

    let refused = h.open(Open::new("alice"));

    assert_eq!(refused, Err(OpenError::UserLimit));
    assert_eq!(OpenError::UserLimit.close_code(), 4003);
    assert_eq!(h.hub().user_connections(&alice()), &conns);
    assert!(conns.iter().all(|&c| h.closed(c).is_none()));
    assert!(h.notices().is_empty(), "a refused open is not an open");
    let counters = h.hub().stats().counters;
    assert_eq!(counters.refused_opens, 1);
    assert_eq!(counters.closes.get(Reason::UserLimit), 1);
    assert_eq!(counters.opened, 3);
}

/// The per-user limit counts only that user's connections.
#[test]
fn the_per_user_limit_counts_only_that_users_connections() {
    let mut h = limited(1, UserLimitPolicy::RejectNew);
    h.connect("alice");
    assert_eq!(h.open(Open::new("alice")), Err(OpenError::UserLimit));
    assert!(h.open(Open::new("bob")).is_ok());
}

/// A connection freed below the per-user limit lets the user open another.
#[test]
fn closing_a_connection_makes_room_under_the_per_user_limit() {
    let mut h = limited(2, UserLimitPolicy::RejectNew);
    let first = h.connect("alice");
    h.connect("alice");
    assert!(h.open(Open::new("alice")).is_err());
    h.drop_connection(first);
    assert!(h.open(Open::new("alice")).is_ok());
}

/// With `EvictOldest`, the user's oldest connection is closed with 4001 and the new one opens.
#[test]
fn with_evict_oldest_the_oldest_connection_is_closed_with_4001_to_make_room() {
    let mut h = limited(3, UserLimitPolicy::EvictOldest);
    let oldest = h.connect("alice");
    let second = h.connect("alice");
    let third = h.connect("alice");
    h.notices();

    let newest = h
        .open(Open::new("alice"))
        .expect("evicts instead of refusing");

    assert_eq!(h.closed(oldest), Some((4001, Reason::Evicted)));
    assert_eq!(h.hub().user_connections(&alice()), &[second, third, newest]);
    assert!([second, third, newest]
        .iter()
        .all(|&c| h.closed(c).is_none()));
    let notices = h.notices();
    assert_eq!(
        notices[0],
        Notice::Closed {
            conn: oldest,
            user: alice(),
            reason: Reason::Evicted
        },
        "the eviction comes before the new connection opens"
    );
    assert!(notices.contains(&Notice::Opened {
        conn: newest,
        user: alice()
    }));
    let counters = h.hub().stats().counters;
    assert_eq!(counters.closes.get(Reason::Evicted), 1);
    assert_eq!(counters.refused_opens, 0);
}

/// An evicted connection receives what was queued for it before its close frame.
#[test]
fn an_evicted_connection_receives_its_queued_frames_first() {
    let mut h = limited(1, UserLimitPolicy::EvictOldest);
    let oldest = h.connect("alice");
    h.set_reading(oldest, false);
    let published = fill_queue(&mut h, &user("alice"), oldest, 2);

    h.open(Open::new("alice")).unwrap();
    assert_eq!(h.closed(oldest), Some((4001, Reason::Evicted)));
    h.set_reading(oldest, true);
    assert_eq!(h.events(oldest), fills(published));
}

/// A hub with `max_connections` open connections refuses the next with 4004, whoever opens it.
#[test]
fn the_total_connection_limit_refuses_with_4004() {
    let mut config = small_config();
    config.limits.max_connections = 2;
    let mut h = Harness::new(config);
    let a = h.connect("alice");
    h.connect("bob");

    assert_eq!(h.open(Open::new("carol")), Err(OpenError::ServerFull));
    assert_eq!(OpenError::ServerFull.close_code(), 4004);
    assert_eq!(h.hub().connection_count(), 2);
    let counters = h.hub().stats().counters;
    assert_eq!(counters.refused_opens, 1);
    assert_eq!(counters.closes.get(Reason::ServerFull), 1);

    h.drop_connection(a);
    assert!(h.open(Open::new("carol")).is_ok());
}

/// A wait resolves with `UserConnected`, after `Opened`, when the user's connection opens.
#[test]
fn a_wait_for_connection_resolves_when_the_user_connects() {
    let mut h = harness();
    let deadline = h.now() + Duration::from_secs(30);
    let waiter = h.with_hub(|hub, _| hub.wait_for_connection(&alice(), deadline));
    assert_eq!(h.hub().stats().waiters, 1);
    assert!(h.notices().is_empty());

    let conn = h.connect("alice");

    assert_eq!(
        h.notices(),
        vec![
            Notice::Opened {
                conn,
                user: alice()
            },
            Notice::UserConnected {
                waiter,
                user: alice(),
                conn
            },
        ]
    );
    assert_eq!(h.hub().stats().waiters, 0);
    assert!(
        !h.with_hub(|hub, _| hub.cancel_wait(waiter)),
        "already resolved"
    );
}

/// Waiting for a user who is already connected resolves at once with its oldest connection.
#[test]
fn a_wait_for_a_connected_user_resolves_at_once() {
    let mut h = harness();
    let first = h.connect("alice");
    h.connect("alice");
    h.notices();

    let deadline = h.now() + Duration::from_secs(30);
    let waiter = h.with_hub(|hub, _| hub.wait_for_connection(&alice(), deadline));

    assert_eq!(
        h.notices(),
        vec![Notice::UserConnected {
            waiter,
            user: alice(),
            conn: first
        }]
    );
    assert_eq!(h.hub().stats().waiters, 0);
}

/// A wait that reaches its deadline expires with `WaitExpired` and is never resolved later.
#[test]
fn a_wait_that_reaches_its_deadline_expires() {
    let mut h = harness();
    let deadline = h.now() + Duration::from_secs(10);
    let waiter = h.with_hub(|hub, _| hub.wait_for_connection(&alice(), deadline));

    h.advance(Duration::from_secs(10) - Duration::from_millis(1));
    assert!(h.notices().is_empty());
    h.advance(Duration::from_millis(1));
    assert_eq!(
        h.notices(),
        vec![Notice::WaitExpired {
            waiter,
            user: alice()
        }]
    );

    h.connect("alice");
    assert!(!h
        .notices()
        .iter()
        .any(|n| matches!(n, Notice::UserConnected { .. })));
}

/// A cancelled wait is neither resolved nor expired; cancelling twice reports false.
#[test]
fn a_cancelled_wait_is_never_answered() {
    let mut h = harness();
    let deadline = h.now() + Duration::from_secs(10);
    let waiter = h.with_hub(|hub, _| hub.wait_for_connection(&alice(), deadline));

    assert!(h.with_hub(|hub, _| hub.cancel_wait(waiter)));
    assert!(!h.with_hub(|hub, _| hub.cancel_wait(waiter)));
    assert_eq!(h.hub().stats().waiters, 0);
    h.connect("alice");
    h.advance(Duration::from_secs(20));
    assert!(!h
        .notices()
        .iter()
        .any(|n| matches!(n, Notice::UserConnected { .. } | Notice::WaitExpired { .. })));
}

/// One open resolves every waiter of its user, in order, and no other user's waiter.
#[test]
fn one_open_resolves_every_waiter_of_its_user_and_only_those() {
    let mut h = harness();
    let deadline = h.now() + Duration::from_secs(30);
    let (w1, w_bob, w2) = h.with_hub(|hub, _| {
        (
            hub.wait_for_connection(&alice(), deadline),
            hub.wait_for_connection(&"bob".into(), deadline),
            hub.wait_for_connection(&alice(), deadline),
        )
    });

    let conn = h.connect("alice");

    let resolved: Vec<_> = h
        .notices()
        .into_iter()
        .filter_map(|n| match n {
            Notice::UserConnected {
                waiter, conn: c, ..
            } => {
                assert_eq!(c, conn);
                Some(waiter)
            }
            _ => None,
        })
        .collect();
    assert_eq!(resolved, vec![w1, w2]);
    assert_eq!(h.hub().stats().waiters, 1);
    h.connect("bob");
    assert!(h
        .notices()
        .iter()
        .any(|n| matches!(n, Notice::UserConnected { waiter, .. } if *waiter == w_bob)));
}

/// A per-user limit of zero refuses every connection with 4003, whatever the policy.
#[test]
fn a_per_user_limit_of_zero_refuses_every_connection_whatever_the_policy() {
    for policy in [UserLimitPolicy::RejectNew, UserLimitPolicy::EvictOldest] {
        let mut h = limited(0, policy);
        assert_eq!(h.open(Open::new("alice")), Err(OpenError::UserLimit));
        assert_eq!(h.hub().connection_count(), 0);
    }
}
