//! The saved-model file: versioned JSON, written atomically.
//!
//! # Format, version 1
//!
//! ```json
//! {
//!   "format": "gradflow-model",
//!   "version": 1,
//!   "model": "mlp",
//!   "spec": { "inputs": 4, "outputs": 3, "hidden": 16, "activation": "tanh" },
//!   "params": [
//!     { "name": "W1", "shape": [4, 16], "values": [0.12, -0.5, ...] },
//!     { "name": "b1", "shape": [1, 16], "values": [...] },
//!     { "name": "W2", "shape": [16, 3], "values": [...] },
//!     { "name": "b2", "shape": [1, 3],  "values": [...] }
//!   ],
//!   "labels": ["setosa", "versicolor", "virginica"],
//!   "data": { "features": ["sepal_length", ...], "target": "species", "target_column": 4 },
//!   "trained": { "data": "iris.csv", "rows": 150, "epochs": 100, "final_loss": 0.061, ... },
//!   "scaler": { "mean": [5.84, ...], "scale": [0.83, ...] },
//!   "state": { "epochs_done": 100, "updates": 500, "adaptive": [1.0, null, 0],
//!              "optimizer": [[[...], [...]], ...] }
//! }
//! ```
//!
//! | field | meaning |
//! |---|---|
//! | `format` | always `"gradflow-model"` |
//! | `version` | `1`; a reader refuses any other |
//! | `model` | `linear`, `logistic`, `softmax` or `mlp` |
//! | `spec` | `inputs` (features p), `outputs` (1, or the classes k); MLP only: `hidden`, `activation` (`sigmoid`, `tanh`, `relu`) |
//! | `params` | every parameter tensor in the model's order (`W`, `b`; MLP `W1`, `b1`, `W2`, `b2`), `shape` `[rows, cols]`, `values` row-major f32 |
//! | `labels` | optional: classifiers' class names, `labels[c]` for class `c` |
//! | `data` | optional: the training file's feature names, target name and target column (from 0), and the sample-weight column's name and position when one was used (predict skips it) |
//! | `trained` | optional, informational: how the model was trained ([`TrainSummary`]) |
//! | `scaler` | optional: the standardisation the parameters expect (`mean`, `scale`, one per input); predictions apply it |
//! | `state` | optional: what a fit needs to go on exactly ([`TrainState`]): epochs done, updates, the adaptive schedule (divisor, best loss or `null` for none yet, epochs since), and two optimizer tensors per parameter. A checkpoint: `partial_fit` on the loaded model equals the uninterrupted fit |
//!
//! Unknown fields are ignored. `W` is `inputs × outputs`: prediction is `x W + b`, with
//! the sigmoid (logistic) or softmax (softmax, MLP) on top for probabilities. The file
//! format is written from its own structs, not from gradflow's internal types, so that
//! internal changes do not change the format; a change of the format raises `version`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{io_error, write_atomic};
use crate::data::Standardizer;
use crate::error::{Error, Result};
use crate::model::{Arch, Fitted, Model, Spec};
pub use crate::model::{Kind as ModelKind, Prediction};
use crate::program::Activation;
use crate::program::LossKind;
use crate::train::{Report, TrainConfig, TrainState};

/// The `format` field of every model file.
pub const FORMAT: &str = "gradflow-model";
/// The format version this gradflow writes and reads.
pub const VERSION: u64 = 1;

