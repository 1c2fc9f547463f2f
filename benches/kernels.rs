//! Criterion benches of the CPU reference kernels and the synthetic generator.
//!
//! These measure the *reference* kernels (clarity first, f64 accumulation); they are the
//! baseline the fast paths of later stages are compared with. Set `GRADFLOW_BENCH_QUICK=1`
//! to shrink the sizes (CI smoke runs).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gradflow::cpu::{loss, matmul};
use gradflow::data::{RowTargets, Synthetic, epoch_plan};
use gradflow::engine::{CpuEngine, Rows};
use gradflow::model::{LinearRegression, Mlp, Model};
use std::hint::black_box;

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

criterion_group!(benches, kernels, steps, generator);
criterion_main!(benches);
