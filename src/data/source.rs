//! Row sources for streaming: where a scheduler reads the rows of a batch from.
//!
//! A [`RowSource`] copies any list of rows, in the order given, into caller-owned
//! buffers. Three kinds exist:
//!
//! | source | random access | holds in memory |
//! |---|---|---|
//! | [`Dataset`] | free | everything |
//! | [`Synthetic`] (a generator) | free: every row has its own random stream | nothing |
//! | [`MappedFile`] (`.npy` or raw `f32`, memory-mapped) | costly once the file passes RAM | what the page cache keeps |
//!
//! For the first two, a streaming epoch can read a full random permutation, exactly the
//! order a resident or CPU run uses ([`super::epoch_plan`]). A file larger than RAM cannot
//! afford random reads: [`Shuffle::Windowed`](super::Shuffle) gives the documented out-of-core
//! order instead.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::{Dataset, HostTargets, RowTargets, Synthetic, Targets, npy_header, zeroed};
use crate::error::{Error, Result};
use memmap2::Mmap;

/// Anything a scheduler can gather batch rows from.
pub trait RowSource: Send + Sync {
    /// Rows n.
    fn n(&self) -> usize;
    /// Feature columns p.
    fn p(&self) -> usize;
    /// Classes k for labelled data, `None` for real targets.
    fn classes(&self) -> Option<usize>;
    /// Copies rows `rows[i]` into row `i` of `x` (`rows.len() × p`) and of `targets`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for buffers of the wrong size or a row ≥ n; the source's
    /// own errors for bad content (a non-finite value, a label out of range, an I/O fault).
    fn gather(&self, rows: &[u32], x: &mut [f32], targets: RowTargets<'_>) -> Result<()>;

    /// The whole source as an in-memory [`Dataset`], when it is one: the trainer then
    /// reads it in place instead of gathering batches.
    fn in_memory(&self) -> Option<&Dataset> {
        None
    }

    /// What kind of target each row has.
    fn target_kind(&self) -> TargetKind {
        match self.classes() {
            None => TargetKind::Real,
            Some(_) => TargetKind::Labels,
        }
    }

    /// The targets in words, for messages (`class labels with 3 classes`).
    fn describe_targets(&self) -> String {
        match self.classes() {
            None => "real-valued targets".to_string(),
            Some(classes) => format!("class labels with {classes} classes"),
        }
    }
}

/// What a source's targets are, without the values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// One real value per row.
    Real,
    /// One class label per row.
    Labels,
}

impl TargetKind {
    /// The kind of `targets`.
    pub fn of(targets: &Targets) -> Self {
        match targets {
            Targets::Real(_) => TargetKind::Real,
            Targets::Classes { .. } => TargetKind::Labels,
        }
    }
}

/// One batch's targets, read-only: what a gathered batch hands to an engine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BatchTargets<'a> {
    /// Real values.
    Real(&'a [f32]),
    /// Class labels.
    Labels(&'a [u32]),
}

impl BatchTargets<'_> {
    /// Rows.
    pub fn len(&self) -> usize {
        match self {
            BatchTargets::Real(y) => y.len(),
            BatchTargets::Labels(l) => l.len(),
        }
    }

    /// `true` for no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Real or labels.
    pub fn kind(&self) -> TargetKind {
        match self {
            BatchTargets::Real(_) => TargetKind::Real,
            BatchTargets::Labels(_) => TargetKind::Labels,
        }
    }
}

