//! Every bad input of the foundation gives its `Error`, with the value in the message,
//! and never a panic.

use gradflow::data::{Dataset, Synthetic, Targets, epoch_plan};
use gradflow::model::{LinearRegression, LogisticRegression, Mlp, SoftmaxRegression};
use gradflow::{Error, TrainConfig, Trainer};

fn msg<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn dataset_shape_and_emptiness() {
    let m = msg(Dataset::new(vec![1.0; 5], 2, Targets::Real(vec![1.0, 2.0])));
    assert!(
        m.contains("expected 2 rows × 2 columns = 4 values") && m.contains("got 5 values"),
        "{m}"
    );
    let m = msg(Dataset::new(vec![], 2, Targets::Real(vec![])));
    assert!(m.contains("n = 0"), "{m}");
    let m = msg(Dataset::new(vec![], 0, Targets::Real(vec![1.0])));
    assert!(m.contains("p = 0"), "{m}");
}

#[test]
fn non_finite_values_are_located() {
    let m = msg(Dataset::new(
        vec![1.0, 2.0, f32::NAN, 4.0],
        2,
        Targets::Real(vec![1.0, 2.0]),
    ));
    assert_eq!(
        m,
        "non-finite value NaN in features at row 1, column 0: every value must be finite"
    );
    let m = msg(Dataset::new(
        vec![1.0, 2.0],
        1,
        Targets::Real(vec![1.0, f32::INFINITY]),
    ));
    assert!(m.contains("inf in targets at row 1"), "{m}");
    let m = msg(Dataset::new(
        vec![f32::NEG_INFINITY, 2.0],
        1,
        Targets::Real(vec![1.0, 1.0]),
    ));
    assert!(m.contains("-inf in features at row 0"), "{m}");
}

#[test]
fn labels_out_of_range_and_zero_classes() {
    let m = msg(Dataset::new(
        vec![1.0, 2.0, 3.0],
        1,
        Targets::Classes {
            labels: vec![0, 1, 3],
            classes: 3,
        },
    ));
    assert_eq!(
        m,
        "label 3 at row 2 is out of range: expected a class in 0..3"
    );
    let m = msg(Dataset::new(
        vec![1.0],
        1,
        Targets::Classes {
            labels: vec![0],
            classes: 0,
        },
    ));
    assert!(m.contains("classes 0"), "{m}");
}

#[test]
fn invalid_hyper_parameters() {
    let cases = [
        (
            TrainConfig::sgd().batch_size(0),
            "batch_size 0: must be ≥ 1",
        ),
        (
            TrainConfig::sgd().learning_rate(0.0),
            "learning_rate 0: must be finite and > 0",
        ),
        (
            TrainConfig::sgd().learning_rate(-0.1),
            "learning_rate -0.1: must be finite and > 0",
        ),
        (
            TrainConfig::sgd().learning_rate(f64::NAN),
            "learning_rate NaN: must be finite and > 0",
        ),
        (
            TrainConfig::sgd().learning_rate(f64::INFINITY),
            "learning_rate inf: must be finite and > 0",
        ),
        (TrainConfig::sgd().epochs(0), "epochs 0: must be ≥ 1"),
        (
            TrainConfig::sgd().tol(-1.0),
            "tol -1: must be finite and ≥ 0",
        ),
    ];
    for (cfg, expected) in cases {
        assert_eq!(msg(Trainer::new(cfg)), expected);
    }
}

#[test]
fn hidden_width_zero() {
    let data = Synthetic::blobs(10, 2, 2).dataset().unwrap();
    let trainer = Trainer::new(TrainConfig::sgd()).unwrap();
    assert_eq!(
        msg(Mlp::new(0).fit(&data, &trainer)),
        "hidden 0: must be ≥ 1 unit"
    );
}

