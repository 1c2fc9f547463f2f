//! What each fuzz target does with its bytes, shared with `tests/fuzz_regressions.rs`,
//! which replays every input a target ever crashed on through the same functions.
//!
//! Each function hands the bytes to a reader as a file (the readers take paths, and the
//! path is what a user gives them), lets the first byte choose the reader's options, and
//! checks what a reader promises beyond "no panic": a dataset it returns is whole and
//! finite, and a model it loads predicts and writes itself back unchanged.

use std::path::PathBuf;

use gradflow::io::{Column, CsvOptions, Prediction, SavedModel, TargetKind, csv, npy};

/// A per-process file that holds the current input.
fn scratch(kind: &str, bytes: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "gradflow-fuzz-{kind}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&path, bytes).expect("the temporary directory is writable");
    path
}

/// A dataset's promises: n × p finite features, n targets, labels in range.
fn check_dataset(d: &gradflow::data::Dataset) {
    assert_eq!(d.features().len(), d.n() * d.p());
    assert!(d.features().iter().all(|v| v.is_finite()));
    match d.targets() {
        gradflow::data::Targets::Real(y) => {
            assert_eq!(y.len(), d.n());
            assert!(y.iter().all(|v| v.is_finite()));
        }
        gradflow::data::Targets::Classes { labels, classes } => {
            assert_eq!(labels.len(), d.n());
            assert!(labels.iter().all(|&l| (l as usize) < *classes));
        }
    }
}

/// The CSV reader (whole, and cut into chunks of a few bytes: the same outcome) and the
/// prediction-time feature reader, with options from `data[0]`:
/// bits 0–1 the header (detect, yes, no), bit 2 class labels, bit 3 a target column by
/// index (bits 5–7), bit 4 a weight column 0.
pub fn csv(data: &[u8]) {
    let Some((&knobs, text)) = data.split_first() else {
        return;
    };
    let path = scratch("csv", text);
    let mut options = CsvOptions::default();
    let header = match knobs & 3 {
        1 => Some(true),
        2 => Some(false),
        _ => None,
    };
    options.header = header;
    if knobs & 4 != 0 {
        options = options.classes();
    }
    if knobs & 8 != 0 {
        options = options.target(Column::Index(usize::from(knobs >> 5)));
    }
    if knobs & 16 != 0 {
        options = options.weight(Column::Index(0));
    }
    // The parallel reader cut at every few bytes reads what it reads whole: the same
    // data, or the same first error.
    let whole = csv::read(&path, &options);
    let cut = csv::read_chunked(&path, &options, usize::from(knobs % 7) + 1);
    match (&whole, &cut) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("whole {whole:?} vs cut {cut:?}"),
    }
    if let Ok(read) = whole {
        check_dataset(&read.dataset);
        if let Some(w) = &read.weights {
            assert_eq!(w.len(), read.dataset.n());
        }
        if let (Some(labels), gradflow::data::Targets::Classes { classes, .. }) =
            (&read.labels, read.dataset.targets())
        {
            assert_eq!(labels.len(), *classes);
        }
    }
    let p = usize::from(knobs >> 4).max(1);
    if let Ok(f) = csv::read_features(&path, p, &[Column::Index(0)], header) {
        assert_eq!((f.x.len(), f.p), (f.n * p, p));
        assert!(f.x.iter().all(|v| v.is_finite()));
    }
    let _ = std::fs::remove_file(&path);
}

/// The `.npy` reader, for regression and (with a target column from `data[0]`) for
/// classes.
pub fn npy(data: &[u8]) {
    let Some((&knobs, bytes)) = data.split_first() else {
        return;
    };
    let path = scratch("npy", bytes);
    if let Ok(read) = npy::read(&path, None, TargetKind::Real) {
        check_dataset(&read.dataset);
    }
    let column = Column::Index(usize::from(knobs & 7));
    if let Ok(read) = npy::read(&path, Some(&column), TargetKind::Classes) {
        check_dataset(&read.dataset);
    }
    let _ = std::fs::remove_file(&path);
}

/// The Parquet reader, whole (target from `data[0]`, real or classes) and for prediction.
#[cfg(feature = "parquet")]
pub fn parquet(data: &[u8]) {
    let Some((&knobs, bytes)) = data.split_first() else {
        return;
    };
    let path = scratch("parquet", bytes);
    let column = Column::Index(usize::from(knobs & 7));
    let kind = match knobs & 8 {
        0 => TargetKind::Real,
        _ => TargetKind::Classes,
    };
    let target = (knobs & 16 != 0).then_some(&column);
    if let Ok(read) = gradflow::io::parquet::read(&path, target, kind) {
        check_dataset(&read.dataset);
        assert_eq!(read.header.len(), read.dataset.p() + 1);
    }
    let p = usize::from(knobs >> 5).max(1);
    let _ = gradflow::io::parquet::for_each_features(&path, p, &[], |x| {
        assert!(x.len() % p == 0 && x.iter().all(|v| v.is_finite()));
        Ok(())
    });
    let _ = std::fs::remove_file(&path);
}

/// The model loader; a model it accepts must predict rows of its width and survive a
/// save and a reload unchanged.
pub fn model(data: &[u8]) {
    let Ok(model) = SavedModel::from_json(data, "fuzz.json") else {
        return;
    };
    // Two rows; a model of absurd width is the loader's business, not predict's.
    if model.p() <= 1 << 16 {
        let x: Vec<f32> = (0..2 * model.p()).map(|i| (i % 7) as f32 - 3.0).collect();
        match model
            .predict(&x)
            .expect("a loaded model predicts finite rows")
        {
            Prediction::Real(y) => assert_eq!(y.len(), 2),
            Prediction::Classes { classes, proba, k } => {
                assert_eq!((classes.len(), proba.len()), (2, 2 * k));
                assert!(classes.iter().all(|&c| (c as usize) < k));
            }
        }
    }
    let again = SavedModel::from_json(model.to_json().as_bytes(), "fuzz.json")
        .expect("a saved model reloads");
    assert_eq!(again, model, "a model file round trip changes nothing");
}
