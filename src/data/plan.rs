//! The epoch plan: which rows each batch of an epoch reads, from `(seed, epoch)` alone.
//!
//! Both backends, and the streaming scheduler of a later stage, call [`epoch_plan`], so
//! they see the same batches in the same order: this function *is* the definition of
//! "the same run".
//!
//! | batch_size | algorithm |
//! |---|---|
//! | 1 | stochastic gradient descent (one row per update) |
//! | 2 ..= n − 1 | mini-batch gradient descent |
//! | ≥ n | batch (full) gradient descent: one update per epoch, on all rows |
//!
//! **Remainder.** With `n = 10` and `batch_size = 3`, `drop_last = false` (the default,
//! as in PyTorch's `DataLoader`) gives batches of 3, 3, 3, 1; `drop_last = true` gives
//! 3, 3, 3 like the seed notes' loop (`num_batches = N // batch_size`). With shuffling
//! the dropped rows differ from epoch to epoch, so no row is left out for good.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::error::{Error, Result};

/// One batch of an epoch: positions `start .. start + len` of the epoch's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// Batch number within the epoch (0-based).
    pub index: usize,
    /// First position in the epoch's order.
    pub start: usize,
    /// Number of rows (≥ 1).
    pub len: usize,
}

/// The batches of one epoch.
///
/// # Example
/// ```
/// use gradflow::data::epoch_plan;
/// let plan = epoch_plan(42, 0, 10, 3, true, false)?;
/// let sizes: Vec<usize> = plan.batches().map(|b| b.len).collect();
/// assert_eq!(sizes, [3, 3, 3, 1]);
/// // Every row once, in a seeded order.
/// let mut seen: Vec<u32> = plan.batches().flat_map(|b| plan.rows(b)).collect();
/// seen.sort();
/// assert_eq!(seen, (0..10).collect::<Vec<u32>>());
/// # Ok::<(), gradflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochPlan {
    order: Option<Vec<u32>>,
    n: usize,
    batch_size: usize,
    batches: usize,
}

impl EpochPlan {
    /// The permutation of `0..n` this epoch reads in, or `None` when not shuffling
    /// (rows are then read in their stored order).
    pub fn order(&self) -> Option<&[u32]> {
        self.order.as_deref()
    }

    /// Effective batch size: `min(batch_size, n)`.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Number of batches (updates) in the epoch.
    pub fn len(&self) -> usize {
        self.batches
    }

    /// `true` when the epoch has no batch (never, for a valid plan).
    pub fn is_empty(&self) -> bool {
        self.batches == 0
    }

    /// Rows the epoch visits (n, or fewer when the remainder is dropped).
    pub fn rows_visited(&self) -> usize {
        (self.batch_size * self.batches).min(self.n)
    }

    /// The batches in order.
    pub fn batches(&self) -> impl ExactSizeIterator<Item = Batch> + '_ {
        (0..self.batches).map(move |index| {
            let start = index * self.batch_size;
            Batch {
                index,
                start,
                len: self.batch_size.min(self.n - start),
            }
        })
    }

    /// The row indices of `batch`.
    pub fn rows(&self, batch: Batch) -> impl ExactSizeIterator<Item = u32> + '_ {
        let range = batch.start..batch.start + batch.len;
        let order = self.order.as_deref();
        range.map(move |i| order.map_or(i as u32, |o| o[i]))
    }
}

/// The batches of epoch `epoch` of a run with this `seed`.
///
/// The permutation depends only on `(seed, epoch, n)`, so a run can start at any epoch
/// (resume) and every backend sees the same order.
///
/// # Errors
/// [`Error::Empty`] for `n = 0`; [`Error::InvalidParameter`] for `batch_size = 0` or
/// `n` beyond `u32::MAX` (row indices are 32-bit on the device).
pub fn epoch_plan(
    seed: u64,
    epoch: usize,
    n: usize,
    batch_size: usize,
    shuffle: bool,
    drop_last: bool,
) -> Result<EpochPlan> {
    if n == 0 {
        return Err(Error::Empty {
            what: "epoch plan",
            detail: "n = 0 rows".into(),
        });
    }
    if batch_size == 0 {
        return Err(Error::param("batch_size", 0, "must be ≥ 1"));
    }
    if n > u32::MAX as usize {
        return Err(Error::param(
            "n",
            n,
            "must be ≤ 4294967295 (row indices are u32)",
        ));
    }
    let batch_size = batch_size.min(n);
    let batches = if drop_last {
        n / batch_size
    } else {
        n.div_ceil(batch_size)
    };
    let order = shuffle.then(|| {
        let mut order: Vec<u32> = (0..n as u32).collect();
        // A fresh stream per epoch, from (seed, epoch) only.
        let stream = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (epoch as u64).wrapping_add(1);
        order.shuffle(&mut Xoshiro256PlusPlus::seed_from_u64(stream));
        order
    });
    Ok(EpochPlan {
        order,
        n,
        batch_size,
        batches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remainder_kept_or_dropped() {
        let keep = epoch_plan(0, 0, 10, 3, false, false).unwrap();
        assert_eq!(
            keep.batches().map(|b| b.len).collect::<Vec<_>>(),
            [3, 3, 3, 1]
        );
        let drop = epoch_plan(0, 0, 10, 3, false, true).unwrap();
        assert_eq!(drop.batches().map(|b| b.len).collect::<Vec<_>>(), [3, 3, 3]);
        assert_eq!(drop.rows_visited(), 9);
    }

    #[test]
    fn full_batch_and_stochastic() {
        let full = epoch_plan(0, 0, 10, 1000, true, true).unwrap();
        assert_eq!((full.len(), full.batch_size()), (1, 10));
        let sgd = epoch_plan(0, 0, 10, 1, true, true).unwrap();
        assert_eq!(sgd.len(), 10);
    }

    #[test]
    fn epochs_differ_and_repeat() {
        let a = epoch_plan(5, 0, 100, 10, true, false).unwrap();
        let b = epoch_plan(5, 1, 100, 10, true, false).unwrap();
        assert_ne!(a.order(), b.order());
        assert_eq!(a, epoch_plan(5, 0, 100, 10, true, false).unwrap());
    }

    #[test]
    fn invalid_inputs() {
        assert!(matches!(
            epoch_plan(0, 0, 0, 1, true, false),
            Err(Error::Empty { .. })
        ));
        assert!(matches!(
            epoch_plan(0, 0, 5, 0, true, false),
            Err(Error::InvalidParameter { .. })
        ));
    }
}
