//! Every GPU kernel against its CPU twin on random inputs of awkward sizes.
//!
//! Outputs are poisoned with NaN before each dispatch, so an element the kernel forgot
//! to write fails the comparison. Tolerances are scaled:
//! `|gpu − cpu| ≤ max(rtol·max(|gpu|, |cpu|), atol)`.

mod common;

use common::{Rng, assert_close, fresh_gpu, gpu};
use gradflow::Error;
use gradflow::cpu::update::{Rule, Scalars};
use gradflow::cpu::{self, activation::Activation, loss::LossKind, matmul::Layout};
use gradflow::gpu::GpuContext;
use gradflow::gpu::kernels::{self, Halting, ParamRing, TargetRows};
use gradflow::gpu::readback::{read, read_f32};

/// Element-wise kernels: f32 rounding of one or two operations (≤ a few ulps, 2⁻²⁴ each)
/// plus the GPU's exp/log accuracy; 1e-5 relative leaves ~100 ulps.
const RTOL: f32 = 1e-5;

const SIZES: [usize; 5] = [1, 7, 33, 257, 1007];

fn poison(ctx: &GpuContext, len: usize) -> wgpu::Buffer {
    ctx.upload("poisoned output", &vec![f32::NAN; len])
        .expect("allocate")
}

/// atol for sums of `k` products bounded by `max_term`: the CPU sums in f64 and rounds
/// once, the GPU accumulates in f32, whose rounding error grows like k·2⁻²⁴·max|term|
/// (the partial sums random-walk to √k·|term|, and each of k additions rounds them).
fn sum_atol(k: usize, max_term: f32) -> f32 {
    4.0 * k as f32 * f32::EPSILON / 2.0 * max_term
}

#[allow(clippy::too_many_arguments)]
fn check_matmul(
    ctx: &GpuContext,
    rng: &mut Rng,
    layout: Layout,
    m: usize,
    k: usize,
    n: usize,
    gather: bool,
) {
    let a_rows_stored = if layout == Layout::TN { k } else { m };
    let a_row_len = if layout == Layout::TN { m } else { k };
    // With a gather index, A has extra rows and the batch reads a shuffled subset.
    let a_src_rows = if gather {
        a_rows_stored + 5
    } else {
        a_rows_stored
    };
    let a = rng.vec(a_src_rows * a_row_len, -1.0, 1.0);
    let b = rng.vec(k * n, -1.0, 1.0);
    let lead = 3usize; // index entries before the batch: exercises the offset
    let idx: Vec<u32> = (0..lead + a_rows_stored)
        .map(|_| rng.below(a_src_rows as u32))
        .collect();
    let mut want = vec![0f32; m * n];
    let idx_cpu = gather.then(|| &idx[lead..]);
    cpu::matmul::matmul(layout, m, k, n, &a, idx_cpu, &b, &mut want);

    let mut ring = ParamRing::new(ctx, kernels::matmul_dispatches(k).max(4)).expect("ring");
    let (ga, gb, gc) = (
        ctx.upload("a", &a).expect("a"),
        ctx.upload("b", &b).expect("b"),
        poison(ctx, m * n),
    );
    let gi = ctx.upload("idx", &idx).expect("idx");
    let bound =
        kernels::bind_matmul(ctx, &ring, &ga, gather.then_some(&gi), &gb, &gc).expect("bind");
    kernels::submit(ctx, &mut ring, |pass, ring| {
        kernels::matmul(
            ctx,
            pass,
            ring,
            &bound,
            layout,
            (m, k, n),
            gather.then_some(lead as u32),
        )
    })
    .expect("matmul");
    let got = read_f32(ctx, &gc, m * n).expect("read");
    assert_close(
        &format!("matmul {layout:?} {m}×{k}×{n} gather={gather}"),
        &got,
        &want,
        RTOL,
        sum_atol(k, 1.0),
    );
}

#[test]
fn matmul_matches_cpu_on_odd_shapes() {
    let Some(ctx) = gpu("matmul_matches_cpu_on_odd_shapes") else {
        return;
    };
    let mut rng = Rng::new(1);
    for layout in [Layout::NN, Layout::TN, Layout::NT] {
        for &s in &SIZES[..4] {
            check_matmul(&ctx, &mut rng, layout, s, s, s, false);
            check_matmul(&ctx, &mut rng, layout, s, s + 2, s + 1, true);
        }
        // Thin shapes of training: batch × features × outputs, and the gradient reduction.
        check_matmul(&ctx, &mut rng, layout, 1007, 7, 1, false);
        check_matmul(&ctx, &mut rng, layout, 7, 1007, 3, true);
        check_matmul(&ctx, &mut rng, layout, 33, 1, 257, false);
    }
}

#[test]
fn matmul_matches_cpu_1007x1023x1005() {
    let Some(ctx) = gpu("matmul_matches_cpu_1007x1023x1005") else {
        return;
    };
    let mut rng = Rng::new(2);
    for layout in [Layout::NN, Layout::TN, Layout::NT] {
        check_matmul(&ctx, &mut rng, layout, 1007, 1023, 1005, false);
    }
    check_matmul(&ctx, &mut rng, Layout::NN, 1007, 1023, 1005, true);
}