/// How a saved model was trained: informational, never needed to predict.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainSummary {
    /// The data it was trained on (a path or a synthetic spec).
    pub data: String,
    /// Training rows.
    pub rows: usize,
    /// Epochs run.
    pub epochs: usize,
    /// Updates applied.
    pub steps: u64,
    /// Batch size (the mini-batch loop's; L-BFGS reads every row per evaluation).
    pub batch_size: usize,
    /// The solver: `lbfgs` or `sgd` (the mini-batch loop).
    pub solver: String,
    /// The mini-batch loop's learning rate (after any back-off; `null` for L-BFGS).
    pub learning_rate: Option<f64>,
    /// Whether a convergence rule ended the fit (`false` when the epoch cap did).
    pub converged: bool,
    /// Why the fit stopped, in words.
    pub stop: String,
    /// Seed of shuffles and initialisation.
    pub seed: u64,
    /// Backend and adapter (`cpu`, `gpu: NAME (Vulkan)`).
    pub backend: String,
    /// The last epoch's mean loss.
    pub final_loss: Option<f64>,
    /// Wall time of the fit, seconds.
    pub wall_seconds: f64,
    /// Scores on the training data (`r2`, `mse`, `accuracy`).
    pub metrics: BTreeMap<String, f64>,
}

impl TrainSummary {
    /// The summary of a fit described by its report and configuration.
    pub fn new(
        report: &Report,
        config: &TrainConfig,
        data: impl Into<String>,
        rows: usize,
    ) -> Self {
        TrainSummary {
            data: data.into(),
            rows,
            epochs: report.epoch_losses.len(),
            steps: report.steps,
            batch_size: config.batch_size,
            solver: match report.choices.solver {
                crate::train::Solver::Lbfgs { .. } => "lbfgs".into(),
                crate::train::Solver::Normal => "normal".into(),
                _ => "sgd".into(),
            },
            learning_rate: report.choices.learning_rate,
            converged: report.converged,
            stop: report.stop.to_string(),
            seed: config.seed,
            backend: report.backend.clone(),
            final_loss: Some(report.final_loss()).filter(|v| v.is_finite()),
            wall_seconds: report.wall.as_secs_f64(),
            metrics: BTreeMap::new(),
        }
    }
}

/// The training file's columns, stored so that prediction can read a file laid out the
/// same way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DataColumns {
    /// The feature columns' names, in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    /// The target column's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The target column's position in the training file, from 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_column: Option<usize>,
    /// The sample-weight column's name, when the model was trained with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<String>,
    /// The sample-weight column's position in the training file, from 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_column: Option<usize>,
    /// The training file's kind (`csv`, `npy`, `parquet`): where its target column sits in
    /// an array made from it depends on how it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// A fitted model with what a model file holds besides its parameters.
///
/// # Example
/// ```
/// use gradflow::{data::Synthetic, io::{Prediction, SavedModel}, model::SoftmaxRegression};
/// use gradflow::{TrainConfig, Trainer};
/// let data = Synthetic::blobs(300, 2, 3).seed(1).dataset()?;
/// let mut model = SoftmaxRegression::new();
/// model.fit(&data, &Trainer::new(TrainConfig::sgd().epochs(5))?)?;
///
/// let path = std::env::temp_dir().join("gradflow-doc-model.json");
/// SavedModel::from_model(&model)?
///     .with_labels(vec!["red".into(), "green".into(), "blue".into()])?
///     .save(&path)?;
/// let loaded = SavedModel::load(&path)?;
/// let Prediction::Classes { classes, .. } = loaded.predict(data.features())? else { unreachable!() };
/// assert_eq!(classes, model.predict(data.features())?); // the same parameters, bit for bit
/// assert_eq!(loaded.label(classes[0] as usize), ["red", "green", "blue"][classes[0] as usize]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SavedModel {
    fitted: Fitted,
    labels: Option<Vec<String>>,
    /// The training file's columns (for prediction on files like it).
    pub columns: DataColumns,
    /// How it was trained.
    pub trained: Option<TrainSummary>,
}

impl SavedModel {
    /// Wraps fitted parameters, checking them against their spec.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the parameters do not match the spec's program;
    /// [`Error::NonFinite`] for a NaN or infinite parameter.
    pub fn new(fitted: Fitted) -> Result<Self> {
        check_params(&fitted).map_err(|reason| Error::ShapeMismatch {
            what: "model parameters",
            expected: "the shapes of the model's spec".into(),
            got: reason,
        })?;
        for p in &fitted.params {
            crate::data::check_finite("model parameters", p, 1)?;
        }
        Ok(SavedModel {
            fitted,
            labels: None,
            columns: DataColumns::default(),
            trained: None,
        })
    }

