//! Criterion benches of the CPU reference kernels, their GPU twins and the synthetic
//! generator.
//!
//! The CPU side measures the *reference* kernels (clarity first, f64 accumulation); they
//! are the baseline the fast paths of later stages are compared with. The GPU side
//! records [`GPU_DISPATCHES`] dispatches of one kernel in one compute pass, submits and
//! waits for the device, so an iteration is recorded, submitted and finished work (the
//! per-dispatch cost included, which dominates small shapes on a software adapter).
//! Both run the shapes of a training step at batch 256: the linear models' `X w` and
//! `Xᵀ δ`, the MLP's layers, back-propagation (`δ W²ᵀ`), the bias gradient (column
//! sums) and the softmax. Set `GRADFLOW_BENCH_QUICK=1` to shrink the sizes and the
//! measurement time (CI smoke runs). Without a GPU adapter the GPU group prints one
//! skip line.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gradflow::cpu::matmul::Layout;
use gradflow::cpu::{loss, matmul, reduce, softmax};
use gradflow::data::{RowTargets, Synthetic, epoch_plan};
use gradflow::engine::{CpuEngine, Rows};
use gradflow::gpu::GpuContext;
use gradflow::gpu::kernels::{self, Bound, ParamRing};
use gradflow::model::{LinearRegression, Mlp, Model};
use std::hint::black_box;
use std::time::Duration;

/// Dispatches per GPU iteration (one pass, one submission, one wait).
const GPU_DISPATCHES: usize = 16;

/// Matmul shapes `(layout, m, k, n, what)` of a training step at batch 256 (C is m × n,
/// the sum runs over k), plus one large awkward square outside quick mode.
fn matmul_shapes() -> Vec<(Layout, usize, usize, usize, &'static str)> {
    let mut v = vec![
        (Layout::NN, 256, 64, 1, "linear forward X·w"),
        (Layout::TN, 64, 256, 1, "linear gradient Xᵀ·δ"),
        (Layout::NN, 256, 64, 256, "MLP layer 1 X·W¹"),
        (Layout::TN, 64, 256, 256, "MLP gradient Xᵀ·δ¹"),
        (Layout::NT, 256, 10, 256, "MLP back-propagation δ²·W²ᵀ"),
    ];
    if !quick() {
        v.push((Layout::NN, 513, 511, 509, "square-ish 513×511×509"));
    }
    v
}

fn quick() -> bool {
    std::env::var_os("GRADFLOW_BENCH_QUICK").is_some()
}

fn kernels(c: &mut Criterion) {
    let (m, k, n) = (256, 64, 256);
    let a: Vec<f32> = (0..m * k).map(|i| (i % 17) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 13) as f32 * 0.1).collect();
    let mut out = vec![0f32; m * n];
    let mut g = c.benchmark_group("reference kernels");
    g.throughput(Throughput::Elements((m * k * n) as u64));
    g.bench_function("matmul NN 256×64×256", |bench| {
        bench.iter(|| {
            matmul::matmul(
                matmul::Layout::NN,
                m,
                k,
                n,
                black_box(&a),
                None,
                &b,
                &mut out,
            )
        })
    });
    let mut gw = vec![0f32; k * n];
    g.bench_function("matmul TN (Xᵀδ) 64×256×256", |bench| {
        bench.iter(|| {
            matmul::matmul(
                matmul::Layout::TN,
                k,
                m,
                n,
                black_box(&a),
                None,
                &out,
                &mut gw,
            )
        })
    });
    let labels: Vec<u32> = (0..m as u32).map(|i| i % 10).collect();
    let z: Vec<f32> = (0..m * 10).map(|i| (i % 7) as f32 - 3.0).collect();
    let mut dz = vec![0f32; m * 10];
    g.throughput(Throughput::Elements(m as u64));
    g.bench_function("softmax + CCE 256×10", |bench| {
        bench.iter(|| loss::softmax_cce(black_box(&z), &labels, None, m, 10, &mut dz, None))
    });
    g.finish();
}

/// The training-shape kernels on the CPU: every matmul layout, column sums, softmax.
fn shapes_cpu(c: &mut Criterion) {
    let mut g = c.benchmark_group("reference kernels, training shapes");
    if quick() {
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_secs(1));
    }
    for (layout, m, k, n, what) in matmul_shapes() {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 17) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 13) as f32 * 0.1).collect();
        let mut out = vec![0f32; m * n];
        g.throughput(Throughput::Elements((m * k * n) as u64));
        g.bench_function(
            format!("matmul {layout:?} {m}×{k}×{n} ({what})"),
            |bench| {
                bench.iter(|| matmul::matmul(layout, m, k, n, black_box(&a), None, &b, &mut out))
            },
        );
    }
    let (rows, cols) = (256, 256);
    let x: Vec<f32> = (0..rows * cols).map(|i| (i % 11) as f32 * 0.1).collect();
    let mut sums = vec![0f32; cols];
    g.throughput(Throughput::Elements((rows * cols) as u64));
    g.bench_function("col_sums 256×256 (bias gradient 1ᵀδ¹)", |bench| {
        bench.iter(|| reduce::col_sums(black_box(&x), rows, cols, &mut sums))
    });
    let z: Vec<f32> = (0..256 * 10).map(|i| (i % 7) as f32 - 3.0).collect();
    let mut p = vec![0f32; 256 * 10];
    g.throughput(Throughput::Elements(256));
    g.bench_function("softmax rows 256×10", |bench| {
        bench.iter(|| softmax::softmax_rows(black_box(&z), 256, 10, &mut p))
    });
    g.finish();
}

