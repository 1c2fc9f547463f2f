//! The many-step GLM kernel (`shaders/glm_epoch.wgsl`: linear and logistic regression's
//! SGD steps sixteen to a dispatch, the weights in workgroup memory) against the CPU
//! reference kernels and against the one-dispatch-per-op path, on awkward shapes; where
//! it applies and where it must not; halting; repeatability; each of its variants
//! (`tune::GlmEpochVariant`), whichever the tuner chose for this adapter.

mod common;

use common::{assert_close, gpu};
use gradflow::cpu::loss::LossKind;
use gradflow::data::{Dataset, Synthetic};
use gradflow::gpu::GpuContext;
use gradflow::gpu::kernels::{self, GLM_EPOCH_MAX_BATCH, SPLIT_MIN_ROWS, glm_steps_per_dispatch};
use gradflow::gpu::tune::{GlmEpochVariant, SumSplit, Tuning};
use gradflow::model::{Init, LinearRegression, LogisticRegression, Model};
use gradflow::{
    Backend, CpuKernels, Error, Optimizer, Penalty, Report, Schedule, TrainConfig, Trainer,
};

/// Step losses and final parameters of one fit.
fn fit(model: &mut dyn Model, data: &Dataset, cfg: TrainConfig) -> (Report, Vec<Vec<f32>>) {
    fit_on(None, model, data, cfg)
}

/// As [`fit`], on `ctx` where given (a pinned variant).
fn fit_on(
    ctx: Option<&GpuContext>,
    model: &mut dyn Model,
    data: &Dataset,
    cfg: TrainConfig,
) -> (Report, Vec<Vec<f32>>) {
    let mut trainer = Trainer::new(cfg.record_steps(true)).unwrap();
    if let Some(ctx) = ctx {
        trainer = trainer.with_gpu(ctx.clone());
    }
    let report = trainer.fit(model, data).unwrap();
    (report, model.fitted().unwrap().params.clone())
}

/// A context per variant of the kernel, the adapter's other choices kept: the tuner
/// picks one variant per adapter, and each must be right.
fn variants(ctx: &GpuContext) -> Vec<(GlmEpochVariant, GpuContext)> {
    GlmEpochVariant::ALL
        .into_iter()
        .map(|v| {
            let t = Tuning {
                glm_epoch: v,
                ..ctx.pipelines().tuning().clone()
            };
            (v, GpuContext::with_tuning(None, t).expect("context"))
        })
        .collect()
}

/// `ctx`'s tuning with every mini-batch product summed in one pass
/// (`SumSplit::Long`): the per-op path's dispatch counts below are those of unsplit
/// products (a GPU's tuner may split thin ones, `tests/gpu_tuning.rs` tests that).
fn one_pass_sums(ctx: &GpuContext) -> GpuContext {
    let t = Tuning {
        split: SumSplit::Long,
        ..ctx.pipelines().tuning().clone()
    };
    GpuContext::with_tuning(None, t).expect("context")
}

fn make(loss: LossKind) -> Box<dyn Model> {
    match loss {
        LossKind::Mse => Box::new(LinearRegression::new()),
        _ => Box::new(LogisticRegression::new()),
    }
}

fn data(loss: LossKind, n: usize, p: usize, seed: u64) -> Dataset {
    match loss {
        LossKind::Mse => Synthetic::linear(n, p).seed(seed).dataset().unwrap(),
        _ => Synthetic::logistic(n, p).seed(seed).dataset().unwrap(),
    }
}

/// Every step's loss and the final parameters equal the CPU reference's within f32
/// rounding, and the per-op GPU path's: p across the invocation count (1, 3, 255, 256,
/// 257, 1000), batches of 1 row, a partial chunk, exactly one chunk and several chunks,
/// partial last batches, shuffled and in order, several dispatches per epoch.
/// Whether the device allows the kernel's 11 storage bindings (Vulkan adapters do; a GL
/// one may not, and then every fit takes the per-op path).
fn fusable(ctx: &gradflow::gpu::GpuContext) -> bool {
    ctx.limits().max_storage_buffers_per_shader_stage >= 11
}

