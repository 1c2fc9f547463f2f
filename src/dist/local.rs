//! Ranks as threads of one process: the protocol of a distributed fit without MPI.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::{Comm, from_bytes, to_bytes};
use crate::error::{Error, Result};

/// A group of ranks that are threads of this process, exchanging through shared memory.
///
/// It runs the same protocol as MPI — the same parts of each batch, the same all-reduce
/// per step, the same failure handling — so the default build tests a distributed fit
/// against a single-process one, and a program can try the semantics before it runs
/// under `mpiexec`. Sums are taken in rank order, the same on every rank.
///
/// ```
/// use gradflow::dist::{Comm, LocalGroup};
/// let sums = LocalGroup::run(4, |comm| {
///     let mut v = [comm.rank() as f64, 1.0];
///     comm.all_reduce_sum(&mut v).map(|()| v)
/// });
/// for s in sums {
///     assert_eq!(s?, [6.0, 4.0]);
/// }
/// # Ok::<(), gradflow::Error>(())
/// ```
#[derive(Debug)]
pub struct LocalGroup;

impl LocalGroup {
    /// Runs `f` on `size` threads, one per rank, each with its rank's communicator, and
    /// returns their results in rank order. A rank that panics or returns leaves the
    /// group: a collective the others start afterwards fails (never hangs).
    ///
    /// # Panics
    /// When `size` is 0, or re-raises a rank's panic once every rank has ended.
    pub fn run<T: Send>(size: usize, f: impl Fn(LocalRank) -> T + Sync) -> Vec<T> {
        assert!(size > 0, "a group needs at least one rank");
        let shared = Arc::new(Shared {
            size,
            state: Mutex::new(State {
                slots: vec![None; size],
                ..State::default()
            }),
            changed: Condvar::new(),
        });
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..size)
                .map(|rank| {
                    let comm = LocalRank {
                        rank,
                        shared: Arc::clone(&shared),
                    };
                    let f = &f;
                    scope.spawn(move || f(comm))
                })
                .collect();
            let results: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
            results
                .into_iter()
                .map(|r| r.unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                .collect()
        })
    }
}

/// One rank of a [`LocalGroup`]: its [`Comm`].
#[derive(Debug)]
pub struct LocalRank {
    rank: usize,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    size: usize,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// What each rank brought to the current exchange.
    slots: Vec<Option<Vec<u8>>>,
    arrived: usize,
    /// Exchanges completed.
    round: u64,
    /// The last completed exchange's contributions, and how many ranks have yet to read them.
    all: Arc<Vec<Vec<u8>>>,
    reading: usize,
    /// Set by an abort, or when a rank leaves the group.
    broken: Option<String>,
}

/// How long a rank waits for the others before the group counts as broken: far beyond
/// any step, short enough that a test never hangs.
const PATIENCE: Duration = Duration::from_secs(600);

impl LocalRank {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A rank that panicked while holding the lock left the state whole (every
        // update below is a few assignments), so the poison is ignored.
        self.shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits while `blocked` holds, or fails once the group is broken or time runs out.
    fn wait<'g>(
        &self,
        mut state: MutexGuard<'g, State>,
        blocked: impl Fn(&State) -> bool,
    ) -> Result<MutexGuard<'g, State>> {
        while blocked(&state) {
            if let Some(why) = &state.broken {
                return Err(Error::Comm {
                    message: why.clone(),
                });
            }
            let (next, timeout) = self
                .shared
                .changed
                .wait_timeout(state, PATIENCE)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            state = next;
            if timeout.timed_out() && blocked(&state) {
                return Err(Error::Comm {
                    message: format!(
                        "rank {} waited {} s for the other ranks",
                        self.rank,
                        PATIENCE.as_secs()
                    ),
                });
            }
        }
        // Not blocked: what was waited for happened, even if the group broke since (a
        // rank that read the last exchange and left).
        Ok(state)
    }

    /// Every rank's bytes, in rank order.
    fn exchange(&self, mine: Vec<u8>) -> Result<Arc<Vec<Vec<u8>>>> {
        let state = self.lock();
        // The previous exchange's results must be read by every rank before its slots
        // are filled again.
        let mut state = self.wait(state, |s| s.reading > 0)?;
        state.slots[self.rank] = Some(mine);
        state.arrived += 1;
        let round = state.round;
        if state.arrived == self.shared.size {
            let all = state.slots.iter_mut().map(|s| s.take().unwrap_or_default());
            state.all = Arc::new(all.collect());
            state.arrived = 0;
            state.reading = self.shared.size;
            state.round += 1;
            self.shared.changed.notify_all();
        }
        let mut state = self.wait(state, |s| s.round == round)?;
        let all = Arc::clone(&state.all);
        state.reading -= 1;
        if state.reading == 0 {
            self.shared.changed.notify_all();
        }
        Ok(all)
    }
}

impl Comm for LocalRank {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.shared.size
    }

    fn all_reduce_sum(&self, values: &mut [f64]) -> Result<()> {
        let all = self.exchange(to_bytes(values))?;
        values.fill(0.0);
        for bytes in all.iter() {
            let theirs = from_bytes(bytes);
            if theirs.len() != values.len() {
                return Err(Error::Comm {
                    message: format!(
                        "all-reduce of {} values met one of {}: the ranks are out of step",
                        values.len(),
                        theirs.len()
                    ),
                });
            }
            values.iter_mut().zip(theirs).for_each(|(v, t)| *v += t);
        }
        Ok(())
    }

    fn all_gather(&self, bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
        Ok(self.exchange(bytes.to_vec())?.to_vec())
    }

    fn abort(&self, message: &str) {
        let mut state = self.lock();
        state.broken.get_or_insert_with(|| message.to_string());
        self.shared.changed.notify_all();
    }
}

impl Drop for LocalRank {
    /// A rank that has left can join no further exchange: one the others start now fails.
    fn drop(&mut self) {
        let mut state = self.lock();
        if state.broken.is_none() {
            state.broken = Some(format!("rank {} left the group", self.rank));
        }
        self.shared.changed.notify_all();
    }
}
