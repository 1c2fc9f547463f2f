//! The worker thread and its ring of host buffers.
//!
//! `depth` host buffers circulate between two channels: the worker takes a free one,
//! gathers the next batch of the epoch into it and sends it full; the consumer uploads
//! it and hands it back. The worker can thus run at most `depth` batches ahead, and no
//! buffer is allocated per batch.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::Scope;
use std::time::{Duration, Instant};

use crate::data::{Batch, EpochPlan, RowSource, RowTargets};
use crate::error::{Error, Result};

/// One batch's targets on the host.
#[derive(Debug, Clone, PartialEq)]
pub enum HostTargets {
    /// Real values.
    Real(Vec<f32>),
    /// Class labels.
    Labels(Vec<u32>),
}

/// One gathered batch: its rows' features (row-major) and targets, in plan order.
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    /// Features, `len × p`.
    pub x: Vec<f32>,
    /// Targets, one per row.
    pub targets: HostTargets,
    epoch: u64,
    index: usize,
    /// The source's error for this batch (a bad row in a file, say), handed to the consumer.
    error: Option<Error>,
}

struct Job {
    id: u64,
    plan: Arc<EpochPlan>,
}

/// Gathers batches ahead on a scoped worker thread.
///
/// ```
/// use gradflow::data::{epoch_plan, Synthetic};
/// use gradflow::schedule::Prefetcher;
/// let data = Synthetic::linear(10, 2).seed(1).dataset()?;
/// let plan = std::sync::Arc::new(epoch_plan(7, 0, 10, 4, true, false)?);
/// std::thread::scope(|s| -> gradflow::Result<()> {
///     let mut feed = Prefetcher::spawn(s, &data, 2)?;
///     feed.begin_epoch(&plan);
///     for batch in plan.batches() {
///         let b = feed.next(batch)?;
///         let first = plan.rows(batch).next().unwrap() as usize;
///         assert_eq!(&b.x[..2], data.row(first)); // the plan's rows, in its order
///         feed.recycle(b);
///     }
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
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("id", &self.id).finish()
    }
}

impl Prefetcher {
    /// Starts the worker on `scope`, with `depth` host buffers over `source`. The worker
    /// ends when the `Prefetcher` is dropped.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for `depth < 2` (named `ring_depth`).
    pub fn spawn<'scope, 'env, S: RowSource>(
        scope: &'scope Scope<'scope, 'env>,
        source: &'env S,
        depth: usize,
    ) -> Result<Self> {
        if depth < 2 {
            return Err(Error::param("ring_depth", depth, "must be ≥ 2"));
        }
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let (full_tx, full_rx) = mpsc::channel();
        let (free_tx, free_rx) = mpsc::channel();
        for _ in 0..depth {
            let targets = match source.classes() {
                None => HostTargets::Real(Vec::new()),
                Some(_) => HostTargets::Labels(Vec::new()),
            };
            let empty = HostBatch {
                x: Vec::new(),
                targets,
                epoch: 0,
                index: 0,
                error: None,
            };
            // The receiver is alive: it was made above.
            let _ = free_tx.send(empty);
        }
        scope.spawn(move || worker(source, &jobs_rx, &full_tx, &free_rx));
        Ok(Prefetcher {
            jobs: jobs_tx,
            full: full_rx,
            free: free_tx,
            epoch: 0,
            waited: Duration::ZERO,
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

    /// The gathered rows of `batch` (waits for the worker; see [`Prefetcher::waited`]).
    /// Batches must be taken in plan order.
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
            if b.index != batch.index {
                return Err(Error::Device {
                    message: format!(
                        "streaming worker delivered batch {} where {} was due",
                        b.index, batch.index
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
}

fn worker<S: RowSource>(
    source: &S,
    jobs: &Receiver<Job>,
    full: &Sender<HostBatch>,
    free: &Receiver<HostBatch>,
) {
    let mut rows = Vec::new();
    let mut next = jobs.recv().ok();
    'jobs: while let Some(job) = next.take() {
        for batch in job.plan.batches() {
            match jobs.try_recv() {
                Ok(newer) => {
                    next = Some(newer);
                    continue 'jobs;
                }
                Err(TryRecvError::Disconnected) => return,
                Err(TryRecvError::Empty) => {}
            }
            // Blocks while `depth` batches are ahead: the consumer recycles them.
            let Ok(mut b) = free.recv() else { return };
            rows.clear();
            rows.extend(job.plan.rows(batch));
            b.x.resize(rows.len() * source.p(), 0.0);
            let targets = match &mut b.targets {
                HostTargets::Real(v) => {
                    v.resize(rows.len(), 0.0);
                    RowTargets::Real(v)
                }
                HostTargets::Labels(v) => {
                    v.resize(rows.len(), 0);
                    RowTargets::Classes(v)
                }
            };
            b.error = source.gather(&rows, &mut b.x, targets).err();
            b.epoch = job.id;
            b.index = batch.index;
            if full.send(b).is_err() {
                return;
            }
        }
        next = jobs.recv().ok();
    }
}
