//! Rows gathered from a source into host buffers: features, targets and, for weighted
//! rows, their loss weights. Every reader of a [`RowSource`] outside the kernels gathers
//! through [`gather_rows`]: the prefetcher's groups, verify mode's checked batch, early
//! stopping's held-out rows, the rate's curvature sample.

use super::{BatchTargets, RowSource, RowTargets, RowWeights, TargetKind};
use crate::error::Result;

/// One batch's targets on the host.
#[derive(Debug, Clone, PartialEq)]
pub enum HostTargets {
    /// Real values.
    Real(Vec<f32>),
    /// Class labels.
    Labels(Vec<u32>),
}

impl HostTargets {
    /// Empty targets of `kind`.
    pub fn empty(kind: TargetKind) -> Self {
        match kind {
            TargetKind::Real => HostTargets::Real(Vec::new()),
            TargetKind::Labels => HostTargets::Labels(Vec::new()),
        }
    }

    /// Resizes to `len` rows and lends them to [`RowSource::gather`] to fill.
    pub fn rows_mut(&mut self, len: usize) -> RowTargets<'_> {
        match self {
            HostTargets::Real(y) => {
                y.resize(len, 0.0);
                RowTargets::Real(y)
            }
            HostTargets::Labels(l) => {
                l.resize(len, 0);
                RowTargets::Classes(l)
            }
        }
    }

    /// The labels, for classifiers.
    pub fn labels(&self) -> Option<&[u32]> {
        match self {
            HostTargets::Labels(l) => Some(l),
            HostTargets::Real(_) => None,
        }
    }

    /// A read-only view.
    pub fn view(&self) -> BatchTargets<'_> {
        match self {
            HostTargets::Real(y) => BatchTargets::Real(y),
            HostTargets::Labels(l) => BatchTargets::Labels(l),
        }
    }
}

/// Gathers `rows` of `source` into `x` (resized to `rows.len() × p`) and `targets`, and
/// their loss weights into `weights` when the rows are weighted (left empty otherwise).
///
/// # Errors
/// The source's own errors (a bad row in a file).
pub(crate) fn gather_rows(
    source: &(impl RowSource + ?Sized),
    row_weights: Option<&RowWeights<'_>>,
    rows: &[u32],
    (x, targets, weights): (&mut Vec<f32>, &mut HostTargets, &mut Vec<f32>),
) -> Result<()> {
    x.resize(rows.len() * source.p(), 0.0);
    source.gather(rows, x, targets.rows_mut(rows.len()))?;
    match row_weights {
        Some(w) => w.fill(rows, targets.labels(), weights),
        None => weights.clear(),
    }
    Ok(())
}
