//! A 2-D `.npy` matrix (`<f4` or `<f8`, C order) read whole into a [`Dataset`].
//!
//! One column is the target (the last unless given by index; a `.npy` file has no column
//! names), the others the features in order. For a classifier the target's distinct
//! values, which must be whole numbers, become classes `0..k` in increasing order, and
//! their printed values (`"0"`, `"3"`, …) the class names. Files larger than memory are
//! for streaming ([`MappedFile`]), not for this reader.

use std::path::Path;

use super::csv::{Column, TargetKind, class_map};
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
    let file = MappedFile::npy(path, FileTargets::Real { column })?;
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
            // -0 and 0 are one class.
            let names: Vec<String> = y.iter().map(|&v| (v + 0.0).to_string()).collect();
            let (ids, labels) = class_map(&names);
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
