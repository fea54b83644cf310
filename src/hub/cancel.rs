//! A client's `cancel` for one of its user's runs in progress: handed to the application
//! (`Notice::Cancel`) when the run is in progress on this hub; in a cluster, handed to the
//! cluster (`ClusterOutput::Cancel`) when it is not, so that the node whose producer owns the
//! run hears it ([`Hub::remote_cancel`] there); otherwise answered `unknown_run`. A run is
//! always looked up under the asking client's own user: another user's run is never found.

use super::delivery::Fanout;
use super::reply::Reply;
use super::Hub;
use crate::id::{ConnId, RunId, UserId};
use crate::io::{
    Answer, CancelFrom, CancelRequest, CancelTicket, ClientRef, ClusterOutput, Notice,
};
use crate::protocol::ErrorCode;
use crate::run::{Run, Runs};

/// What a client hears when no hub has its user's run in progress.
const UNKNOWN_RUN: &str = "no run in progress with that id";

impl Answer {
    /// The answer to a `cancel` for a run that no hub has in progress for the asking client's
    /// user (`ClusterOutput::Cancel` that no node claimed): `unknown_run`, exactly as a hub
    /// answers it itself.
    pub fn unknown_run() -> Answer {
        Answer::Error {
            code: ErrorCode::UnknownRun.into(),
            message: UNKNOWN_RUN.to_owned(),
        }
    }
}

/// True if `user`'s `run` is in progress in `runs`.
fn in_progress(runs: &Runs, user: &UserId, run: &RunId) -> bool {
    runs.get(&(user.clone(), run.clone()))
        .is_some_and(Run::is_running)
}

/// `conn` (answered through `reply`) asked to cancel its user's `run`.
pub(super) fn requested(
    runs: &Runs,
    f: &mut Fanout<'_>,
    reply: Reply<'_>,
    conn: ConnId,
    run: RunId,
) {
    let user = f.conns.conn(conn).user.clone();
    let from = CancelFrom::Client {
        conn,
        reference: reply.reference.map(ClientRef::from_raw),
    };
    let request = Box::new(CancelRequest { from, user, run });
    if in_progress(runs, &request.user, &request.run) {
        f.out.notice(Notice::Cancel(request));
    } else if f.cluster.carries_cancels() {
        // Another node's producer may own it: the cluster asks, and answers the client.
        f.out.cluster(ClusterOutput::Cancel(request));
    } else {
        // No strike: the run may just have ended. Another user's run is answered alike, so
        // the answer tells nothing about it.
        reply.error(f.conns, f.out, ErrorCode::UnknownRun, UNKNOWN_RUN);
    }
}

impl Hub {
    /// A client of another node (named by `ticket`) asked to cancel its user's `run`, which
    /// that node does not have in progress (its hub emitted
    /// [`ClusterOutput::Cancel`](crate::ClusterOutput::Cancel)). If `user`'s `run` is in
    /// progress here, the application is handed a [`Notice::Cancel`] from
    /// [`CancelFrom::Node`], to tell the run's producer and send its answer back to that node,
    /// and this returns true; otherwise nothing happens and it returns false (another user's
    /// run of the same id included).
    pub fn remote_cancel(&mut self, ticket: CancelTicket, user: UserId, run: RunId) -> bool {
        if !in_progress(&self.runs, &user, &run) {
            return false;
        }
        let from = CancelFrom::Node(ticket);
        let request = CancelRequest { from, user, run };
        self.out.notice(Notice::Cancel(Box::new(request)));
        self.finish();
        true
    }
}