#[test]
fn fused_steps_equal_the_reference_and_the_per_op_path() {
    let Some(ctx) = gpu("fused_steps_equal_the_reference_and_the_per_op_path") else {
        return;
    };
    let variants = variants(&ctx);
    let one_pass = one_pass_sums(&ctx);
    let mut cases = 0;
    for loss in [LossKind::Mse, LossKind::SigmoidBce] {
        for (p, batch, n) in [
            (1, 1, 40),
            (3, 100, 1030),
            (64, 256, 5000),
            (255, 300, 1300),
            (256, 1000, 2500),
            (257, 7, 300),
            (1000, 64, 400),
            // Three quads a row: `Lanes` leaves a lane of every four idle.
            (12, 40, 700),
            // The largest batch: 64 rows a lane in the Rows variant.
            (17, GLM_EPOCH_MAX_BATCH, 9000),
        ] {
            let d = data(loss, n, p, p as u64);
            // A stable rate for every p: about 1 / p for unit-variance features.
            let lr = if loss == LossKind::Mse {
                0.4 / p as f64
            } else {
                1.0 / p as f64
            };
            for shuffle in [true, false] {
                let cfg = TrainConfig::sgd()
                    .batch_size(batch)
                    .learning_rate(lr.min(0.1))
                    .epochs(3)
                    .seed(5)
                    .shuffle(shuffle);
                let (cpu, cpu_params) = fit(
                    make(loss).as_mut(),
                    &d,
                    cfg.clone().cpu_kernels(CpuKernels::Reference),
                );
                let (per_op, per_op_params) = fit_on(
                    Some(&one_pass),
                    make(loss).as_mut(),
                    &d,
                    cfg.clone().backend(Backend::Gpu).fuse_steps(false),
                );
                for (variant, vctx) in &variants {
                    if !variant.fits(p) {
                        // It falls back to Tiles: covered by that one.
                        continue;
                    }
                    let what =
                        format!("{loss:?} p={p} batch={batch} n={n} shuffle={shuffle} {variant:?}");
                    let (fused, fused_params) = fit_on(
                        Some(vctx),
                        make(loss).as_mut(),
                        &d,
                        cfg.clone().backend(Backend::Gpu),
                    );
                    // Fused: each epoch's steps, glm_steps_per_dispatch to a dispatch.
                    let per = glm_steps_per_dispatch(batch);
                    let want = 3 * n.div_ceil(batch).div_ceil(per) as u64;
                    assert!(
                        !fusable(&ctx) || fused.dispatches == want,
                        "{what}: not fused ({} dispatches for {} steps, {want} expected)",
                        fused.dispatches,
                        fused.steps
                    );
                    if batch < SPLIT_MIN_ROWS {
                        assert_eq!(per_op.dispatches, 7 * per_op.steps, "{what}");
                    } else {
                        // Its sums over rows split, each with a second pass.
                        assert!(per_op.dispatches > 7 * per_op.steps, "{what}");
                    }
                    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
                    let cpu_losses = f32s(&cpu.step_losses);
                    assert_close(
                        &format!("{what}: losses vs CPU"),
                        &f32s(&fused.step_losses),
                        &cpu_losses,
                        1e-4,
                        1e-6,
                    );
                    assert_close(
                        &format!("{what}: losses vs per-op"),
                        &f32s(&fused.step_losses),
                        &f32s(&per_op.step_losses),
                        1e-4,
                        1e-6,
                    );
                    for (i, (f, c)) in fused_params.iter().zip(&cpu_params).enumerate() {
                        assert_close(&format!("{what}: param {i}"), f, c, 1e-3, 1e-5);
                        assert_close(
                            &format!("{what}: param {i} vs per-op"),
                            f,
                            &per_op_params[i],
                            1e-3,
                            1e-5,
                        );
                    }
                    cases += 1;
                }
            }
        }
    }
    // Four (two losses, shuffled or not) per p: Tiles for all nine, Rows where p ≤ 64 (p
    // 1, 3, 12, 17, 64), Rows4 where p is also a multiple of 4 (12, 64), Lanes for
    // multiples of 4 up to 256 (12, 64, 256).
    assert_eq!(cases, 36 + 20 + 8 + 12);
}

