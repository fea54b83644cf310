//! Talking to the backend: the client frames of the types in `[frames] types` and the
//! lifecycle events in `[webhook] events` are POSTed to `[webhook] url`, signed, at least once,
//! in order per user; the backend's answer to a frame goes back to the connection that sent it
//! as a `reply` or an `error` with the frame's `ref`.
//!
//! | File | Owns |
//! |---|---|
//! | `event.rs` | the JSON the backend receives |
//! | `queue.rs` | the bounded per-node queue, one event in flight per user |
//! | `delivery.rs` | one POST's attempts: HTTP, retries with backoff, the answer read |
//! | `batch.rs` | several users' events in one POST (`batch_max`), and the per-event answers |
//! | `signature.rs` | the HMAC-SHA256 signature headers |
//! | `metrics.rs` | `switchboard_webhook_*` |
//!
//! A frame always hears how it went, never silence: the backend's `reply` (a frame without
//! `ref` gets none), its `error` code, `backend_error` for an answer that is too large or not
//! the documented JSON, or `backend_unavailable` when the node's queue is full or the backend
//! did not answer within the attempts and the age allowed. Each node sends its own
//! connections' events.

mod batch;
mod delivery;
mod event;
pub mod metrics;
mod queue;
pub mod signature;

pub use delivery::{EVENT_ID_HEADER, GENERIC_CODE};

use crate::settings::{LifecycleEvent, WebhookConfig};
use delivery::{Deliverer, Outcome};
use event::{Body, Event, Job, Origin};
use metrics::{Failure, WebhookMetrics};
use queue::{Offered, Queue};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use switchboard::{Answer, AppErrorCode, ConnId, ErrorCode, Notice, UserId};
use switchboard_tokio::Handle;
use tokio::sync::mpsc;

/// The node's webhook: takes the hubs' notices, sends what the backend asked for. Cloning
/// shares it.
#[derive(Debug, Clone)]
pub struct Webhook {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    handle: Handle,
    deliverer: Deliverer,
    events: Vec<LifecycleEvent>,
    node: String,
    next_id: AtomicU64,
    queue: Mutex<Queue<Job>>,
    metrics: WebhookMetrics,
    /// The collector of batches, when `batch_max` is over 1.
    batches: Option<mpsc::UnboundedSender<(UserId, Job)>>,
}

impl Webhook {
    /// A webhook for `config`, answering clients through `handle`; its events name `node`.
    pub fn new(config: WebhookConfig, handle: Handle, node: String) -> std::io::Result<Self> {
        let metrics = WebhookMetrics::default();
        let queue = Mutex::new(Queue::new(config.queue_size));
        let events = config.events.clone();
        let (batch_max, batch_wait) = (config.batch_max, config.batch_wait);
        let (batches, inbox) = match batch_max {
            0 | 1 => (None, None),
            _ => {
                let (batches, inbox) = mpsc::unbounded_channel();
                (Some(batches), Some(inbox))
            }
        };
        let deliverer = Deliverer::new(config, metrics.clone()).map_err(std::io::Error::other)?;
        let inner = Inner {
            handle,
            deliverer,
            events,
            node,
            next_id: AtomicU64::new(0),
            queue,
            metrics,
            batches,
        };
        let webhook = Webhook {
            inner: Arc::new(inner),
        };
        if let Some(inbox) = inbox {
            // The inbox is bounded by the queue: only started events enter it.
            tokio::spawn(batch::collect(
                webhook.clone(),
                inbox,
                batch_max,
                batch_wait,
            ));
        }
        Ok(webhook)
    }

    /// Its metrics, for `/metrics`.
    pub fn metrics(&self) -> WebhookMetrics {
        self.inner.metrics.clone()
    }

    /// A hub's notice: a forwarded frame, or a lifecycle event, is queued (or refused at once
    /// if the queue is full); anything else is not the backend's business.
    pub fn notice(&self, notice: &Notice) {
        let (user, conn, name, body, origin) = match notice {
            Notice::App(app) => {
                let body = Body::Frame {
                    kind: app.kind.clone(),
                    data: app.data.clone(),
                    thread: app.thread.clone(),
                };
                let reference = app.reference.clone();
                (
                    &app.user,
                    Some(app.conn),
                    "frame",
                    body,
                    Origin::Frame { reference },
                )
            }
            Notice::Opened { conn, user } => {
                let body = Body::Connect { thread: None };
                self.lifecycle(LifecycleEvent::Connect, user, Some(*conn), body);
                return;
            }
            Notice::Closed { conn, user, reason } => {
                let body = Body::Disconnect {
                    code: reason.close_code(),
                    reason: reason.as_str(),
                };
                self.lifecycle(LifecycleEvent::Disconnect, user, Some(*conn), body);
                return;
            }
            Notice::Joined(change) | Notice::Left(change) => {
                let kind = match notice {
                    Notice::Joined(_) => LifecycleEvent::Join,
                    _ => LifecycleEvent::Leave,
                };
                let body = Body::Room {
                    room: change.room.clone(),
                };
                self.lifecycle(kind, &change.user, Some(change.conn), body);
                return;
            }
            Notice::RunEnded(report) => {
                let body = Body::RunEnded {
                    run: report.clone(),
                };
                self.lifecycle(LifecycleEvent::RunEnded, &report.user, None, body);
                return;
            }
            _ => return,
        };
        self.offer(user, conn, name, body, origin);
    }

