//! Delivery guarantees of the hub while connections stay open: backpressure (queueing past the
//! in-flight budget, the 4008 slow-consumer close, readers never waiting for each other), the
//! lossy lane (coalesced thinking, ephemeral keys, shedding), sequenced streams and history
//! bounds. Offline buffering is in `offline.rs`, late joiners to agent runs in `late_joiners.rs`.

mod support;

use serde_json::json;
use std::time::Duration;
use support::*;
use switchboard::testing::Harness;
use switchboard::{
    Delivery, EventKind, HistoryConfig, Message, Notice, Open, Position, Reason, Target,
};

// ----- backpressure -------------------------------------------------------------------------

#[test]
fn a_reader_that_stops_reading_is_queued_past_its_budget_then_reads_everything_in_order() {
    let mut h = harness();
    let alice = h.connect("alice");
    h.take(alice);
    h.set_reading(alice, false);
    for i in 1..=8 {
        h.publish(user("alice"), big(&format!("m{i}")));
    }

    let info = h.hub().connection_info(alice).expect("open");
    assert!(info.queued_messages > 0, "nothing was queued: {info:?}");
    assert!(info.inflight_bytes > 0 && info.inflight_bytes <= INFLIGHT);
    assert_eq!(h.hub().stats().queued_messages, info.queued_messages);
    assert!(h.frames(alice).is_empty());
    assert!(
        h.client(alice).flush_awaited,
        "the transport is told that the hub awaits its report"
    );

    h.set_reading(alice, true);
    assert!(!h.client(alice).flush_awaited, "and when it no longer does");
    assert_eq!(h.events(alice), names(1..=8));
    assert_eq!(
        seqs(h.frames(alice), &user_stream("alice")),
        (1..=8).collect::<Vec<u64>>()
    );
    let info = h.hub().connection_info(alice).expect("still open");
    assert_eq!((info.queued_messages, info.inflight_bytes), (0, 0));
    assert_eq!(h.closed(alice), None);
}

