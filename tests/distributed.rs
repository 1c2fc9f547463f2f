//! Data-parallel fits over a group of ranks equal the single-process fit: every model,
//! optimizer, penalty, schedule, weighting, standardisation, stopping rule and solver, on
//! 2 and 3 ranks (uneven parts, a last partial batch, batches shorter than the rank
//! count), in memory and streamed, on the CPU and the GPU. Ranks are threads here
//! (`dist::LocalGroup`); the same protocol runs over MPI in `tests/mpi.rs`.

mod common;

use gradflow::data::{ClassWeight, RowSource, Synthetic};
use gradflow::dist::LocalGroup;
use gradflow::model::{Init, LinearRegression, LogisticRegression, Mlp, Model, SoftmaxRegression};
use gradflow::{
    Backend, EarlyStopping, Error, Optimizer, Penalty, Report, Schedule, Solver, StopReason,
    TrainConfig, Trainer,
};

/// One fit's outcome: its report and its parameters, flattened.
type Fit = (Report, Vec<f32>);

fn flat<M: Model>(m: &M) -> Vec<f32> {
    m.fitted().unwrap().params.concat()
}

/// The fit alone, then on `ranks` ranks (each rank's outcome, in rank order).
fn alone_and_ranked<M: Model>(
    ranks: usize,
    trainer: impl Fn() -> Trainer + Sync,
    data: &dyn RowSource,
    weights: Option<&[f32]>,
    model: impl Fn() -> M + Sync,
) -> (Fit, Vec<Fit>) {
    let mut single = model();
    let report = trainer().fit_weighted(&mut single, data, weights).unwrap();
    let ranked = LocalGroup::run(ranks, |comm| {
        let mut m = model();
        let trainer = trainer().with_comm(comm);
        let report = trainer.fit_weighted(&mut m, data, weights).unwrap();
        (report, flat(&m))
    });
    ((report, flat(&single)), ranked)
}

/// Every rank holds the same parameters, bit for bit; each rank's epoch losses are the
/// single fit's within `rtol`, it ran the same number of steps and stopped for the same
/// reason; its parameters are the single fit's within `rtol` of their scale.
fn assert_same(what: &str, alone: &Fit, ranked: &[Fit], rtol: f64) {
    let (single, params) = alone;
    for (r, (report, p)) in ranked.iter().enumerate() {
        assert_eq!(
            p, &ranked[0].1,
            "{what}: rank {r}'s parameters differ from rank 0's"
        );
        assert_eq!(report.steps, single.steps, "{what}: rank {r}: steps");
        assert_eq!(
            std::mem::discriminant(&report.stop),
            std::mem::discriminant(&single.stop),
            "{what}: rank {r}: stopped {:?}, alone {:?}",
            report.stop,
            single.stop
        );
        assert_eq!(
            report.epoch_losses.len(),
            single.epoch_losses.len(),
            "{what}"
        );
        for (e, (a, b)) in report
            .epoch_losses
            .iter()
            .zip(&single.epoch_losses)
            .enumerate()
        {
            assert!(
                (a - b).abs() <= rtol * b.abs().max(1e-12),
                "{what}: rank {r}, epoch {e}: loss {a} vs {b} alone (rtol {rtol})"
            );
        }
        for (a, b) in report
            .validation_losses
            .iter()
            .zip(&single.validation_losses)
        {
            assert!(
                (a - b).abs() <= rtol * b.abs(),
                "{what}: validation {a} vs {b}"
            );
        }
        let scale = params.iter().fold(1f32, |m, v| m.max(v.abs()));
        for (i, (a, b)) in p.iter().zip(params).enumerate() {
            assert!(
                f64::from((a - b).abs()) <= 10.0 * rtol * f64::from(scale),
                "{what}: rank {r}, parameter {i}: {a} vs {b} alone"
            );
        }
    }
}