/// A GPU launch recorder: one dispatch into the pass, its parameters into the ring.
type Launch<'a> = dyn Fn(&mut wgpu::ComputePass<'_>, &mut ParamRing) -> gradflow::Result<()> + 'a;

/// Records [`GPU_DISPATCHES`] launches of `launch` in one pass, submits and waits for
/// the device.
fn run_gpu(ctx: &GpuContext, ring: &mut ParamRing, launch: &Launch<'_>) {
    kernels::submit(ctx, ring, |pass, ring| {
        for _ in 0..GPU_DISPATCHES {
            launch(pass, ring)?;
        }
        Ok(())
    })
    .unwrap();
    ctx.device()
        .poll(wgpu::PollType::wait_indefinitely())
        .unwrap();
}

/// The same kernels on the GPU: [`GPU_DISPATCHES`] per pass, then a wait.
fn shapes_gpu(c: &mut Criterion) {
    let ctx = match GpuContext::new() {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("SKIPPED GPU kernels: {e}");
            return;
        }
    };
    eprintln!(
        "GPU kernels on {} ({:?})",
        ctx.info().name,
        ctx.info().backend
    );
    let mut g = c.benchmark_group(format!("GPU kernels, {GPU_DISPATCHES} per submission"));
    g.sample_size(10);
    if quick() {
        g.warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_secs(1));
    }
    let mut ring = ParamRing::new(&ctx, GPU_DISPATCHES).unwrap();
    let buf = |len: usize, modulo: usize| {
        let v: Vec<f32> = (0..len).map(|i| (i % modulo) as f32 * 0.1).collect();
        ctx.upload("bench input", &v).unwrap()
    };
    for (layout, m, k, n, what) in matmul_shapes() {
        let (a, b, out) = (buf(m * k, 17), buf(k * n, 13), buf(m * n, 1));
        let bound: Bound = kernels::bind_matmul(&ctx, &ring, &a, None, &b, &out).unwrap();
        g.throughput(Throughput::Elements((GPU_DISPATCHES * m * k * n) as u64));
        g.bench_function(
            format!("matmul {layout:?} {m}×{k}×{n} ({what})"),
            |bench| {
                bench.iter(|| {
                    run_gpu(&ctx, &mut ring, &|p, r| {
                        kernels::matmul(&ctx, p, r, &bound, layout, (m, k, n), None)
                    })
                })
            },
        );
    }
    let (x, sums) = (buf(256 * 256, 11), buf(256, 1));
    let cs = kernels::bind_col_sums(&ctx, &ring, &x, &sums).unwrap();
    g.throughput(Throughput::Elements((GPU_DISPATCHES * 256 * 256) as u64));
    g.bench_function("col_sums 256×256 (bias gradient 1ᵀδ¹)", |bench| {
        bench.iter(|| {
            run_gpu(&ctx, &mut ring, &|p, r| {
                kernels::col_sums(&ctx, p, r, &cs, 256, 256)
            })
        })
    });
    let (z, probs) = (buf(256 * 10, 7), buf(256 * 10, 1));
    let sm = kernels::bind_softmax_rows(&ctx, &ring, &z, &probs).unwrap();
    g.throughput(Throughput::Elements((GPU_DISPATCHES * 256) as u64));
    g.bench_function("softmax rows 256×10", |bench| {
        bench.iter(|| {
            run_gpu(&ctx, &mut ring, &|p, r| {
                kernels::softmax_rows(&ctx, p, r, &sm, 256, 10)
            })
        })
    });
    g.finish();
}

fn steps(c: &mut Criterion) {
    let n = if quick() { 4096 } else { 65_536 };
    let lin = Synthetic::linear(n, 64).seed(1).dataset().unwrap();
    let teacher = Synthetic::teacher(n, 64, 10).seed(3).dataset().unwrap();
    let plan = epoch_plan(11, 0, n, 256, true, false).unwrap();
    let order = plan.order().unwrap();
    let mut g = c.benchmark_group("training step, batch 256");
    g.throughput(Throughput::Elements(256));
    let spec = LinearRegression::new().spec_for(&lin).unwrap();
    let mut e = CpuEngine::<f32>::new(spec.program(), lin.features(), 64, Some(lin.targets()), 256);
    g.bench_function("linear p=64", |bench| {
        bench.iter(|| e.step(Rows::Gather(&order[..256]), 0.01).unwrap())
    });
    let spec = Mlp::new(256).spec_for(&teacher).unwrap();
    let mut e = CpuEngine::<f32>::new(
        spec.program(),
        teacher.features(),
        64,
        Some(teacher.targets()),
        256,
    );
    g.bench_function("MLP 64-256-10", |bench| {
        bench.iter(|| e.step(Rows::Gather(&order[..256]), 0.01).unwrap())
    });
    g.finish();
}

fn generator(c: &mut Criterion) {
    let rows = if quick() { 10_000 } else { 200_000 };
    let s = Synthetic::linear(rows, 64).seed(1);
    let (mut x, mut y) = (vec![0f32; rows * 64], vec![0f32; rows]);
    let mut g = c.benchmark_group("synthetic");
    g.throughput(Throughput::Elements(rows as u64));
    g.sample_size(10);
    g.bench_function("linear rows, p=64", |bench| {
        bench.iter(|| s.fill_rows(0, &mut x, RowTargets::Real(&mut y)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, kernels, shapes_cpu, shapes_gpu, steps, generator);
criterion_main!(benches);
