//! Training: configuration, the trainer loop and its report.

mod config;
mod gpu_session;
mod optim;
mod report;
mod session;
mod state;
mod trainer;
mod validation;

pub use config::{Backend, CpuKernels, EarlyStopping, Mode, NoImprovement, TrainConfig, Verify};
pub use optim::{Optimizer, Penalty, Schedule};
pub use report::{Deviation, Progress, Report, StopReason};
pub use state::TrainState;
pub use trainer::Trainer;
