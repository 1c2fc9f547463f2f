//! partial_fit: a fit that goes on keeps its optimizer state, its schedule position and
//! its epoch count, so stopping and going on changes nothing.

mod common;

use common::{assert_close, gpu};
use gradflow::data::Synthetic;
use gradflow::model::normal_eq::Solve;
use gradflow::model::{LinearRegression, Mlp, Model};
use gradflow::{Backend, Error, Optimizer, Penalty, Schedule, TrainConfig, Trainer};

fn cfg() -> TrainConfig {
    TrainConfig::sgd()
        .batch_size(32)
        .learning_rate(0.05)
        .seed(9)
        .optimizer(Optimizer::nesterov(0.9))
        .penalty(Penalty::L2(1e-3))
        .schedule(Schedule::Step {
            every: 2,
            gamma: 0.5,
        })
}

/// 5 epochs in one call = 2 + 3 in two calls, bit for bit on the CPU: parameters,
/// velocities, update count and epoch count.
#[test]
fn resumed_cpu_fit_is_bit_identical() {
    let data = Synthetic::teacher(700, 6, 3).seed(2).dataset().unwrap();
    let mut once = Mlp::new(12);
    Trainer::new(cfg().epochs(5))
        .unwrap()
        .fit(&mut once, &data)
        .unwrap();
    let mut twice = Mlp::new(12);
    let first = Trainer::new(cfg().epochs(2))
        .unwrap()
        .partial_fit(&mut twice, &data)
        .unwrap();
    let second = Trainer::new(cfg().epochs(3))
        .unwrap()
        .partial_fit(&mut twice, &data)
        .unwrap();
    let (a, b) = (once.fitted().unwrap(), twice.fitted().unwrap());
    assert_eq!(a.params, b.params);
    assert_eq!(a.state, b.state);
    let state = b.state.as_ref().unwrap();
    assert_eq!((state.epochs_done, state.updates), (5, 5 * 22)); // ⌈700 / 32⌉ = 22
    assert_eq!(first.steps + second.steps, 110);
    // The step schedule went on from epoch 2: η = 0.05, 0.05 | 0.025, 0.025, 0.0125.
    assert_eq!(second.epoch_lrs, [0.025, 0.025, 0.0125]);
}

/// The same on the GPU: its optimizer state is read back and restored through the
/// engine, and the two-call fit lands on the one-call fit within f32 rounding.
#[test]
fn resumed_gpu_fit_equals_uninterrupted() {
    if gpu("resumed_gpu_fit_equals_uninterrupted").is_none() {
        return;
    }
    let data = Synthetic::teacher(700, 6, 3).seed(2).dataset().unwrap();
    let gpu_cfg = || cfg().optimizer(Optimizer::adam()).backend(Backend::Gpu);
    let mut once = Mlp::new(12);
    Trainer::new(gpu_cfg().epochs(4))
        .unwrap()
        .fit(&mut once, &data)
        .unwrap();
    let mut twice = Mlp::new(12);
    let half = Trainer::new(gpu_cfg().epochs(2)).unwrap();
    half.partial_fit(&mut twice, &data).unwrap();
    half.partial_fit(&mut twice, &data).unwrap();
    let (a, b) = (once.fitted().unwrap(), twice.fitted().unwrap());
    for (t, (x, y)) in a.params.iter().zip(&b.params).enumerate() {
        assert_close(&format!("tensor {t}"), y, x, 1e-5, 1e-6);
    }
    let (sa, sb) = (a.state.as_ref().unwrap(), b.state.as_ref().unwrap());
    assert_eq!((sa.epochs_done, sa.updates), (sb.epochs_done, sb.updates));
    for ([m1, v1], [m2, v2]) in sa.optimizer.iter().zip(&sb.optimizer) {
        assert_close("Adam m", m2, m1, 1e-4, 1e-7);
        assert_close("Adam v", v2, v1, 1e-4, 1e-9);
    }
}

/// A warm start from the normal equations (no training state) goes on by gradient
/// descent from their solution; data of another width are refused.
#[test]
fn warm_start_and_mismatched_data() {
    let data = Synthetic::linear(500, 4).seed(1).dataset().unwrap();
    let mut model = LinearRegression::new();
    model.fit_normal(&data, Solve::Auto).unwrap();
    let exact = model.weights().unwrap().to_vec();
    let trainer = Trainer::new(TrainConfig::sgd().learning_rate(0.01).epochs(1)).unwrap();
    let report = trainer.partial_fit(&mut model, &data).unwrap();
    // Starting at the optimum, one epoch of small steps stays near it.
    assert!(report.epoch_losses[0] < 2e-4, "{:?}", report.epoch_losses);
    assert_close("warm start", model.weights().unwrap(), &exact, 0.0, 5e-3);
    assert_eq!(
        model.fitted().unwrap().state.as_ref().unwrap().epochs_done,
        1
    );
    let wider = Synthetic::linear(500, 5).seed(1).dataset().unwrap();
    let err = trainer.partial_fit(&mut model, &wider).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    let p = data.p();
    let said = format!("expected linear regression on {p} features, got linear regression on 5");
    assert!(err.to_string().contains(&said), "{err}");
}
