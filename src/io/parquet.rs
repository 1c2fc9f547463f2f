//! Parquet files (feature `parquet`, on in the command): a flat table of numeric columns
//! — floats, integers, booleans — read as features, and a target column by name or index
//! (the last by default) that may also hold text (class names, as a CSV's). Read a row
//! group at a time, one column at a time through the `parquet` crate's typed column
//! readers (no Arrow): [`read`] into a [`Dataset`], [`for_each_features`] batch by batch
//! for prediction, [`for_each_row_group`] for conversion.
//!
//! Refused with the column (and row) named: nested or repeated columns, a null value (a
//! Parquet file may hold nulls; a model may not: fill or drop them first), a text column
//! as a feature or as a regression target, a non-finite number.

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::column::reader::ColumnReader;
use parquet::file::reader::{FileReader, SerializedFileReader};

use super::csv::{
    Column, FeatureColumns, TargetKind, class_map, class_map_numbers, whole_if_numbers,
};
use super::io_error;
use crate::data::{Dataset, Targets};
use crate::error::{Error, Result};

/// One column of one row group: numbers as f32, or text.
#[derive(Debug)]
pub enum Values {
    /// Floats, integers or booleans (as 0 and 1), as f32.
    Numbers(Vec<f32>),
    /// Text (a class-name column).
    Text(Vec<String>),
}

