//! Feature standardisation: mean 0 and variance 1 per column, fitted on the training data
//! and kept with the model, as scikit-learn's `StandardScaler` in a pipeline.
//!
//! Gradient descent takes one learning rate for every weight. Features on very different
//! scales (a price in the thousands beside a ratio below 1) then make the loss surface a
//! narrow valley: a rate small enough for the large feature barely moves the small one.
//! Standardising first makes one rate fit all.

use rayon::prelude::*;

use super::source::scan_blocks;
use super::{Dataset, RowSource, RowTargets};
use crate::dist::{Group, from_bytes, to_bytes};
use crate::error::Result;

/// Per-column mean and standard deviation, applied as `(x − mean) / scale`.
///
/// ```
/// use gradflow::data::{Dataset, Standardizer, Targets};
/// // Column 0 in thousands, column 1 constant.
/// let data = Dataset::new(vec![1000.0, 5.0, 3000.0, 5.0], 2, Targets::Real(vec![0.0, 1.0]))?;
/// let s = Standardizer::fit(&data)?;
/// assert_eq!(s.mean, [2000.0, 5.0]);
/// assert_eq!(s.scale, [1000.0, 1.0]); // a constant column is only centred
/// assert_eq!(s.transform(&[2500.0, 5.0]), [0.5, 0.0]);
/// # Ok::<(), gradflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Standardizer {
    /// Column means.
    pub mean: Vec<f32>,
    /// Column standard deviations (population, as scikit-learn's), 1 for a constant column.
    pub scale: Vec<f32>,
}

impl Standardizer {
    /// Means and deviations of every column of `source`, in one pass over blocks of rows
    /// with f64 accumulation (Chan's pairwise merge of block means and squared deviations,
    /// so a large mean does not swamp a small variance).
    ///
    /// # Errors
    /// The source's own errors while reading.
    pub fn fit(source: &(impl RowSource + ?Sized)) -> Result<Self> {
        Self::fit_over(source, None, None)
    }

    /// As [`Standardizer::fit`], with scikit-learn's `sample_weight` (one per row of
    /// `source`): weighted means and deviations, as `StandardScaler.fit(X,
    /// sample_weight=w)`, so that a row of weight 2 counts as that row twice and a row of
    /// weight 0 not at all — a weighted fit then sees the features of the fit on the
    /// repeated rows. Columns constant over the rows of positive weight get scale 1.
    ///
    /// ```
    /// use gradflow::data::{Dataset, Standardizer, Targets};
    /// let data = Dataset::new(vec![1.0, 2.0, 9.0], 1, Targets::Real(vec![0.0; 3]))?;
    /// let repeated = Dataset::new(vec![1.0, 2.0, 2.0], 1, Targets::Real(vec![0.0; 3]))?;
    /// let weighted = Standardizer::fit_weighted(&data, &[1.0, 2.0, 0.0])?;
    /// assert_eq!(weighted, Standardizer::fit(&repeated)?);
    /// # Ok::<(), gradflow::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) when the weights are not one
    /// per row; the source's own errors while reading.
    pub fn fit_weighted(source: &(impl RowSource + ?Sized), weights: &[f32]) -> Result<Self> {
        Self::fit_over(source, Some(weights), None)
    }

