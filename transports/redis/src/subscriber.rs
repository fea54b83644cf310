//! The subscription connection: subscribes to the channels of current interest, delivers what
//! arrives, follows streams for the hubs (their history reads run in tasks of their own, see
//! [`Follows`]), notes which of this node's own entries came back (for the worker, see
//! [`Sealed`]), and after losing Redis reconnects with backoff, subscribes to them all again
//! and follows again every stream it fed.

use crate::cancels;
use crate::follows::{Follow, Follows};
use crate::history;
use crate::sealed::{Ask, Sealed};
use crate::shared::Shared;
use crate::wire::{Incoming, Record, RoomChange};
use crate::worker::SEND_BATCH;
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use redis::aio::{PubSubSink, PubSubStream};
use redis::{Msg, RedisResult};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use switchboard::{Position, StreamId};
use switchboard_transport::{Handle, Runtime};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{Id, JoinError, JoinSet};
use tokio::time::Instant;

/// A change of interest, from the worker, a stream to follow, or the worker's question after
/// a failed call to the sequencer.
#[derive(Debug)]
pub(crate) enum SubCommand {
    Subscribe(String),
    Unsubscribe(String),
    Follow(Follow),
    Sealed(Ask),
}

impl SubCommand {
    /// The channel it changes, if any.
    fn channel(&self) -> Option<&String> {
        match self {
            SubCommand::Subscribe(c) | SubCommand::Unsubscribe(c) => Some(c),
            SubCommand::Follow(follow) => follow.pin.as_ref(),
            SubCommand::Sealed(_) => None,
        }
    }
}

/// How many inputs a shard may have waiting (its inbound queue) before the subscription waits
/// for it.
const MAX_BACKLOG: usize = 10_000;

/// How long a pin holds a channel (see [`Follow::pin`]): long enough for the connection to
/// open and its hub's interest to reach the worker.
const PIN: Duration = Duration::from_secs(10);

/// The channels to keep subscribed: those the worker follows, and those pinned.
#[derive(Debug, Default)]
struct Channels {
    followed: HashSet<String>,
    /// Per pinned channel, when each of its pins expires.
    pins: HashMap<String, Vec<Instant>>,
}

impl Channels {
    fn wanted(&self, channel: &str) -> bool {
        self.followed.contains(channel) || self.pins.contains_key(channel)
    }

    fn all(&self) -> Vec<&String> {
        let pinned = self.pins.keys().filter(|c| !self.followed.contains(*c));
        self.followed.iter().chain(pinned).collect()
    }

    /// Apply `command`; the change the connection needs: `Some(true)` subscribe, `Some(false)`
    /// unsubscribe.
    fn apply(&mut self, command: &SubCommand, now: Instant) -> Option<bool> {
        let channel = command.channel()?;
        let before = self.wanted(channel);
        match command {
            SubCommand::Subscribe(c) => {
                self.followed.insert(c.clone());
            }
            SubCommand::Unsubscribe(c) => {
                self.followed.remove(c);
            }
            SubCommand::Follow(_) => self
                .pins
                .entry(channel.clone())
                .or_default()
                .push(now + PIN),
            SubCommand::Sealed(_) => {}
        }
        let after = self.wanted(channel);
        (before != after).then_some(after)
    }

    /// Drop the pins expired at `now`; the channels no longer wanted.
    fn expire(&mut self, now: Instant) -> Vec<String> {
        let mut released = Vec::new();
        self.pins.retain(|channel, expiries| {
            expiries.retain(|&at| at > now);
            if expiries.is_empty() && !self.followed.contains(channel) {
                released.push(channel.clone());
            }
            !expiries.is_empty()
        });
        released
    }
}

