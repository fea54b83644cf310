//! The shared history in Redis is bounded as a node's own history is (messages, frame bytes,
//! age), a node loads no more of it than it keeps, and a node loading a stream's history keeps
//! delivering every other stream meanwhile. Each test starts `redis-server` from PATH on a free
//! port and nodes in this process. Timeouts only guard against hangs; the age test waits out
//! real history ages, with a margin of over a second either way.

mod support;

use redis::aio::MultiplexedConnection;
use serde_json::{json, Value};
use std::time::Duration;
use support::proxy::Proxy;
use support::{history_node, room, Node};
use switchboard::HistoryConfig;
use switchboard_redis::BridgeOptions;
use switchboard_testing::{eventually, Redis, WsClient};

const MIB: usize = 1024 * 1024;
/// The payload of a large entry.
const LARGE: usize = 64 * 1024;

fn bounds(max_messages: usize, max_bytes: usize, max_age: Duration) -> HistoryConfig {
    HistoryConfig {
        max_messages,
        max_bytes,
        max_age,
        ..switchboard::Config::production().history
    }
}

/// The default bounds of a node: 1000 messages, 1 MiB, 10 minutes.
fn default_bounds() -> HistoryConfig {
    bounds(1000, MIB, Duration::from_secs(600))
}

/// The bridge options of the nodes of these tests: Redis' answers may take as long as they need (a read
/// held back by a [`Proxy`], 12.5 MiB published in one go on a loaded machine); the hang
/// guards fire first.
fn patient(options: &mut BridgeOptions) {
    options.timeout = Duration::from_secs(60);
}

async fn inspect(redis: &Redis) -> MultiplexedConnection {
    let client = redis::Client::open(redis.url()).expect("a url");
    client
        .get_multiplexed_async_connection()
        .await
        .expect("connected")
}

/// What Redis holds for a stream (`room:<name>`).
#[derive(Debug)]
struct Kept {
    /// Each entry's seq, oldest first.
    seqs: Vec<u64>,
    /// Each entry's frame bytes (what a hub counts), oldest first.
    frames: Vec<usize>,
    /// The bytes of the entries as stored (header line and frame).
    stored: usize,
    /// The entries of the history's index.
    index: usize,
    /// The stream's running total of frame bytes.
    total: Option<usize>,
}

async fn kept(conn: &mut MultiplexedConnection, stream: &str) -> Kept {
    let entries: Vec<Vec<u8>> = redis::cmd("LRANGE")
        .arg(format!("sb:history:{stream}"))
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await
        .expect("the history");
    let mut kept = Kept {
        seqs: Vec::new(),
        frames: Vec::new(),
        stored: 0,
        index: 0,
        total: None,
    };
    for entry in &entries {
        let newline = entry
            .iter()
            .position(|&b| b == b'\n')
            .expect("a header line");
        let header: Value = serde_json::from_slice(&entry[..newline]).expect("a JSON header");
        kept.seqs.push(header["seq"].as_u64().expect("a seq"));
        kept.frames.push(entry.len() - newline - 1);
        kept.stored += entry.len();
    }
    kept.index = redis::cmd("LLEN")
        .arg(format!("sb:history-index:{stream}"))
        .query_async(conn)
        .await
        .expect("the index");
    kept.total = redis::cmd("HGET")
        .arg(format!("sb:stream:{stream}"))
        .arg("bytes")
        .query_async(conn)
        .await
        .expect("the total");
    kept
}

/// The last seq Redis gave `stream`.
async fn head(conn: &mut MultiplexedConnection, stream: &str) -> (u64, u64) {
    let (epoch, seq): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
        .arg(format!("sb:stream:{stream}"))
        .arg("epoch")
        .arg("seq")
        .query_async(conn)
        .await
        .expect("the stream");
    (epoch.unwrap_or(0), seq.unwrap_or(0))
}

/// Publish `count` entries of [`LARGE`] bytes to room `name` through `node`; the stream's
/// epoch once Redis numbered them all.
async fn fill(node: &Node, conn: &mut MultiplexedConnection, name: &str, count: u64) -> u64 {
    let payload = "x".repeat(LARGE);
    for i in 1..=count {
        let data = json!({"i": i, "payload": payload});
        node.publish_data(room(name), "archived", data).await;
    }
    let stream = format!("room:{name}");
    eventually("redis to number every entry", || {
        let mut conn = conn.clone();
        let stream = stream.clone();
        let unsequenced = node.bridge.stats().unsequenced;
        async move { unsequenced > 0 || head(&mut conn, &stream).await.1 == count }
    })
    .await;
    assert_eq!(
        node.bridge.stats().unsequenced,
        0,
        "every entry reached redis"
    );
    head(conn, &stream).await.0
}

