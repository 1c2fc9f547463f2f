//! Seeded synthetic datasets that scale to 10⁸ rows.
//!
//! Every row has its own random stream, derived from `(seed, row index)`, so any range of
//! rows can be made on its own, in any order, on any number of threads, and always comes
//! out the same. That is what lets a later stage stream a 10⁸ × 64 dataset (25.6 GB)
//! chunk by chunk without ever holding it: [`Synthetic::fill_rows`] makes rows
//! `start..start + count` into caller-owned buffers.
//!
//! The hidden "truth" of a generator (the weights of the linear model, the blob centres,
//! the teacher network) comes from a separate stream of the same seed, so it does not
//! depend on which rows are made.

use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;

use super::dataset::{Dataset, Targets, zeroed};
use crate::error::{Error, Result};

type Rng = Xoshiro256PlusPlus;

/// Rows per parallel work item: large enough to amortise rayon's scheduling.
const PAR_ROWS: usize = 2048;

/// Which family of data a [`Synthetic`] makes.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Kind {
    /// `y = x·w* + b* + noise·ε`, `x ~ N(0, I)`, `w* ~ N(0, 1)`, `ε ~ N(0, 1)`.
    Linear,
    /// Binary labels `y ~ Bernoulli(σ(x·w* + b*))`, `x ~ N(0, I)`, `w* ~ N(0, 1)·2/√p`
    /// (the logit has standard deviation ≈ 2: learnable but noisy).
    Logistic,
    /// Gaussian blobs: class `c` uniform, `x = μ_c + N(0, I)`, centres `μ_c ~ N(0, spread²·I)`.
    Blobs {
        /// Number of classes.
        classes: usize,
        /// Standard deviation of the centres around the origin.
        spread: f32,
    },
    /// Labels from a random teacher network `softmax(tanh(x T¹) T²)`, with `T¹` of width
    /// `hidden`: classes that no linear model separates. `sampled` draws the label from the
    /// teacher's softmax (the peers' W3 data); otherwise the arg-max is taken (noise-free).
    Teacher {
        /// Number of classes.
        classes: usize,
        /// Width of the teacher's hidden layer.
        hidden: usize,
        /// Draw labels from the softmax rather than taking the arg-max.
        sampled: bool,
    },
    /// Concentric rings in the first two features (class `c` at radius `c + 1`, radial
    /// noise `noise`); further features are pure N(0, 1) noise. No linear model does better
    /// than chance on it.
    Rings {
        /// Number of rings (classes).
        classes: usize,
    },
}

/// A seeded generator of synthetic data.
///
/// # Example
/// ```
/// use gradflow::data::Synthetic;
/// let ds = Synthetic::linear(1000, 8).seed(7).noise(0.1).dataset()?;
/// assert_eq!((ds.n(), ds.p()), (1000, 8));
/// // The same seed gives the same data, row for row.
/// assert_eq!(ds, Synthetic::linear(1000, 8).seed(7).noise(0.1).dataset()?);
/// # Ok::<(), gradflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Synthetic {
    kind: Kind,
    n: usize,
    p: usize,
    seed: u64,
    noise: f32,
    bias: Option<f32>,
    weights: Option<Vec<f32>>,
}

/// The parameters a generator draws its data from.
#[derive(Debug, Clone, PartialEq)]
pub enum Truth {
    /// Linear or logistic: `z = x·weights + bias`.
    Linear {
        /// `w*`, length p.
        weights: Vec<f32>,
        /// `b*`.
        bias: f32,
    },
    /// Blob centres, `classes × p` row-major.
    Centres(Vec<f32>),
    /// Teacher network: `t1` is p × hidden, `t2` is hidden × classes, row-major.
    Teacher {
        /// First layer.
        t1: Vec<f32>,
        /// Second layer.
        t2: Vec<f32>,
    },
    /// Rings carry no parameters.
    Rings,
}

/// A target value of one generated row.
enum Label {
    Real(f32),
    Class(u32),
}

impl Synthetic {
    fn new(kind: Kind, n: usize, p: usize, noise: f32) -> Self {
        Synthetic {
            kind,
            n,
            p,
            seed: 0,
            noise,
            bias: None,
            weights: None,
        }
    }

    /// Linear regression data: `y = x·w* + b* + noise·ε` with `b* = 0.5`, noise 0.01.
    pub fn linear(n: usize, p: usize) -> Self {
        Self::new(Kind::Linear, n, p, 0.01)
    }

