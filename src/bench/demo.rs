//! The demo: the four models on large synthetic data, on the GPU and on the CPU, checked
//! against each other, then the normal equations.

use std::io::Write;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Backends;
use super::fit::{self, Fit, Quality, Recipe, loss_rel_diff, losses_agree, prefix};
use crate::data::{Dataset, Synthetic};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::model::Kind;
use crate::model::normal_eq::{self, Method, Solve};
use crate::program::Activation;
use crate::{Backend, TrainConfig, Trainer};

/// Steps of the GPU probe fit that measures the adapter's speed per model.
pub const PROBE_STEPS: usize = 16;

/// What [`demo`] runs.
///
/// | field | default | meaning |
/// |---|---|---|
/// | `scale` | 1 | row multiplier (1: 10⁶ rows for linear and logistic, 2·10⁵ for softmax and the MLP) |
/// | `gpu_budget` | 60 s | GPU training time the four GPU fits may take together; slower adapters get fewer rows |
/// | `backends` | both | `Cpu`, `Gpu` or `Both` |
/// | `adapter` | None | open the adapter whose name or backend contains this (as `GRADFLOW_ADAPTER`) |
/// | `gpu` | None | the GPU context (overrides `adapter`; neither: [`gpu::shared`](crate::gpu::shared), the best adapter) |
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Row multiplier.
    pub scale: f64,
    /// Time the GPU fits may take together (estimated by a probe fit per model).
    pub gpu_budget: Duration,
    /// Which backends run.
    pub backends: Backends,
    /// The adapter to open, by a part of its name or its backend (None: the best one).
    pub adapter: Option<String>,
    /// The GPU (overrides `adapter`; neither: the process-wide best adapter).
    pub gpu: Option<GpuContext>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            scale: 1.0,
            gpu_budget: Duration::from_secs(60),
            backends: Backends::Both,
            adapter: None,
            gpu: None,
        }
    }
}

impl DemoOptions {
    run_options!();

    /// Sets `gpu_budget`.
    pub fn gpu_budget(mut self, v: Duration) -> Self {
        self.gpu_budget = v;
        self
    }
}

/// One line of the demo's table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemoRow {
    /// `linear regression`, …
    pub model: String,
    /// `cpu` or `gpu`.
    pub backend: String,
    /// `Report::backend`: `cpu`, or the GPU adapter.
    pub adapter: String,
    /// Rows trained on.
    pub rows: usize,
    /// Epochs run.
    pub epochs: usize,
    /// The last epoch's mean loss.
    pub final_loss: f64,
    /// R² or accuracy on the first [`EVAL_ROWS`](super::EVAL_ROWS) rows.
    pub quality: Quality,
    /// Wall seconds of the fit.
    pub wall_s: f64,
    /// Rows processed per second.
    pub samples_per_sec: f64,
    /// GPU rows: samples/s ÷ the CPU's on the same rows.
    pub speedup: Option<f64>,
    /// GPU rows: relative difference of the final loss from a CPU fit on the same rows.
    pub loss_rel_diff: Option<f64>,
    /// GPU rows: whether that difference is within [`LOSS_RTOL`](super::LOSS_RTOL).
    pub agrees: Option<bool>,
}

/// The closed-form check on the linear data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormalCheck {
    /// `Cholesky` or the SVD fallback.
    pub method: String,
    /// Condition number of XᵀX.
    pub condition: f64,
    /// Seconds to solve.
    pub seconds: f64,
    /// Largest |w_GD − w_normal| over the weights of the gradient-descent fit.
    pub max_gap: f64,
}

/// What [`demo`] printed, as data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemoReport {
    /// The table's rows: per model, the CPU fit then the GPU fit.
    pub rows: Vec<DemoRow>,
    /// The GPU adapter, when one ran.
    pub gpu_adapter: Option<String>,
    /// Why the GPU did not run, when it was asked for.
    pub gpu_error: Option<String>,
    /// The line saying the GPU fits were scaled down, when they were.
    pub gpu_scaled: Option<String>,
    /// The normal equations against gradient descent on the linear data.
    pub normal: Option<NormalCheck>,
    /// Seconds for the whole demo, data generation included.
    pub total_s: f64,
}