/// An epoch of more steps than one submission's parameter blocks hold (3,600 steps of two
/// rows: queued steps are flushed mid-epoch), and a fit that repeats bit for bit.
#[test]
fn long_epochs_and_repeats() {
    if gpu("long_epochs_and_repeats").is_none() {
        return;
    }
    let d = Synthetic::linear(7200, 2).seed(9).dataset().unwrap();
    let cfg = TrainConfig::sgd()
        .batch_size(2)
        .learning_rate(0.01)
        .epochs(1)
        .seed(2);
    let (cpu, _) = fit(&mut LinearRegression::new(), &d, cfg.clone());
    let gpu_cfg = cfg.backend(Backend::Gpu);
    let (a, pa) = fit(&mut LinearRegression::new(), &d, gpu_cfg.clone());
    let (b, pb) = fit(&mut LinearRegression::new(), &d, gpu_cfg);
    assert_eq!(a.steps, 3600);
    assert!(a.submissions >= 2, "{} submissions", a.submissions);
    assert_eq!(
        (a.step_losses.clone(), pa),
        (b.step_losses, pb),
        "not repeatable"
    );
    let rel = (a.final_loss() - cpu.final_loss()).abs() / cpu.final_loss();
    assert!(rel < 1e-4, "{} vs {}", a.final_loss(), cpu.final_loss());
}

/// What the kernel does not do runs its gradient as one fused pass (`glm_grad.wgsl` and
/// its finish: two dispatches) and its updates one dispatch (`update_all.wgsl`; one per
/// tensor on a device with fewer bindings): Adam, a penalty,
/// row weights, batches beyond the many-step kernel's; p beyond 1024 runs one dispatch
/// per op, the bias add folded into the product. A schedule's rates are the per-step rates of the fused steps.
#[test]
fn fusion_applies_only_where_it_is_exact() {
    let Some(ctx) = gpu("fusion_applies_only_where_it_is_exact") else {
        return;
    };
    let d = Synthetic::linear(600, 4).seed(1).dataset().unwrap();
    let base = TrainConfig::sgd()
        .batch_size(50)
        .epochs(2)
        .backend(Backend::Gpu);
    let one_pass = one_pass_sums(&ctx);
    let per_step = |cfg: TrainConfig, data: &Dataset, weights: Option<Vec<f32>>| {
        let trainer = Trainer::new(cfg).unwrap().with_gpu(one_pass.clone());
        let mut m = LinearRegression::new();
        let r = match weights {
            Some(w) => trainer.fit_weighted(&mut m, data, Some(&w[..])).unwrap(),
            None => trainer.fit(&mut m, data).unwrap(),
        };
        r.dispatches as f64 / r.steps as f64
    };
    assert!(!fusable(&ctx) || per_step(base.clone(), &d, None) < 1.0);
    // The two updates: one dispatch where the device allows `update_all.wgsl`.
    let all = ctx.limits().max_storage_buffers_per_shader_stage >= kernels::UPDATE_ALL_BINDINGS;
    let updates = if all { 1.0 } else { 2.0 };
    let unfused = [
        base.clone().optimizer(Optimizer::adam()),
        base.clone().penalty(Penalty::L2(1e-3)),
    ];
    for cfg in unfused {
        assert_eq!(per_step(cfg.clone(), &d, None), 2.0 + updates);
        assert_eq!(per_step(cfg.fuse_steps(false), &d, None), 7.0);
    }
    assert_eq!(
        per_step(base.clone(), &d, Some(vec![2.0; 600])),
        2.0 + updates
    );
    let wide = Synthetic::linear(100, 1025).seed(2).dataset().unwrap();
    // Per op, the forward product's store adds the bias (one dispatch for two ops).
    assert_eq!(
        per_step(base.clone().learning_rate(1e-4), &wide, None),
        4.0 + updates
    );
    // Large batches: fewer steps a dispatch, down to one; past GLM_EPOCH_MAX_BATCH rows
    // (a full batch of W4's 10⁶ rows went wrong in one dispatch on llvmpipe), the fused
    // gradient over row segments and its finish, then the two updates.
    let tall = Synthetic::linear(2 * GLM_EPOCH_MAX_BATCH, 4)
        .seed(3)
        .dataset()
        .unwrap();
    if fusable(&ctx) {
        let wide_batch = |rows| per_step(base.clone().batch_size(rows), &tall, None);
        assert_eq!(
            wide_batch(1024),
            1.0 / 4.0,
            "4 steps a dispatch at 1,024 rows"
        );
        assert_eq!(wide_batch(GLM_EPOCH_MAX_BATCH), 1.0);
        const { assert!(GLM_EPOCH_MAX_BATCH + 1 >= SPLIT_MIN_ROWS) };
        assert_eq!(wide_batch(GLM_EPOCH_MAX_BATCH + 1), 2.0 + updates);
        assert_eq!(
            per_step(base.clone().batch_size(usize::MAX), &tall, None),
            2.0 + updates
        );
        // Per op, the sums over rows (Xᵀδ, 1ᵀδ) split over row segments: two each.
        let per_op = base.clone().batch_size(usize::MAX).fuse_steps(false);
        assert_eq!(per_step(per_op, &tall, None), 9.0);
    }
    // A decaying rate: the fused steps read each step's own rate.
    let cfg = base
        .schedule(Schedule::InvScaling { power: 0.5 })
        .record_steps(true);
    let (cpu, _) = fit(
        &mut LinearRegression::new(),
        &d,
        cfg.clone().backend(Backend::Cpu),
    );
    let (fused, _) = fit(&mut LinearRegression::new(), &d, cfg);
    let rel = (fused.final_loss() - cpu.final_loss()).abs() / cpu.final_loss();
    assert!(rel < 1e-4, "{} vs {}", fused.final_loss(), cpu.final_loss());
}

