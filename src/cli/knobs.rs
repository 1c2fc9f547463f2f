//! The training knobs of `gradflow train` beyond the basics: optimizer, penalty,
//! learning-rate schedule, stopping rules, class weights and standardisation — the
//! library's [`TrainConfig`] fields, with scikit-learn's and PyTorch's defaults.

use clap::{Args, ValueEnum};
use gradflow::data::ClassWeight;
use gradflow::{EarlyStopping, NoImprovement, Optimizer, Penalty, Schedule, TrainConfig};

use super::CliError;

/// `--optimizer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OptimizerArg {
    /// θ −= η g.
    Sgd,
    /// Heavy-ball momentum (--momentum).
    Momentum,
    /// Nesterov momentum (--momentum).
    Nesterov,
    /// Adam (--beta1, --beta2, --eps).
    Adam,
    /// AdaGrad (--eps).
    Adagrad,
}

/// `--penalty`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PenaltyArg {
    /// None.
    None,
    /// alpha · ½‖w‖² (weight decay).
    L2,
    /// alpha · ‖w‖₁, truncated at zero.
    L1,
    /// alpha · (l1_ratio ‖w‖₁ + (1 − l1_ratio)/2 ‖w‖²).
    Elasticnet,
}

/// `--schedule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScheduleArg {
    /// η throughout.
    Constant,
    /// η / t^power_t.
    Invscaling,
    /// η · gamma every --step-every epochs.
    Step,
    /// η · gamma each epoch.
    Exponential,
    /// Cosine annealing to --min-lr over the fit.
    Cosine,
    /// η ÷ 5 when --patience epochs fail to improve by --stop-tol.
    Adaptive,
}

/// The knobs, flattened into `gradflow train`'s arguments.
#[derive(Debug, Args)]
pub struct KnobArgs {
    /// How the mini-batch loop turns gradients into updates [default: adam for the MLP,
    /// sgd for the linear models]. Setting it chooses the mini-batch loop.
    #[arg(long, value_enum, help_heading = "Training")]
    optimizer: Option<OptimizerArg>,
    /// Momentum μ of --optimizer momentum / nesterov.
    #[arg(
        long,
        default_value_t = 0.9,
        value_name = "X",
        help_heading = "Training"
    )]
    momentum: f64,
    /// Adam's β₁.
    #[arg(
        long,
        default_value_t = 0.9,
        value_name = "X",
        help_heading = "Training"
    )]
    beta1: f64,
    /// Adam's β₂.
    #[arg(
        long,
        default_value_t = 0.999,
        value_name = "X",
        help_heading = "Training"
    )]
    beta2: f64,
    /// Adam's and AdaGrad's ε [default: 1e-8 for Adam, 1e-10 for AdaGrad].
    #[arg(long, value_name = "X", help_heading = "Training")]
    eps: Option<f64>,
    /// A penalty on the weights (never the biases) [default: l2 with α = 1/n for logistic
    /// and softmax regression (scikit-learn's C = 1), none otherwise].
    #[arg(long, value_enum, help_heading = "Training")]
    penalty: Option<PenaltyArg>,
    /// The penalty's strength α (scikit-learn's C is 1 / (α n) for l2).
    #[arg(
        long,
        default_value_t = 1e-4,
        value_name = "X",
        help_heading = "Training"
    )]
    alpha: f64,
    /// Elastic net's share of L1.
    #[arg(
        long,
        default_value_t = 0.15,
        value_name = "X",
        help_heading = "Training"
    )]
    l1_ratio: f64,
    /// How the learning rate changes during the fit.
    #[arg(long, value_enum, default_value_t = ScheduleArg::Constant, help_heading = "Training")]
    schedule: ScheduleArg,
    /// --schedule invscaling's power.
    #[arg(
        long,
        default_value_t = 0.25,
        value_name = "X",
        help_heading = "Training"
    )]
    power_t: f64,
    /// --schedule step's period in epochs.
    #[arg(
        long,
        default_value_t = 10,
        value_name = "N",
        help_heading = "Training"
    )]
    step_every: usize,
    /// --schedule step / exponential's factor.
    #[arg(
        long,
        default_value_t = 0.5,
        value_name = "X",
        help_heading = "Training"
    )]
    gamma: f64,
    /// --schedule cosine's final rate.
    #[arg(
        long,
        default_value_t = 0.0,
        value_name = "X",
        help_heading = "Training"
    )]
    min_lr: f64,
    /// Hold out --validation-fraction of the rows, stop when their loss stops improving,
    /// keep the best epoch's parameters.
    #[arg(long, help_heading = "Stopping")]
    early_stopping: bool,
    /// Share of the rows --early-stopping holds out.
    #[arg(
        long,
        default_value_t = 0.1,
        value_name = "X",
        help_heading = "Stopping"
    )]
    validation_fraction: f64,
    /// Stop when the epoch loss has not improved by --stop-tol for N epochs (scikit-learn's
    /// n_iter_no_change) [default: 10].
    #[arg(long, value_name = "N", help_heading = "Stopping")]
    n_iter_no_change: Option<usize>,
    /// Run every --epochs epoch of the mini-batch loop: no plateau rule, no L-BFGS
    /// (early stopping, when asked for, still applies).
    #[arg(long, help_heading = "Stopping", conflicts_with = "n_iter_no_change")]
    no_stop: bool,
    /// Epochs without improvement for --early-stopping and --schedule adaptive.
    #[arg(long, default_value_t = 5, value_name = "N", help_heading = "Stopping")]
    patience: usize,
    /// The tolerance of every stopping rule: the epoch loss's improvement that counts
    /// (--n-iter-no-change, --early-stopping, --schedule adaptive) and L-BFGS's largest
    /// gradient entry [default: 1e-4; 1e-3 for --early-stopping and --schedule adaptive].
    #[arg(long, value_name = "X", help_heading = "Stopping")]
    stop_tol: Option<f64>,
    /// The course notes' rule (seed 000): stop as soon as a batch's loss differs from the
    /// one before by less than X, checked before each update (the mini-batch loop). It
    /// replaces the plateau rule unless --n-iter-no-change is given too.
    #[arg(long, value_name = "X", help_heading = "Stopping")]
    batch_tol: Option<f64>,
    /// Leave out each epoch's last partial batch, as the course notes' loop does (N //
    /// batch-size batches; with shuffling, other rows each epoch).
    #[arg(long, help_heading = "Training")]
    drop_last: bool,
    /// Weigh each class's rows: `balanced`, or one weight per class (`1,2.5,1`).
    #[arg(long, value_name = "WEIGHTS", help_heading = "Data")]
    class_weight: Option<String>,
    /// Standardise the features (mean 0, variance 1, fitted on the training data and
    /// saved with the model, which applies it at predict time): the default.
    #[arg(long, help_heading = "Data", conflicts_with = "no_standardize")]
    standardize: bool,
    /// Train on the raw features.
    #[arg(long, help_heading = "Data")]
    no_standardize: bool,
}

