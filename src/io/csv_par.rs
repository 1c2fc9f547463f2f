//! The parallel CSV parser behind [`csv::read`](super::csv::read) and
//! [`csv::read_features`](super::csv::read_features).
//!
//! The `csv` crate reads the first rows (header detection, the column count) and says
//! where the data rows begin; from there the file, memory-mapped, is cut at line ends into
//! chunks (never inside a quoted field: when a chunk holds a quote, the cut is made again
//! with a quote-parity scan). Every core counts its chunks' line ends, which bound their
//! rows; one buffer for the features is allocated and each chunk parses its rows straight
//! into its own part of it, so the values are written once, where the dataset keeps them.
//! A chunk without quotes or bare carriage returns — nearly every numeric file — takes the
//! fast path: the cells' ends come from bit masks of the separators, 64 bytes at a time,
//! and each cell is read where it stands, its digits as one eight-byte word (a byte shuffle
//! where the CPU has SSSE3 and SSE4.1), divided by its power of ten without a division
//! (correctly rounded to f32, the bits `str::parse` gives); any other row goes line by line
//! (blanks, exponents: `fast_float2`; labels). A chunk with quotes goes through the `csv`
//! crate's own reader, so quoting means exactly what it meant before. Both paths keep the
//! serial reader's rules: fields trimmed, empty lines skipped, UTF-8 required, and the first
//! error in file order reported with its line.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use memchr::{memchr, memchr2};
use rayon::prelude::*;

/// What a column is to the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// A feature: a finite number, into `x`.
    Feature,
    /// The target as a finite number.
    Real,
    /// The target as a class label (any non-empty text).
    Class,
    /// A sample weight: a finite number.
    Weight,
    /// Not read (predict's target and weight columns).
    Skip,
}

/// What went wrong in a row, to be worded by the caller (which knows the column names).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Fault {
    /// A row of another number of fields.
    Ragged(usize),
    /// An empty numeric cell.
    Empty(usize),
    /// A cell that is not a number (its trimmed text).
    NotNumber(usize, String),
    /// A number that is not finite.
    NotFinite(usize, f32),
    /// An empty class label.
    EmptyLabel(usize),
    /// A row that is not UTF-8.
    NotUtf8,
    /// The `csv` crate's own error (quoted fields).
    Csv(String),
    /// The features' buffer (bytes) could not be allocated.
    OutOfMemory(u128),
}

/// The first fault of the file: the line (counted from 1 over the whole file) and what.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RowError {
    pub line: u64,
    pub fault: Fault,
}

/// The rows parsed, in file order.
#[derive(Debug, Default)]
pub(super) struct Parsed {
    /// Rows read.
    pub rows: usize,
    /// Features (and nothing else), row-major.
    pub x: Vec<f32>,
    /// The real target, one per row.
    pub real: Vec<f32>,
    /// The sample weights, one per row.
    pub weights: Vec<f32>,
    /// The class of each row, numbered in order of first appearance.
    pub class_ids: Vec<u32>,
    /// The class names in order of first appearance.
    pub class_names: Vec<String>,
    /// Line ends read (to number the lines of what follows).
    pub newlines: u64,
}

/// One chunk's output: as [`Parsed`], its features written into its part of the read's
/// one buffer, class names local to the chunk, and the newlines it holds (to number the
/// lines of the chunks after it).
struct Chunk<'a, 'x> {
    rows: usize,
    x: Slots<'x>,
    real: Vec<f32>,
    weights: Vec<f32>,
    class_ids: Vec<u32>,
    /// Class names by local id: borrowed from the file, owned when unquoted by the
    /// `csv` crate.
    names: Vec<Cow<'a, [u8]>>,
    newlines: u64,
    /// The first fault: line within the chunk (from 1) and what.
    fault: Option<(u64, Fault)>,
}

impl<'x> Chunk<'_, 'x> {
    fn new(x: Slots<'x>) -> Self {
        Chunk {
            rows: 0,
            x,
            real: Vec::new(),
            weights: Vec::new(),
            class_ids: Vec::new(),
            names: Vec::new(),
            newlines: 0,
            fault: None,
        }
    }
}

/// A chunk's part of the features buffer, filled from the front: the rows go straight to
/// where the dataset keeps them (a buffer per chunk joined afterwards paid for every page
/// twice, a fifth of the read in page faults and a copy).
struct Slots<'x> {
    buf: &'x mut [f32],
    len: usize,
}

impl<'x> Slots<'x> {
    fn new(buf: &'x mut [f32]) -> Self {
        Slots { buf, len: 0 }
    }

    #[inline]
    fn push(&mut self, v: f32) {
        // The part holds the chunk's most rows (see [`Plan::bound`]): never full.
        self.buf[self.len] = v;
        self.len += 1;
    }

    fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    fn filled(&self) -> &[f32] {
        &self.buf[..self.len]
    }
}

/// A chunk, seen once before it is parsed: where it is, whether the fast path can read
/// it, and the most rows it can hold.
struct Plan {
    range: std::ops::Range<usize>,
    /// Whether it holds a quote.
    quoted: bool,
    /// No quotes and no bare carriage returns.
    plain: bool,
    /// Only ASCII bytes (so UTF-8 without a look).
    ascii: bool,
    /// Every record the fast path or the `csv` crate reads ends at a `\n`, a bare `\r`, or
    /// the end of the chunk, so the chunk has at most this many rows (exactly this many
    /// but for blank lines: the rows are then where they belong without moving).
    bound: usize,
    newlines: u64,
}

impl Plan {
    /// The plans of the pieces `cuts` gives, made on every core.
    fn all(data: &[u8], cuts: Cuts<'_>) -> Vec<Plan> {
        let ranges: Vec<_> = cuts.collect();
        ranges
            .into_par_iter()
            .map(|range| Plan::of(data, range))
            .collect()
    }

    fn of(data: &[u8], range: std::ops::Range<usize>) -> Self {
        let bytes = &data[range.clone()];
        let Survey {
            newlines,
            quote_or_cr,
            ascii,
        } = survey(bytes);
        // Nearly always neither.
        let (quoted, bare_crs) = match quote_or_cr {
            false => (false, 0),
            true => (
                memchr(b'"', bytes).is_some(),
                memchr::memchr_iter(b'\r', bytes)
                    .filter(|&i| bytes.get(i + 1) != Some(&b'\n'))
                    .count(),
            ),
        };
        Plan {
            quoted,
            plain: !quoted && bare_crs == 0,
            ascii,
            // A last line without its line end is a row too.
            bound: newlines
                + bare_crs
                + usize::from(!matches!(bytes.last(), None | Some(b'\n' | b'\r'))),
            newlines: newlines as u64,
            range,
        }
    }
}

/// What one pass over a chunk finds: its line ends, whether it holds a quote or a carriage
/// return, whether it is all ASCII.
#[derive(Debug, PartialEq)]
struct Survey {
    newlines: usize,
    quote_or_cr: bool,
    ascii: bool,
}

