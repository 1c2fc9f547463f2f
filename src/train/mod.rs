//! Training: configuration, the trainer loop and its report.

mod config;
mod gpu_session;
mod report;
mod session;
mod trainer;

pub use config::{Backend, Mode, TrainConfig, Verify};
pub use report::{Deviation, Progress, Report, StopReason};
pub use trainer::Trainer;