    /// Binary logistic data with `b* = 0.25`.
    pub fn logistic(n: usize, p: usize) -> Self {
        Self::new(Kind::Logistic, n, p, 0.0)
    }

    /// Gaussian blobs in `classes` classes, centres spread with standard deviation 3.
    pub fn blobs(n: usize, p: usize, classes: usize) -> Self {
        Self::new(
            Kind::Blobs {
                classes,
                spread: 3.0,
            },
            n,
            p,
            0.0,
        )
    }

    /// Labels sampled from a random `p`-32-`classes` tanh teacher network.
    pub fn teacher(n: usize, p: usize, classes: usize) -> Self {
        Self::new(
            Kind::Teacher {
                classes,
                hidden: 32,
                sampled: true,
            },
            n,
            p,
            0.0,
        )
    }

    /// Concentric rings (`p ≥ 2`), radial noise 0.1.
    pub fn rings(n: usize, p: usize, classes: usize) -> Self {
        Self::new(Kind::Rings { classes }, n, p, 0.1)
    }

    /// Sets the seed (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the noise level: the standard deviation of `ε` (linear) or of the radius (rings).
    pub fn noise(mut self, noise: f32) -> Self {
        self.noise = noise;
        self
    }

    /// Fixes the true bias `b*` of linear or logistic data instead of the default.
    pub fn bias(mut self, bias: f32) -> Self {
        self.bias = Some(bias);
        self
    }

    /// Fixes the true weights `w*` (length p) of linear or logistic data instead of drawing them.
    pub fn weights(mut self, weights: Vec<f32>) -> Self {
        self.weights = Some(weights);
        self
    }

    /// Takes arg-max labels from the teacher instead of sampling them.
    pub fn deterministic(mut self) -> Self {
        if let Kind::Teacher { sampled, .. } = &mut self.kind {
            *sampled = false;
        }
        self
    }

    /// Sets the teacher's hidden width (default 32).
    pub fn teacher_hidden(mut self, width: usize) -> Self {
        if let Kind::Teacher { hidden, .. } = &mut self.kind {
            *hidden = width;
        }
        self
    }

    /// The kind of data.
    pub fn kind(&self) -> &Kind {
        &self.kind
    }

    /// Rows `n`.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Feature columns `p`.
    pub fn p(&self) -> usize {
        self.p
    }

    /// The number of classes, or `None` for regression data.
    pub fn classes(&self) -> Option<usize> {
        match self.kind {
            Kind::Linear => None,
            Kind::Logistic => Some(2),
            Kind::Blobs { classes, .. }
            | Kind::Teacher { classes, .. }
            | Kind::Rings { classes } => Some(classes),
        }
    }

    /// Checks the configuration; every other method that makes data calls it first.
    ///
    /// # Errors
    /// [`Error::Empty`] for n = 0 or p = 0; [`Error::InvalidParameter`] for fewer than two
    /// classes, rings with p < 2, negative or non-finite noise, a hidden width of 0;
    /// [`Error::ShapeMismatch`] for given weights whose length is not p.
    pub fn validate(&self) -> Result<()> {
        if self.n == 0 {
            return Err(Error::Empty {
                what: "synthetic dataset",
                detail: "n = 0 rows".into(),
            });
        }
        if self.p == 0 {
            return Err(Error::Empty {
                what: "synthetic dataset",
                detail: "p = 0 feature columns".into(),
            });
        }
        if !(self.noise.is_finite() && self.noise >= 0.0) {
            return Err(Error::param("noise", self.noise, "must be finite and ≥ 0"));
        }
        if let Some(c) = self.classes()
            && c < 2
        {
            return Err(Error::param("classes", c, "must be ≥ 2"));
        }
        match self.kind {
            Kind::Rings { .. } if self.p < 2 => {
                return Err(Error::param(
                    "p",
                    self.p,
                    "rings need p ≥ 2 (the rings lie in the first two features)",
                ));
            }
            Kind::Teacher { hidden: 0, .. } => {
                return Err(Error::param("teacher_hidden", 0, "must be ≥ 1"));
            }
            Kind::Blobs { spread, .. } if !(spread.is_finite() && spread >= 0.0) => {
                return Err(Error::param("spread", spread, "must be finite and ≥ 0"));
            }
            _ => {}
        }
        if let Some(w) = &self.weights {
            if w.len() != self.p {
                return Err(Error::ShapeMismatch {
                    what: "synthetic weights",
                    expected: format!("p = {} values", self.p),
                    got: format!("{} values", w.len()),
                });
            }
            super::dataset::check_finite("synthetic weights", w, 1)?;
        }
        if let Some(b) = self.bias
            && !b.is_finite()
        {
            return Err(Error::param("bias", b, "must be finite"));
        }
        Ok(())
    }