/// [`Survey`] of `bytes`, sixteen bytes a step (SSE2): one read of the chunk where three
/// searches read it three times.
#[cfg(target_arch = "x86_64")]
fn survey(bytes: &[u8]) -> Survey {
    use std::arch::x86_64::{
        _mm_add_epi64, _mm_cmpeq_epi8, _mm_cvtsi128_si64, _mm_loadu_si128, _mm_movemask_epi8,
        _mm_or_si128, _mm_sad_epu8, _mm_set1_epi8, _mm_setzero_si128, _mm_srli_si128, _mm_sub_epi8,
    };
    let blocks = bytes.chunks_exact(16);
    let tail = blocks.remainder();
    // SAFETY: SSE2 is in every x86-64 CPU; each load reads the 16 bytes of its block.
    let (mut newlines, special, high) = unsafe {
        let (newline, quote, cr) = (
            _mm_set1_epi8(b'\n' as i8),
            _mm_set1_epi8(b'"' as i8),
            _mm_set1_epi8(b'\r' as i8),
        );
        let (mut total, mut special, mut high) = (
            _mm_setzero_si128(),
            _mm_setzero_si128(),
            _mm_setzero_si128(),
        );
        let mut blocks = blocks.peekable();
        while blocks.peek().is_some() {
            // Line ends counted per byte lane (a match is -1), at most 255 steps before
            // the lanes are summed.
            let mut lanes = _mm_setzero_si128();
            for part in blocks.by_ref().take(255) {
                let v = _mm_loadu_si128(part.as_ptr().cast());
                lanes = _mm_sub_epi8(lanes, _mm_cmpeq_epi8(v, newline));
                special = _mm_or_si128(
                    special,
                    _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, cr)),
                );
                high = _mm_or_si128(high, v);
            }
            total = _mm_add_epi64(total, _mm_sad_epu8(lanes, _mm_setzero_si128()));
        }
        let sum = _mm_add_epi64(total, _mm_srli_si128(total, 8));
        (
            _mm_cvtsi128_si64(sum) as usize,
            _mm_movemask_epi8(special) != 0,
            _mm_movemask_epi8(high) != 0,
        )
    };
    newlines += memchr::memchr_iter(b'\n', tail).count();
    Survey {
        newlines,
        quote_or_cr: special || memchr2(b'"', b'\r', tail).is_some(),
        ascii: !high && tail.is_ascii(),
    }
}

/// [`Survey`] of `bytes` by three searches where SSE2 is not known.
#[cfg(not(target_arch = "x86_64"))]
fn survey(bytes: &[u8]) -> Survey {
    Survey {
        newlines: memchr::memchr_iter(b'\n', bytes).count(),
        quote_or_cr: memchr2(b'"', b'\r', bytes).is_some(),
        ascii: bytes.is_ascii(),
    }
}

/// Bytes a chunk aims at: large enough that a chunk's set-up is noise, small enough that
/// every thread gets several (the last chunk of an uneven cut does not hold the rest up).
pub(super) const CHUNK_BYTES: usize = 4 << 20;

/// Parses `data`, the data rows of a CSV file whose first data row is on line
/// `first_line`, with one role per column. `chunk_bytes` is the cut's target (tests make
/// it small to cut often).
pub(super) fn parse(
    data: &[u8],
    first_line: u64,
    roles: &[Role],
    chunk_bytes: usize,
) -> Result<Parsed, RowError> {
    // Cut at the first line end after each offset, as if there were no quotes (the serial
    // quote-parity scan skipped); cut again with it if a piece has a quote after all.
    let mut plans = Plan::all(data, Cuts::unquoted(data, chunk_bytes));
    if plans.iter().any(|p| p.quoted) {
        plans = Plan::all(data, Cuts::new(data, chunk_bytes));
    }
    let features = roles.iter().filter(|&&r| r == Role::Feature).count();
    // Saturating: a bound past memory fails to allocate, never wraps.
    let len = plans.iter().fold(0usize, |n, p| {
        n.saturating_add(p.bound.saturating_mul(features))
    });
    // Pages untouched past the rows (blank lines) cost no memory.
    let Ok(mut x) = crate::data::zeroed::<f32>(len, "CSV features") else {
        return Err(RowError {
            line: first_line,
            fault: Fault::OutOfMemory(len as u128 * 4),
        });
    };
    let mut parts = Vec::with_capacity(plans.len());
    let mut rest = x.as_mut_slice();
    for plan in &plans {
        let (part, tail) = rest.split_at_mut(plan.bound * features);
        parts.push(Slots::new(part));
        rest = tail;
    }
    let chunks: Vec<Chunk<'_, '_>> = plans
        .par_iter()
        .zip(parts)
        .map(|(plan, slots)| parse_chunk(&data[plan.range.clone()], plan, roles, slots))
        .collect();
    let filled: Vec<usize> = chunks.iter().map(|c| c.x.len()).collect();
    let mut parsed = join(chunks, first_line)?;
    // Each chunk's rows moved up against the previous chunk's (only where a chunk had
    // fewer rows than its bound: blank lines, quoted newlines).
    let (mut start, mut end) = (0, 0);
    for (plan, filled) in plans.iter().zip(filled) {
        if start != end {
            x.copy_within(start..start + filled, end);
        }
        start += plan.bound * features;
        end += filled;
    }
    if end < x.len() {
        x.truncate(end);
        x.shrink_to_fit();
    }
    parsed.x = x;
    Ok(parsed)
}

/// The start offsets of the chunks of `data`: at line ends, never inside quotes.
#[cfg(test)]
pub(super) fn cut(data: &[u8], chunk_bytes: usize) -> Vec<usize> {
    Cuts::new(data, chunk_bytes).map(|r| r.start).collect()
}

/// The pieces of `data` of about `size` bytes each, cut at line ends outside quotes, found
/// one at a time: a piece's end is sought only when it is asked for, so that reading a
/// file a window at a time touches no page ahead of the window it reads.
pub(super) struct Cuts<'d> {
    data: &'d [u8],
    size: usize,
    /// The next piece's start; `None` when every piece was given.
    next: Option<usize>,
    /// Quote parity at `scanned`.
    inside: bool,
    scanned: usize,
    /// Whether quotes are to be counted (the data may hold some).
    quoted: bool,
}

impl<'d> Cuts<'d> {
    pub(super) fn new(data: &'d [u8], size: usize) -> Self {
        Cuts {
            data,
            size: size.max(1),
            next: Some(0),
            inside: false,
            scanned: 0,
            quoted: true,
        }
    }

    /// As [`Cuts::new`] for data known to hold no quote: the same pieces, each end found
    /// by one search for a line end.
    pub(super) fn unquoted(data: &'d [u8], size: usize) -> Self {
        Cuts {
            quoted: false,
            ..Cuts::new(data, size)
        }
    }
}

impl Iterator for Cuts<'_> {
    type Item = std::ops::Range<usize>;

    fn next(&mut self) -> Option<Self::Item> {
        let (data, start) = (self.data, self.next?);
        let at = start.saturating_add(self.size);
        if at >= data.len() {
            self.next = None;
            return Some(start..data.len());
        }
        if !self.quoted {
            let end = memchr(b'\n', &data[at..]).map_or(data.len(), |k| at + k + 1);
            self.next = (end < data.len()).then_some(end);
            return Some(start..end);
        }
        // The parity of the quotes before `at`, then the first line end at or after it
        // outside quotes (a doubled quote inside a field flips twice).
        let quotes = memchr::memchr_iter(b'"', &data[self.scanned..at]).count();
        self.inside ^= quotes % 2 == 1;
        let mut i = at;
        let end = loop {
            let Some(k) = memchr2(b'"', b'\n', &data[i..]) else {
                break data.len();
            };
            let j = i + k;
            if data[j] == b'"' {
                self.inside = !self.inside;
            } else if !self.inside {
                break j + 1;
            }
            i = j + 1;
        };
        self.scanned = end;
        self.next = (end < data.len()).then_some(end);
        Some(start..end)
    }
}

/// Parses one chunk (whole lines), its features into `x`: the fast path when it has no
/// quotes and no bare carriage returns, else the `csv` crate.
fn parse_chunk<'a, 'x>(
    bytes: &'a [u8],
    plan: &Plan,
    roles: &[Role],
    x: Slots<'x>,
) -> Chunk<'a, 'x> {
    let mut out = Chunk::new(x);
    if plan.plain {
        fast_chunk(bytes, roles, plan.ascii, &mut out);
    } else {
        csv_chunk(bytes, roles, &mut out);
    }
    out.newlines = plan.newlines;
    out
}

