//! The GPU engine against the CPU engine, step by step, and seed 000's worked example on
//! the GPU number for number.

mod common;

use common::{Rng, assert_close, gpu};
use gradflow::Error;
use gradflow::data::{Dataset, Synthetic, Targets};
use gradflow::engine::{CpuEngine, Rows};
use gradflow::gpu::{GpuContext, GpuEngine, GpuEngineOptions};
use gradflow::model::{LinearRegression, LogisticRegression, Mlp, Model, SoftmaxRegression};

/// Parameters after each step: the two engines round differently (f32 accumulation on
/// the GPU, f64-then-round on the CPU), ≈ 1e-7 relative per step; over 20 steps 1e-5
/// relative holds, with an absolute floor of 1e-6 for parameters that pass through 0.
const RTOL: f32 = 1e-5;
const ATOL: f32 = 1e-6;

/// A seeded permutation of 0..n (Fisher–Yates).
/// Parameters uniform in [−0.5, 0.5] from `rng`: a generic point, not zeros.
fn random_params(program: &gradflow::program::Program, rng: &mut Rng) -> Vec<Vec<f32>> {
    program
        .params
        .iter()
        .map(|d| rng.vec(d.rows * d.cols, -0.5, 0.5))
        .collect()
}

fn permutation(rng: &mut Rng, n: usize) -> Vec<u32> {
    let mut p: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        p.swap(i, rng.below(i as u32 + 1) as usize);
    }
    p
}

/// Runs `steps` SGD steps on both engines from the same random parameters and the same
/// shuffled batches (the last batch of an epoch is partial), comparing after each step.
/// Returns the GPU's final parameters and losses.
fn run_both(
    ctx: &GpuContext,
    name: &str,
    data: &Dataset,
    model: &dyn Model,
    steps: usize,
) -> (Vec<Vec<f32>>, Vec<f32>) {
    let (batch, lr) = (32usize, 0.05);
    let program = model.spec_for(data).expect("spec").program();
    let mut rng = Rng::new(11);
    let init = random_params(&program, &mut rng);
    let mut cpu = CpuEngine::<f32>::new(
        program.clone(),
        data.features(),
        data.p(),
        Some(data.targets()),
        batch,
    );
    let mut gpu = GpuEngine::new(
        ctx,
        program,
        data.features(),
        data.p(),
        data.targets(),
        batch,
    )
    .expect("engine");
    cpu.set_params(&init).expect("cpu params");
    gpu.set_params(&init).expect("gpu params");
    let n = data.n();
    let mut order = Vec::new();
    let (mut start, mut slot) = (n, 0usize);
    let mut cpu_losses = Vec::new();
    for step in 0..steps {
        if start >= n {
            gpu.read_losses(slot).expect("losses"); // the epoch's readback
            order = permutation(&mut rng, n);
            gpu.set_order(&order).expect("order");
            (start, slot) = (0, 0);
        }
        let len = batch.min(n - start);
        let loss = cpu
            .step(Rows::Gather(&order[start..start + len]), lr)
            .expect("cpu step");
        gpu.step(start, len, lr, slot).expect("gpu step");
        let got_loss = gpu.read_losses(slot + 1).expect("losses")[slot];
        cpu_losses.push(loss as f32);
        assert_close(
            &format!("{name} step {step} loss"),
            &[got_loss],
            &[loss as f32],
            RTOL,
            ATOL,
        );
        for (i, (g, c)) in gpu
            .params()
            .expect("params")
            .iter()
            .zip(cpu.params())
            .enumerate()
        {
            assert_close(&format!("{name} step {step} param {i}"), g, &c, RTOL, ATOL);
        }
        start += len;
        slot += 1;
    }
    (gpu.params().expect("params"), cpu_losses)
}

#[test]
fn first_20_steps_agree_with_cpu() {
    let Some(ctx) = gpu("first_20_steps_agree_with_cpu") else {
        return;
    };
    // n = 100 with batches of 32: epochs of 4 batches, the last of 4 rows.
    let linear = Synthetic::linear(100, 5).seed(1).dataset().expect("data");
    run_both(&ctx, "linear", &linear, &LinearRegression::new(), 20);
    let logistic = Synthetic::logistic(100, 5).seed(2).dataset().expect("data");
    run_both(&ctx, "logistic", &logistic, &LogisticRegression::new(), 20);
    let blobs = Synthetic::blobs(100, 5, 3).seed(3).dataset().expect("data");
    run_both(&ctx, "softmax", &blobs, &SoftmaxRegression::new(), 20);
    run_both(&ctx, "mlp", &blobs, &Mlp::new(8), 20);
}