impl DemoReport {
    /// Whether every GPU fit that was compared agrees with its CPU twin.
    pub fn all_agree(&self) -> bool {
        self.rows.iter().all(|r| r.agrees != Some(false))
    }
}

/// One model of the demo.
struct Spec {
    name: &'static str,
    kind: Recipe,
    data: Synthetic,
    config: TrainConfig,
}

fn specs(scale: f64) -> Vec<Spec> {
    let rows = |n: f64| ((n * scale).round() as usize).max(super::MIN_ROWS);
    let cfg = |lr: f64, batch: usize, epochs: usize, seed: u64| {
        TrainConfig::sgd()
            .batch_size(batch)
            .learning_rate(lr)
            .epochs(epochs)
            .seed(seed)
    };
    vec![
        Spec {
            name: "linear regression",
            kind: Recipe::linear(Kind::Linear),
            data: Synthetic::linear(rows(1e6), 64).seed(1),
            config: cfg(0.05, 256, 5, 11),
        },
        Spec {
            name: "logistic regression",
            kind: Recipe::linear(Kind::Logistic),
            data: Synthetic::logistic(rows(1e6), 64).seed(2),
            config: cfg(0.1, 256, 5, 12),
        },
        Spec {
            name: "softmax regression",
            kind: Recipe::linear(Kind::Softmax),
            data: Synthetic::blobs(rows(2e5), 64, 10).seed(3),
            config: cfg(0.1, 256, 5, 13),
        },
        Spec {
            name: "MLP 64-128-10 sigmoid",
            kind: Recipe::mlp(128, Activation::Sigmoid),
            data: Synthetic::teacher(rows(2e5), 64, 10)
                .seed(4)
                .deterministic(),
            config: cfg(0.5, 128, 3, 14),
        },
    ]
}

