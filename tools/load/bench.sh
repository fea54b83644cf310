#!/usr/bin/env bash
# The end-to-end benchmarks of BENCHMARKS.md: Switchboard and its peers side by side, on this
# machine, with the load tool on the same machine.
#
#   tools/load/bench.sh [runs]          (default: 3 runs of each scenario; prints every report,
#                                        then a table of medians)
#   tools/load/bench.sh cluster [runs]  (cross-node fan-out, below)
#
# The servers (BENCH_SERVERS, default "switchboard baseline raw socketio"; any subset):
#   switchboard  the server, port 8080;
#   baseline     the hand-written hub (tools/baseline), port 8090;
#   raw          the raw reference peer (tools/raw: each publish framed once, one vectored
#                write per writer wake-up), port 8100;
#   raw-hub      the same peer with --publishing hub-task (each publish handed to one hub task
#                and answered from it, as a hub that owns its state in a task must), port 8120;
#                not in the default list;
#   socketio     the socketioxide peer (tools/socketio: a Socket.IO room broadcast), port 8110,
#                driven by the load tool's Socket.IO clients (--protocol socketio).
# Every one is published to through its POST /api/publish by the same load tool. Builds them
# and the load tool in release mode, then for each server: idle connections on a freshly
# started process (RSS per connection, connect rate and CPU), then alternating burst runs,
# then one run at a fixed rate; then prints each server's medians (deliveries/s, server CPU
# per delivery, p50, p99, lost, RSS per idle connection, connect rate, server CPU per
# connection) and the ratios Switchboard / socketio and Switchboard / raw. The ports above on
# 127.0.0.1 must be free.
# Needs jq.
#
# `cluster`: starts one single Switchboard node without Redis and, for each setup of
# BENCH_CLUSTER_SETUPS (default "cluster shared"), a redis-server of its own (from PATH, on a
# free port, without persistence) and two Switchboard nodes joined over it (every node on a
# port the system picks), each setup with its streams' numbering set explicitly:
#   cluster  SWITCHBOARD_REDIS_SHARED_STREAMS=false: each node numbers the streams it serves,
#            delivers a publish on its own connections at once and sends it through Redis to
#            the other node;
#   shared   SWITCHBOARD_REDIS_SHARED_STREAMS=true (the default with Redis): Redis numbers user
#            and room streams, and every node, the publishing one included, delivers a stream
#            entry when it comes back on its Redis subscription.
# In both, a node admits each connection in Redis before upgrading it; with shared streams it
# also subscribes to the user's channel before the connection opens.
# It then alternates burst runs against the single node and each cluster (clients split over
# both nodes, every message published through the first), then one rate run of each, and
# prints the medians, the ratios cluster/single of deliveries/s and p99, and each node's
# medians. Each run holds its clients idle for BENCH_SETTLE seconds (default 3) after they
# joined and before the first publish, in every setup: a node's Redis bridge handles
# connection opens and closes and publishes one at a time, so publishes made right after
# thousands of joins wait behind the joins' bookkeeping (BENCH_SETTLE=0 shows that). Needs jq.
#
# BENCH_WORKERS=N runs every server of the first scenario on N runtime worker threads
# (Switchboard with `--workers N`, hence its default hubs, one per two threads; the peers with
# TOKIO_WORKER_THREADS=N); default 0: each server's default, one per core.
#
# Sizes (defaults are those of BENCHMARKS.md): BENCH_CLIENTS=5000, BENCH_BURST_MESSAGES=100,
# BENCH_RATE_MESSAGES=400, BENCH_RATE=20 (messages per second), BENCH_PAYLOAD=0 (bytes of padding
# in each published message, for the burst and the paced run). BENCH_LOGS=DIR keeps the
# servers' logs (and, in `cluster`, every node's final /metrics) in DIR instead of deleting them.
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
payload=${BENCH_PAYLOAD:-0}
settle=${BENCH_SETTLE:-3}
workers=${BENCH_WORKERS:-0}
read -ra cluster_setups <<<"${BENCH_CLUSTER_SETUPS:-cluster shared}"

