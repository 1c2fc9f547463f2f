//! `gradflow predict`: a saved model and a file of features in (CSV or `.npy`), its
//! predictions out (CSV or `.npy`), batch by batch in the memory of one batch.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use gradflow::io::csv::FeatureColumns;
use gradflow::io::{Column, OutputFormat, Prediction, PredictionWriter, SavedModel, csv, npy};

use super::{CliError, HeaderArg, check_output};

/// `gradflow predict`.
#[derive(Debug, Args)]
#[command(
    after_help = "The data file may be the training file itself: the model's target \
column is skipped when it is there (by name with a header, else by position when the file \
has one column more than the model's features). A model trained on a file with a header \
reads a file with a header by column name: its columns may come in any order and hold \
others (an id), and a missing feature is an error. Inputs of any size are read and predicted \
a batch at a time.

Examples:
  gradflow predict --model iris.json --data new-flowers.csv --out predictions.csv --proba
  gradflow predict --model clicks.json --data clicks.npy --out scores.npy"
)]
pub struct PredictArgs {
    /// A model file written by `gradflow train --save`.
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    /// A file of feature rows: CSV (header optional), a 2-D .npy array or Parquet.
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// Where to write the predictions: CSV, or a float32 .npy array when FILE ends in
    /// .npy (classes as their numbers, or indices for named classes) [default: standard
    /// output, CSV].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Classifiers: add one probability column per class.
    #[arg(long)]
    proba: bool,
    /// Whether a .csv file's first row names its columns [default: auto, detected]
    #[arg(long, value_enum, default_value_t = HeaderArg::Auto, hide_default_value = true)]
    header: HeaderArg,
}

/// Runs `gradflow predict`.
///
/// # Errors
/// A bad model file (version, truncation, shapes), a data file whose feature count is not
/// the model's (both numbers named), bad cells, an unwritable output.
pub fn run(args: &PredictArgs) -> Result<(), CliError> {
    if let Some(out) = &args.out {
        check_output(
            "--out",
            out,
            &[("--model", &args.model), ("--data", &args.data)],
        )?;
    }
    let model = SavedModel::load(&args.model)?;
    if args.proba && !model.kind().is_classifier() {
        return Err(CliError::usage(
            "--proba: a linear regression model predicts values, not class probabilities",
            "drop --proba",
        ));
    }
    let input = Input::of(&args.data)?;
    let labels = model.labels().map(<[String]>::to_vec);
    let (rows, out) = match &args.out {
        Some(path) => {
            let format = match has_extension(path, "npy") {
                true => OutputFormat::Npy,
                false => OutputFormat::Csv,
            };
            let mut rows = 0;
            gradflow::io::write_atomic_with(path, |f| {
                let mut w = PredictionWriter::new(f, format, labels, args.proba)?;
                rows = input.predict(&model, args.header.given(), |p| w.write(p))?;
                w.finish().map(drop)
            })?;
            (rows, Some(path))
        }
        None => {
            let stdout = NoSeek(std::io::stdout().lock());
            let mut w = PredictionWriter::new(stdout, OutputFormat::Csv, labels, args.proba)?;
            let rows = input.predict(&model, args.header.given(), |p| w.write(p))?;
            w.finish()?
                .0
                .flush()
                .map_err(|e| CliError::failed(format!("standard output: {e}"), None))?;
            (rows, None)
        }
    };
    if let Some(path) = out {
        eprintln!(
            "gradflow: wrote {rows} predictions ({} model) to {}",
            model.kind().name(),
            path.display()
        );
    }
    Ok(())
}

fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// The data file's kind.
enum Input<'a> {
    Csv(&'a Path),
    Npy(&'a Path),
    Parquet(&'a Path),
}

impl<'a> Input<'a> {
    fn of(path: &'a Path) -> Result<Self, CliError> {
        if has_extension(path, "csv") {
            Ok(Input::Csv(path))
        } else if has_extension(path, "npy") {
            Ok(Input::Npy(path))
        } else if has_extension(path, "parquet") || has_extension(path, "pq") {
            Ok(Input::Parquet(path))
        } else {
            Err(CliError::usage(
                format!(
                    "--data {}: predict reads .csv, .npy and .parquet files",
                    path.display()
                ),
                "give a .csv file of feature rows, a 2-D .npy array or a Parquet file",
            ))
        }
    }

    /// Predicts every row, a batch at a time, handing each batch's predictions to
    /// `sink`; returns the rows.
    fn predict(
        &self,
        model: &SavedModel,
        header: Option<bool>,
        mut sink: impl FnMut(&Prediction) -> gradflow::Result<()>,
    ) -> gradflow::Result<usize> {
        let mut each = |x: &[f32]| sink(&model.predict(x)?);
        let columns = &model.columns;
        // A first row holding the model's feature names is its header, detected or not.
        let header = match (self, header, &columns.features) {
            (Input::Csv(path), None, Some(names)) if csv::first_row_names(path, names)? => {
                Some(true)
            }
            _ => header,
        };
        // The training file's columns that are not features: the target and the weights,
        // by name in a file with a header, else by position (a CSV without one, laid out
        // as the training file was).
        let named = match self {
            Input::Csv(path) => {
                header.map_or_else(|| csv::header(path).map(|h| h.is_some()), Ok)?
            }
            Input::Parquet(_) => true,
            Input::Npy(_) => false,
        };
        let column = |name: &Option<String>, index: Option<usize>| match (name, index) {
            (Some(name), _) if named => Some(Column::Name(name.clone())),
            (_, Some(i)) => Some(Column::Index(i)),
            (Some(name), None) => Some(Column::Name(name.clone())),
            (None, None) => None,
        };
        let skip: Vec<Column> = [
            column(&columns.target, columns.target_column),
            column(&columns.weight, columns.weight_column),
        ]
        .into_iter()
        .flatten()
        .collect();
        // By name where the training file had a header (a model file from elsewhere may
        // hold names of another count: then by position, which checks the count).
        let features = match &columns.features {
            Some(names) if names.len() == model.p() => FeatureColumns::named(names),
            _ => model.p().into(),
        };
        Ok(match self {
            Input::Csv(path) => csv::for_each_features(path, features, &skip, header, &mut each)?.n,
            Input::Parquet(path) => {
                gradflow::io::parquet::for_each_features(path, features, &skip, &mut each)?
            }
            Input::Npy(path) => {
                check_npy_target(path, model)?;
                npy::for_each_features(path, model.p(), columns.target_column, &mut each)?.n
            }
        })
    }
}

/// Refuses an array of p + 1 columns for a model of a CSV or Parquet file whose target was
/// not its last column: `gradflow convert` puts the target last, an array saved from the
/// table keeps it in place, and either reading would be a guess.
fn check_npy_target(path: &Path, model: &SavedModel) -> gradflow::Result<()> {
    let columns = &model.columns;
    let p = model.p();
    let (Some(t), Some(file @ ("csv" | "parquet"))) =
        (columns.target_column, columns.file.as_deref())
    else {
        return Ok(());
    };
    if t == p {
        return Ok(());
    }
    let (_, cols) = npy::shape(path)?;
    if cols != p + 1 {
        return Ok(());
    }
    Err(gradflow::Error::BadFile {
        path: path.display().to_string(),
        reason: format!(
            "{cols} columns: the model was trained on a {file} file whose target was column \
             {t}, which `gradflow convert` moves last and a saved table keeps at {t}; give \
             the {p} feature columns alone"
        ),
    })
}

/// Standard output for the CSV writer, which never seeks (only a `.npy` output does).
struct NoSeek<W>(W);

impl<W: Write> Write for NoSeek<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl<W> Seek for NoSeek<W> {
    fn seek(&mut self, _: SeekFrom) -> std::io::Result<u64> {
        Err(std::io::ErrorKind::Unsupported.into())
    }
}
