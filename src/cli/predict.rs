//! `gradflow predict`: a saved model and a CSV of features in, a CSV of predictions out.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use gradflow::io::{Column, SavedModel, csv};

use super::CliError;

/// `gradflow predict`.
#[derive(Debug, Args)]
#[command(
    after_help = "The data file may be the training file itself: the model's target \
column is skipped when it is there (by name with a header, else by position when the file \
has one column more than the model's features).

Example:
  gradflow predict --model iris.json --data new-flowers.csv --out predictions.csv --proba"
)]
pub struct PredictArgs {
    /// A model file written by `gradflow train --save`.
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    /// A CSV file of feature rows (header optional).
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// Where to write the predictions (CSV) [default: standard output].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Classifiers: add one probability column per class.
    #[arg(long)]
    proba: bool,
}

/// Runs `gradflow predict`.
///
/// # Errors
/// A bad model file (version, truncation, shapes), a data file whose feature count is not
/// the model's (both numbers named), bad cells, an unwritable output.
pub fn run(args: &PredictArgs) -> Result<(), CliError> {
    let model = SavedModel::load(&args.model)?;
    if args.proba && !model.kind().is_classifier() {
        return Err(CliError::usage(
            "--proba: a linear regression model predicts values, not class probabilities",
            "drop --proba",
        ));
    }
    let ext = args.data.extension().and_then(|e| e.to_str());
    if !ext.is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
        return Err(CliError::usage(
            format!("--data {}: predict reads .csv files", args.data.display()),
            "give a .csv file of feature rows",
        ));
    }
    // The training file's columns that are not features: the target and the weights.
    let columns = &model.columns;
    let column = |name: &Option<String>, index: Option<usize>| match (name, index) {
        (Some(name), _) => Some(Column::Name(name.clone())),
        (None, Some(i)) => Some(Column::Index(i)),
        (None, None) => None,
    };
    let skip: Vec<Column> = [
        column(&columns.target, columns.target_column),
        column(&columns.weight, columns.weight_column),
    ]
    .into_iter()
    .flatten()
    .collect();
    let features = csv::read_features(&args.data, model.p(), &skip, None)?;
    let prediction = model.predict(&features.x)?;
    match &args.out {
        Some(path) => {
            csv::write_predictions(path, &prediction, model.labels(), args.proba)?;
            eprintln!(
                "gradflow: wrote {} predictions ({} model) to {}",
                prediction.len(),
                model.kind().name(),
                path.display()
            );
        }
        None => {
            let bytes = csv::predictions_csv(&prediction, model.labels(), args.proba)?;
            std::io::stdout()
                .write_all(&bytes)
                .map_err(|e| CliError::failed(format!("standard output: {e}"), None))?;
        }
    }
    Ok(())
}