    /// The fitted parameters of `model`.
    ///
    /// # Errors
    /// [`Error::NotFitted`] before `fit`; as [`SavedModel::new`].
    pub fn from_model<M: Model + ?Sized>(model: &M) -> Result<Self> {
        let fitted = model.fitted().ok_or(Error::NotFitted {
            model: model.name(),
            action: "save",
        })?;
        Self::new(fitted.clone())
    }

    /// Names the classes: `labels[c]` for class `c`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when there is not one name per class (or the model is a
    /// regression).
    pub fn with_labels(mut self, labels: Vec<String>) -> Result<Self> {
        let k = self.classes().unwrap_or(0);
        if labels.len() != k {
            return Err(Error::ShapeMismatch {
                what: "class labels",
                expected: format!("{k} names, one per class of the model"),
                got: format!("{} names", labels.len()),
            });
        }
        self.labels = Some(labels);
        Ok(self)
    }

    /// Sets the training file's columns.
    pub fn with_columns(mut self, columns: DataColumns) -> Self {
        self.columns = columns;
        self
    }

    /// Sets the training summary.
    pub fn with_summary(mut self, summary: TrainSummary) -> Self {
        self.trained = Some(summary);
        self
    }

    /// Which model.
    pub fn kind(&self) -> ModelKind {
        ModelKind::of(&self.fitted.spec)
    }

    /// Architecture and parameters.
    pub fn fitted(&self) -> &Fitted {
        &self.fitted
    }

    /// Input features p.
    pub fn p(&self) -> usize {
        self.fitted.spec.p
    }

    /// Classes k of a classifier (2 for logistic regression), `None` for regression.
    pub fn classes(&self) -> Option<usize> {
        match self.kind() {
            ModelKind::Linear => None,
            ModelKind::Logistic => Some(2),
            ModelKind::Softmax | ModelKind::Mlp => Some(self.fitted.spec.outputs()),
        }
    }

    /// The class names, when set.
    pub fn labels(&self) -> Option<&[String]> {
        self.labels.as_deref()
    }

    /// The name of class `c`: its label, or the number itself.
    pub fn label(&self, c: usize) -> String {
        self.labels
            .as_ref()
            .and_then(|l| l.get(c).cloned())
            .unwrap_or_else(|| c.to_string())
    }

    /// Predicts the rows of `x` (row-major, p values per row).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `x` is not whole rows of p features, [`Error::NonFinite`]
    /// for a NaN or infinite feature, [`Error::Empty`] for no rows.
    pub fn predict(&self, x: &[f32]) -> Result<Prediction> {
        crate::model::predict(self.kind().title(), Some(&self.fitted), x)
    }

    /// The output layer's values for the rows of `x`, `n × outputs` row-major: a
    /// regression's predictions, a classifier's logits before σ or softmax (scikit-learn's
    /// `decision_function`). [`SavedModel::predict`]'s classes are their arg-max (a
    /// logistic regression's: `z > 0`), computed row by row, so a row's value does not
    /// depend on the rows predicted with it.
    ///
    /// ```
    /// use gradflow::{data::Synthetic, io::SavedModel, model::LogisticRegression, TrainConfig, Trainer};
    /// let data = Synthetic::logistic(200, 3).seed(1).dataset()?;
    /// let mut model = LogisticRegression::new();
    /// Trainer::new(TrainConfig::default())?.fit(&mut model, &data)?;
    /// let saved = SavedModel::from_model(&model)?;
    /// assert_eq!(saved.output(data.features())?, model.decision_function(data.features())?);
    /// # Ok::<(), gradflow::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`SavedModel::predict`].
    pub fn output(&self, x: &[f32]) -> Result<Vec<f32>> {
        crate::model::forward_output(self.kind().title(), Some(&self.fitted), x)
    }

