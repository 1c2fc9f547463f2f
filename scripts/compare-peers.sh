#!/usr/bin/env bash
# gradflow against its peers, back to back on this machine: the peers' numpy and JAX
# scripts (shared/peers/python), the machine's limits, then `gradflow bench`, and the
# ratio table (scripts/compare_peers.py). Its output is what BENCHMARKS.md quotes.
#
#   scripts/compare-peers.sh            # full size (a few minutes on 2 cores)
#   scripts/compare-peers.sh --quick    # 5 % of the rows: a smoke run, numbers meaningless
#
# Environment: PEERS (the peers' folder, default ../shared/peers/python), VENV (a venv
# with numpy and jax[cpu], made if missing; default ~/.cache/gradflow-peers), BACKEND
# (gradflow bench --backend: cpu, gpu or both; default both), OUT (where the reports
# go; default a new temporary folder).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
PEERS=${PEERS:-$root/../shared/peers/python}
VENV=${VENV:-$HOME/.cache/gradflow-peers}
BACKEND=${BACKEND:-both}
OUT=${OUT:-$(mktemp -d)}
quick=()
if [ "${1:-}" = "--quick" ]; then
  export PEERS_SCALE=0.05 PEERS_REPEATS=1 LIMIT_REPEATS=1
  quick=(--quick --scale 5)
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "compare: making $VENV (numpy, jax[cpu], threadpoolctl)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q numpy "jax[cpu]" threadpoolctl
fi
PY="$VENV/bin/python"

# The peers' scripts write results/raw next to themselves: run a copy (shared/ may be
# read-only).
work="$OUT/peers"
rm -rf "$work"
mkdir -p "$work"
cp -r "$PEERS"/. "$work"/
rm -rf "$work/results/raw"

# Threads as the peers pin them (run_all.sh): 2 everywhere.
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 MKL_NUM_THREADS=2
export VECLIB_MAXIMUM_THREADS=2 NUMEXPR_NUM_THREADS=2 PYTHONHASHSEED=0 PYTHONUNBUFFERED=1
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads=2"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

cargo build --release --quiet
echo "compare: peers' limits, numpy, JAX (in $work)"
(cd "$work" && "$PY" limits.py && "$PY" limits_jax.py 2 && "$PY" bench_numpy.py && "$PY" bench_jax.py) \
  >"$OUT/peers.log" 2>&1 || { tail -20 "$OUT/peers.log"; exit 1; }
echo "compare: gradflow bench --backend $BACKEND ${quick[*]}"
target/release/gradflow bench --backend "$BACKEND" "${quick[@]}" \
  --json "$OUT/gradflow-bench.json" --plot "$OUT/gradflow-bench.png" >"$OUT/gradflow-bench.md" 2>"$OUT/gradflow-bench.log"
echo
echo "## gradflow against its peers ($(date -u '+%Y-%m-%d %H:%M') UTC, $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
echo
"$PY" scripts/compare_peers.py "$work" "$OUT/gradflow-bench.json"
echo
echo "gradflow bench's own table:"
echo
cat "$OUT/gradflow-bench.md"
echo
echo "(reports in $OUT)"
