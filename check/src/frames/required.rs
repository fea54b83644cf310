//! The outcomes the `frames` target requires where their cause is certain, from the rules of
//! `docs/PROTOCOL.md` followed per connection ([`Ledger`]): a bad frame that finds no strike
//! left closes with 1008 and one that finds a strike gets its `error`; a frame past the rate
//! limit takes a strike (`rate_limited`) or closes with 4029; a connection silent for the
//! heartbeat's `timeout` + `grace` closes with 4000, and not before; a reader that stopped
//! reading closes with 4008 once more reliable frames are owed to it than its queue holds, and
//! only a reader that stopped may close with 4008.

use super::budgets::Ledger;
use super::*;

/// The `error` code a text frame (of an allowed size, valid UTF-8) gets whatever the hub's
/// state, if it is certainly bad.
fn certain_rejection(
    doc: &ProtocolDoc,
    app_types: &[String],
    bytes: &[u8],
) -> Option<&'static str> {
    // A frame is a JSON object: anything else (an array included) is `malformed_json`.
    let object = bytes.trim_ascii_start().starts_with(b"{");
    let Some(head) = object
        .then(|| serde_json::from_slice::<Head>(bytes).ok())
        .flatten()
    else {
        return Some("malformed_json");
    };
    let oversized_ref = head
        .reference
        .is_some_and(|r| r.get().len() > doc.max_ref_bytes);
    let too_many_streams =
        head.kind == "resume" && resume_streams(bytes) > ROOMS_PER_CONNECTION + 1;
    if oversized_ref || too_many_streams {
        return Some("invalid_frame");
    }
    let known = doc.client_types.contains(&head.kind) || app_types.contains(&head.kind);
    (!known).then_some("unknown_type")
}

/// The most strikes one frame can take: a `resume` one per stream, any other frame one.
fn most_rejections(bytes: &[u8]) -> usize {
    resume_streams(bytes).max(1)
}

/// Whether `frame` is an `error` with `code`.
fn is_error(frame: &BTreeMap<String, Box<RawValue>>, code: &str) -> bool {
    str_field(frame, "type") == "error" && str_field(frame, "code") == code
}

/// What the hub did with a frame: the sender's close, the replies it was seen to get, and
/// whether it was reading.
type Seen<'a> = (Option<u16>, &'a [BTreeMap<String, Box<RawValue>>], bool);

/// A frame that certainly takes a strike: while one is left it stays open (a stopped reader
/// may overflow with the reply: 4008) and a reader sees exactly the `error` (none for a
/// control frame), else it closes with `close` and gets nothing.
fn certain_strike(
    ledger: &mut Ledger,
    now: Instant,
    (closed, replies, reading): Seen<'_>,
    error: Option<&str>,
    close: u16,
) -> Result<(), String> {
    let took = match ledger.strikes.decides(now) {
        Some(true) => {
            if !(closed.is_none() || (!reading && closed == Some(4008))) {
                return Err(format!("closed with {closed:?} although a strike was left"));
            }
            true
        }
        Some(false) if closed != Some(close) => {
            return Err(format!(
                "closed with {closed:?}, not {close}, with no strike left"
            ));
        }
        Some(false) => false,
        None => closed != Some(close),
    };
    let expected = match error {
        Some(code) if took => vec![code],
        _ => vec![],
    };
    let got: Vec<String> = replies.iter().map(|r| str_field(r, "code")).collect();
    let exact = replies.len() == expected.len()
        && replies
            .iter()
            .zip(&expected)
            .all(|(r, code)| is_error(r, code));
    // A reply to a reader that stopped may still be queued; a reader that keeps up has it,
    // and a closed connection has nothing.
    let seen = exact || (!reading && replies.is_empty());
    let due = !took || (reading && closed.is_none());
    if due && !seen {
        return Err(format!("replies {got:?} where exactly {expected:?} is due"));
    }
    ledger.strikes.took(now, took)
}

