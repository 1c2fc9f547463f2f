//! Replays, through the same checks as the fuzz targets (`fuzz/src/lib.rs`), every input a
//! target once crashed on (`tests/fuzz_regressions/<target>/`) and the targets' seed
//! files (`fuzz/seeds/<target>/`): a reader that panics, returns a dataset that is not
//! whole and finite, or loads a model that cannot predict or reload, fails here.
//! `scripts/fuzz.sh` runs the fuzzers themselves (not in CI).

#[path = "../fuzz/src/lib.rs"]
mod exercise;

use std::path::Path;

/// Runs `check` on every file of the target's two folders; returns how many it ran.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut count = 0;
    for dir in [root.join("tests/fuzz_regressions"), root.join("fuzz/seeds")] {
        let Ok(entries) = std::fs::read_dir(dir.join(target)) else {
            continue;
        };
        let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        for path in paths {
            let bytes = std::fs::read(&path).unwrap();
            eprintln!("{target}: {}", path.display());
            check(&bytes);
            count += 1;
        }
    }
    count
}

#[test]
fn csv_inputs() {
    assert!(replay("csv", exercise::csv) >= 4);
}

#[test]
fn npy_inputs() {
    assert!(replay("npy", exercise::npy) >= 3);
}

#[test]
fn model_inputs() {
    assert!(replay("model", exercise::model) >= 4);
}

#[cfg(feature = "parquet")]
#[test]
fn parquet_inputs() {
    assert!(replay("parquet", exercise::parquet) >= 2);
}