/// The fast path over lines without quotes: with SSSE3 and SSE4.1 where the CPU has them
/// (checked at run time, the answer cached by `std`), each cell's digits
/// gathered by one byte shuffle ([`sse::word_decimal`]), else eight bytes a word in plain
/// integer steps ([`word_decimal`]). The same values either way.
fn fast_chunk<'a>(bytes: &'a [u8], roles: &[Role], ascii: bool, out: &mut Chunk<'a, '_>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("ssse3") && std::arch::is_x86_feature_detected!("sse4.1")
    {
        // SAFETY: the CPU has both features.
        return unsafe { sse::fast_chunk(bytes, roles, ascii, out) };
    }
    fast_rows::<false>(bytes, roles, ascii, out);
}

/// [`fast_chunk`]'s loop; `SSE`: whether it runs on a CPU with SSSE3 and SSE4.1 (inlined
/// into [`sse::fast_chunk`] only).
#[inline(always)]
fn fast_rows<'a, const SSE: bool>(
    bytes: &'a [u8],
    roles: &[Role],
    ascii: bool,
    out: &mut Chunk<'a, '_>,
) {
    let cols = roles.len();
    let mut labels = Labels::default();
    // UTF-8 checked once for the chunk (ASCII needs no look); a row reaching past the
    // first bad byte takes the per-line path, which reports it.
    let valid = match ascii {
        true => bytes.len(),
        false => std::str::from_utf8(bytes).map_or_else(|e| e.valid_up_to(), |_| bytes.len()),
    };
    let row_runs = runs(roles);
    let features = roles.iter().filter(|&&r| r == Role::Feature).count();
    let mut pos = 0;
    let mut line = 0u64;
    let mut seps = Seps::at(bytes, 0);
    while pos < bytes.len() {
        line += 1;
        // Nearly every row: read straight from the chunk, its cells cut by the separators.
        if let Some(next) = plain_row::<SSE>(
            bytes,
            (pos, valid),
            (&row_runs, features),
            out,
            &mut labels,
            &mut seps,
        ) {
            out.rows += 1;
            pos = next;
            continue;
        }
        let start = pos;
        let end = memchr(b'\n', &bytes[pos..]).map_or(bytes.len(), |k| pos + k);
        let mut text = &bytes[pos..end];
        pos = end + 1;
        seps = Seps::at(bytes, pos);
        if text.last() == Some(&b'\r') {
            text = &text[..text.len() - 1];
        }
        // The `csv` crate skips empty lines.
        if text.is_empty() {
            continue;
        }
        if std::str::from_utf8(text).is_err() {
            out.fault = Some((line, Fault::NotUtf8));
            return;
        }
        // The line, and the chunk from its start (reads of eight bytes may run past its
        // end: the line end stops them).
        match fast_row(text, &bytes[start..], roles, out, &mut labels) {
            Ok(fields) if fields == cols => out.rows += 1,
            Ok(fields) => {
                out.fault = Some((line, Fault::Ragged(fields)));
                return;
            }
            Err(fault) => {
                // A row of the wrong width is reported as ragged, whatever its cells hold
                // (the serial reader checks the count before the cells).
                let fields = count_fields(text);
                let fault = if fields == cols {
                    fault
                } else {
                    Fault::Ragged(fields)
                };
                out.fault = Some((line, fault));
                return;
            }
        }
    }
}

/// A row's columns as runs: the plain-row reader's plan, made once per chunk.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Run {
    /// This many feature columns in a row.
    Features(usize),
    /// A number that is not a feature: the real target or a weight.
    Number(Role),
    /// A class label.
    Class,
    /// A column not read.
    Skip,
}

/// The runs of `roles`, in order.
fn runs(roles: &[Role]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for &role in roles {
        match (role, runs.last_mut()) {
            (Role::Feature, Some(Run::Features(k))) => *k += 1,
            (Role::Feature, _) => runs.push(Run::Features(1)),
            (Role::Real | Role::Weight, _) => runs.push(Run::Number(role)),
            (Role::Class, _) => runs.push(Run::Class),
            (Role::Skip, _) => runs.push(Run::Skip),
        }
    }
    runs
}

/// One row of plain cells — numbers of [`cell_number`]'s shape with nothing around them,
/// labels and skipped cells — each ending at the next separator `seps` gives, the last at
/// a line end, all before `valid` (the chunk's UTF-8 prefix); returns the position after
/// it. `None` (nothing kept) for anything else: blanks, another shape of number, a bad
/// cell, a ragged or empty line, the chunk's last bytes — which the per-line path then
/// reads or reports.
///
/// The cells' ends come from the separators' bit mask, not from parsing: so the next
/// number's start never waits on this one's digits, and the numbers of a row are parsed
/// side by side by the CPU. The features go straight to the row's slots, kept (by moving
/// the slots' length) only once the whole row has been read.
#[inline(always)]
fn plain_row<'a, const SSE: bool>(
    bytes: &'a [u8],
    (pos, valid): (usize, usize),
    (runs, features): (&[Run], usize),
    out: &mut Chunk<'a, '_>,
    labels: &mut Labels<'a>,
    seps: &mut Seps<'_>,
) -> Option<usize> {
    let mut s = *seps;
    let mut i = pos;
    let row = out.x.buf.get_mut(out.x.len..out.x.len + features)?;
    let (mut f, mut real, mut weight, mut class) = (0, None, None, None);
    for (k, run) in runs.iter().enumerate() {
        let last = k + 1 == runs.len();
        match *run {
            Run::Features(n) => {
                i = numbers::<SSE>(bytes, i, &mut row[f..f + n], last, &mut s)?;
                f += n;
            }
            Run::Number(role) => {
                let mut v = [0.0];
                i = numbers::<SSE>(bytes, i, &mut v, last, &mut s)?;
                match role {
                    Role::Real => real = Some(v[0]),
                    _ => weight = Some(v[0]),
                }
            }
            Run::Class | Run::Skip => {
                let end = s.next_ending(last)?;
                if *run == Run::Class {
                    let cell = trim(&bytes[i..cell_end(bytes, i, end, last)]);
                    if cell.is_empty() {
                        return None;
                    }
                    class = Some(cell);
                }
                i = end + 1;
            }
        }
    }
    if i > valid {
        return None;
    }
    out.x.len += features;
    out.real.extend(real);
    out.weights.extend(weight);
    if let Some(cell) = class {
        let id = labels.id(cell, &mut out.names);
        out.class_ids.push(id);
    }
    *seps = s;
    Some(i)
}

/// Reads `dst.len()` numbers from the cells from `i` on, each ended by a comma — the last
/// by a line end when `ends_line` — and returns the position after the last one's
/// separator.
#[inline(always)]
fn numbers<const SSE: bool>(
    bytes: &[u8],
    mut i: usize,
    dst: &mut [f32],
    ends_line: bool,
    seps: &mut Seps<'_>,
) -> Option<usize> {
    let n = dst.len();
    for (k, slot) in dst.iter_mut().enumerate() {
        let last = ends_line && k + 1 == n;
        let end = seps.next_ending(last)?;
        *slot = cell_number::<SSE>(bytes, i, cell_end(bytes, i, end, last))?;
        i = end + 1;
    }
    Some(i)
}

/// The end of the cell from `start` to the separator at `end`: before a carriage return
/// that ends the line with the newline.
#[inline(always)]
fn cell_end(bytes: &[u8], start: usize, end: usize, last: bool) -> usize {
    if last && end > start && bytes[end - 1] == b'\r' {
        end - 1
    } else {
        end
    }
}

/// The positions of the separators (`,` and `\n`) of a text without quotes, in order, from
/// bit masks of 64 bytes at a time.
#[derive(Clone, Copy)]
struct Seps<'a> {
    bytes: &'a [u8],
    /// The first byte of the block the masks cover.
    base: usize,
    /// The separators of the block not given yet, bit `k` for `bytes[base + k]`.
    mask: u64,
    /// The block's line ends.
    newlines: u64,
}