/// The demo that `gradflow` runs with no arguments.
///
/// Makes seeded synthetic data (10⁶ × 64 rows for linear and logistic regression, 2·10⁵
/// for softmax regression on 10 Gaussian blobs and for a 64-128-10 sigmoid MLP on a
/// teacher network's labels, times `scale`), trains the four models on the CPU and on
/// the GPU (the best adapter), checks that each GPU fit ends at the CPU's loss on the
/// same rows, prints a table (model, backend, adapter, rows, epochs, final loss, R² or
/// accuracy, wall time, samples/s, GPU speed-up, agreement) to `out`, then solves the
/// normal equations on the linear data and compares them with gradient descent.
///
/// A slow adapter (a software one such as lavapipe) would need many minutes at full
/// size: a probe fit of [`PROBE_STEPS`] steps per model measures it, and the GPU fits
/// then run on as many rows as fit `gpu_budget`, compared with a CPU fit on the same
/// rows; one line says so. Without an adapter the GPU rows are left out and the reason
/// is printed.
///
/// ```
/// use gradflow::bench::{demo, Backends, DemoOptions};
/// let opts = DemoOptions::default().scale(0.002).backends(Backends::Cpu);
/// let mut out = Vec::new();
/// let report = demo(&mut out, opts)?;
/// let text = String::from_utf8(out).unwrap();
/// assert!(text.contains("MLP 64-128-10 sigmoid") && report.rows.len() == 4);
/// # Ok::<(), gradflow::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidParameter`] for a scale that is not finite and > 0; [`Error::Io`] when
/// `out` cannot be written; a fit's error (the CPU's, or a GPU error other than a missing
/// adapter).
pub fn demo(out: &mut dyn Write, opts: DemoOptions) -> Result<DemoReport> {
    if !(opts.scale.is_finite() && opts.scale > 0.0) {
        return Err(Error::param("scale", opts.scale, "must be finite and > 0"));
    }
    let started = Instant::now();
    let mut w = Out(out);
    let gpu = if opts.backends.gpu() {
        Some(opts.context())
    } else {
        None
    };
    let ctx = gpu.as_ref().and_then(|g| g.as_ref().ok());
    let gpu_adapter = ctx.map(|c| format!("{} ({:?})", c.info().name, c.info().backend));
    let gpu_error = match &gpu {
        Some(Err(e)) => Some(e.to_string()),
        _ => None,
    };
    w.line(&format!(
        "gradflow demo: four models on seeded synthetic data, {}\n",
        match (&gpu_adapter, opts.backends.cpu()) {
            (Some(a), true) => format!("GPU ({a}) against the CPU reference kernels"),
            (Some(a), false) => format!("GPU ({a}) only"),
            (None, _) => "CPU reference kernels".into(),
        }
    ))?;
    if let Some(e) = &gpu_error {
        w.line(&format!("no GPU: {e}\n"))?;
    }

    let specs = specs(opts.scale);
    // Probe the adapter on every model first, so that one line can say how the GPU
    // fits are scaled before any of them runs.
    let mut plans = Vec::new();
    let mut datasets = Vec::new();
    for s in &specs {
        w.line(&format!(
            "making {} data: {} × {}",
            s.name,
            s.data.n(),
            s.data.p()
        ))?;
        let data = s.data.dataset()?;
        if let Some(ctx) = ctx {
            plans.push(Some(probe(s, &data, ctx)?));
        } else {
            plans.push(None);
        }
        datasets.push(data);
    }
    let gpu_scaled = scale_plans(&specs, &mut plans, opts.gpu_budget, gpu_adapter.as_deref());
    if let Some(line) = &gpu_scaled {
        w.line(line)?;
    }

    let mut rows = Vec::new();
    let mut linear_weights: Option<Vec<f32>> = None;
    for ((s, data), plan) in specs.iter().zip(&datasets).zip(&plans) {
        let cpu_trainer = Trainer::new(s.config.clone())?;
        let cpu = if opts.backends.cpu() {
            let f = fit::fit(s.kind, data, &cpu_trainer)?;
            w.progress(s.name, "cpu", data.n(), &f)?;
            rows.push(row(s.name, "cpu", data.n(), &f));
            Some(f)
        } else {
            None
        };
        if s.kind.kind == Kind::Linear {
            linear_weights = cpu.as_ref().and_then(|f| f.params.first().cloned());
        }
        let (Some(ctx), Some(plan)) = (ctx, plan) else {
            continue;
        };
        let gpu_data = prefix(data, plan.rows)?;
        let trainer = Trainer::new(s.config.clone().backend(Backend::Gpu))?.with_gpu(ctx.clone());
        let g = fit::fit(s.kind, &gpu_data, &trainer)?;
        w.progress(s.name, "gpu", gpu_data.n(), &g)?;
        if s.kind.kind == Kind::Linear && linear_weights.is_none() && plan.rows == data.n() {
            linear_weights = g.params.first().cloned();
        }
        let mut gpu_row = row(s.name, "gpu", gpu_data.n(), &g);
        // The CPU twin: the CPU fit itself at full size, else a CPU fit on the same rows.
        let twin = match &cpu {
            Some(c) if plan.rows == data.n() => Some(c.clone()),
            Some(_) => {
                let f = fit::fit(s.kind, &gpu_data, &cpu_trainer)?;
                w.progress(s.name, "cpu (GPU's rows)", gpu_data.n(), &f)?;
                Some(f)
            }
            None => None,
        };
        if let Some(t) = twin {
            let (gl, cl) = (g.report.final_loss(), t.report.final_loss());
            gpu_row.speedup = Some(g.report.samples_per_sec() / t.report.samples_per_sec());
            gpu_row.loss_rel_diff = Some(loss_rel_diff(gl, cl));
            gpu_row.agrees = Some(losses_agree(gl, cl));
        }
        rows.push(gpu_row);
    }

    w.line("")?;
    table(&mut w, &rows)?;
    if let Some(line) = &gpu_scaled {
        w.line(&format!("\n{line}"))?;
    }
    w.line(&format!(
        "Quality is scored on the first {} training rows; wall time is the fit alone (data \
         generation excluded). Speed-up and agreement compare each GPU fit with a CPU fit on \
         the same rows, batches and seed (final losses within {:.0e} relative).",
        super::EVAL_ROWS,
        super::LOSS_RTOL
    ))?;

    // The closed form on the same linear data: gradient descent should have found it.
    let normal = match linear_weights {
        Some(weights) => {
            let t = Instant::now();
            let sol = normal_eq::solve(&datasets[0], Solve::Auto)?;
            let seconds = t.elapsed().as_secs_f64();
            let max_gap = weights
                .iter()
                .zip(&sol.weights)
                .map(|(a, b)| (f64::from(*a) - b).abs())
                .fold(0.0, f64::max);
            let check = NormalCheck {
                method: match sol.method {
                    Method::Cholesky => "Cholesky".into(),
                    Method::MinNormLeastSquares { rank } => format!("SVD, rank {rank}"),
                },
                condition: sol.condition,
                seconds,
                max_gap,
            };
            w.line(&format!(
                "\nnormal equations on the linear data: {}, cond(XᵀX) = {:.2e}, {:.2} s; \
                 max |w_GD − w_normal| = {:.2e}",
                check.method, check.condition, check.seconds, check.max_gap
            ))?;
            Some(check)
        }
        None => None,
    };
    let report = DemoReport {
        rows,
        gpu_adapter,
        gpu_error,
        gpu_scaled,
        normal,
        total_s: started.elapsed().as_secs_f64(),
    };
    let verdict = if report.all_agree() {
        "every GPU fit agrees with the CPU"
    } else {
        "GPU AND CPU DISAGREE (see the table)"
    };
    w.line(&format!(
        "total time {:.1} s (data generation included); {verdict}",
        report.total_s
    ))?;
    Ok(report)
}

