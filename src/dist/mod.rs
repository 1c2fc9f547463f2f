//! Data-parallel training across processes: the communicator a fit runs over.
//!
//! A distributed fit has the semantics of PyTorch's `DistributedDataParallel` and
//! Horovod: every rank runs the same epoch plan; each global batch of `B` rows is cut into
//! near-equal contiguous parts, one per rank ([`part`]); each rank computes its part's loss
//! and gradient sums, one all-reduce per step adds them up, and every rank applies the
//! same update to the same parameters. The fit therefore equals the single-process fit
//! with the same global batch, up to the order of the f32 sums.
//!
//! | type | ranks are | for |
//! |---|---|---|
//! | [`Solo`] | one process | the default: no communication at all |
//! | [`LocalGroup`] | threads of one process | tests and examples of the protocol without MPI |
//! | `Mpi` (feature `mpi`) | MPI processes (`mpiexec -n N`, Slurm's `srun`) | real runs, one machine or many |
//!
//! **Every rank leaves a collective the same way.** Each collective of a fit carries the
//! rank's own status: a rank whose step failed (a bad row in its part of a file, a device
//! error) still joins the step's all-reduce, flagged, and then every rank returns an error
//! — the failing rank its own, the others [`Error::Rank`] with its
//! message — so the job ends on every rank at the same step instead of hanging. An error
//! that strikes outside a collective ends the job through [`Comm::abort`].
//!
//! ```
//! use gradflow::dist::LocalGroup;
//! use gradflow::{data::Synthetic, model::LinearRegression, TrainConfig, Trainer};
//! let data = Synthetic::linear(1_000, 4).seed(1).dataset()?;
//! let config = TrainConfig::sgd().batch_size(64).epochs(3);
//! let single = Trainer::new(config.clone())?.fit(&mut LinearRegression::new(), &data)?;
//! // Three ranks (threads here; processes under MPI), each computing a third of every batch.
//! let reports = LocalGroup::run(3, |comm| {
//!     let trainer = Trainer::new(config.clone())?.with_comm(comm);
//!     trainer.fit(&mut LinearRegression::new(), &data)
//! });
//! for report in reports {
//!     let report = report?;
//!     for (a, b) in report.epoch_losses.iter().zip(&single.epoch_losses) {
//!         assert!((a - b).abs() <= 1e-5 * b.abs());
//!     }
//! }
//! # Ok::<(), gradflow::Error>(())
//! ```

mod local;
#[cfg(feature = "mpi")]
mod mpi;

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use local::LocalGroup;
#[cfg(feature = "mpi")]
pub use mpi::Mpi;

use crate::error::{Error, Result};

/// The ranks of a distributed fit and the two collectives it needs.
///
/// Implementations must give **every rank the same bits** from
/// [`Comm::all_reduce_sum`]: the ranks apply the sum as an update, so a difference in the
/// last bit would let their parameters drift apart. (MPI's allreduce does: MPICH's and
/// Open MPI's algorithms combine each pair of values once, and `a + b == b + a` in IEEE
/// arithmetic; [`LocalGroup`] sums in rank order.)
pub trait Comm: Send + Sync {
    /// This process's rank, `0 .. size`.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// Replaces `values` on every rank by their elementwise sum over the ranks.
    ///
    /// # Errors
    /// [`Error::Comm`] when the group is broken (a rank aborted or left).
    fn all_reduce_sum(&self, values: &mut [f64]) -> Result<()>;
    /// Every rank's `bytes`, in rank order.
    ///
    /// # Errors
    /// As [`Comm::all_reduce_sum`].
    fn all_gather(&self, bytes: &[u8]) -> Result<Vec<Vec<u8>>>;
    /// Ends every rank of the job because this one failed where the others cannot learn
    /// of it at a collective; `message` says why. MPI aborts the job (`MPI_Abort`: the
    /// launcher ends every process, exit status non-zero); a [`LocalGroup`] marks itself
    /// broken, so the other ranks' next collective fails with the message.
    fn abort(&self, message: &str);
}

/// A shared communicator: one rank's `Comm` used by several trainers (a resumed fit, a
/// program that agrees on its inputs before it trains).
impl<C: Comm + ?Sized> Comm for Arc<C> {
    fn rank(&self) -> usize {
        (**self).rank()
    }
    fn size(&self) -> usize {
        (**self).size()
    }
    fn all_reduce_sum(&self, values: &mut [f64]) -> Result<()> {
        (**self).all_reduce_sum(values)
    }
    fn all_gather(&self, bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
        (**self).all_gather(bytes)
    }
    fn abort(&self, message: &str) {
        (**self).abort(message)
    }
}