impl Dataset {
    /// Gathers every row of `source` into memory, in stored order (to train resident on
    /// a device, or to keep a generator's rows).
    ///
    /// ```
    /// use gradflow::data::{Dataset, Synthetic};
    /// let generator = Synthetic::blobs(100, 3, 4).seed(9);
    /// assert_eq!(Dataset::from_source(&generator)?, generator.dataset()?);
    /// # Ok::<(), gradflow::Error>(())
    /// ```
    ///
    /// # Errors
    /// The source's own errors (a bad row in a file); [`Error::InvalidParameter`] when
    /// n × p values do not fit in memory's address space, [`Error::OutOfMemory`] when the
    /// allocator cannot give them.
    pub fn from_source(source: &(impl RowSource + ?Sized)) -> Result<Dataset> {
        if let Some(data) = source.in_memory() {
            return Ok(data.clone());
        }
        let (n, p) = (source.n(), source.p());
        let len = n
            .checked_mul(p)
            .ok_or_else(|| Error::param("n × p", format!("{n} × {p}"), "overflows usize"))?;
        let mut x = zeroed(len, "gathered features")?;
        let mut targets = match source.classes() {
            None => Targets::Real(zeroed(n, "gathered targets")?),
            Some(classes) => Targets::Classes {
                labels: zeroed(n, "gathered labels")?,
                classes,
            },
        };
        // Blocks of rows keep the index list small.
        const BLOCK: usize = 1 << 16;
        for start in (0..n).step_by(BLOCK) {
            let end = (start + BLOCK).min(n);
            let rows: Vec<u32> = (start as u32..end as u32).collect();
            let out = match &mut targets {
                Targets::Real(y) => RowTargets::Real(&mut y[start..end]),
                Targets::Classes { labels, .. } => RowTargets::Classes(&mut labels[start..end]),
            };
            source.gather(&rows, &mut x[start * p..end * p], out)?;
        }
        Dataset::new(x, p, targets)
    }
}

/// Reads every row of `source` in stored order, `block` rows at a time, and hands each
/// block's features (`rows × p`) and targets to `f`: one pass over a source that may not
/// fit in memory, with one block's buffers.
/// Only blocks `blocks` are read (`0..` every one): a rank's contiguous share.
pub(crate) fn scan_blocks(
    source: &(impl RowSource + ?Sized),
    block: usize,
    blocks: std::ops::Range<usize>,
    mut f: impl FnMut(&[f32], &HostTargets),
) -> Result<()> {
    let (n, p) = (source.n(), source.p());
    let mut x = vec![0f32; block * p];
    let mut targets = HostTargets::empty(source.target_kind());
    let rows = (blocks.start * block).min(n)..(blocks.end.saturating_mul(block)).min(n);
    for start in rows.step_by(block) {
        let end = (start + block).min(n);
        let rows: Vec<u32> = (start as u32..end as u32).collect();
        let len = end - start;
        source.gather(&rows, &mut x[..len * p], targets.rows_mut(len))?;
        f(&x[..len * p], &targets);
    }
    Ok(())
}

pub(crate) fn check_gather(
    n: usize,
    p: usize,
    rows: &[u32],
    x: &[f32],
    targets: &RowTargets<'_>,
) -> Result<()> {
    let len = match targets {
        RowTargets::Real(y) => y.len(),
        RowTargets::Classes(y) => y.len(),
    };
    if x.len() != rows.len() * p || len != rows.len() {
        return Err(Error::ShapeMismatch {
            what: "gather buffers",
            expected: format!(
                "{} rows × {p} features and {} targets",
                rows.len(),
                rows.len()
            ),
            got: format!("{} feature values and {len} targets", x.len()),
        });
    }
    if let Some(&bad) = rows.iter().find(|&&r| r as usize >= n) {
        return Err(Error::ShapeMismatch {
            what: "gather row",
            expected: format!("a row below n = {n}"),
            got: bad.to_string(),
        });
    }
    Ok(())
}

fn target_kind_mismatch(classes: Option<usize>) -> Error {
    Error::ShapeMismatch {
        what: "gather targets",
        expected: match classes {
            None => "a real-valued buffer".into(),
            Some(k) => format!("a label buffer ({k} classes)"),
        },
        got: "the other kind".into(),
    }
}

