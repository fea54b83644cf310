//! The cost of what grows with the hub's state: a `stats()` snapshot (what `/metrics` calls on
//! every scrape), an append to history once the hub-wide history budget is reached, and a
//! connection opening on a hub that holds many runs.
//!
//! - `stats/10000`: a hub with 10 000 connections (half of them in a room, a third bound to
//!   threads, most with frames in flight, each with a user stream holding history). `kept` is `Hub::stats`, whose gauges
//!   are kept as the state changes; `recounted` is `Hub::recounted_stats`, which walks every
//!   connection and stream as `stats` did before: the ratio of the two is what a scrape saves.
//! - `history_append/<streams>`: one publish to an offline user, rotating over `<streams>`
//!   users whose streams hold history. `within_budget` never reaches
//!   `HistoryConfig::max_total_bytes`; `over_budget` is at it, so every append trims the
//!   stream that went longest without one. Flat figures across stream counts show that the
//!   trimming order costs no scan of the streams.
//! - `open_with_runs/<runs>`: a connection of a user with no run opens (and closes) on a hub
//!   holding `<runs>` runs of other users, half in progress and half ended (kept for their
//!   reports). A fresh connection is sent the runs in progress it receives, read from its own
//!   user's stream: flat figures show that other users' runs cost it nothing.
//! - `open_with_history/<entries>`: a connection of a user whose stream holds `<entries>`
//!   events of that user's runs (ten per run) opens and closes. Which runs are in progress is
//!   read from that history: `ended` (every run ended, nothing to send) is the cost of that
//!   read alone; `one_in_progress` adds the replay of the last run's events so far.
//! - `open_with_waits/<waits>`: the same open and close on a hub where the application waits
//!   for `<waits>` other users to connect (`Hub::wait_for_connection`): the opening resolves
//!   its own user's waits, and should not walk the others'.
//! - `join_presence/<members>`: a client joins a room of `<members>` users asking for
//!   presence (`"presence": true`) and leaves it again. Above `PresenceConfig::max_members`
//!   its `joined` carries only the count of users, which the hub keeps: the figure should not
//!   grow with the room.
//! - `room_overflow/<members>`: one publish to a room of `<members>` readers whose outboxes
//!   are all full, so that every one of them overflows and is closed as a slow consumer at
//!   the end of the publish (as when a node's writers stall). Per member, the figure should
//!   not grow with the room.
//!
//! ```sh
//! cargo bench --bench state
//! ```

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::{Duration, Instant};
use switchboard::{
    AgentEvent, AgentUpdate, Hub, Message, Open, Output, RoomId, SocketInput, SocketOutput, Target,
    UserId,
};

mod fixture;
use fixture::{config, drain, room_of};

fn stats(c: &mut Criterion) {
    let now = Instant::now();
    let n = 10_000;
    let (mut hub, room) = room_of(n, now);
    for (i, conn) in hub.room_members(&room).into_iter().enumerate() {
        if i % 3 == 0 {
            hub.update_connection_thread(conn, Some(format!("t{}", i % 7).into()))
                .unwrap();
        }
        if i % 2 == 0 {
            hub.leave_room(conn, &room).unwrap();
        }
        let user = hub.connection_info(conn).unwrap().user;
        let message = Message::new("m", serde_json::json!(i));
        hub.publish(now, Target::User(user), &message).unwrap();
        // A third of the readers flushed what they were sent; the rest have it in flight.
        while let Some(output) = hub.poll_output() {
            if let (Output::Socket(SocketOutput::Send { conn, frame }), 0) = (output, i % 3) {
                let bytes = frame.len();
                hub.handle_socket(now, SocketInput::Flushed { conn, bytes })
                    .unwrap();
            }
        }
    }
    assert_eq!(hub.stats(), hub.recounted_stats());
    let mut group = c.benchmark_group("stats");
    group.bench_function(BenchmarkId::new("kept", n), |b| {
        b.iter(|| black_box(hub.stats()))
    });
    group.bench_function(BenchmarkId::new("recounted", n), |b| {
        b.iter(|| black_box(hub.recounted_stats()))
    });
    group.finish();
}

