//! Shared streams: with `Config::shared_streams`, the cluster's sequencer numbers every user and
//! room stream. A hub renders an entry once and hands it out unnumbered; the sequencer seals it
//! with the stream's next position and hands it to every hub serving the stream, the origin
//! included. Every hub therefore delivers a stream in one order with one numbering, and a
//! client resumes on any hub. Here the sequencer is a few lines of test code over two hubs;
//! in production it is a Redis script.

mod support;

use serde_json::json;
use std::collections::HashMap;
use support::*;
use switchboard::testing::Harness;
use switchboard::{
    ClusterInput, Config, ConnId, Open, Position, Sequenced, StreamId, Target, Unsequenced,
};

fn shared_hub(shard: u8) -> Harness {
    let mut config = small_config();
    config.cluster = true;
    config.shared_streams = true;
    config.shard = shard;
    Harness::new(config)
}

/// Numbers entries per stream, in the order it takes them, in one epoch.
#[derive(Default)]
struct Sequencer {
    heads: HashMap<StreamId, u64>,
    log: Vec<Sequenced>,
}

const EPOCH: u64 = 1_700_000_000_000;

impl Sequencer {
    /// Number what `origin` handed out and deliver it to every hub, the origin included.
    fn run(&mut self, origin: usize, hubs: &mut [&mut Harness]) {
        let entries = hubs[origin].unsequenced();
        for entry in entries {
            let mut sealed = self.seal(&entry);
            // Like a Redis PUBLISH that no node received: no hub serves the user.
            if let StreamId::User(user) = &sealed.entry.stream {
                sealed.entry.undelivered = !hubs.iter().any(|h| h.hub().is_user_connected(user));
            }
            for (i, hub) in hubs.iter_mut().enumerate() {
                let mut copy = sealed.clone();
                // Connection ids name connections of the origin only.
                if i != origin {
                    copy.entry.except.clear();
                }
                hub.cluster(ClusterInput::Sequenced(&copy));
            }
        }
    }

    /// Answer every room `hub` started following, as a bridge does once it listens to the
    /// room: the entries after the joining member's position from the shared history, newest
    /// first, then the room's head.
    fn follow(&self, hub: &mut Harness) {
        for (room, since) in hub.follows() {
            let stream = StreamId::Room(room);
            if let Some(since) = since {
                let missed = self
                    .log
                    .iter()
                    .rev()
                    .filter(|s| s.entry.stream == stream && s.position.seq > since.seq);
                for sealed in missed {
                    hub.cluster(ClusterInput::History(sealed));
                }
            }
            // Like the Redis script: a stream without entries is at 0 of its epoch.
            let seq = self.heads.get(&stream).copied().unwrap_or(0);
            let head = Some(Position { epoch: EPOCH, seq });
            hub.cluster(ClusterInput::StreamHead {
                stream: &stream,
                head,
            });
        }
    }

    /// `conn` joins `room`, answered once the room's head is given.
    fn join(&self, hub: &mut Harness, conn: ConnId, room: &str, since: Option<Position>) {
        let mut frame = json!({"type": "join", "room": room});
        if let Some(p) = since {
            frame["since"] = json!({"epoch": p.epoch, "seq": p.seq});
        }
        hub.send(conn, &frame.to_string());
        self.follow(hub);
        assert!(
            hub.frames_of(conn, "joined")
                .iter()
                .any(|f| f["room"] == room),
            "{conn} did not join {room}: {:?}",
            hub.frames(conn)
        );
    }

    fn seal(&mut self, entry: &Unsequenced) -> Sequenced {
        let head = self.heads.entry(entry.entry.stream.clone()).or_default();
        *head += 1;
        let sealed = entry.seal(Position {
            epoch: EPOCH,
            seq: *head,
        });
        self.log.push(sealed.clone());
        sealed
    }
}

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

// ----- properties ---------------------------------------------------------------------------

use proptest::prelude::*;
use std::collections::BTreeMap;

/// What happens in one step of a two-hub cluster.
#[derive(Debug, Clone)]
enum Step {
    /// The application on `hub` publishes to `user` (0 or 1).
    Publish { hub: usize, user: usize },
    /// The application on `hub` publishes to the room.
    PublishRoom { hub: usize },
    /// A client of `user` connects to `hub`.
    Connect { hub: usize, user: usize },
    /// A client (picked among the open ones) joins the room.
    Join { pick: usize },
    /// The sequencer answers what `hub` asked to follow (the room's history and head).
    Follow { hub: usize },
    /// A client (picked among the open ones) disconnects and reconnects to `hub` with its
    /// position, and joins the room again with its position there if it was a member.
    Move { pick: usize, hub: usize },
    /// `hub` misses the next sealed entry (its subscription was down).
    Miss { hub: usize },
    /// The last sealed entry reaches `hub` again (a history load overlapping the live feed).
    Repeat { hub: usize },
}

