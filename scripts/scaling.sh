#!/usr/bin/env bash
# Data-parallel scaling on this machine: each workload on 1, 2 and 3 MPI ranks of one
# thread each (RAYON_NUM_THREADS=1), every rank streaming its parts of each batch; the
# training time, the collectives and the time spent in them, and the final loss.
# Needs MPICH (`apt-get install mpich libmpich-dev libclang-dev`); builds the binary with
# the `mpi` feature. Usage: scripts/scaling.sh [RANKS…]   (default: 1 2 3)
# The figures go into docs/SCALING.md beside the cost model's predictions.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --features mpi
bin=target/release/gradflow
ranks=("${@:-1 2 3}")
[ $# -gt 0 ] || ranks=(1 2 3)
export RAYON_NUM_THREADS=1

declare -A work=(
  [W1]="--model linear --data synthetic:linear?n=1000000&p=64&seed=1 --batch-size 256 --lr 0.05 --epochs 5 --penalty none"
  [W2]="--model logistic --data synthetic:logistic?n=1000000&p=64&seed=2 --batch-size 256 --lr 0.1 --epochs 5 --penalty none"
  [W3]="--model mlp --hidden 256 --data synthetic:teacher?n=200000&p=64&k=10&seed=3 --batch-size 256 --lr 0.1 --epochs 3 --optimizer sgd --penalty none"
  [G7]="--model logistic --data synthetic:logistic?n=10000000&p=64&seed=4 --batch-size 4096 --lr 0.5 --epochs 1 --penalty none"
)
# The same shapes from .npy files (memory-mapped: a rank reads its rows from the page
# cache instead of generating them), made once with numpy when it is there.
npy_dir=${SCALING_DIR:-/tmp/gradflow-scaling}
python=${PYTHON:-python3}
if "$python" -c 'import numpy' 2>/dev/null; then
  mkdir -p "$npy_dir"
  "$python" - "$npy_dir" <<'PY'
import os, sys
import numpy as np
d = sys.argv[1]
rng = np.random.default_rng(1)
if not os.path.exists(f"{d}/w1.npy"):
    x = rng.standard_normal((1_000_000, 64), dtype=np.float32)
    y = x @ rng.standard_normal(64).astype(np.float32) + 0.01 * rng.standard_normal(1_000_000).astype(np.float32)
    np.save(f"{d}/w1.npy", np.column_stack([x, y]).astype(np.float32))
if not os.path.exists(f"{d}/w3.npy"):
    x = rng.standard_normal((200_000, 64), dtype=np.float32)
    k = np.argmax(np.tanh(x @ rng.standard_normal((64, 32))) @ rng.standard_normal((32, 10)), axis=1)
    np.save(f"{d}/w3.npy", np.column_stack([x, k]).astype(np.float32))
PY
  work[W1npy]="--model linear --data $npy_dir/w1.npy --batch-size 256 --lr 0.05 --epochs 5 --penalty none"
  work[W3npy]="--model mlp --hidden 256 --data $npy_dir/w3.npy --batch-size 256 --lr 0.1 --epochs 3 --optimizer sgd --penalty none"
fi
printf '| workload | ranks | train s | samples/s | speed-up | steps | collectives | in them s | µs each | final loss |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
for w in W1 W2 W3 G7 W1npy W3npy; do
  [ -n "${work[$w]:-}" ] || continue
  base=""
  for r in "${ranks[@]}"; do
    # shellcheck disable=SC2086 # the workload's flags are words
    if [ "$r" -eq 1 ]; then
      json=$("$bin" train ${work[$w]} --no-stop --no-standardize --stream --json)
    else
      json=$(mpiexec -n "$r" "$bin" train ${work[$w]} --no-stop --no-standardize --stream --json)
    fi
    t=$(jq .timings.train_seconds <<<"$json")
    [ -n "$base" ] || base=$t
    jq -r --arg w "$w" --arg r "$r" --argjson base "$base" '
      [ $w, $r, (.timings.train_seconds*1000|round/1000),
        (.timings.samples_per_sec|round),
        ($base/.timings.train_seconds*100|round/100),
        .steps, .timings.all_reduces, (.timings.all_reduce_seconds*1000|round/1000),
        (if .timings.all_reduces > 0 then (.timings.all_reduce_seconds/.timings.all_reduces*1e7|round/10) else 0 end),
        .losses[-1] ] | "| " + (map(tostring)|join(" | ")) + " |"' <<<"$json"
  done
done
