//! A team of threads for work too short for rayon: the halves of one mini-batch step.
//!
//! A mini-batch step of W1 takes about 10 µs. Handing half of it to a rayon thread cost
//! more than it saved (measured: 9.7 M rows/s split, 20 M whole): a rayon worker that
//! finds nothing to do goes to sleep, and waking it is a system call and a reschedule.
//! The team's workers instead spin on one atomic counter for a while after each job
//! ([`SPIN`]), so a job that follows within that time starts in well under a microsecond;
//! only a worker idle for longer parks, and is unparked by the next job.
//!
//! There is one team for the process ([`for_each`]). A job is `parts` calls of one
//! function, part `i` on member `i mod members`; each part writes only its own output, so
//! what a job computes does not depend on how many members ran it. When the team is busy
//! (another fit on another thread) or rayon is limited to one thread, the caller runs every
//! part itself.

use std::cell::UnsafeCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

/// How long a worker spins for the next job before it parks.
pub const SPIN: Duration = Duration::from_micros(200);

/// The most members the team has (the caller and one worker): every job of the fast
/// kernels has two parts, and a member without a part would still have to report in.
const MAX_MEMBERS: usize = 2;

/// A job: part `i` of it is `f(i)`.
type Job<'a> = &'a (dyn Fn(usize) + Sync);

