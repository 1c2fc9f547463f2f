//! The Python package's tests, as part of `cargo test`: `scripts/python-tests.sh` builds
//! `pip install ./python[test]` in a virtual environment (`target/python-venv`) and runs
//! pytest over `python/tests` — scikit-learn's estimator checks on the CPU and the GPU,
//! and the package's own tests. It needs `python3` with `venv` and PyPI (or a mirror)
//! the first time; the agreement tests call the `gradflow` command built for this test.

use std::process::Command;

#[test]
fn python_package_passes_its_tests_and_scikit_learns_checks() {
    let root = env!("CARGO_MANIFEST_DIR");
    let status = Command::new("bash")
        .arg(format!("{root}/scripts/python-tests.sh"))
        .env("GRADFLOW_BIN", env!("CARGO_BIN_EXE_gradflow"))
        .status()
        .expect("bash runs scripts/python-tests.sh");
    assert!(status.success(), "the Python tests failed: {status}");
}
