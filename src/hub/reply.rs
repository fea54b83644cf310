//! Answering a client: the connection that asked and the `ref` its request carried.

use crate::directory::Directory;
use crate::id::ConnId;
use crate::outbox::Origin;
use crate::outputs::Outputs;
use crate::protocol::{ErrorCode, ServerFrame};
use serde_json::value::RawValue;

/// Where an answer goes: the connection, and the `ref` to echo (`None`: the hub's own
/// initiative, or a frame not read far enough to have one).
#[derive(Debug, Clone, Copy)]
pub(super) struct Reply<'a> {
    pub conn: ConnId,
    pub reference: Option<&'a RawValue>,
}

impl<'a> Reply<'a> {
    /// An answer to `conn` that echoes no `ref`.
    pub fn to(conn: ConnId) -> Reply<'static> {
        Reply {
            conn,
            reference: None,
        }
    }

    /// An answer to `conn`'s request that carried `reference`.
    pub fn asked(conn: ConnId, reference: Option<&'a RawValue>) -> Self {
        Reply { conn, reference }
    }

    /// Send `frame` (open connection).
    pub fn send(self, conns: &mut Directory, out: &mut Outputs, frame: &ServerFrame<'_>) {
        let _ = conns.offer(self.conn, &frame.encode(), None, Origin::Live, out);
    }

    /// Send an `error` frame with `code` and a human `message`.
    pub fn error(self, conns: &mut Directory, out: &mut Outputs, code: ErrorCode, message: &str) {
        let frame = ServerFrame::Error {
            code,
            message,
            reason: None,
            reference: self.reference,
        };
        self.send(conns, out, &frame);
    }
}
