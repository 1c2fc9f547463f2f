"""PyTorch on the device it finds (CUDA where there is one): the peers' workloads,
the same data, batches and learning rates as ../shared/peers/python/bench_jax.py.

Run beside the peers' common.py (scripts/device-run.sh copies both into one folder):
    python bench_torch.py [W1 W2 W3 W4 W5]

Variants for the mini-batch workloads (W1-W3), both with the numpy loop's batches (the
per-epoch permutation from the same numpy Generator and seed, so the final losses agree
with numpy and JAX to rounding):
  * "eager": the loop a PyTorch user writes: gather the batch, the loss, autograd's
    backward, torch.optim.SGD(foreach=True).step(), one Python iteration per batch.
  * "cuda graph": the same step (gather, forward, backward, optimizer) captured once in a
    torch.cuda.CUDAGraph and replayed per batch with the batch's indices copied into a
    static index tensor: PyTorch without the per-kernel launch cost of Python.
The tail batch (n % 256 rows) runs eagerly in both. W4 (full-batch GD, 50 iterations) is
eager and graph-replayed the same way; W5 solves the normal equations in float32.
TF32 is off: float32 products, as gradflow's kernels compute them. Warm-up (allocation,
cuBLAS handles, the capture) is untimed, as JAX's compile is in bench_jax.py.
"""
import sys
import time

import numpy as np
import torch

import common as C

DEV = torch.device("cuda" if torch.cuda.is_available() else "cpu")
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def sync():
    if DEV.type == "cuda":
        torch.cuda.synchronize()


def mse_loss(params, xb, yb):
    w, b = params
    r = xb @ w + b - yb
    return torch.mean(r * r)


def log_loss(params, xb, yb):
    w, b = params
    z = xb @ w + b
    return torch.mean(torch.nn.functional.softplus(z) - yb * z)


def mlp_loss(params, xb, yb):
    W1, b1, W2, b2 = params
    H = torch.sigmoid(xb @ W1 + b1)
    Z = H @ W2 + b2
    return torch.nn.functional.cross_entropy(Z, yb)


class Trainer:
    """Parameters, optimizer and (on CUDA) the captured step for one workload."""

    def __init__(self, loss, params0, X, y, batch, lr):
        self.loss, self.X, self.y, self.batch = loss, X, y, batch
        self.p0 = [torch.as_tensor(np.asarray(a), device=DEV).clone() for a in params0]
        self.params = [p.clone().requires_grad_(True) for p in self.p0]
        self.opt = torch.optim.SGD(self.params, lr=lr, foreach=True)
        self.idx = torch.zeros(batch, dtype=torch.int64, device=DEV)
        self.graph = None

    def reset(self):
        with torch.no_grad():
            for p, q in zip(self.params, self.p0):
                p.copy_(q)

    def step(self, idx):
        self.opt.zero_grad(set_to_none=True)
        self.loss(self.params, self.X[idx], self.y[idx]).backward()
        self.opt.step()

    def capture(self):
        """The documented whole-step capture: warm up on a side stream, then record."""
        if DEV.type != "cuda":
            return False
        self.idx.copy_(torch.arange(self.batch, device=DEV))
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                self.step(self.idx)
        torch.cuda.current_stream().wait_stream(s)
        self.graph = torch.cuda.CUDAGraph()
        self.opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            self.loss(self.params, self.X[self.idx], self.y[self.idx]).backward()
            self.opt.step()
        sync()
        self.reset()
        return True

    def epochs(self, n, epochs, shuffle_seed, graph):
        self.reset()
        sync()
        rng = np.random.default_rng(shuffle_seed)
        b = self.batch
        nb = n // b
        t0 = time.perf_counter()
        for _ in range(epochs):
            perm = torch.from_numpy(rng.permutation(n).astype(np.int64)).to(DEV)
            for i in range(nb):
                if graph:
                    self.idx.copy_(perm[i * b:(i + 1) * b])
                    self.graph.replay()
                else:
                    self.step(perm[i * b:(i + 1) * b])
            if nb * b < n:
                self.step(perm[nb * b:])
        sync()
        return time.perf_counter() - t0

    def numpy_params(self):
        return [p.detach().cpu().numpy() for p in self.params]


