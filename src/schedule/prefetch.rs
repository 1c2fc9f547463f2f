//! The worker thread and its ring of host buffers.
//!
//! `depth` host buffers circulate between two channels: the worker takes a free one,
//! gathers the next *group* of the epoch's batches into it and sends it full; the consumer
//! uploads it and hands it back. The worker can thus run at most `depth` groups ahead, and
//! no buffer is allocated per batch.
//!
//! A group is `group` consecutive batches of the plan (the last group of an epoch may hold
//! fewer): their rows are consecutive positions of the epoch order, so one buffer holds
//! them back to back and one upload moves them. Small batches then cost one upload per
//! group instead of one per batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::Scope;
use std::time::{Duration, Instant};

use crate::data::{Batch, EpochPlan, HostTargets, RowSource, RowWeights, gather_rows};
use crate::error::{Error, Result};

/// One gathered group of consecutive batches: their rows' features (row-major) and
/// targets, in plan order.
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    /// Features, `rows × p`.
    pub x: Vec<f32>,
    /// Targets, one per row.
    pub targets: HostTargets,
    /// Loss weights, one per row (empty when rows are unweighted).
    pub weights: Vec<f32>,
    /// Index of the group's first batch in the epoch.
    pub first: usize,
    /// Batches in the group.
    pub count: usize,
    /// Position of the group's first row in the epoch order: batch `b` of the group is
    /// rows `b.start − start ..` of `x`.
    pub start: usize,
    epoch: u64,
    /// The source's error for this batch (a bad row in a file, say), handed to the consumer.
    error: Option<Error>,
}

struct Job {
    id: u64,
    plan: Arc<EpochPlan>,
}

impl HostBatch {
    /// Whether `batch` is one of this group's.
    pub fn holds(&self, batch: Batch) -> bool {
        (self.first..self.first + self.count).contains(&batch.index)
    }

    /// Row offset of `batch` within the group.
    pub fn offset(&self, batch: Batch) -> usize {
        batch.start - self.start
    }

    /// The rows' loss weights, when the rows are weighted.
    pub fn row_weights(&self) -> Option<&[f32]> {
        (!self.weights.is_empty()).then_some(&self.weights[..])
    }

    /// Rows gathered.
    pub fn rows(&self) -> usize {
        self.targets.view().len()
    }
}

/// Gathers groups of batches ahead on a scoped worker thread.
///
/// ```
/// use gradflow::data::{epoch_plan, Synthetic};
/// use gradflow::schedule::Prefetcher;
/// let data = Synthetic::linear(10, 2).seed(1).dataset()?;
/// let plan = std::sync::Arc::new(epoch_plan(7, 0, 10, 4, true, false)?); // batches 4, 4, 2
/// std::thread::scope(|s| -> gradflow::Result<()> {
///     let mut feed = Prefetcher::spawn(s, &data, 2, 2)?; // 2 buffers of 2 batches
///     feed.begin_epoch(&plan);
///     let mut batches = plan.batches();
///     let group = feed.next(batches.next().unwrap())?;
///     assert_eq!((group.first, group.count, group.rows()), (0, 2, 8));
///     let second = batches.next().unwrap();
///     let row = plan.rows(second).next().unwrap() as usize;
///     let at = group.offset(second) * 2; // p = 2
///     assert_eq!(&group.x[at..at + 2], data.row(row)); // the plan's rows, in its order
///     feed.recycle(group);
///     let last = feed.next(batches.next().unwrap())?;
///     assert_eq!((last.first, last.count, last.rows()), (2, 1, 2));
///     Ok(())
/// })?;
/// # Ok::<(), gradflow::Error>(())
/// ```
#[derive(Debug)]
pub struct Prefetcher {
    jobs: Sender<Job>,
    full: Receiver<HostBatch>,
    free: Sender<HostBatch>,
    epoch: u64,
    waited: Duration,
    /// Nanoseconds the worker has spent in `RowSource::gather`.
    gathering: Arc<AtomicU64>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("id", &self.id).finish()
    }
}

impl Prefetcher {
    /// Starts the worker on `scope`, with `depth` host buffers of `group` batches each
    /// over `source`. The worker ends when the `Prefetcher` is dropped.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for `depth < 2` (named `ring_depth`) or `group = 0`
    /// (named `upload_batches`).
    pub fn spawn<'scope, 'env, S: RowSource + ?Sized>(
        scope: &'scope Scope<'scope, 'env>,
        source: &'env S,
        depth: usize,
        group: usize,
    ) -> Result<Self> {
        Self::weighted(scope, source, None, depth, group)
    }