/// Run until the worker goes away (or the task is aborted). `ready` is answered once the
/// first subscription is in place, or with the error of the first attempt.
pub(crate) async fn run<R: Runtime>(
    shared: Arc<Shared>,
    handle: Handle<R>,
    mut commands: mpsc::UnboundedReceiver<SubCommand>,
    ready: oneshot::Sender<RedisResult<()>>,
) {
    let mut channels = Channels::default();
    channels
        .followed
        .extend([shared.keys.all_channel(), shared.keys.control_channel()]);
    let backoff = shared.backoff();
    let mut wait = backoff.min;
    let mut ready = Some(ready);
    let mut connected_before = false;
    let mut expiry = tokio::time::interval(Duration::from_secs(1));
    let mut feed = Feed::new(shared.clone(), handle);
    loop {
        let attempt = async {
            let mut pubsub = shared.client.get_async_pubsub().await?;
            pubsub.subscribe(channels.all()).await?;
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
                        // Streams are still followed: a read that reaches Redis feeds the hubs
                        // (and the stream is followed again once the subscription is back);
                        // one that does not tells the hubs and whoever asked.
                        command = commands.recv() => match command {
                            Some(command) => {
                                channels.apply(&command, Instant::now());
                                if let Some(channel) =
                                    command.channel().filter(|c| !channels.wanted(c))
                                {
                                    feed.forget(channel);
                                }
                                match command {
                                    SubCommand::Follow(follow) => feed.follow(follow),
                                    // What the lost connection received was all read.
                                    SubCommand::Sealed(ask) => feed.sealed.answer(ask),
                                    _ => {}
                                }
                            }
                            None => return,
                        },
                        Some(read) = feed.reads.join_next_with_id(), if !feed.reads.is_empty() => {
                            feed.loaded(read).await;
                        }
                    }
                }
                wait = backoff.next(wait);
                continue;
            }
        };
        wait = backoff.min;
        feed.generation += 1;
        *shared.subscribed.lock().expect("not poisoned") =
            channels.all().into_iter().cloned().collect();
        if connected_before {
            shared
                .counters
                .resubscribed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(
                channels = channels.all().len(),
                "redis subscriptions restored"
            );
        }
        if let Some(ready) = ready.take() {
            let _ = ready.send(Ok(()));
        }
        let (mut sink, mut stream) = pubsub.split();
        // What the streams followed missed while the subscription was down, from the shared
        // history, before anything newer arrives.
        if connected_before {
            feed.refollow(&channels);
        }
        connected_before = true;
        'connected: loop {
            let changes = tokio::select! {
                command = commands.recv() => {
                    let Some(command) = command else { return };
                    if let SubCommand::Sealed(ask) = command {
                        let connected = feed.catch_up(&mut sink, &mut stream).await;
                        feed.sealed.answer(ask);
                        if connected {
                            continue;
                        }
                        break 'connected;
                    }
                    let change = channels.apply(&command, Instant::now());
                    // Commands are carried out one at a time, so a channel already wanted is
                    // already subscribed.
                    if let Some(channel) = command.channel().filter(|_| change == Some(true)) {
                        if sink.subscribe(channel).await.is_err() {
                            break 'connected;
                        }
                        shared.subscribed.lock().expect("not poisoned").insert(channel.clone());
                    }
                    if let SubCommand::Follow(mut follow) = command {
                        // A channel this pin subscribes was not followed: what the read finds
                        // goes after the hubs' copy (stale, if any), in order (`Follow::live`).
                        follow.live |= change == Some(true) && follow.pin.is_some();
                        feed.follow(follow);
                        continue;
                    }
                    match (change, command.channel()) {
                        (Some(false), Some(channel)) => {
                            feed.forget(channel);
                            vec![(channel.clone(), false)]
                        }
                        _ => continue,
                    }
                }
                _ = expiry.tick() => channels
                    .expire(Instant::now())
                    .into_iter()
                    .inspect(|channel| feed.forget(channel))
                    .map(|channel| (channel, false))
                    .collect::<Vec<_>>(),
                Some(read) = feed.reads.join_next_with_id(), if !feed.reads.is_empty() => {
                    feed.loaded(read).await;
                    continue;
                }
                message = stream.next() => match message {
                    Some(message) => {
                        feed.deliver(&message).await;
                        continue;
                    }
                    None => break,
                },
            };
            for (channel, subscribe) in changes {
                let result = match subscribe {
                    true => sink.subscribe(&channel).await,
                    false => sink.unsubscribe(&channel).await,
                };
                if result.is_err() {
                    break 'connected;
                }
                let mut subscribed = shared.subscribed.lock().expect("not poisoned");
                match subscribe {
                    true => subscribed.insert(channel),
                    false => subscribed.remove(&channel),
                };
            }
        }
        shared.subscribed.lock().expect("not poisoned").clear();
        tracing::warn!("redis subscription connection lost; reconnecting");
    }
}

/// A history read done, with what asked for it.
struct Loaded {
    follow: Follow,
    read: RedisResult<(Position, Vec<Record>)>,
    /// The subscription connection the read started under (see [`Feed::generation`]).
    generation: u64,
}