def minibatch_rows(cfg, loss, params0, Xn, yn, evaluate, extra_fn):
    X = torch.from_numpy(Xn).to(DEV)
    y = torch.from_numpy(yn).to(DEV)
    if yn.dtype == np.int32:
        y = y.long()
    tr = Trainer(loss, params0, X, y, cfg["batch"], cfg["lr"])
    t0 = time.perf_counter()
    tr.epochs(min(cfg["n"], 64 * cfg["batch"]), 1, cfg["shuffle_seed"], graph=False)
    captured = tr.capture()
    wt = time.perf_counter() - t0
    C.log(f"  torch {cfg['name']} warm-up (and capture) {wt:.2f}s")
    rows = []
    variants = [("eager", False)] + ([("cuda graph", True)] if captured else [])
    for variant, graph in variants:
        times, out = [], None
        for _ in range(C.REPEATS):
            times.append(tr.epochs(cfg["n"], cfg["epochs"], cfg["shuffle_seed"], graph))
            C.log(f"  torch {cfg['name']} {variant} {times[-1]:.4f}s")
        out = tr.numpy_params()
        rows.append(C.row(cfg, "torch", variant,
                          "mini-batch SGD B=256, autograd, optim.SGD" +
                          (", one CUDA graph per step" if graph else ", eager"),
                          times, cfg["n"] * cfg["epochs"], epochs=cfg["epochs"],
                          jit_warmup_s=wt, final_loss=evaluate(out), **extra_fn(out)))
    return rows


def fullbatch_rows(cfg4, p0, X, y, Xn, yn, w_true):
    tr = Trainer(mse_loss, p0, X, y, 1, cfg4["lr"])

    def full_step():
        tr.opt.zero_grad(set_to_none=True)
        mse_loss(tr.params, X, y).backward()
        tr.opt.step()

    def eager():
        tr.reset()
        sync()
        t0 = time.perf_counter()
        for _ in range(cfg4["iters"]):
            full_step()
        sync()
        return time.perf_counter() - t0

    t0 = time.perf_counter()
    eager()
    graph = None
    if DEV.type == "cuda":
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                full_step()
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        tr.opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            mse_loss(tr.params, X, y).backward()
            tr.opt.step()
        sync()
    wt = time.perf_counter() - t0

    def replayed():
        tr.reset()
        sync()
        t0 = time.perf_counter()
        for _ in range(cfg4["iters"]):
            graph.replay()
        sync()
        return time.perf_counter() - t0

    rows = []
    for variant, fn in [("eager", eager)] + ([("cuda graph", replayed)] if graph else []):
        times = []
        for _ in range(C.REPEATS):
            times.append(fn())
            C.log(f"  torch W4 {variant} {times[-1]:.4f}s")
        w, b = tr.numpy_params()
        rows.append(C.row(cfg4, "torch", variant, "full-batch GD, 50 iters, autograd",
                          times, cfg4["n"] * cfg4["iters"], iters=cfg4["iters"],
                          jit_warmup_s=wt, final_loss=C.mse(Xn, yn, w, b), loss_kind="MSE",
                          w_max_abs_err=C.w_err(w, w_true), b=float(b)))
    return rows


def normal_equations(X, y):
    n, p = X.shape
    A = torch.empty((p + 1, p + 1), dtype=torch.float32, device=DEV)
    s = X.sum(dim=0)
    A[:p, :p] = X.T @ X
    A[:p, p] = s
    A[p, :p] = s
    A[p, p] = float(n)
    rhs = torch.cat([X.T @ y, y.sum().reshape(1)])
    theta = torch.linalg.solve(A, rhs)
    return theta[:p], theta[p]


