//! The many-step MLP kernel (`shaders/mlp_epoch.wgsl`, the engine's `fuse_mlp_steps`):
//! SGD steps of small two-layer networks against the float64 reference engine stepping
//! the same batches (one input, one hidden unit, every activation, tiles cut unevenly by
//! the batch, a batch of one row, epochs of many dispatches with a short last batch);
//! the same bits on a rerun; halting at the step the per-op path halts at; and what it
//! leaves to the other paths.

mod common;

use common::{Rng, assert_close, gpu};
use gradflow::data::{Dataset, Synthetic};
use gradflow::engine::{CpuEngine, Rows};
use gradflow::gpu::kernels::{MLP_EPOCH_MAX_BATCH, mlp_epoch_steps_per_dispatch};
use gradflow::gpu::tune::Tuning;
use gradflow::gpu::{GpuContext, GpuEngine, GpuEngineOptions};
use gradflow::model::{Mlp, Model};
use gradflow::program::{Activation, Scalars, StepScalars};

fn permutation(rng: &mut Rng, n: usize) -> Vec<u32> {
    let mut p: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        p.swap(i, rng.below(i as u32 + 1) as usize);
    }
    p
}

/// The test binary's adapter opened with many-step MLP kernels chosen, whatever the
/// tuner chose for it.
fn many(test: &str) -> Option<GpuContext> {
    let ctx = gpu(test)?;
    let tuning = Tuning {
        mlp_many: true,
        ..ctx.pipelines().tuning().clone()
    };
    Some(GpuContext::with_tuning(Some(&ctx.info().name), tuning).expect("many-step context"))
}

fn blobs(n: usize, p: usize, k: usize, seed: u64) -> Dataset {
    Synthetic::blobs(n, p, k)
        .seed(seed)
        .dataset()
        .expect("data")
}

fn program(model: &Mlp, data: &Dataset) -> gradflow::program::Program {
    model.spec_for(data).expect("spec").program()
}

fn engine(
    ctx: &GpuContext,
    model: &Mlp,
    data: &Dataset,
    cap: usize,
    options: GpuEngineOptions,
) -> GpuEngine {
    let (x, y, p) = (data.features(), data.targets(), data.p());
    GpuEngine::with_options(ctx, program(model, data), x, p, y, cap, options).expect("engine")
}

fn options(tol: Option<f32>) -> GpuEngineOptions {
    GpuEngineOptions {
        fuse_mlp_steps: true,
        tol,
        ..GpuEngineOptions::default()
    }
}

/// Random parameters in ±`scale`.
fn random_init(model: &Mlp, data: &Dataset, rng: &mut Rng, scale: f32) -> Vec<Vec<f32>> {
    program(model, data)
        .params
        .iter()
        .map(|d| rng.vec(d.rows * d.cols, -scale, scale))
        .collect()
}

/// Three epochs of SGD at `lr` over shuffled orders in batches of `batch` (the last one
/// shorter where `batch` does not divide n) on the many-step engine: every step's loss,
/// the final parameters, and the dispatches an epoch took.
fn train(
    ctx: &GpuContext,
    (model, data): (&Mlp, &Dataset),
    init: &[Vec<f32>],
    (batch, lr, seed): (usize, f64, u64),
    options: GpuEngineOptions,
) -> (Vec<f32>, Vec<f32>, u64) {
    let n = data.n();
    let mut gpu = engine(ctx, model, data, batch, options);
    gpu.set_params(init).expect("params");
    let mut rng = Rng::new(seed);
    let (mut losses, mut dispatches) = (Vec::new(), 0);
    for _ in 0..3 {
        gpu.set_order(&permutation(&mut rng, n)).expect("order");
        let before = gpu.launches().0;
        let starts: Vec<usize> = (0..n).step_by(batch).collect();
        for (slot, &start) in starts.iter().enumerate() {
            gpu.step(start, batch.min(n - start), lr, slot)
                .expect("step");
        }
        losses.extend(gpu.read_losses(starts.len()).expect("losses"));
        dispatches = gpu.launches().0 - before;
    }
    (losses, gpu.params().expect("params").concat(), dispatches)
}