/// A gathered (or, with `gather = false`, stored-order) matmul whose A is split into
/// `chunks` buffers of `rpc` rows (the last 3 rows short), against the CPU on the whole A.
/// The index visits the first and last row of every chunk and the rows either side of
/// each boundary, then random rows of any chunk.
fn check_matmul_chunked(
    ctx: &GpuContext,
    rng: &mut Rng,
    layout: Layout,
    (m, k, n): (usize, usize, usize),
    (chunks, rpc): (usize, usize),
    gather: bool,
) {
    let a_rows_stored = if layout == Layout::TN { k } else { m };
    let a_row_len = if layout == Layout::TN { m } else { k };
    let total = (chunks - 1) * rpc + (rpc - 3);
    assert!(
        gather || a_rows_stored == total,
        "stored order reads all of A"
    );
    let a = rng.vec(total * a_row_len, -1.0, 1.0);
    let b = rng.vec(k * n, -1.0, 1.0);
    let mut visit: Vec<u32> = Vec::new();
    for c in 0..chunks {
        let (first, last) = (c * rpc, ((c + 1) * rpc).min(total) - 1);
        visit.extend([first, first + 1, last - 1, last].map(|r| r as u32));
    }
    assert!(
        visit.len() <= a_rows_stored,
        "the batch covers every boundary"
    );
    let lead = 3usize;
    let mut idx: Vec<u32> = (0..lead).map(|_| rng.below(total as u32)).collect();
    idx.extend(&visit);
    while idx.len() < lead + a_rows_stored {
        idx.push(rng.below(total as u32));
    }
    let mut want = vec![0f32; m * n];
    let idx_cpu = gather.then(|| &idx[lead..]);
    cpu::matmul::matmul(layout, m, k, n, &a, idx_cpu, &b, &mut want);

    let mut ring = ParamRing::new(ctx, kernels::matmul_dispatches(k).max(4)).expect("ring");
    let parts: Vec<wgpu::Buffer> = a
        .chunks(rpc * a_row_len)
        .map(|part| ctx.upload("a chunk", part).expect("a chunk"))
        .collect();
    assert_eq!(parts.len(), chunks);
    let part_refs: Vec<&wgpu::Buffer> = parts.iter().collect();
    let (gb, gc) = (ctx.upload("b", &b).expect("b"), poison(ctx, m * n));
    let gi = ctx.upload("idx", &idx).expect("idx");
    let bound =
        kernels::bind_matmul_chunked(ctx, &ring, &part_refs, rpc, gather.then_some(&gi), &gb, &gc)
            .expect("bind");
    kernels::submit(ctx, &mut ring, |pass, ring| {
        kernels::matmul(
            ctx,
            pass,
            ring,
            &bound,
            layout,
            (m, k, n),
            gather.then_some(lead as u32),
        )
    })
    .expect("matmul");
    let got = read_f32(ctx, &gc, m * n).expect("read");
    assert_close(
        &format!("matmul {layout:?} {m}×{k}×{n} in {chunks} chunks of {rpc} rows, gather={gather}"),
        &got,
        &want,
        RTOL,
        sum_atol(k, 1.0),
    );
}

/// The resident dataset's matmuls (the NN forward X·W and the TN gradient Xᵀ·δ, both
/// gathered) with X split over 2, 3 and 4 chunk buffers, as a dataset larger than one
/// storage binding is; NT and a stored-order read for the shader's other paths.
#[test]
fn matmul_reads_rows_across_chunks() {
    let Some(ctx) = gpu("matmul_reads_rows_across_chunks") else {
        return;
    };
    let mut rng = Rng::new(21);
    let rpc = 37;
    for chunks in 2..=4 {
        // Batch 45 rows of p = 19 features, 5 outputs; the batch is A's stored rows.
        check_matmul_chunked(&ctx, &mut rng, Layout::NN, (45, 19, 5), (chunks, rpc), true);
        check_matmul_chunked(&ctx, &mut rng, Layout::TN, (19, 45, 5), (chunks, rpc), true);
        check_matmul_chunked(&ctx, &mut rng, Layout::NT, (45, 19, 5), (chunks, rpc), true);
        let total = (chunks - 1) * rpc + rpc - 3;
        check_matmul_chunked(
            &ctx,
            &mut rng,
            Layout::NN,
            (total, 19, 5),
            (chunks, rpc),
            false,
        );
    }
    // Training's shapes: one output, a batch wider than a chunk.
    check_matmul_chunked(&ctx, &mut rng, Layout::NN, (100, 64, 1), (4, rpc), true);
    check_matmul_chunked(&ctx, &mut rng, Layout::TN, (64, 100, 1), (4, rpc), true);
}

/// Chunk lists that the kernel cannot address are refused before any GPU call.
#[test]
fn chunked_matmul_refuses_bad_chunks() {
    let Some(ctx) = gpu("chunked_matmul_refuses_bad_chunks") else {
        return;
    };
    let mut ring = ParamRing::new(&ctx, 2).expect("ring");
    let part = ctx.upload("a chunk", &[1.0f32; 8 * 4]).expect("a"); // 8 rows of 4
    let short = ctx.upload("short chunk", &[1.0f32; 7 * 4]).expect("a"); // 7 rows
    let b = ctx.upload("b", &[1.0f32; 4]).expect("b");
    let c = ctx.upload("c", &[0.0f32; 32]).expect("c");
    let idx = ctx.upload("idx", &[0u32; 16]).expect("idx");
    let five = [&part; 5];
    let err = kernels::bind_matmul_chunked(&ctx, &ring, &five, 8, Some(&idx), &b, &c)
        .expect_err("5 chunks");
    assert!(matches!(err, Error::InvalidParameter { .. }), "{err}");
    let err = kernels::bind_matmul_chunked(&ctx, &ring, &[&part], 0, Some(&idx), &b, &c)
        .expect_err("0 rows per chunk");
    assert!(matches!(err, Error::InvalidParameter { .. }), "{err}");
    // A chunk before the last holding fewer than rows_per_chunk rows: rows of the next
    // chunk would be out of its bounds.
    let mm = kernels::bind_matmul_chunked(&ctx, &ring, &[&short, &part], 8, Some(&idx), &b, &c)
        .expect("bind");
    let err = kernels::submit(&ctx, &mut ring, |p, r| {
        kernels::matmul(&ctx, p, r, &mm, Layout::NN, (4, 4, 1), Some(0))
    })
    .expect_err("short chunk");
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    // In stored order, more rows than the chunks hold.
    let mm =
        kernels::bind_matmul_chunked(&ctx, &ring, &[&part, &part], 8, None, &b, &c).expect("bind");
    let err = kernels::submit(&ctx, &mut ring, |p, r| {
        kernels::matmul(&ctx, p, r, &mm, Layout::NN, (17, 4, 1), None)
    })
    .expect_err("rows beyond the chunks");
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
}

