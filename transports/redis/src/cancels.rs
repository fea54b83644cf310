//! Cancels carried between nodes. A client's `cancel` for a run its node does not have in
//! progress (`ClusterEvent::Cancel`) is asked of every other node on the control channel
//! ([`ask`]); each node that receives it gives exactly one verdict ([`Verdict`]): `not_here`, or
//! — on the node whose hub has the user's run in progress, whose application hands it to the
//! run's producer ([`Handle::remote_cancel`], then [`Handle::answer_cancel`]) — the
//! producer side's answer. The asking node answers its client with the first answer; with
//! `unknown_run` once every node that received the request said `not_here` (`PUBLISH` says how
//! many did); and with `backend_unavailable` if some did not answer within
//! [`BridgeOptions::cancel_timeout`](crate::BridgeOptions::cancel_timeout) (the run's node may
//! have died, or its application not answered: the run may still be in progress, so the client
//! may ask again). Only the asking client's user's run is ever looked up.
//!
//! Bounded: at most [`MAX_CANCELS_ASKED`] cancels of this node's clients wait for verdicts
//! (past that a client hears `backend_unavailable` at once), and at most
//! [`MAX_CANCELS_JUDGED`] verdicts of this node are being sent at a time (past that a request
//! gets none from this node, and its asker answers `backend_unavailable` at its timeout).

use crate::shared::Shared;
use crate::wire::{self, CancelAsk, Outcome, Verdict};
use std::collections::HashMap;
use std::sync::Arc;
use switchboard::{Answer, CancelFrom, CancelRequest, CancelTicket, ErrorCode, RunId, UserId};
use switchboard_transport::{Handle, Runtime};
use tokio::sync::{mpsc, Semaphore};

/// Cancels of this node's clients that may wait for the other nodes' verdicts at once.
pub const MAX_CANCELS_ASKED: usize = 1024;

/// Verdicts this node may be sending at once.
pub const MAX_CANCELS_JUDGED: usize = 256;

/// Verdicts queued for one asked cancel before the ones after are dropped (its asker reads
/// them as they come; a dropped one makes it wait for its timeout).
const VERDICTS_QUEUED: usize = 64;

/// The cancels of this node's clients waiting for verdicts, and the permits of the verdicts
/// this node is sending.
#[derive(Debug)]
pub(crate) struct Cancels {
    next: u64,
    asked: HashMap<u64, mpsc::Sender<Outcome>>,
    judging: Arc<Semaphore>,
}

impl Default for Cancels {
    fn default() -> Self {
        Self {
            next: 0,
            asked: HashMap::new(),
            judging: Arc::new(Semaphore::new(MAX_CANCELS_JUDGED)),
        }
    }
}

impl Cancels {
    /// Open a request: its number and the queue of its verdicts; `None` at
    /// [`MAX_CANCELS_ASKED`].
    fn open(&mut self) -> Option<(u64, mpsc::Receiver<Outcome>)> {
        if self.asked.len() >= MAX_CANCELS_ASKED {
            return None;
        }
        let id = self.next;
        self.next += 1;
        let (verdicts, received) = mpsc::channel(VERDICTS_QUEUED);
        self.asked.insert(id, verdicts);
        Some((id, received))
    }

    /// A verdict for this node's request `id` arrived (ignored once the request was answered).
    pub fn verdict(&self, id: u64, outcome: Outcome) {
        if let Some(verdicts) = self.asked.get(&id) {
            let _ = verdicts.try_send(outcome);
        }
    }
}

/// Removes an asked cancel from the table when its asker is done, whatever the way out.
struct Asked<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Asked<'_> {
    fn drop(&mut self) {
        self.shared.cancels().asked.remove(&self.id);
    }
}

fn unavailable(message: &str) -> Answer {
    Answer::Error {
        code: ErrorCode::BackendUnavailable.into(),
        message: message.to_owned(),
    }
}

/// Ask the other nodes about `request` (a client of this node, whose hub does not have the run)
/// and answer the client. Runs in a task of its own.
pub(crate) async fn ask<R: Runtime>(
    shared: Arc<Shared>,
    handle: Handle<R>,
    request: CancelRequest,
) {
    let CancelFrom::Client { conn, reference } = request.from else {
        return;
    };
    let answer = verdicts(&shared, request.user, request.run).await;
    // A connection closed meanwhile has no one to answer.
    let _ = handle.answer(conn, reference, answer).await;
}

