//! [`Handle::publish_batch`]: several publishes handed to the shards at once — one command per
//! shard concerned, whatever the number of messages — each answered on its own.
//!
//! A batch is what a backend sends when it has several messages ready (one per user of a
//! notification, a burst of chat lines): handing them over one by one costs a round trip to
//! every shard each, and the connections' writers are woken once per message. In one command,
//! a shard publishes the batch's messages in order, draining after each one (the drain
//! invariant holds per message, and each message's envelopes go where its own target says),
//! then answers once for all of them; the writers find the frames together.

use crate::error::Error;
use crate::handle::{publish_error, sum, Handle};
use crate::runtime::Runtime;
use crate::shard::Route;
use std::sync::Arc;
use switchboard::{Audience, Delivery, Message, PublishError, Target};

/// Which shards one message of a batch concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// The shard of its user or connection.
    One(usize),
    /// Every shard: a room or everyone.
    Every,
}

/// One message of a batch, with the shards it concerns.
struct Item {
    audience: Audience,
    message: Message,
    reach: Reach,
}

/// What one shard did with each message of a batch: `None` for a message of another shard.
type ShardAnswers = Vec<Option<Result<Delivery, PublishError>>>;

/// Add up what the shards did with one message: the first refusal, or the deliveries summed
/// (as [`Handle::publish_except`] sums them).
fn merge(
    answers: impl IntoIterator<Item = Result<Delivery, PublishError>>,
) -> Result<Delivery, Error> {
    let deliveries = answers
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(publish_error)?;
    Ok(sum(deliveries))
}

impl<R: Runtime> Handle<R> {
    /// Publish each `(audience, message)` as [`Handle::publish_except`] would, in order, in one
    /// command to each shard concerned (rather than one per message). Each message has its
    /// own answer, in the order given: a refused one (an unknown connection, say) does not
    /// stop the others. Messages to the same connection arrive in the order given.
    ///
    /// The outer error is [`Error::Stopped`] alone: the switchboard has shut down.
    pub async fn publish_batch(
        &self,
        batch: impl IntoIterator<Item = (Audience, Message)>,
    ) -> Result<Vec<Result<Delivery, Error>>, Error> {
        let mut answers = Vec::new();
        let mut items = Vec::new();
        for (audience, message) in batch {
            let reach = match &audience.target {
                Target::Connection(conn) => self.shards.shard_of_connection(*conn).map(Reach::One),
                Target::User(user) | Target::Thread { user, .. } => {
                    Ok(Reach::One(self.shard_of(user)))
                }
                Target::Room(_) | Target::All => Ok(Reach::Every),
            };
            match reach {
                Ok(reach) => {
                    answers.push(None);
                    items.push(Item {
                        audience,
                        message,
                        reach,
                    });
                }
                Err(e) => answers.push(Some(Err(e))),
            }
        }
        let shards: Vec<usize> = (0..self.shards.count())
            .filter(|&s| {
                items
                    .iter()
                    .any(|i| i.reach == Reach::Every || i.reach == Reach::One(s))
            })
            .collect();
        let items = Arc::new(items);
        let calls = shards.iter().map(|&shard| {
            let items = Arc::clone(&items);
            self.shards.call(shard, move |s, now| -> ShardAnswers {
                items
                    .iter()
                    .map(|item| {
                        s.route = match item.reach {
                            Reach::One(own) if own == s.index => Route::EVERYWHERE,
                            Reach::One(_) => return None,
                            // Every shard serves its own members: nothing to relay between
                            // them, and other nodes get one envelope per message, the first
                            // shard's.
                            Reach::Every => Route {
                                relay: false,
                                to_cluster: s.index == 0,
                            },
                        };
                        let delivery = s.hub.publish(now, item.audience.clone(), &item.message);
                        s.drain();
                        Some(delivery)
                    })
                    .collect()
            })
        });
        let mut by_shard = futures_util::future::join_all(calls)
            .await
            .into_iter()
            .collect::<Result<Vec<ShardAnswers>, Error>>()?;
        let mut published = 0;
        Ok(answers
            .into_iter()
            .map(|answer| {
                answer.unwrap_or_else(|| {
                    let index = published;
                    published += 1;
                    merge(by_shard.iter_mut().filter_map(|a| a[index].take()))
                })
            })
            .collect())
    }
}