/// What the subscription feeds the hubs, with the last position fed per stream, so that a
/// stream followed again after the subscription came back resumes where it was.
struct Feed<R: Runtime> {
    shared: Arc<Shared>,
    handle: Handle<R>,
    last: HashMap<StreamId, Position>,
    follows: Follows,
    /// The history reads running, and the stream of each (to finish it should its task fail).
    reads: JoinSet<Loaded>,
    reading: HashMap<Id, StreamId>,
    /// Counts the subscription connections made: a read that started under an earlier one
    /// may have missed live entries sent while the subscription was down, so its stream is
    /// followed again once it is done.
    generation: u64,
    /// This node's own entries that came back.
    sealed: Sealed,
}

impl<R: Runtime> Feed<R> {
    fn new(shared: Arc<Shared>, handle: Handle<R>) -> Self {
        let follows = Follows::new(&shared.options.history);
        Self {
            shared,
            handle,
            last: HashMap::new(),
            follows,
            reads: JoinSet::new(),
            reading: HashMap::new(),
            generation: 0,
            sealed: Sealed::new(SEND_BATCH),
        }
    }

    /// Follow a stream: read, in a task of its own, what a reader missed and where the
    /// sequencer stands; the stream's live entries wait until that was fed (see
    /// [`Feed::loaded`]).
    fn follow(&mut self, follow: Follow) {
        for follow in self.follows.push(follow) {
            self.start(follow);
        }
    }

    fn start(&mut self, follow: Follow) {
        let shared = self.shared.clone();
        let stream = follow.stream.clone();
        let generation = self.generation;
        let task = self.reads.spawn(async move {
            let read = history::read(&shared, &follow.stream, follow.missed).await;
            Loaded {
                follow,
                read,
                generation,
            }
        });
        self.reading.insert(task.id(), stream);
    }

    /// A history read is done: feed the hubs what it found (entries that arrive later on the
    /// subscription and are not newer are ignored by the hubs), then the stream's live entries
    /// held meanwhile; follow the stream again if some of those were dropped or may have been
    /// missed; start the reads waiting for a slot.
    async fn loaded(&mut self, read: Result<(Id, Loaded), JoinError>) {
        let (stream, generation) = match read {
            Ok((id, loaded)) => {
                self.reading.remove(&id);
                let (stream, generation) = (loaded.follow.stream.clone(), loaded.generation);
                self.feed(loaded).await;
                (stream, generation)
            }
            Err(e) => {
                let Some(stream) = self.reading.remove(&e.id()) else {
                    return;
                };
                tracing::error!(%stream, error = %e, "a history read failed");
                let _ = self.handle.deliver_head(stream.clone(), None);
                // As if started under no connection: followed again from the last position.
                (stream, 0)
            }
        };
        let finished = self.follows.finish(&stream);
        for record in finished.held {
            self.record(record, true).await;
        }
        if finished.overflowed || generation != self.generation {
            if let Some(position) = self.last.get(&stream) {
                self.follow(Follow::again(stream, *position));
            }
        }
        for follow in self.follows.start() {
            self.start(follow);
        }
    }

    /// Feed the hubs what a read found: what a reader missed, then where the sequencer stands.
    async fn feed(&mut self, loaded: Loaded) {
        let Follow {
            stream,
            live,
            answer,
            ..
        } = loaded.follow;
        let loaded = match loaded.read {
            Ok((head, mut records)) => {
                let loaded = records.len();
                // History goes in front of what a hub keeps, so newest first.
                if !live {
                    records.reverse();
                }
                for record in records {
                    self.record(record, live).await;
                }
                // A stream fed only history starts here; one fed live entries has them, and
                // its live readers are told of any hole by the hubs.
                match self.last.get_mut(&stream) {
                    Some(last) if live => advance(last, head),
                    Some(_) => {}
                    None => {
                        self.last.insert(stream.clone(), head);
                    }
                }
                let _ = self.handle.deliver_head(stream.clone(), Some(head));
                Ok(loaded)
            }
            Err(e) => {
                tracing::warn!(%stream, error = %e, "the stream's head is unknown");
                let _ = self.handle.deliver_head(stream.clone(), None);
                Err(e)
            }
        };
        // Answered once the shards were fed: the connection that waits for it opens after.
        if let Some(answer) = answer {
            let handle = self.handle.clone();
            tokio::spawn(async move {
                let fed = handle.fed(Some(&stream)).await;
                let _ = answer.send(fed.map_err(|_| away()).and(loaded));
            });
        }
    }