impl RowSource for Dataset {
    fn n(&self) -> usize {
        Dataset::n(self)
    }
    fn p(&self) -> usize {
        Dataset::p(self)
    }
    fn classes(&self) -> Option<usize> {
        Dataset::classes(self)
    }
    fn in_memory(&self) -> Option<&Dataset> {
        Some(self)
    }
    fn describe_targets(&self) -> String {
        self.targets().describe()
    }
    fn gather(&self, rows: &[u32], x: &mut [f32], targets: RowTargets<'_>) -> Result<()> {
        let p = Dataset::p(self);
        check_gather(Dataset::n(self), p, rows, x, &targets)?;
        for (dst, &r) in x.chunks_exact_mut(p).zip(rows) {
            dst.copy_from_slice(self.row(r as usize));
        }
        match (self.targets(), targets) {
            (Targets::Real(y), RowTargets::Real(out)) => out
                .iter_mut()
                .zip(rows)
                .for_each(|(o, &r)| *o = y[r as usize]),
            (Targets::Classes { labels, .. }, RowTargets::Classes(out)) => {
                out.iter_mut()
                    .zip(rows)
                    .for_each(|(o, &r)| *o = labels[r as usize]);
            }
            _ => return Err(target_kind_mismatch(Dataset::classes(self))),
        }
        Ok(())
    }
}

impl RowSource for Synthetic {
    fn n(&self) -> usize {
        Synthetic::n(self)
    }
    fn p(&self) -> usize {
        Synthetic::p(self)
    }
    fn classes(&self) -> Option<usize> {
        Synthetic::classes(self)
    }
    /// Makes the rows on the fly: row `r` is the same as row `r` of
    /// [`Synthetic::dataset`], however the rows are asked for.
    fn gather(&self, rows: &[u32], x: &mut [f32], targets: RowTargets<'_>) -> Result<()> {
        // fill_indexed checks the buffers and rows itself.
        self.fill_indexed(rows, x, targets)
    }
}

/// How a memory-mapped file's columns divide into features and target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileTargets {
    /// Column `column` holds a real target.
    Real {
        /// Target column (0-based); the other columns are the features, in order.
        column: usize,
    },
    /// Column `column` holds class labels, whole numbers in `0..classes`.
    Classes {
        /// Target column (0-based).
        column: usize,
        /// Number of classes.
        classes: usize,
    },
}

impl FileTargets {
    fn column(self) -> usize {
        match self {
            FileTargets::Real { column } | FileTargets::Classes { column, .. } => column,
        }
    }
}

/// A `.npy` file's element type: every NumPy dtype that holds numbers a model can read
/// (floats, integers, booleans), little-endian. Values are read as f32: integers beyond
/// 2²⁴ round, as `np.float32` rounds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    F32,
    F64,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    Bool,
}

impl Element {
    /// The element of a `.npy` `descr` (`<f4`, `|u1`, `<i8`, `|b1`, …).
    fn of(descr: &str) -> Option<Element> {
        // One-byte types carry no order ('|'); wider ones must be little-endian ('<').
        Some(match descr {
            "<f4" => Element::F32,
            "<f8" => Element::F64,
            "|i1" | "<i1" => Element::I8,
            "<i2" => Element::I16,
            "<i4" => Element::I32,
            "<i8" => Element::I64,
            "|u1" | "<u1" => Element::U8,
            "<u2" => Element::U16,
            "<u4" => Element::U32,
            "<u8" => Element::U64,
            "|b1" => Element::Bool,
            _ => return None,
        })
    }

    /// Bytes a value takes.
    fn width(self) -> usize {
        match self {
            Element::I8 | Element::U8 | Element::Bool => 1,
            Element::I16 | Element::U16 => 2,
            Element::F32 | Element::I32 | Element::U32 => 4,
            Element::F64 | Element::I64 | Element::U64 => 8,
        }
    }

    /// The value whose bytes start `b` (at least [`Element::width`] of them), as f32.
    fn read(self, b: &[u8]) -> f32 {
        fn le<const N: usize>(b: &[u8]) -> [u8; N] {
            b[..N].try_into().expect("the width checked at open")
        }
        match self {
            Element::F32 => f32::from_le_bytes(le(b)),
            Element::F64 => f64::from_le_bytes(le(b)) as f32,
            Element::I8 => f32::from(b[0] as i8),
            Element::I16 => f32::from(i16::from_le_bytes(le(b))),
            Element::I32 => i32::from_le_bytes(le(b)) as f32,
            Element::I64 => i64::from_le_bytes(le(b)) as f32,
            Element::U8 => f32::from(b[0]),
            Element::U16 => f32::from(u16::from_le_bytes(le(b))),
            Element::U32 => u32::from_le_bytes(le(b)) as f32,
            Element::U64 => u64::from_le_bytes(le(b)) as f32,
            Element::Bool => f32::from(u8::from(b[0] != 0)),
        }
    }
}

