//! What a bench run measured: rows, the GPU/CPU crossover, markdown and JSON.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::fit::{LOSS_RTOL, Quality};
use super::workload::Workload;
use crate::error::{Error, Result};

/// One measured point: a workload on one backend at one batch size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchRow {
    /// Which workload.
    pub workload: Workload,
    /// `cpu` or `gpu`.
    pub backend: String,
    /// A point of the batch-size sweep (`false`: the workload as specified).
    pub sweep: bool,
    /// Rows per step (n for full batch).
    pub batch: usize,
    /// Whether every step reads all rows (full-batch GD, or the closed form).
    pub full_batch: bool,
    /// Rows of the dataset.
    pub rows: usize,
    /// Epochs (full batch: iterations).
    pub epochs: usize,
    /// The measurement, or `None` when this backend could not run it (see `error`).
    pub measured: Option<Measured>,
    /// Why there is no measurement (no GPU adapter, a device limit, …).
    pub error: Option<String>,
    /// GPU rows: GPU samples/s ÷ CPU samples/s on the same point.
    pub gpu_cpu_ratio: Option<f64>,
    /// GPU rows: |loss_GPU − loss_CPU| / max(|loss_GPU|, |loss_CPU|) on the same point.
    pub loss_rel_diff: Option<f64>,
    /// GPU rows: whether the final losses agree within [`LOSS_RTOL`](super::LOSS_RTOL).
    pub agrees: Option<bool>,
}

/// The numbers of a point that ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// `Report::backend`: `cpu`, or the GPU adapter (`gpu: llvmpipe … (Vulkan)`).
    pub adapter: String,
    /// `Report::mode`: `cpu`, `resident`, `streaming` (`closed form` for W5).
    pub mode: String,
    /// Updates per run.
    pub steps: u64,
    /// Timed runs; the times below are their median.
    pub runs: usize,
    /// Median wall seconds around `Trainer::fit` (data generation excluded).
    pub wall_s: f64,
    /// Rows processed per second (rows × epochs / wall).
    pub samples_per_sec: f64,
    /// Milliseconds per update.
    pub ms_per_step: f64,
    /// The last epoch's mean loss (W5: the MSE of the solution).
    pub final_loss: f64,
    /// R² or accuracy on the first [`EVAL_ROWS`](super::EVAL_ROWS) rows.
    pub quality: Quality,
}

/// Per workload, the smallest batch size at which the GPU's samples/s beats the CPU's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crossover {
    /// Which workload.
    pub workload: Workload,
    /// The batch size (rows per step), or `None` when the GPU never wins (or did not run).
    pub batch: Option<usize>,
    /// Whether that batch is the full dataset.
    pub full_batch: bool,
    /// The batch sizes compared (where both backends ran).
    pub compared: Vec<usize>,
}

/// The result of [`run`](super::run): every point, the crossovers, and notes on what was
/// scaled or could not run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// `quick` mode (rows scaled down for CI).
    pub quick: bool,
    /// Whether the batch-size sweep ran.
    pub sweep: bool,
    /// The row multiplier in effect (quick mode's included).
    pub scale: f64,
    /// Threads the CPU backend could use.
    pub cpu_threads: usize,
    /// The GPU adapter, when one was opened.
    pub gpu_adapter: Option<String>,
    /// Why no GPU ran, when it was asked for and could not.
    pub gpu_error: Option<String>,
    /// Every measured (or failed) point, in workload order.
    pub rows: Vec<BenchRow>,
    /// Per workload that ran on both backends.
    pub crossovers: Vec<Crossover>,
    /// What the reader must know to read the numbers (scaling, caps, failures).
    pub notes: Vec<String>,
}

/// The smallest batch size from which on the GPU is faster: it beats the CPU there *and
/// at every larger batch measured*, from `(batch, cpu samples/s, gpu samples/s)` points
/// in any order; `None` when no batch has that. One noisy point where the GPU happens to
/// win, with the CPU ahead again at larger batches, is not a crossover.
///
/// ```
/// use gradflow::bench::crossover_batch;
/// let points = [(4096, 2.0e6, 3.0e6), (1, 1.0e6, 1.0e3), (256, 2.4e6, 0.1e6)];
/// assert_eq!(crossover_batch(&points), Some(4096));
/// assert_eq!(crossover_batch(&[(256, 2.4e6, 0.1e6)]), None);
/// // A GPU win at 256 that larger batches contradict is noise.
/// let noisy = [(32, 2.0e6, 1.0e6), (256, 2.0e6, 2.1e6), (4096, 3.0e6, 2.5e6)];
/// assert_eq!(crossover_batch(&noisy), None);
/// ```
pub fn crossover_batch(points: &[(usize, f64, f64)]) -> Option<usize> {
    let mut sorted = points.to_vec();
    sorted.sort_by_key(|p| p.0);
    // Walking down from the largest batch: the run of GPU wins at the top.
    let mut crossover = None;
    for &(batch, cpu, gpu) in sorted.iter().rev() {
        if gpu > cpu {
            crossover = Some(batch);
        } else {
            break;
        }
    }
    crossover
}

impl BenchRow {
    /// The batch as the table prints it: `256`, or `full (10000)`.
    pub fn batch_label(&self) -> String {
        if self.full_batch {
            format!("full ({})", self.batch)
        } else {
            self.batch.to_string()
        }
    }

    /// Samples per second, when measured.
    pub fn samples_per_sec(&self) -> Option<f64> {
        self.measured.as_ref().map(|m| m.samples_per_sec)
    }
}

