//! The subscription connection: subscribes to the channels of current interest, delivers what
//! arrives, and after losing Redis reconnects with backoff and subscribes to them all again.

use crate::bridge::Shared;
use crate::wire::{Incoming, Record};
use bytes::Bytes;
use futures_util::StreamExt;
use redis::{Msg, RedisResult};
use std::collections::HashSet;
use std::sync::Arc;
use switchboard_transport::{Handle, Runtime};
use tokio::sync::{mpsc, oneshot};

/// A change of interest, from the worker.
#[derive(Debug)]
pub(crate) enum SubCommand {
    Subscribe(String),
    Unsubscribe(String),
}

fn apply(desired: &mut HashSet<String>, command: &SubCommand) {
    match command {
        SubCommand::Subscribe(channel) => desired.insert(channel.clone()),
        SubCommand::Unsubscribe(channel) => desired.remove(channel),
    };
}

/// Run until the worker goes away (or the task is aborted). `ready` is answered once the
/// first subscription is in place, or with the error of the first attempt.
pub(crate) async fn run<R: Runtime>(
    shared: Arc<Shared>,
    handle: Handle<R>,
    mut commands: mpsc::UnboundedReceiver<SubCommand>,
    ready: oneshot::Sender<RedisResult<()>>,
) {
    let mut desired: HashSet<String> = [shared.keys.all_channel(), shared.keys.control_channel()]
        .into_iter()
        .collect();
    let backoff = shared.backoff();
    let mut wait = backoff.min;
    let mut ready = Some(ready);
    let mut connected_before = false;
    loop {
        let attempt = async {
            let mut pubsub = shared.client.get_async_pubsub().await?;
            let channels: Vec<&String> = desired.iter().collect();
            pubsub.subscribe(channels).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let attempt = match tokio::time::timeout(shared.options.timeout, attempt).await {
            Ok(attempt) => attempt,
            Err(_) => Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "redis did not answer the subscription in time",
            ))),
        };
        let pubsub = match attempt {
            Ok(pubsub) => pubsub,
            Err(e) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(e));
                    return;
                }
                tracing::debug!(error = %e, ?wait, "redis subscription failed; retrying");
                let sleep = tokio::time::sleep(wait);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        () = &mut sleep => break,
                        command = commands.recv() => match command {
                            Some(command) => apply(&mut desired, &command),
                            None => return,
                        },
                    }
                }
                wait = backoff.next(wait);
                continue;
            }
        };
        wait = backoff.min;
        *shared.subscribed.lock().expect("not poisoned") = desired.clone();
        if connected_before {
            shared
                .counters
                .resubscribed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(channels = desired.len(), "redis subscriptions restored");
        }
        connected_before = true;
        if let Some(ready) = ready.take() {
            let _ = ready.send(Ok(()));
        }
        let (mut sink, mut stream) = pubsub.split();
        loop {
            tokio::select! {
                command = commands.recv() => {
                    let Some(command) = command else { return };
                    apply(&mut desired, &command);
                    let result = match &command {
                        SubCommand::Subscribe(channel) => sink.subscribe(channel).await,
                        SubCommand::Unsubscribe(channel) => sink.unsubscribe(channel).await,
                    };
                    if result.is_err() {
                        break;
                    }
                    let mut subscribed = shared.subscribed.lock().expect("not poisoned");
                    apply(&mut subscribed, &command);
                }
                message = stream.next() => match message {
                    Some(message) => deliver(&shared, &handle, &message).await,
                    None => break,
                },
            }
        }
        shared.subscribed.lock().expect("not poisoned").clear();
        tracing::warn!("redis subscription connection lost; reconnecting");
    }
}

/// Deliver one message from another node: an envelope to the local hubs, or a command.
async fn deliver<R: Runtime>(shared: &Shared, handle: &Handle<R>, message: &Msg) {
    let counters = &shared.counters;
    let count = |counter: &std::sync::atomic::AtomicU64| {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    let payload = message.get_payload_bytes();
    if let Some(record) = payload
        .contains(&b'\n')
        .then(|| Record::parse(&Bytes::copy_from_slice(payload)))
    {
        match record {
            Some(record) => deliver_record(shared, handle, record).await,
            None => {
                count(&counters.malformed);
                tracing::warn!(channel = message.get_channel_name(), "malformed entry");
            }
        }
        return;
    }
    let Ok(incoming) = serde_json::from_slice::<Incoming>(payload) else {
        count(&counters.malformed);
        tracing::warn!(channel = message.get_channel_name(), "malformed message");
        return;
    };
    if incoming.origin == shared.node {
        count(&counters.echoes);
        return;
    }
    match (incoming.envelope, incoming.disconnect) {
        (Some(envelope), _) => {
            count(&counters.received);
            let _ = handle.deliver_remote(envelope).await;
        }
        (None, Some(user)) => {
            count(&counters.disconnects);
            handle.disconnect_user(user).await;
        }
        (None, None) => count(&counters.malformed),
    }
}

/// Deliver a sequenced stream entry to the local hubs, this node's own included: the sequencer
/// is the only way a stream entry reaches anyone. Connection ids in `except` name connections
/// of the origin only.
pub(crate) async fn deliver_record<R: Runtime>(
    shared: &Shared,
    handle: &Handle<R>,
    record: Record,
) {
    let mut sequenced = record.sequenced;
    if record.origin != shared.node {
        sequenced.entry.except.clear();
    }
    shared
        .counters
        .entries
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let _ = handle.deliver_sequenced(sequenced).await;
}
