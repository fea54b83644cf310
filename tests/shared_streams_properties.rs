//! The shared-streams property: two hubs, an in-test sequencer and clients that connect, join,
//! move between hubs with their positions, while a hub may miss or receive twice a sealed
//! entry. Every entry's number names the same message on every hub, each reader's streams
//! strictly increase from where it resumed or joined, every skipped number is covered by a
//! `gap` before the next message (nothing a gap covered arrives later, and no gap covers what
//! arrived before it), and once the cluster heals every reader still on a stream reaches its
//! head. Failing cases are saved under `proptest-regressions/` and replayed first.

mod support;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use std::collections::{BTreeMap, HashMap};
use support::sequencer::{send_join, shared_hub, Sequencer, EPOCH};
use support::*;
use switchboard::testing::Harness;
use switchboard::{ClusterInput, ConnId, Open, Position, StreamId};

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

fn proptest_config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/shared_streams_properties.txt"
        )))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    /// Whatever the publishers, the joins and moves between hubs, when the sequencer answers,
    /// and the lost or repeated deliveries: one numbering everywhere (an entry's `seq` names
    /// the same message on every hub), each reader's user and room streams strictly increasing
    /// from where it resumed or joined (no duplicate, no reordering), every number a reader
    /// skips announced before the next message by a `gap` that covers it and no more (nothing
    /// a gap called lost arrives after it, and no gap calls lost what arrived before it), and,
    /// once the cluster heals, every reader still
    /// on a stream at its head.
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
                        send_join(&mut hubs[hub], conn, ROOM, None);
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
                        send_join(&mut hubs[hub], again, ROOM, in_room);
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
        // The end: the cluster heals (no hub misses anything, every follow is answered) and
        // one more message on each stream reaches both hubs, so that each number a reader
        // still connected did not receive is either received now or announced lost.
        missing = [false, false];
        for hub in &mut hubs {
            sequencer.follow(hub);
        }
        for to in [support::user(USERS[0]), support::user(USERS[1]), room(ROOM)] {
            published += 1;
            hubs[0].publish(to, msg(&format!("e{published}")));
            sequence_all(&mut sequencer, &mut hubs, 0, &mut missing);
        }
        for hub in &mut hubs {
            sequencer.follow(hub);
        }
        for &(hub, conn) in &open {
            let frames = hubs[hub].take(conn);
            readers.get_mut(&(hub, conn)).expect("recorded").frames.extend(frames);
        }
        let mut heads: HashMap<String, u64> = HashMap::new();
        for sealed in &sequencer.log {
            let head = heads.entry(sealed.entry.stream.to_string()).or_default();
            *head = (*head).max(sealed.position.seq);
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
                            prop_assert!(
                                last.is_none_or(|last| from > last),
                                "hub {} {} {}: a gap {}..{} calls lost what arrived ({})", hub, conn, name, from, to, last.unwrap_or(0)
                            );
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
                            prop_assert!(
                                gap.is_none_or(|(_, to)| to < seq),
                                "hub {} {} {}: {} arrived after a gap {:?} that called it lost", hub, conn, name, seq, gap
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
                // Still connected (and in the room, for the room): it reached the head.
                let on_stream = match stream {
                    StreamId::User(_) => open.contains(&(*hub, *conn)),
                    StreamId::Room(_) => members.contains(&(*hub, *conn)),
                };
                if on_stream {
                    prop_assert_eq!(
                        last, heads.get(&name).copied(),
                        "hub {} {} {}: not every message received or announced lost", hub, conn, name
                    );
                }
            }
        }
    }
}