/// `Ok` on every rank when `local` is `Ok` on every rank; otherwise an error on every
/// rank — this rank's own, or [`Error::Rank`] with the first failing
/// rank's message. How a program makes sure that every rank has its inputs (a file each
/// rank opens) before they start a fit together, instead of one rank leaving and the
/// others waiting for it.
///
/// ```
/// use gradflow::dist::{agree, Comm, LocalGroup};
/// use gradflow::io::csv;
/// let outcomes = LocalGroup::run(3, |comm| {
///     // Rank 2's node lacks the file.
///     let path = if comm.rank() == 2 { "missing.csv" } else { "tests/data/iris-train.csv" };
///     agree(&comm, csv::read(path, &Default::default()))
/// });
/// assert!(outcomes.iter().all(Result::is_err)); // every rank stops, none waits
/// # Ok::<(), gradflow::Error>(())
/// ```
///
/// # Errors
/// As described, and [`Error::Comm`] when the group is broken.
pub fn agree<T>(comm: &(impl Comm + ?Sized), local: Result<T>) -> Result<T> {
    let mut values = vec![f64::from(u8::from(local.is_err()))];
    comm.all_reduce_sum(&mut values)?;
    if values[0] == 0.0 {
        return local;
    }
    let message = local.as_ref().err().map(ToString::to_string);
    let all = comm.all_gather(message.as_deref().unwrap_or("").as_bytes())?;
    local?;
    let first = all.iter().enumerate().find(|(_, m)| !m.is_empty());
    let (rank, message) = first.map_or((0, "an unknown error".into()), |(r, m)| {
        (r, String::from_utf8_lossy(m).into_owned())
    });
    Err(Error::Rank {
        rank,
        size: comm.size(),
        message,
    })
}

/// One process on its own: every collective is the identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct Solo;

impl Comm for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_reduce_sum(&self, _: &mut [f64]) -> Result<()> {
        Ok(())
    }
    fn all_gather(&self, bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
        Ok(vec![bytes.to_vec()])
    }
    fn abort(&self, _: &str) {}
}

/// Rank `rank`'s part of `len` positions cut into `size` near-equal contiguous parts (the
/// first `len % size` parts one longer), as positions `0 .. len`.
///
/// ```
/// use gradflow::dist::part;
/// let parts: Vec<_> = (0..3).map(|r| part(10, r, 3)).collect();
/// assert_eq!(parts, [0..4, 4..7, 7..10]);
/// assert_eq!(part(1, 2, 3), 1..1); // fewer rows than ranks: some parts are empty
/// ```
pub fn part(len: usize, rank: usize, size: usize) -> Range<usize> {
    let (base, extra) = (len / size, len % size);
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

/// A fit's communicator and what it needs beside it. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Group {
    comm: Arc<dyn Comm>,
    /// Set when a collective found that some rank failed: every rank knows, so the
    /// error needs no abort.
    failed_together: Arc<AtomicBool>,
    /// Collectives run and the nanoseconds spent in them (waiting for the other ranks
    /// included), for the report.
    calls: Arc<AtomicU64>,
    nanos: Arc<AtomicU64>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Group(rank {} of {})", self.rank(), self.size())
    }
}

