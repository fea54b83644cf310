//! Agent answers streamed token by token: `agent_message_delta` events in the run automaton
//! (each at its message's length, none after its `final` one), joined and never dropped for a
//! reader that falls behind, rolled up per flush window for a reader that keeps up, kept in
//! history as one entry per message, and replayed to late joiners and resuming readers as the
//! text so far, which the client de-duplicates by offset.

mod support;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use support::*;
use switchboard::testing::Harness;
use switchboard::{
    AgentEvent, AgentUpdate, Config, ConnId, HistoryConfig, Open, PublishError, Reason, RunError,
};

/// A piece of text appended to `message` at `offset` (`last`: its final delta).
fn delta(message: &str, offset: u64, text: &str, last: bool) -> AgentEvent {
    AgentEvent::AgentMessageDelta {
        message: message.into(),
        offset,
        last,
        text: text.into(),
    }
}

/// Try to publish one event of alice's run `r1` on thread `t1`.
fn try_event(h: &mut Harness, event: AgentEvent) -> Result<(), PublishError> {
    let update = AgentUpdate {
        run: "r1".into(),
        agent: "writer".into(),
        thread: Some("t1".into()),
        event,
    };
    h.with_hub(|hub, now| hub.send_agent_update(now, &"alice".into(), update))
        .map(|_| ())
}

/// The producer's side of one message: what it sent so far.
#[derive(Default)]
struct Producer {
    text: String,
    len: u64,
}

impl Producer {
    /// Send `piece` as the next delta of `message`.
    fn send(&mut self, h: &mut Harness, message: &str, piece: &str) {
        try_event(h, delta(message, self.len, piece, false)).expect("a delta in order");
        self.text.push_str(piece);
        self.len += piece.chars().count() as u64;
    }
}

/// What a client assembles from delta frames, per message: the text, by offset. A frame that
/// starts past the text assembled so far is a hole.
#[derive(Default, Debug)]
struct Assembler {
    messages: BTreeMap<String, String>,
    frames: usize,
}

impl Assembler {
    fn read(&mut self, frames: &[Value]) {
        for f in frames.iter().filter(|f| f["type"] == "agent_message_delta") {
            self.frames += 1;
            let text = self
                .messages
                .entry(f["message"].as_str().unwrap().to_owned())
                .or_default();
            let have = text.chars().count() as u64;
            let offset = f["offset"].as_u64().unwrap();
            assert!(offset <= have, "a hole: offset {offset} past {have}");
            let piece = f["text"].as_str().unwrap();
            text.extend(piece.chars().skip((have - offset) as usize));
        }
    }

    fn text(&self, message: &str) -> &str {
        self.messages.get(message).map_or("", String::as_str)
    }
}

/// The `n`th token of an answer: words with accents, an emoji, quotes and newlines.
fn token(n: usize) -> String {
    match n % 5 {
        0 => format!("mot{n} "),
        1 => "é😀 ".to_owned(),
        2 => "\"quoted\" ".to_owned(),
        3 => "line\n".to_owned(),
        _ => format!("{n}\\ "),
    }
}

/// The flush window of the small configuration (the default).
const WINDOW: Duration = Duration::from_millis(40);

/// Alice reading on t1, with run r1 started; her frames so far taken.
fn reading_alice() -> (Harness, ConnId) {
    alice_with(small_config())
}

/// Alice reading on t1 of a hub with `config`, with run r1 started; her frames so far taken.
fn alice_with(config: Config) -> (Harness, ConnId) {
    let mut h = Harness::new(config);
    let conn = h.open(Open::new("alice").thread("t1")).unwrap();
    try_event(&mut h, started()).unwrap();
    h.take(conn);
    (h, conn)
}

#[test]
fn the_flush_window_of_the_small_configuration_is_the_default() {
    assert_eq!(small_config().limits.message_flush, WINDOW);
}

