#!/usr/bin/env bash
# The end-to-end benchmarks of BENCHMARKS.md: Switchboard and the baseline hub, side by side,
# on this machine, with the load tool on the same machine.
#
#   tools/load/bench.sh [runs]        (default: 3 runs of each scenario; prints every report)
#
# Builds the server, the baseline and the load tool in release mode, then for each server:
# idle connections on a freshly started process (RSS per connection, connect rate), then
# alternating burst runs, then one run at a fixed rate. Ports 8080 (Switchboard) and 8090
# (baseline) on 127.0.0.1 must be free.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
clients=5000

cargo build --release -p switchboard-server -p switchboard-load -p switchboard-baseline
bin=$(cargo metadata --format-version 1 --no-deps \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release
load="$bin/switchboard-load"

echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "cores: $(nproc)"
free -m | sed -n 2p | awk '{print "memory: " $2 " MiB"}'
echo "open files: $(ulimit -n)"

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

logs=$(mktemp -d)
declare -A port=([switchboard]=8080 [baseline]=8090)
declare -A pid

start() { # name
  case $1 in
    switchboard) "$bin/switchboard" serve --listen "127.0.0.1:${port[$1]}" \
      --max-connections 100000 >"$logs/$1.log" 2>&1 & ;;
    baseline) "$bin/switchboard-baseline" --listen "127.0.0.1:${port[$1]}" \
      >"$logs/$1.log" 2>&1 & ;;
  esac
  pid[$1]=$!
  pids+=($!)
  sleep 1
}

stop() { # pid
  kill "$1"
  wait "$1" 2>/dev/null || true
}

for name in switchboard baseline; do
  start $name
  echo; echo "### $name: idle, fresh process"
  "$load" idle --server "http://127.0.0.1:${port[$name]}" --clients $clients --processes 2 \
    --settle 5 --server-pid "${pid[$name]}" --user-prefix idle || true
done

for run in $(seq "$runs"); do
  for name in switchboard baseline; do
    echo; echo "### $name: burst, run $run"
    "$load" burst --server "http://127.0.0.1:${port[$name]}" --clients $clients --messages 100 \
      --processes 2 --server-pid "${pid[$name]}" --user-prefix "burst$run" || true
  done
done

for name in switchboard baseline; do
  echo; echo "### $name: rate"
  "$load" rate --server "http://127.0.0.1:${port[$name]}" --clients $clients --messages 400 \
    --rate 20 --processes 2 --server-pid "${pid[$name]}" --user-prefix rate || true
done

for name in switchboard baseline; do
  stop "${pid[$name]}"
done
pids=()
rm -rf "$logs"