impl KnobArgs {
    /// `config` with the knobs set.
    ///
    /// # Errors
    /// A usage error for a class weight that is not a number.
    pub fn apply(&self, config: TrainConfig) -> Result<TrainConfig, CliError> {
        let mut config = config.standardize(!self.no_standardize);
        config.schedule = match self.schedule {
            ScheduleArg::Constant => Schedule::Constant,
            ScheduleArg::Invscaling => Schedule::InvScaling {
                power: self.power_t,
            },
            ScheduleArg::Step => Schedule::Step {
                every: self.step_every,
                gamma: self.gamma,
            },
            ScheduleArg::Exponential => Schedule::Exponential { gamma: self.gamma },
            ScheduleArg::Cosine => Schedule::Cosine {
                min_lr: self.min_lr,
            },
            ScheduleArg::Adaptive => Schedule::Adaptive {
                patience: self.patience,
                tol: self.stop_tol.unwrap_or(1e-3),
            },
        };
        if let Some(o) = self.optimizer {
            config = config.optimizer(match o {
                OptimizerArg::Sgd => Optimizer::Sgd,
                OptimizerArg::Momentum => Optimizer::momentum(self.momentum),
                OptimizerArg::Nesterov => Optimizer::nesterov(self.momentum),
                OptimizerArg::Adam => Optimizer::Adam {
                    beta1: self.beta1,
                    beta2: self.beta2,
                    eps: self.eps.unwrap_or(1e-8),
                },
                OptimizerArg::Adagrad => Optimizer::AdaGrad {
                    eps: self.eps.unwrap_or(1e-10),
                },
            });
        }
        if let Some(p) = self.penalty {
            config = config.penalty(match p {
                PenaltyArg::None => Penalty::None,
                PenaltyArg::L2 => Penalty::L2(self.alpha),
                PenaltyArg::L1 => Penalty::L1(self.alpha),
                PenaltyArg::Elasticnet => Penalty::ElasticNet {
                    alpha: self.alpha,
                    l1_ratio: self.l1_ratio,
                },
            });
        }
        if self.early_stopping {
            config = config.early_stopping(EarlyStopping {
                validation_fraction: self.validation_fraction,
                patience: self.patience,
                tol: self.stop_tol.unwrap_or(1e-3),
            });
        }
        // The notes' rule alone, as their loop has it, unless the plateau rule is asked for.
        let plateau =
            !self.no_stop && (self.batch_tol.is_none() || self.n_iter_no_change.is_some());
        config.no_improvement = plateau.then(|| {
            let d = NoImprovement::default();
            NoImprovement {
                epochs: self.n_iter_no_change.unwrap_or(d.epochs),
                tol: self.stop_tol.unwrap_or(d.tol),
            }
        });
        if let Some(w) = &self.class_weight {
            config = config.class_weight(class_weight(w)?);
        }
        if let Some(tol) = self.batch_tol {
            config = config.tol(tol);
        }
        Ok(config.drop_last(self.drop_last))
    }

    /// The tolerance given with --stop-tol, if any (L-BFGS's when asked for by name).
    pub fn stop_tol(&self) -> Option<f64> {
        self.stop_tol
    }
}

fn class_weight(text: &str) -> Result<ClassWeight, CliError> {
    if text == "balanced" {
        return Ok(ClassWeight::Balanced);
    }
    text.split(',')
        .map(|v| v.trim().parse::<f32>())
        .collect::<Result<Vec<_>, _>>()
        .map(ClassWeight::Given)
        .map_err(|_| {
            CliError::usage(
                format!("--class-weight {text}: not `balanced` or a list of numbers"),
                "use --class-weight balanced, or one weight per class: --class-weight 1,3",
            )
        })
}
