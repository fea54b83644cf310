//! Addressing: every `Target` with its except-set reaches exactly its recipients, `reached`
//! counts them, the frame is serialized once for all of them, and a `UserScope` sees and
//! addresses only its own user.

mod support;

use bytes::Bytes;
use std::time::Instant;
use support::*;
use switchboard::testing::Harness;
use switchboard::{
    ConnId, Hub, Open, Output, PublishError, SocketInput, SocketOutput, Target, ThreadId,
    UnknownConnection, UserId,
};

fn alice() -> UserId {
    "alice".into()
}

/// Who is where in [`population`].
struct People {
    /// Alice on thread t1, in the lobby.
    alice_t1: ConnId,
    /// Alice unbound, in the lobby.
    alice_plain: ConnId,
    /// Alice on thread t1 again, in no room.
    alice_t1_again: ConnId,
    /// Bob on thread t1 (his own), in the lobby.
    bob_t1: ConnId,
    /// Carol, in no room.
    carol: ConnId,
}

impl People {
    fn all(&self) -> [ConnId; 5] {
        [
            self.alice_t1,
            self.alice_plain,
            self.alice_t1_again,
            self.bob_t1,
            self.carol,
        ]
    }
}

/// Five connections of three users, in rooms and on threads, with their frames taken.
fn population(h: &mut Harness) -> People {
    let p = People {
        alice_t1: h.open(Open::new("alice").thread("t1")).unwrap(),
        alice_plain: h.connect("alice"),
        alice_t1_again: h.open(Open::new("alice").thread("t1")).unwrap(),
        bob_t1: h.open(Open::new("bob").thread("t1")).unwrap(),
        carol: h.connect("carol"),
    };
    for conn in [p.alice_t1, p.alice_plain, p.bob_t1] {
        join(h, conn, "lobby");
    }
    for conn in p.all() {
        h.take(conn);
    }
    p
}

/// The connections among `p` that received the message `event`.
fn receivers(h: &Harness, p: &People, event: &str) -> Vec<ConnId> {
    let mut got: Vec<ConnId> = p
        .all()
        .into_iter()
        .filter(|&c| h.events(c).iter().any(|e| e == event))
        .collect();
    got.sort();
    got
}

fn sorted(mut conns: Vec<ConnId>) -> Vec<ConnId> {
    conns.sort();
    conns
}

/// `Target::Connection` reaches that connection only; excluding it reaches no one.
#[test]
fn a_connection_target_reaches_that_connection_only() {
    let mut h = harness();
    let p = population(&mut h);

    let d = h.publish(Target::Connection(p.alice_plain), msg("one"));
    let none = h.publish(
        Target::Connection(p.bob_t1).except([p.bob_t1]),
        msg("excluded"),
    );

    assert_eq!(d.reached, 1);
    assert_eq!(receivers(&h, &p, "one"), vec![p.alice_plain]);
    assert_eq!(none.reached, 0);
    assert!(receivers(&h, &p, "excluded").is_empty());
}

/// `Target::User` reaches every connection of the user but the excluded ones.
#[test]
fn a_user_target_reaches_the_users_connections_but_the_excluded() {
    let mut h = harness();
    let p = population(&mut h);

    let all = h.publish(Target::User(alice()), msg("all"));
    let some = h.publish(Target::User(alice()).except([p.alice_t1]), msg("some"));

    assert_eq!(all.reached, 3);
    assert_eq!(
        receivers(&h, &p, "all"),
        sorted(vec![p.alice_t1, p.alice_plain, p.alice_t1_again])
    );
    assert_eq!(some.reached, 2);
    assert_eq!(
        receivers(&h, &p, "some"),
        sorted(vec![p.alice_plain, p.alice_t1_again])
    );
}

/// `Target::Room` reaches every member but the excluded ones, whoever their user.
#[test]
fn a_room_target_reaches_the_members_but_the_excluded() {
    let mut h = harness();
    let p = population(&mut h);

    let all = h.publish(room("lobby"), msg("all"));
    let some = h.publish(Target::Room("lobby".into()).except([p.bob_t1]), msg("some"));

    assert_eq!(all.reached, 3);
    assert_eq!(
        receivers(&h, &p, "all"),
        sorted(vec![p.alice_t1, p.alice_plain, p.bob_t1])
    );
    assert_eq!(some.reached, 2);
    assert_eq!(
        receivers(&h, &p, "some"),
        sorted(vec![p.alice_t1, p.alice_plain])
    );
}

