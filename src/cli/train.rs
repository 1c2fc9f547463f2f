//! `gradflow train`: fit a model, print its scores (or one JSON summary), optionally save
//! it and plot its loss curve.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use gradflow::data::{Dataset, Targets};
use gradflow::io::{Column, ModelKind, Prediction, SavedModel, TrainSummary};
use gradflow::metrics::{ClassReport, accuracy, log_loss, mae, mse, r2};
use gradflow::{Backend, Report, StopReason, TrainConfig, Trainer, Verify};
use serde::Serialize;

use super::data_spec::{self, DataSpec};
use super::knobs::KnobArgs;
use super::progress::{self, human};
use super::{ActivationArg, CliError, ModelArg, build_model, plot};

/// `gradflow train`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  gradflow train --model linear --data 'synthetic:linear?n=1000000&p=64' --batch-size 256 --lr 0.05 --epochs 5
  gradflow train --model softmax --data iris.csv --target species --epochs 200 --save iris.json --plot loss.png
  gradflow train --model mlp --hidden 64 --activation tanh --data 'synthetic:rings?n=5000' --backend gpu --verify 100 --json")]
pub struct TrainArgs {
    /// The model.
    #[arg(long, value_enum)]
    model: ModelArg,
    /// The data: synthetic:KIND?key=value&… (KIND linear, logistic, blobs, teacher, rings;
    /// keys n, p, k, seed, noise, hidden, argmax), a .csv file, or a .npy file (2-D f32/f64).
    #[arg(long, value_name = "SPEC")]
    data: String,
    /// Target column of a .csv or .npy file: a header name, or an index counted from 0
    /// [default: the last column].
    #[arg(long, value_name = "COL")]
    target: Option<String>,
    /// Rows per update (1: stochastic GD; ≥ the row count: full-batch GD).
    #[arg(long, default_value_t = 32, value_name = "N")]
    batch_size: usize,
    /// Passes over the data.
    #[arg(long, default_value_t = 10, value_name = "N")]
    epochs: usize,
    /// Learning rate η.
    #[arg(long, default_value_t = 0.1, value_name = "X")]
    lr: f64,
    /// Seed of the shuffles, the initialisation and (unless the spec sets one) the
    /// synthetic data.
    #[arg(long, default_value_t = 0, value_name = "N")]
    seed: u64,
    /// Where to train: auto is the GPU when an adapter exists and the data fit, else the CPU.
    #[arg(long, value_enum, default_value_t = BackendArg::Cpu)]
    backend: BackendArg,
    /// Rerun every K-th GPU step on the CPU reference kernels and compare (needs
    /// --backend gpu or auto).
    #[arg(long, value_name = "K")]
    verify: Option<usize>,
    /// MLP hidden width [default: 32].
    #[arg(long, value_name = "N")]
    hidden: Option<usize>,
    /// MLP hidden activation [default: sigmoid].
    #[arg(long, value_enum)]
    activation: Option<ActivationArg>,
    /// Save the fitted model to this JSON file.
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
    /// Draw the epoch loss curve into this PNG file.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Print one JSON summary on standard output, and nothing else there.
    #[arg(long)]
    json: bool,
    /// A .csv column of sample weights (a header name, or an index from 0): each row's loss
    /// and gradient are scaled by it; it is not a feature.
    #[arg(long, value_name = "COL")]
    sample_weight: Option<String>,
    /// Go on from a saved model (a checkpoint): its parameters, optimizer state, epoch
    /// count and scaler; --epochs more epochs (--model must match).
    #[arg(long, value_name = "FILE")]
    resume: Option<PathBuf>,
    #[command(flatten)]
    knobs: KnobArgs,
}

/// `--backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// The GPU when an adapter exists and the data fit it, else the CPU (with a notice).
    Auto,
    /// The CPU reference kernels.
    Cpu,
    /// The GPU; an error when no adapter exists.
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
    batch_size: usize,
    learning_rate: f64,
    epochs: usize,
    seed: u64,
    verify_every: Option<usize>,
}

#[derive(Debug, Serialize)]
struct Timings {
    data_seconds: f64,
    train_seconds: f64,
    samples_per_sec: f64,
    upload_wait_seconds: f64,
    gpu_wait_seconds: f64,
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
    let kind = ModelKind::from(args.model);
    let mut model = build_model(args.model, args.hidden, args.activation)?;
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
    let loaded = data_spec::load(&spec, target.as_ref(), weight.as_ref(), kind)?;
    let data = &loaded.dataset;

