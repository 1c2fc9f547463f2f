"""gradflow's MLPClassifier at its defaults against scikit-learn's, held out.

Each dataset is split 75/25 (random_state=0); scikit-learn's MLPClassifier() trains on
StandardScaler'd features (gradflow standardises inside), two seeds each. Prints one
line per dataset and seed: accuracy / log-loss / epochs of scikit-learn's, of gradflow's
defaults, and of gradflow with ``max_iter=None`` (its own cap: 200 epochs, or enough for
20,000 updates on small data).

    python python/benchmarks/mlp_defaults.py
"""

import warnings

from sklearn.datasets import load_breast_cancer, load_iris, load_wine, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkMLP
from sklearn.preprocessing import StandardScaler

import gradflow

warnings.simplefilter("ignore", ConvergenceWarning)

SETS = {
    "iris": load_iris(return_X_y=True),
    "wine": load_wine(return_X_y=True),
    "breast_cancer": load_breast_cancer(return_X_y=True),
    "20 classes": make_classification(
        5000, 30, n_informative=15, n_classes=20, n_clusters_per_class=1, random_state=0
    ),
}


def main():
    for name, (X, y) in SETS.items():
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0)
        scaler = StandardScaler().fit(Xtr)
        for seed in (0, 1):
            sk = SkMLP(random_state=seed).fit(scaler.transform(Xtr), ytr)
            ours = gradflow.MLPClassifier(random_state=seed).fit(Xtr, ytr)
            capped = gradflow.MLPClassifier(random_state=seed, max_iter=None).fit(Xtr, ytr)

            def row(model, X):
                acc, ll = model.score(X, yte), log_loss(yte, model.predict_proba(X))
                return f"{acc:.3f} / {ll:.3f} / {model.n_iter_}"

            print(
                f"{name:14} seed {seed}: scikit-learn {row(sk, scaler.transform(Xte))}"
                f" | gradflow {row(ours, Xte)} | max_iter=None {row(capped, Xte)}",
                flush=True,
            )


if __name__ == "__main__":
    main()
