//! Recovery across reconnects: a client that says where it was receives exactly what it missed,
//! in order and once, before the live tail; a `gap` (with its exact range and reason) when
//! history no longer reaches back or the epoch changed; and agent runs in automaton order across
//! a drop. Resume frames on a live connection (`resumed`, `already_live`) are in
//! `resume_frames.rs`.

mod support;

use serde_json::{json, Value};
use support::*;
use switchboard::testing::Harness;
use switchboard::{ConnId, Open, Position, Reason, StreamId};

/// The single frame of `kind` that `conn` received.
fn only(h: &Harness, conn: ConnId, kind: &str) -> Value {
    let frames = h.frames_of(conn, kind);
    assert_eq!(frames.len(), 1, "{kind} frames: {frames:?}");
    frames[0].clone()
}

/// Asserts that `gap` covers `from..=to` of `stream` in `epoch`, for `reason`.
fn assert_gap(gap: &Value, stream: &StreamId, epoch: u64, from: u64, to: u64, reason: &str) {
    let expected = json!({
        "type": "gap",
        "stream": stream.to_string(),
        "epoch": epoch,
        "from": from,
        "to": to,
        "reason": reason,
    });
    assert_eq!(gap, &expected);
}

// ----- reconnecting with a position -------------------------------------------------------

#[test]
fn reconnecting_replays_exactly_the_missed_user_messages_then_the_live_tail() {
    let mut h = harness();
    let _phone = h.connect("alice");
    let old = h.connect("alice");
    publish_each(&mut h, &user("alice"), 1..=3);
    h.drop_connection(old);
    publish_each(&mut h, &user("alice"), 4..=6);

    let plain = h.connect("alice");
    let resumed = h.reconnect(old, Open::new("alice")).unwrap();
    h.publish(user("alice"), msg("m7"));

    assert_eq!(
        labels(h.frames(plain)),
        vec!["welcome", "m7"],
        "without a position nothing is replayed while another connection was open"
    );
    assert_eq!(
        labels(h.frames(resumed)),
        vec!["welcome", "m4", "m5", "m6", "m7"]
    );
    assert_eq!(
        seqs(h.frames(resumed), &user_stream("alice")),
        vec![4, 5, 6, 7]
    );
    assert_eq!(h.hub().stats().counters.replayed, 3);
}

#[test]
fn resuming_at_the_head_replays_nothing_and_announces_no_gap() {
    let mut h = harness();
    let first = h.connect("alice");
    publish_each(&mut h, &user("alice"), 1..=3);
    h.drop_connection(first);
    let second = h.reconnect(first, Open::new("alice")).unwrap();
    h.drop_connection(second);

    let third = h.reconnect(second, Open::new("alice")).unwrap();
    assert_eq!(labels(h.frames(third)), vec!["welcome"]);
    assert_eq!(h.hub().stats().counters.gaps, 0);
}

#[test]
fn a_publish_right_after_the_reconnect_arrives_once_after_the_replay() {
    let mut h = harness();
    let old = h.connect("alice");
    h.publish(user("alice"), msg("m1"));
    h.drop_connection(old);
    h.publish(user("alice"), msg("m2"));

    let new = h.reconnect(old, Open::new("alice")).unwrap();
    let racing = h.publish(user("alice"), msg("m3"));

    assert_eq!(racing.reached, 1);
    assert!(!racing.buffered);
    assert_eq!(labels(h.frames(new)), vec!["welcome", "m2", "m3"]);
    assert_eq!(seqs(h.frames(new), &user_stream("alice")), vec![2, 3]);
}

#[test]
fn a_reconnect_before_the_old_socket_is_reported_closed_still_gets_each_message_once() {
    let mut h = harness();
    let old = h.connect("alice");
    h.publish(user("alice"), msg("m1"));
    h.set_reading(old, false); // the old socket went silent; the hub does not know yet
    h.publish(user("alice"), msg("m2"));

    let new = h.reconnect(old, Open::new("alice")).unwrap();
    assert_eq!(h.publish(user("alice"), msg("m3")).reached, 2);
    h.drop_connection(old);
    h.publish(user("alice"), msg("m4"));

    assert_eq!(labels(h.frames(new)), vec!["welcome", "m2", "m3", "m4"]);
}

