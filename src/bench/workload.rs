//! The five benchmark workloads of the command issue (W1–W5) and their scaled sizes.

use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Synthetic};
use crate::error::{Error, Result};
use crate::program::Activation;
use crate::train::TrainConfig;

use super::fit::Recipe;
use crate::model::Kind;

/// One of the benchmark workloads. All float32, seeded; the data seeds follow the peers'
/// scripts (`shared/peers/python/common.py`: W1 1, W2 2, W3 3; shuffles 11, 12, 13),
/// with gradflow's own generators.
///
/// | id | model | data | training |
/// |---|---|---|---|
/// | W1 | linear regression | 10⁶ × 64 | batch 256, lr 0.05, 5 epochs, shuffled |
/// | W2 | logistic regression | 10⁶ × 64 | batch 256, lr 0.1, 5 epochs |
/// | W3 | MLP 64-256-10, sigmoid | 2·10⁵ × 64, teacher labels | batch 256, lr 0.1, 3 epochs |
/// | W4 | linear regression | W1's data | full batch, lr 0.05, 50 iterations |
/// | W5 | normal equations | W1's data | closed form (`model::normal_eq`), CPU only |
///
/// ```
/// use gradflow::bench::Workload;
/// let w: Workload = "w3".parse()?;
/// assert_eq!((w, w.rows(), w.batch()), (Workload::W3, 200_000, Some(256)));
/// assert_eq!(Workload::W4.batch(), None); // full batch
/// # Ok::<(), gradflow::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Workload {
    /// Linear regression, mini-batch SGD.
    W1,
    /// Logistic regression, mini-batch SGD.
    W2,
    /// The 2-layer MLP, mini-batch SGD.
    W3,
    /// Linear regression, full-batch gradient descent.
    W4,
    /// Linear regression, normal equations.
    W5,
}

/// Which dataset a workload trains on (W1, W4 and W5 share one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum DataKind {
    Linear,
    Logistic,
    Teacher,
}

impl Workload {
    /// Every workload, in order.
    pub const ALL: [Workload; 5] = [
        Workload::W1,
        Workload::W2,
        Workload::W3,
        Workload::W4,
        Workload::W5,
    ];

    /// `W1` … `W5`.
    pub fn id(self) -> &'static str {
        match self {
            Workload::W1 => "W1",
            Workload::W2 => "W2",
            Workload::W3 => "W3",
            Workload::W4 => "W4",
            Workload::W5 => "W5",
        }
    }

    /// What it trains, in a few words.
    pub fn title(self) -> &'static str {
        match self {
            Workload::W1 => "linear regression, mini-batch SGD",
            Workload::W2 => "logistic regression, mini-batch SGD",
            Workload::W3 => "MLP 64-256-10 sigmoid, mini-batch SGD",
            Workload::W4 => "linear regression, full-batch GD",
            Workload::W5 => "linear regression, normal equations",
        }
    }

    /// Rows at full size.
    pub fn rows(self) -> usize {
        match self {
            Workload::W3 => 200_000,
            _ => 1_000_000,
        }
    }

    /// Features per row.
    pub fn p(self) -> usize {
        64
    }

    /// Rows per step; `None` for full batch (W4) and the closed form (W5).
    pub fn batch(self) -> Option<usize> {
        match self {
            Workload::W1 | Workload::W2 | Workload::W3 => Some(256),
            Workload::W4 | Workload::W5 => None,
        }
    }

    /// Epochs (W4: iterations; W5: 1).
    pub fn epochs(self) -> usize {
        match self {
            Workload::W1 | Workload::W2 => 5,
            Workload::W3 => 3,
            Workload::W4 => 50,
            Workload::W5 => 1,
        }
    }

    /// Whether the workload trains by gradient descent (all but W5) and so runs on the GPU.
    pub fn is_iterative(self) -> bool {
        self != Workload::W5
    }

    /// Whether `--sweep` runs it at other batch sizes (the mini-batch workloads).
    pub fn sweeps(self) -> bool {
        self.batch().is_some()
    }

    pub(crate) fn data_kind(self) -> DataKind {
        match self {
            Workload::W2 => DataKind::Logistic,
            Workload::W3 => DataKind::Teacher,
            _ => DataKind::Linear,
        }
    }

    pub(crate) fn kind(self) -> Recipe {
        match self {
            Workload::W2 => Recipe::linear(Kind::Logistic),
            Workload::W3 => Recipe::mlp(256, Activation::Sigmoid),
            _ => Recipe::linear(Kind::Linear),
        }
    }

    /// The training configuration at `batch` rows per step for `epochs` epochs (CPU
    /// backend; the caller sets the backend).
    pub(crate) fn config(self, batch: usize, epochs: usize) -> TrainConfig {
        let (lr, seed, shuffle) = match self {
            Workload::W1 => (0.05, 11, true),
            Workload::W2 => (0.1, 12, true),
            Workload::W3 => (0.1, 13, true),
            // Full batch: every epoch is the same single batch; no shuffle needed.
            Workload::W4 | Workload::W5 => (0.05, 11, false),
        };
        TrainConfig::sgd()
            .batch_size(batch)
            .learning_rate(lr)
            .epochs(epochs)
            .seed(seed)
            .shuffle(shuffle)
    }
}

impl DataKind {
    /// The dataset of `n` rows.
    pub(crate) fn make(self, n: usize) -> Result<Dataset> {
        match self {
            DataKind::Linear => Synthetic::linear(n, 64).seed(1).dataset(),
            DataKind::Logistic => Synthetic::logistic(n, 64).seed(2).dataset(),
            // Labels sampled from the teacher's softmax, as the peers' W3 data.
            DataKind::Teacher => Synthetic::teacher(n, 64, 10).seed(3).dataset(),
        }
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

impl std::str::FromStr for Workload {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Workload::ALL
            .into_iter()
            .find(|w| w.id().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| Error::param("workload", s, "must be one of W1, W2, W3, W4, W5"))
    }
}
