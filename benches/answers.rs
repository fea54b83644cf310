//! A streamed agent answer through the core: 1 000 tokens to a user with 3 connections, sent as
//! `agent_message_delta` events (checked by the run automaton, history joined into one entry
//! per message) next to the same tokens published as 1 000 sequenced user messages (one history
//! entry each), the way an answer went before deltas existed. Criterion's throughput is in
//! tokens, so "elem/s" reads as tokens per second per core. After the timings, the history
//! each way leaves for one answer is printed: entries and bytes.
//!
//! ```sh
//! cargo bench --bench answers
//! ```

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::{Duration, Instant};
use switchboard::{AgentEvent, AgentUpdate, Hub, Message, Open, Target};

#[allow(dead_code)] // `room_of` serves the fan-out benchmarks, not this one
mod fixture;
use fixture::{config, drain};

const TOKENS: usize = 1_000;

/// The `n`th token of the answer.
fn token(n: usize) -> String {
    format!("tok{} ", n % 100)
}

/// A hub with alice's 3 connections (and 1 000 other users), outputs drained.
fn hub(now: Instant) -> Hub {
    let mut hub = Hub::new(config());
    for i in 0..1_000 {
        hub.open(now, Open::new(format!("user-{i}"))).unwrap();
    }
    for _ in 0..3 {
        hub.open(now, Open::new("alice")).unwrap();
    }
    drain(&mut hub);
    hub
}

/// Send run `run`'s whole answer as deltas, draining after each event.
fn answer_as_deltas(hub: &mut Hub, now: Instant, run: u64) {
    let send = |hub: &mut Hub, event: AgentEvent| {
        let update = AgentUpdate {
            run: run.to_string().into(),
            agent: "writer".into(),
            thread: None,
            event,
        };
        hub.send_agent_update(now, &"alice".into(), update).unwrap();
        drain(hub);
    };
    send(
        hub,
        AgentEvent::AgentStarted {
            data: serde_json::Value::Null,
        },
    );
    let mut offset = 0;
    for n in 0..TOKENS {
        let text = token(n);
        let len = text.chars().count() as u64;
        let last = n + 1 == TOKENS;
        send(
            hub,
            AgentEvent::AgentMessageDelta {
                message: "m".into(),
                offset,
                last,
                text,
            },
        );
        offset += len;
    }
    send(
        hub,
        AgentEvent::AgentCompleted {
            result: serde_json::Value::Null,
        },
    );
}

/// Publish the same tokens as sequenced messages to the user, draining after each.
fn answer_as_messages(hub: &mut Hub, now: Instant) {
    let target = Target::User("alice".into());
    for n in 0..TOKENS {
        let message = Message::new("token", serde_json::json!({ "text": token(n) }));
        hub.publish(now, target.clone(), &message).unwrap();
        drain(hub);
    }
}

fn answers(c: &mut Criterion) {
    let now = Instant::now();
    let mut group = c.benchmark_group("answer_1000_tokens");
    group.throughput(Throughput::Elements(TOKENS as u64));
    group.sample_size(20);
    let mut deltas = hub(now);
    let mut run = 0;
    group.bench_function("deltas", |b| {
        b.iter(|| {
            run += 1;
            answer_as_deltas(&mut deltas, now, run)
        })
    });
    let mut messages = hub(now);
    group.bench_function("messages", |b| {
        b.iter(|| answer_as_messages(&mut messages, now))
    });
    group.finish();
    let (mut one_delta, mut one_messages) = (hub(now), hub(now));
    answer_as_deltas(&mut one_delta, now, 1);
    answer_as_messages(&mut one_messages, now);
    for (way, hub) in [("deltas", &one_delta), ("messages", &one_messages)] {
        let stats = hub.stats();
        println!(
            "history of one answer as {way}: {} entries, {} bytes",
            stats.history_messages, stats.history_bytes
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = answers
}
criterion_main!(benches);