/// `Target::Thread` reaches the user's connections on the thread but the excluded ones.
#[test]
fn a_thread_target_reaches_the_users_connections_on_the_thread_but_the_excluded() {
    let mut h = harness();
    let p = population(&mut h);

    let all = h.publish(thread("alice", "t1"), msg("all"));
    let some = h.publish(
        thread("alice", "t1").except([p.alice_t1_again]),
        msg("some"),
    );

    assert_eq!(all.reached, 2);
    assert_eq!(
        receivers(&h, &p, "all"),
        sorted(vec![p.alice_t1, p.alice_t1_again])
    );
    assert_eq!(some.reached, 1);
    assert_eq!(receivers(&h, &p, "some"), vec![p.alice_t1]);
}

/// `Target::All` reaches every open connection but the excluded ones.
#[test]
fn the_all_target_reaches_every_open_connection_but_the_excluded() {
    let mut h = harness();
    let p = population(&mut h);

    let all = h.publish(Target::All, msg("all"));
    let some = h.publish(Target::All.except([p.carol, p.alice_t1]), msg("some"));

    assert_eq!(all.reached, 5);
    assert_eq!(receivers(&h, &p, "all"), sorted(p.all().to_vec()));
    assert_eq!(some.reached, 3);
    assert_eq!(
        receivers(&h, &p, "some"),
        sorted(vec![p.alice_plain, p.alice_t1_again, p.bob_t1])
    );
}

/// An except-set naming connections outside the audience changes nothing.
#[test]
fn excluding_connections_outside_the_audience_changes_nothing() {
    let mut h = harness();
    let p = population(&mut h);

    let d = h.publish(
        Target::User(alice()).except([p.bob_t1, p.carol]),
        msg("all of alice"),
    );
    assert_eq!(d.reached, 3);
}

/// `reached` counts a connection whose frame waits in its queue, and not a closed one.
#[test]
fn reached_counts_queued_connections_and_not_closed_ones() {
    let mut h = harness();
    let reader = h.connect("alice");
    let stalled = h.connect("alice");
    let gone = h.connect("alice");
    h.set_reading(stalled, false);
    fill_queue(&mut h, &Target::Connection(stalled), stalled, 1);
    h.drop_connection(gone);

    let d = h.publish(user("alice"), msg("counted"));

    assert_eq!(d.reached, 2);
    assert!(queued(&h, stalled) >= 2, "the frame waits in the queue");
    assert_eq!(h.events(reader), vec!["counted"]);
}

/// An empty audience is reached by no one; an empty room's message is not even sequenced.
#[test]
fn an_empty_audience_is_reached_by_no_one() {
    let mut h = harness();
    h.connect("alice");

    let empty_room = h.publish(room("attic"), msg("echo"));
    let nobody_on_thread = h.publish(thread("bob", "t1"), msg("later"));

    assert_eq!((empty_room.reached, empty_room.position), (0, None));
    assert_eq!(nobody_on_thread.reached, 0);
    assert!(
        nobody_on_thread.position.is_some(),
        "user messages are kept"
    );
}

/// A publish is serialized once: every recipient's `Output::Send` holds the very same bytes.
#[test]
fn a_publish_is_serialized_once_and_shared_by_every_recipient() {
    let now = Instant::now();
    let mut hub = Hub::new(small_config());
    let t1: ThreadId = "t1".into();
    let opens = [
        Open::new("alice").thread(t1.clone()),
        Open::new("alice").thread(t1.clone()),
        Open::new("alice").thread(t1.clone()),
        Open::new("bob"),
        Open::new("carol"),
    ];
    let conns: Vec<ConnId> = opens
        .into_iter()
        .map(|open| hub.open(now, open).unwrap())
        .collect();
    for &conn in &conns {
        hub.join_room(now, conn, &"lobby".into()).unwrap();
    }
    drain(&mut hub);

    let targets = [
        (Target::User(alice()), 3),
        (
            Target::Thread {
                user: alice(),
                thread: t1,
            },
            3,
        ),
        (Target::Room("lobby".into()), 5),
        (Target::All, 5),
    ];
    for (target, recipients) in targets {
        let delivery = hub.publish(now, target.clone(), &msg("shared")).unwrap();
        let sends: Vec<(ConnId, Bytes)> = drain(&mut hub)
            .into_iter()
            .filter_map(|o| match o {
                Output::Socket(SocketOutput::Send { conn, frame }) => Some((conn, frame)),
                _ => None,
            })
            .collect();
        assert_eq!(delivery.reached, recipients, "{target:?}");
        assert_eq!(sends.len(), recipients, "{target:?}");
        let first = &sends[0].1;
        assert!(
            sends
                .iter()
                .all(|(_, f)| f.as_ptr() == first.as_ptr() && f.len() == first.len()),
            "{target:?}: every recipient must share one serialization"
        );
        for (conn, frame) in sends {
            let flushed = SocketInput::Flushed {
                conn,
                bytes: frame.len(),
            };
            hub.handle_socket(now, flushed).unwrap();
        }
    }
}

