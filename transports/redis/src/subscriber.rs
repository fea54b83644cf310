//! The subscription connection: subscribes to the channels of current interest, delivers what
//! arrives, and after losing Redis reconnects with backoff and subscribes to them all again.

use crate::options::unix_millis;
use crate::shared::Shared;
use crate::wire::{Incoming, Record};
use bytes::Bytes;
use futures_util::StreamExt;
use redis::{Msg, RedisResult};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use switchboard::{Position, StreamId};
use switchboard_transport::{Handle, Runtime};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// A change of interest, from the worker, or a stream to follow.
#[derive(Debug)]
pub(crate) enum SubCommand {
    Subscribe(String),
    Unsubscribe(String),
    Follow(Follow),
}

/// Start following a stream for the hubs: after the subscriptions asked for before (and the
/// pin, if any), load what a reader at `resume` missed and tell the hubs where the sequencer
/// stands, in order with what arrives on the subscription.
#[derive(Debug)]
pub(crate) struct Follow {
    pub stream: StreamId,
    /// The stream's channel, to hold subscribed for a while (see [`PIN`]): a connection that
    /// opens within that time misses nothing published on it.
    pub pin: Option<String>,
    pub resume: Option<Position>,
    /// What followed `resume` is delivered to the readers now (a stream followed again after
    /// its subscription was cut), rather than kept for replays (a resume, a join with `since`).
    pub live: bool,
    /// Told how many entries were loaded.
    pub answer: Option<oneshot::Sender<RedisResult<usize>>>,
}

impl SubCommand {
    /// The channel it changes, if any.
    fn channel(&self) -> Option<&String> {
        match self {
            SubCommand::Subscribe(c) | SubCommand::Unsubscribe(c) => Some(c),
            SubCommand::Follow(follow) => follow.pin.as_ref(),
        }
    }
}

/// How many relays a shard may have waiting before the subscription waits for it.
const MAX_BACKLOG: usize = 10_000;

