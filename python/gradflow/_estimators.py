"""The scikit-learn estimators over gradflow's Rust trainer.

Validation, labels and fitted attributes are scikit-learn's business and are done here
with scikit-learn's own helpers; the fit itself is one call into ``gradflow._gradflow``,
which trains with the GIL released and returns a fitted model and a report.

Precision: gradflow trains and predicts in float32 (its CPU kernels and its GPU kernels
both); inputs of other types are converted once, a C-contiguous float32 array is read in
place. The outputs are float64, as scikit-learn's.

Ctrl-C during ``fit`` or ``partial_fit`` stops training within a step (an L-BFGS fit:
within one pass over the data) and raises ``KeyboardInterrupt``; the estimator is then
exactly as it was before the call: unfitted before its first fit, otherwise with its
previous fit (so ``partial_fit`` can go on from there).
"""

import numbers
import warnings

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state, compute_class_weight
from sklearn.utils.extmath import softmax
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import _gradflow

_MAX_SEED = np.iinfo(np.uint32).max


def _unique_inverse(y):
    """``np.unique(y, return_inverse=True)``, by counting when y holds small
    non-negative integers (class labels, usually): one pass instead of a sort."""
    if y.dtype.kind in "iu" and y.size and 0 <= y.min() and y.max() < 1 << 20:
        counts = np.bincount(y)
        present = counts > 0
        return np.flatnonzero(present).astype(y.dtype), (np.cumsum(present) - 1)[y]
    return np.unique(y, return_inverse=True)