#[test]
fn bias_add_matches_cpu() {
    let Some(ctx) = gpu("bias_add_matches_cpu") else {
        return;
    };
    let mut rng = Rng::new(3);
    for (i, &rows) in SIZES.iter().enumerate() {
        let cols = [1, 7, 33, 3, 10][i];
        let z = rng.vec(rows * cols, -5.0, 5.0);
        let bias = rng.vec(cols, -1.0, 1.0);
        let mut want = z.clone();
        cpu::bias::bias_add(&mut want, rows, cols, &bias);
        let mut ring = ParamRing::new(&ctx, 1).expect("ring");
        let (gz, gb) = (
            ctx.upload("z", &z).expect("z"),
            ctx.upload("b", &bias).expect("b"),
        );
        let bound = kernels::bind_bias_add(&ctx, &ring, &gz, &gb).expect("bind");
        kernels::submit(&ctx, &mut ring, |p, r| {
            kernels::bias_add(&ctx, p, r, &bound, rows, cols)
        })
        .expect("bias");
        let got = read_f32(&ctx, &gz, rows * cols).expect("read");
        // One f32 addition, correctly rounded on both sides: bit-identical.
        assert_close(&format!("bias_add {rows}×{cols}"), &got, &want, 0.0, 0.0);
    }
}

#[test]
fn activations_match_cpu() {
    let Some(ctx) = gpu("activations_match_cpu") else {
        return;
    };
    let mut rng = Rng::new(4);
    for f in [Activation::Sigmoid, Activation::Tanh, Activation::Relu] {
        for &len in &SIZES {
            let mut z = rng.vec(len, -8.0, 8.0);
            if len > 4 {
                z[..4].copy_from_slice(&[-100.0, 100.0, 0.0, -0.0]); // saturation, zero
            }
            let mut a = vec![0f32; len];
            cpu::activation::activate(f, &z, &mut a);
            let mut ring = ParamRing::new(&ctx, 2).expect("ring");
            let (gz, ga) = (ctx.upload("z", &z).expect("z"), poison(&ctx, len));
            let fwd = kernels::bind_activation(&ctx, &ring, &gz, &ga).expect("bind");
            kernels::submit(&ctx, &mut ring, |p, r| {
                kernels::activate(&ctx, p, r, &fwd, f, len)
            })
            .expect("activate");
            let got = read_f32(&ctx, &ga, len).expect("read");
            // Saturated sigmoid values near 1e-35 are below any useful scale: atol 1e-30.
            assert_close(&format!("{} {len}", f.name()), &got, &a, RTOL, 1e-30);

            let g = rng.vec(len, -1.0, 1.0);
            let mut want = g.clone();
            cpu::activation::activate_backward(f, &a, &mut want);
            let (ga_in, gg) = (
                ctx.upload("a", &a).expect("a"),
                ctx.upload("g", &g).expect("g"),
            );
            let bwd = kernels::bind_activation(&ctx, &ring, &ga_in, &gg).expect("bind");
            kernels::submit(&ctx, &mut ring, |p, r| {
                kernels::activate_backward(&ctx, p, r, &bwd, f, len)
            })
            .expect("backward");
            let got = read_f32(&ctx, &gg, len).expect("read");
            // g·f′(a) against float64 from the same `a`, within 4 ulps of |g|: f′(a) is
            // 1 − a² or a(1 − a), which cancel as |a| → 1, so a device that fuses the
            // multiply and the subtraction (NVIDIA's driver seemed to) lands many ulps of the
            // small result away from the CPU's two roundings — both within ulps of g.
            let exact = |g: f32, a: f32| {
                let (g, a) = (f64::from(g), f64::from(a));
                g * match f {
                    Activation::Sigmoid => a * (1.0 - a),
                    Activation::Tanh => 1.0 - a * a,
                    Activation::Relu => f64::from(u8::from(a > 0.0)),
                }
            };
            for (name, side) in [("gpu", &got), ("cpu", &want)] {
                for i in 0..len {
                    let err = (f64::from(side[i]) - exact(g[i], a[i])).abs();
                    let bound = 4.0 * f64::from(f32::EPSILON) * f64::from(g[i].abs());
                    assert!(
                        err <= bound + f64::from(f32::MIN_POSITIVE),
                        "{} backward {len} [{i}]: {name} {} against {} (a {}, g {})",
                        f.name(),
                        side[i],
                        exact(g[i], a[i]),
                        a[i],
                        g[i]
                    );
                }
            }
        }
    }
}