impl<'a> Seps<'a> {
    /// The separators from `pos` on.
    fn at(bytes: &'a [u8], pos: usize) -> Self {
        let (mask, newlines) = separator_masks(bytes, pos);
        Seps {
            bytes,
            base: pos,
            mask,
            newlines,
        }
    }

    /// The next separator's position, if it is a line end exactly when `line_end`.
    #[inline(always)]
    fn next_ending(&mut self, line_end: bool) -> Option<usize> {
        while self.mask == 0 {
            self.base += 64;
            if self.base >= self.bytes.len() {
                return None;
            }
            (self.mask, self.newlines) = separator_masks(self.bytes, self.base);
        }
        let bit = self.mask & self.mask.wrapping_neg();
        self.mask ^= bit;
        ((self.newlines & bit != 0) == line_end).then(|| self.base + bit.trailing_zeros() as usize)
    }
}

/// For the 64 bytes from `base` (fewer at the end): bit `k` set when `bytes[base + k]` is
/// a comma or a line end, and when it is a line end.
#[inline]
fn separator_masks(bytes: &[u8], base: usize) -> (u64, u64) {
    match bytes.get(base..base + 64) {
        Some(block) => block_masks(block.try_into().expect("64 bytes")),
        None => bytes
            .get(base..)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .fold((0, 0), |(seps, newlines), (k, &c)| {
                (
                    seps | u64::from((c == b',') | (c == b'\n')) << k,
                    newlines | u64::from(c == b'\n') << k,
                )
            }),
    }
}

/// [`separator_masks`] of a full block: sixteen bytes a compare (SSE2, in every x86-64).
#[cfg(target_arch = "x86_64")]
#[inline]
fn block_masks(block: &[u8; 64]) -> (u64, u64) {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let (mut seps, mut newlines) = (0u64, 0u64);
    for (k, part) in block.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is in every x86-64 CPU; `part` is 16 readable bytes, and the load
        // has no alignment requirement.
        let (s, n) = unsafe {
            let v = _mm_loadu_si128(part.as_ptr().cast());
            let comma = _mm_cmpeq_epi8(v, _mm_set1_epi8(b',' as i8));
            let newline = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8));
            (
                _mm_movemask_epi8(_mm_or_si128(comma, newline)),
                _mm_movemask_epi8(newline),
            )
        };
        seps |= u64::from(s as u16) << (16 * k);
        newlines |= u64::from(n as u16) << (16 * k);
    }
    (seps, newlines)
}

/// [`separator_masks`] of a full block: eight bytes a step (SWAR) where SSE2 is not known.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn block_masks(block: &[u8; 64]) -> (u64, u64) {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    // The bytes of `word` equal to `c`: the high bit of each, exactly (no borrow between
    // bytes), gathered to eight bits by one multiply.
    let equal = |word: u64, c: u8| {
        let x = word ^ (u64::from(c) * 0x0101_0101_0101_0101);
        !(((x & LOW7) + LOW7) | x) & !LOW7
    };
    let gather = |high: u64| (high >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56;
    let (mut seps, mut newlines) = (0u64, 0u64);
    for (k, part) in block.chunks_exact(8).enumerate() {
        let word = u64::from_le_bytes(part.try_into().expect("8 bytes"));
        let (comma, newline) = (equal(word, b','), equal(word, b'\n'));
        seps |= gather(comma | newline) << (8 * k);
        newlines |= gather(newline) << (8 * k);
    }
    (seps, newlines)
}

/// A chunk's class names and their ids: a short list searched in order (a few classes:
/// faster than hashing), a map past [`Labels::LIST`].
#[derive(Default)]
struct Labels<'a> {
    map: HashMap<&'a [u8], u32>,
}

impl<'a> Labels<'a> {
    const LIST: usize = 16;

    fn id(&mut self, cell: &'a [u8], names: &mut Vec<Cow<'a, [u8]>>) -> u32 {
        if names.len() <= Self::LIST {
            if let Some(i) = names.iter().position(|n| n.as_ref() == cell) {
                return i as u32;
            }
            if names.len() < Self::LIST {
                names.push(Cow::Borrowed(cell));
                return names.len() as u32 - 1;
            }
            // Moving to the map: the list's names first.
            for (i, n) in names.iter().enumerate() {
                if let Cow::Borrowed(b) = n {
                    self.map.insert(b, i as u32);
                }
            }
        }
        let next = names.len() as u32;
        *self.map.entry(cell).or_insert_with(|| {
            names.push(Cow::Borrowed(cell));
            next
        })
    }
}

/// Fields in a line without quotes.
fn count_fields(text: &[u8]) -> usize {
    memchr::memchr_iter(b',', text).count() + 1
}

