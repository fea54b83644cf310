//! History reads: a stream's head and the entries a reader missed, at once, by the `FOLLOW`
//! script, over a connection of their own (the bridge's publishes never queue behind a
//! read's answer), bounded by this node's history bounds.

use crate::options::unix_millis;
use crate::shared::{history_age_millis, Shared};
use crate::wire::Record;
use redis::RedisResult;
use switchboard::{Position, StreamId};

/// What of a stream's shared history a reader needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missed {
    /// Nothing: it starts at the head (a room's first join without `since`).
    Nothing,
    /// What followed its position.
    After(Position),
    /// All that is kept: a user's connection that opens without a position receives from it
    /// the entries that reached no connection (offline buffering) and the runs in progress so
    /// far, wherever they were published.
    Kept,
}

/// The head of `stream`, and the newest of the entries a reader `missed` that this node keeps
/// (at most its history's `max_messages` and `max_bytes`, none older than its `max_age`),
/// oldest first.
pub(crate) async fn read(
    shared: &Shared,
    stream: &StreamId,
    missed: Missed,
) -> RedisResult<(Position, Vec<Record>)> {
    let mut conn = shared.reader.conn().await?;
    let (reader_epoch, reader_seq) = match missed {
        Missed::Nothing => (String::new(), 0),
        Missed::After(p) => (p.epoch.to_string(), p.seq),
        Missed::Kept => ("*".to_string(), 0),
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