/// The same epochs on the float64 reference engine.
fn reference(
    (model, data): (&Mlp, &Dataset),
    init: &[Vec<f32>],
    (batch, lr, seed): (usize, f64, u64),
) -> (Vec<f32>, Vec<f32>) {
    let n = data.n();
    let mut cpu = CpuEngine::<f64>::new(
        program(model, data),
        data.features(),
        data.p(),
        Some(data.targets()),
        batch,
    );
    cpu.set_params(init).expect("params");
    let mut rng = Rng::new(seed);
    let mut losses = Vec::new();
    for _ in 0..3 {
        let order = permutation(&mut rng, n);
        for start in (0..n).step_by(batch) {
            let rows = &order[start..(start + batch).min(n)];
            losses.push(cpu.step(Rows::Gather(rows), lr).expect("cpu step") as f32);
        }
    }
    (losses, cpu.params().concat())
}

/// Every step's loss and the final parameters against the reference's: float32 steps
/// against float64 ones, to float32's accuracy after three epochs.
fn agrees(what: &str, (losses, params): (&[f32], &[f32]), (want_l, want_p): (&[f32], &[f32])) {
    assert_close(&format!("{what}: losses"), losses, want_l, 2e-4, 1e-6);
    assert_close(&format!("{what}: parameters"), params, want_p, 2e-3, 2e-5);
}

/// One network and batch size against the reference: every step's loss and the final
/// parameters, the dispatches an epoch takes, and the bits of a rerun.
fn check(
    ctx: &GpuContext,
    (n, p, h, k): (usize, usize, usize, usize),
    f: Activation,
    batch: usize,
) {
    let data = blobs(n, p, k, (n + 3 * p + 7 * h + k) as u64);
    let model = Mlp::new(h).with_activation(f);
    let mut rng = Rng::new((n * 13 + p + h + k) as u64);
    let init = random_init(&model, &data, &mut rng, 0.5);
    let run = (batch, 0.1, 11);
    let what = format!("n={n} {p}-{h}-{k} {} batch {batch}", f.name());
    let (losses, params, dispatches) = train(ctx, (&model, &data), &init, run, options(None));
    let (want_losses, want_params) = reference((&model, &data), &init, run);
    // One dispatch per `per` steps, not one step per several dispatches.
    let per = mlp_epoch_steps_per_dispatch(batch, (p, h, k)).expect("fits");
    assert_eq!(
        dispatches as usize,
        n.div_ceil(batch).div_ceil(per),
        "{what}"
    );
    agrees(&what, (&losses, &params), (&want_losses, &want_params));
    let (again, again_params, _) = train(ctx, (&model, &data), &init, run, options(None));
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert!(
        bits(&again) == bits(&losses) && bits(&again_params) == bits(&params),
        "{what}: a rerun gives other bits"
    );
}

/// p and h from 1, k from 2; batches shorter than a tile, one tile exactly, tiles cut
/// unevenly, one row; the widest network of the W3 family that fits (64-32-10, tiles of
/// 62 rows, a few steps a dispatch).
#[test]
fn many_step_mlp_matches_the_reference() {
    let Some(ctx) = many("many_step_mlp_matches_the_reference") else {
        return;
    };
    let cases = [
        ((40, 1, 1, 2), Activation::Sigmoid, 8),
        ((120, 3, 7, 2), Activation::Tanh, 64),
        ((300, 5, 12, 3), Activation::Relu, 100),
        ((257, 16, 32, 4), Activation::Sigmoid, 256),
        ((30, 4, 6, 3), Activation::Tanh, 1),
        ((600, 64, 32, 10), Activation::Sigmoid, 256),
        ((200, 20, 50, 7), Activation::Relu, 96),
    ];
    for (shape, f, batch) in cases {
        check(&ctx, shape, f, batch);
    }
}