    /// The parameters the data are drawn from (the answer a model should find).
    pub fn truth(&self) -> Result<Truth> {
        self.validate()?;
        let mut rng = Rng::seed_from_u64(mix(self.seed, 0x0074_7275_7468)); // "truth"
        let p = self.p;
        let normals = |rng: &mut Rng, len: usize, scale: f32| -> Vec<f32> {
            (0..len)
                .map(|_| rng.sample::<f32, _>(StandardNormal) * scale)
                .collect()
        };
        Ok(match self.kind {
            Kind::Linear | Kind::Logistic => {
                let (scale, bias) = if self.kind == Kind::Linear {
                    (1.0, 0.5)
                } else {
                    (2.0 / (p as f32).sqrt(), 0.25)
                };
                let weights = self
                    .weights
                    .clone()
                    .unwrap_or_else(|| normals(&mut rng, p, scale));
                Truth::Linear {
                    weights,
                    bias: self.bias.unwrap_or(bias),
                }
            }
            Kind::Blobs { classes, spread } => {
                Truth::Centres(normals(&mut rng, classes * p, spread))
            }
            Kind::Teacher {
                classes, hidden, ..
            } => {
                let t1 = normals(&mut rng, p * hidden, 1.0 / (p as f32).sqrt());
                let t2 = normals(&mut rng, hidden * classes, 3.0 / (hidden as f32).sqrt());
                Truth::Teacher { t1, t2 }
            }
            Kind::Rings { .. } => Truth::Rings,
        })
    }

    /// Makes the whole dataset, in parallel.
    ///
    /// 10⁷ × 64 rows take a few seconds on two cores.
    ///
    /// # Errors
    /// As [`Synthetic::validate`]; [`Error::ShapeMismatch`] when n · p overflows;
    /// [`Error::OutOfMemory`] when the allocator cannot give n · p values (stream the
    /// generator instead: `Trainer::fit` takes it as a source).
    pub fn dataset(&self) -> Result<Dataset> {
        self.validate()?;
        let len = self
            .n
            .checked_mul(self.p)
            .ok_or_else(|| Error::ShapeMismatch {
                what: "synthetic dataset",
                expected: "n · p to fit in memory".into(),
                got: format!("{} × {}", self.n, self.p),
            })?;
        let mut x = zeroed(len, "synthetic dataset features")?;
        let targets = match self.classes() {
            None => {
                let mut y = zeroed(self.n, "synthetic dataset targets")?;
                self.fill_rows(0, &mut x, RowTargets::Real(&mut y))?;
                Targets::Real(y)
            }
            Some(classes) => {
                let mut labels = zeroed(self.n, "synthetic dataset labels")?;
                self.fill_rows(0, &mut x, RowTargets::Classes(&mut labels))?;
                Targets::Classes { labels, classes }
            }
        };
        Dataset::new(x, self.p, targets)
    }

    /// Makes rows `start .. start + count` (count = `targets.len()`) into `x`
    /// (`count × p`, row-major) and `targets`: the same values those rows have in
    /// [`Synthetic::dataset`]. This is the chunk-by-chunk interface for streaming.
    ///
    /// # Errors
    /// As [`Synthetic::validate`]; [`Error::ShapeMismatch`] when the buffers disagree with
    /// each other or with p, when the range passes n, or when the target kind does not
    /// match the data (real targets for class data or the reverse).
    pub fn fill_rows(&self, start: usize, x: &mut [f32], targets: RowTargets<'_>) -> Result<()> {
        self.validate()?;
        let count = targets.len();
        if x.len() != count * self.p {
            return Err(Error::ShapeMismatch {
                what: "fill_rows features buffer",
                expected: format!("{count} rows × {} columns", self.p),
                got: format!("{} values", x.len()),
            });
        }
        if start.checked_add(count).is_none_or(|end| end > self.n) {
            return Err(Error::ShapeMismatch {
                what: "fill_rows range",
                expected: format!("rows within 0..{}", self.n),
                got: format!("{start}..{}", start.saturating_add(count)),
            });
        }
        self.fill(&|i| start + i, x, targets)
    }