#[test]
fn a_resumed_connection_receives_only_the_missed_messages_its_thread_selects() {
    let mut h = harness();
    let _phone = h.connect("alice");
    let old = h.open(Open::new("alice").thread("t1")).unwrap();
    h.publish(user("alice"), msg("m1"));
    h.drop_connection(old);
    h.publish(thread("alice", "t1"), msg("mine"));
    h.publish(thread("alice", "t2"), msg("other"));
    h.publish(user("alice"), msg("all"));

    let new = h.reconnect(old, Open::new("alice").thread("t1")).unwrap();
    assert_eq!(labels(h.frames(new)), vec!["welcome", "mine", "all"]);
    assert_eq!(seqs(h.frames(new), &user_stream("alice")), vec![2, 4]);
    let unbound = h.reconnect(old, Open::new("alice")).unwrap();
    assert_eq!(labels(h.frames(unbound)), vec!["welcome", "all"]);
}

#[test]
fn a_slow_consumer_closed_with_4008_recovers_every_discarded_message_by_reconnecting() {
    let mut h = harness();
    let old = h.connect("alice");
    h.publish(user("alice"), big("seen"));
    h.set_reading(old, false);
    let filled = fill_queue(&mut h, &user("alice"), old, QUEUE);
    h.publish(user("alice"), big("overflow"));
    assert_eq!(h.closed(old), Some((4008, Reason::SlowConsumer)));
    // What was already written to the socket still reaches the client before the close.
    h.set_reading(old, true);
    let read_before_close = h.events(old);
    assert!(read_before_close.len() > 1 && read_before_close.len() < filled + 1);

    let new = h.reconnect(old, Open::new("alice")).unwrap();
    let mut all = vec!["seen".to_owned()];
    all.extend(fills(filled));
    all.push("overflow".into());
    assert_eq!(h.events(new), all[read_before_close.len()..]);
    assert_eq!(h.closed(new), None);
}

/// A replay is bounded by history, not by the queue: a reconnecting client with a long backlog
/// gets all of it in order instead of a 4008 on every attempt; live frames behind the replay
/// are still held to the queue limits.
#[test]
fn a_replay_larger_than_the_in_flight_budget_plus_the_queue_is_delivered_whole() {
    let mut h = harness();
    let _phone = h.connect("alice");
    let old = h.connect("alice");
    h.publish(user("alice"), msg("m0"));
    h.drop_connection(old);
    for i in 1..=HISTORY {
        h.publish(user("alice"), big(&format!("big{i}")));
    }

    let new = h.reconnect(old, Open::new("alice")).unwrap();
    assert_eq!(h.closed(new), None);
    let in_order: Vec<String> = (1..=HISTORY).map(|i| format!("big{i}")).collect();
    assert_eq!(h.events(new), in_order);

    h.take(new);
    h.set_reading(new, false);
    let filled = fill_queue(&mut h, &user("alice"), new, QUEUE);
    assert!(filled > 0);
    h.publish(user("alice"), big("overflow"));
    assert_eq!(h.closed(new), Some((4008, Reason::SlowConsumer)));
}

#[test]
fn a_large_replay_beyond_the_in_flight_budget_arrives_in_order_with_thoughts_coalesced() {
    let mut h = harness();
    let _phone = h.connect("alice");
    let old = h.connect("alice");
    h.publish(user("alice"), msg("m0"));
    h.drop_connection(old);
    for i in 1..=4 {
        h.publish(user("alice"), big(&format!("big{i}")));
    }
    agent(&mut h, "alice", "r1", None, started());
    for t in ["t1", "t2", "t3"] {
        agent(&mut h, "alice", "r1", None, thinking(t));
    }
    agent(&mut h, "alice", "r1", None, tool_executing("search"));

    let new = h.reconnect(old, Open::new("alice")).unwrap();
    assert_eq!(
        labels(h.frames(new)),
        vec![
            "welcome",
            "big1",
            "big2",
            "big3",
            "big4",
            "agent_started",
            "agent_thinking",
            "tool_executing"
        ]
    );
    assert_eq!(thoughts(h.frames(new)), vec!["t3"]);
    assert_eq!(drops(&h, Reason::Coalesced), 2);
    let stream_seqs = seqs(h.frames(new), &user_stream("alice"));
    assert!(
        stream_seqs.windows(2).all(|w| w[0] < w[1]),
        "{stream_seqs:?}"
    );
}

// ----- rooms ------------------------------------------------------------------------------