/// How a model's GPU fit runs: on how many rows, and the probe's speed.
#[derive(Debug, Clone, Copy)]
struct Plan {
    rows: usize,
    /// Seconds per step measured by the probe.
    step_s: f64,
    /// Estimated seconds of the GPU fit on all rows.
    full_s: f64,
}

/// A warm-up fit (compiles the pipelines) and a timed probe of [`PROBE_STEPS`] steps.
fn probe(s: &Spec, data: &Dataset, ctx: &GpuContext) -> Result<Plan> {
    let batch = s.config.batch_size;
    let trainer =
        Trainer::new(s.config.clone().epochs(1).backend(Backend::Gpu))?.with_gpu(ctx.clone());
    fit::fit(s.kind, &*prefix(data, batch)?, &trainer)?;
    let probe = fit::fit(s.kind, &*prefix(data, PROBE_STEPS * batch)?, &trainer)?;
    let step_s = probe.wall.as_secs_f64() / probe.report.steps.max(1) as f64;
    let steps = data.n().div_ceil(batch) * s.config.epochs.unwrap_or(1);
    Ok(Plan {
        rows: data.n(),
        step_s,
        full_s: step_s * steps as f64,
    })
}

/// Shrinks the GPU fits' rows so that together they fit `budget` (each model gets an
/// equal share); returns the line that says so, when any was shrunk.
fn scale_plans(
    specs: &[Spec],
    plans: &mut [Option<Plan>],
    budget: Duration,
    adapter: Option<&str>,
) -> Option<String> {
    let count = plans.iter().flatten().count().max(1);
    let share = budget.as_secs_f64() / count as f64;
    let full_total: f64 = plans.iter().flatten().map(|p| p.full_s).sum();
    let mut shrunk = Vec::new();
    for (s, plan) in specs.iter().zip(plans.iter_mut()) {
        let Some(p) = plan else { continue };
        if p.full_s <= share {
            continue;
        }
        let batch = s.config.batch_size;
        let steps = (share / p.step_s / s.config.epochs.unwrap_or(1) as f64).floor() as usize;
        let rows = (steps * batch).clamp(4 * batch, p.rows);
        // Round to a readable count.
        let rows = if rows > 10_000 {
            rows / 1000 * 1000
        } else {
            rows
        };
        if rows < p.rows {
            p.rows = rows;
            shrunk.push(format!("{} {}", s.name, thousands(rows)));
        }
    }
    if shrunk.is_empty() {
        return None;
    }
    Some(format!(
        "GPU scaled down: a {PROBE_STEPS}-step probe shows {} would take {:.0} s for the four \
         GPU fits at full size, so they run on fewer rows (same epochs) to stay within {:.0} s: \
         {}; each is compared with a CPU fit on the same rows.",
        adapter.unwrap_or("the adapter"),
        full_total,
        budget.as_secs_f64(),
        shrunk.join(", ")
    ))
}