fn check<M: Model>(
    what: &str,
    config: &TrainConfig,
    data: &dyn RowSource,
    model: impl Fn() -> M + Sync,
    rtol: f64,
) {
    for ranks in [2, 3] {
        let trainer = || Trainer::new(config.clone()).unwrap();
        let (alone, ranked) = alone_and_ranked(ranks, trainer, data, None, &model);
        assert_same(&format!("{what}, {ranks} ranks"), &alone, &ranked, rtol);
    }
}

/// 1003 rows: batches of 40 leave a last batch of 3, and parts of 14/13/13 rows.
const N: usize = 1003;

#[test]
fn every_model_with_plain_sgd() {
    let sgd = TrainConfig::sgd().batch_size(40).epochs(4).seed(9);
    let reg = Synthetic::linear(N, 5).seed(1);
    check("linear", &sgd, &reg, LinearRegression::new, 1e-5);
    let bin = Synthetic::logistic(N, 4).seed(2);
    check("logistic", &sgd, &bin, LogisticRegression::new, 1e-5);
    let blobs = Synthetic::blobs(N, 3, 4).seed(3);
    check("softmax", &sgd, &blobs, SoftmaxRegression::new, 1e-5);
    check("mlp", &sgd, &blobs, || Mlp::new(8), 1e-5);
}

#[test]
fn every_optimizer_penalty_and_schedule() {
    let blobs = Synthetic::blobs(N, 3, 4).seed(3);
    let base = TrainConfig::sgd().batch_size(32).epochs(3).seed(4);
    let cases = [
        (
            "momentum",
            base.clone()
                .optimizer(Optimizer::momentum(0.9))
                .learning_rate(0.05),
            1e-5,
        ),
        (
            "nesterov",
            base.clone()
                .optimizer(Optimizer::nesterov(0.9))
                .learning_rate(0.05),
            1e-5,
        ),
        (
            "adam",
            base.clone()
                .optimizer(Optimizer::adam())
                .learning_rate(0.01),
            1e-4,
        ),
        (
            "adagrad",
            base.clone()
                .optimizer(Optimizer::adagrad())
                .learning_rate(0.05),
            1e-4,
        ),
        ("l2", base.clone().penalty(Penalty::L2(1e-3)), 1e-5),
        ("l1", base.clone().penalty(Penalty::L1(1e-3)), 1e-5),
        (
            "cosine",
            base.clone().schedule(Schedule::Cosine { min_lr: 0.0 }),
            1e-5,
        ),
        (
            "invscaling",
            base.clone().schedule(Schedule::InvScaling { power: 0.25 }),
            1e-5,
        ),
    ];
    for (what, config, rtol) in cases {
        check(what, &config, &blobs, || Mlp::new(6), rtol);
        // Not from zeros: there a balanced batch's bias gradient is exactly 0, and Adam's
        // and AdaGrad's first step, ±lr · sign(g), takes the sign of the rounding noise
        // (either fit's is as right as the other's).
        let glorot = || SoftmaxRegression::new().with_init(Init::GlorotUniform);
        check(what, &config, &blobs, glorot, rtol);
    }
}

#[test]
fn batches_shorter_than_the_rank_count_and_stochastic_descent() {
    // Batch 2 on 3 ranks: one rank has an empty share of every batch.
    let reg = Synthetic::linear(101, 3).seed(5);
    let sgd = TrainConfig::sgd()
        .batch_size(2)
        .epochs(2)
        .learning_rate(0.02)
        .seed(1);
    check("batch 2", &sgd, &reg, LinearRegression::new, 1e-5);
    let one = TrainConfig::sgd()
        .batch_size(1)
        .epochs(1)
        .learning_rate(0.01)
        .seed(1);
    check("batch 1", &one, &reg, LinearRegression::new, 1e-5);
    let full = TrainConfig::sgd().batch_size(10_000).epochs(5).seed(1);
    check("full batch", &full, &reg, LinearRegression::new, 1e-5);
}

