//! `gradflow convert`: a CSV file into a `.npy` file, streamed, so that data larger than
//! memory can be trained on (`gradflow train --data out.npy` reads it in place).

use std::path::PathBuf;

use clap::Args;
use gradflow::io::Column;
use gradflow::io::convert::csv_to_npy;

use super::CliError;

/// `gradflow convert`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  gradflow convert --data clicks.csv --target clicked --out clicks.npy\n  \
gradflow train --model logistic --data clicks.npy --stream   # the target is the last column"
)]
pub struct ConvertArgs {
    /// The CSV file (header detected as `train` detects it).
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// The `.npy` file to write (atomically): features, then the target as the last
    /// column.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The target column: a header name or an index counted from 0 [default: the last].
    #[arg(long, value_name = "COL")]
    target: Option<String>,
}

/// Runs `gradflow convert`.
///
/// # Errors
/// The reader's errors (file, line, column, value); the output's I/O errors.
pub fn run(args: &ConvertArgs) -> Result<(), CliError> {
    let out = args.out.extension().and_then(|e| e.to_str());
    if !out.is_some_and(|e| e.eq_ignore_ascii_case("npy")) {
        return Err(CliError::usage(
            format!("--out {}: not a .npy file", args.out.display()),
            "name the output FILE.npy",
        ));
    }
    let target = args
        .target
        .as_deref()
        .map(str::parse::<Column>)
        .transpose()?;
    let done = csv_to_npy(&args.data, &args.out, target.as_ref())?;
    println!(
        "{}: {} rows × {} features and the target (column {}) → {} ({} bytes)",
        args.data.display(),
        done.rows,
        done.features,
        done.target_column,
        args.out.display(),
        std::fs::metadata(&args.out).map_or(0, |m| m.len())
    );
    if let Some(labels) = &done.labels {
        let named: Vec<String> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| format!("{i} = {l}"))
            .collect();
        println!("classes written as numbers: {}", named.join(", "));
    }
    Ok(())
}