    fn lifecycle(&self, kind: LifecycleEvent, user: &UserId, conn: Option<ConnId>, body: Body) {
        if self.inner.events.contains(&kind) {
            self.offer(user, conn, kind.as_str(), body, Origin::Lifecycle);
        }
    }

    fn offer(
        &self,
        user: &UserId,
        conn: Option<ConnId>,
        name: &'static str,
        body: Body,
        origin: Origin,
    ) {
        let n = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let event = Event {
            id: format!("{}-{n}", self.inner.node),
            event: name,
            timestamp,
            node: self.inner.node.clone(),
            user: user.clone(),
            conn,
            body,
        };
        let job = Job {
            event,
            origin,
            taken: Instant::now(),
        };
        let offered = {
            let mut queue = self
                .inner
                .queue
                .lock()
                .expect("the queue lock is never poisoned");
            let offered = queue.offer(user, job);
            self.inner.metrics.depth(queue.len());
            offered
        };
        match offered {
            Offered::Start(job) => self.start(user.clone(), job),
            Offered::Queued => {}
            Offered::Full(job) => {
                self.inner.metrics.failed(Failure::QueueFull);
                tracing::warn!(id = job.event.id, "webhook queue full: event refused");
                let webhook = self.clone();
                tokio::spawn(async move { webhook.answer(job, Outcome::Exhausted).await });
            }
        }
    }

    /// Send `user`'s event `job`, which has nothing of its user in flight before it: into the
    /// next batch, or in a task of its own.
    fn start(&self, user: UserId, job: Job) {
        match &self.inner.batches {
            Some(batches) => {
                // The collector lives as long as the webhook: the send cannot fail.
                let _ = batches.send((user, job));
            }
            None => {
                tokio::spawn(self.clone().run(user, job));
            }
        }
    }

    /// Send `user`'s events one after the other, starting with `job`, until none waits.
    async fn run(self, user: UserId, mut job: Job) {
        loop {
            self.prepare(&mut job).await;
            let body = serde_json::to_vec(&job.event).expect("an event always serializes");
            let id = Some(job.event.id.as_str());
            let outcome = Outcome::of(self.inner.deliverer.post(id, &body, job.taken).await);
            self.settle(job, outcome).await;
            match self.done(&user) {
                Some(next) => job = next,
                None => return,
            }
        }
    }

    /// `user`'s event in flight is settled: its next one, if any.
    fn done(&self, user: &UserId) -> Option<Job> {
        let mut queue = (self.inner.queue.lock()).expect("the queue lock is never poisoned");
        let next = queue.done(user);
        self.inner.metrics.depth(queue.len());
        next
    }

    /// Complete the event before its first attempt.
    async fn prepare(&self, job: &mut Job) {
        let event = &mut job.event;
        if let (Body::Connect { thread }, Some(conn)) = (&mut event.body, event.conn) {
            // The hub's `Opened` names no thread: the connection knows it, while it is open.
            *thread = (self.inner.handle.connection_info(conn).await)
                .ok()
                .and_then(|i| i.thread);
        }
    }

    /// Count how an event ended, and tell its sender.
    async fn settle(&self, job: Job, outcome: Outcome) {
        match &outcome {
            Outcome::Exhausted => self.inner.metrics.failed(Failure::Exhausted),
            Outcome::Invalid => self.inner.metrics.failed(Failure::InvalidAnswer),
            Outcome::Delivered(_) | Outcome::Refused { .. } => {}
        }
        self.answer(job, outcome).await;
    }

    /// Tell a frame's sender `outcome` (a lifecycle event is only logged).
    async fn answer(&self, job: Job, outcome: Outcome) {
        let id = &job.event.id;
        let (Origin::Frame { reference }, Some(conn)) = (job.origin, job.event.conn) else {
            if !matches!(outcome, Outcome::Delivered(_)) {
                tracing::warn!(
                    id,
                    event = job.event.event,
                    ?outcome,
                    "lifecycle event not delivered"
                );
            }
            return;
        };
        let answer = match outcome {
            Outcome::Delivered(_) if reference.is_none() => return,
            Outcome::Delivered(reply) => Answer::Reply(reply.unwrap_or_default()),
            Outcome::Refused { code, message } => Answer::Error { code, message },
            Outcome::Invalid => Answer::Error {
                code: AppErrorCode::new(GENERIC_CODE).expect("a valid code"),
                message: "the backend's answer was not understood".into(),
            },
            Outcome::Exhausted => Answer::Error {
                code: ErrorCode::BackendUnavailable.into(),
                message: "the backend did not take the frame".into(),
            },
        };
        if let Err(e) = self.inner.handle.answer(conn, reference, answer).await {
            tracing::debug!(id, %conn, error = %e, "webhook answer to no one");
        }
    }
}
