//! Offline buffering: what is published for a user (or a thread) that no connection selects
//! waits in the stream's history and reaches the next connection that selects it, in order and
//! once, within the history's bounds (the rest announced as a `gap`).

mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::*;
use switchboard::{Hub, Notice, Open, Output, Position, SocketOutput};

#[test]
fn events_for_a_user_without_connection_are_buffered_and_arrive_in_order_on_the_next_open() {
    let mut h = harness();
    let first = h.publish(user("bob"), msg("m1"));
    let run_start = agent(&mut h, "bob", "r1", None, started());
    agent(&mut h, "bob", "r1", None, completed());
    h.publish(user("bob"), msg("m2"));

    assert!(first.buffered && run_start.buffered);
    assert_eq!((first.reached, run_start.reached), (0, 0));
    let report = h.hub().run_report(&"bob".into(), &"r1".into()).unwrap();
    assert!(!report.fully_delivered());

    let bob = h.connect("bob");
    assert_eq!(
        labels(h.frames(bob)),
        vec!["welcome", "m1", "agent_started", "agent_completed", "m2"]
    );
    assert_eq!(seqs(h.frames(bob), &user_stream("bob")), vec![1, 2, 3, 4]);
    assert_eq!(h.frames(bob)[0]["seq"], 4, "welcome announces the head");
    let second = h.connect("bob");
    assert_eq!(
        labels(h.frames(second)),
        vec!["welcome"],
        "buffered events go to one connection"
    );
    assert!(!h.publish(user("bob"), msg("m3")).buffered);
}

#[test]
fn buffering_starts_again_when_the_users_last_connection_closes() {
    let mut h = harness();
    let bob = h.connect("bob");
    assert_eq!(h.publish(user("bob"), msg("m1")).reached, 1);
    h.drop_connection(bob);
    publish_each(&mut h, &user("bob"), 2..=3);

    let again = h.connect("bob");
    assert_eq!(labels(h.frames(again)), vec!["welcome", "m2", "m3"]);
}

#[test]
fn a_waiter_is_resolved_by_the_same_open_that_hands_out_the_buffered_events() {
    let now = Instant::now();
    let mut hub = Hub::new(small_config());
    let bob = "bob".into();
    let waiter = hub.wait_for_connection(&bob, now + Duration::from_secs(30));
    for e in ["m1", "m2"] {
        let d = hub.publish(now, user("bob"), &msg(e)).unwrap();
        assert!(d.buffered);
    }
    assert_eq!(hub.stats().waiters, 1);

    let conn = hub.open(now, Open::new("bob")).unwrap();
    let mut outputs = Vec::new();
    while let Some(out) = hub.poll_output() {
        outputs.push(match out {
            Output::Socket(SocketOutput::Send { conn: c, frame }) => {
                assert_eq!(c, conn);
                labels(&[serde_json::from_slice(&frame).unwrap()]).remove(0)
            }
            Output::Notice(Notice::Opened { conn: c, .. }) if c == conn => "opened".into(),
            Output::Notice(Notice::UserConnected {
                waiter: w,
                user,
                conn: c,
            }) if w == waiter && user == bob && c == conn => "user_connected".into(),
            other => panic!("unexpected output {other:?}"),
        });
    }
    assert_eq!(
        outputs,
        vec!["welcome", "m1", "m2", "opened", "user_connected"]
    );
    assert_eq!(hub.stats().waiters, 0);
}

#[test]
fn a_waiter_that_expires_leaves_the_buffered_events_for_the_next_connection() {
    let mut h = harness();
    let deadline = h.now() + Duration::from_secs(5);
    let waiter = h.with_hub(|hub, _| hub.wait_for_connection(&"bob".into(), deadline));
    h.publish(user("bob"), msg("m1"));
    h.advance(Duration::from_secs(6));

    assert_eq!(
        h.notices(),
        vec![Notice::WaitExpired {
            waiter,
            user: "bob".into()
        }]
    );
    let bob = h.connect("bob");
    assert_eq!(labels(h.frames(bob)), vec!["welcome", "m1"]);
    assert!(!h
        .notices()
        .iter()
        .any(|n| matches!(n, Notice::UserConnected { .. })));
}

