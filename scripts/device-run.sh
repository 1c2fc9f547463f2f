#!/usr/bin/env bash
# The GPU run, prepared here and run where the GPU is, as one command: the GPU tests,
# `gradflow bench`, the cost model's predictions and the peers (JAX, PyTorch), one report.
#
#   scripts/device-run.sh bundle [DIR]       # here: build the binaries and gather them
#   scripts/device-run.sh run [DIR] [OUT]    # there (or here, on lavapipe): run, report
#
# `bundle` (default DIR: .device, which .gitignore lists) builds the release `gradflow`
# and the GPU tests' executables (`cargo test --release --no-run`), strips and packs them
# (binaries.tar.xz, ~11 MB), and copies the peers' Python scripts with our PyTorch one
# (scripts/peers/bench_torch.py): an x86-64 bundle that needs no Rust toolchain where it
# runs. On the device tool: `run` with carry [".device", ".gl"] and the command
# `scripts/device-run.sh run .device $OUT`. `run` unpacks the Vulkan loader from
# .gl/*.deb when the machine has none (the device tool's README says how to download
# them), points Vulkan at NVIDIA's driver when it is there, then runs the stages and
# writes OUT/report.md (adapter, driver, every test binary's result with the failures'
# output, the bench tables, the cost model, the peers' tables), OUT/NAME.json and
# OUT/NAME.log for each bench stage, OUT/jax.json and OUT/torch.json. Settings:
#   DEVICE_STAGES      the stages in order, each NAME or NAME:CAP_SECONDS; default
#                      "tests sweep explain jax torch". tests: the GPU test binaries;
#                      bench: `gradflow bench --backend both`; sweep: the same with
#                      --sweep; explain: `bench --explain`; kernels: `bench
#                      --kernels`; jax, torch: the peers.
#   DEVICE_TEST_JOBS   test binaries at a time (default 1)
#   DEVICE_SKIP_TESTS  test binaries to leave out, space-separated
#   DEVICE_PEER_WORKLOADS  the peers' workloads (e.g. "W3 W4"; default all)
#   DEVICE_BENCH_WORKLOADS the bench stages' workloads (e.g. "W1,W3,W4"; default all)
#   DEVICE_QUICK=1     bench --quick and the peers at 5 % of the rows (a smoke run)
#   PYTHON             the Python that has jax and torch (default python3)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:?usage: device-run.sh bundle|run [DIR] [OUT]}
dir=$(realpath -m "${2:-$root/.device}")

# The test binaries that use the GPU (each fails, not skips, without an adapter when
# GRADFLOW_REQUIRE_GPU=1), and the library's own unit tests.
GPU_TESTS=(kernels_vs_cpu training_vs_cpu gpu_engine gpu_fused gpu_tuning gpu_large streaming
  device_faults concurrency defaults lbfgs optim resume weights gl_smoke gpu_mlp_step gpu_mlp_epoch
  gpu_ahead)

bundle() {
  rm -rf "$dir"
  mkdir -p "$dir/bin" "$dir/tests" "$dir/peers"
  cd "$root"
  cargo build --release --quiet --bin gradflow
  cp target/release/gradflow "$dir/bin/"
  local args=() t
  for t in "${GPU_TESTS[@]}"; do args+=(--test "$t"); done
  # Each executable the build lists (one JSON line per artifact).
  cargo test --release --quiet --no-run --lib "${args[@]}" --message-format=json |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["target"]["name"], m["executable"])