#[test]
fn in_memory_and_streamed_sources() {
    let blobs = Synthetic::blobs(N, 5, 3).seed(8);
    let data = blobs.dataset().unwrap();
    let sgd = TrainConfig::sgd().batch_size(64).epochs(3).seed(2);
    check("in memory", &sgd, &data, || Mlp::new(5), 1e-5);
    let unshuffled = sgd.clone().shuffle(false);
    check("unshuffled", &unshuffled, &data, || Mlp::new(5), 1e-5);
    check(
        "streamed",
        &unshuffled,
        &blobs,
        SoftmaxRegression::new,
        1e-5,
    );
}

#[test]
fn sample_and_class_weights() {
    let blobs = Synthetic::blobs(N, 4, 3).seed(6);
    let weights: Vec<f32> = (0..N).map(|i| 0.25 + (i % 5) as f32).collect();
    let config = TrainConfig::sgd().batch_size(50).epochs(3).seed(3);
    for ranks in [2, 3] {
        let trainer = || Trainer::new(config.clone()).unwrap();
        let (alone, ranked) = alone_and_ranked(
            ranks,
            trainer,
            &blobs,
            Some(&weights),
            SoftmaxRegression::new,
        );
        assert_same("sample weights", &alone, &ranked, 1e-5);
        let balanced = config.clone().class_weight(ClassWeight::Balanced);
        let trainer = || Trainer::new(balanced.clone()).unwrap();
        let (alone, ranked) = alone_and_ranked(ranks, trainer, &blobs, None, || Mlp::new(4));
        assert_same("balanced classes", &alone, &ranked, 1e-5);
    }
}

#[test]
fn the_defaults_on_streamed_ranks_are_the_single_process_fit_in_memory() {
    // Ranks that stream a generator make the choices of one process holding its rows:
    // standardisation from block statistics merged across ranks, L-BFGS over each rank's
    // share (a linear model), or the mini-batch loop at the rate from the curvature and
    // the largest row (scanned in shares), stopped by the plateau rule.
    let rows = Synthetic::logistic(3_000, 6).seed(11);
    let data = rows.dataset().unwrap();
    for (what, config) in [
        ("defaults", TrainConfig::default().seed(5)),
        (
            "defaults, sgd",
            TrainConfig::default()
                .solver(Solver::Sgd)
                .batch_size(64)
                .seed(5),
        ),
    ] {
        let mut single = LogisticRegression::new();
        let report = Trainer::new(config.clone())
            .unwrap()
            .fit(&mut single, &data)
            .unwrap();
        for ranks in [2, 3] {
            let ranked = LocalGroup::run(ranks, |comm| {
                let mut m = LogisticRegression::new();
                let trainer = Trainer::new(config.clone()).unwrap().with_comm(comm);
                let report = trainer.fit(&mut m, &rows).unwrap();
                (report, flat(&m))
            });
            assert_eq!(ranked[0].0.choices.solver, report.choices.solver, "{what}");
            let alone = (report.clone(), flat(&single));
            assert_same(&format!("{what}, {ranks} ranks"), &alone, &ranked, 1e-4);
        }
    }
}

#[test]
fn standardisation_statistics_are_the_single_process_ones_bit_for_bit() {
    let rows = Synthetic::linear(70_000, 3).seed(2); // 5 blocks of 16,384 rows
    let config = TrainConfig::sgd()
        .standardize(true)
        .epochs(1)
        .batch_size(512);
    let mut single = LinearRegression::new();
    Trainer::new(config.clone())
        .unwrap()
        .fit(&mut single, &rows)
        .unwrap();
    let want = single.fitted().unwrap().scaler.clone().unwrap();
    for ranks in [2, 3] {
        let scalers = LocalGroup::run(ranks, |comm| {
            let mut m = LinearRegression::new();
            let trainer = Trainer::new(config.clone()).unwrap().with_comm(comm);
            trainer.fit(&mut m, &rows).unwrap();
            m.fitted().unwrap().scaler.clone().unwrap()
        });
        for s in scalers {
            assert_eq!(s, want);
        }
    }
}

