//! The kernel variants the per-adapter tuner chooses between (`gpu::tune`): every
//! variant of the fused GLM gradient (`shaders/glm_grad.wgsl`) against the float64
//! reference engine on awkward shapes, with feature chunks, row weights, a shuffled
//! gather and sub-batches; the two parameter blocks giving the same bits; and the tuner
//! itself: the cache, `GRADFLOW_TUNE=off`, verified candidates only.

mod common;

use std::borrow::Cow;

use common::{Rng, assert_close, gpu};
use gradflow::data::{Dataset, Synthetic};
use gradflow::engine::{CpuEngine, Rows};
use gradflow::gpu::tune::{self, GlmGradVariant, MlpStep, ParamBlock, Tuning};
use gradflow::gpu::{GpuContext, GpuEngine, GpuEngineOptions};
use gradflow::model::{LinearRegression, LogisticRegression, Model};

fn tuned(glm_grad: GlmGradVariant, block: ParamBlock) -> Tuning {
    Tuning {
        per_op: block,
        many_step: block,
        glm_grad,
        measured: Vec::new(),
        ..Tuning::default()
    }
}

fn permutation(rng: &mut Rng, n: usize) -> Vec<u32> {
    let mut p: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        p.swap(i, rng.below(i as u32 + 1) as usize);
    }
    p
}

/// One case: the fused gradient's loss and gradients on `ctx` against the f64 reference
/// at random parameters, over the whole shuffled order and over a sub-batch of it.
fn check(ctx: &GpuContext, data: &Dataset, logistic: bool, chunk: Option<usize>, weighted: bool) {
    let model: Box<dyn Model> = if logistic {
        Box::new(LogisticRegression::new())
    } else {
        Box::new(LinearRegression::new())
    };
    let (n, p) = (data.n(), data.p());
    let program = model.spec_for(data).expect("spec").program();
    let mut rng = Rng::new(n as u64 * 31 + p as u64);
    let init: Vec<Vec<f32>> = program
        .params
        .iter()
        .map(|d| rng.vec(d.rows * d.cols, -0.5, 0.5))
        .collect();
    let weights: Vec<f32> = rng.vec(n, 0.0, 2.0);
    let options = GpuEngineOptions {
        max_chunk_rows: chunk,
        loss_slots: Some(1),
        ..GpuEngineOptions::default()
    };
    let (x, y) = (data.features(), data.targets());
    let mut gpu = if weighted {
        GpuEngine::weighted(ctx, program.clone(), x, p, y, &weights, n, options)
    } else {
        GpuEngine::with_options(ctx, program.clone(), x, p, y, n, options)
    }
    .expect("engine");
    gpu.set_params(&init).expect("params");
    let mut cpu = CpuEngine::<f64>::new(program, x, p, Some(y), n);
    if weighted {
        cpu = cpu.with_weights(Cow::Borrowed(&weights[..]));
    }
    cpu.set_params(&init).expect("params");
    // Shuffled (read through the gather) and in order (each chunk reads its own rows).
    let shuffled = permutation(&mut rng, n);
    let identity: Vec<u32> = (0..n as u32).collect();
    for order in [shuffled, identity] {
        check_order(&mut gpu, &mut cpu, &order, (chunk, weighted, logistic));
    }
}

