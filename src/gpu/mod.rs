//! The GPU backend: wgpu + WGSL compute shaders, each the twin of a kernel in
//! [`crate::cpu`].
//!
//! - [`context`]: adapter choice (`GRADFLOW_ADAPTER`), the device with the adapter's real
//!   limits, error capture;
//! - [`pipelines`]: shader modules, layouts and pipelines, built once and cached;
//! - [`kernels`]: one host launcher per kernel (bind once, launch every step);
//! - [`engine`]: [`GpuEngine`], the GPU twin of the CPU engine;
//! - [`readback`]: buffers back to the host;
//! - [`tune`]: which kernel variants this adapter runs, measured once and cached;
//! - [`profile`]: each kernel of the steps timed alone on this adapter (`bench --kernels`).
//!
//! Shaders live in `shaders/*.wgsl`, one file per kernel family, included at compile time.

pub mod context;
pub mod engine;
pub mod kernels;
pub mod pipelines;
pub mod profile;
pub mod readback;
pub mod tune;

pub use context::{DeviceLimits, GpuContext, for_rank, shared};
pub(crate) use engine::PendingSync;
pub use engine::{GpuEngine, GpuEngineOptions, RingShape, SyncRead, resident_row_limit};
pub use tune::{GlmGradVariant, MatmulBlock, ParamBlock, SumSplit, Tuning};
