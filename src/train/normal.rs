//! [`Solver::Normal`]: linear regression by its normal equations (seed 001), the same
//! trainer around it as the iterative solvers (standardisation, row weights, the L2
//! penalty, ranks, the report and the saved state).
//!
//! One pass over the rows takes their (weighted) means, a second forms the sums
//! `Σ sᵢ zᵢ zᵢᵀ`, `zᵢ = [xᵢ − x̄, 1, yᵢ − ȳ]`, in `f64` ([`normal_eq::gram_sums`]); a
//! distributed fit adds the ranks' means and sums with an all-reduce each, so that every
//! rank solves the same system. An `L2(α)` penalty on the mean loss,
//! `(1/n) Σ sᵢ (ŷᵢ − yᵢ)² + (α/2)‖w‖²`, puts `nα/2` on the weights' diagonal.

use std::ops::Range;
use std::time::Instant;

use rayon::prelude::*;

use super::full_batch::InMemory;
use super::trainer::Weighted;
use super::{Backend, Choices, Penalty, Report, StopReason, TrainState, Trainer};
use crate::data::{Standardizer, Targets};
use crate::error::{Error, Result};
use crate::model::normal_eq::{self, Centre, Method, Solve};
use crate::model::{Fitted, Model, Spec};

impl Trainer {
    /// A closed-form fit of linear regression (see [`super::normal`]).
    pub(super) fn fit_normal<M: Model + ?Sized>(
        &self,
        model: &mut M,
        (data, weights): Weighted<'_>,
        (spec, state, scaler): (Spec, TrainState, Option<Standardizer>),
        choices: Choices,
        started: Instant,
    ) -> Result<Report> {
        let n = data.n();
        let group = self.group.as_ref();
        let held = InMemory::of((data, weights), group, "solver normal")?;
        let (dataset, rows) = (&*held.data, held.rows);
        let p = dataset.p();
        let Targets::Real(y) = dataset.targets() else {
            return Err(Error::TargetMismatch {
                model: "normal equations",
                expected: "real-valued targets".into(),
                got: dataset.targets().describe(),
            });
        };
        let part = Part {
            x: &dataset.features()[rows.start * p..rows.end * p],
            y: &y[rows.clone()],
            weights: held.weights.as_deref().map(|w| &w[rows.clone()]),
            p,
        };
        let mut report = Report::new(model.name(), "cpu".into(), choices);
        report.setup = started.elapsed();
        if self.config.backend == Backend::Gpu {
            report.notes.push(
                "solver normal: the normal equations are formed and solved on the CPU in f64 \
                 (the device has no f64)"
                    .into(),
            );
        }
        self.check_interrupt(0, 0)?;
        // The means first (over every rank's rows), then the centred sums.
        let mut means = Centre::sums(part.x, part.y, p, part.weights);
        if let Some(g) = group {
            g.reduce(&mut means, Ok(()))?;
        }
        let centre = Centre::from_sums(&means, p);
        let mut sums = normal_eq::gram_sums(part.x, part.y, p, part.weights, &centre);
        if let Some(g) = group {
            g.reduce(&mut sums, Ok(()))?;
        }
        let ridge = match choices.penalty {
            Penalty::None => 0.0,
            Penalty::L2(alpha) => n as f64 * alpha / 2.0,
            // `auto::resolve` refuses these first; kept an error, not a panic.
            other => {
                return Err(Error::param(
                    "penalty",
                    format!("{other} with solver normal"),
                    "must be None or L2 for the normal equations",
                ));
            }
        };
        let sol = normal_eq::solve_sums(&sums, p, ridge, Solve::Auto, &centre)?;
        let rank = match sol.method {
            Method::Cholesky => p + 1,
            Method::MinNormLeastSquares { rank } => {
                report.notes.push(format!(
                    "the normal equations are singular or ill conditioned (condition number \
                     {:.2e}, rank {rank} of {}): the minimum-norm least-squares solution",
                    sol.condition,
                    p + 1
                ));
                rank
            }
        };
        let params = vec![
            sol.weights.iter().map(|&v| v as f32).collect::<Vec<f32>>(),
            vec![sol.bias as f32],
        ];
        // The fitted model's mean loss, as the other solvers report it (without the
        // penalty): summed over this rank's rows, then over the ranks.
        let mut loss = vec![part.squared_error(&params[0], params[1][0])];
        if let Some(g) = group {
            g.reduce(&mut loss, Ok(()))?;
        }
        report.epoch_losses = vec![loss[0] / n as f64];
        report.steps = 1;
        report.samples = n as u64;
        report.stop = StopReason::Solved {
            rank,
            condition: sol.condition,
        };
        report.converged = true;
        report.mode = "in-memory".into();
        report.ranks = group.map_or(1, |g| g.size());
        let optimizer = if state.optimizer.is_empty() {
            params
                .iter()
                .map(|t| [vec![0f32; t.len()], vec![0f32; t.len()]])
                .collect()
        } else {
            state.optimizer
        };
        let state = TrainState {
            epochs_done: state.epochs_done + 1,
            updates: state.updates + 1,
            adaptive: state.adaptive,
            optimizer,
        };
        model.set_fitted(Fitted {
            spec,
            params,
            state: Some(state),
            scaler,
        });
        report.wall = started.elapsed();
        Ok(report)
    }
}

/// The rows one process sums over.
struct Part<'a> {
    x: &'a [f32],
    y: &'a [f32],
    weights: Option<&'a [f32]>,
    p: usize,
}

impl Part<'_> {
    /// `Σ sᵢ (xᵢ·w + b − yᵢ)²` in `f64`, in a fixed order of chunks.
    fn squared_error(&self, w: &[f32], b: f32) -> f64 {
        const CHUNK: usize = 8192;
        let chunk = |range: Range<usize>| -> f64 {
            range
                .map(|i| {
                    let row = &self.x[i * self.p..(i + 1) * self.p];
                    let z: f64 = row
                        .iter()
                        .zip(w)
                        .map(|(&x, &wj)| f64::from(x) * f64::from(wj))
                        .sum::<f64>()
                        + f64::from(b);
                    let r = z - f64::from(self.y[i]);
                    self.weights.map_or(1.0, |s| f64::from(s[i])) * r * r
                })
                .sum()
        };
        let rows = self.y.len();
        let parts: Vec<f64> = (0..rows.div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| chunk(c * CHUNK..((c + 1) * CHUNK).min(rows)))
            .collect();
        parts.iter().sum()
    }
}
