//! Benchmarks and the demo: the same fits on the CPU (its fast kernels) and on the GPU,
//! timed, checked against each other and reported.
//!
//! - [`run`] measures the workloads W1–W5 ([`Workload`]) on each backend and returns a
//!   [`BenchReport`]: samples/s, wall time, ms per step, final loss, R² or accuracy, the
//!   adapter, the GPU/CPU ratio, whether the final losses agree, and the crossover batch
//!   size (with [`BenchOptions::sweep`]); [`BenchReport::markdown`] and
//!   [`BenchReport::to_json`] write it out, and `plot` (feature `cli`) draws it.
//! - [`cost`] is the GPU cost model: each workload's step as dispatches, workgroups,
//!   bytes, work and barriers, and the time that predicts on a device preset
//!   (`gradflow bench --explain`);
//! - [`demo`] is what `gradflow` runs with no arguments: the four models on large
//!   synthetic data, GPU against CPU, in about two minutes even on a software adapter.
//!
//! ```
//! use gradflow::bench::{self, Backends, BenchOptions, Workload};
//! // The CI smoke run: quick sizes; here only W2, on the CPU.
//! let opts = BenchOptions::quick().backends(Backends::Cpu).workloads(&[Workload::W2]);
//! let report = bench::run(&opts, &mut std::io::sink())?;
//! println!("{}", report.markdown());
//! let json = report.to_json()?;
//! assert_eq!(bench::BenchReport::from_json(&json)?, report);
//! # Ok::<(), gradflow::Error>(())
//! ```

/// The setters and the adapter choice that the bench's and the demo's options share
/// (their `scale`, `backends`, `adapter` and `gpu` fields), written once.
macro_rules! run_options {
    () => {
        /// Sets `scale`, the row multiplier.
        pub fn scale(mut self, v: f64) -> Self {
            self.scale = v;
            self
        }
        /// Sets `backends`.
        pub fn backends(mut self, v: Backends) -> Self {
            self.backends = v;
            self
        }
        /// Opens the adapter whose name or backend contains `filter`.
        pub fn adapter(mut self, filter: &str) -> Self {
            self.adapter = Some(filter.into());
            self
        }
        /// Runs the GPU side on `ctx`.
        pub fn gpu(mut self, ctx: GpuContext) -> Self {
            self.gpu = Some(ctx);
            self
        }
        /// The GPU context the options name: `gpu`, else the adapter `adapter` names,
        /// else the process-wide best one.
        ///
        /// # Errors
        /// [`Error::NoAdapter`](crate::Error::NoAdapter) when there is none;
        /// [`Error::Device`](crate::Error::Device).
        pub fn context(&self) -> Result<GpuContext> {
            $crate::bench::context(self.gpu.as_ref(), self.adapter.as_deref())
        }
    };
}

pub mod cost;
mod demo;
mod fit;
mod fit_rows;
#[cfg(feature = "cli")]
mod plot;
mod report;
mod run;
mod workload;

pub use demo::{DemoOptions, DemoReport, DemoRow, NormalCheck, PROBE_STEPS, demo};
pub use fit::{EVAL_ROWS, LOSS_ATOL, LOSS_RTOL, Metric, Quality, loss_rel_diff, losses_agree};
pub use fit_rows::{epochs_ahead_times, setup_times};
#[cfg(feature = "cli")]
pub use plot::plot;
pub use report::{BenchReport, BenchRow, Crossover, Measured, crossover_batch};
pub use run::{
    MIN_ROWS, REPEAT_UNDER, SWEEP_BATCHES, SWEEP_FULL_ITERS, SWEEP_STEPS, SWEEP_STEPS_QUICK, run,
};
pub use workload::Workload;

use crate::error::{Error, Result};
use crate::gpu::{self, GpuContext};

/// `ctx` when given, else the adapter `filter` names, else the process-wide best one.
pub(crate) fn context(ctx: Option<&GpuContext>, filter: Option<&str>) -> Result<GpuContext> {
    match (ctx, filter) {
        (Some(ctx), _) => Ok(ctx.clone()),
        (None, Some(f)) => GpuContext::with_adapter(Some(f)),
        (None, None) => gpu::shared(),
    }
}

