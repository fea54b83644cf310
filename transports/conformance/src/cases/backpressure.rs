//! Slow readers: closed with 4008 when their queue overflows, resuming what they missed,
//! and a reader behind a small in-flight budget.

use super::*;

/// How many messages the backpressure cases publish: far more than a reader that stopped can
/// hold (socket buffers, in-flight budget and queue).
const FLOOD: usize = 200;

/// A 2 KiB room message numbered `i`.
fn padded(i: usize) -> Message {
    Message::new("tick", json!({"i": i, "pad": "x".repeat(2048)}))
}

/// Read `client`'s messages until its close: their seqs and the close code.
async fn drain(client: &mut impl Client) -> (Vec<u64>, Option<u16>) {
    let mut seqs = Vec::new();
    loop {
        match client.recv().await {
            Received::Frame(frame) if frame["type"] == "message" => {
                seqs.push(position(&frame).seq);
            }
            Received::Frame(_) => {}
            Received::Closed(code) => return (seqs, code),
        }
    }
}

/// A member that stops reading is closed with 4008 once its queue overflows, without
/// receiving everything; a member that reads receives every message, in order.
pub async fn a_slow_reader_is_closed_with_4008_and_a_fast_reader_gets_everything<T: Transport>() {
    let t = T::start(tight_backpressure()).await;
    let (mut slow, _) = welcomed(&t, Connect::user("slow").small_buffers()).await;
    join(&mut slow, "feed").await;
    slow.pause();
    let (mut fast, _) = welcomed(&t, Connect::user("fast")).await;
    join(&mut fast, "feed").await;
    let mut seqs = Vec::new();
    for batch in (0..FLOOD).step_by(8) {
        for i in batch..batch + 8 {
            publish(&t, room("feed"), padded(i)).await;
        }
        for _ in 0..8 {
            let frame = frame(&mut fast).await;
            assert_eq!(frame["type"], "message", "unexpected frame {frame}");
            seqs.push(position(&frame).seq);
        }
    }
    assert_eq!(seqs.len(), FLOOD);
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "in order, none missing"
    );
    let (received, code) = drain(&mut slow).await;
    assert_eq!(code, Some(4008));
    assert!(received.len() < FLOOD, "the slow reader was cut off");
    quiet(&mut fast, "the fast reader").await;
    drop(fast);
    t.shutdown().await;
}

/// A reader whose in-flight budget is far smaller than what a writer gathers before it reports
/// its writes (`FLUSH_REPORT_BYTES`) still receives everything, in order: each time the hub
/// holds frames back for it, the writer is told and reports at once.
pub async fn a_reader_behind_a_budget_smaller_than_a_report_gets_everything<T: Transport>() {
    let mut config = config();
    config.backpressure.inflight_bytes = 1024;
    let t = T::start(config).await;
    let (mut reader, _) = welcomed(&t, Connect::user("reader")).await;
    join(&mut reader, "feed").await;
    const MESSAGES: usize = 40;
    for i in 0..MESSAGES {
        let message = Message::new("tick", json!({"i": i, "pad": "x".repeat(200)}));
        publish(&t, room("feed"), message).await;
    }
    for i in 0..MESSAGES {
        let frame = frame(&mut reader).await;
        assert_eq!(frame["data"]["i"], i, "unexpected frame {frame}");
    }
    quiet(&mut reader, "the reader").await;
    drop(reader);
    t.shutdown().await;
}

/// A member closed with 4008 reconnects and resumes the room from the last message it
/// received: `joined`, then every message it missed, in order, with no gap.
pub async fn a_slow_reader_closed_with_4008_resumes_what_it_missed<T: Transport>() {
    let t = T::start(tight_backpressure()).await;
    let (mut slow, _) = welcomed(&t, Connect::user("slow").small_buffers()).await;
    let joined = join(&mut slow, "feed").await;
    slow.pause();
    for i in 0..FLOOD {
        publish(&t, room("feed"), padded(i)).await;
    }
    let (received, code) = drain(&mut slow).await;
    assert_eq!(code, Some(4008));
    let last = received.last().copied().unwrap_or(joined.seq);
    let (mut again, _) = welcomed(&t, Connect::user("slow")).await;
    let resume = json!({
        "type": "resume",
        "streams": [{"stream": "room:feed", "epoch": joined.epoch, "seq": last}]
    });
    let rejoined = request(&mut again, resume).await;
    assert_eq!(rejoined["type"], "joined", "unexpected frame {rejoined}");
    let head = position(&rejoined).seq;
    assert!(head > last, "messages were missed");
    for seq in last + 1..=head {
        let frame = frame(&mut again).await;
        assert_eq!(
            (&frame["type"], position(&frame).seq),
            (&json!("message"), seq),
            "replayed in order without a gap"
        );
        if seq == head {
            assert_eq!(frame["data"]["i"], FLOOD - 1, "up to the last message");
        }
    }
    quiet(&mut again, "the resumed reader").await;
    drop(again);
    t.shutdown().await;
}
