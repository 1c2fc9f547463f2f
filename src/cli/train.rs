//! `gradflow train`: fit a model, print its scores (or one JSON summary), optionally save
//! it and plot its loss curve.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use gradflow::data::{BatchTargets, HostTargets, RowSource, Shuffle};
use gradflow::io::convert::{Converted, csv_to_npy_with};
use gradflow::io::model::DataColumns;
use gradflow::io::{Column, ModelKind, Prediction, SavedModel, TrainSummary};
use gradflow::metrics::{ClassReport, confusion_matrix, log_loss};
use gradflow::{Backend, Mode, Penalty, Report, Solver, StopReason, TrainConfig, Trainer, Verify};
use serde::Serialize;

use super::data_spec::{self, DataSpec};
use super::knobs::KnobArgs;
use super::launch::World;
use super::memory;
use super::progress::{self, human};
use super::{CliError, HeaderArg, build_model, check_output, plot};

/// `gradflow train`.
#[derive(Debug, Args)]
#[command(
    after_help = "With no training flags a fit converges by itself: features standardised, \
the normal equations for linear regression (up to 64 features, not on --backend gpu) and \
L-BFGS for logistic and softmax regression on data in memory, Adam for the MLP and for \
streamed data, the epochs a maximum, a rate chosen from the data.

Examples:
  gradflow train --model logistic --data breast_cancer.csv --save bc.json
  gradflow train --model softmax --data iris.csv --target species --plot loss.png
  gradflow train --model linear --data 'synthetic:linear?n=1000000&p=64' --batch-size 256 --lr 0.05 --epochs 5 --no-stop
  gradflow train --model mlp --hidden 64 --activation tanh --data 'synthetic:rings?n=5000' --backend gpu --verify 100 --json"
)]
pub struct TrainArgs {
    /// The model.
    #[arg(long, value_enum)]
    model: ModelKind,
    /// The data: synthetic:KIND?key=value&… (KIND linear, logistic, blobs, teacher, rings;
    /// keys n, p, k, seed, noise, hidden, argmax), a .csv file, or a .npy file (2-D f32/f64).
    #[arg(long, value_name = "SPEC")]
    data: String,
    /// Target column of a .csv or .npy file: a header name, or an index counted from 0
    /// [default: the last column].
    #[arg(long, value_name = "COL")]
    target: Option<String>,
    /// How the parameters are found: auto is the normal equations for linear regression
    /// (up to 64 features, not on --backend gpu) and full-batch L-BFGS for the linear
    /// models otherwise, on data in memory, unless a knob of the mini-batch loop is given
    /// (--lr, --batch-size, --optimizer, --schedule, --early-stopping, --no-stop,
    /// --drop-last, --batch-tol, an l1 or elasticnet --penalty), the loop otherwise.
    #[arg(long, value_enum, default_value_t = SolverArg::Auto)]
    solver: SolverArg,
    /// Rows per update of the mini-batch loop (1: stochastic GD; ≥ the row count:
    /// full-batch GD) [default: 32].
    #[arg(long, value_name = "N")]
    batch_size: Option<usize>,
    /// The most passes over the data (L-BFGS: iterations); a stopping rule usually ends
    /// the fit sooner [default: 1000 for the linear models; 200 for the MLP, or enough for
    /// 20,000 updates on small data].
    #[arg(long, value_name = "N")]
    epochs: Option<usize>,
    /// Learning rate η of the mini-batch loop [default: chosen from the data, and backed
    /// off if the loss diverges].
    #[arg(long, value_name = "X")]
    lr: Option<f64>,
    /// Seed of the shuffles, the initialisation and (unless the spec sets one) the
    /// synthetic data.
    #[arg(long, default_value_t = 0, value_name = "N")]
    seed: u64,
    /// Where to train: auto is a hardware GPU when one exists and the data fit, else the CPU.
    #[arg(long, value_enum, default_value_t = BackendArg::Cpu)]
    backend: BackendArg,
    /// Rerun every K-th GPU step on the CPU reference kernels and compare (needs
    /// --backend gpu or auto).
    #[arg(long, value_name = "K")]
    verify: Option<usize>,
    /// MLP hidden width [default: 32].
    #[arg(long, value_name = "N")]
    hidden: Option<usize>,
    /// Where the parameters start [default: auto: zeros for the linear models, Glorot's
    /// range for an MLP (He's with relu)]; ones is the course notes' w = 1, b = 0
    /// (linear models)
    #[arg(long, value_enum)]
    init: Option<gradflow::model::Init>,
    /// MLP hidden activation [default: sigmoid].
    #[arg(long, value_enum)]
    activation: Option<gradflow::program::Activation>,
    /// Save the fitted model to this JSON file.
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
    /// Draw the epoch loss curve into this PNG file.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Print one JSON summary on standard output, and nothing else there.
    #[arg(long)]
    json: bool,
    /// Whether a .csv file's first row names its columns [default: auto, detected: a cell
    /// that is not a number over one that is]
    #[arg(long, value_enum, default_value_t = HeaderArg::Auto, hide_default_value = true)]
    header: HeaderArg,
    /// A .csv column of sample weights (a header name, or an index from 0): each row's loss
    /// and gradient are scaled by it; it is not a feature.
    #[arg(long, value_name = "COL")]
    sample_weight: Option<String>,
    /// Go on from a saved model (a checkpoint): its parameters, optimizer state, epoch
    /// count and scaler; --epochs more epochs (--model must match).
    #[arg(long, value_name = "FILE")]
    resume: Option<PathBuf>,
    /// The order each epoch reads the rows in: full (a fresh permutation), off (stored
    /// order), windowed (shuffled 4 MiB chunks of rows, 64 mixed at a time: for files
    /// larger than memory) [default: full, or windowed for a .npy file larger than
    /// memory].
    #[arg(long, value_enum)]
    shuffle: Option<ShuffleArg>,
    /// Read a .npy file or a generator in place, batch by batch, instead of loading it
    /// whole (automatic for data larger than half the memory this process may use, and
    /// on every rank of an MPI job). A .npy file larger than that memory is read in
    /// windowed order (shuffled chunks of rows) so that reads stay sequential. CSV files
    /// are always read whole.
    #[arg(long)]
    stream: bool,
    /// In an MPI job: average the ranks' parameters every K steps, each rank stepping on
    /// its own part of each batch in between (local SGD: fewer, larger messages for slow
    /// networks), instead of all-reducing the gradients every step [default: 1].
    #[arg(long, value_name = "K", default_value_t = 1)]
    sync_every: usize,
    #[command(flatten)]
    knobs: KnobArgs,
}

