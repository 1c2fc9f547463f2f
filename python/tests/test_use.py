"""The estimators in real use: scikit-learn's tools, pickling, partial_fit, weights, the
Rust model's own predictions, zero-copy input, Ctrl-C and the GIL."""

import _thread
import copy
import pickle
import re
import subprocess
import threading
import time
import tracemalloc

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conftest import REPO
from gradflow import LinearRegression, LogisticRegression, MLPClassifier


def test_pipeline_grid_search_in_two_processes_and_cross_validation(blobs):
    X, y = blobs
    pipe = make_pipeline(StandardScaler(), LogisticRegression(random_state=0))
    grid = GridSearchCV(pipe, {"logisticregression__alpha": [1e-4, 1e-2]}, cv=3, n_jobs=2)
    grid.fit(X, y)
    assert grid.best_score_ > 0.95
    assert grid.best_estimator_.predict(X).shape == y.shape
    scores = cross_val_score(MLPClassifier(hidden_layer_sizes=8, random_state=0), X, y, cv=3)
    assert scores.min() > 0.9


@pytest.mark.parametrize(
    "make",
    [
        lambda: LinearRegression(random_state=0),
        lambda: LogisticRegression(random_state=0),
        lambda: MLPClassifier(hidden_layer_sizes=8, max_iter=20, random_state=0),
    ],
)
def test_pickle_and_deepcopy_round_trip_through_the_model_file(make, blobs):
    X, y = blobs
    est = make()
    if isinstance(est, LinearRegression):
        y = X[:, 0] * 2.0 + 1.0
    # Unfitted: the parameters come back.
    assert pickle.loads(pickle.dumps(est)).get_params() == est.get_params()
    est.fit(X, y)
    for twin in (pickle.loads(pickle.dumps(est)), copy.deepcopy(est)):
        assert twin._model.to_json() == est._model.to_json()
        np.testing.assert_array_equal(twin.predict(X), est.predict(X))
        # The optimizer state travels too: going on gives the same parameters.
        if not isinstance(est, LinearRegression):
            a = copy.deepcopy(est).set_params(solver="adam").partial_fit(X, y)
            b = twin.set_params(solver="adam").partial_fit(X, y)
            np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_partial_fit_equals_fit_epoch_for_epoch(blobs):
    X, y = blobs
    settings = dict(
        hidden_layer_sizes=8,
        solver="adam",
        learning_rate_init=0.01,
        n_iter_no_change=None,
        random_state=3,
    )
    whole = MLPClassifier(max_iter=4, **settings).fit(X, y)
    parts = MLPClassifier(**settings)
    for _ in range(4):
        parts.partial_fit(X, y, classes=np.unique(y))
    for a, b in zip(whole.coefs_ + whole.intercepts_, parts.coefs_ + parts.intercepts_):
        np.testing.assert_array_equal(a, b)
    assert whole.n_iter_ == parts.n_iter_ == 4
    assert whole.loss_curve_ == parts.loss_curve_
    # warm_start: fit goes on from the previous fit, as partial_fit does.
    warm = MLPClassifier(max_iter=2, warm_start=True, **settings).fit(X, y).fit(X, y)
    np.testing.assert_array_equal(warm.coefs_[0], whole.coefs_[0])


def test_partial_fit_errors_name_what_is_wrong(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="classes must be passed"):
        LogisticRegression().partial_fit(X, y)
    est = LogisticRegression().partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="not in classes_"):
        est.partial_fit(X, y + 5)
    with pytest.raises(ValueError, match="features"):
        est.partial_fit(X[:, :3], y)
    with pytest.raises(ValueError, match="stochastic"):
        LogisticRegression(solver="lbfgs").partial_fit(X, y, classes=[0, 1, 2])


