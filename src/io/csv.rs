//! CSV files in and out, through the `csv` crate.
//!
//! **Reading a dataset** ([`read`]): every column but the target is a feature and must be a
//! finite number; the target column is the last one unless named ([`Column::Name`], which
//! needs a header) or numbered from 0 ([`Column::Index`]). For regression
//! ([`TargetKind::Real`]) the target is a number; for a classifier
//! ([`TargetKind::Classes`]) it is any text, and the distinct values become classes
//! `0..k` in sorted order — numerically when every label is a number (`2` before `10`),
//! else as strings — with the names returned in [`CsvData::labels`] so that a saved model
//! can give them back.
//!
//! **Header detection**: unless [`CsvOptions::header`] says otherwise, the first row is a
//! header when it has a non-numeric cell in a column whose next row is numeric, or when
//! every one of its cells is non-numeric (the test of Python's `csv.Sniffer`, kept simple).
//! So `x1,x2,label` over `0.5,1.5,cat` is a header, and `0.5,1.5,cat` over `0.7,1.1,dog`
//! is data.
//!
//! **Errors** name the file, the line (counted from 1, as an editor does), the column
//! (numbered from 0, as `--target` does, with its header name) and the value found.

use std::path::Path;
use std::str::FromStr;

use csv::{ReaderBuilder, StringRecord, Trim};

use super::csv_par::{self, Fault, Parsed, Role};
use super::model::Prediction;
use super::predictions::{OutputFormat, PredictionWriter};
use super::{io_error, write_atomic_with};
use crate::data::{Dataset, Targets};
use crate::error::{Error, Result};

/// Which column of a file holds the target.
///
/// `"3".parse::<Column>()` is [`Column::Index`] (numbered from 0); anything else is a
/// [`Column::Name`].
///
/// ```
/// use gradflow::io::Column;
/// assert_eq!("2".parse::<Column>()?, Column::Index(2));
/// assert_eq!("species".parse::<Column>()?, Column::Name("species".into()));
/// # Ok::<(), gradflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    /// The column with this header name.
    Name(String),
    /// The column at this position, counted from 0.
    Index(usize),
}

impl FromStr for Column {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.is_empty() {
            return Err(Error::param(
                "target column",
                "\"\"",
                "must be a column name or an index counted from 0",
            ));
        }
        Ok(match s.parse::<usize>() {
            Ok(i) => Column::Index(i),
            Err(_) => Column::Name(s.to_string()),
        })
    }
}

impl std::fmt::Display for Column {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Column::Name(n) => write!(f, "\"{n}\""),
            Column::Index(i) => write!(f, "{i}"),
        }
    }
}

/// The feature columns a model reads from a file: how many, and their names when the
/// training file had a header.
///
/// With names, a file that has a header is read **by name**: its columns may come in any
/// order and hold others besides (an id, a date), and one that lacks a feature is an
/// error naming it, never a silent misreading of columns that merely number the same.
/// Without a header (or without names) columns are taken by position. A bare `usize` is
/// the count alone.
///
/// ```
/// use gradflow::io::csv::{self, FeatureColumns};
/// let path = std::env::temp_dir().join("gradflow-doc-by-name.csv");
/// std::fs::write(&path, "id,b,a\n7,2,1\n8,4,3\n")?;
/// let names = ["a".to_string(), "b".to_string()];
/// let f = csv::read_features(&path, FeatureColumns::named(&names), &[], None)?;
/// assert_eq!(f.x, [1.0, 2.0, 3.0, 4.0]); // a, b of each row; id left out
/// let names = ["a".to_string(), "c".to_string()];
/// let err = csv::read_features(&path, FeatureColumns::named(&names), &[], None).unwrap_err();
/// assert!(err.to_string().contains("no column \"c\""), "{err}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureColumns<'a> {
    /// Feature count.
    pub p: usize,
    /// Their names in the model's order, when known.
    pub names: Option<&'a [String]>,
}

impl From<usize> for FeatureColumns<'_> {
    fn from(p: usize) -> Self {
        FeatureColumns { p, names: None }
    }
}

impl<'a> FeatureColumns<'a> {
    /// The features named `names`, in this order.
    pub fn named(names: &'a [String]) -> Self {
        FeatureColumns {
            p: names.len(),
            names: Some(names),
        }
    }

    /// The file column of each feature, in the model's order, for a file with `header`
    /// whose columns `skipped` are the training file's target and weights: `None` when
    /// the features are read by position (no names, no header, or the remaining columns
    /// are the names in order).
    ///
    /// # Errors
    /// A message naming the feature the header lacks (or holds twice), with the header.
    pub(crate) fn locate(
        &self,
        header: Option<&[String]>,
        skipped: &[usize],
    ) -> std::result::Result<Option<Vec<usize>>, String> {
        let (Some(names), Some(header)) = (self.names, header) else {
            return Ok(None);
        };
        let rest = (0..header.len()).filter(|j| !skipped.contains(j));
        if rest.clone().map(|j| &header[j]).eq(names.iter()) {
            return Ok(None);
        }
        // Each name's columns (a name twice in the header is ambiguous).
        let mut columns: std::collections::HashMap<&str, Vec<usize>> =
            std::collections::HashMap::new();
        for j in rest {
            columns.entry(header[j].as_str()).or_default().push(j);
        }
        let mut at = Vec::with_capacity(names.len());
        for name in names {
            match columns.get(name.as_str()).map(Vec::as_slice) {
                Some(&[j]) => at.push(j),
                None => {
                    return Err(format!(
                        "no column {name:?}, a feature of the model (its features: {}; the \
                         file's header: {})",
                        quoted(names),
                        quoted(header)
                    ));
                }
                Some(_) => {
                    return Err(format!(
                        "the feature column {name:?} appears more than once in the header"
                    ));
                }
            }
        }
        Ok(Some(at))
    }
}

/// `"a", "b", "c"`, the first 20 of them.
fn quoted(names: &[String]) -> String {
    let mut s: Vec<String> = names.iter().take(20).map(|n| format!("{n:?}")).collect();
    if names.len() > 20 {
        s.push(format!("… ({} in all)", names.len()));
    }
    s.join(", ")
}

/// How the target column is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetKind {
    /// A real number per row (regression).
    #[default]
    Real,
    /// A class label per row, any text (classification).
    Classes,
}

