//! Threads: binding a connection at open, with the `bind` frame and by the application;
//! thread-addressed messages reach only the user's connections bound to that thread.

mod support;

use serde_json::json;
use support::*;
use switchboard::{Open, ThreadId, UnknownConnection, UserId};

fn alice() -> UserId {
    "alice".into()
}

fn t(name: &str) -> ThreadId {
    name.into()
}

/// A connection opened with a thread is bound to it.
#[test]
fn a_connection_opened_with_a_thread_is_bound_to_it() {
    let mut h = harness();
    let conn = h.open(Open::new("alice").thread("t1")).unwrap();

    assert_eq!(h.hub().connection_info(conn).unwrap().thread, Some(t("t1")));
    assert_eq!(h.hub().thread_connections(&alice(), &t("t1")), vec![conn]);
}

/// The `bind` frame binds the connection and answers `bound` with the thread and the `ref`.
#[test]
fn the_bind_frame_binds_and_answers_bound_with_the_ref() {
    let mut h = harness();
    let conn = h.connect("alice");
    h.take(conn);

    h.send(conn, r#"{"type":"bind","thread":"t1","ref":5}"#);

    assert_eq!(
        h.take(conn),
        vec![json!({"type": "bound", "thread": "t1", "ref": 5})]
    );
    assert_eq!(h.hub().connection_info(conn).unwrap().thread, Some(t("t1")));
    assert_eq!(h.hub().thread_connections(&alice(), &t("t1")), vec![conn]);
}

/// `bind` with a `null` or absent thread unbinds and answers `bound` with `null`.
#[test]
fn bind_without_a_thread_unbinds() {
    let mut h = harness();
    let conn = h.open(Open::new("alice").thread("t1")).unwrap();
    h.take(conn);

    h.send(conn, r#"{"type":"bind","thread":null}"#);
    assert_eq!(h.take(conn), vec![json!({"type": "bound", "thread": null})]);
    assert_eq!(h.hub().connection_info(conn).unwrap().thread, None);

    h.send(conn, r#"{"type":"bind","thread":"t2"}"#);
    h.send(conn, r#"{"type":"bind"}"#);
    assert_eq!(h.hub().connection_info(conn).unwrap().thread, None);
    assert!(h.hub().thread_connections(&alice(), &t("t2")).is_empty());
}

/// `update_connection_thread` rebinds, and the client gets `bound` without `ref`.
#[test]
fn the_application_rebinds_and_the_client_gets_bound() {
    let mut h = harness();
    let conn = h.connect("alice");
    h.take(conn);

    h.with_hub(|hub, _| hub.update_connection_thread(conn, Some(t("t9"))))
        .unwrap();

    assert_eq!(h.take(conn), vec![json!({"type": "bound", "thread": "t9"})]);
    assert_eq!(h.hub().thread_connections(&alice(), &t("t9")), vec![conn]);
}

/// Rebinding a closed connection is an `UnknownConnection` error.
#[test]
fn rebinding_a_closed_connection_is_an_error() {
    let mut h = harness();
    let conn = h.connect("alice");
    h.drop_connection(conn);
    let result = h.with_hub(|hub, _| hub.update_connection_thread(conn, Some(t("t1"))));
    assert_eq!(result, Err(UnknownConnection(conn)));
}

/// A thread message reaches only that user's connections bound to that thread.
#[test]
fn a_thread_message_reaches_only_that_users_connections_bound_to_that_thread() {
    let mut h = harness();
    let on_t1 = h.open(Open::new("alice").thread("t1")).unwrap();
    let also_t1 = h.open(Open::new("alice").thread("t1")).unwrap();
    let on_t2 = h.open(Open::new("alice").thread("t2")).unwrap();
    let unbound = h.connect("bob");
    let bobs_t1 = h.open(Open::new("bob").thread("t1")).unwrap();

    let delivery = h.publish(thread("alice", "t1"), msg("draft"));

    assert_eq!(delivery.reached, 2);
    assert_eq!(h.events(on_t1), vec!["draft"]);
    assert_eq!(h.events(also_t1), vec!["draft"]);
    for conn in [on_t2, unbound, bobs_t1] {
        assert!(
            h.events(conn).is_empty(),
            "{conn:?} got a message of alice's t1"
        );
    }
    let frame = &h.frames_of(on_t1, "message")[0];
    assert_eq!(frame["thread"], "t1");
    assert_eq!(frame["stream"], "user:alice");
}

/// A message to the user reaches every connection of the user, whatever thread it is on.
#[test]
fn a_user_message_reaches_every_connection_of_the_user_whatever_its_thread() {
    let mut h = harness();
    let conns = [
        h.open(Open::new("alice").thread("t1")).unwrap(),
        h.open(Open::new("alice").thread("t2")).unwrap(),
        h.connect("alice"),
    ];

    assert_eq!(h.publish(user("alice"), msg("notify")).reached, 3);
    for conn in conns {
        assert_eq!(h.events(conn), vec!["notify"]);
        assert!(h.frames_of(conn, "message")[0].get("thread").is_none());
    }
}

/// `thread_connections` lists the user's connections bound to the thread, and only the user's.
#[test]
fn thread_connections_lists_only_the_users_connections_on_the_thread() {
    let mut h = harness();
    let a1 = h.open(Open::new("alice").thread("t1")).unwrap();
    let _a2 = h.open(Open::new("alice").thread("t2")).unwrap();
    let a3 = h.connect("alice");
    let _bob = h.open(Open::new("bob").thread("t1")).unwrap();
    h.send(a3, r#"{"type":"bind","thread":"t1"}"#);

    let mut on_t1 = h.hub().thread_connections(&alice(), &t("t1"));
    on_t1.sort();
    assert_eq!(on_t1, vec![a1, a3]);
    assert!(h.hub().thread_connections(&alice(), &t("t3")).is_empty());
    assert!(h
        .hub()
        .thread_connections(&"carol".into(), &t("t1"))
        .is_empty());
}

/// Rebinding moves the connection: it leaves the old thread's audience and joins the new one's.
#[test]
fn rebinding_moves_a_connection_from_one_thread_to_another() {
    let mut h = harness();
    let conn = h.open(Open::new("alice").thread("t1")).unwrap();
    let stays = h.open(Open::new("alice").thread("t1")).unwrap();

    h.send(conn, r#"{"type":"bind","thread":"t2"}"#);

    assert_eq!(h.hub().thread_connections(&alice(), &t("t1")), vec![stays]);
    assert_eq!(h.hub().thread_connections(&alice(), &t("t2")), vec![conn]);
    assert_eq!(h.publish(thread("alice", "t1"), msg("old")).reached, 1);
    assert_eq!(h.publish(thread("alice", "t2"), msg("new")).reached, 1);
    assert_eq!(h.events(conn), vec!["new"]);
    assert_eq!(h.events(stays), vec!["old"]);
}

/// A closed connection is no longer on its thread.
#[test]
fn a_closed_connection_leaves_its_thread() {
    let mut h = harness();
    let conn = h.open(Open::new("alice").thread("t1")).unwrap();
    let other = h.connect("alice");
    h.drop_connection(conn);
    assert!(h.hub().thread_connections(&alice(), &t("t1")).is_empty());
    assert_eq!(h.publish(thread("alice", "t1"), msg("nobody")).reached, 0);
    assert!(h.events(other).is_empty());
}

/// The threads gauge counts distinct (user, thread) pairs with a bound connection.
#[test]
fn the_threads_gauge_counts_threads_per_user() {
    let mut h = harness();
    h.open(Open::new("alice").thread("t1")).unwrap();
    h.open(Open::new("alice").thread("t1")).unwrap();
    h.open(Open::new("bob").thread("t1")).unwrap();
    h.open(Open::new("bob").thread("t2")).unwrap();
    h.connect("carol");
    assert_eq!(h.hub().stats().threads, 3);
}

/// A thread message nobody is on waits for the first connection that opens on or binds to it.
#[test]
fn a_thread_message_nobody_is_on_waits_for_the_first_connection_of_the_thread() {
    let mut h = harness();
    let unbound = h.connect("alice");

    let first = h.publish(thread("alice", "t1"), msg("draft1"));
    let second = h.publish(thread("alice", "t2"), msg("draft2"));

    assert_eq!((first.reached, first.buffered), (0, true));
    assert_eq!((second.reached, second.buffered), (0, true));
    assert!(h.events(unbound).is_empty());
    let opened = h.open(Open::new("alice").thread("t1")).unwrap();
    assert_eq!(h.events(opened), vec!["draft1"]);
    h.take(unbound);
    h.send(unbound, r#"{"type":"bind","thread":"t2"}"#);
    assert_eq!(take_labels(&mut h, unbound), vec!["bound", "draft2"]);
    let again = h.open(Open::new("alice").thread("t1")).unwrap();
    assert!(h.events(again).is_empty(), "delivered once, to the first");
}

/// A thread message whose except-set left out the thread's connections is not pending.
#[test]
fn a_thread_message_whose_except_set_left_out_everyone_is_not_pending() {
    let mut h = harness();
    let on_t1 = h.open(Open::new("alice").thread("t1")).unwrap();

    let delivery = h.publish(thread("alice", "t1").except([on_t1]), msg("not for you"));

    assert_eq!((delivery.reached, delivery.buffered), (0, false));
    let later = h.open(Open::new("alice").thread("t1")).unwrap();
    assert!(h.events(later).is_empty());
    assert!(h.events(on_t1).is_empty());
}
