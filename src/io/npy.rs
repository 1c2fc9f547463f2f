//! A 2-D `.npy` matrix read whole into a [`Dataset`]: floats (`<f4`, `<f8`), integers
//! or booleans, in C or Fortran order (what `np.save(path, df.values)` writes for a
//! DataFrame: read column by column in blocks of rows, see [`MappedFile`]).
//!
//! One column is the target (the last unless given by index; a `.npy` file has no column
//! names), the others the features in order. For a classifier the target's distinct
//! values, which must be whole numbers, become classes `0..k` in increasing order, and
//! their printed values (`"0"`, `"3"`, …) the class names. Files larger than memory are
//! for streaming ([`MappedFile`]), not for this reader.

use std::path::Path;

use super::csv::{Column, TargetKind, class_map_numbers};
use crate::data::{Dataset, FileTargets, MappedFile, RowSource, RowTargets, Targets, zeroed};
use crate::error::{Error, Result};

/// A dataset read from a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyData {
    /// Features and targets.
    pub dataset: Dataset,
    /// The target's column, counted from 0.
    pub target_column: usize,
    /// Classifiers: the name of each class (its value as printed).
    pub labels: Option<Vec<String>>,
}

/// Reads a `.npy` file; `target` is the target column (`None`: the last).
///
/// # Example
/// ```
/// use gradflow::io::{npy, TargetKind};
/// # let path = std::env::temp_dir().join("gradflow-doc-npy.npy");
/// # let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
/// # let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }".to_string();
/// # while (10 + header.len() + 1) % 64 != 0 { header.push(' '); }
/// # header.push('\n');
/// # bytes.extend((header.len() as u16).to_le_bytes());
/// # bytes.extend(header.as_bytes());
/// # for v in [0.5f32, 3.0, 1.5, 0.0, 2.5, 3.0] { bytes.extend(v.to_le_bytes()); }
/// # std::fs::write(&path, bytes)?;
/// // A 3 × 2 array of f32: one feature, then a label column with values 3, 0, 3.
/// let data = npy::read(&path, None, TargetKind::Classes)?;
/// assert_eq!(data.dataset.features(), [0.5, 1.5, 2.5]);
/// assert_eq!(data.labels, Some(vec!["0".to_string(), "3".into()]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`MappedFile::npy`]; [`Error::BadFile`] for a column given by name, a target column
/// beyond the file's, a non-finite value (with its row and column), or a class label that
/// is not a whole number.
pub fn read(path: impl AsRef<Path>, target: Option<&Column>, kind: TargetKind) -> Result<NpyData> {
    let path = path.as_ref();
    let bad = |reason: String| Error::BadFile {
        path: path.display().to_string(),
        reason,
    };
    let (file, column) = map_with_target(path, target)?;
    let n = file.n();
    let rows: Vec<u32> = (0..u32::try_from(n).map_err(|_| {
        bad(format!(
            "{n} rows: more than this reader's {} (stream such files instead)",
            u32::MAX
        ))
    })?)
        .collect();
    let p = file.p();
    let mut x = zeroed(n * p, "the .npy file's features")?;
    let mut y = zeroed(n, "the .npy file's targets")?;
    file.gather(&rows, &mut x, RowTargets::Real(&mut y))
        .map_err(|e| match e {
            Error::NonFinite { row, col, value, .. } => bad(format!(
                "row {row}, column {col}: {value} is not a finite number (every value must be finite)"
            )),
            other => other,
        })?;
    let (targets, labels) = match kind {
        TargetKind::Real => (Targets::Real(y), None),
        TargetKind::Classes => {
            if let Some((row, v)) = y.iter().enumerate().find(|(_, v)| v.fract() != 0.0) {
                return Err(bad(format!(
                    "row {row}, column {column}: {v} is not a whole number, as a class label \
                     must be"
                )));
            }
            let (ids, labels) = class_map_numbers(&y);
            (
                Targets::Classes {
                    labels: ids,
                    classes: labels.len(),
                },
                Some(labels),
            )
        }
    };
    Ok(NpyData {
        dataset: Dataset::new(x, p, targets)?,
        target_column: column,
        labels,
    })
}

