//! Shared streams: with `Config::shared_streams`, the cluster's sequencer numbers every user and
//! room stream. A hub renders an entry once and hands it out unnumbered; the sequencer seals it
//! with the stream's next position and hands it to every hub serving the stream, the origin
//! included. Every hub therefore delivers a stream in one order with one numbering, and a
//! client resumes on any hub. Here the sequencer is a few lines of test code over two hubs
//! (`support/sequencer.rs`); in production it is a Redis script. The property over random
//! steps is in `shared_streams_properties.rs`.

mod support;

use serde_json::json;
use support::sequencer::{shared_hub, Sequencer, EPOCH};
use support::*;
use switchboard::testing::Harness;
use switchboard::{ClusterInput, Config, Open, Position, Sequenced, Target};

/// A publish is not delivered where it is made: it goes out unnumbered, and every hub,
/// its origin included, delivers it once the sequencer sealed it.
#[test]
fn a_publish_waits_for_its_position_and_then_reaches_every_hub() {
    let (mut a, mut b) = (shared_hub(0), shared_hub(1));
    let on_a = a.connect("alice");
    let on_b = b.connect("alice");
    b.take(on_b);
    let delivery = a.publish(user("alice"), msg("m1"));
    assert_eq!((delivery.reached, delivery.position), (0, None));
    assert!(a.take(on_a).iter().all(|f| f["type"] == "welcome"));

    Sequencer::default().run(0, &mut [&mut a, &mut b]);
    for (hub, conn) in [(&mut a, on_a), (&mut b, on_b)] {
        let frames = hub.take(conn);
        assert_eq!(labels(&frames), ["m1"]);
        assert_eq!(
            (frames[0]["epoch"].as_u64(), frames[0]["seq"].as_u64()),
            (Some(EPOCH), Some(1))
        );
    }
}

/// Publishers on two hubs at once: both hubs deliver the stream in the sequencer's order
/// with the sequencer's numbers.
#[test]
fn concurrent_publishers_on_two_hubs_agree_on_one_order() {
    let (mut a, mut b) = (shared_hub(0), shared_hub(1));
    let on_a = a.connect("alice");
    let on_b = b.connect("bob");
    let mut sequencer = Sequencer::default();
    sequencer.join(&mut a, on_a, "lobby", None);
    sequencer.join(&mut b, on_b, "lobby", None);
    a.take(on_a);
    b.take(on_b);
    for i in 0..5 {
        a.publish(room("lobby"), msg(&format!("a{i}")));
        b.publish(room("lobby"), msg(&format!("b{i}")));
        // The sequencer takes b's entry first on odd rounds.
        let order: [usize; 2] = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for origin in order {
            sequencer.run(origin, &mut [&mut a, &mut b]);
        }
    }
    let (seen_a, seen_b) = (a.take(on_a), b.take(on_b));
    assert_eq!(labels(&seen_a), labels(&seen_b));
    assert_eq!(labels(&seen_a)[..4], ["a0", "b0", "b1", "a1"]);
    assert_eq!(
        seqs(&seen_a, &room_stream("lobby")),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(&seen_b, &room_stream("lobby")),
        (1..=10).collect::<Vec<_>>()
    );
}

/// A client that read part of its stream on one hub reconnects to the other with its
/// position, and receives exactly what it missed there.
#[test]
fn a_client_resumes_on_another_hub_exactly_where_it_left() {
    let (mut a, mut b) = (shared_hub(0), shared_hub(1));
    let mut sequencer = Sequencer::default();
    let first = a.connect("alice");
    a.publish(user("alice"), msg("m1"));
    a.publish(user("alice"), msg("m2"));
    sequencer.run(0, &mut [&mut a, &mut b]);
    assert_eq!(take_labels(&mut a, first), ["welcome", "m1", "m2"]);
    let position = client_position(&a, first, &user_stream("alice"));
    a.drop_connection(first);
    a.publish(user("alice"), msg("m3"));
    a.publish(thread("alice", "t1"), msg("m4"));
    sequencer.run(0, &mut [&mut a, &mut b]);

    let again = b
        .open(Open::new("alice").thread("t1").resume(position))
        .expect("opens");
    let frames = b.take(again);
    assert_eq!(labels(&frames), ["welcome", "m3", "m4"]);
    assert_eq!(seqs(&frames, &user_stream("alice")), [3, 4]);
}