impl Script {
    /// Follow the budgets of the command's sender and require what they decide.
    pub(super) fn require_budgets(&mut self, cause: &Cause) {
        let Some((sender, sent)) = &cause.sender else {
            return;
        };
        let now = self.now;
        let doc = self.doc;
        let closed = self.closes.get(sender).map(|c| c.0);
        let replies = self.frames.get(sender).map_or(&[][..], Vec::as_slice);
        let reading = cause.reading;
        let app_types = &self.hub.config().app_frame_types;
        let ledger = self
            .ledgers
            .get_mut(sender)
            .expect("a ledger for every open connection");
        let fail = |e: String| -> ! { panic!("{sender} after {sent:?}: {e}") };
        let bytes = match sent {
            Sent::Binary => return,
            Sent::Control { counted: false } => {
                assert_eq!(
                    closed, None,
                    "a pong answering the hub's ping is never limited"
                );
                return;
            }
            Sent::Control { counted: true } => None,
            Sent::Text(bytes) if bytes.len() > MAX_FRAME => return,
            Sent::Text(bytes) => match std::str::from_utf8(bytes) {
                Ok(_) => Some(bytes),
                Err(_) => return,
            },
        };
        let within = ledger
            .rate
            .decides(now)
            .expect("the rate is always known: every take is seen");
        ledger.rate.took(now, within).unwrap_or_else(|e| fail(e));
        let rate_limited = replies.iter().any(|r| is_error(r, "rate_limited"));
        if !within {
            // Over the rate: a strike, answered `rate_limited` (a text frame only), or 4029.
            let error = bytes.map(|_| "rate_limited");
            certain_strike(ledger, now, (closed, replies, reading), error, 4029)
                .unwrap_or_else(|e| fail(format!("over the rate: {e}")));
            return;
        }
        assert!(
            closed != Some(4029) && !rate_limited,
            "a frame within the rate was limited ({closed:?}, {replies:?})"
        );
        let Some(bytes) = bytes else {
            assert_eq!(closed, None, "a control frame within the rate closed");
            return;
        };
        if let Some(code) = certain_rejection(doc, app_types, bytes) {
            certain_strike(ledger, now, (closed, replies, reading), Some(code), 1008)
                .unwrap_or_else(|e| fail(format!("{code}: {e}")));
            return;
        }
        // The hub's state decides: read the strikes off its replies.
        let mut seen = 0;
        for reply in replies {
            let code = str_field(reply, "code");
            if str_field(reply, "type") == "error" && doc.strike_codes.contains(&code) {
                ledger.strikes.took(now, true).unwrap_or_else(|e| {
                    fail(format!(
                        "{code} when no strike was left: the connection must close with 1008 \
                         instead ({e})"
                    ))
                });
                seen += 1;
            }
        }
        if closed == Some(1008) {
            ledger.strikes.took(now, false).unwrap_or_else(|e| {
                fail(format!("closed with 1008 while a strike was left ({e})"))
            });
        } else if !reading && closed.is_none() {
            // More `error`s may wait in its queue.
            for _ in seen..most_rejections(bytes) {
                ledger.strikes.may_have_taken(now);
            }
        }
    }

    /// Every close of the command is one its connection's state allows: 4008 only for a
    /// reader that stopped, 4000 only after the heartbeat's `timeout` + `grace` of silence.
    pub(super) fn require_closes(&mut self, cause: &Cause) {
        let heartbeat = &self.hub.config().heartbeat;
        let silence = heartbeat.timeout + heartbeat.grace;
        for (conn, (code, _)) in &self.closes {
            let ledger = self.ledgers.remove(conn).expect("a ledger per connection");
            let reading = match &cause.sender {
                Some((sender, _)) if sender == conn => cause.reading,
                _ => self.gone.get(conn).is_some_and(|c| c.reading),
            };
            if *code == 4008 {
                assert!(!reading, "{conn}, a reader that keeps up, closed with 4008");
            }
            if *code == 4000 {
                assert!(
                    self.now >= ledger.alive_at + silence,
                    "{conn} closed with 4000 {:?} after its last sign of life",
                    self.now - ledger.alive_at
                );
            }
        }
    }

    /// What the time and the queues now require: every connection silent for the heartbeat's
    /// `timeout` + `grace` was closed (4000, or earlier for another cause), and no reader that
    /// stopped holds more reliable frames queued than `queue_messages`.
    pub(super) fn require_state(&self) {
        let heartbeat = &self.hub.config().heartbeat;
        let silence = heartbeat.timeout + heartbeat.grace;
        let queue = self.hub.config().backpressure.queue_messages;
        for (conn, c) in &self.conns {
            let ledger = &self.ledgers[conn];
            assert!(
                self.now < ledger.alive_at + silence,
                "{conn}, silent for {:?}, is still open (it closes with 4000 after {silence:?})",
                self.now - ledger.alive_at
            );
            if !c.reading {
                let queued = ledger.owed.saturating_sub(ledger.sent);
                assert!(
                    queued <= queue,
                    "{conn} stopped reading and at least {queued} reliable frames wait for it \
                     ({} owed, {} written): past {queue} it closes with 4008",
                    ledger.owed,
                    ledger.sent
                );
            }
        }
    }
}
