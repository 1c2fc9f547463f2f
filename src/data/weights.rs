//! Row weights for the loss: scikit-learn's `sample_weight × class_weight`.
//!
//! A row's weight scales its loss and its gradient (see [`crate::cpu::loss`]); the batch
//! mean still divides by the batch size, so weights that average 1 — as "balanced" class
//! weights do — leave the learning rate's meaning unchanged.

use std::borrow::Cow;

use super::source::scan_blocks;
use super::{RowSource, Targets};
use crate::dist::Group;
use crate::error::{Error, Result};

/// Class weights, scikit-learn's `class_weight`.
///
/// ```
/// use gradflow::data::{ClassWeight, RowWeights, Synthetic};
/// // 90 rows of class 0 and 10 of class 1: balanced weights 100/(2·90) and 100/(2·10).
/// let labels: Vec<u32> = (0..100).map(|i| u32::from(i >= 90)).collect();
/// let data = gradflow::data::Dataset::new(vec![0.0; 100], 1,
///     gradflow::data::Targets::Classes { labels, classes: 2 })?;
/// let w = RowWeights::new(&data, None, Some(&ClassWeight::Balanced))?;
/// assert_eq!(w.class_weights(), Some(&[100.0 / 180.0, 5.0][..]));
/// # Ok::<(), gradflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum ClassWeight {
    /// `n / (k · count(c))`: every class weighs the same in total.
    Balanced,
    /// One weight per class (≥ 0, finite).
    Given(Vec<f32>),
}

/// The weight of every row of a source: optional sample weights (one per row) times
/// optional class weights (one per class, looked up by the row's label).
#[derive(Debug, Clone, PartialEq)]
pub struct RowWeights<'a> {
    sample: Option<Cow<'a, [f32]>>,
    class: Option<Vec<f32>>,
}

impl<'a> RowWeights<'a> {
    /// Weights for `source`. `Balanced` class weights count the labels: free for an
    /// in-memory dataset, one pass over the targets otherwise.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the sample weights are not one per row or the class
    /// weights not one per class; [`Error::InvalidParameter`] for a negative or non-finite
    /// weight, all-zero sample weights, or class weights on real targets.
    pub fn new(
        source: &(impl RowSource + ?Sized),
        sample: Option<&'a [f32]>,
        class: Option<&ClassWeight>,
    ) -> Result<Self> {
        Self::over(source, sample, class, None)
    }

    /// As [`RowWeights::new`]; a distributed fit's ranks count balanced classes over
    /// their contiguous shares of the rows and add the counts.
    pub(crate) fn over(
        source: &(impl RowSource + ?Sized),
        sample: Option<&'a [f32]>,
        class: Option<&ClassWeight>,
        group: Option<&Group>,
    ) -> Result<Self> {
        let n = source.n();
        if let Some(w) = sample {
            if w.len() != n {
                return Err(Error::ShapeMismatch {
                    what: "sample weights",
                    expected: format!("one per row: {n}"),
                    got: w.len().to_string(),
                });
            }
            check_weights("sample weight", "row", w)?;
            if w.iter().all(|&v| v == 0.0) {
                return Err(Error::param(
                    "sample weights",
                    "all 0",
                    "need at least one positive weight",
                ));
            }
        }
        let class = match (class, source.classes()) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(Error::param(
                    "class_weight",
                    "on real-valued targets",
                    "applies to classifiers only",
                ));
            }
            (Some(ClassWeight::Given(w)), Some(k)) => {
                if w.len() != k {
                    return Err(Error::ShapeMismatch {
                        what: "class weights",
                        expected: format!("one per class: {k}"),
                        got: w.len().to_string(),
                    });
                }
                check_weights("class weight", "class", w)?;
                Some(w.clone())
            }
            (Some(ClassWeight::Balanced), Some(k)) => {
                let counts = label_counts(source, k, group)?;
                Some(
                    counts
                        .iter()
                        // An absent class gets weight 0: it has no rows to weigh.
                        .map(|&c| {
                            if c == 0 {
                                0.0
                            } else {
                                (n as f64 / (k as f64 * c as f64)) as f32
                            }
                        })
                        .collect(),
                )
            }
        };
        Ok(RowWeights {
            sample: sample.map(Cow::Borrowed),
            class,
        })
    }

    /// `None` when every row weighs 1 (no weights given).
    pub fn into_option(self) -> Option<Self> {
        (self.sample.is_some() || self.class.is_some()).then_some(self)
    }

    /// The class weights in use, if any.
    pub fn class_weights(&self) -> Option<&[f32]> {
        self.class.as_deref()
    }

    /// The weights of `rows` (their labels in `labels`, when classes are weighted) into
    /// `out`, replacing its contents.
    pub fn fill(&self, rows: &[u32], labels: Option<&[u32]>, out: &mut Vec<f32>) {
        out.clear();
        out.extend(rows.iter().enumerate().map(|(i, &r)| {
            let s = self.sample.as_ref().map_or(1.0, |w| w[r as usize]);
            let c = match (&self.class, labels) {
                (Some(cw), Some(l)) => cw[l[i] as usize],
                _ => 1.0,
            };
            s * c
        }));
    }

    /// Every row's weight, for data held whole (in memory or resident on a device).
    pub fn all(&self, targets: &Targets) -> Vec<f32> {
        let n = targets.len();
        let rows: Vec<u32> = (0..n as u32).collect();
        let labels = match targets {
            Targets::Classes { labels, .. } => Some(&labels[..]),
            Targets::Real(_) => None,
        };
        let mut out = Vec::with_capacity(n);
        self.fill(&rows, labels, &mut out);
        out
    }
}

/// Every weight finite and ≥ 0; the first that is not is named with its place (`of`: the
/// row or class, counted from 0).
fn check_weights(what: &'static str, of: &str, w: &[f32]) -> Result<()> {
    match w.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
        Some(i) => Err(Error::param(
            what,
            format!("{} ({of} {i}, from 0)", w[i]),
            "must be finite and ≥ 0",
        )),
        None => Ok(()),
    }
}

/// Rows per class, read from the source's targets in blocks (a distributed fit: each
/// rank its share of the blocks, the counts all-reduced).
fn label_counts(
    source: &(impl RowSource + ?Sized),
    k: usize,
    group: Option<&Group>,
) -> Result<Vec<u64>> {
    let mut counts = vec![0u64; k];
    if let Some(Targets::Classes { labels, .. }) = source.in_memory().map(|d| d.targets()) {
        labels.iter().for_each(|&l| counts[l as usize] += 1);
        return Ok(counts);
    }
    const BLOCK: usize = 1 << 16;
    let blocks = source.n().div_ceil(BLOCK);
    let mine = group.map_or(0..blocks, |g| g.part(blocks));
    let scanned = scan_blocks(source, BLOCK, mine, |_, targets| {
        for &l in targets.labels().unwrap_or_default() {
            counts[l as usize] += 1;
        }
    });
    if let Some(g) = group {
        // Counts below 2⁵³ add exactly in f64.
        let mut sums: Vec<f64> = counts.iter().map(|&c| c as f64).collect();
        g.reduce(&mut sums, scanned)?;
        return Ok(sums.iter().map(|&c| c as u64).collect());
    }
    scanned.map(|()| counts)
}