class _GradflowEstimator(BaseEstimator):
    """What every gradflow estimator shares: settings, the fit call, the output layer."""

    # True for the classifiers (labels, classes_, class weights); each estimator's
    # `_architecture` names the native model for the data.
    _is_classifier = False
    # The solvers `solver` may name.
    _solvers = ("auto", "lbfgs", "sgd", "adam", "adagrad")

    def __sklearn_is_fitted__(self):
        return hasattr(self, "_model")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        return tags

    # --- settings -------------------------------------------------------------------

    def _seed(self):
        """random_state as gradflow's seed: an int is used as it is (the same seed as the
        Rust API's), None draws one from NumPy's global generator, as scikit-learn does."""
        rs = self.random_state
        if isinstance(rs, numbers.Integral) and not isinstance(rs, bool):
            if not 0 <= rs <= _MAX_SEED:
                raise ValueError(f"random_state {rs}: must be in [0, 2**32 - 1]")
            return int(rs)
        return int(check_random_state(rs).randint(_MAX_SEED))

    def _settings(self, partial, n_samples):
        """The dictionary `gradflow._gradflow.fit` reads; see its `config`."""
        solver = self.solver
        solvers = self._solvers
        if solver not in solvers:
            raise ValueError(
                f"solver {solver!r}: must be one of {', '.join(map(repr, solvers))}"
            )
        if partial and solver in ("lbfgs", "normal"):
            raise ValueError(
                f"partial_fit is only available for stochastic solvers: {solver!r} reads "
                "all rows at once; use solver='sgd', 'adam' or 'auto'"
            )
        if self.backend not in ("cpu", "gpu", "auto"):
            raise ValueError(f"backend {self.backend!r}: must be 'cpu', 'gpu' or 'auto'")
        for name in ("max_iter", "n_iter_no_change"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, numbers.Integral) or v < 1):
                raise ValueError(f"{name} {v!r}: must be an integer ≥ 1 or None")
        batch_size = self.batch_size
        if batch_size == "auto":
            batch_size = self._auto_batch(n_samples)
        elif batch_size is not None and (
            not isinstance(batch_size, numbers.Integral) or batch_size < 1
        ):
            raise ValueError(f"batch_size {batch_size!r}: must be an integer ≥ 1 or 'auto'")
        if self.penalty is None and self.alpha is not None:
            # scikit-learn's LogisticRegression warns the same of C with penalty=None.
            warnings.warn(
                f"penalty=None ignores alpha={self.alpha!r}: set penalty='l2' (or 'l1', "
                "'elasticnet') to use it",
                UserWarning,
                stacklevel=4,
            )
        s = {
            "solver": "sgd" if (partial and solver == "auto") else solver,
            "learning_rate": self.learning_rate_init,
            "epochs": 1 if partial else self.max_iter,
            "batch_size": None if batch_size is None else int(batch_size),
            "penalty": self.penalty,
            "alpha": self._alpha(solver, batch_size, n_samples),
            "l1_ratio": self.l1_ratio,
            "tol": self.tol,
            # partial_fit is one epoch a call: no plateau rule, no held-out rows.
            "n_iter_no_change": None if partial else self.n_iter_no_change,
            "early_stopping": False if partial else bool(self.early_stopping),
            "validation_fraction": float(self.validation_fraction),
            "shuffle": bool(self.shuffle),
            "seed": self._seed(),
            "standardize": bool(self.standardize),
            "backend": self.backend,
            "verify": bool(self.verify),
        }
        if solver in ("sgd", "adam", "adagrad"):
            # The mini-batch loop with this optimizer.
            s["solver"] = "sgd"
            s["optimizer"] = solver
            if solver == "sgd" and hasattr(self, "momentum"):
                s["momentum"] = float(self.momentum)
        return s

    def _alpha(self, solver, batch_size, n_samples):
        """The penalty strength on gradflow's mean loss: ``alpha`` as it is (the meaning
        of scikit-learn's SGD estimators)."""
        return self.alpha

    def _auto_batch(self, n_samples):
        """The batch size of ``batch_size='auto'``; None: gradflow's (32)."""
        return None

    # --- fitting --------------------------------------------------------------------

    def _fit(self, X, y, sample_weight, *, partial, classes=None):
        go_on = hasattr(self, "_model") and (partial or self.warm_start)
        before = dict(self.__dict__)
        try:
            return self._fit_checked(X, y, sample_weight, partial, go_on, classes)
        except BaseException:
            # A failed or interrupted fit leaves the estimator as it was.
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    def _fit_checked(self, X, y, sample_weight, partial, go_on, classes):
        X, y = validate_data(
            self,
            X,
            y,
            reset=not go_on,
            dtype=np.float32,
            order="C",
            accept_sparse=False,
            # The Rust side checks every value once, vectorised, with scikit-learn's
            # wording ("Input X contains NaN."): a second pass here would cost as much.
            ensure_all_finite=False,
            y_numeric=not self._is_classifier,
        )
        if self._is_classifier:
            y_fit, n_classes, class_weight = self._encode_labels(y, partial, go_on, classes)
        else:
            y_fit, n_classes, class_weight = np.ascontiguousarray(y, dtype=np.float32), 0, None
        if sample_weight is not None:
            sample_weight = _check_sample_weight(
                sample_weight, X, dtype=np.float32, ensure_non_negative=True
            )
            sample_weight = np.ascontiguousarray(sample_weight, dtype=np.float32)
        settings = self._settings(partial, X.shape[0])
        settings["class_weight"] = class_weight
        kind, hidden, activation = self._architecture(n_classes)
        warm = self._model if go_on else None
        model, report = _gradflow.fit(
            kind,
            X,
            y_fit,
            n_classes,
            settings,
            sample_weight=sample_weight,
            hidden=hidden,
            activation=activation,
            warm=warm,
        )
        self._model = model
        self.n_iter_ = model.epochs_done
        losses = [float(v) for v in report["epoch_losses"]]
        self.loss_curve_ = (self.loss_curve_ + losses) if go_on else losses
        self.converged_ = bool(report["converged"])
        for note in report["notes"]:
            # The data lost precision on the way in (float32): the user can act on it.
            if note.startswith("features lose precision"):
                warnings.warn(note, UserWarning, stacklevel=4)
        # scikit-learn's ConvergenceWarning when a stopping rule was in force and the cap
        # came first (not for partial_fit's single epoch, nor for n_iter_no_change=None
        # without early stopping: that asks for every epoch).
        # (An L-BFGS fit that stalls at float32's precision is as converged as float32
        # allows: no warning.)
        ruled = (
            report["lbfgs"]
            or settings["n_iter_no_change"] is not None
            or settings["early_stopping"]
        )
        if not partial and report["capped"] and ruled:
            unit = "iterations" if report["lbfgs"] else "epochs"
            warnings.warn(
                f"{type(self).__name__} did not converge in {len(losses)} {unit} (its "
                "stopping rule was not met); increase max_iter",
                ConvergenceWarning,
                stacklevel=4,
            )
        if report["validation_losses"]:
            self.validation_loss_curve_ = list(report["validation_losses"])
        self.fit_report_ = {
            k: report[k]
            for k in (
                "backend", "solver", "optimizer", "stop", "learning_rate", "rate_from",
                "notes", "seconds", "setup_seconds",
            )
        }
        self._set_parameters()
        return self

    def _encode_labels(self, y, partial, go_on, classes):
        # A 1-D integer array is always 'binary' or 'multiclass' to scikit-learn's
        # type_of_target, whose passes over y cost as much as the rest of the labels' work.
        if not (y.ndim == 1 and y.dtype.kind in "iu"):
            check_classification_targets(y)
        if partial and not go_on and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        if go_on or classes is not None:
            # Labels against known classes: each must be one of them.
            known = self.classes_ if go_on else np.unique(classes)
            idx = np.clip(np.searchsorted(known, y), 0, len(known) - 1)
            if not np.array_equal(known[idx], y):
                unseen = np.setdiff1d(np.unique(y), known)
                raise ValueError(f"labels {unseen!r} are not in classes_ {known!r}")
        else:
            known, idx = _unique_inverse(y)
        if not go_on:
            if len(known) < 2:
                raise ValueError(
                    f"{type(self).__name__} needs samples of at least 2 classes in the data, "
                    f"but the data contain only one class: {known[0]!r}"
                )
            self.classes_ = known
        cw = self.class_weight
        if cw is None:
            weights = None
        elif partial and isinstance(cw, str) and cw == "balanced":
            raise ValueError(
                "class_weight='balanced' is not supported by partial_fit: the class counts "
                "of one call are not those of the data; pass the weights as a dict"
            )
        else:
            # scikit-learn's helper: 'balanced' is n / (k · count), a dict names labels
            # (an unknown one is its ValueError). Given as explicit weights, balanced
            # ones equal the same dict passed by hand, bit for bit.
            weights = [float(w) for w in compute_class_weight(cw, classes=self.classes_, y=y)]
        return idx.astype(np.uint32), len(self.classes_), weights

    # --- prediction -----------------------------------------------------------------

    def _output(self, X):
        """The output layer for X, float64 (n × outputs)."""
        check_is_fitted(self)
        X = validate_data(
            self, X, reset=False, dtype=np.float32, order="C", accept_sparse=False,
            ensure_all_finite=False,  # checked by the Rust side, as in fit
        )
        return self._model.output(X).astype(np.float64)

    def _unscaled(self):
        """The parameters as acting on raw features: (name → float64 array), with the
        standardisation folded into the first layer (x ↦ (x − m)/s)."""
        params = {name: np.asarray(v, dtype=np.float64) for name, v in self._model.params()}
        first_w, first_b = ("W1", "b1") if "W1" in params else ("W", "b")
        scaler = self._model.scaler()
        if scaler is not None:
            mean, scale = (np.asarray(a, dtype=np.float64) for a in scaler)
            w = params[first_w] / scale[:, None]
            params[first_b] = params[first_b] - mean @ w
            params[first_w] = w
        return params

    def save(self, path):
        """Writes the fitted model as a gradflow model file (JSON, written atomically),
        which ``gradflow predict`` and the Rust API's ``SavedModel::load`` read; a
        classifier's file names its classes, and a model fitted on a DataFrame its
        features (``gradflow predict`` then reads a CSV's columns by name)."""
        check_is_fitted(self)
        labels = [str(c) for c in self.classes_] if self._is_classifier else None
        names = getattr(self, "feature_names_in_", None)
        features = None if names is None else [str(n) for n in names]
        self._model.save(str(path), labels, features)


