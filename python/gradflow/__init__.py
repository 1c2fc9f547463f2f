"""gradflow: scikit-learn estimators trained by gradient descent on the CPU or the GPU.

The estimators follow scikit-learn's interface (``fit``, ``predict``, ``predict_proba``,
``partial_fit``, ``score``, pipelines, grid search, pickling) and train through gradflow's
Rust core: the CPU's kernels, or WGSL kernels on a GPU through wgpu with ``backend="gpu"``
(checked step by step against the CPU reference kernels with ``verify=True``).

>>> import numpy as np
>>> from gradflow import LogisticRegression
>>> X = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32)
>>> y = (X[:, 0] + X[:, 1] > 0).astype(int)
>>> LogisticRegression(random_state=0).fit(X, y).score(X, y) > 0.95
True
"""

from ._estimators import LinearRegression, LogisticRegression, MLPClassifier
from ._gradflow import __version__, gpu_adapter

__all__ = [
    "LinearRegression",
    "LogisticRegression",
    "MLPClassifier",
    "gpu_adapter",
    "__version__",
]
