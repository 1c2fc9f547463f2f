//! `--data`: a synthetic spec, a `.csv` file or a `.npy` file, loaded into a `Dataset`.
//!
//! A synthetic spec is `synthetic:KIND` with optional `?key=value&…`:
//!
//! | kind | data | keys (defaults) |
//! |---|---|---|
//! | `linear` | `y = x·w* + b* + noise·ε` | `n` (1000), `p` (8), `seed`, `noise` (0.01) |
//! | `logistic` | 2 classes, `P(y=1) = σ(x·w* + b*)` | `n`, `p`, `seed` |
//! | `blobs` (or `softmax`) | Gaussian blobs | `n`, `p`, `k` (3), `seed` |
//! | `teacher` | labels of a random tanh network | `n`, `p`, `k` (3), `seed`, `hidden` (32), `argmax` (false: sampled labels) |
//! | `rings` | concentric rings in the first two features | `n`, `p` (2), `k` (2), `seed`, `noise` (0.1) |
//!
//! `seed` defaults to `--seed`.

use std::path::PathBuf;
use std::time::Instant;

use gradflow::data::{Dataset, RowSource, Synthetic};
use gradflow::io::model::DataColumns;
use gradflow::io::npy::NpyStream;
use gradflow::io::{Column, CsvOptions, ModelKind, TargetKind, csv, npy};

use super::CliError;

/// What `--data` names.
#[derive(Debug, Clone, PartialEq)]
pub enum DataSpec {
    /// A generator.
    Synthetic(Synthetic),
    /// A CSV file.
    Csv(PathBuf),
    /// A `.npy` file.
    Npy(PathBuf),
    /// A Parquet file.
    Parquet(PathBuf),
}

/// The grammar, for hints.
const GRAMMAR: &str = "expected synthetic:KIND?key=value&… (KIND: linear, logistic, blobs, \
                       teacher, rings; keys: n, p, k, seed, noise, hidden, argmax), a .csv \
                       file, a .npy file or a .parquet file";

impl DataSpec {
    /// Parses `--data`; `seed` is the default generator seed.
    ///
    /// # Errors
    /// A usage error naming the part that is wrong and what was expected.
    pub fn parse(text: &str, seed: u64) -> Result<Self, CliError> {
        if let Some(rest) = text.strip_prefix("synthetic:") {
            return parse_synthetic(text, rest, seed).map(DataSpec::Synthetic);
        }
        let path = PathBuf::from(text);
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_lowercase)
        {
            Some(e) if e == "csv" => Ok(DataSpec::Csv(path)),
            Some(e) if e == "npy" => Ok(DataSpec::Npy(path)),
            Some(e) if e == "parquet" || e == "pq" => Ok(DataSpec::Parquet(path)),
            _ => Err(CliError::usage(
                format!(
                    "--data {text}: not a synthetic spec, a .csv file, a .npy file or a \
                     .parquet file"
                ),
                GRAMMAR,
            )),
        }
    }
}

fn parse_synthetic(text: &str, rest: &str, seed: u64) -> Result<Synthetic, CliError> {
    let bad = |what: String| CliError::usage(format!("--data {text}: {what}"), GRAMMAR);
    let (kind, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for pair in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| bad(format!("\"{pair}\" is not key=value")))?;
        if keys.iter().any(|(seen, _)| *seen == k) {
            return Err(bad(format!("key \"{k}\" is given twice")));
        }
        keys.push((k, v));
    }
    let get = |key: &str| keys.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let int = |key: &str, default: usize| -> Result<usize, CliError> {
        get(key).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| bad(format!("{key}={v}: expected a whole number ≥ 0")))
        })
    };
    let allowed: &[&str] = match kind {
        "linear" => &["n", "p", "seed", "noise"],
        "logistic" => &["n", "p", "seed"],
        "blobs" | "softmax" => &["n", "p", "k", "seed"],
        "teacher" => &["n", "p", "k", "seed", "hidden", "argmax"],
        "rings" => &["n", "p", "k", "seed", "noise"],
        other => {
            return Err(bad(format!(
                "unknown kind \"{other}\": expected linear, logistic, blobs (or softmax), \
                 teacher or rings"
            )));
        }
    };
    if let Some((k, _)) = keys.iter().find(|(k, _)| !allowed.contains(k)) {
        return Err(bad(format!(
            "key \"{k}\" does not apply to {kind} data (its keys: {})",
            allowed.join(", ")
        )));
    }
    let n = int("n", 1000)?;
    let p = int("p", if kind == "rings" { 2 } else { 8 })?;
    let k = int("k", if kind == "rings" { 2 } else { 3 })?;
    let mut g = match kind {
        "linear" => Synthetic::linear(n, p),
        "logistic" => Synthetic::logistic(n, p),
        "blobs" | "softmax" => Synthetic::blobs(n, p, k),
        "teacher" => Synthetic::teacher(n, p, k).teacher_hidden(int("hidden", 32)?),
        _ => Synthetic::rings(n, p, k),
    };
    let seed = match get("seed") {
        Some(v) => v
            .parse()
            .map_err(|_| bad(format!("seed={v}: expected a whole number ≥ 0")))?,
        None => seed,
    };
    g = g.seed(seed);
    if let Some(v) = get("noise") {
        let noise: f32 = v
            .parse()
            .map_err(|_| bad(format!("noise={v}: expected a number ≥ 0")))?;
        g = g.noise(noise);
    }
    match get("argmax") {
        None | Some("false" | "0") => {}
        Some("true" | "1") => g = g.deterministic(),
        Some(v) => return Err(bad(format!("argmax={v}: expected true or false"))),
    }
    g.validate()
        .map_err(|e| CliError::usage(format!("--data {text}: {e}"), GRAMMAR))?;
    Ok(g)
}

