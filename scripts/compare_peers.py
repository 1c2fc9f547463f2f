"""The ratio table of gradflow against its peers, measured in one run on one machine.

    python compare_peers.py PEERS_DIR GRADFLOW_BENCH_JSON

PEERS_DIR is a copy of shared/peers/python whose results/raw holds this run's
limits_*.json, numpy.json and jax.json (scripts/compare-peers.sh makes it); the
JSON is `gradflow bench --json`'s report. Prints a markdown table: per workload
the time per epoch (W4: per iteration, W5: per solve) of gradflow (CPU, and GPU
if it ran), JAX and numpy, the ratios, the machine's floor from the peers'
roofline (their own formulas and measured limits) and which bound it is.
"""
import json
import sys
from pathlib import Path

peers = Path(sys.argv[1]).resolve()
sys.path.insert(0, str(peers))
import common as C  # noqa: E402  (the peers' workload sizes)
import report as R  # noqa: E402  (the peers' FLOP and byte counts)

raw = {f.stem: json.loads(f.read_text()) for f in (peers / "results" / "raw").glob("*.json")}
bench = json.loads(Path(sys.argv[2]).read_text())

limits = [r for name in ("limits_numpy", "limits_jax_2t") for r in raw.get(name, {}).get("rows", [])]
bw = max((f for f in limits if f.get("kind") == "bandwidth" and f.get("threads") == 2
          and f.get("op") in ("sum", "gemv", "gemv_t")), key=lambda f: f["median_rate"], default=None)
pk = max((f for f in limits if f.get("kind") == "matmul" and f.get("threads") == 2),
         key=lambda f: f["median_rate"], default=None)
peer_rows = [r for name in ("numpy", "jax") for r in raw.get(name, {}).get("rows", [])
             if not r.get("failed")]

# Which peer variant is each workload's yardstick (the table).
JAX = {"W1": "lax.scan", "W2": "lax.scan", "W3": "lax.scan", "W4": "jit fori_loop", "W5": "solve(X^T X)"}
NUMPY = {"W1": "textbook loop", "W2": "textbook loop", "W3": "textbook loop", "W4": "gemv loop",
         "W5": "solve(X^T X)"}
UNIT = {"W1": "epoch", "W2": "epoch", "W3": "epoch", "W4": "iteration", "W5": "solve"}


def per_unit(wl, seconds):
    cfg = getattr(C, wl)
    return seconds / (cfg.get("epochs") or cfg.get("iters") or 1)


def peer(wl, framework, variant):
    for r in peer_rows:
        if r["workload"] == wl and r["framework"] == framework and r["variant"] == variant:
            return per_unit(wl, r["median_s"]), r.get("foreign_flag", False)
    return None, False


def ours(wl, backend):
    for r in bench["rows"]:
        if r["workload"] == wl and r["backend"] == backend and not r["sweep"] and r["measured"]:
            m = r["measured"]
            rows, epochs = r["rows"], r["epochs"]
            # gradflow's rows may be scaled (--quick, --scale): per unit at the peers' size.
            return m["wall_s"] / epochs * getattr(C, wl)["n"] / rows, m
    return None, None


def ms(t):
    return "-" if t is None else (f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.3f} s")


def ratio(a, b):
    return "-" if a is None or b is None else f"{b / a:.2f}×"


print(f"Peers: {raw.get('jax', raw.get('numpy', {})).get('meta', {}).get('date_utc', '?')} UTC; "
      f"gradflow bench: {bench.get('cpu_threads')} CPU threads, GPU {bench.get('gpu_adapter') or 'none'}.")
if bw and pk:
    print(f"Floors (the peers' roofline): read bandwidth {bw['median_rate']:.2f} GB/s ({bw['name']}), "
          f"peak {pk['median_rate']:.1f} GFLOP/s ({pk['name']}).")
print()
print("| WL | per | gradflow CPU | gradflow GPU | JAX | numpy | CPU vs JAX | CPU vs numpy "
      "| floor | bound | CPU / floor |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
for wl in ("W1", "W2", "W3", "W4", "W5"):
    cpu, _ = ours(wl, "cpu")
    gpu, _ = ours(wl, "gpu")
    jax, jflag = peer(wl, "jax", JAX[wl])
    npy, nflag = peer(wl, "numpy", NUMPY[wl])
    floor = bound = "-"
    over = "-"
    if bw and pk:
        fl, by = R.flops_and_bytes(wl)
        tm, tf = by / (bw["median_rate"] * 1e9), fl / (pk["median_rate"] * 1e9)
        floor, bound = max(tm, tf), ("memory" if tm >= tf else "compute")
        over = "-" if cpu is None else f"{cpu / floor:.2f}×"
        floor = ms(floor)
    flag = lambda f: " !" if f else ""  # noqa: E731  (a disturbed peer row)
    print(f"| {wl} | {UNIT[wl]} | {ms(cpu)} | {ms(gpu)} | {ms(jax)}{flag(jflag)} | {ms(npy)}{flag(nflag)} "
          f"| {ratio(cpu, jax)} | {ratio(cpu, npy)} | {floor} | {bound} | {over} |")
print()
print("Ratios are speed-ups (peer time / gradflow time: above 1× gradflow is faster); "
      "CPU / floor is gradflow's time over the roofline floor (1× would be the machine's limit). "
      "! marks a peer row the peers' own monitor saw disturbed.")