/// A 2-D `f32`/`f64` matrix in a file, memory-mapped: one row per sample, one column of it
/// the target. Rows are read on demand, so the file may be larger than RAM.
///
/// Accepted: `.npy` files holding a 2-D little-endian array of floats, integers or
/// booleans in C or Fortran order ([`MappedFile::npy`]), and raw little-endian `f32` files
/// with a given column count ([`MappedFile::raw_f32`]). A Fortran-ordered file (what
/// `np.save(path, df.values)` writes for a DataFrame) is read column by column in blocks
/// of rows, never copied.
///
/// # Example
/// ```
/// use gradflow::data::{FileTargets, MappedFile, RowSource, RowTargets};
/// let path = std::env::temp_dir().join("gradflow-doc-raw.f32");
/// // Three rows: x0, x1, y.
/// let values: [f32; 9] = [1.0, 2.0, 5.0, 3.0, 4.0, 11.0, 5.0, 6.0, 17.0];
/// std::fs::write(&path, values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())?;
/// let file = MappedFile::raw_f32(&path, 3, FileTargets::Real { column: 2 })?;
/// let (mut x, mut y) = ([0f32; 4], [0f32; 2]);
/// file.gather(&[2, 0], &mut x, RowTargets::Real(&mut y))?;
/// assert_eq!((x, y), ([5.0, 6.0, 1.0, 2.0], [17.0, 5.0]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MappedFile {
    path: PathBuf,
    map: Mmap,
    offset: usize,
    element: Element,
    /// Column-major (Fortran order): value (r, c) at `c · n + r`.
    fortran: bool,
    n: usize,
    cols: usize,
    targets: FileTargets,
}

impl MappedFile {
    /// Maps a `.npy` file holding a 2-D array of floats (`<f4`, `<f8`), integers (`|i1`
    /// … `<i8`, `|u1` … `<u8`) or booleans (`|b1`), in C or Fortran order.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened or mapped; [`Error::BadFile`] for a
    /// file that is not such an array (with what was found); the column errors of
    /// [`MappedFile::raw_f32`].
    pub fn npy(path: impl AsRef<Path>, targets: FileTargets) -> Result<Self> {
        let (map, offset, element, fortran, n, cols) = Self::npy_parts(path.as_ref())?;
        let mut file = Self::new(path.as_ref(), map, offset, element, n, cols, targets)?;
        file.fortran = fortran;
        Ok(file)
    }

    /// A `.npy` array as a table of `n × cols` values with no target column (prediction
    /// input: features only, or the training layout with the target skipped by the
    /// reader). Any shape of at least one row and one column.
    ///
    /// # Errors
    /// As [`MappedFile::npy`].
    pub(crate) fn npy_table(path: &Path) -> Result<Self> {
        let (map, offset, element, fortran, n, cols) = Self::npy_parts(path)?;
        if n == 0 || cols == 0 {
            return Err(Error::BadFile {
                path: path.display().to_string(),
                reason: format!("an empty {n} × {cols} array"),
            });
        }
        Ok(MappedFile {
            path: path.to_path_buf(),
            map,
            offset,
            element,
            fortran,
            n,
            cols,
            targets: FileTargets::Real { column: 0 },
        })
    }

    /// Rows and columns of the array (target included).
    pub(crate) fn shape(&self) -> (usize, usize) {
        (self.n, self.cols)
    }

    /// Appends rows `rows` of `columns` to `out`, row-major, each value checked finite.
    ///
    /// # Errors
    /// [`Error::NonFinite`] naming the first bad value in row order.
    pub(crate) fn read_rows(
        &self,
        rows: std::ops::Range<usize>,
        columns: &[usize],
        out: &mut Vec<f32>,
    ) -> Result<()> {
        out.reserve(rows.len() * columns.len());
        for r in rows {
            for &c in columns {
                let v = self.value(r, c);
                if !v.is_finite() {
                    return Err(Error::NonFinite {
                        what: "data file",
                        row: r,
                        col: c,
                        value: v,
                    });
                }
                out.push(v);
            }
        }
        Ok(())
    }

