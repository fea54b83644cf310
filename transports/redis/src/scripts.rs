//! The Lua scripts that keep presence, the cluster-wide limit and the shared streams atomic.
//!
//! Presence hashes map node → count. A node's entries count only while its lease key exists;
//! every script that reads a hash drops the fields of nodes whose lease has expired, so a
//! crashed node's counts disappear with its lease. The scripts touch keys derived from their
//! arguments (the lease keys), which a single Redis (or a primary with replicas) allows.
//!
//! A stream's shared history is bounded as a hub bounds its own (`HistoryConfig`): by entries,
//! by frame bytes and by age, trimmed when an entry is appended and, by age, when it is read;
//! a read returns only what the reading node keeps. Trimming reads the history's index and
//! running total, never the entries, so it costs what it drops. Ages are taken from Redis'
//! clock (`TIME`), which scripts may read before writing since Redis 5.

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

/// The fields of a hash keyed by node that belong to live nodes, as `node, value, ...`,
/// pruning dead ones. KEYS[1] the hash; ARGV[1] the lease key prefix.
pub(crate) const PER_NODE: &str = r#"
local live = {}
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if redis.call('EXISTS', ARGV[1] .. fields[i]) == 1 then
    table.insert(live, fields[i])
    table.insert(live, fields[i + 1])
  else
    redis.call('HDEL', KEYS[1], fields[i])
  end
end
return live
"#;

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

/// The Lua functions the stream scripts start with, over a stream's hash (`KEYS[1]`, whose
/// `bytes` field is the history's running total of frame bytes), its history list and the
/// history's index (a list parallel to it of `<append time in ms> <frame bytes>`), so that
/// trimming costs a few bytes per entry dropped, never a pass over the history:
///
/// - `now_ms()`: Redis' clock, one clock for every node;
/// - `held(stream, history, index)`: the entries and frame bytes the history holds; a history
///   whose index or total does not match (kept by an earlier version) is dropped;
/// - `trim(stream, history, index, count, bytes, max_messages, max_bytes, max_age, now)`:
///   drop the oldest entries until the history is within the bounds, exactly as a hub's
///   stream trims its own (an entry alone over `max_bytes` is not kept); what remains.
macro_rules! history {
    () => {
        r#"
local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

local function held(stream, history, index)
  local count = redis.call('LLEN', index)
  local bytes = tonumber(redis.call('HGET', stream, 'bytes'))
  if count > 0 and bytes and count == redis.call('LLEN', history) then
    return count, bytes
  end
  redis.call('DEL', history, index)
  redis.call('HDEL', stream, 'bytes')
  return 0, 0
end

local function trim(stream, history, index, count, bytes, max_messages, max_bytes, max_age, now)
  local dropped = 0
  while count > 0 do
    local at, size = string.match(redis.call('LINDEX', index, 0), '^(%d+) (%d+)$')
    if count <= max_messages and bytes <= max_bytes and now - tonumber(at) < max_age then
      break
    end
    redis.call('LPOP', index)
    count = count - 1
    bytes = bytes - tonumber(size)
    dropped = dropped + 1
  end
  if dropped > 0 then
    redis.call('LTRIM', history, dropped, -1)
  end
  if count == 0 then
    redis.call('HDEL', stream, 'bytes')
  else
    redis.call('HSET', stream, 'bytes', bytes)
  end
  return count, bytes
end
"#
    };
}

/// Sequence one stream entry: take the stream's next position, seal the entry with it, publish
/// it and keep it in the stream's shared history, trimmed to the history bounds, all at once,
/// so every node sees one order. KEYS[1] the stream's hash (`epoch`, `seq`, `bytes`), KEYS[2]
/// its history list, KEYS[3] the history's index; ARGV: the stream's channel, the header
/// template, the frame template, the epoch of a new stream (the time in milliseconds), the
/// history's `max_messages`, `max_bytes` and `max_age` in milliseconds (also how long the
/// stream's keys outlive its last entry). Sealing appends `,"epoch":E,"seq":N}` to a template,
/// exactly as `switchboard::Unsequenced::seal` does. The copy kept in history is marked
/// `undelivered` when no node received it. Returns the seq.
pub(crate) const SEQUENCE: &str = concat!(
    history!(),
    r#"
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
local now = now_ms()
local count, bytes = held(KEYS[1], KEYS[2], KEYS[3])
redis.call('RPUSH', KEYS[2], header .. position .. '\n' .. frame)
redis.call('RPUSH', KEYS[3], now .. ' ' .. #frame)
trim(KEYS[1], KEYS[2], KEYS[3], count + 1, bytes + #frame,
  tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), now)
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('PEXPIRE', KEYS[2], ARGV[7])
redis.call('PEXPIRE', KEYS[3], ARGV[7])
return seq
"#
);

/// Where a stream stands, and what a reader missed, at once: the stream's epoch (created now
/// if the stream is new, so every node answers with the same), its last seq, and, for a reader
/// at a position, the newest entries after it (in another epoch: the newest of all) that fit
/// the reader's history bounds, oldest first. Entries older than the reader's `max_age` are
/// dropped first. KEYS[1] the stream's hash, KEYS[2] its history list, KEYS[3] the history's
/// index; ARGV: the epoch of a new stream (the time in milliseconds), the history's `max_age`
/// in milliseconds (also the lifetime of a new stream's hash), the reader's epoch (empty: no
/// reader, nothing read; `*`: a reader of everything kept) and seq, its `max_messages` and
/// `max_bytes`. Returns `{epoch, seq, entries}`.
pub(crate) const FOLLOW: &str = concat!(
    history!(),
    r#"
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
local count, bytes = held(KEYS[1], KEYS[2], KEYS[3])
count = trim(KEYS[1], KEYS[2], KEYS[3], count, bytes, math.huge, math.huge,
  tonumber(ARGV[2]), now_ms())
local wanted = 0
if ARGV[3] ~= '' then
  if epoch ~= ARGV[3] or ARGV[3] == '*' then
    wanted = count
  else
    wanted = math.min(count, math.max(0, seq - tonumber(ARGV[4])))
  end
end
local max_messages, max_bytes = tonumber(ARGV[5]), tonumber(ARGV[6])
local taken, total = 0, 0
if wanted > 0 then
  local index = redis.call('LRANGE', KEYS[3], -wanted, -1)
  for i = #index, 1, -1 do
    local size = tonumber(string.match(index[i], ' (%d+)$'))
    if taken >= max_messages or total + size > max_bytes then
      break
    end
    taken = taken + 1
    total = total + size
  end
end
local entries = {}
if taken > 0 then
  entries = redis.call('LRANGE', KEYS[2], -taken, -1)
end
return {tonumber(epoch), seq, entries}
"#
);

/// The scripts, loaded once (`EVALSHA`, falling back to `EVAL` after a Redis restart).
pub(crate) struct Scripts {
    pub open: Script,
    pub close: Script,
    pub count: Script,
    pub per_node: Script,
    pub live_nodes: Script,
    pub sequence: Script,
    pub follow: Script,
    /// `members::CHANGE`.
    pub member: Script,
    /// `members::SWEEP`.
    pub sweep_members: Script,
}

impl Scripts {
    pub fn new() -> Self {
        Self {
            open: Script::new(OPEN),
            close: Script::new(CLOSE),
            count: Script::new(COUNT),
            per_node: Script::new(PER_NODE),
            live_nodes: Script::new(LIVE_NODES),
            sequence: Script::new(SEQUENCE),
            follow: Script::new(FOLLOW),
            member: Script::new(crate::members::CHANGE),
            sweep_members: Script::new(crate::members::SWEEP),
        }
    }
}