#[test]
fn without_a_flush_window_a_live_reader_gets_one_frame_per_delta() {
    let mut config = small_config();
    config.limits.message_flush = Duration::ZERO;
    let (mut h, conn) = alice_with(config);
    let mut producer = Producer::default();
    for n in 0..200 {
        producer.send(&mut h, "m1", &token(n));
    }
    let mut reader = Assembler::default();
    reader.read(&h.take(conn));
    assert_eq!(reader.text("m1"), producer.text);
    assert_eq!(
        reader.frames, 200,
        "a reader that keeps up gets every delta"
    );
}

#[test]
fn a_live_reader_gets_the_first_delta_at_once_then_one_frame_per_flush_window() {
    let (mut h, conn) = reading_alice();
    let mut producer = Producer::default();
    let mut reader = Assembler::default();
    // 10 000 tokens a second for a tenth of a second; what the producer had sent, and when.
    let tick = Duration::from_micros(100);
    let mut sent_at: Vec<(Duration, usize)> = Vec::new();
    let mut elapsed = Duration::ZERO;
    for n in 0..1_000 {
        producer.send(&mut h, "m1", &token(n));
        sent_at.push((elapsed, producer.text.len()));
        reader.read(&h.take(conn));
        if n == 0 {
            assert_eq!(
                reader.text("m1"),
                producer.text,
                "the first token is not delayed"
            );
        }
        // Everything sent a window ago or earlier has arrived.
        let due = sent_at.iter().rev().find(|(at, _)| *at + WINDOW <= elapsed);
        let due = due.map_or(0, |(_, len)| *len);
        assert!(
            reader.text("m1").len() >= due,
            "a delta waited past its window"
        );
        assert!(producer.text.starts_with(reader.text("m1")));
        h.advance(tick);
        elapsed += tick;
    }
    h.advance(WINDOW);
    reader.read(&h.take(conn));
    assert_eq!(reader.text("m1"), producer.text);
    assert!(
        reader.frames * 10 <= 1_000,
        "{} frames for 1 000 deltas",
        reader.frames
    );
    assert_eq!(drops(&h, Reason::Coalesced) + drops(&h, Reason::Shed), 0);
}

#[test]
fn a_final_delta_and_a_run_end_go_out_at_once_after_the_text_held_before_them() {
    let (mut h, conn) = reading_alice();
    let (mut m1, mut m2) = (Producer::default(), Producer::default());
    let mut reader = Assembler::default();
    m1.send(&mut h, "m1", "first ");
    m1.send(&mut h, "m1", "held ");
    reader.read(&h.take(conn));
    assert_eq!(
        reader.text("m1"),
        "first ",
        "the second waits for the window"
    );
    try_event(&mut h, delta("m1", m1.len, "end", true)).unwrap();
    reader.read(&h.take(conn));
    assert_eq!(
        reader.text("m1"),
        "first held end",
        "the final delta does not wait"
    );
    m2.send(&mut h, "m2", "a ");
    m2.send(&mut h, "m2", "b");
    let failed = AgentEvent::AgentFailed {
        error: "out of tokens".into(),
    };
    try_event(&mut h, failed).unwrap();
    let frames = h.take(conn);
    reader.read(&frames);
    assert_eq!(
        reader.text("m2"),
        "a b",
        "the run's end flushed what was held"
    );
    assert_eq!(
        types(&frames),
        ["agent_message_delta", "agent_message_delta", "agent_failed"],
        "in order"
    );
}

