//! Training: configuration, the trainer loop and its report.

mod auto;
mod config;
mod epochs;
mod full_batch;
mod lbfgs;
mod normal;
mod optim;
mod placement;
mod report;
mod session;
mod trainer;
mod validation;

pub use crate::model::TrainState;
pub use auto::{
    Choices, LINEAR_MAX_EPOCHS, MLP_MAX_EPOCHS, MLP_MIN_UPDATES, NORMAL_MAX_FEATURES, RateFrom,
};
pub use config::{
    Backend, CpuKernels, EarlyStopping, Mode, NoImprovement, Solver, TrainConfig, Verify,
};
pub(crate) use epochs::{AUTO_AHEAD_BELOW, AUTO_EPOCHS_AHEAD};
pub use optim::{Optimizer, Penalty, Schedule};
pub use report::{Deviation, Progress, Report, StopReason};
pub use trainer::Trainer;
