#!/usr/bin/env bash
# Fuzzes the pure decoders with cargo-fuzz (libFuzzer), on stable Rust: every target in fuzz/ for
# SECONDS_PER_TARGET seconds each, one after the other, one job each.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]        (default 60)
#
# Stable works because of `--sanitizer none`: the only nightly flag cargo-fuzz passes is -Zsanitizer=…,
# and without a sanitizer it passes none (the coverage instrumentation, -Cpasses=sancov-module and
# -Cllvm-args=…, is stable). Safe Rust needs no AddressSanitizer; what we look for are panics.
# Debug assertions (so overflow checks) are on: an arithmetic overflow is a panic too.
#
# Caches, all under ${NRT_CACHE:-$HOME/.cache/nrt}, nothing in the work tree:
#   cargo-fuzz/          the pinned cargo-fuzz (installed on first use)
#   fuzz-target/         the build (never the main crate's target/, another build may be using it)
#   fuzz/corpus/<t>/     the working corpus: fuzz/seeds/<t>/ copied in, grown by every run, kept
#   fuzz/artifacts/<t>/  crash-*, timeout-*, oom-* inputs of the last run
#   fuzz/logs/<t>.log    libFuzzer's output of the last run
#
# Exits non-zero, naming the target and the input file, if a target crashed (panic), timed out
# (one input over NRT_FUZZ_TIMEOUT seconds, default 10) or ran out of memory (NRT_FUZZ_RSS_MB, default
# 2048). To reproduce one: the printed command runs the target on that single input.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
cd "$ROOT"

SECS=${1:-60}
[[ $SECS =~ ^[1-9][0-9]*$ ]] || { echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET]" >&2; exit 2; }
CACHE=${NRT_CACHE:-$HOME/.cache/nrt}
CARGO_FUZZ_VERSION=0.13.2
CARGO_FUZZ_ROOT=$CACHE/cargo-fuzz
TARGET_DIR=$CACHE/fuzz-target
WORK=$CACHE/fuzz
TIMEOUT=${NRT_FUZZ_TIMEOUT:-10}
RSS_MB=${NRT_FUZZ_RSS_MB:-2048}
FUZZ_FLAGS=(--sanitizer none --debug-assertions --target-dir "$TARGET_DIR")

# shellcheck source=scripts/phases.sh
source "$ROOT/scripts/phases.sh"