/// A divergent rate halts the fused steps at the CPU's step, with finite parameters kept;
/// the seeds' tol rule halts them at the CPU's step too. Each variant.
#[test]
fn fused_steps_halt_like_the_cpu() {
    let Some(ctx) = gpu("fused_steps_halt_like_the_cpu") else {
        return;
    };
    for (variant, vctx) in variants(&ctx) {
        halts_like_the_cpu(&vctx, variant);
    }
}

fn halts_like_the_cpu(ctx: &GpuContext, variant: GlmEpochVariant) {
    let trainer = |cfg: TrainConfig, backend: Backend| {
        let t = Trainer::new(cfg.backend(backend)).unwrap();
        if backend == Backend::Gpu {
            t.with_gpu(ctx.clone())
        } else {
            t
        }
    };
    let d = Synthetic::linear(500, 8).seed(1).dataset().unwrap();
    let cfg = TrainConfig::sgd()
        .batch_size(10)
        .learning_rate(5.0)
        .epochs(50);
    let step = |backend: Backend| {
        let mut m = LinearRegression::new();
        let err = trainer(cfg.clone(), backend).fit(&mut m, &d).unwrap_err();
        assert!(m.weights().unwrap().iter().all(|v| v.is_finite()));
        match err {
            Error::Diverged { step, .. } => step,
            other => panic!("expected Diverged, got {other}"),
        }
    };
    let (g, c) = (step(Backend::Gpu), step(Backend::Cpu));
    assert!(
        g.abs_diff(c) <= 1,
        "{variant:?}: GPU halted at {g}, CPU at {c}"
    );

    let tol = TrainConfig::sgd()
        .batch_size(3)
        .learning_rate(0.1)
        .epochs(1000)
        .tol(1e-6)
        .shuffle(false);
    let seeds = Synthetic::linear(30, 2)
        .seed(4)
        .noise(0.0)
        .dataset()
        .unwrap();
    let run = |backend: Backend| {
        let mut m = LinearRegression::new().with_init(Init::Ones);
        let r = trainer(tol.clone(), backend).fit(&mut m, &seeds).unwrap();
        (r.steps, r.stop)
    };
    let (g, c) = (run(Backend::Gpu), run(Backend::Cpu));
    assert!(
        g.0.abs_diff(c.0) <= 1,
        "{variant:?}: GPU stopped after {g:?}, CPU after {c:?}"
    );
}

