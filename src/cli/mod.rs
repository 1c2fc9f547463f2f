//! The `gradflow` command: argument parsing (clap derive), one module per subcommand, and
//! the one way errors reach the user — `gradflow: error: …` on one line, a `hint:` line
//! where one helps, exit code 2 for usage errors (as clap) and 1 for everything else.

mod bench;
mod convert;
mod data_spec;
mod demo;
mod gradcheck;
mod info;
mod knobs;
mod launch;
mod memory;
mod plot;
mod predict;
mod progress;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gradflow::cpu::activation::Activation;
use gradflow::io::ModelKind;
use gradflow::model::Model;

/// Gradient-descent training on the GPU (wgpu) and the CPU, each checked against the other.
///
/// With no subcommand, runs the demo: four models on seeded synthetic data.
#[derive(Debug, Parser)]
#[command(name = "gradflow", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a model on synthetic data, a CSV or a .npy file; print (or --json) its scores.
    Train(Box<train::TrainArgs>),
    /// Predict with a saved model: a CSV of features in, a CSV of predictions out.
    Predict(predict::PredictArgs),
    /// Check a model's analytic gradients against finite differences, per tensor.
    Gradcheck(gradcheck::GradcheckArgs),
    /// List the GPU adapters, the one gradflow would choose, and its limits.
    Info(info::InfoArgs),
    /// Time the workloads W1–W5 on the CPU and the GPU: table, JSON, plot, crossover.
    Bench(bench::BenchArgs),
    /// Convert a CSV file into a .npy file, streamed (for data larger than memory).
    Convert(convert::ConvertArgs),
}

/// Runs the parsed command.
///
/// # Errors
/// What the subcommand reports.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        None => demo::demo(),
        Some(Command::Train(args)) => train::run(&args),
        Some(Command::Predict(args)) => predict::run(&args),
        Some(Command::Gradcheck(args)) => gradcheck::run(&args),
        Some(Command::Info(args)) => info::run(&args),
        Some(Command::Bench(args)) => bench::run(&args),
        Some(Command::Convert(args)) => convert::run(&args),
    }
}

/// Prints a clap error our way (one line and a usage hint) or, for `--help` and
/// `--version`, as clap does; returns clap's exit code (2 for usage errors, 0 for help).
pub fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let code = u8::try_from(e.exit_code()).unwrap_or(2);
    if !launch::reports_errors() {
        return ExitCode::from(code); // rank 0 of the MPI job tells it
    }
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::from(code);
    }
    // clap's text: "error: …" and its detail lines, a blank line, tips, "Usage: …".
    let text = e.to_string();
    let message = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    let usage = text
        .lines()
        .find_map(|l| l.strip_prefix("Usage: "))
        .map(str::trim);
    let tip = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("tip: "))
        .map(str::trim);
    eprintln!("gradflow: error: {message}");
    match usage {
        Some(u) if tip.is_some() => {
            eprintln!("hint: {}; usage: {u}", tip.unwrap_or_default());
        }
        Some(u) => eprintln!("hint: usage: {u} (more with --help)"),
        None => eprintln!("hint: see gradflow --help"),
    }
    ExitCode::from(code)
}

/// An error as the command prints it.
#[derive(Debug)]
pub struct CliError {
    message: String,
    hint: Option<String>,
    /// A usage error (bad or conflicting arguments): exit code 2.
    usage: bool,
}

impl CliError {
    /// A usage error: the arguments are wrong (exit code 2).
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            hint: Some(hint.into()),
            usage: true,
        }
    }

    /// A failure with a hint (exit code 1).
    pub fn failed(message: impl Into<String>, hint: Option<String>) -> Self {
        CliError {
            message: message.into(),
            hint,
            usage: false,
        }
    }

    /// Replaces the hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Prints the error (one line, then the hint) and gives the exit code.
    pub fn report(&self) -> ExitCode {
        // One line, whatever the message holds; in an MPI job, from rank 0 alone (the
        // others' failures reach it: see `launch`).
        if launch::reports_errors() {
            eprintln!("gradflow: error: {}", self.message.replace('\n', " "));
            if let Some(h) = &self.hint {
                eprintln!("hint: {h}");
            }
        }
        ExitCode::from(if self.usage { 2 } else { 1 })
    }

    /// The message (without the hint).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<gradflow::Error> for CliError {
    fn from(e: gradflow::Error) -> Self {
        use gradflow::Error as E;
        let hint = match &e {
            E::Io { .. } => Some("check the path and its permissions".to_string()),
            E::NoAdapter { .. } => Some(
                "`gradflow info` lists the adapters wgpu finds; `--backend cpu` trains without one"
                    .into(),
            ),
            E::TargetMismatch { .. } => Some(
                "linear regression takes real targets; logistic (2 classes), softmax and mlp \
                 take class labels"
                    .into(),
            ),
            E::DeviceLimit { .. } => {
                Some("try a smaller --batch-size, a smaller model, or --backend cpu".into())
            }
            E::InvalidParameter { .. } => Some("see gradflow train --help".into()),
            _ => None,
        };
        CliError {
            message: e.to_string(),
            hint,
            usage: false,
        }
    }
}

