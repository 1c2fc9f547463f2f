#!/usr/bin/env bash
# The GPU run, prepared here and run where the GPU is, as one command: the GPU tests,
# `gradflow bench --backend both --sweep` and the peers' JAX script, into one report.
#
#   scripts/device-run.sh bundle [DIR]       # here: build the binaries and gather them
#   scripts/device-run.sh run [DIR] [OUT]    # there (or here, on lavapipe): run, report
#
# `bundle` (default DIR: .device, which .git/info/exclude should list) builds the
# release `gradflow` and the GPU tests' executables (`cargo test --release --no-run`),
# strips and packs them (binaries.tar.xz, ~10 MB), and copies the peers' Python scripts:
# an x86-64 bundle that needs no Rust toolchain where it runs. On the device tool:
# `run` with carry [".device", ".gl"] and the command `scripts/device-run.sh run .device
# $OUT` (timeout_s 600; DEVICE_QUICK=1 first if time is short). `run` unpacks the Vulkan loader from .gl/*.deb when the
# machine has none (the device tool's README says how to download them), points Vulkan
# at NVIDIA's driver when it is there, then writes OUT/report.md (adapter, driver, every
# test binary's result with the failures' output, the bench table, the cost model's
# predictions, the JAX table) and
# OUT/bench.json, OUT/bench.png, OUT/bench.log. Settings:
#   DEVICE_QUICK=1     bench --quick and the peers at 5 % of the rows (a smoke run)
#   DEVICE_JAX=0       leave the JAX peer out (no jax where it runs)
#   PYTHON             the Python that has jax (default python3)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:?usage: device-run.sh bundle|run [DIR] [OUT]}
dir=$(realpath -m "${2:-$root/.device}")

# The test binaries that use the GPU (each fails, not skips, without an adapter when
# GRADFLOW_REQUIRE_GPU=1), and the library's own unit tests.
GPU_TESTS=(kernels_vs_cpu training_vs_cpu gpu_engine gpu_fused gpu_tuning gpu_large streaming
  device_faults concurrency defaults lbfgs optim resume weights gl_smoke)

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
  local report=$out/report.md quick=() peers_env=()
  if [ "${DEVICE_QUICK:-0}" = 1 ]; then
    quick=(--quick)
    peers_env=(PEERS_SCALE=0.05 PEERS_REPEATS=1)
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
    echo
    echo "## Tests (GRADFLOW_REQUIRE_GPU=1)"
    echo
    echo "| binary | result |"
    echo "|---|---|"
  } >"$report"
  local failed=0 t log
  for t in "$dir"/tests/*; do
    log=$(mktemp)
    if (cd "$root" && "$t" >"$log" 2>&1); then
      echo "| $(basename "$t") | $(grep -h '^test result' "$log" | tail -1) |" >>"$report"
    else
      failed=1
      echo "| $(basename "$t") | **FAILED**: $(grep -h '^test result' "$log" | tail -1) |" >>"$report"
      {
        echo
        echo "<details><summary>$(basename "$t") output (failures)</summary>"
        echo
        echo '```text'
        grep -A30 -- '---- .* stdout ----\|^failures:' "$log" | head -200
        echo '```'
        echo "</details>"
        echo
      } >>"$report.failures"
    fi
    rm -f "$log"
  done
  [ -f "$report.failures" ] && cat "$report.failures" >>"$report" && rm "$report.failures"
  {
    echo
    echo "## \`gradflow bench --backend both --sweep ${quick[*]}\`"
    echo
  } >>"$report"
  # The table to the report; the per-point progress lines to bench.log.
  (cd "$out" && "$dir/bin/gradflow" bench --backend both --sweep "${quick[@]}" \
    --json bench.json --plot bench.png) >>"$report" 2>"$out/bench.log" || failed=1
  {
    echo
    echo '## The cost model beside it (`gradflow bench --explain`: predicted, not measured)'
    echo
    "$dir/bin/gradflow" bench --explain 2>&1 || true
  } >>"$report"
  if [ "${DEVICE_JAX:-1}" = 1 ]; then
    {
      echo
      echo "## JAX (the peers' \`bench_jax.py\`, on the device JAX finds)"
      echo
      echo '```text'
    } >>"$report"
    (cd "$dir/peers" && env QUIET_MAX_WAIT=0 "${peers_env[@]}" "${PYTHON:-python3}" -c \
      'import jax; print("jax", jax.__version__, "devices:", jax.devices())' &&
      env QUIET_MAX_WAIT=0 "${peers_env[@]}" "${PYTHON:-python3}" bench_jax.py) \
      >>"$report" 2>&1 || failed=1
    echo '```' >>"$report"
  fi
  echo "device-run: report in $report"
  return $failed
}

case $mode in
bundle) bundle ;;
run) run "${3:-}" ;;
*)
  echo "usage: device-run.sh bundle|run [DIR] [OUT]" >&2
  exit 2
  ;;
esac
