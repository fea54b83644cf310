//! History reads: a stream's head and the entries a reader missed, at once, by the `FOLLOW`
//! script, over a connection of their own (the bridge's publishes never queue behind a
//! read's answer), bounded by this node's history bounds.

use crate::options::unix_millis;
use crate::shared::{history_age_millis, Shared};
use crate::wire::Record;
use redis::RedisResult;
use switchboard::{Position, StreamId};

/// The head of `stream`, and the newest of its entries after `resume` that this node keeps
/// (at most its history's `max_messages` and `max_bytes`, none older than its `max_age`),
/// oldest first.
pub(crate) async fn read(
    shared: &Shared,
    stream: &StreamId,
    resume: Option<Position>,
) -> RedisResult<(Position, Vec<Record>)> {
    let mut conn = shared.reader.conn().await?;
    let (reader_epoch, reader_seq) = match resume {
        Some(p) => (p.epoch.to_string(), p.seq),
        None => (String::new(), 0),
    };
    let history = &shared.options.history;
    let read = shared
        .scripts
        .follow
        .key(shared.keys.stream_counter(stream))
        .key(shared.keys.stream_history(stream))
        .key(shared.keys.stream_index(stream))
        .arg(unix_millis())
        .arg(history_age_millis(history))
        .arg(reader_epoch)
        .arg(reader_seq)
        .arg(history.max_messages)
        .arg(history.max_bytes)
        .invoke_async::<(u64, u64, Vec<Vec<u8>>)>(&mut conn)
        .await;
    let (epoch, seq, payloads) = shared.reader.check(read).await?;
    let mut records = Vec::with_capacity(payloads.len());
    for payload in payloads {
        match Record::parse(&payload.into()) {
            Some(record) => records.push(record),
            None => shared.count(&shared.counters.malformed),
        }
    }
    Ok((Position { epoch, seq }, records))
}
