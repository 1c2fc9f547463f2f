#!/usr/bin/env bash
# Builds the Python package (`pip install ./python[test]`: maturin compiles the extension
# module) in a virtual environment and runs its tests, scikit-learn's estimator checks
# among them. `cargo test` runs this through tests/python.rs; arguments go to pytest.
#
#   scripts/python-tests.sh                 # all of them
#   scripts/python-tests.sh -k estimator    # a selection
#
# GRADFLOW_PYTHON_VENV: the environment (default target/python-venv, made if missing).
# GRADFLOW_BIN: the `gradflow` command the agreement tests call (default: built here).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${GRADFLOW_PYTHON_VENV:-$root/target/python-venv}
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
fi
# Its own target directory: `cargo test`, which runs this, holds the main one's lock.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target/python}
if ! "$venv/bin/pip" install --quiet "$root/python[test]"; then
    # The build's own error is above; a full disk (CI's target directory holds every
    # test binary by now) shows as a bare compiler failure, so say how much is left.
    echo "python-tests: building the package failed; disk: $(df -h "$root/target" | awk 'NR == 2 { print $4 " free of " $2 }')" >&2
    exit 1
fi
cd "$root/python"
# The `pytest` script, not `python -m pytest`: that would put the working directory, and
# with it the package's sources (without their built extension), ahead of the install.
exec "$venv/bin/pytest" -q -p no:cacheprovider tests "$@"