#[test]
fn softmax_matches_cpu() {
    let Some(ctx) = gpu("softmax_matches_cpu") else {
        return;
    };
    let mut rng = Rng::new(5);
    for (i, &rows) in SIZES.iter().enumerate() {
        let cols = [1, 7, 33, 2, 10][i];
        let mut z = rng.vec(rows * cols, -10.0, 10.0);
        z[0] = 1000.0; // the stable form must not overflow
        let mut want = vec![0f32; rows * cols];
        cpu::softmax::softmax_rows(&z, rows, cols, &mut want);
        let mut ring = ParamRing::new(&ctx, 1).expect("ring");
        let (gz, go) = (ctx.upload("z", &z).expect("z"), poison(&ctx, rows * cols));
        let bound = kernels::bind_softmax_rows(&ctx, &ring, &gz, &go).expect("bind");
        kernels::submit(&ctx, &mut ring, |p, r| {
            kernels::softmax_rows(&ctx, p, r, &bound, rows, cols)
        })
        .expect("softmax");
        let got = read_f32(&ctx, &go, rows * cols).expect("read");
        // Probabilities below 1e-30 carry no information at this scale.
        assert_close(&format!("softmax {rows}×{cols}"), &got, &want, RTOL, 1e-30);
    }
}

/// Loss inputs: output `z` (m × cols), targets as u32 words (f32 bits for MSE), optional
/// row weights in [0, 3) read like the targets, CPU δ and loss.
fn check_loss(
    ctx: &GpuContext,
    rng: &mut Rng,
    kind: LossKind,
    (m, cols): (usize, usize),
    gather: bool,
    weighted: bool,
) {
    let n_rows = m + 9; // the dataset: more rows than the batch
    let z = rng.vec(m * cols, -6.0, 6.0);
    let w = rng.vec(n_rows, 0.0, 3.0);
    let lead = 2usize;
    let idx: Vec<u32> = (0..lead + m).map(|_| rng.below(n_rows as u32)).collect();
    let start = 4usize; // Range batches start here
    let rows_cpu: Option<&[u32]> = gather.then(|| &idx[lead..]);
    let w_cpu = weighted.then(|| if gather { &w[..] } else { &w[start..] });
    let mut want_dz = vec![0f32; m * cols];
    let (words, want_loss): (Vec<u32>, f64) = match kind {
        LossKind::Mse => {
            let y = rng.vec(n_rows * cols, -6.0, 6.0);
            let ys = if gather { &y[..] } else { &y[start * cols..] };
            let l = cpu::loss::mse(&z, ys, rows_cpu, m, cols, &mut want_dz, w_cpu);
            (y.iter().map(|v| v.to_bits()).collect(), l)
        }
        LossKind::SigmoidBce | LossKind::SoftmaxCce => {
            let classes = if kind == LossKind::SigmoidBce {
                2
            } else {
                cols as u32
            };
            let labels: Vec<u32> = (0..n_rows).map(|_| rng.below(classes)).collect();
            let ls = if gather {
                &labels[..]
            } else {
                &labels[start..]
            };
            let l = if kind == LossKind::SigmoidBce {
                cpu::loss::sigmoid_bce(&z, ls, rows_cpu, m, &mut want_dz, w_cpu)
            } else {
                cpu::loss::softmax_cce(&z, ls, rows_cpu, m, cols, &mut want_dz, w_cpu)
            };
            (labels, l)
        }
    };
    let mut ring = ParamRing::new(ctx, 1).expect("ring");
    let gz = ctx.upload("z", &z).expect("z");
    let gt = ctx.upload("targets", &words).expect("t");
    let gi = ctx.upload("idx", &idx).expect("idx");
    let gdz = poison(ctx, m * cols);
    let losses = poison(ctx, 4);
    let gw = ctx.upload("weights", &w).expect("w");
    let gw = weighted.then_some(&gw);
    let bound =
        kernels::bind_loss(ctx, &ring, &gz, &gt, Some(&gi), &gdz, &losses, None, gw).expect("bind");
    let rows = if gather {
        TargetRows::Gather(lead as u32)
    } else {
        TargetRows::Range(start as u32)
    };
    kernels::submit(ctx, &mut ring, |p, r| {
        kernels::loss(ctx, p, r, &bound, kind, rows, (m, cols), 2, Halting::Off)
    })
    .expect("loss");
    let what = format!("{kind:?} {m}×{cols} gather={gather} weighted={weighted}");
    let got_dz = read_f32(ctx, &gdz, m * cols).expect("read");
    // δ = (p − y)/m (or 2(z − y)/m) is a difference of f32 values of size ≤ `scale`: its
    // rounding error is absolute, a few 2⁻²⁴·scale, then divided by m (times a weight < 3).
    let scale = if kind == LossKind::Mse { 12.0 } else { 1.0 } * if weighted { 3.0 } else { 1.0 };
    let atol = 4.0 * f32::EPSILON * scale / m as f32;
    assert_close(&format!("{what} δ"), &got_dz, &want_dz, RTOL, atol);
    let got_loss = read_f32(ctx, &losses, 4).expect("read");
    // The loss is a sum of m·cols terms in f32, the CPU's in f64.
    let atol = sum_atol(m * cols, want_loss.abs() as f32 + 1.0);
    assert_close(
        &format!("{what} loss"),
        &got_loss[2..3],
        &[want_loss as f32],
        RTOL,
        atol,
    );
    assert!(
        got_loss[0].is_nan() && got_loss[3].is_nan(),
        "{what}: wrote outside its loss slot"
    );
}