#[test]
fn two_gpu_runs_are_bit_identical() {
    let Some(ctx) = gpu("two_gpu_runs_are_bit_identical") else {
        return;
    };
    let blobs = Synthetic::blobs(100, 5, 3).seed(4).dataset().expect("data");
    let bits = |ctx: &GpuContext| {
        let program = Mlp::new(8).spec_for(&blobs).expect("spec").program();
        let mut rng = Rng::new(5);
        let init = random_params(&program, &mut rng);
        let mut gpu = GpuEngine::new(
            ctx,
            program,
            blobs.features(),
            blobs.p(),
            blobs.targets(),
            32,
        )
        .expect("engine");
        gpu.set_params(&init).expect("params");
        gpu.set_order(&permutation(&mut rng, 100)).expect("order");
        // Four steps recorded before a single readback: one submission.
        for (slot, start) in [0usize, 32, 64, 96].into_iter().enumerate() {
            gpu.step(start, 32.min(100 - start), 0.1, slot)
                .expect("step");
        }
        let losses: Vec<u32> = gpu
            .read_losses(4)
            .expect("losses")
            .iter()
            .map(|v| v.to_bits())
            .collect();
        let params: Vec<u32> = gpu
            .params()
            .expect("params")
            .concat()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        (losses, params)
    };
    assert!(bits(&ctx) == bits(&ctx), "two GPU runs differ");
}

/// Seed 000: 12 rows, first batch N = 3 (rows 0, 1, 2), w = (1, 1), b = 0:
/// ∂L/∂w = (−6.000, −4.267), ∂L/∂b = −3.200; with η = 0.1, w = (1.600, 1.427), b = 0.320.
#[test]
fn seed_000_first_batch_on_the_gpu() {
    let Some(ctx) = gpu("seed_000_first_batch_on_the_gpu") else {
        return;
    };
    let x: Vec<f32> = vec![
        1.0, 2.0, 3.0, 1.0, 1.0, 1.0, 0.0, 1.0, 2.0, 2.0, -2.0, 3.0, 1.0, 2.0, -1.0, -0.5, 0.5,
        1.2, 2.0, 1.0, -2.0, 3.0, -1.0, 1.0,
    ];
    let y: Vec<f32> = x.chunks(2).map(|r| 1.5 * r[0] + 1.5 * r[1] + 0.1).collect();
    let data = Dataset::new(x, 2, Targets::Real(y)).expect("data");
    let program = LinearRegression::new()
        .spec_for(&data)
        .expect("spec")
        .program();
    let (gw, gb) = (program.params[0].grad, program.params[1].grad);
    let mut gpu =
        GpuEngine::new(&ctx, program, data.features(), 2, data.targets(), 3).expect("engine");
    gpu.set_params(&[vec![1.0, 1.0], vec![0.0]])
        .expect("params");
    gpu.set_order(&(0..12).collect::<Vec<u32>>())
        .expect("order");
    gpu.step(0, 3, 0.1, 0).expect("step");
    // f32 values given to 3 decimals: 1e-5 is ~10 ulps at this magnitude.
    let grad_w = gpu.read_buf(gw).expect("grad w");
    assert_close("∂L/∂w", &grad_w, &[-6.0, -4.266_667], 0.0, 1e-5);
    assert_close(
        "∂L/∂b",
        &gpu.read_buf(gb).expect("grad b"),
        &[-3.2],
        0.0,
        1e-5,
    );
    let params = gpu.params().expect("params");
    assert_close("w", &params[0], &[1.6, 1.426_667], 0.0, 1e-6);
    assert_close("b", &params[1], &[0.32], 0.0, 1e-6);
    // L = (1.6² + 2.1² + 1.1²)/3 for ŷ = (3, 4, 2), y = (4.6, 6.1, 3.1).
    let loss = gpu.read_losses(1).expect("loss")[0];
    assert_close(
        "loss",
        &[loss],
        &[(1.6f32 * 1.6 + 2.1 * 2.1 + 1.1 * 1.1) / 3.0],
        1e-6,
        0.0,
    );
}

