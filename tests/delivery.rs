//! Delivery guarantees of the hub while connections stay open or are absent: backpressure
//! (queueing past the in-flight budget, the 4008 slow-consumer close, readers never waiting for
//! each other), the lossy lane (coalesced thinking, ephemeral keys, shedding), sequenced
//! streams, history bounds, offline buffering and late joiners to agent runs.

mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::*;
use switchboard::testing::Harness;
use switchboard::{
    Delivery, EventKind, HistoryConfig, Hub, Message, Notice, Open, Output, Position, Reason,
    SocketOutput, Target,
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

    h.set_reading(alice, true);
    assert_eq!(h.events(alice), names(1..=8));
    assert_eq!(
        seqs(h.frames(alice), &user_stream("alice")),
        (1..=8).collect::<Vec<u64>>()
    );
    let info = h.hub().connection_info(alice).expect("still open");
    assert_eq!((info.queued_messages, info.inflight_bytes), (0, 0));
    assert_eq!(h.closed(alice), None);
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

// ----- offline buffering --------------------------------------------------------------------

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

// ----- late joiners -------------------------------------------------------------------------

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
