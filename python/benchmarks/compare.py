"""gradflow from Python against the same fit through the Rust API, and against
scikit-learn's SGDClassifier, LogisticRegression and MLPClassifier, on the same data and
machine in one run. Prints a markdown table (BENCHMARKS.md keeps it) and writes JSON.

    python python/benchmarks/compare.py [--rows 1000000] [--repeats 3] [--out compare.json]

The data: n × 64 float32 features, N(0, 1), and labels from a logistic model with known
weights (Bernoulli(σ(x·w))), plus 100,000 held-out rows for the accuracy column. The Rust
side is `examples/fit_npy.rs` (built here with cargo), which times `Trainer::fit` alone
on the same rows with the configuration each Python estimator builds; the Python side
times `fit(X, y)` on a C-contiguous float32 array, validation included. The two run in
turn, one warm fit each, `--repeats` times; times are medians (scikit-learn's MLP: one
fit).
"""

import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import tempfile
import time
import warnings

import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression as SkLogistic
from sklearn.linear_model import SGDClassifier
from sklearn.neural_network import MLPClassifier as SkMLP

import gradflow

REPO = pathlib.Path(__file__).resolve().parents[2]
P = 64
HELD_OUT = 100_000


def make_data(n, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=P) * (2.0 / np.sqrt(P))
    X = rng.normal(size=(n + HELD_OUT, P)).astype(np.float32)
    p = 1.0 / (1.0 + np.exp(-(X @ w + 0.25)))
    y = (rng.random(n + HELD_OUT) < p).astype(np.int64)
    return X[:n], y[:n], X[n:], y[n:]


def timed(fit, repeats):
    seconds, model = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        model = fit()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), model


# Each gradflow estimator and the examples/fit_npy.rs preset that is the same fit.
GRADFLOW = {
    "logistic-lbfgs": lambda: gradflow.LogisticRegression(random_state=0),
    "logistic-sgd": lambda: gradflow.LogisticRegression(
        solver="sgd", batch_size=256, max_iter=5, n_iter_no_change=None, random_state=0
    ),
    "mlp": lambda: gradflow.MLPClassifier(
        64, batch_size=256, max_iter=3, n_iter_no_change=None, random_state=0
    ),
}
SKLEARN = {
    "logistic-lbfgs": ("LogisticRegression()", lambda: SkLogistic()),
    "logistic-sgd": (
        "SGDClassifier(loss='log_loss')",
        lambda: SGDClassifier(loss="log_loss", random_state=0),
    ),
    "mlp": (
        "MLPClassifier(64, batch_size=256, max_iter=3)",
        lambda: SkMLP(64, batch_size=256, max_iter=3, n_iter_no_change=1000, random_state=0),
    ),
}


def rust_fit(path, preset):
    """One warm fit through the Rust API: the second of two in a fresh process (the first
    pays for the process's first pages and threads, as the untimed Python fit does)."""
    exe = REPO / "target" / "release" / "examples" / "fit_npy"
    out = subprocess.run(
        [str(exe), str(path), preset, "2"], check=True, capture_output=True, text=True
    )
    r = json.loads(out.stdout)
    return r["seconds"][-1], r["final_loss"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="compare.json")
    args = ap.parse_args()
    subprocess.run(
        ["cargo", "build", "--quiet", "--release", "--example", "fit_npy"], cwd=REPO, check=True
    )
    X, y, Xt, yt = make_data(args.rows)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "train.npy"
        np.save(path, np.column_stack([X, y.astype(np.float32)]))
        # gradflow's fits first, after one untimed Python fit (the first touches fresh
        # pages and starts the threads), Rust and Python in turn; scikit-learn's last, so
        # that its BLAS threads, which spin for a while after each call, do not share
        # the cores.
        for name, make in GRADFLOW.items():
            make().fit(X, y)
            # Alternating, so that both sides see the same load on a shared machine.
            rust_s, py_s = [], []
            for _ in range(args.repeats):
                seconds, rust_loss = rust_fit(path, name)
                rust_s.append(seconds)
                seconds, est = timed(lambda: make().fit(X, y), 1)
                py_s.append(seconds)
            rust_s, py_s = statistics.median(rust_s), statistics.median(py_s)
            rows.append(
                {
                    "workload": name,
                    "rust_api_s": rust_s,
                    "python_s": py_s,
                    "python_over_rust": py_s / rust_s,
                    "same_fit": abs(est.loss_curve_[-1] - rust_loss) <= 1e-6 * abs(rust_loss),
                    "gradflow_accuracy": est.score(Xt, yt),
                    "gradflow_epochs": est.n_iter_,
                }
            )
    for row in rows:
        sk_label, sk_make = SKLEARN[row["workload"]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            repeats = 1 if row["workload"] == "mlp" else args.repeats
            sk_s, sk = timed(lambda: sk_make().fit(X, y), repeats)
        row.update(
            {
                "sklearn": sk_label,
                "sklearn_s": sk_s,
                "sklearn_accuracy": sk.score(Xt, yt),
                "sklearn_epochs": int(np.max(sk.n_iter_)),
                "speedup": sk_s / row["python_s"],
            }
        )
    meta = {
        "rows": args.rows,
        "features": P,
        "repeats": args.repeats,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "sklearn": sklearn.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }
    pathlib.Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"{args.rows:,} × {P} float32 rows, {meta['machine']}, scikit-learn {sklearn.__version__}, "
          f"medians of {args.repeats}\n")
    print("| workload | Rust API | Python | Python / Rust | same fit | scikit-learn | "
          "its time | gradflow speed-up | held-out accuracy (gradflow / sklearn) | epochs |")
    print("|---|---:|---:|---:|---|---|---:|---:|---|---|")
    for r in rows:
        print(
            f"| {r['workload']} | {r['rust_api_s']:.3f} s | {r['python_s']:.3f} s | "
            f"{r['python_over_rust']:.3f} | {'yes' if r['same_fit'] else 'NO'} | "
            f"`{r['sklearn']}` | {r['sklearn_s']:.3f} s | {r['speedup']:.1f}× | "
            f"{r['gradflow_accuracy']:.4f} / {r['sklearn_accuracy']:.4f} | "
            f"{r['gradflow_epochs']} / {r['sklearn_epochs']} |"
        )


if __name__ == "__main__":
    main()
