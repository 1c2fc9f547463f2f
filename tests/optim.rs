//! Optimizers, penalties, schedules and the plateau stop through the trainer, on both
//! backends: the GPU must land on the CPU's parameters (the same update arithmetic, see
//! `cpu::update`), and each knob must do what its name says.

mod common;

use common::{assert_close, gpu};
use gradflow::data::{Dataset, Synthetic, Targets};
use gradflow::gpu::tune::MlpStep;
use gradflow::model::{LinearRegression, Mlp, Model};
use gradflow::{
    Backend, Mode, NoImprovement, Optimizer, Penalty, Report, Schedule, StopReason, TrainConfig,
    Trainer,
};

fn fit<M: Model + Clone>(model: &M, data: &Dataset, cfg: TrainConfig) -> (Vec<Vec<f32>>, Report) {
    let mut m = model.clone();
    let report = Trainer::new(cfg).unwrap().fit(&mut m, data).unwrap();
    (m.fitted().unwrap().params.clone(), report)
}

/// Every optimizer with every penalty: GPU (resident and streaming) = CPU after two
/// shuffled epochs of an MLP (40 updates each), and the GPU's updates of the four
/// tensors in one dispatch the same bits as one dispatch each.
#[test]
fn every_optimizer_and_penalty_agrees_across_backends() {
    let data = Synthetic::teacher(1200, 8, 3).seed(5).dataset().unwrap();
    let optimizers = [
        (Optimizer::momentum(0.9), 0.05),
        (Optimizer::nesterov(0.9), 0.05),
        (Optimizer::adam(), 0.01),
        (Optimizer::adagrad(), 0.1),
        (Optimizer::Sgd, 0.5),
    ];
    let penalties = [
        Penalty::None,
        Penalty::L2(1e-2),
        Penalty::L1(1e-3),
        Penalty::ElasticNet {
            alpha: 1e-2,
            l1_ratio: 0.5,
        },
    ];
    let Some(ctx) = gpu("every_optimizer_and_penalty_agrees_across_backends") else {
        return;
    };
    // fuse_steps(false) also turns off the fused MLP step, which sums in other orders:
    // where the adapter's tuning fuses it, the two fits agree to float32 accuracy only.
    let fused_mlp = ctx.pipelines().tuning().mlp == MlpStep::Fused;
    for (optimizer, lr) in optimizers {
        for penalty in penalties {
            let cfg = TrainConfig::sgd()
                .batch_size(64)
                .learning_rate(lr)
                .epochs(2)
                .seed(3)
                .optimizer(optimizer)
                .penalty(penalty);
            let what = format!("{optimizer:?} {penalty:?}");
            let (cpu, rc) = fit(&Mlp::new(8), &data, cfg.clone());
            let g = cfg.backend(Backend::Gpu);
            let (res, _) = fit(&Mlp::new(8), &data, g.clone().mode(Mode::Resident));
            let (st, _) = fit(&Mlp::new(8), &data, g.clone().mode(Mode::Streaming));
            // One update dispatch for the four tensors (update_all.wgsl) or one each
            // (fuse_steps off): the same bits, on the per-op MLP step.
            let per_op = g.mode(Mode::Resident).fuse_steps(false);
            let (plain, _) = fit(&Mlp::new(8), &data, per_op);
            let bits =
                |v: &Vec<Vec<f32>>| v.concat().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            if fused_mlp {
                let (r, p) = (res.concat(), plain.concat());
                assert_close(
                    &format!("{what}: fused step and updates"),
                    &r,
                    &p,
                    1e-4,
                    1e-5,
                );
            } else {
                assert_eq!(bits(&res), bits(&plain), "{what}: fused updates");
            }
            assert!(
                rc.final_loss() < rc.epoch_losses[0],
                "{what}: {:?}",
                rc.epoch_losses
            );
            for (t, ((c, r), s)) in cpu.iter().zip(&res).zip(&st).enumerate() {
                // 40 updates of f32 arithmetic in two orders: 1e-4 relative.
                assert_close(&format!("{what}: tensor {t} resident"), r, c, 1e-4, 1e-5);
                assert_close(&format!("{what}: tensor {t} streaming"), s, c, 1e-4, 1e-5);
            }
        }
    }
}

