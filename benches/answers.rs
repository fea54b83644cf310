//! Streamed agent answers through the core, with injected time. Criterion's throughput is in
//! tokens, so "elem/s" reads as tokens per second per core.
//!
//! `answer_1000_tokens`: one 1 000-token answer to a user with 3 connections that read
//! everything, all at one instant, as `agent_message_delta` events (run automaton, history
//! joined into one entry per message; flush window off, so that every delta is a frame) next to
//! the same tokens published as 1 000 sequenced user messages (one history entry each), the way
//! an answer went before deltas existed.
//!
//! `stream_10000_tokens_per_second`: one 10 000-token answer produced at 10 000 tokens a second
//! (the clock moves 100 µs per token and the hub's timers fire when due) to a user with 3
//! connections, two that read everything at once and one that reads nothing: as deltas with the
//! default 40 ms flush window, as deltas without it, and as one sequenced message per token.
//!
//! After the timings, each way's frames per token and the history it leaves are printed.
//!
//! ```sh
//! cargo bench --bench answers
//! ```

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::time::{Duration, Instant};
use switchboard::{
    AgentEvent, AgentUpdate, Config, ConnId, Hub, Message, Open, Output, SocketInput, SocketOutput,
    Target,
};

#[allow(dead_code)] // `room_of` serves the fan-out benchmarks, not this one
mod fixture;
use fixture::drain;

/// The `n`th token of the answer.
fn token(n: usize) -> String {
    format!("tok{} ", n % 100)
}

/// How an answer is sent.
#[derive(Clone, Copy)]
enum Way {
    /// `agent_message_delta` events.
    Deltas,
    /// One sequenced user message per token.
    Messages,
}

/// A hub with 1 000 other users and alice's 3 connections, the last of which never reads.
struct Alice {
    hub: Hub,
    conns: Vec<ConnId>,
    slow: bool,
    now: Instant,
    /// Frames handed to alice's connections: the two readers, the slow one.
    frames: [usize; 2],
}

impl Alice {
    fn new(config: Config, now: Instant, slow: bool) -> Self {
        let mut hub = Hub::new(config);
        for i in 0..1_000 {
            hub.open(now, Open::new(format!("user-{i}"))).unwrap();
        }
        let conns = (0..3)
            .map(|_| hub.open(now, Open::new("alice")).unwrap())
            .collect();
        drain(&mut hub);
        Self {
            hub,
            conns,
            slow,
            now,
            frames: [0; 2],
        }
    }

    /// Drain the outputs; the readers report every frame written at once.
    fn pump(&mut self) {
        loop {
            let mut written = Vec::new();
            while let Some(output) = self.hub.poll_output() {
                if let Output::Socket(SocketOutput::Send { conn, frame }) = output {
                    let slow = self.slow && conn == self.conns[2];
                    self.frames[usize::from(slow)] += 1;
                    if !slow {
                        written.push((conn, frame.len()));
                    }
                }
            }
            if written.is_empty() {
                return;
            }
            for (conn, bytes) in written {
                let flushed = SocketInput::Flushed { conn, bytes };
                let _ = self.hub.handle_socket(self.now, flushed);
            }
        }
    }

    /// Move the clock by `by`, firing the timers due on the way.
    fn tick(&mut self, by: Duration) {
        self.now += by;
        while let Some(at) = self.hub.poll_timeout() {
            if at > self.now {
                break;
            }
            self.hub.handle_timeout(self.now);
            self.pump();
        }
    }

    fn event(&mut self, run: &str, event: AgentEvent) {
        let update = AgentUpdate {
            run: run.into(),
            agent: "writer".into(),
            thread: None,
            event,
        };
        (self.hub)
            .send_agent_update(self.now, &"alice".into(), update)
            .unwrap();
        self.pump();
    }

    /// Send a `tokens`-token answer as run `run`, one token every `every`.
    fn answer(&mut self, way: Way, run: &str, tokens: usize, every: Duration) {
        if let Way::Deltas = way {
            let data = serde_json::Value::Null;
            self.event(run, AgentEvent::AgentStarted { data });
        }
        let mut offset = 0;
        for n in 0..tokens {
            let text = token(n);
            match way {
                Way::Deltas => {
                    let len = text.chars().count() as u64;
                    let last = n + 1 == tokens;
                    let message = "m".into();
                    let delta = AgentEvent::AgentMessageDelta {
                        message,
                        offset,
                        last,
                        text,
                    };
                    self.event(run, delta);
                    offset += len;
                }
                Way::Messages => {
                    let message = Message::new("token", serde_json::json!({ "text": text }));
                    let to = Target::User("alice".into());
                    self.hub.publish(self.now, to, &message).unwrap();
                    self.pump();
                }
            }
            self.tick(every);
        }
        if let Way::Deltas = way {
            let result = serde_json::Value::Null;
            self.event(run, AgentEvent::AgentCompleted { result });
        }
    }
}

/// The fixture's hub (never queues) with a flush window of `flush`.
fn unbounded(flush: Duration) -> Config {
    let mut config = fixture::config();
    config.limits.message_flush = flush;
    config
}

/// A hub with the production budgets (256 KiB in flight, then 1 024 frames or 1 MiB queued)
/// and a flush window of `flush`.
fn production(flush: Duration) -> Config {
    let mut config = unbounded(flush);
    config.backpressure = Config::production().backpressure;
    config
}

const WINDOW: Duration = Duration::from_millis(40);

fn answers(c: &mut Criterion) {
    let now = Instant::now();
    let mut group = c.benchmark_group("answer_1000_tokens");
    group.throughput(Throughput::Elements(1_000));
    group.sample_size(20);
    for (name, way) in [("deltas", Way::Deltas), ("messages", Way::Messages)] {
        let mut alice = Alice::new(unbounded(Duration::ZERO), now, false);
        let mut run = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                run += 1;
                alice.answer(way, &run.to_string(), 1_000, Duration::ZERO)
            })
        });
    }
    group.finish();

    let tick = Duration::from_micros(100);
    let ways = [
        ("deltas_window_40ms", Way::Deltas, WINDOW),
        ("deltas_no_window", Way::Deltas, Duration::ZERO),
        ("messages", Way::Messages, Duration::ZERO),
    ];
    let mut group = c.benchmark_group("stream_10000_tokens_per_second");
    group.throughput(Throughput::Elements(10_000));
    group.sample_size(10);
    for (name, way, flush) in ways {
        group.bench_function(name, |b| {
            b.iter_batched(
                || Alice::new(production(flush), now, true),
                |mut alice| alice.answer(way, "r", 10_000, tick),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();

    for (name, way, flush) in ways {
        let mut alice = Alice::new(production(flush), now, true);
        alice.answer(way, "r", 10_000, tick);
        alice.tick(WINDOW);
        let stats = alice.hub.stats();
        let [readers, slow] = alice.frames;
        println!(
            "10 000 tokens as {name}: {readers} frames to the 2 readers ({:.4} per token each), \
             {slow} frames to the slow one (queued {}, closed {}), history {} entries, {} bytes",
            readers as f64 / 2.0 / 10_000.0,
            stats.queued_messages,
            alice.hub.connection_info(alice.conns[2]).is_none(),
            stats.history_messages,
            stats.history_bytes,
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = answers
}
criterion_main!(benches);
