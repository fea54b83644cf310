//! The gauges of `Hub::stats` are kept as the state changes rather than counted on each call.
//! Under random sequences of opens, closes, joins, leaves, binds, publishes, slow and silent
//! readers (queues, 4008 closes, missed pongs, deaths), agent runs, the history budget and
//! time, every gauge equals `Hub::recounted_stats`, which counts it anew from the state: the
//! one definition of what each gauge means. Each room's users (presence) follow its members
//! throughout, and none is left once everyone left.
#![cfg(feature = "testing")]

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::json;
use std::time::Duration;
use switchboard::testing::Harness;
use switchboard::{
    AgentEvent, AgentUpdate, BackpressureConfig, Config, ConnId, Message, Open, RoomAccess, RoomId,
    Target, UserId,
};

const USERS: [&str; 3] = ["ana", "ben", "cho"];
const ROOMS: [&str; 2] = ["r0", "r1"];
const THREADS: [&str; 2] = ["t0", "t1"];

#[derive(Debug, Clone)]
enum Op {
    Open {
        user: usize,
        thread: Option<usize>,
    },
    Close {
        pick: usize,
    },
    Join {
        pick: usize,
        room: usize,
    },
    Leave {
        pick: usize,
        room: usize,
    },
    Bind {
        pick: usize,
        thread: Option<usize>,
    },
    PublishRoom {
        room: usize,
        big: bool,
    },
    PublishUser {
        user: usize,
        thread: Option<usize>,
        big: bool,
    },
    Reading {
        pick: usize,
        reading: bool,
    },
    AnswersPings {
        pick: usize,
        answers: bool,
    },
    Run {
        user: usize,
        run: usize,
        end: bool,
    },
    Tick {
        ms: u32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let user = || 0..USERS.len();
    let room = || 0..ROOMS.len();
    let thread = || prop::option::of(0..THREADS.len());
    let pick = || 0..8usize;
    prop_oneof![
        3 => (user(), thread()).prop_map(|(user, thread)| Op::Open { user, thread }),
        1 => pick().prop_map(|pick| Op::Close { pick }),
        3 => (pick(), room()).prop_map(|(pick, room)| Op::Join { pick, room }),
        1 => (pick(), room()).prop_map(|(pick, room)| Op::Leave { pick, room }),
        1 => (pick(), thread()).prop_map(|(pick, thread)| Op::Bind { pick, thread }),
        4 => (room(), any::<bool>()).prop_map(|(room, big)| Op::PublishRoom { room, big }),
        4 => (user(), thread(), any::<bool>())
            .prop_map(|(user, thread, big)| Op::PublishUser { user, thread, big }),
        2 => (pick(), any::<bool>()).prop_map(|(pick, reading)| Op::Reading { pick, reading }),
        1 => (pick(), any::<bool>())
            .prop_map(|(pick, answers)| Op::AnswersPings { pick, answers }),
        2 => (user(), 0..3usize, any::<bool>()).prop_map(|(user, run, end)| Op::Run { user, run, end }),
        2 => (0..40_000u32).prop_map(|ms| Op::Tick { ms }),
    ]
}

/// Small budgets, so that queues fill, slow readers are closed, history is trimmed and
/// run caps are reached within a few operations.
fn config() -> Config {
    let mut config = Config::development();
    config.backpressure = BackpressureConfig {
        inflight_bytes: 1024,
        queue_messages: 6,
        queue_bytes: 8 * 1024,
        ..config.backpressure
    };
    config.history.max_messages = 8;
    config.history.max_total_bytes = 6 * 1024;
    config.history.max_age = Duration::from_secs(60);
    config.history.empty_room_max_age = Duration::from_secs(20);
    config.cleanup_interval = Duration::from_secs(1);
    config.limits.max_active_runs_per_user = 2;
    config.limits.max_active_runs = 4;
    config.run_idle_timeout = Duration::from_secs(90);
    config.run_retention = Duration::from_secs(30);
    // Members of r0 hear who comes and goes: presence frames share the members' budgets.
    config.presence.rooms = RoomAccess::Only(vec![ROOMS[0].into()]);
    config
}

/// Each room's users are exactly the users of its members, each once.
fn room_users_follow_members(h: &Harness) -> Result<(), String> {
    for room in ROOMS {
        let room: RoomId = room.into();
        let mut users: Vec<UserId> = (h.hub().room_members(&room).iter())
            .map(|&c| h.hub().connection_info(c).expect("a member is open").user)
            .collect();
        users.sort_unstable();
        users.dedup();
        if h.hub().room_users(&room) != users {
            return Err(format!(
                "users of {room}: {:?} != {users:?}",
                h.hub().room_users(&room)
            ));
        }
    }
    Ok(())
}

fn message(big: bool) -> Message {
    let pad = if big { 900 } else { 10 };
    Message::new("m", json!("x".repeat(pad)))
}

fn apply(h: &mut Harness, open: &mut Vec<ConnId>, op: &Op) {
    open.retain(|&c| h.closed(c).is_none());
    let picked = |pick: usize| (!open.is_empty()).then(|| open[pick % open.len()]);
    match *op {
        Op::Open { user, thread } => {
            let mut request = Open::new(USERS[user]);
            if let Some(t) = thread {
                request = request.thread(THREADS[t]);
            }
            if let Ok(conn) = h.open(request) {
                open.push(conn);
            }
        }
        Op::Close { pick } => {
            if let Some(conn) = picked(pick) {
                h.drop_connection(conn);
            }
        }
        Op::Join { pick, room } | Op::Leave { pick, room } => {
            if let Some(conn) = picked(pick) {
                let kind = if matches!(op, Op::Join { .. }) {
                    "join"
                } else {
                    "leave"
                };
                h.send(
                    conn,
                    &json!({"type": kind, "room": ROOMS[room]}).to_string(),
                );
            }
        }
        Op::Bind { pick, thread } => {
            if let Some(conn) = picked(pick) {
                let thread = thread.map(|t| THREADS[t]);
                h.send(conn, &json!({"type": "bind", "thread": thread}).to_string());
            }
        }
        Op::PublishRoom { room, big } => {
            h.publish(Target::Room(ROOMS[room].into()), message(big));
        }
        Op::PublishUser { user, thread, big } => {
            let target = match thread {
                Some(t) => Target::Thread {
                    user: USERS[user].into(),
                    thread: THREADS[t].into(),
                },
                None => Target::User(USERS[user].into()),
            };
            h.publish(target, message(big));
        }
        Op::Reading { pick, reading } => {
            if let Some(conn) = picked(pick) {
                h.set_reading(conn, reading);
            }
        }
        Op::AnswersPings { pick, answers } => {
            if let Some(conn) = picked(pick) {
                h.set_answers_pings(conn, answers);
            }
        }
        Op::Run { user, run, end } => {
            let event = match end {
                false => AgentEvent::AgentStarted { data: json!(null) },
                true => AgentEvent::AgentFailed { error: "e".into() },
            };
            let update = AgentUpdate {
                run: format!("r{run}").into(),
                agent: "a".into(),
                thread: None,
                event,
            };
            // Refused updates (out of order, over a cap) change nothing; the gauges tell.
            let _ = h.with_hub(|hub, now| hub.send_agent_update(now, &USERS[user].into(), update));
        }
        Op::Tick { ms } => h.advance(Duration::from_millis(u64::from(ms))),
    }
}

fn proptest_config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/gauges.txt"
        )))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    /// After every operation, each gauge kept as the state changes equals a recount of it.
    #[test]
    fn every_gauge_kept_incrementally_equals_a_full_recount(ops in prop::collection::vec(op(), 1..120)) {
        let mut h = Harness::new(config());
        let mut open = Vec::new();
        for (step, op) in ops.iter().enumerate() {
            apply(&mut h, &mut open, op);
            let (kept, recounted) = (h.hub().stats(), h.hub().recounted_stats());
            prop_assert_eq!(kept, recounted, "after step {} ({:?})", step, op);
            prop_assert_eq!(room_users_follow_members(&h), Ok(()), "after step {}", step);
        }
        // Everyone leaves and time passes: every gauge comes back to zero.
        for conn in open {
            if h.closed(conn).is_none() {
                h.drop_connection(conn);
            }
        }
        h.advance(Duration::from_secs(600));
        let stats = h.hub().stats();
        prop_assert_eq!(stats.clone(), h.hub().recounted_stats());
        prop_assert_eq!(
            (stats.queued_bytes, stats.inflight_bytes, stats.threads, stats.history_bytes, stats.runs_active),
            (0, 0, 0, 0, 0)
        );
        for room in ROOMS {
            prop_assert!(h.hub().room_users(&room.into()).is_empty(), "users left in {}", room);
        }
    }
}