fn step() -> impl Strategy<Value = Step> {
    let hub = || 0..2usize;
    prop_oneof![
        4 => (hub(), 0..2usize).prop_map(|(hub, user)| Step::Publish { hub, user }),
        3 => hub().prop_map(|hub| Step::PublishRoom { hub }),
        2 => (hub(), 0..2usize).prop_map(|(hub, user)| Step::Connect { hub, user }),
        2 => (0..8usize).prop_map(|pick| Step::Join { pick }),
        2 => hub().prop_map(|hub| Step::Follow { hub }),
        2 => (0..8usize, hub()).prop_map(|(pick, hub)| Step::Move { pick, hub }),
        1 => hub().prop_map(|hub| Step::Miss { hub }),
        1 => hub().prop_map(|hub| Step::Repeat { hub }),
    ]
}

const USERS: [&str; 2] = ["ann", "ben"];
const ROOM: &str = "lobby";

/// Everything one client read, in order, and where it resumed from: its user stream at
/// connect, the room with `since`.
#[derive(Debug)]
struct Reader {
    user: &'static str,
    resumed: Option<Position>,
    since: Option<Position>,
    frames: Vec<serde_json::Value>,
}

impl Reader {
    fn new(user: &'static str, resumed: Option<Position>) -> Self {
        Reader {
            user,
            resumed,
            since: None,
            frames: Vec::new(),
        }
    }
}

/// Seal what `hub` handed out and deliver it to both hubs, but to a hub that misses it.
fn sequence_all(
    sequencer: &mut Sequencer,
    hubs: &mut [Harness; 2],
    hub: usize,
    missing: &mut [bool; 2],
) {
    for entry in hubs[hub].unsequenced() {
        let sealed = sequencer.seal(&entry);
        for (i, h) in hubs.iter_mut().enumerate() {
            if !std::mem::take(&mut missing[i]) {
                h.cluster(ClusterInput::Sequenced(&sealed));
            }
        }
    }
}

