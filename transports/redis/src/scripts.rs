//! The Lua scripts that keep presence and the cluster-wide limit atomic.
//!
//! Presence hashes map node → count. A node's entries count only while its lease key exists;
//! every script that reads a hash drops the fields of nodes whose lease has expired, so a
//! crashed node's counts disappear with its lease. The scripts touch keys derived from their
//! arguments (the lease keys), which a single Redis (or a primary with replicas) allows.

use redis::Script;

/// Add one connection of a user on a node, unless the user already has `limit` connections on
/// live nodes (`limit` 0: no limit). KEYS[1] the user's presence hash; ARGV: node, limit,
/// lease key prefix, hash TTL in milliseconds. Returns the node's new count, or -1 if refused.
pub(crate) const OPEN: &str = r#"
local total = 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if redis.call('EXISTS', ARGV[3] .. fields[i]) == 1 then
    total = total + tonumber(fields[i + 1])
  else
    redis.call('HDEL', KEYS[1], fields[i])
  end
end
local limit = tonumber(ARGV[2])
if limit > 0 and total >= limit then
  return -1
end
local count = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return count
"#;

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
pub(crate) const COUNT: &str = r#"
local total = 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if redis.call('EXISTS', ARGV[1] .. fields[i]) == 1 then
    total = total + tonumber(fields[i + 1])
  else
    redis.call('HDEL', KEYS[1], fields[i])
  end
end
return total
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

/// The scripts, loaded once (`EVALSHA`, falling back to `EVAL` after a Redis restart).
pub(crate) struct Scripts {
    pub open: Script,
    pub close: Script,
    pub count: Script,
    pub live_nodes: Script,
}

impl Scripts {
    pub fn new() -> Self {
        Self {
            open: Script::new(OPEN),
            close: Script::new(CLOSE),
            count: Script::new(COUNT),
            live_nodes: Script::new(LIVE_NODES),
        }
    }
}