/// Features beyond one storage binding (here: chunks of 100 rows, as 4 bindings of a
/// large dataset would be): the fused steps read each row from its chunk, and equal the
/// per-op path and the CPU reference. Each variant.
#[test]
fn fused_steps_read_chunked_features() {
    use gradflow::engine::{CpuEngine, CpuKernels, Rows};
    use gradflow::gpu::{GpuEngine, GpuEngineOptions};
    let Some(ctx) = gpu("fused_steps_read_chunked_features") else {
        return;
    };
    // A multiple of 4: every variant applies (Rows4 reads quads through the chunks).
    const P: usize = 8;
    for (variant, ctx) in variants(&ctx) {
        for loss in [LossKind::Mse, LossKind::SigmoidBce] {
            let d = data(loss, 390, P, 3);
            let program = make(loss).spec_for(&d).unwrap().program();
            let order: Vec<u32> = (0..390u32).map(|i| (i * 151) % 390).collect();
            let batches: Vec<(usize, usize)> =
                (0..390).step_by(64).map(|s| (s, 64.min(390 - s))).collect();
            let init = vec![vec![0.1, -0.2, 0.3, 0.0, 0.5, -0.1, 0.2, 0.05], vec![0.05]];
            let run = |fuse: bool| {
                let options = GpuEngineOptions {
                    fuse_glm: fuse,
                    max_chunk_rows: Some(100),
                    ..GpuEngineOptions::default()
                };
                let mut e = GpuEngine::with_options(
                    &ctx,
                    program.clone(),
                    d.features(),
                    P,
                    d.targets(),
                    64,
                    options,
                )
                .unwrap();
                assert_eq!(e.feature_chunks(), 4);
                e.set_params(&init).unwrap();
                e.set_order(&order).unwrap();
                for (slot, &(start, len)) in batches.iter().enumerate() {
                    e.step(start, len, 0.05, slot).unwrap();
                }
                let losses = e.read_losses(batches.len()).unwrap();
                (losses, e.params().unwrap(), e.launches().0)
            };
            let (fl, fp, fd) = run(true);
            let (pl, pp, _) = run(false);
            if fusable(&ctx) {
                assert!(
                    fd < batches.len() as u64,
                    "{loss:?} {variant:?}: not fused ({fd} dispatches)"
                );
            }
            let mut cpu =
                CpuEngine::<f32>::new(program.clone(), d.features(), P, Some(d.targets()), 64)
                    .with_kernels(CpuKernels::Reference);
            cpu.set_params(&init).unwrap();
            let mut cl = Vec::new();
            for &(start, len) in &batches {
                let rows = Rows::Gather(&order[start..start + len]);
                cl.push(cpu.loss_and_grads(rows).unwrap() as f32);
                cpu.sgd(0.05);
            }
            assert_close(
                &format!("{loss:?} {variant:?} losses vs per-op"),
                &fl,
                &pl,
                1e-5,
                1e-7,
            );
            assert_close(
                &format!("{loss:?} {variant:?} losses vs CPU"),
                &fl,
                &cl,
                1e-5,
                1e-7,
            );
            for (i, ((f, p), c)) in fp.iter().zip(&pp).zip(cpu.params()).enumerate() {
                assert_close(
                    &format!("{loss:?} {variant:?} param {i} vs per-op"),
                    f,
                    p,
                    1e-5,
                    1e-7,
                );
                assert_close(
                    &format!("{loss:?} {variant:?} param {i} vs CPU"),
                    f,
                    &c,
                    1e-5,
                    1e-7,
                );
            }
        }
    }
}