#[test]
fn targets_that_do_not_suit_the_model() {
    let trainer = Trainer::new(TrainConfig::sgd().epochs(1)).unwrap();
    let real = Synthetic::linear(10, 2).dataset().unwrap();
    let three = Synthetic::blobs(10, 2, 3).dataset().unwrap();
    let m = msg(LogisticRegression::new().fit(&real, &trainer));
    assert!(m.contains("logistic regression needs class labels"), "{m}");
    let m = msg(LogisticRegression::new().fit(&three, &trainer));
    assert!(
        m.contains("exactly 2 classes") && m.contains("3 classes"),
        "{m}"
    );
    let m = msg(LinearRegression::new().fit(&three, &trainer));
    assert!(m.contains("real-valued targets"), "{m}");
    let m = msg(SoftmaxRegression::new().fit(&real, &trainer));
    assert!(m.contains("class labels"), "{m}");
    let single = Dataset::new(
        vec![1.0, 2.0],
        1,
        Targets::Classes {
            labels: vec![0, 0],
            classes: 1,
        },
    )
    .unwrap();
    let m = msg(SoftmaxRegression::new().fit(&single, &trainer));
    assert!(m.contains("at least 2 classes"), "{m}");
}

#[test]
fn predict_before_fit_and_with_the_wrong_width() {
    let m = msg(LinearRegression::new().predict(&[1.0, 2.0]));
    assert!(m.contains("not fitted"), "{m}");
    let data = Synthetic::linear(20, 3).dataset().unwrap();
    let mut model = LinearRegression::new();
    model
        .fit(&data, &Trainer::new(TrainConfig::sgd().epochs(1)).unwrap())
        .unwrap();
    let m = msg(model.predict(&[1.0, 2.0]));
    assert!(m.contains("multiple of the model's p = 3"), "{m}");
    let m = msg(model.predict(&[]));
    assert!(m.contains("0 rows"), "{m}");
    let m = msg(model.predict(&[1.0, f32::NAN, 0.0]));
    assert!(m.contains("NaN"), "{m}");
}

#[test]
fn epoch_plan_inputs() {
    assert_eq!(
        msg(epoch_plan(0, 0, 10, 0, true, false)),
        "batch_size 0: must be ≥ 1"
    );
    assert!(msg(epoch_plan(0, 0, 0, 4, true, false)).contains("n = 0"));
}

/// Sizes the user chooses but no machine holds: n · p overflowing, and n · p values beyond
/// what the allocator gives, are errors that name the size, never an abort.
#[test]
fn sizes_beyond_memory_are_errors() {
    let huge = Synthetic::linear(usize::MAX / 2, 4);
    let m = msg(huge.dataset());
    assert!(m.contains("n · p to fit in memory"), "{m}");
    let m = msg(Dataset::from_source(&huge));
    assert!(m.contains("overflows usize"), "{m}");
    // 4 · 10¹⁸ bytes: fits usize, exceeds any address space.
    let beyond = Synthetic::linear(1_000_000_000_000, 1_000_000);
    for err in [
        beyond.dataset().unwrap_err(),
        Dataset::from_source(&beyond).unwrap_err(),
    ] {
        match &err {
            Error::OutOfMemory { bytes, .. } => assert_eq!(*bytes, 4_000_000_000_000_000_000),
            other => panic!("expected OutOfMemory, got {other}"),
        }
        assert!(
            err.to_string()
                .contains("cannot be allocated in host memory")
        );
    }
}

#[test]
fn batch_larger_than_n_is_full_batch_not_an_error() {
    let data = Synthetic::linear(7, 2).dataset().unwrap();
    let report = LinearRegression::new()
        .fit(
            &data,
            &Trainer::new(TrainConfig::sgd().batch_size(1_000_000).epochs(2)).unwrap(),
        )
        .unwrap();
    assert_eq!(report.steps, 2);
}

