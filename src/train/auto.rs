//! The choices a [`TrainConfig`] leaves to the trainer: solver, optimizer, learning rate,
//! penalty and the epoch cap, made from the model and the data so that a fit with no
//! other setting converges to a good model and never diverges.

use rand::SeedableRng;
use rand::seq::index;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::{Backend, Optimizer, Penalty, Schedule, Solver, TrainConfig};
use crate::cpu::activation;
use crate::data::{HostTargets, RowSource, RowWeights, gather_rows};
use crate::dist::Group;
use crate::error::{Error, Result};
use crate::model::{Arch, Spec};
use crate::program::Activation;
use crate::program::LossKind;

/// The most features for which `Solver::Auto` solves linear regression's normal
/// equations, the exact answer, rather than descending with L-BFGS to its tolerance. Their
/// sums cost n·(p + 2)² multiply-adds in f64, one L-BFGS evaluation ~4·n·p in f32 and a
/// fit from a few (isotropic data) to tens of them (correlated features): measured on 2
/// cores at 10⁶ rows (BENCHMARKS.md, 2026-12-05), 16 features cost the two alike, 64
/// features 0.36 s against L-BFGS's 0.12 s (centred: one more pass), 256 features 7×. Up to 64 the
/// exact answer is worth its price; past it, L-BFGS.
pub const NORMAL_MAX_FEATURES: usize = 64;

/// Epoch (or L-BFGS iteration) cap of the linear models when `epochs` is unset
/// (scikit-learn's `SGDClassifier` and `max_iter`-driven solvers run up to 1000).
pub const LINEAR_MAX_EPOCHS: usize = 1000;
/// The MLP's cap when `epochs` is unset (scikit-learn's `MLPClassifier`: 200), raised on
/// small data to allow [`MLP_MIN_UPDATES`] updates.
pub const MLP_MAX_EPOCHS: usize = 200;
/// Updates the MLP's default cap allows at least: an epoch of 100 rows is 4 updates of 32,
/// and 200 of them leave Adam at 10⁻³ far from converged (iris, measured: 0.92 accuracy
/// at 200 epochs, 0.97 when the plateau rule ends it after 806).
pub const MLP_MIN_UPDATES: usize = 20_000;
/// Rows the curvature estimate samples at most: a few power iterations over them cost
/// milliseconds, and the largest eigenvalue of a mean of 16,384 outer products is within
/// a few percent of the population's. (The largest row norm of a sample can miss an
/// outlier of the whole; the back-off covers that.)
const CURVATURE_ROWS: usize = 16_384;

/// What the trainer chose for a fit ([`Report::choices`](super::Report::choices)): the
/// config's own values where it set them, the trainer's choices elsewhere.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choices {
    /// `Solver::Lbfgs { .. }`, `Solver::Normal` or `Solver::Sgd` (never `Auto`).
    pub solver: Solver,
    /// The mini-batch loop's optimizer (`None` for L-BFGS).
    pub optimizer: Option<Optimizer>,
    /// The mini-batch loop's starting rate (`None` for L-BFGS), after any back-off.
    pub learning_rate: Option<f64>,
    /// Where the rate came from.
    pub rate_from: RateFrom,
    /// The penalty on the weights.
    pub penalty: Penalty,
    /// The epoch (L-BFGS: iteration) cap.
    pub max_epochs: usize,
    /// Times a chosen rate was divided by 4 after a non-finite or rising epoch loss.
    pub backoffs: usize,
}

/// Where a fit's learning rate came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateFrom {
    /// L-BFGS: no rate (its line search takes each step's length).
    None,
    /// The config set it.
    Given,
    /// 1 / L̂, L̂ the smoothness of the batch loss estimated from the data.
    Curvature {
        /// L̂.
        smoothness: f64,
    },
    /// The optimizer's customary default (Adam 10⁻³, AdaGrad 10⁻²).
    OptimizerDefault,
}

impl std::fmt::Display for RateFrom {
    /// `given`, `1/L̂ from the data's curvature (L̂ = 12.3)`, `the optimizer's default`,
    /// `none (line search)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RateFrom::None => write!(f, "none (line search)"),
            RateFrom::Given => write!(f, "given"),
            RateFrom::Curvature { smoothness } => {
                write!(f, "1/L̂ from the data's curvature (L̂ = {smoothness:.4})")
            }
            RateFrom::OptimizerDefault => write!(f, "the optimizer's default"),
        }
    }
}