/// `--shuffle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShuffleArg {
    /// A fresh permutation of all rows every epoch.
    Full,
    /// The rows in stored order.
    Off,
    /// Shuffled chunks of consecutive rows, the rows of 64 chunks mixed together.
    Windowed,
}

/// `--solver`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SolverArg {
    /// The normal equations or L-BFGS for the linear models on data in memory, the
    /// mini-batch loop otherwise.
    Auto,
    /// The mini-batch loop (--optimizer, --lr, --batch-size).
    Sgd,
    /// Full-batch L-BFGS (linear models; the MLP too, if asked).
    Lbfgs,
    /// Linear regression's closed form: the normal equations, solved in f64 (the exact
    /// minimiser; an l2 --penalty makes it ridge regression).
    Normal,
}

/// `--backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// A hardware GPU when one exists and the data fit it, else the CPU (with a notice);
    /// a software adapter only when GRADFLOW_ADAPTER names it.
    Auto,
    /// The CPU kernels.
    Cpu,
    /// The GPU (any adapter, software ones too); an error when no adapter exists.
    Gpu,
}

/// The JSON summary of `--json`.
#[derive(Debug, Serialize)]
struct Summary {
    model: &'static str,
    data: String,
    rows: usize,
    features: usize,
    classes: Option<usize>,
    backend: &'static str,
    adapter: Option<String>,
    mode: String,
    config: ConfigSummary,
    epochs_run: usize,
    steps: u64,
    stop: StopReason,
    converged: bool,
    notes: Vec<String>,
    losses: Vec<f64>,
    metrics: BTreeMap<String, f64>,
    timings: Timings,
    samples: u64,
    bytes_to_device: u64,
    verify: Vec<DeviationSummary>,
    saved: Option<String>,
    plot: Option<String>,
}

#[derive(Debug, Serialize)]
struct ConfigSummary {
    /// `lbfgs` or `sgd`.
    solver: &'static str,
    /// The mini-batch loop's optimizer (`null` for L-BFGS).
    optimizer: Option<&'static str>,
    batch_size: usize,
    /// The loop's rate (after any back-off; `null` for L-BFGS) and where it came from.
    learning_rate: Option<f64>,
    learning_rate_from: String,
    backoffs: usize,
    /// `none`, `l2`, `l1`, `elasticnet`, with α, and whether --penalty gave it.
    penalty: String,
    alpha: f64,
    penalty_given: bool,
    /// The epoch (L-BFGS: iteration) cap.
    epochs: usize,
    standardized: bool,
    seed: u64,
    verify_every: Option<usize>,
}