/// y = 2·x₀ + 0.5 with four irrelevant features: L1 sets their weights to exactly 0 (the
/// truncation), L2 only shrinks them, and neither touches the bias.
#[test]
fn l1_zeroes_irrelevant_weights() {
    let n = 2000;
    let noise = Synthetic::linear(n, 5).seed(2).dataset().unwrap(); // x ~ N(0, I)
    let x = noise.features().to_vec();
    let y: Vec<f32> = x.chunks(5).map(|r| 2.0 * r[0] + 0.5).collect();
    let data = Dataset::new(x, 5, Targets::Real(y)).unwrap();
    let cfg = TrainConfig::sgd()
        .batch_size(32)
        .learning_rate(0.05)
        .epochs(20)
        .seed(1);
    let mut lasso = LinearRegression::new();
    lasso
        .fit(
            &data,
            &Trainer::new(cfg.clone().penalty(Penalty::L1(0.05))).unwrap(),
        )
        .unwrap();
    let w = lasso.weights().unwrap();
    assert_eq!(&w[1..], &[0.0; 4], "L1 weights {w:?}");
    // The MSE gradient is 2·E[x(xw − y)] = 2(w − 2) for x ~ N(0, 1): the lasso optimum
    // is w₀ = 2 − α/2 = 1.975, shrunk, not zero (SGD noise aside).
    assert!((w[0] - 1.975).abs() < 0.02, "{w:?}");
    assert!((lasso.bias().unwrap() - 0.5).abs() < 0.05);
    let mut ridge = LinearRegression::new();
    ridge
        .fit(&data, &Trainer::new(cfg.penalty(Penalty::L2(0.1))).unwrap())
        .unwrap();
    let w = ridge.weights().unwrap();
    // Ridge: 2(w − 2) + α w = 0, w₀ = 4 / (2 + α) = 1.905; the rest ≈ 0 but not exactly.
    assert!((w[0] - 4.0 / 2.1).abs() < 0.02, "{w:?}");
    assert!(w[1..].iter().all(|v| v.abs() < 0.02), "{w:?}");
}

/// The schedules as the report sees them (the rate of each epoch's last update).
#[test]
fn schedules_shape_the_learning_rate() {
    let data = Synthetic::linear(100, 3).seed(1).dataset().unwrap();
    let base = TrainConfig::sgd()
        .batch_size(10)
        .learning_rate(0.1)
        .epochs(4);
    let lrs = |schedule: Schedule| {
        let (_, r) = fit(
            &LinearRegression::new(),
            &data,
            base.clone().schedule(schedule),
        );
        r.epoch_lrs
    };
    assert_eq!(lrs(Schedule::Constant), [0.1; 4]);
    let step = lrs(Schedule::Step {
        every: 2,
        gamma: 0.5,
    });
    assert_eq!(step, [0.1, 0.1, 0.05, 0.05]);
    let exp = lrs(Schedule::Exponential { gamma: 0.5 });
    assert_eq!(exp, [0.1, 0.05, 0.025, 0.0125]);
    // 40 updates: the last of epoch e is update 10(e+1); η = 0.1/t^0.5.
    let inv = lrs(Schedule::InvScaling { power: 0.5 });
    for (e, lr) in inv.iter().enumerate() {
        assert!((lr - 0.1 / (10.0 * (e as f64 + 1.0)).sqrt()).abs() < 1e-15);
    }
    // Cosine over 40 updates: the last one (s = 39) is just above min_lr.
    let cos = lrs(Schedule::Cosine { min_lr: 0.01 });
    assert!(cos.windows(2).all(|w| w[1] < w[0]), "{cos:?}");
    assert!(cos[3] > 0.01 && cos[3] < 0.0102, "{cos:?}");
}

/// The plateau rule stops a fit whose loss has converged; the adaptive schedule divides
/// the rate by 5 on the same plateau.
#[test]
fn plateaus_stop_or_slow_the_fit() {
    let data = Synthetic::linear(500, 4).seed(7).dataset().unwrap();
    let cfg = TrainConfig::sgd()
        .batch_size(50)
        .learning_rate(0.1)
        .epochs(200);
    let (_, r) = fit(
        &LinearRegression::new(),
        &data,
        cfg.clone().no_improvement(NoImprovement {
            epochs: 3,
            tol: 1e-3,
        }),
    );
    match r.stop {
        StopReason::NoImprovement { epoch, best } => {
            assert!(epoch < 20, "stopped only at epoch {epoch}");
            assert_eq!(r.epoch_losses.len(), epoch + 1);
            assert!(best <= r.final_loss());
        }
        other => panic!("expected a plateau stop, got {other:?}"),
    }
    let (_, r) = fit(
        &LinearRegression::new(),
        &data,
        cfg.epochs(12).schedule(Schedule::Adaptive {
            patience: 2,
            tol: 1e-3,
        }),
    );
    assert_eq!(r.epoch_lrs[0], 0.1);
    assert!(r.epoch_lrs[11] <= 0.1 / 25.0, "{:?}", r.epoch_lrs);
}

