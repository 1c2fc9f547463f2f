//! Optimizers, penalties and learning-rate schedules: what turns a gradient into an
//! update, with the meanings (and defaults) of PyTorch's `torch.optim` and scikit-learn's
//! `SGDRegressor` / `SGDClassifier`.
//!
//! Each step the trainer turns these into the flat [`StepScalars`] that both backends'
//! update kernels read (`cpu::update::apply` and its WGSL twin), so CPU and GPU apply the
//! same arithmetic.

use super::TrainState;
use crate::error::{Error, Result};
use crate::program::{Rule, Scalars, StepScalars};

/// How a gradient becomes an update (PyTorch's definitions; state starts at zero).
///
/// ```
/// use gradflow::{Optimizer, TrainConfig};
/// let cfg = TrainConfig::sgd().optimizer(Optimizer::adam()).learning_rate(1e-3);
/// assert!(cfg.validate().is_ok());
/// assert!(TrainConfig::sgd().optimizer(Optimizer::momentum(1.5)).validate().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Optimizer {
    /// Plain SGD: `θ −= η g` (the seeds' rule; the default).
    #[default]
    Sgd,
    /// SGD with momentum μ (`torch.optim.SGD(momentum=μ, nesterov=…)`, no dampening).
    Momentum {
        /// μ in [0, 1).
        momentum: f64,
        /// Nesterov's variant.
        nesterov: bool,
    },
    /// Adam (`torch.optim.Adam`), with bias correction.
    Adam {
        /// β₁ in [0, 1) (default 0.9).
        beta1: f64,
        /// β₂ in [0, 1) (default 0.999).
        beta2: f64,
        /// ε > 0 (default 1e-8).
        eps: f64,
    },
    /// AdaGrad (`torch.optim.Adagrad`, initial accumulator 0).
    AdaGrad {
        /// ε > 0 (default 1e-10).
        eps: f64,
    },
}

impl Optimizer {
    /// Momentum μ.
    pub fn momentum(momentum: f64) -> Self {
        Optimizer::Momentum {
            momentum,
            nesterov: false,
        }
    }

    /// Nesterov momentum μ.
    pub fn nesterov(momentum: f64) -> Self {
        Optimizer::Momentum {
            momentum,
            nesterov: true,
        }
    }

    /// Adam with PyTorch's defaults: β = (0.9, 0.999), ε = 1e-8.
    pub fn adam() -> Self {
        Optimizer::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }

    /// AdaGrad with PyTorch's default ε = 1e-10.
    pub fn adagrad() -> Self {
        Optimizer::AdaGrad { eps: 1e-10 }
    }

