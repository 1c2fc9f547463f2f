//! Data-parallel fits over a group of ranks equal the single-process fit (ranks as
//! threads: `dist::LocalGroup`; the same protocol runs over MPI in `tests/mpi.rs`).

use gradflow::data::{RowSource, Synthetic};
use gradflow::dist::LocalGroup;
use gradflow::model::{LinearRegression, LogisticRegression, Mlp, Model, SoftmaxRegression};
use gradflow::{Optimizer, Report, TrainConfig, Trainer};

/// Fits `model()` alone and on `ranks` ranks; returns the single report and every rank's
/// report and parameters.
fn both<M: Model>(
    ranks: usize,
    config: &TrainConfig,
    data: &dyn RowSource,
    model: impl Fn() -> M + Sync,
) -> (Report, Vec<f32>, Vec<(Report, Vec<f32>)>) {
    let mut single = model();
    let report = Trainer::new(config.clone())
        .unwrap()
        .fit(&mut single, data)
        .unwrap();
    let flat = |m: &M| m.fitted().unwrap().params.concat();
    let alone = flat(&single);
    let ranked = LocalGroup::run(ranks, |comm| {
        let mut m = model();
        let trainer = Trainer::new(config.clone()).unwrap().with_comm(comm);
        let report = trainer.fit(&mut m, data).unwrap();
        (report, flat(&m))
    });
    (report, alone, ranked)
}

fn assert_close(what: &str, a: &[f64], b: &[f64], rtol: f64) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= rtol * y.abs().max(1e-12),
            "{what}[{i}]: {x} vs {y} (rtol {rtol})"
        );
    }
}

fn check<M: Model>(
    what: &str,
    ranks: usize,
    config: TrainConfig,
    data: &dyn RowSource,
    model: impl Fn() -> M + Sync,
    rtol: f64,
) {
    let (single, alone, ranked) = both(ranks, &config, data, model);
    for (r, (report, params)) in ranked.iter().enumerate() {
        assert_close(
            &format!("{what}: rank {r} epoch losses"),
            &report.epoch_losses,
            &single.epoch_losses,
            rtol,
        );
        assert_eq!(report.steps, single.steps, "{what}: steps");
        assert_eq!(
            params, &ranked[0].1,
            "{what}: rank {r} parameters differ from rank 0's"
        );
        let p: Vec<f64> = params.iter().map(|&v| f64::from(v)).collect();
        let q: Vec<f64> = alone.iter().map(|&v| f64::from(v)).collect();
        let scale = q.iter().fold(0f64, |m, v| m.max(v.abs()));
        for (i, (a, b)) in p.iter().zip(&q).enumerate() {
            assert!(
                (a - b).abs() <= 10.0 * rtol * scale.max(1.0),
                "{what}: param {i}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn every_model_equals_the_single_process_fit_on_two_and_three_ranks() {
    let reg = Synthetic::linear(1003, 5).seed(1);
    let bin = Synthetic::logistic(1003, 4).seed(2);
    let blobs = Synthetic::blobs(1003, 3, 4).seed(3);
    let sgd = TrainConfig::sgd().batch_size(40).epochs(4).seed(9);
    for ranks in [2, 3] {
        check(
            "linear",
            ranks,
            sgd.clone(),
            &reg,
            LinearRegression::new,
            1e-5,
        );
        check(
            "logistic",
            ranks,
            sgd.clone(),
            &bin,
            LogisticRegression::new,
            1e-5,
        );
        check(
            "softmax",
            ranks,
            sgd.clone(),
            &blobs,
            SoftmaxRegression::new,
            1e-5,
        );
        check("mlp", ranks, sgd.clone(), &blobs, || Mlp::new(8), 1e-5);
    }
}