#[test]
fn lbfgs_evaluates_in_parts() {
    let data = Synthetic::logistic(N, 5).seed(3).dataset().unwrap();
    let lbfgs = TrainConfig::default().solver(Solver::lbfgs());
    check(
        "lbfgs logistic",
        &lbfgs,
        &data,
        LogisticRegression::new,
        1e-4,
    );
    let reg = Synthetic::linear(N, 4).seed(3).dataset().unwrap();
    check("lbfgs linear", &lbfgs, &reg, LinearRegression::new, 1e-4);
    // The normal equations: the ranks' sums added, one solve, the same on every rank.
    let normal = TrainConfig::default()
        .solver(Solver::Normal)
        .penalty(Penalty::L2(0.01));
    check(
        "normal equations",
        &normal,
        &reg,
        LinearRegression::new,
        1e-6,
    );
    // A non-convex fit: a line search that rounding sends down another branch takes
    // another path, so only the outcome is compared (and the ranks with each other).
    let blobs = Synthetic::blobs(400, 3, 3).seed(3).dataset().unwrap();
    for ranks in [2, 3] {
        let trainer = || Trainer::new(lbfgs.clone().epochs(30)).unwrap();
        let ((alone, _), ranked) = alone_and_ranked(ranks, trainer, &blobs, None, || Mlp::new(4));
        for (report, params) in &ranked {
            assert_eq!(params, &ranked[0].1);
            let (a, b) = (report.final_loss(), alone.final_loss());
            assert!(
                (a - b).abs() <= 0.02 * b,
                "lbfgs mlp, {ranks} ranks: {a} vs {b}"
            );
        }
    }
}

#[test]
fn stopping_rules_stop_every_rank_at_the_same_step() {
    let reg = Synthetic::linear(N, 4).seed(7);
    // Seed 000's tol rule, on the global batch's loss.
    let tol = TrainConfig::sgd()
        .batch_size(100)
        .epochs(50)
        .tol(1e-4)
        .seed(1);
    check("tol", &tol, &reg, LinearRegression::new, 1e-5);
    // Early stopping on a held-out share, scored in parts.
    let blobs = Synthetic::blobs(N, 3, 3).seed(2);
    let early = TrainConfig::sgd()
        .batch_size(32)
        .epochs(40)
        .seed(3)
        .early_stopping(EarlyStopping::default());
    check("early stopping", &early, &blobs, || Mlp::new(4), 1e-4);
    for ranks in [2, 3] {
        let trainer = || Trainer::new(early.clone()).unwrap();
        let (alone, ranked) =
            alone_and_ranked(ranks, trainer, &blobs, None, SoftmaxRegression::new);
        assert!(
            matches!(alone.0.stop, StopReason::EarlyStopping { .. }),
            "{:?}",
            alone.0.stop
        );
        assert_same("early stopping (softmax)", &alone, &ranked, 1e-4);
    }
    // A rate that diverges: every rank sees the same non-finite global loss.
    let wild = TrainConfig::sgd()
        .batch_size(16)
        .epochs(3)
        .learning_rate(1e6);
    let results = LocalGroup::run(3, |comm| {
        let trainer = Trainer::new(wild.clone()).unwrap().with_comm(comm);
        trainer.fit(&mut LinearRegression::new(), &reg)
    });
    let steps: Vec<u64> = results
        .iter()
        .map(|r| match r {
            Err(Error::Diverged { step, .. }) => *step,
            other => panic!("expected a divergence, got {other:?}"),
        })
        .collect();
    assert!(steps.iter().all(|&s| s == steps[0]), "{steps:?}");
}

