//! Files in and out: CSV and `.npy` data, saved models, predictions.
//!
//! - [`csv`]: a CSV file → [`Dataset`](crate::data::Dataset) (header detection, target
//!   column by name or index, class names mapped to `0..k`), and predictions → CSV;
//! - [`npy`]: a 2-D `.npy` matrix (floats, integers or booleans; C or Fortran order) →
//!   `Dataset`, the target column as for CSV;
//! - [`model`]: the versioned JSON model file ([`SavedModel`]), written atomically;
//! - [`predictions`]: predictions written batch by batch, as CSV or `.npy`.
//!
//! Every error names the file, and where it applies the line, column and value found.

pub mod convert;
pub mod csv;
mod csv_par;
pub mod model;
pub mod npy;
#[cfg(feature = "parquet")]
pub mod parquet;
pub mod predictions;

pub use self::csv::{Column, CsvData, CsvOptions, TargetKind};
pub use self::model::{ModelKind, Prediction, SavedModel, TrainSummary};
pub use self::predictions::{OutputFormat, PredictionWriter};

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// An [`Error::Io`] for `path`.
pub(crate) fn io_error(path: &Path, e: &std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Writes `bytes` to `path` so that a crash never leaves a half-written file: the bytes go
/// to a temporary file in the same directory (same file system, so the rename is atomic),
/// which is flushed to disk (`fsync`) and then renamed over `path`. On any failure the
/// temporary file is removed and `path` is untouched.
///
/// ```
/// let path = std::env::temp_dir().join("gradflow-doc-atomic.txt");
/// gradflow::io::write_atomic(&path, b"all or nothing")?;
/// assert_eq!(std::fs::read(&path)?, b"all or nothing");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::Io`] naming the file when the directory is not writable or the disk is full.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes).map_err(|e| io_error(path, &e)))
}

/// As [`write_atomic`], with the content written by `write` into the temporary file (a
/// file too large to build in memory, written as it is read). An error of `write` is
/// returned as it is; the temporary file is removed and `path` left as it was.
///
/// ```
/// use std::io::Write;
/// let path = std::env::temp_dir().join("gradflow-doc-atomic-with.txt");
/// gradflow::io::write_atomic_with(&path, |f| {
///     (0..3).try_for_each(|i| writeln!(f, "line {i}"))
///         .map_err(|e| gradflow::Error::Io { path: "doc".into(), message: e.to_string() })
/// })?;
/// assert_eq!(std::fs::read_to_string(&path)?, "line 0\nline 1\nline 2\n");
/// let failed = gradflow::io::write_atomic_with(&path, |_| Err(gradflow::Error::Io {
///     path: "doc".into(), message: "disk full".into() }));
/// assert!(failed.is_err());
/// assert_eq!(std::fs::read_to_string(&path)?, "line 0\nline 1\nline 2\n"); // untouched
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`write_atomic`]; `write`'s errors.
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::Io {
            path: path.display().to_string(),
            message: "not a file name".into(),
        })?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| io_error(path, &e))?;
        write(&mut f)?;
        f.sync_all().map_err(|e| io_error(path, &e))?;
        fs::rename(&tmp, path).map_err(|e| io_error(path, &e))
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // Make the rename itself durable; not every platform can open a directory, and the
    // file is complete either way, so a failure here is not an error.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["out.txt"], "a temporary file was left behind");
    }

    #[test]
    fn failed_atomic_write_names_the_file_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("out.txt");
        let err = write_atomic(&path, b"x").unwrap_err();
        assert!(err.to_string().contains("missing-dir"), "{err}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
