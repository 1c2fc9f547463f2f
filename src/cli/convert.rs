//! `gradflow convert IN OUT`: a CSV file into a `.npy` file or back, streamed, so that
//! data larger than memory can be trained on (`gradflow train --data out.npy` reads it in
//! place) and an array can be read as text.

use std::path::{Path, PathBuf};

use clap::Args;
use gradflow::io::Column;
use gradflow::io::convert::{csv_to_npy_with, npy_to_csv};

use super::{CliError, HeaderArg};

/// `gradflow convert`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  gradflow convert clicks.csv clicks.npy --target clicked\n  \
gradflow train --model logistic --data clicks.npy --stream   # the target is the last column\n  \
gradflow convert scores.npy scores.csv"
)]
pub struct ConvertArgs {
    /// The file to read: CSV (header detected as `train` detects it), a 2-D .npy array or
    /// a Parquet file of numeric columns.
    #[arg(
        value_name = "IN",
        required_unless_present = "data",
        conflicts_with = "data"
    )]
    input: Option<PathBuf>,
    /// The file to write (atomically): .npy from a CSV — features, then the target as the
    /// last column — or .csv from a .npy array (header c0, c1, …).
    #[arg(
        value_name = "OUT",
        required_unless_present = "out",
        conflicts_with = "out"
    )]
    output: Option<PathBuf>,
    /// IN, as a flag.
    #[arg(long, value_name = "FILE", hide = true)]
    data: Option<PathBuf>,
    /// OUT, as a flag.
    #[arg(long, value_name = "FILE", hide = true)]
    out: Option<PathBuf>,
    /// CSV to .npy: the target column, a header name or an index counted from 0
    /// [default: the last].
    #[arg(long, value_name = "COL")]
    target: Option<String>,
    /// CSV to .npy: whether the first row names the columns [default: auto, detected]
    #[arg(long, value_enum, default_value_t = HeaderArg::Auto, hide_default_value = true)]
    header: HeaderArg,
}

fn is(path: &Path, ext: &str) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// Refuses `--target` for a conversion that copies every column as it is (`why` says so):
/// only CSV → .npy moves the target to the last column. One place for the refusal, so
/// that the .npy → CSV and Parquet conversions word it alike.
///
/// # Errors
/// A usage error naming the `--target` given, when one was.
fn no_target(args: &ConvertArgs, why: &str) -> Result<(), CliError> {
    match &args.target {
        Some(t) => Err(CliError::usage(
            format!("--target {t}: {why}"),
            "drop --target",
        )),
        None => Ok(()),
    }
}

/// Prints the summary of a conversion that wrote every column as it is (.npy → CSV,
/// Parquet → .npy or CSV): rows, columns, the output and its size.
fn print_columns_written(input: &Path, output: &Path, rows: usize, cols: usize) {
    println!(
        "{}: {rows} rows × {cols} columns → {} ({} bytes)",
        input.display(),
        output.display(),
        std::fs::metadata(output).map_or(0, |m| m.len())
    );
}

/// Runs `gradflow convert`.
///
/// # Errors
/// A pair of formats other than CSV → .npy and .npy → CSV; the reader's errors (file,
/// line or row, column, value); the output's I/O errors (the output is then untouched).
pub fn run(args: &ConvertArgs) -> Result<(), CliError> {
    let (Some(input), Some(output)) = (
        args.input.as_ref().or(args.data.as_ref()),
        args.output.as_ref().or(args.out.as_ref()),
    ) else {
        return Err(CliError::usage(
            "convert needs IN and OUT",
            "gradflow convert IN OUT",
        ));
    };
    match (
        is(input, "csv"),
        is(input, "npy"),
        is(output, "npy"),
        is(output, "csv"),
    ) {
        (true, _, true, _) => {
            let target = args
                .target
                .as_deref()
                .map(str::parse::<Column>)
                .transpose()?;
            let done = csv_to_npy_with(input, output, target.as_ref(), args.header.given())?;
            println!(
                "{}: {} rows × {} features and the target (column {}) → {} ({} bytes)",
                input.display(),
                done.rows,
                done.features,
                done.target_column,
                output.display(),
                std::fs::metadata(output).map_or(0, |m| m.len())
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
        _ if is(input, "parquet") && (is(output, "npy") || is(output, "csv")) => {
            no_target(args, "a Parquet file is written column by column")?;
            let (rows, cols) = gradflow::io::convert::parquet_to(input, output, is(output, "npy"))?;
            print_columns_written(input, output, rows, cols);
            Ok(())
        }
        (_, true, _, true) => {
            no_target(args, "a .npy file is written to CSV column by column")?;
            let (rows, cols) = npy_to_csv(input, output)?;
            print_columns_written(input, output, rows, cols);
            Ok(())
        }
        _ => Err(CliError::usage(
            format!(
                "convert {} → {}: converts a .csv file to .npy, a .npy file to .csv, or a \
                 .parquet file to .npy or .csv",
                input.display(),
                output.display()
            ),
            "gradflow convert data.csv data.npy (or data.npy data.csv)",
        )),
    }
}