impl Group {
    pub fn new(comm: Arc<dyn Comm>) -> Self {
        Group {
            comm,
            failed_together: Arc::new(AtomicBool::new(false)),
            calls: Arc::new(AtomicU64::new(0)),
            nanos: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Collectives run so far and the time spent in them.
    pub fn spent(&self) -> (u64, Duration) {
        let nanos = self.nanos.load(Ordering::Relaxed);
        (
            self.calls.load(Ordering::Relaxed),
            Duration::from_nanos(nanos),
        )
    }

    /// Runs one collective, counting it and its time.
    fn timed<T>(&self, f: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = f();
        self.calls.fetch_add(1, Ordering::Relaxed);
        let nanos = started.elapsed().as_nanos() as u64;
        self.nanos.fetch_add(nanos, Ordering::Relaxed);
        out
    }

    pub fn rank(&self) -> usize {
        self.comm.rank()
    }

    pub fn size(&self) -> usize {
        self.comm.size()
    }

    /// This rank's part of `len` positions.
    pub fn part(&self, len: usize) -> Range<usize> {
        part(len, self.rank(), self.size())
    }

    /// Sums `values` over the ranks, with this rank's status: `Ok` on every rank when
    /// every rank was fine; otherwise every rank returns an error (the failing rank its
    /// own, the others [`Error::Rank`] naming the first failing rank and its message).
    pub fn reduce<T>(&self, values: &mut Vec<f64>, local: Result<T>) -> Result<T> {
        values.push(f64::from(u8::from(local.is_err())));
        let reduced = self.timed(|| self.comm.all_reduce_sum(values));
        let failed = values.pop().is_some_and(|flag| flag > 0.0);
        reduced?;
        if !failed {
            return local;
        }
        self.failed_together.store(true, Ordering::Relaxed);
        // The flag is known to be up: `agree` finds it again and gathers the messages.
        agree(&*self.comm, local)
    }

    /// Every rank's `bytes` (this rank's `local`, when it is `Ok`), in rank order, with
    /// this rank's status as in [`Group::reduce`].
    pub fn gather(&self, local: Result<Vec<u8>>) -> Result<Vec<Vec<u8>>> {
        let mut no_values = Vec::new();
        let bytes = self.reduce(&mut no_values, local)?;
        self.timed(|| self.comm.all_gather(&bytes))
    }

    /// `Ok` on every rank when `local` is `Ok` on every rank (see [`Group::reduce`]).
    pub fn agree<T>(&self, local: Result<T>) -> Result<T> {
        self.reduce(&mut Vec::new(), local)
    }

    /// Ends the job for `error` unless every rank already knows of it (it came out of a
    /// collective, or is the group's own failure): the other ranks cannot learn of it at
    /// a collective and would wait for this rank forever.
    pub fn abort_unless_shared(&self, error: &Error) {
        let shared = self.failed_together.load(Ordering::Relaxed)
            || matches!(error, Error::Rank { .. } | Error::Comm { .. });
        if !shared {
            self.comm
                .abort(&format!("rank {} of {}: {error}", self.rank(), self.size()));
        }
    }

    /// Checks that every rank holds the same parameters, bit for bit (a cheap guard:
    /// one all-gather of a checksum).
    pub fn check_same(&self, params: &[Vec<f32>], epoch: usize) -> Result<()> {
        let mut hash = 0xcbf2_9ce4_8422_2325u64; // FNV-1a over the bits
        for v in params.iter().flatten() {
            hash = (hash ^ u64::from(v.to_bits())).wrapping_mul(0x0100_0000_01b3);
        }
        let all = self.gather(Ok(hash.to_le_bytes().to_vec()))?;
        match all.iter().position(|h| h[..] != hash.to_le_bytes()) {
            None => Ok(()),
            Some(rank) => Err(Error::Comm {
                message: format!(
                    "after epoch {epoch} rank {rank}'s parameters differ from rank {}'s: the \
                     communicator's sums are not the same on every rank",
                    self.rank()
                ),
            }),
        }
    }
}

/// f64s as bytes and back, for [`Comm::all_gather`].
pub(crate) fn to_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The inverse of [`to_bytes`].
pub(crate) fn from_bytes(bytes: &[u8]) -> Vec<f64> {
    bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_every_position_once_in_order() {
        for size in 1..6 {
            for len in 0..40 {
                let parts: Vec<_> = (0..size).map(|r| part(len, r, size)).collect();
                assert_eq!(parts[0].start, 0);
                assert_eq!(parts[size - 1].end, len);
                for w in parts.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                    assert!(w[0].len() >= w[1].len() && w[0].len() <= w[1].len() + 1);
                }
            }
        }
    }

    #[test]
    fn a_failure_on_one_rank_is_every_rank_s() {
        let results = LocalGroup::run(3, |comm| {
            let group = Group::new(Arc::new(comm));
            let mut values = vec![group.rank() as f64];
            let local = if group.rank() == 1 {
                Err(Error::param("row", 7, "must be finite"))
            } else {
                Ok(())
            };
            group.reduce(&mut values, local)
        });
        assert!(matches!(&results[1], Err(Error::InvalidParameter { .. })));
        for r in [0, 2] {
            match &results[r] {
                Err(Error::Rank {
                    rank,
                    size,
                    message,
                }) => {
                    assert_eq!((*rank, *size), (1, 3));
                    assert!(message.contains("row 7"), "{message}");
                }
                other => panic!("rank {r}: {other:?}"),
            }
        }
        let sums = LocalGroup::run(3, |comm| {
            let group = Group::new(Arc::new(comm));
            let mut values = vec![group.rank() as f64, 1.0];
            group.reduce(&mut values, Ok(())).map(|()| values)
        });
        for s in sums {
            assert_eq!(s.unwrap(), [3.0, 3.0]);
        }
    }
}
