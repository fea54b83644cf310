#!/usr/bin/env bash
# A longer fuzzing campaign whose finds are kept: each target runs for SECONDS (default 600)
# from its checked-in corpus, optimised with debug assertions and overflow checks on (`-O -a`);
# then the checked-in corpus and the campaign's new inputs are minimized together into
# fuzz/corpus/<target>/: what `cargo fuzz cmin` does (a libFuzzer merge into an empty
# directory, keeping inputs that together reach every coverage feature of both), with two
# changes: the merge is libFuzzer's greedy set cover (-set_cover_merge=1), which keeps fewer
# inputs for the same features than -merge=1, and the seeds with a name (not a 40-digit hash:
# written by hand, or a regression) are placed first and always kept. CI replays the corpus
# on every run. The structured targets reject inputs that decode to nothing, so libFuzzer never
# adds one; `cargo test -p switchboard-check --test fuzz_corpus` fails naming any seed that
# does (after a case's types changed): delete those and run a campaign again.
#
#   fuzz/campaign.sh [SECONDS] [TARGET...]     (needs cargo-fuzz and a nightly toolchain)
#
# Sanitizer: SANITIZER=address|none (default none). The core and the checking crate forbid
# unsafe code, so AddressSanitizer finds nothing there that safe Rust would not already stop,
# and it makes each execution 5 to 9 times slower (measured per target in docs/VERIFICATION.md,
# "Fuzzing"); a campaign therefore runs without it, debug assertions and overflow checks on.
# CI (.ci/run) keeps the sanitizer. Each target prints one line: executions, seconds, corpus
# files and bytes before and after. On a crash the target stops, libFuzzer's input is left
# under fuzz/artifacts/<target>/, nothing is merged for it, and the script ends with status 1
# after the other targets.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(frames operations runs resume)
fi
sanitizer=${SANITIZER:-none}
flags=(-O -a -s "$sanitizer")
if [ "$sanitizer" = none ]; then
  # Its own build directory, so that CI's sanitizer build is not rebuilt after a campaign.
  flags+=(--target-dir "target/no-sanitizer")
fi
size() { echo "$(find "$1" -type f | wc -l) files, $(du -sb "$1" | cut -f1) bytes"; }
named() { find "$1" -maxdepth 1 -type f ! -regex '.*/[0-9a-f]\{40\}$'; }
crashed=()
for target in "${targets[@]}"; do
  corpus="corpus/$target"
  scratch=$(mktemp -d)
  minimized=$(mktemp -d)
  log=$(mktemp)
  before=$(size "$corpus")
  if ! cargo +nightly fuzz run "${flags[@]}" "$target" "$scratch" "$corpus" \
      -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "$target crashed: the input is under fuzz/artifacts/$target/" >&2
    crashed+=("$target")
    rm -rf "$scratch" "$minimized" "$log"
    continue
  fi
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  found=$(find "$scratch" -type f | wc -l)
  # The named seeds go first: their coverage counts, and they stay whatever it is.
  named "$corpus" | xargs -r cp -t "$minimized"
  cargo +nightly fuzz run "${flags[@]}" "$target" "$minimized" "$corpus" "$scratch" \
    -- -set_cover_merge=1 >"$log" 2>&1 || {
    tail -n 40 "$log" >&2
    echo "$target: minimizing failed; $corpus is unchanged" >&2
    exit 1
  }
  rm -rf "$corpus"
  mv "$minimized" "$corpus"
  chmod 755 "$corpus"
  echo "$target: $executions executions in $seconds s (sanitizer $sanitizer), $found new" \
    "inputs; corpus $before -> $(size "$corpus")"
  rm -rf "$scratch" "$log"
done
if [ ${#crashed[@]} -gt 0 ]; then
  echo "crashed: ${crashed[*]}" >&2
  exit 1
fi
