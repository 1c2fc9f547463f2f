//! Where a step's time goes on this adapter: each kernel of the training steps timed alone
//! at the benchmark workloads' shapes (`gradflow bench --kernels`).
//!
//! A kernel's time per dispatch is the difference between a submission of `reps`
//! dispatches and one of a single dispatch, over `reps − 1` (each the median of three
//! after a warm-up, [`super::tune`]'s timing): the submission, the wait and the first
//! launch cancel out, what is left is what one more dispatch in a pass costs, launch
//! and barrier included. Consecutive dispatches of one kernel write the same buffer, so
//! wgpu puts a barrier between them, as it does between a step's kernels. The host's own
//! costs are rows of their own: a submission of one tiny dispatch waited for, and a
//! 4-byte readback (what a fit pays per host wait).
//!
//! These are measurements of this machine, not the cost model's predictions
//! ([`crate::bench::cost`]): the two side by side say which of the model's constants are
//! wrong.

use std::time::Instant;

use crate::error::Result;
use crate::program::{Activation, Layout};

use super::context::GpuContext;
use super::kernels::{self, ParamRing};
use super::readback;
use super::tune::{self, GlmEpochVariant, GlmGradVariant, Tuning};

/// One kernel's (or host action's) measured time.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelTime {
    /// What ran: the kernel and its variant.
    pub kernel: String,
    /// The shape, as the workloads name it.
    pub shape: String,
    /// Microseconds per dispatch (per step for whole-step kernels; per action for host
    /// rows).
    pub us: f64,
    /// Bytes a dispatch must read and write at least (0 for host rows).
    pub bytes: f64,
    /// Floating-point operations per dispatch.
    pub flops: f64,
}

impl KernelTime {
    /// Effective bandwidth, GB/s (bytes over time).
    pub fn gb_per_s(&self) -> f64 {
        self.bytes / (self.us * 1e3)
    }
    /// Effective arithmetic rate, GFLOP/s.
    pub fn gflop_per_s(&self) -> f64 {
        self.flops / (self.us * 1e3)
    }
}

/// Times the training steps' kernels on `ctx`. `rows`: the full-batch gradient's rows
/// (W4 has 10⁶; a smoke run takes fewer). The mini-batch kernels run at W1–W3's batch of
/// 256. Every variant of the two GLM kernels is timed, the adapter's choice or not.
///
/// ```no_run
/// # fn main() -> gradflow::Result<()> {
/// let ctx = gradflow::gpu::GpuContext::new()?;
/// for t in gradflow::gpu::profile::kernel_times(&ctx, 65_536)? {
///     println!("{} {}: {:.1} µs", t.kernel, t.shape, t.us);
/// }
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`crate::Error::Device`] from wgpu; [`crate::Error::DeviceLimit`] for shapes beyond
/// the device.
pub fn kernel_times(ctx: &GpuContext, rows: usize) -> Result<Vec<KernelTime>> {
    let mut out = host_rows(ctx)?;
    out.extend(per_op_rows(ctx)?);
    // The full-batch gradient (gradient and the pass adding its segments), each variant,
    // at W4's width: one step of W4 is this plus the update.
    let (x, y, w) = tune::probe_data(rows, 64);
    for variant in GlmGradVariant::ALL
        .into_iter()
        .filter(|v| v.runs_on(ctx.limits()))
    {
        let reps = 9;
        let (_, ms) = tune::glm_grad_times(ctx, variant, (&x, &y, &w), &[1, reps])?;
        out.push(KernelTime {
            kernel: format!("GLM gradient + finish ({variant:?})"),
            shape: format!("{rows} × 64"),
            us: per_extra(ms[0], ms[1], reps),
            bytes: (rows * 65 * 4) as f64,
            flops: (rows * 64 * 4) as f64,
        });
    }
    // The finishing pass alone, at the segments the adapter's variant cuts W4 into.
    let variant = ctx.pipelines().tuning().glm_grad_for(64);
    let segments = kernels::glm_grad_split(rows, 64, variant).segments;
    out.push(KernelTime {
        kernel: format!("GLM finish alone ({variant:?}'s {segments} segments)"),
        shape: format!("{rows} × 64"),
        us: finish_us(ctx, segments, 64)?,
        bytes: (segments * kernels::glm_part_cols(64) * 4) as f64,
        flops: (segments * 66) as f64,
    });
    // The many-step kernel, each variant (on a device opened with it, the adapter's
    // other choices kept): a W1 step of 256 rows. A variant whose weights disagree with
    // float64 is left out.
    for variant in GlmEpochVariant::ALL {
        let tuning = Tuning {
            glm_epoch: variant,
            ..ctx.pipelines().tuning().clone()
        };
        let vctx = GpuContext::with_tuning(Some(&ctx.info().name), tuning)?;
        let (Some(few), Some(lots)) = (
            tune::many_step_run(&vctx, 16)?,
            tune::many_step_run(&vctx, 64)?,
        ) else {
            continue;
        };
        out.push(KernelTime {
            kernel: format!("many-step GLM ({variant:?}), per step"),
            shape: "256 × 64".into(),
            us: (lots - few) * 1e3 / 48.0,
            bytes: (256 * 65 * 4) as f64,
            flops: (256 * 64 * 4) as f64,
        });
    }
    // A small MLP's SGD steps, one at a time and many to a dispatch (the tuner's probe:
    // 16 steps and their losses read back, per step).
    for many in [false, true] {
        let tuning = Tuning {
            mlp_many: many,
            ..ctx.pipelines().tuning().clone()
        };
        let vctx = GpuContext::with_tuning(Some(&ctx.info().name), tuning)?;
        let Some(ms) = tune::probe_small_mlp(&vctx)? else {
            continue;
        };
        let how = if many {
            "many steps a dispatch"
        } else {
            "step by step"
        };
        let (p, h, k, m) = (16, 32, 4, 64);
        out.push(KernelTime {
            kernel: format!("small MLP, {how}, per step (16 steps, one wait)"),
            shape: format!("{m} × {p}-{h}-{k}"),
            us: ms * 1e3 / 16.0,
            bytes: ((m * p + 2 * (p * h + h + h * k + k)) * 4) as f64,
            flops: (6 * m * (p * h + h * k)) as f64,
        });
    }
    Ok(out)
}