#[test]
fn a_resumed_distributed_fit_equals_an_uninterrupted_one() {
    let blobs = Synthetic::blobs(N, 3, 3).seed(4);
    let config = TrainConfig::sgd()
        .batch_size(48)
        .optimizer(Optimizer::adam())
        .learning_rate(0.01);
    let params = LocalGroup::run(3, |comm| {
        let comm = std::sync::Arc::new(comm);
        let once = Trainer::new(config.clone().epochs(4))
            .unwrap()
            .with_comm(comm.clone());
        let mut a = Mlp::new(5);
        once.fit(&mut a, &blobs).unwrap();
        let twice = Trainer::new(config.clone().epochs(2))
            .unwrap()
            .with_comm(comm);
        let mut b = Mlp::new(5);
        twice.partial_fit(&mut b, &blobs).unwrap();
        twice.partial_fit(&mut b, &blobs).unwrap();
        (flat(&a), flat(&b))
    });
    for (a, b) in params {
        assert_eq!(a, b);
    }
}

#[test]
fn bad_data_on_one_rank_ends_every_rank_at_that_step() {
    // A row that only rank 1 reads (in the second batch, unshuffled) cannot be read:
    // rank 1 fails gathering it, the others learn at that step's all-reduce.
    let bad = BadRow { n: 200, bad: 33 };
    let config = TrainConfig::sgd().batch_size(20).epochs(2).shuffle(false);
    let results = LocalGroup::run(3, |comm| {
        let trainer = Trainer::new(config.clone()).unwrap().with_comm(comm);
        trainer.fit(&mut LinearRegression::new(), &bad)
    });
    // Batch 1 is rows 20..40: parts 20..27, 27..34, 34..40; row 33 is rank 1's.
    match &results[1] {
        Err(Error::BadFile { reason, .. }) => assert!(reason.contains("row 33"), "{reason}"),
        other => panic!("rank 1: {other:?}"),
    }
    for r in [0, 2] {
        match &results[r] {
            Err(Error::Rank {
                rank: 1,
                size: 3,
                message,
            }) => {
                assert!(message.contains("row 33"), "{message}")
            }
            other => panic!("rank {r}: {other:?}"),
        }
    }
}

/// A source whose row `bad` cannot be read.
struct BadRow {
    n: usize,
    bad: u32,
}

impl RowSource for BadRow {
    fn n(&self) -> usize {
        self.n
    }
    fn p(&self) -> usize {
        2
    }
    fn classes(&self) -> Option<usize> {
        None
    }
    fn gather(
        &self,
        rows: &[u32],
        x: &mut [f32],
        targets: gradflow::data::RowTargets<'_>,
    ) -> gradflow::Result<()> {
        let gradflow::data::RowTargets::Real(y) = targets else {
            unreachable!()
        };
        for (i, &r) in rows.iter().enumerate() {
            if r == self.bad {
                return Err(Error::BadFile {
                    path: "bad.npy".into(),
                    reason: format!("row {r}: unreadable"),
                });
            }
            x[2 * i] = (r % 7) as f32 / 7.0;
            x[2 * i + 1] = (r % 3) as f32 / 3.0;
            y[i] = x[2 * i] - x[2 * i + 1];
        }
        Ok(())
    }
}

#[test]
fn an_error_outside_a_collective_breaks_the_group_instead_of_hanging() {
    // Rank 2 fails before its fit begins (a model whose data do not suit it) while the
    // others train: its abort ends their fits with its message.
    let reg = Synthetic::linear(500, 3).seed(1);
    let config = TrainConfig::sgd().batch_size(10).epochs(50);
    let results = LocalGroup::run(3, |comm| {
        let trainer = Trainer::new(config.clone()).unwrap().with_comm(comm);
        if trainer.rank() == 2 {
            trainer
                .fit(&mut LogisticRegression::new(), &reg)
                .map(|_| ())
        } else {
            trainer.fit(&mut LinearRegression::new(), &reg).map(|_| ())
        }
    });
    assert!(
        matches!(results[2], Err(Error::TargetMismatch { .. })),
        "{:?}",
        results[2]
    );
    for r in [0, 1] {
        match &results[r] {
            Err(Error::Comm { message }) => assert!(message.contains("rank 2 of 3"), "{message}"),
            other => panic!("rank {r}: {other:?}"),
        }
    }
}

