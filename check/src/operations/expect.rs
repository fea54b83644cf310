//! What a step must deliver: the frames each connection must receive, as labels that name
//! what matters of a frame (a message and its place in its stream, a gap's bounds, the head a
//! `welcome`, `joined` or `resumed` reports), with the stream incarnation whose epoch it
//! carries and the position a client takes from it.

use super::*;

/// A frame a connection must receive.
#[derive(Debug, Clone)]
pub(super) struct Want {
    /// Its label (see [`label`]).
    pub(super) label: String,
    /// The stream incarnation whose epoch it carries.
    pub(super) inc: Option<usize>,
    /// The position a client takes from it (section 7, step 1): a message's, or a gap's end.
    pub(super) at: Option<(Key, u64)>,
}

impl Want {
    pub(super) fn plain(label: impl Into<String>) -> Want {
        Want {
            label: label.into(),
            inc: None,
            at: None,
        }
    }

    /// The `n`th message; at `seq` of incarnation `inc` of `key`'s stream if it is sequenced.
    pub(super) fn message(n: u64, on: Option<(Key, usize, u64)>) -> Want {
        match on {
            None => Want::plain(event(n)),
            Some((key, inc, seq)) => Want {
                label: format!("{} {key}#{seq}", event(n)),
                inc: Some(inc),
                at: Some((key, seq)),
            },
        }
    }

    /// The number of the message it is, if it is one.
    pub(super) fn n(&self) -> Option<u64> {
        let name = self.label.split(' ').next()?;
        name.strip_prefix('p')?.parse().ok()
    }
}

/// What one step must produce.
#[derive(Debug, Default)]
pub(super) struct Expect {
    /// The frames each connection receives in this step (absent: none).
    pub(super) frames: BTreeMap<ConnId, Vec<Want>>,
}

impl Expect {
    pub(super) fn frame(&mut self, conn: ConnId, want: Want) {
        self.frames.entry(conn).or_default().push(want);
    }

    pub(super) fn plain(&mut self, conn: ConnId, label: &str) {
        self.frame(conn, Want::plain(label));
    }

    pub(super) fn message(&mut self, conns: &[ConnId], want: &Want) {
        for &c in conns {
            self.frame(c, want.clone());
        }
    }

    /// Frames replayed to `conn`: exempt from the live order (older than what it may have).
    pub(super) fn replay(&mut self, seen: &mut Seen, conn: ConnId, frames: Vec<Want>) {
        for f in frames {
            if let Some(n) = f.n() {
                seen.replayed.insert((conn, n));
            }
            self.frame(conn, f);
        }
    }
}

/// The name of the `n`th published message.
pub(super) fn event(n: u64) -> String {
    format!("p{n}")
}

/// A short label for a frame: a message's event, followed by `<stream>#<seq>` if it is
/// sequenced; `error:<code>`; `gap:<reason>:<from>-<to> <stream>`; `welcome`, `joined` and
/// `resumed` followed by the head they report, `<stream>#<seq>`; or the frame's type.
pub(super) fn label(frame: &Value) -> String {
    let str = |field: &str| frame[field].as_str().unwrap_or_default().to_owned();
    let at = || format!("{}#{}", str("stream"), frame["seq"]);
    match frame["type"].as_str().unwrap_or_default() {
        "message" if frame["stream"].is_string() => format!("{} {}", str("event"), at()),
        "message" => str("event"),
        "gap" => format!(
            "gap:{}:{}-{} {}",
            str("reason"),
            frame["from"],
            frame["to"],
            str("stream")
        ),
        kind @ ("welcome" | "joined" | "resumed") => format!("{kind} {}", at()),
        "error" => format!("error:{}", str("code")),
        kind => kind.to_owned(),
    }
}
