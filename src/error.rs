//! The one error type of gradflow.
//!
//! Every message carries the value that was given and says what was expected, so that
//! a user can fix the call without reading the source: `batch_size 0: must be ≥ 1`.

/// Result alias used throughout gradflow.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in gradflow.
///
/// The enum is `#[non_exhaustive]`: later versions add variants (device faults, I/O)
/// without breaking a `match` that ends in a wildcard arm.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A hyper-parameter or option is outside its valid range.
    ///
    /// Recover by passing a value in the range the message names.
    #[error("{name} {value}: {expected}")]
    InvalidParameter {
        /// The parameter's name, as the API spells it (`batch_size`).
        name: &'static str,
        /// The value that was given, formatted.
        value: String,
        /// What would have been accepted (`must be ≥ 1`).
        expected: &'static str,
    },

    /// Two pieces of data disagree in size.
    #[error("shape mismatch in {what}: expected {expected}, got {got}")]
    ShapeMismatch {
        /// Which object or argument.
        what: &'static str,
        /// The size that was required.
        expected: String,
        /// The size that was found.
        got: String,
    },

    /// A dataset or matrix with no rows or no columns.
    #[error("{what} is empty ({detail}): at least one is needed")]
    Empty {
        /// Which object.
        what: &'static str,
        /// What was zero (`n = 0 rows`).
        detail: String,
    },

    /// A NaN or infinity in the input data.
    ///
    /// gradflow never trains on non-finite data: one NaN would turn every parameter NaN.
    #[error(
        "non-finite value {value} in {what} at row {row}, column {col}: every value must be finite"
    )]
    NonFinite {
        /// `features` or `targets`.
        what: &'static str,
        /// Row index (0-based).
        row: usize,
        /// Column index (0-based).
        col: usize,
        /// The offending value.
        value: f32,
    },

    /// A class label that is not in `0..classes`.
    #[error("label {label} at row {row} is out of range: expected a class in 0..{classes}")]
    LabelOutOfRange {
        /// Row index (0-based).
        row: usize,
        /// The label found.
        label: u32,
        /// The number of classes the dataset declares.
        classes: usize,
    },

    /// The dataset's targets do not suit the model (real values given to a classifier,
    /// three classes given to a binary model, …).
    #[error("{model} needs {expected}, but the dataset has {got}")]
    TargetMismatch {
        /// The model's name.
        model: &'static str,
        /// What the model needs.
        expected: String,
        /// What the dataset holds.
        got: String,
    },

    /// The loss or the parameters became NaN or infinite during training.
    ///
    /// The model keeps the last finite parameters. Recover with a smaller learning rate.
    #[error(
        "training diverged at step {step} (epoch {epoch}): loss is {loss}; \
         try a smaller learning rate than {learning_rate}"
    )]
    Diverged {
        /// Global step (0-based) at which the loss was non-finite.
        step: u64,
        /// Epoch (0-based) of that step.
        epoch: usize,
        /// The loss that was seen.
        loss: f64,
        /// The learning rate in use.
        learning_rate: f64,
    },

    /// The normal equations cannot be solved reliably.
    #[error(
        "normal equations: XᵀX is singular or badly conditioned (condition number {condition:.3e} \
         exceeds {limit:.1e}); remove collinear or constant features, or allow the \
         least-squares fallback"
    )]
    IllConditioned {
        /// Estimated 2-norm condition number of XᵀX (with the bias column).
        condition: f64,
        /// The largest condition number accepted.
        limit: f64,
    },

    /// A model was used before `fit`.
    #[error("{model} is not fitted: call fit (or load parameters) before {action}")]
    NotFitted {
        /// The model's name.
        model: &'static str,
        /// What was attempted (`predict`).
        action: &'static str,
    },

    /// No GPU adapter was found (or none matched `GRADFLOW_ADAPTER`).
    ///
    /// Recover by installing the GPU's Vulkan driver; on a machine with no GPU, Mesa's
    /// software driver (lavapipe) gives a working, slow adapter.
    #[error(
        "no GPU adapter found ({hint}): install the GPU's Vulkan driver; on a machine with \
         no GPU, Mesa's software driver: `apt-get install mesa-vulkan-drivers`"
    )]
    NoAdapter {
        /// What was tried: the `GRADFLOW_ADAPTER` filter and the adapters seen, if any.
        hint: String,
    },

    /// The GPU device reported an error (validation, out of memory, lost device), caught
    /// with an error scope around the GPU calls of one operation.
    #[error("GPU device error: {message}")]
    Device {
        /// wgpu's message.
        message: String,
    },

    /// A shape needs more than one of the device's limits allows; checked before any GPU
    /// call, so wgpu never sees it.
    ///
    /// Recover with a smaller batch, a smaller model, or the streaming mode.
    #[error("{what}: {requested} exceeds the device limit of {limit}")]
    DeviceLimit {
        /// Which limit (`storage buffer binding bytes`, `workgroups per dimension`).
        what: &'static str,
        /// What the shape needs.
        requested: u64,
        /// What the device allows.
        limit: u64,
    },

    /// Verify mode: a GPU tensor differs from its CPU twin beyond the tolerance.
    #[error(
        "verify: step {step}, tensor {tensor}, element {index}: GPU {gpu} vs CPU {cpu} \
         differs by more than max(rtol {rtol:e} · magnitude, atol {atol:e})"
    )]
    VerifyMismatch {
        /// Global step (0-based).
        step: u64,
        /// Tensor name (`loss`, `grad W1`, `W1`, …).
        tensor: String,
        /// First element out of tolerance.
        index: usize,
        /// GPU value.
        gpu: f64,
        /// CPU value.
        cpu: f64,
        /// Relative tolerance.
        rtol: f64,
        /// Absolute tolerance.
        atol: f64,
    },

    /// Host memory could not hold what was asked for (a dataset materialised whole).
    ///
    /// Recover with fewer rows, or by training from the source itself (a [`Synthetic`]
    /// generator or a [`MappedFile`] streams through the trainer without being held whole).
    ///
    /// [`Synthetic`]: crate::data::Synthetic
    /// [`MappedFile`]: crate::data::MappedFile
    #[error(
        "{what}: {bytes} bytes cannot be allocated in host memory; use fewer rows, or train \
         from the source without materialising it (streaming)"
    )]
    OutOfMemory {
        /// What was being allocated (`synthetic dataset features`).
        what: &'static str,
        /// The size asked for.
        bytes: u128,
    },

    /// A file could not be opened, read or mapped.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's message.
        message: String,
    },

    /// A file was read but its content is not what was expected.
    #[error("{path}: {reason}")]
    BadFile {
        /// The file.
        path: String,
        /// What is wrong, with the value found.
        reason: String,
    },

    /// Another rank of a distributed fit failed at a step (or a setup stage) this rank
    /// took part in; every rank stopped there. The failing rank returns its own error.
    #[error("rank {rank} of {size} failed: {message}")]
    Rank {
        /// The first rank that failed.
        rank: usize,
        /// The number of ranks.
        size: usize,
        /// Its error message.
        message: String,
    },

    /// The fit was stopped by its interrupt flag ([`Trainer::with_interrupt`](crate::Trainer::with_interrupt)):
    /// at a step boundary of the mini-batch loop, or at an evaluation of L-BFGS. The
    /// model keeps what it held before the fit (nothing when it was unfitted).
    #[error(
        "training interrupted at step {step} (epoch {epoch}): the model is as it was before this fit"
    )]
    Interrupted {
        /// Updates done in this fit when the flag was seen.
        step: u64,
        /// The epoch (L-BFGS: iteration) it was in, 0-based.
        epoch: usize,
    },

    /// The communication of a distributed fit failed: a rank aborted or left the group,
    /// or the ranks fell out of step.
    #[error("distributed fit: {message}")]
    Comm {
        /// What happened.
        message: String,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidParameter`].
    pub(crate) fn param(
        name: &'static str,
        value: impl std::fmt::Display,
        expected: &'static str,
    ) -> Self {
        Error::InvalidParameter {
            name,
            value: value.to_string(),
            expected,
        }
    }
}
