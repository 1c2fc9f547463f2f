//! Where a fit runs: the GPU context a backend setting gives, the mini-batch session for
//! it, and, on the device, whether the data are resident or stream through the ring.

use std::borrow::Cow;
use std::thread::Scope;

use super::session::{CpuSession, GpuSession, Session, Shard};
use super::trainer::Weighted;
use super::{Backend, Choices, Mode, Penalty, Trainer};
use crate::cpu::engine::CpuEngine;
use crate::data::{Dataset, RowSource};
use crate::error::{Error, Result};
use crate::gpu::{self, GpuContext, GpuEngineOptions, resident_row_limit};
use crate::program::{Program, Rule};
use crate::schedule::Prefetcher;

impl Trainer {
    /// The GPU context to train on, or `None` for the CPU: `Backend::Gpu` insists on one;
    /// `Backend::Auto` takes a hardware adapter, and a software one (device type `Cpu`)
    /// only when `GRADFLOW_ADAPTER` names it, noting why when it falls back.
    ///
    /// # Errors
    /// With `Backend::Gpu`: [`Error::NoAdapter`], [`Error::Device`].
    pub(super) fn gpu_context(&self, notes: &mut Vec<String>) -> Result<Option<GpuContext>> {
        let context = || match (&self.gpu, &self.group) {
            (Some(ctx), _) => Ok(ctx.clone()),
            (None, Some(group)) => gpu::for_rank(group.rank()),
            (None, None) => gpu::shared(),
        };
        match self.config.backend {
            Backend::Cpu => Ok(None),
            Backend::Gpu => context().map(Some),
            Backend::Auto => match context() {
                Ok(ctx) => {
                    let info = ctx.info();
                    let named =
                        self.gpu.is_some() || std::env::var_os("GRADFLOW_ADAPTER").is_some();
                    if info.device_type == wgpu::DeviceType::Cpu && !named {
                        notes.push(format!(
                            "training on the CPU: the adapter wgpu offers, {}, is a software \
                             one, slower than the CPU backend (GRADFLOW_ADAPTER={} uses it)",
                            info.name,
                            info.name.split_whitespace().next().unwrap_or("NAME")
                        ));
                        return Ok(None);
                    }
                    Ok(Some(ctx))
                }
                Err(e @ Error::NoAdapter { .. }) => {
                    notes.push(format!("training on the CPU: {e}"));
                    Ok(None)
                }
                Err(e) => Err(e),
            },
        }
    }

