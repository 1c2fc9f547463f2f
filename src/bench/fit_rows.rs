//! The `gradflow bench --kernels` rows that time whole fits rather than kernels:
//!
//! - [`epochs_ahead_times`]: what the epochs queued ahead of the host's reads save on this
//!   adapter — W4's fit (its shape at `rows` rows, 50 full-batch iterations at rate 0.05)
//!   with each epoch read before the next is queued, and with 1 and 2 epochs queued
//!   ahead ([`TrainConfig::epochs_ahead`]), alternated, median of three: milliseconds
//!   per iteration after the fit's set-up (its upload), so that the difference is the
//!   host's round trip per epoch.
//! - [`setup_times`]: what a fresh device adds to a fit — W3's and W4's fits on a device
//!   opened afresh (their pipelines compiled as they start) and again on the same
//!   device (pipelines cached): time the bench's GPU rows include and JAX's and
//!   PyTorch's leave out.

use super::Workload;
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::gpu::profile::KernelTime;
use crate::{Backend, Trainer};

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
    let w4 = Workload::W4;
    let data = w4.data_kind().make(rows)?;
    let aheads = [0, 1, 2];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); aheads.len()];
    for _ in 0..3 {
        for (i, &ahead) in aheads.iter().enumerate() {
            let cfg = w4.config(usize::MAX, w4.epochs());
            let cfg = cfg.backend(Backend::Gpu).epochs_ahead(ahead);
            let trainer = Trainer::new(cfg)?.with_gpu(ctx.clone());
            let report = trainer.fit(w4.kind().model().as_mut(), &data)?;
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
                shape: format!("{rows} × 64, {} iterations", w4.epochs()),
                us: t[1],
                bytes: (rows * 65 * 4) as f64,
                flops: (rows * 64 * 4) as f64,
            }
        })
        .collect())
}

/// A fit on a freshly opened device against the same fit again: W3's (`rows` / 5 × 64,
/// the 64-256-10 sigmoid MLP, batch 256, one epoch) and W4's (`rows` × 64, one
/// full-batch iteration), first on a device opened afresh with `ctx`'s adapter and
/// tuning, then again on it; for each, the set-up (`Report::setup`: the choices, the
/// session, its upload) and the whole fit (`Report::wall`). The first fit's extra time
/// is its pipelines' compilation, which runs beside the set-up and the first steps
/// ([`crate::gpu::pipelines::Pipelines::prefetch`]).
///
/// ```no_run
/// # fn main() -> gradflow::Result<()> {
/// let ctx = gradflow::gpu::GpuContext::new()?;
/// for t in gradflow::bench::setup_times(&ctx, 65_536)? {
///     println!("{}: {:.1} ms", t.kernel, t.us / 1e3);
/// }
/// # Ok(()) }
/// ```
///
/// # Errors
/// Opening the device; a fit's error ([`crate::Error::Device`],
/// [`crate::Error::DeviceLimit`]).
pub fn setup_times(ctx: &GpuContext, rows: usize) -> Result<Vec<KernelTime>> {
    let tuning = ctx.pipelines().tuning().clone();
    let fresh = GpuContext::with_tuning(Some(&ctx.info().name), tuning)?;
    let mut out = Vec::new();
    for w in [Workload::W3, Workload::W4] {
        // Each at its share of `rows` (W3 has a fifth of W4's rows at full size).
        let n = (rows * w.rows() / Workload::W4.rows()).max(256);
        let data = w.data_kind().make(n)?;
        let batch = w.batch().unwrap_or(usize::MAX);
        let cfg = w.config(batch, 1).backend(Backend::Gpu);
        let trainer = Trainer::new(cfg)?.with_gpu(fresh.clone());
        for when in ["first fit on a fresh device", "second fit"] {
            let report = trainer.fit(w.kind().model().as_mut(), &data)?;
            for (what, took) in [("set-up", report.setup), ("whole fit", report.wall)] {
                out.push(KernelTime {
                    kernel: format!("{w} fit (1 epoch), {what}, {when}"),
                    shape: format!("{n} × 64"),
                    us: took.as_secs_f64() * 1e6,
                    bytes: 0.0,
                    flops: 0.0,
                });
            }
        }
    }
    Ok(out)
}