/// Where the rows come from: loaded whole, or read in place as batches ask for them.
#[derive(Debug)]
pub enum Rows {
    /// In memory.
    Memory(Dataset),
    /// A memory-mapped `.npy` file.
    Npy(NpyStream),
    /// A Parquet file, read a row group at a time.
    Parquet(gradflow::io::parquet::ParquetStream),
    /// A generator: rows made by index.
    Synthetic(Synthetic),
}

/// A dataset ready to train on, with what a saved model keeps of it.
#[derive(Debug)]
pub struct Loaded {
    /// The data.
    pub rows: Rows,
    /// Class names (files only).
    pub labels: Option<Vec<String>>,
    /// The file's columns (files only).
    pub columns: DataColumns,
    /// Sample weights (a CSV's weight column).
    pub weights: Option<Vec<f32>>,
    /// Seconds spent making or reading the data.
    pub seconds: f64,
    /// Bytes of the file read whole in that time (`None`: generated, or read in place).
    pub bytes_read: Option<u64>,
}

impl Loaded {
    /// The rows in memory (read whole if they were streamed).
    ///
    /// # Errors
    /// The source's errors while reading; [`gradflow::Error::OutOfMemory`].
    pub fn into_dataset(self) -> Result<Dataset, CliError> {
        match self.rows {
            Rows::Memory(d) => Ok(d),
            Rows::Npy(f) => Ok(Dataset::from_source(&f)?),
            Rows::Parquet(f) => Ok(Dataset::from_source(&f)?),
            Rows::Synthetic(g) => Ok(g.dataset()?),
        }
    }

    /// The rows, wherever they are.
    pub fn source(&self) -> &dyn RowSource {
        match &self.rows {
            Rows::Memory(d) => d,
            Rows::Npy(f) => f,
            Rows::Parquet(f) => f,
            Rows::Synthetic(g) => g,
        }
    }
}

impl DataSpec {
    /// Whether the data can be read in place: a `.npy` file, or a generator whose rows
    /// the epoch plan can number (u32) and whose rows are of a sane width (a batch of
    /// 1,024 within 1 GiB). Data that cannot stream are loaded, and too large ones fail
    /// there with the allocator's error.
    pub fn streams(&self) -> bool {
        match self {
            DataSpec::Synthetic(g) => {
                g.n() <= u32::MAX as usize
                    && g.p().saturating_add(1).saturating_mul(4 << 10) <= 1 << 30
            }
            DataSpec::Npy(_) | DataSpec::Parquet(_) => true,
            DataSpec::Csv(_) => false,
        }
    }

    /// The bytes the data take in memory (features and targets as f32), if known
    /// before reading: a generator's size, or a `.npy` file's.
    pub fn bytes(&self) -> Option<u64> {
        match self {
            // Saturating: a spec's sizes are the user's, checked only when it is made.
            DataSpec::Synthetic(g) => Some(
                (g.n() as u64)
                    .saturating_mul((g.p() as u64).saturating_add(1))
                    .saturating_mul(4),
            ),
            DataSpec::Npy(path) | DataSpec::Csv(path) | DataSpec::Parquet(path) => {
                std::fs::metadata(path).ok().map(|m| m.len())
            }
        }
    }
}

