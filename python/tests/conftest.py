import os

# scikit-learn's array-API check (with NumPy arrays, for estimators that do not claim
# array-API support) runs only when SciPy is imported with this set; without it the check
# skips itself.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import pathlib  # noqa: E402
import subprocess  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import gradflow  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def gradflow_cli():
    """The `gradflow` command of this checkout (GRADFLOW_BIN, or built with cargo): the
    Rust side that the Python package's models must agree with."""
    given = os.environ.get("GRADFLOW_BIN")
    if given:
        return given
    subprocess.run(
        ["cargo", "build", "--quiet", "--release", "--bin", "gradflow"], cwd=REPO, check=True
    )
    return str(REPO / "target" / "release" / "gradflow")


@pytest.fixture(scope="session")
def gpu():
    """Whether a GPU adapter exists; with GRADFLOW_REQUIRE_GPU=1 (CI) its absence fails."""
    adapter = gradflow.gpu_adapter()
    if adapter is None and os.environ.get("GRADFLOW_REQUIRE_GPU") == "1":
        raise RuntimeError("GRADFLOW_REQUIRE_GPU=1 but wgpu finds no adapter")
    return adapter is not None


@pytest.fixture
def blobs():
    from sklearn.datasets import make_blobs

    X, y = make_blobs(n_samples=600, centers=3, n_features=5, random_state=0)
    return X.astype(np.float32), y