fn send_join(hub: &mut Harness, conn: ConnId, since: Option<Position>) {
    let mut frame = json!({"type": "join", "room": ROOM});
    if let Some(p) = since {
        frame["since"] = json!({"epoch": p.epoch, "seq": p.seq});
    }
    hub.send(conn, &frame.to_string());
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Whatever the publishers, the joins and moves between hubs, when the sequencer answers,
    /// and the lost or repeated deliveries: one numbering everywhere (an entry's `seq` names
    /// the same message on every hub), each reader's user and room streams strictly increasing
    /// from where it resumed or joined (no duplicate, no reordering), and every number a reader
    /// skips announced before the next message by a `gap` that covers it.
    #[test]
    fn one_numbering_in_order_and_every_hole_announced(
        steps in prop::collection::vec(step(), 1..60)
    ) {
        let mut hubs = [shared_hub(0), shared_hub(1)];
        let mut sequencer = Sequencer::default();
        let mut missing = [false, false];
        let mut open: Vec<(usize, ConnId)> = Vec::new();
        let mut members: std::collections::HashSet<(usize, ConnId)> = Default::default();
        let mut readers: BTreeMap<(usize, ConnId), Reader> = BTreeMap::new();
        let mut published = 0;
        for step in steps {
            match step {
                Step::Publish { hub, user } => {
                    published += 1;
                    let event = format!("e{published}");
                    hubs[hub].publish(support::user(USERS[user]), msg(&event));
                    sequence_all(&mut sequencer, &mut hubs, hub, &mut missing);
                }
                Step::PublishRoom { hub } => {
                    published += 1;
                    let event = format!("e{published}");
                    hubs[hub].publish(room(ROOM), msg(&event));
                    sequence_all(&mut sequencer, &mut hubs, hub, &mut missing);
                }
                Step::Connect { hub, user } => {
                    // Past the per-user limit the open is refused; nothing to read then.
                    if let Ok(conn) = hubs[hub].open(Open::new(USERS[user])) {
                        open.push((hub, conn));
                        readers.insert((hub, conn), Reader::new(USERS[user], None));
                    }
                }
                Step::Join { pick } if !open.is_empty() => {
                    let (hub, conn) = open[pick % open.len()];
                    if members.insert((hub, conn)) {
                        send_join(&mut hubs[hub], conn, None);
                    }
                }
                Step::Follow { hub } => sequencer.follow(&mut hubs[hub]),
                Step::Move { pick, hub } if !open.is_empty() => {
                    let (from, conn) = open.remove(pick % open.len());
                    let frames = hubs[from].take(conn);
                    let reader = readers.get_mut(&(from, conn)).expect("recorded");
                    reader.frames.extend(frames);
                    let user = reader.user;
                    let client = hubs[from].client(conn);
                    let position = client.positions.get(&user_stream(user)).copied();
                    let in_room = client.positions.get(&room_stream(ROOM)).copied();
                    let member = members.remove(&(from, conn));
                    hubs[from].drop_connection(conn);
                    let request = match position {
                        Some(p) => Open::new(user).resume(p),
                        None => Open::new(user),
                    };
                    // Past the per-user limit there the open is refused: the client is gone.
                    let Ok(again) = hubs[hub].open(request) else { continue };
                    open.push((hub, again));
                    let mut reader = Reader::new(user, position);
                    if member {
                        members.insert((hub, again));
                        reader.since = in_room;
                        send_join(&mut hubs[hub], again, in_room);
                    }
                    readers.insert((hub, again), reader);
                }
                Step::Join { .. } | Step::Move { .. } => {}
                Step::Miss { hub } => missing[hub] = true,
                Step::Repeat { hub } => {
                    if let Some(last) = sequencer.log.last().cloned() {
                        hubs[hub].cluster(ClusterInput::Sequenced(&last));
                    }
                }
            }
        }
        for &(hub, conn) in &open {
            let frames = hubs[hub].take(conn);
            readers.get_mut(&(hub, conn)).expect("recorded").frames.extend(frames);
        }

        let named: HashMap<(String, u64), String> = sequencer
            .log
            .iter()
            .map(|sealed| {
                let frame: serde_json::Value = serde_json::from_slice(&sealed.frame).unwrap();
                let name = frame["event"].as_str().unwrap().to_owned();
                ((sealed.entry.stream.to_string(), sealed.position.seq), name)
            })
            .collect();
        for ((hub, conn), reader) in &readers {
            for stream in [user_stream(reader.user), room_stream(ROOM)] {
                let name = stream.to_string();
                let mut last = match stream {
                    StreamId::User(_) => reader.resumed.filter(|p| p.epoch == EPOCH).map(|p| p.seq),
                    StreamId::Room(_) => None,
                };
                let mut gap: Option<(u64, u64)> = None;
                for frame in &reader.frames {
                    if frame["stream"] != name.as_str() {
                        continue;
                    }
                    match frame["type"].as_str() {
                        // A member reads the room from its `since`, or from where `joined` says.
                        Some("joined") => {
                            let head = frame["seq"].as_u64().unwrap();
                            last = Some(reader.since.filter(|p| p.epoch == EPOCH).map_or(head, |p| p.seq));
                            gap = None;
                        }
                        Some("gap") => {
                            let (from, to) = (frame["from"].as_u64().unwrap(), frame["to"].as_u64().unwrap());
                            gap = Some(gap.map_or((from, to), |(f, t)| (f.min(from), t.max(to))));
                        }
                        Some("message") => {
                            prop_assert_eq!(frame["epoch"].as_u64(), Some(EPOCH));
                            let seq = frame["seq"].as_u64().unwrap();
                            prop_assert_eq!(
                                named.get(&(name.clone(), seq)).map(String::as_str),
                                frame["event"].as_str(),
                                "hub {} {}: one numbering", hub, conn
                            );
                            if let Some(last) = last {
                                prop_assert!(seq > last, "hub {} {} {}: {} after {}", hub, conn, name, seq, last);
                                let covered = gap.is_some_and(|(from, to)| from <= last + 1 && to + 1 >= seq);
                                prop_assert!(
                                    seq == last + 1 || covered,
                                    "hub {} {} {}: {}..{} skipped without a gap", hub, conn, name, last + 1, seq - 1
                                );
                            }
                            last = Some(seq);
                            gap = None;
                        }
                        _ => {}
                    }
                }
            }
        }
    }
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
