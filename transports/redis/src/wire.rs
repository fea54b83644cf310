//! What travels on the channels: an envelope or a command, tagged with the node it came from
//! so that a node ignores its own echoes; a presence change (which the origin delivers too);
//! a cancel asked of the other nodes and their verdicts (`cancels.rs`); or a sequenced stream
//! entry (a header line, then the client frame), which the origin delivers too.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use switchboard::{
    Answer, AppErrorCode, CancelTicket, EntryMeta, Envelope, Position, PresenceChange, RoomId,
    RunId, Sequenced, UserId,
};

/// Serialize `envelope` (already stripped for other nodes) with its origin.
pub(crate) fn envelope(origin: &str, envelope: &Envelope) -> Vec<u8> {
    encode(&Outgoing {
        origin,
        envelope: Some(envelope),
        ..Outgoing::from(origin)
    })
}

/// A command on the control channel: close every connection of `disconnect`.
pub(crate) fn disconnect(origin: &str, user: &UserId) -> Vec<u8> {
    encode(&Outgoing {
        origin,
        disconnect: Some(user),
        ..Outgoing::from(origin)
    })
}

/// A command on the control channel: every connection of `user` joins `room` (`join`) or
/// leaves it, on the backend's decision.
pub(crate) fn membership(origin: &str, change: &RoomChange, join: bool) -> Vec<u8> {
    let change = Some(change);
    encode(&match join {
        true => Outgoing {
            join: change,
            ..Outgoing::from(origin)
        },
        false => Outgoing {
            leave: change,
            ..Outgoing::from(origin)
        },
    })
}

/// A command on the control channel: the client named by `ask.ticket` asks to cancel its
/// user's run; the node that has it in progress hands it to its producer.
pub(crate) fn cancel(origin: &str, ask: &CancelAsk) -> Vec<u8> {
    encode(&Outgoing {
        cancel: Some(ask),
        ..Outgoing::from(origin)
    })
}

/// A node's verdict on a cancel another node asked, on the control channel.
pub(crate) fn verdict(origin: &str, verdict: &Verdict) -> Vec<u8> {
    encode(&Outgoing {
        verdict: Some(verdict),
        ..Outgoing::from(origin)
    })
}

/// A cancel asked of the other nodes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct CancelAsk {
    /// The asking node and its number for the request.
    pub ticket: CancelTicket,
    /// The asking client's user: only this user's run may be found.
    pub user: UserId,
    /// The run.
    pub run: RunId,
}

/// One node's verdict on a [`CancelAsk`], for the asking node only.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Verdict {
    /// The request it answers.
    pub ticket: CancelTicket,
    /// What the node says.
    pub outcome: Outcome,
}

/// What a node says about a cancel it was asked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outcome {
    /// The user has no run in progress with that id on this node.
    NotHere,
    /// The run's producer side answered `reply` with this data.
    Reply(serde_json::Value),
    /// The run's producer side answered `error` (e.g. `backend_unavailable`).
    Error {
        /// The code.
        code: Code,
        /// What happened, for humans.
        message: String,
    },
}

/// An error code as it travels: a verdict whose code is not a valid [`AppErrorCode`] does not
/// read (it is malformed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub(crate) struct Code(AppErrorCode);

impl TryFrom<String> for Code {
    type Error = &'static str;

    fn try_from(code: String) -> Result<Self, Self::Error> {
        AppErrorCode::new(&code)
            .map(Code)
            .ok_or("not a valid error code")
    }
}

impl From<Code> for String {
    fn from(code: Code) -> String {
        code.0.as_str().to_owned()
    }
}

impl From<Answer> for Outcome {
    fn from(answer: Answer) -> Self {
        match answer {
            Answer::Reply(data) => Outcome::Reply(data),
            Answer::Error { code, message } => Outcome::Error {
                code: Code(code),
                message,
            },
        }
    }
}

impl Outcome {
    /// The client's answer; `None` for [`Outcome::NotHere`].
    pub fn answer(self) -> Option<Answer> {
        match self {
            Outcome::NotHere => None,
            Outcome::Reply(data) => Some(Answer::Reply(data)),
            Outcome::Error { code, message } => Some(Answer::Error {
                code: code.0,
                message,
            }),
        }
    }
}

/// A user and a room, as a membership command names them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct RoomChange {
    /// The user whose connections join or leave.
    pub user: UserId,
    /// The room.
    pub room: RoomId,
}