class _LinearParams:
    def _set_parameters(self):
        p = self._unscaled()
        w, b = p["W"], p["b"][0]
        if self._is_classifier:
            self.coef_, self.intercept_ = w.T.copy(), b.copy()
        else:
            self.coef_, self.intercept_ = w[:, 0].copy(), float(b[0])


class LinearRegression(RegressorMixin, _LinearParams, _GradflowEstimator):
    """Least-squares linear regression trained by gradflow (L-BFGS, mini-batch SGD, or the
    normal equations).

    Parameters
    ----------
    penalty : {None, 'l2', 'l1', 'elasticnet'}, default=None
        Penalty on the weights (not the intercept): ``alpha`` times ½‖w‖² (l2), ‖w‖₁
        (l1), or their mix by ``l1_ratio``, added to the mean squared error (the course
        notes' 1/N Σ (ŷ − y)², no ½).
    alpha : float or None, default=None
        Strength of the penalty (None: 1e-4 for l1 and elastic net, none for l2).
    l1_ratio : float, default=0.15
        Share of L1 in the elastic net.
    solver : {'auto', 'lbfgs', 'normal', 'sgd', 'adam', 'adagrad'}, default='auto'
        'auto': the normal equations up to 64 features (L-BFGS past them, or with
        ``backend='gpu'``) for in-memory data with a smooth penalty, else SGD (the
        classifiers: L-BFGS or SGD).
        'normal': the closed form, the normal equations solved in float64 (the exact
        least-squares solution, as scikit-learn's ``LinearRegression``; with
        ``penalty='l2'``, ``Ridge(alpha=n_samples * alpha / 2)``).
    max_iter : int or None, default=None
        The most epochs (L-BFGS: iterations); None: gradflow's choice (1000).
    tol : float or None, default=None
        L-BFGS: gradient tolerance; SGD: the improvement that counts for
        ``n_iter_no_change`` (None: 1e-4).
    n_iter_no_change : int or None, default=10
        Stop after this many epochs without improvement (None: run every epoch).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows and stop when their loss stops
        improving, keeping the best epoch's parameters (mini-batch solvers only).
    validation_fraction : float, default=0.1
    batch_size : int or 'auto', default='auto'
        Rows per update ('auto': 32).
    learning_rate_init : float or None, default=None
        Step size; None: chosen from the data's curvature (and backed off if it
        diverges).
    shuffle : bool, default=True
        A fresh permutation of the rows every epoch.
    random_state : int, RandomState or None, default=None
        Seeds the shuffles, the initialisation and the held-out rows.
    warm_start : bool, default=False
        ``fit`` goes on from the previous fit's parameters and optimizer state.
    backend : {'cpu', 'gpu', 'auto'}, default='cpu'
        Where to train: the CPU kernels, the GPU (wgpu), or the GPU when a hardware one
        exists.
    standardize : bool, default=True
        Train on standardised features (mean 0, variance 1); the scaling is kept with
        the model and ``coef_`` is given for the raw features.
    verify : bool, default=False
        GPU: rerun every step with the CPU reference kernels and compare.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : float
    n_features_in_, feature_names_in_, n_iter_, loss_curve_, converged_, fit_report_
    """

    def __init__(
        self,
        *,
        penalty=None,
        alpha=None,
        l1_ratio=0.15,
        solver="auto",
        max_iter=None,
        tol=None,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        batch_size="auto",
        learning_rate_init=None,
        shuffle=True,
        random_state=None,
        warm_start=False,
        backend="cpu",
        standardize=True,
        verify=False,
    ):
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.shuffle = shuffle
        self.random_state = random_state
        self.warm_start = warm_start
        self.backend = backend
        self.standardize = standardize
        self.verify = verify

    # The closed form is linear regression's alone.
    _solvers = _GradflowEstimator._solvers + ("normal",)

    def _architecture(self, n_classes):
        return "linear", 0, "sigmoid"

    def fit(self, X, y, sample_weight=None):
        """Fits the model to X (n_samples × n_features) and y; returns self."""
        return self._fit(X, y, sample_weight, partial=False)

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over X, y, going on from the previous call (the first call starts
        from zeros and fits the standardisation to its rows, kept for every later call:
        make the first batch representative, or pass ``standardize=False`` with features
        already scaled)."""
        return self._fit(X, y, sample_weight, partial=True)

    def predict(self, X):
        """Predicted targets, float64 of shape (n_samples,)."""
        return self._output(X)[:, 0]


class _Classifier(ClassifierMixin, _GradflowEstimator):
    _is_classifier = True

    def fit(self, X, y, sample_weight=None):
        """Fits the model to X (n_samples × n_features) and labels y; returns self."""
        return self._fit(X, y, sample_weight, partial=False)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over X, y, going on from the previous call; the first call needs
        ``classes``, every label there will be, and fits the standardisation to its rows
        (kept for every later call: make the first batch representative, or pass
        ``standardize=False`` with features already scaled)."""
        return self._fit(X, y, sample_weight, partial=True, classes=classes)

    def predict_proba(self, X):
        """Class probabilities, float64 of shape (n_samples, n_classes), in the order
        of ``classes_``."""
        z = self._output(X)
        if z.shape[1] == 1:
            p1 = expit(z[:, 0])
            return np.column_stack([1.0 - p1, p1])
        return softmax(z, copy=False)

    def predict_log_proba(self, X):
        """The logarithm of ``predict_proba``."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable class of each row (from ``classes_``)."""
        z = self._output(X)
        if z.shape[1] == 1:
            return self.classes_[(z[:, 0] > 0).astype(np.intp)]
        return self.classes_[np.argmax(z, axis=1)]


