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
//! | ≥ n | batch (full) gradient descent: one update per epoch, on all rows, read in stored order whatever the shuffle (an order would only reorder the sums) |
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
    /// A rank's part ([`EpochPlan::part`]): batch `i` is positions `starts[i] ..
    /// starts[i + 1]` of `order`, of any length, 0 included.
    starts: Option<Vec<usize>>,
}

impl EpochPlan {
    /// The permutation of `0..n` this epoch reads in, or `None` when not shuffling or
    /// when one batch holds every row (rows are then read in their stored order).
    ///
    /// ```
    /// use gradflow::data::epoch_plan;
    /// assert!(epoch_plan(7, 0, 10, 4, true, false)?.order().is_some());
    /// // Full batch: shuffling would only change the order of the sums.
    /// assert!(epoch_plan(7, 0, 10, 10, true, false)?.order().is_none());
    /// # Ok::<(), gradflow::Error>(())
    /// ```
    pub fn order(&self) -> Option<&[u32]> {
        self.order.as_deref()
    }

    /// Effective batch size: `min(batch_size, n)` (a rank's part: its longest batch).
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
        match &self.starts {
            Some(starts) => starts[self.batches],
            None => (self.batch_size * self.batches).min(self.n),
        }
    }

    /// The batches in order.
    pub fn batches(&self) -> impl ExactSizeIterator<Item = Batch> + '_ {
        (0..self.batches).map(move |index| self.batch(index))
    }

    /// Batch `index` (`< len()`).
    pub fn batch(&self, index: usize) -> Batch {
        match &self.starts {
            Some(starts) => Batch {
                index,
                start: starts[index],
                len: starts[index + 1] - starts[index],
            },
            None => {
                let start = index * self.batch_size;
                Batch {
                    index,
                    start,
                    len: self.batch_size.min(self.n - start),
                }
            }
        }
    }

    /// Rank `rank`'s part of this plan among `size` ranks: the same batches, each cut
    /// into `size` near-equal contiguous parts ([`crate::dist::part`]) of which this
    /// rank reads one. The part's batch `i` is the rank's share of batch `i`; shares are
    /// empty where a batch has fewer rows than there are ranks.
    ///
    /// ```
    /// use gradflow::data::epoch_plan;
    /// let plan = epoch_plan(3, 0, 10, 4, true, false)?; // batches of 4, 4, 2
    /// let parts: Vec<_> = (0..3).map(|r| plan.part(r, 3)).collect();
    /// let lens = |p: &gradflow::data::EpochPlan| p.batches().map(|b| b.len).collect::<Vec<_>>();
    /// assert_eq!(lens(&parts[0]), [2, 2, 1]);
    /// assert_eq!(lens(&parts[2]), [1, 1, 0]);
    /// // Together the parts read each batch's rows, in order.
    /// let first: Vec<u32> = parts.iter().flat_map(|p| p.rows(p.batch(0))).collect();
    /// assert_eq!(first, plan.rows(plan.batch(0)).collect::<Vec<_>>());
    /// # Ok::<(), gradflow::Error>(())
    /// ```
    pub fn part(&self, rank: usize, size: usize) -> EpochPlan {
        let mut order = Vec::with_capacity(self.rows_visited() / size.max(1) + self.batches);
        let mut starts = Vec::with_capacity(self.batches + 1);
        let mut longest = 0;
        for batch in self.batches() {
            starts.push(order.len());
            let share = crate::dist::part(batch.len, rank, size.max(1));
            longest = longest.max(share.len());
            let rows = self.rows(batch).skip(share.start).take(share.len());
            order.extend(rows);
        }
        starts.push(order.len());
        EpochPlan {
            order: Some(order),
            n: self.n,
            batch_size: longest,
            batches: self.batches,
            starts: Some(starts),
        }
    }

    /// The row indices of `batch`.
    pub fn rows(&self, batch: Batch) -> impl ExactSizeIterator<Item = u32> + '_ {
        let range = batch.start..batch.start + batch.len;
        let order = self.order.as_deref();
        range.map(move |i| order.map_or(i as u32, |o| o[i]))
    }
}