fn position(epoch: u64, seq: u64) -> Value {
    json!({"epoch": epoch, "seq": seq})
}

/// Send a join to `name` with `since`: the `joined` frame.
async fn join_since(client: &mut WsClient, name: &str, since: Value) -> Value {
    client
        .send(json!({"type": "join", "room": name, "since": since}))
        .await;
    let joined = client.json().await;
    assert_eq!(joined["type"], "joined", "{joined}");
    joined
}

/// The next frame, which must be a gap of room `name` from `from` to `to` (history).
async fn expect_gap(client: &mut WsClient, name: &str, from: u64, to: u64) {
    let gap = client.json().await;
    assert_eq!(
        (&gap["type"], &gap["stream"], &gap["reason"]),
        (
            &json!("gap"),
            &json!(format!("room:{name}")),
            &json!("history")
        ),
        "{gap}"
    );
    assert_eq!(
        (gap["from"].as_u64(), gap["to"].as_u64()),
        (Some(from), Some(to))
    );
}

/// The next frames, which must be the messages `events`, numbered from `first` on.
async fn expect_messages(client: &mut WsClient, first: u64, events: &[&str]) {
    for (seq, event) in (first..).zip(events) {
        let frame = client.json().await;
        assert_eq!(
            (frame["event"].as_str(), frame["seq"].as_u64()),
            (Some(*event), Some(seq)),
            "{frame}"
        );
    }
}

/// 200 entries of 64 KiB (12.5 MiB) leave at most the node's `max_bytes` of frames in Redis
/// (exactly the newest that fit, as a node keeps them), and many small ones at most its
/// `max_messages`; the history's index and running total match what is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_history_holds_no_more_than_a_node_keeps() {
    let redis = Redis::start().await;
    let mut conn = inspect(&redis).await;
    let a = history_node(
        &redis.url(),
        "a",
        &bounds(20, MIB, Duration::from_secs(600)),
        patient,
    )
    .await;
    fill(&a, &mut conn, "big", 200).await;

    let big = kept(&mut conn, "room:big").await;
    let frames: usize = big.frames.iter().sum();
    let count = big.seqs.len() as u64;
    assert_eq!(
        big.seqs,
        (201 - count..=200).collect::<Vec<_>>(),
        "the newest, in order"
    );
    assert!(frames <= MIB, "{frames} bytes of frames kept");
    let smallest = big.frames.iter().min().expect("some kept");
    assert!(
        frames + smallest > MIB,
        "one more would not fit: {frames} bytes"
    );
    let largest = big.stored / big.seqs.len() + 1024;
    assert!(big.stored <= MIB + largest, "{} bytes stored", big.stored);
    assert_eq!((big.index, big.total), (big.seqs.len(), Some(frames)));
    let memory: usize = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg("sb:history:room:big")
        .arg("SAMPLES")
        .arg(0)
        .query_async(&mut conn)
        .await
        .expect("memory usage");
    assert!(memory < 2 * MIB, "{memory} bytes in redis");

    for i in 1..=50 {
        a.publish(room("chat"), &format!("m{i}")).await;
    }
    eventually("redis to number every message", || {
        let mut conn = conn.clone();
        async move { head(&mut conn, "room:chat").await.1 == 50 }
    })
    .await;
    let chat = kept(&mut conn, "room:chat").await;
    assert_eq!(chat.seqs, (31..=50).collect::<Vec<_>>());
    assert_eq!(chat.index, 20);
}

