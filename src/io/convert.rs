//! CSV → `.npy`, streamed: the way a CSV file larger than memory gets into training.
//!
//! A CSV file must be parsed to be read, so it cannot be read in place or by row index;
//! a `.npy` file can (memory-mapped: [`super::npy::open`], what `gradflow train --stream`
//! and every rank of an MPI job read). [`csv_to_npy`] converts one into the other in two
//! passes over the file, holding one row (and the set of class names) at a time: the
//! first checks every cell and counts the rows, the second writes the array, atomically.

use std::collections::BTreeSet;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::csv::{Column, Table, line_of};
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
    // Pass 1: every cell checked, the rows counted, the target's kind and names found.
    let table = Table::open(csv, None)?;
    let cols = table.cols;
    if cols < 2 {
        return Err(Error::BadFile {
            path: csv.display().to_string(),
            reason: format!(
                "{cols} column: a dataset needs at least 2 (one feature and the target)"
            ),
        });
    }
    let t = table.resolve(target, "target")?;
    let header = table.header.clone();
    let has_header = Some(header.is_some());
    // A target of numbers is kept; at its first name the pass starts over collecting
    // every target as a name (the numbers seen before are names too).
    let (rows, names) = match scan(table, t, None)? {
        (rows, None) => (rows, None),
        (_, Some(_)) => scan(Table::open(csv, has_header)?, t, Some(BTreeSet::new()))?,
    };
    // Names, sorted as the reader sorts a target that is not all numbers: as strings.
    let labels = names.map(|n| n.into_iter().collect::<Vec<String>>());
    // Pass 2: the array, written to a temporary file and renamed over `npy`.
    let mut table = Table::open(csv, has_header)?;
    let header_bytes = super::npy::header_f32(rows, cols);
    write_atomic_with(npy, |file| {
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let io = |e: std::io::Error| io_error(npy, &e);
        out.write_all(&header_bytes).map_err(io)?;
        let mut row = Vec::with_capacity(cols);
        while let Some(rec) = table.next()? {
            let line = line_of(&rec);
            row.clear();
            let mut y = 0f32;
            for (j, cell) in rec.iter().enumerate() {
                if j == t {
                    y =
                        match &labels {
                            None => table.number(cell, line, j)?,
                            Some(labels) => labels
                                .binary_search_by(|l| l.as_str().cmp(cell))
                                .map_err(|_| {
                                    table.bad(format!(
                                        "line {line}: the file changed while converting"
                                    ))
                                })? as f32,
                        };
                } else {
                    row.push(table.number(cell, line, j)?);
                }
            }
            row.push(y);
            for v in &row {
                out.write_all(&v.to_le_bytes()).map_err(io)?;
            }
        }
        out.flush().map_err(io)
    })?;
    Ok(Converted {
        rows,
        features: cols - 1,
        header,
        target_column: t,
        labels,
    })
}

/// Pass 1: checks every cell of the rows left in `table` and counts them; `names`
/// (`Some`) collects the target's distinct names. Without it, a target that is not a
/// number ends the pass early with `Some(empty set)`: the caller starts over with names.
fn scan(
    mut table: Table<'_>,
    t: usize,
    mut names: Option<BTreeSet<String>>,
) -> Result<(usize, Option<BTreeSet<String>>)> {
    let mut rows = 0usize;
    while let Some(rec) = table.next()? {
        let line = line_of(&rec);
        for (j, cell) in rec.iter().enumerate() {
            if j != t {
                table.number(cell, line, j)?;
                continue;
            }
            if cell.is_empty() {
                return Err(table.bad(format!(
                    "line {line}, column {}: empty target",
                    table.column_name(j)
                )));
            }
            match &mut names {
                Some(set) if !set.contains(cell) => {
                    set.insert(cell.to_string());
                }
                Some(_) => {}
                None if table.number(cell, line, j).is_err() => {
                    return Ok((rows, Some(BTreeSet::new())));
                }
                None => {}
            }
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(table.bad("no data rows after the header".into()));
    }
    Ok((rows, names))
}
