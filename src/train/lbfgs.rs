//! Limited-memory BFGS with a strong-Wolfe line search: the full-batch solver.
//!
//! The optimizer works on one flat `f64` vector on the host; the objective (loss and
//! gradient over the whole dataset) is whatever the caller evaluates, which is how the
//! same solver runs on the CPU's fast kernels and on the device: only the loss and the
//! gradient (p · k values for a linear model) cross to the host per evaluation, and the
//! two-loop recursion's dot products of that size run here.
//!
//! - **Direction**: the two-loop recursion over the last `memory` pairs (s, y) with the
//!   initial scaling γ = sᵀy / yᵀy (Nocedal & Wright, *Numerical Optimization*, 2nd ed.,
//!   Algorithm 7.4 and eq. 7.20); a pair whose curvature sᵀy is not positive is skipped.
//! - **Step**: a line search for the strong Wolfe conditions with c₁ = 10⁻⁴, c₂ = 0.9
//!   (Nocedal & Wright's Algorithm 3.5: bracketing by doubling, then zoom), which near
//!   the optimum also accepts Hager & Zhang's approximate Wolfe conditions and keeps its
//!   bracket by the sign of the directional derivative, not by comparing values that
//!   `f32` rounding has made noisy (see [`line_search`]); the step 1 tried first after
//!   the first iteration (whose trial step is 1/‖g‖₂, as L-BFGS-B's). A trial point with
//!   a non-finite loss counts as too far.
//! - **Ends**: ‖g‖∞ ≤ `tol` (scikit-learn's `tol` for `solver="lbfgs"`, the same test as
//!   SciPy's `gtol`); or no step lowers the loss any more — the objective is evaluated in
//!   `f32`, so this is where its precision runs out (the memory is dropped once for a
//!   steepest-descent retry before giving up), or for 2·`memory` iterations (at least 10)
//!   neither has the gradient shrunk by a tenth nor the loss fallen beyond its noise,
//!   when the point with the smallest gradient is returned; or `max_iter` iterations.

use crate::error::Result;

/// Sufficient-decrease constant of the Wolfe conditions.
const C1: f64 = 1e-4;
/// Curvature constant of the (strong) Wolfe conditions; 0.9 suits quasi-Newton steps.
const C2: f64 = 0.9;
/// Loss and gradient evaluations one line search may spend (scikit-learn passes
/// `maxls = 50` to SciPy).
const MAX_EVALS: usize = 50;

/// How the solver ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum End {
    /// ‖g‖∞ ≤ tol.
    Gradient,
    /// No step along the search direction (nor along −g) lowered the loss.
    Stalled,
    /// `max_iter` iterations ran.
    MaxIter,
}

/// The result of [`minimize`].
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// The last accepted point.
    pub x: Vec<f64>,
    /// Its objective value.
    pub f: f64,
    /// Its gradient's largest magnitude.
    pub grad_inf: f64,
    /// Iterations (accepted steps).
    pub iterations: usize,
    /// Objective evaluations, the first included.
    pub evaluations: usize,
    /// The objective after each iteration.
    pub history: Vec<f64>,
    /// Why it ended.
    pub end: End,
}

/// The solver's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// Correction pairs kept (m).
    pub memory: usize,
    /// Iteration cap.
    pub max_iter: usize,
    /// Gradient tolerance on ‖g‖∞.
    pub tol: f64,
    /// The objective's relative precision: a decrease of the loss below `noise · |f|`
    /// is not progress (`f32` evaluations: ~10⁻⁷).
    pub noise: f64,
}

/// An objective: the value and gradient at `x`.
pub(crate) trait Objective {
    /// f(x) and ∇f(x).
    ///
    /// # Errors
    /// Whatever evaluating it can fail with (a device error); the solver passes it on.
    fn eval(&mut self, x: &[f64]) -> Result<(f64, Vec<f64>)>;
}