/// Parses one line's cells in place; returns its field count, or the first bad cell.
/// A line with more fields than roles stops at the first extra one (it is ragged).
/// `from_line` is the chunk from the line's start: the line and what follows it.
fn fast_row<'a>(
    text: &'a [u8],
    from_line: &'a [u8],
    roles: &[Role],
    out: &mut Chunk<'a, '_>,
    labels: &mut Labels<'a>,
) -> Result<usize, Fault> {
    let mut pos = 0;
    let mut col = 0;
    loop {
        if col == roles.len() {
            // More fields than columns.
            return Ok(count_fields(text));
        }
        let role = roles[col];
        // Numbers: parsed where they stand, the separator checked after them.
        let quick = match role {
            Role::Feature | Role::Real | Role::Weight => {
                let start = skip_blanks(text, pos);
                let parsed = swar_decimal(&from_line[start..])
                    .or_else(|| quick_decimal(&text[start..]))
                    .map_or_else(|| fast_float2::parse_partial::<f32, _>(&text[start..]), Ok);
                match parsed {
                    // Within the line (an eight-byte read may have looked past it).
                    Ok((v, n)) if start + n <= text.len() => {
                        let after = skip_blanks(text, start + n);
                        match text.get(after) {
                            None | Some(b',') if v.is_finite() => Some((v, after)),
                            _ => None,
                        }
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        let field_end = match quick {
            Some((v, after)) => {
                push(role, v, out);
                after
            }
            None => {
                let end = memchr(b',', &text[pos..]).map_or(text.len(), |k| pos + k);
                let cell = trim(&text[pos..end]);
                match role {
                    Role::Skip => {}
                    Role::Class => {
                        if cell.is_empty() {
                            return Err(Fault::EmptyLabel(col));
                        }
                        let id = labels.id(cell, &mut out.names);
                        out.class_ids.push(id);
                    }
                    _ => push(role, number(cell, col)?, out),
                }
                end
            }
        };
        col += 1;
        if field_end >= text.len() {
            return Ok(col);
        }
        pos = field_end + 1;
    }
}

/// The number in the cell `bytes[start..end]` when it is `[+-]digits[.digits]` with
/// nothing around it, correctly rounded; `None` for anything else. A cell of at most eight
/// bytes after its sign, read as one word ([`word_decimal`]), nearly every cell of a
/// numeric file; a longer one by [`swar_decimal`]. Reads eight bytes from the digits'
/// start, which may run past the cell (`None` where fewer remain).
#[inline(always)]
fn cell_number<const SSE: bool>(bytes: &[u8], start: usize, end: usize) -> Option<f32> {
    let first = *bytes.get(start)?;
    // The sign without a branch: a random sign is a branch mispredicted every other
    // number.
    let negative = first == b'-';
    let at = start + usize::from(negative | (first == b'+'));
    let len = end.checked_sub(at)?;
    if !(1..=8).contains(&len) {
        let (v, n) = swar_decimal(&bytes[start..])?;
        return (start + n == end).then_some(v);
    }
    let word = u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `SSE` is true only on a CPU with SSSE3 and SSE4.1 (see `fast_chunk`).
    let (m, frac) = match SSE {
        true => unsafe { sse::word_decimal(word, len)? },
        false => word_decimal(word, len)?,
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (m, frac) = word_decimal(word, len)?;
    let v = quotient(m, frac);
    Some(f32::from_bits(v.to_bits() | u32::from(negative) << 31))
}

/// The first `len` (1–8) bytes of `word` (little-endian: the first byte lowest) read as
/// `digits[.digits]`: the digits as one integer and the count after the point, or `None`
/// when a byte is neither a digit nor the one point, there is no digit, or the integer
/// passes 2²⁴. No branch on the digits: the point's byte is taken out by shifts, the
/// digits moved to the top of the word and combined eight at a time.
#[inline(always)]
fn word_decimal(word: u64, len: usize) -> Option<(u64, usize)> {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const HIGH: u64 = !LOW7;
    let keep = u64::MAX >> (64 - 8 * len);
    // Digits become 0–9; the point 0x2E becomes 0x1E.
    let u = (word ^ 0x3030_3030_3030_3030) & keep;
    // The high bit of every byte of the cell that is not a digit (10 or more), exactly:
    // no carry crosses a byte.
    let odd = ((u & LOW7).wrapping_add(0x7676_7676_7676_7676) | u) & HIGH & keep;
    let x = u ^ 0x1E1E_1E1E_1E1E_1E1E;
    let points = !(((x & LOW7).wrapping_add(LOW7)) | x) & HIGH & keep;
    // Nothing odd but one point at most.
    if odd != points || points & points.wrapping_sub(1) != 0 {
        return None;
    }
    // The point's index, or `len` when there is none.
    let dot = if points == 0 {
        len
    } else {
        (points.trailing_zeros() / 8) as usize
    };
    let digits = len - usize::from(points != 0);
    // Eight digits and no point would lose the first to the shift below.
    if digits == 0 || digits == 8 {
        return None;
    }
    // The bytes before the point moved up one, over it: digits at bytes 1..=digits.
    let below = u64::MAX.checked_shr(64 - 8 * dot as u32).unwrap_or(0);
    let joined = ((u & below) << 8) | (u & !((below << 8) | 0xFF));
    // The last digit to the top byte, zeros (leading zeros) below the first.
    let mut v = joined << (8 * (7 - digits));
    v = v * 10 + (v >> 8);
    let v1 = (v & 0x0000_00FF_0000_00FF).wrapping_mul(0x000F_4240_0000_0064);
    let v2 = ((v >> 16) & 0x0000_00FF_0000_00FF).wrapping_mul(0x0000_2710_0000_0001);
    let m = u64::from(((v1.wrapping_add(v2)) >> 32) as u32);
    let frac = if points == 0 { 0 } else { len - 1 - dot };
    Some((m, frac))
}

/// The fast path compiled for SSSE3 and SSE4.1.
#[cfg(target_arch = "x86_64")]
mod sse {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_cvtsi64_si128, _mm_cvtsi128_si32, _mm_loadu_si128, _mm_madd_epi16,
        _mm_maddubs_epi16, _mm_min_epu8, _mm_movemask_epi8, _mm_packus_epi32, _mm_set1_epi8,
        _mm_set1_epi16, _mm_set1_epi32, _mm_shuffle_epi8, _mm_sub_epi8,
    };

    use super::{Chunk, Role, fast_rows};

    /// [`super::fast_chunk`] with every step able to use SSSE3 and SSE4.1.
    ///
    /// # Safety
    /// The CPU must have SSSE3 and SSE4.1.
    #[target_feature(enable = "ssse3,sse4.1")]
    pub(super) unsafe fn fast_chunk<'a>(
        bytes: &'a [u8],
        roles: &[Role],
        ascii: bool,
        out: &mut Chunk<'a, '_>,
    ) {
        fast_rows::<true>(bytes, roles, ascii, out);
    }

    /// [`super::word_decimal`] by one byte shuffle: the cell's digits (point left out)
    /// moved to the top of eight bytes, zeros below, checked to be digits sixteen at a time
    /// and combined by three multiply-adds. Also takes eight digits without a point (when
    /// the integer is at most 2²⁴).
    ///
    /// # Safety
    /// The CPU must have SSSE3 and SSE4.1.
    #[target_feature(enable = "ssse3,sse4.1")]
    #[inline]
    pub(super) unsafe fn word_decimal(word: u64, len: usize) -> Option<(u64, usize)> {
        let v = _mm_cvtsi64_si128(word as i64);
        let points = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'.' as i8))) as u32
            & ((1 << len) - 1);
        if points & points.wrapping_sub(1) != 0 || len - usize::from(points != 0) == 0 {
            return None;
        }
        let dot = match points {
            0 => len,
            _ => points.trailing_zeros() as usize,
        };
        let order = SHUFFLES[len][dot];
        // SAFETY: 16 readable bytes; no alignment required.
        let order = unsafe { _mm_loadu_si128(order.as_ptr().cast()) };
        let digits = _mm_shuffle_epi8(_mm_sub_epi8(v, _mm_set1_epi8(b'0' as i8)), order);
        // Every byte 0–9 (the zeros shifted in included).
        let nine = _mm_set1_epi8(9);
        if _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(digits, nine), digits)) != 0xFFFF {
            return None;
        }
        // Pairs (×10 + 1), fours (×100 + 1), then the eight (×10⁴ + 1).
        let pairs = _mm_maddubs_epi16(digits, _mm_set1_epi16(0x010A));
        let fours = _mm_madd_epi16(pairs, _mm_set1_epi32(0x0001_0064));
        let fours = _mm_packus_epi32(fours, fours);
        let eight = _mm_madd_epi16(fours, _mm_set1_epi32(0x0001_2710));
        let m = u64::from(_mm_cvtsi128_si32(eight) as u32);
        if m > 1 << 24 {
            return None;
        }
        Some((m, if points == 0 { 0 } else { len - 1 - dot }))
    }

    /// By the cell's length (1–8) and its point's index (the length when it has none): the
    /// byte shuffle that puts its digits, in order, in the last bytes of eight and zeros
    /// (index 0x80) everywhere else.
    static SHUFFLES: [[[u8; 16]; 9]; 9] = {
        let mut t = [[[0x80u8; 16]; 9]; 9];
        let mut len = 1;
        while len <= 8 {
            let mut dot = 0;
            while dot <= len {
                let digits = if dot < len { len - 1 } else { len };
                let (mut j, mut from) = (0, 0);
                while from < len {
                    if from != dot {
                        t[len][dot][8 - digits + j] = from as u8;
                        j += 1;
                    }
                    from += 1;
                }
                dot += 1;
            }
            len += 1;
        }
        t
    };
}