    /// `sgd`, `momentum`, `nesterov`, `adam` or `adagrad`: the command's name for it.
    pub fn name(&self) -> &'static str {
        match self {
            Optimizer::Sgd => "sgd",
            Optimizer::Momentum {
                nesterov: false, ..
            } => "momentum",
            Optimizer::Momentum { nesterov: true, .. } => "nesterov",
            Optimizer::Adam { .. } => "adam",
            Optimizer::AdaGrad { .. } => "adagrad",
        }
    }

    /// The kernel rule.
    pub fn rule(&self) -> Rule {
        match *self {
            Optimizer::Sgd => Rule::Sgd,
            Optimizer::Momentum { nesterov, .. } => Rule::Momentum { nesterov },
            Optimizer::Adam { .. } => Rule::Adam,
            Optimizer::AdaGrad { .. } => Rule::AdaGrad,
        }
    }

    /// Checks the hyper-parameters.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        let unit = |name: &'static str, v: f64| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::param(name, v, "must be in [0, 1)"))
            }
        };
        let positive = |name: &'static str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::param(name, v, "must be finite and > 0"))
            }
        };
        match *self {
            Optimizer::Sgd => Ok(()),
            Optimizer::Momentum { momentum, .. } => unit("momentum", momentum),
            Optimizer::Adam { beta1, beta2, eps } => {
                unit("beta1", beta1)?;
                unit("beta2", beta2)?;
                positive("eps", eps)
            }
            Optimizer::AdaGrad { eps } => positive("eps", eps),
        }
    }

    /// The scalars of update number `t` (1-based) at learning rate `lr`, penalty aside.
    fn scalars(&self, lr: f64, t: u64) -> Scalars<f64> {
        let base = Scalars::sgd(lr);
        match *self {
            Optimizer::Sgd => base,
            Optimizer::Momentum { momentum, .. } => Scalars {
                beta1: momentum,
                ..base
            },
            Optimizer::Adam { beta1, beta2, eps } => {
                let t = t.min(i32::MAX as u64) as i32;
                // The kernels hold β in f32 and weigh the moments by β and 1 − β in f32
                // (exact: 1 − β has no rounding for β in [½, 1]): the bias corrections are
                // those of that same β, so that the step is Adam's for the β the kernels
                // use (with the f64 β, 1 − β₂ᵗ is 1.3·10⁻⁵ too large relative at β₂ = 0.999).
                let (b1, b2) = (f64::from(beta1 as f32), f64::from(beta2 as f32));
                Scalars {
                    beta1,
                    beta2,
                    eps,
                    c1: 1.0 / (1.0 - b1.powi(t)),
                    c2: 1.0 / (1.0 - b2.powi(t)),
                    ..base
                }
            }
            Optimizer::AdaGrad { eps } => Scalars { eps, ..base },
        }
    }
}

/// A penalty on the weights (never the biases), scikit-learn's `alpha · R(w)`:
///
/// | penalty | R(w) | in the update |
/// |---|---|---|
/// | `L2(α)` | ½‖w‖² | `g += α w` (PyTorch's `weight_decay = α`) |
/// | `L1(α)` | ‖w‖₁ | after the step, `w ← sign(w)·max(|w| − η α, 0)` |
/// | `ElasticNet { alpha, l1_ratio: ρ }` | ρ‖w‖₁ + (1 − ρ)/2 ‖w‖² | both, with α ρ and α (1 − ρ) |
///
/// The L1 step is scikit-learn's truncation: a weight that would cross zero stops at zero,
/// so L1 produces exact zeros. Reported losses are the data loss, without the penalty.
///
/// **scikit-learn's parameters.** gradflow's losses are means over the rows, so α is per
/// row: `LogisticRegression(C=c)` minimises the mean loss + ‖w‖² / (2 c n), which is
/// `L2(1 / (c n))` (the trainer's default for logistic and softmax regression is
/// `L2(1 / n)`, scikit-learn's `C = 1`); `Ridge(alpha=a)` minimises ‖y − Xw‖² + a‖w‖²,
/// n times gradflow's mean squared error + (α/2)‖w‖² with α = 2a / n; `SGDClassifier`'s
/// and `SGDRegressor`'s `alpha` is α as it is (their loss is a mean too).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Penalty {
    /// No penalty (the default).
    #[default]
    None,
    /// Ridge / weight decay.
    L2(f64),
    /// Lasso.
    L1(f64),
    /// Elastic net.
    ElasticNet {
        /// Overall strength α ≥ 0.
        alpha: f64,
        /// Share of L1, in [0, 1].
        l1_ratio: f64,
    },
}

impl std::fmt::Display for Penalty {
    /// As the command spells it: `none`, `l2 (α = 0.0001)`, `elasticnet (α = 0.001, l1
    /// ratio 0.15)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Penalty::None => write!(f, "none"),
            Penalty::L2(a) => write!(f, "l2 (α = {a})"),
            Penalty::L1(a) => write!(f, "l1 (α = {a})"),
            Penalty::ElasticNet { alpha, l1_ratio } => {
                write!(f, "elasticnet (α = {alpha}, l1 ratio {l1_ratio})")
            }
        }
    }
}