#[derive(Debug, Serialize)]
struct Timings {
    data_seconds: f64,
    /// Bytes of the data file read whole in that time (none for a generator or a file
    /// read in place).
    data_bytes: Option<u64>,
    train_seconds: f64,
    samples_per_sec: f64,
    upload_wait_seconds: f64,
    gpu_wait_seconds: f64,
    /// An MPI job: the ranks, the collectives and the seconds spent in them.
    ranks: usize,
    all_reduces: u64,
    all_reduce_seconds: f64,
}

#[derive(Debug, Serialize)]
struct DeviationSummary {
    tensor: String,
    max_abs: f64,
    max_rel: f64,
    checks: u64,
}

/// Runs `gradflow train`.
///
/// # Errors
/// Usage errors for bad or conflicting flags; the library's errors for bad data, a
/// diverged fit, a missing adapter; I/O errors for `--save` and `--plot`.
pub fn run(args: &TrainArgs) -> Result<(), CliError> {
    let world = World::start()?;
    let data = Path::new(&args.data);
    if let Some(save) = &args.save {
        check_output("--save", save, &[("--data", data)])?;
    }
    if let Some(plot) = &args.plot {
        if !plot
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"))
        {
            return Err(CliError::usage(
                format!("--plot {}: the plot is a PNG image", plot.display()),
                "give a file name ending in .png",
            ));
        }
        let mut inputs = vec![("--data", data)];
        inputs.extend(args.resume.as_deref().map(|r| ("--resume", r)));
        inputs.extend(args.save.as_deref().map(|s| ("--save", s)));
        check_output("--plot", plot, &inputs)?;
    }
    let kind = args.model;
    let mut model = build_model(args.model, args.hidden, args.activation, args.init)?;
    let config = config(args)?;
    let spec = DataSpec::parse(&args.data, args.seed)?;
    let target = args
        .target
        .as_deref()
        .map(str::parse::<Column>)
        .transpose()?;
    let weight = args
        .sample_weight
        .as_deref()
        .map(str::parse::<Column>)
        .transpose()?;
    let (spec, target, csv_layout, _scratch) =
        csv_for_ranks(&world, spec, target, weight.as_ref(), args.header.given())?;
    // What each rank may use of its machine's memory decides, agreed by all ranks:
    // streaming (the data pass half of it), a windowed order (a file passes all of it),
    // and the mini-batch loop where a rank's share would not fit for L-BFGS.
    let budget = memory::budget();
    let passes =
        |bytes: Option<u64>, divisor: u64| bytes.zip(budget).is_some_and(|(b, m)| b > m / divisor);
    let ranks = world.size() as u64;
    let big = world.any(passes(spec.bytes(), 2))?;
    let too_big = world.any(passes(spec.bytes(), 1))?;
    let share_big = world.any(passes(spec.bytes().map(|b| b / ranks), 2))?;
    let big = big && spec.streams();
    let stream = args.stream || world.comm().is_some() || big;
    let mut config = config;
    if share_big && args.solver == SolverArg::Auto {
        config = config.solver(Solver::Sgd);
    }
    if big {
        // Gathering the rows once for a resident upload would hold them all in host
        // memory: a GPU streams them through its ring instead.
        config = config.mode(Mode::Streaming);
    }
    let columns = (target.as_ref(), weight.as_ref());
    // Every rank opens the data (and the checkpoint) itself; a rank that cannot stops
    // them all here.
    let read = (stream, args.header.given());
    let mut loaded = world.agree(data_spec::load(&spec, columns, kind, read))?;
    if let Some(csv) = csv_layout {
        // Rank 0 saves the model with the CSV's names and layout, not the scratch file's.
        loaded.labels = csv.labels.or(loaded.labels);
        let names = csv.header.as_ref();
        let t = csv.target_column;
        loaded.columns = DataColumns {
            features: names.map(|h| {
                h.iter()
                    .enumerate()
                    .filter(|&(j, _)| j != t)
                    .map(|(_, n)| n.clone())
                    .collect()
            }),
            target: names.map(|h| h[t].clone()),
            target_column: Some(t),
            file: Some("csv".into()),
            ..DataColumns::default()
        };
    }
    let data = loaded.source();
    // Rows of 4 MiB chunks, 64 chunks to a window.
    let row_bytes = (data.p() as u64 + 1) * 4;
    let chunk_rows = ((4 << 20) / row_bytes).max(1);
    let windowed = Shuffle::Windowed {
        chunk_rows: chunk_rows as usize,
        window_chunks: 64,
    };
    match args.shuffle {
        Some(ShuffleArg::Full) => config.shuffle = Shuffle::Full,
        Some(ShuffleArg::Off) => config.shuffle = Shuffle::Off,
        Some(ShuffleArg::Windowed) => config.shuffle = windowed,
        None => {}
    }
    if let (data_spec::Rows::Parquet(_), None) = (&loaded.rows, args.shuffle) {
        // Read in place, a row group is decoded when a batch first needs one of its rows:
        // a full permutation would decode row groups over and over.
        config.shuffle = windowed;
    }
    if let (data_spec::Rows::Npy(_), Some(b), Some(m), None) =
        (&loaded.rows, spec.bytes(), budget, args.shuffle)
        && too_big
    {
        // A full permutation of a file that does not fit would make every read a page
        // fault; shuffled 4 MiB chunks, mixed 64 at a time, keep the reads sequential.
        config.shuffle = windowed;
        if world.is_root() {
            eprintln!(
                "gradflow: {} is {b} bytes, more than the {m} bytes of memory this process \
                 may use: reading it in windowed order (chunks of {chunk_rows} rows, 64 to a \
                 window)",
                args.data
            );
        }
    }

    if let Some(path) = &args.resume {
        let names = (loaded.labels.as_deref(), loaded.columns.features.as_deref());
        world.agree(resume(model.as_mut(), kind, path, names))?;
    }
    // The bar's length before the trainer has fixed the cap: the default one, or asked.
    let cap = config.epochs.unwrap_or(match kind {
        ModelKind::Mlp => gradflow::train::MLP_MAX_EPOCHS,
        _ => gradflow::train::LINEAR_MAX_EPOCHS,
    });
    let bar = match world.is_root() {
        true => progress::epoch_bar(cap),
        false => indicatif::ProgressBar::hidden(),
    };
    let mut trainer = Trainer::new(config.clone())?.with_progress(progress::callback(bar.clone()));
    if let Some(comm) = world.comm() {
        trainer = trainer.with_comm(comm);
    }
    let weights = loaded.weights.as_deref();
    let fitted = match args.resume {
        Some(_) => trainer.partial_fit_weighted(model.as_mut(), data, weights),
        None => trainer.fit_weighted(model.as_mut(), data, weights),
    };
    bar.finish_and_clear();
    let report = fitted.map_err(|e| {
        let hint = match &e {
            gradflow::Error::Diverged { .. } if args.lr.is_some() => {
                Some("lower --lr, or leave it out to let gradflow choose".to_string())
            }
            gradflow::Error::Diverged { .. } => Some(
                "the loss diverged even at rates backed off 4⁸-fold: check the data for \
                 extreme values"
                    .to_string(),
            ),
            _ => None,
        };
        let mut err = CliError::from(e);
        if let Some(h) = hint {
            err = err.with_hint(h);
        }
        err
    })?;

    // Every rank holds the same model; rank 0 reports and writes it.
    if !world.is_root() {
        return Ok(());
    }
    let mut saved = SavedModel::from_model(model.as_ref())?.with_columns(loaded.columns.clone());
    if let Some(labels) = &loaded.labels {
        saved = saved.with_labels(labels.clone())?;
    }
    let metrics = metrics(&saved, data)?;
    let mut summary = TrainSummary::new(&report, &config, &args.data, data.n());
    summary.metrics = metrics.clone();
    let saved = saved.with_summary(summary);
    if let Some(path) = &args.save {
        saved.save(path)?;
    }
    if let Some(path) = &args.plot {
        let data_name = std::path::Path::new(&args.data)
            .file_name()
            .map_or(args.data.clone(), |f| f.to_string_lossy().into_owned());
        let title = format!("{} on {data_name}", report.model);
        let mut curves = vec![plot::Curve {
            name: "training",
            values: &report.epoch_losses,
            color: plotters::style::BLUE,
        }];
        if !report.validation_losses.is_empty() {
            curves.push(plot::Curve {
                name: "held out",
                values: &report.validation_losses,
                color: plotters::style::RED,
            });
        }
        let x_name = match report.choices.solver {
            Solver::Lbfgs { .. } => "L-BFGS iteration",
            _ => "epoch",
        };
        plot::loss_curve(path, &curves, &title, x_name)?;
    }
    for note in &report.notes {
        eprintln!("gradflow: {note}");
    }
    if !report.converged && config.no_improvement.is_some() {
        eprintln!("gradflow: warning: {}", not_converged(&report));
    }
    let summary = summarise(args, &config, &loaded, &report, metrics, kind);
    if args.json {
        let text = serde_json::to_string_pretty(&summary)
            .map_err(|e| CliError::failed(format!("cannot write the JSON summary: {e}"), None))?;
        println!("{text}");
    } else {
        print_human(&summary, &report);
    }
    Ok(())
}