' | while read -r name exe; do cp "$exe" "$dir/tests/$name"; done
  strip "$dir"/bin/* "$dir"/tests/*
  # Sixteen static wgpu binaries are ~115 MB, the device tool carries 64 MiB: packed
  # together they are ~10 MB (they share most of their code).
  (cd "$dir" && tar -cf - bin tests | xz -9 -T0 >binaries.tar.xz && rm -rf bin tests)
  cp "$root"/../shared/peers/python/*.py "$dir/peers/" 2>/dev/null ||
    echo "device-run: no peers folder at ../shared/peers/python: the JAX table will be missing"
  # The PyTorch peer is ours (the shared peers have no torch): it imports their common.py.
  cp "$root"/scripts/peers/*.py "$dir/peers/"
  # Tests read their data files by the path of the checkout they were built in.
  echo "$root" >"$dir/build-root"
  du -sh "$dir"
}

run() {
  local out=${1:-$dir/out}
  mkdir -p "$out"
  if [ ! -d "$dir/bin" ]; then
    tar -xJf "$dir/binaries.tar.xz" -C "$dir"
  fi
  # A bare machine: the Vulkan loader from .gl/*.deb, NVIDIA's driver if present.
  if ! ldconfig -p 2>/dev/null | grep -q libvulkan; then
    if compgen -G "$root/.gl/*.deb" >/dev/null; then
      for f in "$root"/.gl/*.deb; do dpkg -x "$f" /; done
      ldconfig
    else
      echo "device-run: no libvulkan and no .gl/*.deb to unpack: wgpu may find no adapter"
    fi
  fi
  local icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  if [ -f "$icd" ]; then
    export VK_DRIVER_FILES=$icd
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  fi
  local built
  built=$(cat "$dir/build-root")
  if [ ! -d "$built/tests/data" ]; then
    mkdir -p "$(dirname "$built")"
    ln -sfn "$root" "$built"
  fi
  export GRADFLOW_REQUIRE_GPU=1 XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
  report=$out/report.md
  quick=()
  peers_env=(QUIET_MAX_WAIT=0 PEERS_ATTEMPTS=1)
  if [ "${DEVICE_QUICK:-0}" = 1 ]; then
    quick=(--quick)
    peers_env+=(PEERS_SCALE=0.05 PEERS_REPEATS=1)
  fi
  {
    echo "# Device run, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)."
    command -v nvidia-smi >/dev/null &&
      echo "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)."
    echo
    echo '## Adapter (`gradflow info`)'
    echo
    echo '```text'
    "$dir/bin/gradflow" info 2>&1 || true
    echo '```'
  } >"$report"
  failed=0
  # Each stage as NAME or NAME:SECONDS (a cap: a device lease is short, and a stage cut
  # off keeps what it wrote). The default runs everything, uncapped.
  local stage name cap
  for stage in ${DEVICE_STAGES:-tests sweep explain jax torch}; do
    name=${stage%%:*}
    cap=0
    [ "$name" != "$stage" ] && cap=${stage#*:}
    echo "device-run: $name (cap ${cap}s) at $(date -u +%H:%M:%S)"
    case $name in
    tests) stage_tests "$cap" ;;
    bench) stage_bench "$cap" bench ;;
    sweep) stage_bench "$cap" sweep --sweep ;;
    explain) stage_explain ;;
    kernels) stage_kernels "$cap" ;;
    jax | torch) stage_peer "$cap" "$name" ;;
    *) echo "device-run: unknown stage $name" >&2 && failed=1 ;;
    esac
  done
  echo "device-run: report in $report"
  return $failed
}

# Runs "$@" under a cap of $1 seconds (0: none); 124 when the cap cut it off.
capped() {
  local cap=$1
  shift
  if [ "$cap" -gt 0 ]; then timeout --kill-after=5 "$cap" "$@"; else "$@"; fi
}

# The GPU test binaries, DEVICE_TEST_JOBS at a time (default 1: each alone on the GPU),
# each under the stage's cap; one table row per binary, the failures' output after it.
stage_tests() {
  local cap=$1 par=${DEVICE_TEST_JOBS:-1} tmp t n rc
  tmp=$(mktemp -d)
  {
    echo
    echo "## Tests (GRADFLOW_REQUIRE_GPU=1)"
    echo
    echo "| binary | result |"
    echo "|---|---|"
  } >>"$report"
  for t in "$dir"/tests/*; do
    n=$(basename "$t")
    case " ${DEVICE_SKIP_TESTS:-} " in *" $n "*) continue ;; esac
    while [ "$(jobs -rp | wc -l)" -ge "$par" ]; do wait -n || true; done
    (
      cd "$root"
      rc=0
      capped "$cap" "$t" >"$tmp/$n.log" 2>&1 || rc=$?
      echo $rc >"$tmp/$n.rc"
    ) &
  done
  wait
  for t in "$dir"/tests/*; do
    n=$(basename "$t")
    case " ${DEVICE_SKIP_TESTS:-} " in *" $n "*) continue ;; esac
    rc=$(cat "$tmp/$n.rc" 2>/dev/null || echo 1)
    if [ "$rc" = 0 ]; then
      echo "| $n | $(grep -h '^test result' "$tmp/$n.log" | tail -1) |" >>"$report"
      continue
    fi
    failed=1
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
      echo "| $n | **CUT OFF** at ${cap}s: $(grep -c '\.\.\. ok$' "$tmp/$n.log" || true) ok before |" >>"$report"
    else
      echo "| $n | **FAILED** (exit $rc): $(grep -h '^test result' "$tmp/$n.log" | tail -1) |" >>"$report"
    fi
    {
      echo
      echo "<details><summary>$n output (failures)</summary>"
      echo
      echo '```text'
      grep -A30 -- '---- .* stdout ----\|^failures:\|panicked' "$tmp/$n.log" | head -200 || true
      tail -5 "$tmp/$n.log"
      echo '```'
      echo "</details>"
      echo
    } >>"$tmp/failures"
  done
  [ -f "$tmp/failures" ] && cat "$tmp/failures" >>"$report"
  rm -rf "$tmp"
}

# `gradflow bench --backend both [--sweep]`: the table to the report, the progress
# lines to OUT/NAME.log (what is left of a run the cap cuts off), OUT/NAME.json.
stage_bench() {
  local cap=$1 name=$2
  shift 2
  local workloads=()
  [ -n "${DEVICE_BENCH_WORKLOADS:-}" ] && workloads=(--workloads "$DEVICE_BENCH_WORKLOADS")
  {
    echo
    echo "## \`gradflow bench --backend both $* ${quick[*]} ${workloads[*]}\`"
    echo
  } >>"$report"
  # One plot (bench.png): the device tool brings back at most eight files.
  local plot=()
  [ "$name" = bench ] && plot=(--plot bench.png)
  (cd "$out" && capped "$cap" "$dir/bin/gradflow" bench --backend both "$@" "${quick[@]}" \
    "${workloads[@]}" --json "$name.json" "${plot[@]}") >>"$report" 2>"$out/$name.log" || {
    failed=1
    echo "(cut off or failed: the points measured are in $name.log)" >>"$report"
  }
}

# Each kernel of the steps timed alone (`gradflow bench --kernels`).
stage_kernels() {
  {
    echo
    echo '## Kernels one by one (`gradflow bench --kernels`)'
    echo
  } >>"$report"
  capped "$1" "$dir/bin/gradflow" bench --kernels "${quick[@]}" >>"$report" 2>&1 || failed=1
}

stage_explain() {
  {
    echo
    echo '## The cost model beside it (`gradflow bench --explain`: predicted, not measured)'
    echo
    "$dir/bin/gradflow" bench --explain 2>&1 || true
  } >>"$report"
}

# A peer's script (bench_jax.py, bench_torch.py) on the device its framework finds; its
# log and table to the report, its raw JSON to OUT.
stage_peer() {
  local cap=$1 peer=$2
  {
    echo
    echo "## ${peer} (the peers' \`bench_${peer}.py\`, on the device ${peer} finds)"
    echo
    echo '```text'
  } >>"$report"
  (cd "$dir/peers" && export "${peers_env[@]}" PYTHONUNBUFFERED=1 &&
    capped "$cap" "${PYTHON:-python3}" "bench_${peer}.py" ${DEVICE_PEER_WORKLOADS:-}) \
    >>"$report" 2>&1 || failed=1
  echo '```' >>"$report"
  cp "$dir/peers/results/raw/${peer}.json" "$out/" 2>/dev/null || true
}

case $mode in
bundle) bundle ;;
run) run "${3:-}" ;;
*)
  echo "usage: device-run.sh bundle|run [DIR] [OUT]" >&2
  exit 2
  ;;
esac