fn check_order(
    gpu: &mut GpuEngine,
    cpu: &mut CpuEngine<'_, f64>,
    order: &[u32],
    (chunk, weighted, logistic): (Option<usize>, bool, bool),
) {
    let (n, p) = (order.len(), gpu.program().params[0].rows);
    gpu.set_order(order).expect("order");
    let (before, _) = gpu.launches();
    for (start, len) in [(0, n), (n / 3, n - n / 3 - n / 5)] {
        if len == 0 {
            continue;
        }
        let what = format!(
            "n={n} p={p} logistic={logistic} chunk={chunk:?} weighted={weighted} rows {start}+{len}"
        );
        let (loss, grads) = gpu.loss_and_grads(start, len).expect("gpu");
        // Every sum in an order fixed by the shape: the same bits again.
        let (again, again_grads) = gpu.loss_and_grads(start, len).expect("gpu");
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(loss.to_bits(), again.to_bits(), "{what}: rerun");
        assert!(
            grads
                .iter()
                .zip(&again_grads)
                .all(|(a, b)| bits(a) == bits(b)),
            "{what}: rerun"
        );
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
            // A sum of products that cancels to a small value keeps float32's error of
            // its terms: tolerance relative to the gradient's scale.
            let scale = c.iter().fold(0f32, |a, v| a.max(v.abs()));
            assert_close(
                &format!("{what}: grad {i}"),
                g,
                &c,
                1e-4,
                1e-7 + 2e-5 * scale,
            );
        }
    }
    // The fused path ran: per evaluation, a first pass per chunk (in order: per chunk
    // holding rows of the batch) and the finish.
    let chunks = gpu.feature_chunks() as u64;
    let (after, _) = gpu.launches();
    // Two evaluations (the second a rerun) per batch.
    let evaluations = 2 * if n / 3 < n - n / 5 { 2 } else { 1 };
    let ran = after - before;
    assert!(
        ran >= evaluations * 2 && ran <= evaluations * (chunks + 1),
        "{ran} dispatches"
    );
}

/// Every variant, on both parameter blocks, against the f64 reference: p across the
/// variants' limits (1, 3, 4, 30, 64, 65, 257, 1022, 1024), rows across tiles and segments
/// (1, 255, 257, 5,000, 70,000), linear and logistic, chunked features, row weights.
#[test]
fn every_glm_gradient_variant_matches_the_reference() {
    if gpu("every_glm_gradient_variant_matches_the_reference").is_none() {
        return;
    }
    let mut cases = 0;
    for variant in GlmGradVariant::ALL {
        for block in [ParamBlock::Uniform, ParamBlock::Storage] {
            let ctx = GpuContext::with_tuning(None, tuned(variant, block)).expect("context");
            if !variant.runs_on(ctx.limits()) {
                // Opened without subgroups: the pin falls back to the default's choice
                // (tested as itself).
                assert_eq!(
                    ctx.pipelines().tuning().glm_grad,
                    Tuning::default().glm_grad
                );
                continue;
            }
            for (n, p) in [
                (1, 1),
                (255, 3),
                (257, 4),
                (5000, 30),
                (70_000, 64),
                (300, 65),
                // Quads that are not a power of two: `Lanes` leaves invocations idle.
                (600, 12),
                (2000, 100),
                // `Warps` at one, two (the last partly) and four quads a lane.
                (900, 32),
                (700, 36),
                (1100, 128),
                (1000, 257),
                // The finishing pass's widest quad layout (256 quads of 1,024 padded
                // values), and past it, a value at a time (1,026 values).
                (300, 1022),
                (300, 1024),
            ] {
                if !variant.fits(p) && ctx.pipelines().tuning().glm_grad_for(p) != variant {
                    // The engine falls back to another variant: covered by that one.
                    continue;
                }
                let linear = Synthetic::linear(n, p).seed(p as u64).dataset().unwrap();
                check(&ctx, &linear, false, None, false);
                let logistic = Synthetic::logistic(n, p).seed(p as u64).dataset().unwrap();
                check(&ctx, &logistic, true, None, true);
                if n >= 255 {
                    check(&ctx, &linear, false, Some(n / 3 + 1), true);
                }
                cases += 1;
            }
        }
    }
    assert!(cases >= 30, "{cases} cases");
}

