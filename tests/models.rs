//! The four models: gradients, convergence and what each can and cannot learn.

use gradflow::data::{Dataset, Synthetic, Targets, Truth};
use gradflow::gradcheck::gradcheck;
use gradflow::metrics::{accuracy, r2};
use gradflow::model::{Init, LinearRegression, LogisticRegression, Mlp, Model, SoftmaxRegression};
use gradflow::{TrainConfig, Trainer, cpu::activation::Activation};

fn labels(data: &Dataset) -> &[u32] {
    match data.targets() {
        Targets::Classes { labels, .. } => labels,
        Targets::Real(_) => panic!("class data expected"),
    }
}

/// Central differences in f64 agree with the analytic gradients far below 1e-4: every
/// model's derivation (seed 000 for the linear models, seed 001 for the MLP) is right.
#[test]
fn gradient_checks_pass_for_all_four_models() {
    let reg = Synthetic::linear(64, 5)
        .seed(1)
        .noise(0.3)
        .dataset()
        .unwrap();
    let bin = Synthetic::logistic(64, 5).seed(2).dataset().unwrap();
    let multi = Synthetic::blobs(64, 5, 4).seed(3).dataset().unwrap();
    let checks = [
        gradcheck(&LinearRegression::new(), &reg, 16, 7).unwrap(),
        gradcheck(&LogisticRegression::new(), &bin, 16, 7).unwrap(),
        gradcheck(&SoftmaxRegression::new(), &multi, 16, 7).unwrap(),
        gradcheck(&Mlp::new(6), &multi, 16, 7).unwrap(),
        gradcheck(
            &Mlp::new(6).with_activation(Activation::Tanh),
            &multi,
            16,
            7,
        )
        .unwrap(),
        gradcheck(
            &Mlp::new(6).with_activation(Activation::Relu),
            &multi,
            16,
            7,
        )
        .unwrap(),
    ];
    for check in &checks {
        for t in &check.tensors {
            eprintln!(
                "{:<20} {:>3} {:>4}/{:<4} max rel {:.2e}",
                check.model, t.name, t.checked, t.len, t.max_rel_error
            );
            assert!(
                t.max_rel_error < 1e-4,
                "{} {}: {:?}",
                check.model,
                t.name,
                t
            );
            assert_eq!(
                t.checked, t.len,
                "small tensors are checked element by element"
            );
        }
    }
}

/// Batch GD on logistic data reaches the accuracy of the generating model itself
/// (the Bayes-optimal rule for these data) within one point.
#[test]
fn logistic_regression_matches_the_generating_model() {
    let generator = Synthetic::logistic(20_000, 8).seed(11);
    let data = generator.dataset().unwrap();
    let Truth::Linear { weights, bias } = generator.truth().unwrap() else {
        unreachable!()
    };
    let bayes: Vec<u32> = (0..data.n())
        .map(|i| {
            u32::from(
                data.row(i)
                    .iter()
                    .zip(&weights)
                    .map(|(x, w)| x * w)
                    .sum::<f32>()
                    + bias
                    > 0.0,
            )
        })
        .collect();
    let bayes_acc = accuracy(&bayes, labels(&data)).unwrap();
    let cfg = TrainConfig::sgd()
        .batch_size(usize::MAX)
        .learning_rate(1.0)
        .epochs(300);
    let mut model = LogisticRegression::new();
    model.fit(&data, &Trainer::new(cfg).unwrap()).unwrap();
    let acc = accuracy(&model.predict(data.features()).unwrap(), labels(&data)).unwrap();
    eprintln!("logistic: accuracy {acc:.4}, generating model {bayes_acc:.4}");
    assert!(
        (acc - bayes_acc).abs() < 0.01,
        "accuracy {acc} vs generating model {bayes_acc}"
    );
    let proba = model.predict_proba(data.row(0)).unwrap();
    assert!((proba[0] + proba[1] - 1.0).abs() < 1e-6);
}

/// Concentric rings: no linear boundary separates them, one hidden layer does.
#[test]
fn mlp_learns_rings_that_softmax_regression_cannot() {
    let data = Synthetic::rings(3000, 2, 2).seed(5).dataset().unwrap();
    let cfg = TrainConfig::sgd()
        .batch_size(32)
        .learning_rate(0.5)
        .epochs(60)
        .seed(1);
    let trainer = Trainer::new(cfg).unwrap();
    let mut mlp = Mlp::new(16).with_activation(Activation::Tanh);
    mlp.fit(&data, &trainer).unwrap();
    let mlp_acc = accuracy(&mlp.predict(data.features()).unwrap(), labels(&data)).unwrap();
    let mut linear = SoftmaxRegression::new();
    linear.fit(&data, &trainer).unwrap();
    let lin_acc = accuracy(&linear.predict(data.features()).unwrap(), labels(&data)).unwrap();
    eprintln!("rings: MLP {mlp_acc:.4}, softmax regression {lin_acc:.4}");
    assert!(mlp_acc >= 0.95, "MLP accuracy {mlp_acc}");
    assert!(
        lin_acc < 0.60,
        "softmax regression should stay near chance (0.5), got {lin_acc}"
    );
}