/// An entry nobody received anywhere waits in the user's stream for the next connection,
/// on whichever hub it opens; one another hub delivered does not.
#[test]
fn only_what_no_hub_delivered_waits_for_the_users_next_connection() {
    let (mut a, mut b) = (shared_hub(0), shared_hub(1));
    let mut sequencer = Sequencer::default();
    let on_a = a.connect("alice");
    a.publish(user("alice"), msg("seen"));
    sequencer.run(0, &mut [&mut a, &mut b]);
    a.drop_connection(on_a);
    a.publish(user("alice"), msg("offline"));
    sequencer.run(0, &mut [&mut a, &mut b]);
    let on_b = b.connect("alice");
    assert_eq!(take_labels(&mut b, on_b), ["welcome", "offline"]);
}

/// A join to a room the hub starts serving is answered once the sequencer gave the room's
/// head: with that position, and from it on (entries numbered before are not the member's; with
/// `since` it asks for them, from the hub's history).
#[test]
fn a_join_is_answered_with_the_sequencers_head() {
    let (mut a, mut b) = (shared_hub(0), shared_hub(1));
    let mut sequencer = Sequencer::default();
    let bob = b.connect("bob");
    sequencer.join(&mut b, bob, "lobby", None);
    for i in 1..=3 {
        b.publish(room("lobby"), msg(&format!("m{i}")));
    }
    sequencer.run(1, &mut [&mut a, &mut b]);

    let alice = a.connect("alice");
    a.send(alice, r#"{"type":"join","room":"lobby"}"#);
    assert_eq!(take_labels(&mut a, alice), ["welcome"], "not answered yet");
    b.publish(room("lobby"), msg("before-head"));
    sequencer.run(1, &mut [&mut a, &mut b]);
    sequencer.follow(&mut a);
    b.publish(room("lobby"), msg("after-head"));
    sequencer.run(1, &mut [&mut a, &mut b]);
    let frames = a.take(alice);
    assert_eq!(labels(&frames), ["joined", "after-head"]);
    assert_eq!(
        (&frames[0]["epoch"], &frames[0]["seq"]),
        (&json!(EPOCH), &json!(4))
    );
    assert_eq!(frames[1]["seq"], 5);

    // A second member on the same hub is answered at once, from where the room is.
    let carol = a.connect("carol");
    sequencer.join(
        &mut a,
        carol,
        "lobby",
        Some(Position {
            epoch: EPOCH,
            seq: 4,
        }),
    );
    assert_eq!(
        take_labels(&mut a, carol),
        ["welcome", "joined", "after-head"]
    );
}

/// A member that read a room on one hub joins it on another, where the room is new, with
/// `since`: the hub loads what followed from the shared history before it answers, and the
/// member receives exactly what it missed, then the live entries.
#[test]
fn a_join_with_since_on_another_hub_replays_from_the_shared_history() {
    let (mut a, mut b) = (shared_hub(0), shared_hub(1));
    let mut sequencer = Sequencer::default();
    let on_a = a.connect("alice");
    sequencer.join(&mut a, on_a, "lobby", None);
    for i in 1..=5 {
        a.publish(room("lobby"), msg(&format!("m{i}")));
        sequencer.run(0, &mut [&mut a]);
    }
    let frames = a.take(on_a);
    assert_eq!(labels(&frames)[2..4], ["m1", "m2"]);
    let read = Position {
        epoch: EPOCH,
        seq: 2,
    };

    let on_b = b.connect("alice");
    sequencer.join(&mut b, on_b, "lobby", Some(read));
    a.publish(room("lobby"), msg("m6"));
    sequencer.run(0, &mut [&mut a, &mut b]);
    let frames = b.take(on_b);
    assert_eq!(
        labels(&frames),
        ["welcome", "joined", "m3", "m4", "m5", "m6"]
    );
    assert_eq!(seqs(&frames, &room_stream("lobby")), [3, 4, 5, 6]);
}

/// A client resumes on a hub that serves its user since later than its position: the older
/// entries loaded from the shared history (newest first, before the open) go in front of what
/// the hub keeps, and the client receives exactly what it missed.
#[test]
fn older_entries_loaded_for_a_resume_go_in_front_of_the_hubs_history() {
    let (mut a, mut b) = (shared_hub(0), shared_hub(1));
    let mut sequencer = Sequencer::default();
    let first = a.connect("alice");
    for i in 1..=4 {
        a.publish(user("alice"), msg(&format!("m{i}")));
    }
    // b does not serve alice yet: the entries reach a only.
    sequencer.run(0, &mut [&mut a]);
    let read = client_position(&a, first, &user_stream("alice"));
    assert_eq!(read.seq, 4);
    // As a bridge does before a connection opens: b learns where the stream stands.
    let stream = user_stream("alice");
    b.cluster(ClusterInput::StreamHead {
        stream: &stream,
        head: Some(read),
    });
    let other = b.connect("alice");
    for i in 5..=6 {
        a.publish(user("alice"), msg(&format!("m{i}")));
    }
    sequencer.run(0, &mut [&mut a, &mut b]);
    assert_eq!(take_labels(&mut b, other), ["welcome", "m5", "m6"]);

    let from = Position {
        epoch: EPOCH,
        seq: 2,
    };
    for sealed in sequencer
        .log
        .iter()
        .rev()
        .filter(|s| s.position.seq > from.seq)
    {
        b.cluster(ClusterInput::History(sealed));
    }
    let again = b.open(Open::new("alice").resume(from)).expect("opens");
    let frames = b.take(again);
    assert_eq!(labels(&frames), ["welcome", "m3", "m4", "m5", "m6"]);
    assert_eq!(seqs(&frames, &user_stream("alice")), [3, 4, 5, 6]);
    assert!(b.take(other).is_empty(), "history is not delivered live");
}

/// A client's room `publish` frame is sequenced too; its sender's connection is left out on
/// its own hub only.
#[test]
fn a_clients_room_publish_is_sequenced_and_skips_its_sender() {
    let (mut a, mut b) = (shared_hub(0), shared_hub(1));
    let alice = a.connect("alice");
    let bob = b.connect("bob");
    let mut sequencer = Sequencer::default();
    sequencer.join(&mut a, alice, "lobby", None);
    sequencer.join(&mut b, bob, "lobby", None);
    a.take(alice);
    b.take(bob);
    a.send(
        alice,
        r#"{"type":"publish","room":"lobby","event":"hi","data":1}"#,
    );
    assert!(a.envelopes().is_empty(), "no envelope besides the entry");
    sequencer.run(0, &mut [&mut a, &mut b]);
    assert!(a.take(alice).is_empty());
    let frames = b.take(bob);
    assert_eq!(
        (frames[0]["event"].as_str(), frames[0]["from"].as_str()),
        (Some("hi"), Some("alice"))
    );
    assert_eq!(frames[0]["seq"], 1);
}

/// Agent run events are entries of the user stream like any other: numbered by the
/// sequencer, in the run's order, on every hub.
#[test]
fn agent_run_events_are_sequenced_in_the_runs_order() {
    let (mut a, mut b) = (shared_hub(0), shared_hub(1));
    let on_b = b.connect("alice");
    b.take(on_b);
    agent(&mut a, "alice", "r1", None, started());
    agent(&mut a, "alice", "r1", None, thinking("hmm"));
    agent(&mut a, "alice", "r1", None, tool_executing("search"));
    agent(&mut a, "alice", "r1", None, tool_completed("search"));
    agent(&mut a, "alice", "r1", None, completed());
    Sequencer::default().run(0, &mut [&mut a, &mut b]);
    let frames = b.take(on_b);
    assert_eq!(
        run_kinds(&frames, "r1"),
        [
            "agent_started",
            "agent_thinking",
            "tool_executing",
            "tool_completed",
            "agent_completed"
        ]
    );
    assert_eq!(seqs(&frames, &user_stream("alice")), [1, 2, 3, 4, 5]);
}

/// A late joiner on a hub whose application never ran the run: the hub learns from the
/// stream's entries which runs are in progress, so a connection opening there receives the
/// run's events so far (those on a thread once it binds to it), as on the run's own hub; once
/// the run's ending arrives, a connection opening receives none of it.
#[test]
fn a_late_joiner_on_another_hub_receives_the_run_so_far() {
    let (mut a, mut b) = (shared_hub(0), shared_hub(1));
    let on_b = b.connect("alice");
    b.take(on_b);
    agent(&mut a, "alice", "r1", None, started());
    agent(&mut a, "alice", "r1", None, thinking("hmm"));
    agent(&mut a, "alice", "r2", None, started());
    agent(&mut a, "alice", "r2", None, completed());
    agent(&mut a, "alice", "r3", Some("t"), started());
    let mut sequencer = Sequencer::default();
    sequencer.run(0, &mut [&mut a, &mut b]);
    for hub in [&mut a, &mut b] {
        let late = hub.connect("alice");
        let frames = hub.take(late);
        assert_eq!(
            run_kinds(&frames, "r1"),
            ["agent_started", "agent_thinking"]
        );
        assert!(run_kinds(&frames, "r2").is_empty(), "r2 has ended");
        assert!(run_kinds(&frames, "r3").is_empty(), "r3 is on a thread");
        // Bound to the run's thread, it receives that run so far, not the others again.
        hub.send(late, r#"{"type":"bind","thread":"t"}"#);
        let frames = hub.take(late);
        assert_eq!(run_kinds(&frames, "r3"), ["agent_started"]);
        assert!(run_kinds(&frames, "r1").is_empty(), "r1 was caught up with");
        hub.drop_connection(late);
    }
    agent(&mut a, "alice", "r1", None, completed());
    sequencer.run(0, &mut [&mut a, &mut b]);
    let later = b.connect("alice");
    assert!(run_kinds(&b.take(later), "r1").is_empty(), "r1 has ended");
}

/// The same sealed entry delivered twice (a history load overlapping the live feed) reaches
/// the client once.
#[test]
fn an_entry_delivered_twice_is_taken_once() {
    let mut a = shared_hub(0);
    let conn = a.connect("alice");
    a.take(conn);
    a.publish(user("alice"), msg("m1"));
    let mut sequencer = Sequencer::default();
    sequencer.run(0, &mut [&mut a]);
    let again = sequencer.log[0].clone();
    a.cluster(ClusterInput::Sequenced(&again));
    assert_eq!(take_labels(&mut a, conn), ["m1"]);
    assert_eq!(a.hub().stats().counters.duplicates, 1);
}

/// Entries the hub never received (its feed was down) are announced to live readers with an
/// exact `gap` before the next entry; a stream numbered anew (the sequencer lost its state)
/// is announced as an `epoch` gap.
#[test]
fn a_hole_or_a_new_epoch_is_announced_before_the_next_entry() {
    let mut a = shared_hub(0);
    let conn = a.connect("alice");
    a.take(conn);
    let mut sequencer = Sequencer::default();
    for i in 1..=4 {
        a.publish(user("alice"), msg(&format!("m{i}")));
    }
    let entries = a.unsequenced();
    let sealed: Vec<Sequenced> = entries.iter().map(|e| sequencer.seal(e)).collect();
    for s in [&sealed[0], &sealed[3]] {
        a.cluster(ClusterInput::Sequenced(s));
    }
    let frames = a.take(conn);
    assert_eq!(labels(&frames), ["m1", "gap", "m4"]);
    assert_eq!(
        (&frames[1]["from"], &frames[1]["to"], &frames[1]["reason"]),
        (&2.into(), &3.into(), &"history".into())
    );

    a.publish(user("alice"), msg("m5"));
    let entry = a.unsequenced().remove(0);
    let renumbered = entry.seal(Position {
        epoch: EPOCH + 1,
        seq: 1,
    });
    a.cluster(ClusterInput::Sequenced(&renumbered));
    let frames = a.take(conn);
    assert_eq!(labels(&frames), ["gap", "m5"]);
    assert_eq!(frames[0]["reason"], "epoch");
    assert_eq!(frames[0]["epoch"], EPOCH + 1);
}

/// A member that read further on another hub joins where the room's stream has no entry yet
/// (this hub missed the first one, or it is still on its way): the hub takes the reader's
/// numbering but keeps its own head, so the member already there still receives the entry
/// late, or a `gap` for it when it never comes, and the newcomer neither again.
#[test]
fn a_reader_ahead_of_a_hub_does_not_move_its_head_for_the_members_already_there() {
    for missed in [true, false] {
        let (mut a, mut b) = (shared_hub(0), shared_hub(1));
        let mut sequencer = Sequencer::default();
        let alice = a.connect("alice");
        sequencer.join(&mut a, alice, "lobby", None);
        let bob = b.connect("bob");
        sequencer.join(&mut b, bob, "lobby", None);
        b.publish(room("lobby"), msg("m1"));
        let first = sequencer.seal(&b.unsequenced().remove(0));
        b.cluster(ClusterInput::Sequenced(&first));
        assert_eq!(labels(&b.take(bob))[2..], ["m1"]);

        let read = first.position;
        b.drop_connection(bob);
        let bob = a.connect("bob");
        sequencer.join(&mut a, bob, "lobby", Some(read));
        if !missed {
            a.cluster(ClusterInput::Sequenced(&first));
        }
        a.publish(room("lobby"), msg("m2"));
        sequencer.run(0, &mut [&mut a]);

        let frames = a.take(alice);
        let expected = if missed { "gap" } else { "m1" };
        assert_eq!(labels(&frames)[2..], [expected, "m2"], "missed: {missed}");
        if missed {
            assert_eq!(
                (&frames[2]["from"], &frames[2]["to"]),
                (&1.into(), &1.into())
            );
        }
        assert_eq!(
            labels(&a.take(bob)),
            ["welcome", "joined", "m2"],
            "missed: {missed}"
        );
    }
}

/// What is not a stream entry (everyone, a single connection, ephemeral messages) is not
/// sequenced: it is delivered at once, and relayed as before.
#[test]
fn broadcasts_and_ephemeral_messages_are_not_sequenced() {
    let mut a = shared_hub(0);
    let conn = a.connect("alice");
    a.take(conn);
    a.publish(Target::All, msg("everyone"));
    a.publish(user("alice"), msg("typing").ephemeral("k"));
    assert_eq!(take_labels(&mut a, conn), ["everyone", "typing"]);
    assert!(a.unsequenced().is_empty());
    assert_eq!(a.envelopes().len(), 2);
}

/// A hub that does not share its streams never hands entries to a sequencer.
#[test]
fn without_shared_streams_the_hub_numbers_its_own_streams() {
    let mut config = Config::development();
    config.cluster = true;
    let mut a = Harness::new(config);
    let conn = a.connect("alice");
    a.take(conn);
    let delivery = a.publish(user("alice"), msg("m1"));
    assert_eq!(delivery.position.map(|p| p.seq), Some(1));
    assert!(a.unsequenced().is_empty());
    assert_eq!(take_labels(&mut a, conn), ["m1"]);
}

/// With shared streams a reader may be ahead of a hub; a position at the end of the number
/// range is taken as such, without an overflow, and the hub still serves the connection.
#[test]
fn a_position_at_the_largest_sequence_number_on_a_hub_without_the_stream_is_taken_without_overflow()
{
    let mut hub = shared_hub(0);
    let sequencer = Sequencer::default();
    let last = Position {
        epoch: EPOCH,
        seq: u64::MAX,
    };
    let alice = hub.open(Open::new("alice").resume(last)).expect("opens");
    assert_eq!(take_labels(&mut hub, alice), ["welcome"]);
    sequencer.join(&mut hub, alice, "lobby", Some(last));
    let frames = hub.take(alice);
    assert_eq!(labels(&frames), ["joined"]);
    send_resume(&mut hub, alice, &user_stream("alice"), last, 3);
    assert_eq!(take_labels(&mut hub, alice), ["resumed"]);
    assert_eq!(hub.closed(alice), None);
}

/// An agent's answer produced on one hub and read on the other: every hub joins the sealed
/// deltas of a message into one history entry, a reader there assembles exactly the text, and
/// a client resuming there from before the message gets the text so far in one frame, then the
/// live deltas at their offset.
#[test]
fn message_deltas_join_on_every_hub_and_a_resume_elsewhere_gets_the_text_in_one_frame() {
    let (mut a, mut b) = (shared_hub(0), shared_hub(1));
    let early = b.connect("alice");
    let mut sequencer = Sequencer::default();
    agent(&mut a, "alice", "r1", None, started());
    sequencer.run(0, &mut [&mut a, &mut b]);
    let started_at = client_position(&b, early, &user_stream("alice"));
    let delta = |offset: u64, text: &str, last: bool| switchboard::AgentEvent::AgentMessageDelta {
        message: "m".into(),
        offset,
        last,
        text: text.into(),
    };
    let mut text = String::new();
    for n in 0..50 {
        let piece = format!("tök{n} \"q\"\n");
        agent(
            &mut a,
            "alice",
            "r1",
            None,
            delta(text.chars().count() as u64, &piece, false),
        );
        text.push_str(&piece);
        sequencer.run(0, &mut [&mut a, &mut b]);
    }
    assert_eq!(
        b.hub().stats().history_messages,
        2,
        "agent_started and the message"
    );
    let late = b.open(Open::new("alice").resume(started_at)).unwrap();
    let caught_up = b.take(late);
    let deltas: Vec<_> = (caught_up.iter())
        .filter(|f| f["type"] == "agent_message_delta")
        .collect();
    assert_eq!(deltas.len(), 1, "the text so far in one frame");
    assert_eq!(
        (deltas[0]["offset"].as_u64(), deltas[0]["text"].as_str()),
        (Some(0), Some(text.as_str()))
    );
    let len = text.chars().count() as u64;
    agent(&mut a, "alice", "r1", None, delta(len, "end", true));
    sequencer.run(0, &mut [&mut a, &mut b]);
    let live = b.take(late);
    assert_eq!(
        (live[0]["offset"].as_u64(), live[0]["text"].as_str()),
        (Some(len), Some("end"))
    );
    // The early reader got the deltas live (rolled up per flush window): the same text.
    b.advance(std::time::Duration::from_millis(40));
    let mut assembled = String::new();
    for f in b
        .take(early)
        .iter()
        .filter(|f| f["type"] == "agent_message_delta")
    {
        let (have, offset) = (
            assembled.chars().count(),
            f["offset"].as_u64().unwrap() as usize,
        );
        assert!(offset <= have, "no hole");
        assembled.extend(f["text"].as_str().unwrap().chars().skip(have - offset));
    }
    assert_eq!(assembled, format!("{text}end"));
}