/// A CSV file in an MPI job: rank 0 alone parses it, into a scratch `.npy` file beside it
/// (the ranks share its file system, as they share the CSV), which every rank then reads
/// in place, each only its rows; the file is removed when rank 0 is done. Returns the
/// spec to read, its target column, the CSV's layout (rank 0) and the file's remover.
/// Elsewhere, `spec` as it is.
#[allow(clippy::type_complexity)]
fn csv_for_ranks(
    world: &World,
    spec: DataSpec,
    target: Option<Column>,
    weight: Option<&Column>,
    header: Option<bool>,
) -> Result<(DataSpec, Option<Column>, Option<Converted>, Option<Scratch>), CliError> {
    let (DataSpec::Csv(csv), Some(_)) = (&spec, world.comm()) else {
        return Ok((spec, target, None, None));
    };
    if let Some(w) = weight {
        return Err(CliError::usage(
            format!("--sample-weight {w} in an MPI job"),
            "the ranks read a CSV file through a .npy copy, which has no weight column; \
             train on one process, or without weights",
        ));
    }
    // Named after rank 0's process: concurrent jobs on one file do not share it.
    let id = world.root_id()?;
    let name = csv
        .file_name()
        .map_or("data".into(), |n| n.to_string_lossy().into_owned());
    let npy = csv.with_file_name(format!(".{name}.gradflow-{id}.npy"));
    let converted = match world.is_root() {
        true => csv_to_npy_with(csv, &npy, target.as_ref(), header)
            .map(Some)
            .map_err(CliError::from),
        false => Ok(None),
    };
    // Also the barrier: no rank opens the file before rank 0 has written it.
    let converted = world.agree(converted)?;
    let scratch = world.is_root().then(|| Scratch(npy.clone()));
    Ok((DataSpec::Npy(npy), None, converted, scratch))
}

