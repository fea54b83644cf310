//! Which producer channel owns which run on this node, and the cancel requests of clients
//! routed to it.
//!
//! A channel owns the runs it started (its `agent_started` was accepted) until they end; when
//! the channel closes, the runs it still owns end with `producer_lost`. A client's `cancel`
//! ([`Notice::Cancel`](switchboard::Notice::Cancel)) for an owned run is handed to the owning
//! channel, without waiting: each channel takes at most [`CANCELS_QUEUED`] cancels not yet
//! written, and past that the client hears `backend_unavailable`.

use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use switchboard::{Answer, AppErrorCode, CancelRequest, ErrorCode, RunId, UserId};
use tokio::sync::mpsc;

/// Cancels a channel may have queued and not yet written to its producer.
pub const CANCELS_QUEUED: usize = 16;

/// What a producer channel is sent when a client asks to cancel a run it owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CancelOrder {
    /// The run's user.
    pub user: UserId,
    /// The run.
    pub run: RunId,
}

/// The id of one producer channel on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelId(u64);

#[derive(Debug)]
struct Owner {
    channel: ChannelId,
    cancels: mpsc::Sender<CancelOrder>,
}

/// The runs owned by this node's producer channels (see the module docs). Shared by every
/// channel and by the loop that reads the hubs' notices.
#[derive(Debug, Default)]
pub struct Producers {
    next: AtomicU64,
    owners: Mutex<HashMap<(UserId, RunId), Owner>>,
}

impl Producers {
    /// A fresh id for a channel that opens.
    pub fn channel(&self) -> ChannelId {
        ChannelId(self.next.fetch_add(1, Ordering::Relaxed))
    }

    fn owners(&self) -> std::sync::MutexGuard<'_, HashMap<(UserId, RunId), Owner>> {
        self.owners
            .lock()
            .expect("the owners lock is never poisoned")
    }

    /// `channel` started the run `key`: it owns it, and hears its cancels on `cancels`.
    pub fn own(
        &self,
        channel: ChannelId,
        key: (UserId, RunId),
        cancels: mpsc::Sender<CancelOrder>,
    ) {
        self.owners().insert(key, Owner { channel, cancels });
    }

    /// The run `key` ended (or its channel closed): no channel owns it any more.
    pub fn release(&self, channel: ChannelId, key: &(UserId, RunId)) {
        let mut owners = self.owners();
        if owners.get(key).is_some_and(|o| o.channel == channel) {
            owners.remove(key);
        }
    }

    /// Runs owned by some channel now.
    pub fn owned(&self) -> usize {
        self.owners().len()
    }

    /// Hand a client's cancel request to the channel that owns the run, and say what the client
    /// is answered.
    pub fn cancel(&self, request: &CancelRequest) -> Answer {
        let key = (request.user.clone(), request.run.clone());
        let order = CancelOrder {
            user: key.0.clone(),
            run: key.1.clone(),
        };
        let sent = self.owners().get(&key).map(|o| o.cancels.try_send(order));
        match sent {
            Some(Ok(())) => Answer::Reply(serde_json::json!({ "run": request.run })),
            Some(Err(_)) => Answer::Error {
                code: ErrorCode::BackendUnavailable.into(),
                message: "the run's producer has too many cancels queued".into(),
            },
            None => Answer::Error {
                code: AppErrorCode::new("no_producer").expect("a valid code"),
                message: "no producer channel on this node holds the run: a run whose events \
                          come over the HTTP runs API cannot hear a cancel"
                    .into(),
            },
        }
    }
}