/// A scope sees only its own user's connections; another's is invisible, like a closed one.
#[test]
fn a_user_scope_sees_only_its_own_users_connections() {
    let mut h = harness();
    let closed = h.connect("alice");
    h.drop_connection(closed);
    let p = population(&mut h);

    h.with_hub(|hub, _| {
        let scope = hub.scope("alice");
        assert_eq!(scope.user(), &alice());
        assert!(scope.is_connected());
        assert_eq!(
            sorted(scope.connections().to_vec()),
            sorted(vec![p.alice_t1, p.alice_plain, p.alice_t1_again])
        );
        assert_eq!(
            scope.connection_info(p.alice_plain).map(|i| i.user),
            Some(alice())
        );
        assert_eq!(scope.connection_info(p.bob_t1), None);
        assert_eq!(scope.connection_info(closed), None);
        assert_eq!(
            sorted(scope.thread_connections(&"t1".into())),
            sorted(vec![p.alice_t1, p.alice_t1_again])
        );
    });
}

/// A scope cannot send to another user's connection (closed-connection error), nor deliver.
#[test]
fn a_user_scope_cannot_send_to_another_users_connection() {
    let mut h = harness();
    let closed = h.connect("alice");
    h.drop_connection(closed);
    let p = population(&mut h);
    let sent_before = h.hub().stats().counters.messages_out;

    let (foreign, stale) = h.with_hub(|hub, now| {
        let mut scope = hub.scope("alice");
        (
            scope.send_to_connection(now, p.bob_t1, &msg("leak")),
            scope.send_to_connection(now, closed, &msg("leak")),
        )
    });

    assert_eq!(
        foreign,
        Err(PublishError::UnknownConnection(UnknownConnection(p.bob_t1)))
    );
    assert_eq!(
        stale,
        Err(PublishError::UnknownConnection(UnknownConnection(closed)))
    );
    assert!(p.all().iter().all(|&c| h.frames(c).is_empty()));
    assert_eq!(h.hub().stats().counters.messages_out, sent_before);
}

/// A scope cannot rebind another user's connection.
#[test]
fn a_user_scope_cannot_rebind_another_users_connection() {
    let mut h = harness();
    let p = population(&mut h);

    let result = h.with_hub(|hub, _| {
        hub.scope("alice")
            .update_connection_thread(p.bob_t1, Some("stolen".into()))
    });

    assert_eq!(result, Err(UnknownConnection(p.bob_t1)));
    assert!(h.frames(p.bob_t1).is_empty());
    assert_eq!(
        h.hub().connection_info(p.bob_t1).unwrap().thread,
        Some("t1".into())
    );
}

/// Everything a scope publishes reaches only its own user's connections.
#[test]
fn a_user_scopes_publishes_reach_only_its_own_user() {
    let mut h = harness();
    let p = population(&mut h);

    let (to_user, to_thread, to_own) = h.with_hub(|hub, now| {
        let mut scope = hub.scope("alice");
        (
            scope.publish(now, &msg("user")).unwrap(),
            scope
                .publish_to_thread(now, "t1".into(), &msg("thread"))
                .unwrap(),
            scope
                .send_to_connection(now, p.alice_plain, &msg("own"))
                .unwrap(),
        )
    });

    assert_eq!(
        (to_user.reached, to_thread.reached, to_own.reached),
        (3, 2, 1)
    );
    assert_eq!(
        receivers(&h, &p, "user"),
        sorted(vec![p.alice_t1, p.alice_plain, p.alice_t1_again])
    );
    assert_eq!(
        receivers(&h, &p, "thread"),
        sorted(vec![p.alice_t1, p.alice_t1_again])
    );
    assert_eq!(receivers(&h, &p, "own"), vec![p.alice_plain]);
}

/// A scope's disconnect closes only its own user's connections.
#[test]
fn a_user_scopes_disconnect_closes_only_its_own_user() {
    let mut h = harness();
    let p = population(&mut h);

    let closed = h.with_hub(|hub, _| hub.scope("alice").disconnect());

    assert_eq!(closed, 3);
    assert!(h.closed(p.bob_t1).is_none() && h.closed(p.carol).is_none());
    assert!(!h.hub().is_user_connected(&alice()));
}
