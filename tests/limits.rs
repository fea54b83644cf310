//! Abuse limits on client frames: size, encoding, JSON, types, the inbound rate, and the strikes
//! that close a connection sending bad frames, each with its error code or close code and its
//! counter.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::*;
use switchboard::testing::Harness;
use switchboard::{Config, ConnId, Reason, SocketInput};

/// The documented defaults (every preset has them).
const MAX_FRAME_BYTES: usize = 64 * 1024;
const BURST: usize = 100;
const PER_SECOND: usize = 50;
const MAX_STRIKES: usize = 10;
const STRIKE_REFILL: Duration = Duration::from_secs(6);

/// A harness with the default limits and one connection of alice, its welcome taken.
fn alice() -> (Harness, ConnId) {
    let mut h = Harness::new(Config::production());
    let conn = h.connect("alice");
    h.take(conn);
    (h, conn)
}

/// A `ping` frame padded with an unknown field to exactly `len` bytes.
fn ping_of_len(len: usize) -> String {
    let empty = r#"{"type":"ping","pad":""}"#;
    let frame = format!(
        r#"{{"type":"ping","pad":"{}"}}"#,
        "x".repeat(len - empty.len())
    );
    assert_eq!(frame.len(), len);
    frame
}

/// `conn` sends `n` bad frames (malformed JSON).
fn send_garbage(h: &mut Harness, conn: ConnId, n: usize) {
    for _ in 0..n {
        h.send(conn, "{garbage");
    }
}

/// The last frame `conn` received.
fn last(h: &Harness, conn: ConnId) -> Value {
    h.frames(conn).last().cloned().expect("a frame")
}

/// The documented defaults are what the presets configure.
#[test]
fn the_presets_have_the_documented_default_limits() {
    for config in [
        Config::development(),
        Config::staging(),
        Config::production(),
    ] {
        let l = config.limits;
        assert_eq!(l.max_frame_bytes, MAX_FRAME_BYTES);
        assert_eq!(l.message_burst as usize, BURST);
        assert_eq!(l.messages_per_second as usize, PER_SECOND);
        assert_eq!(l.max_strikes as usize, MAX_STRIKES);
        assert_eq!(l.strike_refill, STRIKE_REFILL);
        assert_eq!(l.max_rooms_per_connection, 64);
        assert_eq!(l.max_members_per_room, 100_000);
        assert_eq!(l.max_active_runs_per_user, 100);
        assert_eq!(l.max_active_runs, l.max_connections);
        let history = config.history;
        assert_eq!(history.max_total_bytes, 256 * 1024 * 1024);
        assert_eq!(history.empty_room_max_age, Duration::from_secs(60));
    }
}

/// A frame of exactly `max_frame_bytes` is accepted.
#[test]
fn a_frame_of_exactly_max_frame_bytes_is_accepted() {
    let (mut h, conn) = alice();
    h.send(conn, &ping_of_len(MAX_FRAME_BYTES));
    assert_eq!(types(h.frames(conn)), vec!["pong"]);
    assert_eq!(h.closed(conn), None);
}

/// A frame one byte over `max_frame_bytes` closes with 1009, with no error frame, counted.
#[test]
fn a_frame_over_max_frame_bytes_closes_with_1009() {
    let (mut h, conn) = alice();
    h.send(conn, &ping_of_len(MAX_FRAME_BYTES + 1));

    assert_eq!(h.closed(conn), Some((1009, Reason::FrameTooLarge)));
    assert!(h.frames(conn).is_empty());
    assert!(h.hub().connection_info(conn).is_none());
    assert_eq!(closes(&h, Reason::FrameTooLarge), 1);
}

/// A text frame that is not UTF-8 closes the connection with 1007.
#[test]
fn a_text_frame_that_is_not_utf8_closes_with_1007() {
    let (mut h, conn) = alice();
    h.send_bytes(conn, b"{\"type\":\"ping\",\"x\":\"\xff\xfe\"}");

    assert_eq!(h.closed(conn), Some((1007, Reason::InvalidUtf8)));
    assert!(h.frames(conn).is_empty());
    assert_eq!(closes(&h, Reason::InvalidUtf8), 1);
}