/// A scratch file, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        // The other ranks may still map it: an unlinked file stays readable to them.
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Loads a checkpoint into `model`: the same kind of model, and the same class names.
fn resume(
    model: &mut dyn gradflow::model::Model,
    kind: ModelKind,
    path: &std::path::Path,
    (labels, features): (Option<&[String]>, Option<&[String]>),
) -> Result<(), CliError> {
    let saved = SavedModel::load(path)?;
    if saved.kind() != kind {
        return Err(CliError::usage(
            format!(
                "--resume {}: a {} model, but --model is {}",
                path.display(),
                saved.kind().name(),
                kind.name()
            ),
            format!("use --model {}", saved.kind().name()),
        ));
    }
    if let (Some(theirs), Some(ours)) = (saved.labels(), labels)
        && theirs != ours
    {
        return Err(CliError::failed(
            format!(
                "--resume {}: the model's classes {theirs:?} differ from the data's {ours:?}",
                path.display()
            ),
            None,
        ));
    }
    // The checkpoint's weights belong to its columns: data whose named columns differ (or
    // come in another order) would train them on the wrong features.
    if let (Some(theirs), Some(ours)) = (saved.columns.features.as_deref(), features)
        && theirs != ours
    {
        return Err(CliError::failed(
            format!(
                "--resume {}: the model's features {theirs:?} differ from the data's {ours:?}",
                path.display()
            ),
            Some("resume on data with the checkpoint's columns, in its order".into()),
        ));
    }
    model.set_fitted(saved.fitted().clone());
    Ok(())
}