/// The leading ASCII digits of the eight bytes at `s[at..]`: their count (0–8) and, read
/// as a decimal integer, their value — without a branch per digit (SWAR: eight bytes in
/// one u64). `None` when fewer than eight bytes remain.
#[inline(always)]
fn digits8(s: &[u8], at: usize) -> Option<(u64, usize)> {
    let word = u64::from_le_bytes(s.get(at..at + 8)?.try_into().ok()?);
    // A byte is a digit when its high nibble is 3 and adding 6 keeps it 3 (0x30–0x39).
    // A digit never carries into the next byte, so every byte up to the first non-digit
    // is judged right, which is all that is counted.
    let high = word & 0xF0F0_F0F0_F0F0_F0F0;
    let plus6 = word.wrapping_add(0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0;
    let not_digit = (high ^ 0x3030_3030_3030_3030) | (plus6 ^ 0x3030_3030_3030_3030);
    let count = (not_digit.trailing_zeros() / 8) as usize;
    if count == 0 {
        return Some((0, 0));
    }
    // The digits moved to the top, '0's below them (leading zeros), then the eight-digit
    // multiply of Lemire's fast_float.
    let shift = 8 * (8 - count) as u32;
    let zeros = 0x3030_3030_3030_3030u64
        .checked_shr(64 - shift)
        .unwrap_or(0);
    let ascii = word.checked_shl(shift).unwrap_or(0) | zeros;
    let mut v = ascii - 0x3030_3030_3030_3030;
    v = v * 10 + (v >> 8);
    let v1 = (v & 0x0000_00FF_0000_00FF).wrapping_mul(0x000F_4240_0000_0064);
    let v2 = ((v >> 16) & 0x0000_00FF_0000_00FF).wrapping_mul(0x0000_2710_0000_0001);
    Some((u64::from(((v1.wrapping_add(v2)) >> 32) as u32), count))
}

/// [`quick_decimal`]'s numbers, eight digits at a time ([`digits8`]): `[+-]int[.frac]`
/// with at most 7 digits on either side. `s` may run past the cell (the caller checks the
/// separator after the length returned); `None` when fewer than eight bytes follow a part
/// or the number is not of this shape.
#[inline(always)]
fn swar_decimal(s: &[u8]) -> Option<(f32, usize)> {
    // The sign without a branch: a random sign is a branch mispredicted every other
    // number.
    let first = *s.first()?;
    let negative = first == b'-';
    let at = usize::from(negative | (first == b'+'));
    let (int, int_digits) = digits8(s, at)?;
    let mut i = at + int_digits;
    let (mut m, mut frac) = (int, 0);
    if int_digits == 8 {
        return None;
    }
    if s.get(i) == Some(&b'.') {
        let (f, n) = digits8(s, i + 1)?;
        if n == 8 {
            return None;
        }
        m = m * POW10_INT[n] + f;
        frac = n;
        i += 1 + n;
    }
    if int_digits + frac == 0 || m > 1 << 24 || matches!(s.get(i), Some(b'e' | b'E')) {
        return None;
    }
    let v = quotient(m, frac);
    Some((f32::from_bits(v.to_bits() | u32::from(negative) << 31), i))
}

/// `m / 10^frac` correctly rounded to f32, for `m ≤ 2²⁴` and `frac ≤ 10`, without a
/// division (a division per value was a third of the parse): `m · 10^-frac` in f64 then
/// rounded to f32. Rounding twice could differ from rounding the quotient once only were
/// the f64 product within an f64 unit or so of a point halfway between two f32 values; for
/// these numerators and powers it never is — checked for every one of them
/// (`the_quotient_without_division_is_the_divisions`, 185 million pairs).
#[inline(always)]
fn quotient(m: u64, frac: usize) -> f32 {
    (m as f64 * RECIP10[frac]) as f32
}

/// 10⁻⁰ … 10⁻¹⁰, each the f64 nearest.
const RECIP10: [f64; 11] = [
    1e0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10,
];

/// 10⁰ … 10⁷ as integers.
const POW10_INT: [u64; 8] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000];

/// The common case of a numeric CSV, parsed without the general algorithm: a decimal
/// without exponent whose digits, read as an integer `m`, fit in f32's 24-bit significand
/// and whose fraction has at most 10 digits: then [`quotient`] rounds `m / 10^frac`
/// correctly, the value `str::parse` gives. Anything else (`None`) goes to
/// `fast_float2`. Returns the value and the bytes it took.
#[inline]
fn quick_decimal(s: &[u8]) -> Option<(f32, usize)> {
    let mut i = 0;
    let negative = match s.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    let mut m: u64 = 0;
    let int_start = i;
    while let Some(&c) = s.get(i).filter(|c| c.is_ascii_digit()) {
        m = m.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac = 0;
    if s.get(i) == Some(&b'.') {
        i += 1;
        let frac_start = i;
        while let Some(&c) = s.get(i).filter(|c| c.is_ascii_digit()) {
            m = m.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
            i += 1;
        }
        frac = i - frac_start;
    }
    let digits = int_digits + frac;
    // No digits, an exponent, or too many digits for the exact path (19 could wrap).
    if digits == 0 || digits > 18 || matches!(s.get(i), Some(b'e' | b'E')) {
        return None;
    }
    if m > 1 << 24 || frac >= RECIP10.len() {
        return None;
    }
    let v = quotient(m, frac);
    Some((if negative { -v } else { v }, i))
}

fn push(role: Role, v: f32, out: &mut Chunk<'_, '_>) {
    match role {
        Role::Feature => out.x.push(v),
        Role::Real => out.real.push(v),
        Role::Weight => out.weights.push(v),
        Role::Class | Role::Skip => {}
    }
}

fn skip_blanks(text: &[u8], mut i: usize) -> usize {
    while i < text.len() && (text[i] == b' ' || text[i] == b'\t') {
        i += 1;
    }
    i
}

/// A cell trimmed as the `csv` crate trims a text record (Unicode whitespace).
fn trim(cell: &[u8]) -> &[u8] {
    let ascii = cell.trim_ascii();
    // What `str::trim` removes beyond ASCII whitespace: the vertical tab, and Unicode
    // spaces (multi-byte).
    let odd = |c: u8| c >= 0x80 || c == 0x0B;
    match (ascii.first(), ascii.last()) {
        (Some(&a), Some(&z)) if odd(a) || odd(z) => {
            std::str::from_utf8(ascii).map_or(ascii, |s| s.trim().as_bytes())
        }
        _ => ascii,
    }
}

/// A finite number from a trimmed cell, with the serial reader's faults.
fn number(cell: &[u8], col: usize) -> Result<f32, Fault> {
    if cell.is_empty() {
        return Err(Fault::Empty(col));
    }
    // `str::parse` decides what is a number (fast_float2 agrees on every decimal).
    let text = String::from_utf8_lossy(cell);
    match fast_float2::parse::<f32, _>(cell)
        .ok()
        .or_else(|| text.parse::<f32>().ok())
    {
        Some(v) if v.is_finite() => Ok(v),
        Some(v) => Err(Fault::NotFinite(col, v)),
        None => Err(Fault::NotNumber(col, text.into_owned())),
    }
}

/// A chunk with quotes or bare carriage returns, through the `csv` crate.
fn csv_chunk<'a>(bytes: &'a [u8], roles: &[Role], out: &mut Chunk<'a, '_>) {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(::csv::Trim::All)
        .from_reader(bytes);
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut record = ::csv::StringRecord::new();
    loop {
        let at = reader.position().byte();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = line_at(bytes, e.position().map_or(at, ::csv::Position::byte));
                let fault = match e.kind() {
                    ::csv::ErrorKind::Utf8 { .. } => Fault::NotUtf8,
                    _ => Fault::Csv(e.to_string()),
                };
                out.fault = Some((line, fault));
                break;
            }
        }
        // Worked out only for a fault: the line of the record's first byte.
        let line = || line_at(bytes, record.position().map_or(at, ::csv::Position::byte));
        if record.len() != roles.len() {
            out.fault = Some((line(), Fault::Ragged(record.len())));
            break;
        }
        let row = record
            .iter()
            .zip(roles)
            .enumerate()
            .try_for_each(|(j, (cell, &role))| {
                match role {
                    Role::Skip => {}
                    Role::Class => {
                        if cell.is_empty() {
                            return Err(Fault::EmptyLabel(j));
                        }
                        let next = ids.len() as u32;
                        let id = *ids.entry(cell.to_string()).or_insert_with(|| {
                            out.names.push(Cow::Owned(cell.as_bytes().to_vec()));
                            next
                        });
                        out.class_ids.push(id);
                    }
                    _ => push(role, number(cell.as_bytes(), j)?, out),
                }
                Ok(())
            });
        if let Err(fault) = row {
            out.fault = Some((line(), fault));
            break;
        }
        out.rows += 1;
    }
}