    /// As [`Prefetcher::spawn`], with each row's loss weight gathered beside it
    /// ([`HostBatch::weights`]).
    ///
    /// # Errors
    /// As [`Prefetcher::spawn`].
    pub fn weighted<'scope, 'env, S: RowSource + ?Sized>(
        scope: &'scope Scope<'scope, 'env>,
        source: &'env S,
        weights: Option<&'env RowWeights<'env>>,
        depth: usize,
        group: usize,
    ) -> Result<Self> {
        if depth < 2 {
            return Err(Error::param("ring_depth", depth, "must be ≥ 2"));
        }
        if group == 0 {
            return Err(Error::param("upload_batches", 0, "must be ≥ 1"));
        }
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let (full_tx, full_rx) = mpsc::channel();
        let (free_tx, free_rx) = mpsc::channel();
        for _ in 0..depth {
            let empty = HostBatch {
                x: Vec::new(),
                targets: HostTargets::empty(source.target_kind()),
                weights: Vec::new(),
                first: 0,
                count: 0,
                start: 0,
                epoch: 0,
                error: None,
            };
            // The receiver is alive: it was made above.
            let _ = free_tx.send(empty);
        }
        let gathering = Arc::new(AtomicU64::new(0));
        let busy = Arc::clone(&gathering);
        scope.spawn(move || {
            let gather = Gather {
                source,
                weights,
                group,
                busy: &busy,
            };
            worker(&gather, &jobs_rx, &full_tx, &free_rx);
        });
        Ok(Prefetcher {
            jobs: jobs_tx,
            full: full_rx,
            free: free_tx,
            epoch: 0,
            waited: Duration::ZERO,
            gathering,
        })
    }

    /// Starts gathering the batches of `plan`; batches of an earlier epoch not taken
    /// yet are dropped.
    pub fn begin_epoch(&mut self, plan: &Arc<EpochPlan>) {
        self.epoch += 1;
        let job = Job {
            id: self.epoch,
            plan: Arc::clone(plan), // shared, not copied: the order is n × 4 bytes
        };
        // A worker that is gone is reported by `next`.
        let _ = self.jobs.send(job);
    }

    /// The gathered group that starts with `batch` (waits for the worker; see
    /// [`Prefetcher::waited`]). Groups must be taken in plan order.
    ///
    /// # Errors
    /// [`Error::Device`] when the worker has stopped (it panicked) or delivers batches
    /// out of order.
    pub fn next(&mut self, batch: Batch) -> Result<HostBatch> {
        loop {
            let started = Instant::now();
            let got = self.full.recv();
            self.waited += started.elapsed();
            let Ok(mut b) = got else {
                return Err(Error::Device {
                    message: "the streaming worker thread stopped".into(),
                });
            };
            if b.epoch != self.epoch {
                self.recycle(b); // left over from an epoch that ended early
                continue;
            }
            if let Some(e) = b.error.take() {
                return Err(e);
            }
            if b.first != batch.index {
                return Err(Error::Device {
                    message: format!(
                        "streaming worker delivered batch {} where {} was due",
                        b.first, batch.index
                    ),
                });
            }
            return Ok(b);
        }
    }

    /// Hands a buffer back to the worker once its contents are uploaded.
    pub fn recycle(&self, batch: HostBatch) {
        let _ = self.free.send(batch);
    }

    /// Time spent in [`Prefetcher::next`] waiting for the worker: the device starved of
    /// data.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// Time the worker has spent gathering rows from the source: with
    /// [`Prefetcher::waited`], how much of the gathering was hidden behind compute.
    pub fn gathering(&self) -> Duration {
        Duration::from_nanos(self.gathering.load(Ordering::Relaxed))
    }
}

/// What the worker gathers from, and where it counts its time.
struct Gather<'a, S: ?Sized> {
    source: &'a S,
    weights: Option<&'a RowWeights<'a>>,
    group: usize,
    busy: &'a AtomicU64,
}

fn worker<S: RowSource + ?Sized>(
    g: &Gather<'_, S>,
    jobs: &Receiver<Job>,
    full: &Sender<HostBatch>,
    free: &Receiver<HostBatch>,
) {
    let mut rows = Vec::new();
    let mut next = jobs.recv().ok();
    'jobs: while let Some(job) = next.take() {
        let batches: Vec<Batch> = job.plan.batches().collect();
        for batches in batches.chunks(g.group) {
            match jobs.try_recv() {
                Ok(newer) => {
                    next = Some(newer);
                    continue 'jobs;
                }
                Err(TryRecvError::Disconnected) => return,
                Err(TryRecvError::Empty) => {}
            }
            // Blocks while `depth` groups are ahead: the consumer recycles them.
            let Ok(mut b) = free.recv() else { return };
            rows.clear();
            for &batch in batches {
                rows.extend(job.plan.rows(batch));
            }
            let started = Instant::now();
            let into = (&mut b.x, &mut b.targets, &mut b.weights);
            b.error = gather_rows(g.source, g.weights, &rows, into).err();
            g.busy
                .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            b.epoch = job.id;
            b.first = batches[0].index;
            b.count = batches.len();
            b.start = batches[0].start;
            if full.send(b).is_err() {
                return;
            }
        }
        next = jobs.recv().ok();
    }
}