/// Microseconds one more dispatch costs: submissions of 1 and `reps` dispatches took
/// `one` and `many` milliseconds.
fn per_extra(one: f64, many: f64, reps: usize) -> f64 {
    (many - one) * 1e3 / (reps - 1) as f64
}

/// Microseconds one more finishing pass of `segments` partial blocks at `p` features
/// costs.
fn finish_us(ctx: &GpuContext, segments: usize, p: usize) -> Result<f64> {
    let part = ctx.upload(
        "profile partials",
        &vec![0.5f32; segments * kernels::glm_part_cols(p)],
    )?;
    let gw = ctx.storage("profile gw", p)?;
    let gb = ctx.storage("profile gb", 1)?;
    let losses = ctx.storage("profile loss", 1)?;
    let reps = 9;
    let mut ring = ParamRing::new(ctx, reps)?;
    let finish = kernels::bind_glm_finish(ctx, &ring, &part, (&gw, &gb), &losses, None)?;
    let mut time = |n: usize| {
        tune::median_ms(ctx, || {
            kernels::submit(ctx, &mut ring, |pass, r| {
                (0..n).try_for_each(|_| {
                    let shape = (p, segments, segments * 256);
                    kernels::glm_finish(ctx, pass, r, &finish, shape, 0, kernels::Halting::Off)
                })
            })
        })
    };
    let one = time(1)?;
    let many = time(reps)?;
    Ok(per_extra(one, many, reps))
}

/// A submission of one tiny dispatch, waited for; a 4-byte readback.
fn host_rows(ctx: &GpuContext) -> Result<Vec<KernelTime>> {
    let z = ctx.upload("profile z", &[0.5f32; 64])?;
    let a = ctx.storage("profile a", 64)?;
    let mut ring = ParamRing::new(ctx, 1)?;
    let act = kernels::bind_activation(ctx, &ring, &z, &a)?;
    let submit = tune::median_ms(ctx, || {
        kernels::submit(ctx, &mut ring, |pass, r| {
            kernels::activate(ctx, pass, r, &act, Activation::Sigmoid, 64)
        })
    })?;
    let mut reads: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            readback::read_f32(ctx, &a, 1).map(|_| t.elapsed().as_secs_f64() * 1e6)
        })
        .collect::<Result<_>>()?;
    reads.sort_by(f64::total_cmp);
    let host = |kernel: &str, us| KernelTime {
        kernel: kernel.into(),
        shape: "—".into(),
        us,
        bytes: 0.0,
        flops: 0.0,
    };
    Ok(vec![
        host("host: submit one tiny dispatch and wait", submit * 1e3),
        host("host: read 4 bytes back", reads[2]),
    ])
}