impl Penalty {
    /// `(l2, l1)` coefficients.
    fn coefficients(&self) -> (f64, f64) {
        match *self {
            Penalty::None => (0.0, 0.0),
            Penalty::L2(a) => (a, 0.0),
            Penalty::L1(a) => (0.0, a),
            Penalty::ElasticNet { alpha, l1_ratio } => (alpha * (1.0 - l1_ratio), alpha * l1_ratio),
        }
    }

    /// Checks α ≥ 0 and ρ in [0, 1].
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the bad value.
    pub fn validate(&self) -> Result<()> {
        let alpha = match *self {
            Penalty::None => return Ok(()),
            Penalty::L2(a) | Penalty::L1(a) => a,
            Penalty::ElasticNet { alpha, l1_ratio } => {
                if !(0.0..=1.0).contains(&l1_ratio) {
                    return Err(Error::param("l1_ratio", l1_ratio, "must be in [0, 1]"));
                }
                alpha
            }
        };
        if alpha.is_finite() && alpha >= 0.0 {
            Ok(())
        } else {
            Err(Error::param(
                "penalty alpha",
                alpha,
                "must be finite and ≥ 0",
            ))
        }
    }
}

/// How the learning rate η changes during a fit, from the configured η₀.
///
/// | schedule | η | PyTorch / scikit-learn |
/// |---|---|---|
/// | `Constant` | η₀ | `learning_rate="constant"` |
/// | `InvScaling { power: p }` | η₀ / tᵖ, t = update number (1-based) | `"invscaling"` (`power_t`) |
/// | `Step { every: k, gamma: γ }` | η₀ γ^⌊epoch / k⌋ | `StepLR` |
/// | `Exponential { gamma: γ }` | η₀ γ^epoch | `ExponentialLR` |
/// | `Cosine { min_lr }` | min + ½(η₀ − min)(1 + cos(π s / S)), s = update, S = all updates | `CosineAnnealingLR` per step |
/// | `Adaptive { patience, tol }` | η₀, divided by 5 each time `patience` epochs in a row fail to lower the epoch loss by `tol · max(1, \|best\|)` | `"adaptive"` (`n_iter_no_change`) |
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Schedule {
    /// η₀ throughout (the default).
    #[default]
    Constant,
    /// η₀ / tᵖ.
    InvScaling {
        /// p ≥ 0 (scikit-learn's default 0.25).
        power: f64,
    },
    /// Multiply by γ every `every` epochs.
    Step {
        /// Epochs per decay (≥ 1).
        every: usize,
        /// Factor γ in (0, 1].
        gamma: f64,
    },
    /// Multiply by γ every epoch.
    Exponential {
        /// Factor γ in (0, 1].
        gamma: f64,
    },
    /// Cosine annealing from η₀ to `min_lr` over the whole fit.
    Cosine {
        /// Final rate, in [0, η₀].
        min_lr: f64,
    },
    /// Divide by 5 on a plateau of the epoch loss.
    Adaptive {
        /// Epochs without improvement before a division (≥ 1; scikit-learn's 5).
        patience: usize,
        /// Improvement that counts (≥ 0; scikit-learn's 1e-3).
        tol: f64,
    },
}

