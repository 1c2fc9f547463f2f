//! `gradflow gradcheck`: each parameter tensor's analytic gradient against central finite
//! differences in f64 ([`gradflow::gradcheck`]).

use clap::Args;
use gradflow::gradcheck::gradcheck;
use gradflow::io::{Column, ModelKind};

use super::data_spec::{self, DataSpec};
use super::{CliError, build_model};

/// The largest relative error that passes. In f64 central differences are good to about
/// 1e-9 relative (the library's checks see ≤ 1e-7); 1e-4 means a wrong derivation.
const TOLERANCE: f64 = 1e-4;

/// `gradflow gradcheck`.
#[derive(Debug, Args)]
#[command(after_help = "Example:
  gradflow gradcheck --model mlp --hidden 8 --activation relu")]
pub struct GradcheckArgs {
    /// The model.
    #[arg(long, value_enum)]
    model: ModelKind,
    /// MLP hidden width [default: 32].
    #[arg(long, value_name = "N")]
    hidden: Option<usize>,
    /// MLP hidden activation [default: sigmoid].
    #[arg(long, value_enum)]
    activation: Option<gradflow::program::Activation>,
    /// The data, as for train [default: 64 small synthetic rows suited to the model].
    #[arg(long, value_name = "SPEC")]
    data: Option<String>,
    /// Target column of a .csv or .npy file [default: the last].
    #[arg(long, value_name = "COL")]
    target: Option<String>,
    /// Rows in the batch the loss is taken over.
    #[arg(long, default_value_t = 16, value_name = "N")]
    rows: usize,
    /// Seed of the random parameters the gradient is taken at.
    #[arg(long, default_value_t = 0, value_name = "N")]
    seed: u64,
}

/// Runs `gradflow gradcheck`.
///
/// # Errors
/// Bad flags or data; a tensor whose relative error exceeds 1e-4 (exit code 1).
pub fn run(args: &GradcheckArgs) -> Result<(), CliError> {
    let kind = args.model;
    let model = build_model(args.model, args.hidden, args.activation, None)?;
    let text = args
        .data
        .as_deref()
        .unwrap_or_else(|| data_spec::small_default(kind));
    let spec = DataSpec::parse(text, args.seed)?;
    let target = args
        .target
        .as_deref()
        .map(str::parse::<Column>)
        .transpose()?;
    let data =
        data_spec::load(&spec, (target.as_ref(), None), kind, (false, None))?.into_dataset()?;
    if args.rows == 0 {
        return Err(CliError::usage(
            "--rows 0: must be ≥ 1",
            "give --rows 1 or more",
        ));
    }
    let check = gradcheck(model.as_ref(), &data, args.rows, args.seed)?;
    let program = model.spec_for(&data)?.program();
    println!(
        "gradient check: {} on {text}, {} rows, f64 central differences (pass: relative error ≤ {TOLERANCE:.0e})",
        check.model, check.rows
    );
    println!(
        "| {:<6} | {:>9} | {:>9} | {:>13} | {:>13} | {:<4} |",
        "tensor", "shape", "checked", "max abs error", "max rel error", ""
    );
    println!(
        "|{:-<8}|{:->11}|{:->11}|{:->15}|{:->15}|{:-<6}|",
        "", "", "", "", "", ""
    );
    let mut failed = Vec::new();
    for (t, decl) in check.tensors.iter().zip(&program.params) {
        let ok = t.max_rel_error <= TOLERANCE;
        if !ok {
            failed.push(format!("{} ({:.2e})", t.name, t.max_rel_error));
        }
        println!(
            "| {:<6} | {:>9} | {:>9} | {:>13.3e} | {:>13.3e} | {:<4} |",
            t.name,
            format!("{} × {}", decl.rows, decl.cols),
            format!("{}/{}", t.checked, t.len),
            t.max_abs_error,
            t.max_rel_error,
            if ok { "ok" } else { "FAIL" }
        );
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::failed(
            format!(
                "gradient check failed: {} exceed relative error {TOLERANCE:.0e}",
                failed.join(", ")
            ),
            Some("the analytic gradient of these tensors disagrees with finite differences".into()),
        ))
    }
}
