//! Finite-difference check of every model's analytic gradients.
//!
//! The check runs the model's own [`Program`](crate::program::Program), the same kernel
//! calls training uses, in `f64` on the CPU, and compares each gradient element with the
//! central difference `(L(θ + h) − L(θ − h)) / 2h`. In f64 the difference is accurate to
//! about 1e-9 relative, so an error above 1e-4 means a wrong derivation, not rounding.

use rand::SeedableRng;
use rand_distr::{Distribution, Uniform};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::cpu::engine::{CpuEngine, Rows};
use crate::cpu::kernels::Reference;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::{Init, Model, init_params};

/// Elements checked per tensor at most; larger tensors are sampled with an even stride.
pub const MAX_ELEMENTS: usize = 512;

/// The check of one parameter tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorCheck {
    /// Tensor name (`W1`, `b2`, …).
    pub name: &'static str,
    /// Elements in the tensor.
    pub len: usize,
    /// Elements compared.
    pub checked: usize,
    /// Largest `|analytic − numeric| / max(|analytic|, |numeric|, 1e-7)`.
    pub max_rel_error: f64,
    /// Largest `|analytic − numeric|`.
    pub max_abs_error: f64,
}

/// The result of [`gradcheck`].
#[derive(Debug, Clone, PartialEq)]
pub struct GradCheck {
    /// Model name.
    pub model: &'static str,
    /// Rows in the batch used.
    pub rows: usize,
    /// One entry per parameter tensor.
    pub tensors: Vec<TensorCheck>,
}

impl GradCheck {
    /// The largest relative error over all tensors.
    pub fn max_rel_error(&self) -> f64 {
        self.tensors
            .iter()
            .map(|t| t.max_rel_error)
            .fold(0.0, f64::max)
    }
}

/// Compares `model`'s analytic gradients with central finite differences (f64) on the
/// first `rows` rows of `data`, at random parameters drawn from `seed`.
///
/// # Example
/// ```
/// use gradflow::{data::Synthetic, gradcheck::gradcheck, model::Mlp};
/// let data = Synthetic::blobs(16, 3, 4).seed(1).dataset()?;
/// let check = gradcheck(&Mlp::new(5), &data, 8, 0)?;
/// assert!(check.max_rel_error() < 1e-6, "{check:?}");
/// # Ok::<(), gradflow::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidParameter`] for `rows = 0`; the model's own errors for unsuitable data.
pub fn gradcheck<M: Model + ?Sized>(
    model: &M,
    data: &Dataset,
    rows: usize,
    seed: u64,
) -> Result<GradCheck> {
    if rows == 0 {
        return Err(Error::param("rows", 0, "must be ≥ 1"));
    }
    let spec = model.spec_for(data)?;
    let mut params = init_params(&spec, Init::GlorotUniform, seed)?;
    // Non-zero biases, so that the check does not sit at a special point.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let noise = Uniform::new(-0.5f32, 0.5).expect("valid range");
    let program = spec.program();
    for (decl, values) in program.params.iter().zip(&mut params) {
        if decl.is_bias {
            values.iter_mut().for_each(|v| *v = noise.sample(&mut rng));
        }
    }
    let m = rows.min(data.n());
    let batch = Rows::Range { start: 0, len: m };
    // The reference kernels in f64: the derivation is tested, not rounding.
    let mut engine =
        CpuEngine::<f64>::new(program, data.features(), data.p(), Some(data.targets()), m)
            .on(Reference);
    engine.set_params(&params)?;
    engine.forward(batch)?;
    engine.loss(batch)?;
    engine.backward(batch)?;
    let analytic: Vec<Vec<f64>> = engine.grads().into_iter().map(<[f64]>::to_vec).collect();

    let mut tensors = Vec::new();
    for (t, grad) in analytic.iter().enumerate() {
        let decl = &engine.program().params[t];
        let (name, len) = (decl.name, grad.len());
        let stride = len.div_ceil(MAX_ELEMENTS).max(1);
        let (mut max_rel, mut max_abs, mut checked) = (0f64, 0f64, 0);
        for i in (0..len).step_by(stride) {
            let original = engine.param_mut(t)[i];
            let h = 1e-5 * original.abs().max(1.0);
            let mut loss_at = |v: f64| -> Result<f64> {
                engine.param_mut(t)[i] = v;
                engine.forward(batch)?;
                engine.loss(batch)
            };
            let numeric = (loss_at(original + h)? - loss_at(original - h)?) / (2.0 * h);
            engine.param_mut(t)[i] = original;
            let abs = (grad[i] - numeric).abs();
            max_abs = max_abs.max(abs);
            max_rel = max_rel.max(abs / grad[i].abs().max(numeric.abs()).max(1e-7));
            checked += 1;
        }
        tensors.push(TensorCheck {
            name,
            len,
            checked,
            max_rel_error: max_rel,
            max_abs_error: max_abs,
        });
    }
    Ok(GradCheck {
        model: model.name(),
        rows: m,
        tensors,
    })
}