/// The seeds' MLP as specified (sigmoid hidden layer) also learns the rings.
#[test]
fn sigmoid_mlp_learns_rings() {
    let data = Synthetic::rings(3000, 2, 2).seed(6).dataset().unwrap();
    let cfg = TrainConfig::sgd()
        .batch_size(16)
        .learning_rate(1.0)
        .epochs(80)
        .seed(2);
    let mut mlp = Mlp::new(16);
    mlp.fit(&data, &Trainer::new(cfg).unwrap()).unwrap();
    let acc = accuracy(&mlp.predict(data.features()).unwrap(), labels(&data)).unwrap();
    eprintln!("rings, sigmoid MLP: {acc:.4}");
    assert!(acc >= 0.95, "accuracy {acc}");
}

#[test]
fn softmax_regression_separates_blobs_and_gives_probabilities() {
    let data = Synthetic::blobs(3000, 4, 5).seed(8).dataset().unwrap();
    let cfg = TrainConfig::sgd()
        .batch_size(64)
        .learning_rate(0.1)
        .epochs(20);
    let mut model = SoftmaxRegression::new();
    model.fit(&data, &Trainer::new(cfg).unwrap()).unwrap();
    let acc = accuracy(&model.predict(data.features()).unwrap(), labels(&data)).unwrap();
    assert!(acc > 0.9, "accuracy {acc}");
    let proba = model.predict_proba(&data.features()[..8]).unwrap();
    assert_eq!(proba.len(), 10);
    for row in proba.chunks(5) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}

#[test]
fn linear_regression_recovers_the_weights() {
    let generator = Synthetic::linear(20_000, 16).seed(4).noise(0.01);
    let data = generator.dataset().unwrap();
    let Truth::Linear { weights, bias } = generator.truth().unwrap() else {
        unreachable!()
    };
    let cfg = TrainConfig::sgd()
        .batch_size(64)
        .learning_rate(0.02)
        .epochs(10);
    let mut model = LinearRegression::new();
    let report = model.fit(&data, &Trainer::new(cfg).unwrap()).unwrap();
    for (a, b) in model.weights().unwrap().iter().zip(&weights) {
        assert!((a - b).abs() < 5e-3, "{a} vs {b}");
    }
    assert!((model.bias().unwrap() - bias).abs() < 5e-3);
    let Targets::Real(y) = data.targets() else {
        unreachable!()
    };
    assert!(r2(&model.predict(data.features()).unwrap(), y).unwrap() > 0.999);
    assert!(
        report.epoch_losses.windows(2).all(|w| w[1] <= w[0] * 1.5),
        "{:?}",
        report.epoch_losses
    );
}

/// Same seed, same everything: two CPU fits are bit-identical; another seed differs.
#[test]
fn fits_repeat_bit_for_bit() {
    let data = Synthetic::teacher(500, 6, 3).seed(1).dataset().unwrap();
    let fit = |seed| {
        let mut m = Mlp::new(8);
        m.fit(
            &data,
            &Trainer::new(TrainConfig::sgd().epochs(3).seed(seed)).unwrap(),
        )
        .unwrap();
        m.fitted().unwrap().params.clone()
    };
    assert_eq!(fit(3), fit(3));
    assert_ne!(fit(3), fit(4));
}

#[test]
fn full_batch_and_remainder_counts() {
    let data = Synthetic::linear(10, 2).seed(1).dataset().unwrap();
    let run = |cfg: TrainConfig| {
        LinearRegression::new()
            .fit(&data, &Trainer::new(cfg).unwrap())
            .unwrap()
    };
    assert_eq!(run(TrainConfig::sgd().batch_size(1000).epochs(4)).steps, 4);
    assert_eq!(run(TrainConfig::sgd().batch_size(3).epochs(2)).steps, 8);
    assert_eq!(
        run(TrainConfig::sgd().batch_size(3).epochs(2).drop_last(true)).steps,
        6
    );
    let r = run(TrainConfig::sgd()
        .batch_size(3)
        .epochs(2)
        .record_steps(true));
    assert_eq!(r.step_losses.len(), 8);
    assert_eq!(r.samples, 20);
}