#[test]
fn losses_match_cpu() {
    let Some(ctx) = gpu("losses_match_cpu") else {
        return;
    };
    let mut rng = Rng::new(6);
    for kind in [LossKind::Mse, LossKind::SigmoidBce, LossKind::SoftmaxCce] {
        for (i, &m) in SIZES.iter().enumerate() {
            let cols = match kind {
                LossKind::SigmoidBce => 1,
                _ => [1, 7, 3, 10, 4][i],
            };
            for (gather, weighted) in [(false, false), (true, false), (false, true), (true, true)] {
                check_loss(&ctx, &mut rng, kind, (m, cols), gather, weighted);
            }
        }
    }
}

#[test]
fn col_sums_match_cpu() {
    let Some(ctx) = gpu("col_sums_match_cpu") else {
        return;
    };
    let mut rng = Rng::new(7);
    for (i, &rows) in SIZES.iter().enumerate() {
        for cols in [1, [7, 33, 257, 3, 1007][i]] {
            let x = rng.vec(rows * cols, -1.0, 1.0);
            let mut want = vec![0f32; cols];
            cpu::reduce::col_sums(&x, rows, cols, &mut want);
            let mut ring = ParamRing::new(&ctx, 1).expect("ring");
            let (gx, go) = (ctx.upload("x", &x).expect("x"), poison(&ctx, cols));
            let bound = kernels::bind_col_sums(&ctx, &ring, &gx, &go).expect("bind");
            kernels::submit(&ctx, &mut ring, |p, r| {
                kernels::col_sums(&ctx, p, r, &bound, rows, cols)
            })
            .expect("col_sums");
            let got = read_f32(&ctx, &go, cols).expect("read");
            assert_close(
                &format!("col_sums {rows}×{cols}"),
                &got,
                &want,
                RTOL,
                sum_atol(rows, 1.0),
            );
        }
    }
}

/// Every optimizer rule, with and without the penalties, two steps in a row (the state
/// carried from the first into the second), GPU against the CPU twin in f32 and against
/// the f64 oracle.
#[test]
fn updates_match_cpu() {
    let Some(ctx) = gpu("updates_match_cpu") else {
        return;
    };
    let rules = [
        Rule::Sgd,
        Rule::Momentum { nesterov: false },
        Rule::Momentum { nesterov: true },
        Rule::Adam,
        Rule::AdaGrad,
    ];
    let mut rng = Rng::new(8);
    for rule in rules {
        for (l2, l1) in [(0.0, 0.0), (0.3, 0.0), (0.0, 0.5), (0.2, 0.4)] {
            for &len in &SIZES {
                let p = rng.vec(len, -3.0, 3.0);
                let grads = [rng.vec(len, -3.0, 3.0), rng.vec(len, -3.0, 3.0)];
                let scalars = |t: i32| Scalars {
                    lr: 0.1,
                    l2,
                    l1,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    c1: 1.0 / (1.0 - 0.9f64.powi(t)),
                    c2: 1.0 / (1.0 - 0.999f64.powi(t)),
                };
                // The CPU twin in f32 and the f64 oracle.
                let (mut want, mut w1, mut w2) = (p.clone(), vec![0f32; len], vec![0f32; len]);
                let mut exact: Vec<f64> = p.iter().map(|&v| f64::from(v)).collect();
                let (mut e1, mut e2) = (vec![0f64; len], vec![0f64; len]);
                for (t, g) in grads.iter().enumerate() {
                    let s = scalars(t as i32 + 1);
                    cpu::update::apply(rule, &mut want, g, &mut w1, &mut w2, &s.of());
                    let g64: Vec<f64> = g.iter().map(|&v| f64::from(v)).collect();
                    cpu::update::apply(rule, &mut exact, &g64, &mut e1, &mut e2, &s);
                }
                let mut ring = ParamRing::new(&ctx, 2).expect("ring");
                let gp = ctx.upload("p", &p).expect("p");
                let gg = [
                    ctx.upload("g0", &grads[0]).expect("g"),
                    ctx.upload("g1", &grads[1]).expect("g"),
                ];
                let s1 = ctx.upload("s1", &vec![0f32; len]).expect("s1");
                let s2 = ctx.upload("s2", &vec![0f32; len]).expect("s2");
                let bound = gg.each_ref().map(|g| {
                    kernels::bind_update(&ctx, &ring, &gp, g, None, [&s1, &s2]).expect("bind")
                });
                kernels::submit(&ctx, &mut ring, |pa, r| {
                    for (t, b) in bound.iter().enumerate() {
                        let s = scalars(t as i32 + 1).of::<f32>();
                        kernels::update(&ctx, pa, r, b, rule, len, &s)?;
                    }
                    Ok(())
                })
                .expect("update");
                let got = read_f32(&ctx, &gp, len).expect("read");
                let what = format!("{rule:?} l2 {l2} l1 {l1}, {len} values");
                // A few roundings apart (fused multiply-adds, sqrt): rtol 1e-5.
                assert_close(&what, &got, &want, 1e-5, 1e-6);
                // Against f64: a result near 0 comes from cancelling operands up to |θ| = 3
                // (plus lr-sized steps), so its error scales with them, not with itself:
                // atol = a few f32 ulps of 3.
                let exact: Vec<f32> = exact.iter().map(|&v| v as f32).collect();
                assert_close(
                    &format!("{what} vs f64"),
                    &got,
                    &exact,
                    1e-5,
                    3.0 * 4.0 * f32::EPSILON,
                );
                let state = read_f32(&ctx, &s1, len).expect("read");
                assert_close(&format!("{what}: state 1"), &state, &w1, 1e-5, 1e-6);
                let state = read_f32(&ctx, &s2, len).expect("read");
                assert_close(&format!("{what}: state 2"), &state, &w2, 1e-5, 1e-6);
            }
        }
    }
}

