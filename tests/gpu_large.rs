//! A resident dataset larger than one storage binding (600,000 × 64 f32 = 153.6 MB, over
//! llvmpipe's 128 MiB) trains on the GPU through the Trainer, its features split into
//! chunks, and matches the CPU.

mod common;

use std::time::Instant;

use common::gpu;
use gradflow::gpu::GpuEngine;
use gradflow::model::{LinearRegression, Model};
use gradflow::{Backend, Report, TrainConfig, Trainer};

#[test]
fn resident_dataset_above_one_binding_trains_on_the_gpu() {
    let Some(ctx) = gpu("resident_dataset_above_one_binding_trains_on_the_gpu") else {
        return;
    };
    let (n, p) = (600_000usize, 64usize);
    let data = gradflow::data::Synthetic::linear(n, p)
        .seed(1)
        .dataset()
        .expect("data");
    eprintln!(
        "features: {} bytes, storage binding limit {}",
        n * p * 4,
        ctx.limits().max_storage_buffer_binding_size
    );
    // The engine the Trainer builds splits the features into whole-row chunks, as many as
    // the binding limit needs (2 on llvmpipe; 1 where one binding holds 153.6 MB).
    let limits = ctx.limits();
    let rows_per_chunk = (limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size)
        / (p as u64 * 4)) as usize;
    let program = LinearRegression::new()
        .spec_for(&data)
        .expect("spec")
        .program();
    let engine =
        GpuEngine::new(&ctx, program, data.features(), p, data.targets(), 4096).expect("engine");
    assert_eq!(engine.feature_chunks(), n.div_ceil(rows_per_chunk));
    drop(engine);
    let fit = |backend: Backend| -> (Report, Vec<f32>) {
        let trainer = Trainer::new(
            TrainConfig::sgd()
                .batch_size(4096)
                .learning_rate(0.1)
                .epochs(1)
                .record_steps(true)
                .backend(backend),
        )
        .expect("trainer");
        let t = Instant::now();
        let mut model = LinearRegression::new();
        let report = model.fit(&data, &trainer).expect("fit");
        eprintln!(
            "{}: epoch loss {:e}, last batch loss {:e}, in {:.1} s",
            report.backend,
            report.final_loss(),
            report.step_losses.last().copied().unwrap_or(f64::NAN),
            t.elapsed().as_secs_f64()
        );
        let w = model.weights().expect("fitted").to_vec();
        (report, w)
    };
    let (gpu_report, gpu_w) = fit(Backend::Gpu);
    let (cpu_report, cpu_w) = fit(Backend::Cpu);
    assert!(
        gpu_report.backend.starts_with("gpu"),
        "trained on {}",
        gpu_report.backend
    );
    // The epoch's mean loss includes the first batches at w = 0; the CPU's run of the
    // same configuration is the reference. f32 rounding differs between the two (f32
    // accumulation on the device), far below 1e-4 relative over 147 steps.
    let (g, c) = (gpu_report.final_loss(), cpu_report.final_loss());
    assert!(
        g.is_finite() && g <= c * 1.01,
        "GPU epoch loss {g} vs CPU {c}"
    );
    assert!(
        (g - c).abs() <= 1e-4 * c.abs(),
        "GPU epoch loss {g} vs CPU {c}: relative {:e}",
        (g - c).abs() / c.abs()
    );
    // Converged by the end of the epoch: the noise is 0.01, so the MSE floor is ~1e-4.
    let last = gpu_report.step_losses.last().copied().unwrap_or(f64::NAN);
    assert!(last < 1e-2, "GPU last batch loss {last}");
    assert_eq!(gpu_report.steps, cpu_report.steps);
    let max_dw = gpu_w
        .iter()
        .zip(&cpu_w)
        .map(|(g, c)| (g - c).abs())
        .fold(0f32, f32::max);
    assert!(max_dw <= 1e-4, "weights differ by up to {max_dw:e}");
}
