//! Room presence across the cluster: which users are in each room, counted once per node, so
//! that a user's arrival and departure are announced once for the whole cluster.
//!
//! A node's hubs report a user's first connection to a room on the node and its last one
//! leaving (`ClusterEvent::Presence`; a user's connections all live on one shard). The
//! [`CHANGE`] script keeps, per room, a hash user → the number of nodes the user is in the room
//! through, and per node the set of its `[room, user]` entries; when a user's count crosses
//! 0 ↔ 1 it publishes the change on the room's channel, in the same atomic step, so that every
//! node serving the room (this one included) sees the changes of one room in the order Redis
//! made them. A node that dies leaves its entries behind: every heartbeat runs [`SWEEP`], which
//! takes the entries of nodes whose lease has expired out and publishes the departures that
//! makes; a node that stops runs it for itself. A node remembers what it reported
//! ([`NodeRoomUsers`]) and, should its entries have been swept while it lived (its lease
//! expired during a Redis outage), reports its users again at the next heartbeat. A hub that
//! starts serving a room is told who is in it ([`tell_room`]). If Redis cannot be reached, a
//! change is delivered on this node only.

use crate::shared::Shared;
use redis::RedisResult;
use std::collections::HashSet;
use switchboard::{PresenceChange, PresenceEvent, RoomId, UserId};
use switchboard_transport::{Handle, Runtime};

/// One node's report of a user's arrival in (`ARGV[3]` `1`) or departure from (`0`) a room.
/// KEYS[1] the room's users hash, KEYS[2] the node's entries, KEYS[3] the set of nodes with
/// entries; ARGV: room, user, arrival, the node, the room's channel. Publishes
/// `{"origin","presence":{room,user,event,users}}` on the channel when the user's count over
/// the nodes crosses 0 ↔ 1; returns 1 then, else 0. A repeated report changes nothing.
pub(crate) const CHANGE: &str = r#"
local room, user, node = ARGV[1], ARGV[2], ARGV[4]
local entry = cjson.encode({room, user})
local crossed = false
local event
if ARGV[3] == '1' then
  event = 'join'
  redis.call('SADD', KEYS[3], node)
  if redis.call('SADD', KEYS[2], entry) == 1 then
    crossed = redis.call('HINCRBY', KEYS[1], user, 1) == 1
  end
else
  event = 'leave'
  if redis.call('SREM', KEYS[2], entry) == 1 then
    if redis.call('HINCRBY', KEYS[1], user, -1) <= 0 then
      redis.call('HDEL', KEYS[1], user)
      crossed = true
    end
  end
end
if not crossed then
  return 0
end
local users = redis.call('HLEN', KEYS[1])
local change = {room = room, user = user, event = event, users = users}
redis.call('PUBLISH', ARGV[5], cjson.encode({origin = node, presence = change}))
return 1
"#;

/// Take out the entries of every node whose lease has expired, or of the node `ARGV[6]` (a
/// node that stops; empty for none), publishing a departure for each user whose count falls to
/// 0. KEYS[1] the set of nodes with entries; ARGV: lease key prefix, entries key prefix, room
/// users hash prefix, room channel prefix, the node sweeping. Returns the departures.
pub(crate) const SWEEP: &str = r#"
local departed = 0
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if node == ARGV[6] or redis.call('EXISTS', ARGV[1] .. node) == 0 then
    local entries = ARGV[2] .. node
    for _, entry in ipairs(redis.call('SMEMBERS', entries)) do
      local e = cjson.decode(entry)
      local room, user = e[1], e[2]
      local hash = ARGV[3] .. room
      if redis.call('HINCRBY', hash, user, -1) <= 0 then
        redis.call('HDEL', hash, user)
        local change = {room = room, user = user, event = 'leave', users = redis.call('HLEN', hash)}
        redis.call('PUBLISH', ARGV[4] .. room, cjson.encode({origin = ARGV[5], presence = change}))
        departed = departed + 1
      end
    end
    redis.call('DEL', entries)
    redis.call('SREM', KEYS[1], node)
  end
end
return departed
"#;

