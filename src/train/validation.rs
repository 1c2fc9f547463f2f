//! Early stopping on a held-out validation set (scikit-learn's `early_stopping=True`).
//!
//! A seeded share of the rows is set aside before training; the rest are trained on with
//! the usual epoch plans ([`crate::data::epoch_plan_over`]). After every epoch the CPU
//! reference kernels evaluate the loss of the current parameters on the held-out rows;
//! the best parameters are kept, and the fit ends after `patience` epochs without an
//! improvement of at least `tol`, handing back the best parameters, not the last.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::EarlyStopping;
use crate::cpu::engine::{CpuEngine, Rows};
use crate::cpu::kernels::Reference;
use crate::data::{HostTargets, RowSource, gather_rows};
use crate::dist::Group;
use crate::error::{Error, Result};
use crate::program::Program;

/// Rows evaluated per forward pass (bounds the activation buffers).
const CHUNK: usize = 4096;

/// The held-out rows, gathered once, and the engine that scores them.
pub(crate) struct Holdout {
    /// The rows trained on, in stored order.
    pub train_rows: Vec<u32>,
    engine: CpuEngine<'static, f32, Reference>,
    /// Held-out rows in all, and those this rank scores (all, unless distributed).
    n: usize,
    mine: usize,
    group: Option<Group>,
}

impl Holdout {
    /// Splits `source` with `seed`: `⌈fraction · n⌉` validation rows, at least one on
    /// each side.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] when the split leaves either side empty; the source's
    /// errors while gathering the validation rows.
    ///
    /// In a distributed fit every rank makes the same split and gathers and scores only
    /// its contiguous part of the held-out rows; one all-reduce sums the parts' losses.
    pub fn new(
        source: &dyn RowSource,
        program: &Program,
        fraction: f64,
        (seed, group): (u64, Option<&Group>),
    ) -> Result<Self> {
        let n = source.n();
        let held = ((fraction * n as f64).ceil() as usize).max(1);
        if held >= n {
            return Err(Error::param(
                "validation_fraction",
                format!("{fraction} of {n} rows ({held} held out)"),
                "must leave rows to train on",
            ));
        }
        let mut rows: Vec<u32> = (0..n as u32).collect();
        // Its own stream: the split does not move when the shuffles or the init change.
        let stream = seed ^ 0x7661_6C69_6461_7465; // "validate"
        rows.shuffle(&mut Xoshiro256PlusPlus::seed_from_u64(stream));
        let (valid, train) = rows.split_at_mut(held);
        valid.sort_unstable();
        train.sort_unstable();
        let p = source.p();
        let mine = &valid[group.map_or(0..held, |g| g.part(held))];
        let (mut x, mut targets) = (Vec::new(), HostTargets::empty(source.target_kind()));
        let gathered = gather_rows(source, None, mine, (&mut x, &mut targets, &mut Vec::new()));
        if let Some(g) = group {
            g.agree(gathered)?;
        } else {
            gathered?;
        }
        let cap = mine.len().clamp(1, CHUNK);
        let mut engine =
            CpuEngine::for_batches(program.clone(), p, source.target_kind(), cap).on(Reference);
        engine.load(&x, targets.view(), None)?;
        Ok(Holdout {
            train_rows: train.to_vec(),
            engine,
            n: held,
            mine: mine.len(),
            group: group.cloned(),
        })
    }

    /// The mean loss of `params` on the held-out rows.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for parameters of another program.
    pub fn loss(&mut self, params: &[Vec<f32>]) -> Result<f64> {
        let mut total = [0.0];
        let mut local = || -> Result<()> {
            self.engine.set_params(params)?;
            for start in (0..self.mine).step_by(CHUNK) {
                let len = CHUNK.min(self.mine - start);
                let rows = Rows::Range { start, len };
                self.engine.forward(rows)?;
                total[0] += self.engine.loss(rows)? * len as f64;
            }
            Ok(())
        };
        let scored = local();
        match &self.group {
            Some(g) => {
                let mut sums = total.to_vec();
                g.reduce(&mut sums, scored)?;
                Ok(sums[0] / self.n as f64)
            }
            None => scored.map(|()| total[0] / self.n as f64),
        }
    }
}

/// Early stopping's bookkeeping: the held-out rows, the best validation loss and the
/// parameters that reached it.
pub(super) struct Watch<'h> {
    pub(super) holdout: &'h mut Holdout,
    pub(super) patience: usize,
    pub(super) tol: f64,
    pub(super) best: f64,
    pub(super) best_epoch: usize,
    pub(super) best_params: Option<Vec<Vec<f32>>>,
    pub(super) stale: usize,
}

impl<'h> Watch<'h> {
    pub(super) fn new(holdout: &'h mut Holdout, rule: EarlyStopping) -> Self {
        Watch {
            holdout,
            patience: rule.patience,
            tol: rule.tol,
            best: f64::INFINITY,
            best_epoch: 0,
            best_params: None,
            stale: 0,
        }
    }

    /// Scores epoch `epoch`'s parameters; returns the validation loss and whether to stop.
    pub(super) fn epoch(&mut self, params: &[Vec<f32>], epoch: usize) -> Result<(f64, bool)> {
        let loss = self.holdout.loss(params)?;
        // Only an improvement by tol resets the patience, but any better loss (a NaN
        // never is) names the parameters to keep.
        if super::config::improves(loss, self.best, self.tol) {
            self.stale = 0;
        } else {
            self.stale += 1;
        }
        if loss < self.best {
            self.best = loss;
            self.best_epoch = epoch;
            self.best_params = Some(params.to_vec());
        }
        Ok((loss, self.stale >= self.patience))
    }
}