/// The MLP step's kernels at batch 256 (W3: 64-256-10) and a tiny element-wise one.
fn per_op_rows(ctx: &GpuContext) -> Result<Vec<KernelTime>> {
    const REPS: usize = 33;
    let (m, d, h, k) = (256, 64, 256, 10);
    let (x, _, _) = tune::probe_data(m * h + h * h, 1);
    let buf = |name: &str, len: usize| ctx.upload(name, &x[..len]);
    let xa = buf("profile x", m * d)?;
    let w1 = buf("profile w1", d * h)?;
    let hid = buf("profile h", m * h)?;
    let w2 = buf("profile w2", h * k)?;
    let d2 = buf("profile d2", m * k)?;
    let b1 = buf("profile b1", h)?;
    let out_mh = ctx.storage("profile m×h", m * h)?;
    let out_mh2 = ctx.storage("profile m×h 2", m * h)?;
    let out_dh = ctx.storage("profile d×h", d * h)?;
    let out_mk = ctx.storage("profile m×k", m * k)?;
    let out_hk = ctx.storage("profile h×k", h * k)?;
    let out_h = ctx.storage("profile h", h)?;
    let tiny = ctx.storage("profile tiny", 64)?;
    let mut ring = ParamRing::new(ctx, REPS)?;
    let act_tiny = kernels::bind_activation(ctx, &ring, &xa, &tiny)?;
    let act = kernels::bind_activation(ctx, &ring, &hid, &out_mh)?;
    let bias = kernels::bind_bias_add(ctx, &ring, &out_mh2, &b1)?;
    let sums = kernels::bind_col_sums(ctx, &ring, &hid, &out_h)?;
    let row = |kernel: &str, shape: String, values: usize, flops: usize, us: f64| KernelTime {
        kernel: kernel.into(),
        shape,
        us,
        bytes: (values * 4) as f64,
        flops: flops as f64,
    };
    let mut rows = vec![
        row("sigmoid (a launch's floor)", "64".into(), 128, 64, {
            per_dispatch(ctx, &mut ring, REPS, &mut |pass, r| {
                kernels::activate(ctx, pass, r, &act_tiny, Activation::Sigmoid, 64)
            })?
        }),
        row("sigmoid", format!("{m} × {h}"), 2 * m * h, m * h, {
            per_dispatch(ctx, &mut ring, REPS, &mut |pass, r| {
                kernels::activate(ctx, pass, r, &act, Activation::Sigmoid, m * h)
            })?
        }),
        row("bias add", format!("{m} × {h}"), 2 * m * h + h, m * h, {
            per_dispatch(ctx, &mut ring, REPS, &mut |pass, r| {
                kernels::bias_add(ctx, pass, r, &bias, m, h)
            })?
        }),
        row("column sums", format!("{m} × {h}"), m * h + h, m * h, {
            per_dispatch(ctx, &mut ring, REPS, &mut |pass, r| {
                kernels::col_sums(ctx, pass, r, &sums, m, h)
            })?
        }),
    ];
    let block = ctx.pipelines().tuning().matmul;
    // (name, layout, (rows, inner, cols) of C = op(A)·op(B), A, B, C).
    let products = [
        ("X·W¹", Layout::NN, (m, d, h), &xa, &w1, &out_mh),
        ("H·W²", Layout::NN, (m, h, k), &hid, &w2, &out_mk),
        ("Hᵀ·δ²", Layout::TN, (h, m, k), &hid, &d2, &out_hk),
        ("δ²·W²ᵀ", Layout::NT, (m, k, h), &d2, &w2, &out_mh2),
        ("Xᵀ·δ¹", Layout::TN, (d, m, h), &xa, &hid, &out_dh),
    ];
    for (name, layout, (r, inner, c), a, b, out) in products {
        let bound = kernels::bind_matmul(ctx, &ring, a, None, b, out)?;
        let us = per_dispatch(ctx, &mut ring, REPS, &mut |pass, ring| {
            kernels::matmul(ctx, pass, ring, &bound, layout, (r, inner, c), None)
        })?;
        let shape = format!("{r} × {inner} × {c}");
        let (values, flops) = (r * inner + inner * c + r * c, 2 * r * inner * c);
        rows.push(row(
            &format!("product {name} ({layout:?}, {block:?} block)"),
            shape.clone(),
            values,
            flops,
            us,
        ));
        // The same product split over k as `SumSplit::Short` splits it (both passes),
        // where that split applies.
        if let Some(room) = kernels::short_split_segments(r, inner, c) {
            let seg = kernels::SHORT_SPLIT_SEGMENT;
            let scratch = ctx.storage("profile partials", room * r * c)?;
            let parts = kernels::bind_matmul(ctx, &ring, a, None, b, &scratch)?;
            let finish = kernels::bind_col_sums(ctx, &ring, &scratch, out)?;
            let us = per_dispatch(ctx, &mut ring, REPS / 2, &mut |pass, ring| {
                let pair = (&parts, &finish);
                let shape = (r, inner, c);
                kernels::matmul_split(ctx, pass, ring, pair, layout, shape, None, (room, seg))
            })?;
            rows.push(row(
                &format!("product {name} ({layout:?}, split over k, both passes)"),
                shape,
                values,
                flops,
                us,
            ));
        }
    }
    rows.extend(mlp_step_rows(ctx, (m, d, h, k), REPS)?);
    rows.extend(engine_step_rows(ctx)?);
    Ok(rows)
}