/// The header of a stream entry as a template for the sequencer script: a JSON object without
/// its closing brace, which the script seals with the position (and `undelivered`). `id` is
/// the origin's number for the entry (`sealed.rs`).
pub(crate) fn entry_header(origin: &str, id: u64, entry: &EntryMeta) -> Vec<u8> {
    let mut header = encode(&Header { origin, id, entry });
    header.pop();
    header
}

/// A sealed entry's header, borrowed (what [`Record`] reads).
#[derive(Serialize)]
struct Header<'a> {
    origin: &'a str,
    id: u64,
    #[serde(flatten)]
    entry: &'a EntryMeta,
}

/// A sequenced stream entry as published and kept in history: `<header>\n<frame>`.
#[derive(Debug, PartialEq)]
pub(crate) struct Record {
    /// The node whose hub rendered it.
    pub origin: String,
    /// The origin's number for it, which only the origin reads; `None` from a node that does
    /// not number its entries (an earlier version), or in a history written by one.
    pub id: Option<u64>,
    /// The entry.
    pub sequenced: Sequenced,
}

/// Fields it does not know (such as `id` for a node that reads none) are ignored, as
/// `EntryMeta` ignores them.
#[derive(Deserialize)]
struct SealedHeader {
    origin: String,
    #[serde(default)]
    id: Option<u64>,
    #[serde(flatten)]
    entry: EntryMeta,
    epoch: u64,
    seq: u64,
}

impl Record {
    /// Parse a record; `None` if `payload` is not one (no header line, or a bad header).
    pub fn parse(payload: &Bytes) -> Option<Record> {
        let newline = payload.iter().position(|&b| b == b'\n')?;
        let header: SealedHeader = serde_json::from_slice(&payload[..newline]).ok()?;
        Some(Record {
            origin: header.origin,
            id: header.id,
            sequenced: Sequenced {
                entry: header.entry,
                position: Position {
                    epoch: header.epoch,
                    seq: header.seq,
                },
                frame: payload.slice(newline + 1..),
            },
        })
    }
}

fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    serde_json::to_vec(message).expect("envelopes and ids always serialize")
}

/// A message as sent: [`Incoming`], borrowed.
#[derive(Serialize)]
struct Outgoing<'a> {
    origin: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    envelope: Option<&'a Envelope>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disconnect: Option<&'a UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    join: Option<&'a RoomChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    leave: Option<&'a RoomChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cancel: Option<&'a CancelAsk>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verdict: Option<&'a Verdict>,
}

impl<'a> From<&'a str> for Outgoing<'a> {
    /// A message from `origin` that carries nothing yet.
    fn from(origin: &'a str) -> Self {
        Outgoing {
            origin,
            envelope: None,
            disconnect: None,
            join: None,
            leave: None,
            cancel: None,
            verdict: None,
        }
    }
}

/// A message received on any channel.
#[derive(Debug, Deserialize, PartialEq)]
pub(crate) struct Incoming {
    /// The node that published it.
    pub origin: String,
    /// A publish to deliver locally.
    #[serde(default)]
    pub envelope: Option<Envelope>,
    /// A user to disconnect locally.
    #[serde(default)]
    pub disconnect: Option<UserId>,
    /// A user whose local connections join a room.
    #[serde(default)]
    pub join: Option<RoomChange>,
    /// A user whose local connections leave a room.
    #[serde(default)]
    pub leave: Option<RoomChange>,
    /// A user arrived in a room or left it, across the cluster (published by the presence
    /// scripts, `members.rs`): delivered on every node, the origin included.
    #[serde(default)]
    pub presence: Option<PresenceChange>,
    /// A cancel another node asks: handed to the local producer if the run is in progress here.
    #[serde(default)]
    pub cancel: Option<CancelAsk>,
    /// A node's verdict on a cancel some node asked: read by the asking node only.
    #[serde(default)]
    pub verdict: Option<Verdict>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard::{Message, RemoteTarget, StreamId};

