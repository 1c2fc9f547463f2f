//! `gradflow._gradflow`: the extension module under the Python package's estimators.
//!
//! Deliberately small: one `fit` that takes NumPy arrays and a dictionary of settings
//! and returns a [`Model`] and a report, and the fitted model's read-outs (its output
//! layer, parameters, scaler, model file). The scikit-learn interface — validation,
//! labels, fitted attributes — is Python, in `gradflow/_estimators.py`, where
//! scikit-learn's own helpers live.
//!
//! Every fit and prediction runs with the GIL released. A fit runs on a worker thread
//! while the calling thread waits for it and, every 100 ms, takes the GIL to look for a
//! signal: Ctrl-C sets the trainer's interrupt flag ([`Trainer::with_interrupt`]), the
//! fit stops at its next step, and `KeyboardInterrupt` is raised with the model as it
//! was before the call.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use gradflow::data::{ClassWeight, Dataset, SharedFeatures, Targets};
use gradflow::io::SavedModel;
use gradflow::model::{Init, Kind};
use gradflow::program::Activation;
use gradflow::{
    EarlyStopping, Error, NoImprovement, Optimizer, Penalty, Report, Solver, StopReason,
    TrainConfig, Trainer, Verify,
};
use numpy::{
    PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// A gradflow error as a Python exception: `ValueError` for what the caller passed
/// (parameters, shapes, values, files), `RuntimeError` for what went wrong in training
/// (divergence, the device, a verify mismatch).
fn to_py(e: Error) -> PyErr {
    match e {
        Error::Interrupted { .. } => PyKeyboardInterrupt::new_err(e.to_string()),
        // The estimators leave the features' finiteness to this one vectorised pass, and
        // word it as scikit-learn's validation does.
        Error::NonFinite {
            what: "features",
            row,
            col,
            value,
        } => {
            let kind = if value.is_nan() {
                "NaN"
            } else {
                "infinity or a value too large for dtype('float32')"
            };
            PyValueError::new_err(format!(
                "Input X contains {kind}. (row {row}, column {col}: {value})"
            ))
        }
        Error::InvalidParameter { .. }
        | Error::ShapeMismatch { .. }
        | Error::Empty { .. }
        | Error::NonFinite { .. }
        | Error::LabelOutOfRange { .. }
        | Error::TargetMismatch { .. }
        | Error::NotFitted { .. }
        | Error::BadFile { .. } => PyValueError::new_err(e.to_string()),
        _ => PyRuntimeError::new_err(e.to_string()),
    }
}

/// Features lent by a NumPy array for the length of one call: a pointer into the
/// array's data, which the caller's [`PyReadonlyArray2`] keeps alive and borrowed
/// read-only (NumPy's borrow flag) until the call returns.
struct Lent {
    ptr: *const f32,
    len: usize,
}

// SAFETY: `Lent` is only read, and only while the `PyReadonlyArray2` it points into is
// held by `fit` (the worker thread that reads it is joined before `fit` returns, and the
// dataset holding the only `Arc<Lent>` is dropped on that thread).
unsafe impl Send for Lent {}
unsafe impl Sync for Lent {}

impl AsRef<[f32]> for Lent {
    fn as_ref(&self) -> &[f32] {
        // SAFETY: see the `Send` impl: the array outlives every use.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// Runs `work` on a worker thread with the GIL released, looking for signals every
/// 100 ms; a signal's exception (Ctrl-C's `KeyboardInterrupt`) sets `stop` and is raised
/// once the worker has stopped.
fn run_interruptible<T: Send>(
    py: Python<'_>,
    stop: &AtomicBool,
    work: impl FnOnce() -> Result<T, Error> + Send,
) -> PyResult<T> {
    let (out, signal) = py.detach(|| {
        std::thread::scope(|s| {
            let (tx, rx) = mpsc::channel();
            let worker = s.spawn(move || {
                // A send fails only when this thread has gone, which it cannot have.
                let _ = tx.send(work());
            });
            let mut signal = None;
            let out = loop {
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(out) => break Some(out),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if signal.is_none() {
                            // Signals reach the main thread only; elsewhere a no-op.
                            if let Err(e) = Python::attach(|py| py.check_signals()) {
                                stop.store(true, Ordering::Relaxed);
                                signal = Some(e);
                            }
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break None,
                }
            };
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
            (out, signal)
        })
    });
    if let Some(e) = signal {
        return Err(e);
    }
    match out {
        Some(out) => out.map_err(to_py),
        None => Err(PyRuntimeError::new_err(
            "the training thread ended without a result",
        )),
    }
}

/// Two float32 vectors (a scaler's means and scales).
type Pair<'py> = (Bound<'py, PyArray1<f32>>, Bound<'py, PyArray1<f32>>);

/// A fitted gradflow model: parameters, feature scaling and training state (the
/// versioned model file's contents).
#[pyclass(module = "gradflow._gradflow", frozen)]
struct Model {
    saved: SavedModel,
}

#[pymethods]
impl Model {
    /// `linear`, `logistic`, `softmax` or `mlp`.
    #[getter]
    fn kind(&self) -> &'static str {
        Kind::of(&self.saved.fitted().spec).name()
    }

    /// Input features.
    #[getter]
    fn n_features(&self) -> usize {
        self.saved.p()
    }

    /// Columns of the output layer (1 for linear and logistic regression).
    #[getter]
    fn n_outputs(&self) -> usize {
        self.saved.fitted().spec.outputs()
    }

    /// Epochs (L-BFGS iterations) trained over all fits of this model.
    #[getter]
    fn epochs_done(&self) -> usize {
        self.saved
            .fitted()
            .state
            .as_ref()
            .map_or(0, |s| s.epochs_done)
    }

    /// The output layer's values for the rows of `x` (`n × n_outputs`, float32):
    /// predictions of a regression, logits of a classifier.
    fn output<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f32>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let k = self.saved.fitted().spec.outputs();
        let rows = x.shape()[0];
        let x = x
            .as_slice()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let out = py.detach(|| self.saved.output(x)).map_err(to_py)?;
        PyArray1::from_vec(py, out).reshape([rows, k])
    }

    /// The parameters in the program's order, as `(name, float32 array rows × cols)`:
    /// `W`, `b` for the linear models; `W1`, `b1`, `W2`, `b2` for the MLP. They act on
    /// standardised features when `scaler()` is not None.
    fn params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let fitted = self.saved.fitted();
        let program = fitted.spec.program();
        let out = PyList::empty(py);
        for (decl, values) in program.params.iter().zip(&fitted.params) {
            let array = PyArray1::from_slice(py, values).reshape([decl.rows, decl.cols])?;
            out.append((decl.name, array))?;
        }
        Ok(out)
    }

    /// The standardisation the parameters expect, `(mean, scale)` as float32 arrays, or
    /// None for raw features.
    fn scaler<'py>(&self, py: Python<'py>) -> Option<Pair<'py>> {
        self.saved.fitted().scaler.as_ref().map(|s| {
            (
                PyArray1::from_slice(py, &s.mean),
                PyArray1::from_slice(py, &s.scale),
            )
        })
    }

    /// The model file's text (JSON, versioned): what pickling stores.
    fn to_json(&self) -> String {
        self.saved.to_json()
    }

    /// A model from a model file's text.
    #[staticmethod]
    fn from_json(text: &str) -> PyResult<Model> {
        let saved = SavedModel::from_json(text.as_bytes(), "<pickle>").map_err(to_py)?;
        Ok(Model { saved })
    }

    /// Writes the model file (atomically: a failed write leaves any old file whole),
    /// with class names for a classifier and the features' names when the fit had them
    /// (a DataFrame's columns), so that `gradflow predict` reads a file's columns by name.
    #[pyo3(signature = (path, labels=None, features=None))]
    fn save(
        &self,
        path: &str,
        labels: Option<Vec<String>>,
        features: Option<Vec<String>>,
    ) -> PyResult<()> {
        let mut saved = match labels {
            Some(l) => self.saved.clone().with_labels(l).map_err(to_py)?,
            None => self.saved.clone(),
        };
        if let Some(names) = features {
            if names.len() != saved.p() {
                return Err(PyValueError::new_err(format!(
                    "{} feature names for a model of {} features",
                    names.len(),
                    saved.p()
                )));
            }
            let mut columns = saved.columns.clone();
            columns.features = Some(names);
            saved = saved.with_columns(columns);
        }
        saved.save(path).map_err(to_py)
    }

    /// Reads a model file, with its class names if it has them.
    #[staticmethod]
    fn load(path: &str) -> PyResult<(Model, Option<Vec<String>>)> {
        let saved = SavedModel::load(path).map_err(to_py)?;
        let labels = saved.labels().map(<[String]>::to_vec);
        Ok((Model { saved }, labels))
    }

    /// Pickling and `copy.deepcopy`: the model file's text, read back by `from_json`.
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, (String,))> {
        let module = py.import("gradflow._gradflow")?;
        Ok((module.getattr("_model_from_json")?, (self.saved.to_json(),)))
    }

    fn __repr__(&self) -> String {
        format!(
            "<gradflow model: {} on {} features, {} outputs>",
            self.kind(),
            self.n_features(),
            self.n_outputs()
        )
    }
}