/// The line (from 1) of the record that starts at `byte`: the `csv` crate's own line
/// count lags a line after a CRLF end and blank lines, whose bytes it counts as the next
/// record's start, so the line is that of the first byte past them.
fn line_at(bytes: &[u8], byte: u64) -> u64 {
    let byte = usize::try_from(byte).map_or(bytes.len(), |b| b.min(bytes.len()));
    let first = bytes[byte..]
        .iter()
        .position(|&c| c != b'\r' && c != b'\n')
        .map_or(bytes.len(), |k| byte + k);
    1 + memchr::memchr_iter(b'\n', &bytes[..first]).count() as u64
}

/// Joins the chunks in file order, all but the features (written in place); the first
/// fault in file order wins.
fn join(chunks: Vec<Chunk<'_, '_>>, first_line: u64) -> Result<Parsed, RowError> {
    let mut line0 = first_line;
    let mut total = Parsed::default();
    let mut global: HashMap<&[u8], u32> = HashMap::new();
    for c in &chunks {
        if let Some((line, fault)) = &c.fault {
            return Err(RowError {
                line: line0 + line - 1,
                fault: fault.clone(),
            });
        }
        total.rows += c.rows;
        if !c.names.is_empty() {
            let map: Vec<u32> = c
                .names
                .iter()
                .map(|name| {
                    let next = global.len() as u32;
                    *global.entry(name.as_ref()).or_insert_with(|| {
                        total
                            .class_names
                            .push(String::from_utf8_lossy(name).into_owned());
                        next
                    })
                })
                .collect();
            total
                .class_ids
                .extend(c.class_ids.iter().map(|&l| map[l as usize]));
        }
        line0 += c.newlines;
        total.newlines += c.newlines;
    }
    total.real = chunks.iter().flat_map(|c| &c.real).copied().collect();
    total.weights = chunks.iter().flat_map(|c| &c.weights).copied().collect();
    Ok(total)
}

/// The bytes of a file, mapped (read when it cannot be mapped: a pipe, an empty file).
pub(super) enum Bytes {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl Bytes {
    /// Gives the pages of `range` back to the kernel (a window already parsed), so that a
    /// file read a window at a time keeps one window resident. Only a hint.
    pub(super) fn release(&self, range: std::ops::Range<usize>) {
        #[cfg(unix)]
        if let Bytes::Mapped(m) = self {
            // SAFETY: the map is a read-only, private mapping of a file: dropped pages are
            // read again from the file if touched, so no value anyone holds changes (the
            // parsed window was copied out already).
            let _ = unsafe {
                m.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    range.start,
                    range.len(),
                )
            };
        }
        #[cfg(not(unix))]
        let _ = range;
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Read(v) => v,
        }
    }
}