/// W3's step through the engine as training runs it (the adapter's MLP step, the update,
/// 32 steps a submission): the host's time to record and submit a step with nothing
/// waited for, and a step end to end (256 steps, then one wait). Their difference from
/// the kernels' sum says whether the host or the device sets the pace.
fn engine_step_rows(ctx: &GpuContext) -> Result<Vec<KernelTime>> {
    let steps = 256;
    let (mut gpu, _) = tune::mlp_engine(ctx, steps)?;
    let batches = 4;
    let run = |gpu: &mut super::GpuEngine| -> Result<(f64, f64)> {
        let t = Instant::now();
        for s in 0..steps {
            gpu.step((s % batches) * 256, 256, 0.01, s)?;
        }
        gpu.flush()?;
        let recorded = t.elapsed().as_secs_f64();
        gpu.read_losses(1)?;
        Ok((recorded, t.elapsed().as_secs_f64()))
    };
    let (before, _) = gpu.launches();
    run(&mut gpu)?;
    let per_step = (gpu.launches().0 - before) as f64 / steps as f64;
    let mut times: Vec<(f64, f64)> = (0..3).map(|_| run(&mut gpu)).collect::<Result<_>>()?;
    times.sort_by(|a, b| a.1.total_cmp(&b.1));
    let (recorded, whole) = times[1];
    let per = |s: f64| s * 1e6 / steps as f64;
    let shape = format!(
        "256 × 64-256-10, {:?}, {per_step:.0} dispatches a step",
        ctx.pipelines().tuning().mlp,
    );
    let row = |kernel: &str, us| KernelTime {
        kernel: kernel.into(),
        shape: shape.clone(),
        us,
        bytes: 0.0,
        flops: 0.0,
    };
    Ok(vec![
        row(
            "host: record and submit one MLP step (no wait)",
            per(recorded),
        ),
        row("MLP step through the engine, end to end", per(whole)),
    ])
}