fn history_append(c: &mut Criterion) {
    let now = Instant::now();
    let message = Message::new("m", serde_json::json!({"pad": "x".repeat(200)}));
    let mut group = c.benchmark_group("history_append");
    for streams in [100usize, 10_000] {
        for (name, over) in [("within_budget", false), ("over_budget", true)] {
            let mut config = config();
            let users: Vec<Target> = (0..streams)
                .map(|i| Target::User(format!("offline-{i}").into()))
                .collect();
            let mut hub = Hub::new(config.clone());
            for to in &users {
                hub.publish(now, to.clone(), &message).unwrap();
            }
            let kept = hub.stats().history_bytes;
            // At the budget: every further append trims one entry of another stream.
            config.history.max_total_bytes = if over { kept } else { usize::MAX };
            let mut hub = Hub::new(config);
            for to in &users {
                hub.publish(now, to.clone(), &message).unwrap();
            }
            // One append more, checked before measuring (a filtered run measures nothing).
            hub.publish(now, users[0].clone(), &message).unwrap();
            drain(&mut hub);
            let trimmed = hub.stats().counters.history_trimmed;
            assert_eq!(trimmed > 0, over, "{name}: {trimmed} trimmed");
            let mut next = 0;
            group.bench_function(BenchmarkId::new(name, streams), |b| {
                b.iter(|| {
                    next = (next + 1) % users.len();
                    hub.publish(now, users[next].clone(), &message).unwrap();
                    drain(&mut hub)
                })
            });
        }
    }
    group.finish();
}

/// A connection of a user with no run and no wait opens and closes, every output drained.
fn open_and_close(hub: &mut Hub, now: Instant) -> usize {
    let conn = hub.open(now, Open::new("late")).unwrap();
    drain(hub);
    hub.handle_socket(now, SocketInput::Closed { conn })
        .unwrap();
    drain(hub)
}

/// `user`'s run `run` takes `event` (a null `data` or `result`).
fn agent(hub: &mut Hub, now: Instant, user: &UserId, run: &str, event: AgentEvent) {
    let update = AgentUpdate {
        run: run.into(),
        agent: "agent".into(),
        thread: None,
        event,
    };
    hub.send_agent_update(now, user, update).unwrap();
}

fn started() -> AgentEvent {
    AgentEvent::AgentStarted {
        data: serde_json::Value::Null,
    }
}

fn completed() -> AgentEvent {
    AgentEvent::AgentCompleted {
        result: serde_json::Value::Null,
    }
}

fn open_with_runs(c: &mut Criterion) {
    let now = Instant::now();
    let mut group = c.benchmark_group("open_with_runs");
    for runs in [10usize, 10_000] {
        let mut hub = Hub::new(config());
        for i in 0..runs {
            let (user, run) = (UserId::from(format!("producer-{i}")), format!("run-{i}"));
            agent(&mut hub, now, &user, &run, started());
            if i % 2 == 0 {
                agent(&mut hub, now, &user, &run, completed());
            }
        }
        drain(&mut hub);
        assert_eq!(hub.stats().runs_active, runs / 2);
        group.bench_function(BenchmarkId::from_parameter(runs), |b| {
            b.iter(|| open_and_close(&mut hub, now))
        });
    }
    group.finish();
}

fn open_with_history(c: &mut Criterion) {
    let now = Instant::now();
    let mut group = c.benchmark_group("open_with_history");
    for (name, in_progress) in [("ended", false), ("one_in_progress", true)] {
        let mut hub = Hub::new(config());
        let user = UserId::from("late");
        // A full user stream: runs of ten events each, every one ended but, maybe, the last.
        let entries = hub.config().history.max_messages;
        for i in 0..entries / 10 {
            let run = format!("run-{i}");
            agent(&mut hub, now, &user, &run, started());
            for _ in 0..8 {
                let thinking = AgentEvent::AgentThinking {
                    thought: "hmm".into(),
                };
                agent(&mut hub, now, &user, &run, thinking);
            }
            if !in_progress || i + 1 < entries / 10 {
                agent(&mut hub, now, &user, &run, completed());
            }
        }
        drain(&mut hub);
        group.bench_function(BenchmarkId::new(name, entries), |b| {
            b.iter(|| open_and_close(&mut hub, now))
        });
    }
    group.finish();
}