/// The same matmul and loss dispatched twice give the same bits (fixed-order sums).
#[test]
fn repeated_dispatch_is_bit_identical() {
    let Some(ctx) = gpu("repeated_dispatch_is_bit_identical") else {
        return;
    };
    let mut rng = Rng::new(9);
    let (m, k, n) = (257, 1007, 33);
    let a = rng.vec(k * m, -1.0, 1.0);
    let b = rng.vec(k * n, -1.0, 1.0);
    let labels: Vec<u32> = (0..m).map(|_| rng.below(n as u32)).collect();
    let mut ring = ParamRing::new(&ctx, 4).expect("ring");
    let (ga, gb) = (
        ctx.upload("a", &a).expect("a"),
        ctx.upload("b", &b).expect("b"),
    );
    let gl = ctx.upload("labels", &labels).expect("labels");
    let mut runs = Vec::new();
    for _ in 0..2 {
        let gc = poison(&ctx, m * n);
        let gdz = poison(&ctx, m * n);
        let losses = poison(&ctx, 1);
        let mm = kernels::bind_matmul(&ctx, &ring, &ga, None, &gb, &gc).expect("bind");
        let lo = kernels::bind_loss(&ctx, &ring, &gc, &gl, None, &gdz, &losses, None, None)
            .expect("bind");
        kernels::submit(&ctx, &mut ring, |p, r| {
            kernels::matmul(&ctx, p, r, &mm, Layout::TN, (m, k, n), None)?;
            kernels::loss(
                &ctx,
                p,
                r,
                &lo,
                LossKind::SoftmaxCce,
                TargetRows::Range(0),
                (m, n),
                0,
                Halting::Off,
            )
        })
        .expect("submit");
        let c: Vec<u32> = read(&ctx, &gc, m * n).expect("read");
        let dz: Vec<u32> = read(&ctx, &gdz, m * n).expect("read");
        let l: Vec<u32> = read(&ctx, &losses, 1).expect("read");
        runs.push((c, dz, l));
    }
    assert!(
        runs[0] == runs[1],
        "two identical dispatches gave different bits"
    );
}

/// Using every kernel again builds nothing new.
#[test]
fn pipeline_cache_fills_once() {
    let Some(ctx) = fresh_gpu("pipeline_cache_fills_once") else {
        return;
    };
    let run_all = |ctx: &GpuContext| {
        let mut ring = ParamRing::new(ctx, 16).expect("ring");
        let x = ctx.upload("x", &[0.5f32; 64]).expect("x");
        let y = ctx.upload("y", &[0.25f32; 64]).expect("y");
        let z = ctx.upload("z", &[0.0f32; 64]).expect("z");
        let l = ctx.upload("labels", &[1u32; 8]).expect("labels");
        let s = ctx.upload("slots", &[0.0f32; 1]).expect("slots");
        let mm = kernels::bind_matmul(ctx, &ring, &x, None, &y, &z).expect("bind");
        let bi = kernels::bind_bias_add(ctx, &ring, &z, &y).expect("bind");
        let ac = kernels::bind_activation(ctx, &ring, &x, &z).expect("bind");
        let sm = kernels::bind_softmax_rows(ctx, &ring, &x, &z).expect("bind");
        let lo = kernels::bind_loss(ctx, &ring, &x, &l, None, &z, &s, None, None).expect("bind");
        let cs = kernels::bind_col_sums(ctx, &ring, &x, &z).expect("bind");
        let s1 = ctx.upload("s1", &[0.0f32; 64]).expect("s1");
        let s2 = ctx.upload("s2", &[0.0f32; 64]).expect("s2");
        let sg = kernels::bind_update(ctx, &ring, &z, &y, None, [&s1, &s2]).expect("bind");
        kernels::submit(ctx, &mut ring, |p, r| {
            for layout in [Layout::NN, Layout::TN, Layout::NT] {
                kernels::matmul(ctx, p, r, &mm, layout, (8, 8, 8), None)?;
            }
            kernels::bias_add(ctx, p, r, &bi, 8, 8)?;
            kernels::activate(ctx, p, r, &ac, Activation::Tanh, 64)?;
            kernels::activate_backward(ctx, p, r, &ac, Activation::Tanh, 64)?;
            kernels::softmax_rows(ctx, p, r, &sm, 8, 8)?;
            kernels::loss(
                ctx,
                p,
                r,
                &lo,
                LossKind::SoftmaxCce,
                TargetRows::Range(0),
                (8, 8),
                0,
                Halting::Off,
            )?;
            kernels::col_sums(ctx, p, r, &cs, 8, 8)?;
            kernels::update(ctx, p, r, &sg, Rule::Sgd, 64, &Scalars::sgd(0.1))
        })
        .expect("submit");
        read_f32(ctx, &z, 64).expect("read");
    };
    run_all(&ctx);
    let first = ctx.pipelines().counts();
    assert_eq!(first.pipelines, 10, "{first:?}");
    assert_eq!(first.modules, 7, "{first:?}");
    for _ in 0..3 {
        run_all(&ctx);
    }
    assert_eq!(ctx.pipelines().counts(), first, "the cache grew on reuse");
}

