#!/usr/bin/env bash
# BENCHMARKS.md §11: what publishing to a room costs the server, by the way the messages come
# in — a client's `publish` frames against the backend's HTTP API, one message per
# `POST /api/publish` or several per `POST /api/publish/batch`, from one publisher or several
# at once — on one release server, in one session, the ways alternating run after run.
#
#   tools/load/publishing.sh [runs]   (default: 3 runs of each way; prints every report line)
#
# Builds the server and the load tool in release mode and starts the server on 127.0.0.1
# (PUBLISH_PORT, default 8080, must be free) with the client rate limit raised
# (`limits.messages_per_second`, `limits.message_burst`), so that a client publisher is not
# refused for sending its share back to back. Every run: PUBLISH_CLIENTS (default 2000)
# clients in one room, PUBLISH_MESSAGES (default 500) messages published as fast as the
# publishers go (`burst`); server CPU (user + system, /proc/<pid>/stat) from the first publish
# to the last delivery. Ways:
#   client      one member of the room sending `publish` frames (--publish-over websocket)
#   client-xK   K members, each its share (K = PUBLISH_PUBLISHERS, default 4)
#   http        one publisher, one message per POST /api/publish, waiting for each answer
#   http-xK     K such publishers at once
#   batch       one publisher, PUBLISH_BATCH (default 100) messages per POST /api/publish/batch
#   batch-xK    K such publishers at once
# Prints, per way, the medians of deliveries/s, server CPU per delivery and p99 latency, and
# the ratios against `client`. Needs jq.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
clients=${PUBLISH_CLIENTS:-2000}
messages=${PUBLISH_MESSAGES:-500}
batch=${PUBLISH_BATCH:-100}
k=${PUBLISH_PUBLISHERS:-4}
port=${PUBLISH_PORT:-8080}
command -v jq >/dev/null || { echo "needs jq on PATH" >&2; exit 1; }

cargo build -q --release -p switchboard-server -p switchboard-load
config=$(mktemp)
log=$(mktemp)
cat >"$config" <<EOF
[limits]
messages_per_second = 1000000
message_burst = 1000000
EOF
target/release/switchboard serve --config "$config" --listen "127.0.0.1:$port" \
  --max-connections 100000 >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$config" "$log"' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.1
done

ways=(client "client-x$k" http "http-x$k" batch "batch-x$k")
declare -A options=(
  [client]="--publish-over websocket"
  ["client-x$k"]="--publish-over websocket --publishers $k"
  [http]=""
  ["http-x$k"]="--publishers $k"
  [batch]="--http-batch $batch"
  ["batch-x$k"]="--http-batch $batch --publishers $k"
)
declare -A dps cpu p99
for run in $(seq "$runs"); do
  for way in "${ways[@]}"; do
    # shellcheck disable=SC2086
    line=$(target/release/switchboard-load burst --server "http://127.0.0.1:$port" \
      --clients "$clients" --messages "$messages" --server-pid "$pid" --json \
      ${options[$way]} | tail -1) || { echo "run $run $way lost messages: $line" >&2; exit 1; }
    echo "run $run $way $line"
    dps[$way]+=" $(jq -r .deliveries_per_sec <<<"$line")"
    cpu[$way]+=" $(jq -r '.server_cpu_secs / .received * 1e6' <<<"$line")"
    p99[$way]+=" $(jq -r .latency_ms.p99 <<<"$line")"
  done
done

median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
echo "$clients clients, $messages messages per run, medians of $runs runs"
printf '%-10s %14s %16s %12s %12s %12s\n' way deliveries/s "cpu µs/delivery" "p99 ms" "cpu/client" "dps/client"
base_cpu=$(median "${cpu[client]}")
base_dps=$(median "${dps[client]}")
for way in "${ways[@]}"; do
  d=$(median "${dps[$way]}")
  c=$(median "${cpu[$way]}")
  printf '%-10s %14.0f %16.3f %12.1f %12.2f %12.2f\n' "$way" "$d" "$c" "$(median "${p99[$way]}")" \
    "$(awk -v a="$c" -v b="$base_cpu" 'BEGIN {print a / b}')" \
    "$(awk -v a="$d" -v b="$base_dps" 'BEGIN {print a / b}')"
done
