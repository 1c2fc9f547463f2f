//! The bench engine: every selected workload on every selected backend, timed.

use std::io::Write;
use std::time::Duration;

use super::fit::{self, Fit, Metric, Quality, loss_rel_diff, losses_agree, prefix};
use super::report::{BenchReport, BenchRow, Measured, same_point};
use super::workload::{DataKind, Workload};
use super::{BenchOptions, QUICK_SCALE};
use crate::data::{Dataset, Targets};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::metrics::{mse, r2};
use crate::model::LinearRegression;
use crate::model::normal_eq::{Method, Precision, Solve};
use crate::{Backend, Trainer};

/// Batch sizes of the sweep besides full batch.
pub const SWEEP_BATCHES: [usize; 4] = [1, 32, 256, 4096];

/// Most steps one sweep point runs (quick mode: [`SWEEP_STEPS_QUICK`]): batch 1 over 10⁶
/// rows would be 10⁶ steps.
pub const SWEEP_STEPS: usize = 2000;

/// Most steps of a sweep point in quick mode.
pub const SWEEP_STEPS_QUICK: usize = 100;

/// Most iterations of a full-batch sweep point.
pub const SWEEP_FULL_ITERS: usize = 5;

/// Fewest rows of a scaled workload.
pub const MIN_ROWS: usize = 512;

/// A point is timed again (up to `repeats` runs, median reported) only when one run
/// takes less than this.
pub const REPEAT_UNDER: Duration = Duration::from_secs(5);

/// One point to measure.
#[derive(Debug, Clone, Copy)]
struct Point {
    workload: Workload,
    sweep: bool,
    batch: usize,
    full_batch: bool,
    rows: usize,
    epochs: usize,
}

/// Runs the selected workloads on the selected backends and reports every point.
///
/// Progress goes to `log`, one line per point (write errors there are ignored: a closed
/// log must not end a bench). Each fit is timed with the wall clock around
/// [`Trainer::fit`] after its data were generated; the GPU's pipelines are compiled by an
/// untimed warm-up fit per workload first. Without a GPU adapter, the GPU rows carry the
/// reason ([`Error::NoAdapter`]'s message) and the CPU rows still run; a fit that fails
/// on one backend (a device limit, a divergence) is reported in its row, not raised.
///
/// ```
/// use gradflow::bench::{self, BenchOptions, Backends, Workload};
/// let opts = BenchOptions::quick()
///     .backends(Backends::Cpu)
///     .workloads(&[Workload::W1])
///     .scale(0.1); // 10⁶ × 0.01 × 0.1 = 1,000 rows
/// let report = bench::run(&opts, &mut std::io::sink())?;
/// let m = report.rows[0].measured.as_ref().expect("the CPU always runs");
/// assert!(m.samples_per_sec > 0.0 && m.final_loss.is_finite());
/// assert!(report.markdown().contains("| W1 | cpu |"));
/// # Ok::<(), gradflow::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidParameter`] for invalid options; data generation errors. Failures
/// of a fit are reported in its row instead.
pub fn run(opts: &BenchOptions, log: &mut dyn Write) -> Result<BenchReport> {
    opts.validate()?;
    let scale = opts.effective_scale();
    let selected: Vec<Workload> = Workload::ALL
        .into_iter()
        .filter(|w| opts.workloads.is_empty() || opts.workloads.contains(w))
        .collect();
    let gpu: Option<Result<GpuContext>> = opts.backends.gpu().then(|| opts.context());
    let mut report = BenchReport {
        quick: opts.quick,
        sweep: opts.sweep,
        scale,
        cpu_threads: std::thread::available_parallelism().map_or(1, usize::from),
        gpu_adapter: match &gpu {
            Some(Ok(ctx)) => Some(format!("{} ({:?})", ctx.info().name, ctx.info().backend)),
            _ => None,
        },
        gpu_error: match &gpu {
            Some(Err(e)) => Some(e.to_string()),
            _ => None,
        },
        rows: Vec::new(),
        crossovers: Vec::new(),
        notes: Vec::new(),
    };

    // W1, W4 and W5 share a dataset: run them back to back, then sort the rows.
    let mut order = selected.clone();
    order.sort_by_key(|w| (w.data_kind(), *w));
    let mut cache: Option<(DataKind, Dataset)> = None;
    for w in order {
        let n = scaled_rows(w, scale);
        let data = match cache.take() {
            Some((kind, data)) if kind == w.data_kind() && data.n() == n => data,
            _ => {
                let _ = writeln!(log, "{w}: generating {n} × {} rows", w.p());
                w.data_kind().make(n)?
            }
        };
        let ctx: Option<Result<&GpuContext, String>> =
            gpu.as_ref().map(|g| g.as_ref().map_err(Error::to_string));
        if let Some(Ok(ctx)) = &ctx {
            warm_up(w, &data, ctx)?;
        }
        for point in points(w, n, opts) {
            let rows = prefix(&data, point.rows)?;
            let mut measured = Vec::new();
            if opts.backends.cpu() {
                measured.push(measure(point, &rows, None, opts.repeats, log));
            }
            if let Some(ctx) = &ctx {
                let row = match ctx {
                    Ok(ctx) if w.is_iterative() => {
                        measure(point, &rows, Some(*ctx), opts.repeats, log)
                    }
                    Ok(_) => failed(
                        point,
                        "gpu",
                        "no GPU implementation: the normal equations are solved on the CPU".into(),
                    ),
                    Err(e) => failed(point, "gpu", e.clone()),
                };
                measured.push(row);
            }
            compare(&mut measured);
            report.rows.extend(measured);
        }
        cache = Some((w.data_kind(), data));
    }
    report.rows.sort_by_key(|r| (r.workload, r.sweep));
    report.update_crossovers();
    report.notes = notes(opts, &report, scale);
    Ok(report)
}

