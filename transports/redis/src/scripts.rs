//! The Lua scripts that keep presence, the cluster-wide limit and the shared streams atomic.
//!
//! Presence hashes map node → count. A node's entries count only while its lease key exists;
//! every script that reads a hash drops the fields of nodes whose lease has expired, so a
//! crashed node's counts disappear with its lease. The scripts touch keys derived from their
//! arguments (the lease keys), which a single Redis (or a primary with replicas) allows.

use redis::Script;

/// The Lua function both presence readers start with: `live_total(hash, lease_prefix)`, the
/// sum of a presence hash over live nodes, dropping the fields of dead ones.
macro_rules! live_total {
    () => {
        r#"
local function live_total(hash, lease_prefix)
  local total = 0
  local fields = redis.call('HGETALL', hash)
  for i = 1, #fields, 2 do
    if redis.call('EXISTS', lease_prefix .. fields[i]) == 1 then
      total = total + tonumber(fields[i + 1])
    else
      redis.call('HDEL', hash, fields[i])
    end
  end
  return total
end
"#
    };
}

/// Add one connection of a user on a node, unless the user already has `limit` connections on
/// live nodes (`limit` 0: no limit). KEYS[1] the user's presence hash; ARGV: node, limit,
/// lease key prefix, hash TTL in milliseconds. Returns the node's new count, or -1 if refused.
pub(crate) const OPEN: &str = concat!(
    live_total!(),
    r#"
local limit = tonumber(ARGV[2])
if limit > 0 and live_total(KEYS[1], ARGV[3]) >= limit then
  return -1
end
local count = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return count
"#
);

/// Remove one connection of a user on a node; the field goes at zero. KEYS[1] the user's
/// presence hash; ARGV[1] the node. Returns the node's new count.
pub(crate) const CLOSE: &str = r#"
local count = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if count <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 0
end
return count
"#;

/// The sum of a presence hash over live nodes, pruning dead ones. KEYS[1] the hash; ARGV[1]
/// the lease key prefix.
pub(crate) const COUNT: &str = concat!(
    live_total!(),
    r#"
return live_total(KEYS[1], ARGV[1])
"#
);

/// The live nodes, pruning dead ones from the set. KEYS[1] the set of nodes; ARGV[1] the
/// lease key prefix.
pub(crate) const LIVE_NODES: &str = r#"
local live = {}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. node) == 1 then
    table.insert(live, node)
  else
    redis.call('SREM', KEYS[1], node)
  end
end
return live
"#;

/// Sequence one stream entry: take the stream's next position, seal the entry with it, publish
/// it and keep it in the stream's shared history, all at once, so every node sees one order.
/// KEYS[1] the stream's hash (`epoch`, `seq`), KEYS[2] its history list; ARGV: the stream's
/// channel, the header template, the frame template, the epoch of a new stream (the time in
/// milliseconds), the history length, the history age in milliseconds. Sealing appends
/// `,"epoch":E,"seq":N}` to a template, exactly as `switchboard::sequenced::seal` does. The
/// copy kept in history is marked `undelivered` when no node received it. Returns the seq.
pub(crate) const SEQUENCE: &str = r#"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[4]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local position = ',"epoch":' .. epoch .. ',"seq":' .. seq .. '}'
local frame = ARGV[3] .. position
local receivers = redis.call('PUBLISH', ARGV[1], ARGV[2] .. position .. '\n' .. frame)
local header = ARGV[2]
if receivers == 0 then
  header = header .. ',"undelivered":true'
end
redis.call('RPUSH', KEYS[2], header .. position .. '\n' .. frame)
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[5]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return seq
"#;

/// Where a stream stands, and what a reader missed, at once: the stream's epoch (created now
/// if the stream is new, so every node answers with the same), its last seq, and, for a reader
/// at a position, the entries after it (all of them in another epoch). KEYS[1] the stream's
/// hash, KEYS[2] its history list; ARGV: the epoch of a new stream (the time in milliseconds),
/// the stream's lifetime in milliseconds, the reader's epoch (empty: no reader) and seq.
/// Returns `{epoch, seq, entries}`.
pub(crate) const FOLLOW: &str = r#"
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
local entries = {}
if ARGV[3] ~= '' then
  if epoch ~= ARGV[3] then
    entries = redis.call('LRANGE', KEYS[2], 0, -1)
  elseif seq > tonumber(ARGV[4]) then
    entries = redis.call('LRANGE', KEYS[2], tonumber(ARGV[4]) - seq, -1)
  end
end
return {tonumber(epoch), seq, entries}
"#;

/// The scripts, loaded once (`EVALSHA`, falling back to `EVAL` after a Redis restart).
pub(crate) struct Scripts {
    pub open: Script,
    pub close: Script,
    pub count: Script,
    pub live_nodes: Script,
    pub sequence: Script,
    pub follow: Script,
}

impl Scripts {
    pub fn new() -> Self {
        Self {
            open: Script::new(OPEN),
            close: Script::new(CLOSE),
            count: Script::new(COUNT),
            live_nodes: Script::new(LIVE_NODES),
            sequence: Script::new(SEQUENCE),
            follow: Script::new(FOLLOW),
        }
    }
}