/// The shape (rows, columns) of a 2-D `.npy` array, from its header (the file is mapped,
/// not read).
///
/// # Errors
/// As [`for_each_features`] for a file that is not a 2-D numeric array.
pub fn shape(path: impl AsRef<Path>) -> Result<(usize, usize)> {
    Ok(MappedFile::npy_table(path.as_ref())?.shape())
}

/// What [`for_each_features`] read: the rows, and the column skipped as the training
/// file's target (when the array has one column more than the model's features).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureLayout {
    /// Rows.
    pub n: usize,
    /// The target column skipped, if any.
    pub skipped: Option<usize>,
}

/// Rows per batch of [`for_each_features`].
const BATCH_ROWS: usize = 1 << 16;

/// The feature rows of a `.npy` file for a model trained on `p` features, handed to `f`
/// in batches of 65,536 rows (row-major): predictions for a file of any size in the
/// memory of one batch. An array of `p` columns is all features; one of `p + 1` columns
/// is the training layout, whose target column — `target` (the training file's), or the
/// last — is skipped. Any dtype and order [`MappedFile::npy`] reads.
///
/// # Example
/// ```
/// use gradflow::io::npy;
/// # let path = std::env::temp_dir().join("gradflow-doc-npy-features.npy");
/// # let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
/// # let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }".to_string();
/// # while (10 + header.len() + 1) % 64 != 0 { header.push(' '); }
/// # header.push('\n');
/// # bytes.extend((header.len() as u16).to_le_bytes());
/// # bytes.extend(header.as_bytes());
/// # for v in [1f32, 2.0, 0.0, 3.0, 4.0, 1.0] { bytes.extend(v.to_le_bytes()); }
/// # std::fs::write(&path, bytes)?;
/// // Two rows of x0, x1, y: the model's two features, the target skipped.
/// let mut rows = Vec::new();
/// let layout = npy::for_each_features(&path, 2, None, |x| {
///     rows.extend_from_slice(x);
///     Ok(())
/// })?;
/// assert_eq!((layout.n, layout.skipped, rows), (2, Some(2), vec![1.0, 2.0, 3.0, 4.0]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`MappedFile::npy`]; [`Error::BadFile`] when the array has neither `p` nor `p + 1`
/// columns (both numbers named), or for a non-finite value (its row and column); `f`'s
/// errors.
pub fn for_each_features(
    path: impl AsRef<Path>,
    p: usize,
    target: Option<usize>,
    mut f: impl FnMut(&[f32]) -> Result<()>,
) -> Result<FeatureLayout> {
    let path = path.as_ref();
    let bad = |reason: String| Error::BadFile {
        path: path.display().to_string(),
        reason,
    };
    let file = MappedFile::npy_table(path)?;
    let (n, cols) = file.shape();
    let skipped = if cols == p {
        None
    } else if cols == p + 1 {
        Some(target.filter(|&t| t < cols).unwrap_or(cols - 1))
    } else {
        return Err(bad(format!(
            "the array has {cols} columns, but the model was trained on {p} feature columns \
             (give them alone, or with the target as in training: {} columns)",
            p + 1
        )));
    };
    let columns: Vec<usize> = (0..cols).filter(|&c| Some(c) != skipped).collect();
    let mut batch = Vec::new();
    for start in (0..n).step_by(BATCH_ROWS) {
        batch.clear();
        file.read_rows(start..(start + BATCH_ROWS).min(n), &columns, &mut batch)
            .map_err(|e| match e {
                Error::NonFinite { row, col, value, .. } => bad(format!(
                    "row {row}, column {col}: {value} is not a finite number (every value must be finite)"
                )),
                other => other,
            })?;
        f(&batch)?;
    }
    Ok(FeatureLayout { n, skipped })
}