/// Hidden width when `--hidden` is not given.
pub const DEFAULT_HIDDEN: usize = 32;

/// The model `--model`, `--hidden`, `--activation` and `--init` describe.
///
/// # Errors
/// A usage error for `--hidden` or `--activation` with a model other than mlp.
pub fn build_model(
    model: ModelKind,
    hidden: Option<usize>,
    activation: Option<Activation>,
    init: Option<gradflow::model::Init>,
) -> Result<Box<dyn Model>, CliError> {
    if model != ModelKind::Mlp && (hidden.is_some() || activation.is_some()) {
        return Err(CliError::usage(
            format!(
                "--hidden and --activation apply to --model mlp, not to --model {}",
                model.name()
            ),
            "drop them, or use --model mlp",
        ));
    }
    Ok(model.model_with(
        hidden.unwrap_or(DEFAULT_HIDDEN),
        activation.unwrap_or_default(),
        init.unwrap_or_default(),
    ))
}

/// Checks, before any work, that the command can write `path` (given as `flag`): its
/// directory exists and takes a new file, and it is none of `inputs` (`(flag, path)`),
/// which writing it would destroy (`--save data.csv`). A fit of minutes must not end in
/// an error it could have met at its start, nor overwrite the data it read.
///
/// # Errors
/// A usage error naming both flags when `path` is an input; a failure naming the
/// directory when it is missing or not writable.
pub fn check_output(
    flag: &str,
    path: &std::path::Path,
    inputs: &[(&str, &std::path::Path)],
) -> Result<(), CliError> {
    // Links resolved where the file exists; a file still to be written by its absolute
    // path (`--save s.json --plot s.json`).
    let resolve =
        |p: &std::path::Path| std::fs::canonicalize(p).or_else(|_| std::path::absolute(p));
    let same = |a: &std::path::Path, b: &std::path::Path| {
        matches!((resolve(a), resolve(b)), (Ok(x), Ok(y)) if x == y) || same_file(a, b)
    };
    if let Some((input, _)) = inputs.iter().find(|(_, p)| same(path, p)) {
        return Err(CliError::usage(
            format!(
                "{flag} {}: that is the {input} file, which writing it would overwrite",
                path.display()
            ),
            format!("give {flag} a file of its own"),
        ));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let fail = |why: String| {
        CliError::failed(
            format!("{flag} {}: {why}", path.display()),
            Some("give a path in a directory that exists and is writable".into()),
        )
    };
    if !dir.is_dir() {
        return Err(fail(format!(
            "the directory {} does not exist",
            dir.display()
        )));
    }
    if path.is_dir() {
        return Err(fail("is a directory".into()));
    }
    // A probe file of our own, so that `path` itself is not touched until it is written.
    let probe = dir.join(format!(".gradflow-probe.{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(fail(format!("cannot write in {}: {e}", dir.display()))),
    }
}

/// `--header`: whether a CSV file's first row names its columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum HeaderArg {
    /// Detected: a header when a cell of the first row is not a number over one that is
    /// (or every cell of it is text).
    #[default]
    Auto,
    /// The first row names the columns (numbers too: years, codes).
    Yes,
    /// The first row is data.
    No,
}

impl HeaderArg {
    /// As `CsvOptions::header` takes it.
    pub fn given(self) -> Option<bool> {
        match self {
            HeaderArg::Auto => None,
            HeaderArg::Yes => Some(true),
            HeaderArg::No => Some(false),
        }
    }
}

/// Whether two existing paths are one file (hard links too: the same device and inode).
#[cfg(unix)]
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => (x.dev(), x.ino()) == (y.dev(), y.ino()),
        _ => false,
    }
}

/// Whether two existing paths are one file (elsewhere: by their resolved paths alone).
#[cfg(not(unix))]
fn same_file(_: &std::path::Path, _: &std::path::Path) -> bool {
    false
}