    #[test]
    fn an_envelope_arrives_with_its_origin() {
        let sent = Envelope {
            target: RemoteTarget::All,
            message: Message::new("news", serde_json::json!({"n": 1})),
            from: None,
            except: Vec::new(),
        };
        let incoming: Incoming = serde_json::from_slice(&envelope("node \"a\"", &sent)).unwrap();
        assert_eq!(incoming.origin, "node \"a\"");
        assert_eq!(incoming.envelope, Some(sent));
        let command: Incoming =
            serde_json::from_slice(&disconnect("b", &UserId::from("alice"))).unwrap();
        assert_eq!(command.disconnect, Some(UserId::from("alice")));
        assert_eq!(command.envelope, None);
        let change = RoomChange {
            user: UserId::from("alice"),
            room: RoomId::from("lobby"),
        };
        let join: Incoming = serde_json::from_slice(&membership("b", &change, true)).unwrap();
        assert_eq!(
            (join.join.as_ref(), join.leave.as_ref()),
            (Some(&change), None)
        );
        let leave: Incoming = serde_json::from_slice(&membership("b", &change, false)).unwrap();
        assert_eq!((leave.join.as_ref(), leave.leave), (None, Some(change)));
        assert_eq!(leave.disconnect, None);
    }

    #[test]
    fn a_cancel_and_its_verdicts_arrive_as_sent() {
        let ask = CancelAsk {
            ticket: CancelTicket {
                node: "b".into(),
                id: 7,
            },
            user: UserId::from("alice"),
            run: RunId::from("r1"),
        };
        let incoming: Incoming = serde_json::from_slice(&cancel("b", &ask)).unwrap();
        assert_eq!(
            (incoming.origin.as_str(), incoming.cancel),
            ("b", Some(ask.clone()))
        );
        let answers = [
            Answer::Reply(serde_json::json!({"run": "r1"})),
            Answer::Error {
                code: AppErrorCode::new("backend_unavailable").unwrap(),
                message: "busy".into(),
            },
        ];
        for answer in answers {
            let sent = Verdict {
                ticket: ask.ticket.clone(),
                outcome: Outcome::from(answer.clone()),
            };
            let incoming: Incoming = serde_json::from_slice(&verdict("a", &sent)).unwrap();
            let received = incoming.verdict.expect("a verdict");
            assert_eq!(received.ticket, ask.ticket);
            assert_eq!(received.outcome.answer(), Some(answer));
        }
        let not_here = Verdict {
            ticket: ask.ticket,
            outcome: Outcome::NotHere,
        };
        let incoming: Incoming = serde_json::from_slice(&verdict("a", &not_here)).unwrap();
        assert_eq!(incoming.verdict.map(|v| v.outcome), Some(Outcome::NotHere));
        let forged = br#"{"origin":"a","verdict":{"ticket":{"node":"b","id":7},
            "outcome":{"error":{"code":"Not A Code","message":""}}}}"#;
        assert!(
            serde_json::from_slice::<Incoming>(forged).is_err(),
            "a verdict with an invalid code does not read"
        );
    }

    /// A header sealed like the sequencer script seals it reads back with its entry.
    #[test]
    fn a_sealed_header_reads_back_as_a_record() {
        let entry = EntryMeta {
            stream: StreamId::User("alice".into()),
            thread: Some("t1".into()),
            run: None,
            ends_run: false,
            thinking: false,
            message: None,
            undelivered: false,
            except: Vec::new(),
        };
        let mut header = entry_header("n1", 41, &entry);
        header.extend_from_slice(b",\"undelivered\":true,\"epoch\":7,\"seq\":3}\n{\"x\":1}");
        let record = Record::parse(&Bytes::from(header)).expect("a record");
        assert_eq!((record.origin.as_str(), record.id), ("n1", Some(41)));
        assert_eq!(record.sequenced.position, Position { epoch: 7, seq: 3 });
        assert!(record.sequenced.entry.undelivered);
        assert_eq!(record.sequenced.entry.thread, entry.thread);
        assert_eq!(&record.sequenced.frame[..], b"{\"x\":1}");
    }

    /// A header without the origin's number (from a node that does not number its entries)
    /// reads, without one.
    #[test]
    fn a_header_without_a_number_reads_without_one() {
        let payload = br#"{"origin":"old","stream":"user:alice","epoch":7,"seq":3}
{"x":1}"#;
        let record = Record::parse(&Bytes::from_static(payload)).expect("a record");
        assert_eq!((record.origin.as_str(), record.id), ("old", None));
        assert_eq!(record.sequenced.position, Position { epoch: 7, seq: 3 });
    }
}