@pytest.mark.parametrize("Est", [LinearRegression, LogisticRegression])
def test_integer_sample_weights_equal_repeated_rows(Est):
    rng = np.random.RandomState(42)
    if Est is LinearRegression:
        X, y = make_regression(n_samples=60, n_features=4, noise=1.0, random_state=1)
    else:
        X, y = make_classification(n_samples=60, n_features=4, n_classes=3,
                                   n_informative=3, n_redundant=0, random_state=1)
    sw = rng.randint(0, 4, size=len(y))
    est = Est(tol=1e-7, random_state=0)
    weighted = Est(**est.get_params()).fit(X, y, sample_weight=sw)
    repeated = Est(**est.get_params()).fit(X.repeat(sw, axis=0), y.repeat(sw))
    # Both solve the same problem (weighted standardisation, C = 1 per weight unit);
    # float32 L-BFGS meets at ~1e-6, not scikit-learn's float64 1e-7.
    np.testing.assert_allclose(weighted.coef_, repeated.coef_, rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(weighted.intercept_, repeated.intercept_, rtol=2e-4, atol=2e-4)
    ones = Est(**est.get_params()).fit(X, y, sample_weight=np.ones(len(y)))
    plain = Est(**est.get_params()).fit(X, y)
    np.testing.assert_allclose(ones.coef_, plain.coef_, rtol=1e-6, atol=1e-6)


def test_solvers_reach_the_optimizer_they_name(blobs):
    X, y = blobs
    chosen = {}
    for solver, momentum in [("sgd", 0.9), ("sgd", 0.0), ("adam", 0.9), ("adagrad", 0.9),
                             ("lbfgs", 0.9), ("auto", 0.9)]:
        est = MLPClassifier(8, solver=solver, momentum=momentum, max_iter=2, random_state=0)
        chosen[solver, momentum] = est.fit(X, y).fit_report_
    assert chosen["sgd", 0.9]["optimizer"].startswith("Momentum { momentum: 0.9")
    assert chosen["sgd", 0.0]["optimizer"] == "Sgd"
    assert chosen["adam", 0.9]["optimizer"].startswith("Adam")
    assert chosen["adagrad", 0.9]["optimizer"].startswith("AdaGrad")
    assert chosen["lbfgs", 0.9]["solver"].startswith("Lbfgs")
    assert chosen["auto", 0.9]["optimizer"].startswith("Adam")  # gradflow's MLP choice
    linear = LogisticRegression().fit(X, y).fit_report_
    assert linear["solver"].startswith("Lbfgs")
    # The wall time and its part before the first step.
    assert 0 < linear["setup_seconds"] <= linear["seconds"]


def test_class_weight_dict_and_balanced(blobs):
    X, y = blobs
    heavy = LogisticRegression(class_weight={0: 1000.0, 1: 1.0, 2: 1.0}, alpha=1.0, random_state=0)
    share0 = np.mean(heavy.fit(X, y).predict(X + 3.0) == 0)
    plain = np.mean(LogisticRegression(alpha=1.0, random_state=0).fit(X, y).predict(X + 3.0) == 0)
    assert share0 > plain
    keep = (y != 2) | (np.arange(len(y)) % 10 == 0)  # class 2 rare
    balanced = LogisticRegression(class_weight="balanced", random_state=0).fit(X[keep], y[keep])
    assert balanced.score(X, y) > 0.9
    with pytest.raises(ValueError, match="balanced"):
        LogisticRegression(class_weight="balanced").partial_fit(X, y, classes=[0, 1, 2])


def _write_csv(path, X):
    # %.9g: every float32 comes back exactly.
    np.savetxt(path, X, delimiter=",", fmt="%.9g")


@pytest.mark.parametrize(
    "est",
    [
        LinearRegression(random_state=0),
        LogisticRegression(random_state=0),
        LogisticRegression(solver="sgd", random_state=0),
        MLPClassifier(hidden_layer_sizes=6, activation="tanh", max_iter=15, random_state=0),
    ],
    ids=["linear", "logistic", "softmax-sgd", "mlp"],
)
def test_python_predictions_equal_the_rust_model_s(est, blobs, gradflow_cli, tmp_path):
    X, y = blobs
    if isinstance(est, LinearRegression):
        y = X @ np.array([1.0, -2.0, 0.5, 0.0, 3.0], dtype=np.float32) + 0.25
    elif isinstance(est, LogisticRegression) and est.solver == "auto":
        y = np.where(y == 1, "b", "a")  # binary, string labels
    est.fit(X, y)
    model, data, out = tmp_path / "m.json", tmp_path / "x.csv", tmp_path / "p.csv"
    est.save(model)
    _write_csv(data, X)
    cmd = [gradflow_cli, "predict", "--model", str(model), "--data", str(data), "--out", str(out)]
    if hasattr(est, "predict_proba"):
        cmd.append("--proba")
    subprocess.run(cmd, check=True, capture_output=True)
    rows = np.genfromtxt(out, delimiter=",", names=True, dtype=None, encoding="utf-8")
    cols = rows.dtype.names
    if isinstance(est, LinearRegression):
        np.testing.assert_allclose(rows[cols[0]], est.predict(X), rtol=1e-6, atol=1e-6)
        return
    # The same classes, by label; probabilities as the CLI prints them (float32 digits).
    assert [str(c) for c in est.predict(X)] == [str(c) for c in rows[cols[0]]]
    proba = np.column_stack([rows[c] for c in cols[1:]])
    np.testing.assert_allclose(proba, est.predict_proba(X), atol=2e-6)


def test_the_fit_equals_the_rust_command_s_fit(blobs, gradflow_cli, tmp_path):
    """The same data and settings through `gradflow train` give the same parameters."""
    X, y = blobs
    data = tmp_path / "d.npy"
    np.save(data, np.column_stack([X, y.astype(np.float32)]))
    model = tmp_path / "rust.json"
    subprocess.run(
        [gradflow_cli, "train", "--model", "softmax", "--data", str(data), "--seed", "7",
         "--save", str(model)],
        check=True, capture_output=True,
    )
    ours = LogisticRegression(random_state=7).fit(X, y)
    from gradflow._gradflow import Model

    rust, _labels = Model.load(str(model))
    for (name, a), (_, b) in zip(ours._model.params(), rust.params()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_float32_c_contiguous_input_is_not_copied():
    X, y = make_classification(n_samples=400_000, n_features=16, random_state=0)
    X32 = np.ascontiguousarray(X, dtype=np.float32)  # 25.6 MB
    est = LogisticRegression(max_iter=2, standardize=False, random_state=0)

    def peak(X):
        tracemalloc.start()
        est.fit(X, y)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    # The labels (int64, sorted once by np.unique) are O(n); a copy of X is 16× more.
    assert peak(X32) < X32.nbytes / 2
    assert peak(X) >= X32.nbytes  # float64 is converted once: a float32 copy


def _long_fit():
    X, y = make_classification(n_samples=200_000, n_features=32, random_state=0)
    return X.astype(np.float32), y


def test_ctrl_c_stops_a_fit_within_a_second_and_leaves_the_estimator_as_it_was():
    X, y = _long_fit()
    # About 0.15 s an epoch on 2 cores: 200 epochs outlast the 1 s before Ctrl-C many
    # times over, yet a missed interrupt fails within a minute or so instead of hanging CI.
    long_enough = 200
    est = MLPClassifier(hidden_layer_sizes=64, max_iter=long_enough, n_iter_no_change=None,
                        random_state=0)
    for fitted_before in (False, True):
        before = est.__dict__.copy()
        sent = []

        def interrupt():
            sent.append(time.perf_counter())
            _thread.interrupt_main()

        timer = threading.Timer(1.0, interrupt)
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            est.fit(X, y)
        latency = time.perf_counter() - sent[0]
        assert latency < 1.0, f"stopped {latency:.2f} s after Ctrl-C"
        assert est.__dict__.keys() == before.keys()
        if not fitted_before:
            with pytest.raises(NotFittedError):
                est.predict(X)
            est.set_params(max_iter=1).fit(X[:1000], y[:1000])
            est.set_params(max_iter=long_enough)
        else:
            assert est._model is before["_model"]


def test_fit_releases_the_gil():
    X, y = _long_fit()
    ticks = []
    done = threading.Event()

    def count():
        while not done.is_set():
            ticks.append(1)
            time.sleep(0.001)

    counter = threading.Thread(target=count)
    counter.start()
    start = time.perf_counter()
    MLPClassifier(hidden_layer_sizes=32, max_iter=3, n_iter_no_change=None,
                  random_state=0).fit(X, y)
    elapsed = time.perf_counter() - start
    done.set()
    counter.join()
    # A thread that sleeps 1 ms a tick gets hundreds of ticks a second unless the fit
    # holds the GIL.
    assert len(ticks) > 0.2 * elapsed * 1000, (len(ticks), elapsed)


def test_bad_input_gets_scikit_learn_s_messages(blobs):
    X, y = blobs
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        LogisticRegression().fit(bad, y)
    import scipy.sparse as sp

    with pytest.raises(TypeError, match="[Ss]parse"):
        LogisticRegression().fit(sp.csr_matrix(X), y)
    with pytest.raises(ValueError):
        LogisticRegression().fit(np.array([["a", "b"]] * 10, dtype=object), [0, 1] * 5)
    est = LogisticRegression().fit(X, y)
    with pytest.raises(ValueError, match="5 features"):
        est.predict(X[:, :4])
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        MLPClassifier(hidden_layer_sizes=(8, 8)).fit(X, y)
    with pytest.raises(ValueError, match="backend"):
        LogisticRegression(backend="tpu").fit(X, y)
    with pytest.raises(ValueError, match="too large for dtype"):
        LinearRegression().fit(np.full((10, 2), 1e300), np.arange(10.0))


def test_feature_names_from_a_dataframe(blobs):
    pd = pytest.importorskip("pandas")
    X, y = blobs
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    est = LogisticRegression().fit(df, y)
    assert list(est.feature_names_in_) == list(df.columns)
    assert est.n_features_in_ == 5


def test_a_saved_model_keeps_its_feature_names_for_the_command(
    blobs, gradflow_cli, tmp_path
):
    """Fitted on a DataFrame, the model file names its features: `gradflow predict` then
    reads a CSV's columns by name, in any order."""
    pd = pytest.importorskip("pandas")
    X, y = blobs
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    est = LogisticRegression().fit(df, y)
    est.save(tmp_path / "m.json")
    moved = df[df.columns[::-1]]
    moved.to_csv(tmp_path / "moved.csv", index=False)
    out = subprocess.run(
        [gradflow_cli, "predict", "--model", str(tmp_path / "m.json"), "--data",
         str(tmp_path / "moved.csv")],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    assert [int(v) for v in out[1:]] == list(est.predict(df))


def test_gpu_backend_agrees_with_the_cpu_and_verifies(blobs, gpu):
    if not gpu:
        pytest.skip("no GPU adapter (GRADFLOW_REQUIRE_GPU=1 makes this a failure)")
    X, y = blobs
    cpu = MLPClassifier(hidden_layer_sizes=8, max_iter=5, random_state=0).fit(X, y)
    dev = MLPClassifier(hidden_layer_sizes=8, max_iter=5, random_state=0, backend="gpu",
                        verify=True).fit(X, y)
    assert dev.fit_report_["backend"].startswith("gpu")
    np.testing.assert_allclose(dev.predict_proba(X), cpu.predict_proba(X), atol=1e-4)


def test_readme_python_example_runs():
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README has a Python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_penalty_none_is_no_penalty_as_in_scikit_learn():
    """penalty=None fits the unpenalised model (scikit-learn's meaning), not the default
    L2; a strength given with it is ignored with a warning."""
    rng = np.random.RandomState(0)
    X = rng.randn(200, 3)
    y = (X[:, 0] + 0.5 * rng.randn(200) > 0).astype(int)
    free = LogisticRegression(penalty=None, tol=1e-8, max_iter=2000).fit(X, y)
    l2 = LogisticRegression(tol=1e-8, max_iter=2000).fit(X, y)
    # The unpenalised optimum has the larger weights, and zero gradient of the bare loss.
    assert abs(free.coef_[0, 0]) > abs(l2.coef_[0, 0]) * 1.01
    p = free.predict_proba(X)[:, 1]
    grad = np.concatenate([X.T @ (p - y), [np.sum(p - y)]]) / len(y)
    assert np.max(np.abs(grad)) < 1e-5
    with pytest.warns(UserWarning, match="penalty=None ignores alpha=0.5"):
        LinearRegression(alpha=0.5).fit(X, X[:, 0])


def test_a_fit_that_hits_its_cap_warns_as_scikit_learn_does(blobs):
    from sklearn.exceptions import ConvergenceWarning

    X, y = blobs
    with pytest.warns(ConvergenceWarning, match="did not converge in 2 iterations"):
        est = LogisticRegression(max_iter=2).fit(X, y)
    assert not est.converged_
    with pytest.warns(ConvergenceWarning, match="did not converge in 3 epochs"):
        MLPClassifier(hidden_layer_sizes=4, max_iter=3, random_state=0).fit(X, y)
    # Every epoch asked for (no stopping rule), and partial_fit's one epoch: no warning.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        MLPClassifier(hidden_layer_sizes=4, max_iter=3, n_iter_no_change=None).fit(X, y)
        MLPClassifier(hidden_layer_sizes=4).partial_fit(X, y, classes=np.unique(y))


def test_mlp_auto_batch_is_scikit_learn_s(blobs):
    """batch_size='auto' is min(200, n_samples): 600 rows are three updates an epoch."""
    X, y = blobs
    auto = MLPClassifier(hidden_layer_sizes=4, max_iter=2, n_iter_no_change=None,
                         random_state=1).fit(X, y)
    given = MLPClassifier(hidden_layer_sizes=4, max_iter=2, n_iter_no_change=None,
                          batch_size=200, random_state=1).fit(X, y)
    for a, b in zip(auto.coefs_, given.coefs_):
        np.testing.assert_array_equal(a, b)
    small = MLPClassifier(hidden_layer_sizes=4, max_iter=1, n_iter_no_change=None,
                          random_state=1).fit(X[:50], y[:50])
    whole = MLPClassifier(hidden_layer_sizes=4, max_iter=1, n_iter_no_change=None,
                          batch_size=50, random_state=1).fit(X[:50], y[:50])
    np.testing.assert_array_equal(small.coefs_[0], whole.coefs_[0])


def test_normal_equations_are_scikit_learn_s_linear_regression_and_ridge():
    from sklearn.linear_model import LinearRegression as SkLinear
    from sklearn.linear_model import Ridge

    X, y = make_regression(n_samples=400, n_features=6, noise=5.0, random_state=3)
    X[:, 2] *= 1e3
    w = np.random.RandomState(0).uniform(0.5, 2.0, size=400)
    ours = LinearRegression(solver="normal", standardize=False).fit(X, y, sample_weight=w)
    sk = SkLinear().fit(X, y, sample_weight=w)
    np.testing.assert_allclose(ours.coef_, sk.coef_, rtol=1e-5, atol=1e-7)
    assert abs(ours.intercept_ - sk.intercept_) < 1e-4
    assert ours.converged_ and "closed form" in ours.fit_report_["stop"]
    ridge = LinearRegression(solver="normal", penalty="l2", alpha=0.5, standardize=False)
    ridge.fit(X, y)
    sk = Ridge(alpha=400 * 0.5 / 2).fit(X, y)
    np.testing.assert_allclose(ridge.coef_, sk.coef_, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="solver 'normal': must be one of"):
        LogisticRegression(solver="normal").fit(X, y > 0)
    with pytest.raises(ValueError, match="partial_fit is only available"):
        LinearRegression(solver="normal").partial_fit(X, y)


def test_a_column_float32_holds_coarsely_is_warned_about():
    X, y = make_regression(n_samples=300, n_features=3, noise=1.0, random_state=0)
    X[:, 2] += 1e7
    with pytest.warns(UserWarning, match="column 2's values lie near 1.0000e7"):
        LinearRegression().fit(X, y)