#[test]
fn reconnecting_rejoins_rooms_with_joined_then_the_missed_messages_and_no_resumed_frame() {
    let mut h = harness();
    let old = h.connect("alice");
    join(&mut h, old, "lobby");
    publish_each(&mut h, &room("lobby"), 1..=2);
    h.drop_connection(old);
    publish_each(&mut h, &room("lobby"), 3..=5);

    let new = h.reconnect(old, Open::new("alice")).unwrap();
    h.publish(room("lobby"), msg("m6"));

    assert_eq!(
        labels(h.frames(new)),
        vec!["welcome", "joined", "m3", "m4", "m5", "m6"]
    );
    assert_eq!(only(&h, new, "joined")["seq"], 5);
    assert_eq!(seqs(h.frames(new), &room_stream("lobby")), vec![3, 4, 5, 6]);
}

#[test]
fn a_room_message_between_reopening_and_the_resume_frame_is_replayed_once() {
    let mut h = harness();
    let old = h.connect("alice");
    join(&mut h, old, "lobby");
    h.publish(room("lobby"), msg("m1"));
    let position = client_position(&h, old, &room_stream("lobby"));
    h.drop_connection(old);

    let new = h.connect("alice");
    h.publish(room("lobby"), msg("m2"));
    send_resume(&mut h, new, &room_stream("lobby"), position, 1);
    h.publish(room("lobby"), msg("m3"));

    assert_eq!(labels(h.frames(new)), vec!["welcome", "joined", "m2", "m3"]);
    assert_eq!(only(&h, new, "joined")["ref"], 1);
}

