//! Ranks as MPI processes (feature `mpi`): rsmpi over MPICH or Open MPI.

use std::sync::Mutex;

use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use super::Comm;
use crate::error::{Error, Result};

/// An MPI communicator as a [`Comm`]: how `mpiexec -n N gradflow train …` and a Rust
/// program that already runs under MPI train data-parallel.
///
/// The fit talks on its own duplicate of the communicator it is given, so its
/// collectives never match a message of the program around it.
///
/// ```no_run
/// use gradflow::dist::Mpi;
/// use gradflow::{data::Synthetic, model::LogisticRegression, TrainConfig, Trainer};
/// // `mpiexec -n 4 ./program`: every rank runs this.
/// let (_universe, comm) = Mpi::init()?; // MPI ends when `_universe` is dropped
/// let rank = mpi::traits::Communicator::rank(&_universe.world());
/// let rows = Synthetic::logistic(10_000_000, 32).seed(1); // each rank reads its parts only
/// let trainer = Trainer::new(TrainConfig::sgd().batch_size(4096))?.with_comm(comm);
/// let report = trainer.fit(&mut LogisticRegression::new(), &rows)?;
/// if rank == 0 {
///     println!("loss {:.4}", report.final_loss());
/// }
/// # Ok::<(), gradflow::Error>(())
/// ```
pub struct Mpi {
    /// Serialises the calls: MPI is initialised for one thread at a time
    /// (`MPI_THREAD_SINGLE`/`FUNNELED` give no more), and a fit calls from one thread.
    comm: Mutex<SimpleCommunicator>,
    rank: usize,
    size: usize,
}

impl std::fmt::Debug for Mpi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mpi(rank {} of {})", self.rank, self.size)
    }
}

// SAFETY: a communicator is a handle (an int in MPICH, a pointer in Open MPI) that MPI
// lets any thread use while no two threads call at once; the mutex ensures that.
unsafe impl Send for Mpi {}
// SAFETY: as above: every use goes through the mutex.
unsafe impl Sync for Mpi {}

impl Mpi {
    /// Initialises MPI and returns the universe (keep it alive: dropping it finalises
    /// MPI) and a communicator over every process of the job.
    ///
    /// # Errors
    /// [`Error::Comm`] when MPI was initialised already (use [`Mpi::new`] then).
    pub fn init() -> Result<(Universe, Mpi)> {
        let universe = mpi::initialize().ok_or_else(|| Error::Comm {
            message: "MPI is initialised already: pass its communicator to Mpi::new".into(),
        })?;
        let comm = Mpi::new(&universe.world());
        Ok((universe, comm))
    }

    /// Trains over the processes of `comm` (a collective: every rank of `comm` calls it).
    pub fn new(comm: &impl Communicator) -> Mpi {
        let comm = comm.duplicate();
        let (rank, size) = (comm.rank() as usize, comm.size() as usize);
        Mpi {
            comm: Mutex::new(comm),
            rank,
            size,
        }
    }

    fn comm(&self) -> std::sync::MutexGuard<'_, SimpleCommunicator> {
        self.comm
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Comm for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn all_reduce_sum(&self, values: &mut [f64]) -> Result<()> {
        let send = values.to_vec();
        let comm = self.comm();
        // Started, then polled with a yield between tests: a rank that spun in a
        // blocking call would hold its core while it waits, and where ranks share cores
        // (more ranks than cores, or a rank's own worker threads) the rank it waits for
        // would get none. Not a sleep: a test costs ~100 ns, a step's wait microseconds.
        mpi::request::scope(|scope| {
            let mut request =
                comm.immediate_all_reduce_into(scope, &send[..], values, SystemOperation::sum());
            loop {
                match request.test() {
                    Ok(_) => break,
                    Err(pending) => {
                        request = pending;
                        std::thread::yield_now();
                    }
                }
            }
        });
        Ok(())
    }

    fn all_gather(&self, bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
        let comm = self.comm();
        let len = i32::try_from(bytes.len()).map_err(|_| Error::Comm {
            message: format!("all-gather of {} bytes: at most 2³¹ − 1", bytes.len()),
        })?;
        let mut lens = vec![0i32; self.size];
        comm.all_gather_into(&len, &mut lens[..]);
        let displs: Vec<i32> = lens
            .iter()
            .scan(0i32, |at, &l| {
                let start = *at;
                *at += l;
                Some(start)
            })
            .collect();
        let total = lens.iter().map(|&l| l as usize).sum();
        let mut all = vec![0u8; total];
        {
            let mut partition = PartitionMut::new(&mut all[..], &lens[..], &displs[..]);
            comm.all_gather_varcount_into(bytes, &mut partition);
        }
        Ok(displs
            .iter()
            .zip(&lens)
            .map(|(&d, &l)| all[d as usize..(d + l) as usize].to_vec())
            .collect())
    }

    fn abort(&self, message: &str) {
        // The launcher prints every rank's standard error; MPI_Abort ends every process.
        eprintln!("gradflow: error: {message}");
        self.comm().abort(1)
    }
}
