#!/usr/bin/env python3
"""Writes scikit-learn's five bundled datasets as the CSVs under tests/data/ and the
reference numbers the tests hold gradflow to (tests/data/reference.json).

Run once with scikit-learn installed (`python3 -m venv v && v/bin/pip install scikit-learn`);
the outputs are committed, so the tests need no Python. Provenance and licences:
tests/data/README.md.

Each dataset is split as a new user would split it, `train_test_split(X, y,
random_state=0)` (25 % held out), and written as NAME-train.csv / NAME-test.csv: a
header row of feature names, then the target (class names for iris, wine and
breast_cancer, digit values for digits, the disease progression for diabetes). Values
are written with Python's shortest round-trip repr, so both sides read the same numbers.

The reference numbers, on the held-out 25 %:
- `sklearn_default`: LogisticRegression() / LinearRegression() on raw features (the
  issue's "scikit-learn defaults" column);
- `sklearn_converged`: the same on StandardScaler features, LogisticRegression with
  max_iter=10000 (the "converged, standardized" column);
- `mlp_default` / `mlp_converged` (classifiers): MLPClassifier(random_state=0) on raw
  features, and with max_iter=2000 on standardized ones;
- `lbfgs`: LogisticRegression(C=1, tol=1e-10, max_iter=100000) coefficients on the
  standardized training set, for the L-BFGS test vectors (binary for breast_cancer,
  multinomial for digits and iris and wine), and Ridge-free LinearRegression's for
  diabetes: gradflow's parameters live in the standardized space, so these are what
  `--solver lbfgs` must reproduce.
"""
import json
import os
import sys

import numpy as np
import sklearn
from sklearn import datasets
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")


def load(name):
    if name == "diabetes":
        # The raw measurements (age in years, BMI, blood pressure, serum values), not the
        # pre-scaled copy: unequal scales are what the defaults must handle.
        d = datasets.load_diabetes(scaled=False)
        return d.data, d.target, list(d.feature_names), None
    d = getattr(datasets, f"load_{name}")()
    names = [n.replace(" ", "_") for n in d.feature_names]
    labels = None if name == "digits" else [str(t) for t in d.target_names]
    return d.data, d.target, names, labels


def fmt(v):
    r = repr(float(v))
    return r[:-2] if r.endswith(".0") else r


def write(path, X, y, names, labels):
    with open(path, "w") as f:
        f.write(",".join(names + ["target"]) + "\n")
        for row, t in zip(X, y):
            target = labels[int(t)] if labels else fmt(t)
            f.write(",".join(fmt(v) for v in row) + "," + target + "\n")


def main():
    ref = {"sklearn_version": sklearn.__version__, "split": "train_test_split(random_state=0)"}
    for name in ["iris", "wine", "breast_cancer", "digits", "diabetes"]:
        X, y, names, labels = load(name)
        Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=0)
        write(os.path.join(OUT, f"{name}-train.csv"), Xtr, ytr, names, labels)
        write(os.path.join(OUT, f"{name}-test.csv"), Xte, yte, names, labels)
        sc = StandardScaler().fit(Xtr)
        Str, Ste = sc.transform(Xtr), sc.transform(Xte)
        entry = {"rows": [len(ytr), len(yte)], "features": X.shape[1]}
        if name == "diabetes":
            entry["metric"] = "r2"
            entry["sklearn_default"] = LinearRegression().fit(Xtr, ytr).score(Xte, yte)
            lin = LinearRegression().fit(Str, ytr)
            entry["sklearn_converged"] = lin.score(Ste, yte)
            entry["lbfgs"] = {"coef": lin.coef_.tolist(), "intercept": [float(lin.intercept_)]}
        else:
            entry["metric"] = "accuracy"
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                entry["sklearn_default"] = LogisticRegression().fit(Xtr, ytr).score(Xte, yte)
            entry["sklearn_converged"] = (
                LogisticRegression(max_iter=10000).fit(Str, ytr).score(Ste, yte)
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                entry["mlp_default"] = MLPClassifier(random_state=0).fit(Xtr, ytr).score(Xte, yte)
            entry["mlp_converged"] = (
                MLPClassifier(random_state=0, max_iter=2000).fit(Str, ytr).score(Ste, yte)
            )
            exact = LogisticRegression(C=1.0, tol=1e-10, max_iter=100000).fit(Str, ytr)
            entry["lbfgs"] = {
                "C": 1.0,
                "coef": exact.coef_.tolist(),
                "intercept": exact.intercept_.tolist(),
                "loss": None,
            }
        ref[name] = entry
        print(name, {k: v for k, v in entry.items() if k != "lbfgs"}, file=sys.stderr)
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