def run(which):
    rows = []
    if {"W1", "W4", "W5"} & which:
        cfg = C.W1
        Xn, yn, w_true, b_true = C.make_linear(cfg["n"], cfg["p"], cfg["noise"], cfg["data_seed"])
        p0 = (np.zeros(cfg["p"], np.float32), np.zeros((), np.float32))
        if "W1" in which:
            rows += minibatch_rows(cfg, mse_loss, p0, Xn, yn,
                                   lambda o: C.mse(Xn, yn, o[0], o[1]),
                                   lambda o: dict(loss_kind="MSE",
                                                  w_max_abs_err=C.w_err(o[0], w_true),
                                                  b=float(o[1])))
        X = torch.from_numpy(Xn).to(DEV)
        y = torch.from_numpy(yn).to(DEV)
        if "W4" in which:
            rows += fullbatch_rows(C.W4, p0, X, y, Xn, yn, w_true)
        if "W5" in which:
            cfg5 = C.W5
            t0 = time.perf_counter()
            normal_equations(X, y)
            sync()
            wt = time.perf_counter() - t0
            times = []
            for _ in range(C.REPEATS):
                sync()
                t0 = time.perf_counter()
                out = normal_equations(X, y)
                sync()
                times.append(time.perf_counter() - t0)
            w, b = (a.cpu().numpy() for a in out)
            rows.append(C.row(cfg5, "torch", "solve(X^T X)",
                              "normal equations: X.T@X + torch.linalg.solve, float32",
                              times, cfg5["n"], jit_warmup_s=wt, final_loss=C.mse(Xn, yn, w, b),
                              loss_kind="MSE", w_max_abs_err=C.w_err(w, w_true), b=float(b)))
        del X, y, Xn, yn
    if "W2" in which:
        cfg = C.W2
        Xn, yn, w_true, b_true = C.make_logistic(cfg["n"], cfg["p"], cfg["data_seed"])
        p0 = (np.zeros(cfg["p"], np.float32), np.zeros((), np.float32))
        rows += minibatch_rows(cfg, log_loss, p0, Xn, yn,
                               lambda o: C.logloss(Xn, yn, o[0], o[1]),
                               lambda o: dict(loss_kind="log loss",
                                              w_max_abs_err=C.w_err(o[0], w_true)))
        del Xn, yn
    if "W3" in which:
        cfg = C.W3
        Xn, yn = C.make_mlp_data(cfg["n"], cfg["d"], cfg["k"], cfg["data_seed"])
        p0 = C.mlp_init(cfg["d"], cfg["h"], cfg["k"], cfg["init_seed"])
        rows += minibatch_rows(cfg, mlp_loss, p0, Xn, yn,
                               lambda o: C.mlp_ce(Xn, yn, *o),
                               lambda o: dict(loss_kind="cross-entropy"))
    return rows


def table(rows):
    """The rows as markdown: median seconds, samples per second, ms per step, loss."""
    print("| workload | variant | median s | samples/s | final loss |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workload']} | {r['variant']} | {r['median_s']:.4f} | "
              f"{r['samples_per_s']:.4g} | {r['final_loss']:.6g} |")


if __name__ == "__main__":
    which = set(sys.argv[1:]) or {"W1", "W2", "W3", "W4", "W5"}
    name = torch.cuda.get_device_name() if DEV.type == "cuda" else "cpu"
    C.log(f"torch {torch.__version__} device={DEV} ({name})")
    rows = []
    for w in ["W1", "W4", "W5", "W2", "W3"]:
        if w in which:
            try:
                rows += run({w})
            except Exception as e:  # one workload's failure must not lose the others
                C.log(f"  torch {w} failed: {e!r}")
    table(rows)
    C.save("torch", rows, {"framework": "torch", "workloads": sorted(which),
                           "torch_device": name})
