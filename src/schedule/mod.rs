//! The host scheduler: gathers the rows of upcoming shuffled batches on a worker thread
//! while the device computes, for datasets streamed rather than resident.
//!
//! [`Prefetcher`] reads the *same* [`EpochPlan`](crate::data::EpochPlan) as the resident and CPU paths, so a
//! streamed run sees the same batches in the same order; only where the rows are
//! gathered differs (here on the host, there by the kernels through the order).

mod prefetch;
mod stream;

pub use crate::data::HostTargets;
pub use prefetch::{HostBatch, Prefetcher};
pub(crate) use stream::Stream;
