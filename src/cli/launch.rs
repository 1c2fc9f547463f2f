//! Where `gradflow train` runs: alone, or as one rank of an MPI job (feature `mpi`:
//! `mpiexec -n N gradflow train …`, or a scheduler's launcher such as Slurm's `srun`).
//!
//! Every rank parses the same flags, opens the same data and trains together; only rank
//! 0 prints, shows progress and writes `--json`, `--plot` and `--save`. Errors are
//! agreed on: a rank that cannot open its data stops every rank before the fit, and rank
//! 0 prints the failing rank's message (the others stay silent, so a failure is told
//! once); during the fit the library ends every rank at the failing step.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gradflow::dist::{self, Comm};

use super::CliError;

/// Set on ranks other than 0: their errors reach the user through rank 0.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Whether this process prints errors (rank 0, or a process on its own). Before MPI is
/// started (bad flags, which every rank meets alike) the launcher's rank variable tells.
pub fn reports_errors() -> bool {
    !QUIET.load(Ordering::Relaxed) && launched_rank().is_none_or(|r| r == 0)
}

/// This process's rank as the MPI launcher or the scheduler gave it (MPICH's Hydra, Open
/// MPI, PMIx, Slurm), when it was launched as one.
fn launched_rank() -> Option<usize> {
    [
        "PMI_RANK",
        "OMPI_COMM_WORLD_RANK",
        "PMIX_RANK",
        "SLURM_PROCID",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok()?.trim().parse().ok())
}

/// This process's place in the job.
pub struct World {
    comm: Option<Arc<dyn Comm>>,
    /// MPI ends (`MPI_Finalize`) when this is dropped, after the command's work.
    #[cfg(feature = "mpi")]
    _universe: Option<mpi::environment::Universe>,
}

impl World {
    /// Joins the MPI job this process was started in (a process started on its own is a
    /// job of one), or, without the `mpi` feature, runs alone.
    ///
    /// # Errors
    /// When MPI cannot be initialised.
    pub fn start() -> Result<World, CliError> {
        #[cfg(feature = "mpi")]
        {
            let (universe, comm) = dist::Mpi::init()?;
            let comm: Option<Arc<dyn Comm>> = (comm.size() > 1).then(|| Arc::new(comm) as _);
            if comm.as_ref().is_some_and(|c| c.rank() != 0) {
                QUIET.store(true, Ordering::Relaxed);
            }
            Ok(World {
                comm,
                _universe: Some(universe),
            })
        }
        #[cfg(not(feature = "mpi"))]
        Ok(World { comm: None })
    }

    /// Rank 0, or a process on its own: the one that prints and writes.
    pub fn is_root(&self) -> bool {
        self.comm.as_ref().is_none_or(|c| c.rank() == 0)
    }

    /// The number of ranks (1 alone).
    pub fn size(&self) -> usize {
        self.comm.as_ref().map_or(1, |c| c.size())
    }

    /// The communicator to train over, when there are several ranks.
    pub fn comm(&self) -> Option<Arc<dyn Comm>> {
        self.comm.clone()
    }

    /// Rank 0's process id, on every rank: a name the ranks agree on.
    ///
    /// # Errors
    /// When the communicator fails.
    pub fn root_id(&self) -> Result<u32, CliError> {
        let mine = std::process::id();
        let Some(comm) = &self.comm else {
            return Ok(mine);
        };
        let all = comm.all_gather(&mine.to_le_bytes())?;
        let root: [u8; 4] = all[0][..].try_into().unwrap_or_default();
        Ok(u32::from_le_bytes(root))
    }

    /// Whether `flag` holds on any rank: how the ranks take one decision from what each
    /// sees of its own machine (the memory it may use).
    ///
    /// # Errors
    /// When the communicator fails.
    pub fn any(&self, flag: bool) -> Result<bool, CliError> {
        let Some(comm) = &self.comm else {
            return Ok(flag);
        };
        let mut votes = [f64::from(u8::from(flag))];
        comm.all_reduce_sum(&mut votes)?;
        Ok(votes[0] > 0.0)
    }

    /// `Ok` on every rank when `local` is `Ok` on every rank: a rank that failed keeps
    /// its error (with its hint), the others stop with its message.
    ///
    /// # Errors
    /// As described.
    pub fn agree<T>(&self, local: Result<T, CliError>) -> Result<T, CliError> {
        let Some(comm) = &self.comm else {
            return local;
        };
        match local {
            Ok(v) => dist::agree(&**comm, Ok(v)).map_err(CliError::from),
            Err(own) => {
                let message = gradflow::Error::Comm {
                    message: own.message().to_string(),
                };
                let _ = dist::agree::<()>(&**comm, Err(message));
                Err(own)
            }
        }
    }
}