impl BenchReport {
    /// Recomputes [`BenchReport::crossovers`] from the rows: for each workload with a GPU
    /// row, [`crossover_batch`] over the points measured on both backends (the sweep's
    /// points when the sweep ran, else the workload's own batch). [`run`](super::run)
    /// calls it; call it again after editing the rows.
    pub fn update_crossovers(&mut self) {
        let mut out = Vec::new();
        for w in Workload::ALL {
            let rows: Vec<&BenchRow> = self
                .rows
                .iter()
                .filter(|r| r.workload == w && r.sweep == self.sweep && w.sweeps())
                .collect();
            let rows = if rows.is_empty() {
                self.rows
                    .iter()
                    .filter(|r| r.workload == w && !r.sweep && w.is_iterative())
                    .collect()
            } else {
                rows
            };
            if !rows.iter().any(|r| r.backend == "gpu") {
                continue;
            }
            let mut points = Vec::new();
            let mut full = Vec::new();
            for g in rows.iter().filter(|r| r.backend == "gpu") {
                let cpu = rows.iter().find(|c| c.backend == "cpu" && same_point(c, g));
                if let (Some(c), Some(gs)) =
                    (cpu.and_then(|c| c.samples_per_sec()), g.samples_per_sec())
                {
                    points.push((g.batch, c, gs));
                    if g.full_batch {
                        full.push(g.batch);
                    }
                }
            }
            let batch = crossover_batch(&points);
            let mut compared: Vec<usize> = points.iter().map(|p| p.0).collect();
            compared.sort_unstable();
            out.push(Crossover {
                workload: w,
                batch,
                full_batch: batch.is_some_and(|b| full.contains(&b)),
                compared,
            });
        }
        self.crossovers = out;
    }

    /// GPU rows whose final loss differs from the CPU's beyond the tolerance.
    pub fn disagreements(&self) -> Vec<&BenchRow> {
        self.rows
            .iter()
            .filter(|r| r.agrees == Some(false))
            .collect()
    }

    /// The report as pretty-printed JSON.
    ///
    /// # Errors
    /// None in practice (every field serialises); a serde failure comes back as
    /// [`Error::BadFile`].
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| Error::BadFile {
            path: "bench report (JSON)".into(),
            reason: e.to_string(),
        })
    }

    /// A report read back from [`BenchReport::to_json`]'s output.
    ///
    /// # Errors
    /// [`Error::BadFile`] when `json` is not such a report.
    pub fn from_json(json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| Error::BadFile {
            path: "bench report (JSON)".into(),
            reason: e.to_string(),
        })
    }

    /// The report as markdown: one table row per point (like `shared/peers`' results),
    /// then the crossovers and the notes.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| WL | backend | adapter | mode | batch | rows × epochs | steps | runs | wall s \
             | samples/s | ms/step | final loss | quality | GPU/CPU | loss vs CPU |"
        );
        let _ = writeln!(
            s,
            "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"
        );
        for r in &self.rows {
            let sweep = if r.sweep { " (sweep)" } else { "" };
            let head = format!("| {}{sweep} | {} |", r.workload.id(), r.backend);
            let size = format!("{} | {} × {}", r.batch_label(), r.rows, r.epochs);
            match (&r.measured, &r.error) {
                (Some(m), _) => {
                    let ratio = r
                        .gpu_cpu_ratio
                        .map_or(String::new(), |x| format!("{x:.3}×"));
                    let agree = match (r.agrees, r.loss_rel_diff) {
                        (Some(true), Some(d)) => format!("agrees ({d:.1e})"),
                        (Some(false), Some(d)) => {
                            format!("**DISAGREES** ({d:.1e} > {LOSS_RTOL:.0e})")
                        }
                        _ => String::new(),
                    };
                    let _ = writeln!(
                        s,
                        "{head} {} | {} | {size} | {} | {} | {:.3} | {:.0} | {:.3} | {:.6e} | {} | {ratio} | {agree} |",
                        m.adapter.replace('|', "/"),
                        m.mode,
                        m.steps,
                        m.runs,
                        m.wall_s,
                        m.samples_per_sec,
                        m.ms_per_step,
                        m.final_loss,
                        m.quality,
                    );
                }
                (None, err) => {
                    let why = err.as_deref().unwrap_or("not run").replace('|', "/");
                    let _ = writeln!(
                        s,
                        "{head} — | — | {size} | — | — | — | — | — | — | not run: {why} | | |"
                    );
                }
            }
        }
        if !self.crossovers.is_empty() {
            let _ = writeln!(
                s,
                "\nCrossover (smallest batch size at which the GPU's samples/s beats the CPU's):"
            );
            for c in &self.crossovers {
                let at = match c.batch {
                    Some(b) if c.full_batch => format!("full batch ({b} rows)"),
                    Some(b) => format!("batch {b}"),
                    None => "none".into(),
                };
                let compared: Vec<String> = c.compared.iter().map(usize::to_string).collect();
                let _ = writeln!(
                    s,
                    "- {}: {at} (batch sizes compared: {})",
                    c.workload.id(),
                    if compared.is_empty() {
                        "none ran on both backends".into()
                    } else {
                        compared.join(", ")
                    }
                );
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(s);
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        s
    }
}

/// Whether two rows measure the same point (workload, batch, rows, epochs, sweep or not).
pub(crate) fn same_point(a: &BenchRow, b: &BenchRow) -> bool {
    a.workload == b.workload
        && a.sweep == b.sweep
        && a.batch == b.batch
        && a.rows == b.rows
        && a.epochs == b.epochs
}