/// Losses and parameters (as bits) after 8 steps over two epochs of `data`, the features
/// split into chunks of at most `max_chunk_rows` rows; also the chunk count. `fused`:
/// the GLM's fused gradient (`glm_grad.wgsl`) where it applies.
fn chunked_run(
    ctx: &GpuContext,
    data: &Dataset,
    model: &dyn Model,
    max_chunk_rows: Option<usize>,
    fused: bool,
) -> (Vec<u32>, Vec<u32>, usize) {
    let program = model.spec_for(data).expect("spec").program();
    let mut rng = Rng::new(7);
    let init = random_params(&program, &mut rng);
    let options = GpuEngineOptions {
        max_chunk_rows,
        fuse_glm_grad: fused,
        fuse_mlp: fused,
        ..GpuEngineOptions::default()
    };
    let n = data.n();
    let mut gpu = GpuEngine::with_options(
        ctx,
        program,
        data.features(),
        data.p(),
        data.targets(),
        32,
        options,
    )
    .expect("engine");
    gpu.set_params(&init).expect("params");
    let mut losses = Vec::new();
    for _epoch in 0..2 {
        gpu.set_order(&permutation(&mut rng, n)).expect("order");
        let starts: Vec<usize> = (0..n).step_by(32).collect();
        for (slot, &start) in starts.iter().enumerate() {
            gpu.step(start, 32.min(n - start), 0.1, slot).expect("step");
        }
        losses.extend(gpu.read_losses(starts.len()).expect("losses"));
    }
    let params = gpu.params().expect("params").concat();
    (
        losses.iter().map(|v| v.to_bits()).collect(),
        params.iter().map(|v| v.to_bits()).collect(),
        gpu.feature_chunks(),
    )
}

/// Features split into chunks (forced small: 100 rows in chunks of 30, 30, 30, 10) train
/// bit for bit as in one buffer on the per-op path: the kernel reads the same values in
/// the same order. The fused GLM gradient sums each chunk in its own dispatch, so there
/// chunking changes the rounding only: the same fit to float32 accuracy, and the same
/// bits on a rerun.
#[test]
fn chunked_features_train_as_one_buffer() {
    let Some(ctx) = gpu("chunked_features_train_as_one_buffer") else {
        return;
    };
    let linear = Synthetic::linear(100, 5).seed(8).dataset().expect("data");
    let blobs = Synthetic::blobs(100, 5, 3).seed(9).dataset().expect("data");
    let models: [(&str, &Dataset, &dyn Model); 2] = [
        ("linear", &linear, &LinearRegression::new()),
        ("mlp", &blobs, &Mlp::new(8)),
    ];
    for (name, data, model) in models {
        let (l1, p1, c1) = chunked_run(&ctx, data, model, None, false);
        assert_eq!(c1, 1, "{name}: small data in one buffer");
        for rows in [30, 50, 99] {
            let (l, p, c) = chunked_run(&ctx, data, model, Some(rows), false);
            assert_eq!(c, 100usize.div_ceil(rows), "{name}: chunks of {rows} rows");
            assert!(l == l1, "{name}: losses differ with chunks of {rows} rows");
            assert!(
                p == p1,
                "{name}: parameters differ with chunks of {rows} rows"
            );
        }
    }
    let floats = |bits: &[u32]| bits.iter().map(|&b| f32::from_bits(b)).collect::<Vec<_>>();
    let (l1, p1, _) = chunked_run(&ctx, &linear, &LinearRegression::new(), None, true);
    for rows in [30, 50, 99] {
        let run = || chunked_run(&ctx, &linear, &LinearRegression::new(), Some(rows), true);
        let (l, p, c) = run();
        assert_eq!(c, 100usize.div_ceil(rows));
        assert_close(
            "fused losses, chunked",
            &floats(&l),
            &floats(&l1),
            1e-5,
            1e-7,
        );
        assert_close(
            "fused parameters, chunked",
            &floats(&p),
            &floats(&p1),
            1e-5,
            1e-7,
        );
        assert!(
            run() == (l, p, c),
            "fused, chunks of {rows} rows: a rerun differs"
        );
    }
}