/// Bad files, one table: each is refused with `Error::BadFile` (or `Io`) whose message
/// names what is wrong — never a panic, never a half-read dataset.
#[test]
fn bad_files_are_refused_with_the_reason() {
    use gradflow::io::{Column, CsvOptions, SavedModel, csv, npy};
    let dir = std::env::temp_dir().join(format!("gradflow-bad-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let reg = CsvOptions::default();
    let cls = CsvOptions::default().classes();
    let csv_cases: [(&str, &[u8], CsvOptions, &str); 9] = [
        ("empty.csv", b"", reg.clone(), "empty"),
        ("header-only.csv", b"a,b,y\n", reg.clone(), "no data rows"),
        ("one-column.csv", b"1\n2\n", reg.clone(), "at least 2"),
        ("ragged.csv", b"a,b,y\n1,2,3\n4,5\n", reg.clone(), "line 3"),
        ("text.csv", b"a,b,y\n1,2,3\n4,five,6\n", reg.clone(), "five"),
        ("nan.csv", b"a,b,y\n1,2,3\n4,NaN,6\n", reg.clone(), "NaN"),
        ("inf-target.csv", b"a,b,y\n1,2,inf\n", reg.clone(), "inf"),
        (
            "no-target.csv",
            b"a,b,y\n1,2,3\n",
            reg.target(Column::Name("price".into())),
            "no target column \"price\"",
        ),
        (
            "empty-label.csv",
            b"a,b,y\n1,2,cat\n3,4,\n",
            cls,
            "empty class label",
        ),
    ];
    let mut cases = 0;
    for (name, bytes, options, needle) in csv_cases {
        let path = write(name, bytes);
        let err = csv::read(&path, &options).unwrap_err();
        assert!(
            matches!(err, Error::BadFile { .. }),
            "{name}: {err:?} is not BadFile"
        );
        assert!(
            err.to_string().contains(needle),
            "{name}: {err} lacks {needle:?}"
        );
        cases += 1;
    }
    // .npy: not an array file, a dtype of no numbers, the wrong rank, truncated data.
    let npy_header = |descr: &str, shape: &str| {
        let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        let pad = 64 - (10 + dict.len() + 1) % 64;
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&((dict.len() + pad + 1) as u16).to_le_bytes());
        bytes.extend_from_slice(dict.as_bytes());
        bytes.extend(std::iter::repeat_n(b' ', pad));
        bytes.push(b'\n');
        bytes
    };
    let npy_cases: [(&str, Vec<u8>, &str); 4] = [
        ("text.npy", b"a,b\n1,2\n".to_vec(), "not a .npy file"),
        (
            "strings.npy",
            npy_header("<U8", "(2, 2)"),
            "dtype <U8 is not a little-endian number",
        ),
        ("flat.npy", npy_header("<f4", "(4,)"), "not 2-D"),
        ("short.npy", npy_header("<f4", "(10, 3)"), "truncated"),
    ];
    for (name, bytes, needle) in npy_cases {
        let path = write(name, &bytes);
        let err = npy::read(&path, None, gradflow::io::TargetKind::Real).unwrap_err();
        assert!(
            err.to_string().contains(needle),
            "{name}: {err} lacks {needle:?}"
        );
        cases += 1;
    }
    // Model files: missing, not JSON, truncated, another format, another version.
    let model_cases: [(&str, &[u8], &str); 4] = [
        ("garbage.json", b"\x00\x01 not json", "not valid JSON"),
        (
            "truncated.json",
            br#"{"format": "gradflow-model", "version": 1, "model": "lin"#,
            "not valid JSON",
        ),
        (
            "other.json",
            br#"{"format": "keras", "version": 1}"#,
            "not a gradflow model file",
        ),
        (
            "future.json",
            br#"{"format": "gradflow-model", "version": 7}"#,
            "version 7 is not supported",
        ),
    ];
    for (name, bytes, needle) in model_cases {
        let path = write(name, bytes);
        let err = SavedModel::load(&path).unwrap_err();
        assert!(
            err.to_string().contains(needle),
            "{name}: {err} lacks {needle:?}"
        );
        cases += 1;
    }
    // Found by the model fuzzer: an optimizer state beyond f32's range read as infinity,
    // and the file then saved could not be read back.
    let err = SavedModel::load(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fuzz_regressions/model/state-beyond-f32.json"),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("optimizer tensor 2 holds inf"),
        "{err}"
    );
    cases += 1;
    let err = SavedModel::load(dir.join("missing.json")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    cases += 1;
    assert_eq!(cases, 19);
    std::fs::remove_dir_all(&dir).unwrap();
}