/// The parameter block only changes where a kernel reads its parameters: a whole fit
/// (an MLP: every per-op kernel; a GLM on the many-step kernel) gives the same bits.
#[test]
fn both_parameter_blocks_give_the_same_bits() {
    if gpu("both_parameter_blocks_give_the_same_bits").is_none() {
        return;
    }
    use gradflow::model::Mlp;
    use gradflow::{Backend, TrainConfig, Trainer};
    let blobs = Synthetic::blobs(700, 5, 3).seed(4).dataset().unwrap();
    let linear = Synthetic::linear(900, 6).seed(5).dataset().unwrap();
    let fit = |block: ParamBlock, model: &mut dyn Model, data: &Dataset| {
        let ctx = GpuContext::with_tuning(None, tuned(GlmGradVariant::Tiles, block)).unwrap();
        let cfg = TrainConfig::sgd()
            .batch_size(64)
            .learning_rate(0.1)
            .epochs(2)
            .backend(Backend::Gpu)
            .record_steps(true);
        let report = Trainer::new(cfg)
            .unwrap()
            .with_gpu(ctx)
            .fit(model, data)
            .unwrap();
        let params = model.fitted().unwrap().params.concat();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        (report.step_losses, bits(&params))
    };
    for data in [&blobs, &linear] {
        let run = |block| {
            if data.n() == blobs.n() {
                fit(block, &mut Mlp::new(8), data)
            } else {
                fit(block, &mut LinearRegression::new(), data)
            }
        };
        assert_eq!(run(ParamBlock::Uniform), run(ParamBlock::Storage));
    }
}

/// The epilogues (bias add, activation, activation backward folded into a product's
/// store) give the bits of the separate kernels, for each activation and each register
/// block, in fewer dispatches: an MLP step 16 → 12.
#[test]
fn fused_epilogues_keep_the_bits() {
    if gpu("fused_epilogues_keep_the_bits").is_none() {
        return;
    }
    use gradflow::gpu::MatmulBlock;
    use gradflow::model::Mlp;
    use gradflow::program::Activation;
    use gradflow::{Backend, TrainConfig, Trainer};
    let blobs = Synthetic::blobs(333, 7, 3).seed(6).dataset().unwrap();
    for block in [MatmulBlock::Four, MatmulBlock::Eight] {
        // The per-op MLP step, whose products the epilogues fold into.
        let t = Tuning {
            matmul: block,
            mlp: MlpStep::PerOp,
            ..Tuning::default()
        };
        let ctx = GpuContext::with_tuning(None, t).unwrap();
        for f in [Activation::Sigmoid, Activation::Tanh, Activation::Relu] {
            let fit = |fuse: bool| {
                let cfg = TrainConfig::sgd()
                    .batch_size(50)
                    .learning_rate(0.2)
                    .epochs(2)
                    .backend(Backend::Gpu)
                    .fuse_steps(fuse)
                    .record_steps(true);
                let mut m = Mlp::new(13).with_activation(f);
                let r = Trainer::new(cfg)
                    .unwrap()
                    .with_gpu(ctx.clone())
                    .fit(&mut m, &blobs)
                    .unwrap();
                let bits: Vec<u32> = m
                    .fitted()
                    .unwrap()
                    .params
                    .concat()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect();
                (r.step_losses.clone(), bits, r.dispatches / r.steps)
            };
            let (fused, plain) = (fit(true), fit(false));
            assert_eq!(
                (&fused.0, &fused.1),
                (&plain.0, &plain.1),
                "{block:?} {f:?}"
            );
            // Epilogues: 16 → 12; the four updates in one dispatch where the device
            // allows update_all.wgsl's bindings: 12 → 9.
            let all = ctx.limits().max_storage_buffers_per_shader_stage
                >= gradflow::gpu::kernels::UPDATE_ALL_BINDINGS;
            assert_eq!(
                (fused.2, plain.2),
                (if all { 9 } else { 12 }, 16),
                "{block:?} {f:?} dispatches per step"
            );
        }
    }
}