/// An entry older than the history's age leaves the shared history when the next one is
/// appended, and when a node reads it: a join from before it gets a `gap` for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_older_than_the_history_age_leave_on_append_and_on_read() {
    let redis = Redis::start().await;
    let mut conn = inspect(&redis).await;
    let age = bounds(1000, MIB, Duration::from_secs(3));
    let a = history_node(&redis.url(), "a", &age, patient).await;
    let b = history_node(&redis.url(), "b", &age, patient).await;
    let step = Duration::from_millis(1800);
    for (i, event) in ["e1", "e2", "e3"].into_iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(step).await;
        }
        a.publish(room("aging"), event).await;
        eventually("redis to number it", || {
            let mut conn = conn.clone();
            async move { head(&mut conn, "room:aging").await.1 == i as u64 + 1 }
        })
        .await;
    }
    assert_eq!(
        kept(&mut conn, "room:aging").await.seqs,
        [2, 3],
        "e1 left on append"
    );

    tokio::time::sleep(step).await;
    let (epoch, _) = head(&mut conn, "room:aging").await;
    let mut carol = WsClient::welcomed(b.addr, "user=carol").await;
    let joined = join_since(&mut carol, "aging", position(epoch, 1)).await;
    assert_eq!(joined["seq"], 3);
    expect_gap(&mut carol, "aging", 2, 2).await;
    expect_messages(&mut carol, 3, &["e3"]).await;
    assert_eq!(
        kept(&mut conn, "room:aging").await.seqs,
        [3],
        "e2 left on read"
    );
}

/// A node that keeps less than Redis holds (256 KiB against 1 MiB) loads, for a join from the
/// stream's first entry, only the newest entries it keeps: the member gets a `gap` up to
/// exactly the first of them, then each of them once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_from_an_ancient_position_loads_only_what_the_node_keeps() {
    let redis = Redis::start().await;
    let mut conn = inspect(&redis).await;
    let a = history_node(&redis.url(), "a", &default_bounds(), patient).await;
    let small = bounds(1000, MIB / 4, Duration::from_secs(600));
    let b = history_node(&redis.url(), "b", &small, patient).await;
    let epoch = fill(&a, &mut conn, "big", 200).await;

    let mut carol = WsClient::welcomed(b.addr, "user=carol").await;
    let joined = join_since(&mut carol, "big", position(epoch, 1)).await;
    assert_eq!(joined["seq"], 200);
    let gap = carol.json().await;
    assert_eq!(
        (&gap["type"], gap["from"].as_u64()),
        (&json!("gap"), Some(2)),
        "{gap}"
    );
    let oldest = gap["to"].as_u64().expect("a gap's end") + 1;
    let mut sizes = Vec::new();
    for seq in oldest..=200 {
        let text = carol.text().await;
        let frame: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(
            (&frame["type"], frame["seq"].as_u64()),
            (&json!("message"), Some(seq))
        );
        sizes.push(text.len());
    }
    let loaded: usize = sizes.iter().sum();
    assert!(loaded <= MIB / 4, "{loaded} bytes replayed");
    assert!(
        loaded + sizes.iter().min().unwrap() > MIB / 4,
        "one more would fit"
    );
    assert_eq!(
        b.bridge.stats().entries,
        sizes.len() as u64,
        "b loaded what it replayed, nothing more"
    );
    let held = kept(&mut conn, "room:big").await.seqs.len();
    assert!(held > sizes.len(), "redis holds more: {held} entries");
}

/// While node B's read of a room's history is held back (made as long as needed), an entry of
/// another room published on node A reaches B's member of it; an entry of the room being read
/// waits, and the joining member gets the history first, then that entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_read_delays_no_other_stream_and_its_own_entries_follow_it() {
    let redis = Redis::start().await;
    let proxy = Proxy::start(&redis).await;
    let mut conn = inspect(&redis).await;
    let a = history_node(&redis.url(), "a", &default_bounds(), patient).await;
    let b = history_node(&proxy.url(), "b", &default_bounds(), patient).await;
    for event in ["m1", "m2", "m3", "m4", "m5"] {
        a.publish(room("big"), event).await;
    }
    let mut bob = WsClient::welcomed(b.addr, "user=bob").await;
    bob.join("other").await;
    eventually("redis to number every entry", || {
        let mut conn = conn.clone();
        async move { head(&mut conn, "room:big").await.1 == 5 }
    })
    .await;
    let (epoch, _) = head(&mut conn, "room:big").await;

    proxy.hold_answers_to("sb:history:room:big");
    let mut carol = WsClient::welcomed(b.addr, "user=carol").await;
    carol
        .send(json!({"type": "join", "room": "big", "since": position(epoch, 1)}))
        .await;
    eventually("b's history read to be held", || {
        let holding = proxy.holding();
        async move { holding }
    })
    .await;
    // Redis sends b these two in this order: once bob has the second, b has the first.
    a.publish(room("big"), "m6").await;
    a.publish(room("other"), "meanwhile").await;
    assert_eq!(
        bob.event().await,
        "meanwhile",
        "delivered while the read is held"
    );
    assert!(proxy.holding());

    proxy.release();
    assert_eq!(
        carol.json().await["seq"],
        5,
        "joined at the head the read saw"
    );
    expect_messages(&mut carol, 2, &["m2", "m3", "m4", "m5", "m6"]).await;
}