/// Maps `path` with its target column: `target`, or the last.
fn map_with_target(path: &Path, target: Option<&Column>) -> Result<(MappedFile, usize)> {
    let bad = |reason: String| Error::BadFile {
        path: path.display().to_string(),
        reason,
    };
    // Opened once to learn the column count, then with the target column.
    let cols = MappedFile::npy(path, FileTargets::Real { column: 0 })?.p() + 1;
    let column = match target {
        None => cols - 1,
        Some(&Column::Index(i)) if i < cols => i,
        Some(&Column::Index(i)) => {
            return Err(bad(format!(
                "target column {i} does not exist: the array has {cols} columns, numbered 0 to {}",
                cols - 1
            )));
        }
        Some(Column::Name(name)) => {
            return Err(bad(format!(
                "target column \"{name}\": a .npy file has no column names; give the \
                 column's index (0 to {}) instead",
                cols - 1
            )));
        }
    };
    Ok((MappedFile::npy(path, FileTargets::Real { column })?, column))
}

/// A `.npy` file read in place: memory-mapped, each batch's rows read when it comes up,
/// so a file larger than memory trains (a distributed fit's ranks each read only the
/// rows of their parts). The classes of a classifier's target are found by one pass over
/// the file when it is opened; a non-finite feature is an error when its row is read.
///
/// ```
/// use gradflow::data::RowSource;
/// use gradflow::io::{npy, TargetKind};
/// # let path = std::env::temp_dir().join("gradflow-doc-npy-stream.npy");
/// # let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
/// # let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }".to_string();
/// # while (10 + header.len() + 1) % 64 != 0 { header.push(' '); }
/// # header.push('\n');
/// # bytes.extend((header.len() as u16).to_le_bytes());
/// # bytes.extend(header.as_bytes());
/// # for v in [0.5f32, 3.0, 1.5, 0.0, 2.5, 3.0] { bytes.extend(v.to_le_bytes()); }
/// # std::fs::write(&path, bytes)?;
/// // The file of `npy::read`'s example, streamed: labels 3, 0, 3 are classes 1, 0, 1.
/// let file = npy::open(&path, None, TargetKind::Classes)?;
/// assert_eq!((file.n(), file.p(), file.classes()), (3, 1, Some(2)));
/// assert_eq!(file.labels, Some(vec!["0".to_string(), "3".into()]));
/// let (mut x, mut y) = (vec![0.0; 2], vec![0; 2]);
/// file.gather(&[2, 1], &mut x, gradflow::data::RowTargets::Classes(&mut y))?;
/// assert_eq!((x, y), (vec![2.5, 1.5], vec![1, 0]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct NpyStream {
    file: MappedFile,
    /// A classifier's distinct target values, in increasing order: value `classes[i]` is
    /// class `i`.
    classes: Option<Vec<f32>>,
    /// The target's column, counted from 0.
    pub target_column: usize,
    /// Classifiers: the name of each class (its value as printed).
    pub labels: Option<Vec<String>>,
}

/// Opens a `.npy` file for streaming; `target` is the target column (`None`: the last).
///
/// # Errors
/// As [`read`], but a non-finite feature is found only when its row is read.
pub fn open(
    path: impl AsRef<Path>,
    target: Option<&Column>,
    kind: TargetKind,
) -> Result<NpyStream> {
    let path = path.as_ref();
    let (file, column) = map_with_target(path, target)?;
    let classes = match kind {
        TargetKind::Real => None,
        TargetKind::Classes => Some(target_values(&file, path, column)?),
    };
    let labels = classes
        .as_ref()
        .map(|c| c.iter().map(|v| v.to_string()).collect());
    Ok(NpyStream {
        file,
        classes,
        target_column: column,
        labels,
    })
}

/// The distinct values of the target column, in increasing order, read in blocks.
fn target_values(file: &MappedFile, path: &Path, column: usize) -> Result<Vec<f32>> {
    const BLOCK: usize = 1 << 16;
    let (n, p) = (file.n(), file.p());
    let mut seen = std::collections::BTreeSet::new();
    let (mut x, mut y) = (vec![0f32; BLOCK * p], vec![0f32; BLOCK]);
    for start in (0..n).step_by(BLOCK) {
        let len = BLOCK.min(n - start);
        let rows: Vec<u32> = (start as u32..(start + len) as u32).collect();
        file.gather(&rows, &mut x[..len * p], RowTargets::Real(&mut y[..len]))
            .map_err(|e| finite_error(e, path))?;
        for (i, &v) in y[..len].iter().enumerate() {
            if v.fract() != 0.0 {
                return Err(Error::BadFile {
                    path: path.display().to_string(),
                    reason: format!(
                        "row {}, column {column}: {v} is not a whole number, as a class label \
                         must be",
                        start + i
                    ),
                });
            }
            // -0 and 0 are one class; whole numbers order as their bits' total order.
            seen.insert(OrderedF32(v + 0.0));
        }
    }
    Ok(seen.into_iter().map(|v| v.0).collect())
}