#[test]
fn seed_init_is_available_and_mlp_rejects_constant_init() {
    let data = Synthetic::blobs(20, 2, 2).dataset().unwrap();
    let trainer = Trainer::new(TrainConfig::sgd().epochs(1)).unwrap();
    let err = Mlp::new(4)
        .with_init(Init::Zeros)
        .fit(&data, &trainer)
        .unwrap_err();
    assert!(err.to_string().contains("random init"), "{err}");
}

/// `score` is scikit-learn's: R² for regression, accuracy for classifiers; a model asked
/// to score the other kind of target says so.
#[test]
fn score_is_r2_or_accuracy() {
    let trainer = Trainer::new(TrainConfig::sgd().batch_size(32).epochs(5)).unwrap();
    let reg = Synthetic::linear(400, 3).seed(1).dataset().unwrap();
    let mut lin = LinearRegression::new();
    lin.fit(&reg, &trainer).unwrap();
    let Targets::Real(y) = reg.targets() else {
        unreachable!()
    };
    let r2 = gradflow::metrics::r2(&lin.predict(reg.features()).unwrap(), y).unwrap();
    assert_eq!(lin.score(&reg).unwrap(), r2);
    assert!(r2 > 0.99);
    let cls = Synthetic::blobs(400, 3, 3).seed(2).dataset().unwrap();
    let mut soft = SoftmaxRegression::new();
    soft.fit(&cls, &trainer).unwrap();
    let Targets::Classes { labels, .. } = cls.targets() else {
        unreachable!()
    };
    let acc = gradflow::metrics::accuracy(&soft.predict(cls.features()).unwrap(), labels).unwrap();
    assert_eq!(soft.score(&cls).unwrap(), acc);
    assert!(matches!(
        soft.score(&reg),
        Err(gradflow::Error::TargetMismatch { .. })
    ));
    assert!(matches!(
        lin.score(&cls),
        Err(gradflow::Error::TargetMismatch { .. })
    ));
}

/// A row's prediction does not depend on the rows predicted with it: the whole set, the
/// rows one at a time and a split across the predictor's chunk boundary give the same
/// bits (scikit-learn's subset-invariance check, held beyond its small data).
#[test]
fn predictions_do_not_depend_on_the_other_rows() {
    use gradflow::io::SavedModel;
    use gradflow::model::{Kind, Prediction};
    let data = Synthetic::blobs(5_000, 7, 3).seed(8).dataset().unwrap();
    for kind in [Kind::Softmax, Kind::Mlp] {
        let mut model = kind.model(16, Activation::Tanh);
        Trainer::new(TrainConfig::default().epochs(2))
            .unwrap()
            .fit(model.as_mut(), &data)
            .unwrap();
        let saved = SavedModel::from_model(model.as_ref()).unwrap();
        let x = data.features();
        let all = saved.output(x).unwrap();
        let k = all.len() / data.n();
        for i in [0, 1, 2047, 4095, 4096, 4999] {
            let one = saved.output(data.row(i)).unwrap();
            assert_eq!(one, all[i * k..(i + 1) * k], "{kind:?} row {i}");
        }
        let cut = 4_000 * 7; // chunks of 4,096 rows end elsewhere in the second half
        let (a, b) = (
            saved.output(&x[..cut]).unwrap(),
            saved.output(&x[cut..]).unwrap(),
        );
        assert_eq!([a, b].concat(), all, "{kind:?}");
        let Prediction::Classes { proba, .. } = saved.predict(&x[7..14]).unwrap() else {
            unreachable!()
        };
        let Prediction::Classes { proba: whole, .. } = saved.predict(x).unwrap() else {
            unreachable!()
        };
        assert_eq!(proba, whole[k..2 * k]);
    }
}

/// A report splits its wall time: the set-up before the first step (the rate from the
/// curvature, the session) is part of it, for the mini-batch loop and for L-BFGS alike.
#[test]
fn the_report_times_the_set_up_within_the_wall() {
    let data = Synthetic::blobs(400, 5, 3).seed(4).dataset().unwrap();
    let mut mlp = Mlp::new(8);
    let r = Trainer::new(TrainConfig::default().epochs(2))
        .unwrap()
        .fit(&mut mlp, &data)
        .unwrap();
    assert!(
        r.setup > std::time::Duration::ZERO && r.setup <= r.wall,
        "{r:?}"
    );
    let linear = Synthetic::linear(300, 4).seed(5).dataset().unwrap();
    let r = Trainer::new(TrainConfig::default())
        .unwrap()
        .fit(&mut LinearRegression::new(), &linear)
        .unwrap();
    assert!(
        r.setup > std::time::Duration::ZERO && r.setup <= r.wall,
        "{r:?}"
    );
}