/// The workload's rows after scaling, at least [`MIN_ROWS`].
pub(crate) fn scaled_rows(w: Workload, scale: f64) -> usize {
    ((w.rows() as f64 * scale).round() as usize).max(MIN_ROWS)
}

/// The workload's own point, then (with `sweep`) its sweep points.
fn points(w: Workload, n: usize, opts: &BenchOptions) -> Vec<Point> {
    let own = Point {
        workload: w,
        sweep: false,
        batch: w.batch().unwrap_or(n).min(n),
        full_batch: w.batch().is_none_or(|b| b >= n),
        rows: n,
        epochs: w.epochs(),
    };
    let mut out = vec![own];
    if !(opts.sweep && w.sweeps()) {
        return out;
    }
    let cap = if opts.quick {
        SWEEP_STEPS_QUICK
    } else {
        SWEEP_STEPS
    };
    for b in SWEEP_BATCHES.into_iter().filter(|&b| b < n) {
        let steps = n.div_ceil(b).min(cap);
        out.push(Point {
            workload: w,
            sweep: true,
            batch: b,
            full_batch: false,
            rows: (steps * b).min(n),
            epochs: 1,
        });
    }
    out.push(Point {
        workload: w,
        sweep: true,
        batch: n,
        full_batch: true,
        rows: n,
        epochs: w.epochs().min(SWEEP_FULL_ITERS),
    });
    out
}

/// An untimed fit that compiles the GPU pipelines of `w`'s model.
fn warm_up(w: Workload, data: &Dataset, ctx: &GpuContext) -> Result<()> {
    if !w.is_iterative() {
        return Ok(());
    }
    let batch = w.batch().unwrap_or(256).min(data.n());
    let small = prefix(data, (2 * batch).min(data.n()))?;
    let trainer = Trainer::new(w.config(batch, 1).backend(Backend::Gpu))?.with_gpu(ctx.clone());
    // A failure here (a device limit) shows again, in its row, when the point runs.
    let _ = fit::fit(w.kind(), &small, &trainer);
    Ok(())
}

/// Times one point on the CPU (`ctx` None) or the GPU: a fit, repeated while cheap.
fn measure(
    point: Point,
    data: &Dataset,
    ctx: Option<&GpuContext>,
    repeats: usize,
    log: &mut dyn Write,
) -> BenchRow {
    let backend = if ctx.is_some() { "gpu" } else { "cpu" };
    let outcome = if point.workload.is_iterative() {
        time_fits(point, data, ctx, repeats)
    } else {
        time_normal_eq(data, repeats)
    };
    match outcome {
        Ok(m) => {
            let _ = writeln!(
                log,
                "{} {backend:<3} batch {:>7} ({} rows × {} epochs{}): {} runs, median {:.3} s, {:.0} samples/s, loss {:.6e}",
                point.workload,
                point.batch,
                point.rows,
                point.epochs,
                if point.sweep { ", sweep" } else { "" },
                m.runs,
                m.wall_s,
                m.samples_per_sec,
                m.final_loss
            );
            BenchRow {
                measured: Some(m),
                ..row(point, backend)
            }
        }
        Err(e) => {
            let _ = writeln!(
                log,
                "{} {backend} batch {}: {e}",
                point.workload, point.batch
            );
            failed(point, backend, e.to_string())
        }
    }
}