fn open_with_waits(c: &mut Criterion) {
    let now = Instant::now();
    let deadline = now + Duration::from_secs(3600);
    let mut group = c.benchmark_group("open_with_waits");
    for waits in [10usize, 10_000] {
        let mut hub = Hub::new(config());
        for i in 0..waits {
            hub.wait_for_connection(&format!("offline-{i}").into(), deadline);
        }
        assert_eq!(hub.stats().waiters, waits);
        group.bench_function(BenchmarkId::from_parameter(waits), |b| {
            b.iter(|| open_and_close(&mut hub, now))
        });
    }
    group.finish();
}

fn join_presence(c: &mut Criterion) {
    let now = Instant::now();
    let mut group = c.benchmark_group("join_presence");
    let mut config = config();
    // The watcher's frames are not refused by its rate limit, however fast the bench goes.
    config.limits.messages_per_second = u32::MAX;
    config.limits.message_burst = u32::MAX;
    let room = RoomId::from("lobby");
    for members in [1_000usize, 100_000] {
        let mut hub = Hub::new(config.clone());
        for i in 0..members {
            let conn = hub.open(now, Open::new(format!("user-{i}"))).unwrap();
            hub.join_room(now, conn, &room).unwrap();
        }
        let conn = hub.open(now, Open::new("watcher")).unwrap();
        drain(&mut hub);
        let join = br#"{"type":"join","room":"lobby","presence":true}"#;
        let leave = br#"{"type":"leave","room":"lobby"}"#;
        group.bench_function(BenchmarkId::from_parameter(members), |b| {
            b.iter(|| {
                for bytes in [&join[..], &leave[..]] {
                    hub.handle_socket(now, SocketInput::Text { conn, bytes })
                        .unwrap();
                    // The reply is read, so that the in-flight budget never fills.
                    while let Some(output) = hub.poll_output() {
                        if let Output::Socket(SocketOutput::Send { conn, frame }) = output {
                            let bytes = frame.len();
                            hub.handle_socket(now, SocketInput::Flushed { conn, bytes })
                                .unwrap();
                        }
                    }
                }
            })
        });
    }
    group.finish();
}

fn room_overflow(c: &mut Criterion) {
    let now = Instant::now();
    let mut config = config();
    // The welcome fills each member's in-flight budget, and `joined` its queue.
    config.backpressure.inflight_bytes = 1;
    config.backpressure.queue_messages = 1;
    let room = RoomId::from("lobby");
    let message = Message::new("m", serde_json::json!(1));
    let mut group = c.benchmark_group("room_overflow");
    group.sample_size(10);
    for members in [1_000usize, 10_000] {
        group.throughput(Throughput::Elements(members as u64));
        let full_room = || {
            let mut hub = Hub::new(config.clone());
            for i in 0..members {
                let conn = hub.open(now, Open::new(format!("user-{i}"))).unwrap();
                hub.join_room(now, conn, &room).unwrap();
            }
            drain(&mut hub);
            assert_eq!(hub.stats().connections, members);
            hub
        };
        let mut hub = full_room();
        hub.publish(now, Target::Room(room.clone()), &message)
            .unwrap();
        drain(&mut hub);
        assert_eq!(hub.stats().connections, 0, "every member closed as slow");
        group.bench_function(BenchmarkId::from_parameter(members), |b| {
            b.iter_batched(
                full_room,
                |mut hub| {
                    hub.publish(now, Target::Room(room.clone()), &message)
                        .unwrap();
                    drain(&mut hub);
                    hub
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = stats, history_append, open_with_runs, open_with_history, open_with_waits, join_presence, room_overflow
}
criterion_main!(benches);