/// Whether `spec` is one of the linear models (convex, smooth losses).
fn is_linear(spec: &Spec) -> bool {
    matches!(spec.arch, Arch::Glm { .. })
}

/// The choices for fitting `spec` to `data` (already standardised when the config asks)
/// under `cfg`; the rate is a placeholder until [`choose_rate`] has seen the data.
///
/// # Errors
/// [`Error::InvalidParameter`] when the config asks for L-BFGS with something it cannot
/// do: an L1 or elastic-net penalty, early stopping, a source not in memory.
///
/// A distributed fit (`distributed`) counts as in memory: each rank holds only its
/// contiguous share of the rows for L-BFGS (see [`super::full_batch`]), so the ranks
/// make the single-process fit's choice whether or not they stream.
pub(crate) fn resolve(
    cfg: &TrainConfig,
    spec: &Spec,
    data: &dyn RowSource,
    distributed: bool,
) -> Result<Choices> {
    let n = data.n();
    let penalty = cfg.penalty.unwrap_or(match spec.arch {
        Arch::Glm {
            loss: LossKind::SigmoidBce | LossKind::SoftmaxCce,
            ..
        } => Penalty::L2(1.0 / n as f64),
        _ => Penalty::None,
    });
    let smooth = matches!(penalty, Penalty::None | Penalty::L2(_));
    let loop_knobs = cfg.learning_rate.is_some()
        || cfg.optimizer.is_some()
        || cfg.schedule != Schedule::Constant
        || cfg.early_stopping.is_some()
        || cfg.tol.is_some()
        || cfg.drop_last
        || cfg.verify.is_some()
        // No plateau rule: exactly `epochs` epochs, which only the loop runs.
        || cfg.no_improvement.is_none();
    let in_memory = data.in_memory().is_some() || distributed;
    let steps_per_epoch = n.div_ceil(cfg.batch_size.clamp(1, n.max(1))).max(1);
    let max_epochs = cfg.epochs.unwrap_or(if is_linear(spec) {
        LINEAR_MAX_EPOCHS
    } else {
        MLP_MAX_EPOCHS.max(MLP_MIN_UPDATES.div_ceil(steps_per_epoch))
    });
    let regression = matches!(
        spec.arch,
        Arch::Glm {
            loss: LossKind::Mse,
            ..
        }
    );
    let solver = match cfg.solver {
        // Linear regression's closed form where its price is near L-BFGS's (see
        // `NORMAL_MAX_FEATURES`), unless the fit is asked to run on the device.
        Solver::Auto
            if regression
                && smooth
                && !loop_knobs
                && in_memory
                && spec.p <= NORMAL_MAX_FEATURES
                && cfg.backend != Backend::Gpu =>
        {
            Solver::Normal
        }
        Solver::Auto if is_linear(spec) && smooth && !loop_knobs && in_memory => Solver::Lbfgs {
            memory: 10,
            max_iter: max_epochs,
            tol: cfg.no_improvement.map_or(1e-4, |r| r.tol),
        },
        Solver::Auto => Solver::Sgd,
        Solver::Lbfgs { .. } | Solver::Normal => {
            let normal = cfg.solver == Solver::Normal;
            let name = if normal { "normal" } else { "lbfgs" };
            if normal && !regression {
                return Err(Error::param(
                    "solver normal",
                    format!("for {}", crate::model::Kind::of(spec).title()),
                    "is linear regression's closed form: use solver lbfgs or sgd",
                ));
            }
            // The closed form has no steps: a setting of the loop would be ignored.
            let loop_settings = cfg.learning_rate.is_some()
                || cfg.optimizer.is_some()
                || cfg.schedule != Schedule::Constant
                || cfg.tol.is_some()
                || cfg.drop_last
                || cfg.verify.is_some();
            if normal && loop_settings {
                return Err(Error::param(
                    "solver normal",
                    "with a setting of the mini-batch loop (a learning rate, an optimizer, \
                     a schedule, tol, drop_last or verify)",
                    "has no steps to apply it to: drop the setting, or use solver sgd",
                ));
            }
            if !smooth {
                return Err(Error::param(
                    "penalty",
                    format!("{penalty} with solver {name}"),
                    if normal {
                        "must be None or L2 for the normal equations (an L1 term has no \
                         closed form): use solver sgd"
                    } else {
                        "must be None or L2 for L-BFGS (an L1 term is not smooth): use solver sgd"
                    },
                ));
            }
            if cfg.early_stopping.is_some() {
                return Err(Error::param(
                    "early_stopping",
                    format!("with solver {name}"),
                    "is a rule of the mini-batch loop: use solver sgd, or leave it out",
                ));
            }
            if !in_memory {
                return Err(Error::param(
                    if normal {
                        "solver normal"
                    } else {
                        "solver lbfgs"
                    },
                    "on a streamed source",
                    "needs the rows in memory (a Dataset; Dataset::from_source loads a \
                     source that fits): use solver sgd to stream them",
                ));
            }
            cfg.solver
        }
        Solver::Sgd => Solver::Sgd,
    };
    let optimizer = match solver {
        Solver::Lbfgs { .. } | Solver::Normal => None,
        _ => Some(cfg.optimizer.unwrap_or(if is_linear(spec) {
            Optimizer::Sgd
        } else {
            Optimizer::adam()
        })),
    };
    Ok(Choices {
        solver,
        optimizer,
        learning_rate: cfg.learning_rate.filter(|_| optimizer.is_some()),
        rate_from: match (optimizer, cfg.learning_rate) {
            (None, _) => RateFrom::None,
            (Some(_), Some(_)) => RateFrom::Given,
            (Some(_), None) => RateFrom::OptimizerDefault,
        },
        penalty,
        max_epochs,
        backoffs: 0,
    })
}

