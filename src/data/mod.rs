//! Data: the [`Dataset`], seeded [`Synthetic`] generators, the [`epoch_plan`], and the
//! [`RowSource`]s streaming reads from (in memory, a generator, a memory-mapped file).

mod dataset;
mod plan;
mod source;
mod synthetic;

pub(crate) use dataset::check_finite;
pub use dataset::{Dataset, Targets};
pub use plan::{Batch, EpochPlan, epoch_plan};
pub use source::{FileTargets, MappedFile, RowSource, windowed_order};
pub use synthetic::{Kind, RowTargets, Synthetic, Truth};
