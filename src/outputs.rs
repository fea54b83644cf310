//! The output queue: everything the hub asks its caller to do, in order, until drained with
//! [`Hub::poll_output`](crate::Hub::poll_output), and the counters of what it did.
//!
//! Every output of the hub is pushed here, so this is also where the hub counts what leaves it
//! (frames and bytes out, closes by reason) and where an operation notes the connections that
//! overflowed during it: they are closed when the operation ends (`take_slow`), after every
//! frame it produced for other connections.

use crate::id::ConnId;
use crate::io::{ClusterOutput, Envelope, Notice, Output, SocketOutput};
use crate::reason::Reason;
use crate::sequenced::Unsequenced;
use crate::stats::Counters;
use bytes::Bytes;
use smallvec::SmallVec;
use std::collections::VecDeque;

/// The outputs not yet drained, the counters, and the connections to close as slow.
#[derive(Debug, Default)]
pub(crate) struct Outputs {
    queue: VecDeque<Output>,
    /// What the hub did since it was created.
    pub counters: Counters,
    /// Connections that overflowed during the current operation; closed at its end.
    slow: SmallVec<[ConnId; 4]>,
}

impl Outputs {
    /// The oldest output not yet drained.
    pub fn pop(&mut self) -> Option<Output> {
        self.queue.pop_front()
    }

    /// Write `frame` to `conn` (its outbox let it through).
    pub fn send(&mut self, conn: ConnId, frame: Bytes) {
        self.counters.messages_out += 1;
        self.counters.bytes_out += frame.len() as u64;
        self.queue
            .push_back(Output::Socket(SocketOutput::Send { conn, frame }));
    }

    /// The hub began (`true`) or stopped (`false`) holding frames for `conn` until its
    /// transport reports a write.
    pub fn awaiting_flush(&mut self, conn: ConnId, awaiting: bool) {
        let output = SocketOutput::AwaitingFlush { conn, awaiting };
        self.queue.push_back(Output::Socket(output));
    }

    /// Send a ping with ping number `nonce` to `conn`.
    pub fn ping(&mut self, conn: ConnId, nonce: u64) {
        let payload = nonce.to_be_bytes();
        self.queue
            .push_back(Output::Socket(SocketOutput::Ping { conn, payload }));
    }

    /// `conn` is gone for `reason`: counted, a close frame if the reason has a close code, and
    /// the application is told.
    pub fn closed(&mut self, conn: ConnId, user: crate::id::UserId, reason: Reason) {
        self.counters.closes.add(reason);
        if let Some(code) = reason.close_code() {
            let close = SocketOutput::Close { conn, code, reason };
            self.queue.push_back(Output::Socket(close));
        }
        self.notice(Notice::Closed { conn, user, reason });
    }

    /// Tell the application something.
    pub fn notice(&mut self, notice: Notice) {
        self.queue.push_back(Output::Notice(notice));
    }

    /// Hand a publish to the other hubs of the cluster.
    pub fn envelope(&mut self, envelope: Envelope) {
        self.cluster(ClusterOutput::Envelope(Box::new(envelope)));
    }

    /// Hand a stream entry to the cluster's sequencer.
    pub fn sequence(&mut self, entry: Unsequenced) {
        self.cluster(ClusterOutput::Sequence(Box::new(entry)));
    }

    /// Tell the rest of the cluster something.
    pub fn cluster(&mut self, output: ClusterOutput) {
        self.queue.push_back(Output::Cluster(output));
    }

    /// `conn` overflowed its queue: it is closed as a slow consumer when the operation ends.
    /// Told once per connection (its outbox remembers), so no search of the list: thousands
    /// of members of a room can overflow in one publish.
    pub fn overflowed(&mut self, conn: ConnId) {
        self.slow.push(conn);
    }

    /// The next connection that overflowed during the operation, to close.
    pub fn take_slow(&mut self) -> Option<ConnId> {
        self.slow.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_is_counted_and_only_a_close_with_a_code_is_sent() {
        let mut out = Outputs::default();
        let (a, b) = (ConnId::new(0, 0, 0), ConnId::new(0, 1, 0));
        out.closed(a, "ana".into(), Reason::PeerClosed);
        out.closed(b, "ben".into(), Reason::SlowConsumer);
        let outputs: Vec<Output> = std::iter::from_fn(|| out.pop()).collect();
        assert!(matches!(
            outputs[..],
            [
                Output::Notice(Notice::Closed { conn: x, .. }),
                Output::Socket(SocketOutput::Close { conn: y, code: 4008, .. }),
                Output::Notice(Notice::Closed { conn: z, .. }),
            ] if x == a && y == b && z == b
        ));
        assert_eq!(out.counters.closes.total(), 2);
    }
}