#[test]
fn gpu_ranks_equal_the_single_process_fit() {
    let Some(_) = common::gpu("gpu_ranks_equal_the_single_process_fit") else {
        return;
    };
    let blobs = Synthetic::blobs(600, 4, 3).seed(3);
    let data = blobs.dataset().unwrap();
    let gpu = TrainConfig::sgd()
        .batch_size(50)
        .epochs(3)
        .backend(Backend::Gpu);
    // Resident, streamed, and the CPU fit as the reference of both.
    let cpu = || Trainer::new(gpu.clone().backend(Backend::Cpu)).unwrap();
    for (what, source) in [("resident", &data as &dyn RowSource), ("streamed", &blobs)] {
        let trainer = || Trainer::new(gpu.clone()).unwrap();
        let (alone, ranked) = alone_and_ranked(2, trainer, source, None, || Mlp::new(6));
        assert_same(&format!("gpu {what}"), &alone, &ranked, 1e-4);
        let (on_cpu, _) = alone_and_ranked(2, cpu, source, None, || Mlp::new(6));
        assert_same(
            &format!("gpu {what} against the cpu"),
            &on_cpu,
            &ranked,
            1e-4,
        );
    }
    let adam = gpu.clone().optimizer(Optimizer::adam()).learning_rate(0.01);
    let trainer = || Trainer::new(adam.clone()).unwrap();
    let (alone, ranked) = alone_and_ranked(3, trainer, &data, None, SoftmaxRegression::new);
    assert_same("gpu adam, 3 ranks", &alone, &ranked, 1e-4);
    // Local SGD on the device: steps on each rank's share, parameters averaged every 4.
    for (what, source) in [("resident", &data as &dyn RowSource), ("streamed", &blobs)] {
        let local = gpu.clone().sync_every(4);
        let fits = LocalGroup::run(2, |comm| {
            let mut m = SoftmaxRegression::new();
            let trainer = Trainer::new(local.clone()).unwrap().with_comm(comm);
            let report = trainer.fit(&mut m, source).unwrap();
            (report, flat(&m))
        });
        let mut single = SoftmaxRegression::new();
        let alone = Trainer::new(gpu.clone())
            .unwrap()
            .fit(&mut single, source)
            .unwrap();
        for (report, params) in &fits {
            assert_eq!(params, &fits[0].1, "gpu local sgd, {what}");
            assert!(report.backend.starts_with("gpu"), "{}", report.backend);
            let (a, b) = (report.final_loss(), alone.final_loss());
            assert!(
                a.is_finite() && a < 1.5 * b,
                "gpu local sgd, {what}: {a} vs {b} alone"
            );
        }
    }
}

#[test]
fn a_one_rank_group_is_the_single_process_fit() {
    let reg = Synthetic::linear(300, 3).seed(1);
    let config = TrainConfig::sgd().batch_size(16).epochs(2);
    let mut alone = LinearRegression::new();
    Trainer::new(config.clone())
        .unwrap()
        .fit(&mut alone, &reg)
        .unwrap();
    let ranked = LocalGroup::run(1, |comm| {
        let mut m = LinearRegression::new();
        Trainer::new(config.clone())
            .unwrap()
            .with_comm(comm)
            .fit(&mut m, &reg)
            .unwrap();
        flat(&m)
    });
    assert_eq!(ranked[0], flat(&alone));
}