if [ $scenario = cluster ]; then
  for tool in redis-server jq; do
    command -v $tool >/dev/null || { echo "the cluster scenario needs $tool on PATH" >&2; exit 1; }
  done
  [ ${#cluster_setups[@]} -gt 0 ] || { echo "BENCH_CLUSTER_SETUPS is empty" >&2; exit 1; }
  for setup in "${cluster_setups[@]}"; do
    case $setup in
      cluster | shared) ;;
      *) echo "unknown cluster setup '$setup' (cluster or shared)" >&2; exit 1 ;;
    esac
  done
  cargo build --release -p switchboard-server -p switchboard-load
else
  command -v jq >/dev/null || { echo "the benchmarks need jq on PATH" >&2; exit 1; }
  read -ra servers <<<"${BENCH_SERVERS:-switchboard baseline raw socketio}"
  [ ${#servers[@]} -gt 0 ] || { echo "BENCH_SERVERS is empty" >&2; exit 1; }
  cargo build --release -p switchboard-server -p switchboard-load -p switchboard-baseline \
    -p switchboard-raw-peer -p switchboard-socketio-peer
fi
bin=$(cargo metadata --format-version 1 --no-deps \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release
load="$bin/switchboard-load"

echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "cores: $(nproc)"
free -m | sed -n 2p | awk '{print "memory: " $2 " MiB"}'
echo "open files: $(ulimit -n)"

pids=()
if [ -n "${BENCH_LOGS:-}" ]; then
  logs=$BENCH_LOGS
  mkdir -p "$logs"
  scratch=""
else
  logs=$(mktemp -d)
  scratch=$logs
fi
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; [ -z "$scratch" ] || rm -rf "$scratch"' EXIT
trap 'exit 130' INT TERM

# Figures kept per run, as space-separated lists in associative arrays, and what is made of them.
median() { # values...
  printf '%s\n' "$@" | sort -g \
    | awk '{v[NR] = $1}
        END {printf "%.3f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}' \
    | sed -e 's/0*$//' -e 's/\.$//'
}
ratio() { # a b: a / b, "-" without both
  awk -v a="$1" -v b="$2" 'BEGIN {if (a != "-" && b > 0) printf "%.2f", a / b; else print "-"}'
}
total() { printf '%s\n' "$@" | awk '{s += $1} END {print s + 0}'; }
figures() { # array key: the median (or the total, with `total`) of the kept figures
  local -n kept=$1
  local values
  read -ra values <<<"${kept[$2]:-}"
  [ ${#values[@]} -gt 0 ] || { echo "-"; return; }
  ${3:-median} "${values[@]}"
}
cell() { # decimals value [width]: a right-aligned column, "-" when there is no figure
  if [ "$2" = - ]; then printf ' %*s' "${3:-14}" -; else printf ' %*.*f' "${3:-14}" "$1" "$2"; fi
}
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

  declare -A url node_pid redis_pid redis_url
  start_redis() { # setup: a redis-server of the setup's own, on a free port; sets redis_url
    local port
    port=$(free_port 6390)
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
      >"$logs/redis-$1.log" 2>&1 &
    redis_pid[$1]=$!
    pids+=($!)
    for _ in $(seq 100); do
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
      alive_or_die "${redis_pid[$1]}" "redis-$1"
      sleep 0.1
    done
    redis_url[$1]="redis://127.0.0.1:$port/"
  }
  start_node() { # name [redis url shared-streams]: a node on a port the system picks
    env -u SWITCHBOARD_REDIS_URL -u SWITCHBOARD_LISTEN -u SWITCHBOARD_REDIS_SHARED_STREAMS \
      ${3:+SWITCHBOARD_REDIS_SHARED_STREAMS=$3} NO_COLOR=1 "$bin/switchboard" serve \
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
  echo "redis: $(redis-server --version | cut -d' ' -f3)"
  start_node single
  echo "single node: ${url[single]}"
  for setup in "${cluster_setups[@]}"; do
    start_redis "$setup"
    shared=false
    [ "$setup" = shared ] && shared=true
    start_node "${setup}0" "${redis_url[$setup]}" $shared
    start_node "${setup}1" "${redis_url[$setup]}" $shared
    echo "$setup: ${url[${setup}0]} (publishes) and ${url[${setup}1]}," \
      "redis ${redis_url[$setup]}, shared streams $shared"
  done

  declare -A dps p99 lost unjoined node_p50 node_p99 node_lost redis_cs
  measure() { # setup scenario run extra-args...: one report, printed; its figures kept
    local setup=$1 what=$2 run=$3
    shift 3
    local args=(--server "${url[single]}" --server-pid "${node_pid[single]}")
    if [ "$setup" != single ]; then
      args=(--server "${url[${setup}0]}" --server "${url[${setup}1]}"
        --server-pid "${node_pid[${setup}0]}" --server-pid "${node_pid[${setup}1]}")
    fi
    echo; echo "### $setup: $what, run $run"
    local redis_before=0
    [ "$setup" = single ] || redis_before=$(cpu_ticks "${redis_pid[$setup]}")
    "$load" "$what" "${args[@]}" --clients "$clients" --processes 2 \
      --user-prefix "$setup-$what$run" --settle "$settle" --json "$@" | tee "$logs/report" || true
    local redis_cpu=""
    if [ "$setup" != single ]; then
      redis_cpu=$(( $(cpu_ticks "${redis_pid[$setup]}") - redis_before ))
      echo "redis cpu       $redis_cpu cs (1/100 s, whole run)"
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
    if [ "$setup" != single ]; then
      redis_cs[$setup-$what]+=" $redis_cpu"
      local i
      for i in 0 1; do
        node_p50[$setup-$what-$i]+=" $(jq -r ".servers[$i].latency_ms.p50" <<<"$line")"
        node_p99[$setup-$what-$i]+=" $(jq -r ".servers[$i].latency_ms.p99" <<<"$line")"
        node_lost[$setup-$what-$i]+=" $(jq -r ".servers[$i].lost" <<<"$line")"
      done
    fi
  }

  setups=(single "${cluster_setups[@]}")
  for run in $(seq "$runs"); do
    for setup in "${setups[@]}"; do
      measure "$setup" burst "$run" --messages "$burst_messages" --payload "$payload"
    done
  done
  for setup in "${setups[@]}"; do
    measure "$setup" rate 1 --messages "$rate_messages" --rate "$rate" --payload "$payload"
  done

  echo
  echo "### 2 nodes (clients split, publishes through node 0) / single node:" \
    "$clients clients, medians of $runs burst run(s) x $burst_messages messages," \
    "1 rate run x $rate_messages messages at $rate/s, settled ${settle} s"
  row() { # label decimals name what: every setup's median, with its ratio to single's
    local label=$1 decimals=$2 name=$3 what=$4 base value setup
    base=$(figures "$name" "single-$what")
    printf '%-22s' "$label"
    cell "$decimals" "$base"
    for setup in "${cluster_setups[@]}"; do
      value=$(figures "$name" "$setup-$what")
      cell "$decimals" "$value"
      printf ' %8s' "$(ratio "$value" "$base")"
    done
    echo
  }
  count_row() { # label name what: every setup's total over all runs
    local setup
    printf '%-22s %14s' "$1" "$(figures "$2" "single-$3" total)"
    for setup in "${cluster_setups[@]}"; do
      printf ' %14s %8s' "$(figures "$2" "$setup-$3" total)" ""
    done | sed 's/ *$//'
    echo
  }
  printf '%-22s %14s' "" single
  for setup in "${cluster_setups[@]}"; do printf ' %14s %8s' "$setup" ratio; done
  echo
  for what in burst rate; do
    row "$what deliveries/s" 0 dps $what
    row "$what p99 ms" 2 p99 $what
    count_row "$what lost (all runs)" lost $what
    count_row "$what not joined" unjoined $what
  done
  echo
  echo "per node (medians of p50 and p99; lost: all runs) and Redis (median CPU per run):"
  for setup in "${cluster_setups[@]}"; do
    for what in burst rate; do
      for i in 0 1; do
        role=""
        [ $i = 0 ] && role="(publishes)"
        printf '%-8s %-6s node %s %-11s p50 %7s ms  p99 %7s ms  lost %s\n' "$setup" "$what" \
          $i "$role" "$(figures node_p50 "$setup-$what-$i")" \
          "$(figures node_p99 "$setup-$what-$i")" "$(figures node_lost "$setup-$what-$i" total)"
      done
      printf '%-8s %-6s redis cpu %s cs\n' "$setup" "$what" "$(figures redis_cs "$setup-$what")"
    done
  done
  echo
  echo "cluster counters at the end (/metrics, switchboard_cluster_*, non-zero):"
  for setup in "${cluster_setups[@]}"; do
    for i in 0 1; do
      curl -fsS "${url[$setup$i]}/metrics" >"$logs/$setup$i.metrics" || continue
      echo "$setup node $i: $(sed -n 's/^switchboard_cluster_\([a-z_]*\) \([0-9.e+]*\)$/\1=\2/p' \
        "$logs/$setup$i.metrics" | grep -v '=0$' | paste -sd ' ')"
    done
  done
  exit 0
fi

declare -A port=([switchboard]=8080 [baseline]=8090 [raw]=8100 [raw-hub]=8120 [socketio]=8110)
declare -A protocol=([switchboard]=switchboard [baseline]=switchboard [raw]=switchboard
  [raw-hub]=switchboard [socketio]=socketio)
declare -A pid
for name in "${servers[@]}"; do
  [ -n "${port[$name]:-}" ] || { echo "unknown server '$name' in BENCH_SERVERS" >&2; exit 1; }
done

# The peers' tokio runtimes read their worker count from the environment.
peer_env=()
[ "$workers" = 0 ] || peer_env=("TOKIO_WORKER_THREADS=$workers")
start() { # name
  case $1 in
    switchboard) "$bin/switchboard" serve --listen "127.0.0.1:${port[$1]}" \
      --max-connections 100000 --workers "$workers" >"$logs/$1.log" 2>&1 & ;;
    baseline) env "${peer_env[@]}" "$bin/switchboard-baseline" --listen "127.0.0.1:${port[$1]}" \
      >"$logs/$1.log" 2>&1 & ;;
    raw) env "${peer_env[@]}" "$bin/switchboard-raw-peer" --listen "127.0.0.1:${port[$1]}" \
      >"$logs/$1.log" 2>&1 & ;;
    raw-hub) env "${peer_env[@]}" "$bin/switchboard-raw-peer" --listen "127.0.0.1:${port[$1]}" \
      --publishing hub-task >"$logs/$1.log" 2>&1 & ;;
    socketio) env "${peer_env[@]}" "$bin/switchboard-socketio-peer" \
      --listen "127.0.0.1:${port[$1]}" >"$logs/$1.log" 2>&1 & ;;
  esac
  pid[$1]=$!
  pids+=($!)
  sleep 1
  kill -0 "${pid[$1]}" 2>/dev/null || { echo "$1 exited at start:" >&2; cat "$logs/$1.log" >&2; exit 1; }
}

stop() { # pid
  kill "$1"
  wait "$1" 2>/dev/null || true
}

declare -A rss connect_rate connect_cpu_us dps cpu_us p50 p99 lost unjoined
run_load() { # name scenario extra-args...: one report, printed; its figures kept
  local name=$1 what=$2
  shift 2
  "$load" "$what" --server "http://127.0.0.1:${port[$name]}" --protocol "${protocol[$name]}" \
    --clients "$clients" --processes 2 --server-pid "${pid[$name]}" --json "$@" \
    | tee "$logs/report" || true
  local line
  line=$(tail -n 1 "$logs/report")
  if ! jq -e .joined <<<"$line" >/dev/null 2>&1; then
    echo "(no report: left out of the medians)"
    return
  fi
  unjoined[$name-$what]+=" $(jq -r '.clients - .joined' <<<"$line")"
  if jq -e '.connect_server_cpu_secs != null and .joined > 0' <<<"$line" >/dev/null; then
    connect_cpu_us[$name]+=" $(jq -r '.connect_server_cpu_secs * 1e6 / .joined' <<<"$line")"
  fi
  if [ "$what" = idle ]; then
    rss[$name]+=" $(jq -r '((.server_rss_kib.after - .server_rss_kib.before) * 1024
      / ([.joined, 1] | max))' <<<"$line")"
    connect_rate[$name]+=" $(jq -r .connections_per_sec <<<"$line")"
    return
  fi
  connect_rate[$name]+=" $(jq -r .connections_per_sec <<<"$line")"
  dps[$name-$what]+=" $(jq -r .deliveries_per_sec <<<"$line")"
  p50[$name-$what]+=" $(jq -r .latency_ms.p50 <<<"$line")"
  p99[$name-$what]+=" $(jq -r .latency_ms.p99 <<<"$line")"
  lost[$name-$what]+=" $(jq -r .lost <<<"$line")"
  if jq -e '.server_cpu_secs != null and .received > 0' <<<"$line" >/dev/null; then
    cpu_us[$name-$what]+=" $(jq -r '.server_cpu_secs * 1e6 / .received' <<<"$line")"
  fi
}

for name in "${servers[@]}"; do
  start "$name"
  echo; echo "### $name: idle, fresh process"
  run_load "$name" idle --settle 5 --user-prefix idle
done

for run in $(seq "$runs"); do
  for name in "${servers[@]}"; do
    echo; echo "### $name: burst, run $run"
    run_load "$name" burst --messages "$burst_messages" --payload "$payload" --user-prefix "burst$run"
  done
done

for name in "${servers[@]}"; do
  echo; echo "### $name: rate"
  run_load "$name" rate --messages "$rate_messages" --rate "$rate" --payload "$payload" --user-prefix rate
done

for name in "${servers[@]}"; do
  stop "${pid[$name]}"
done
pids=()

echo
echo "### $clients clients in one room: medians of $runs burst run(s) x $burst_messages" \
  "messages and of 1 rate run x $rate_messages messages at $rate/s; connect rate and connect" \
  "CPU (the server's, handshake and join, per connection): median of every run; server CPU per delivery: the server's user + system CPU from the first publish" \
  "to the last delivery / deliveries; worker threads per server: $( [ "$workers" = 0 ] && echo "each one's default (one per core)" || echo "$workers")"
# The ratios Switchboard / peer, where both were measured.
peers=()
for name in socketio raw; do
  [[ " ${servers[*]} " == *" $name "* && " ${servers[*]} " == *" switchboard "* ]] \
    && peers+=("$name")
done
printf '%-26s' ""
for name in "${servers[@]}"; do printf ' %11s' "$name"; done
for peer in "${peers[@]}"; do printf ' %11s' "sb/$peer"; done
echo
row() { # label decimals array key-suffix [total]: each server's figure, ratios to the peers
  local label=$1 decimals=$2 array=$3 suffix=$4 how=${5:-median} name
  declare -A value
  printf '%-26s' "$label"
  for name in "${servers[@]}"; do
    value[$name]=$(figures "$array" "$name$suffix" "$how")
    cell "$decimals" "${value[$name]}" 11
  done
  if [ "$how" = median ]; then
    for peer in "${peers[@]}"; do
      printf ' %11s' "$(ratio "${value[switchboard]}" "${value[$peer]}")"
    done
  fi
  echo
}
for what in burst rate; do
  row "$what deliveries/s" 0 dps "-$what"
  row "$what server CPU µs/delivery" 3 cpu_us "-$what"
  row "$what p50 ms" 2 p50 "-$what"
  row "$what p99 ms" 2 p99 "-$what"
  row "$what lost (all runs)" 0 lost "-$what" total
  row "$what not joined" 0 unjoined "-$what" total
done
row "idle RSS bytes/connection" 0 rss ""
row "connect rate /s" 0 connect_rate ""
row "connect CPU µs/connection" 1 connect_cpu_us ""
