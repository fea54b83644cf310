#!/usr/bin/env bash
# How much of the core (the `switchboard` crate, src/) each target's checked-in corpus reaches:
# builds each target with source-based coverage (`cargo fuzz coverage`, debug assertions on as
# in the campaigns), replays fuzz/corpus/<target>/ through it, and reports the core's regions,
# functions and lines with the nightly toolchain's llvm-cov (component llvm-tools-preview).
# Prints the TOTAL row per target, then for all targets together (the union of what they
# reach); the per-file tables are left in fuzz/coverage/<target>/report.txt and
# fuzz/coverage/all.txt.
#
#   fuzz/coverage.sh [TARGET...]     (needs cargo-fuzz, nightly and its llvm-tools-preview)
set -euo pipefail
cd "$(dirname "$0")"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(frames operations runs resume)
fi
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
tools="$(rustc +nightly --print sysroot)/lib/rustlib/$host/bin"
core="$(cd .. && pwd)/src"
objects=()
profiles=()
for target in "${targets[@]}"; do
  log=$(mktemp)
  rm -rf "coverage/$target"
  cargo +nightly fuzz coverage -a "$target" "corpus/$target" >"$log" 2>&1 || {
    tail -n 40 "$log" >&2
    exit 1
  }
  rm -f "$log"
  binary="target/$host/coverage/$host/release/$target"
  profile="coverage/$target/coverage.profdata"
  "$tools/llvm-cov" report "$binary" -instr-profile="$profile" "$core" \
    >"coverage/$target/report.txt"
  echo "$target: $(tail -n 1 "coverage/$target/report.txt")"
  # llvm-cov takes the first binary by position and every other one after -object.
  if [ ${#objects[@]} -eq 0 ]; then objects=("$binary"); else objects+=(-object "$binary"); fi
  profiles+=("$profile")
done
"$tools/llvm-profdata" merge -sparse "${profiles[@]}" -o coverage/all.profdata
"$tools/llvm-cov" report "${objects[@]}" -instr-profile=coverage/all.profdata "$core" \
  >coverage/all.txt
echo "all: $(tail -n 1 coverage/all.txt)"
head -n 1 coverage/all.txt
