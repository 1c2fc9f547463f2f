#!/usr/bin/env python3
"""Reading a numeric CSV: gradflow's reader against pandas and polars, one run.

    python scripts/io_bench.py [--rows 100000,1000000,3000000] [--repeats 3]
        [--gradflow target/release/gradflow] [--dir /tmp]

Each file: N rows × 32 float features ('%.6f', N(0, 1)) and an integer label, with a
header. gradflow's time is the data time `gradflow train --model logistic --epochs 1`
reports (the file read into a Dataset, header detection and labels included); pandas is
`pandas.read_csv(path)`, polars `polars.read_csv(path)` (each the whole table in memory).
Then the same table as Parquet (written by pyarrow, snappy, row groups of 10⁶ rows):
gradflow's data time against `pyarrow.parquet.read_table(path)`. Then `train` end to end
on the CSV: reading and training seconds as it reports them. The tools alternate within
each repeat, each run after a second's rest (--pause); medians are printed as Markdown
tables.
"""

import argparse
import os
import re
import statistics
import subprocess
import time

import numpy as np


def make(path, n, p=32, seed=0):
    if os.path.exists(path):
        return
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        f.write(",".join([f"x{j}" for j in range(p)] + ["label"]) + "\n")
        for start in range(0, n, 200_000):
            m = min(200_000, n - start)
            x = rng.standard_normal((m, p)).astype(np.float32)
            y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
            np.savetxt(f, np.column_stack([x, y]), fmt=["%.6f"] * p + ["%d"], delimiter=",")


def gradflow_seconds(binary, path, both=False):
    out = subprocess.run(
        [binary, "train", "--model", "logistic", "--data", path, "--target", "label"]
        + ([] if both else ["--epochs", "1"]),
        capture_output=True, text=True, check=True,
    ).stdout
    m = re.search(r"([0-9.]+) s training .*, ([0-9.]+) s data", out)
    return (float(m.group(2)), float(m.group(1))) if both else float(m.group(2))


def parquet_of(csv_path):
    path = csv_path[:-4] + ".parquet"
    if not os.path.exists(path):
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq
        pq.write_table(pacsv.read_csv(csv_path), path, row_group_size=1_000_000)
    return path


def settled(f, pause):
    """`f()` after `pause` seconds: each tool starts on a settled machine. Without the
    rest, a run straight after polars' was slower (gradflow at 10^5 rows: 0.036 against
    0.026 s on 2 cores), likely the last tool's threads or allocator still at work."""
    time.sleep(pause)
    return f()


def timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="100000,1000000,3000000")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--gradflow", default="target/release/gradflow")
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--pause", type=float, default=1.0,
                    help="seconds of rest before each timed run (0: none)")
    args = ap.parse_args()
    import pandas as pd
    try:
        import polars as pl
    except ImportError:
        pl = None
    print("| rows | MB | gradflow s (MB/s) | pandas s | polars s | gradflow vs pandas | vs polars |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in [int(r) for r in args.rows.split(",")]:
        path = os.path.join(args.dir, f"gradflow-io-{n}.csv")
        make(path, n)
        if os.path.exists(path[:-4] + ".parquet"):
            os.remove(path[:-4] + ".parquet")
        mb = os.path.getsize(path) / 1e6
        g, pd_t, pl_t = [], [], []
        for _ in range(args.repeats):
            g.append(settled(lambda: gradflow_seconds(args.gradflow, path), args.pause))
            pd_t.append(settled(lambda: timed(lambda: pd.read_csv(path)), args.pause))
            if pl is not None:
                pl_t.append(settled(lambda: timed(lambda: pl.read_csv(path)), args.pause))
        gm, pm = statistics.median(g), statistics.median(pd_t)
        lm = statistics.median(pl_t) if pl_t else float("nan")
        print(f"| {n:,} | {mb:.0f} | {gm:.3f} ({mb / gm:.0f}) | {pm:.3f} | {lm:.3f} "
              f"| {pm / gm:.2f}× | {lm / gm:.2f}× |")
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return
    print()
    print("| rows | Parquet MB | gradflow s | pyarrow.parquet.read_table s | gradflow / pyarrow |")
    print("|---:|---:|---:|---:|---:|")
    for n in [int(r) for r in args.rows.split(",")]:
        path = parquet_of(os.path.join(args.dir, f"gradflow-io-{n}.csv"))
        mb = os.path.getsize(path) / 1e6
        g, a = [], []
        for _ in range(args.repeats):
            g.append(settled(lambda: gradflow_seconds(args.gradflow, path), args.pause))
            a.append(settled(lambda: timed(lambda: pq.read_table(path)), args.pause))
        gm, am = statistics.median(g), statistics.median(a)
        print(f"| {n:,} | {mb:.0f} | {gm:.3f} | {am:.3f} | {gm / am:.2f} |")
    print()
    print("| rows | train: reading s | training s (logistic, defaults) | reading share |")
    print("|---:|---:|---:|---:|")
    for n in [int(r) for r in args.rows.split(",")]:
        path = os.path.join(args.dir, f"gradflow-io-{n}.csv")
        runs = [
            settled(lambda: gradflow_seconds(args.gradflow, path, both=True), args.pause)
            for _ in range(args.repeats)
        ]
        d = statistics.median(r[0] for r in runs)
        t = statistics.median(r[1] for r in runs)
        print(f"| {n:,} | {d:.3f} | {t:.3f} | {d / (d + t):.0%} |")


if __name__ == "__main__":
    main()