/// An open Parquet file: its column names and kinds, rows and row groups.
pub struct Table {
    path: PathBuf,
    reader: SerializedFileReader<bytes::Bytes>,
    /// Column names, in file order.
    pub names: Vec<String>,
    /// Rows in all.
    pub n: usize,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("path", &self.path)
            .field("names", &self.names)
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

impl Table {
    /// Opens `path` and checks its schema: flat, every column a number or text.
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::BadFile`] for a file that is not Parquet, a nested or
    /// repeated column, a column of another type (named, with its type).
    pub fn open(path: &Path) -> Result<Table> {
        let file = File::open(path).map_err(|e| io_error(path, &e))?;
        let bad = |reason: String| Error::BadFile {
            path: path.display().to_string(),
            reason,
        };
        // SAFETY: a read-only map of a file treated as untrusted bytes; a file changed
        // under it gives wrong values or a decoding error, not unsafety here. Mapped, the
        // column chunks are read by many threads at once (clones of a `File` share one
        // offset).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| io_error(path, &e))?;
        let reader = SerializedFileReader::new(bytes::Bytes::from_owner(map))
            .map_err(|e| bad(format!("not a Parquet file: {e}")))?;
        let meta = reader.metadata().file_metadata();
        let schema = meta.schema_descr();
        let mut names = Vec::new();
        for (j, c) in schema.columns().iter().enumerate() {
            let name = c.path().string();
            if c.max_rep_level() > 0 || c.path().parts().len() != 1 {
                return Err(bad(format!(
                    "column {j} (\"{name}\") is nested or repeated: a table of plain columns \
                     is expected"
                )));
            }
            use parquet::basic::Type as P;
            match c.physical_type() {
                P::BOOLEAN | P::INT32 | P::INT64 | P::FLOAT | P::DOUBLE | P::BYTE_ARRAY => {}
                other => {
                    return Err(bad(format!(
                        "column {j} (\"{name}\") is of type {other}: numbers (float, double, \
                         int32, int64, boolean) or text are expected"
                    )));
                }
            }
            names.push(name);
        }
        let n = usize::try_from(meta.num_rows()).map_err(|_| bad("a negative row count".into()))?;
        Ok(Table {
            path: path.to_path_buf(),
            reader,
            names,
            n,
        })
    }

    /// Opens `path` as a dataset: at least two columns and a row, and its target column
    /// (`target`, or the last).
    ///
    /// # Errors
    /// As [`Table::open`] and [`Table::resolve`]; [`Error::BadFile`] for fewer than two
    /// columns or no rows.
    fn dataset(path: &Path, target: Option<&Column>) -> Result<(Table, usize)> {
        let table = Table::open(path)?;
        let cols = table.cols();
        if cols < 2 {
            return Err(table.bad(format!(
                "{cols} column: a dataset needs at least 2 (one feature and the target)"
            )));
        }
        if table.n == 0 {
            return Err(table.bad("no rows".into()));
        }
        let t = table.resolve(target, "target")?;
        Ok((table, t))
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.names.len()
    }

    /// Row groups.
    pub fn row_groups(&self) -> usize {
        self.reader.num_row_groups()
    }

    /// The position of column `column` (`None`: the last).
    ///
    /// # Errors
    /// [`Error::BadFile`] naming the columns there are.
    pub fn resolve(&self, column: Option<&Column>, what: &str) -> Result<usize> {
        let cols = self.cols();
        match column {
            None => Ok(cols - 1),
            Some(&Column::Index(i)) if i < cols => Ok(i),
            Some(&Column::Index(i)) => Err(self.bad(format!(
                "{what} column {i} does not exist: the file has {cols} columns, numbered 0 to {}",
                cols - 1
            ))),
            Some(Column::Name(name)) => {
                self.names.iter().position(|c| c == name).ok_or_else(|| {
                    self.bad(format!(
                        "no {what} column \"{name}\": the file has {}",
                        self.names
                            .iter()
                            .map(|c| format!("\"{c}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })
            }
        }
    }

    fn bad(&self, reason: String) -> Error {
        Error::BadFile {
            path: self.path.display().to_string(),
            reason,
        }
    }

    /// Checks that the class names `v` of target column `t` in a row group whose first row
    /// is row `first` of the file hold no empty name, as a CSV's must not. Written once,
    /// so that [`read`] and [`open`] refuse the same file with the same message.
    ///
    /// # Errors
    /// [`Error::BadFile`] naming the first empty label's row and the column.
    fn check_class_names(&self, v: &[String], first: usize, t: usize) -> Result<()> {
        match v.iter().position(String::is_empty) {
            Some(i) => Err(self.bad(format!(
                "row {}, column {}: empty class label",
                first + i,
                self.column_name(t)
            ))),
            None => Ok(()),
        }
    }

    /// `2 ("width")`.
    fn column_name(&self, j: usize) -> String {
        format!("{j} (\"{}\")", self.names[j])
    }

    /// Column `j` of row group `g`, whose first row is row `first` of the file.
    ///
    /// # Errors
    /// [`Error::BadFile`] for a null (its row and column), a non-finite number, a corrupt
    /// or truncated row group (what the decoder said).
    pub fn column(&self, g: usize, j: usize, first: usize) -> Result<Values> {
        let corrupt = |e: parquet::errors::ParquetError| {
            self.bad(format!(
                "row group {g}, column {}: {e}",
                self.column_name(j)
            ))
        };
        let group = self.reader.get_row_group(g).map_err(corrupt)?;
        let rows = usize::try_from(group.metadata().num_rows()).unwrap_or(0);
        let max_def = group.metadata().column(j).column_descr().max_def_level();
        let mut defs = Vec::with_capacity(rows);
        let reader = group.get_column_reader(j).map_err(corrupt)?;
        macro_rules! read {
            ($r:expr, $convert:expr) => {{
                let mut r = $r;
                let mut values = Vec::with_capacity(rows);
                let (records, _, _) = r
                    .read_records(rows, (max_def > 0).then_some(&mut defs), None, &mut values)
                    .map_err(corrupt)?;
                (
                    records,
                    values.into_iter().map($convert).collect::<Vec<_>>(),
                )
            }};
        }
        let (records, values) = match reader {
            ColumnReader::FloatColumnReader(r) => {
                let (k, v) = read!(r, |v: f32| v);
                (k, Values::Numbers(v))
            }
            ColumnReader::DoubleColumnReader(r) => {
                let (k, v) = read!(r, |v: f64| v as f32);
                (k, Values::Numbers(v))
            }
            ColumnReader::Int32ColumnReader(r) => {
                let (k, v) = read!(r, |v: i32| v as f32);
                (k, Values::Numbers(v))
            }
            ColumnReader::Int64ColumnReader(r) => {
                let (k, v) = read!(r, |v: i64| v as f32);
                (k, Values::Numbers(v))
            }
            ColumnReader::BoolColumnReader(r) => {
                let (k, v) = read!(r, |v: bool| f32::from(u8::from(v)));
                (k, Values::Numbers(v))
            }
            ColumnReader::ByteArrayColumnReader(r) => {
                let (k, v) = read!(r, |v: parquet::data_type::ByteArray| {
                    String::from_utf8_lossy(v.data()).into_owned()
                });
                (k, Values::Text(v))
            }
            _ => return Err(self.bad(format!("column {}: unreadable type", self.column_name(j)))),
        };
        if records != rows {
            return Err(self.bad(format!(
                "row group {g}, column {}: {records} of its {rows} rows could be read \
                 (truncated?)",
                self.column_name(j)
            )));
        }
        if let Some(i) = defs.iter().position(|&d| d < max_def) {
            return Err(self.bad(format!(
                "row {}, column {}: null (a model reads no nulls: fill or drop them first)",
                first + i,
                self.column_name(j)
            )));
        }
        if let Values::Numbers(v) = &values
            && let Some(i) = v.iter().position(|x| !x.is_finite())
        {
            return Err(self.bad(format!(
                "row {}, column {}: {} is not a finite number (every value must be finite)",
                first + i,
                self.column_name(j),
                v[i]
            )));
        }
        Ok(values)
    }

    /// Columns `columns` of row group `g`, decoded in parallel (a column chunk each), as
    /// row-major numbers `rows × columns.len()`: the caller's order, an error for text.
    fn rows_of(&self, g: usize, columns: &[usize], first: usize, why: &str) -> Result<Vec<f32>> {
        use rayon::prelude::*;
        let rows = self.group_rows(g);
        let decoded: Vec<Vec<f32>> = columns
            .par_iter()
            .map(|&j| self.numbers(g, j, first, why))
            .collect::<Result<_>>()?;
        let width = columns.len();
        let mut out = vec![0f32; rows * width];
        // Column to rows, in blocks of rows so that the block being written stays in cache.
        for (b, block) in out.chunks_mut(256 * width.max(1)).enumerate() {
            for (k, col) in decoded.iter().enumerate() {
                let from = &col[b * 256..(b * 256 + block.len() / width.max(1))];
                for (row, &v) in block.chunks_exact_mut(width).zip(from) {
                    row[k] = v;
                }
            }
        }
        Ok(out)
    }

    /// The numbers of column `j` of row group `g`: an error for text.
    fn numbers(&self, g: usize, j: usize, first: usize, why: &str) -> Result<Vec<f32>> {
        match self.column(g, j, first)? {
            Values::Numbers(v) => Ok(v),
            Values::Text(_) => Err(self.bad(format!(
                "column {} holds text, but {why} must be numbers",
                self.column_name(j)
            ))),
        }
    }

    /// Rows of row group `g`.
    fn group_rows(&self, g: usize) -> usize {
        self.reader
            .metadata()
            .row_group(g)
            .num_rows()
            .try_into()
            .unwrap_or(0)
    }
}

/// A dataset read from a Parquet file.
#[derive(Debug, Clone, PartialEq)]
pub struct ParquetData {
    /// The features (every column but the target, in file order) and targets.
    pub dataset: Dataset,
    /// The column names.
    pub header: Vec<String>,
    /// The target's position in the file.
    pub target_column: usize,
    /// Classifiers: the name of each class.
    pub labels: Option<Vec<String>>,
}

impl ParquetData {
    /// The feature columns' names.
    pub fn feature_names(&self) -> Vec<String> {
        let t = self.target_column;
        let h = self.header.iter().enumerate();
        h.filter(|&(j, _)| j != t).map(|(_, n)| n.clone()).collect()
    }
}

/// Reads a Parquet file into a [`Dataset`]: every column but the target as a feature (in
/// file order), the target (`target`, or the last column) real or as classes — class
/// names sorted as a CSV's are (numerically when every name is a number).
///
/// # Errors
/// As [`Table::open`] and [`Table::column`]; [`Error::BadFile`] for fewer than two columns,
/// no rows, a text column as a feature or regression target.
pub fn read(
    path: impl AsRef<Path>,
    target: Option<&Column>,
    kind: TargetKind,
) -> Result<ParquetData> {
    let (table, t) = Table::dataset(path.as_ref(), target)?;
    let cols = table.cols();
    let p = cols - 1;
    let mut x = crate::data::zeroed(table.n * p, "the Parquet file's features")?;
    let (mut real, mut names, mut numbers) = (Vec::new(), Vec::new(), Vec::new());
    let features: Vec<usize> = (0..cols).filter(|&j| j != t).collect();
    let mut first = 0;
    for g in 0..table.row_groups() {
        let rows = table.group_rows(g);
        let block = table.rows_of(g, &features, first, "features")?;
        x[first * p..(first + rows) * p].copy_from_slice(&block);
        match (kind, table.column(g, t, first)?) {
            (TargetKind::Real, Values::Numbers(v)) => real.extend(v),
            (TargetKind::Real, Values::Text(_)) => {
                return Err(table.bad(format!(
                    "column {} holds text, but a regression target must be numbers",
                    table.column_name(t)
                )));
            }
            (TargetKind::Classes, Values::Numbers(v)) => numbers.extend(v),
            (TargetKind::Classes, Values::Text(v)) => {
                table.check_class_names(&v, first, t)?;
                names.extend(v);
            }
        }
        first += rows;
    }
    let (targets, labels) = match kind {
        TargetKind::Real => (Targets::Real(real), None),
        TargetKind::Classes => {
            let (ids, labels) = classes_of(&numbers, &names).map_err(|e| table.bad(e))?;
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
    Ok(ParquetData {
        dataset: Dataset::new(x, p, targets)?,
        header: table.names.clone(),
        target_column: t,
        labels,
    })
}

/// A classifier's target, numbered: `numbers` when `names` is empty (a numeric column),
/// else `names` (a text column; a column is one or the other in every row group). Sorted
/// as a CSV's labels are: numbers as numbers, text numerically when every name is a
/// number, else as text. Returns each value's class id and the class names.
/// Written once, so that [`read`] (every row) and [`open`] (the distinct values) number
/// the same file's classes alike.
///
/// # Errors
/// A message naming a label that is a number but not a whole one (a real-valued target).
fn classes_of(
    numbers: &[f32],
    names: &[String],
) -> std::result::Result<(Vec<u32>, Vec<String>), String> {
    let (ids, labels) = match names.is_empty() {
        true => class_map_numbers(numbers),
        false => class_map(names),
    };
    whole_if_numbers(&labels)?;
    Ok((ids, labels))
}

/// The feature rows of a Parquet file for a model trained on `p` features, a row group at
/// a time (row-major): the columns named in `skip` (the training file's target and
/// weights, by name; or by index when the file has `p + skip.len()` columns) are skipped.
/// Returns the rows.
///
/// # Errors
/// As [`read`]; [`Error::BadFile`] naming both counts when the file's feature columns
/// are not `p`; `f`'s errors.
pub fn for_each_features<'n>(
    path: impl AsRef<Path>,
    features: impl Into<FeatureColumns<'n>>,
    skip: &[Column],
    mut f: impl FnMut(&[f32]) -> Result<()>,
) -> Result<usize> {
    let features = features.into();
    let p = features.p;
    let table = Table::open(path.as_ref())?;
    let cols = table.cols();
    let training_layout = cols == p + skip.len();
    let skipped: Vec<usize> = skip
        .iter()
        .filter_map(|c| match c {
            Column::Name(name) => table.names.iter().position(|n| n == name),
            &Column::Index(i) if training_layout && i < cols => Some(i),
            Column::Index(_) => None,
        })
        .collect();
    // By name when the model knows its features' names (see `FeatureColumns`).
    let features: Vec<usize> = match features
        .locate(Some(&table.names), &skipped)
        .map_err(|e| table.bad(e))?
    {
        Some(at) => at,
        None => (0..cols).filter(|j| !skipped.contains(j)).collect(),
    };
    if features.len() != p {
        return Err(table.bad(format!(
            "{} feature columns, but the model was trained on {p} feature columns",
            features.len()
        )));
    }
    let mut first = 0;
    for g in 0..table.row_groups() {
        let rows = table.group_rows(g);
        let batch = table.rows_of(g, &features, first, "features")?;
        if rows > 0 {
            f(&batch)?;
        }
        first += rows;
    }
    if first == 0 {
        return Err(table.bad("no rows".into()));
    }
    Ok(first)
}

/// Every row group of a Parquet file as row-major numbers of all its columns, in order:
/// what [`super::convert`] writes elsewhere. Text columns are refused.
///
/// # Errors
/// As [`Table::column`]; `f`'s errors.
pub fn for_each_row_group(
    table: &Table,
    mut f: impl FnMut(&[f32], usize) -> Result<()>,
) -> Result<()> {
    let columns: Vec<usize> = (0..table.cols()).collect();
    let mut first = 0;
    for g in 0..table.row_groups() {
        let rows = table.group_rows(g);
        let batch = table.rows_of(g, &columns, first, "the columns of an array")?;
        f(&batch, rows)?;
        first += rows;
    }
    Ok(())
}

/// A Parquet file read in place: row groups decoded as batches ask for their rows (the
/// last ones kept, up to 512 MiB), so that a file larger than memory trains — in windowed
/// order (`train --stream` picks it), whose windows of neighbouring rows fall in a few row
/// groups.
/// A classifier's classes are found by one pass over the target column when it is opened;
/// a bad value is an error when its row group is read.
pub struct ParquetStream {
    table: Table,
    features: Vec<usize>,
    /// First row of each row group, and the row count last.
    starts: Vec<usize>,
    classes: Option<ClassIds>,
    /// The target's column.
    pub target_column: usize,
    /// Classifiers: the name of each class.
    pub labels: Option<Vec<String>>,
    /// The row groups decoded last, most recent last.
    cache: std::sync::Mutex<Vec<(usize, std::sync::Arc<Group>)>>,
}

impl std::fmt::Debug for ParquetStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetStream")
            .field("table", &self.table)
            .field("target_column", &self.target_column)
            .finish_non_exhaustive()
    }
}

/// How a target value becomes a class id: sorted distinct numbers, or sorted names.
enum ClassIds {
    Numbers(Vec<f32>),
    Names(std::collections::HashMap<String, u32>),
}

/// One decoded row group: its rows' features (row-major) and targets.
struct Group {
    x: Vec<f32>,
    real: Vec<f32>,
    classes: Vec<u32>,
}

/// Bytes of decoded row groups a [`ParquetStream`] keeps (at least two groups): more than
/// a window of the windowed order (64 chunks of 4 MiB), so that a window's batches decode
/// each of its row groups once.
const CACHE_BYTES: usize = 512 << 20;

/// Opens a Parquet file for streaming; `target` is the target column (`None`: the last).
///
/// # Errors
/// As [`read`], but a bad feature value is found only when its row group is read.
pub fn open(
    path: impl AsRef<Path>,
    target: Option<&Column>,
    kind: TargetKind,
) -> Result<ParquetStream> {
    let (table, t) = Table::dataset(path.as_ref(), target)?;
    let cols = table.cols();
    let mut starts = vec![0];
    for g in 0..table.row_groups() {
        starts.push(starts[g] + table.group_rows(g));
    }
    let (classes, labels) = match kind {
        TargetKind::Real => (None, None),
        TargetKind::Classes => {
            // One pass over the target column: its distinct values, ordered as `read`
            // orders them.
            let (mut numbers, mut names) = (Vec::new(), std::collections::BTreeSet::new());
            for (g, &first) in starts.iter().enumerate().take(table.row_groups()) {
                match table.column(g, t, first)? {
                    Values::Numbers(v) => {
                        numbers.extend(v.into_iter().map(|v| v + 0.0));
                        numbers.sort_by(f32::total_cmp);
                        numbers.dedup();
                    }
                    Values::Text(v) => {
                        table.check_class_names(&v, first, t)?;
                        names.extend(v);
                    }
                }
            }
            // The distinct values, numbered as `read` numbers every row's.
            let distinct: Vec<String> = names.into_iter().collect();
            let (ids, sorted) = classes_of(&numbers, &distinct).map_err(|e| table.bad(e))?;
            if distinct.is_empty() {
                (Some(ClassIds::Numbers(numbers)), Some(sorted))
            } else {
                // Every distinct name's class (names of one number share one).
                let ids = distinct.into_iter().zip(ids).collect();
                (Some(ClassIds::Names(ids)), Some(sorted))
            }
        }
    };
    Ok(ParquetStream {
        features: (0..cols).filter(|&j| j != t).collect(),
        table,
        starts,
        classes,
        target_column: t,
        labels,
        cache: std::sync::Mutex::new(Vec::new()),
    })
}

impl ParquetStream {
    /// Row group `g`, decoded (or from the cache).
    fn group(&self, g: usize) -> Result<std::sync::Arc<Group>> {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(i) = cache.iter().position(|(k, _)| *k == g) {
            let hit = cache.remove(i);
            let group = hit.1.clone();
            cache.push(hit);
            return Ok(group);
        }
        let first = self.starts[g];
        let x = self.table.rows_of(g, &self.features, first, "features")?;
        let t = self.target_column;
        let (mut real, mut classes) = (Vec::new(), Vec::new());
        match (&self.classes, self.table.column(g, t, first)?) {
            (None, Values::Numbers(v)) => real = v,
            (None, Values::Text(_)) => {
                return Err(self.table.bad(format!(
                    "column {} holds text, but a regression target must be numbers",
                    self.table.column_name(t)
                )));
            }
            (Some(ClassIds::Numbers(sorted)), Values::Numbers(v)) => {
                classes = v
                    .iter()
                    .map(|&v| sorted.partition_point(|&d| d < v + 0.0) as u32)
                    .collect();
            }
            (Some(ClassIds::Names(ids)), Values::Text(v)) => {
                classes = v
                    .iter()
                    .map(|n| ids.get(n).copied())
                    .collect::<Option<_>>()
                    .ok_or_else(|| self.table.bad("a class name not seen when the file was opened: the file changed while reading".into()))?;
            }
            _ => {
                return Err(self
                    .table
                    .bad("the target column changed type while reading".into()));
            }
        }
        let group = std::sync::Arc::new(Group { x, real, classes });
        let bytes = |c: &[(usize, std::sync::Arc<Group>)]| -> usize {
            c.iter()
                .map(|(_, g)| 4 * (g.x.len() + g.real.len() + g.classes.len()))
                .sum()
        };
        while cache.len() >= 2 && bytes(&cache) + 4 * group.x.len() > CACHE_BYTES {
            cache.remove(0);
        }
        cache.push((g, group.clone()));
        Ok(group)
    }
}

impl crate::data::RowSource for ParquetStream {
    fn n(&self) -> usize {
        self.table.n
    }
    fn p(&self) -> usize {
        self.features.len()
    }
    fn classes(&self) -> Option<usize> {
        self.labels.as_ref().map(Vec::len)
    }
    fn gather(
        &self,
        rows: &[u32],
        x: &mut [f32],
        mut targets: crate::data::RowTargets<'_>,
    ) -> Result<()> {
        use crate::data::RowTargets;
        let p = self.features.len();
        crate::data::check_gather(self.table.n, p, rows, x, &targets)?;
        match (&self.classes, &targets) {
            (None, RowTargets::Real(_)) | (Some(_), RowTargets::Classes(_)) => {}
            _ => {
                return Err(Error::ShapeMismatch {
                    what: "targets",
                    expected: self.describe_targets(),
                    got: "the other kind".into(),
                });
            }
        }
        let mut held: Option<(usize, std::sync::Arc<Group>)> = None;
        for (i, &r) in rows.iter().enumerate() {
            let r = r as usize;
            let g = self.starts.partition_point(|&s| s <= r) - 1;
            let group = match &held {
                Some((k, group)) if *k == g => group.clone(),
                _ => {
                    let group = self.group(g)?;
                    held = Some((g, group.clone()));
                    group
                }
            };
            let local = r - self.starts[g];
            x[i * p..(i + 1) * p].copy_from_slice(&group.x[local * p..(local + 1) * p]);
            match &mut targets {
                RowTargets::Real(y) => y[i] = group.real[local],
                RowTargets::Classes(y) => y[i] = group.classes[local],
            }
        }
        Ok(())
    }
}