/// Sets the mini-batch loop's rate when the config left it open: the optimizer's default
/// for the adaptive ones, 1 / L̂ for SGD and momentum (see
/// [`TrainConfig::learning_rate`]); `init` are the parameters the fit starts from.
///
/// # Errors
/// The source's errors while the sample is read; [`Error::InvalidParameter`] when a
/// cosine schedule's floor is above the chosen rate.
pub(crate) fn choose_rate(
    choices: &mut Choices,
    cfg: &TrainConfig,
    spec: &Spec,
    data: &dyn RowSource,
    (weights, init): (Option<&RowWeights<'_>>, &[Vec<f32>]),
    group: Option<&Group>,
) -> Result<()> {
    let Some(optimizer) = choices.optimizer else {
        return Ok(());
    };
    if choices.learning_rate.is_none() {
        let (rate, from) = match optimizer {
            Optimizer::Adam { .. } => (1e-3, RateFrom::OptimizerDefault),
            Optimizer::AdaGrad { .. } => (1e-2, RateFrom::OptimizerDefault),
            Optimizer::Sgd | Optimizer::Momentum { .. } => {
                let batch = cfg.batch_size.min(data.n());
                let sample = Sample::of(data, weights, cfg.seed, group)?;
                let l = match spec.arch {
                    Arch::Glm { loss, .. } => loss_curvature(loss) * sample.smoothness(batch),
                    // The MLP: each layer is a softmax-bounded GLM on its inputs — the
                    // features, and the hidden activations at the initial parameters —
                    // and the larger bound sets the rate; backing off covers the rest.
                    Arch::Mlp { activation, .. } => {
                        let hidden = sample.hidden(&init[0], &init[1], activation);
                        let c = loss_curvature(LossKind::SoftmaxCce);
                        c * sample.smoothness(batch).max(hidden.smoothness(batch))
                    }
                };
                (
                    1.0 / l.max(f64::MIN_POSITIVE),
                    RateFrom::Curvature { smoothness: l },
                )
            }
        };
        choices.learning_rate = Some(rate);
        choices.rate_from = from;
    }
    cfg.schedule
        .validate(choices.learning_rate.unwrap_or(f64::INFINITY))
}

/// The largest curvature of each loss along its output, per unit ‖x̃‖²: MSE without the
/// ½ has second derivative 2; σ′ ≤ ¼; the softmax Jacobian diag(p) − ppᵀ has eigenvalues
/// ≤ ½.
fn loss_curvature(loss: LossKind) -> f64 {
    match loss {
        LossKind::Mse => 2.0,
        LossKind::SigmoidBce => 0.25,
        LossKind::SoftmaxCce => 0.5,
    }
}

/// A seeded sample of at most [`CURVATURE_ROWS`] rows as x̃ = √w · [x 1] in `f64`, the
/// source's row count kept for the batch formula.
struct Sample {
    /// Rows of `q` values, the 1 of the intercept last.
    rows: Vec<f64>,
    q: usize,
    /// √w of each sampled row.
    scale: Vec<f64>,
    n: usize,
    /// maxᵢ ‖x̃ᵢ‖² over every row, when the data are in memory (one cheap pass; an
    /// outlier row a sample missed would otherwise take a step far too long), or spread
    /// over the ranks of a distributed fit (each its share of the rows).
    max_row: Option<f64>,
}

impl Sample {
    fn of(
        data: &dyn RowSource,
        weights: Option<&RowWeights<'_>>,
        seed: u64,
        group: Option<&Group>,
    ) -> Result<Self> {
        let (n, p) = (data.n(), data.p());
        let mut rows: Vec<u32> = if n <= CURVATURE_ROWS {
            (0..n as u32).collect()
        } else {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x6375_7276); // "curv"
            index::sample(&mut rng, n, CURVATURE_ROWS)
                .into_iter()
                .map(|i| i as u32)
                .collect()
        };
        rows.sort_unstable();
        let m = rows.len();
        let (mut x, mut w) = (Vec::new(), Vec::new());
        let mut targets = HostTargets::empty(data.target_kind());
        gather_rows(data, weights, &rows, (&mut x, &mut targets, &mut w))?;
        let scale: Vec<f64> = (0..m)
            .map(|i| w.get(i).map_or(1.0, |&v| f64::from(v)).sqrt())
            .collect();
        let rows = x
            .chunks_exact(p.max(1))
            .zip(&scale)
            .flat_map(|(r, &s)| {
                r.iter()
                    .map(move |&v| s * f64::from(v))
                    .chain(std::iter::once(s))
            })
            .collect();
        // ‖x̃‖² of a row of weight w: (1 + ‖x‖²) · w.
        let norm =
            |r: &[f32], w: f64| (1.0 + r.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>()) * w;
        let max_row = match (data.in_memory(), group) {
            (Some(d), _) => {
                let w = weights.map(|w| w.all(d.targets()));
                let rows = d.features().chunks_exact(p.max(1)).enumerate();
                Some(
                    rows.map(|(i, r)| norm(r, w.as_ref().map_or(1.0, |w| f64::from(w[i]))))
                        .fold(0f64, f64::max),
                )
            }
            (None, Some(g)) => {
                // This rank's blocks of rows, then the largest of the ranks' maxima.
                const BLOCK: usize = 1 << 14;
                let blocks = n.div_ceil(BLOCK);
                let mine = g.part(blocks);
                let mut largest = 0f64;
                let mut w = Vec::new();
                let scan = || -> Result<()> {
                    let (mut x, mut targets) = (Vec::new(), HostTargets::empty(data.target_kind()));
                    for b in mine {
                        let rows: Vec<u32> = (b * BLOCK..((b + 1) * BLOCK).min(n))
                            .map(|r| r as u32)
                            .collect();
                        gather_rows(data, weights, &rows, (&mut x, &mut targets, &mut w))?;
                        for (i, r) in x.chunks_exact(p.max(1)).enumerate() {
                            largest = largest.max(norm(r, w.get(i).map_or(1.0, |&v| f64::from(v))));
                        }
                    }
                    Ok(())
                };
                let scanned = scan();
                let all = g.gather(scanned.map(|()| largest.to_le_bytes().to_vec()))?;
                Some(
                    all.iter()
                        .flat_map(|b| crate::dist::from_bytes(b))
                        .fold(0f64, f64::max),
                )
            }
            (None, None) => None,
        };
        Ok(Sample {
            rows,
            q: p + 1,
            scale,
            n,
            max_row,
        })
    }

    /// The hidden activations f(x W¹ + b¹) of the sampled rows, as a sample of the MLP's
    /// output layer's inputs.
    fn hidden(&self, w1: &[f32], b1: &[f32], f: Activation) -> Sample {
        let (p, h) = (self.q - 1, b1.len());
        let mut rows = Vec::with_capacity(self.scale.len() * (h + 1));
        for (r, &s) in self.rows.chunks_exact(self.q).zip(&self.scale) {
            let mut z: Vec<f64> = b1.iter().map(|&b| f64::from(b)).collect();
            // The row was scaled by √w, its 1 too: undo it for the activation.
            let unscaled = |v: f64| if s > 0.0 { v / s } else { 0.0 };
            for (l, &xv) in r[..p].iter().enumerate() {
                let xv = unscaled(xv);
                for (zj, &wv) in z.iter_mut().zip(&w1[l * h..(l + 1) * h]) {
                    *zj += xv * f64::from(wv);
                }
            }
            let mut a = vec![0f64; h];
            activation::activate(f, &z, &mut a);
            rows.extend(a.iter().map(|v| s * v).chain(std::iter::once(s)));
        }
        Sample {
            rows,
            q: h + 1,
            scale: self.scale.clone(),
            n: self.n,
            max_row: None,
        }
    }

    /// The expected smoothness of a `batch`-row mean of x̃ᵢx̃ᵢᵀ sampled without
    /// replacement (Gower et al. 2019, Prop. 3.8):
    /// L_b = n(b − 1) / (b(n − 1)) · λ_max(X̃ᵀX̃ / n) + (n − b) / (b(n − 1)) · maxᵢ ‖x̃ᵢ‖².
    fn smoothness(&self, batch: usize) -> f64 {
        let (q, m) = (self.q, self.scale.len().max(1));
        let sampled = self
            .rows
            .chunks_exact(q)
            .map(|r| r.iter().map(|v| v * v).sum::<f64>())
            .fold(0f64, f64::max);
        let max_row = self.max_row.unwrap_or(sampled).max(sampled);
        // Power iteration for λ_max of X̃ᵀX̃ / m; the Rayleigh quotient rises to it.
        let mut v = vec![1.0 / (q as f64).sqrt(); q];
        let mut lambda = 0f64;
        for _ in 0..100 {
            let mut next = vec![0f64; q];
            for r in self.rows.chunks_exact(q) {
                let t: f64 = r.iter().zip(&v).map(|(a, b)| a * b).sum();
                next.iter_mut().zip(r).for_each(|(o, a)| *o += t * a);
            }
            next.iter_mut().for_each(|o| *o /= m as f64);
            let estimate: f64 = next.iter().zip(&v).map(|(a, b)| a * b).sum();
            let norm = next.iter().map(|a| a * a).sum::<f64>().sqrt();
            if norm == 0.0 {
                break;
            }
            next.iter_mut().for_each(|o| *o /= norm);
            v = next;
            let settled = (estimate - lambda).abs() <= 1e-4 * estimate;
            lambda = estimate;
            if settled {
                break;
            }
        }
        let (nf, b) = (self.n as f64, batch.clamp(1, self.n.max(1)) as f64);
        if self.n <= 1 {
            return max_row;
        }
        nf * (b - 1.0) / (b * (nf - 1.0)) * lambda + (nf - b) / (b * (nf - 1.0)) * max_row
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Dataset, Targets};

    #[test]
    fn smoothness_of_known_spectra() {
        // Rows ±(3, 0) and ±(0, 1): X̃ᵀX̃/n = diag(4.5, 0.5, 1), rows' ‖x̃‖² = 10 and 2.
        let x = vec![3.0, 0.0, -3.0, 0.0, 0.0, 1.0, 0.0, -1.0];
        let data = Dataset::new(x, 2, Targets::Real(vec![0.0; 4])).unwrap();
        let sample = Sample::of(&data, None, 0, None).unwrap();
        let full = sample.smoothness(4);
        assert!((full - 4.5).abs() < 1e-3, "{full}");
        let single = sample.smoothness(1);
        assert!((single - 10.0).abs() < 1e-9, "{single}");
        // b = 2: n(b−1)/(b(n−1)) = 2/3, (n−b)/(b(n−1)) = 1/3.
        let two = sample.smoothness(2);
        assert!((two - (2.0 / 3.0 * 4.5 + 10.0 / 3.0)).abs() < 1e-3, "{two}");
    }
}