#[test]
fn bad_knobs_are_refused_with_their_values() {
    let bad = [
        (
            TrainConfig::sgd().optimizer(Optimizer::momentum(1.0)),
            "momentum 1",
        ),
        (
            TrainConfig::sgd().optimizer(Optimizer::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 0.0,
            }),
            "eps 0",
        ),
        (TrainConfig::sgd().penalty(Penalty::L2(-1.0)), "alpha -1"),
        (
            TrainConfig::sgd().penalty(Penalty::ElasticNet {
                alpha: 0.1,
                l1_ratio: 2.0,
            }),
            "l1_ratio 2",
        ),
        (
            TrainConfig::sgd().schedule(Schedule::Step {
                every: 0,
                gamma: 0.5,
            }),
            "every 0",
        ),
        (
            TrainConfig::sgd().schedule(Schedule::Cosine { min_lr: 1.0 }),
            "min_lr 1",
        ),
        (
            TrainConfig::sgd().no_improvement(NoImprovement {
                epochs: 0,
                tol: 0.0,
            }),
            "epochs 0",
        ),
    ];
    for (cfg, says) in bad {
        let err = Trainer::new(cfg).unwrap_err().to_string();
        assert!(err.contains(says), "{err:?} should name {says:?}");
    }
}

/// Verify mode reruns Adam steps (with their moments) on the CPU twin: no mismatch.
#[test]
fn verify_mode_checks_adam_steps() {
    if gpu("verify_mode_checks_adam_steps").is_none() {
        return;
    }
    let data = Synthetic::teacher(600, 6, 3).seed(9).dataset().unwrap();
    let cfg = TrainConfig::sgd()
        .batch_size(32)
        .learning_rate(0.01)
        .epochs(2)
        .optimizer(Optimizer::adam())
        .penalty(Penalty::L1(1e-3))
        .backend(Backend::Gpu)
        .verify(gradflow::Verify {
            every: 7,
            ..gradflow::Verify::default()
        });
    let (_, r) = fit(&Mlp::new(8), &data, cfg);
    let checked: Vec<&str> = r.verify.iter().map(|d| d.tensor.as_str()).collect();
    assert!(
        checked.contains(&"loss") && checked.contains(&"W1"),
        "{checked:?}"
    );
    assert!(r.verify.iter().all(|d| d.checks == 6), "{:?}", r.verify); // steps 0, 7, …, 35
}

/// Early stopping: a seeded tenth of the rows is held out; an MLP with too large a rate
/// on noisy labels overfits, its held-out loss turns up, the fit stops `patience` epochs
/// after the best one, and the model keeps the best epoch's parameters (its held-out loss
/// is the best one recorded). GPU and CPU see the same split and stop at the same epoch.
#[test]
fn early_stopping_keeps_the_best_epoch() {
    use gradflow::EarlyStopping;
    // 300 rows of a sampled (noisy) teacher: easy to overfit with 64 hidden units.
    let data = Synthetic::teacher(300, 10, 3).seed(12).dataset().unwrap();
    let rule = EarlyStopping {
        validation_fraction: 0.2,
        patience: 3,
        tol: 0.0,
    };
    let cfg = TrainConfig::sgd()
        .batch_size(16)
        .learning_rate(0.5)
        .epochs(300)
        .seed(4)
        .early_stopping(rule);
    let mut mlp = Mlp::new(64);
    let r = mlp.fit(&data, &Trainer::new(cfg.clone()).unwrap()).unwrap();
    let StopReason::EarlyStopping {
        epoch,
        best_epoch,
        best,
    } = r.stop
    else {
        panic!("expected early stopping, got {:?}", r.stop)
    };
    assert_eq!(
        epoch,
        best_epoch + rule.patience,
        "{:?}",
        r.validation_losses
    );
    assert_eq!(r.validation_losses.len(), epoch + 1);
    let min = r
        .validation_losses
        .iter()
        .cloned()
        .fold(f64::INFINITY, f64::min);
    assert_eq!((best, r.validation_losses[best_epoch]), (min, min));
    // 240 training rows per epoch: ⌈240 / 16⌉ = 15 updates.
    assert_eq!(r.samples, 240 * (epoch as u64 + 1));
    assert_eq!(r.steps, 15 * (epoch as u64 + 1));
    if gpu("early_stopping_keeps_the_best_epoch").is_some() {
        let mut g = Mlp::new(64);
        let rg = g
            .fit(&data, &Trainer::new(cfg.backend(Backend::Gpu)).unwrap())
            .unwrap();
        assert_eq!(rg.validation_losses.len(), r.validation_losses.len());
        let (a, b) = (&g.fitted().unwrap().params, &mlp.fitted().unwrap().params);
        for (t, (x, y)) in a.iter().zip(b).enumerate() {
            assert_close(&format!("best params, tensor {t}"), x, y, 1e-3, 1e-4);
        }
    }
}
