//! The outbox's budget, lanes, joined deltas and replay exemption, frame by frame.

use super::*;

fn limits() -> BackpressureConfig {
    BackpressureConfig {
        inflight_bytes: 10,
        queue_messages: 3,
        queue_bytes: 100,
        replay_messages: 10,
    }
}

fn frame(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[test]
fn sends_within_budget_then_queues_then_releases_in_order() {
    let l = limits();
    let mut o = Outbox::default();
    let mut g = Backlog::default();
    assert_eq!(
        o.offer(
            frame("aaaaaa"),
            None,
            Origin::Live,
            &l,
            &mut g,
            |f| assert_eq!(f, frame("aaaaaa"))
        ),
        Offer::Sent
    );
    assert_eq!(
        o.offer(frame("bbbbbb"), None, Origin::Live, &l, &mut g, |_| {}),
        Offer::Queued
    );
    assert_eq!(
        o.offer(frame("cc"), None, Origin::Live, &l, &mut g, |_| {}),
        Offer::Queued,
        "no overtaking the queue"
    );
    let mut out = Vec::new();
    o.flushed(6, &l, &mut g, |f| out.push(f));
    assert_eq!(out, vec![frame("bbbbbb"), frame("cc")]);
    assert_eq!(o.inflight(), 8);
}

#[test]
fn a_frame_larger_than_the_budget_still_goes_out_alone() {
    let l = limits();
    let mut o = Outbox::default();
    let mut g = Backlog::default();
    assert_eq!(
        o.offer(
            frame("0123456789abcdef"),
            None,
            Origin::Live,
            &l,
            &mut g,
            |_| {}
        ),
        Offer::Sent
    );
}

#[test]
fn lossy_lane_keeps_only_the_latest() {
    let l = limits();
    let key = CoalesceKey::Thinking(RunId::from("1"));
    let mut o = Outbox::default();
    let mut g = Backlog::default();
    o.offer(frame("0123456789"), None, Origin::Live, &l, &mut g, |_| {});
    assert_eq!(
        o.offer(frame("t1"), Some(&key), Origin::Live, &l, &mut g, |_| {}),
        Offer::Queued
    );
    assert_eq!(
        o.offer(frame("x"), None, Origin::Live, &l, &mut g, |_| {}),
        Offer::Queued
    );
    assert_eq!(
        o.offer(frame("t2"), Some(&key), Origin::Live, &l, &mut g, |_| {}),
        Offer::Coalesced
    );
    let mut out = Vec::new();
    o.flushed(10, &l, &mut g, |f| out.push(f));
    assert_eq!(out, vec![frame("x"), frame("t2")]);
}

/// A delta frame as the hub encodes one (what the append lane joins).
fn delta(seq: u64, offset: u64, text: &str) -> Bytes {
    frame(&format!(
        r#"{{"type":"agent_message_delta","run":"r","seq":{seq},"event":"agent_message_delta","message":"m","offset":{offset},"final":false,"text":"{text}"}}"#
    ))
}

#[test]
fn message_deltas_queued_are_joined_at_the_back_and_never_shed() {
    let l = BackpressureConfig {
        queue_bytes: 400,
        ..limits()
    };
    let key = CoalesceKey::Message(RunId::from("r"), Arc::from("m"));
    let mut o = Outbox::default();
    let mut g = Backlog::default();
    o.offer(frame("0123456789"), None, Origin::Live, &l, &mut g, |_| {});
    assert_eq!(
        o.offer(
            delta(1, 0, "ab"),
            Some(&key),
            Origin::Live,
            &l,
            &mut g,
            |_| {}
        ),
        Offer::Queued
    );
    assert_eq!(
        o.offer(frame("x"), None, Origin::Live, &l, &mut g, |_| {}),
        Offer::Queued
    );
    let third = o.offer(
        delta(3, 2, "cd"),
        Some(&key),
        Origin::Live,
        &l,
        &mut g,
        |_| {},
    );
    assert_eq!(third, Offer::Appended);
    assert_eq!(o.queued_messages(), 2);
    assert_eq!(g, o.backlog(), "the gauges follow the joined frame");
    let big = "y".repeat(300);
    let fourth = o.offer(
        delta(4, 4, &big),
        Some(&key),
        Origin::Live,
        &l,
        &mut g,
        |_| {},
    );
    assert_eq!(
        fourth,
        Offer::Overflow,
        "never shed: the reader must resume"
    );
    assert_eq!(o.drain(&mut g), vec![frame("x"), delta(3, 0, "abcd")]);
}

#[test]
fn reliable_overflow_is_reported_and_ephemeral_overflow_is_shed() {
    let l = limits();
    let mut o = Outbox::default();
    let mut g = Backlog::default();
    o.offer(frame("0123456789"), None, Origin::Live, &l, &mut g, |_| {});
    for _ in 0..3 {
        assert_eq!(
            o.offer(frame("q"), None, Origin::Live, &l, &mut g, |_| {}),
            Offer::Queued
        );
    }
    assert_eq!(
        o.offer(frame("q"), None, Origin::Live, &l, &mut g, |_| {}),
        Offer::Overflow
    );
    assert_eq!(
        o.offer(
            frame("e"),
            Some(&CoalesceKey::Ephemeral(Arc::from("k"))),
            Origin::Live,
            &l,
            &mut g,
            |_| {}
        ),
        Offer::Shed
    );
    assert_eq!(o.queued_messages(), 3);
    assert_eq!(o.drain(&mut g).len(), 3);
    assert_eq!(o.queued_bytes(), 0);
    assert_eq!(g, o.backlog(), "the gauges follow the outbox");
    o.discard(&mut g);
    assert_eq!(g, Backlog::default());
}

#[test]
fn a_replay_is_exempt_from_the_live_limits_up_to_its_own_and_live_frames_behind_it_are_not() {
    let l = limits();
    let mut o = Outbox::default();
    let mut g = Backlog::default();
    o.offer(frame("0123456789"), None, Origin::Live, &l, &mut g, |_| {});
    for _ in 0..10 {
        assert_eq!(
            o.offer(frame("r"), None, Origin::Replay, &l, &mut g, |_| {}),
            Offer::Queued
        );
    }
    assert_eq!(
        o.offer(frame("r"), None, Origin::Replay, &l, &mut g, |_| {}),
        Offer::Overflow,
        "past replay_messages"
    );
    for _ in 0..3 {
        assert_eq!(
            o.offer(frame("q"), None, Origin::Live, &l, &mut g, |_| {}),
            Offer::Queued
        );
    }
    assert_eq!(
        o.offer(frame("q"), None, Origin::Live, &l, &mut g, |_| {}),
        Offer::Overflow
    );
    let mut out = Vec::new();
    o.flushed(10, &l, &mut g, |f| out.push(f));
    assert_eq!(out.len(), 10, "the budget releases ten one-byte frames");
    assert_eq!(o.queued_messages(), 3);
    assert_eq!(
        o.offer(frame("q"), None, Origin::Live, &l, &mut g, |_| {}),
        Offer::Overflow
    );
    o.flushed(10, &l, &mut g, |_| {});
    assert_eq!(o.queued_messages(), 0);
    let queue = o.queue.as_ref().expect("the queue was used");
    assert_eq!((queue.replay_messages, queue.replay_bytes), (0, 0));
}

#[test]
fn at_its_bound_a_replay_still_replaces_a_replayed_frame_of_its_key() {
    let l = limits();
    let mut o = Outbox::default();
    let mut g = Backlog::default();
    o.offer(frame("0123456789"), None, Origin::Live, &l, &mut g, |_| {});
    let thinking = CoalesceKey::Thinking(RunId::from("1"));
    let key = Some(&thinking);
    assert_eq!(
        o.offer(frame("t1"), key, Origin::Replay, &l, &mut g, |_| {}),
        Offer::Queued
    );
    for _ in 1..l.replay_messages {
        o.offer(frame("r"), None, Origin::Replay, &l, &mut g, |_| {});
    }
    assert_eq!(
        o.offer(frame("t2"), key, Origin::Replay, &l, &mut g, |_| {}),
        Offer::Coalesced,
        "the latest thinking replaces the queued one, adding nothing"
    );
    assert_eq!(
        o.offer(frame("r"), None, Origin::Replay, &l, &mut g, |_| {}),
        Offer::Overflow
    );
}