    /// The model file's text (pretty-printed JSON).
    pub fn to_json(&self) -> String {
        let spec = &self.fitted.spec;
        let (hidden, activation) = match spec.arch {
            Arch::Mlp {
                hidden, activation, ..
            } => (Some(hidden), Some(activation.name().to_string())),
            Arch::Glm { .. } => (None, None),
        };
        let program = spec.program();
        let file = ModelFile {
            format: FORMAT.into(),
            version: VERSION,
            model: self.kind().name().into(),
            spec: SpecFile {
                inputs: spec.p,
                outputs: spec.outputs(),
                hidden,
                activation,
            },
            params: program
                .params
                .iter()
                .zip(&self.fitted.params)
                .map(|(d, v)| ParamFile {
                    name: d.name.into(),
                    shape: [d.rows, d.cols],
                    values: v.clone(),
                })
                .collect(),
            labels: self.labels.clone(),
            data: (self.columns != DataColumns::default()).then(|| self.columns.clone()),
            trained: self.trained.clone(),
            scaler: self.fitted.scaler.as_ref().map(|s| ScalerFile {
                mean: s.mean.clone(),
                scale: s.scale.clone(),
            }),
            state: self.fitted.state.as_ref().map(StateFile::of),
        };
        serde_json::to_string_pretty(&file).expect("a model file always serialises")
    }