/// How an epoch orders its rows.
///
/// `bool` converts: `true` is [`Shuffle::Full`], `false` is [`Shuffle::Off`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shuffle {
    /// Rows in stored order, every epoch.
    Off,
    /// A fresh uniform permutation of all n rows every epoch (the default).
    #[default]
    Full,
    /// The out-of-core order of [`windowed_order`]: shuffled chunks of `chunk_rows`
    /// consecutive rows, rows shuffled within windows of `window_chunks` chunks. For a
    /// memory-mapped file larger than RAM, where a full permutation would make every read
    /// a page fault.
    Windowed {
        /// Consecutive rows per chunk (≥ 1).
        chunk_rows: usize,
        /// Chunks whose rows are shuffled together (≥ 1).
        window_chunks: usize,
    },
}

impl From<bool> for Shuffle {
    fn from(shuffle: bool) -> Self {
        if shuffle { Shuffle::Full } else { Shuffle::Off }
    }
}

impl Shuffle {
    /// Checks the window sizes.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a zero `chunk_rows` or `window_chunks`.
    pub fn validate(self) -> Result<()> {
        if let Shuffle::Windowed {
            chunk_rows,
            window_chunks,
        } = self
        {
            if chunk_rows == 0 {
                return Err(Error::param("chunk_rows", 0, "must be ≥ 1"));
            }
            if window_chunks == 0 {
                return Err(Error::param("window_chunks", 0, "must be ≥ 1"));
            }
        }
        Ok(())
    }
}

/// The batches of epoch `epoch` of a run with this `seed`.
///
/// The order depends only on `(seed, epoch, n)` and `shuffle`, so a run can start at any
/// epoch (resume) and every backend and data source sees the same batches.
///
/// # Errors
/// [`Error::Empty`] for `n = 0`; [`Error::InvalidParameter`] for `batch_size = 0`, a zero
/// window size, or `n` beyond `u32::MAX` (row indices are 32-bit on the device).
pub fn epoch_plan(
    seed: u64,
    epoch: usize,
    n: usize,
    batch_size: usize,
    shuffle: impl Into<Shuffle>,
    drop_last: bool,
) -> Result<EpochPlan> {
    let shuffle = shuffle.into();
    shuffle.validate()?;
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
    let order = match shuffle {
        // One batch of every row: an order would change only the order of the sums, and
        // cost a permutation (and, on a GPU, its upload and gathered reads) every epoch.
        _ if batches == 1 && batch_size == n => None,
        Shuffle::Off => None,
        Shuffle::Full => {
            let mut order: Vec<u32> = (0..n as u32).collect();
            // A fresh stream per epoch, from (seed, epoch) only.
            let stream = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (epoch as u64).wrapping_add(1);
            order.shuffle(&mut Xoshiro256PlusPlus::seed_from_u64(stream));
            Some(order)
        }
        Shuffle::Windowed {
            chunk_rows,
            window_chunks,
        } => Some(windowed_order(seed, epoch, n, chunk_rows, window_chunks)?),
    };
    Ok(EpochPlan {
        order,
        n,
        batch_size,
        batches,
        starts: None,
    })
}

/// The batches of epoch `epoch` over a subset of the rows: [`epoch_plan`] over
/// `rows.len()` positions, each position then naming `rows[position]`. This is how a fit
/// trains on everything but a held-out validation set, with the same shuffling rules.
///
/// ```
/// use gradflow::data::epoch_plan_over;
/// let plan = epoch_plan_over(1, 0, &[10, 20, 30, 40, 50], 2, true, false)?;
/// let mut seen: Vec<u32> = plan.batches().flat_map(|b| plan.rows(b)).collect();
/// seen.sort();
/// assert_eq!(seen, [10, 20, 30, 40, 50]);
/// # Ok::<(), gradflow::Error>(())
/// ```
///
/// # Errors
/// As [`epoch_plan`] with n = `rows.len()`.
pub fn epoch_plan_over(
    seed: u64,
    epoch: usize,
    rows: &[u32],
    batch_size: usize,
    shuffle: impl Into<Shuffle>,
    drop_last: bool,
) -> Result<EpochPlan> {
    let mut plan = epoch_plan(seed, epoch, rows.len(), batch_size, shuffle, drop_last)?;
    plan.order = Some(match plan.order.take() {
        Some(positions) => positions.iter().map(|&i| rows[i as usize]).collect(),
        None => rows.to_vec(),
    });
    Ok(plan)
}