    /// The map and what the header says: data offset, element, order, rows, columns.
    #[allow(clippy::type_complexity)] // one private tuple, taken apart at once
    fn npy_parts(path: &Path) -> Result<(Mmap, usize, Element, bool, usize, usize)> {
        let map = map(path)?;
        let bad = |reason: String| Error::BadFile {
            path: path.display().to_string(),
            reason,
        };
        let header =
            npy_header::parse(&map).map_err(|why| bad(format!("not a .npy file: {why}")))?;
        let offset = header.data_offset;
        let element = Element::of(&header.descr).ok_or_else(|| {
            bad(format!(
                "dtype {} is not a little-endian number: expected floats (<f4, <f8), \
                 integers (|i1, <i2, <i4, <i8, |u1, <u2, <u4, <u8) or booleans (|b1)",
                header.descr
            ))
        })?;
        let [n, cols] = header.shape[..] else {
            return Err(bad(format!(
                "shape {:?} is not 2-D (rows × columns)",
                header.shape
            )));
        };
        let width = element.width() as u128;
        // The header's shape is the file's word, not a size to trust: in u128 the product
        // of two u64 and a width cannot overflow.
        let data = map.len().saturating_sub(offset);
        if (data as u128) < u128::from(n) * u128::from(cols) * width {
            return Err(bad(format!(
                "truncated: {data} data bytes for a {n} × {cols} array"
            )));
        }
        // Both now fit in usize: their product is at most the file's length.
        let (n, cols) = (n as usize, cols as usize);
        Ok((map, offset, element, header.fortran_order, n, cols))
    }