/// A binary frame is not part of the protocol and closes the connection with 1003.
#[test]
fn a_binary_frame_closes_with_1003() {
    let (mut h, conn) = alice();
    h.socket(SocketInput::Binary {
        conn,
        bytes: br#"{"type":"ping"}"#,
    });

    assert_eq!(h.closed(conn), Some((1003, Reason::BinaryFrame)));
    assert_eq!(closes(&h, Reason::BinaryFrame), 1);
}

/// A frame that is not JSON, or has no string `type`, answers `malformed_json` without `ref`.
#[test]
fn malformed_json_answers_malformed_json_without_ref() {
    let (mut h, conn) = alice();
    h.send(conn, "{not json");
    h.send(conn, r#"{"ref":1,"room":"lobby"}"#);
    h.send(conn, r#"{"type":7,"ref":2}"#);
    h.send(conn, "[]");

    let errors = h.frames_of(conn, "error");
    assert_eq!(error_codes(&errors), vec!["malformed_json"; 4]);
    assert!(errors.iter().all(|e| e.get("ref").is_none()));
    assert!(errors.iter().all(|e| e["message"].is_string()));
    assert_eq!(h.closed(conn), None);
    assert_eq!(drops(&h, Reason::Malformed), 4);
}

/// A frame of an unknown `type` answers `unknown_type` and echoes the `ref`.
#[test]
fn an_unknown_type_answers_unknown_type_with_the_ref() {
    let (mut h, conn) = alice();
    h.send(conn, r#"{"type":"dance","ref":{"id":[1,2]}}"#);

    let error = last(&h, conn);
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "unknown_type");
    assert_eq!(error["ref"], json!({"id": [1, 2]}));
    assert_eq!(drops(&h, Reason::UnknownType), 1);
}

/// A known type with a missing or mistyped field answers `invalid_frame` with the `ref`.
#[test]
fn a_known_type_with_a_bad_field_answers_invalid_frame() {
    let (mut h, conn) = alice();
    h.send(conn, r#"{"type":"join","ref":1}"#);
    h.send(conn, r#"{"type":"join","room":5,"ref":2}"#);
    h.send(
        conn,
        r#"{"type":"resume","streams":[{"stream":"nope","epoch":1,"seq":1}],"ref":3}"#,
    );

    let errors = h.frames_of(conn, "error");
    assert_eq!(error_codes(&errors), vec!["invalid_frame"; 3]);
    let refs: Vec<&Value> = errors.iter().map(|e| &e["ref"]).collect();
    assert_eq!(refs, vec![&json!(1), &json!(2), &json!(3)]);
    assert!(h.hub().stats().rooms == 0);
}

/// Unknown fields in a client frame are ignored.
#[test]
fn unknown_fields_are_ignored() {
    let (mut h, conn) = alice();
    h.send(
        conn,
        r#"{"type":"join","room":"lobby","colour":"blue","nested":{"a":[1]},"ref":1}"#,
    );
    h.send(conn, r#"{"type":"ping","extra":true,"ref":2}"#);

    assert_eq!(types(h.frames(conn)), vec!["joined", "pong"]);
    assert_eq!(h.hub().room_members(&"lobby".into()), vec![conn]);
}

/// Ten bad frames in a burst are answered with errors; the eleventh closes with 1008.
#[test]
fn the_eleventh_bad_frame_in_a_burst_closes_with_1008() {
    let (mut h, conn) = alice();
    send_garbage(&mut h, conn, MAX_STRIKES);
    assert_eq!(h.frames_of(conn, "error").len(), MAX_STRIKES);
    assert_eq!(h.closed(conn), None);

    send_garbage(&mut h, conn, 1);

    assert_eq!(h.closed(conn), Some((1008, Reason::ProtocolViolation)));
    assert_eq!(h.frames_of(conn, "error").len(), MAX_STRIKES);
    assert_eq!(closes(&h, Reason::ProtocolViolation), 1);
    assert_eq!(drops(&h, Reason::Malformed), MAX_STRIKES as u64 + 1);
}

/// Malformed, invalid, unknown, forbidden and limit refusals all count toward one threshold.
#[test]
fn every_striking_error_counts_toward_the_same_threshold() {
    let mut config = Config::production();
    config.limits.max_rooms_per_connection = 1;
    let mut h = Harness::new(config);
    let access = switchboard::RoomAccess::Only(vec!["a".into(), "b".into()]);
    let conn = h
        .open(switchboard::Open::new("alice").access(access))
        .unwrap();
    join(&mut h, conn, "a");
    h.take(conn);

    let bad = [
        "{",
        r#"{"type":"join"}"#,
        r#"{"type":"dance"}"#,
        r#"{"type":"join","room":"admin"}"#,
        r#"{"type":"join","room":"b"}"#,
    ];
    for frame in bad.iter().cycle().take(MAX_STRIKES) {
        h.send(conn, frame);
    }
    assert_eq!(
        error_codes(h.frames(conn))[..5],
        [
            "malformed_json",
            "invalid_frame",
            "unknown_type",
            "forbidden",
            "too_many_rooms"
        ]
    );
    assert_eq!(h.closed(conn), None);

    h.send(conn, bad[3]);
    assert_eq!(h.closed(conn), Some((1008, Reason::ProtocolViolation)));
}

/// One strike comes back per `strike_refill`: one more bad frame is answered, the next closes.
#[test]
fn strikes_refill_one_per_strike_refill() {
    let (mut h, conn) = alice();
    send_garbage(&mut h, conn, MAX_STRIKES);

    h.advance(STRIKE_REFILL - Duration::from_millis(1));
    send_garbage(&mut h, conn, 1);
    assert_eq!(h.closed(conn), Some((1008, Reason::ProtocolViolation)));

    let (mut h, conn) = alice();
    send_garbage(&mut h, conn, MAX_STRIKES);
    h.advance(STRIKE_REFILL);
    send_garbage(&mut h, conn, 1);
    assert_eq!(h.closed(conn), None);
    assert_eq!(h.frames_of(conn, "error").len(), MAX_STRIKES + 1);
    send_garbage(&mut h, conn, 1);
    assert_eq!(h.closed(conn), Some((1008, Reason::ProtocolViolation)));
}

/// `not_member` answers take no strike: a client may send them without being closed.
#[test]
fn not_member_errors_take_no_strike() {
    let (mut h, conn) = alice();
    for _ in 0..MAX_STRIKES * 3 {
        h.send(conn, r#"{"type":"publish","room":"lobby","event":"e"}"#);
    }
    assert_eq!(
        error_codes(h.frames(conn)),
        vec!["not_member"; MAX_STRIKES * 3]
    );
    assert_eq!(h.closed(conn), None);
}

/// Frames past the burst are dropped unread with `rate_limited` (no `ref`) and not processed.
#[test]
fn frames_past_the_burst_are_dropped_with_rate_limited() {
    let (mut h, conn) = alice();
    for _ in 0..BURST {
        h.send(conn, r#"{"type":"ping"}"#);
    }
    assert_eq!(h.frames_of(conn, "pong").len(), BURST);

    h.send(conn, r#"{"type":"join","room":"lobby","ref":1}"#);

    let error = last(&h, conn);
    assert_eq!(error["code"], "rate_limited");
    assert!(error.get("ref").is_none());
    assert!(h.hub().room_members(&"lobby".into()).is_empty());
    assert_eq!(drops(&h, Reason::OverRate), 1);
    assert_eq!(h.closed(conn), None);
}

/// A second after the burst, `messages_per_second` more frames pass and the next is limited.
#[test]
fn the_rate_refills_at_messages_per_second() {
    let (mut h, conn) = alice();
    for _ in 0..BURST {
        h.send(conn, r#"{"type":"ping"}"#);
    }
    h.advance(Duration::from_secs(1));
    h.take(conn);

    for _ in 0..PER_SECOND {
        h.send(conn, r#"{"type":"ping"}"#);
    }
    assert_eq!(types(h.frames(conn)), vec!["pong"; PER_SECOND]);
    h.send(conn, r#"{"type":"ping"}"#);
    assert_eq!(last(&h, conn)["code"], "rate_limited");
}

/// A flood past the rate limit with no strikes left closes with 4029.
#[test]
fn a_flood_past_the_rate_limit_closes_with_4029() {
    let (mut h, conn) = alice();
    for _ in 0..BURST + MAX_STRIKES {
        h.send(conn, r#"{"type":"ping"}"#);
    }
    assert_eq!(h.frames_of(conn, "error").len(), MAX_STRIKES);
    assert_eq!(h.closed(conn), None);

    h.send(conn, r#"{"type":"ping"}"#);

    assert_eq!(h.closed(conn), Some((4029, Reason::RateLimited)));
    assert_eq!(closes(&h, Reason::RateLimited), 1);
    assert_eq!(drops(&h, Reason::OverRate), MAX_STRIKES as u64 + 1);
}

/// Every frame received, good or bad, is counted in the traffic counters.
#[test]
fn every_client_frame_is_counted_in_the_traffic_counters() {
    let (mut h, conn) = alice();
    let frames = ["{bad", r#"{"type":"ping"}"#, r#"{"type":"dance"}"#];
    for f in frames {
        h.send(conn, f);
    }

    let counters = h.hub().stats().counters;
    assert_eq!(counters.messages_in, 3);
    let len: usize = frames.iter().map(|f| f.len()).sum();
    assert_eq!(counters.bytes_in, len as u64);
    let drops = &counters.drops;
    assert_eq!(
        (drops.get(Reason::Malformed), drops.get(Reason::UnknownType)),
        (1, 1)
    );
    assert_eq!(drops.total(), 2);
}

// ----- joins and agent runs -------------------------------------------------------------

/// Joins and leaves are client frames like any other: each takes a token of the rate limit,
/// so a join/leave flood is answered `rate_limited` past the burst and closed with 4029 once
/// the strikes are gone, having joined at most a burst of rooms.
#[test]
fn a_join_and_leave_flood_is_rate_limited_like_any_other_frames() {
    let (mut h, alice) = alice();
    for i in 0..300 {
        let frame = match i % 2 {
            0 => json!({"type": "join", "room": format!("r{i}")}),
            _ => json!({"type": "leave", "room": format!("r{}", i - 1)}),
        };
        h.send(alice, &frame.to_string());
    }
    let frames = h.take(alice);
    let answered = frames
        .iter()
        .filter(|f| matches!(f["type"].as_str(), Some("joined" | "left")))
        .count();
    let limited = frames
        .iter()
        .filter(|f| f["code"] == "rate_limited")
        .count();
    assert_eq!(answered, BURST);
    assert_eq!(limited, MAX_STRIKES);
    assert_eq!(h.closed(alice), Some((4029, Reason::RateLimited)));
    assert_eq!(drops(&h, Reason::OverRate), MAX_STRIKES as u64 + 1);
}

fn run_update(run: &str) -> switchboard::AgentUpdate {
    switchboard::AgentUpdate {
        run: run.into(),
        agent: "planner".into(),
        thread: None,
        event: started(),
    }
}

/// A user, and the hub, have a cap of agent runs in progress: a run past it is refused with a
/// typed error, reaches no one and is not sequenced; a run that ends frees its place.
#[test]
fn a_new_run_past_the_runs_in_progress_of_its_user_or_of_the_hub_is_refused_and_delivers_nothing() {
    use switchboard::{PublishError, RunLimit};
    let mut config = Config::production();
    config.limits.max_active_runs_per_user = 2;
    config.limits.max_active_runs = 3;
    let mut h = Harness::new(config);
    let alice = h.connect("alice");
    let start = |h: &mut Harness, user: &str, run: &str| {
        h.with_hub(|hub, now| hub.send_agent_update(now, &user.into(), run_update(run)))
    };
    start(&mut h, "alice", "r1").unwrap();
    start(&mut h, "alice", "r2").unwrap();
    h.take(alice);
    let before = h.hub().stream_position(&user_stream("alice"));

    assert_eq!(
        start(&mut h, "alice", "r3"),
        Err(PublishError::TooManyRuns(RunLimit::User))
    );
    assert_eq!(h.frames(alice), &[] as &[Value], "nothing delivered");
    assert_eq!(h.hub().stream_position(&user_stream("alice")), before);
    start(&mut h, "bob", "r1").unwrap();
    assert_eq!(
        start(&mut h, "cat", "r1"),
        Err(PublishError::TooManyRuns(RunLimit::Hub))
    );
    assert_eq!(drops(&h, Reason::TooManyRuns), 2);
    assert_eq!(h.hub().stats().runs_active, 3);
    assert!(h.hub().run_report(&"alice".into(), &"r3".into()).is_none());

    agent(&mut h, "alice", "r1", None, completed());
    start(&mut h, "alice", "r3").expect("r1 ended: a place is free");
    assert_eq!(h.hub().stats().runs_active, 3);
}