/// The training configuration of the flags.
fn config(args: &TrainArgs) -> Result<TrainConfig, CliError> {
    let backend = match args.backend {
        BackendArg::Auto => Backend::Auto,
        BackendArg::Cpu => Backend::Cpu,
        BackendArg::Gpu => Backend::Gpu,
    };
    let mut config = TrainConfig::default()
        .seed(args.seed)
        .backend(backend)
        .sync_every(args.sync_every);
    config.epochs = args.epochs;
    config.learning_rate = args.lr;
    if let Some(b) = args.batch_size {
        config.batch_size = b;
    }
    let knobs = &args.knobs;
    config.solver = match args.solver {
        // An explicit batch size is a knob of the loop (the library cannot tell it from
        // the default).
        SolverArg::Auto if args.batch_size.is_some() => Solver::Sgd,
        SolverArg::Auto => Solver::Auto,
        SolverArg::Sgd => Solver::Sgd,
        SolverArg::Lbfgs => {
            let d = Solver::lbfgs();
            let Solver::Lbfgs { memory, tol, .. } = d else {
                unreachable!("Solver::lbfgs is L-BFGS")
            };
            Solver::Lbfgs {
                memory,
                max_iter: args.epochs.unwrap_or(gradflow::train::LINEAR_MAX_EPOCHS),
                tol: knobs.stop_tol().unwrap_or(tol),
            }
        }
        SolverArg::Normal => Solver::Normal,
    };
    if let Some(every) = args.verify {
        config = config.verify(Verify {
            every,
            ..Verify::default()
        });
    }
    let config = knobs.apply(config)?;
    // Checked here, before any data is made, so that a bad flag fails at once.
    config.validate().map_err(|e| {
        let flag = match &e {
            gradflow::Error::InvalidParameter { name, .. } => match *name {
                "batch_size" => "--batch-size",
                "learning_rate" => "--lr",
                "epochs" => "--epochs",
                n if n.starts_with("verify") => "--verify",
                "momentum" => "--momentum",
                n if n.starts_with("lbfgs") => "--epochs or --stop-tol",
                "penalty" => "--penalty",
                "early_stopping" => "--early-stopping",
                "beta1" => "--beta1",
                "beta2" => "--beta2",
                "eps" => "--eps",
                "penalty alpha" => "--alpha",
                "l1_ratio" => "--l1-ratio",
                "power" => "--power-t",
                "every" => "--step-every",
                "gamma" => "--gamma",
                "min_lr" => "--min-lr",
                "validation_fraction" => "--validation-fraction",
                "patience" => "--patience",
                "no_improvement.epochs" => "--n-iter-no-change",
                "tol" => "--batch-tol",
                "no_improvement.tol" | "early_stopping.tol" => "--stop-tol",
                _ => "",
            },
            _ => "",
        };
        let hint = if flag == "--verify" {
            "--verify checks GPU steps: add --backend gpu (or auto)".to_string()
        } else if flag.is_empty() {
            "see gradflow train --help".to_string()
        } else {
            format!("fix {flag}; see gradflow train --help")
        };
        CliError::usage(e.to_string(), hint)
    })?;
    Ok(config)
}

/// Scores on the training data: R² and MSE for regression, accuracy for classifiers.
/// The training data's scores, predicted block by block (a streamed source is never
/// held whole): sums, Chan-merged target moments and a confusion matrix.
fn metrics(saved: &SavedModel, data: &dyn RowSource) -> Result<BTreeMap<String, f64>, CliError> {
    const BLOCK: usize = 1 << 16;
    let (n, p) = (data.n(), data.p());
    let mut x = vec![0f32; BLOCK.min(n) * p];
    let mut targets = HostTargets::empty(data.target_kind());
    let mut regression = Moments::default();
    let (mut confusion, mut log_loss_sum) = (Vec::new(), 0.0);
    for start in (0..n).step_by(BLOCK) {
        let len = BLOCK.min(n - start);
        let rows: Vec<u32> = (start as u32..(start + len) as u32).collect();
        data.gather(&rows, &mut x[..len * p], targets.rows_mut(len))?;
        match (saved.predict(&x[..len * p])?, targets.view()) {
            (Prediction::Real(pred), BatchTargets::Real(y)) => regression.add(&pred, y),
            (Prediction::Classes { classes, proba, k }, BatchTargets::Labels(labels)) => {
                log_loss_sum += log_loss(&proba, labels, k)? * len as f64;
                let block = confusion_matrix(&classes, labels, k)?;
                if confusion.is_empty() {
                    confusion = block;
                } else {
                    for (row, b) in confusion.iter_mut().zip(block) {
                        row.iter_mut().zip(b).for_each(|(c, v)| *c += v);
                    }
                }
            }
            _ => unreachable!("the model was fitted on these targets"),
        }
    }
    let mut out = BTreeMap::new();
    if confusion.is_empty() {
        let r = &regression;
        out.insert(
            "r2".into(),
            if r.m2 > 0.0 { 1.0 - r.sse / r.m2 } else { 0.0 },
        );
        out.insert("mse".into(), r.sse / r.count);
        out.insert("mae".into(), r.sae / r.count);
    } else {
        let right: u64 = (0..confusion.len()).map(|c| confusion[c][c]).sum();
        out.insert("accuracy".into(), right as f64 / n as f64);
        out.insert("log_loss".into(), log_loss_sum / n as f64);
        let (precision, recall, f1) = ClassReport::from_confusion(&confusion).macro_avg();
        out.insert("precision_macro".into(), precision);
        out.insert("recall_macro".into(), recall);
        out.insert("f1_macro".into(), f1);
    }
    Ok(out)
}

