//! What all the histories of a hub hold together: `HistoryConfig::max_total_bytes` bounds it,
//! trimming the streams that went longest without a new message first, oldest entries first,
//! so that a reader behind the trim gets an exact `gap` and an offline user's next connection
//! learns what was lost; and a room without members keeps its history only for the shorter
//! `HistoryConfig::empty_room_max_age`.

mod support;

use serde_json::json;
use std::time::Duration;
use support::*;
use switchboard::testing::Harness;
use switchboard::{Config, ConnId, Message, Position};

/// A message whose frame is the same size in every room and user stream named with three
/// letters, whatever its one-digit number.
fn sized(event: &str) -> Message {
    Message::new(event, json!({ "pad": "x".repeat(400) }))
}

fn config(max_total_bytes: usize) -> Config {
    let mut config = small_config();
    config.history.max_total_bytes = max_total_bytes;
    config
}

/// Bob in rooms `r-q` (quiet) and `r-b` (busy); `quiet` messages published to the quiet
/// room, then `busy` to the busy one.
fn two_rooms(max_total_bytes: usize, quiet: usize, busy: usize) -> (Harness, ConnId) {
    let mut h = Harness::new(config(max_total_bytes));
    let bob = h.connect("bob");
    join(&mut h, bob, "r-q");
    join(&mut h, bob, "r-b");
    for i in 1..=quiet {
        h.publish(room("r-q"), sized(&format!("q{i}")));
    }
    for i in 1..=busy {
        h.publish(room("r-b"), sized(&format!("b{i}")));
    }
    (h, bob)
}

/// The bytes of history that `quiet` + `busy` messages take (measured without a budget).
fn bytes_of(quiet: usize, busy: usize) -> usize {
    let (h, _) = two_rooms(usize::MAX, quiet, busy);
    h.hub().stats().history_bytes
}

#[test]
fn past_the_budget_the_room_idle_longest_loses_its_oldest_messages_and_a_late_joiner_gets_the_exact_gap(
) {
    let budget = bytes_of(3, 3);
    let (mut h, bob) = two_rooms(budget, 3, 5);

    let stats = h.hub().stats();
    assert_eq!(
        stats.counters.history_trimmed, 2,
        "b4 and b5 each took one place"
    );
    assert_eq!((stats.history_messages, stats.history_bytes), (6, budget));
    assert_eq!(h.closed(bob), None);

    let alice = h.connect("alice");
    let epoch = h.hub().stream_position(&room_stream("r-q")).unwrap().epoch;
    join_since(&mut h, alice, "r-q", Position { epoch, seq: 0 });
    let frames = h.take(alice);
    assert_eq!(labels(&frames), vec!["welcome", "joined", "gap", "q3"]);
    let gap = &frames[2];
    assert_eq!(
        (&gap["from"], &gap["to"], &gap["reason"]),
        (&json!(1), &json!(2), &json!("history"))
    );
    // The busy room lost nothing: the quiet one still had entries to give.
    join_since(
        &mut h,
        alice,
        "r-b",
        Position {
            epoch: epoch + 1,
            seq: 0,
        },
    );
    assert_eq!(
        take_labels(&mut h, alice),
        vec!["joined", "b1", "b2", "b3", "b4", "b5"]
    );
}

#[test]
fn a_message_waiting_for_an_offline_user_that_the_budget_trims_is_announced_as_lost_to_its_next_connection(
) {
    let budget = bytes_of(2, 0);
    let mut h = Harness::new(config(budget));
    let bob = h.connect("bob");
    join(&mut h, bob, "r-b");
    for event in ["c1", "c2"] {
        let delivery = h.publish(user("cat"), sized(event));
        assert!(delivery.buffered);
    }
    h.publish(room("r-b"), sized("b1"));

    let cat = h.connect("cat");
    let frames = h.take(cat);
    assert_eq!(labels(&frames), vec!["welcome", "gap", "c2"]);
    let gap = &frames[1];
    assert_eq!(
        (&gap["stream"], &gap["from"], &gap["to"], &gap["reason"]),
        (&json!("user:cat"), &json!(1), &json!(1), &json!("history"))
    );
}

#[test]
fn a_user_whose_waiting_messages_were_all_trimmed_still_learns_of_them_when_it_connects() {
    let budget = bytes_of(2, 0);
    let mut h = Harness::new(config(budget));
    let bob = h.connect("bob");
    join(&mut h, bob, "r-b");
    for event in ["c1", "c2"] {
        h.publish(user("cat"), sized(event));
    }
    h.publish(room("r-b"), sized("b1"));
    h.publish(room("r-b"), sized("b2"));
    h.advance(Duration::from_secs(5));

    let cat = h.connect("cat");
    let frames = h.take(cat);
    assert_eq!(labels(&frames), vec!["welcome", "gap"]);
    assert_eq!(
        (&frames[1]["from"], &frames[1]["to"]),
        (&json!(1), &json!(2))
    );
}

#[test]
fn rooms_joined_published_to_and_left_one_after_another_stay_within_the_budget() {
    // The attack: one connection joins a fresh room, fills its history, leaves, and repeats.
    let budget = 256 * 1024;
    let mut config = config(budget);
    config.history.max_bytes = 64 * 1024;
    let mut h = Harness::new(config);
    let mallory = h.connect("mallory");
    let watcher = h.connect("watcher");
    let frame = |room: &str| {
        json!({"type": "publish", "room": room, "event": "e", "data": "x".repeat(8 * 1024)})
            .to_string()
    };
    for i in 0..40 {
        let room = format!("room-{i}");
        join(&mut h, mallory, &room);
        join(&mut h, watcher, &room);
        for _ in 0..8 {
            h.send(mallory, &frame(&room));
        }
        for conn in [mallory, watcher] {
            h.send(conn, &json!({"type": "leave", "room": room}).to_string());
        }
        assert!(h.hub().stats().history_bytes <= budget, "after room {i}");
        h.advance(Duration::from_secs(1));
    }
    let stats = h.hub().stats();
    assert!(stats.counters.history_trimmed > 0);
    assert_eq!(h.closed(mallory), None, "nothing here is over a limit");
}

#[test]
fn a_room_without_members_keeps_its_history_for_empty_room_max_age_only() {
    let mut config = small_config();
    config.history.empty_room_max_age = Duration::from_secs(10);
    let mut h = Harness::new(config);
    let bob = h.connect("bob");
    for r in ["kept", "left"] {
        join(&mut h, bob, r);
        publish_each(&mut h, &room(r), 1..=2);
    }
    h.send(bob, &json!({"type": "leave", "room": "left"}).to_string());
    let epoch = h.hub().stream_position(&room_stream("left")).unwrap().epoch;

    h.advance(Duration::from_secs(5));
    let alice = h.connect("alice");
    join_since(&mut h, alice, "left", Position { epoch, seq: 0 });
    assert_eq!(
        take_labels(&mut h, alice),
        vec!["welcome", "joined", "m1", "m2"]
    );
    h.send(alice, &json!({"type": "leave", "room": "left"}).to_string());

    h.advance(Duration::from_secs(12));
    assert_eq!(h.hub().stream_position(&room_stream("left")), None);
    assert_eq!(
        h.hub().stats().history_messages,
        2,
        "the room with a member keeps its own"
    );
    h.take(alice);
    join_since(&mut h, alice, "left", Position { epoch, seq: 2 });
    assert_eq!(
        take_labels(&mut h, alice),
        vec!["joined", "gap"],
        "the stream was created anew: an epoch gap"
    );
}
