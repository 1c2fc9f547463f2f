//! # gradflow
//!
//! Gradient-descent training of linear regression, logistic regression, softmax
//! regression and a 2-layer MLP, with every kernel written twice: a GPU kernel
//! (wgpu + WGSL) and a CPU reference twin that checks it.
//!
//! The models ([`model`]) describe their training step as a [`program`], which the
//! CPU ([`cpu`]: reference and fast kernels, and the engine that runs them) and the GPU
//! ([`gpu`]: WGSL kernels, the device engine) both run; the trainer ([`Trainer`]) drives
//! either backend, in mini-batches (streaming through [`schedule`] when the data are not
//! in memory) or full-batch with L-BFGS. Also: the normal equations
//! ([`model::normal_eq`]) and a finite-difference gradient check ([`gradcheck`]).
//!
//! ```
//! use gradflow::{data::Synthetic, model::LinearRegression, metrics, TrainConfig, Trainer};
//!
//! let data = Synthetic::linear(10_000, 8).seed(42).dataset()?;
//! let trainer = Trainer::new(TrainConfig::sgd().batch_size(64).learning_rate(0.05).epochs(5))?;
//! let mut model = LinearRegression::new();
//! let report = model.fit(&data, &trainer)?;
//! let gradflow::data::Targets::Real(y) = data.targets() else { unreachable!() };
//! let r2 = metrics::r2(&model.predict(data.features())?, y)?;
//! assert!(r2 > 0.999, "R² = {r2}, final loss {}", report.final_loss());
//! # Ok::<(), gradflow::Error>(())
//! ```
//!
//! The modules follow the data's path: [`data`] (datasets, synthetic generators, the
//! epoch plan) → [`train`] (configuration, loop, report) → [`model`] (each model's
//! [`program`]: its kernel calls, in the program's vocabulary) → [`cpu`] and [`gpu`]
//! (each runs a program with its kernels).
//! [`io`] reads CSV and `.npy` data and saves and loads fitted models.
//! [`bench`](mod@bench) times the models on both backends (the benchmark workloads and the demo).

#![warn(missing_docs)]

#[cfg(feature = "ndarray")]
pub mod array;
pub mod bench;
pub mod cpu;
/// The CPU engine, at its former path: [`cpu::engine`].
pub use cpu::engine;
pub mod data;
pub mod dist;
mod error;
pub mod gpu;
pub mod gradcheck;
pub mod io;
pub mod metrics;
pub mod model;
pub mod program;
pub mod schedule;
pub mod train;

pub use error::{Error, Result};
pub use train::{
    Backend, Choices, CpuKernels, Deviation, EarlyStopping, Mode, NoImprovement, Optimizer,
    Penalty, Progress, RateFrom, Report, Schedule, Solver, StopReason, TrainConfig, Trainer,
    Verify,
};

/// The README's examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