/// The fused MLP step's two passes at W3's shape, each alone and together (what a step
/// costs before its update, against the per-op products above).
fn mlp_step_rows(
    ctx: &GpuContext,
    (m, d, h, k): (usize, usize, usize, usize),
    reps: usize,
) -> Result<Vec<KernelTime>> {
    let (x, _, _) = tune::probe_data(m * d + d * h + h * k, 1);
    let labels: Vec<u32> = (0..m as u32).map(|r| r % k as u32).collect();
    let xs = ctx.upload("profile x", &x[..m * d])?;
    let targets = ctx.upload("profile labels", &labels)?;
    let w1 = ctx.upload("profile w1", &x[m * d..m * d + d * h])?;
    let w2 = ctx.upload("profile w2", &x[m * d + d * h..])?;
    let (b1, b2) = (ctx.storage("profile b1", h)?, ctx.storage("profile b2", k)?);
    let out = |name: &str, len: usize| ctx.storage(name, len);
    let (xb, a, dz2, da1) = (
        out("xb", m * d)?,
        out("a", m * h)?,
        out("δ²", m * k)?,
        out("δ¹", m * h)?,
    );
    let parts = out("loss parts", m)?;
    let grads = [
        out("∂W¹", d * h)?,
        out("∂b¹", h)?,
        out("∂W²", h * k)?,
        out("∂b²", k)?,
    ];
    let (losses, halt) = (out("losses", 1)?, out("halt", 4)?);
    let mut ring = ParamRing::new(ctx, 2 * reps)?;
    let data = (&xs, &targets, None, None);
    let written = [&xb, &a, &dz2, &da1, &parts];
    let rows_bound = kernels::bind_mlp_rows(ctx, &ring, data, [&w1, &b1, &w2, &b2], written)?;
    let read = [&xb, &da1, &a, &dz2, &parts];
    let [g1, g2, g3, g4] = &grads;
    let sums = kernels::bind_mlp_grads(ctx, &ring, read, [g1, g2, g3, g4], &losses, Some(&halt))?;
    let rows = kernels::TargetRows::Range(0);
    let shape = (d, h, k, Activation::Sigmoid);
    let halting = kernels::Halting::Off;
    let rows_us = per_dispatch(ctx, &mut ring, reps, &mut |pass, r| {
        kernels::mlp_rows(ctx, pass, r, &rows_bound, shape, rows, m)
    })?;
    // The rows pass with each choice of rows a workgroup (the engine takes
    // `mlp_rows_per_group`'s).
    let mut by_rows = Vec::new();
    for per in [1, 2, 4] {
        let us = per_dispatch(ctx, &mut ring, reps, &mut |pass, r| {
            kernels::mlp_rows_by(ctx, pass, r, &rows_bound, shape, rows, (m, per))
        })?;
        by_rows.push((per, us));
    }
    let sums_us = per_dispatch(ctx, &mut ring, reps, &mut |pass, r| {
        kernels::mlp_grads(ctx, pass, r, &sums, (d, h, k), m, 0, halting)
    })?;
    let both_us = per_dispatch(ctx, &mut ring, reps, &mut |pass, r| {
        let pair = (&rows_bound, &sums);
        kernels::mlp_loss_grad(ctx, pass, r, pair, shape, rows, m, 0, halting)
    })?;
    let shape = format!("{m} × {d}-{h}-{k}");
    let params = d * h + h + h * k + k;
    let (fwd, bwd) = (2 * m * (d * h + h * k), 2 * m * (h * k + d * h + h * k));
    let row = |kernel: &str, values: usize, flops: usize, us: f64| KernelTime {
        kernel: kernel.into(),
        shape: shape.clone(),
        us,
        bytes: (values * 4) as f64,
        flops: flops as f64,
    };
    let rows_values = m * d + params + m * (d + 2 * h + k);
    let sums_values = m * (d + 2 * h + k) + params;
    let rows_flops = fwd + 2 * m * h * k;
    let mut out: Vec<KernelTime> = by_rows
        .into_iter()
        .map(|(per, us)| {
            let name = format!("fused MLP step: rows pass, {per} rows a workgroup");
            row(&name, rows_values, rows_flops, us)
        })
        .collect();
    out.extend([
        row(
            "fused MLP step: rows pass (forward, loss, δ², δ¹)",
            rows_values,
            rows_flops,
            rows_us,
        ),
        row(
            "fused MLP step: sums pass (gradients, loss)",
            sums_values,
            bwd - 2 * m * h * k,
            sums_us,
        ),
        row(
            "fused MLP step: both passes",
            rows_values + sums_values,
            fwd + bwd,
            both_us,
        ),
    ]);
    Ok(out)
}

/// Microseconds one more dispatch of `one` adds to a submission (1 against `reps`).
fn per_dispatch(
    ctx: &GpuContext,
    ring: &mut ParamRing,
    reps: usize,
    one: &mut dyn FnMut(&mut wgpu::ComputePass<'_>, &mut ParamRing) -> Result<()>,
) -> Result<f64> {
    let mut run = |n: usize, ring: &mut ParamRing| {
        tune::median_ms(ctx, || {
            kernels::submit(ctx, ring, |pass, r| (0..n).try_for_each(|_| one(pass, r)))
        })
    };
    let single = run(1, ring)?;
    let many = run(reps, ring)?;
    Ok(per_extra(single, many, reps))
}

/// The times as a markdown table.
pub fn markdown(ctx: &GpuContext, times: &[KernelTime]) -> String {
    let info = ctx.info();
    let mut s = format!(
        "Kernels on {} ({:?}, driver {}): the time one more dispatch adds to a pass \
         (median of 3)\n\n| kernel | shape | µs | GB/s | GFLOP/s |\n|---|---|---:|---:|---:|\n",
        info.name, info.backend, info.driver_info
    );
    for t in times {
        let rate = |v: f64| {
            if t.bytes > 0.0 && v.is_finite() && t.us > 0.0 {
                format!("{v:.1}")
            } else {
                "—".into()
            }
        };
        s.push_str(&format!(
            "| {} | {} | {:.2} | {} | {} |\n",
            t.kernel,
            t.shape,
            t.us,
            rate(t.gb_per_s()),
            rate(t.gflop_per_s())
        ));
    }
    s
}