#[test]
fn local_sgd_averages_every_k_steps_and_keeps_the_ranks_together() {
    let rows = Synthetic::linear(4_000, 8).seed(2);
    let config = TrainConfig::sgd()
        .batch_size(64)
        .epochs(4)
        .learning_rate(0.05)
        .seed(1);
    let mut alone = LinearRegression::new();
    let single = Trainer::new(config.clone())
        .unwrap()
        .fit(&mut alone, &rows)
        .unwrap();
    for (ranks, k) in [(2, 4), (3, 16)] {
        let local = config.clone().sync_every(k);
        let fits = LocalGroup::run(ranks, |comm| {
            let mut m = LinearRegression::new();
            let trainer = Trainer::new(local.clone()).unwrap().with_comm(comm);
            let report = trainer.fit(&mut m, &rows).unwrap();
            (report, flat(&m))
        });
        for (report, params) in &fits {
            // Averaged at every epoch's end: the same parameters on every rank.
            assert_eq!(params, &fits[0].1, "{ranks} ranks, every {k}");
            assert_eq!(report.steps, single.steps);
            // Not the synchronous fit (smaller batches between averages), but as good.
            let (a, b) = (report.final_loss(), single.final_loss());
            assert!(
                a < 2.0 * b + 1e-4,
                "{ranks} ranks, every {k}: loss {a} vs {b} alone"
            );
            assert!(a.is_finite() && report.epoch_losses.iter().all(|l| l.is_finite()));
        }
    }
    // Seed 000's per-step rule needs every step's global loss.
    let refused = TrainConfig::sgd().sync_every(4).tol(1e-3);
    assert!(matches!(
        Trainer::new(refused),
        Err(Error::InvalidParameter { name: "tol", .. })
    ));
    assert!(Trainer::new(TrainConfig::sgd().sync_every(0)).is_err());
}

#[test]
fn local_sgd_stops_every_rank_when_one_fails() {
    let bad = BadRow { n: 200, bad: 33 };
    let config = TrainConfig::sgd()
        .batch_size(20)
        .epochs(2)
        .shuffle(false)
        .sync_every(3);
    let results = LocalGroup::run(3, |comm| {
        let trainer = Trainer::new(config.clone()).unwrap().with_comm(comm);
        trainer.fit(&mut LinearRegression::new(), &bad)
    });
    assert!(
        matches!(&results[1], Err(Error::BadFile { .. })),
        "{:?}",
        results[1]
    );
    for r in [0, 2] {
        assert!(
            matches!(&results[r], Err(Error::Rank { rank: 1, .. })),
            "{:?}",
            results[r]
        );
    }
}

#[test]
fn a_device_lost_on_one_rank_ends_every_rank() {
    // Each rank on its own device; rank 1's is destroyed (a driver reset, an unplugged
    // GPU) at the end of the first epoch: both ranks end with an error naming it, none
    // waits for the other.
    let blobs = Synthetic::blobs(400, 3, 3).seed(1);
    let config = TrainConfig::sgd()
        .batch_size(40)
        .epochs(4)
        .backend(Backend::Gpu);
    let results = LocalGroup::run(2, |comm| {
        let ctx = common::fresh_gpu("a_device_lost_on_one_rank_ends_every_rank")?;
        let rank = gradflow::dist::Comm::rank(&comm);
        let doomed = ctx.clone();
        let trainer = Trainer::new(config.clone())
            .unwrap()
            .with_gpu(ctx)
            .with_progress(move |p| {
                if rank == 1 && p.epoch == 0 {
                    doomed.device().destroy();
                }
            })
            .with_comm(comm);
        Some(trainer.fit(&mut SoftmaxRegression::new(), &blobs))
    });
    let [Some(first), Some(second)] = &results[..] else {
        return; // no adapter: skipped loudly by fresh_gpu
    };
    let lost = |e: &Error| e.to_string().contains("lost");
    match second {
        Err(e @ Error::Device { .. }) => assert!(lost(e), "{e}"),
        other => panic!("rank 1: {other:?}"),
    }
    match first {
        Err(e @ (Error::Rank { rank: 1, .. } | Error::Comm { .. })) => assert!(lost(e), "{e}"),
        other => panic!("rank 0: {other:?}"),
    }
}