#[test]
fn a_reader_that_falls_behind_gets_the_queued_deltas_of_a_message_joined_into_one_frame() {
    let (mut h, conn) = reading_alice();
    h.set_reading(conn, false);
    fill_queue(&mut h, &thread("alice", "t1"), conn, 1);
    let mut producer = Producer::default();
    for n in 0..500 {
        producer.send(&mut h, "m1", &token(n));
    }
    assert!(h.closed(conn).is_none());
    assert!(queued(&h, conn) <= 3, "queued: {}", queued(&h, conn));
    h.set_reading(conn, true);
    let mut reader = Assembler::default();
    reader.read(&h.take(conn));
    assert_eq!(reader.text("m1"), producer.text, "joined, never dropped");
    assert!(
        reader.frames < 50,
        "{} frames for 500 deltas",
        reader.frames
    );
    assert_eq!(drops(&h, Reason::Coalesced) + drops(&h, Reason::Shed), 0);
}

#[test]
fn a_joined_message_past_the_queue_bytes_closes_the_reader_which_resumes_with_the_text() {
    let (mut h, conn) = reading_alice();
    let mut reader = Assembler::default();
    h.set_reading(conn, false);
    fill_queue(&mut h, &thread("alice", "t1"), conn, 1);
    let mut producer = Producer::default();
    let piece = "x".repeat(1000);
    while h.closed(conn).is_none() {
        producer.send(&mut h, "m1", &piece);
        assert!(producer.len < 1_000_000, "never closed");
    }
    assert_eq!(h.closed(conn).map(|c| c.0), Some(4008));
    reader.read(h.frames(conn));
    let again = h.reconnect(conn, Open::new("alice").thread("t1")).unwrap();
    producer.send(&mut h, "m1", "end");
    reader.read(&h.take(again));
    assert_eq!(reader.text("m1"), producer.text);
}

#[test]
fn history_keeps_one_entry_per_message_about_as_large_as_its_text() {
    let mut config = Config::development();
    config.history = HistoryConfig {
        max_bytes: 1 << 20,
        ..config.history
    };
    let mut h = Harness::new(config);
    try_event(&mut h, started()).unwrap();
    let mut producer = Producer::default();
    for n in 0..10_000 {
        producer.send(&mut h, "answer", &token(n));
    }
    let stats = h.hub().stats();
    assert_eq!(stats.history_messages, 2, "agent_started and the answer");
    let overhead = 600;
    assert!(
        stats.history_bytes <= producer.text.len() + producer.text.len() / 4 + overhead,
        "{} history bytes for an answer of {} bytes",
        stats.history_bytes,
        producer.text.len()
    );
    // Alice opens: the answer so far arrives in one frame.
    let conn = h.open(Open::new("alice").thread("t1")).unwrap();
    let mut reader = Assembler::default();
    reader.read(h.frames(conn));
    assert_eq!(
        (reader.frames, reader.text("answer")),
        (1, producer.text.as_str())
    );
}

