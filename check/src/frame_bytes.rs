//! The length of a `message` frame as history counts it against `max_bytes` (section 6), from
//! the frame's shape in `docs/PROTOCOL.md` section 3, for the models that follow history's byte
//! bound. A frame's length depends on its epoch's digits, which a model may not have learned
//! yet when the frame is kept: the models' hubs start their epochs at [`EPOCH_BASE`], and every
//! epoch learned is checked to have as many digits.

use serde_json::{json, Value};
use switchboard::StreamId;

/// The first epoch of the models' hubs (`Config::epoch_base`): ten digits, as long as any
/// epoch of a case.
pub(crate) const EPOCH_BASE: u64 = 1_000_000_000;

/// The length in bytes of the `message` frame at `seq` of `stream`, of `event` with `data`: a
/// user's message names its `thread` if it is for one, a room's message its `room` and, from a
/// member's `publish`, the member's user (`from`).
pub(crate) fn message_frame_bytes(
    stream: &StreamId,
    seq: u64,
    (event, data): (&str, Value),
    thread: Option<&str>,
    from: Option<&str>,
) -> usize {
    let mut frame = json!({
        "type": "message",
        "stream": stream,
        "epoch": EPOCH_BASE,
        "seq": seq,
        "event": event,
        "data": data,
    });
    if let StreamId::Room(room) = stream {
        frame["room"] = json!(room);
    }
    if let Some(thread) = thread {
        frame["thread"] = json!(thread);
    }
    if let Some(from) = from {
        frame["from"] = json!(from);
    }
    frame.to_string().len()
}

/// `epoch` has as many digits as [`EPOCH_BASE`], as every frame length counted assumes.
pub(crate) fn check_epoch_digits(epoch: u64) -> Result<(), String> {
    ensure_eq!(
        epoch.to_string().len(),
        EPOCH_BASE.to_string().len(),
        "digits of epoch {}, which the frame lengths of history count",
        epoch
    );
    Ok(())
}