/// The halting rule decided on the device stops the many-step kernel at the step where
/// the per-op path stops (a tolerance met, then a rate that overflows), with the
/// parameters that step saw.
#[test]
fn many_step_mlp_halts_where_the_per_op_path_halts() {
    let Some(ctx) = many("many_step_mlp_halts_where_the_per_op_path_halts") else {
        return;
    };
    let data = blobs(240, 6, 3, 9);
    let model = Mlp::new(10);
    let mut rng = Rng::new(5);
    let init = random_init(&model, &data, &mut rng, 0.5);
    let run = |steps: bool, tol: Option<f32>, lr: f64| {
        let options = GpuEngineOptions {
            fuse_mlp_steps: steps,
            tol,
            ..GpuEngineOptions::default()
        };
        let mut gpu = engine(&ctx, &model, &data, 16, options);
        gpu.set_params(&init).expect("params");
        gpu.set_identity_order().expect("order");
        for slot in 0..15 {
            gpu.step(slot * 16, 16, lr, slot).expect("step");
        }
        let halted = gpu.halted_at().expect("halt flag");
        let losses = gpu.read_losses(15).expect("losses");
        (halted, losses, gpu.params().expect("params").concat())
    };
    // A tolerance that the loss's change first meets a few steps in: just above the
    // smallest change of the steps 1 to 11 (none before it is smaller).
    let (_, losses, _) = run(false, None, 0.05);
    let change = |i: usize| (losses[i] - losses[i - 1]).abs();
    let first_small = (1..12)
        .min_by(|&a, &b| change(a).total_cmp(&change(b)))
        .expect("steps");
    let tol = change(first_small) * 1.001;
    for (tol, lr) in [(Some(tol), 0.05), (None, 1e38)] {
        let (halted, _, params) = run(true, tol, lr);
        let (want_halted, _, want_params) = run(false, tol, lr);
        let what = format!("tol {tol:?} lr {lr}");
        assert!(halted.is_some(), "{what}: never halted");
        assert_eq!(halted, want_halted, "{what}");
        assert!(params.iter().all(|v| v.is_finite()), "{what}");
        assert_close(&what, &params, &want_params, 1e-3, 1e-5);
    }
}

/// What the many-step kernel leaves to the other paths, which run and agree with the
/// reference: a network too large for its memory (W3's 64-256-10), a batch above
/// [`MLP_EPOCH_MAX_BATCH`], weighted rows; and a step with a penalty on a many-step
/// engine is a clear error.
#[test]
fn shapes_outside_the_many_step_kernel_take_the_step_paths() {
    let Some(ctx) = many("shapes_outside_the_many_step_kernel_take_the_step_paths") else {
        return;
    };
    for (what, n, p, h, batch) in [
        ("W3's network", 300, 64, 256, 256),
        (
            "a long batch",
            MLP_EPOCH_MAX_BATCH + 1,
            3,
            5,
            MLP_EPOCH_MAX_BATCH + 1,
        ),
    ] {
        let data = blobs(n, p, 3, 4);
        let model = Mlp::new(h);
        let mut rng = Rng::new(8);
        let init = random_init(&model, &data, &mut rng, 0.3);
        let run = (batch, 0.1, 3);
        let (losses, params, dispatches) = train(&ctx, (&model, &data), &init, run, options(None));
        let steps = n.div_ceil(batch) as u64;
        assert!(
            dispatches >= 3 * steps,
            "{what}: {dispatches} dispatches for {steps} steps"
        );
        let (want_losses, want_params) = reference((&model, &data), &init, run);
        agrees(what, (&losses, &params), (&want_losses, &want_params));
    }
    let data = blobs(100, 4, 3, 2);
    let model = Mlp::new(6);
    let (x, y) = (data.features(), data.targets());
    let weights = vec![1.0f32; 100];
    let prog = program(&model, &data);
    let mut weighted =
        GpuEngine::weighted(&ctx, prog, x, 4, y, &weights, 50, options(None)).expect("engine");
    weighted.set_identity_order().expect("order");
    let before = weighted.launches().0;
    weighted.step(0, 50, 0.1, 0).expect("weighted step");
    assert!(
        weighted.launches().0 - before >= 3,
        "weighted rows take the step paths"
    );
    let mut gpu = engine(&ctx, &model, &data, 50, options(None));
    gpu.set_identity_order().expect("order");
    let weights = Scalars {
        l2: 1e-3,
        ..Scalars::sgd(0.1)
    };
    let update = StepScalars {
        weights,
        biases: Scalars::sgd(0.1),
    };
    let err = gpu
        .step(0, 50, update, 0)
        .expect_err("a penalty on a many-step engine");
    assert!(err.to_string().contains("plain SGD"), "{err}");
}