/// A regression's error sums and its targets' moments, merged block by block.
#[derive(Default)]
struct Moments {
    count: f64,
    sse: f64,
    sae: f64,
    mean: f64,
    m2: f64,
}

impl Moments {
    fn add(&mut self, pred: &[f32], y: &[f32]) {
        let len = y.len() as f64;
        let mean = y.iter().map(|&v| f64::from(v)).sum::<f64>() / len;
        let m2: f64 = y.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum();
        for (&p, &t) in pred.iter().zip(y) {
            let e = f64::from(p) - f64::from(t);
            self.sse += e * e;
            self.sae += e.abs();
        }
        // Chan's merge, as the standardiser's.
        let delta = mean - self.mean;
        let total = self.count + len;
        self.mean += delta * len / total;
        self.m2 += m2 + delta * delta * self.count * len / total;
        self.count = total;
    }
}

fn summarise(
    args: &TrainArgs,
    config: &TrainConfig,
    loaded: &data_spec::Loaded,
    report: &Report,
    metrics: BTreeMap<String, f64>,
    kind: ModelKind,
) -> Summary {
    let (backend, adapter) = match report.backend.strip_prefix("gpu: ") {
        Some(a) => ("gpu", Some(a.to_string())),
        None => ("cpu", None),
    };
    let data = loaded.source();
    Summary {
        model: kind.name(),
        data: args.data.clone(),
        rows: data.n(),
        features: data.p(),
        classes: data.classes(),
        backend,
        adapter,
        mode: report.mode.clone(),
        config: ConfigSummary {
            solver: solver_name(report),
            optimizer: report.choices.optimizer.map(|o| o.name()),
            batch_size: config.batch_size,
            learning_rate: report.choices.learning_rate,
            learning_rate_from: report.choices.rate_from.to_string(),
            backoffs: report.choices.backoffs,
            penalty: penalty_name(report.choices.penalty).to_string(),
            alpha: penalty_alpha(report.choices.penalty),
            penalty_given: config.penalty.is_some(),
            epochs: report.choices.max_epochs,
            standardized: config.standardize,
            seed: config.seed,
            verify_every: config.verify.map(|v| v.every),
        },
        epochs_run: report.epoch_losses.len(),
        steps: report.steps,
        stop: report.stop,
        converged: report.converged,
        notes: report.notes.clone(),
        losses: report.epoch_losses.clone(),
        metrics,
        timings: Timings {
            data_seconds: loaded.seconds,
            data_bytes: loaded.bytes_read,
            train_seconds: report.wall.as_secs_f64(),
            samples_per_sec: report.samples_per_sec(),
            upload_wait_seconds: report.upload_wait.as_secs_f64(),
            gpu_wait_seconds: report.gpu_wait.as_secs_f64(),
            ranks: report.ranks,
            all_reduces: report.all_reduces,
            all_reduce_seconds: report.all_reduce_time.as_secs_f64(),
        },
        samples: report.samples,
        bytes_to_device: report.bytes_to_device,
        verify: report
            .verify
            .iter()
            .map(|d| DeviationSummary {
                tensor: d.tensor.clone(),
                max_abs: d.max_abs,
                max_rel: d.max_rel,
                checks: d.checks,
            })
            .collect(),
        saved: args.save.as_ref().map(|p| p.display().to_string()),
        plot: args.plot.as_ref().map(|p| p.display().to_string()),
    }
}

/// `lbfgs`, `normal` or `sgd`.
fn solver_name(report: &Report) -> &'static str {
    match report.choices.solver {
        Solver::Lbfgs { .. } => "lbfgs",
        Solver::Normal => "normal",
        Solver::Auto | Solver::Sgd => "sgd",
    }
}

fn penalty_name(p: Penalty) -> &'static str {
    match p {
        Penalty::None => "none",
        Penalty::L2(_) => "l2",
        Penalty::L1(_) => "l1",
        Penalty::ElasticNet { .. } => "elasticnet",
    }
}

fn penalty_alpha(p: Penalty) -> f64 {
    match p {
        Penalty::None => 0.0,
        Penalty::L2(a) | Penalty::L1(a) | Penalty::ElasticNet { alpha: a, .. } => a,
    }
}

