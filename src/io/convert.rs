//! CSV ↔ `.npy`, streamed: the way a CSV file larger than memory gets into training, and
//! an array back into text.
//!
//! A CSV file must be parsed to be read, so it cannot be read in place or by row index;
//! a `.npy` file can (memory-mapped: [`super::npy::open`], what `gradflow train --stream`
//! and every rank of an MPI job read). [`csv_to_npy`] converts one into the other in two
//! passes over the file, holding one window of it (16 MB of text, parsed on every core)
//! and the set of class names at a time: the first checks every cell and counts the rows,
//! the second writes the array, atomically. [`npy_to_csv`] goes the other way.

use std::collections::BTreeSet;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::csv::{Column, Table};
use super::csv_par::{CHUNK_BYTES, Role};
use super::{io_error, write_atomic_with};
use crate::error::{Error, Result};

/// What [`csv_to_npy`] wrote: an `n × (p + 1)` array of `<f4`, the target last.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    /// Data rows.
    pub rows: usize,
    /// Feature columns (the array has one more: the target).
    pub features: usize,
    /// The CSV's header, when it had one.
    pub header: Option<Vec<String>>,
    /// The target's column in the CSV file.
    pub target_column: usize,
    /// Class names, when the target held names that are not numbers: class `i` is
    /// written as `i` and named `labels[i]` (sorted as [`super::csv::read`] sorts them).
    pub labels: Option<Vec<String>>,
}

/// Converts the CSV file `csv` into the 2-D `<f4` `.npy` file `npy`: features in their
/// order, then the target (`target`, or the last column). A target of numbers is written
/// as it is (real values, or whole-number class labels); a target of names becomes class
/// ids in sorted order, the names returned. The header is detected as
/// [`super::csv::read`] does.
///
/// ```
/// use gradflow::io::convert::csv_to_npy;
/// use gradflow::io::{npy, TargetKind};
/// let dir = std::env::temp_dir();
/// let (csv, out) = (dir.join("gradflow-doc-convert.csv"), dir.join("gradflow-doc-convert.npy"));
/// std::fs::write(&csv, "a,kind,b\n1,dog,2\n3,cat,4\n5,dog,6\n")?;
/// let done = csv_to_npy(&csv, &out, Some(&gradflow::io::Column::Name("kind".into())))?;
/// assert_eq!((done.rows, done.features), (3, 2));
/// assert_eq!(done.labels, Some(vec!["cat".to_string(), "dog".into()]));
/// let data = npy::read(&out, None, TargetKind::Classes)?; // the target is last now
/// assert_eq!(data.dataset.features(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`super::csv::read`] (file, line, column and value of a bad cell); [`Error::Io`]
/// for the output, which is left as it was.
pub fn csv_to_npy(csv: &Path, npy: &Path, target: Option<&Column>) -> Result<Converted> {
    csv_to_npy_with(csv, npy, target, None)
}

/// [`csv_to_npy`] with the header given: `Some(true)` the first row names the columns,
/// `Some(false)` it is data, `None` detected (a non-numeric cell over a numeric one).
///
/// # Errors
/// As [`csv_to_npy`].
pub fn csv_to_npy_with(
    csv: &Path,
    npy: &Path,
    target: Option<&Column>,
    header: Option<bool>,
) -> Result<Converted> {
    let table = Table::open(csv, header)?;
    table.check_columns()?;
    table.check_names()?;
    let cols = table.cols;
    let t = table.resolve(target, "target")?;
    let roles = |target: Role| -> Vec<Role> {
        (0..cols)
            .map(|j| if j == t { target } else { Role::Feature })
            .collect()
    };
    // Pass 1: every cell checked, the rows counted. A target of numbers is kept; at a
    // target that is not one, the pass starts over reading every target as a name.
    let mut rows = 0usize;
    let numbers = table.windows(&roles(Role::Real), WINDOW_BYTES, CHUNK_BYTES, |w| {
        rows += w.rows;
        Ok(())
    });
    let labels = match numbers {
        Ok(()) => None,
        Err(e) if is_target_fault(&e, &table, t) => {
            let mut names = BTreeSet::new();
            rows = 0;
            table.windows(&roles(Role::Class), WINDOW_BYTES, CHUNK_BYTES, |w| {
                rows += w.rows;
                names.extend(w.class_names);
                Ok(())
            })?;
            // Sorted as the reader sorts a target that is not all numbers: as strings.
            Some(names.into_iter().collect::<Vec<String>>())
        }
        Err(e) => return Err(e),
    };
    if rows == 0 {
        return Err(table.bad("no data rows after the header".into()));
    }
    // Pass 2: the array, features then the target, written to a temporary file and
    // renamed over `npy`.
    let role = if labels.is_some() {
        Role::Class
    } else {
        Role::Real
    };
    write_atomic_with(npy, |file| {
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let io = |e: std::io::Error| io_error(npy, &e);
        out.write_all(&super::npy::header_f32(rows, cols))
            .map_err(io)?;
        let p = cols - 1;
        let mut bytes = Vec::new();
        table.windows(&roles(role), WINDOW_BYTES, CHUNK_BYTES, |w| {
            // The window's class ids (numbered by first appearance) as sorted ids.
            let ids: Vec<f32> = match &labels {
                Some(all) => w
                    .class_names
                    .iter()
                    .map(|n| all.binary_search(n).map(|i| i as f32))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|_| table.bad("the file changed while converting".into()))?,
                None => Vec::new(),
            };
            bytes.clear();
            for (i, row) in w.x.chunks_exact(p).enumerate() {
                let y = match labels {
                    Some(_) => ids[w.class_ids[i] as usize],
                    None => w.real[i],
                };
                row.iter()
                    .chain([&y])
                    .for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
            }
            out.write_all(&bytes).map_err(io)
        })?;
        out.flush().map_err(io)
    })?;
    Ok(Converted {
        rows,
        features: cols - 1,
        header: table.header.clone(),
        target_column: t,
        labels,
    })
}