    /// As [`Standardizer::fit`] (with sample weights if given); the ranks of a
    /// distributed fit each read a contiguous share of the blocks, and every rank merges
    /// every block's moments in block order: the single-process statistics, bit for bit.
    pub(crate) fn fit_over(
        source: &(impl RowSource + ?Sized),
        weights: Option<&[f32]>,
        group: Option<&Group>,
    ) -> Result<Self> {
        let p = source.p();
        if let Some(w) = weights.filter(|w| w.len() != source.n()) {
            return Err(crate::Error::ShapeMismatch {
                what: "sample weights",
                expected: format!("one per row: {}", source.n()),
                got: format!("{} weights", w.len()),
            });
        }
        let blocks = source.n().div_ceil(BLOCK);
        let mine = group.map_or(0..blocks, |g| g.part(blocks));
        // Each block's moments (see `block_moments`), in block order.
        let weights_of = |b: usize, rows: usize| weights.map(|w| &w[b * BLOCK..b * BLOCK + rows]);
        let read = match source.in_memory() {
            Some(d) => {
                let x = d.features();
                let rows =
                    (mine.start * BLOCK * p).min(x.len())..(mine.end * BLOCK * p).min(x.len());
                // Blocks in parallel, collected in order: the same sums on any thread count.
                let per_block: Vec<Vec<f64>> = x[rows]
                    .par_chunks(BLOCK * p)
                    .enumerate()
                    .map(|(i, block)| {
                        block_moments(block, p, weights_of(mine.start + i, block.len() / p))
                    })
                    .collect();
                Ok(per_block.concat())
            }
            // The targets are read too (the interface gathers whole rows) and ignored.
            None => {
                let (mut moments, mut b) = (Vec::new(), mine.start);
                scan_blocks(source, BLOCK, mine, |x, _| {
                    moments.extend(block_moments(x, p, weights_of(b, x.len() / p)));
                    b += 1;
                })
                .map(|()| moments)
            }
        };
        let moments = match group {
            Some(g) => g
                .gather(read.map(|moments: Vec<f64>| to_bytes(&moments)))?
                .iter()
                .flat_map(|b| from_bytes(b))
                .collect(),
            None => read?,
        };
        let (mut count, mut mean, mut m2) = (0f64, vec![0f64; p], vec![0f64; p]);
        for block in moments.chunks_exact(2 * p + 1) {
            let (rows, bmean, bm2) = (block[0], &block[1..=p], &block[p + 1..]);
            if rows == 0.0 {
                continue;
            }
            for j in 0..p {
                let delta = bmean[j] - mean[j];
                let total = count + rows;
                mean[j] += delta * rows / total;
                m2[j] += bm2[j] + delta * delta * count * rows / total;
            }
            count += rows;
        }
        let scale = m2
            .iter()
            .map(|&s| {
                let sd = (s / count).sqrt();
                if sd > 0.0 { sd as f32 } else { 1.0 }
            })
            .collect();
        Ok(Standardizer {
            mean: mean.iter().map(|&m| m as f32).collect(),
            scale,
        })
    }

    /// The columns whose values sit so far from zero against their spread that `f32`
    /// holds them coarsely: more than 0.1 % of the standard deviation per step (a mean
    /// over ~8,400 times the deviation: timestamps, ids, coordinates in metres). Each as
    /// `(column, mean, deviation, step)`, the step being the f32 spacing at the mean.
    /// The rows were read as `f32` before this scaler saw them, so the loss has
    /// happened; what helps is subtracting an offset from such a column at the source.
    ///
    /// ```
    /// use gradflow::data::Standardizer;
    /// let s = Standardizer { mean: vec![1.7e9, 0.5], scale: vec![10.0, 0.2] };
    /// let coarse = s.coarse_columns();
    /// assert_eq!(coarse.len(), 1);
    /// assert_eq!((coarse[0].0, coarse[0].3), (0, 128.0)); // f32 steps of 128 at 1.7e9
    /// ```
    pub fn coarse_columns(&self) -> Vec<(usize, f32, f32, f32)> {
        self.mean
            .iter()
            .zip(&self.scale)
            .enumerate()
            .filter_map(|(j, (&m, &s))| {
                let m = m.abs();
                // The distance from |m| to the next f32 above it.
                let step = f32::from_bits(m.to_bits() + 1) - m;
                (m.is_finite() && m > 0.0 && step > 1e-3 * s).then_some((j, m, s, step))
            })
            .collect()
    }

    /// Standardises rows (`x`: rows × p) in place.
    pub fn apply(&self, x: &mut [f32]) {
        let p = self.mean.len();
        for row in x.chunks_exact_mut(p) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.scale) {
                *v = (*v - m) / s;
            }
        }
    }

    /// Standardised copies of rows.
    pub fn transform(&self, x: &[f32]) -> Vec<f32> {
        let p = self.mean.len();
        let mut out = Vec::with_capacity(x.len());
        for row in x.chunks_exact(p) {
            out.extend(
                row.iter()
                    .zip(&self.mean)
                    .zip(&self.scale)
                    .map(|((v, m), s)| (v - m) / s),
            );
        }
        out
    }

    /// `data` with standardised features.
    ///
    /// # Errors
    /// Never for a valid dataset; the dataset checks of [`Dataset::new`].
    pub fn dataset(&self, data: &Dataset) -> Result<Dataset> {
        Dataset::new(
            self.transform(data.features()),
            data.p(),
            data.targets().clone(),
        )
    }
}

/// Rows per block while fitting.
const BLOCK: usize = 1 << 14;

/// A source read through a [`Standardizer`]: what a streamed fit with `standardize`
/// trains on.
#[derive(Debug)]
pub struct Standardized<'a, S: ?Sized> {
    /// The raw rows.
    pub source: &'a S,
    /// The transform.
    pub scaler: &'a Standardizer,
}