/// The warning of a fit that ended at its cap with its stopping rule unmet, with the
/// command that would go further.
fn not_converged(report: &Report) -> String {
    let cap = report.choices.max_epochs;
    let (what, more) = match report.choices.solver {
        Solver::Lbfgs { .. } => ("iterations", "L-BFGS's gradient was still above --stop-tol"),
        _ => (
            "epochs",
            "the loss was still improving by more than --stop-tol",
        ),
    };
    let mut command = std::env::args().collect::<Vec<_>>();
    // The same command with twice the cap.
    if let Some(i) = command.iter().position(|a| a == "--epochs") {
        command.drain(i..(i + 2).min(command.len()));
    }
    command.retain(|a| !a.starts_with("--epochs="));
    let program = command.first().map_or("gradflow".to_string(), |p| {
        std::path::Path::new(p)
            .file_name()
            .map_or(p.clone(), |f| f.to_string_lossy().into_owned())
    });
    let rest: Vec<String> = command.iter().skip(1).map(|a| shell_word(a)).collect();
    format!(
        "did not converge in {cap} {what} ({more}); hint: {program} {} --epochs {}",
        rest.join(" "),
        cap * 2
    )
}

/// `a` quoted for a POSIX shell when it needs it.
fn shell_word(a: &str) -> String {
    if !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c))
    {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

fn print_human(s: &Summary, report: &Report) {
    let classes = s
        .classes
        .map_or(String::new(), |k| format!(", {k} classes"));
    println!(
        "{} on {} ({} rows × {} features{classes})",
        report.model, s.data, s.rows, s.features
    );
    println!("  backend   {} · mode {}", report.backend, s.mode);
    let stop = report.stop;
    let c = &s.config;
    match report.choices.solver {
        Solver::Normal => println!("  solver    normal equations · {stop}"),
        Solver::Lbfgs { memory, tol, .. } => {
            println!("  solver    lbfgs (memory {memory}, tol {tol:e}) · {stop}");
            println!(
                "  evals     {} loss and gradient evaluations over all rows",
                report.samples / s.rows.max(1) as u64
            );
        }
        _ => {
            println!(
                "  solver    {} · {} epochs ({stop}) · {} steps · batch {}",
                c.optimizer.unwrap_or("sgd"),
                s.epochs_run,
                s.steps,
                c.batch_size
            );
            if let Some(lr) = c.learning_rate {
                let backoffs = match c.backoffs {
                    0 => String::new(),
                    k => format!(", backed off {k}×"),
                };
                println!("  lr        {lr:.4e} ({}{backoffs})", c.learning_rate_from);
            }
        }
    }
    let standardized = if c.standardized {
        "standardized"
    } else {
        "raw"
    };
    match report.choices.penalty {
        Penalty::None => println!("  penalty   none · features {standardized}"),
        p => {
            let why = match (c.penalty_given, p) {
                (false, Penalty::L2(_)) => " (1/n: scikit-learn's C = 1)",
                _ => "",
            };
            println!(
                "  penalty   {} α = {:.4e}{why} · features {standardized}",
                c.penalty,
                penalty_alpha(p)
            )
        }
    }
    let first = s.losses.first().copied().unwrap_or(f64::NAN);
    println!("  loss      {first:.6e} → {:.6e}", report.final_loss());
    for (name, v) in &s.metrics {
        let name = if name == "r2" { "R²" } else { name.as_str() };
        println!("  {name:<9} {v:.6} (training data)");
    }
    let rate = match s.timings.data_bytes {
        Some(b) if s.timings.data_seconds > 0.0 => {
            format!(" ({:.0} MB/s)", b as f64 / 1e6 / s.timings.data_seconds)
        }
        _ => String::new(),
    };
    println!(
        "  time      {:.3} s training ({} samples/s), {:.3} s data{rate}",
        s.timings.train_seconds,
        human(s.timings.samples_per_sec),
        s.timings.data_seconds
    );
    if s.timings.ranks > 1 {
        println!(
            "  ranks     {} · {} all-reduces, {:.3} s in them",
            s.timings.ranks, s.timings.all_reduces, s.timings.all_reduce_seconds
        );
    }
    if s.backend == "gpu" {
        println!(
            "  device    {} bytes uploaded · waited {:.3} s for uploads, {:.3} s for the GPU",
            s.bytes_to_device, s.timings.upload_wait_seconds, s.timings.gpu_wait_seconds
        );
    }
    for d in &s.verify {
        println!(
            "  verify    {:<8} max |gpu − cpu| {:.2e} (relative {:.2e}) over {} checks",
            d.tensor, d.max_abs, d.max_rel, d.checks
        );
    }
    if let Some(p) = &s.saved {
        println!("  saved     {p}");
    }
    if let Some(p) = &s.plot {
        println!("  plot      {p}");
    }
}
