//! The trainer's own choices: a learning rate from the data that does not diverge where a
//! fixed one does, its back-off when it still meets a row it did not expect, the default
//! solver per situation, and `Backend::Auto` passing over software adapters.

mod common;

use common::{rescaled, write_npy_f32};

use gradflow::data::{Dataset, FileTargets, MappedFile, Synthetic, Targets};
use gradflow::model::{LinearRegression, LogisticRegression, Mlp, Model, SoftmaxRegression};
use gradflow::{
    Backend, Error, NoImprovement, Optimizer, Penalty, RateFrom, Solver, StopReason, TrainConfig,
    Trainer,
};

/// The mini-batch loop without a rate, on raw features spanning six orders of magnitude:
/// a fixed 0.1 diverges, the rate chosen from the curvature does not, and the loss falls.
#[test]
fn a_chosen_rate_does_not_diverge_where_a_fixed_one_does() {
    let scales = [1e-2f32, 1.0, 30.0, 1e3];
    let cases: Vec<(Box<dyn Model>, Dataset)> = vec![
        (
            Box::new(LinearRegression::new()),
            rescaled(
                &Synthetic::linear(3000, 4).seed(1).dataset().unwrap(),
                &scales,
                Some((50.0, 7.0)),
            ),
        ),
        (
            Box::new(LogisticRegression::new()),
            rescaled(
                &Synthetic::logistic(3000, 4).seed(2).dataset().unwrap(),
                &scales,
                None,
            ),
        ),
        (
            Box::new(SoftmaxRegression::new()),
            rescaled(
                &Synthetic::blobs(3000, 4, 3).seed(3).dataset().unwrap(),
                &scales,
                None,
            ),
        ),
    ];
    for (mut model, data) in cases {
        let raw = TrainConfig::default()
            .standardize(false)
            .solver(Solver::Sgd);
        let fixed = Trainer::new(raw.clone().learning_rate(0.1).epochs(20)).unwrap();
        let fixed = fixed.fit(model.as_mut(), &data);
        let chosen = Trainer::new(raw.epochs(20))
            .unwrap()
            .fit(model.as_mut(), &data)
            .unwrap();
        let name = model.name();
        assert!(
            matches!(chosen.choices.rate_from, RateFrom::Curvature { .. }),
            "{name}: {:?}",
            chosen.choices
        );
        let losses = &chosen.epoch_losses;
        assert!(losses.iter().all(|l| l.is_finite()), "{name}: {losses:?}");
        assert!(losses.last() < losses.first(), "{name}: {losses:?}");
        // The fixed rate: diverged (linear regression) or at best no better.
        match fixed {
            Err(Error::Diverged { .. }) => {}
            Ok(r) => {
                assert!(r.final_loss() >= chosen.final_loss() * 0.5 || r.final_loss().is_nan())
            }
            Err(e) => panic!("{name}: {e}"),
        }
    }
}

const SCALE: f32 = 1e4;