/// The settings of one fit, from the estimator's dictionary; an unknown key is an error
/// (a misspelling between the two layers must not pass silently).
fn config(settings: &Bound<'_, PyDict>) -> PyResult<TrainConfig> {
    let mut cfg = TrainConfig::default();
    let (mut optimizer, mut momentum) = (None, None::<f64>);
    let (mut penalty, mut alpha, mut l1_ratio) = (None::<String>, None::<f64>, 0.15);
    let (mut n_iter_no_change, mut tol) = (Some(10usize), None::<f64>);
    let (mut early, mut fraction) = (false, 0.1);
    for (key, value) in settings.iter() {
        let key: String = key.extract()?;
        match key.as_str() {
            "solver" => {
                cfg.solver = match value.extract::<String>()?.as_str() {
                    "auto" => Solver::Auto,
                    "lbfgs" => Solver::lbfgs(),
                    "sgd" => Solver::Sgd,
                    "normal" => Solver::Normal,
                    other => return Err(bad("solver", other, "auto, lbfgs, normal or sgd")),
                }
            }
            "optimizer" => optimizer = value.extract::<Option<String>>()?,
            "momentum" => momentum = value.extract()?,
            "learning_rate" => cfg.learning_rate = value.extract()?,
            "epochs" => cfg.epochs = value.extract()?,
            "batch_size" => {
                if let Some(b) = value.extract::<Option<usize>>()? {
                    cfg.batch_size = b;
                }
            }
            "penalty" => penalty = value.extract()?,
            "alpha" => alpha = value.extract()?,
            "l1_ratio" => l1_ratio = value.extract()?,
            "tol" => tol = value.extract()?,
            "n_iter_no_change" => n_iter_no_change = value.extract()?,
            "early_stopping" => early = value.extract()?,
            "validation_fraction" => fraction = value.extract()?,
            "shuffle" => cfg.shuffle = value.extract::<bool>()?.into(),
            "seed" => cfg.seed = value.extract()?,
            "standardize" => cfg.standardize = value.extract()?,
            "backend" => cfg.backend = value.extract::<String>()?.parse().map_err(to_py)?,
            "verify" => cfg.verify = value.extract::<bool>()?.then(Verify::default),
            "class_weight" => {
                cfg.class_weight = match value.extract::<Option<Vec<f32>>>() {
                    Ok(w) => w.map(ClassWeight::Given),
                    Err(_) => match value.extract::<String>()?.as_str() {
                        "balanced" => Some(ClassWeight::Balanced),
                        other => return Err(bad("class_weight", other, "balanced or weights")),
                    },
                }
            }
            _ => return Err(PyValueError::new_err(format!("unknown setting {key:?}"))),
        }
    }
    cfg.optimizer = match optimizer.as_deref() {
        None => cfg.optimizer,
        // scikit-learn's MLP: solver 'sgd' with its `momentum` (0: plain SGD).
        Some("sgd") => Some(match momentum {
            Some(m) if m > 0.0 => Optimizer::momentum(m),
            _ => Optimizer::Sgd,
        }),
        Some("momentum") => Some(Optimizer::momentum(momentum.unwrap_or(0.9))),
        Some("adam") => Some(Optimizer::adam()),
        Some("adagrad") => Some(Optimizer::adagrad()),
        Some(other) => return Err(bad("optimizer", other, "sgd, momentum, adam or adagrad")),
    };
    cfg.penalty = match (penalty.as_deref(), alpha) {
        // No penalty, as scikit-learn's `penalty=None` (the Python side warns that a
        // given alpha goes unused); "none" is the spelling scikit-learn dropped in 1.4.
        (None | Some("none"), _) => Some(Penalty::None),
        // No strength given: the trainer's choice (scikit-learn's C = 1 for classifiers).
        (Some("l2"), None) => None,
        (Some("l2"), Some(a)) => Some(Penalty::L2(a)),
        (Some("l1"), a) => Some(Penalty::L1(a.unwrap_or(1e-4))),
        (Some("elasticnet"), a) => Some(Penalty::ElasticNet {
            alpha: a.unwrap_or(1e-4),
            l1_ratio,
        }),
        (Some(other), _) => return Err(bad("penalty", other, "None, 'l2', 'l1' or 'elasticnet'")),
    };
    let rule_tol = tol.unwrap_or(1e-4);
    cfg.no_improvement = n_iter_no_change.map(|epochs| NoImprovement {
        epochs,
        tol: rule_tol,
    });
    if let (
        Solver::Lbfgs {
            tol: t, max_iter, ..
        },
        Some(e),
    ) = (&mut cfg.solver, cfg.epochs)
    {
        *max_iter = e;
        *t = rule_tol;
    } else if let Solver::Lbfgs { tol: t, .. } = &mut cfg.solver {
        *t = rule_tol;
    }
    if early {
        cfg.early_stopping = Some(EarlyStopping {
            validation_fraction: fraction,
            patience: n_iter_no_change.unwrap_or(10),
            tol: rule_tol,
        });
    }
    Ok(cfg)
}