class LogisticRegression(_LinearParams, _Classifier):
    """Logistic regression (binary) and multinomial logistic regression (softmax, for
    more than two classes) trained by gradflow.

    Parameters as :class:`LinearRegression`'s, and:

    penalty : {None, 'l2', 'l1', 'elasticnet'}, default='l2'
        None: no penalty (a given ``alpha`` is then ignored, with a warning).
    alpha : float or None, default=None
        Strength of the penalty on the mean loss; None with 'l2': 1 / n_samples, which is
        scikit-learn's ``LogisticRegression(C=1)`` (α = 1 / (C · n)).
    class_weight : dict, 'balanced' or None, default=None
        Weights of the classes' rows (scikit-learn's meaning).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (1, n_features) for two classes, else (n_classes, n_features)
    intercept_ : ndarray of shape (1,) or (n_classes,)
    n_features_in_, feature_names_in_, n_iter_, loss_curve_, converged_, fit_report_
    """

    def __init__(
        self,
        *,
        penalty="l2",
        alpha=None,
        l1_ratio=0.15,
        solver="auto",
        max_iter=None,
        tol=None,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        batch_size="auto",
        learning_rate_init=None,
        shuffle=True,
        random_state=None,
        warm_start=False,
        class_weight=None,
        backend="cpu",
        standardize=True,
        verify=False,
    ):
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.shuffle = shuffle
        self.random_state = random_state
        self.warm_start = warm_start
        self.class_weight = class_weight
        self.backend = backend
        self.standardize = standardize
        self.verify = verify

    def _architecture(self, n_classes):
        return ("logistic" if n_classes == 2 else "softmax"), 0, "sigmoid"

    def decision_function(self, X):
        """The logits: shape (n_samples,) for two classes (> 0 predicts ``classes_[1]``),
        else (n_samples, n_classes)."""
        z = self._output(X)
        return z[:, 0] if z.shape[1] == 1 else z


