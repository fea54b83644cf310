#!/usr/bin/env bash
# The sizing figures of docs/OPERATIONS.md ("Run it in production"), measured on this machine
# (BENCHMARKS.md, section 7):
#
#   tools/load/sizing.sh [clients]      (default 10000)
#
# With SIZING_BIN=<dir>, the `switchboard` and `switchboard-load` binaries in <dir> are measured
# instead of a fresh release build (to compare two builds in one session).
#
# 1. A single node (release build, development preset with --max-connections raised, two
#    shards), `clients` idle WebSocket clients of the load tool, each its own user in one room:
#    the server's resident memory and open descriptors before and while they are connected,
#    the kernel's TCP memory (/proc/net/sockstat, pages, both ends on this machine), and the
#    time of a /metrics scrape (median of 20) without and with the clients.
# 2. The same node joined to a redis-server of its own (from PATH, free port, no persistence):
#    Redis' used_memory and key count before and while the clients are connected.
#
# Needs curl and redis-server/redis-cli; ports are chosen by the system.
set -euo pipefail
cd "$(dirname "$0")/../.."
clients=${1:-10000}
if [ -n "${SIZING_BIN:-}" ]; then
  bin=$SIZING_BIN
else
  cargo build -q --release -p switchboard-server -p switchboard-load
  bin=target/release
fi
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# The address a server announced in its log.
address() {
  for _ in $(seq 100); do
    if addr=$(grep -oE 'listening on http://[0-9.]+:[0-9]+' "$1" | head -n1); then
      echo "${addr#listening on http://}"
      return
    fi
    sleep 0.1
  done
  cat "$1" >&2
  return 1
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" | wc -l; }
tcp_pages() { awk '/^TCP:/ {for (i = 1; i <= NF; i++) if ($i == "mem") print $(i + 1)}' /proc/net/sockstat; }
scrape_ms() {
  for _ in $(seq 20); do
    curl -s -o /dev/null -w '%{time_total}\n' "http://$1/metrics"
  done | sort -n | awk '{t[NR] = $1} END {printf "%.2f", t[int((NR + 1) / 2)] * 1000}'
}
connections() {
  curl -s "http://$1/metrics" | awk '$1 == "switchboard_connections" {print $2}'
}
# Start the load tool's idle clients in the background and wait until all are connected.
hold_clients() {
  "$bin/switchboard-load" idle --server "http://$1" --clients "$clients" --processes 2 \
    --settle 30 >"$work/load.log" 2>&1 &
  load=$!
  pids+=("$load")
  for _ in $(seq 600); do
    [ "$(connections "$1")" = "$clients" ] && return
    sleep 0.1
  done
  cat "$work/load.log" >&2
  echo "the clients did not all connect" >&2
  return 1
}

echo "== single node, $clients idle clients"
"$bin/switchboard" serve --listen 127.0.0.1:0 --shards 2 --max-connections 100000 \
  >"$work/node.log" 2>&1 &
node=$!
pids+=("$node")
addr=$(address "$work/node.log")
sleep 1
rss0=$(rss_kib "$node"); fds0=$(fds "$node"); tcp0=$(tcp_pages); scrape0=$(scrape_ms "$addr")
hold_clients "$addr"
sleep 2
rss1=$(rss_kib "$node"); fds1=$(fds "$node"); tcp1=$(tcp_pages); scrape1=$(scrape_ms "$addr")
kill "$load" 2>/dev/null || true
wait "$load" 2>/dev/null || true
echo "server RSS: $rss0 KiB -> $rss1 KiB: $(( (rss1 - rss0) * 1024 / clients )) bytes per idle connection"
echo "server descriptors: $fds0 -> $fds1: $(awk -v a="$fds0" -v b="$fds1" -v n="$clients" 'BEGIN {printf "%.3f", (b - a) / n}') per connection"
echo "kernel TCP memory (sockstat, both ends): $tcp0 -> $tcp1 pages"
echo "/metrics scrape, median of 20: $scrape0 ms without clients, $scrape1 ms with $clients"
kill "$node"
wait "$node" 2>/dev/null || true

echo "== a node of a cluster, $clients idle clients: Redis memory"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --save '' --appendonly no >"$work/redis.log" 2>&1 &
pids+=("$!")
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
SWITCHBOARD_REDIS_URL="redis://127.0.0.1:$port/" "$bin/switchboard" serve --listen 127.0.0.1:0 \
  --shards 2 --max-connections 100000 >"$work/cluster.log" 2>&1 &
node=$!
pids+=("$node")
addr=$(address "$work/cluster.log")
sleep 1
used() { redis-cli -p "$port" info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r'; }
mem0=$(used); keys0=$(redis-cli -p "$port" dbsize)
hold_clients "$addr"
sleep 6 # a heartbeat (5 s) writes every connected user's and joined room's presence
mem1=$(used); keys1=$(redis-cli -p "$port" dbsize)
echo "redis used_memory: $mem0 -> $mem1 bytes: $(( (mem1 - mem0) / clients )) bytes per connected user"
echo "redis keys: $keys0 -> $keys1"
redis-cli -p "$port" --scan | sed -E 's/:[^:]+$/:*/' | sort | uniq -c | sort -rn | head -n 5
kill "$load" 2>/dev/null || true
