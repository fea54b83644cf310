//! Late joiners to agent runs: a connection that opens on, or binds to, a thread mid-run gets
//! the run so far, then its live tail; finished runs and other users' runs are never replayed.

mod support;

use support::*;
use switchboard::Open;

#[test]
fn a_connection_opened_on_a_thread_mid_run_gets_the_run_so_far_then_its_live_tail() {
    let mut h = harness();
    let phone = h.connect("alice");
    h.publish(user("alice"), msg("before"));
    agent(&mut h, "alice", "r1", Some("t1"), started());
    agent(&mut h, "alice", "r1", Some("t1"), thinking("a"));
    agent(&mut h, "alice", "r1", Some("t1"), tool_executing("search"));

    let late = h.open(Open::new("alice").thread("t1")).unwrap();
    assert_eq!(
        take_labels(&mut h, late),
        vec![
            "welcome",
            "agent_started",
            "agent_thinking",
            "tool_executing"
        ]
    );
    agent(&mut h, "alice", "r1", Some("t1"), tool_completed("search"));
    agent(&mut h, "alice", "r1", Some("t1"), completed());
    assert_eq!(
        take_labels(&mut h, late),
        vec!["tool_completed", "agent_completed"]
    );
    assert_eq!(
        labels(h.frames(phone)),
        vec!["welcome", "before"],
        "a run on a thread skips unbound connections"
    );
}

#[test]
fn a_connection_that_binds_to_a_thread_mid_run_gets_the_run_so_far_after_bound() {
    let mut h = harness();
    let conn = h.connect("alice");
    agent(&mut h, "alice", "r1", Some("t1"), started());
    agent(&mut h, "alice", "r1", Some("t1"), thinking("a"));
    h.take(conn);

    h.send(conn, r#"{"type":"bind","thread":"t1","ref":1}"#);
    assert_eq!(
        take_labels(&mut h, conn),
        vec!["bound", "agent_started", "agent_thinking"]
    );
    agent(&mut h, "alice", "r1", Some("t1"), completed());
    assert_eq!(take_labels(&mut h, conn), vec!["agent_completed"]);
}

#[test]
fn a_finished_run_is_replayed_neither_on_bind_nor_on_open() {
    let mut h = harness();
    let keeper = h.open(Open::new("alice").thread("t1")).unwrap();
    agent(&mut h, "alice", "r1", Some("t1"), started());
    agent(&mut h, "alice", "r1", Some("t1"), completed());
    assert_eq!(h.frames(keeper).len(), 3);

    let opened = h.open(Open::new("alice").thread("t1")).unwrap();
    assert_eq!(labels(h.frames(opened)), vec!["welcome"]);
    let binder = h.connect("alice");
    h.send(binder, r#"{"type":"bind","thread":"t1"}"#);
    assert_eq!(labels(h.frames(binder)), vec!["welcome", "bound"]);
}

#[test]
fn a_late_joiner_gets_only_runs_of_its_own_thread_and_rebinding_the_same_thread_replays_nothing() {
    let mut h = harness();
    let _keeper = h.connect("alice");
    agent(&mut h, "alice", "r1", Some("t1"), started());
    agent(&mut h, "alice", "r2", Some("t2"), started());

    let on_t2 = h.open(Open::new("alice").thread("t2")).unwrap();
    assert_eq!(
        run_frames(h.frames(on_t2)),
        vec![("agent_started".into(), "r2".into(), 2)]
    );
    h.take(on_t2);
    h.send(on_t2, r#"{"type":"bind","thread":"t2"}"#);
    assert_eq!(take_labels(&mut h, on_t2), vec!["bound"]);
    h.send(on_t2, r#"{"type":"bind","thread":"t1"}"#);
    assert_eq!(
        run_frames(&h.take(on_t2)),
        vec![("agent_started".into(), "r1".into(), 1)]
    );
}

#[test]
fn a_run_without_a_thread_is_replayed_to_every_new_connection_but_not_again_on_bind() {
    let mut h = harness();
    let _keeper = h.connect("alice");
    agent(&mut h, "alice", "r1", None, started());
    agent(&mut h, "alice", "r1", None, thinking("a"));

    let late = h.open(Open::new("alice").thread("t9")).unwrap();
    assert_eq!(
        take_labels(&mut h, late),
        vec!["welcome", "agent_started", "agent_thinking"]
    );
    h.send(late, r#"{"type":"bind","thread":"t5"}"#);
    assert_eq!(take_labels(&mut h, late), vec!["bound"]);
    agent(&mut h, "alice", "r1", None, completed());
    assert_eq!(take_labels(&mut h, late), vec!["agent_completed"]);
}

#[test]
fn a_late_joiners_view_of_a_run_starts_where_history_still_holds_it() {
    let mut h = harness();
    let _keeper = h.connect("alice");
    agent(&mut h, "alice", "r1", Some("t1"), started());
    publish_each(&mut h, &user("alice"), 1..=HISTORY);
    agent(&mut h, "alice", "r1", Some("t1"), thinking("late"));

    let late = h.open(Open::new("alice").thread("t1")).unwrap();
    // `agent_started` never reached a connection (none was on t1) and history lost it: the
    // first connection on t1 is told, then gets what is left.
    assert_eq!(
        labels(h.frames(late)),
        vec!["welcome", "gap", "agent_thinking"]
    );
    assert_eq!(h.frames_of(late, "gap")[0]["from"], 1);
    assert_eq!(thoughts(h.frames(late)), vec!["late"]);
}

#[test]
fn runs_of_other_users_are_never_replayed_to_a_late_joiner() {
    let mut h = harness();
    let _bob = h.connect("bob");
    agent(&mut h, "bob", "r1", Some("t1"), started());

    let alice = h.open(Open::new("alice").thread("t1")).unwrap();
    assert_eq!(labels(h.frames(alice)), vec!["welcome"]);
}

#[test]
fn a_late_joiner_that_is_also_the_first_connection_after_being_offline_gets_each_run_event_once() {
    let mut h = harness();
    h.publish(user("alice"), msg("m1"));
    agent(&mut h, "alice", "r1", Some("t1"), started());
    agent(&mut h, "alice", "r1", Some("t1"), thinking("a"));

    let conn = h.open(Open::new("alice").thread("t1")).unwrap();
    assert_eq!(
        labels(h.frames(conn)),
        vec!["welcome", "m1", "agent_started", "agent_thinking"]
    );
    assert_eq!(seqs(h.frames(conn), &user_stream("alice")), vec![1, 2, 3]);
}