/// How [`read`] reads a file.
///
/// ```
/// use gradflow::io::{Column, CsvOptions};
/// let opts = CsvOptions::default().target(Column::Name("species".into())).classes();
/// assert_eq!(opts.header, None); // detected
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsvOptions {
    /// The target column; `None`: the last one.
    pub target: Option<Column>,
    /// How the target is read.
    pub kind: TargetKind,
    /// Whether the first row is a header; `None`: detect it.
    pub header: Option<bool>,
    /// A column of sample weights (neither a feature nor the target); `None`: unweighted.
    pub weight: Option<Column>,
}

impl CsvOptions {
    /// Sets the target column.
    pub fn target(mut self, column: Column) -> Self {
        self.target = Some(column);
        self
    }
    /// Reads the target as class labels.
    pub fn classes(mut self) -> Self {
        self.kind = TargetKind::Classes;
        self
    }
    /// Says whether the first row is a header instead of detecting it.
    pub fn header(mut self, has_header: bool) -> Self {
        self.header = Some(has_header);
        self
    }
    /// Reads sample weights from this column.
    pub fn weight(mut self, column: Column) -> Self {
        self.weight = Some(column);
        self
    }
}

/// A dataset read from a CSV file, with what is needed to read more files like it.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvData {
    /// The features (every column but the target, in file order) and targets.
    pub dataset: Dataset,
    /// The header's column names, when the file has a header.
    pub header: Option<Vec<String>>,
    /// The target's position in the file, counted from 0.
    pub target_column: usize,
    /// Classifiers: the name of each class, `labels[c]` for class `c`.
    pub labels: Option<Vec<String>>,
    /// The sample-weight column's position, when one was read.
    pub weight_column: Option<usize>,
    /// The sample weights, one per row, when a weight column was read.
    pub weights: Option<Vec<f32>>,
}

impl CsvData {
    /// The feature columns' names, when the file has a header.
    pub fn feature_names(&self) -> Option<Vec<String>> {
        self.header.as_ref().map(|h| {
            h.iter()
                .enumerate()
                .filter(|&(j, _)| j != self.target_column && Some(j) != self.weight_column)
                .map(|(_, n)| n.clone())
                .collect()
        })
    }

    /// The sample-weight column's name, when the file has a header and one was read.
    pub fn weight_name(&self) -> Option<&str> {
        let j = self.weight_column?;
        self.header.as_ref().map(|h| h[j].as_str())
    }

    /// The target column's name, when the file has a header.
    pub fn target_name(&self) -> Option<&str> {
        self.header.as_ref().map(|h| h[self.target_column].as_str())
    }
}

/// Reads a CSV file into a [`Dataset`]; see the [module documentation](self) for the rules.
///
/// # Example
/// ```
/// use gradflow::io::{csv, Column, CsvOptions};
/// let path = std::env::temp_dir().join("gradflow-doc-iris.csv");
/// std::fs::write(&path, "length,width,species\n1.4,0.2,setosa\n4.7,1.4,versicolor\n1.3,0.2,setosa\n")?;
/// let data = csv::read(&path, &CsvOptions::default().target(Column::Name("species".into())).classes())?;
/// assert_eq!((data.dataset.n(), data.dataset.p()), (3, 2));
/// assert_eq!(data.labels.as_deref(), Some(&["setosa".to_string(), "versicolor".into()][..]));
/// assert_eq!(data.feature_names(), Some(vec!["length".to_string(), "width".into()]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; [`Error::BadFile`] naming the line, column
/// and value for an empty file, fewer than two columns, a row with another number of
/// fields than the first, a cell that is not a finite number, a target column that does
/// not exist (or a name without a header).
pub fn read(path: impl AsRef<Path>, options: &CsvOptions) -> Result<CsvData> {
    read_chunked(path, options, csv_par::CHUNK_BYTES)
}

/// The header of a CSV file as [`read`] detects it (a non-numeric cell over a numeric
/// one), or `None` when its first row is data.
///
/// ```
/// let path = std::env::temp_dir().join("gradflow-doc-header.csv");
/// std::fs::write(&path, "a,b\n1,2\n")?;
/// assert_eq!(gradflow::io::csv::header(&path)?, Some(vec!["a".to_string(), "b".into()]));
/// std::fs::write(&path, "1,2\n3,4\n")?;
/// assert_eq!(gradflow::io::csv::header(&path)?, None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`read`], for the first rows.
pub fn header(path: impl AsRef<Path>) -> Result<Option<Vec<String>>> {
    Ok(Table::open(path.as_ref(), None)?.header)
}

/// Whether the first row of a CSV file holds every one of `names` (a model's features):
/// then it is that model's header, even where detection would take it for data (a header
/// of numbers, such as years, over numbers).
///
/// # Errors
/// As [`read`], for the first rows.
pub fn first_row_names(path: impl AsRef<Path>, names: &[String]) -> Result<bool> {
    let first = Table::open(path.as_ref(), Some(true))?
        .header
        .unwrap_or_default();
    let first: std::collections::HashSet<&str> = first.iter().map(String::as_str).collect();
    Ok(!names.is_empty() && names.iter().all(|n| first.contains(n.as_str())))
}

/// As [`read`], with the data rows cut into chunks of about `chunk_bytes` for the
/// parallel parse instead of the default few MB: for tests and fuzzing, which cut small to
/// cut often. Every cut gives the same result.
///
/// # Errors
/// As [`read`].
#[doc(hidden)]
pub fn read_chunked(
    path: impl AsRef<Path>,
    options: &CsvOptions,
    chunk_bytes: usize,
) -> Result<CsvData> {
    let path = path.as_ref();
    let table = Table::open(path, options.header)?;
    table.check_columns()?;
    table.check_names()?;
    let cols = table.cols;
    let target = table.resolve(options.target.as_ref(), "target")?;
    let weight = match &options.weight {
        Some(c) => {
            let w = table.resolve(Some(c), "weight")?;
            if w == target {
                return Err(table.bad(format!(
                    "the weight column {} is the target column",
                    table.column_name(w)
                )));
            }
            if cols < 3 {
                return Err(table.bad(format!(
                    "{cols} columns: with a weight column a dataset needs at least 3"
                )));
            }
            Some(w)
        }
        None => None,
    };
    let p = cols - 1 - usize::from(weight.is_some());
    let roles: Vec<Role> = (0..cols)
        .map(|j| match j {
            _ if Some(j) == weight => Role::Weight,
            _ if j != target => Role::Feature,
            _ if options.kind == TargetKind::Real => Role::Real,
            _ => Role::Class,
        })
        .collect();
    let rows = table.rows(&roles, chunk_bytes)?;
    if rows.rows == 0 {
        return Err(table.bad("no data rows after the header".into()));
    }
    let x = rows.x;
    let weights = rows.weights;
    let (targets, labels) = match options.kind {
        TargetKind::Real => (Targets::Real(rows.real), None),
        TargetKind::Classes => {
            let (ids, labels) = class_order(rows.class_ids, rows.class_names);
            whole_if_numbers(&labels).map_err(|e| table.bad(e))?;
            let classes = labels.len();
            (
                Targets::Classes {
                    labels: ids,
                    classes,
                },
                Some(labels),
            )
        }
    };
    Ok(CsvData {
        dataset: Dataset::new(x, p, targets)?,
        header: table.header,
        target_column: target,
        labels,
        weight_column: weight,
        weights: weight.map(|_| weights),
    })
}

