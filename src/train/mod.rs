//! Training: configuration, the trainer loop and its report.

mod config;
mod report;
mod session;
mod trainer;

pub use config::TrainConfig;
pub use report::{Report, StopReason};
pub use trainer::Trainer;
