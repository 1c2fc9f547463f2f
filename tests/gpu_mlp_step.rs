//! The fused MLP step (`shaders/mlp_rows.wgsl` + `shaders/mlp_grads.wgsl`, the engine's
//! `fuse_mlp`): its loss and gradients against the float64 reference engine on awkward
//! shapes (one input, one hidden unit, hidden layers wider than a workgroup, the
//! workgroup memory's limits, one row, batches cut unevenly over workgroups), every
//! activation, row weights, a shuffled gather and rows in order; training against the
//! per-op path with every rule and a penalty; the same bits on a rerun; and the shapes
//! it leaves to the per-op path.

mod common;

use std::borrow::Cow;

use common::{Rng, assert_close, gpu};
use gradflow::data::{Dataset, Synthetic};
use gradflow::engine::{CpuEngine, Rows};
use gradflow::gpu::kernels::MLP_STEP_MAX_BATCH;
use gradflow::gpu::tune::{MlpStep, Tuning};
use gradflow::gpu::{GpuContext, GpuEngine, GpuEngineOptions};
use gradflow::model::{Mlp, Model};
use gradflow::program::{Activation, Rule, Scalars, StepScalars};

fn permutation(rng: &mut Rng, n: usize) -> Vec<u32> {
    let mut p: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        p.swap(i, rng.below(i as u32 + 1) as usize);
    }
    p
}

/// The test binary's adapter opened with the fused step chosen, whatever the tuner
/// chose for it (on llvmpipe: the per-op path).
fn fused(test: &str) -> Option<GpuContext> {
    let ctx = gpu(test)?;
    let tuning = Tuning {
        mlp: MlpStep::Fused,
        ..ctx.pipelines().tuning().clone()
    };
    Some(GpuContext::with_tuning(Some(&ctx.info().name), tuning).expect("fused context"))
}

fn blobs(n: usize, p: usize, k: usize, seed: u64) -> Dataset {
    Synthetic::blobs(n, p, k)
        .seed(seed)
        .dataset()
        .expect("data")
}

/// Random parameters in ±`scale` (wide enough that sigmoid and tanh saturate for some
/// units and ReLU cuts some off).
fn random_init(model: &Mlp, data: &Dataset, rng: &mut Rng, scale: f32) -> Vec<Vec<f32>> {
    let program = model.spec_for(data).expect("spec").program();
    program
        .params
        .iter()
        .map(|d| rng.vec(d.rows * d.cols, -scale, scale))
        .collect()
}

fn engine(
    ctx: &GpuContext,
    model: &Mlp,
    data: &Dataset,
    (cap, weights): (usize, Option<&[f32]>),
    options: GpuEngineOptions,
) -> GpuEngine {
    let program = model.spec_for(data).expect("spec").program();
    let (x, y, p) = (data.features(), data.targets(), data.p());
    match weights {
        Some(w) => GpuEngine::weighted(ctx, program, x, p, y, w, cap, options),
        None => GpuEngine::with_options(ctx, program, x, p, y, cap, options),
    }
    .expect("engine")
}