/// Feature rows read from a CSV file for prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvFeatures {
    /// Row-major features, `n × p`.
    pub x: Vec<f32>,
    /// Rows.
    pub n: usize,
    /// Feature columns.
    pub p: usize,
    /// The header's names, when the file has a header.
    pub header: Option<Vec<String>>,
    /// The training file's non-feature columns (target, weights) found and skipped.
    pub skipped: Vec<usize>,
}

/// Reads the feature rows of a CSV file for a model trained on `p` features; every column
/// must be a finite number.
///
/// `skip` holds the training file's columns that are not features (the target, and the
/// sample weights if any): each is skipped when the file has it too — by name when it is
/// a name and the file has a header with that name, by position when it is an index and
/// the file has `p + skip.len()` columns (the training layout). So the training file
/// itself can be given to predict.
///
/// # Example
/// ```
/// use gradflow::io::{csv, Column};
/// let path = std::env::temp_dir().join("gradflow-doc-features.csv");
/// std::fs::write(&path, "a,b,y\n1,2,0\n3,4,1\n")?;
/// let f = csv::read_features(&path, 2, &[Column::Name("y".into())], None)?;
/// assert_eq!((f.n, f.p, f.x), (2, 2, vec![1.0, 2.0, 3.0, 4.0]));
/// let err = csv::read_features(&path, 4, &[], None).unwrap_err(); // nothing skipped: 3 columns
/// assert!(err.to_string().contains("3 feature columns, but the model was trained on 4"), "{err}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`read`]; [`Error::BadFile`] saying both numbers when the file's feature count is
/// not `p`.
pub fn read_features<'n>(
    path: impl AsRef<Path>,
    features: impl Into<FeatureColumns<'n>>,
    skip: &[Column],
    header: Option<bool>,
) -> Result<CsvFeatures> {
    let features = features.into();
    let p = features.p;
    let mut x = Vec::new();
    let layout = for_each_features(path, features, skip, header, |batch| {
        x.extend_from_slice(batch);
        Ok(())
    })?;
    Ok(CsvFeatures {
        x,
        n: layout.n,
        p,
        header: layout.header,
        skipped: layout.skipped,
    })
}

/// What [`for_each_features`] read: the rows, the header, the columns skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureLayout {
    /// Rows.
    pub n: usize,
    /// The header's names, when the file has a header.
    pub header: Option<Vec<String>>,
    /// The training file's non-feature columns (target, weights) found and skipped.
    pub skipped: Vec<usize>,
}

/// The rows of [`read_features`], handed to `f` a window of the file at a time (row-major
/// features of whole rows, 64 MB of text a window): predictions for a file of any size in
/// the memory of one window.
///
/// # Example
/// ```
/// use gradflow::io::{csv, Column};
/// let path = std::env::temp_dir().join("gradflow-doc-batches.csv");
/// std::fs::write(&path, "a,b,y\n1,2,0\n3,4,1\n")?;
/// let mut sums = Vec::new();
/// let layout = csv::for_each_features(&path, 2, &[Column::Name("y".into())], None, |x| {
///     sums.extend(x.chunks(2).map(|r| r[0] + r[1]));
///     Ok(())
/// })?;
/// assert_eq!((layout.n, sums), (2, vec![3.0, 7.0]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`read_features`]; `f`'s errors.
pub fn for_each_features<'n>(
    path: impl AsRef<Path>,
    features: impl Into<FeatureColumns<'n>>,
    skip: &[Column],
    header: Option<bool>,
    f: impl FnMut(&[f32]) -> Result<()>,
) -> Result<FeatureLayout> {
    features_windowed(
        path.as_ref(),
        features.into(),
        skip,
        header,
        WINDOW_BYTES,
        f,
    )
}

/// Bytes of text a window of [`for_each_features`] holds.
const WINDOW_BYTES: usize = 64 << 20;

fn features_windowed(
    path: &Path,
    features: FeatureColumns<'_>,
    skip: &[Column],
    header: Option<bool>,
    window_bytes: usize,
    mut f: impl FnMut(&[f32]) -> Result<()>,
) -> Result<FeatureLayout> {
    let p = features.p;
    let table = Table::open(path, header)?;
    let training_layout = table.cols == p + skip.len();
    let skipped: Vec<usize> = skip
        .iter()
        .filter_map(|c| match c {
            Column::Name(name) => table
                .header
                .as_ref()
                .and_then(|h| h.iter().position(|n| n == name)),
            &Column::Index(i) if training_layout && i < table.cols => Some(i),
            Column::Index(_) => None,
        })
        .collect();
    // By name: the features' columns, each window's rows put in the model's order (the
    // rank of each feature's column among those read).
    let by_name = features
        .locate(table.header.as_deref(), &skipped)
        .map_err(|e| table.bad(e))?;
    let mut is_read = vec![by_name.is_none(); table.cols];
    match &by_name {
        Some(at) => at.iter().for_each(|&j| is_read[j] = true),
        None => skipped.iter().for_each(|&j| is_read[j] = false),
    }
    let order: Option<Vec<usize>> = by_name.as_ref().map(|at| {
        // A read column's place among the read ones, in file order.
        let mut place = vec![0; table.cols];
        for (k, j) in (0..table.cols).filter(|&j| is_read[j]).enumerate() {
            place[j] = k;
        }
        at.iter().map(|&j| place[j]).collect()
    });
    let found = is_read.iter().filter(|&&r| r).count();
    if found != p {
        let what = if skipped.is_empty() {
            format!("{found} feature columns")
        } else {
            let names: Vec<String> = skipped.iter().map(|&j| table.column_name(j)).collect();
            format!(
                "{found} feature columns (after skipping {})",
                names.join(" and ")
            )
        };
        return Err(table.bad(format!(
            "{what}, but the model was trained on {p} feature columns"
        )));
    }
    let roles: Vec<Role> = is_read
        .iter()
        .map(|&r| if r { Role::Feature } else { Role::Skip })
        .collect();
    let (mut n, mut ordered) = (0, Vec::new());
    table.windows(&roles, window_bytes, csv_par::CHUNK_BYTES, |rows| {
        n += rows.rows;
        match &order {
            None => f(&rows.x),
            Some(order) => {
                ordered.clear();
                let rows_of = rows.x.chunks_exact(p);
                ordered.extend(rows_of.flat_map(|row| order.iter().map(|&k| row[k])));
                f(&ordered)
            }
        }
    })?;
    if n == 0 {
        return Err(table.bad("no data rows after the header".into()));
    }
    Ok(FeatureLayout {
        n,
        header: table.header,
        skipped,
    })
}