/// The live entries of a room held while its history is read are bounded by the node's
/// history bounds: past them they are dropped, and read again from the shared history once the
/// read is done, so that the member gets what the node keeps of them, after an exact `gap`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_held_past_the_bounds_during_a_read_are_read_again_from_history() {
    let redis = Redis::start().await;
    let proxy = Proxy::start(&redis).await;
    let mut conn = inspect(&redis).await;
    let three = bounds(3, MIB, Duration::from_secs(600));
    let a = history_node(&redis.url(), "a", &default_bounds(), patient).await;
    let b = history_node(&proxy.url(), "b", &three, patient).await;
    for event in ["m1", "m2", "m3", "m4", "m5"] {
        a.publish(room("big"), event).await;
    }
    let mut bob = WsClient::welcomed(b.addr, "user=bob").await;
    bob.join("other").await;
    eventually("redis to number every entry", || {
        let mut conn = conn.clone();
        async move { head(&mut conn, "room:big").await.1 == 5 }
    })
    .await;
    let (epoch, _) = head(&mut conn, "room:big").await;

    proxy.hold_answers_to("sb:history:room:big");
    let mut carol = WsClient::welcomed(b.addr, "user=carol").await;
    carol
        .send(json!({"type": "join", "room": "big", "since": position(epoch, 1)}))
        .await;
    eventually("b's history read to be held", || {
        let holding = proxy.holding();
        async move { holding }
    })
    .await;
    for event in ["m6", "m7", "m8", "m9", "m10"] {
        a.publish(room("big"), event).await;
    }
    a.publish(room("other"), "meanwhile").await;
    assert_eq!(bob.event().await, "meanwhile");

    proxy.release();
    assert_eq!(carol.json().await["seq"], 5);
    expect_gap(&mut carol, "big", 2, 2).await;
    expect_messages(&mut carol, 3, &["m3", "m4", "m5"]).await;
    expect_gap(&mut carol, "big", 6, 7).await;
    expect_messages(&mut carol, 8, &["m8", "m9", "m10"]).await;
}

/// A history kept without its index (by an earlier version, or written by hand) is dropped,
/// never misread: the next entry starts the history anew, and a member joining from before it
/// gets a `gap` for the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_without_its_index_is_dropped_not_misread() {
    let redis = Redis::start().await;
    let mut conn = inspect(&redis).await;
    let _: () = redis::pipe()
        .cmd("HSET")
        .arg("sb:stream:room:old")
        .arg("epoch")
        .arg(7)
        .arg("seq")
        .arg(3)
        .ignore()
        .cmd("RPUSH")
        .arg("sb:history:room:old")
        .arg("not an entry")
        .arg("nor this")
        .ignore()
        .query_async(&mut conn)
        .await
        .expect("an old history written");
    let a = history_node(&redis.url(), "a", &default_bounds(), patient).await;
    let b = history_node(&redis.url(), "b", &default_bounds(), patient).await;
    a.publish(room("old"), "m4").await;
    eventually("redis to number it", || {
        let mut conn = conn.clone();
        async move { head(&mut conn, "room:old").await == (7, 4) }
    })
    .await;
    let old = kept(&mut conn, "room:old").await;
    assert_eq!((old.seqs, old.index), (vec![4], 1));
    assert_eq!(old.total, Some(old.frames[0]));

    let mut carol = WsClient::welcomed(b.addr, "user=carol").await;
    let joined = join_since(&mut carol, "old", position(7, 1)).await;
    assert_eq!(joined["seq"], 4);
    expect_gap(&mut carol, "old", 2, 3).await;
    expect_messages(&mut carol, 4, &["m4"]).await;
    assert_eq!(b.bridge.stats().malformed, 0, "nothing misread");
}