/// How long a pin holds a channel: long enough for the connection to open and its hub's
/// interest to reach the worker.
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
    let mut feed = Feed {
        shared: shared.clone(),
        handle: handle.clone(),
        last: HashMap::new(),
    };
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
                        // Redis is away: a stream's head is unknown, and no join may wait
                        // for it; whoever asked is told.
                        command = commands.recv() => match command {
                            Some(command) => {
                                channels.apply(&command, Instant::now());
                                if let Some(channel) =
                                    command.channel().filter(|c| !channels.wanted(c))
                                {
                                    feed.forget(channel);
                                }
                                if let SubCommand::Follow(follow) = command {
                                    let _ = handle.deliver_head(follow.stream, None);
                                    if let Some(answer) = follow.answer {
                                        let _ = answer.send(Err(away()));
                                    }
                                }
                            }
                            None => return,
                        },
                    }
                }
                wait = backoff.next(wait);
                continue;
            }
        };
        wait = backoff.min;
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
            feed.refollow(&channels).await;
        }
        connected_before = true;
        'connected: loop {
            let changes = tokio::select! {
                command = commands.recv() => {
                    let Some(command) = command else { return };
                    let change = channels.apply(&command, Instant::now());
                    // Commands are carried out one at a time, so a channel already wanted is
                    // already subscribed.
                    if let Some(channel) = command.channel().filter(|_| change == Some(true)) {
                        if sink.subscribe(channel).await.is_err() {
                            break 'connected;
                        }
                        shared.subscribed.lock().expect("not poisoned").insert(channel.clone());
                    }
                    if let SubCommand::Follow(follow) = command {
                        feed.follow(follow).await;
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

/// What the subscription feeds the hubs, with the last position fed per stream, so that a
/// stream followed again after the subscription came back resumes where it was.
struct Feed<R: Runtime> {
    shared: Arc<Shared>,
    handle: Handle<R>,
    last: HashMap<StreamId, Position>,
}

impl<R: Runtime> Feed<R> {
    /// Follow a stream: feed the hubs what a reader missed, then where the sequencer stands
    /// (entries that arrive later on the subscription and are not newer are ignored by the
    /// hubs).
    async fn follow(&mut self, follow: Follow) {
        let Follow {
            stream,
            resume,
            live,
            answer,
            ..
        } = follow;
        let loaded = match read_stream(&self.shared, &stream, resume).await {
            Ok((head, mut records)) => {
                let loaded = records.len();
                // History goes in front of what a hub keeps, so newest first.
                if !live {
                    records.reverse();
                }
                for record in records {
                    self.record(record, live).await;
                }
                let last = self.last.entry(stream.clone()).or_insert(head);
                if last.epoch != head.epoch || last.seq < head.seq {
                    *last = head;
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

    /// After the subscription came back: load what every stream still followed missed.
    async fn refollow(&mut self, channels: &Channels) {
        let keys = &self.shared.keys;
        let missed: Vec<(StreamId, Position)> = self
            .last
            .iter()
            .filter(|(stream, _)| channels.wanted(&keys.stream_channel(stream)))
            .map(|(stream, position)| (stream.clone(), *position))
            .collect();
        self.last.clear();
        for (stream, position) in missed {
            let follow = Follow {
                stream,
                pin: None,
                resume: Some(position),
                live: true,
                answer: None,
            };
            self.follow(follow).await;
        }
    }

    /// A channel no longer followed: its position is forgotten.
    fn forget(&mut self, channel: &str) {
        let keys = &self.shared.keys;
        self.last
            .retain(|stream, _| keys.stream_channel(stream) != channel);
    }
}

/// The head of `stream`, and its entries after `resume`, at once.
async fn read_stream(
    shared: &Shared,
    stream: &StreamId,
    resume: Option<Position>,
) -> RedisResult<(Position, Vec<Record>)> {
    let mut conn = shared.link.conn().await?;
    let (reader_epoch, reader_seq) = match resume {
        Some(p) => (p.epoch.to_string(), p.seq),
        None => (String::new(), 0),
    };
    let read = shared
        .scripts
        .follow
        .key(shared.keys.stream_counter(stream))
        .key(shared.keys.stream_history(stream))
        .arg(unix_millis())
        .arg(shared.options.history_age.as_millis().max(1) as u64)
        .arg(reader_epoch)
        .arg(reader_seq)
        .invoke_async::<(u64, u64, Vec<Vec<u8>>)>(&mut conn)
        .await;
    let (epoch, seq, payloads) = shared.link.check(read).await?;
    let mut records = Vec::with_capacity(payloads.len());
    for payload in payloads {
        match Record::parse(&payload.into()) {
            Some(record) => records.push(record),
            None => shared.count(&shared.counters.malformed),
        }
    }
    Ok((Position { epoch, seq }, records))
}

fn away() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::other("redis is unreachable"))
}

impl<R: Runtime> Feed<R> {
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
                Some(record) => self.record(record, true).await,
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
                let _ = handle.deliver_remote(envelope);
                self.keep_up().await;
            }
            (None, Some(user)) => {
                count(&counters.disconnects);
                handle.disconnect_user(user).await;
            }
            (None, None) => count(&counters.malformed),
        }
    }

    /// Deliver a sequenced stream entry to the local hubs, this node's own included (the
    /// sequencer is the only way a stream entry reaches anyone), or, not `live`, queue it as
    /// history. Connection ids in `except`
    /// name connections of the origin only.
    async fn record(&mut self, record: Record, live: bool) {
        let mut sequenced = record.sequenced;
        if record.origin != self.shared.node {
            sequenced.entry.except.clear();
        }
        self.shared.count(&self.shared.counters.entries);
        if live {
            self.last
                .insert(sequenced.entry.stream.clone(), sequenced.position);
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
        if self.handle.relay_backlog() >= MAX_BACKLOG {
            let _ = self.handle.fed(None).await;
        }
    }
}