/// Writes predictions as CSV, atomically (see [`SavedModel::save`](super::SavedModel::save)).
///
/// Columns: `prediction` — the value for regression, the class name for a classifier
/// (`labels[c]`, or the class number when `labels` is `None`); with `proba`, one more
/// column per class, `p_<name>`, holding its probability.
///
/// # Example
/// ```
/// use gradflow::io::{csv, Prediction};
/// let path = std::env::temp_dir().join("gradflow-doc-preds.csv");
/// let pred = Prediction::Classes { classes: vec![1, 0], proba: vec![0.1, 0.9, 0.8, 0.2], k: 2 };
/// csv::write_predictions(&path, &pred, Some(&["cat".into(), "dog".into()]), true)?;
/// assert_eq!(std::fs::read_to_string(&path)?, "prediction,p_cat,p_dog\ndog,0.1,0.9\ncat,0.8,0.2\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::Io`] when the file cannot be written; [`Error::ShapeMismatch`] when `labels`
/// does not have one name per class.
pub fn write_predictions(
    path: impl AsRef<Path>,
    prediction: &Prediction,
    labels: Option<&[String]>,
    proba: bool,
) -> Result<()> {
    let path = path.as_ref();
    write_atomic_with(path, |f| {
        let mut w =
            PredictionWriter::new(f, OutputFormat::Csv, labels.map(<[String]>::to_vec), proba)?;
        w.write(prediction)?;
        w.finish().map(drop)
    })
}

/// The CSV text of [`write_predictions`], for writing elsewhere (standard output).
///
/// # Errors
/// As [`write_predictions`], but no I/O error.
pub fn predictions_csv(
    prediction: &Prediction,
    labels: Option<&[String]>,
    proba: bool,
) -> Result<Vec<u8>> {
    let out = std::io::Cursor::new(Vec::new());
    let mut w = PredictionWriter::new(
        out,
        OutputFormat::Csv,
        labels.map(<[String]>::to_vec),
        proba,
    )?;
    w.write(prediction)?;
    Ok(w.finish()?.into_inner())
}

/// Maps class names to `0..k` in sorted order: numerically when every name is a number,
/// else as strings. Returns the id of each row and the name of each class.
///
/// ```
/// # use gradflow::io::csv::class_map;
/// let names: Vec<String> = ["10", "2", "1", "2"].map(String::from).to_vec();
/// assert_eq!(class_map(&names), (vec![2, 1, 0, 1], vec!["1".into(), "2".into(), "10".into()]));
/// ```
pub fn class_map(names: &[String]) -> (Vec<u32>, Vec<String>) {
    let mut distinct: Vec<String> = Vec::new();
    let mut seen = std::collections::HashMap::new();
    let ids = names
        .iter()
        .map(|n| {
            *seen.entry(n).or_insert_with(|| {
                distinct.push(n.clone());
                distinct.len() as u32 - 1
            })
        })
        .collect();
    class_order(ids, distinct)
}

/// [`class_map`] for labels that are numbers (whole numbers: a `.npy` or Parquet
/// target): the classes in increasing order, named by their printed values, without a
/// string per row (-0 and 0 are one class).
///
/// ```
/// # use gradflow::io::csv::class_map_numbers;
/// let (ids, names) = class_map_numbers(&[3.0, 0.0, 3.0, -0.0, 10.0]);
/// assert_eq!((ids, names), (vec![1, 0, 1, 0, 2], vec!["0".to_string(), "3".into(), "10".into()]));
/// ```
pub fn class_map_numbers(values: &[f32]) -> (Vec<u32>, Vec<String>) {
    let mut distinct: Vec<f32> = values.iter().map(|&v| v + 0.0).collect();
    distinct.sort_by(f32::total_cmp);
    distinct.dedup();
    let ids = values
        .iter()
        .map(|&v| distinct.partition_point(|&d| d < v + 0.0) as u32)
        .collect();
    (ids, distinct.iter().map(f32::to_string).collect())
}

/// Renumbers classes given as ids into `names` (any order, distinct) so that the ids
/// follow the names' sorted order: numerically when every name is a number, else as
/// strings. Returns the new id of each row and the sorted names.
pub(crate) fn class_order(ids: Vec<u32>, names: Vec<String>) -> (Vec<u32>, Vec<String>) {
    let mut distinct: Vec<&String> = names.iter().collect();
    distinct.sort();
    let numbers: Option<Vec<f64>> = distinct
        .iter()
        .map(|s| s.parse::<f64>().ok().filter(|v| v.is_finite()))
        .collect();
    // Each name's class: its place in sorted order, where names of one number (1, 1.0,
    // 1e0, +1) are one class, named as the whole number it is (`1`; -0 is `0`), or by the
    // first of its spellings when it is not whole (refused later as a real target).
    let mut index: std::collections::HashMap<&String, u32> = std::collections::HashMap::new();
    let mut classes: Vec<String> = Vec::new();
    match numbers {
        Some(nums) => {
            let mut pairs: Vec<(f64, &String)> = nums.into_iter().zip(distinct).collect();
            pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
            let mut last = None;
            for (v, name) in pairs {
                if last != Some(v + 0.0) {
                    classes.push(if v.fract() == 0.0 && v.abs() < 9.0e15 {
                        format!("{}", v as i64)
                    } else {
                        name.clone()
                    });
                    last = Some(v + 0.0);
                }
                index.insert(name, classes.len() as u32 - 1);
            }
        }
        None => {
            for (i, name) in distinct.into_iter().enumerate() {
                index.insert(name, i as u32);
                classes.push(name.clone());
            }
        }
    }
    let renumber: Vec<u32> = names.iter().map(|s| index[s]).collect();
    let ids = ids.into_iter().map(|i| renumber[i as usize]).collect();
    (ids, classes)
}