fn bad(name: &str, value: &str, expected: &str) -> PyErr {
    PyValueError::new_err(format!("{name} {value:?}: must be {expected}"))
}

/// The report as a dictionary (`epoch_losses`, `validation_losses`, `n_iter`, `steps`,
/// `converged`, `stop`, `learning_rate`, `solver`, `optimizer`, `rate_from`, `notes`,
/// `backend`, `seconds`).
fn report_dict<'py>(py: Python<'py>, r: &Report) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("epoch_losses", r.epoch_losses.clone())?;
    d.set_item("validation_losses", r.validation_losses.clone())?;
    d.set_item("n_iter", r.epoch_losses.len())?;
    d.set_item("steps", r.steps)?;
    d.set_item("converged", r.converged)?;
    d.set_item("stop", r.stop.to_string())?;
    // The cap ended the fit (whether a rule was in force is the estimator's to say).
    d.set_item("capped", r.stop == StopReason::MaxEpochs)?;
    d.set_item("lbfgs", matches!(r.choices.solver, Solver::Lbfgs { .. }))?;
    d.set_item("learning_rate", r.choices.learning_rate)?;
    d.set_item("solver", format!("{:?}", r.choices.solver))?;
    d.set_item("optimizer", r.choices.optimizer.map(|o| format!("{o:?}")))?;
    d.set_item("rate_from", r.choices.rate_from.to_string())?;
    d.set_item("notes", r.notes.clone())?;
    d.set_item("backend", r.backend.clone())?;
    d.set_item("seconds", r.wall.as_secs_f64())?;
    d.set_item("setup_seconds", r.setup.as_secs_f64())?;
    Ok(d)
}