class MLPClassifier(_Classifier):
    """A one-hidden-layer perceptron with a softmax output and cross-entropy loss (the
    course notes' network), trained by gradflow.

    Parameters as :class:`LinearRegression`'s, and:

    hidden_layer_sizes : int or tuple of one int, default=(100,)
        Width of the one hidden layer (gradflow's network has exactly one).
    activation : {'logistic', 'tanh', 'relu'}, default='relu'
    solver : {'auto', 'adam', 'sgd', 'adagrad', 'lbfgs'}, default='adam'
    alpha : float, default=1e-4
        L2 penalty on the weights, as scikit-learn's MLP has it: ``alpha / (2 b) ‖W‖²``
        on each batch of ``b`` rows (``b = n_samples`` for L-BFGS).
    batch_size : int or 'auto', default='auto'
        Rows per update ('auto': min(200, n_samples), scikit-learn's).
    max_iter : int or None, default=200
        The most epochs, scikit-learn's default (None: gradflow's choice, 200 or enough
        for 20,000 updates on small data).

    The weights start in Glorot's uniform range, as scikit-learn's do (biases at zero).
    momentum : float, default=0.9
        Momentum of ``solver='sgd'`` (heavy-ball, as PyTorch's; 0: plain SGD).
    learning_rate_init : float or None, default=None
        None: Adam 1e-3, AdaGrad 1e-2, SGD chosen from the data.
    class_weight : dict, 'balanced' or None, default=None

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coefs_ : list of two weight matrices, ``(n_features, h)`` and ``(h, n_classes)``
    intercepts_ : list of two bias vectors
    n_features_in_, feature_names_in_, n_iter_, loss_curve_, converged_, fit_report_

    There is no ``MLPRegressor``: gradflow's network ends in softmax + cross-entropy, it
    has no regression head.
    """

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=1e-4,
        batch_size="auto",
        learning_rate_init=None,
        max_iter=200,
        tol=None,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        momentum=0.9,
        shuffle=True,
        random_state=None,
        warm_start=False,
        class_weight=None,
        backend="cpu",
        standardize=True,
        verify=False,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.momentum = momentum
        self.shuffle = shuffle
        self.random_state = random_state
        self.warm_start = warm_start
        self.class_weight = class_weight
        self.backend = backend
        self.standardize = standardize
        self.verify = verify

    # scikit-learn's MLP has no penalty choice: alpha is always an L2 strength.
    penalty = "l2"
    l1_ratio = 0.0

    def _alpha(self, solver, batch_size, n_samples):
        # scikit-learn adds alpha/(2 b)·‖W‖² to each batch's mean loss; gradflow adds
        # α/2·‖W‖²: α = alpha / b, b the batch (all rows for L-BFGS).
        if solver == "lbfgs":
            rows = n_samples
        else:
            rows = min(batch_size or 32, n_samples)
        return float(self.alpha) / rows

    def _auto_batch(self, n_samples):
        # scikit-learn's MLP: min(200, n_samples). (Batches of 32 give six times the
        # updates an epoch, and on the same epoch cap a network that overfits: a test
        # log-loss twice scikit-learn's on 20 classes of make_classification.)
        return min(200, n_samples)

    def _architecture(self, n_classes):
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral):
            sizes = (sizes,)
        sizes = tuple(sizes)
        if len(sizes) != 1 or not isinstance(sizes[0], numbers.Integral) or sizes[0] < 1:
            raise ValueError(
                f"hidden_layer_sizes {self.hidden_layer_sizes!r}: gradflow's network has one "
                "hidden layer: must be a positive int or a tuple of one"
            )
        if self.activation not in ("logistic", "tanh", "relu"):
            raise ValueError(
                f"activation {self.activation!r}: must be 'logistic', 'tanh' or 'relu'"
            )
        return "mlp", int(sizes[0]), self.activation

    def _set_parameters(self):
        p = self._unscaled()
        self.coefs_ = [p["W1"], p["W2"]]
        self.intercepts_ = [p["b1"][0], p["b2"][0]]
        self.n_layers_ = 3
        self.n_outputs_ = len(self.classes_)
        self.out_activation_ = "softmax"
