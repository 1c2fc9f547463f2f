#!/usr/bin/env bash
# Soak test (not CI): many streamed epochs on the GPU and the CPU; the RSS column must stay
# flat after the first epochs. Usage: scripts/soak.sh [epochs] [rows]
set -euo pipefail
cd "$(dirname "$0")/.."
epochs="${1:-300}"
rows="${2:-20000}"
cargo build --release --quiet --example soak
for backend in gpu cpu; do
  echo "== $backend"
  ./target/release/examples/soak "$epochs" "$backend" "$rows"
done