impl<F: FnMut(&[f64]) -> Result<(f64, Vec<f64>)>> Objective for F {
    fn eval(&mut self, x: &[f64]) -> Result<(f64, Vec<f64>)> {
        self(x)
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn inf_norm(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// `x + a d`.
fn along(x: &[f64], a: f64, d: &[f64]) -> Vec<f64> {
    x.iter().zip(d).map(|(x, d)| x + a * d).collect()
}

/// Minimises `objective` from `x0`; `on_iter(iteration, f, x)` is told each accepted
/// step and may return `false` to stop (an interrupted fit keeps its last point).
///
/// # Errors
/// The objective's own errors.
pub(crate) fn minimize(
    objective: &mut dyn Objective,
    x0: Vec<f64>,
    settings: Settings,
    on_iter: &mut dyn FnMut(usize, f64, &[f64]) -> bool,
) -> Result<Outcome> {
    let (f0, g0) = objective.eval(&x0)?;
    let mut out = Outcome {
        grad_inf: inf_norm(&g0),
        x: x0,
        f: f0,
        iterations: 0,
        evaluations: 1,
        history: Vec::new(),
        end: End::MaxIter,
    };
    let mut g = g0;
    // Correction pairs, oldest first: (s, y, 1 / sᵀy).
    let mut pairs: Vec<(Vec<f64>, Vec<f64>, f64)> = Vec::with_capacity(settings.memory);
    if !f0.is_finite() {
        out.end = End::Stalled;
        return Ok(out);
    }
    // The point with the smallest gradient so far, the lowest loss, and the iterations
    // since either improved (the gradient by a tenth, the loss beyond its noise): at the
    // precision floor neither moves while approximate Wolfe steps still wander within the
    // loss's noise (along a flat direction, such as a softmax's common intercept shift,
    // without bound), so the solver stops there and returns the smallest-gradient point.
    let mut best = (out.x.clone(), out.f, out.grad_inf);
    let mut lowest = out.f;
    let mut since_best = 0;
    let patience = 2 * settings.memory.max(5);
    while out.iterations < settings.max_iter {
        if out.grad_inf <= settings.tol {
            out.end = End::Gradient;
            return Ok(out);
        }
        let mut d = direction(&g, &pairs);
        if dot(&d, &g) >= 0.0 {
            // Rounding made the quasi-Newton direction useless: start the memory afresh.
            pairs.clear();
            d = g.iter().map(|v| -v).collect();
        }
        let first_try = if pairs.is_empty() {
            (1.0 / dot(&g, &g).sqrt()).min(1.0)
        } else {
            1.0
        };
        let found = line_search(objective, &out, &g, &d, first_try)?;
        out.evaluations += found.evals;
        let (a, f, g_new) = match found.point {
            Some(point) => point,
            None if !pairs.is_empty() => {
                // One retry along −g with the memory dropped, before calling it stalled.
                pairs.clear();
                continue;
            }
            None => {
                return Ok(at_best(out, best));
            }
        };
        let x_new = along(&out.x, a, &d);
        let s: Vec<f64> = x_new.iter().zip(&out.x).map(|(n, o)| n - o).collect();
        let y: Vec<f64> = g_new.iter().zip(&g).map(|(n, o)| n - o).collect();
        let sy = dot(&s, &y);
        if sy > f64::EPSILON * dot(&y, &y) {
            if pairs.len() == settings.memory {
                pairs.remove(0);
            }
            pairs.push((s, y, 1.0 / sy));
        }
        out.x = x_new;
        out.f = f;
        out.grad_inf = inf_norm(&g_new);
        g = g_new;
        out.iterations += 1;
        out.history.push(f);
        if !on_iter(out.iterations, f, &out.x) {
            return Ok(out);
        }
        let lower = out.f < lowest - settings.noise * out.f.abs();
        lowest = lowest.min(out.f);
        if out.grad_inf < 0.9 * best.2 {
            best = (out.x.clone(), out.f, out.grad_inf);
            since_best = 0;
        } else if lower {
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= patience && out.grad_inf > settings.tol {
                return Ok(at_best(out, best));
            }
        }
    }
    out.end = if out.grad_inf <= settings.tol {
        End::Gradient
    } else {
        End::MaxIter
    };
    Ok(out)
}

/// A stalled run's outcome: the point with the smallest gradient.
fn at_best(mut out: Outcome, (x, f, grad_inf): (Vec<f64>, f64, f64)) -> Outcome {
    if grad_inf < out.grad_inf {
        out.x = x;
        out.f = f;
        out.grad_inf = grad_inf;
    }
    out.end = End::Stalled;
    out
}

/// The two-loop recursion: −H g for the inverse-Hessian estimate H of the pairs.
fn direction(g: &[f64], pairs: &[(Vec<f64>, Vec<f64>, f64)]) -> Vec<f64> {
    let mut q = g.to_vec();
    let mut alphas = vec![0.0; pairs.len()];
    for (i, (s, y, rho)) in pairs.iter().enumerate().rev() {
        let a = rho * dot(s, &q);
        alphas[i] = a;
        q.iter_mut().zip(y).for_each(|(q, y)| *q -= a * y);
    }
    if let Some((s, y, _)) = pairs.last() {
        let gamma = dot(s, y) / dot(y, y);
        q.iter_mut().for_each(|v| *v *= gamma);
    }
    for ((s, y, rho), a) in pairs.iter().zip(&alphas) {
        let b = rho * dot(y, &q);
        q.iter_mut().zip(s).for_each(|(q, s)| *q += s * (a - b));
    }
    q.iter_mut().for_each(|v| *v = -*v);
    q
}

/// A trial point of the line search: step, φ(step), φ′(step), gradient.
struct Trial {
    a: f64,
    f: f64,
    slope: f64,
    g: Vec<f64>,
}

/// What a line search found: the accepted (step, loss, gradient), if any, and its cost.
struct Found {
    point: Option<(f64, f64, Vec<f64>)>,
    evals: usize,
}

/// A step along `d` from `at` satisfying the strong Wolfe conditions, or their
/// approximate form near the optimum; when the evaluations run out, the best step that
/// satisfies (approximate) sufficient decrease; none when no trial did.
///
/// The objective is evaluated in `f32`, so near the optimum its values carry rounding
/// noise of about one `f32` ulp, while the true decrease along `d` shrinks with ‖g‖²:
/// the Armijo test then fails on noise and a plain Wolfe search stalls with the gradient
/// still at 10⁻⁵–10⁻⁴. The directional derivative φ′ = g·d stays accurate far longer
/// (its error is that of the gradient, not of the loss). So, as in Hager & Zhang's
/// CG_DESCENT (*SIAM J. Optim.* 16, 2005, §4), a step may instead satisfy the
/// *approximate* Wolfe conditions — φ(α) ≤ φ(0) + ε|φ(0)| and
/// (2c₁ − 1) φ′(0) ≥ φ′(α) — and the bracket is kept by the sign of φ′ rather than by
/// comparing noisy values: `lo` always has φ′ < 0 and an acceptable value, `hi` has
/// φ′ ≥ 0 or a value too high. Between them the next trial is the secant of φ′.
fn line_search(
    objective: &mut dyn Objective,
    at: &Outcome,
    g: &[f64],
    d: &[f64],
    first: f64,
) -> Result<Found> {
    let (f0, slope0) = (at.f, dot(g, d));
    // Hager & Zhang's ε = 10⁻⁶: a few hundred f32 ulps of slack on the value.
    let slack = 1e-6 * f0.abs();
    let mut evals = 0;
    let mut try_step = |a: f64, evals: &mut usize| -> Result<Trial> {
        *evals += 1;
        let (f, g) = objective.eval(&along(&at.x, a, d))?;
        let finite = f.is_finite() && g.iter().all(|v| v.is_finite());
        Ok(Trial {
            a,
            slope: if finite { dot(&g, d) } else { f64::NAN },
            f: if finite { f } else { f64::INFINITY },
            g,
        })
    };
    let decrease = |t: &Trial| {
        t.f <= f0 + C1 * t.a * slope0 || (t.f <= f0 + slack && t.slope <= (2.0 * C1 - 1.0) * slope0)
    };
    let accept = |t: &Trial| decrease(t) && t.slope.abs() <= -C2 * slope0;
    let keep = |t: &Trial, best: &mut Option<Trial>| {
        if decrease(t) && t.f < f0 && best.as_ref().is_none_or(|b| t.f < b.f) {
            *best = Some(Trial {
                g: t.g.clone(),
                ..*t
            });
        }
    };
    let found = |t: Trial, evals| {
        Ok(Found {
            point: Some((t.a, t.f, t.g)),
            evals,
        })
    };
    let mut best: Option<Trial> = None;
    let mut lo = Trial {
        a: 0.0,
        f: f0,
        slope: slope0,
        g: g.to_vec(),
    };
    let mut a = first;
    // Bracketing: double the step while the value is acceptable and φ′ still negative.
    let mut hi = loop {
        if evals >= MAX_EVALS {
            break None;
        }
        let t = try_step(a, &mut evals)?;
        if accept(&t) {
            return found(t, evals);
        }
        keep(&t, &mut best);
        if !decrease(&t) || t.slope >= 0.0 || t.slope.is_nan() {
            break Some(t);
        }
        lo = t;
        a *= 2.0;
    };
    // Zoom between lo (φ′ < 0, acceptable value) and hi.
    while let Some(h) = hi.take() {
        if evals >= MAX_EVALS || (h.a - lo.a).abs() <= f64::EPSILON * h.a.abs() {
            break;
        }
        let t = try_step(next_trial(&lo, &h), &mut evals)?;
        if accept(&t) {
            return found(t, evals);
        }
        keep(&t, &mut best);
        if t.slope >= 0.0 || t.slope.is_nan() || !decrease(&t) {
            hi = Some(t);
        } else {
            lo = t;
            hi = Some(h);
        }
    }
    Ok(Found {
        point: best.map(|t| (t.a, t.f, t.g)),
        evals,
    })
}

/// The next trial between `lo` and `hi`: where the secant of φ′ crosses zero when `hi`
/// has a finite φ′ ≥ 0 (for a quadratic, the minimiser), the midpoint otherwise; kept
/// at least a tenth of the interval from either end.
fn next_trial(lo: &Trial, hi: &Trial) -> f64 {
    let (a0, a1) = (lo.a, hi.a);
    let mid = 0.5 * (a0 + a1);
    let secant = if hi.slope.is_finite() && hi.slope >= 0.0 && hi.slope > lo.slope {
        a0 - lo.slope * (a1 - a0) / (hi.slope - lo.slope)
    } else {
        mid
    };
    let (low, high) = (a0.min(a1), a0.max(a1));
    let margin = 0.1 * (high - low);
    if secant.is_finite() {
        secant.clamp(low + margin, high - margin)
    } else {
        mid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(tol: f64) -> Settings {
        Settings {
            memory: 10,
            max_iter: 1000,
            tol,
            noise: f64::EPSILON,
        }
    }

    fn rosenbrock(x: &[f64]) -> Result<(f64, Vec<f64>)> {
        let (a, b) = (x[0], x[1]);
        let f = (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2);
        let g = vec![
            -2.0 * (1.0 - a) - 400.0 * a * (b - a * a),
            200.0 * (b - a * a),
        ];
        Ok((f, g))
    }

    #[test]
    fn finds_rosenbrocks_minimum() {
        let out = minimize(
            &mut rosenbrock,
            vec![-1.2, 1.0],
            settings(1e-10),
            &mut |_, _, _| true,
        )
        .unwrap();
        assert_eq!(out.end, End::Gradient);
        assert!((out.x[0] - 1.0).abs() < 1e-8 && (out.x[1] - 1.0).abs() < 1e-8);
        // SciPy's L-BFGS-B takes 36 iterations from here; a working quasi-Newton method
        // is in that range, not in the thousands of steepest descent.
        assert!(out.iterations < 60, "{} iterations", out.iterations);
    }

    /// An ill-conditioned quadratic (condition number 10⁴, 50 distinct curvatures), where
    /// gradient descent would need ~10⁵ steps. SciPy's L-BFGS-B (m = 10, maxls = 50)
    /// takes 705 iterations to ‖g‖∞ ≤ 10⁻⁶ from the same start.
    #[test]
    fn solves_ill_conditioned_quadratics() {
        let n = 50;
        let scale: Vec<f64> = (0..n)
            .map(|i| 10f64.powf(4.0 * i as f64 / (n - 1) as f64))
            .collect();
        let target: Vec<f64> = (0..n).map(|i| (i as f64).sin()).collect();
        let mut f = |x: &[f64]| -> Result<(f64, Vec<f64>)> {
            let g: Vec<f64> = (0..n).map(|i| scale[i] * (x[i] - target[i])).collect();
            let f = (0..n)
                .map(|i| 0.5 * scale[i] * (x[i] - target[i]).powi(2))
                .sum();
            Ok((f, g))
        };
        let out = minimize(&mut f, vec![0.0; n], settings(1e-6), &mut |_, _, _| true).unwrap();
        assert_eq!(out.end, End::Gradient);
        for (i, (x, t)) in out.x.iter().zip(&target).enumerate() {
            assert!((x - t).abs() < 1e-6, "x[{i}] = {x}");
        }
        assert!(out.iterations < 1000, "{} iterations", out.iterations);
    }

    #[test]
    fn a_loss_that_overflows_is_stepped_back_from() {
        // exp grows past f64 beyond x = 709: a first step of 1000 must be shortened.
        let mut f = |x: &[f64]| -> Result<(f64, Vec<f64>)> {
            Ok((x[0].exp() - 2.0 * x[0], vec![x[0].exp() - 2.0]))
        };
        let out = minimize(&mut f, vec![-1000.0], settings(1e-10), &mut |_, _, _| true).unwrap();
        assert!((out.x[0] - 2f64.ln()).abs() < 1e-8, "x = {}", out.x[0]);
    }

    #[test]
    fn stops_where_asked_and_at_the_cap() {
        let mut calls = 0;
        let out = minimize(
            &mut rosenbrock,
            vec![-1.2, 1.0],
            settings(0.0),
            &mut |i, _, _| {
                calls += 1;
                i < 3
            },
        )
        .unwrap();
        assert_eq!((out.iterations, calls, out.history.len()), (3, 3, 3));
        let capped = Settings {
            max_iter: 5,
            ..settings(0.0)
        };
        let out = minimize(&mut rosenbrock, vec![-1.2, 1.0], capped, &mut |_, _, _| {
            true
        })
        .unwrap();
        assert_eq!((out.iterations, out.end), (5, End::MaxIter));
        assert!(
            out.history.windows(2).all(|w| w[1] <= w[0]),
            "{:?}",
            out.history
        );
    }

    #[test]
    fn a_flat_objective_stalls_instead_of_looping() {
        // A gradient that promises descent the loss never delivers (as rounding does at
        // the end of an f32 fit).
        let mut f = |_: &[f64]| -> Result<(f64, Vec<f64>)> { Ok((1.0, vec![1.0, -1.0])) };
        let out = minimize(&mut f, vec![0.0, 0.0], settings(1e-6), &mut |_, _, _| true).unwrap();
        assert_eq!((out.end, out.iterations), (End::Stalled, 0));
        assert!(out.evaluations <= 1 + MAX_EVALS);
    }

    /// An independent implementation: argmin's L-BFGS with the More–Thuente line search
    /// (memory 10, the same c₁ and c₂), from the same starts, on Rosenbrock in 2 and 10
    /// dimensions, an ill-conditioned quadratic and an L2-penalised logistic regression.
    /// Both must reach the same minimiser, and this solver in a comparable number of
    /// iterations.
    #[test]
    fn agrees_with_argmin() {
        use argmin::core::{CostFunction, Executor, Gradient, State};
        use argmin::solver::linesearch::MoreThuenteLineSearch;
        use argmin::solver::quasinewton::LBFGS;

        type Fg = fn(&[f64]) -> (f64, Vec<f64>);
        struct Problem(Fg);
        impl CostFunction for Problem {
            type Param = Vec<f64>;
            type Output = f64;
            fn cost(&self, x: &Vec<f64>) -> std::result::Result<f64, argmin::core::Error> {
                Ok((self.0)(x).0)
            }
        }
        impl Gradient for Problem {
            type Param = Vec<f64>;
            type Gradient = Vec<f64>;
            fn gradient(&self, x: &Vec<f64>) -> std::result::Result<Vec<f64>, argmin::core::Error> {
                Ok((self.0)(x).1)
            }
        }

        fn rosenbrock_n(x: &[f64]) -> (f64, Vec<f64>) {
            let mut f = 0.0;
            let mut g = vec![0.0; x.len()];
            for i in 0..x.len() - 1 {
                let (a, b) = (x[i], x[i + 1]);
                f += (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2);
                g[i] += -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
                g[i + 1] += 200.0 * (b - a * a);
            }
            (f, g)
        }
        fn quadratic(x: &[f64]) -> (f64, Vec<f64>) {
            let n = x.len();
            let scale = |i: usize| 10f64.powf(3.0 * i as f64 / (n - 1) as f64);
            let f = (0..n).map(|i| 0.5 * scale(i) * (x[i] - 1.0).powi(2)).sum();
            (f, (0..n).map(|i| scale(i) * (x[i] - 1.0)).collect())
        }
        /// Mean logistic loss + ½ · 10⁻² ‖w‖² on 200 fixed rows of 5 features.
        fn logistic(w: &[f64]) -> (f64, Vec<f64>) {
            let (n, p) = (200, 5);
            let (mut f, mut g) = (0.0, vec![0.0; p]);
            for r in 0..n {
                let x: Vec<f64> = (0..p)
                    .map(|j| ((r * 7 + j * 13) % 17) as f64 / 8.0 - 1.0)
                    .collect();
                let y = f64::from(u8::from((r * 31) % 5 < 2));
                let z: f64 = x.iter().zip(w).map(|(a, b)| a * b).sum();
                f += z.max(0.0) + (-z.abs()).exp().ln_1p() - y * z;
                let d = 1.0 / (1.0 + (-z).exp()) - y;
                g.iter_mut().zip(&x).for_each(|(g, a)| *g += d * a);
            }
            let reg: f64 = w.iter().map(|v| v * v).sum();
            let g = g
                .iter()
                .zip(w)
                .map(|(g, v)| g / n as f64 + 1e-2 * v)
                .collect();
            (f / n as f64 + 0.5e-2 * reg, g)
        }

        let cases: [(&str, Fg, Vec<f64>); 4] = [
            ("rosenbrock 2", rosenbrock_n, vec![-1.2, 1.0]),
            (
                "rosenbrock 10",
                rosenbrock_n,
                (0..10)
                    .map(|i| if i % 2 == 0 { -1.2 } else { 1.0 })
                    .collect(),
            ),
            ("quadratic", quadratic, vec![0.0; 20]),
            ("logistic", logistic, vec![0.0; 5]),
        ];
        for (name, fg, x0) in cases {
            let ls = MoreThuenteLineSearch::new().with_c(C1, C2).unwrap();
            let solver = LBFGS::new(ls, 10)
                .with_tolerance_grad(1e-10)
                .unwrap()
                .with_tolerance_cost(0.0)
                .unwrap();
            let res = Executor::new(Problem(fg), solver)
                .configure(|s| s.param(x0.clone()).max_iters(5000))
                .run()
                .unwrap();
            let theirs = res.state().get_best_param().unwrap().clone();
            let their_iters = res.state().get_iter() as usize;
            let mut objective = |x: &[f64]| -> Result<(f64, Vec<f64>)> { Ok(fg(x)) };
            let ours = minimize(&mut objective, x0, settings(1e-10), &mut |_, _, _| true).unwrap();
            let apart = ours
                .x
                .iter()
                .zip(&theirs)
                .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
            eprintln!(
                "{name}: {} iterations ({} evaluations), argmin {their_iters}; apart {apart:.1e}",
                ours.iterations, ours.evaluations
            );
            assert!(apart < 1e-6, "{name}: max |ours − argmin's| = {apart:e}");
            assert!(
                ours.iterations <= 2 * their_iters + 10,
                "{name}: {} iterations against argmin's {their_iters}",
                ours.iterations
            );
        }
    }
}