/// Makes or reads the data for `model`: class labels for classifiers, real targets for
/// linear regression; with `stream`, a generator or a `.npy` file is read in place
/// instead of loaded (a CSV file cannot be: it is read whole).
///
/// # Errors
/// A usage error for `--target` with synthetic data; the reader's errors (file, line,
/// column, value).
pub fn load(
    spec: &DataSpec,
    (target, weight): (Option<&Column>, Option<&Column>),
    model: ModelKind,
    (stream, header): (bool, Option<bool>),
) -> Result<Loaded, CliError> {
    if let (Some(w), false) = (weight, matches!(spec, DataSpec::Csv(_))) {
        return Err(CliError::usage(
            format!("--sample-weight {w}: only a .csv file has a weight column"),
            "put the weights in a column of a .csv file",
        ));
    }
    let started = Instant::now();
    let kind = if model.is_classifier() {
        TargetKind::Classes
    } else {
        TargetKind::Real
    };
    let (rows, labels, columns, weights) = match spec {
        DataSpec::Synthetic(g) => {
            if let Some(t) = target {
                return Err(CliError::usage(
                    format!("--target {t}: synthetic data has no columns to choose from"),
                    "--target applies to .csv and .npy files",
                ));
            }
            let rows = match stream {
                true => Rows::Synthetic(g.clone()),
                false => Rows::Memory(g.dataset()?),
            };
            (rows, None, DataColumns::default(), None)
        }
        DataSpec::Csv(path) => {
            let mut options = CsvOptions {
                target: target.cloned(),
                weight: weight.cloned(),
                header,
                ..CsvOptions::default()
            };
            options.kind = kind;
            let data = csv::read(path, &options)?;
            let columns = DataColumns {
                features: data.feature_names(),
                target: data.target_name().map(str::to_string),
                target_column: Some(data.target_column),
                weight: data.weight_name().map(str::to_string),
                weight_column: data.weight_column,
                file: Some("csv".into()),
            };
            (
                Rows::Memory(data.dataset),
                data.labels,
                columns,
                data.weights,
            )
        }
        DataSpec::Parquet(path) if stream => {
            let file = gradflow::io::parquet::open(path, target, kind)?;
            let columns = DataColumns {
                target_column: Some(file.target_column),
                file: Some("parquet".into()),
                ..DataColumns::default()
            };
            let labels = file.labels.clone();
            (Rows::Parquet(file), labels, columns, None)
        }
        DataSpec::Parquet(path) => {
            let data = gradflow::io::parquet::read(path, target, kind)?;
            let columns = DataColumns {
                features: Some(data.feature_names()),
                target: Some(data.header[data.target_column].clone()),
                target_column: Some(data.target_column),
                file: Some("parquet".into()),
                ..DataColumns::default()
            };
            (Rows::Memory(data.dataset), data.labels, columns, None)
        }
        DataSpec::Npy(path) if stream => {
            let file = npy::open(path, target, kind)?;
            let columns = DataColumns {
                target_column: Some(file.target_column),
                file: Some("npy".into()),
                ..DataColumns::default()
            };
            let labels = file.labels.clone();
            (Rows::Npy(file), labels, columns, None)
        }
        DataSpec::Npy(path) => {
            let data = npy::read(path, target, kind)?;
            let columns = DataColumns {
                target_column: Some(data.target_column),
                file: Some("npy".into()),
                ..DataColumns::default()
            };
            (Rows::Memory(data.dataset), data.labels, columns, None)
        }
    };
    let bytes_read = match (&rows, spec) {
        (Rows::Memory(_), DataSpec::Csv(_) | DataSpec::Npy(_) | DataSpec::Parquet(_)) => {
            spec.bytes()
        }
        _ => None,
    };
    Ok(Loaded {
        rows,
        labels,
        columns,
        weights,
        seconds: started.elapsed().as_secs_f64(),
        bytes_read,
    })
}

/// The default data of `gradcheck` for each model: small, and of the kind it takes.
pub fn small_default(model: ModelKind) -> &'static str {
    match model {
        ModelKind::Linear => "synthetic:linear?n=64&p=5",
        ModelKind::Logistic => "synthetic:logistic?n=64&p=5",
        ModelKind::Softmax => "synthetic:blobs?n=64&p=5&k=3",
        ModelKind::Mlp => "synthetic:blobs?n=64&p=4&k=3",
    }
}