/// A row without a measurement, saying why.
fn failed(point: Point, backend: &str, why: String) -> BenchRow {
    BenchRow {
        error: Some(why),
        ..row(point, backend)
    }
}

/// The row of `point` on `backend`, nothing measured yet.
fn row(point: Point, backend: &str) -> BenchRow {
    BenchRow {
        workload: point.workload,
        backend: backend.into(),
        sweep: point.sweep,
        batch: point.batch,
        full_batch: point.full_batch,
        rows: point.rows,
        epochs: point.epochs,
        measured: None,
        error: None,
        gpu_cpu_ratio: None,
        loss_rel_diff: None,
        agrees: None,
    }
}

fn time_fits(
    point: Point,
    data: &Dataset,
    ctx: Option<&GpuContext>,
    repeats: usize,
) -> Result<Measured> {
    let w = point.workload;
    let mut config = w.config(point.batch, point.epochs);
    // Linear scaling rule below the workload's batch: W1's lr 0.05 at batch 1 would be
    // unstable (lr · 2‖x‖² ≈ 6 > 2) and the point would end in a divergence, not a speed.
    if let Some(b0) = w.batch().filter(|&b0| point.sweep && point.batch < b0) {
        config.learning_rate = config
            .learning_rate
            .map(|lr| lr * point.batch as f64 / b0 as f64);
    }
    let mut trainer = Trainer::new(config.clone())?;
    if let Some(ctx) = ctx {
        config = config.backend(Backend::Gpu);
        trainer = Trainer::new(config)?.with_gpu(ctx.clone());
    }
    let first: Fit = fit::fit(w.kind(), data, &trainer)?;
    let mut walls = vec![first.wall];
    while walls.len() < repeats && first.wall < REPEAT_UNDER {
        walls.push(fit::fit(w.kind(), data, &trainer)?.wall);
    }
    let wall = median(&mut walls).as_secs_f64().max(1e-9);
    let r = &first.report;
    // A GPU fit's launch overhead: dispatches per step, submissions per epoch.
    // and, on either backend, the fit's set-up (before its first step) within the wall.
    let setup = r.setup.as_secs_f64();
    let mode = if r.dispatches > 0 {
        format!(
            "{}, {:.3} dispatches/step, {:.1} submissions/epoch, set-up {setup:.3} s",
            r.mode,
            r.dispatches as f64 / r.steps.max(1) as f64,
            r.submissions as f64 / r.epoch_losses.len().max(1) as f64
        )
    } else {
        format!("{}, set-up {setup:.3} s", r.mode)
    };
    Ok(Measured {
        adapter: r.backend.clone(),
        mode,
        steps: r.steps,
        runs: walls.len(),
        wall_s: wall,
        samples_per_sec: r.samples as f64 / wall,
        ms_per_step: wall * 1e3 / r.steps.max(1) as f64,
        final_loss: r.final_loss(),
        quality: first.quality,
    })
}

/// W5: the normal equations, timed around the solve; the loss is the solution's MSE on
/// every row. `XᵀX` is formed as the peers' float32 solve forms it
/// ([`Precision::Fast`]); the exact `f64` form (the library's default) is timed too, and
/// its median shown in the mode column.
fn time_normal_eq(data: &Dataset, repeats: usize) -> Result<Measured> {
    let time = |precision: Precision| -> Result<(Vec<Duration>, Method, LinearRegression)> {
        let mut walls = Vec::new();
        let mut model = LinearRegression::new();
        let mut method = Method::Cholesky;
        while walls.is_empty() || (walls.len() < repeats && walls[0] < REPEAT_UNDER) {
            let t = std::time::Instant::now();
            method = model.fit_normal_with(data, Solve::Auto, precision)?.method;
            walls.push(t.elapsed());
        }
        Ok((walls, method, model))
    };
    let (mut exact, ..) = time(Precision::Exact)?;
    let (mut walls, method, model) = time(Precision::Fast)?;
    let Targets::Real(y) = data.targets() else {
        return Err(Error::TargetMismatch {
            model: "normal equations",
            expected: "real-valued targets".into(),
            got: data.targets().describe(),
        });
    };
    let pred = model.predict(data.features())?;
    let eval = data.n().min(fit::EVAL_ROWS);
    let wall = median(&mut walls).as_secs_f64().max(1e-9);
    let exact = median(&mut exact).as_secs_f64();
    Ok(Measured {
        adapter: "cpu".into(),
        mode: match method {
            Method::Cholesky => format!("Cholesky, f32 XᵀX (exact f64 XᵀX: {:.1} ms)", exact * 1e3),
            Method::MinNormLeastSquares { rank } => format!("SVD, rank {rank}"),
        },
        steps: 1,
        runs: walls.len(),
        wall_s: wall,
        samples_per_sec: data.n() as f64 / wall,
        ms_per_step: wall * 1e3,
        final_loss: mse(&pred, y)?,
        quality: Quality {
            metric: Metric::R2,
            value: r2(&pred[..eval], &y[..eval])?,
        },
    })
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2
    }
}