impl Schedule {
    /// Checks the schedule's numbers.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the bad value.
    pub fn validate(&self, lr: f64) -> Result<()> {
        let gamma_ok = |g: f64| {
            if g > 0.0 && g <= 1.0 {
                Ok(())
            } else {
                Err(Error::param("gamma", g, "must be in (0, 1]"))
            }
        };
        match *self {
            Schedule::Constant => Ok(()),
            Schedule::InvScaling { power } if !(power.is_finite() && power >= 0.0) => {
                Err(Error::param("power", power, "must be finite and ≥ 0"))
            }
            Schedule::InvScaling { .. } => Ok(()),
            Schedule::Step { every: 0, .. } => Err(Error::param("every", 0, "must be ≥ 1 epoch")),
            Schedule::Step { gamma, .. } | Schedule::Exponential { gamma } => gamma_ok(gamma),
            Schedule::Cosine { min_lr } if !(min_lr >= 0.0 && min_lr <= lr) => Err(Error::param(
                "min_lr",
                min_lr,
                "must be in [0, learning_rate]",
            )),
            Schedule::Cosine { .. } => Ok(()),
            Schedule::Adaptive { patience: 0, .. } => {
                Err(Error::param("patience", 0, "must be ≥ 1 epoch"))
            }
            Schedule::Adaptive { tol, .. } if !(tol.is_finite() && tol >= 0.0) => {
                Err(Error::param("tol", tol, "must be finite and ≥ 0"))
            }
            Schedule::Adaptive { .. } => Ok(()),
        }
    }
}

/// The optimizer's running state on the host: the update count and the schedule's
/// position. Together with the engines' optimizer tensors it is everything a resumed fit
/// needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stepper {
    optimizer: Optimizer,
    penalty: Penalty,
    schedule: Schedule,
    lr0: f64,
    /// Updates applied so far.
    pub t: u64,
    /// Adaptive schedule: the current rate's divisor, the best epoch loss, epochs since.
    pub adaptive: (f64, f64, usize),
}

impl Stepper {
    /// A stepper that goes on from `state` (its update count and adaptive schedule).
    pub fn resume(
        optimizer: Optimizer,
        penalty: Penalty,
        schedule: Schedule,
        lr0: f64,
        state: &TrainState,
    ) -> Self {
        Stepper {
            optimizer,
            penalty,
            schedule,
            lr0,
            t: state.updates,
            adaptive: state.adaptive,
        }
    }

    /// Whether the optimizer keeps state tensors between updates (all but plain SGD).
    pub fn keeps_state(&self) -> bool {
        self.optimizer.rule() != crate::program::Rule::Sgd
    }

    /// The same stepper going on at base rate `lr0` (a backed-off fit).
    pub fn with_rate(self, lr0: f64) -> Self {
        Stepper { lr0, ..self }
    }

    /// The learning rate of the next update, in epoch `epoch` of `epochs` with
    /// `steps_per_epoch` updates each (the cosine schedule's horizon).
    pub fn lr(&self, epoch: usize, epochs: usize, steps_per_epoch: usize) -> f64 {
        let t = self.t + 1;
        match self.schedule {
            Schedule::Constant => self.lr0,
            Schedule::InvScaling { power } => self.lr0 / (t as f64).powf(power),
            Schedule::Step { every, gamma } => self.lr0 * gamma.powi((epoch / every) as i32),
            Schedule::Exponential { gamma } => self.lr0 * gamma.powi(epoch as i32),
            Schedule::Cosine { min_lr } => {
                let total = (epochs * steps_per_epoch).max(1) as f64;
                let s = (self.t as f64).min(total);
                min_lr
                    + 0.5 * (self.lr0 - min_lr) * (1.0 + (std::f64::consts::PI * s / total).cos())
            }
            Schedule::Adaptive { .. } => self.lr0 / self.adaptive.0,
        }
    }

    /// The scalars of the next update at rate `lr`, and counts it.
    pub fn next(&mut self, lr: f64) -> StepScalars {
        self.t += 1;
        let weights = self.optimizer.scalars(lr, self.t);
        let (l2, l1) = self.penalty.coefficients();
        StepScalars {
            weights: Scalars { l2, l1, ..weights },
            biases: weights,
        }
    }

