//! Resume frames on a live connection: each stream named is replayed from its position and
//! answered `resumed` with the request's `ref`; another user's stream is `forbidden`; a replay
//! that would land behind a live message already delivered is refused with `already_live`.

mod support;

use serde_json::{json, Value};
use support::*;
use switchboard::testing::Harness;
use switchboard::{ConnId, Position, Reason};

#[test]
fn a_resume_frame_replays_each_stream_then_answers_resumed_for_it_with_the_ref() {
    let mut h = harness();
    let _phone = h.connect("alice");
    let old = h.connect("alice");
    join(&mut h, old, "lobby");
    h.publish(user("alice"), msg("u1"));
    h.publish(room("lobby"), msg("r1"));
    let user_at = client_position(&h, old, &user_stream("alice"));
    let room_at = client_position(&h, old, &room_stream("lobby"));
    h.drop_connection(old);
    h.publish(user("alice"), msg("u2"));
    h.publish(room("lobby"), msg("r2"));

    let new = h.connect("alice");
    join(&mut h, new, "lobby");
    h.take(new);
    let frame = json!({"type": "resume", "ref": "r-7", "streams": [
        {"stream": "user:alice", "epoch": user_at.epoch, "seq": user_at.seq},
        {"stream": "room:lobby", "epoch": room_at.epoch, "seq": room_at.seq},
    ]});
    h.send(new, &frame.to_string());

    let frames = h.take(new);
    assert_eq!(labels(&frames), vec!["u2", "resumed", "r2", "resumed"]);
    assert_eq!(
        (&frames[1]["stream"], &frames[1]["seq"], &frames[1]["ref"]),
        (&json!("user:alice"), &json!(2), &json!("r-7"))
    );
    assert_eq!(
        (&frames[3]["stream"], &frames[3]["seq"], &frames[3]["ref"]),
        (&json!("room:lobby"), &json!(2), &json!("r-7"))
    );
}

#[test]
fn resuming_another_users_stream_is_forbidden_and_replays_nothing() {
    let mut h = harness();
    publish_each(&mut h, &user("bob"), 1..=3);
    let bob_epoch = head(&h, &user_stream("bob")).epoch;
    let alice = h.connect("alice");
    h.take(alice);

    let at_start = Position {
        epoch: bob_epoch,
        seq: 0,
    };
    send_resume(&mut h, alice, &user_stream("bob"), at_start, 5);

    let frames = h.take(alice);
    assert_eq!(labels(&frames), vec!["error"]);
    assert_eq!(
        (&frames[0]["code"], &frames[0]["ref"]),
        (&json!("forbidden"), &json!(5))
    );
    assert_eq!(drops(&h, Reason::Forbidden), 1);
    let bob = h.connect("bob");
    assert_eq!(h.events(bob), names(1..=3), "bob's buffer is untouched");
}

/// Alice has `m1` and `m2` in her stream while another of her connections stays open; then a
/// new connection opens and, if `live`, receives `m3` live. Returns the new connection (its
/// frames taken) and the stream's epoch.
fn alice_joins_late(h: &mut Harness, live: bool) -> (ConnId, u64) {
    let _phone = h.connect("alice");
    publish_each(h, &user("alice"), 1..=2);
    let epoch = head(h, &user_stream("alice")).epoch;
    let late = h.connect("alice");
    if live {
        h.publish(user("alice"), msg("m3"));
    }
    h.take(late);
    (late, epoch)
}

/// `conn` resumes alice's stream from `(epoch, seq)` with `ref` 9; returns the frames it got.
fn resume_alice(h: &mut Harness, conn: ConnId, epoch: u64, seq: u64) -> Vec<Value> {
    send_resume(h, conn, &user_stream("alice"), Position { epoch, seq }, 9);
    h.take(conn)
}

#[test]
fn a_user_stream_resume_that_would_replay_behind_a_delivered_live_message_is_refused_with_already_live_and_replays_nothing(
) {
    let mut h = harness();
    let (late, epoch) = alice_joins_late(&mut h, true);

    let frames = resume_alice(&mut h, late, epoch, 1);

    assert_eq!(labels(&frames), vec!["error"]);
    assert_eq!(
        (&frames[0]["code"], &frames[0]["ref"]),
        (&json!("already_live"), &json!(9))
    );
    assert_eq!(h.closed(late), None);
    assert_eq!(drops(&h, Reason::Forbidden), 0);
}

#[test]
fn a_resume_from_just_before_the_first_live_message_answers_resumed_and_replays_nothing() {
    let mut h = harness();
    let (late, epoch) = alice_joins_late(&mut h, true);

    let frames = resume_alice(&mut h, late, epoch, 2);

    assert_eq!(labels(&frames), vec!["resumed"]);
    assert_eq!(
        (&frames[0]["seq"], &frames[0]["ref"]),
        (&json!(3), &json!(9))
    );
}

#[test]
fn a_user_stream_resume_before_any_live_message_replays_then_answers_resumed() {
    let mut h = harness();
    let (late, epoch) = alice_joins_late(&mut h, false);

    let frames = resume_alice(&mut h, late, epoch, 0);
    h.publish(user("alice"), msg("m3"));

    assert_eq!(labels(&frames), vec!["m1", "m2", "resumed"]);
    assert_eq!(take_labels(&mut h, late), vec!["m3"]);
}

#[test]
fn a_room_rejoin_with_since_older_than_the_first_live_message_is_refused_with_already_live_while_since_just_before_it_answers_resumed(
) {
    let mut h = harness();
    let bob = h.connect("bob");
    join(&mut h, bob, "lobby");
    publish_each(&mut h, &room("lobby"), 1..=2);
    let epoch = head(&h, &room_stream("lobby")).epoch;
    let alice = h.connect("alice");
    join(&mut h, alice, "lobby");
    h.publish(room("lobby"), msg("m3"));
    h.take(alice);

    join_since(&mut h, alice, "lobby", Position { epoch, seq: 0 });
    let refused = h.take(alice);
    assert_eq!(labels(&refused), vec!["error"]);
    assert_eq!(refused[0]["code"], "already_live");

    join_since(&mut h, alice, "lobby", Position { epoch, seq: 2 });
    let accepted = h.take(alice);
    assert_eq!(labels(&accepted), vec!["resumed"]);
    assert_eq!(accepted[0]["stream"], "room:lobby");
}