/// Refuses class labels that are all numbers, some not whole: a real-valued target (a
/// regression's) read as classes would make a class of every value. `labels` are the
/// distinct names ([`class_order`]'s); the message names one.
pub(crate) fn whole_if_numbers(labels: &[String]) -> std::result::Result<(), String> {
    let numbers: Option<Vec<f64>> = labels.iter().map(|s| s.parse::<f64>().ok()).collect();
    match numbers.and_then(|v| v.into_iter().position(|v| v.fract() != 0.0)) {
        Some(i) => Err(format!(
            "class label {} is a number but not a whole one ({} distinct numeric labels): a \
             classifier needs class labels (whole numbers or names); a real-valued target is \
             linear regression's",
            labels[i],
            labels.len()
        )),
        None => Ok(()),
    }
}

fn is_number(s: &str) -> bool {
    s.parse::<f64>().is_ok()
}

/// The first row is a header when it has a non-numeric cell over a numeric one, or when
/// all its cells are non-numeric.
fn looks_like_header(first: &StringRecord, second: Option<&StringRecord>) -> bool {
    if first.iter().all(|c| !is_number(c)) {
        return true;
    }
    second.is_some_and(|second| {
        first
            .iter()
            .zip(second.iter())
            .any(|(a, b)| !is_number(a) && is_number(b))
    })
}

/// A CSV file being read: its header (if any), its column count, and the rows not yet
/// returned.
pub(super) struct Table<'p> {
    path: &'p Path,
    pub(super) header: Option<Vec<String>>,
    pub(super) cols: usize,
    /// Where the data rows begin: the byte offset and line of the first one (`None`: a
    /// header alone).
    pub(super) data_start: Option<(u64, u64)>,
}

impl<'p> Table<'p> {
    pub(super) fn open(path: &'p Path, header: Option<bool>) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| io_error(path, &e))?;
        let mut records = ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(Trim::All)
            .from_reader(file)
            .into_records();
        let first = match records.next() {
            None => return Err(bad(path, "empty file: no rows".into())),
            Some(r) => r.map_err(|e| csv_error(path, &e))?,
        };
        let second = records
            .next()
            .transpose()
            .map_err(|e| csv_error(path, &e))?;
        let cols = first.len();
        let has_header = header.unwrap_or_else(|| looks_like_header(&first, second.as_ref()));
        let data = if has_header {
            second.as_ref()
        } else {
            Some(&first)
        };
        let data_start = data
            .and_then(StringRecord::position)
            .map(|p| (p.byte(), p.line()));
        let header = has_header.then(|| first.iter().map(str::to_string).collect());
        Ok(Table {
            path,
            header,
            cols,
            data_start,
        })
    }

    /// Every data row, parsed in parallel (see [`csv_par`](super::csv_par)) with one
    /// role per column, in chunks of about `chunk_bytes`.
    ///
    /// # Errors
    /// The first bad row in file order: its line, column (with its header name) and the
    /// value found.
    pub(super) fn rows(&self, roles: &[Role], chunk_bytes: usize) -> Result<Parsed> {
        let mut all = None;
        self.windows(roles, usize::MAX, chunk_bytes, |rows| {
            all = Some(rows);
            Ok(())
        })?;
        Ok(all.unwrap_or_default())
    }

    /// As [`Table::rows`], the data cut at line ends into windows of about
    /// `window_bytes`, each parsed and handed to `f` before the next is read: a file of
    /// any size in the memory of one window. Class ids are numbered per window.
    ///
    /// # Errors
    /// As [`Table::rows`]; `f`'s errors.
    pub(super) fn windows(
        &self,
        roles: &[Role],
        window_bytes: usize,
        chunk_bytes: usize,
        mut f: impl FnMut(Parsed) -> Result<()>,
    ) -> Result<()> {
        let Some((byte, mut line)) = self.data_start else {
            return Ok(());
        };
        let bytes = csv_par::map(self.path).map_err(|e| io_error(self.path, &e))?;
        let data = bytes.get(byte as usize..).unwrap_or_default();
        let whole = window_bytes >= data.len();
        for std::ops::Range { start: a, end: b } in csv_par::Cuts::new(data, window_bytes) {
            let rows = csv_par::parse(&data[a..b], line, roles, chunk_bytes)
                .map_err(|e| self.row_error(e))?;
            line += rows.newlines;
            f(rows)?;
            if !whole {
                // Page-aligned: the window's whole pages (its last may hold the next's start).
                let base = byte as usize;
                let (lo, hi) = ((base + a).next_multiple_of(4096), (base + b) / 4096 * 4096);
                if lo < hi {
                    bytes.release(lo..hi);
                }
            }
        }
        Ok(())
    }

    /// A bad row's error: the line, the column (with its header name), the value found.
    fn row_error(&self, e: csv_par::RowError) -> Error {
        let line = e.line;
        let at = |col| format!("line {line}, column {}", self.column_name(col));
        self.bad(match e.fault {
            Fault::Ragged(n) => self.ragged(line, n),
            Fault::Empty(col) => format!("{}: empty cell, expected a number", at(col)),
            Fault::NotFinite(col, v) => format!(
                "{}: {v} is not a finite number (every value must be finite)",
                at(col)
            ),
            Fault::NotNumber(col, cell) => format!("{}: \"{cell}\" is not a number", at(col)),
            Fault::EmptyLabel(col) => format!("{}: empty class label", at(col)),
            Fault::NotUtf8 => format!("line {line}: not UTF-8 text"),
            Fault::Csv(message) => format!("line {line}: {message}"),
            Fault::OutOfMemory(bytes) => {
                return Error::OutOfMemory {
                    what: "the CSV file's features",
                    bytes,
                };
            }
        })
    }

    /// A ragged row's reason.
    fn ragged(&self, line: u64, fields: usize) -> String {
        let of = if self.header.is_some() {
            "the header"
        } else {
            "the first row"
        };
        format!(
            "line {line}: {fields} fields, but {of} has {} (ragged rows)",
            self.cols
        )
    }

