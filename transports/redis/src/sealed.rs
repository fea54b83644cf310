//! Which of this node's own stream entries came back from the sequencer, for a worker whose
//! call to it failed.
//!
//! A failed call does not say whether the sequencer's script ran: Redis may have numbered an
//! entry and published it (and this node's subscription delivered it) before it died or the
//! command connection broke, with its reply lost. Delivering such an entry again in the
//! node's own epoch would give its readers the same message twice. So the worker numbers
//! every entry it hands the sequencer ([`Ids`]; the number travels in the entry's header), the
//! subscription notes the numbers of the node's own entries as they arrive ([`Sealed`]), and
//! after a failed call the worker asks the subscription which of the batch's entries it
//! received ([`Ask`]), once it has read everything Redis sent it before the question: a PING
//! round trip on the subscription (answered in order after every message published before
//! it), or, if that connection is gone too, everything it had read before it ended. Only the
//! entries it did not receive are delivered in the node's own epoch.

use crate::subscriber::SubCommand;
use std::collections::VecDeque;
use std::ops::Range;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The worker's numbers for the entries it hands the sequencer, in the order it sends them.
#[derive(Debug, Default)]
pub(crate) struct Ids {
    next: u64,
}

impl Ids {
    /// The number of the next entry sent.
    pub fn take(&mut self) -> u64 {
        let id = self.next;
        self.next += 1;
        id
    }

    /// The number the next entry will get: a batch's numbers are the range from this before it
    /// to this after it.
    pub fn next(&self) -> u64 {
        self.next
    }
}

/// The worker's question after a failed call: which of `ids` did the subscription receive?
#[derive(Debug)]
pub(crate) struct Ask {
    /// The numbers of the failed batch's entries.
    pub ids: Range<u64>,
    /// The numbers received among them, in order.
    pub answer: oneshot::Sender<Vec<u64>>,
}

/// The numbers of this node's own entries the subscription received, the latest `keep` of
/// them: the worker waits for each batch's reply before sending the next, and asks only about
/// the batch it sent last, whose entries are the last the subscription can have received.
#[derive(Debug)]
pub(crate) struct Sealed {
    ids: VecDeque<u64>,
    keep: usize,
}

impl Sealed {
    /// Remember the latest `keep` numbers (the largest batch the worker sends).
    pub fn new(keep: usize) -> Self {
        Self {
            ids: VecDeque::with_capacity(keep),
            keep,
        }
    }

    /// An entry of this node, numbered `id`, arrived.
    pub fn note(&mut self, id: u64) {
        if self.ids.len() == self.keep {
            self.ids.pop_front();
        }
        self.ids.push_back(id);
    }

    /// Answer `ask` with what arrived of it.
    pub fn answer(&self, ask: Ask) {
        let received = self.ids.iter().filter(|id| ask.ids.contains(id));
        let _ = ask.answer.send(received.copied().collect());
    }
}

/// Ask the subscription which of `ids` it received; none if it cannot say within `timeout`
/// (its connection is being made again and Redis does not answer): they are then all
/// delivered again, as before this check existed.
pub(crate) async fn ask(
    subscription: &mpsc::UnboundedSender<SubCommand>,
    ids: Range<u64>,
    timeout: Duration,
) -> Vec<u64> {
    let (answer, answered) = oneshot::channel();
    if subscription
        .send(SubCommand::Sealed(Ask { ids, answer }))
        .is_err()
    {
        return Vec::new();
    }
    match tokio::time::timeout(timeout, answered).await {
        Ok(Ok(received)) => received,
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(sealed: &Sealed, ids: Range<u64>) -> Vec<u64> {
        let (answer, mut answered) = oneshot::channel();
        sealed.answer(Ask { ids, answer });
        answered.try_recv().expect("answered at once")
    }

    #[test]
    fn only_the_numbers_asked_about_that_arrived_are_answered() {
        let mut sealed = Sealed::new(4);
        for id in [1, 2, 4, 7] {
            sealed.note(id);
        }
        assert_eq!(asked(&sealed, 2..7), [2, 4]);
        assert_eq!(asked(&sealed, 8..9), [] as [u64; 0]);
    }

    #[test]
    fn only_the_latest_numbers_are_kept() {
        let mut sealed = Sealed::new(2);
        for id in 0..5 {
            sealed.note(id);
        }
        assert_eq!(asked(&sealed, 0..5), [3, 4]);
    }

    #[test]
    fn a_batch_is_the_range_of_the_numbers_taken_for_it() {
        let mut ids = Ids::default();
        ids.take();
        let first = ids.next();
        let taken = [ids.take(), ids.take()];
        assert_eq!(first..ids.next(), taken[0]..taken[1] + 1);
    }
}