/// The out-of-core epoch order for a source too large for random reads.
///
/// 1. The rows are cut into chunks of `chunk_rows` consecutive rows (the last may be short).
/// 2. The chunk order is shuffled.
/// 3. Consecutive shuffled chunks are grouped into windows of `window_chunks` chunks, and
///    the rows of each window are shuffled together.
///
/// Reading a window touches `window_chunks` contiguous runs of the file, so the reads stay
/// sequential. **What it gives up** against a full permutation: rows of one chunk always
/// land in the same window, so a batch mixes rows from at most `window_chunks` chunks, and
/// two rows of one chunk are never more than a window apart in the epoch. Rows that are
/// ordered in the file (sorted by date or by label) therefore stay partly grouped; a larger
/// window trades memory for randomness, and `window_chunks ≥ n / chunk_rows` is a full
/// permutation. Like [`epoch_plan`], the order depends only on `(seed, epoch, n)` and
/// the two sizes.
///
/// # Errors
/// [`Error::InvalidParameter`] for a zero size; [`Error::Empty`] for n = 0; n beyond
/// `u32::MAX`.
pub fn windowed_order(
    seed: u64,
    epoch: usize,
    n: usize,
    chunk_rows: usize,
    window_chunks: usize,
) -> Result<Vec<u32>> {
    if n == 0 {
        return Err(Error::Empty {
            what: "windowed order",
            detail: "n = 0 rows".into(),
        });
    }
    if n > u32::MAX as usize {
        return Err(Error::param(
            "n",
            n,
            "must be ≤ 4294967295 (row indices are u32)",
        ));
    }
    if chunk_rows == 0 {
        return Err(Error::param("chunk_rows", 0, "must be ≥ 1"));
    }
    if window_chunks == 0 {
        return Err(Error::param("window_chunks", 0, "must be ≥ 1"));
    }
    let stream = seed.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ (epoch as u64).wrapping_add(0x5EED);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(stream);
    let mut chunks: Vec<usize> = (0..n.div_ceil(chunk_rows)).collect();
    chunks.shuffle(&mut rng);
    let mut order = Vec::with_capacity(n);
    for window in chunks.chunks(window_chunks) {
        let start = order.len();
        for &c in window {
            order.extend((c * chunk_rows..((c + 1) * chunk_rows).min(n)).map(|r| r as u32));
        }
        order[start..].shuffle(&mut rng);
    }
    Ok(order)
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
        // One batch of every row is read in stored order, whatever the shuffle.
        let windowed = Shuffle::Windowed {
            chunk_rows: 3,
            window_chunks: 2,
        };
        for shuffle in [Shuffle::Full, windowed] {
            assert_eq!(
                epoch_plan(0, 4, 10, 10, shuffle, false).unwrap().order(),
                None
            );
        }
        // Dropping the remainder leaves rows out: that order still shuffles.
        assert!(
            epoch_plan(0, 0, 10, 6, true, true)
                .unwrap()
                .order()
                .is_some()
        );
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
    #[test]
    fn windowed_order_is_a_permutation_that_keeps_chunks_in_windows() {
        let (n, chunk, window) = (1003, 50, 4);
        let order = windowed_order(7, 2, n, chunk, window).unwrap();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, (0..n as u32).collect::<Vec<_>>());
        // Walk the order closing a segment as soon as every chunk begun in it is complete:
        // segments nest inside the true windows, so none may span more than `window` chunks.
        let size = |c: u32| ((c as usize + 1) * chunk).min(n) - c as usize * chunk;
        let (mut open, mut left) = (std::collections::BTreeSet::new(), 0usize);
        for &r in &order {
            let c = r / chunk as u32;
            if open.insert(c) {
                left += size(c);
                assert!(open.len() <= window, "a window spans chunks {open:?}");
            }
            left -= 1;
            if left == 0 {
                open.clear();
            }
        }
        assert_ne!(order, windowed_order(7, 3, n, chunk, window).unwrap());
        assert_eq!(order, windowed_order(7, 2, n, chunk, window).unwrap());
    }
}
