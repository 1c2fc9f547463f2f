//! Building a [`GpuEngine`]: the data on the device, one buffer per program buffer, and
//! every op bound once (ops that read the data once per view of it), so that no step
//! creates anything.

use crate::data::{TargetKind, Targets};
use crate::error::{Error, Result};
use crate::program::{BufId, Op, Program, Src};

use super::super::context::GpuContext;
use super::super::kernels::{self, Bound, Epilogue, Halting, ParamRing};
use super::super::pipelines::Kernel;
use super::super::tune::{MlpStep, SumSplit};
use super::chunks::FeatureChunks;
use super::{
    BoundOp, Data, Fused, FusedGrad, FusedMlp, GpuEngine, GpuEngineOptions, ManySteps, OpKind,
    Source, SplitPass, View, ring,
};
use crate::program::LossKind;
use crate::program::Rule;

impl GpuEngine {
    /// Checks the arguments, puts the data on the device, binds every op once.
    pub(super) fn build(
        ctx: &GpuContext,
        program: Program,
        p: usize,
        cap: usize,
        options: GpuEngineOptions,
        source: Source<'_>,
    ) -> Result<Self> {
        if cap == 0 {
            return Err(Error::param("batch capacity", cap, "must be ≥ 1"));
        }
        if p == 0 {
            return Err(Error::param("features per row p", p, "must be ≥ 1"));
        }
        if options.steps_per_submit == 0 {
            return Err(Error::param("steps_per_submit", 0, "must be ≥ 1"));
        }
        let (kind, got) = match source {
            Source::Resident { targets, .. } => (TargetKind::of(targets), targets.describe()),
            Source::Ring(shape) => (shape.targets, format!("{:?} targets", shape.targets)),
        };
        ring::check_kind(kind, &program, got)?;
        let (data, bytes_uploaded, loss_slots) = match source {
            Source::Resident {
                x,
                targets,
                weights,
            } => {
                let n = x.len() / p;
                if targets.len() != n {
                    return Err(Error::ShapeMismatch {
                        what: "targets",
                        expected: format!("{n} rows, as the features"),
                        got: format!("{} rows", targets.len()),
                    });
                }
                let tgt = match targets {
                    Targets::Real(y) => ctx.upload("targets", y)?,
                    Targets::Classes { labels, .. } => ctx.upload("labels", labels)?,
                };
                let chunks = FeatureChunks::upload(ctx, x, p, options.max_chunk_rows)?;
                let weights = weights.map(|w| ctx.upload("row weights", w)).transpose()?;
                let weight_values = weights.as_ref().map_or(0, |_| n as u64);
                let data = Data::Resident {
                    n,
                    chunks,
                    targets: tgt,
                    weights,
                    order: ctx.storage("epoch order", n)?,
                    order_len: 0,
                    order_identity: false,
                };
                let bytes = (x.len() as u64 + n as u64 + weight_values) * 4;
                (data, bytes, options.loss_slots.unwrap_or(n.div_ceil(cap)))
            }
            Source::Ring(shape) => {
                let Some(slots) = options.loss_slots else {
                    return Err(Error::param(
                        "loss_slots",
                        "None",
                        "must be set for a ring engine (it does not know n)",
                    ));
                };
                (Data::Ring(ring::Ring::new(ctx, shape, p)?), 0, slots)
            }
        };
        let bufs = program
            .bufs
            .iter()
            .map(|b| ctx.storage(&b.name, b.len(cap)))
            .collect::<Result<Vec<_>>>()?;
        let loss_slots = loss_slots.max(1);
        let losses = ctx.storage("losses", loss_slots)?;
        let halt = ctx.upload("halt flag", &[0u32; 4])?;
        // The updates: up to four tensors a dispatch where the device allows it.
        let fuse_updates = options.fuse_updates
            && ctx.limits().max_storage_buffers_per_shader_stage >= kernels::UPDATE_ALL_BINDINGS;
        let per_dispatch = if fuse_updates {
            kernels::UPDATE_ALL_TENSORS
        } else {
            1
        };
        let update_groups: Vec<Vec<usize>> = (0..program.params.len())
            .collect::<Vec<_>>()
            .chunks(per_dispatch)
            .map(<[usize]>::to_vec)
            .collect();
        let ops_per_step = program.forward.len() + 1 + program.backward.len() + update_groups.len();
        // Dispatches (parameter blocks) a step records at most: a long matmul sum is
        // several (`kernels::MATMUL_K_PER_DISPATCH`), a split sum two.
        let dispatches_per_step = program
            .forward
            .iter()
            .chain(&program.backward)
            .map(|op| match op {
                _ if split_room(ctx, op, cap).is_some() => 2,
                Op::Matmul { k, .. } => kernels::matmul_dispatches(k.eval(cap)),
                _ => 1,
            })
            .sum::<usize>()
            + 1
            + update_groups.len();
        let ring = ParamRing::new(ctx, dispatches_per_step * options.steps_per_submit)?;

        // Bind every op once (ops reading the data once per view); warm its pipeline so
        // that no step builds anything.
        let views = data.views();
        let mut ops = Vec::with_capacity(ops_per_step);
        let buf = |id: BufId| &bufs[id.0];
        let (plan, n_fwd) = fuse_epilogues(ctx, &program, cap, options.fuse_epilogues);
        for (op, epi, operand) in &plan {
            let op = &op.clone();
            let operand = operand.map(buf);
            // A split sum writes its first pass into a scratch buffer instead of the op's
            // output, which its second pass fills.
            let room = split_room(ctx, op, cap);
            let scratch = room
                .map(|r| ctx.storage("split partial sums", r.segments * r.values))
                .transpose()?;
            let out_or_scratch = |id: BufId| scratch.as_ref().unwrap_or(&bufs[id.0]);
            let (bound, kernel) = match *op {
                Op::Matmul {
                    layout,
                    m,
                    k,
                    n,
                    a,
                    b,
                    c,
                    ..
                } => {
                    let bound = match a {
                        Src::Features => views
                            .iter()
                            .map(|v| {
                                kernels::bind_matmul_epilogue(
                                    ctx,
                                    &ring,
                                    (&v.features, v.rows_per_chunk),
                                    v.index,
                                    buf(b),
                                    out_or_scratch(c),
                                    operand,
                                )
                            })
                            .collect::<Result<Vec<_>>>()?,
                        Src::Buf(a) => vec![kernels::bind_matmul_epilogue(
                            ctx,
                            &ring,
                            (&[buf(a)], u32::MAX as usize),
                            None,
                            buf(b),
                            out_or_scratch(c),
                            operand,
                        )?],
                    };
                    let chunked = bound.iter().any(|b| b.chunks() > 1);
                    let kernel = if room.is_some() {
                        Kernel::MatmulSplit(layout, chunked)
                    } else {
                        let shape = (m.eval(cap), k.eval(cap), n.eval(cap));
                        kernels::matmul_kernel(ctx, layout, shape, epi.activation(), chunked)
                    };
                    (bound, kernel)
                }
                Op::BiasAdd { z, bias, .. } => (
                    vec![kernels::bind_bias_add(ctx, &ring, buf(z), buf(bias))?],
                    Kernel::BiasAdd,
                ),
                Op::Activate { f, z, a, .. } => (
                    vec![kernels::bind_activation(ctx, &ring, buf(z), buf(a))?],
                    Kernel::Activate(f),
                ),
                Op::ActivateBackward { f, a, grad, .. } => (
                    vec![kernels::bind_activation(ctx, &ring, buf(a), buf(grad))?],
                    Kernel::ActivateBackward(f),
                ),
                Op::ColSums { x, out, .. } => (
                    vec![kernels::bind_col_sums(
                        ctx,
                        &ring,
                        buf(x),
                        out_or_scratch(out),
                    )?],
                    Kernel::ColSums,
                ),
            };
            ctx.pipelines().prefetch(kernel);
            let split = match (room, scratch) {
                (Some(shape), Some(scratch)) => {
                    let out = match *op {
                        Op::Matmul { c, .. } => c,
                        Op::ColSums { out, .. } => out,
                        _ => unreachable!("split_room splits matmuls and column sums only"),
                    };
                    ctx.pipelines().prefetch(Kernel::ColSums);
                    Some(SplitPass {
                        finish: kernels::bind_col_sums(ctx, &ring, &scratch, buf(out))?,
                        segments: shape.segments,
                        min_segment: shape.min_segment,
                        _scratch: scratch,
                    })
                }
                _ => None,
            };
            ops.push(BoundOp {
                op: OpKind::Program(op.clone()),
                bound,
                split,
                epi: *epi,
            });
        }
        // Order of recording: forward, loss, backward, updates.
        let loss = views
            .iter()
            .map(|v| {
                kernels::bind_loss(
                    ctx,
                    &ring,
                    buf(program.output),
                    v.targets,
                    v.index,
                    buf(program.delta),
                    &losses,
                    Some(&halt),
                    v.weights,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        ctx.pipelines().prefetch(Kernel::Loss(program.loss));
        ops.insert(
            n_fwd,
            BoundOp {
                op: OpKind::Loss,
                bound: loss,
                split: None,
                epi: Epilogue::None,
            },
        );
        // Two optimizer state tensors per parameter, zero at first (wgpu zeroes new
        // buffers), whatever the rule: the bindings never change.
        let state = program
            .params
            .iter()
            .map(|d| {
                let len = d.rows * d.cols;
                Ok([
                    ctx.storage(&format!("{} state 1", d.name), len)?,
                    ctx.storage(&format!("{} state 2", d.name), len)?,
                ])
            })
            .collect::<Result<Vec<_>>>()?;
        for ids in update_groups {
            let (bound, op, kernel) = if fuse_updates {
                let tensors: Vec<kernels::UpdateTensor<'_>> = ids
                    .iter()
                    .map(|&i| {
                        let d = &program.params[i];
                        (buf(d.value), buf(d.grad), [&state[i][0], &state[i][1]])
                    })
                    .collect();
                let bound = kernels::bind_update_all(ctx, &ring, &tensors, Some(&halt))?;
                let shapes = ids
                    .iter()
                    .map(|&i| &program.params[i])
                    .map(|d| (d.rows * d.cols, d.is_bias))
                    .collect();
                let op = OpKind::UpdateAll(shapes);
                (bound, op, Kernel::UpdateAll(options.rule))
            } else {
                let (i, [s1, s2]) = (ids[0], &state[ids[0]]);
                let (d, state) = (&program.params[i], [s1, s2]);
                let bound = kernels::bind_update(
                    ctx,
                    &ring,
                    buf(d.value),
                    buf(d.grad),
                    Some(&halt),
                    state,
                )?;
                (bound, OpKind::Update(i), Kernel::Update(options.rule))
            };
            ctx.pipelines().prefetch(kernel);
            ops.push(BoundOp {
                op,
                bound: vec![bound],
                split: None,
                epi: Epilogue::None,
            });
        }
        let grad = if options.fuse_glm_grad {
            let args = (&program, p, cap, &bufs[..], &losses, &halt);
            fused_grad(ctx, &ring, &views, args)?
        } else {
            None
        };
        let mlp = if options.fuse_mlp {
            fused_mlp(
                ctx,
                &ring,
                &views,
                (&program, p, cap, &bufs[..], &losses, &halt),
            )?
        } else {
            None
        };
        let fused = match (&data, views.first()) {
            // Each returns None for the other model.
            (Data::Resident { order, .. }, Some(view)) => {
                let args = (&program, p, options.rule, &bufs[..], &losses, &halt);
                let slots = (loss_slots, cap);
                let mut fused = None;
                if options.fuse_glm {
                    fused = fused_glm(ctx, &ring, view, order, slots, args)?;
                }
                if fused.is_none() && options.fuse_mlp_steps {
                    fused = fused_mlp_steps(ctx, &ring, view, order, slots, args)?;
                }
                fused
            }
            _ => None,
        };
        drop(views);
        Ok(GpuEngine {
            ctx: ctx.clone(),
            rule: options.rule,
            state,
            program,
            cap,
            p,
            bufs,
            data,
            losses,
            loss_slots,
            halt,
            halting: match (options.halts, options.tol) {
                (false, _) => Halting::Off,
                (true, None) => Halting::NonFinite,
                (true, Some(tol)) => Halting::Tolerance(tol),
            },
            ring,
            ops,
            pending: Vec::new(),
            open: None,
            steps_pending: 0,
            steps_per_submit: options.steps_per_submit,
            dispatches_per_step,
            last_submission: None,
            bytes_uploaded,
            dispatches: 0,
            submissions: 0,
            fused,
            grad,
            mlp,
            snapshots: None,
        })
    }
}

/// Bytes a split sum's scratch buffer may take: its partial sums are a workspace, kept
/// well below a binding so that they never crowd out the data.
const SPLIT_SCRATCH_BYTES: u64 = 64 << 20;

/// Whether `op` sums over the batch's rows (a matmul whose k is the batch, the gradient
/// reduction; a column sum) in an engine whose batches can be long enough to split it —
/// or, where the adapter's tuning is [`SumSplit::Short`], is a product with few output
/// blocks and a long enough sum over any k — and if so the split's shape: `(segments,
/// values per segment, rows a segment holds at least)`. `None` keeps the one-pass kernel
/// (mini-batches, or a product too large for the scratch budget).
fn split_room(ctx: &GpuContext, op: &Op, cap: usize) -> Option<SplitShape> {
    let block = kernels::MATMUL_BLOCK as u64;
    let short = ctx.pipelines().tuning().split == SumSplit::Short;
    let (values, groups, rows, min_segment) = match *op {
        Op::Matmul { k, m, n, .. } => {
            let (m, n, k) = (m.eval(cap) as u64, n.eval(cap) as u64, k.eval(cap));
            let groups = m.div_ceil(block) * n.div_ceil(block);
            if k_is_batch(op) && cap >= kernels::SPLIT_MIN_ROWS {
                (m * n, groups, cap, kernels::SPLIT_MIN_SEGMENT)
            } else if short && kernels::short_split_segments(m as usize, k, n as usize).is_some() {
                (m * n, groups, k, kernels::SHORT_SPLIT_SEGMENT)
            } else {
                return None;
            }
        }
        Op::ColSums { cols, .. } if cap >= kernels::SPLIT_MIN_ROWS => {
            (cols as u64, cols as u64, cap, kernels::SPLIT_MIN_SEGMENT)
        }
        _ => return None,
    };
    let budget = SPLIT_SCRATCH_BYTES.min(ctx.limits().max_storage_buffer_binding_size);
    let room = (budget / (values.max(1) * 4)).min(65_535) as usize;
    let cut = kernels::split_with(rows, groups, room, min_segment);
    // A sum the budget cannot split below llvmpipe's loop budget per segment keeps the
    // multi-dispatch kernel.
    (room >= 1 && cut.seg_len <= kernels::MATMUL_K_PER_DISPATCH).then(|| SplitShape {
        segments: kernels::split_bound_with(rows, groups, room, min_segment),
        values: values as usize,
        min_segment,
    })
}

/// How [`split_room`] cuts a sum.
#[derive(Debug, Clone, Copy)]
struct SplitShape {
    /// Segments the scratch holds room for.
    segments: usize,
    /// Values of one segment's partial result.
    values: usize,
    /// Rows (values of k) a segment holds at least.
    min_segment: usize,
}

/// Whether a matmul's k is the batch (a sum over the batch's rows).
fn k_is_batch(op: &Op) -> bool {
    matches!(
        op,
        Op::Matmul {
            k: crate::program::Dim::Batch,
            ..
        }
    )
}

/// The many-step GLM path for this engine, when it applies: a one-output GLM (MSE or
/// sigmoid + BCE), plain SGD, p ≤ [`kernels::GLM_EPOCH_MAX_P`], batches of at most
/// [`kernels::GLM_EPOCH_MAX_BATCH`] rows (`cap`), no row weights, on a device that allows
/// the kernel's 11 storage bindings. Its step list holds one epoch's
/// loss slots (at most what one submission's parameter blocks can launch).
#[allow(clippy::type_complexity)] // the engine's parts the kernel binds, passed apart
fn fused_glm(
    ctx: &GpuContext,
    ring: &ParamRing,
    view: &super::View<'_>,
    order: &wgpu::Buffer,
    (loss_slots, cap): (usize, usize),
    (program, p, rule, bufs, losses, halt): (
        &Program,
        usize,
        Rule,
        &[wgpu::Buffer],
        &wgpu::Buffer,
        &wgpu::Buffer,
    ),
) -> Result<Option<Fused>> {
    let Some(glm) = program.as_glm() else {
        return Ok(None);
    };
    let one_output = program.out_cols == 1 && program.loss != LossKind::SoftmaxCce;
    let bindings = ctx.limits().max_storage_buffers_per_shader_stage;
    let fits =
        p <= kernels::GLM_EPOCH_MAX_P && cap <= kernels::GLM_EPOCH_MAX_BATCH && bindings >= 11;
    if !(one_output && fits && rule == Rule::Sgd && view.weights.is_none()) {
        return Ok(None);
    }
    let steps = ctx.storage("glm steps", 4 * loss_slots)?;
    let bound = kernels::bind_glm_epoch(
        ctx,
        ring,
        (&view.features, view.rows_per_chunk),
        view.targets,
        order,
        &steps,
        &bufs[glm.w.0],
        &bufs[glm.b.0],
        losses,
        halt,
    )?;
    ctx.pipelines().prefetch(Kernel::GlmEpoch(
        program.loss,
        view.features.len() > 1,
        ctx.pipelines().tuning().glm_epoch_for(p),
    ));
    let per_dispatch = kernels::glm_steps_per_dispatch(cap);
    let model = ManySteps::Glm(program.loss);
    Ok(Some(Fused::new(
        (bound, steps),
        ring,
        loss_slots,
        per_dispatch,
        model,
    )))
}

impl Fused {
    /// A bound many-step kernel and its step list: the queue holds one epoch's loss
    /// slots, at most what the ring's parameter blocks can launch (one a dispatch of
    /// `per_dispatch` steps).
    fn new(
        (bound, steps): (Bound, wgpu::Buffer),
        ring: &ParamRing,
        loss_slots: usize,
        per_dispatch: usize,
        model: ManySteps,
    ) -> Fused {
        Fused {
            bound,
            steps,
            capacity: loss_slots.min(ring.free() * per_dispatch),
            per_dispatch,
            pending: Vec::with_capacity(loss_slots),
            model,
        }
    }
}

/// The many-step MLP path for this engine, when it applies: seed 001's two-layer network
/// where the adapter's tuning chose many steps a dispatch for small networks
/// ([`Tuning::mlp_many`](crate::gpu::tune::Tuning::mlp_many)), one that
/// [`kernels::mlp_epoch_steps_per_dispatch`] takes at batches of `cap` rows, plain SGD,
/// features in one binding, no row weights, a device that allows the kernel's 10
/// storage bindings. Its step list holds one epoch's loss slots (at most what one
/// submission's parameter blocks can launch).
#[allow(clippy::type_complexity)] // the engine's parts the kernel binds, passed apart
fn fused_mlp_steps(
    ctx: &GpuContext,
    ring: &ParamRing,
    view: &super::View<'_>,
    order: &wgpu::Buffer,
    (loss_slots, cap): (usize, usize),
    (program, p, rule, bufs, losses, halt): (
        &Program,
        usize,
        Rule,
        &[wgpu::Buffer],
        &wgpu::Buffer,
        &wgpu::Buffer,
    ),
) -> Result<Option<Fused>> {
    let Some(mlp) = program.as_mlp() else {
        return Ok(None);
    };
    let (h, k) = (mlp.hidden, mlp.classes);
    let per_dispatch = kernels::mlp_epoch_steps_per_dispatch(cap, (p, h, k));
    let fits = ctx.pipelines().tuning().mlp_many
        && view.features.len() == 1
        && view.weights.is_none()
        && rule == Rule::Sgd
        && ctx.limits().max_storage_buffers_per_shader_stage >= kernels::MLP_EPOCH_BINDINGS;
    let (Some(per_dispatch), true) = (per_dispatch, fits) else {
        return Ok(None);
    };
    let steps = ctx.storage("mlp steps", 4 * loss_slots)?;
    let bound = kernels::bind_mlp_epoch(
        ctx,
        ring,
        view.features[0],
        view.targets,
        order,
        &steps,
        mlp.params.map(|id| &bufs[id.0]),
        losses,
        halt,
    )?;
    ctx.pipelines().prefetch(Kernel::MlpEpoch(mlp.activation));
    let model = ManySteps::Mlp(p, h, k, mlp.activation);
    Ok(Some(Fused::new(
        (bound, steps),
        ring,
        loss_slots,
        per_dispatch,
        model,
    )))
}

/// The fused GLM gradient for this engine, when it applies: a one-output GLM (MSE or
/// sigmoid + BCE), p ≤ [`kernels::GLM_GRAD_MAX_P`], and partial sums that fit the segment
/// bound and one storage binding.
#[allow(clippy::type_complexity)] // the engine's parts the kernels bind, passed apart
fn fused_grad(
    ctx: &GpuContext,
    ring: &ParamRing,
    views: &[View<'_>],
    (program, p, cap, bufs, losses, halt): (
        &Program,
        usize,
        usize,
        &[wgpu::Buffer],
        &wgpu::Buffer,
        &wgpu::Buffer,
    ),
) -> Result<Option<FusedGrad>> {
    let Some(glm) = program.as_glm() else {
        return Ok(None);
    };
    let one_output = program.out_cols == 1 && program.loss != LossKind::SoftmaxCce;
    let variant = ctx.pipelines().tuning().glm_grad_for(p);
    let room = kernels::glm_grad_segments_bound(cap, p, variant);
    let chunks = views.iter().map(|v| v.features.len()).max().unwrap_or(1);
    let values = (chunks * room * kernels::glm_part_cols(p)) as u64;
    let fits = variant.fits(p)
        && chunks * room <= kernels::GLM_GRAD_MAX_SEGMENTS
        && values * 4 <= ctx.limits().max_storage_buffer_binding_size;
    if !(one_output && fits) {
        return Ok(None);
    }
    let partials = ctx.storage("glm gradient partial sums", values as usize)?;
    let params = (&bufs[glm.w.0], &bufs[glm.b.0]);
    let chunks = views
        .iter()
        .map(|v| {
            v.features
                .iter()
                .enumerate()
                .map(|(c, x)| {
                    let first = c * v.rows_per_chunk;
                    kernels::bind_glm_grad(
                        ctx,
                        ring,
                        (x, first),
                        v.targets,
                        v.index,
                        v.weights,
                        params,
                        &partials,
                    )
                })
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    let grads = (&bufs[glm.grad_w.0], &bufs[glm.grad_b.0]);
    let finish = kernels::bind_glm_finish(ctx, ring, &partials, grads, losses, Some(halt))?;
    ctx.pipelines()
        .prefetch(kernels::glm_grad_kernel(program.loss, variant, p));
    ctx.pipelines().prefetch(Kernel::GlmFinish);
    Ok(Some(FusedGrad {
        chunks,
        finish,
        room,
        kind: program.loss,
        p,
        variant,
        _partials: partials,
    }))
}

/// The fused MLP step for this engine, when it applies: seed 001's network with a shape
/// [`kernels::mlp_step_fits`] holds, batches of at most [`kernels::MLP_STEP_MAX_BATCH`]
/// rows, every view's features in one buffer, and a device that allows the rows pass's
/// 13 storage bindings.
#[allow(clippy::type_complexity)] // the engine's parts the kernels bind, passed apart
fn fused_mlp(
    ctx: &GpuContext,
    ring: &ParamRing,
    views: &[View<'_>],
    (program, p, cap, bufs, losses, halt): (
        &Program,
        usize,
        usize,
        &[wgpu::Buffer],
        &wgpu::Buffer,
        &wgpu::Buffer,
    ),
) -> Result<Option<FusedMlp>> {
    let Some(mlp) = program.as_mlp() else {
        return Ok(None);
    };
    if ctx.pipelines().tuning().mlp != MlpStep::Fused {
        return Ok(None);
    }
    let (h, k) = (mlp.hidden, mlp.classes);
    let fits = kernels::mlp_step_fits(p, h, k)
        && cap <= kernels::MLP_STEP_MAX_BATCH
        && views.iter().all(|v| v.features.len() == 1)
        && ctx.limits().max_storage_buffers_per_shader_stage >= kernels::MLP_ROWS_BINDINGS;
    if !fits {
        return Ok(None);
    }
    let buf = |id: BufId| &bufs[id.0];
    let xb = ctx.storage("fused MLP step gathered rows", cap * p)?;
    let parts = ctx.storage("fused MLP step loss parts", cap)?;
    let [w1, b1, w2, b2] = mlp.params.map(buf);
    let written = [&xb, buf(mlp.a), buf(mlp.delta2), buf(mlp.delta1), &parts];
    let rows = views
        .iter()
        .map(|v| {
            let data = (v.features[0], v.targets, v.index, v.weights);
            kernels::bind_mlp_rows(ctx, ring, data, [w1, b1, w2, b2], written)
        })
        .collect::<Result<Vec<_>>>()?;
    let read = [&xb, buf(mlp.delta1), buf(mlp.a), buf(mlp.delta2), &parts];
    let grads = mlp.grads.map(buf);
    let grads = kernels::bind_mlp_grads(ctx, ring, read, grads, losses, Some(halt))?;
    ctx.pipelines().prefetch(Kernel::MlpRows(mlp.activation));
    ctx.pipelines().prefetch(Kernel::MlpGrads);
    Ok(Some(FusedMlp {
        rows,
        grads,
        shape: (p, h, k, mlp.activation),
        _scratch: [xb, parts],
    }))
}

/// The program's forward and backward ops with the element-wise ops that follow a
/// product folded into its store ([`Epilogue`]): a bias add on its output, then an
/// activation of it when nothing else reads the product (the activation's output
/// becomes the product's); or the activation's backward on its output. Only products
/// summed in one dispatch and not split over rows (their stores are final). Each op
/// keeps its place otherwise; the epilogue's operand (bias or forward output) beside.
/// Returns the plan and how many of its entries are forward ops (the loss goes after
/// them); with `fuse` false, every op as it is.
#[allow(clippy::type_complexity)] // an op, its epilogue and the epilogue's operand
fn fuse_epilogues(
    ctx: &GpuContext,
    program: &Program,
    cap: usize,
    fuse: bool,
) -> (Vec<(Op, Epilogue, Option<BufId>)>, usize) {
    let all: Vec<&Op> = program.forward.iter().chain(&program.backward).collect();
    let reads = |op: &Op, id: BufId| match *op {
        Op::Matmul { a, b, .. } => a == Src::Buf(id) || b == id,
        Op::BiasAdd { z, bias, .. } => z == id || bias == id,
        Op::Activate { z, .. } => z == id,
        Op::ActivateBackward { a, grad, .. } => a == id || grad == id,
        Op::ColSums { x, .. } => x == id,
    };
    let mut out = Vec::with_capacity(all.len());
    let mut n_fwd = 0;
    let mut i = 0;
    while i < all.len() {
        if i < program.forward.len() {
            n_fwd += 1;
        }
        let op = all[i].clone();
        if !fuse {
            out.push((op, Epilogue::None, None));
            i += 1;
            continue;
        }
        let Op::Matmul { k, c, .. } = op else {
            out.push((op, Epilogue::None, None));
            i += 1;
            continue;
        };
        // A split product stores partial sums: no epilogue.
        let one_pass =
            k.eval(cap) <= kernels::MATMUL_K_PER_DISPATCH && split_room(ctx, &op, cap).is_none();
        // Never across the loss, which runs between the forward and backward ops.
        let nf = program.forward.len();
        let side = |j: usize| all.get(j).filter(|_| (j < nf) == (i < nf)).copied();
        match (one_pass, side(i + 1), side(i + 2)) {
            (true, Some(Op::BiasAdd { z, bias, .. }), next) if *z == c => {
                // The product is the pre-activation: fold the activation too when no
                // other op (nor the loss) reads it.
                let alone = |skip: usize| {
                    program.output != c
                        && all
                            .iter()
                            .enumerate()
                            .all(|(j, o)| j == i || j == i + 1 || j == skip || !reads(o, c))
                };
                match next {
                    Some(Op::Activate { f, z, a, .. }) if *z == c && alone(i + 2) => {
                        let mut fused = op;
                        if let Op::Matmul { c, .. } = &mut fused {
                            *c = *a;
                        }
                        out.push((fused, Epilogue::BiasActivate(*f), Some(*bias)));
                        i += 3;
                    }
                    _ => {
                        out.push((op, Epilogue::Bias, Some(*bias)));
                        i += 2;
                    }
                }
            }
            (true, Some(Op::ActivateBackward { f, a, grad, .. }), _) if *grad == c => {
                out.push((op, Epilogue::ActivateBackward(*f), Some(*a)));
                i += 2;
            }
            _ => {
                out.push((op, Epilogue::None, None));
                i += 1;
            }
        }
    }
    (out, n_fwd)
}