#[test]
fn a_late_joiner_gets_the_text_so_far_in_one_frame_then_the_live_deltas_at_their_offsets() {
    let (mut h, _early) = reading_alice();
    let mut producer = Producer::default();
    for n in 0..50 {
        producer.send(&mut h, "m1", &token(n));
    }
    let late = h.open(Open::new("alice").thread("t1")).unwrap();
    let binder = h.connect("alice");
    h.send(binder, r#"{"type":"bind","thread":"t1"}"#);
    let (mut opened, mut bound) = (Assembler::default(), Assembler::default());
    for (reader, conn) in [(&mut opened, late), (&mut bound, binder)] {
        let frames = h.take(conn);
        reader.read(&frames);
        assert_eq!(reader.frames, 1, "one frame for 50 deltas");
        let first = frames.iter().find(|f| f["type"] == "agent_message_delta");
        assert_eq!(first.unwrap()["offset"], 0);
        assert_eq!(reader.text("m1"), producer.text);
    }
    for n in 50..80 {
        producer.send(&mut h, "m1", &token(n));
    }
    try_event(&mut h, delta("m1", producer.len, "", true)).unwrap();
    for (reader, conn) in [(&mut opened, late), (&mut bound, binder)] {
        reader.read(&h.take(conn));
        assert_eq!(reader.text("m1"), producer.text);
    }
}

#[test]
fn a_reader_resuming_mid_message_gets_the_text_from_offset_zero_and_keeps_what_it_lacks() {
    let (mut h, conn) = reading_alice();
    let mut reader = Assembler::default();
    let mut producer = Producer::default();
    for n in 0..30 {
        producer.send(&mut h, "m1", &token(n));
    }
    h.publish(thread("alice", "t1"), msg("between"));
    producer.send(&mut h, "m1", "more ");
    reader.read(&h.take(conn));
    h.drop_connection(conn);
    for n in 30..60 {
        producer.send(&mut h, "m1", &token(n));
    }
    let again = h.reconnect(conn, Open::new("alice").thread("t1")).unwrap();
    let replayed = h.take(again);
    assert_eq!(
        types(&replayed).iter().filter(|t| *t == "message").count(),
        0
    );
    reader.read(&replayed);
    assert_eq!(reader.text("m1"), producer.text);
    producer.send(&mut h, "m1", "end");
    reader.read(&h.take(again));
    assert_eq!(reader.text("m1"), producer.text);
}

#[test]
fn deltas_out_of_order_are_refused_with_what_was_expected_and_reach_no_one() {
    let mut h = harness();
    let conn = h.open(Open::new("alice").thread("t1")).unwrap();
    assert!(matches!(
        try_event(&mut h, delta("m", 0, "early", false)),
        Err(PublishError::Run(RunError::NotStarted(_)))
    ));
    try_event(&mut h, started()).unwrap();
    try_event(&mut h, delta("m", 0, "héllo", false)).unwrap();
    for wrong in [0, 4, 6] {
        assert!(matches!(
            try_event(&mut h, delta("m", wrong, "!", false)),
            Err(PublishError::Run(RunError::WrongOffset { expected: 5, offset, .. })) if offset == wrong
        ));
    }
    assert!(matches!(
        try_event(&mut h, completed()),
        Err(PublishError::Run(RunError::MessagesStillOpen { open, .. })) if open == ["m"]
    ));
    try_event(&mut h, delta("m", 5, "!", true)).unwrap();
    assert!(matches!(
        try_event(&mut h, delta("m", 6, "?", false)),
        Err(PublishError::Run(RunError::MessageEnded { .. }))
    ));
    try_event(&mut h, completed()).unwrap();
    assert!(matches!(
        try_event(&mut h, delta("n", 0, "late", false)),
        Err(PublishError::Run(RunError::Ended(_)))
    ));
    let mut reader = Assembler::default();
    reader.read(h.frames(conn));
    assert_eq!((reader.frames, reader.text("m")), (2, "héllo!"));
}

/// One step of the property: the producer sends, a reader stops or starts reading, drops and
/// resumes, a new reader opens on the thread or binds to it, or the clock moves (across flush
/// windows or within one).
#[derive(Debug, Clone)]
enum Op {
    Delta { message: u8, tokens: u8 },
    End { message: u8 },
    Reading { reader: u8, on: bool },
    Resume { reader: u8 },
    Join { bind: bool },
    Advance { ms: u8 },
    Other,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..3u8, 1..40u8).prop_map(|(message, tokens)| Op::Delta { message, tokens }),
        1 => (0..3u8).prop_map(|message| Op::End { message }),
        2 => (0..5u8, any::<bool>()).prop_map(|(reader, on)| Op::Reading { reader, on }),
        1 => (0..5u8).prop_map(|reader| Op::Resume { reader }),
        1 => any::<bool>().prop_map(|bind| Op::Join { bind }),
        3 => (0..90u8).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Other),
    ]
}

fn proptest_config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/message_streams.txt"
        )))),
        ..ProptestConfig::default()
    }
}

/// Readers that may open at most.
const READERS: usize = 5;