impl<S: RowSource + ?Sized> RowSource for Standardized<'_, S> {
    fn n(&self) -> usize {
        self.source.n()
    }
    fn p(&self) -> usize {
        self.source.p()
    }
    fn classes(&self) -> Option<usize> {
        self.source.classes()
    }
    fn gather(&self, rows: &[u32], x: &mut [f32], targets: RowTargets<'_>) -> Result<()> {
        self.source.gather(rows, x, targets)?;
        self.scaler.apply(x);
        Ok(())
    }
    fn describe_targets(&self) -> String {
        self.source.describe_targets()
    }
}

/// One block's moments (`rows × p`, row-major): its total weight (its row count when
/// unweighted), then p weighted means, then p weighted sums of squared deviations. Row
/// by row, every column at once (the block is read twice, in order); each column's sums
/// run over the rows in order, as a column-by-column pass would add them. A block of
/// total weight 0 has zero moments, and the merge skips it.
fn block_moments(block: &[f32], p: usize, weights: Option<&[f32]>) -> Vec<f64> {
    let w = |i: usize| weights.map_or(1.0, |w| f64::from(w[i]));
    let rows = block.chunks_exact(p);
    let total: f64 = (0..rows.len()).map(w).sum();
    let mut out = vec![0f64; 1 + 2 * p];
    out[0] = total;
    if total == 0.0 {
        return out;
    }
    let (mean, m2) = out[1..].split_at_mut(p);
    for (i, row) in rows.clone().enumerate() {
        let wi = w(i);
        for (s, &v) in mean.iter_mut().zip(row) {
            *s += wi * f64::from(v);
        }
    }
    mean.iter_mut().for_each(|s| *s /= total);
    for (i, row) in rows.enumerate() {
        let wi = w(i);
        for ((s, &v), m) in m2.iter_mut().zip(row).zip(&*mean) {
            let d = f64::from(v) - m;
            *s += wi * d * d;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Synthetic, Targets};

    /// Blocks merged by Chan's formula give the two-pass f64 answer, on a column whose
    /// mean (10⁶) dwarfs its spread (1), streamed and in memory alike.
    #[test]
    fn fit_is_exact_across_blocks() {
        let n = 3 * BLOCK + 77;
        let x: Vec<f32> = (0..n).map(|i| 1e6 + (i % 7) as f32).collect();
        let data = Dataset::new(x.clone(), 1, Targets::Real(vec![0.0; n])).unwrap();
        let s = Standardizer::fit(&data).unwrap();
        let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
        let var = x
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        assert_eq!(s.mean[0], mean as f32);
        assert!((f64::from(s.scale[0]) - var.sqrt()).abs() < 1e-6, "{s:?}");
        let generator = Synthetic::blobs(n, 3, 2).seed(4);
        let streamed = Standardizer::fit(&generator).unwrap();
        let in_memory = Standardizer::fit(&generator.dataset().unwrap()).unwrap();
        for (a, b) in streamed.scale.iter().zip(&in_memory.scale) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    /// Weighted statistics equal the two-pass f64 ones with the weights, across blocks
    /// (some all zero), streamed and in memory; weights of 1 are the unweighted fit, bit
    /// for bit.
    #[test]
    fn weighted_fit_matches_the_weighted_formula() {
        let n = 2 * BLOCK + 501;
        let generator = Synthetic::blobs(n, 3, 2).seed(9);
        let data = generator.dataset().unwrap();
        let w: Vec<f32> = (0..n)
            .map(|i| if i < BLOCK { 0.0 } else { (i % 5) as f32 * 0.5 })
            .collect();
        let s = Standardizer::fit_weighted(&data, &w).unwrap();
        let streamed = Standardizer::fit_over(&generator, Some(&w), None).unwrap();
        assert_eq!(s, streamed);
        let total: f64 = w.iter().map(|&v| f64::from(v)).sum();
        for j in 0..3 {
            let col = || data.features().iter().skip(j).step_by(3).zip(&w);
            let mean = col()
                .map(|(&v, &w)| f64::from(w) * f64::from(v))
                .sum::<f64>()
                / total;
            let var = col()
                .map(|(&v, &w)| f64::from(w) * (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                / total;
            assert!((f64::from(s.mean[j]) - mean).abs() < 1e-5, "{s:?}");
            assert!((f64::from(s.scale[j]) - var.sqrt()).abs() < 1e-5, "{s:?}");
        }
        let ones = vec![1.0; n];
        assert_eq!(
            Standardizer::fit_weighted(&data, &ones).unwrap(),
            Standardizer::fit(&data).unwrap()
        );
        assert!(Standardizer::fit_weighted(&data, &ones[1..]).is_err());
    }
}