/// One shape: the fused step's loss and gradients against the f64 reference at random
/// parameters, over a shuffled order and in order, the whole set and a sub-batch.
fn check(
    ctx: &GpuContext,
    (n, p, h, k): (usize, usize, usize, usize),
    f: Activation,
    weighted: bool,
) {
    let data = blobs(n, p, k, (n * 7 + p * 3 + h) as u64);
    let model = Mlp::new(h).with_activation(f);
    let mut rng = Rng::new((n * 31 + p + h * 5 + k) as u64);
    // Wide inputs at a Glorot-like scale: |z¹| stays where float32's sums of p terms
    // keep four digits.
    let scale = 1.5 * (4.0 / (p as f32).sqrt()).min(1.0);
    let init = random_init(&model, &data, &mut rng, scale);
    let weights = rng.vec(n, 0.0, 2.0);
    let w = weighted.then_some(&weights[..]);
    let options = GpuEngineOptions {
        loss_slots: Some(1),
        ..GpuEngineOptions::default()
    };
    let mut gpu = engine(ctx, &model, &data, (n, w), options);
    gpu.set_params(&init).expect("params");
    let program = model.spec_for(&data).expect("spec").program();
    let mut cpu = CpuEngine::<f64>::new(program, data.features(), p, Some(data.targets()), n);
    if weighted {
        cpu = cpu.with_weights(Cow::Borrowed(&weights[..]));
    }
    cpu.set_params(&init).expect("params");
    let shuffled = permutation(&mut rng, n);
    let identity: Vec<u32> = (0..n as u32).collect();
    for order in [shuffled, identity] {
        gpu.set_order(&order).expect("order");
        for (start, len) in [(0, n), (n / 3, n - n / 3 - n / 5)] {
            if len == 0 {
                continue;
            }
            let what = format!(
                "n={n} p={p} h={h} k={k} {} weighted={weighted} rows {start}+{len}",
                f.name()
            );
            let (before, _) = gpu.launches();
            let (loss, grads) = gpu.loss_and_grads(start, len).expect("gpu");
            let (after, _) = gpu.launches();
            assert_eq!(after - before, 2, "{what}: the fused step's two dispatches");
            let cpu_loss = cpu
                .loss_and_grads(Rows::Gather(&order[start..start + len]))
                .expect("cpu");
            assert_close(
                &format!("{what}: loss"),
                &[loss],
                &[cpu_loss as f32],
                2e-5,
                1e-7,
            );
            for (i, (g, c)) in grads.iter().zip(cpu.grads()).enumerate() {
                let c: Vec<f32> = c.iter().map(|&v| v as f32).collect();
                // Sums of products that cancel keep float32's error of their terms:
                // tolerance relative to the gradient's scale.
                let scale = c.iter().fold(0f32, |a, v| a.max(v.abs()));
                let what = format!("{what}: grad {i}");
                assert_close(&what, g, &c, 1e-4, 1e-7 + 5e-5 * scale);
            }
        }
    }
}

/// p across 1, a workgroup's loads and the room's limit (1024); h across 1, odd, above
/// a workgroup (300: two units an invocation) and the room's limit (2048); k from 2 to
/// 256; n from one row to batches the rows pass cuts unevenly.
#[test]
fn fused_mlp_step_matches_the_reference() {
    let Some(ctx) = fused("fused_mlp_step_matches_the_reference") else {
        return;
    };
    let shapes = [
        (1, 1, 1, 2),
        (5, 3, 7, 2),
        (97, 13, 300, 17),
        (256, 64, 256, 10),
        (700, 30, 33, 3),
        (3, 1024, 2, 2),
        (9, 5, 2048, 4),
        (40, 4, 6, 256),
    ];
    for (i, &shape) in shapes.iter().enumerate() {
        let f = [Activation::Sigmoid, Activation::Tanh, Activation::Relu][i % 3];
        check(&ctx, shape, f, i % 2 == 1);
    }
    // Every activation on one shape, weighted and not.
    for f in [Activation::Sigmoid, Activation::Tanh, Activation::Relu] {
        for weighted in [false, true] {
            check(&ctx, (130, 11, 40, 5), f, weighted);
        }
    }
}