#[test]
fn join_with_since_replays_after_joined_before_any_live_message() {
    let mut h = harness();
    let bob = h.connect("bob");
    let alice = h.connect("alice");
    join(&mut h, bob, "lobby");
    join(&mut h, alice, "lobby");
    h.send(
        bob,
        r#"{"type":"publish","room":"lobby","event":"hi","data":1}"#,
    );
    let since = client_position(&h, alice, &room_stream("lobby"));
    h.send(alice, r#"{"type":"leave","room":"lobby"}"#);
    h.send(
        bob,
        r#"{"type":"publish","room":"lobby","event":"missed","data":2}"#,
    );
    h.publish(room("lobby"), msg("also-missed"));
    h.take(alice);

    join_since(&mut h, alice, "lobby", since);
    h.publish(room("lobby"), msg("live"));

    let frames = h.take(alice);
    assert_eq!(
        labels(&frames),
        vec!["joined", "missed", "also-missed", "live"]
    );
    assert_eq!(frames[0]["seq"], 3, "joined announces the head");
    assert_eq!(frames[1]["from"], "bob");
    assert_eq!(seqs(&frames, &room_stream("lobby")), vec![2, 3, 4]);
}

// ----- gaps -------------------------------------------------------------------------------

#[test]
fn a_user_position_older_than_history_gets_a_history_gap_with_the_exact_range_then_the_rest() {
    let mut h = harness();
    let _phone = h.connect("alice");
    let old = h.connect("alice");
    publish_each(&mut h, &user("alice"), 1..=2);
    h.drop_connection(old);
    publish_each(&mut h, &user("alice"), 3..=30);

    let new = h.reconnect(old, Open::new("alice")).unwrap();
    let stream = user_stream("alice");
    let epoch = welcome_epoch(&h, new);
    let oldest = 30 - HISTORY as u64 + 1;
    assert_gap(&h.frames(new)[1], &stream, epoch, 3, oldest - 1, "history");
    assert_eq!(h.events(new), names(oldest as usize..=30));
    assert_eq!(h.hub().stats().counters.gaps, 1);
}

#[test]
fn a_room_position_older_than_history_gets_a_history_gap_after_joined_then_the_rest() {
    let mut h = harness();
    let old = h.connect("alice");
    join(&mut h, old, "lobby");
    h.publish(room("lobby"), msg("m1"));
    h.drop_connection(old);
    publish_each(&mut h, &room("lobby"), 2..=20);

    let new = h.reconnect(old, Open::new("alice")).unwrap();
    let epoch = head(&h, &room_stream("lobby")).epoch;
    let frames = h.frames(new);
    assert_eq!(labels(&frames[..3]), vec!["welcome", "joined", "gap"]);
    assert_gap(&frames[2], &room_stream("lobby"), epoch, 2, 4, "history");
    assert_eq!(h.events(new), names(5..=20));
}

#[test]
fn a_position_from_before_a_restart_gets_an_epoch_gap_then_the_new_history() {
    let mut before = harness();
    let old = before.connect("alice");
    publish_each(&mut before, &user("alice"), 1..=3);
    let position = client_position(&before, old, &user_stream("alice"));

    let mut config = small_config();
    config.epoch_base = 1_000;
    let mut after = Harness::new(config);
    after.publish(user("alice"), msg("n1"));
    let new = after.open(Open::new("alice").resume(position)).unwrap();

    assert_ne!(position.epoch, 1_000);
    assert_eq!(labels(after.frames(new)), vec!["welcome", "gap", "n1"]);
    assert_gap(
        &after.frames(new)[1],
        &user_stream("alice"),
        1_000,
        1,
        0,
        "epoch",
    );
}

#[test]
fn a_position_in_a_stream_whose_history_expired_gets_an_epoch_gap_from_the_recreated_stream() {
    let mut h = harness();
    let old = h.connect("alice");
    h.publish(user("alice"), msg("m1"));
    let old_epoch = welcome_epoch(&h, old);
    h.drop_connection(old);
    h.advance(MAX_AGE + CLEANUP);
    h.publish(user("alice"), msg("n1"));

    let new = h.reconnect(old, Open::new("alice")).unwrap();
    let epoch = welcome_epoch(&h, new);
    assert!(epoch > old_epoch, "a recreated stream has a newer epoch");
    assert_eq!(labels(h.frames(new)), vec!["welcome", "gap", "n1"]);
    assert_gap(
        &h.frames(new)[1],
        &user_stream("alice"),
        epoch,
        1,
        0,
        "epoch",
    );
}

#[test]
fn a_position_beyond_the_head_is_treated_as_another_epoch() {
    let mut h = harness();
    let _phone = h.connect("alice");
    publish_each(&mut h, &user("alice"), 1..=2);
    let current = head(&h, &user_stream("alice"));
    let ahead = Position {
        epoch: current.epoch,
        seq: 9,
    };

    let new = h.open(Open::new("alice").resume(ahead)).unwrap();
    assert_eq!(labels(h.frames(new)), vec!["welcome", "gap", "m1", "m2"]);
    assert_gap(
        &h.frames(new)[1],
        &user_stream("alice"),
        current.epoch,
        1,
        0,
        "epoch",
    );
}

#[test]
fn a_room_resume_with_a_foreign_epoch_whose_history_was_cut_reports_the_cut_of_the_new_epoch() {
    let mut h = harness();
    let member = h.connect("bob");
    join(&mut h, member, "lobby");
    publish_each(&mut h, &room("lobby"), 1..=20);
    let alice = h.connect("alice");
    let foreign = Position { epoch: 999, seq: 3 };

    send_resume(&mut h, alice, &room_stream("lobby"), foreign, 2);
    let epoch = head(&h, &room_stream("lobby")).epoch;
    let gap = only(&h, alice, "gap");
    assert_gap(&gap, &room_stream("lobby"), epoch, 1, 4, "epoch");
    assert_eq!(h.events(alice), names(5..=20));
}

// ----- agent runs across a drop -----------------------------------------------------------

#[test]
fn a_client_that_drops_mid_run_and_resumes_sees_the_run_in_automaton_order_each_event_once() {
    let mut h = harness();
    let old = h.open(Open::new("alice").thread("t1")).unwrap();
    agent(&mut h, "alice", "r1", Some("t1"), started());
    agent(&mut h, "alice", "r1", Some("t1"), thinking("plan"));
    agent(&mut h, "alice", "r1", Some("t1"), tool_executing("search"));
    h.drop_connection(old);
    agent(&mut h, "alice", "r1", Some("t1"), tool_completed("search"));
    agent(&mut h, "alice", "r1", Some("t1"), thinking("answer"));

    let new = h.reconnect(old, Open::new("alice").thread("t1")).unwrap();
    agent(&mut h, "alice", "r1", Some("t1"), completed());

    let automaton_order = vec![
        "agent_started",
        "agent_thinking",
        "tool_executing",
        "tool_completed",
        "agent_thinking",
        "agent_completed",
    ];
    // The client resumed from its position: it gets what followed, not the run again, so the
    // old connection's frames and the new one's together are the run, each event once.
    let seen_by_old = seqs(h.frames(old), &user_stream("alice"));
    let seen_by_new = seqs(h.frames(new), &user_stream("alice"));
    assert_eq!(seen_by_old, vec![1, 2, 3]);
    assert_eq!(seen_by_new, vec![4, 5, 6]);
    let mut story = run_kinds(h.frames(old), "r1");
    story.extend(run_kinds(h.frames(new), "r1"));
    assert_eq!(story, automaton_order);
    assert_eq!(labels(&h.frames(new)[..1]), vec!["welcome"]);
}

#[test]
fn a_run_that_ended_while_the_client_was_away_is_replayed_once_from_the_position_only() {
    let mut h = harness();
    let old = h.open(Open::new("alice").thread("t1")).unwrap();
    agent(&mut h, "alice", "r1", Some("t1"), started());
    agent(&mut h, "alice", "r1", Some("t1"), thinking("plan"));
    h.drop_connection(old);
    agent(&mut h, "alice", "r1", Some("t1"), thinking("more"));
    agent(&mut h, "alice", "r1", Some("t1"), completed());

    let new = h.reconnect(old, Open::new("alice").thread("t1")).unwrap();
    assert_eq!(
        run_kinds(h.frames(new), "r1"),
        vec!["agent_thinking", "agent_completed"]
    );
    assert_eq!(seqs(h.frames(new), &user_stream("alice")), vec![3, 4]);
    assert_eq!(h.hub().stats().runs_active, 0);
}

// ----- positions at the end of the number range ---------------------------------------------

/// The largest position a client can write: sequence numbers (and epochs) are `u64`.
const LAST: u64 = u64::MAX;

#[test]
fn a_connect_position_at_the_largest_sequence_number_is_beyond_the_head_an_epoch_gap_and_the_whole_history(
) {
    let mut h = harness();
    let _keep = h.connect("alice");
    publish_each(&mut h, &user("alice"), 1..=2);
    let epoch = head(&h, &user_stream("alice")).epoch;

    for position in [
        Position { epoch, seq: LAST },
        Position {
            epoch: LAST,
            seq: LAST,
        },
    ] {
        let conn = h.open(Open::new("alice").resume(position)).unwrap();
        let frames = h.take(conn);
        assert_eq!(labels(&frames), vec!["welcome", "gap", "m1", "m2"]);
        assert_gap(&frames[1], &user_stream("alice"), epoch, 1, 0, "epoch");
        h.drop_connection(conn);
    }
}

#[test]
fn resume_and_join_frames_at_the_largest_sequence_number_are_answered_without_overflow() {
    let mut h = harness();
    let bob = h.connect("bob");
    join(&mut h, bob, "lobby");
    publish_each(&mut h, &room("lobby"), 1..=2);
    let room_epoch = head(&h, &room_stream("lobby")).epoch;
    let alice = h.connect("alice");
    h.publish(user("alice"), msg("u1"));
    let user_epoch = head(&h, &user_stream("alice")).epoch;
    h.take(alice);

    // Not in the room yet: the position is beyond the head, so the whole history follows.
    join_since(
        &mut h,
        alice,
        "lobby",
        Position {
            epoch: room_epoch,
            seq: LAST,
        },
    );
    let frames = h.take(alice);
    assert_eq!(labels(&frames), vec!["joined", "gap", "m1", "m2"]);
    assert_gap(&frames[1], &room_stream("lobby"), room_epoch, 1, 0, "epoch");

    // Live on both streams now: a position past everything misses nothing; one of another
    // epoch would replay behind live messages.
    h.publish(room("lobby"), msg("m3"));
    assert_eq!(take_labels(&mut h, alice), vec!["m3"]);
    for (stream, epoch) in [
        (room_stream("lobby"), room_epoch),
        (user_stream("alice"), user_epoch),
    ] {
        send_resume(&mut h, alice, &stream, Position { epoch, seq: LAST }, 5);
        let frames = h.take(alice);
        assert_eq!(labels(&frames), vec!["resumed"], "{stream}");
        assert_eq!(frames[0]["ref"], 5);
        let elsewhere = Position {
            epoch: LAST,
            seq: LAST,
        };
        send_resume(&mut h, alice, &stream, elsewhere, 6);
        let refused = h.take(alice);
        assert_eq!(labels(&refused), vec!["error"], "{stream}");
        assert_eq!(refused[0]["code"], "already_live");
    }
    assert_eq!(h.closed(alice), None);
}