/// A client may catch up on a room each time it joins it with `since`, but what it has not read
/// of those replays is bounded (`replay_messages`: one full history for every stream it may be
/// on), apart from the live queue. One that joins, leaves and joins again without reading is
/// closed with 4008 when it reaches the bound, its queue never past it, even where its unread
/// `joined` and `left` replies are far from filling the live queue; one that reads does the
/// same and stays open.
#[test]
fn rejoining_with_since_without_reading_is_bounded_by_replay_messages_then_closed_with_4008() {
    let mut config = small_config();
    config.limits.messages_per_second = 100_000;
    config.limits.message_burst = 100_000;
    config.backpressure.queue_messages = 100_000;
    let bound = config.backpressure.replay_messages;
    let mut h = Harness::new(config);
    let feeder = h.connect("feeder");
    h.send(feeder, r#"{"type":"join","room":"x"}"#);
    for i in 0..HISTORY {
        h.publish(Target::Room("x".into()), msg(&format!("m{i}")));
    }
    let reader = h.connect("reader");
    let stalled = h.connect("stalled");
    h.set_reading(stalled, false);
    let rounds = 2 * bound / HISTORY;
    for _ in 0..rounds {
        for conn in [reader, stalled] {
            h.send(
                conn,
                r#"{"type":"join","room":"x","since":{"epoch":0,"seq":0}}"#,
            );
            h.send(conn, r#"{"type":"leave","room":"x"}"#);
        }
        if let Some(info) = h.hub().connection_info(stalled) {
            assert!(
                info.queued_messages <= bound + 2 * rounds,
                "{} queued past a bound of {bound}",
                info.queued_messages
            );
        }
    }
    assert_eq!(h.closed(stalled), Some((4008, Reason::SlowConsumer)));
    assert_eq!(
        h.closed(reader),
        None,
        "a reader catches up as often as it asks"
    );
    let replayed = h.frames_of(reader, "message").len();
    assert_eq!(replayed, rounds * HISTORY, "every catch-up, whole");
}

#[test]
fn a_reliable_message_past_the_queue_limit_closes_the_reader_with_4008_never_a_silent_drop() {
    let mut h = harness();
    let alice = h.connect("alice");
    h.set_reading(alice, false);
    let published = fill_queue(&mut h, &user("alice"), alice, QUEUE);
    assert_eq!(h.closed(alice), None, "a full queue alone does not close");
    h.notices();

    let overflow = h.publish(user("alice"), big("overflow"));

    assert_eq!(overflow.reached, 0);
    assert_eq!(h.closed(alice), Some((4008, Reason::SlowConsumer)));
    assert_eq!(closes(&h, Reason::SlowConsumer), 1);
    assert_eq!(h.hub().stats().counters.drops.total(), 0);
    assert!(h.hub().connection_info(alice).is_none());
    assert!(h.notices().contains(&Notice::Closed {
        conn: alice,
        user: "alice".into(),
        reason: Reason::SlowConsumer,
    }));
    let head = h
        .hub()
        .stream_position(&user_stream("alice"))
        .expect("kept");
    assert_eq!(
        head.seq,
        published as u64 + 1,
        "the overflowing message is in history"
    );
}

#[test]
fn a_fast_reader_receives_every_room_message_at_once_while_a_slow_one_in_the_room_falls_behind() {
    let mut h = harness();
    let fast = h.connect("fast");
    let slow = h.connect("slow");
    join(&mut h, fast, "lobby");
    join(&mut h, slow, "lobby");
    h.set_reading(slow, false);

    let mut reached = Vec::new();
    for i in 1..=20 {
        reached.push(h.publish(room("lobby"), big(&format!("m{i}"))).reached);
        assert_eq!(h.events(fast).len(), i, "publish {i} waited for someone");
    }

    assert_eq!(h.events(fast), names(1..=20));
    assert_eq!(h.closed(fast), None);
    assert_eq!(h.closed(slow), Some((4008, Reason::SlowConsumer)));
    let closed_at = reached
        .iter()
        .position(|&r| r == 1)
        .expect("slow was closed");
    assert!(closed_at > QUEUE, "slow had its queue before closing");
    assert!(reached[..closed_at].iter().all(|&r| r == 2));
    assert!(reached[closed_at..].iter().all(|&r| r == 1));
}

#[test]
fn a_slow_reader_that_catches_up_before_its_queue_overflows_stays_open_and_loses_nothing() {
    let mut h = harness();
    let fast = h.connect("fast");
    let slow = h.connect("slow");
    join(&mut h, fast, "lobby");
    join(&mut h, slow, "lobby");
    h.set_reading(slow, false);
    let published = fill_queue(&mut h, &room("lobby"), slow, QUEUE);
    h.set_reading(slow, true);
    h.publish(room("lobby"), big("after"));

    let mut expected = fills(published);
    expected.push("after".into());
    assert_eq!(h.events(slow), expected);
    assert_eq!(h.events(fast), expected);
    assert_eq!(h.closed(slow), None);
    assert_eq!(h.hub().stats().queued_messages, 0);
}

#[test]
fn a_graceful_close_hands_out_everything_still_queued_before_the_close_frame() {
    let mut h = harness();
    let alice = h.connect("alice");
    h.set_reading(alice, false);
    let published = fill_queue(&mut h, &user("alice"), alice, QUEUE);

    let closed = h.with_hub(|hub, _| hub.disconnect_user(&"alice".into()));
    assert_eq!(closed, 1);
    assert_eq!(h.closed(alice), Some((4002, Reason::Disconnected)));
    h.set_reading(alice, true);
    assert_eq!(h.events(alice), fills(published));
}

// ----- the lossy lane -----------------------------------------------------------------------

#[test]
fn consecutive_thinking_of_one_run_is_coalesced_to_the_latest_for_a_reader_that_is_behind() {
    let mut h = harness();
    let alice = h.connect("alice");
    agent(&mut h, "alice", "r1", None, started());
    h.set_reading(alice, false);
    fill_queue(&mut h, &user("alice"), alice, 1);
    for t in ["t1", "t2", "t3", "t4", "t5"] {
        agent(&mut h, "alice", "r1", None, thinking(t));
    }
    agent(&mut h, "alice", "r1", None, tool_executing("search"));

    assert_eq!(drops(&h, Reason::Coalesced), 4);
    h.set_reading(alice, true);
    assert_eq!(thoughts(h.frames(alice)), vec!["t5"]);
    assert_eq!(
        run_kinds(h.frames(alice), "r1"),
        vec!["agent_started", "agent_thinking", "tool_executing"]
    );
    let stream_seqs = seqs(h.frames(alice), &user_stream("alice"));
    assert!(
        stream_seqs.windows(2).all(|w| w[0] < w[1]),
        "{stream_seqs:?}"
    );
    let report = h.hub().run_report(&"alice".into(), &"r1".into()).unwrap();
    let thought_events = report
        .events
        .iter()
        .filter(|e| e.kind == EventKind::AgentThinking)
        .count();
    assert_eq!(thought_events, 5, "the run itself keeps every thought");
}

/// Application keys and run thoughts live in separate key spaces: an ephemeral message keyed
/// like a run never replaces that run's thought, nor the other way round.
#[test]
fn an_ephemeral_key_never_coalesces_with_a_runs_thinking() {
    let mut h = harness();
    let alice = h.connect("alice");
    agent(&mut h, "alice", "r1", None, started());
    h.set_reading(alice, false);
    fill_queue(&mut h, &user("alice"), alice, 1);
    h.publish(user("alice"), msg("typing-1").ephemeral("run:r1"));
    agent(&mut h, "alice", "r1", None, thinking("thought"));
    h.publish(user("alice"), msg("typing-2").ephemeral("run:r1"));

    assert_eq!(
        drops(&h, Reason::Coalesced),
        1,
        "typing-2 replaced typing-1 only"
    );
    h.set_reading(alice, true);
    assert_eq!(thoughts(h.frames(alice)), vec!["thought"]);
    let events = h.events(alice);
    assert!(events.contains(&"typing-2".to_owned()) && !events.contains(&"typing-1".to_owned()));
}

#[test]
fn thoughts_coalesced_for_a_slow_reader_stay_in_history_for_a_late_joiner() {
    let mut h = harness();
    let slow = h.connect("alice");
    agent(&mut h, "alice", "r1", None, started());
    h.set_reading(slow, false);
    fill_queue(&mut h, &user("alice"), slow, 1);
    for t in ["t1", "t2", "t3"] {
        agent(&mut h, "alice", "r1", None, thinking(t));
    }

    let late = h.connect("alice");
    assert_eq!(thoughts(h.frames(late)), vec!["t1", "t2", "t3"]);
    assert_eq!(
        run_kinds(h.frames(late), "r1"),
        vec![
            "agent_started",
            "agent_thinking",
            "agent_thinking",
            "agent_thinking"
        ]
    );
}

#[test]
fn thinking_is_coalesced_per_run_and_a_thought_already_handed_out_is_not_taken_back() {
    let mut h = harness();
    let alice = h.connect("alice");
    agent(&mut h, "alice", "r1", None, started());
    agent(&mut h, "alice", "r2", None, started());
    h.set_reading(alice, false);
    agent(&mut h, "alice", "r1", None, thinking("r1-sent"));
    fill_queue(&mut h, &user("alice"), alice, 1);
    agent(&mut h, "alice", "r1", None, thinking("r1-a"));
    agent(&mut h, "alice", "r2", None, thinking("r2-a"));
    agent(&mut h, "alice", "r1", None, thinking("r1-b"));

    assert_eq!(drops(&h, Reason::Coalesced), 1);
    h.set_reading(alice, true);
    assert_eq!(thoughts(h.frames(alice)), vec!["r1-sent", "r2-a", "r1-b"]);
}

#[test]
fn ephemeral_messages_are_coalesced_by_key_unsequenced_while_the_reader_is_behind() {
    let mut h = harness();
    let alice = h.connect("alice");
    h.set_reading(alice, false);
    let filled = fill_queue(&mut h, &user("alice"), alice, 1);
    for i in 1..=3 {
        let cursor = Message::new("cursor", json!(i)).ephemeral("cursor");
        assert_eq!(h.publish(user("alice"), cursor).reached, 1);
    }
    let typing = Message::new("typing", json!(true)).ephemeral("typing");
    let delivery = h.publish(user("alice"), typing);

    assert_eq!(delivery.position, None);
    assert_eq!(drops(&h, Reason::Coalesced), 2);
    assert_eq!(queued(&h, alice), 3);
    h.set_reading(alice, true);
    let events = h.events(alice);
    assert_eq!(events[filled..], ["cursor", "typing"]);
    let cursors = h.frames_of(alice, "message");
    let cursor = &cursors[filled];
    assert_eq!(cursor["data"], 3, "the latest state wins");
    assert!(cursor.get("seq").is_none() && cursor.get("stream").is_none());
}

#[test]
fn an_ephemeral_message_that_does_not_fit_a_full_queue_is_shed_and_the_reader_stays_open() {
    let mut h = harness();
    let fast = h.connect("fast");
    let slow = h.connect("slow");
    join(&mut h, fast, "lobby");
    join(&mut h, slow, "lobby");
    h.set_reading(slow, false);
    let published = fill_queue(&mut h, &room("lobby"), slow, QUEUE);

    let typing = Message::new("typing", json!(true)).ephemeral("typing");
    let delivery = h.publish(room("lobby"), typing);

    assert_eq!(delivery.reached, 1, "only the fast reader got it");
    assert_eq!(drops(&h, Reason::Shed), 1);
    assert_eq!(h.closed(slow), None);
    assert_eq!(queued(&h, slow), QUEUE);
    assert_eq!(h.events(fast).last().map(String::as_str), Some("typing"));
    h.set_reading(slow, true);
    assert_eq!(h.events(slow), fills(published));
}

#[test]
fn an_ephemeral_update_too_large_for_the_queue_is_shed_and_the_state_it_would_replace_is_kept() {
    let mut config = small_config();
    config.backpressure.queue_bytes = 600;
    let mut h = Harness::new(config);
    let alice = h.connect("alice");
    h.set_reading(alice, false);
    fill_queue(&mut h, &user("alice"), alice, 1);
    let small = Message::new("state", json!("old")).ephemeral("state");
    assert_eq!(h.publish(user("alice"), small).reached, 1);

    let large = Message::new("state", json!("x".repeat(300))).ephemeral("state");
    assert_eq!(h.publish(user("alice"), large).reached, 0);

    assert_eq!(drops(&h, Reason::Shed), 1);
    assert_eq!(drops(&h, Reason::Coalesced), 0);
    h.set_reading(alice, true);
    let states: Vec<_> = h
        .frames_of(alice, "message")
        .into_iter()
        .filter(|f| f["event"] == "state")
        .map(|f| f["data"].clone())
        .collect();
    assert_eq!(
        states,
        vec![json!("old")],
        "the reader keeps the last state that fit"
    );
}

#[test]
fn an_ephemeral_message_to_an_offline_user_is_neither_sequenced_nor_buffered() {
    let mut h = harness();
    let typing = Message::new("typing", json!(true)).ephemeral("typing");
    let delivery = h.publish(user("bob"), typing);

    assert_eq!(delivery, Delivery::default());
    let bob = h.connect("bob");
    assert_eq!(labels(h.frames(bob)), vec!["welcome"]);
}

// ----- sequenced streams --------------------------------------------------------------------

#[test]
fn every_user_stream_frame_carries_the_stream_its_epoch_and_a_gap_free_seq() {
    let mut h = harness();
    let alice = h.open(Open::new("alice").thread("t1")).unwrap();
    let epoch = welcome_epoch(&h, alice);
    let mut positions = vec![
        h.publish(user("alice"), msg("m1")).position,
        h.publish(thread("alice", "t1"), msg("m2")).position,
    ];
    positions.push(agent(&mut h, "alice", "r1", Some("t1"), started()).position);
    positions.push(agent(&mut h, "alice", "r1", Some("t1"), thinking("hm")).position);
    positions.push(h.publish(user("alice"), msg("m3")).position);

    let expected: Vec<Option<Position>> =
        (1..=5).map(|seq| Some(Position { epoch, seq })).collect();
    assert_eq!(positions, expected);
    let frames = &h.frames(alice)[1..];
    assert_eq!(frames.len(), 5);
    for (f, seq) in frames.iter().zip(1..) {
        assert_eq!(f["stream"], "user:alice", "{f}");
        assert_eq!(f["epoch"], epoch, "{f}");
        assert_eq!(f["seq"], seq, "{f}");
    }
}

#[test]
fn each_room_has_its_own_stream_numbered_from_one_independently_of_the_others() {
    let mut h = harness();
    let alice = h.connect("alice");
    join(&mut h, alice, "lobby");
    join(&mut h, alice, "games");
    for (r, e) in [
        ("lobby", "l1"),
        ("games", "g1"),
        ("lobby", "l2"),
        ("lobby", "l3"),
        ("games", "g2"),
    ] {
        h.publish(room(r), msg(e));
    }

    let frames = h.frames(alice);
    assert_eq!(seqs(frames, &room_stream("lobby")), vec![1, 2, 3]);
    assert_eq!(seqs(frames, &room_stream("games")), vec![1, 2]);
    let epoch_of = |stream: &str| {
        let f = frames.iter().find(|f| f["stream"] == stream).unwrap();
        f["epoch"].as_u64().unwrap()
    };
    let epochs = [
        epoch_of("room:lobby"),
        epoch_of("room:games"),
        welcome_epoch(&h, alice),
    ];
    assert!(epochs[0] != epochs[1] && epochs[1] != epochs[2] && epochs[0] != epochs[2]);
    let user_head = h.hub().stream_position(&user_stream("alice")).unwrap();
    assert_eq!(user_head.seq, 0, "room messages do not use the user stream");
}

#[test]
fn messages_to_one_connection_or_to_everyone_belong_to_no_stream() {
    let mut h = harness();
    let alice = h.connect("alice");
    let to_conn = h.publish(Target::Connection(alice), msg("direct"));
    let to_all = h.publish(Target::All, msg("broadcast"));

    assert_eq!((to_conn.position, to_all.position), (None, None));
    assert_eq!(h.events(alice), vec!["direct", "broadcast"]);
    for f in h.frames_of(alice, "message") {
        assert!(f.get("seq").is_none() && f.get("stream").is_none(), "{f}");
    }
    let head = h.hub().stream_position(&user_stream("alice")).unwrap();
    assert_eq!(head.seq, 0);
}

#[test]
fn thread_messages_take_seqs_in_the_user_stream_that_other_threads_never_see() {
    let mut h = harness();
    let on_t1 = h.open(Open::new("alice").thread("t1")).unwrap();
    let on_t2 = h.open(Open::new("alice").thread("t2")).unwrap();
    assert_eq!(h.publish(thread("alice", "t1"), msg("a")).reached, 1);
    assert_eq!(h.publish(thread("alice", "t2"), msg("b")).reached, 1);
    assert_eq!(h.publish(user("alice"), msg("c")).reached, 2);

    let stream = user_stream("alice");
    assert_eq!(h.events(on_t1), vec!["a", "c"]);
    assert_eq!(seqs(h.frames(on_t1), &stream), vec![1, 3]);
    assert_eq!(h.events(on_t2), vec!["b", "c"]);
    assert_eq!(seqs(h.frames(on_t2), &stream), vec![2, 3]);
}

// ----- history bounds -----------------------------------------------------------------------

#[test]
fn a_flood_to_an_offline_user_keeps_only_max_messages_and_reports_the_rest_as_a_gap() {
    let mut h = harness();
    let deliveries = publish_each(&mut h, &user("bob"), 1..=1000);

    assert!(deliveries.iter().all(|d| d.buffered && d.reached == 0));
    let stats = h.hub().stats();
    assert_eq!(stats.history_messages, HISTORY);
    assert!(stats.history_bytes <= small_config().history.max_bytes);
    assert_eq!(stats.streams, 1);
    let head = h.hub().stream_position(&user_stream("bob")).unwrap();
    assert_eq!(head.seq, 1000);

    let bob = h.connect("bob");
    let gap = &h.frames_of(bob, "gap")[0];
    assert_eq!(
        (&gap["from"], &gap["to"], &gap["reason"]),
        (&json!(1), &json!(1000 - HISTORY), &json!("history"))
    );
    assert_eq!(h.events(bob), names(1000 - HISTORY + 1..=1000));
    assert_eq!(labels(&h.frames(bob)[..2]), vec!["welcome", "gap"]);
}

#[test]
fn history_is_bounded_by_bytes_as_well_as_by_count() {
    let mut config = small_config();
    config.history = HistoryConfig {
        max_messages: 1000,
        max_bytes: 2048,
        max_age: MAX_AGE,
        ..switchboard::Config::development().history
    };
    let mut h = Harness::new(config);
    for i in 1..=40 {
        h.publish(user("bob"), big(&format!("m{i}")));
    }

    let stats = h.hub().stats();
    assert!(stats.history_bytes <= 2048, "{stats:?}");
    let kept = stats.history_messages;
    assert!((1..40).contains(&kept), "kept {kept}");
    let bob = h.connect("bob");
    assert_eq!(h.events(bob), names(40 - kept + 1..=40));
    assert_eq!(h.frames_of(bob, "gap")[0]["to"], 40 - kept);
}

#[test]
fn history_expires_once_older_than_max_age_at_the_next_cleanup_sweep() {
    let mut h = harness();
    h.publish(user("bob"), msg("m1"));
    h.publish(room("empty"), msg("nobody"));
    h.advance(MAX_AGE - Duration::from_secs(1));
    assert_eq!(h.hub().stats().history_messages, 1);

    h.advance(Duration::from_secs(1) + CLEANUP);
    let stats = h.hub().stats();
    assert_eq!((stats.history_messages, stats.history_bytes), (0, 0));
    assert_eq!(
        stats.streams, 0,
        "an offline user's expired stream is dropped"
    );
    assert!(h.hub().is_idle());
}
