#!/usr/bin/env bash
# A longer fuzzing campaign whose finds are kept: each target runs for SECONDS (default 600)
# from its checked-in corpus, optimised with debug assertions on, and the inputs that reached
# new coverage are merged into fuzz/corpus/<target>/ (libFuzzer's -merge=1: an input is added
# only if it covers something the corpus does not; the seeds already there stay as they are).
# CI replays the grown corpus on every run. Commit the corpus after a campaign.
#
#   fuzz/campaign.sh [SECONDS] [TARGET...]     (needs cargo-fuzz and a nightly toolchain)
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(frames operations runs resume)
fi
for target in "${targets[@]}"; do
  scratch=$(mktemp -d)
  log=$(mktemp)
  before=$(ls "corpus/$target" | wc -l)
  cargo +nightly fuzz run -O -a "$target" "$scratch" "corpus/$target" \
    -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || {
    tail -n 60 "$log" >&2
    echo "$target crashed: the input is under fuzz/artifacts/$target/" >&2
    exit 1
  }
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  cargo +nightly fuzz run -O -a "$target" "corpus/$target" "$scratch" -- -merge=1 \
    >"$log" 2>&1
  after=$(ls "corpus/$target" | wc -l)
  echo "$target: $executions executions in $seconds s; corpus $before -> $after inputs"
  rm -rf "$scratch" "$log"
done