    /// Makes rows `rows[i]` into row `i` of `x` and `targets`: the same values those rows
    /// have in [`Synthetic::dataset`], in any order (a shuffled batch, made on the fly).
    ///
    /// # Errors
    /// As [`Synthetic::fill_rows`].
    pub fn fill_indexed(&self, rows: &[u32], x: &mut [f32], targets: RowTargets<'_>) -> Result<()> {
        self.validate()?;
        if x.len() != rows.len() * self.p || targets.len() != rows.len() {
            return Err(Error::ShapeMismatch {
                what: "fill_indexed buffers",
                expected: format!(
                    "{} rows × {} columns and {} targets",
                    rows.len(),
                    self.p,
                    rows.len()
                ),
                got: format!("{} values and {} targets", x.len(), targets.len()),
            });
        }
        if let Some(&bad) = rows.iter().find(|&&r| r as usize >= self.n) {
            return Err(Error::ShapeMismatch {
                what: "fill_indexed row",
                expected: format!("rows below n = {}", self.n),
                got: bad.to_string(),
            });
        }
        self.fill(&|i| rows[i] as usize, x, targets)
    }

    /// Makes the rows `row_of(0), row_of(1), …` in parallel; the buffers are checked.
    fn fill(
        &self,
        row_of: &(dyn Fn(usize) -> usize + Sync),
        x: &mut [f32],
        targets: RowTargets<'_>,
    ) -> Result<()> {
        let truth = self.truth()?;
        let p = self.p;
        match (targets, self.classes()) {
            (RowTargets::Real(y), None) => {
                x.par_chunks_mut(PAR_ROWS * p)
                    .zip(y.par_chunks_mut(PAR_ROWS))
                    .enumerate()
                    .for_each(|(c, (xc, yc))| {
                        for (r, (xr, yr)) in xc.chunks_exact_mut(p).zip(yc.iter_mut()).enumerate() {
                            if let Label::Real(v) = self.row(&truth, row_of(c * PAR_ROWS + r), xr) {
                                *yr = v;
                            }
                        }
                    });
            }
            (RowTargets::Classes(y), Some(_)) => {
                x.par_chunks_mut(PAR_ROWS * p)
                    .zip(y.par_chunks_mut(PAR_ROWS))
                    .enumerate()
                    .for_each(|(c, (xc, yc))| {
                        for (r, (xr, yr)) in xc.chunks_exact_mut(p).zip(yc.iter_mut()).enumerate() {
                            if let Label::Class(v) = self.row(&truth, row_of(c * PAR_ROWS + r), xr)
                            {
                                *yr = v;
                            }
                        }
                    });
            }
            (t, _) => {
                return Err(Error::ShapeMismatch {
                    what: "fill_rows targets",
                    expected: match self.classes() {
                        None => "real targets for regression data".into(),
                        Some(k) => format!("class labels for {k}-class data"),
                    },
                    got: match t {
                        RowTargets::Real(_) => "a real-valued buffer".into(),
                        RowTargets::Classes(_) => "a label buffer".into(),
                    },
                });
            }
        }
        Ok(())
    }