/// Whether `e` is a target cell that is not a number (a target of names, then).
fn is_target_fault(e: &Error, table: &Table<'_>, t: usize) -> bool {
    let column = format!("column {}:", table.column_name(t));
    matches!(e, Error::BadFile { reason, .. } if reason.contains(&column) && reason.contains("is not a"))
}

/// Converts the 2-D `.npy` file `npy` (any dtype and order [`super::npy::read`] takes)
/// into the CSV file `csv`: a header `c0,c1,…` and every row, values in their shortest
/// round-trip form, a batch of rows at a time, written atomically. Returns the rows and
/// columns.
///
/// ```
/// use gradflow::io::convert::{csv_to_npy, npy_to_csv};
/// let dir = std::env::temp_dir();
/// let (csv, npy, back) = (dir.join("gradflow-doc-rt.csv"), dir.join("gradflow-doc-rt.npy"), dir.join("gradflow-doc-rt2.csv"));
/// std::fs::write(&csv, "a,b,y\n1.5,2,0\n3,-4.25,1\n")?;
/// csv_to_npy(&csv, &npy, None)?;
/// assert_eq!(npy_to_csv(&npy, &back)?, (2, 3));
/// assert_eq!(std::fs::read_to_string(&back)?, "c0,c1,c2\n1.5,2.0,0.0\n3.0,-4.25,1.0\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`super::npy::read`] (a non-finite value with its row and column); [`Error::Io`]
/// for the output, which is left as it was.
pub fn npy_to_csv(npy: &Path, csv: &Path) -> Result<(usize, usize)> {
    let file = crate::data::MappedFile::npy_table(npy)?;
    let (n, cols) = file.shape();
    let columns: Vec<usize> = (0..cols).collect();
    write_atomic_with(csv, |f| {
        let mut out = BufWriter::with_capacity(1 << 20, f);
        let io = |e: std::io::Error| io_error(csv, &e);
        let head: Vec<String> = (0..cols).map(|c| format!("c{c}")).collect();
        writeln!(out, "{}", head.join(",")).map_err(io)?;
        let (mut values, mut text) = (Vec::new(), Vec::new());
        let mut float = ryu::Buffer::new();
        for start in (0..n).step_by(BATCH_ROWS) {
            values.clear();
            text.clear();
            file.read_rows(start..(start + BATCH_ROWS).min(n), &columns, &mut values)
                .map_err(|e| match e {
                    Error::NonFinite { row, col, value, .. } => Error::BadFile {
                        path: npy.display().to_string(),
                        reason: format!(
                            "row {row}, column {col}: {value} is not a finite number (every value must be finite)"
                        ),
                    },
                    other => other,
                })?;
            csv_lines(&values, cols, &mut float, &mut text);
            out.write_all(&text).map_err(io)?;
        }
        out.flush().map_err(io)
    })?;
    Ok((n, cols))
}

/// Appends `values` (row-major, `cols` a row, all finite) as CSV lines: shortest
/// round-trip decimals.
fn csv_lines(values: &[f32], cols: usize, float: &mut ryu::Buffer, text: &mut Vec<u8>) {
    for row in values.chunks_exact(cols) {
        for (j, v) in row.iter().enumerate() {
            if j > 0 {
                text.push(b',');
            }
            text.extend_from_slice(float.format_finite(*v).as_bytes());
        }
        text.push(b'\n');
    }
}

/// Bytes of CSV text a window holds while converting (small: conversion is for files
/// larger than memory).
const WINDOW_BYTES: usize = 16 << 20;

/// Rows a batch of [`npy_to_csv`] holds.
const BATCH_ROWS: usize = 1 << 14;

/// Converts a Parquet file of numeric columns into the `.npy` file `npy` (`Some`) or the
/// CSV file `csv` (`None`: header the column names), a row group at a time, written
/// atomically. Returns the rows and columns. A text column (class names) is refused:
/// train on the Parquet file itself, which reads them.
///
/// # Errors
/// As [`super::parquet::Table::column`]; [`Error::Io`] for the output, left as it was.
#[cfg(feature = "parquet")]
pub fn parquet_to(parquet: &Path, out: &Path, to_npy: bool) -> Result<(usize, usize)> {
    let table = super::parquet::Table::open(parquet)?;
    let (n, cols) = (table.n, table.cols());
    write_atomic_with(out, |f| {
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let io = |e: std::io::Error| io_error(out, &e);
        if to_npy {
            w.write_all(&super::npy::header_f32(n, cols)).map_err(io)?;
        } else {
            writeln!(w, "{}", table.names.join(",")).map_err(io)?;
        }
        let mut bytes = Vec::new();
        let mut float = ryu::Buffer::new();
        super::parquet::for_each_row_group(&table, |values, _| {
            bytes.clear();
            if to_npy {
                values
                    .iter()
                    .for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
            } else {
                csv_lines(values, cols, &mut float, &mut bytes);
            }
            w.write_all(&bytes).map_err(io)
        })?;
        w.flush().map_err(io)
    })?;
    Ok((n, cols))
}
