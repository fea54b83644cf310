//! A streamed agent answer across nodes with shared streams: the producer's node is not the
//! readers'. Every node assembles the same text; a client resuming on another node from before
//! the answer gets the text so far in one frame and then the live deltas at their offsets; a
//! client resuming mid-answer on a node that serves nobody of its user (which loads the shared
//! history, every delta of it) ends with the same text: Redis keeps every delta as an entry
//! (docs/OPERATIONS.md, "Shared streams"). The test starts `redis-server` from PATH on a free port and nodes in
//! this process. Timeouts only guard against hangs.

mod support;

use serde_json::Value;
use support::shared_node;
use switchboard::{AgentEvent, AgentUpdate, Position};
use switchboard_testing::{Redis, WsClient};

/// A reader's text of message `m`, assembled by offset (PROTOCOL §6), and the frames it took.
#[derive(Default)]
struct Assembled {
    text: String,
    frames: usize,
    /// The position of the last frame read.
    at: Option<(u64, u64)>,
}

impl Assembled {
    fn read(&mut self, frame: &Value) {
        if let (Some(epoch), Some(seq)) = (frame["epoch"].as_u64(), frame["seq"].as_u64()) {
            self.at = Some((epoch, seq));
        }
        if frame["type"] != "agent_message_delta" {
            return;
        }
        self.frames += 1;
        let have = self.text.chars().count();
        let offset = frame["offset"].as_u64().expect("an offset") as usize;
        assert!(offset <= have, "a hole: offset {offset} past {have}");
        let piece = frame["text"].as_str().expect("a text");
        self.text.extend(piece.chars().skip(have - offset));
    }

    /// Read until the text holds `len` characters.
    async fn until_len(&mut self, client: &mut WsClient, len: usize) {
        while self.text.chars().count() < len {
            let frame = client.json().await;
            self.read(&frame);
        }
    }

    /// Read until the run's `agent_completed`.
    async fn until_completed(&mut self, client: &mut WsClient) {
        loop {
            let frame = client.json().await;
            self.read(&frame);
            if frame["type"] == "agent_completed" {
                return;
            }
        }
    }
}

fn update(event: AgentEvent) -> AgentUpdate {
    AgentUpdate {
        run: "r1".into(),
        agent: "writer".into(),
        thread: None,
        event,
    }
}

/// The `n`th token: accents, an emoji, quotes and a newline now and then.
fn token(n: usize) -> String {
    match n % 4 {
        0 => format!("mot{n} "),
        1 => "é😀 ".to_owned(),
        2 => "\"q\" ".to_owned(),
        _ => "line\n".to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_produced_on_one_node_is_the_same_text_on_every_other() {
    let redis = Redis::start().await;
    let producer = shared_node(&redis, "a").await;
    let readers = shared_node(&redis, "b").await;
    let third = shared_node(&redis, "c").await;
    let mut early = WsClient::welcomed(readers.addr, "user=alice").await;
    readers.subscribed("sb:user:alice").await;
    let send = |event| producer.handle.send_agent_update("alice", update(event));
    send(AgentEvent::AgentStarted { data: Value::Null })
        .await
        .expect("started");
    let started = early.next_of("agent_started").await;
    let started_at = (started["epoch"].clone(), started["seq"].clone());
    let mut text = String::new();
    let delta = |text: &mut String, piece: String, last: bool| {
        let offset = text.chars().count() as u64;
        text.push_str(&piece);
        send(AgentEvent::AgentMessageDelta {
            message: "m".into(),
            offset,
            last,
            text: piece,
        })
    };
    for n in 0..100 {
        delta(&mut text, token(n), false).await.expect("a delta");
    }
    // The early reader on the other node has all of it: so has that node's history.
    let mut first = Assembled::default();
    first.until_len(&mut early, text.chars().count()).await;
    assert_eq!(first.text, text);
    let (resume_from, had) = (first.at.expect("a position"), first.text.clone());

    let query = format!("user=alice&resume={}:{}", started_at.0, started_at.1);
    let mut late = WsClient::welcomed(readers.addr, &query).await;
    let mut second = Assembled::default();
    second.until_len(&mut late, text.chars().count()).await;
    assert_eq!(
        (second.frames, second.text.as_str()),
        (1, text.as_str()),
        "the text so far in one frame"
    );

    for n in 100..200 {
        delta(&mut text, token(n), n == 199).await.expect("a delta");
    }
    send(AgentEvent::AgentCompleted {
        result: Value::Null,
    })
    .await
    .expect("completed");
    first.until_completed(&mut early).await;
    second.until_completed(&mut late).await;
    assert_eq!(first.text, text, "the early reader");
    assert_eq!(second.text, text, "the late joiner");

    // Resume from the middle of the answer on a node that serves nobody of alice's: it loads
    // the shared history, where every delta is kept, in order (it did not follow the stream),
    // so it joins them as it joins live ones, and the client keeps what it lacks.
    let (epoch, seq) = resume_from;
    let from = Position { epoch, seq };
    // As the server does before it opens a connection: the user's stream loaded.
    let loaded = (third.bridge.prepare(&"alice".into(), Some(from)).await).expect("history read");
    assert_eq!(
        loaded, 101,
        "the shared history keeps every delta, and the run's end"
    );
    let client = redis::Client::open(redis.url()).expect("a url");
    let mut conn = (client.get_multiplexed_async_connection().await).expect("connected");
    let entries: usize = (redis::cmd("LLEN").arg("sb:history:user:alice"))
        .query_async(&mut conn)
        .await
        .expect("the history's length");
    assert_eq!(entries, 202, "agent_started, 200 deltas, agent_completed");
    let query = format!("user=alice&resume={epoch}:{seq}");
    let mut resumed = WsClient::welcomed(third.addr, &query).await;
    let mut third_text = Assembled {
        text: had,
        ..Assembled::default()
    };
    third_text.until_completed(&mut resumed).await;
    assert_eq!(third_text.text, text, "the resumed reader on a third node");
    assert_eq!(
        third_text.frames, 1,
        "the deltas after the position, joined: the text so far in one frame"
    );
}