/// The row multiplier of quick mode: W1 on 10,000 rows, W3 on 2,000.
pub const QUICK_SCALE: f64 = 0.01;

/// Which backends a bench or the demo runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backends {
    /// The CPU only.
    Cpu,
    /// The GPU only.
    Gpu,
    /// Both, compared point by point.
    #[default]
    Both,
}

impl Backends {
    /// Whether the CPU runs.
    pub fn cpu(self) -> bool {
        self != Backends::Gpu
    }
    /// Whether the GPU runs.
    pub fn gpu(self) -> bool {
        self != Backends::Cpu
    }
}

impl std::str::FromStr for Backends {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Backends::Cpu),
            "gpu" => Ok(Backends::Gpu),
            "both" => Ok(Backends::Both),
            _ => Err(Error::param("backends", s, "must be cpu, gpu or both")),
        }
    }
}

/// What [`run`] measures.
///
/// | field | default | meaning |
/// |---|---|---|
/// | `quick` | false | rows × [`QUICK_SCALE`] and one run per point: the CI smoke run |
/// | `sweep` | false | also batch sizes [`SWEEP_BATCHES`] and full for W1–W3 |
/// | `backends` | both | `Cpu`, `Gpu` or `Both` |
/// | `workloads` | all | the workloads to run (empty: all) |
/// | `scale` | 1 | row multiplier (on top of quick's) |
/// | `repeats` | 3 (quick: 1) | most timed runs per point; the median is reported |
/// | `adapter` | None | open the adapter whose name or backend contains this (as `GRADFLOW_ADAPTER`) |
/// | `gpu` | None | the GPU context (overrides `adapter`; neither: [`gpu::shared`], the best adapter) |
///
/// ```
/// use gradflow::bench::{Backends, BenchOptions};
/// let opts = BenchOptions::default().sweep(true).backends("gpu".parse()?);
/// assert_eq!((opts.repeats, opts.backends), (3, Backends::Gpu));
/// assert!(BenchOptions::default().scale(0.0).validate().is_err());
/// # Ok::<(), gradflow::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Scale everything down for CI.
    pub quick: bool,
    /// Add the batch-size sweep.
    pub sweep: bool,
    /// Which backends run.
    pub backends: Backends,
    /// The workloads to run (empty: all).
    pub workloads: Vec<Workload>,
    /// Row multiplier.
    pub scale: f64,
    /// Most timed runs per point.
    pub repeats: usize,
    /// The adapter to open, by a part of its name or its backend (None: the best one).
    pub adapter: Option<String>,
    /// The GPU to run on (overrides `adapter`; neither: the process-wide best adapter).
    pub gpu: Option<GpuContext>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            quick: false,
            sweep: false,
            backends: Backends::Both,
            workloads: Vec::new(),
            scale: 1.0,
            repeats: 3,
            adapter: None,
            gpu: None,
        }
    }
}

impl BenchOptions {
    /// Quick mode: rows × [`QUICK_SCALE`], one run per point.
    pub fn quick() -> Self {
        BenchOptions {
            quick: true,
            repeats: 1,
            ..BenchOptions::default()
        }
    }
    /// Sets `sweep`.
    pub fn sweep(mut self, v: bool) -> Self {
        self.sweep = v;
        self
    }
    /// Sets the workloads to run.
    pub fn workloads(mut self, v: &[Workload]) -> Self {
        self.workloads = v.to_vec();
        self
    }
    /// Sets `repeats`.
    pub fn repeats(mut self, v: usize) -> Self {
        self.repeats = v;
        self
    }
    run_options!();

    /// The row multiplier in effect: `scale`, times [`QUICK_SCALE`] in quick mode.
    pub fn effective_scale(&self) -> f64 {
        self.scale * if self.quick { QUICK_SCALE } else { 1.0 }
    }

    /// Checks the options.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a scale that is not finite and > 0, or 0 repeats.
    pub fn validate(&self) -> Result<()> {
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(Error::param("scale", self.scale, "must be finite and > 0"));
        }
        if self.repeats == 0 {
            return Err(Error::param("repeats", 0, "must be ≥ 1"));
        }
        Ok(())
    }
}