/// Fits a model of `kind` (`linear`, `logistic`, `softmax`, `mlp`) to `x` (float32,
/// C-contiguous, read in place) and `y` (float32 targets, or uint32 class indices
/// below `classes`), with optional float32 sample weights. `warm` continues a fitted
/// model (`partial_fit`, `warm_start`): its parameters, scaler and optimizer state.
/// Returns the fitted model and the report.
#[pyfunction]
#[pyo3(signature = (kind, x, y, classes, settings, sample_weight=None, hidden=0, activation="sigmoid", warm=None))]
#[allow(clippy::too_many_arguments)]
fn fit<'py>(
    py: Python<'py>,
    kind: &str,
    x: PyReadonlyArray2<'py, f32>,
    y: &Bound<'py, PyAny>,
    classes: usize,
    settings: &Bound<'py, PyDict>,
    sample_weight: Option<PyReadonlyArray1<'py, f32>>,
    hidden: usize,
    activation: &str,
    warm: Option<&Model>,
) -> PyResult<(Model, Bound<'py, PyDict>)> {
    let kind: Kind = kind.parse().map_err(to_py)?;
    let activation = match activation {
        "sigmoid" | "logistic" => Activation::Sigmoid,
        "tanh" => Activation::Tanh,
        "relu" => Activation::Relu,
        other => return Err(bad("activation", other, "'logistic', 'tanh' or 'relu'")),
    };
    let cfg = config(settings)?;
    let [n, p] = [x.shape()[0], x.shape()[1]];
    if !x.is_c_contiguous() {
        return Err(PyValueError::new_err("x must be C-contiguous float32"));
    }
    let targets = if classes > 0 {
        let y: PyReadonlyArray1<'py, u32> = y.extract()?;
        Targets::Classes {
            labels: y.as_slice()?.to_vec(),
            classes,
        }
    } else {
        let y: PyReadonlyArray1<'py, f32> = y.extract()?;
        Targets::Real(y.to_vec()?)
    };
    let features = x
        .as_slice()
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let lent: SharedFeatures = Arc::new(Lent {
        ptr: features.as_ptr(),
        len: n * p,
    });
    let weights = match &sample_weight {
        Some(w) => Some(w.as_slice()?),
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let trainer = Trainer::new(cfg)
        .map_err(to_py)?
        .with_interrupt(stop.clone());
    let warm = warm.map(|w| w.saved.fitted().clone());
    let (saved, report) = run_interruptible(py, &stop, move || {
        let data = Dataset::shared(lent, p, targets)?;
        // scikit-learn's MLP starts every layer from Glorot's uniform range (the Rust
        // default, He's for relu, is √(1 + fan_out / fan_in) wider: on a few features
        // and 100 units, 5× sklearn's, which trains worse in its 200 epochs).
        let init = match kind {
            Kind::Mlp => Init::GlorotUniform,
            _ => Init::Auto,
        };
        let mut model = kind.model_with(hidden, activation, init);
        let report = match warm {
            Some(fitted) => {
                model.set_fitted(fitted);
                trainer.partial_fit_weighted(model.as_mut(), &data, weights)?
            }
            None => trainer.fit_weighted(model.as_mut(), &data, weights)?,
        };
        Ok((SavedModel::from_model(model.as_ref())?, report))
    })?;
    let report = report_dict(py, &report)?;
    Ok((Model { saved }, report))
}

/// The GPU adapter `backend='gpu'` trains on (`"name (type, backend)"`; the
/// `GRADFLOW_ADAPTER` variable picks one), or None when wgpu finds none.
#[pyfunction]
fn gpu_adapter(py: Python<'_>) -> Option<String> {
    py.detach(|| {
        gradflow::gpu::shared().ok().map(|ctx| {
            let info = ctx.info();
            format!("{} ({:?}, {:?})", info.name, info.device_type, info.backend)
        })
    })
}

/// `Model.from_json` as a module function: what a pickled model calls to come back.
#[pyfunction]
fn _model_from_json(text: &str) -> PyResult<Model> {
    Model::from_json(text)
}

#[pymodule]
fn _gradflow(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(fit, m)?)?;
    m.add_function(wrap_pyfunction!(gpu_adapter, m)?)?;
    m.add_function(wrap_pyfunction!(_model_from_json, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