fn row(model: &str, backend: &str, rows: usize, f: &Fit) -> DemoRow {
    DemoRow {
        model: model.into(),
        backend: backend.into(),
        adapter: f.report.backend.clone(),
        rows,
        epochs: f.report.epoch_losses.len(),
        final_loss: f.report.final_loss(),
        quality: f.quality,
        wall_s: f.wall.as_secs_f64(),
        samples_per_sec: f.report.samples as f64 / f.wall.as_secs_f64().max(1e-9),
        speedup: None,
        loss_rel_diff: None,
        agrees: None,
    }
}

fn table(w: &mut Out<'_>, rows: &[DemoRow]) -> Result<()> {
    // (header, right-aligned) per column; widths follow the longest cell.
    let head = [
        ("model", false),
        ("backend", false),
        ("adapter", false),
        ("rows", true),
        ("epochs", true),
        ("final loss", true),
        ("accuracy or R²", false),
        ("time s", true),
        ("samples/s", true),
        ("GPU speed-up", true),
        ("GPU = CPU?", false),
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.model.clone(),
                r.backend.clone(),
                r.adapter.clone(),
                thousands(r.rows),
                r.epochs.to_string(),
                format!("{:.4e}", r.final_loss),
                r.quality.to_string(),
                format!("{:.2}", r.wall_s),
                thousands(r.samples_per_sec.round() as usize),
                r.speedup.map_or(String::new(), |s| format!("{s:.3}×")),
                match (r.agrees, r.loss_rel_diff) {
                    (Some(true), Some(d)) => format!("yes ({d:.1e})"),
                    (Some(false), Some(d)) => format!("NO ({d:.1e})"),
                    _ => String::new(),
                },
            ]
        })
        .collect();
    let width = |i: usize| {
        cells
            .iter()
            .map(|c| c[i].chars().count())
            .chain([head[i].0.chars().count()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..head.len()).map(width).collect();
    let fmt_row = |values: Vec<&str>| {
        let mut line = String::from("|");
        for ((v, &(_, right)), &wd) in values.iter().zip(&head).zip(&widths) {
            let pad = " ".repeat(wd - v.chars().count());
            if right {
                line += &format!(" {pad}{v} |");
            } else {
                line += &format!(" {v}{pad} |");
            }
        }
        line
    };
    w.line(&fmt_row(head.iter().map(|h| h.0).collect()))?;
    let mut rule = String::from("|");
    for (&(_, right), &wd) in head.iter().zip(&widths) {
        rule += &"-".repeat(wd + 1);
        rule += if right { ":|" } else { "-|" };
    }
    w.line(&rule)?;
    for c in &cells {
        w.line(&fmt_row(c.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

/// `1000000` → `1,000,000`.
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The demo's output, with I/O errors as [`Error::Io`].
struct Out<'a>(&'a mut dyn Write);

impl Out<'_> {
    fn line(&mut self, s: &str) -> Result<()> {
        writeln!(self.0, "{s}")
            .and_then(|()| self.0.flush())
            .map_err(|e| Error::Io {
                path: "demo output".into(),
                message: e.to_string(),
            })
    }

    fn progress(&mut self, model: &str, backend: &str, rows: usize, f: &Fit) -> Result<()> {
        self.line(&format!(
            "  {model}, {backend}: {} rows, {} epochs, {:.2} s, final loss {:.4e}",
            thousands(rows),
            f.report.epoch_losses.len(),
            f.wall.as_secs_f64(),
            f.report.final_loss()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(200_000), "200,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1234), "1,234");
    }
}
