#!/usr/bin/env bash
# The end-to-end benchmarks of BENCHMARKS.md: Switchboard and the baseline hub, side by side,
# on this machine, with the load tool on the same machine.
#
#   tools/load/bench.sh [runs]          (default: 3 runs of each scenario; prints every report)
#   tools/load/bench.sh cluster [runs]  (cross-node fan-out, below)
#
# Builds the server, the baseline and the load tool in release mode, then for each server:
# idle connections on a freshly started process (RSS per connection, connect rate), then
# alternating burst runs, then one run at a fixed rate. Ports 8080 (Switchboard) and 8090
# (baseline) on 127.0.0.1 must be free.
#
# `cluster`: starts redis-server (from PATH, on a free port, without persistence), two
# Switchboard nodes joined over it and one single node without Redis (each on a port the
# system picks), then alternates burst runs against the cluster (clients split over both
# nodes, every message published through the first) and against the single node, then one
# rate run of each, and prints the medians and the ratios cluster/single of deliveries/s and
# p99. Each run holds its clients idle for BENCH_SETTLE seconds (default 3) after they joined
# and before the first publish, in both setups: a node's Redis bridge handles connection
# opens and closes and publishes one at a time, so publishes made right after thousands of
# joins wait behind the joins' bookkeeping (BENCH_SETTLE=0 shows that). Needs jq.
#
# Sizes (defaults are those of BENCHMARKS.md): BENCH_CLIENTS=5000, BENCH_BURST_MESSAGES=100,
# BENCH_RATE_MESSAGES=400, BENCH_RATE=20 (messages per second).
set -euo pipefail
cd "$(dirname "$0")/../.."
scenario=servers
if [ "${1:-}" = cluster ]; then
  scenario=cluster
  shift
fi
runs=${1:-3}
clients=${BENCH_CLIENTS:-5000}
burst_messages=${BENCH_BURST_MESSAGES:-100}
rate_messages=${BENCH_RATE_MESSAGES:-400}
rate=${BENCH_RATE:-20}
settle=${BENCH_SETTLE:-3}

if [ $scenario = cluster ]; then
  for tool in redis-server jq; do
    command -v $tool >/dev/null || { echo "the cluster scenario needs $tool on PATH" >&2; exit 1; }
  done
  cargo build --release -p switchboard-server -p switchboard-load
else
  cargo build --release -p switchboard-server -p switchboard-load -p switchboard-baseline