/// Training: every rule, with and without an L2 penalty, mini-batches with a short last
/// one, three epochs: the fused step against the per-op path to float32 accuracy (the
/// same sums, in other orders), and the fused step's bits again on a rerun.
#[test]
fn fused_mlp_training_matches_the_per_op_path() {
    let Some(ctx) = fused("fused_mlp_training_matches_the_per_op_path") else {
        return;
    };
    let data = blobs(300, 12, 4, 5);
    let model = Mlp::new(20).with_activation(Activation::Tanh);
    let rules = [
        Rule::Sgd,
        Rule::Momentum { nesterov: true },
        Rule::Adam,
        Rule::AdaGrad,
    ];
    for rule in rules {
        for l2 in [0.0, 1e-2] {
            let run = |fused: bool| {
                let options = GpuEngineOptions {
                    rule,
                    fuse_mlp: fused,
                    ..GpuEngineOptions::default()
                };
                let mut gpu = engine(&ctx, &model, &data, (64, None), options);
                let mut rng = Rng::new(3);
                let init = random_init(&model, &data, &mut rng, 0.5);
                gpu.set_params(&init).expect("params");
                let mut losses = Vec::new();
                let mut launches = 0;
                for epoch in 0..3 {
                    gpu.set_order(&permutation(&mut rng, 300)).expect("order");
                    let starts: Vec<usize> = (0..300).step_by(64).collect();
                    for (slot, &start) in starts.iter().enumerate() {
                        let t = (epoch * starts.len() + slot + 1) as i32;
                        let weights = Scalars {
                            l2,
                            beta1: 0.9,
                            beta2: 0.999,
                            eps: 1e-8,
                            c1: 1.0 / (1.0 - 0.9f64.powi(t)),
                            c2: 1.0 / (1.0 - 0.999f64.powi(t)),
                            ..Scalars::sgd(0.05)
                        };
                        let biases = Scalars { l2: 0.0, ..weights };
                        let update = StepScalars { weights, biases };
                        let (before, _) = gpu.launches();
                        gpu.step(start, 64.min(300 - start), update, slot)
                            .expect("step");
                        launches = gpu.launches().0 - before;
                    }
                    losses.extend(gpu.read_losses(starts.len()).expect("losses"));
                }
                (losses, gpu.params().expect("params").concat(), launches)
            };
            let (fl, fp, fused_launches) = run(true);
            let (pl, pp, per_op_launches) = run(false);
            let what = format!("{rule:?} l2={l2}");
            // Two passes and one update dispatch, against the per-op path's many.
            assert_eq!(fused_launches, 3, "{what}");
            assert!(per_op_launches > 6, "{what}: {per_op_launches}");
            assert_close(&format!("{what}: losses"), &fl, &pl, 1e-4, 1e-6);
            assert_close(&format!("{what}: parameters"), &fp, &pp, 1e-3, 1e-5);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let (rl, rp, _) = run(true);
            assert!(
                bits(&rl) == bits(&fl) && bits(&rp) == bits(&fp),
                "{what}: rerun"
            );
        }
    }
}

/// What the fused step leaves to the per-op path (which runs, as its twin, and agrees):
/// a batch above [`MLP_STEP_MAX_BATCH`], more inputs than its room, features in chunks.
#[test]
fn shapes_outside_the_fused_step_run_per_op() {
    let Some(ctx) = fused("shapes_outside_the_fused_step_run_per_op") else {
        return;
    };
    let cases: [(&str, usize, usize, Option<usize>); 3] = [
        ("long batch", MLP_STEP_MAX_BATCH + 1, 3, None),
        ("p above the room", 20, 1025, None),
        ("chunked features", 50, 3, Some(20)),
    ];
    for (what, n, p, chunk) in cases {
        let data = blobs(n, p, 3, 11);
        let model = Mlp::new(5);
        let options = GpuEngineOptions {
            loss_slots: Some(1),
            max_chunk_rows: chunk,
            ..GpuEngineOptions::default()
        };
        let mut gpu = engine(&ctx, &model, &data, (n, None), options);
        let mut rng = Rng::new(2);
        let init = random_init(&model, &data, &mut rng, 0.5);
        gpu.set_params(&init).expect("params");
        gpu.set_order(&(0..n as u32).collect::<Vec<_>>())
            .expect("order");
        let (before, _) = gpu.launches();
        let (loss, _) = gpu.loss_and_grads(0, n).expect("gpu");
        let ran = gpu.launches().0 - before;
        assert!(
            ran > 2,
            "{what}: {ran} dispatches, expected the per-op path"
        );
        let program = model.spec_for(&data).expect("spec").program();
        let mut cpu = CpuEngine::<f64>::new(program, data.features(), p, Some(data.targets()), n);
        cpu.set_params(&init).expect("params");
        let cpu_loss = cpu
            .loss_and_grads(Rows::Range { start: 0, len: n })
            .expect("cpu");
        assert_close(what, &[loss], &[cpu_loss as f32], 2e-5, 1e-7);
    }
}