/// Fills the GPU rows' ratio and loss agreement from the CPU row of the same point.
fn compare(rows: &mut [BenchRow]) {
    let cpu = rows
        .iter()
        .find(|r| r.backend == "cpu")
        .and_then(|r| r.measured.clone().map(|m| (r.clone(), m)));
    let Some((cpu_row, c)) = cpu else { return };
    for g in rows.iter_mut().filter(|r| r.backend == "gpu") {
        let Some(m) = &g.measured else { continue };
        if !same_point(&cpu_row, g) {
            continue;
        }
        g.gpu_cpu_ratio = Some(m.samples_per_sec / c.samples_per_sec);
        g.loss_rel_diff = Some(loss_rel_diff(m.final_loss, c.final_loss));
        g.agrees = Some(losses_agree(m.final_loss, c.final_loss));
    }
}

fn notes(opts: &BenchOptions, report: &BenchReport, scale: f64) -> Vec<String> {
    let mut notes = vec![format!(
        "Times: wall clock around Trainer::fit (session set-up and the upload to the device \
         included; data generation excluded); the GPU's pipelines were compiled by an untimed \
         warm-up fit. Each time is the median of up to {} runs (a point is repeated only while \
         one run takes under {} s). Quality is scored on the first {} rows. {} CPU threads; \
         the machine may be shared: timings are noisy.",
        opts.repeats,
        REPEAT_UNDER.as_secs(),
        fit::EVAL_ROWS,
        report.cpu_threads
    )];
    if opts.quick {
        notes.push(format!(
            "Quick mode: rows × {QUICK_SCALE} (at least {MIN_ROWS}); for smoke tests, not for \
             comparison with full-size numbers."
        ));
    }
    if opts.scale != 1.0 {
        notes.push(format!(
            "Rows scaled by {scale} in all (W1/W2/W4/W5 on {} rows, W3 on {}).",
            scaled_rows(Workload::W1, scale),
            scaled_rows(Workload::W3, scale)
        ));
    }
    if opts.sweep {
        let cap = if opts.quick {
            SWEEP_STEPS_QUICK
        } else {
            SWEEP_STEPS
        };
        notes.push(format!(
            "Sweep (W1–W3): batch sizes {} and full; each point is at most one pass over the \
             workload's rows and at most {cap} steps, so small batches run on fewer rows (batch \
             1: {cap} rows, 1 epoch); full batch runs min(epochs, {SWEEP_FULL_ITERS}) \
             iterations; batch sizes ≥ n are left out. The rows × epochs column gives each \
             point's size. Below the workload's batch size the learning rate is scaled by \
             batch / 256 (linear scaling rule), so that batch 1 stays stable.",
            SWEEP_BATCHES
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(e) = &report.gpu_error {
        notes.push(format!("No GPU ran: {e}"));
    }
    if opts.workloads.is_empty() || opts.workloads.contains(&Workload::W5) {
        notes.push("W5 (normal equations) runs on the CPU only.".into());
    }
    let bad = report.disagreements();
    if !bad.is_empty() {
        let which: Vec<String> = bad
            .iter()
            .map(|r| format!("{} batch {}", r.workload, r.batch_label()))
            .collect();
        notes.push(format!(
            "GPU and CPU final losses DISAGREE beyond {} relative on: {}.",
            fit::LOSS_RTOL,
            which.join(", ")
        ));
    }
    notes
}