/// A new reader of alice's thread t1: opened on it, or opened without a thread and bound to it.
fn join(h: &mut Harness, bind: bool) -> ConnId {
    if !bind {
        return h.open(Open::new("alice").thread("t1")).unwrap();
    }
    let conn = h.connect("alice");
    h.send(conn, r#"{"type":"bind","thread":"t1"}"#);
    conn
}

proptest! {
    #![proptest_config(proptest_config())]

    /// Whatever the producer sends, however readers fall behind, drop and resume, join late or
    /// bind, and however the clock moves across flush windows, every reader's text is at every
    /// moment a prefix of the producer's (no hole, no character twice), and in the end each
    /// message exactly as the producer wrote it; the history holds one entry per message.
    #[test]
    fn every_reader_assembles_every_message_exactly(ops in prop::collection::vec(op(), 1..80)) {
        let mut config = small_config();
        config.history.max_messages = 1000;
        config.history.max_bytes = 1 << 20;
        config.limits.max_connections_per_user = READERS;
        let mut h = Harness::new(config);
        let mut conns: Vec<ConnId> = (0..3)
            .map(|_| h.open(Open::new("alice").thread("t1")).unwrap())
            .collect();
        let mut readers: Vec<Assembler> = (0..3).map(|_| Assembler::default()).collect();
        try_event(&mut h, started()).unwrap();
        let mut producers: Vec<(Producer, bool)> = (0..3).map(|_| Default::default()).collect();
        let (mut sent, mut others) = (0, 0);
        for op in ops {
            match op {
                Op::Delta { message, tokens } => {
                    let (producer, ended) = &mut producers[message as usize];
                    if !*ended {
                        for _ in 0..tokens {
                            sent += 1;
                            producer.send(&mut h, &format!("m{message}"), &token(sent));
                        }
                    }
                }
                Op::End { message } => {
                    let (producer, ended) = &mut producers[message as usize];
                    if !*ended {
                        let end = delta(&format!("m{message}"), producer.len, "", true);
                        try_event(&mut h, end).unwrap();
                        *ended = true;
                    }
                }
                Op::Reading { reader, on } => {
                    if let Some(&conn) = conns.get(reader as usize) {
                        h.set_reading(conn, on);
                    }
                }
                Op::Resume { reader } => {
                    let Some(&old) = conns.get(reader as usize) else { continue };
                    readers[reader as usize].read(&h.take(old));
                    if h.closed(old).is_none() {
                        h.drop_connection(old);
                    }
                    conns[reader as usize] =
                        h.reconnect(old, Open::new("alice").thread("t1")).unwrap();
                }
                Op::Join { bind } => {
                    if conns.len() < READERS {
                        conns.push(join(&mut h, bind));
                        readers.push(Assembler::default());
                    }
                }
                Op::Advance { ms } => {
                    h.advance(Duration::from_millis(u64::from(ms)));
                    for (reader, &conn) in readers.iter_mut().zip(&conns) {
                        reader.read(&h.take(conn));
                        for (m, (producer, _)) in producers.iter().enumerate() {
                            let text = reader.text(&format!("m{m}"));
                            prop_assert!(producer.text.starts_with(text));
                        }
                    }
                }
                Op::Other => {
                    others += 1;
                    h.publish(thread("alice", "t1"), msg("other"));
                }
            }
        }
        let messages = producers.iter().filter(|(p, ended)| p.len > 0 || *ended).count();
        prop_assert_eq!(h.hub().stats().history_messages, 1 + messages + others);
        h.advance(WINDOW);
        for i in 0..conns.len() {
            let conn = conns[i];
            if h.closed(conn).is_some() {
                readers[i].read(&h.take(conn));
                conns[i] = h.reconnect(conn, Open::new("alice").thread("t1")).unwrap();
            }
            h.set_reading(conns[i], true);
            h.advance(WINDOW);
            readers[i].read(&h.take(conns[i]));
            for (m, (producer, _)) in producers.iter().enumerate() {
                prop_assert_eq!(readers[i].text(&format!("m{m}")), producer.text.as_str());
            }
        }
    }
}