/// The users this node counts in each room, as its hubs reported them.
#[derive(Debug, Default)]
pub(crate) struct NodeRoomUsers {
    users: HashSet<(RoomId, UserId)>,
}

impl NodeRoomUsers {
    /// Report `change`, a user's arrival or departure on this node; Redis announces it to
    /// every node if it changes the user's presence in the cluster. Without Redis, it is
    /// delivered on this node only.
    pub async fn report<R: Runtime>(
        &mut self,
        shared: &Shared,
        handle: &Handle<R>,
        change: PresenceChange,
    ) {
        let member = (change.room.clone(), change.user.clone());
        match change.event {
            PresenceEvent::Join => self.users.insert(member),
            PresenceEvent::Leave => self.users.remove(&member),
        };
        if let Err(e) = run_change(shared, &change).await {
            tracing::warn!(room = %change.room, user = %change.user, error = %e, "presence not counted in redis: announced on this node only");
            let _ = handle.deliver_presence(change);
        }
    }

    /// If Redis holds fewer of this node's room users than it has (they were swept while its
    /// lease had expired), report them all again: those Redis has are left as they are.
    pub async fn resync(&self, shared: &Shared) -> RedisResult<()> {
        let mut conn = shared.link.conn().await?;
        let held = redis::cmd("SCARD")
            .arg(shared.keys.node_room_users(&shared.node))
            .query_async::<usize>(&mut conn)
            .await;
        if shared.link.check(held).await? == self.users.len() {
            return Ok(());
        }
        for (room, user) in &self.users {
            let change = PresenceChange {
                room: room.clone(),
                user: user.clone(),
                event: PresenceEvent::Join,
                users: 0,
            };
            run_change(shared, &change).await?;
        }
        Ok(())
    }
}

/// Tell this node's hubs who is in `room`, which one of them starts serving: a hub applies
/// what it was not told yet (the others ignore it), so that its `joined` lists the room's
/// users on every node. A change made while the subscription to the room is being made may
/// reach the node only with the next change of that user.
pub(crate) async fn tell_room<R: Runtime>(
    shared: &Shared,
    handle: &Handle<R>,
    room: &RoomId,
) -> RedisResult<()> {
    let mut conn = shared.link.conn().await?;
    let users = redis::cmd("HKEYS")
        .arg(shared.keys.room_users(room))
        .query_async::<Vec<String>>(&mut conn)
        .await;
    let users = shared.link.check(users).await?;
    let count = users.len();
    for user in users {
        let _ = handle.deliver_presence(PresenceChange {
            room: room.clone(),
            user: UserId::from(user),
            event: PresenceEvent::Join,
            users: count,
        });
    }
    Ok(())
}

/// Run [`CHANGE`] for `change` (its `users` is the script's to count).
async fn run_change(shared: &Shared, change: &PresenceChange) -> RedisResult<i64> {
    let mut conn = shared.link.conn().await?;
    let keys = &shared.keys;
    let arrival = u8::from(change.event == PresenceEvent::Join);
    let result = shared
        .scripts
        .member
        .key(keys.room_users(&change.room))
        .key(keys.node_room_users(&shared.node))
        .key(keys.room_user_nodes())
        .arg(change.room.as_str())
        .arg(change.user.as_str())
        .arg(arrival)
        .arg(&shared.node)
        .arg(keys.room_channel(&change.room))
        .invoke_async::<i64>(&mut conn)
        .await;
    shared.link.check(result).await
}

/// Take out the room users of dead nodes, and of this node if it is `leaving`, announcing
/// the departures this makes. The number of departures.
pub(crate) async fn sweep(shared: &Shared, leaving: bool) -> RedisResult<u64> {
    let keys = &shared.keys;
    let mut conn = shared.link.conn().await?;
    let result = shared
        .scripts
        .sweep_members
        .key(keys.room_user_nodes())
        .arg(keys.lease_prefix())
        .arg(keys.node_room_users_prefix())
        .arg(keys.room_users_prefix())
        .arg(keys.room_channel_prefix())
        .arg(&shared.node)
        .arg(if leaving { shared.node.as_str() } else { "" })
        .invoke_async::<u64>(&mut conn)
        .await;
    shared.link.check(result).await
}