    /// Deliver everything Redis sent on the subscription before now: a PING, which Redis
    /// answers after every message published before it, then the messages read by the time
    /// its answer (or the end of the connection) came. False if the connection ended or did
    /// not answer in time.
    async fn catch_up(&mut self, sink: &mut PubSubSink, stream: &mut PubSubStream) -> bool {
        let timeout = self.shared.options.timeout;
        let answered = tokio::time::timeout(timeout, sink.ping::<()>()).await;
        loop {
            match stream.next().now_or_never() {
                Some(Some(message)) => self.deliver(&message).await,
                Some(None) => return false,
                None => return matches!(answered, Ok(Ok(()))),
            }
        }
    }

    /// After the subscription came back: follow again every stream still followed, from the
    /// last position fed.
    fn refollow(&mut self, channels: &Channels) {
        let keys = &self.shared.keys;
        self.last
            .retain(|stream, _| channels.wanted(&keys.stream_channel(stream)));
        let again: Vec<Follow> = self
            .last
            .iter()
            .map(|(stream, position)| Follow::again(stream.clone(), *position))
            .collect();
        for follow in again {
            self.follow(follow);
        }
    }

    /// A channel no longer followed: its position is forgotten.
    fn forget(&mut self, channel: &str) {
        let keys = &self.shared.keys;
        self.last
            .retain(|stream, _| keys.stream_channel(stream) != channel);
    }

    /// Deliver one message from another node: an envelope to the local hubs, or a command.
    async fn deliver(&mut self, message: &Msg) {
        let (shared, handle) = (self.shared.clone(), self.handle.clone());
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
                Some(record) => {
                    if let Some(id) = record.id.filter(|_| record.origin == self.shared.node) {
                        self.sealed.note(id);
                    }
                    if let Some(record) = self.follows.hold(record) {
                        self.record(record, true).await;
                    }
                }
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
        // A presence change is published by Redis for every node, the one that reported it
        // included (`members.rs`).
        if let Some(change) = incoming.presence {
            let _ = handle.deliver_presence(change);
            return;
        }
        if incoming.origin == shared.node {
            count(&counters.echoes);
            return;
        }
        match incoming {
            Incoming {
                envelope: Some(envelope),
                ..
            } => {
                count(&counters.received);
                let _ = handle.deliver_remote(envelope);
                self.keep_up().await;
            }
            Incoming {
                disconnect: Some(user),
                ..
            } => {
                count(&counters.disconnects);
                let _ = handle.disconnect_user(user).await;
            }
            Incoming {
                join: Some(RoomChange { user, room }),
                ..
            } => {
                count(&counters.memberships);
                let _ = handle.add_user_to_room(user, room).await;
            }
            Incoming {
                leave: Some(RoomChange { user, room }),
                ..
            } => {
                count(&counters.memberships);
                let _ = handle.remove_user_from_room(user, room).await;
            }
            Incoming {
                cancel: Some(ask), ..
            } => cancels::judge(&shared, &handle, ask).await,
            Incoming {
                verdict: Some(verdict),
                ..
            } => {
                // Sent to every node: only the one whose client asked reads it.
                if verdict.ticket.node == shared.node {
                    (shared.cancels()).verdict(verdict.ticket.id, verdict.outcome);
                }
            }
            _ => count(&counters.malformed),
        }
    }

    /// Deliver a sequenced stream entry to the local hubs, this node's own included (the
    /// sequencer is the only way a stream entry reaches anyone), or, not `live`, queue it as
    /// history. Connection ids in `except` name connections of the origin only.
    async fn record(&mut self, record: Record, live: bool) {
        let mut sequenced = record.sequenced;
        if record.origin != self.shared.node {
            sequenced.entry.except.clear();
        }
        self.shared.count(&self.shared.counters.entries);
        if live {
            let position = sequenced.position;
            match self.last.get_mut(&sequenced.entry.stream) {
                Some(last) => advance(last, position),
                None => {
                    self.last.insert(sequenced.entry.stream.clone(), position);
                }
            }
            let _ = self.handle.deliver_sequenced(sequenced);
        } else {
            let _ = self.handle.deliver_history(sequenced);
        }
        self.keep_up().await;
    }

    /// Wait for the shards when they fall too far behind what arrives from Redis, so that
    /// what waits is bounded here; Redis then holds the rest (and cuts a subscriber that stays
    /// behind past its output buffer limit, after which its streams are followed again).
    async fn keep_up(&self) {
        if self.handle.inbound_backlog() >= MAX_BACKLOG {
            let _ = self.handle.fed(None).await;
        }
    }
}

/// Move `last` to `position` if it is further: later in the same epoch, or in another epoch.
fn advance(last: &mut Position, position: Position) {
    if last.epoch != position.epoch || last.seq < position.seq {
        *last = position;
    }
}

fn away() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::other("redis is unreachable"))
}