    /// Tells the adaptive schedule an epoch's mean loss.
    pub fn end_epoch(&mut self, loss: f64) {
        if let Schedule::Adaptive { patience, tol } = self.schedule {
            let (divisor, best, since) = &mut self.adaptive;
            if super::config::improves(loss, *best, tol) {
                *since = 0;
            } else {
                *since += 1;
                if *since >= patience {
                    *divisor *= 5.0;
                    *since = 0;
                }
            }
            *best = best.min(loss);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Stepper {
        fn new(optimizer: Optimizer, penalty: Penalty, schedule: Schedule, lr0: f64) -> Self {
            Self::resume(optimizer, penalty, schedule, lr0, &TrainState::default())
        }
    }

    /// Adam's first step moves each weight by lr·sign(g) (m̂ = g, v̂ = g²) for the β
    /// the kernels hold: the moments weighed in f32, corrected for that same β.
    #[test]
    fn adam_corrects_the_moments_of_the_f32_beta() {
        let s = Optimizer::adam().scalars(0.1, 1);
        for (beta, c) in [(s.beta1, s.c1), (s.beta2, s.c2)] {
            let weight = 1.0 - beta as f32; // the kernels' 1 − β
            assert_eq!(f64::from(weight) * c, 1.0, "β = {beta}");
        }
        let g = 0.37f32;
        let (m, v) = ((1.0 - s.beta1 as f32) * g, (1.0 - s.beta2 as f32) * g * g);
        let step = (f64::from(m) * s.c1) / ((f64::from(v) * s.c2).sqrt() + s.eps);
        assert!((step - 1.0).abs() < 1e-6, "{step}");
    }

    #[test]
    fn schedules_by_hand() {
        let at = |schedule: Schedule, epoch: usize, t: u64| {
            let mut s = Stepper::new(Optimizer::Sgd, Penalty::None, schedule, 0.1);
            s.t = t;
            s.lr(epoch, 10, 100)
        };
        assert_eq!(at(Schedule::Constant, 3, 50), 0.1);
        // η₀ / 16^0.25 = 0.05 at update 16 (t = 15 applied).
        let inv = at(Schedule::InvScaling { power: 0.25 }, 0, 15);
        assert!((inv - 0.05).abs() < 1e-15);
        let step = at(
            Schedule::Step {
                every: 2,
                gamma: 0.5,
            },
            5,
            0,
        );
        assert!((step - 0.025).abs() < 1e-15); // ⌊5/2⌋ = 2 decays
        let exp = at(Schedule::Exponential { gamma: 0.9 }, 2, 0);
        assert!((exp - 0.081).abs() < 1e-15);
        let cos = |t| at(Schedule::Cosine { min_lr: 0.0 }, 0, t);
        assert_eq!(cos(0), 0.1);
        assert!((cos(500) - 0.05).abs() < 1e-15); // halfway through 1000 updates
        assert!(cos(1000).abs() < 1e-15);
    }

    #[test]
    fn adaptive_divides_by_five_on_a_plateau() {
        let sched = Schedule::Adaptive {
            patience: 2,
            tol: 1e-3,
        };
        let mut s = Stepper::new(Optimizer::Sgd, Penalty::None, sched, 1.0);
        for loss in [1.0, 0.5, 0.4999, 0.4998] {
            s.end_epoch(loss);
        }
        assert!((s.lr(4, 10, 1) - 0.2).abs() < 1e-15);
        s.end_epoch(0.1);
        assert!((s.lr(5, 10, 1) - 0.2).abs() < 1e-15);
    }

    #[test]
    fn penalties_reach_weights_only() {
        let mut s = Stepper::new(
            Optimizer::adam(),
            Penalty::ElasticNet {
                alpha: 0.1,
                l1_ratio: 0.25,
            },
            Schedule::Constant,
            0.01,
        );
        let step = s.next(0.01);
        assert!((step.weights.l1 - 0.025).abs() < 1e-15);
        assert!((step.weights.l2 - 0.075).abs() < 1e-15);
        assert_eq!((step.biases.l1, step.biases.l2), (0.0, 0.0));
        // Adam's first update: c₁ = 1/(1 − 0.9) = 10 (of β₁ in f32: to 3·10⁻⁷ relative).
        assert!((step.weights.c1 - 10.0).abs() < 3e-6);
    }
}