/// Maps `path` read-only, its pages faulted in as they are first read (by every core at
/// once: each chunk's line ends are counted before it is parsed), read ahead sequentially.
/// Mapping it populated instead — in one call, on one core — was no faster.
pub(super) fn map(path: &Path) -> std::io::Result<Bytes> {
    let file = std::fs::File::open(path)?;
    // SAFETY: the map is read-only and lives only for this read; a file changed under
    // it by another process gives wrong values or a bad-row error, never unsafety in
    // this code, which treats the bytes as untrusted input.
    match unsafe { memmap2::Mmap::map(&file) } {
        Ok(m) => {
            // Only a hint: a kernel that ignores it reads the same bytes.
            let _ = m.advise(memmap2::Advice::Sequential);
            Ok(Bytes::Mapped(m))
        }
        // A pipe, an empty file: read.
        Err(_) => Ok(Bytes::Read(std::fs::read(path)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(text: &str, roles: &[Role]) -> (Result<Parsed, RowError>, Result<Parsed, RowError>) {
        // Every chunk size from one byte (a cut at every line) to the whole text.
        let whole = parse(text.as_bytes(), 1, roles, usize::MAX);
        let tiny = parse(text.as_bytes(), 1, roles, 1);
        (whole, tiny)
    }

    fn same(a: &Result<Parsed, RowError>, b: &Result<Parsed, RowError>) {
        match (a, b) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.rows, b.rows);
                assert_eq!(a.x, b.x);
                assert_eq!(a.real, b.real);
                assert_eq!(a.class_ids, b.class_ids);
                assert_eq!(a.class_names, b.class_names);
            }
            (Err(a), Err(b)) => assert_eq!(a, b),
            _ => panic!("{a:?} vs {b:?}"),
        }
    }

    #[test]
    fn cuts_fall_at_line_ends_outside_quotes() {
        let text = b"1,\"a\nb\"\n2,c\n3,\"d,\n\"\n4,e\n";
        for size in 1..text.len() {
            let starts = cut(text, size);
            for &s in &starts[1..] {
                assert_eq!(text[s - 1], b'\n');
                // Quote parity before every cut is even.
                assert_eq!(text[..s].iter().filter(|&&c| c == b'"').count() % 2, 0);
            }
        }
    }

    #[test]
    fn every_cut_gives_the_same_rows_and_faults() {
        use Role::*;
        let roles = [Feature, Feature, Class];
        for text in [
            "1,2,a\n3,4,b\n5,6,a\n",
            "1, 2 ,a\r\n3,4,\"b,c\"\r\n\n5,6,a",
            "1,2,a\n3,x,b\n5,6,a\n",
            "1,2,a\n3,4\n5,6,a\n",
            "1,2,a\n3,4,\n",
            "1,inf,a\n",
            "1,2,\"a\nb\"\n3,4,zz\n5,6,\n",
            "1,2,a\r3,4,b\r",
        ] {
            let (whole, tiny) = both(text, &roles);
            same(&whole, &tiny);
        }
    }

    #[test]
    fn fast_and_csv_paths_agree() {
        use Role::*;
        let roles = [Feature, Weight, Real, Skip];
        for text in [
            "1.5,2,3,x\n-4e-3, 5 ,6,y\n",
            "1.5,2,3\n",
            "1.5,2,3,x,9\n",
            "1.5,,3,x\n",
            "1.5,2,1e40,x\n",
            "+.5,2.,3,x\n",
            "0x10,2,3,x\n",
            "\u{a0}7\u{a0},2,3,x\n",
            // Rows the plain-row reader takes (eight bytes follow every cell).
            "0.125,2.5,-3.75,lbl\n12.5,0.001,7,z\n-1.000001,1234567,+8.5,q\n1,1,1,b\n",
            "12345678,1,1,a\n99999999,1,1,a\n-0.0000001,1,1,a\n1,1,1,b\n1,1,1,b\n",
            "1.5,2,3,x\r\n4,5,6,y\r\n7.25,8,9,z\r\n1,1,1,b\r\n",
        ] {
            let (mut fast_x, mut plain_x, mut slow_x) = (vec![0.0; 8], vec![0.0; 8], vec![0.0; 8]);
            let mut fast = Chunk::new(Slots::new(&mut fast_x));
            fast_chunk(text.as_bytes(), &roles, text.is_ascii(), &mut fast);
            // The fast path without SSSE3 and SSE4.1 (the same as `fast` where they lack).
            let mut plain = Chunk::new(Slots::new(&mut plain_x));
            fast_rows::<false>(text.as_bytes(), &roles, false, &mut plain);
            let mut slow = Chunk::new(Slots::new(&mut slow_x));
            csv_chunk(text.as_bytes(), &roles, &mut slow);
            assert_eq!(fast.fault, slow.fault, "{text:?}");
            assert_eq!(plain.fault, slow.fault, "{text:?}");
            assert_eq!(
                (plain.rows, plain.x.filled()),
                (fast.rows, fast.x.filled()),
                "{text:?}"
            );
            if fast.fault.is_some() {
                continue; // a chunk with a fault is thrown away whole
            }
            assert_eq!(
                (fast.rows, fast.x.filled(), &fast.real, &fast.weights),
                (slow.rows, slow.x.filled(), &slow.real, &slow.weights),
                "{text:?}"
            );
        }
    }

    #[test]
    fn the_quick_path_rounds_as_str_parse_does() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3);
        let mut taken = 0;
        for _ in 0..200_000 {
            let int = rng.random_range(0..100_000u32);
            let frac_digits = rng.random_range(0..11usize);
            let frac: String = (0..frac_digits)
                .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
                .collect();
            let sign = ["", "-", "+"][rng.random_range(0..3)];
            let text = match frac_digits {
                0 => format!("{sign}{int}"),
                _ => format!("{sign}{int}.{frac}"),
            };
            let want: f32 = text.parse().unwrap();
            // Eight-byte reads past the number: a separator and padding.
            let padded = format!("{text},........");
            if let Some((v, n)) = swar_decimal(padded.as_bytes()) {
                assert_eq!(v.to_bits(), want.to_bits(), "{text}");
                assert_eq!(n, text.len(), "{text}");
            }
            if let Some((v, n)) = quick_decimal(text.as_bytes()) {
                assert_eq!(v.to_bits(), want.to_bits(), "{text}");
                assert_eq!(n, text.len());
                taken += 1;
            }
        }
        assert!(taken > 50_000, "{taken}");
        for (text, took) in [
            ("1.5,", Some(3)),
            (".5", Some(2)),
            ("7.", Some(2)),
            ("-0", Some(2)),
        ] {
            assert_eq!(quick_decimal(text.as_bytes()).map(|r| r.1), took, "{text}");
        }
        assert_eq!(quick_decimal(b"-0").unwrap().0.to_bits(), (-0f32).to_bits());
        for (text, want) in [
            ("12345678.5,......", None),
            ("1.12345678,.......", None),
            ("7,\n1,2,3,4,5", Some((7.0, 1))),
            ("-0.138264\n1,2,3,4", Some((-0.138264, 9))),
            ("1.5e3,.........", None),
        ] {
            assert_eq!(swar_decimal(text.as_bytes()), want, "{text}");
        }
        assert_eq!(swar_decimal(b"1.5"), None); // fewer than eight bytes
        for text in [
            "",
            ".",
            "-",
            "1e5",
            "16777217",
            "0.12345678901",
            "1234567890123456789",
        ] {
            assert_eq!(quick_decimal(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn a_cell_is_read_as_str_parse_reads_it() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(5);
        let alphabet = b"0123456789.-+e ,x";
        let mut read = 0;
        for k in 0..300_000 {
            // Half decimals of every shape up to 16 digits, half strings of digits, points,
            // signs and other bytes.
            let text: String = if k % 2 == 0 {
                let int: String = (0..rng.random_range(0..9usize))
                    .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
                    .collect();
                let frac: String = (0..rng.random_range(0..9usize))
                    .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
                    .collect();
                let sign = ["", "-", "+"][rng.random_range(0..3)];
                let point = if rng.random_range(0..4) == 0 && frac.is_empty() {
                    ""
                } else {
                    "."
                };
                format!("{sign}{int}{point}{frac}")
            } else {
                (0..rng.random_range(0..10usize))
                    .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
                    .collect()
            };
            let padded = format!("{text},1.5,2.25,3.125\n");
            let want = text.parse::<f32>().ok();
            for got in cell_numbers(padded.as_bytes(), text.len()) {
                match got {
                    Some(v) => {
                        assert_eq!(Some(v.to_bits()), want.map(f32::to_bits), "{text:?}");
                        read += 1;
                    }
                    // Declined: a shape left to the general parser, never a short decimal.
                    None => {
                        let digits = text.bytes().filter(u8::is_ascii_digit).count();
                        let plain = text.trim_start_matches(['-', '+']);
                        let short = plain.len() <= 8
                            && (1..8).contains(&digits)
                            && plain.bytes().filter(|&c| c == b'.').count() <= 1
                            && plain.bytes().all(|c| c.is_ascii_digit() || c == b'.')
                            && plain.len() + 1 >= text.len();
                        assert!(!short, "{text:?} declined");
                    }
                }
            }
        }
        assert!(read > 80_000, "{read}");
        for (text, want) in [
            ("-0", Some(-0.0f32)),
            ("-.5", Some(-0.5)),
            ("5.", Some(5.0)),
            ("0000001", Some(1.0)),
            ("1234567", Some(1_234_567.0)),
            ("9.999999", Some(9.999_999)),
            ("1..2", None),
            (".", None),
            ("-", None),
            ("+-1", None),
            ("1 ", None),
        ] {
            let padded = format!("{text},........");
            for got in cell_numbers(padded.as_bytes(), text.len()) {
                assert_eq!(got.map(f32::to_bits), want.map(f32::to_bits), "{text:?}");
            }
        }
        // Fewer than eight bytes from the digits on: left to the per-line path.
        assert_eq!(cell_numbers(b"1.5\n", 3), [None, None]);
    }

    /// [`cell_number`] of the cell `bytes[..len]` by both word readers (the plain one twice
    /// where the CPU lacks SSSE3 or SSE4.1).
    fn cell_numbers(bytes: &[u8], len: usize) -> [Option<f32>; 2] {
        let plain = cell_number::<false>(bytes, 0, len);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("ssse3")
            && std::arch::is_x86_feature_detected!("sse4.1")
        {
            return [plain, cell_number::<true>(bytes, 0, len)];
        }
        [plain, plain]
    }

    #[test]
    fn a_survey_counts_and_finds_what_the_searches_do() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(9);
        // Common bytes first (digits, separators), then the rare ones.
        let alphabet = b"0123456789,.\n\n\n\r\"a\xC3\xA9";
        // Lengths across the 16-byte steps and the 255-step sums (4080 bytes).
        for len in (0..100).chain([4079, 4080, 4081, 4096, 9000, 70_000]) {
            for rare in [0, 1, 2, 3] {
                // Rare bytes (quote, CR, non-ASCII) absent, or at random places.
                let bytes: Vec<u8> = (0..len)
                    .map(|_| match rng.random_range(0..100) {
                        0 if rare > 0 => alphabet[15 + rng.random_range(0..5usize)],
                        _ => alphabet[rng.random_range(0..15usize)],
                    })
                    .collect();
                let want = Survey {
                    newlines: bytes.iter().filter(|&&c| c == b'\n').count(),
                    quote_or_cr: bytes.iter().any(|&c| c == b'"' || c == b'\r'),
                    ascii: bytes.is_ascii(),
                };
                assert_eq!(survey(&bytes), want, "{len} bytes");
            }
        }
    }

    #[test]
    fn the_quotient_without_division_is_the_divisions() {
        // Powers of ten exact in f32 (5¹⁰ < 2²⁴): the division rounds once.
        const POW10: [f32; 11] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10];
        // Every numerator and every power: the proof that one rounding from f64 is the
        // division's.
        let wrong: Vec<(u64, usize)> = (0..(1u32 << 24) + 1)
            .into_par_iter()
            .with_min_len(1 << 16)
            .flat_map_iter(|m| {
                let m = u64::from(m);
                POW10.iter().enumerate().filter_map(move |(frac, &power)| {
                    (quotient(m, frac).to_bits() != (m as f32 / power).to_bits())
                        .then_some((m, frac))
                })
            })
            .collect();
        assert!(
            wrong.is_empty(),
            "m / 10^frac: {:?}",
            &wrong[..wrong.len().min(10)]
        );
    }

    #[test]
    fn lines_are_numbered_over_the_whole_file() {
        let roles = [Role::Feature, Role::Real];
        let text = "1,2\n3,4\n\n5,6\n7,x\n";
        for size in [1, 3, 100] {
            let e = parse(text.as_bytes(), 2, &roles, size).unwrap_err();
            assert_eq!(e.line, 6, "chunks of {size}");
            assert_eq!(e.fault, Fault::NotNumber(1, "x".into()));
        }
    }
}