    /// The mini-batch session for the configured backend, with the initial parameters
    /// loaded.
    pub(super) fn session<'s, 'a>(
        &self,
        program: Program,
        (data, weights): Weighted<'a>,
        init: &[Vec<f32>],
        choices: &Choices,
        notes: &mut Vec<String>,
        scope: &'s Scope<'s, 'a>,
    ) -> Result<Box<dyn Session + 'a>> {
        let cfg = &self.config;
        let cap = cfg.batch_size.min(data.n());
        let rule = choices.optimizer.unwrap_or_default().rule();
        let (tol, depth) = (cfg.tol, cfg.ring_depth);
        let gpu = |ctx: &GpuContext, program: Program| -> Result<Box<dyn Session + 'a>> {
            let verify = cfg.verify;
            let alone = self.group.is_none();
            if !alone && verify.is_some() {
                return Err(Error::param(
                    "verify",
                    "with several ranks",
                    "runs in one process: verify a single-process fit",
                ));
            }
            // The many-step kernels: the engine takes them where the data and model
            // allow (see the options).
            let many_steps = cfg.fuse_steps
                && alone
                && verify.is_none()
                && choices.penalty == Penalty::None
                && rule == Rule::Sgd;
            let options = GpuEngineOptions {
                tol: tol.map(|t| t as f32),
                rule,
                fuse_glm: many_steps,
                fuse_mlp_steps: many_steps,
                fuse_glm_grad: cfg.fuse_steps,
                fuse_mlp: cfg.fuse_steps,
                fuse_epilogues: cfg.fuse_steps,
                fuse_updates: cfg.fuse_steps,
                // A distributed fit halts on the global loss, on the host.
                halts: alone,
                ..GpuEngineOptions::default()
            };
            let tol = options;
            let s = match self.placement(ctx, data, cap)? {
                Placement::Streaming { group } => {
                    let (ring, source) = ((depth, group), (data, weights));
                    GpuSession::streaming(ctx, program, source, cap, ring, tol, verify, scope)?
                }
                Placement::Resident => {
                    let verify = verify.map(|v| (v, data, weights));
                    match data.in_memory() {
                        Some(d) => {
                            let d = (d, weights);
                            GpuSession::resident(ctx, program, d, cap, tol, verify)?
                        }
                        // Gathered once for the upload, then dropped.
                        None => {
                            let d = Dataset::from_source(data)?;
                            let d = (&d, weights);
                            GpuSession::resident(ctx, program, d, cap, tol, verify)?
                        }
                    }
                }
            };
            let shard = self.group.clone().map(Shard::new);
            let mut s = s.sharded(shard, cfg.tol, cfg.sync_every);
            s.set_params(init)?;
            Ok(Box::new(s))
        };
        if let Some(ctx) = self.gpu_context(notes)? {
            match gpu(&ctx, program.clone()) {
                Ok(session) => return Ok(session),
                Err(e @ Error::DeviceLimit { .. }) if cfg.backend == Backend::Auto => {
                    notes.push(format!("training on the CPU: {e}"));
                }
                Err(e) => return Err(e),
            }
        }
        let session = match data.in_memory() {
            Some(d) => {
                let x = d.features();
                let mut engine = CpuEngine::<f32>::new(program, x, d.p(), Some(d.targets()), cap)
                    .with_kernels(cfg.cpu_kernels);
                if let Some(w) = weights {
                    engine = engine.with_weights(Cow::Owned(w.all(d.targets())));
                }
                CpuSession::new(engine, rule, tol)
            }
            None => {
                let kind = data.target_kind();
                let engine = CpuEngine::<f32>::for_batches(program, data.p(), kind, cap)
                    .with_kernels(cfg.cpu_kernels);
                let group = self.upload_batches(data.p(), cap, u64::MAX, u64::MAX);
                let feed = Prefetcher::weighted(scope, data, weights, depth, group)?;
                CpuSession::streaming(engine, feed, rule, tol)
            }
        };
        let mut session = session.sharded(self.group.clone().map(Shard::new), cfg.sync_every);
        session.set_params(init)?;
        Ok(Box::new(session))
    }

    /// Batches per streamed group: as configured, or about 4 MiB of rows (at most 32
    /// batches); fewer when `ring_depth` groups would pass `budget` bytes or one group's
    /// features would pass `slot_limit` bytes (one storage binding).
    fn upload_batches(&self, p: usize, cap: usize, budget: u64, slot_limit: u64) -> usize {
        let batch_bytes = (cap as u64) * (p as u64 + 1) * 4;
        let auto = ((4u64 << 20) / batch_bytes).clamp(1, 32);
        let fits = (budget / (self.config.ring_depth as u64 * batch_bytes))
            .min(slot_limit / ((cap as u64) * (p as u64) * 4).max(1));
        let group = self.config.upload_batches.map_or(auto, |g| g as u64);
        group.min(fits).max(1) as usize
    }

    /// Whether a GPU fit holds the data resident or streams them: as configured, or
    /// (`Mode::Auto`) streaming when features + targets exceed the device budget or 4
    /// storage bindings.
    ///
    /// # Errors
    /// [`Error::DeviceLimit`] when even a ring of one batch per slot exceeds the budget.
    fn placement(&self, ctx: &GpuContext, data: &dyn RowSource, cap: usize) -> Result<Placement> {
        let cfg = &self.config;
        let limits = ctx.limits();
        let budget = cfg.device_budget.unwrap_or_else(|| {
            (limits.max_buffer_size / 2).min(
                limits
                    .max_storage_buffer_binding_size
                    .saturating_mul(crate::gpu::kernels::MAX_A_CHUNKS as u64),
            )
        });
        let row_bytes = (data.p() as u64 + 1) * 4;
        let streams = match cfg.mode {
            Mode::Resident => false,
            Mode::Streaming => true,
            Mode::Auto => {
                data.n() as u64 * row_bytes > budget || data.n() > resident_row_limit(ctx, data.p())
            }
        };
        if !streams {
            // Checked before a source that is not in memory is gathered for the upload:
            // rows beyond the device are refused here, not after gigabytes were made.
            let limit = resident_row_limit(ctx, data.p());
            if data.n() > limit {
                return Err(Error::DeviceLimit {
                    what: "resident rows (features in at most 4 storage bindings): use \
                           Mode::Streaming or Mode::Auto",
                    requested: data.n() as u64,
                    limit: limit as u64,
                });
            }
            return Ok(Placement::Resident);
        }
        // A slot's features are one storage binding: a batch must fit in one. (Full-batch
        // descent over data beyond the device would need gradients accumulated over
        // chunks, which gradflow does not do.)
        let binding = limits.max_storage_buffer_binding_size;
        let batch_features = (cap as u64) * (data.p() as u64) * 4;
        if batch_features > binding {
            return Err(Error::DeviceLimit {
                what: "one streamed batch's features (batch rows × p × 4) within one \
                       storage binding: use a smaller batch_size",
                requested: batch_features,
                limit: binding,
            });
        }
        let ring = (cfg.ring_depth as u64) * (cap as u64) * row_bytes;
        if ring > budget {
            return Err(Error::DeviceLimit {
                what: "streaming ring bytes (ring_depth × batch rows × (p + 1) × 4) \
                       within device_budget",
                requested: ring,
                limit: budget,
            });
        }
        Ok(Placement::Streaming {
            group: self.upload_batches(data.p(), cap, budget, binding),
        })
    }
}

/// Where a GPU fit keeps its data.
enum Placement {
    /// Uploaded once.
    Resident,
    /// Through the ring, `group` batches per slot.
    Streaming { group: usize },
}