/// The tuner measures every candidate, chooses a verified one, and its choice
/// round-trips through the cache file; `GRADFLOW_TUNE=off` is the defaults.
#[test]
fn the_tuner_measures_verifies_and_caches() {
    let Some(ctx) = gpu("the_tuner_measures_verifies_and_caches") else {
        return;
    };
    let t = ctx.pipelines().tuning();
    if !tune::disabled() {
        // The shared context's tuning came from the cache or a measurement now, and is
        // in the cache unless there is no writable cache directory.
        let writable = tune::cache_path()
            .and_then(|p| p.parent().map(|d| d.to_path_buf()))
            .is_some_and(|d| {
                std::fs::create_dir_all(&d).is_ok() && tempfile::tempfile_in(&d).is_ok()
            });
        if writable {
            assert_eq!(
                tune::cached(ctx.info()).as_ref(),
                Some(t),
                "the choice is cached"
            );
        }
        for probe in ["per-op kernels", "many-step GLM", "GLM gradient"] {
            let timed: Vec<_> = t.measured.iter().filter(|m| m.probe == probe).collect();
            assert!(!timed.is_empty(), "{probe} measured");
        }
        let chosen = |probe: &str, name: String| {
            t.measured
                .iter()
                .any(|m| m.probe == probe && m.candidate == name && m.ms.is_some())
        };
        assert!(chosen("GLM gradient", format!("{:?}", t.glm_grad)));
        assert!(chosen("per-op kernels", format!("{:?}", t.per_op)));
        // A CPU adapter's per-op kernels read storage blocks (uniform ones compile a
        // shader per set of values, without bound).
        if ctx.info().device_type == wgpu::DeviceType::Cpu {
            assert_eq!(t.per_op, ParamBlock::Storage);
        }
        assert!(chosen(
            "many-step GLM",
            format!("{:?}", (t.many_step, t.glm_epoch))
        ));
    }
    let key = tune::key(ctx.info());
    assert!(key.contains(&ctx.info().name) && key.contains(env!("CARGO_PKG_VERSION")));
}

/// One product on `ctx` (A in `chunks` buffers of `rpc` rows when given, read through a
/// gather index when `gather`): C's bits.
fn product_bits(
    ctx: &GpuContext,
    layout: gradflow::program::Layout,
    (m, k, n): (usize, usize, usize),
    (a, b, idx): (&[f32], &[f32], Option<&[u32]>),
    chunks: Option<(usize, usize)>,
) -> Vec<u32> {
    use gradflow::gpu::kernels::{self, ParamRing};
    let a_row_len = if layout == gradflow::program::Layout::TN {
        m
    } else {
        k
    };
    let mut ring = ParamRing::new(ctx, 4).unwrap();
    let parts: Vec<wgpu::Buffer> = match chunks {
        Some((_, rpc)) => a
            .chunks(rpc * a_row_len)
            .map(|part| ctx.upload("a chunk", part).unwrap())
            .collect(),
        None => vec![ctx.upload("a", a).unwrap()],
    };
    let refs: Vec<&wgpu::Buffer> = parts.iter().collect();
    let (gb, gc) = (
        ctx.upload("b", b).unwrap(),
        ctx.storage("c", m * n).unwrap(),
    );
    let gi = idx.map(|i| ctx.upload("idx", i).unwrap());
    let rpc = chunks.map_or(u32::MAX as usize, |(_, rpc)| rpc);
    let bound =
        kernels::bind_matmul_chunked(ctx, &ring, &refs, rpc, gi.as_ref(), &gb, &gc).unwrap();
    kernels::submit(ctx, &mut ring, |pass, ring| {
        kernels::matmul(ctx, pass, ring, &bound, layout, (m, k, n), idx.map(|_| 0))
    })
    .unwrap();
    let c = gradflow::gpu::readback::read_f32(ctx, &gc, m * n).unwrap();
    c.iter().map(|v| v.to_bits()).collect()
}