/// An f32 with a total order, for the set of class values (never NaN here).
#[derive(Debug, Clone, Copy, PartialEq)]
struct OrderedF32(f32);

impl Eq for OrderedF32 {}

impl PartialOrd for OrderedF32 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderedF32 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// A mapped file's non-finite value as the file's error, with its row and column.
fn finite_error(e: Error, path: &Path) -> Error {
    match e {
        Error::NonFinite {
            row, col, value, ..
        } => Error::BadFile {
            path: path.display().to_string(),
            reason: format!(
                "row {row}, column {col}: {value} is not a finite number (every value must be finite)"
            ),
        },
        other => other,
    }
}

impl RowSource for NpyStream {
    fn n(&self) -> usize {
        self.file.n()
    }

    fn p(&self) -> usize {
        self.file.p()
    }

    fn classes(&self) -> Option<usize> {
        self.classes.as_ref().map(Vec::len)
    }

    fn gather(&self, rows: &[u32], x: &mut [f32], targets: RowTargets<'_>) -> Result<()> {
        let path = || self.file.path();
        match (&self.classes, targets) {
            (None, targets) => self.file.gather(rows, x, targets),
            (Some(classes), RowTargets::Classes(labels)) => {
                let mut y = vec![0f32; rows.len()];
                self.file
                    .gather(rows, x, RowTargets::Real(&mut y))
                    .map_err(|e| finite_error(e, path()))?;
                for ((label, v), &row) in labels.iter_mut().zip(&y).zip(rows) {
                    let class = classes.binary_search_by(|c| c.total_cmp(&(v + 0.0)));
                    *label = class.map_err(|_| Error::BadFile {
                        path: self.file.path().display().to_string(),
                        reason: format!(
                            "row {row}: label {v} was not in the file when it was opened \
                             (the file changed while training)"
                        ),
                    })? as u32;
                }
                Ok(())
            }
            (Some(_), RowTargets::Real(_)) => Err(Error::ShapeMismatch {
                what: "gathered targets",
                expected: "class labels (the file was opened for a classifier)".into(),
                got: "a buffer for real values".into(),
            }),
        }
    }
}

/// The header of a version 1.0 `.npy` file holding an `n × cols` C-order `<f4` array,
/// padded to 64 bytes as NumPy pads it: write it, then the `n · cols` values row by row
/// as little-endian f32 (how [`super::convert::csv_to_npy`] writes a file it streams).
///
/// ```
/// use gradflow::io::npy;
/// let path = std::env::temp_dir().join("gradflow-doc-header.npy");
/// let mut bytes = npy::header_f32(2, 2);
/// assert_eq!(bytes.len() % 64, 0);
/// for v in [1.0f32, 0.0, 2.0, 1.0] {
///     bytes.extend(v.to_le_bytes());
/// }
/// std::fs::write(&path, bytes)?;
/// let data = npy::read(&path, None, gradflow::io::TargetKind::Real)?;
/// assert_eq!(data.dataset.features(), [1.0, 2.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn header_f32(n: usize, cols: usize) -> Vec<u8> {
    header_f32_sized(n, cols, None)
}

/// As [`header_f32`], padded to exactly `len` bytes when given (a multiple of 64 with
/// room for the dictionary): a header written first and rewritten once the row count is
/// known.
pub(crate) fn header_f32_sized(n: usize, cols: usize, len: Option<usize>) -> Vec<u8> {
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({n}, {cols}), }}");
    while (10 + dict.len() + 1) % 64 != 0 || len.is_some_and(|l| 10 + dict.len() + 1 < l) {
        dict.push(' ');
    }
    dict.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((dict.len() as u16).to_le_bytes());
    bytes.extend(dict.as_bytes());
    bytes
}
