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
            TrainConfig::default().batch_size(0),
            "batch_size 0: must be ≥ 1",
        ),
        (
            TrainConfig::default().learning_rate(0.0),
            "learning_rate 0: must be finite and > 0",
        ),
        (
            TrainConfig::default().learning_rate(-0.1),
            "learning_rate -0.1: must be finite and > 0",
        ),
        (
            TrainConfig::default().learning_rate(f64::NAN),
            "learning_rate NaN: must be finite and > 0",
        ),
        (
            TrainConfig::default().learning_rate(f64::INFINITY),
            "learning_rate inf: must be finite and > 0",
        ),
        (TrainConfig::default().epochs(0), "epochs 0: must be ≥ 1"),
        (
            TrainConfig::default().tol(-1.0),
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
    let trainer = Trainer::new(TrainConfig::default()).unwrap();
    assert_eq!(
        msg(Mlp::new(0).fit(&data, &trainer)),
        "hidden 0: must be ≥ 1 unit"
    );
}

#[test]
fn targets_that_do_not_suit_the_model() {
    let trainer = Trainer::new(TrainConfig::default().epochs(1)).unwrap();
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
        .fit(
            &data,
            &Trainer::new(TrainConfig::default().epochs(1)).unwrap(),
        )
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

#[test]
fn batch_larger_than_n_is_full_batch_not_an_error() {
    let data = Synthetic::linear(7, 2).dataset().unwrap();
    let report = LinearRegression::new()
        .fit(
            &data,
            &Trainer::new(TrainConfig::default().batch_size(1_000_000).epochs(2)).unwrap(),
        )
        .unwrap();
    assert_eq!(report.steps, 2);
}
