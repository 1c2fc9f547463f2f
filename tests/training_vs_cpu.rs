//! Whole fits through the `Trainer` on the GPU, against the same fits on the CPU.

mod common;

use common::gpu;
use gradflow::data::{Dataset, Synthetic, Targets};
use gradflow::model::{Init, LinearRegression, LogisticRegression, Mlp, Model, SoftmaxRegression};
use gradflow::{Backend, Error, StopReason, TrainConfig, Trainer, Verify};

fn fit_both<M: Model + Clone>(model: &M, data: &Dataset, cfg: TrainConfig) -> (M, M, f64, f64) {
    let (mut cpu, mut gpu) = (model.clone(), model.clone());
    let rc = Trainer::new(cfg.clone().backend(Backend::Cpu))
        .unwrap()
        .fit(&mut cpu, data)
        .unwrap();
    let rg = Trainer::new(cfg.backend(Backend::Gpu))
        .unwrap()
        .fit(&mut gpu, data)
        .unwrap();
    assert!(rg.backend.starts_with("gpu"), "{}", rg.backend);
    assert_eq!(rc.steps, rg.steps);
    (cpu, gpu, rc.final_loss(), rg.final_loss())
}

/// A full fit ends at the same loss within 1e-4 relative on both backends, for each model:
/// the same batches in the same order (one epoch plan), only f32 rounding differs.
#[test]
fn full_fits_end_at_the_same_loss() {
    if gpu("full_fits_end_at_the_same_loss").is_none() {
        return;
    }
    let cfg = TrainConfig::sgd()
        .batch_size(64)
        .learning_rate(0.1)
        .epochs(4)
        .seed(3);
    let reg = Synthetic::linear(2000, 16).seed(1).dataset().unwrap();
    let bin = Synthetic::logistic(2000, 16).seed(2).dataset().unwrap();
    let multi = Synthetic::teacher(2000, 16, 5).seed(3).dataset().unwrap();
    let mut losses = vec![];
    let (_, _, a, b) = fit_both(&LinearRegression::new(), &reg, cfg.clone());
    losses.push(("linear", a, b));
    let (_, _, a, b) = fit_both(&LogisticRegression::new(), &bin, cfg.clone());
    losses.push(("logistic", a, b));
    let (_, _, a, b) = fit_both(&SoftmaxRegression::new(), &multi, cfg.clone());
    losses.push(("softmax", a, b));
    let (cpu, gpu, a, b) = fit_both(&Mlp::new(32), &multi, cfg);
    losses.push(("mlp", a, b));
    for (name, c, g) in losses {
        eprintln!(
            "{name}: cpu {c:.8} gpu {g:.8} rel {:.2e}",
            (c - g).abs() / c.abs()
        );
        assert!(
            (c - g).abs() <= 1e-4 * c.abs(),
            "{name}: cpu {c} vs gpu {g}"
        );
    }
    // And the models predict alike.
    let x = &multi.features()[..16 * 50];
    assert_eq!(cpu.predict(x).unwrap(), gpu.predict(x).unwrap());
}

/// Full-batch descent over more rows than one matmul dispatch sums (llvmpipe's loop
/// limit: `kernels::MATMUL_K_PER_DISPATCH`), so Xᵀδ takes several dispatches a step and
/// past the many-step kernel's largest batch: the GPU ends at the CPU's loss.
#[test]
fn full_batches_past_one_dispatch_agree() {
    if gpu("full_batches_past_one_dispatch_agree").is_none() {
        return;
    }
    let n = 2 * gradflow::gpu::kernels::MATMUL_K_PER_DISPATCH + 123;
    let data = Synthetic::linear(n, 5).seed(4).dataset().unwrap();
    let cfg = TrainConfig::sgd()
        .batch_size(usize::MAX)
        .learning_rate(0.1)
        .epochs(20);
    let (_, _, c, g) = fit_both(&LinearRegression::new(), &data, cfg.clone());
    assert!(
        (c - g).abs() <= 1e-4 * c.abs(),
        "linear: cpu {c} vs gpu {g}"
    );
    let data = Synthetic::logistic(n, 5).seed(5).dataset().unwrap();
    let (_, _, c, g) = fit_both(&LogisticRegression::new(), &data, cfg);
    assert!(
        (c - g).abs() <= 1e-4 * c.abs(),
        "logistic: cpu {c} vs gpu {g}"
    );
}

/// Seed 000's loop on the GPU: the tol rule is decided on the device, before the update.
#[test]
fn seed_loop_on_the_gpu() {
    if gpu("seed_loop_on_the_gpu").is_none() {
        return;
    }
    #[rustfmt::skip]
    let x: Vec<f32> = vec![1.0, 2.0, 3.0, 1.0, 1.0, 1.0, 0.0, 1.0, 2.0, 2.0, -2.0, 3.0,
        1.0, 2.0, -1.0, -0.5, 0.5, 1.2, 2.0, 1.0, -2.0, 3.0, -1.0, 1.0];
    let y = x.chunks(2).map(|r| 1.5 * r[0] + 1.5 * r[1] + 0.1).collect();
    let data = Dataset::new(x, 2, Targets::Real(y)).unwrap();
    let cfg = TrainConfig::sgd()
        .batch_size(3)
        .epochs(1000)
        .drop_last(true)
        .tol(1e-8)
        .backend(Backend::Gpu);
    let mut model = LinearRegression::new().with_init(Init::Ones);
    let report = model.fit(&data, &Trainer::new(cfg).unwrap()).unwrap();
    let (w, b) = (model.weights().unwrap(), model.bias().unwrap());
    eprintln!("GPU seed loop: w = {w:?}, b = {b}, {:?}", report.stop);
    assert!(matches!(report.stop, StopReason::Tolerance { .. }));
    assert!((w[0] - 1.5).abs() < 1e-3 && (w[1] - 1.5).abs() < 1e-3 && (b - 0.1).abs() < 1e-3);
}