    /// Makes row `i` into `x` (length p) and returns its target.
    fn row(&self, truth: &Truth, i: usize, x: &mut [f32]) -> Label {
        let mut rng = Rng::seed_from_u64(mix(self.seed, 0x726f_7773).wrapping_add(i as u64)); // "rows"
        let p = self.p;
        match (&self.kind, truth) {
            (Kind::Linear, Truth::Linear { weights, bias }) => {
                fill_normal(&mut rng, x);
                let eps: f32 = rng.sample(StandardNormal);
                Label::Real(dot(x, weights) + bias + self.noise * eps)
            }
            (Kind::Logistic, Truth::Linear { weights, bias }) => {
                fill_normal(&mut rng, x);
                let z = dot(x, weights) + bias;
                let u: f32 = rng.random();
                Label::Class(u32::from(u < crate::program::sigmoid(z)))
            }
            (Kind::Blobs { classes, .. }, Truth::Centres(centres)) => {
                let c = rng.random_range(0..*classes);
                fill_normal(&mut rng, x);
                for (v, m) in x.iter_mut().zip(&centres[c * p..(c + 1) * p]) {
                    *v += m;
                }
                Label::Class(c as u32)
            }
            (
                Kind::Teacher {
                    classes,
                    hidden,
                    sampled,
                },
                Truth::Teacher { t1, t2 },
            ) => {
                fill_normal(&mut rng, x);
                let h: Vec<f32> = (0..*hidden)
                    .map(|j| {
                        (0..p)
                            .map(|i| x[i] * t1[i * hidden + j])
                            .sum::<f32>()
                            .tanh()
                    })
                    .collect();
                let mut best = (0u32, f32::NEG_INFINITY);
                for c in 0..*classes {
                    let mut logit: f32 = (0..*hidden).map(|j| h[j] * t2[j * classes + c]).sum();
                    if *sampled {
                        // Gumbel-max: arg-max of logits + Gumbel noise is a draw from the softmax.
                        let u: f32 = rng.random::<f32>().max(f32::MIN_POSITIVE);
                        logit -= (-u.ln()).ln();
                    }
                    if logit > best.1 {
                        best = (c as u32, logit);
                    }
                }
                Label::Class(best.0)
            }
            (Kind::Rings { classes }, Truth::Rings) => {
                let c = rng.random_range(0..*classes);
                let angle = rng.random::<f32>() * std::f32::consts::TAU;
                let radius = (c + 1) as f32 + self.noise * rng.sample::<f32, _>(StandardNormal);
                x[0] = radius * angle.cos();
                x[1] = radius * angle.sin();
                fill_normal(&mut rng, &mut x[2..]);
                Label::Class(c as u32)
            }
            _ => unreachable!("truth() returns the variant that matches the kind"),
        }
    }
}

/// Caller-owned target buffer for [`Synthetic::fill_rows`].
#[derive(Debug)]
pub enum RowTargets<'a> {
    /// Real targets (linear data).
    Real(&'a mut [f32]),
    /// Class labels (every other kind).
    Classes(&'a mut [u32]),
}

impl RowTargets<'_> {
    fn len(&self) -> usize {
        match self {
            RowTargets::Real(y) => y.len(),
            RowTargets::Classes(y) => y.len(),
        }
    }
}

fn fill_normal(rng: &mut Rng, x: &mut [f32]) {
    for v in x {
        *v = rng.sample(StandardNormal);
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// SplitMix64 finaliser of `seed ^ domain`: decorrelates the streams of one seed.
fn mix(seed: u64, domain: u64) -> u64 {
    let mut z = (seed ^ domain.rotate_left(32)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_row_range_matches_the_whole_dataset() {
        let g = Synthetic::teacher(5000, 5, 3).seed(9);
        let ds = g.dataset().unwrap();
        let (start, count) = (2047, 2100);
        let mut x = vec![0f32; count * 5];
        let mut y = vec![0u32; count];
        g.fill_rows(start, &mut x, RowTargets::Classes(&mut y))
            .unwrap();
        assert_eq!(&x[..], &ds.features()[start * 5..(start + count) * 5]);
        let Targets::Classes { labels, .. } = ds.targets() else {
            panic!()
        };
        assert_eq!(&y[..], &labels[start..start + count]);
    }

    #[test]
    fn seeds_give_different_data() {
        let a = Synthetic::linear(10, 3).seed(1).dataset().unwrap();
        let b = Synthetic::linear(10, 3).seed(2).dataset().unwrap();
        assert_ne!(a.features(), b.features());
    }

    #[test]
    fn bad_configurations_are_errors() {
        assert!(Synthetic::linear(0, 3).dataset().is_err());
        assert!(Synthetic::linear(3, 0).dataset().is_err());
        assert!(Synthetic::blobs(3, 2, 1).dataset().is_err());
        assert!(Synthetic::rings(3, 1, 2).dataset().is_err());
        assert!(Synthetic::linear(3, 2).noise(f32::NAN).dataset().is_err());
        assert!(
            Synthetic::linear(3, 2)
                .weights(vec![1.0])
                .dataset()
                .is_err()
        );
        let g = Synthetic::linear(10, 2);
        let mut x = vec![0f32; 4];
        assert!(
            g.fill_rows(9, &mut x, RowTargets::Real(&mut [0.0; 2]))
                .is_err()
        );
        assert!(
            g.fill_rows(0, &mut x, RowTargets::Classes(&mut [0; 2]))
                .is_err()
        );
    }
}
