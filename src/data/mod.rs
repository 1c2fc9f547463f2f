//! Data: the [`Dataset`], seeded [`Synthetic`] generators, the [`epoch_plan`], and the
//! [`RowSource`]s streaming reads from (in memory, a generator, a memory-mapped file).

mod dataset;
mod gather;
pub(crate) mod npy_header;
mod plan;
mod rows;
mod scale;
mod source;
mod synthetic;
mod weights;

pub use dataset::{Dataset, SharedFeatures, Targets};
pub(crate) use dataset::{check_finite, zeroed};
pub use gather::HostTargets;
pub(crate) use gather::gather_rows;
pub use plan::{Batch, EpochPlan, Shuffle, epoch_plan, epoch_plan_over, windowed_order};
pub use rows::Rows;
pub use scale::{Standardized, Standardizer};
#[cfg(feature = "parquet")]
pub(crate) use source::check_gather;
pub use source::{BatchTargets, FileTargets, MappedFile, RowSource, TargetKind};
pub use synthetic::{Kind, RowTargets, Synthetic, Truth};
pub use weights::{ClassWeight, RowWeights};
