//! What the epochs queued ahead of the host's reads save on this adapter: W4's fit (its
//! shape at `rows` rows, 50 full-batch iterations at rate 0.05) with each epoch read
//! before the next is queued, and with 1 and 2 epochs queued ahead
//! ([`TrainConfig::epochs_ahead`]), alternated, median of three. A row per setting of
//! the `gradflow bench --kernels` table: milliseconds per iteration after the fit's
//! set-up (its upload), so that the difference is the host's round trip per epoch.

use crate::data::Synthetic;
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::gpu::profile::KernelTime;
use crate::model::LinearRegression;
use crate::{Backend, TrainConfig, Trainer};

/// Iterations of W4's fit.
const ITERATIONS: usize = 50;

/// Times W4's fit at `rows` × 64 on `ctx` with 0, 1 and 2 epochs ahead: one row each,
/// microseconds per iteration after set-up, the bytes an iteration reads at least (X
/// and y once).
///
/// ```no_run
/// # fn main() -> gradflow::Result<()> {
/// let ctx = gradflow::gpu::GpuContext::new()?;
/// for t in gradflow::bench::epochs_ahead_times(&ctx, 65_536)? {
///     println!("{}: {:.1} µs an iteration", t.kernel, t.us);
/// }
/// # Ok(()) }
/// ```
///
/// # Errors
/// A fit's error ([`crate::Error::Device`], [`crate::Error::DeviceLimit`]).
pub fn epochs_ahead_times(ctx: &GpuContext, rows: usize) -> Result<Vec<KernelTime>> {
    let data = Synthetic::linear(rows, 64).seed(4).dataset()?;
    let aheads = [0, 1, 2];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); aheads.len()];
    for _ in 0..3 {
        for (i, &ahead) in aheads.iter().enumerate() {
            let cfg = TrainConfig::sgd()
                .backend(Backend::Gpu)
                .batch_size(usize::MAX)
                .learning_rate(0.05)
                .epochs(ITERATIONS)
                .epochs_ahead(ahead);
            let trainer = Trainer::new(cfg)?.with_gpu(ctx.clone());
            let report = trainer.fit(&mut LinearRegression::new(), &data)?;
            let steps = report.steps.max(1) as f64;
            times[i].push((report.wall - report.setup).as_secs_f64() * 1e6 / steps);
        }
    }
    Ok(aheads
        .iter()
        .zip(times)
        .map(|(ahead, mut t)| {
            t.sort_by(f64::total_cmp);
            KernelTime {
                kernel: format!("W4 fit, per iteration after set-up, {ahead} epochs ahead"),
                shape: format!("{rows} × 64, {ITERATIONS} iterations"),
                us: t[1],
                bytes: (rows * 65 * 4) as f64,
                flops: (rows * 64 * 4) as f64,
            }
        })
        .collect())
}
