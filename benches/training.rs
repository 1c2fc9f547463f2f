//! Criterion benches of training steps, per model, on the CPU reference engine and on the
//! GPU engine: 32 steps per iteration on shuffled batches, ended by a sync (the GPU's
//! loss readback), so a GPU iteration measures recorded, submitted and finished work.
//!
//! Two sizes: small (p = 16, batch 64, MLP hidden 32) and medium (p = 64, batch 256, MLP
//! hidden 256, the W1–W3 shape). `GRADFLOW_BENCH_QUICK=1` shrinks the datasets and the
//! measurement time (CI smoke runs). Without a GPU adapter the GPU group prints one
//! skip line. The last group fits a full-batch model whole, with and without epochs
//! queued ahead of the host's reads.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use gradflow::cpu::activation::Activation;
use gradflow::data::{Dataset, Synthetic, epoch_plan};
use gradflow::engine::{CpuEngine, Rows};
use gradflow::gpu::{GpuContext, GpuEngine};
use gradflow::model::{
    LinearRegression, LogisticRegression, Mlp, Model, SoftmaxRegression, init_params,
};
use gradflow::program::Program;
use gradflow::{Backend, TrainConfig, Trainer};

/// Steps per timed iteration.
const STEPS: usize = 32;

fn quick() -> bool {
    std::env::var_os("GRADFLOW_BENCH_QUICK").is_some()
}

/// (label, p, batch, MLP hidden width).
fn sizes() -> [(&'static str, usize, usize, usize); 2] {
    [("small", 16, 64, 32), ("medium", 64, 256, 256)]
}

/// Each model's program and initial parameters on its kind of data, with the data.
fn cases(p: usize, hidden: usize) -> Vec<(&'static str, Program, Vec<Vec<f32>>, Dataset)> {
    let n = if quick() { 4096 } else { 65_536 };
    let lin = Synthetic::linear(n, p).seed(1).dataset().unwrap();
    let logit = Synthetic::logistic(n, p).seed(2).dataset().unwrap();
    let blobs = Synthetic::blobs(n, p, 10).seed(3).dataset().unwrap();
    let teacher = Synthetic::teacher(n, p, 10).seed(4).dataset().unwrap();
    let case = |name, model: &dyn Model, data: Dataset| {
        let spec = model.spec_for(&data).unwrap();
        let init = init_params(&spec, model.init(), 7).unwrap();
        (name, spec.program(), init, data)
    };
    vec![
        case("linear", &LinearRegression::new(), lin),
        case("logistic", &LogisticRegression::new(), logit),
        case("softmax k=10", &SoftmaxRegression::new(), blobs),
        case(
            "MLP sigmoid",
            &Mlp::new(hidden).with_activation(Activation::Sigmoid),
            teacher,
        ),
    ]
}

fn configure(g: &mut BenchmarkGroup<'_, WallTime>) {
    if quick() {
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_secs(1));
    }
}

fn cpu_steps(c: &mut Criterion) {
    for (size, p, batch, hidden) in sizes() {
        let mut g = c.benchmark_group(format!("CPU training steps, {size} (p={p}, batch {batch})"));
        configure(&mut g);
        g.throughput(Throughput::Elements((STEPS * batch) as u64));
        for (name, program, init, data) in cases(p, hidden) {
            let plan = epoch_plan(11, 0, data.n(), batch, true, false).unwrap();
            let order = plan.order().unwrap().to_vec();
            let mut e =
                CpuEngine::<f32>::new(program, data.features(), p, Some(data.targets()), batch);
            e.set_params(&init).unwrap();
            let batches = data.n() / batch;
            let mut next = 0;
            g.bench_function(name, |b| {
                b.iter(|| {
                    for _ in 0..STEPS {
                        let start = (next % batches) * batch;
                        next += 1;
                        black_box(
                            e.step(Rows::Gather(&order[start..start + batch]), 0.01)
                                .unwrap(),
                        );
                    }
                })
            });
        }
        g.finish();
    }
}

fn gpu_steps(c: &mut Criterion) {
    let ctx = match GpuContext::new() {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("SKIPPED GPU training steps: {e}");
            return;
        }
    };
    eprintln!(
        "GPU training steps on {} ({:?})",
        ctx.info().name,
        ctx.info().backend
    );
    for (size, p, batch, hidden) in sizes() {
        let mut g = c.benchmark_group(format!("GPU training steps, {size} (p={p}, batch {batch})"));
        configure(&mut g);
        g.throughput(Throughput::Elements((STEPS * batch) as u64));
        for (name, program, init, data) in cases(p, hidden) {
            let plan = epoch_plan(11, 0, data.n(), batch, true, false).unwrap();
            let order: Vec<u32> = plan.order().unwrap().to_vec();
            let mut e =
                GpuEngine::new(&ctx, program, data.features(), p, data.targets(), batch).unwrap();
            e.set_params(&init).unwrap();
            e.set_order(&order).unwrap();
            let batches = data.n() / batch;
            let slots = e.loss_slots();
            let mut next = 0;
            g.bench_function(name, |b| {
                b.iter(|| {
                    for _ in 0..STEPS {
                        let start = (next % batches) * batch;
                        e.step(start, batch, 0.01, next % slots).unwrap();
                        next += 1;
                    }
                    // The readback waits for every submitted step: the sync.
                    black_box(e.read_losses(1).unwrap())
                })
            });
        }
        g.finish();
    }
}

/// Whole full-batch fits on the GPU (one step an epoch, W4's shape at a smaller n), with
/// each epoch read before the next is queued and with two epochs queued ahead
/// (`TrainConfig::epochs_ahead`): the difference is the host's round trip per epoch that
/// the device no longer waits for. Each iteration is a fit: set-up and upload included.
fn gpu_epochs_ahead(c: &mut Criterion) {
    if let Err(e) = GpuContext::new() {
        eprintln!("SKIPPED GPU epochs ahead: {e}");
        return;
    }
    let (n, p, epochs) = if quick() {
        (2_048, 16, 16)
    } else {
        (16_384, 64, 64)
    };
    let data = Synthetic::linear(n, p).seed(5).dataset().unwrap();
    let mut g = c.benchmark_group(format!("GPU full-batch fit, {n} x {p}, {epochs} epochs"));
    configure(&mut g);
    for ahead in [0, 2] {
        let cfg = TrainConfig::sgd()
            .backend(Backend::Gpu)
            .batch_size(usize::MAX)
            .learning_rate(0.05)
            .epochs(epochs)
            .epochs_ahead(ahead);
        let trainer = Trainer::new(cfg).unwrap();
        g.bench_function(format!("{ahead} epochs ahead"), |b| {
            b.iter(|| {
                let mut model = LinearRegression::new();
                black_box(trainer.fit(&mut model, &data).unwrap().final_loss())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, cpu_steps, gpu_steps, gpu_epochs_ahead);
criterion_main!(benches);