/// A divergent step size halts on the device at the first non-finite loss: the error names
/// the step, and the parameters stay finite although the host learns of it an epoch later.
#[test]
fn divergence_is_caught_on_the_gpu() {
    if gpu("divergence_is_caught_on_the_gpu").is_none() {
        return;
    }
    let data = Synthetic::linear(500, 8).seed(1).dataset().unwrap();
    let cfg = TrainConfig::sgd()
        .batch_size(10)
        .learning_rate(5.0)
        .epochs(50)
        .backend(Backend::Gpu);
    let mut model = LinearRegression::new();
    let err = model
        .fit(&data, &Trainer::new(cfg.clone()).unwrap())
        .unwrap_err();
    assert!(matches!(err, Error::Diverged { .. }), "{err}");
    assert!(model.weights().unwrap().iter().all(|v| v.is_finite()));
    // The CPU halts at the same step.
    let mut cpu = LinearRegression::new();
    let cpu_err = cpu
        .fit(&data, &Trainer::new(cfg.backend(Backend::Cpu)).unwrap())
        .unwrap_err();
    let step = |e: &Error| match e {
        Error::Diverged { step, .. } => *step,
        _ => unreachable!(),
    };
    eprintln!("GPU: {err}\nCPU: {cpu_err}");
    assert!(
        step(&err).abs_diff(step(&cpu_err)) <= 1,
        "{err} vs {cpu_err}"
    );
}

/// Verify mode compares every step and reports each tensor; a zero tolerance trips it.
#[test]
fn verify_mode_reports_and_catches_deviations() {
    if gpu("verify_mode_reports_and_catches_deviations").is_none() {
        return;
    }
    let data = Synthetic::teacher(300, 8, 3).seed(4).dataset().unwrap();
    let cfg = TrainConfig::sgd()
        .batch_size(32)
        .epochs(2)
        .backend(Backend::Gpu)
        .verify(Verify::default());
    let mut mlp = Mlp::new(16);
    let report = mlp.fit(&data, &Trainer::new(cfg.clone()).unwrap()).unwrap();
    let names: Vec<&str> = report.verify.iter().map(|d| d.tensor.as_str()).collect();
    assert_eq!(
        names,
        [
            "loss", "grad W1", "grad b1", "grad W2", "grad b2", "W1", "b1", "W2", "b2"
        ]
    );
    for d in &report.verify {
        eprintln!(
            "{:<8} max abs {:.2e} max rel {:.2e} over {} steps",
            d.tensor, d.max_abs, d.max_rel, d.checks
        );
        assert_eq!(d.checks, report.steps);
    }
    let strict = cfg.verify(Verify {
        every: 1,
        rtol: 0.0,
        atol: 0.0,
    });
    let err = Mlp::new(16)
        .fit(&data, &Trainer::new(strict).unwrap())
        .unwrap_err();
    assert!(matches!(err, Error::VerifyMismatch { .. }), "{err}");
    eprintln!("{err}");
}

/// `loss_every` changes only how often the host reads, never the result.
#[test]
fn loss_readback_frequency_does_not_change_results() {
    if gpu("loss_readback_frequency_does_not_change_results").is_none() {
        return;
    }
    let data = Synthetic::logistic(1000, 8).seed(9).dataset().unwrap();
    let run = |cfg: TrainConfig| {
        let mut m = LogisticRegression::new();
        let r = m
            .fit(
                &data,
                &Trainer::new(cfg.backend(Backend::Gpu).record_steps(true)).unwrap(),
            )
            .unwrap();
        (r.step_losses, m.weights().unwrap().to_vec())
    };
    let base = TrainConfig::sgd().batch_size(50).epochs(3);
    assert_eq!(run(base.clone()), run(base.loss_every(7)));
}

/// An adapter filter that matches nothing gives `NoAdapter` with the install hint, and
/// `Backend::Auto` falls back to the CPU with that context rather than failing.
#[test]
fn no_adapter_is_an_error_with_a_hint_and_auto_falls_back() {
    let err = gradflow::gpu::GpuContext::with_adapter(Some("no-such-adapter-xyz")).unwrap_err();
    assert!(matches!(err, Error::NoAdapter { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("apt-get install mesa-vulkan-drivers"),
        "{err}"
    );
    let data = Synthetic::linear(100, 3).seed(1).dataset().unwrap();
    let report = LinearRegression::new()
        .fit(
            &data,
            &Trainer::new(TrainConfig::sgd().backend(Backend::Auto).epochs(2)).unwrap(),
        )
        .unwrap();
    // With an adapter Auto trains there; without one it trains on the CPU. Either way it trains.
    assert!(
        report.backend == "cpu" || report.backend.starts_with("gpu"),
        "{}",
        report.backend
    );
    assert_eq!(report.epoch_losses.len(), 2);
}