install_cargo_fuzz() {
  export PATH=$CARGO_FUZZ_ROOT/bin:$PATH
  if [[ $(cargo-fuzz --version 2>/dev/null) == "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
    echo "cargo-fuzz $CARGO_FUZZ_VERSION (cached in $CARGO_FUZZ_ROOT)"
    return 0
  fi
  # A private temporary target dir: a CARGO_TARGET_DIR from the environment would be reused otherwise.
  env -u CARGO_TARGET_DIR cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --force \
    --root "$CARGO_FUZZ_ROOT"
  cargo-fuzz --version
}

build() {
  cargo fuzz build "${FUZZ_FLAGS[@]}"
}

# What a CI log needs of one run: the figures, and on a failure the input and the panic.
TARGETS=()
RESULTS=()
FAILURES=()

fuzz_one() {
  local target=$1
  local bin=$TARGET_DIR/$TRIPLE/release/$target
  local corpus=$WORK/corpus/$target artifacts=$WORK/artifacts/$target log=$WORK/logs/$target.log
  [[ -x $bin ]] || { echo "no binary $bin: did the build make it?" >&2; return 1; }
  mkdir -p "$corpus" "$WORK/logs"
  rm -rf "$artifacts"
  mkdir -p "$artifacts"
  if [[ -d fuzz/seeds/$target ]]; then
    find "fuzz/seeds/$target" -maxdepth 1 -type f -exec cp -t "$corpus" {} +
  fi
  local before t0 rc=0
  before=$(find "$corpus" -type f | wc -l)
  t0=$SECONDS
  # The binary that `cargo fuzz run` would start, started directly: the same build, and no second
  # cargo build (the sources may be changing under another build) or fuzz/artifacts/ in the work tree.
  # -close_fd_mask=1: the code under test may print; libFuzzer's own report goes to stderr.
  RUST_BACKTRACE=1 "$bin" "$corpus" \
    -max_total_time="$SECS" -timeout="$TIMEOUT" -rss_limit_mb="$RSS_MB" \
    -artifact_prefix="$artifacts/" -print_final_stats=1 -close_fd_mask=1 \
    >"$log" 2>&1 || rc=$?
  local took=$((SECONDS - t0))
  local execs rate cov files bytes
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(sed -n 's/^#[0-9]*[[:space:]]*DONE[[:space:]]*cov: \([0-9]*\) ft: \([0-9]*\).*/\1 edges, \2 features/p' "$log" | tail -1)
  if [[ $rc -eq 0 ]]; then
    # Keep the corpus minimal: libFuzzer leaves the inputs it has since reduced on disk, so without
    # this the corpus only grows. -merge=1 keeps the smallest set with the same coverage.
    local merged=$WORK/corpus/.$target.merging
    rm -rf "$merged"
    mkdir -p "$merged"
    if "$bin" -merge=1 "$merged" "$corpus" -timeout="$TIMEOUT" -rss_limit_mb="$RSS_MB" \
      -artifact_prefix="$artifacts/" >"$WORK/logs/$target.merge.log" 2>&1; then
      rm -rf "$corpus"
      mv "$merged" "$corpus"
    else
      echo "warning: minimizing the corpus of $target failed (see $WORK/logs/$target.merge.log); kept as is" >&2
      rm -rf "$merged"
    fi
  fi
  files=$(find "$corpus" -type f | wc -l)
  bytes=$(find "$corpus" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
  local found
  found=$(find "$artifacts" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | sort)
  local status=ok
  if [[ $rc -ne 0 || -n $found ]]; then
    status="FAILED (exit $rc)"
    {
      printf '\n*** fuzz target %s FAILED (libFuzzer exit %d) after %ds\n' "$target" "$rc" "$took"
      if [[ -n $found ]]; then
        local f
        for f in $found; do
          printf '*** %s input: %s (%d bytes)\n' "$target" "$f" "$(stat -c %s "$f")"
          printf '*** hex: %s\n' "$(head -c 512 "$f" | od -An -v -tx1 | tr -d ' \n')"
          printf '*** reproduce: %s %s\n' "$bin" "$f"
          printf '***        or: cargo fuzz run %s %s %s\n' "${FUZZ_FLAGS[*]}" "$target" "$f"
        done
      else
        echo "*** no crash input was written; see the log"
      fi
      printf '*** the end of %s:\n' "$log"
      # The panic message and backtrace, without libFuzzer's per-input progress lines.
      grep -v -E '^#[0-9]+' "$log" | tail -60
    } >&2
    FAILURES+=("$target: ${found:-no input file, exit $rc} (log $log)")
  fi
  RESULTS+=("$(printf '%-16s %5ds  %12s execs  %8s execs/s  corpus %5d files (%+d, %d bytes)  %s  %s' \
    "$target" "$took" "${execs:-?}" "${rate:-?}" "$files" $((files - before)) "$bytes" "${cov:-cov ?}" "$status")")
  return 0
}

phase cargo-fuzz install_cargo_fuzz
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
phase build build
mapfile -t TARGETS < <(cargo fuzz list)
[[ ${#TARGETS[@]} -gt 0 ]] || { echo "cargo fuzz list found no target in fuzz/" >&2; exit 1; }
for t in "${TARGETS[@]}"; do
  phase "fuzz $t (${SECS}s)" fuzz_one "$t"
done
summary
printf '\n=== fuzz results (%ds per target; corpus in %s)\n' "$SECS" "$WORK/corpus"
printf '%s\n' "${RESULTS[@]}"
if [[ ${#FAILURES[@]} -gt 0 ]]; then
  printf '\nFUZZING FOUND %d FAILING TARGET(S):\n' "${#FAILURES[@]}" >&2
  printf '  %s\n' "${FAILURES[@]}" >&2
  exit 1
fi
echo "fuzz: ${#TARGETS[@]} targets, no crash"