#[test]
fn buffered_events_expire_with_history_age_and_the_cut_is_announced_as_a_gap() {
    let mut h = harness();
    h.publish(user("bob"), msg("m1"));
    h.advance(Duration::from_secs(30));
    h.publish(user("bob"), msg("m2"));
    h.advance(MAX_AGE - Duration::from_secs(30) + CLEANUP);

    let bob = h.connect("bob");
    assert_eq!(labels(h.frames(bob)), vec!["welcome", "gap", "m2"]);
    let gap = &h.frames_of(bob, "gap")[0];
    assert_eq!(
        (&gap["from"], &gap["to"], &gap["reason"]),
        (&json!(1), &json!(1), &json!("history"))
    );
}

#[test]
fn buffered_events_all_older_than_max_age_are_gone_when_the_user_connects() {
    let mut h = harness();
    publish_each(&mut h, &user("bob"), 1..=3);
    h.advance(MAX_AGE + CLEANUP);

    let bob = h.connect("bob");
    assert_eq!(labels(h.frames(bob)), vec!["welcome"]);
    assert_eq!(
        h.frames(bob)[0]["seq"],
        0,
        "a new stream starts from nothing"
    );
}

/// A thread message while the user is online elsewhere waits for that thread: the publish says
/// it was buffered, the first connection to bind the thread gets it, and only that one.
#[test]
fn a_message_to_a_thread_nobody_has_open_waits_for_the_first_connection_that_binds_it() {
    let mut h = harness();
    let phone = h.open(Open::new("alice").thread("t1")).unwrap();
    let d = h.publish(thread("alice", "t2"), msg("for-t2"));
    assert_eq!((d.reached, d.buffered), (0, true));
    assert!(h.events(phone).is_empty());

    h.send(phone, r#"{"type":"bind","thread":"t2"}"#);
    assert_eq!(h.events(phone), vec!["for-t2"]);

    let laptop = h.open(Open::new("alice").thread("t2")).unwrap();
    assert_eq!(labels(h.frames(laptop)), vec!["welcome"], "claimed once");
    let d = h.publish(thread("alice", "t2"), msg("live"));
    assert_eq!((d.reached, d.buffered), (2, false));
}

/// Offline buffering follows threads: a connection that opens on one thread takes that thread's
/// and the unthreaded messages; another thread's wait for a connection of theirs.
#[test]
fn the_first_connection_back_takes_only_what_its_thread_selects() {
    let mut h = harness();
    h.publish(user("alice"), msg("everyone"));
    h.publish(thread("alice", "t1"), msg("t1-only"));
    h.publish(thread("alice", "t2"), msg("t2-only"));

    let on_t1 = h.open(Open::new("alice").thread("t1")).unwrap();
    assert_eq!(h.events(on_t1), vec!["everyone", "t1-only"]);
    let on_t2 = h.open(Open::new("alice").thread("t2")).unwrap();
    assert_eq!(h.events(on_t2), vec!["t2-only"]);
    assert_eq!(seqs(h.frames(on_t2), &user_stream("alice")), vec![3]);
}

/// A publish with an except-set that leaves nobody is not buffered: `except` names connections
/// that must not get it, and no other connection was meant to.
#[test]
fn a_message_whose_except_set_covers_every_connection_is_not_buffered() {
    let mut h = harness();
    let only = h.connect("alice");
    let d = h.publish(user("alice").except([only]), msg("not-for-you"));
    assert_eq!((d.reached, d.buffered), (0, false));
    h.drop_connection(only);
    let next = h.connect("alice");
    assert!(h.events(next).is_empty());
}

/// A `resume` frame after an open that already replayed run events cannot replay them again:
/// the connection is positioned, so an older position is `already_live`.
#[test]
fn a_resume_frame_after_a_run_catch_up_never_duplicates_run_events() {
    let mut h = harness();
    let _keeper = h.open(Open::new("alice").thread("t1")).unwrap();
    agent(&mut h, "alice", "r1", Some("t1"), started());
    agent(&mut h, "alice", "r1", Some("t1"), thinking("a"));

    let late = h.open(Open::new("alice").thread("t1")).unwrap();
    let epoch = welcome_epoch(&h, late);
    send_resume(
        &mut h,
        late,
        &user_stream("alice"),
        Position { epoch, seq: 0 },
        1,
    );
    assert_eq!(
        run_kinds(h.frames(late), "r1"),
        vec!["agent_started", "agent_thinking"]
    );
    assert_eq!(h.frames_of(late, "error")[0]["code"], "already_live");
}
