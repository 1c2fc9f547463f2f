//! A session's share of a distributed fit: its part of each batch, and the step's
//! all-reduce.

use std::sync::Arc;

use crate::data::{Batch, EpochPlan};
use crate::dist::Group;
use crate::error::Result;

/// This rank's part of the epoch and the all-reduce that turns its part's mean loss and
/// gradients into the global batch's.
#[derive(Debug)]
pub(crate) struct Shard {
    group: Group,
    part: Option<Arc<EpochPlan>>,
    /// The all-reduce's values, kept between steps.
    sums: Vec<f64>,
}

impl Shard {
    pub fn new(group: Group) -> Self {
        Shard {
            group,
            part: None,
            sums: Vec::new(),
        }
    }

    /// This rank's part of `plan`, which the session reads instead of `plan`.
    pub fn begin_epoch(&mut self, plan: &EpochPlan) -> Arc<EpochPlan> {
        let part = Arc::new(plan.part(self.group.rank(), self.group.size()));
        self.part = Some(Arc::clone(&part));
        part
    }

    /// This rank's share of the epoch's `batch`.
    pub fn local(&self, batch: Batch) -> Batch {
        self.part.as_ref().map_or(batch, |p| p.batch(batch.index))
    }

    /// Replaces this rank's mean loss and gradients over its `local.len` rows (`loss`;
    /// ignored for an empty share) by the means over the global batch's `batch.len` rows,
    /// the same on every rank: the losses and gradients are means over rows, so their
    /// sums are `mean × rows`, added in f64 by one all-reduce. A rank whose step failed
    /// sends zeros and its status, and every rank returns an error (see
    /// [`Group::reduce`]).
    pub fn reduce(
        &mut self,
        mut grads: Vec<&mut [f32]>,
        loss: Result<f64>,
        local: Batch,
        batch: Batch,
    ) -> Result<f64> {
        let sums = &mut self.sums;
        sums.clear();
        let rows = local.len as f64;
        match &loss {
            Ok(loss) if local.len > 0 => {
                for g in &grads {
                    sums.extend(g.iter().map(|&v| f64::from(v) * rows));
                }
                sums.push(loss * rows);
            }
            _ => sums.resize(grads.iter().map(|g| g.len()).sum::<usize>() + 1, 0.0),
        }
        self.group.reduce(sums, loss)?;
        let total = batch.len as f64;
        let mut at = 0;
        for g in &mut grads {
            for (v, s) in g.iter_mut().zip(&sums[at..]) {
                *v = (s / total) as f32;
            }
            at += g.len();
        }
        Ok(sums[at] / total)
    }

    /// Local SGD: replaces `params` by their mean over the ranks, and returns the global
    /// batch loss of each step since the last average from this rank's `(loss, rows)` of
    /// it and the global batch sizes `batches` — one all-reduce. A rank whose steps failed
    /// (`status`) sends zeros, and every rank returns an error.
    pub fn average(
        &mut self,
        params: &mut [Vec<f32>],
        steps: &[(f64, usize, usize)],
        status: Result<()>,
    ) -> Result<Vec<f64>> {
        let sums = &mut self.sums;
        sums.clear();
        let len = params.iter().map(Vec::len).sum::<usize>() + steps.len();
        if status.is_ok() {
            sums.extend(params.iter().flatten().map(|&v| f64::from(v)));
            sums.extend(
                steps
                    .iter()
                    .map(|&(loss, m, _)| if m > 0 { loss * m as f64 } else { 0.0 }),
            );
        } else {
            sums.resize(len, 0.0);
        }
        self.group.reduce(sums, status)?;
        let ranks = self.group.size() as f64;
        let mut at = 0;
        for p in params.iter_mut() {
            for (v, s) in p.iter_mut().zip(&sums[at..]) {
                *v = (s / ranks) as f32;
            }
            at += p.len();
        }
        Ok(steps
            .iter()
            .zip(&sums[at..])
            .map(|(&(_, _, total), s)| s / total as f64)
            .collect())
    }
}