    /// Whether the array is stored column by column (Fortran order).
    pub fn is_fortran_order(&self) -> bool {
        self.fortran
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Maps a raw little-endian `f32` file of `columns` values per row.
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::BadFile`] when the size is not a whole number of rows;
    /// [`Error::InvalidParameter`] when the target column is not below `columns`, when
    /// `columns < 2` (a feature and the target), or for fewer than 2 classes.
    pub fn raw_f32(path: impl AsRef<Path>, columns: usize, targets: FileTargets) -> Result<Self> {
        let path = path.as_ref();
        let map = map(path)?;
        if columns == 0 || map.len() % (columns * 4) != 0 {
            return Err(Error::BadFile {
                path: path.display().to_string(),
                reason: format!(
                    "{} bytes is not a whole number of rows of {columns} f32 values",
                    map.len()
                ),
            });
        }
        let n = map.len() / (columns * 4);
        Self::new(path, map, 0, Element::F32, n, columns, targets)
    }

    fn new(
        path: &Path,
        map: Mmap,
        offset: usize,
        element: Element,
        n: usize,
        cols: usize,
        targets: FileTargets,
    ) -> Result<Self> {
        if cols < 2 {
            return Err(Error::param(
                "columns",
                cols,
                "must be ≥ 2: at least one feature and the target",
            ));
        }
        if targets.column() >= cols {
            return Err(Error::param(
                "target column",
                targets.column(),
                "must be below the file's column count",
            ));
        }
        if let FileTargets::Classes { classes, .. } = targets
            && classes < 2
        {
            return Err(Error::param("classes", classes, "must be ≥ 2"));
        }
        if n == 0 {
            return Err(Error::Empty {
                what: "data file",
                detail: "n = 0 rows".into(),
            });
        }
        Ok(MappedFile {
            path: path.to_path_buf(),
            map,
            offset,
            element,
            fortran: false,
            n,
            cols,
            targets,
        })
    }

    /// Value `(row, col)` as f32.
    fn value(&self, row: usize, col: usize) -> f32 {
        let i = match self.fortran {
            false => row * self.cols + col,
            true => col * self.n + row,
        };
        self.element
            .read(&self.map[self.offset + self.element.width() * i..])
    }
}

fn map(path: &Path) -> Result<Mmap> {
    let io = |e: std::io::Error| Error::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let file = File::open(path).map_err(io)?;
    // SAFETY: the map is read-only; gradflow never writes the file. Another process that
    // truncates it while mapped makes reads fault (SIGBUS): a documented limit of mapping.
    unsafe { Mmap::map(&file) }.map_err(io)
}

impl RowSource for MappedFile {
    fn n(&self) -> usize {
        self.n
    }
    fn p(&self) -> usize {
        self.cols - 1
    }
    fn classes(&self) -> Option<usize> {
        match self.targets {
            FileTargets::Real { .. } => None,
            FileTargets::Classes { classes, .. } => Some(classes),
        }
    }
    fn gather(&self, rows: &[u32], x: &mut [f32], targets: RowTargets<'_>) -> Result<()> {
        let p = self.cols - 1;
        check_gather(self.n, p, rows, x, &targets)?;
        let t = self.targets.column();
        let non_finite = |row: usize, col: usize, value: f32| Error::NonFinite {
            what: "data file",
            row,
            col,
            value,
        };
        if self.fortran {
            // Column by column within blocks of rows: each column's values for the block
            // are neighbours in the file (for the consecutive rows of an in-memory read or
            // a windowed order), and the block's rows stay in cache while every column is
            // written into them — a transpose in cache-sized blocks.
            const BLOCK: usize = 256;
            for (block, dst) in rows.chunks(BLOCK).zip(x.chunks_mut(BLOCK * p)) {
                for (k, j) in (0..self.cols).filter(|&c| c != t).enumerate() {
                    for (i, &r) in block.iter().enumerate() {
                        let v = self.value(r as usize, j);
                        if !v.is_finite() {
                            // The first bad value in row order, as a C-ordered file says.
                            let (r, j, v) = block
                                .iter()
                                .flat_map(|&r| {
                                    (0..self.cols)
                                        .filter(|&c| c != t)
                                        .map(move |c| (r as usize, c))
                                })
                                .map(|(r, c)| (r, c, self.value(r, c)))
                                .find(|(_, _, v)| !v.is_finite())
                                .unwrap_or((r as usize, j, v));
                            return Err(non_finite(r, j, v));
                        }
                        dst[i * p + k] = v;
                    }
                }
            }
        } else {
            for (dst, &r) in x.chunks_exact_mut(p).zip(rows) {
                let r = r as usize;
                for (j, d) in (0..self.cols).filter(|&c| c != t).zip(dst.iter_mut()) {
                    *d = self.value(r, j);
                    if !d.is_finite() {
                        return Err(non_finite(r, j, *d));
                    }
                }
            }
        }
        match (self.targets, targets) {
            (FileTargets::Real { .. }, RowTargets::Real(out)) => {
                for (o, &r) in out.iter_mut().zip(rows) {
                    *o = self.value(r as usize, t);
                    if !o.is_finite() {
                        return Err(non_finite(r as usize, t, *o));
                    }
                }
            }
            (FileTargets::Classes { classes, .. }, RowTargets::Classes(out)) => {
                for (o, &r) in out.iter_mut().zip(rows) {
                    let v = self.value(r as usize, t);
                    if !(v >= 0.0 && v.fract() == 0.0 && (v as usize) < classes) {
                        return Err(Error::BadFile {
                            path: self.path.display().to_string(),
                            reason: format!(
                                "row {r}, column {t}: label {v} is not a class in 0..{classes}"
                            ),
                        });
                    }
                    *o = v as u32;
                }
            }
            _ => return Err(target_kind_mismatch(self.classes())),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_gathers_the_rows_of_its_dataset() {
        let g = Synthetic::blobs(3000, 4, 3).seed(2);
        let ds = g.dataset().unwrap();
        let rows = [2999u32, 0, 1500, 7, 7];
        let (mut a, mut b) = (vec![0f32; 20], vec![0f32; 20]);
        let (mut la, mut lb) = (vec![0u32; 5], vec![0u32; 5]);
        RowSource::gather(&g, &rows, &mut a, RowTargets::Classes(&mut la)).unwrap();
        RowSource::gather(&ds, &rows, &mut b, RowTargets::Classes(&mut lb)).unwrap();
        assert_eq!((a, la), (b, lb));
        assert!(
            RowSource::gather(&g, &[3000], &mut [0f32; 4], RowTargets::Classes(&mut [0])).is_err()
        );
    }
}