/// Pipelines compiled ahead, on other threads (`Pipelines::prefetch`, what an engine's
/// build does for each of its kernels), are the ones `get` hands out: each kernel is
/// counted and compiled once however many threads ask for it at once, and a kernel
/// prefetched but not yet used is built by the first `get`.
#[test]
fn prefetched_pipelines_are_built_once() {
    use gradflow::gpu::pipelines::Kernel;
    let Some(ctx) = fresh_gpu("prefetched_pipelines_are_built_once") else {
        return;
    };
    let kernels = [
        Kernel::BiasAdd,
        Kernel::ColSums,
        Kernel::Activate(Activation::Tanh),
        Kernel::ActivateBackward(Activation::Relu),
    ];
    for k in kernels {
        ctx.pipelines().prefetch(k);
    }
    let counted = ctx.pipelines().counts();
    assert_eq!(counted.pipelines, kernels.len(), "{counted:?}");
    // Eight threads at once, each prefetching and getting every kernel.
    let got: Vec<Vec<wgpu::ComputePipeline>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    kernels
                        .iter()
                        .map(|&k| {
                            ctx.pipelines().prefetch(k);
                            ctx.pipelines().get(k)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    for run in &got {
        assert!(run == &got[0], "a kernel was built twice");
    }
    assert_eq!(ctx.pipelines().counts(), counted, "the cache grew");
    assert!(ctx.check().is_ok());
}

/// Shapes beyond a device limit are refused with an `Error` before any GPU call.
#[test]
fn shapes_beyond_device_limits_are_errors() {
    let Some(ctx) = gpu("shapes_beyond_device_limits_are_errors") else {
        return;
    };
    let limits = *ctx.limits();
    let too_long = (limits.max_storage_buffer_binding_size / 4 + 1) as usize;
    assert!(matches!(
        ctx.storage("too big", too_long),
        Err(Error::DeviceLimit { .. })
    ));
    let mut ring = ParamRing::new(&ctx, 2).expect("ring");
    let x = ctx.upload("x", &[1.0f32; 16]).expect("x");
    let mm = kernels::bind_matmul(&ctx, &ring, &x, None, &x, &x).expect("bind");
    // Beyond the grid whichever register block the adapter's tuning chose (4 or 8 rows
    // an invocation, 8 invocations a workgroup).
    let rows = (limits.max_compute_workgroups_per_dimension as usize + 1) * 64;
    let err = kernels::submit(&ctx, &mut ring, |p, r| {
        kernels::matmul(&ctx, p, r, &mm, Layout::NN, (rows, 1, 1), None)
    })
    .expect_err("a grid beyond the limit");
    assert!(matches!(err, Error::DeviceLimit { .. }), "{err}");
    // A shape that fits the grid but not the bound buffers is a shape error, not UB.
    let err = kernels::submit(&ctx, &mut ring, |p, r| {
        kernels::matmul(&ctx, p, r, &mm, Layout::NN, (8, 8, 8), None)
    })
    .expect_err("buffers too short");
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
}

// Property tests: the pairs above on random shapes and values, not only the chosen ones.
// Few cases each (every case is a device round trip on a software adapter); a failure
// prints the shrunk shape and seed.
proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    #[test]
    fn prop_matmul_agrees_on_random_shapes(
        layout in 0usize..3,
        m in 1usize..90,
        k in 1usize..90,
        n in 1usize..90,
        gather: bool,
        seed: u64,
    ) {
        if let Some(ctx) = gpu("prop_matmul_agrees_on_random_shapes") {
            let layout = [Layout::NN, Layout::TN, Layout::NT][layout];
            check_matmul(&ctx, &mut Rng::new(seed), layout, m, k, n, gather);
        }
    }

    #[test]
    fn prop_losses_agree_on_random_batches(
        kind in 0usize..3,
        m in 1usize..300,
        cols in 2usize..12,
        gather: bool,
        weighted: bool,
        seed: u64,
    ) {
        if let Some(ctx) = gpu("prop_losses_agree_on_random_batches") {
            let kind = [LossKind::Mse, LossKind::SigmoidBce, LossKind::SoftmaxCce][kind];
            let cols = if kind == LossKind::SigmoidBce { 1 } else { cols };
            check_loss(&ctx, &mut Rng::new(seed), kind, (m, cols), gather, weighted);
        }
    }
}

/// Long sums: llvmpipe stops an invocation's loops after 65,535 iterations in all, which
/// cut a full batch's Xᵀδ short from k ≈ 60,000 (wrong sums, no error). The host splits k
/// into dispatches of `MATMUL_K_PER_DISPATCH` that continue each other's sums.
#[test]
fn long_sums_are_not_cut_short() {
    let Some(ctx) = gpu("long_sums_are_not_cut_short") else {
        return;
    };
    let mut rng = Rng::new(3);
    check_matmul(&ctx, &mut rng, Layout::TN, 64, 100_000, 1, false);
    check_matmul(&ctx, &mut rng, Layout::NT, 5, 70_001, 2, true);
    // Several dispatches' stretches of k, the last partial, within one 128 MiB binding.
    let k = 16 * kernels::MATMUL_K_PER_DISPATCH + 1000;
    check_matmul(&ctx, &mut rng, Layout::TN, 8, k, 3, false);
    check_matmul(&ctx, &mut rng, Layout::NN, 3, k, 1, true);
}

/// The split sums (a full batch's Xᵀδ and 1ᵀδ over many row segments, then a second
/// pass adding the segments in order) against the CPU twins, on awkward shapes: row
/// counts that leave a short last segment, one segment, more segments than the scratch
/// allows (so that they grow longer), gathered rows, and outputs that are not multiples
/// of the 4 × 4 block.
#[test]
fn split_sums_match_cpu() {
    let Some(ctx) = gpu("split_sums_match_cpu") else {
        return;
    };
    let mut rng = Rng::new(11);
    for &(m, k, n, room, gather) in &[
        (64, 100_003, 1, 4096, true),
        (7, 4_097, 3, 4096, false),
        (33, 20_000, 10, 3, true),
        (1, 300, 1, 64, false),
        (65, 70_001, 2, 65_535, false),
    ] {
        let a = rng.vec(k * m, -1.0, 1.0);
        let b = rng.vec(k * n, -1.0, 1.0);
        let idx: Vec<u32> = (0..k).map(|_| rng.below(k as u32)).collect();
        let mut want = vec![0f32; m * n];
        cpu::matmul::matmul(
            Layout::TN,
            m,
            k,
            n,
            &a,
            gather.then_some(&idx[..]),
            &b,
            &mut want,
        );
        let cut = kernels::split(k, (m.div_ceil(32) * n.div_ceil(32)) as u64, room);
        assert!(cut.segments <= room.max(k.div_ceil(kernels::MATMUL_K_PER_DISPATCH)));
        assert!(cut.seg_len <= kernels::MATMUL_K_PER_DISPATCH && cut.seg_len.is_multiple_of(16));
        let mut ring = ParamRing::new(&ctx, 4).expect("ring");
        let (ga, gb, gi) = (
            ctx.upload("a", &a).expect("a"),
            ctx.upload("b", &b).expect("b"),
            ctx.upload("idx", &idx).expect("idx"),
        );
        let scratch = poison(&ctx, cut.segments * m * n);
        let gc = poison(&ctx, m * n);
        let first = kernels::bind_matmul(&ctx, &ring, &ga, gather.then_some(&gi), &gb, &scratch)
            .expect("bind");
        let finish = kernels::bind_col_sums(&ctx, &ring, &scratch, &gc).expect("bind");
        kernels::submit(&ctx, &mut ring, |pass, ring| {
            let rows = gather.then_some(0);
            let pair = (&first, &finish);
            kernels::matmul_split(
                &ctx,
                pass,
                ring,
                pair,
                Layout::TN,
                (m, k, n),
                rows,
                (room, 256),
            )
        })
        .expect("matmul_split");
        let got = read_f32(&ctx, &gc, m * n).expect("read");
        let what = format!(
            "split Xᵀδ {m}×{k}×{n} in {} segments of {}",
            cut.segments, cut.seg_len
        );
        assert_close(&what, &got, &want, RTOL, sum_atol(k, 1.0));

        // 1ᵀδ: the column sums of the k × n matrix b.
        let mut sums = vec![0f32; n];
        cpu::reduce::col_sums(&b, k, n, &mut sums);
        let cut = kernels::split(k, n as u64, room);
        let partial_out = poison(&ctx, cut.segments * n);
        let out = poison(&ctx, n);
        let partial = kernels::bind_col_sums(&ctx, &ring, &gb, &partial_out).expect("bind");
        let finish = kernels::bind_col_sums(&ctx, &ring, &partial_out, &out).expect("bind");
        kernels::submit(&ctx, &mut ring, |pass, ring| {
            kernels::col_sums_split(&ctx, pass, ring, (&partial, &finish), (k, n), room)
        })
        .expect("col_sums_split");
        let got = read_f32(&ctx, &out, n).expect("read");
        let what = format!("split 1ᵀδ {k}×{n} in {} segments", cut.segments);
        assert_close(&what, &got, &sums, RTOL, sum_atol(k, 1.0));
    }
}

/// A split never passes llvmpipe's loop budget per segment, covers every row, and never
/// needs more segments than the bound of a longer batch (the scratch is sized for the
/// batch capacity and serves every shorter batch).
#[test]
fn splits_are_sized_by_the_shape() {
    let cap = 2_000_000;
    let room = kernels::split_bound(cap, 2, 4096);
    for rows in (1..cap).step_by(9_973) {
        let cut = kernels::split(rows, 2, 4096);
        assert!(
            cut.seg_len <= kernels::MATMUL_K_PER_DISPATCH,
            "{rows}: {cut:?}"
        );
        assert!(cut.segments * cut.seg_len >= rows && (cut.segments - 1) * cut.seg_len < rows);
        assert!(cut.segments <= kernels::split_bound(rows, 2, 4096) && cut.segments <= room);
        assert!(cut.segments <= 4096);
    }
    assert_eq!(kernels::split(1_000_000, 2, 4096).segments, 1009);
    assert_eq!(kernels::split(300, 2, 4096).segments, 2);
}

/// A write of more than 16 MiB is copied into the staging memory in 4 MiB parts on every
/// core, the tail on the caller's: it arrives whole, every value in place.
#[test]
fn large_writes_arrive_whole() {
    let Some(ctx) = gpu("large_writes_arrive_whole") else {
        return;
    };
    // 20 MB and three values: five whole parts and a ragged tail.
    let len = 5 * (1 << 20) + 3;
    let data: Vec<f32> = (0..len).map(|i| i as f32 * 0.5 - 7.0).collect();
    let buf = ctx.upload("large", &data).expect("upload");
    let back = read_f32(&ctx, &buf, len).expect("read");
    assert!(back == data, "a large write came back different");
}