fi
bin=$(cargo metadata --format-version 1 --no-deps \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release
load="$bin/switchboard-load"

echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "cores: $(nproc)"
free -m | sed -n 2p | awk '{print "memory: " $2 " MiB"}'
echo "open files: $(ulimit -n)"

pids=()
logs=$(mktemp -d)
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$logs"' EXIT
trap 'exit 130' INT TERM
if [ $scenario = cluster ]; then
  free_port() { # first port from $1 up that nothing listens on
    local p=$1
    while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
    echo "$p"
  }
  alive_or_die() { # pid name
    if ! kill -0 "$1" 2>/dev/null; then
      echo "$2 exited at start:" >&2
      cat "$logs/$2.log" >&2
      exit 1
    fi
  }
  cpu_ticks() { # pid: user + system time, in 1/100 s
    awk '{print $14 + $15}' "/proc/$1/stat"
  }
  median() { # values...
    printf '%s\n' "$@" | sort -g \
      | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
  }

  redis_port=$(free_port 6390)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    >"$logs/redis.log" 2>&1 &
  redis_pid=$!
  pids+=($!)
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break
    alive_or_die $redis_pid redis
    sleep 0.1
  done
  redis_url="redis://127.0.0.1:$redis_port/"
  echo "redis: $(redis-server --version | cut -d' ' -f3) on port $redis_port"

  declare -A url node_pid
  start_node() { # name [redis url]: a node on a port the system picks; sets url[name]
    env -u SWITCHBOARD_REDIS_URL -u SWITCHBOARD_LISTEN NO_COLOR=1 "$bin/switchboard" serve \
      --listen 127.0.0.1:0 --max-connections 100000 ${2:+--redis-url "$2"} \
      >"$logs/$1.log" 2>&1 &
    node_pid[$1]=$!
    pids+=($!)
    local addr=""
    for _ in $(seq 200); do
      addr=$(sed -n 's|^switchboard listening on http://\([0-9.:]*\)$|\1|p' "$logs/$1.log")
      [ -n "$addr" ] && break
      alive_or_die "${node_pid[$1]}" "$1"
      sleep 0.1
    done
    [ -n "$addr" ] || { echo "$1 did not start listening:" >&2; cat "$logs/$1.log" >&2; exit 1; }
    url[$1]="http://$addr"
  }
  start_node single
  start_node node0 "$redis_url"
  start_node node1 "$redis_url"
  echo "single node: ${url[single]}; cluster: ${url[node0]} (publishes) and ${url[node1]}"

  declare -A dps p99 lost unjoined
  measure() { # setup scenario run extra-args...: one report, printed; its figures kept
    local setup=$1 what=$2 run=$3
    shift 3
    local args=(--server "${url[single]}" --server-pid "${node_pid[single]}")
    if [ "$setup" = cluster ]; then
      args=(--server "${url[node0]}" --server "${url[node1]}"
        --server-pid "${node_pid[node0]}" --server-pid "${node_pid[node1]}")
    fi
    echo; echo "### $setup: $what, run $run"
    local redis_before
    redis_before=$(cpu_ticks $redis_pid)
    "$load" "$what" "${args[@]}" --clients "$clients" --processes 2 \
      --user-prefix "$setup-$what$run" --settle "$settle" --json "$@" | tee "$logs/report" || true
    if [ "$setup" = cluster ]; then
      echo "redis cpu       $(( $(cpu_ticks $redis_pid) - redis_before )) cs (1/100 s, whole run)"
    fi
    local line
    line=$(tail -n 1 "$logs/report")
    if ! jq -e .deliveries_per_sec <<<"$line" >/dev/null 2>&1; then
      echo "(no report: left out of the medians)"
      return
    fi
    dps[$setup-$what]+=" $(jq -r .deliveries_per_sec <<<"$line")"
    p99[$setup-$what]+=" $(jq -r .latency_ms.p99 <<<"$line")"
    lost[$setup-$what]+=" $(jq -r .lost <<<"$line")"
    unjoined[$setup-$what]+=" $(jq -r '.clients - .joined' <<<"$line")"
  }

  for run in $(seq "$runs"); do
    for setup in single cluster; do
      measure $setup burst "$run" --messages "$burst_messages"
    done
  done
  for setup in single cluster; do
    measure $setup rate 1 --messages "$rate_messages" --rate "$rate"
  done

  echo
  echo "### cluster (2 nodes, clients split, publishes through one) / single node:" \
    "$clients clients, medians of $runs burst run(s) x $burst_messages messages," \
    "1 rate run x $rate_messages messages at $rate/s, settled ${settle} s"
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}'; }
  total() { printf '%s\n' "$@" | awk '{s += $1} END {print s + 0}'; }
  printf '%-22s %14s %14s %8s\n' "" single cluster ratio
  for what in burst rate; do
    # The figures of each setup are space-separated words.
    read -ra s_dps <<<"${dps[single-$what]}"; read -ra c_dps <<<"${dps[cluster-$what]}"
    read -ra s_p99 <<<"${p99[single-$what]}"; read -ra c_p99 <<<"${p99[cluster-$what]}"
    read -ra s_lost <<<"${lost[single-$what]}"; read -ra c_lost <<<"${lost[cluster-$what]}"
    read -ra s_out <<<"${unjoined[single-$what]}"; read -ra c_out <<<"${unjoined[cluster-$what]}"
    single_dps=$(median "${s_dps[@]}"); cluster_dps=$(median "${c_dps[@]}")
    single_p99=$(median "${s_p99[@]}"); cluster_p99=$(median "${c_p99[@]}")
    printf '%-22s %14.0f %14.0f %8s\n' "$what deliveries/s" "$single_dps" "$cluster_dps" \
      "$(ratio "$cluster_dps" "$single_dps")"
    printf '%-22s %14.2f %14.2f %8s\n' "$what p99 ms" "$single_p99" "$cluster_p99" \
      "$(ratio "$cluster_p99" "$single_p99")"
    printf '%-22s %14s %14s\n' "$what lost (all runs)" "$(total "${s_lost[@]}")" \
      "$(total "${c_lost[@]}")"
    printf '%-22s %14s %14s\n' "$what not joined" "$(total "${s_out[@]}")" "$(total "${c_out[@]}")"
  done
  exit 0
fi

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
  "$load" idle --server "http://127.0.0.1:${port[$name]}" --clients "$clients" --processes 2 \
    --settle 5 --server-pid "${pid[$name]}" --user-prefix idle || true
done

for run in $(seq "$runs"); do
  for name in switchboard baseline; do
    echo; echo "### $name: burst, run $run"
    "$load" burst --server "http://127.0.0.1:${port[$name]}" --clients "$clients" \
      --messages "$burst_messages" \
      --processes 2 --server-pid "${pid[$name]}" --user-prefix "burst$run" || true
  done
done

for name in switchboard baseline; do
  echo; echo "### $name: rate"
  "$load" rate --server "http://127.0.0.1:${port[$name]}" --clients "$clients" \
    --messages "$rate_messages" --rate "$rate" --processes 2 --server-pid "${pid[$name]}" --user-prefix rate || true
done

for name in switchboard baseline; do
  stop "${pid[$name]}"
done
pids=()
rm -rf "$logs"