    /// Reads a model from the text of a model file; `path` names it in errors.
    ///
    /// # Errors
    /// As [`SavedModel::load`], but no I/O error.
    pub fn from_json(text: &[u8], path: &str) -> Result<Self> {
        let bad = |reason: String| Error::BadFile {
            path: path.to_string(),
            reason,
        };
        let value: serde_json::Value = serde_json::from_slice(text)
            .map_err(|e| bad(format!("not valid JSON (truncated or corrupt?): {e}")))?;
        match value.get("format") {
            Some(serde_json::Value::String(f)) if f == FORMAT => {}
            Some(other) => {
                return Err(bad(format!(
                    "not a gradflow model file: \"format\" is {other}, expected \"{FORMAT}\""
                )));
            }
            None => {
                return Err(bad(format!(
                    "not a gradflow model file: no \"format\": \"{FORMAT}\" field"
                )));
            }
        }
        match value.get("version").and_then(serde_json::Value::as_u64) {
            Some(VERSION) => {}
            Some(v) => {
                return Err(bad(format!(
                    "model file version {v} is not supported: this gradflow reads version \
                     {VERSION} (saved by a newer gradflow?)"
                )));
            }
            None => {
                return Err(bad(format!(
                    "\"version\" is {}, expected the number {VERSION}",
                    value
                        .get("version")
                        .map_or("missing".into(), |v| v.to_string())
                )));
            }
        }
        let mut file: ModelFile =
            serde_json::from_value(value).map_err(|e| bad(format!("bad model file: {e}")))?;
        let spec = file.spec().map_err(&bad)?;
        let params: Vec<Vec<f32>> = file.params.iter().map(|p| p.values.clone()).collect();
        let scaler = match &file.scaler {
            Some(sc) => {
                let ok = sc.mean.len() == spec.p
                    && sc.scale.len() == spec.p
                    && sc.mean.iter().all(|v| v.is_finite())
                    && sc.scale.iter().all(|v| v.is_finite() && *v > 0.0);
                if !ok {
                    return Err(bad(format!(
                        "\"scaler\" needs {} finite means and {} finite positive scales, \
                         got {} and {}",
                        spec.p,
                        spec.p,
                        sc.mean.len(),
                        sc.scale.len()
                    )));
                }
                Some(Standardizer {
                    mean: sc.mean.clone(),
                    scale: sc.scale.clone(),
                })
            }
            None => None,
        };
        let state = file.state.take().map(StateFile::state);
        if let Some(st) = &state {
            // What JSON cannot hold back (an f32 beyond its range reads as infinity, and
            // would be written as null) and what no fit produces.
            let (divisor, best, _) = st.adaptive;
            if !(divisor.is_finite() && divisor > 0.0) || best.is_nan() || best == f64::NEG_INFINITY
            {
                return Err(bad(format!(
                    "\"state\": the adaptive schedule's divisor {divisor} and best loss {best} \
                     must be finite (the divisor > 0)"
                )));
            }
            for (i, pair) in st.optimizer.iter().enumerate() {
                if let Some(v) = pair.iter().flatten().find(|v| !v.is_finite()) {
                    return Err(bad(format!(
                        "\"state\": optimizer tensor {i} holds {v}: every value must be a \
                         finite f32"
                    )));
                }
            }
        }
        let fitted = Fitted {
            spec,
            params,
            state,
            scaler,
        };
        // Names and shapes as the file states them, then the values against the program.
        let program = spec.program();
        if file.params.len() != program.params.len() {
            return Err(bad(format!(
                "{} parameter tensors, but a {} model has {} ({})",
                file.params.len(),
                file.model,
                program.params.len(),
                program
                    .params
                    .iter()
                    .map(|d| d.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        for (p, d) in file.params.iter().zip(&program.params) {
            if p.name != d.name || p.shape != [d.rows, d.cols] {
                return Err(bad(format!(
                    "parameter \"{}\" of shape {:?} does not match the spec: expected \"{}\" \
                     of shape [{}, {}]",
                    p.name, p.shape, d.name, d.rows, d.cols
                )));
            }
        }
        check_params(&fitted).map_err(&bad)?;
        if let Some(st) = &fitted.state {
            program
                .check_state(&st.optimizer)
                .map_err(|e| bad(format!("\"state\": {e}")))?;
        }
        let mut model = SavedModel::new(fitted).map_err(|e| bad(e.to_string()))?;
        if let Some(labels) = file.labels {
            model = model.with_labels(labels).map_err(|e| bad(e.to_string()))?;
        }
        model.columns = file.data.unwrap_or_default();
        model.trained = file.trained;
        Ok(model)
    }

    /// Writes the model file atomically: to a temporary file in the same directory,
    /// flushed to disk, then renamed over `path`, so that a crash leaves either the old
    /// file or the new one, never half of one.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path.as_ref(), self.to_json().as_bytes())
    }

    /// Reads a model file.
    ///
    /// # Errors
    /// [`Error::Io`] when it cannot be read; [`Error::BadFile`] naming the file for
    /// anything else: not JSON (truncated or corrupt), another `format`, a `version`
    /// other than 1, a missing or mistyped field, an unknown model or activation,
    /// parameters whose count, names, shapes or value counts do not match the spec,
    /// non-finite values, or class labels that are not one per class.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read(path).map_err(|e| io_error(path, &e))?;
        Self::from_json(&text, &path.display().to_string())
    }
}

/// The parameters' count and lengths against the spec's program.
fn check_params(fitted: &Fitted) -> std::result::Result<(), String> {
    let program = fitted.spec.program();
    if fitted.params.len() != program.params.len() {
        return Err(format!(
            "{} parameter tensors, expected {}",
            fitted.params.len(),
            program.params.len()
        ));
    }
    for (d, v) in program.params.iter().zip(&fitted.params) {
        if v.len() != d.rows * d.cols {
            return Err(format!(
                "parameter \"{}\" has {} values, expected {} × {} = {}",
                d.name,
                v.len(),
                d.rows,
                d.cols,
                d.rows * d.cols
            ));
        }
    }
    Ok(())
}

/// Version 1 of the file, as written (see the module documentation).
#[derive(Serialize, Deserialize)]
struct ModelFile {
    format: String,
    version: u64,
    model: String,
    spec: SpecFile,
    params: Vec<ParamFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    labels: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<DataColumns>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trained: Option<TrainSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scaler: Option<ScalerFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state: Option<StateFile>,
}

#[derive(Serialize, Deserialize)]
struct ScalerFile {
    mean: Vec<f32>,
    scale: Vec<f32>,
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    epochs_done: usize,
    updates: u64,
    /// Divisor, best epoch loss (`None` before any: JSON has no infinity), epochs since.
    adaptive: (f64, Option<f64>, usize),
    optimizer: Vec<[Vec<f32>; 2]>,
}

impl StateFile {
    fn of(s: &TrainState) -> Self {
        let (div, best, since) = s.adaptive;
        StateFile {
            epochs_done: s.epochs_done,
            updates: s.updates,
            adaptive: (div, best.is_finite().then_some(best), since),
            optimizer: s.optimizer.clone(),
        }
    }

    fn state(self) -> TrainState {
        let (div, best, since) = self.adaptive;
        TrainState {
            epochs_done: self.epochs_done,
            updates: self.updates,
            adaptive: (div, best.unwrap_or(f64::INFINITY), since),
            optimizer: self.optimizer,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct SpecFile {
    inputs: usize,
    outputs: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hidden: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    activation: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct ParamFile {
    name: String,
    shape: [usize; 2],
    values: Vec<f32>,
}

impl ModelFile {
    /// The spec the file describes, checked for consistency.
    fn spec(&self) -> std::result::Result<Spec, String> {
        let kind: ModelKind = self.model.parse().map_err(|e: Error| e.to_string())?;
        let s = &self.spec;
        if s.inputs == 0 {
            return Err("spec.inputs is 0: a model needs at least 1 feature".into());
        }
        let glm_only = |loss: LossKind, outputs_ok: bool, expected: &str| {
            if s.hidden.is_some() || s.activation.is_some() {
                return Err(format!(
                    "spec of a {} model has \"hidden\"/\"activation\", which only an mlp has",
                    self.model
                ));
            }
            if !outputs_ok {
                return Err(format!(
                    "spec.outputs is {}: a {} model has {expected}",
                    s.outputs, self.model
                ));
            }
            Ok(Arch::Glm {
                loss,
                outputs: s.outputs,
            })
        };
        let arch = match kind {
            ModelKind::Linear => glm_only(LossKind::Mse, s.outputs == 1, "1")?,
            ModelKind::Logistic => glm_only(LossKind::SigmoidBce, s.outputs == 1, "1")?,
            ModelKind::Softmax => glm_only(LossKind::SoftmaxCce, s.outputs >= 2, "at least 2")?,
            ModelKind::Mlp => {
                let hidden = s.hidden.filter(|&h| h > 0).ok_or_else(|| {
                    format!("spec.hidden is {:?}: an mlp needs a width ≥ 1", s.hidden)
                })?;
                let activation: Activation = s
                    .activation
                    .as_deref()
                    .ok_or("spec.activation is missing: an mlp needs one")?
                    .parse()
                    .map_err(|e: Error| format!("spec.{e}"))?;
                if s.outputs < 2 {
                    return Err(format!(
                        "spec.outputs is {}: an mlp has at least 2 classes",
                        s.outputs
                    ));
                }
                Arch::Mlp {
                    hidden,
                    activation,
                    classes: s.outputs,
                }
            }
        };
        Ok(Spec { arch, p: s.inputs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Synthetic;
    use crate::model::Mlp;
    use crate::{TrainConfig, Trainer};

    fn fitted_mlp() -> (SavedModel, Vec<f32>) {
        let data = Synthetic::blobs(200, 3, 3).seed(4).dataset().unwrap();
        let mut mlp = Mlp::new(5).with_activation(Activation::Tanh);
        mlp.fit(&data, &Trainer::new(TrainConfig::sgd().epochs(2)).unwrap())
            .unwrap();
        let saved = SavedModel::from_model(&mlp)
            .unwrap()
            .with_labels(vec!["a".into(), "b".into(), "c".into()])
            .unwrap();
        (saved, data.features().to_vec())
    }

    fn reason(text: &str) -> String {
        SavedModel::from_json(text.as_bytes(), "m.json")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn round_trip_keeps_parameters_bit_for_bit() {
        let (saved, x) = fitted_mlp();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        saved.save(&path).unwrap();
        let loaded = SavedModel::load(&path).unwrap();
        assert_eq!(loaded, saved);
        assert_eq!(loaded.predict(&x).unwrap(), saved.predict(&x).unwrap());
        assert_eq!(loaded.kind(), ModelKind::Mlp);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "the temporary file must be renamed away");
    }

    #[test]
    fn wrong_format_or_version_is_refused() {
        let (saved, _) = fitted_mlp();
        let text = saved.to_json();
        let m = reason(&text.replacen("\"version\": 1", "\"version\": 2", 1));
        assert!(
            m.contains("m.json: model file version 2 is not supported"),
            "{m}"
        );
        let m = reason(&text.replacen("gradflow-model", "other", 1));
        assert!(
            m.contains("not a gradflow model file: \"format\" is \"other\""),
            "{m}"
        );
        let m = reason("{\"weights\": [1, 2]}");
        assert!(m.contains("no \"format\""), "{m}");
    }

    #[test]
    fn truncated_and_corrupt_files_are_refused() {
        let (saved, _) = fitted_mlp();
        let text = saved.to_json();
        let m = reason(&text[..text.len() / 2]);
        assert!(m.contains("not valid JSON (truncated or corrupt?)"), "{m}");
        assert!(m.contains("EOF"), "{m}");
        let m = reason(&text.replacen("\"params\"", "\"parameters\"", 1));
        assert!(m.contains("missing field `params`"), "{m}");
    }

    #[test]
    fn mismatched_shapes_are_refused() {
        let (saved, _) = fitted_mlp();
        let text = saved.to_json();
        // spec says 4 inputs, W1 is stored 3 × 5.
        let m = reason(&text.replacen("\"inputs\": 3", "\"inputs\": 4", 1));
        assert!(
            m.contains("parameter \"W1\" of shape [3, 5] does not match the spec: expected \"W1\" of shape [4, 5]"),
            "{m}"
        );
        // A shape that agrees with the spec but values that do not fill it.
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["params"][3]["values"].as_array_mut().unwrap().pop();
        let m = reason(&v.to_string());
        assert!(
            m.contains("parameter \"b2\" has 2 values, expected 1 × 3 = 3"),
            "{m}"
        );
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["labels"].as_array_mut().unwrap().pop();
        let m = reason(&v.to_string());
        assert!(m.contains("expected 3 names, one per class"), "{m}");
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["spec"]["activation"] = "swish".into();
        let m = reason(&v.to_string());
        assert!(m.contains("swish"), "{m}");
    }

    #[test]
    fn linear_model_predicts_its_formula() {
        // W = [2, -1], b = 0.5: row (1, 3) → 2 − 3 + 0.5 = −0.5.
        let spec = Spec {
            arch: Arch::Glm {
                loss: LossKind::Mse,
                outputs: 1,
            },
            p: 2,
        };
        let fitted = Fitted::new(spec, vec![vec![2.0, -1.0], vec![0.5]]);
        let saved = SavedModel::new(fitted).unwrap();
        let loaded = SavedModel::from_json(saved.to_json().as_bytes(), "m").unwrap();
        assert_eq!(
            loaded.predict(&[1.0, 3.0]).unwrap(),
            Prediction::Real(vec![-0.5])
        );
        assert!(loaded.with_labels(vec!["x".into()]).is_err());
    }
}
