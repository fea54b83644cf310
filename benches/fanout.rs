//! The core's cost per delivery: one publish fanned out to its recipients, measured on the
//! sans-IO [`Hub`] alone (no sockets, no runtime, one thread, so the figures are per core).
//!
//! Each iteration publishes one message and drains every output, as a transport does after
//! each input. The backpressure budget is set out of reach so that no queue grows: what is
//! measured is the hand-off of a shared frame to each recipient. The `with_flush` group also
//! reports every frame written (`SocketInput::Flushed`), as a transport that flushes each frame on
//! its own would. Criterion's throughput is in recipients, so "elem/s" reads as deliveries
//! per second per core.
//!
//! ```sh
//! cargo bench --bench fanout
//! ```

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use std::time::{Duration, Instant};
use switchboard::{Hub, Message, Open, Output, RoomId, SocketInput, SocketOutput, Target};

mod fixture;
use fixture::{config, drain, room_of};

/// The message every benchmark publishes: an event with a small JSON body.
fn message() -> Message {
    Message::new(
        "tick",
        serde_json::json!({"t": 1_764_070_000_000_000u64, "i": 42}),
    )
}

/// Drain every output, reporting each frame flushed at once.
fn drain_flushing(hub: &mut Hub, now: Instant) -> usize {
    let mut sent = 0;
    while let Some(output) = hub.poll_output() {
        if let Output::Socket(SocketOutput::Send { conn, frame }) = output {
            sent += 1;
            let bytes = frame.len();
            drop(frame);
            hub.handle_socket(now, SocketInput::Flushed { conn, bytes })
                .expect("the connection is open");
        }
    }
    sent
}

fn room_fanout(c: &mut Criterion) {
    let now = Instant::now();
    let message = message();
    let mut group = c.benchmark_group("room");
    for n in [1usize, 100, 10_000, 100_000] {
        let (mut hub, room) = room_of(n, now);
        let target = Target::Room(room);
        group.throughput(Throughput::Elements(n as u64));
        if n >= 10_000 {
            group.sample_size(20);
        }
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                let delivery = hub.publish(now, target.clone(), &message).unwrap();
                assert_eq!(drain(&mut hub), delivery.reached);
            })
        });
    }
    group.finish();
}

fn room_fanout_with_flush(c: &mut Criterion) {
    let now = Instant::now();
    let message = message();
    let mut group = c.benchmark_group("room_with_flush");
    let n = 10_000;
    let (mut hub, room) = room_of(n, now);
    let target = Target::Room(room);
    group.throughput(Throughput::Elements(n as u64));
    group.sample_size(20);
    group.bench_function(BenchmarkId::from_parameter(n), |b| {
        b.iter(|| {
            hub.publish(now, target.clone(), &message).unwrap();
            drain_flushing(&mut hub, now)
        })
    });
    group.finish();
}

fn user_fanout(c: &mut Criterion) {
    let now = Instant::now();
    let message = message();
    let mut hub = Hub::new(config());
    // Other users around, so the user index is not trivially small.
    for i in 0..1_000 {
        hub.open(now, Open::new(format!("user-{i}"))).unwrap();
    }
    for _ in 0..3 {
        hub.open(now, Open::new("alice")).unwrap();
    }
    drain(&mut hub);
    let target = Target::User("alice".into());
    let mut group = c.benchmark_group("user");
    group.throughput(Throughput::Elements(3));
    group.bench_function("3_connections", |b| {
        b.iter(|| {
            hub.publish(now, target.clone(), &message).unwrap();
            drain(&mut hub)
        })
    });
    group.finish();
}

fn all_fanout(c: &mut Criterion) {
    let now = Instant::now();
    let message = message();
    let n = 10_000;
    let mut hub = Hub::new(config());
    for i in 0..n {
        hub.open(now, Open::new(format!("user-{i}"))).unwrap();
    }
    drain(&mut hub);
    let mut group = c.benchmark_group("all");
    group.throughput(Throughput::Elements(n as u64));
    group.sample_size(20);
    group.bench_function(BenchmarkId::from_parameter(n), |b| {
        b.iter(|| {
            hub.publish(now, Target::All, &message).unwrap();
            drain(&mut hub)
        })
    });
    group.finish();
}

/// Opening a connection and joining a room, the per-connection setup cost.
fn open_and_join(c: &mut Criterion) {
    let now = Instant::now();
    let room = RoomId::from("lobby");
    let mut group = c.benchmark_group("open");
    let n = 1_000;
    group.throughput(Throughput::Elements(n as u64));
    group.sample_size(20);
    group.bench_function("join_1000", |b| {
        b.iter_batched(
            || Hub::new(config()),
            |mut hub| {
                for i in 0..n {
                    let conn = hub.open(now, Open::new(format!("user-{i}"))).unwrap();
                    hub.join_room(now, conn, &room).unwrap();
                    drain(&mut hub);
                }
                hub
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = room_fanout, room_fanout_with_flush, user_fanout, all_fanout, open_and_join
}
criterion_main!(benches);