/// A streamed file whose one outlier row the curvature sample (16,384 of 40,000 rows)
/// does not see: the chosen rate is too long for it, each pass over it kicks the weights
/// far off, and when an epoch's loss rises the fit goes back to its last good epoch at a
/// quarter of the rate instead of going on (in memory, every row's norm is read and the
/// rate is safe from the start).
#[test]
fn a_chosen_rate_backs_off_from_an_outlier_it_did_not_see() {
    let (n, p) = (40_000, 3);
    let base = Synthetic::linear(n, p)
        .seed(4)
        .noise(0.1)
        .dataset()
        .unwrap();
    let Targets::Real(y) = base.targets() else {
        unreachable!()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outlier.npy");
    let cfg = TrainConfig::default().standardize(false).epochs(6);
    // The sample is seeded: try outlier positions until one falls outside it (each does
    // with probability 0.59).
    let mut found = None;
    for outlier in (n - 10..n).rev() {
        let mut values = Vec::with_capacity(n * (p + 1));
        for (i, (row, &t)) in base.features().chunks_exact(p).zip(y).enumerate() {
            let s = if i == outlier { SCALE } else { 1.0 };
            values.extend(row.iter().map(|v| v * s));
            values.push(t);
        }
        write_npy_f32(&path, n, p + 1, &values);
        let file = MappedFile::npy(&path, FileTargets::Real { column: p }).unwrap();
        let report = Trainer::new(cfg.clone())
            .unwrap()
            .fit(&mut LinearRegression::new(), &file);
        let report = report.unwrap();
        if report.choices.backoffs > 0 {
            found = Some((report, file));
            break;
        }
    }
    let (report, file) = found.expect("some outlier position outside the curvature sample");
    assert_eq!(
        report.choices.solver,
        Solver::Sgd,
        "a streamed source takes the loop"
    );
    assert!(report.choices.backoffs >= 1, "{:?}", report.choices);
    assert_eq!(
        report.notes.len(),
        report.choices.backoffs,
        "{:?}",
        report.notes
    );
    assert!(
        report.notes[0].contains("went back to epoch"),
        "{:?}",
        report.notes
    );
    assert!(report.epoch_losses.iter().all(|l| l.is_finite()));
    // The first chosen rate given explicitly is the user's: kept, and worse (each epoch's
    // pass over the outlier kicks the weights far off).
    let rate = report.choices.learning_rate.unwrap() * 4f64.powi(report.choices.backoffs as i32);
    let given = TrainConfig::default()
        .standardize(false)
        .epochs(6)
        .learning_rate(rate);
    let kept = Trainer::new(given)
        .unwrap()
        .fit(&mut LinearRegression::new(), &file)
        .unwrap();
    assert_eq!(
        (kept.choices.rate_from, kept.choices.backoffs),
        (RateFrom::Given, 0)
    );
    assert!(
        kept.final_loss() > report.final_loss(),
        "{} vs {}",
        kept.final_loss(),
        report.final_loss()
    );
}

/// The MLP's chosen SGD rate bounds both layers: a wide hidden layer (whose activations,
/// not the two input features, set the curvature) trains without blowing up.
#[test]
fn the_mlps_chosen_rate_bounds_its_output_layer_too() {
    let data = Synthetic::blobs(2000, 2, 3).seed(5).dataset().unwrap();
    let cfg = TrainConfig::default().optimizer(Optimizer::Sgd).epochs(5);
    let report = Trainer::new(cfg)
        .unwrap()
        .fit(&mut Mlp::new(1024), &data)
        .unwrap();
    let RateFrom::Curvature { smoothness } = report.choices.rate_from else {
        panic!("{:?}", report.choices)
    };
    // ½ · λ_max of the hidden activations' second moments: near ½ · 1024 / 4.
    assert!(smoothness > 50.0, "{smoothness}");
    let losses = &report.epoch_losses;
    assert!(losses.windows(2).all(|w| w[1] < w[0]), "{losses:?}");
    assert_eq!(report.choices.backoffs, 0);
}

/// The default solver per situation (see `Solver`), and what the report says of it.
#[test]
fn the_default_solver_follows_the_situation() {
    let data = Synthetic::logistic(500, 3).seed(6).dataset().unwrap();
    let fit = |cfg: TrainConfig, model: &mut dyn Model, data: &dyn gradflow::data::RowSource| {
        Trainer::new(cfg).unwrap().fit(model, data).unwrap()
    };
    // In memory, no knob of the loop: L-BFGS, L2 with α = 1/n, converged.
    let r = fit(
        TrainConfig::default(),
        &mut LogisticRegression::new(),
        &data,
    );
    assert!(
        matches!(r.choices.solver, Solver::Lbfgs { .. }),
        "{:?}",
        r.choices
    );
    assert_eq!(r.choices.penalty, Penalty::L2(1.0 / 500.0));
    assert!(
        r.converged && matches!(r.stop, StopReason::Converged { .. }),
        "{}",
        r.stop
    );
    assert_eq!((r.choices.optimizer, r.choices.learning_rate), (None, None));
    // A rate, an optimizer, early stopping or an L1 penalty: the loop.
    for cfg in [
        TrainConfig::default().learning_rate(0.05),
        TrainConfig::default().optimizer(Optimizer::adam()),
        TrainConfig::default().early_stopping(Default::default()),
        TrainConfig::default().penalty(Penalty::L1(1e-3)),
        TrainConfig::default().no_stop().epochs(3),
    ] {
        let r = fit(cfg.clone(), &mut LogisticRegression::new(), &data);
        assert_eq!(r.choices.solver, Solver::Sgd, "{cfg:?}");
    }
    // Linear regression in memory: its normal equations, up to NORMAL_MAX_FEATURES
    // features and off the device; L-BFGS past them, or asked for the GPU.
    let reg = |p| Synthetic::linear(400, p).seed(6).dataset().unwrap();
    let small = fit(
        TrainConfig::default(),
        &mut LinearRegression::new(),
        &reg(3),
    );
    assert_eq!(small.choices.solver, Solver::Normal);
    assert!(
        matches!(small.stop, StopReason::Solved { rank: 4, .. }),
        "{}",
        small.stop
    );
    let wide = reg(gradflow::train::NORMAL_MAX_FEATURES + 1);
    let r = fit(TrainConfig::default(), &mut LinearRegression::new(), &wide);
    assert!(
        matches!(r.choices.solver, Solver::Lbfgs { .. }),
        "{:?}",
        r.choices
    );
    if common::gpu("the_default_solver_follows_the_situation").is_some() {
        let cfg = TrainConfig::default().backend(Backend::Gpu);
        let r = fit(cfg, &mut LinearRegression::new(), &reg(3));
        assert!(
            matches!(r.choices.solver, Solver::Lbfgs { .. }),
            "{:?}",
            r.choices
        );
    }
    // A generator streams: the loop, SGD at a chosen rate.
    let rows = Synthetic::logistic(20_000, 3).seed(6);
    let r = fit(
        TrainConfig::default().epochs(3),
        &mut LogisticRegression::new(),
        &rows,
    );
    assert_eq!(
        (r.choices.solver, r.choices.optimizer),
        (Solver::Sgd, Some(Optimizer::Sgd))
    );
    assert_eq!(r.mode, "streaming");
    // The MLP: Adam at 10⁻³, no penalty.
    let blobs = Synthetic::blobs(300, 2, 3).seed(7).dataset().unwrap();
    let r = fit(TrainConfig::default().epochs(2), &mut Mlp::new(8), &blobs);
    assert_eq!(r.choices.optimizer, Some(Optimizer::adam()));
    assert_eq!(
        (r.choices.learning_rate, r.choices.penalty),
        (Some(1e-3), Penalty::None)
    );
    // L-BFGS where it cannot go: clear errors.
    let lbfgs = TrainConfig::default().solver(Solver::lbfgs());
    for (cfg, needle) in [
        (lbfgs.clone().penalty(Penalty::L1(1e-3)), "L1"),
        (
            lbfgs.clone().early_stopping(Default::default()),
            "early_stopping",
        ),
    ] {
        let err = Trainer::new(cfg)
            .unwrap()
            .fit(&mut LogisticRegression::new(), &data)
            .unwrap_err();
        assert!(err.to_string().contains(needle), "{err}");
    }
    let err = Trainer::new(lbfgs)
        .unwrap()
        .fit(&mut LogisticRegression::new(), &rows)
        .unwrap_err();
    assert!(err.to_string().contains("in memory"), "{err}");
}

/// The plateau rule stops a fit that has converged, scaled to the loss above 1 (a
/// regression on targets in the thousands stops too), and `no_stop` runs every epoch.
#[test]
fn the_plateau_rule_stops_raw_scale_regressions() {
    let data = rescaled(
        &Synthetic::linear(2000, 3).seed(8).dataset().unwrap(),
        &[1.0; 3],
        Some((1e3, 5e4)),
    );
    let cfg = TrainConfig::default().solver(Solver::Sgd).epochs(1000);
    let r = Trainer::new(cfg.clone())
        .unwrap()
        .fit(&mut LinearRegression::new(), &data)
        .unwrap();
    assert!(
        matches!(r.stop, StopReason::NoImprovement { .. }),
        "{}",
        r.stop
    );
    assert!(
        r.converged && r.epoch_losses.len() < 200,
        "{} epochs",
        r.epoch_losses.len()
    );
    let r = Trainer::new(cfg.no_stop().epochs(7))
        .unwrap()
        .fit(&mut LinearRegression::new(), &data)
        .unwrap();
    assert_eq!((r.epoch_losses.len(), r.converged), (7, false));
    assert!(
        NoImprovement::default().improves(1e6 - 200.0, 1e6)
            && !NoImprovement::default().improves(1e6 - 50.0, 1e6)
    );
}

/// `Backend::Auto` trains on the CPU when the only adapter is a software one (lavapipe,
/// llvmpipe), saying so in the report; an adapter given explicitly is used.
#[test]
fn auto_passes_over_software_adapters() {
    let Some(ctx) = common::gpu("auto_passes_over_software_adapters") else {
        return;
    };
    let data = Synthetic::logistic(400, 3).seed(9).dataset().unwrap();
    let auto = TrainConfig::default().backend(Backend::Auto);
    let software = ctx.info().device_type == wgpu::DeviceType::Cpu;
    if std::env::var_os("GRADFLOW_ADAPTER").is_none() {
        let r = Trainer::new(auto.clone())
            .unwrap()
            .fit(&mut LogisticRegression::new(), &data)
            .unwrap();
        if software {
            assert_eq!(r.backend, "cpu");
            assert!(
                r.notes.iter().any(|n| n.contains("software")),
                "{:?}",
                r.notes
            );
        } else {
            assert!(r.backend.starts_with("gpu"), "{}", r.backend);
        }
    }
    let given = Trainer::new(auto).unwrap().with_gpu(ctx);
    let r = given.fit(&mut LogisticRegression::new(), &data).unwrap();
    assert!(r.backend.starts_with("gpu"), "{}", r.backend);
}

/// A column of timestamps (values near 1.7e9 a few seconds apart) is held by f32 in steps
/// of 128: the fit says so, naming the column, and stays silent on ordinary columns.
#[test]
fn a_column_f32_holds_coarsely_is_named_in_the_notes() {
    let base = Synthetic::linear(500, 3).seed(2).dataset().unwrap();
    let shifted: Vec<f32> = base
        .features()
        .chunks(3)
        .flat_map(|r| [r[0], r[1] * 10.0 + 1.7e9, r[2]])
        .collect();
    let data = Dataset::new(shifted, 3, base.targets().clone()).unwrap();
    let fit = |d: &Dataset| {
        let mut model = LinearRegression::new();
        Trainer::new(TrainConfig::default())
            .unwrap()
            .fit(&mut model, d)
            .unwrap()
            .notes
    };
    let notes = fit(&data);
    assert!(
        notes.iter().any(|n| n
            .starts_with("features lose precision as f32: column 1's values lie near 1.7000e9")
            && n.contains("steps of 1.280e2")),
        "{notes:?}"
    );
    assert!(
        fit(&base).iter().all(|n| !n.contains("precision")),
        "{:?}",
        fit(&base)
    );
}
