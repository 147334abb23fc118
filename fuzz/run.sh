#!/usr/bin/env bash
# The fuzz pass: every target of fuzz/ under libFuzzer for SECONDS (default 60) each, starting
# from fuzz/seeds/<target>. A crash fails the run and leaves its input in
# fuzz/artifacts/<target>/ (make it a regression test). Uses cargo-fuzz on the stable toolchain
# (RUSTC_BOOTSTRAP for its flags, no sanitizer), installing it when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
for target in head chunk contract classify config; do
  corpus="target/fuzz-corpus/$target"
  mkdir -p "$corpus"
  echo "fuzz $target: ${seconds}s"
  cargo fuzz run -s none "$target" "$corpus" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -timeout=20 -print_final_stats=1 2>&1 | grep -E "^(Done|stat::number_of_executed_units|==|SUMMARY)|panicked|deadly" || true
  # libFuzzer exits non-zero on a crash; pipefail is off for the grep above, so check here.
  # A panic, an input slower than 20 s, or one that ran out of memory.
  if ls fuzz/artifacts/"$target"/{crash,timeout,oom}-* >/dev/null 2>&1; then
    echo "fuzz $target: a failing input, see fuzz/artifacts/$target" >&2
    exit 1
  fi
done