    /// The position of the `what` column (`target`, `weight`); the last one for `None`.
    pub(super) fn resolve(&self, column: Option<&Column>, what: &str) -> Result<usize> {
        // A header of numbers (years): `2019` may name a column as well as count one.
        if let (Some(&Column::Index(i)), Some(h)) = (column, &self.header)
            && let Some(j) = h.iter().position(|c| *c == i.to_string())
        {
            return match j == i || i >= self.cols {
                true => Ok(j),
                false => Err(self.bad(format!(
                    "{what} column {i} is ambiguous: column {i} counted from 0 is {:?}, and \
                     column {j} is named \"{i}\"; rename that column",
                    h[i]
                ))),
            };
        }
        match column {
            None => Ok(self.cols - 1),
            Some(&Column::Index(i)) if i < self.cols => Ok(i),
            Some(&Column::Index(i)) => Err(self.bad(format!(
                "{what} column {i} does not exist: the file has {} columns, numbered 0 to {}",
                self.cols,
                self.cols - 1
            ))),
            Some(Column::Name(name)) => match &self.header {
                None => Err(self.bad(format!(
                    "{what} column \"{name}\" cannot be found: the file has no header row; \
                     give the column's index (0 to {}) instead",
                    self.cols - 1
                ))),
                Some(h) => h.iter().position(|c| c == name).ok_or_else(|| {
                    self.bad(format!(
                        "no {what} column \"{name}\": the header has {}",
                        h.iter()
                            .map(|c| format!("\"{c}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }),
            },
        }
    }

    /// `2 ("width")` with a header, `2` without.
    pub(super) fn column_name(&self, col: usize) -> String {
        match &self.header {
            Some(h) => format!("{col} (\"{}\")", h[col]),
            None => col.to_string(),
        }
    }

    pub(super) fn bad(&self, reason: String) -> Error {
        bad(self.path, reason)
    }

    /// A header that names two columns alike is an error: columns are found by name
    /// (`--target`, the weights, `predict`'s features), and a feature named as the target
    /// would be read in its place.
    pub(super) fn check_names(&self) -> Result<()> {
        let Some(header) = &self.header else {
            return Ok(());
        };
        let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for (j, name) in header.iter().enumerate() {
            if let Some(&first) = seen.get(name.as_str()) {
                return Err(self.bad(format!(
                    "columns {first} and {j} are both named {name:?}: gradflow finds columns \
                     by name (the target, the weights, predict's features); rename one"
                )));
            }
            seen.insert(name, j);
        }
        Ok(())
    }

    /// Fewer than two columns is an error; when the first line holds another separator
    /// (`;`, a tab, `|`: a spreadsheet's export), the message says so.
    pub(super) fn check_columns(&self) -> Result<()> {
        if self.cols >= 2 {
            return Ok(());
        }
        let first = std::fs::File::open(self.path)
            .ok()
            .and_then(|f| std::io::BufRead::lines(std::io::BufReader::new(f)).next())
            .and_then(|line| line.ok())
            .unwrap_or_default();
        let hint = [(';', "';'"), ('\t', "a tab"), ('|', "'|'")]
            .iter()
            .find(|(c, _)| first.contains(*c))
            .map_or(String::new(), |(_, name)| {
                format!(
                    "; its first line is separated by {name}, and gradflow reads \
                     comma-separated values: convert the file, or replace the separator"
                )
            });
        Err(self.bad(format!(
            "{} column: a dataset needs at least 2 (one feature and the target){hint}",
            self.cols
        )))
    }
}

fn bad(path: &Path, reason: String) -> Error {
    Error::BadFile {
        path: path.display().to_string(),
        reason,
    }
}

fn csv_error(path: &Path, e: &csv::Error) -> Error {
    let at = e
        .position()
        .map_or(String::new(), |p| format!("line {}: ", p.line()));
    match e.kind() {
        csv::ErrorKind::Io(io) => io_error(path, io),
        csv::ErrorKind::Utf8 { .. } => bad(path, format!("{at}not UTF-8 text")),
        _ => bad(path, format!("{at}{e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.csv");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn err(text: &str, options: &CsvOptions) -> String {
        let (_d, path) = file(text);
        read(&path, options).unwrap_err().to_string()
    }

    /// The serial reader this module had before the parallel one, kept as its reference:
    /// the `csv` crate record by record, `str::parse` cell by cell.
    fn serial_read(path: &Path, options: &CsvOptions) -> Result<CsvData> {
        let table = Table::open(path, options.header)?;
        table.check_columns()?;
        table.check_names()?;
        let cols = table.cols;
        let target = table.resolve(options.target.as_ref(), "target")?;
        let weight = match &options.weight {
            Some(c) => Some(table.resolve(Some(c), "weight")?),
            None => None,
        };
        if weight == Some(target) || (weight.is_some() && cols < 3) {
            return read(path, options); // the same checks, not what is compared here
        }
        let p = cols - 1 - usize::from(weight.is_some());
        let (mut x, mut real, mut names, mut weights) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        // The true line of a record: that of its first byte past line ends (the `csv`
        // crate's own count lags after CRLF and blank lines).
        let text = std::fs::read(path).unwrap();
        let line_at = |byte: u64| {
            let mut at = byte as usize;
            while at < text.len() && (text[at] == b'\r' || text[at] == b'\n') {
                at += 1;
            }
            1 + text[..at].iter().filter(|&&c| c == b'\n').count() as u64
        };
        let line_of = |rec: &StringRecord| line_at(rec.position().unwrap().byte());
        let mut records = ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(Trim::All)
            .from_path(path)
            .unwrap()
            .into_records();
        if table.header.is_some() {
            records.next();
        }
        for rec in records {
            let rec = rec.map_err(|e| {
                let line = line_at(e.position().unwrap().byte());
                table.bad(format!("line {line}: not UTF-8 text"))
            })?;
            if rec.len() != cols {
                return Err(table.bad(table.ragged(line_of(&rec), rec.len())));
            }
            let line = line_of(&rec);
            for (j, cell) in rec.iter().enumerate() {
                if Some(j) == weight {
                    weights.push(number(&table, cell, line, j)?);
                } else if j != target {
                    x.push(number(&table, cell, line, j)?);
                } else if options.kind == TargetKind::Real {
                    real.push(number(&table, cell, line, j)?);
                } else if cell.is_empty() {
                    return Err(table.bad(format!(
                        "line {line}, column {}: empty class label",
                        table.column_name(j)
                    )));
                } else {
                    names.push(cell.to_string());
                }
            }
        }
        if x.is_empty() {
            return Err(table.bad("no data rows after the header".into()));
        }
        let (targets, labels) = match options.kind {
            TargetKind::Real => (Targets::Real(real), None),
            TargetKind::Classes => {
                let (ids, labels) = class_map(&names);
                whole_if_numbers(&labels).map_err(|e| table.bad(e))?;
                let classes = labels.len();
                let t = Targets::Classes {
                    labels: ids,
                    classes,
                };
                (t, Some(labels))
            }
        };
        Ok(CsvData {
            dataset: Dataset::new(x, p, targets)?,
            header: table.header,
            target_column: target,
            labels,
            weight_column: weight,
            weights: weight.map(|_| weights),
        })
    }

    /// A finite number from `cell`, with the reader's words: `str::parse` cell by cell.
    fn number(table: &Table<'_>, cell: &str, line: u64, col: usize) -> Result<f32> {
        let at = || format!("line {line}, column {}", table.column_name(col));
        if cell.is_empty() {
            return Err(table.bad(format!("{}: empty cell, expected a number", at())));
        }
        match cell.parse::<f32>() {
            Ok(v) if v.is_finite() => Ok(v),
            Ok(v) => Err(table.bad(format!(
                "{}: {v} is not a finite number (every value must be finite)",
                at()
            ))),
            Err(_) => Err(table.bad(format!("{}: \"{cell}\" is not a number", at()))),
        }
    }

    fn outcome(r: Result<CsvData>) -> std::result::Result<CsvData, String> {
        r.map_err(|e| e.to_string())
    }

    #[test]
    fn the_parallel_reader_equals_the_serial_one_at_every_cut() {
        use rand::{RngExt, SeedableRng};
        let cells = [
            "1", "-2.5", " 3e-2 ", "4.", ".5", "+6", "1e40", "inf", "NaN", "", "abc", "7x",
            "\"8\"", "\"a,b\"", "\"x\ny\"", "cat", "dog", " dog ", "\u{a0}9", "1_0",
        ];
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let mut compared = (0, 0);
        for case in 0..600 {
            let cols = rng.random_range(2..5usize);
            let rows = rng.random_range(0..8usize);
            let mut text = String::new();
            if case % 3 == 0 {
                let names: Vec<String> = (0..cols).map(|j| format!("c{j}")).collect();
                text += &names.join(",");
                text += "\n";
            }
            // Mostly clean rows, now and then something hostile.
            let clean = rng.random_range(0..4) != 0;
            for _ in 0..rows {
                let width = match rng.random_range(0..20) {
                    0 if !clean => cols + 1,
                    1 if !clean => cols - 1,
                    _ => cols,
                };
                let row: Vec<String> = (0..width)
                    .map(|j| {
                        let pool = if clean && j + 1 < cols {
                            3
                        } else {
                            cells.len()
                        };
                        let pick = if clean && j + 1 == cols {
                            15 + rng.random_range(0..3)
                        } else {
                            rng.random_range(0..pool)
                        };
                        cells[pick].to_string()
                    })
                    .collect();
                text += &row.join(",");
                text += ["\n", "\r\n", "\n\n"][rng.random_range(0..3)];
            }
            std::fs::write(&path, &text).unwrap();
            let options = match case % 4 {
                0 => CsvOptions::default(),
                1 => CsvOptions::default().classes(),
                2 => CsvOptions::default().target(Column::Index(0)).classes(),
                _ => CsvOptions::default().weight(Column::Index(0)),
            };
            let reference = outcome(serial_read(&path, &options));
            for chunk in [1, 2, 7, usize::MAX] {
                let got = outcome(read_chunked(&path, &options, chunk));
                assert_eq!(got, reference, "{text:?} {options:?} chunks of {chunk}");
            }
            compared.0 += usize::from(reference.is_ok());
            compared.1 += usize::from(reference.is_err());
        }
        // Both outcomes were exercised, many times.
        assert!(compared.0 > 100 && compared.1 > 100, "{compared:?}");
    }

    #[test]
    fn header_detected_and_string_labels_sorted() {
        let (_d, path) = file("a, b ,kind\n1,2,dog\n3,4,cat\n5,6,dog\n");
        let data = read(&path, &CsvOptions::default().classes()).unwrap();
        assert_eq!(data.header.as_deref().unwrap(), ["a", "b", "kind"]);
        assert_eq!(data.labels.as_deref().unwrap(), ["cat", "dog"]);
        assert_eq!(
            data.dataset.targets(),
            &Targets::Classes {
                labels: vec![1, 0, 1],
                classes: 2
            }
        );
        assert_eq!(data.dataset.features(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(data.target_name(), Some("kind"));
    }

    #[test]
    fn no_header_when_the_first_row_is_data_even_with_string_labels() {
        let (_d, path) = file("1,2,dog\n3,4,cat\n");
        let data = read(&path, &CsvOptions::default().classes()).unwrap();
        assert_eq!(data.header, None);
        assert_eq!(data.dataset.n(), 2);
    }

    #[test]
    fn numeric_labels_sort_as_numbers() {
        let (ids, names) = class_map(&["10".into(), "2".into(), "1".into(), "2".into()]);
        assert_eq!(names, ["1", "2", "10"]);
        assert_eq!(ids, [2, 1, 0, 1]);
        // One number however written is one class, named as first in sorted order.
        let (ids, names) = class_map(&["1.0", "0", "+1", "1e0", "-0", "007"].map(String::from));
        assert_eq!(
            (ids, names),
            (
                vec![1, 0, 1, 1, 0, 2],
                vec!["0".into(), "1".into(), "7".into()]
            )
        );
    }

    #[test]
    fn a_real_valued_target_read_as_classes_is_refused() {
        let classes = CsvOptions::default().classes();
        let m = err("a,y\n1,0.5\n2,1.25\n3,2\n", &classes);
        assert!(
            m.contains(
                "class label 0.5 is a number but not a whole one (3 distinct numeric labels)"
            ),
            "{m}"
        );
        // Whole numbers written as floats, and text that merely starts with digits, are labels.
        let data = read(&file("a,y\n1,0.0\n2,1.0\n3,1\n").1, &classes).unwrap();
        assert_eq!(data.labels.unwrap(), ["0", "1"]);
        let data = read(&file("a,y\n1,2.5kg\n2,0.5\n").1, &classes).unwrap();
        assert_eq!(data.labels.unwrap(), ["0.5", "2.5kg"]);
    }

    #[test]
    fn target_by_index_and_name_with_real_values() {
        let (_d, path) = file("y,x1,x2\n0.5,1,2\n1.5,3,4\n");
        for opts in [
            CsvOptions::default().target(Column::Index(0)),
            CsvOptions::default().target(Column::Name("y".into())),
        ] {
            let data = read(&path, &opts).unwrap();
            assert_eq!(data.dataset.targets(), &Targets::Real(vec![0.5, 1.5]));
            assert_eq!(data.dataset.features(), [1.0, 2.0, 3.0, 4.0]);
            assert_eq!(data.feature_names().unwrap(), ["x1", "x2"]);
        }
    }

    #[test]
    fn errors_name_file_line_column_and_value() {
        let none = CsvOptions::default();
        let m = err("a,b,y\n1,2,3\n4,5\n", &none);
        assert!(
            m.contains("data.csv: line 3: 2 fields, but the header has 3"),
            "{m}"
        );
        let m = err("a,b,y\n1,2,3\n4,abc,6\n", &none);
        assert!(
            m.contains("line 3, column 1 (\"b\"): \"abc\" is not a number"),
            "{m}"
        );
        let m = err("1,2,3\n4,inf,6\n", &none);
        assert!(
            m.contains("line 2, column 1: inf is not a finite number"),
            "{m}"
        );
        let m = err("1,,3\n", &none);
        assert!(m.contains("line 1, column 1: empty cell"), "{m}");
        let m = err("", &none);
        assert!(m.ends_with("data.csv: empty file: no rows"), "{m}");
        let m = err("a,b,y\n", &none);
        assert!(m.contains("no data rows after the header"), "{m}");
        let m = err(
            "a,b,y\n1,2,3\n",
            &CsvOptions::default().target(Column::Name("z".into())),
        );
        assert!(
            m.contains("no target column \"z\": the header has \"a\", \"b\", \"y\""),
            "{m}"
        );
        let m = err(
            "1,2,3\n",
            &CsvOptions::default().target(Column::Name("y".into())),
        );
        assert!(m.contains("no header row"), "{m}");
        let m = err("1,2,3\n", &CsvOptions::default().target(Column::Index(3)));
        assert!(m.contains("target column 3 does not exist"), "{m}");
        let m = err("1\n2\n", &none);
        assert!(m.contains("1 column: a dataset needs at least 2"), "{m}");
        assert!(!m.contains("separated by"), "{m}");
        let m = err("a;b;y\n1;2;3\n", &none);
        assert!(m.contains("its first line is separated by ';'"), "{m}");
        let years = CsvOptions::default().header(true);
        let data = read(
            &file("2019,2020,2021\n1,2,3\n4,5,6\n").1,
            &years.clone().target(Column::Index(2019)),
        );
        assert_eq!(data.unwrap().dataset.features(), [2.0, 3.0, 5.0, 6.0]);
        let m = err(
            "x,1,0\n1,2,3\n",
            &CsvOptions::default().target(Column::Index(0)),
        );
        assert!(m.contains("target column 0 is ambiguous"), "{m}");
        let m = err("y,x,y\n1,2,3\n", &none);
        assert!(m.contains("columns 0 and 2 are both named \"y\""), "{m}");
    }

    #[test]
    fn features_skip_the_target_and_check_the_count() {
        let (_d, path) = file("a,b,y\n1,2,cat\n3,4,dog\n");
        let name = Column::Name("y".into());
        let f = read_features(&path, 2, std::slice::from_ref(&name), None).unwrap();
        assert_eq!(
            (f.n, f.skipped, f.x),
            (2, vec![2], vec![1.0, 2.0, 3.0, 4.0])
        );
        let (_d2, path2) = file("1,2,0\n3,4,1\n");
        let f = read_features(&path2, 2, &[Column::Index(2)], None).unwrap();
        assert_eq!(f.x, [1.0, 2.0, 3.0, 4.0]);
        let m = read_features(&path2, 4, &[], None).unwrap_err().to_string();
        assert!(
            m.contains("3 feature columns, but the model was trained on 4"),
            "{m}"
        );
    }

    #[test]
    fn features_read_a_window_at_a_time_are_the_features_read_whole() {
        let (_d, path) = file("a,b,y\n1,2,\"x\ny\"\r\n3,4,q\n\n5,6,z\n7,8,w\n");
        let skip = [Column::Name("y".into())];
        let whole = read_features(&path, 2, &skip, None).unwrap();
        for window in [1, 2, 5, 9, 1000] {
            let (mut x, mut batches) = (Vec::new(), 0);
            let layout = features_windowed(&path, 2.into(), &skip, None, window, |b| {
                x.extend_from_slice(b);
                batches += 1;
                Ok(())
            })
            .unwrap();
            assert_eq!(
                (x.as_slice(), layout.n),
                (whole.x.as_slice(), 4),
                "windows of {window}"
            );
            assert!(window > 100 || batches > 1);
        }
        // A bad cell is reported with its line, whichever window holds it.
        let (_d2, bad) = file("a,b\n1,2\n3,4\n5,x\n");
        for window in [1, 4, 1000] {
            let e = features_windowed(&bad, 2.into(), &[], None, window, |_| Ok(())).unwrap_err();
            assert!(
                e.to_string()
                    .contains("line 4, column 1 (\"b\"): \"x\" is not a number"),
                "{e}"
            );
        }
    }

    #[test]
    fn named_features_are_read_by_name_in_any_order_and_window() {
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let named = FeatureColumns::named(&names);
        // The training layout (features in order, the target after): by position.
        let (_d, same) = file("a,b,c,y\n1,2,3,0\n4,5,6,1\n");
        let skip = [Column::Name("y".into())];
        let f = read_features(&same, named, &skip, None).unwrap();
        assert_eq!(f.x, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        // Reordered, with an id and the target among them: by name, whatever the window.
        let (_d2, moved) = file("id,c,y,a,b\n9,3,0,1,2\n8,6,1,4,5\n7,9,1,7,8\n");
        for window in [1, 7, 1000] {
            let mut x = Vec::new();
            let layout = features_windowed(&moved, named, &skip, None, window, |b| {
                x.extend_from_slice(b);
                Ok(())
            })
            .unwrap();
            assert_eq!(layout.n, 3);
            assert_eq!(
                x,
                [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
                "window {window}"
            );
        }
        // The same count under other names is an error naming the feature, not a guess.
        let (_d3, renamed) = file("x0,x1,x2\n1,2,3\n");
        let m = read_features(&renamed, named, &[], None)
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("no column \"a\", a feature of the model (its features: \"a\", \"b\", \"c\"; the file's header: \"x0\", \"x1\", \"x2\")"),
            "{m}"
        );
        let (_d4, twice) = file("a,b,c,b\n1,2,3,4\n");
        let m = read_features(&twice, named, &[], None)
            .unwrap_err()
            .to_string();
        assert!(m.contains("\"b\" appears more than once"), "{m}");
        // No header: by position, the count checked.
        let (_d5, bare) = file("1,2,3\n4,5,6\n");
        assert_eq!(read_features(&bare, named, &[], None).unwrap().n, 2);
    }

    #[test]
    fn predictions_for_regression_have_a_header_and_one_row_each() {
        let text = predictions_csv(&Prediction::Real(vec![1.5, -2.0]), None, false).unwrap();
        assert_eq!(String::from_utf8(text).unwrap(), "prediction\n1.5\n-2.0\n");
    }
}