struct Shared {
    /// Bumped once a job; a worker runs the job when the count moves past the last it saw.
    generation: AtomicU64,
    /// The current job and its parts and members. Written only by the caller holding the
    /// team, before the `generation` store that publishes it, and not again until every
    /// worker has reported `done`.
    job: UnsafeCell<Option<(Job<'static>, usize, usize)>>,
    /// Workers finished with the current job.
    done: AtomicUsize,
    /// Whether worker `i` is parked (or about to be), so the caller must unpark it.
    sleeping: Vec<AtomicBool>,
    /// A worker's part panicked.
    panicked: AtomicBool,
    stop: AtomicBool,
}

// SAFETY: `job` is written only while no worker reads it (see its comment); the rest is
// atomics.
unsafe impl Sync for Shared {}

/// The caller plus `workers.len()` spinning threads.
struct Team {
    shared: Arc<Shared>,
    workers: Vec<(Thread, JoinHandle<()>)>,
}

impl Team {
    fn new(members: usize) -> Team {
        let n = members.saturating_sub(1);
        let shared = Arc::new(Shared {
            generation: AtomicU64::new(0),
            job: UnsafeCell::new(None),
            done: AtomicUsize::new(0),
            sleeping: (0..n).map(|_| AtomicBool::new(false)).collect(),
            panicked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let workers = (0..n)
            .map_while(|w| {
                let shared = Arc::clone(&shared);
                // A machine that will not give us a thread runs the parts on fewer members.
                let handle = thread::Builder::new()
                    .name(format!("gradflow-team-{}", w + 1))
                    .spawn(move || work(&shared, w))
                    .ok()?;
                Some((handle.thread().clone(), handle))
            })
            .collect();
        Team { shared, workers }
    }

    /// Runs `f(0) … f(parts − 1)` on `members` members (the caller is member 0) and
    /// returns when all have finished. A panic in any part is raised here, after every
    /// member has stopped touching `f`.
    fn run(&self, parts: usize, members: usize, f: Job<'_>) {
        let members = members.min(self.workers.len() + 1).max(1);
        let s = &*self.shared;
        // SAFETY: the lifetime is erased only for the workers, and this function does not
        // return (normally or by unwinding) until every worker has finished with `f`.
        let job: Job<'static> = unsafe { std::mem::transmute::<Job<'_>, Job<'static>>(f) };
        // SAFETY: no worker reads `job` now: all finished the last job before the last
        // `run` returned, and none reads it before the `generation` store below.
        unsafe { *s.job.get() = Some((job, parts, members)) };
        s.done.store(0, Ordering::Relaxed);
        s.generation.fetch_add(1, Ordering::SeqCst);
        for (w, (thread, _)) in self.workers.iter().enumerate() {
            // SeqCst against the worker's `sleeping` store then `generation` load: either
            // it sees the new job or we see that it sleeps.
            if s.sleeping[w].load(Ordering::SeqCst) {
                thread.unpark();
            }
        }
        let own = panic::catch_unwind(AssertUnwindSafe(|| {
            (0..parts).step_by(members).for_each(f);
        }));
        let started = Instant::now();
        let mut spins = 0u32;
        while s.done.load(Ordering::Acquire) < self.workers.len() {
            spins += 1;
            // A worker descheduled by an oversubscribed machine: let it run.
            if spins.is_multiple_of(1024) && started.elapsed() > SPIN {
                thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        if let Err(payload) = own {
            panic::resume_unwind(payload);
        }
        if s.panicked.swap(false, Ordering::Relaxed) {
            panic!("a part of a team job panicked");
        }
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for (thread, handle) in self.workers.drain(..) {
            thread.unpark();
            let _ = handle.join();
        }
    }
}

/// Worker `w` (member `w + 1`): waits for each job and runs its parts.
fn work(s: &Shared, w: usize) {
    let mut seen = 0u64;
    loop {
        let started = Instant::now();
        let mut spins = 0u32;
        loop {
            if s.stop.load(Ordering::Relaxed) {
                return;
            }
            if s.generation.load(Ordering::Acquire) != seen {
                break;
            }
            spins += 1;
            if spins.is_multiple_of(256) && started.elapsed() > SPIN {
                s.sleeping[w].store(true, Ordering::SeqCst);
                if s.generation.load(Ordering::SeqCst) == seen && !s.stop.load(Ordering::SeqCst) {
                    thread::park();
                }
                s.sleeping[w].store(false, Ordering::SeqCst);
            } else {
                std::hint::spin_loop();
            }
        }
        seen = s.generation.load(Ordering::Acquire);
        // SAFETY: published by the `generation` store just seen; the caller does not
        // write it again until this worker's `done` below.
        let (job, parts, members) = unsafe { (*s.job.get()).expect("a job is published") };
        let mine = w + 1;
        if mine < members {
            let ran = panic::catch_unwind(AssertUnwindSafe(|| {
                (mine..parts).step_by(members).for_each(job);
            }));
            if ran.is_err() {
                s.panicked.store(true, Ordering::Relaxed);
            }
        }
        s.done.fetch_add(1, Ordering::Release);
    }
}

/// Runs `f(0) … f(parts − 1)`, spread over the process's team when it is free, and
/// returns when every part has run. Each part must write only its own output: the result
/// is then the same on any number of threads. The team has as many members as rayon has
/// threads (at most two), so a rayon pool of one thread runs every part on the caller.
///
/// # Example
/// ```
/// use std::sync::Mutex;
/// use gradflow::cpu::fast::team;
/// let sums: Vec<Mutex<u64>> = (0..2).map(|_| Mutex::new(0)).collect();
/// team::for_each(2, &|i| *sums[i].lock().unwrap() = (i as u64 * 100..(i as u64 + 1) * 100).sum());
/// let total: u64 = sums.iter().map(|s| *s.lock().unwrap()).sum();
/// assert_eq!(total, (0..200u64).sum::<u64>());
/// ```
pub fn for_each(parts: usize, f: &(dyn Fn(usize) + Sync)) {
    static TEAM: OnceLock<Mutex<Team>> = OnceLock::new();
    let members = rayon::current_num_threads().min(MAX_MEMBERS);
    if parts > 1 && members > 1 {
        let team = TEAM.get_or_init(|| {
            let n = thread::available_parallelism().map_or(1, |n| n.get());
            Mutex::new(Team::new(n.min(MAX_MEMBERS)))
        });
        // A poisoned lock only means a part panicked; the team itself is intact.
        let held = match team.try_lock() {
            Ok(t) => Some(t),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        if let Some(team) = held {
            team.run(parts, members, f);
            return;
        }
    }
    (0..parts).for_each(f);
}

/// Runs `f(0, &mut out[..mid])` and `f(1, &mut out[mid..])` as the two parts of one
/// [`for_each`] job: an output split in two for two threads.
///
/// # Example
/// ```
/// use gradflow::cpu::fast::team;
/// let mut v = vec![0u32; 5];
/// team::split_in_two(&mut v, 2, &|part, half| half.iter_mut().for_each(|x| *x = part as u32 + 1));
/// assert_eq!(v, [1, 1, 2, 2, 2]);
/// ```
///
/// # Panics
/// When `mid > out.len()`.
pub fn split_in_two<T: Send>(out: &mut [T], mid: usize, f: &(dyn Fn(usize, &mut [T]) + Sync)) {
    let (first, second) = out.split_at_mut(mid);
    let halves = [Mutex::new(first), Mutex::new(second)];
    for_each(2, &|i| {
        // Each part locks only its own half, once: never contended.
        let mut half = halves[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(i, &mut half);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn every_part_runs_once_on_any_team() {
        for members in 1..=4 {
            let team = Team::new(members);
            for parts in [0, 1, 2, 3, 7] {
                for _ in 0..50 {
                    let ran: Vec<AtomicU32> = (0..parts).map(|_| AtomicU32::new(0)).collect();
                    team.run(parts, members, &|i| {
                        ran[i].fetch_add(1, Ordering::Relaxed);
                    });
                    assert!(ran.iter().all(|r| r.load(Ordering::Relaxed) == 1));
                }
            }
        }
    }

    #[test]
    fn a_parked_worker_is_woken() {
        let team = Team::new(2);
        let ran = AtomicU32::new(0);
        for _ in 0..3 {
            // Longer than SPIN: the worker has parked by the next job.
            thread::sleep(SPIN * 5);
            team.run(2, 2, &|_| {
                ran.fetch_add(1, Ordering::Relaxed);
            });
        }
        assert_eq!(ran.load(Ordering::Relaxed), 6);
    }

    #[test]
    fn a_panicking_part_is_raised_on_the_caller_and_the_team_survives() {
        let team = Team::new(2);
        for bad in [0, 1] {
            let caught = panic::catch_unwind(AssertUnwindSafe(|| {
                team.run(2, 2, &|i| assert_ne!(i, bad, "part {i} fails"));
            }));
            assert!(caught.is_err(), "part {bad}'s panic was lost");
        }
        let ran = AtomicU32::new(0);
        team.run(2, 2, &|_| {
            ran.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(ran.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn callers_on_many_threads_share_the_process_team() {
        thread::scope(|s| {
            for t in 0..4u64 {
                s.spawn(move || {
                    for j in 0..2000u64 {
                        let out: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
                        for_each(2, &|i| {
                            out[i].store(t * j + i as u64 + 1, Ordering::Relaxed)
                        });
                        assert_eq!(out[0].load(Ordering::Relaxed), t * j + 1);
                        assert_eq!(out[1].load(Ordering::Relaxed), t * j + 2);
                    }
                });
            }
        });
    }
}