/// A dataset needing more than 4 chunks is a device limit naming the bytes and pointing
/// to streaming (forced by a small chunk size, not a huge allocation).
#[test]
fn more_than_four_chunks_is_a_device_limit() {
    let Some(ctx) = gpu("more_than_four_chunks_is_a_device_limit") else {
        return;
    };
    let data = Synthetic::linear(100, 5).seed(10).dataset().expect("data");
    let engine = |rows: usize| {
        let program = LinearRegression::new()
            .spec_for(&data)
            .expect("spec")
            .program();
        let options = GpuEngineOptions {
            max_chunk_rows: Some(rows),
            ..GpuEngineOptions::default()
        };
        GpuEngine::with_options(
            &ctx,
            program,
            data.features(),
            data.p(),
            data.targets(),
            32,
            options,
        )
    };
    assert_eq!(engine(25).expect("4 chunks of 25 rows").feature_chunks(), 4);
    let err = engine(24).expect_err("5 chunks of 24 rows");
    match &err {
        Error::DeviceLimit {
            what,
            requested,
            limit,
        } => {
            assert_eq!(*requested, 100 * 5 * 4, "{err}");
            assert_eq!(*limit, 4 * 24 * 5 * 4, "{err}");
            assert!(what.contains("streaming"), "{err}");
        }
        other => panic!("expected DeviceLimit, got {other}"),
    }
    assert!(matches!(
        engine(0).expect_err("zero rows per chunk"),
        Error::InvalidParameter { .. }
    ));
}

/// `read_sync` brings back in one readback what `read_losses`, `halted_at` and `params`
/// bring back in three, bit for bit, with and without the parameters.
#[test]
fn one_sync_readback_reads_what_three_do() {
    let Some(ctx) = gpu("one_sync_readback_reads_what_three_do") else {
        return;
    };
    let blobs = Synthetic::blobs(100, 5, 3).seed(6).dataset().expect("data");
    let program = Mlp::new(8).spec_for(&blobs).expect("spec").program();
    let mut rng = Rng::new(7);
    let init = random_params(&program, &mut rng);
    let mut gpu = GpuEngine::new(
        &ctx,
        program,
        blobs.features(),
        blobs.p(),
        blobs.targets(),
        32,
    )
    .expect("engine");
    gpu.set_params(&init).expect("params");
    gpu.set_order(&permutation(&mut rng, 100)).expect("order");
    for (slot, start) in [0usize, 32, 64].into_iter().enumerate() {
        gpu.step(start, 32, 0.1, slot).expect("step");
    }
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let read = gpu.read_sync(3, true).expect("sync");
    assert_eq!(
        bits(&read.losses),
        bits(&gpu.read_losses(3).expect("losses"))
    );
    assert_eq!(read.halted_at, gpu.halted_at().expect("halt"));
    let params = gpu.params().expect("params");
    let got = read.params.expect("params asked for");
    assert_eq!(got.len(), params.len());
    for (g, p) in got.iter().zip(&params) {
        assert_eq!(bits(g), bits(p));
    }
    let without = gpu.read_sync(2, false).expect("sync");
    assert_eq!((without.losses.len(), without.params), (2, None));
    assert!(
        gpu.read_sync(10_000, false).is_err(),
        "beyond the loss slots"
    );
}

/// The identity order is uploaded once: a second unshuffled epoch sends nothing, and a
/// shuffled order in between is replaced by the identity again (the same losses as an
/// explicit identity).
#[test]
fn the_identity_order_is_uploaded_once() {
    let Some(ctx) = gpu("the_identity_order_is_uploaded_once") else {
        return;
    };
    let data = Synthetic::linear(300, 4).seed(8).dataset().expect("data");
    let program = LinearRegression::new()
        .spec_for(&data)
        .expect("spec")
        .program();
    let engine = |ctx: &GpuContext| {
        GpuEngine::new(
            ctx,
            program.clone(),
            data.features(),
            data.p(),
            data.targets(),
            300,
        )
        .expect("engine")
    };
    let mut gpu = engine(&ctx);
    gpu.set_identity_order().expect("identity");
    let sent = gpu.bytes_uploaded();
    gpu.set_identity_order().expect("identity again");
    assert_eq!(gpu.bytes_uploaded(), sent, "the identity was sent twice");
    gpu.set_order(&permutation(&mut Rng::new(9), 300))
        .expect("order");
    gpu.set_identity_order().expect("identity after a shuffle");
    assert_eq!(gpu.bytes_uploaded(), sent + 2 * 300 * 4);
    gpu.step(0, 300, 0.1, 0).expect("step");
    let mut explicit = engine(&ctx);
    explicit
        .set_order(&(0..300).collect::<Vec<u32>>())
        .expect("order");
    explicit.step(0, 300, 0.1, 0).expect("step");
    assert_eq!(
        gpu.read_losses(1).expect("loss")[0].to_bits(),
        explicit.read_losses(1).expect("loss")[0].to_bits()
    );
    assert_eq!(
        gpu.params().expect("params"),
        explicit.params().expect("params")
    );
}
