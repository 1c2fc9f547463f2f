//! Data: the [`Dataset`], seeded [`Synthetic`] generators and the [`epoch_plan`].

mod dataset;
mod plan;
mod synthetic;

pub(crate) use dataset::check_finite;
pub use dataset::{Dataset, Targets};
pub use plan::{Batch, EpochPlan, epoch_plan};
pub use synthetic::{Kind, RowTargets, Synthetic, Truth};
