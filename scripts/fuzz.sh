#!/usr/bin/env bash
# Fuzzes the readers of untrusted files — CSV, .npy, the model file — with cargo-fuzz
# (libFuzzer), each target for a bounded time: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET…]
# (default 300 s, all three targets). Not part of CI: it needs a nightly toolchain and
# cargo-fuzz (installed here if missing).
#
# Starts from fuzz/seeds/<target> and the corpus of earlier runs (fuzz/corpus, not
# committed). A crash stops that target: the input lands in fuzz/artifacts/<target>/;
# copy it to tests/fuzz_regressions/<target>/ once fixed, and `cargo test --test
# fuzz_regressions` replays it ever after. Prints executions and time per target.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-300}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(csv npy parquet model)

toolchain="+nightly"
rustup run nightly rustc --version >/dev/null 2>&1 || {
  echo "fuzz: no nightly toolchain (rustup toolchain install nightly)" >&2
  exit 1
}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

mkdir -p fuzz/logs
status=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  echo "fuzz: $t for ${secs}s"
  # -a: debug assertions on (integer overflow panics); -O: optimised.
  if ! (cd fuzz && cargo $toolchain fuzz run -O -a "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$secs" -max_len=4096 -rss_limit_mb=4096 -timeout=10 \
      -print_final_stats=1) >"fuzz/logs/$t.log" 2>&1; then
    echo "fuzz: $t FAILED: see fuzz/logs/$t.log and fuzz/artifacts/$t/" >&2
    status=1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "fuzz/logs/$t.log" | awk '{print $2}' | tail -1)
  took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "fuzz/logs/$t.log" | tail -1)
  echo "fuzz: $t: ${runs:-?} executions (${took:-no summary}), corpus $(ls "fuzz/corpus/$t" | wc -l) inputs"
done
exit $status