/// The 8 × 8 block reads its operands four values at a time where the shape aligns them
/// (`matmul.wgsl`'s `block_sum8q`: NN k and n, TN m and n, NT k multiples of 4) and value
/// by value elsewhere, and runs a thin C (n ≤ 16) on a grid along its rows: either way
/// the 4 × 4 block's bits and the CPU's values, in every layout, with the second quad of
/// rows or columns past C (12 = 8 + 4), gathered rows and A across chunk buffers.
#[test]
fn matmul_quads_keep_the_bits() {
    use gradflow::cpu;
    use gradflow::gpu::MatmulBlock;
    use gradflow::program::Layout;
    if gpu("matmul_quads_keep_the_bits").is_none() {
        return;
    }
    let ctx = |block| {
        let t = Tuning {
            matmul: block,
            ..Tuning::default()
        };
        GpuContext::with_tuning(None, t).unwrap()
    };
    let (four, eight) = (ctx(MatmulBlock::Four), ctx(MatmulBlock::Eight));
    let mut rng = Rng::new(77);
    let mut cases = 0;
    for layout in [Layout::NN, Layout::TN, Layout::NT] {
        for (m, k, n) in [
            (36, 20, 44),
            (12, 8, 12),
            (4, 4, 4),
            (40, 64, 12),
            (256, 64, 256),
            (9, 20, 13),
            (12, 9, 12),
        ] {
            let a_rows = if layout == Layout::TN { k } else { m };
            let a_row_len = if layout == Layout::TN { m } else { k };
            let b = rng.vec(k * n, -1.0, 1.0);
            // A's stored rows: a gather reads a shuffled subset of 7 more, spread over
            // three chunk buffers of whole rows.
            let stored = a_rows + 7;
            let a = rng.vec(stored * a_row_len, -1.0, 1.0);
            let idx: Vec<u32> = (0..a_rows).map(|_| rng.below(stored as u32)).collect();
            let rpc = stored.div_ceil(3);
            for (gather, chunks) in [(false, None), (true, None), (true, Some((3, rpc)))] {
                let a_used = if gather {
                    &a[..]
                } else {
                    &a[..a_rows * a_row_len]
                };
                let index = gather.then_some(&idx[..]);
                let what = format!("{layout:?} {m}×{k}×{n} gather={gather} chunks={chunks:?}");
                let bits = product_bits(&eight, layout, (m, k, n), (a_used, &b, index), chunks);
                assert_eq!(
                    bits,
                    product_bits(&four, layout, (m, k, n), (a_used, &b, index), chunks),
                    "{what}: the 8 × 8 block's bits differ from the 4 × 4 block's"
                );
                let mut want = vec![0f32; m * n];
                cpu::matmul::matmul(layout, m, k, n, a_used, index, &b, &mut want);
                let got: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
                assert_close(&what, &got, &want, 1e-5, 1e-5 * k as f32);
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 63);
}

/// `gpu::profile` times every kernel of the steps it names (each variant of the
/// full-batch gradient, the MLP step's products, the host's round trips) with finite
/// times, and its table lists each of them.
#[test]
fn the_kernel_profile_times_every_kernel() {
    let Some(ctx) = gpu("the_kernel_profile_times_every_kernel") else {
        return;
    };
    let times = gradflow::gpu::profile::kernel_times(&ctx, 4096).unwrap();
    let names: Vec<&str> = times.iter().map(|t| t.kernel.as_str()).collect();
    for want in [
        "host: submit",
        "host: read",
        "sigmoid",
        "bias add",
        "column sums",
    ] {
        assert!(
            names.iter().any(|n| n.starts_with(want)),
            "{want} missing: {names:?}"
        );
    }
    let products = |tail: &str| {
        let named = names.iter().filter(|n| n.starts_with("product"));
        named.filter(|n| n.ends_with(tail)).count()
    };
    assert_eq!(products("block)"), 5, "{names:?}");
    // The three thin ones, split as `SumSplit::Short` splits them.
    assert_eq!(products("both passes)"), 3, "{names:?}");
    for v in GlmGradVariant::ALL {
        let want = format!("GLM gradient + finish ({v:?})");
        // `Warps` runs only where the device has subgroups.
        let runs = v.runs_on(ctx.limits());
        assert_eq!(names.contains(&want.as_str()), runs, "{want}: {names:?}");
    }
    assert!(
        names.iter().any(|n| n.starts_with("GLM finish alone")),
        "{names:?}"
    );
    for how in ["step by step", "many steps a dispatch"] {
        let want = format!("small MLP, {how}, per step (16 steps, one wait)");
        assert!(names.contains(&want.as_str()), "{want} missing: {names:?}");
    }
    for v in tune::GlmEpochVariant::ALL {
        let want = format!("many-step GLM ({v:?}), per step");
        assert!(names.contains(&want.as_str()), "{want} missing: {names:?}");
    }
    for t in &times {
        assert!(t.us.is_finite(), "{t:?}");
        assert!(t.bytes >= 0.0 && t.flops >= 0.0, "{t:?}");
    }
    let table = gradflow::gpu::profile::markdown(&ctx, &times);
    assert_eq!(
        table.lines().filter(|l| l.starts_with("| ")).count(),
        times.len() + 1
    );
}

/// `SumSplit::Short` splits a mini-batch's thin products over k (here Xᵀδ¹ and Hᵀδ² over
/// the batch's 200 rows, H·W² over 160 hidden units; their bias epilogue then runs
/// apart): more dispatches, a fit that matches the CPU reference and the one-pass
/// products to float32 rounding, and repeats bit for bit.
#[test]
fn short_split_sums_train_like_the_cpu() {
    if gpu("short_split_sums_train_like_the_cpu").is_none() {
        return;
    }
    use gradflow::gpu::SumSplit;
    use gradflow::model::Mlp;
    use gradflow::{Backend, CpuKernels, TrainConfig, Trainer};
    let blobs = Synthetic::blobs(600, 20, 3).seed(7).dataset().unwrap();
    let cfg = TrainConfig::sgd()
        .batch_size(200)
        .learning_rate(0.1)
        .epochs(2)
        .seed(3)
        .record_steps(true);
    let fit = |cfg: TrainConfig, ctx: Option<GpuContext>| {
        let mut trainer = Trainer::new(cfg).unwrap();
        if let Some(ctx) = ctx {
            trainer = trainer.with_gpu(ctx);
        }
        let mut model = Mlp::new(160);
        let report = trainer.fit(&mut model, &blobs).unwrap();
        (report, model.fitted().unwrap().params.concat())
    };
    let on = |split| {
        // The per-op MLP step, whose products the split applies to.
        let t = Tuning {
            split,
            mlp: MlpStep::PerOp,
            measured: Vec::new(),
            ..Tuning::default()
        };
        let ctx = GpuContext::with_tuning(None, t).unwrap();
        fit(cfg.clone().backend(Backend::Gpu), Some(ctx))
    };
    let (long, long_params) = on(SumSplit::Long);
    let (short, short_params) = on(SumSplit::Short);
    let (cpu, cpu_params) = fit(cfg.clone().cpu_kernels(CpuKernels::Reference), None);
    // Three products split (a second pass each), one bias epilogue undone: +4 a step.
    assert_eq!(
        short.dispatches,
        long.dispatches + 4 * short.steps,
        "{short:?}"
    );
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
    assert_close(
        "losses vs CPU",
        &f32s(&short.step_losses),
        &f32s(&cpu.step_losses),
        1e-4,
        1e-6,
    );
    assert_close("params vs CPU", &short_params, &cpu_params, 1e-3, 1e-5);
    assert_close(
        "params vs one pass",
        &short_params,
        &long_params,
        1e-3,
        1e-5,
    );
    let (_, again) = on(SumSplit::Short);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&again), bits(&short_params), "two runs differ");
}