/// What the other nodes say about `user`'s `run`, as the client's answer, within
/// `cancel_timeout` from now (the request's publish included). Counts the cancel as asked, and
/// then as answered, timed out, or unasked (answered `backend_unavailable` without waiting), so
/// that `cancels_asked` is the sum of the three once no cancel waits.
async fn verdicts(shared: &Shared, user: UserId, run: RunId) -> Answer {
    let counters = &shared.counters;
    shared.count(&counters.cancels_asked);
    let Some((id, verdicts)) = shared.cancels().open() else {
        shared.count(&counters.cancels_unasked);
        return unavailable("too many cancels are waiting for other nodes");
    };
    let _asked = Asked { shared, id };
    let ticket = CancelTicket {
        node: shared.node.clone(),
        id,
    };
    let ask = CancelAsk { ticket, user, run };
    let gathered = gather(shared, &ask, verdicts);
    match tokio::time::timeout(shared.options.cancel_timeout, gathered).await {
        Ok(Ok(answer)) => {
            shared.count(&counters.cancels_answered);
            answer
        }
        Ok(Err(unasked)) => {
            shared.count(&counters.cancels_unasked);
            unasked
        }
        Err(_) => {
            shared.count(&counters.cancels_timed_out);
            tracing::debug!("a cancel's verdicts did not all come in time");
            unavailable("the node of the run did not answer in time")
        }
    }
}

/// Publish `ask` and read its verdicts until one answers it or every node that received it
/// said `not_here`; `Err` with the client's answer if it could not be published.
async fn gather(
    shared: &Shared,
    ask: &CancelAsk,
    mut verdicts: mpsc::Receiver<Outcome>,
) -> Result<Answer, Answer> {
    // Whether this node's own subscription hears the request (and ignores it): without it, no
    // verdict reaches this node either, and the client hears `backend_unavailable` in time.
    let control = shared.keys.control_channel();
    let own = u64::from(
        shared
            .subscribed
            .lock()
            .expect("not poisoned")
            .contains(&control),
    );
    let receivers = match shared.tell_others(wire::cancel(&shared.node, ask)).await {
        Ok(receivers) => receivers,
        Err(e) => {
            tracing::debug!(error = %e, "a cancel could not be asked of the other nodes");
            return Err(unavailable("the other nodes could not be asked"));
        }
    };
    let mut awaited = receivers.saturating_sub(own);
    while awaited > 0 {
        match verdicts.recv().await.map(Outcome::answer) {
            Some(Some(answer)) => return Ok(answer),
            Some(None) => awaited -= 1,
            None => break,
        }
    }
    Ok(Answer::unknown_run())
}

/// Another node asks to cancel a run: hand it to this node's hubs, which hand it to the
/// application if the asking client's user has it in progress here (the application's answer
/// then comes as `ClusterEvent::CancelAnswer`: [`answered`]); otherwise say `not_here`. The
/// verdict is sent in a task of its own, so the subscription keeps reading.
pub(crate) async fn judge<R: Runtime>(shared: &Arc<Shared>, handle: &Handle<R>, ask: CancelAsk) {
    let judging = shared.cancels().judging.clone();
    let Ok(permit) = judging.try_acquire_owned() else {
        tracing::debug!("too many cancels judged at once: one gets no verdict");
        return;
    };
    let CancelAsk { ticket, user, run } = ask;
    // A node that stopped has no run in progress.
    let here = (handle.remote_cancel(ticket.clone(), user, run).await).unwrap_or(false);
    if here {
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        let verdict = Verdict {
            ticket,
            outcome: Outcome::NotHere,
        };
        send(&shared, &verdict).await;
        drop(permit);
    });
}

/// The application answered a cancel `ticket`'s node asked: send the answer back.
pub(crate) async fn answered(shared: &Shared, ticket: CancelTicket, answer: Answer) {
    let verdict = Verdict {
        ticket,
        outcome: Outcome::from(answer),
    };
    send(shared, &verdict).await;
}

async fn send(shared: &Shared, verdict: &Verdict) {
    if let Err(e) = shared
        .tell_others(wire::verdict(&shared.node, verdict))
        .await
    {
        // The asker answers its client at its timeout.
        tracing::debug!(error = %e, "a cancel's verdict was not sent");
    }
}