    if let Some(path) = &args.resume {
        resume(model.as_mut(), kind, path, loaded.labels.as_deref())?;
    }
    let bar = progress::epoch_bar(config.epochs);
    let trainer = Trainer::new(config.clone())?.with_progress(progress::callback(bar.clone()));
    let weights = loaded.weights.as_deref();
    let fitted = match args.resume {
        Some(_) => trainer.partial_fit_weighted(model.as_mut(), data, weights),
        None => trainer.fit_weighted(model.as_mut(), data, weights),
    };
    bar.finish_and_clear();
    let report = fitted.map_err(|e| {
        let hint = match &e {
            gradflow::Error::Diverged { .. } => Some("lower --lr".to_string()),
            _ => None,
        };
        let mut err = CliError::from(e);
        if let Some(h) = hint {
            err = err.with_hint(h);
        }
        err
    })?;

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
        let title = format!("{} on {}", report.model, args.data);
        plot::loss_curve(path, &report.epoch_losses, &title)?;
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

/// Loads a checkpoint into `model`: the same kind of model, and the same class names.
fn resume(
    model: &mut dyn gradflow::model::Model,
    kind: ModelKind,
    path: &std::path::Path,
    labels: Option<&[String]>,
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
        .batch_size(args.batch_size)
        .epochs(args.epochs)
        .learning_rate(args.lr)
        .seed(args.seed)
        .backend(backend);
    if let Some(every) = args.verify {
        config = config.verify(Verify {
            every,
            ..Verify::default()
        });
    }
    let config = args.knobs.apply(config)?;
    // Checked here, before any data is made, so that a bad flag fails at once.
    config.validate().map_err(|e| {
        let flag = match &e {
            gradflow::Error::InvalidParameter { name, .. } => match *name {
                "batch_size" => "--batch-size",
                "learning_rate" => "--lr",
                "epochs" => "--epochs",
                n if n.starts_with("verify") => "--verify",
                "momentum" => "--momentum",
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
                "tol" | "no_improvement.tol" | "early_stopping.tol" => "--stop-tol",
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
fn metrics(saved: &SavedModel, data: &Dataset) -> Result<BTreeMap<String, f64>, CliError> {
    let mut out = BTreeMap::new();
    match (saved.predict(data.features())?, data.targets()) {
        (Prediction::Real(pred), Targets::Real(y)) => {
            out.insert("r2".into(), r2(&pred, y)?);
            out.insert("mse".into(), mse(&pred, y)?);
            out.insert("mae".into(), mae(&pred, y)?);
        }
        (Prediction::Classes { classes, proba, k }, Targets::Classes { labels, .. }) => {
            out.insert("accuracy".into(), accuracy(&classes, labels)?);
            out.insert("log_loss".into(), log_loss(&proba, labels, k)?);
            let (precision, recall, f1) = ClassReport::new(&classes, labels, k)?.macro_avg();
            out.insert("precision_macro".into(), precision);
            out.insert("recall_macro".into(), recall);
            out.insert("f1_macro".into(), f1);
        }
        _ => unreachable!("the model was fitted on these targets"),
    }
    Ok(out)
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
    let data = &loaded.dataset;
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
            batch_size: config.batch_size,
            learning_rate: config.learning_rate,
            epochs: config.epochs,
            seed: config.seed,
            verify_every: config.verify.map(|v| v.every),
        },
        epochs_run: report.epoch_losses.len(),
        steps: report.steps,
        stop: report.stop,
        losses: report.epoch_losses.clone(),
        metrics,
        timings: Timings {
            data_seconds: loaded.seconds,
            train_seconds: report.wall.as_secs_f64(),
            samples_per_sec: report.samples_per_sec(),
            upload_wait_seconds: report.upload_wait.as_secs_f64(),
            gpu_wait_seconds: report.gpu_wait.as_secs_f64(),
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
    println!(
        "  epochs    {} ({stop}) · {} steps · batch {} · lr {}",
        s.epochs_run, s.steps, s.config.batch_size, s.config.learning_rate
    );
    let first = s.losses.first().copied().unwrap_or(f64::NAN);
    println!("  loss      {first:.6e} → {:.6e}", report.final_loss());
    for (name, v) in &s.metrics {
        let name = if name == "r2" { "R²" } else { name.as_str() };
        println!("  {name:<9} {v:.6} (training data)");
    }
    println!(
        "  time      {:.3} s training ({} samples/s), {:.3} s data",
        s.timings.train_seconds,
        human(s.timings.samples_per_sec),
        s.timings.data_seconds
    );
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
