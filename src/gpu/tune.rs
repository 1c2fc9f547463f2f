//! Per-adapter tuning: which variant of each kernel this device runs, measured once per
//! adapter, driver and gradflow version and cached on disk.
//!
//! | choice | variants | why it differs by adapter |
//! |---|---|---|
//! | parameter block of the per-op kernels | [`ParamBlock::Uniform`], [`ParamBlock::Storage`] (CPU adapters: storage only) | Mesa 22.3's lavapipe recompiles a shader at every dispatch whose uniform values steer its loops, and keeps every variant (memory without bound in a fit of many shapes) |
//! | parameter block of the many-step GLM kernel | the same | there the recompilation is paid once per 16 steps and buys loops specialised to the shape |
//! | many-step GLM kernel (`glm_epoch.wgsl`) | [`GlmEpochVariant`] | a GPU wants a step's rows spread over many invocations; on llvmpipe each barrier switches between a workgroup's SIMD groups and each read is a gather |
//! | fused GLM gradient (`glm_grad.wgsl`) | [`GlmGradVariant`] | a GPU wants many workgroups of coalesced reads; a CPU running the shader (llvmpipe) pays per lane for every scattered read |
//! | matrix products' register block (`matmul.wgsl`) | [`MatmulBlock`] | the same trade: invocations against reads per multiply-add |
//! | which products' sums over k are split over workgroups | [`SumSplit`] | a GPU leaves most of itself idle when a thin product's 8–16 workgroups each walk a 256-long sum; a CPU adapter pays a dispatch for the second pass |
//! | a two-layer MLP's step: per-op or fused (`mlp_rows.wgsl` + `mlp_grads.wgsl`) | [`MlpStep`] | on a GPU each of the per-op path's dozen dispatches is a launch and a barrier on a nearly idle device; on llvmpipe the fused passes' scattered reads are per-lane gathers (lavapipe, the tuner's 16 W3 steps: per-op 152 ms, the first fused version 449) |
//! | a small MLP's steps many to a dispatch (`mlp_epoch.wgsl`) or one at a time | [`Tuning::mlp_many`] | one workgroup does all of a step's work: it saves the launches where a step is a few microseconds of work, and loses where the work would fill a GPU |
//!
//! Opening an adapter ([`GpuContext::new`]) takes its cached choice, or measures it: each
//! candidate runs a small probe on a device opened with it, is checked against a
//! float64 computation on the host (a candidate whose results differ is never chosen),
//! and is timed (median of 3 after a warm-up); the fastest wins. The choices, the times
//! and the key go to `$XDG_CACHE_HOME/gradflow/tuning.json` (else `~/.cache/…`), written
//! atomically. `GRADFLOW_TUNE=off` uses [`Tuning::default`] (uniform blocks, the
//! GPU-shaped gradient) without measuring or reading the cache; `gradflow info` shows
//! the choices.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::program::LossKind;

use super::context::GpuContext;
use super::kernels::{self, Halting, ParamRing, TargetRows};
use super::pipelines::Family;
use super::readback;

/// The version of the set of choices and candidates, in the cache key: raised when one is
/// added, so that a choice cached before it was measured without it is measured again.
const CHOICES: u32 = 7;

/// The variable that turns tuning off (`off`).
pub const TUNE_ENV: &str = "GRADFLOW_TUNE";

/// Where every kernel reads its per-dispatch parameters (`P`, binding 0, with a dynamic
/// offset into the [`ParamRing`]), per kernel family.
///
/// The shaders declare `var<uniform> P`; [`ParamBlock::Storage`] rewrites that one
/// declaration to `var<storage, read> P` and binds the ring as a read-only storage
/// buffer. Same values, same results; it exists for adapters that specialise a shader
/// on its uniform-buffer values: Mesa 22.3's lavapipe inlines uniforms that steer
/// loops and branches and recompiles the shader at every dispatch whose uniform state
/// changed (`update_inline_shader_state`), which with a parameter ring is every
/// dispatch — milliseconds each. Storage loads are never inlined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ParamBlock {
    /// A uniform buffer (the default).
    Uniform,
    /// A read-only storage buffer.
    Storage,
}

impl ParamBlock {
    pub(crate) fn source(self, wgsl: &'static str) -> std::borrow::Cow<'static, str> {
        debug_assert!(wgsl.contains("var<uniform> P: Params"));
        match self {
            ParamBlock::Uniform => wgsl.into(),
            ParamBlock::Storage => wgsl
                .replace("var<uniform> P: Params", "var<storage, read> P: Params")
                .into(),
        }
    }

    pub(crate) fn binding(self) -> wgpu::BufferBindingType {
        match self {
            ParamBlock::Uniform => wgpu::BufferBindingType::Uniform,
            ParamBlock::Storage => wgpu::BufferBindingType::Storage { read_only: true },
        }
    }
}

/// The variants of the fused GLM gradient (`shaders/glm_grad.wgsl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum GlmGradVariant {
    /// `glm_grad`: tiles of 256 rows, one row per invocation for z, then groups of p
    /// invocations sum Xᵀδ over the tile (any p ≤ 1024).
    Tiles,
    /// `glm_grad4`: as `Tiles`, reading rows four features at a time (p a multiple of 4).
    Quads,
    /// `glm_grad_rows`: 64 invocations, each walking its rows with the gradient in its
    /// own array, every value read once (p ≤ 64): the CPU-adapter variant.
    Rows,
    /// `glm_grad_rows4`: as `Rows`, reading rows four features at a time (p ≤ 64, a
    /// multiple of 4): on llvmpipe a read costs about the same whatever its width.
    Rows4,
    /// `glm_grad_lanes`: each row read by as many invocations as it has quads (a power
    /// of two), one vec4 each: coalesced reads of whole rows, X read once, the rows held
    /// in registers for Xᵀδ (p ≤ 1024, a multiple of 4). Written for a GPU; on the H200
    /// it lost to `Quads` (438 against 191 µs at W4's shape), so it stays a candidate.
    Lanes,
    /// `glm_grad_warps` (`glm_grad_warps.wgsl`): eight invocations share a row, one or
    /// more quads each, its dot product added across them by subgroup shuffles; X read
    /// once, whole rows a load, several rows a lane in flight, no barrier within a
    /// segment (p ≤ 128, a multiple of 4; only on devices with subgroups of at least 8
    /// invocations, [`DeviceLimits::subgroups`](super::DeviceLimits::subgroups)).
    Warps,
}

impl GlmGradVariant {
    /// Every variant, in the order the tuner tries them.
    pub const ALL: [GlmGradVariant; 6] = [
        GlmGradVariant::Tiles,
        GlmGradVariant::Quads,
        GlmGradVariant::Rows,
        GlmGradVariant::Rows4,
        GlmGradVariant::Lanes,
        GlmGradVariant::Warps,
    ];

    /// Whether the variant handles `p` features.
    ///
    /// ```
    /// use gradflow::gpu::tune::GlmGradVariant;
    /// assert!(GlmGradVariant::Quads.fits(64) && !GlmGradVariant::Quads.fits(30));
    /// assert!(GlmGradVariant::Rows.fits(64) && !GlmGradVariant::Rows.fits(65));
    /// assert!(GlmGradVariant::Rows4.fits(64) && !GlmGradVariant::Rows4.fits(30));
    /// ```
    pub fn fits(self, p: usize) -> bool {
        let max = kernels::GLM_GRAD_MAX_P;
        match self {
            GlmGradVariant::Tiles => (1..=max).contains(&p),
            GlmGradVariant::Quads | GlmGradVariant::Lanes => {
                (1..=max).contains(&p) && p.is_multiple_of(4)
            }
            GlmGradVariant::Rows => (1..=64).contains(&p),
            GlmGradVariant::Rows4 => (1..=64).contains(&p) && p.is_multiple_of(4),
            GlmGradVariant::Warps => (1..=128).contains(&p) && p.is_multiple_of(4),
        }
    }

    /// Whether the variant runs on a device opened with `limits`: `Warps` needs
    /// subgroups.
    pub fn runs_on(self, limits: &super::DeviceLimits) -> bool {
        self != GlmGradVariant::Warps || limits.subgroups
    }

    /// Whether each of the variant's 64 invocations walks its own run of rows (`Rows`,
    /// `Rows4`), rather than the workgroup a tile at a time.
    pub fn per_lane(self) -> bool {
        matches!(self, GlmGradVariant::Rows | GlmGradVariant::Rows4)
    }

    pub(crate) fn entry_point(self) -> &'static str {
        match self {
            GlmGradVariant::Tiles => "glm_grad",
            GlmGradVariant::Quads => "glm_grad4",
            GlmGradVariant::Rows => "glm_grad_rows",
            GlmGradVariant::Rows4 => "glm_grad_rows4",
            GlmGradVariant::Lanes => "glm_grad_lanes",
            GlmGradVariant::Warps => "glm_grad_warps",
        }
    }
}

/// The variants of the many-step GLM kernel (`shaders/glm_epoch.wgsl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum GlmEpochVariant {
    /// `glm_epoch`: 256 invocations, one row each for z, then groups of p invocations sum
    /// Xᵀδ over each tile of the batch (any p ≤ 1024).
    Tiles,
    /// `glm_epoch_rows`: 64 invocations, each walking rows t, t + 64, … of a step with the
    /// gradient in its own array, every value read once (p ≤ 64): the CPU-adapter variant.
    Rows,
    /// `glm_epoch_rows4`: as `Rows`, reading rows four features at a time (p ≤ 64, a
    /// multiple of 4).
    Rows4,
    /// `glm_epoch_lanes`: each row read by as many invocations as it has quads, one vec4
    /// each (coalesced, issued together), held in registers for Xᵀδ (p ≤ 256, a multiple
    /// of 4): the variant for a real GPU.
    Lanes,
}

impl GlmEpochVariant {
    /// Every variant, in the order the tuner tries them.
    pub const ALL: [GlmEpochVariant; 4] = [
        GlmEpochVariant::Tiles,
        GlmEpochVariant::Rows,
        GlmEpochVariant::Rows4,
        GlmEpochVariant::Lanes,
    ];

    /// Whether the variant handles `p` features.
    ///
    /// ```
    /// use gradflow::gpu::tune::GlmEpochVariant;
    /// assert!(GlmEpochVariant::Tiles.fits(1024));
    /// assert!(GlmEpochVariant::Rows.fits(64) && !GlmEpochVariant::Rows.fits(65));
    /// assert!(GlmEpochVariant::Rows4.fits(64) && !GlmEpochVariant::Rows4.fits(30));
    /// ```
    pub fn fits(self, p: usize) -> bool {
        match self {
            GlmEpochVariant::Tiles => (1..=kernels::GLM_EPOCH_MAX_P).contains(&p),
            GlmEpochVariant::Rows => (1..=64).contains(&p),
            GlmEpochVariant::Rows4 => (1..=64).contains(&p) && p.is_multiple_of(4),
            // Up to 64 quads: a step's loops stay within llvmpipe's budget.
            GlmEpochVariant::Lanes => (1..=256).contains(&p) && p.is_multiple_of(4),
        }
    }

    pub(crate) fn entry_point(self) -> &'static str {
        match self {
            GlmEpochVariant::Tiles => "glm_epoch",
            GlmEpochVariant::Rows => "glm_epoch_rows",
            GlmEpochVariant::Rows4 => "glm_epoch_rows4",
            GlmEpochVariant::Lanes => "glm_epoch_lanes",
        }
    }
}

/// The register block of the (unsplit) matrix products (`shaders/matmul.wgsl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MatmulBlock {
    /// 4 × 4 of C per invocation (`matmul_nn` …): many invocations, 8 reads per 16
    /// multiply-adds.
    Four,
    /// 8 × 8 of C per invocation (`matmul_nn8` …): a quarter of the invocations, 16
    /// reads per 64 multiply-adds. The same bits.
    Eight,
}

/// Which matrix products' sums over k are split over workgroups (`matmul_*_split`, the
/// segments added in order by a column-sum pass).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SumSplit {
    /// Only a long batch's sums over its rows (at least
    /// [`kernels::SPLIT_MIN_ROWS`] rows, segments of at least
    /// [`kernels::SPLIT_MIN_SEGMENT`]): a mini-batch's products run in one pass. What a
    /// CPU adapter wants, where a dispatch costs more than a long loop.
    Long,
    /// Also a mini-batch's products with few output blocks (at most
    /// [`kernels::SHORT_SPLIT_MAX_GROUPS`] workgroups) and a sum of at least
    /// [`kernels::SHORT_SPLIT_MIN_K`] values, over batch rows or hidden units alike, in
    /// segments of [`kernels::SHORT_SPLIT_SEGMENT`]: on the H200, W3's 256 × 256 × 10 and
    /// 64 × 256 × 256 products took 66–80 µs as 8–16 workgroups each walking k = 256.
    Short,
}

/// How a two-layer MLP's forward, loss and backward run (the engine's
/// [`GpuEngineOptions::fuse_mlp`](super::GpuEngineOptions::fuse_mlp) allowing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MlpStep {
    /// One dispatch per op of the program (products with their epilogues, the loss,
    /// column sums): about a dozen a step.
    PerOp,
    /// Two dispatches: `mlp_rows.wgsl` (each row's forward, softmax + CCE, δ² and δ¹,
    /// the rows in workgroup memory) and `mlp_grads.wgsl` (every sum over the rows).
    Fused,
}

/// What the tuner chose for one adapter, with the times it measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tuning {
    /// Parameter block of every kernel family but the many-step GLM kernel.
    pub per_op: ParamBlock,
    /// Parameter block of the many-step GLM kernel (`glm_epoch.wgsl`).
    pub many_step: ParamBlock,
    /// The many-step GLM kernel's variant, where it fits `p` (else Tiles).
    #[serde(default = "tiles")]
    pub glm_epoch: GlmEpochVariant,
    /// The fused GLM gradient's variant, where it fits `p` (else the first that does,
    /// of Quads and Tiles).
    pub glm_grad: GlmGradVariant,
    /// The matrix products' register block.
    #[serde(default = "four")]
    pub matmul: MatmulBlock,
    /// Which products' sums over k are split over workgroups.
    #[serde(default = "long")]
    pub split: SumSplit,
    /// How a two-layer MLP's step runs.
    #[serde(default = "per_op")]
    pub mlp: MlpStep,
    /// Whether a small two-layer MLP (its parameters twice in one workgroup's memory,
    /// [`kernels::mlp_epoch_tile`]) runs its SGD steps many to a dispatch
    /// (`mlp_epoch.wgsl`) rather than as `mlp` says, where the engine allows.
    #[serde(default)]
    pub mlp_many: bool,
    /// What was measured: probe, candidate, median milliseconds (empty for defaults).
    #[serde(default)]
    pub measured: Vec<Measured>,
}

/// One timed candidate of a tuning probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// The probe (`per-op kernels`, `many-step GLM`, `GLM gradient`).
    pub probe: String,
    /// The candidate (`Uniform`, `Rows`, …).
    pub candidate: String,
    /// Median milliseconds per probe run, or `None` when its results were wrong (it
    /// cannot be chosen).
    pub ms: Option<f64>,
}

fn four() -> MatmulBlock {
    MatmulBlock::Four
}

fn long() -> SumSplit {
    SumSplit::Long
}

fn per_op() -> MlpStep {
    MlpStep::PerOp
}

fn tiles() -> GlmEpochVariant {
    GlmEpochVariant::Tiles
}

impl Default for Tuning {
    /// The choices for a GPU: parameters in uniform buffers, the gradient in quads.
    fn default() -> Self {
        Tuning {
            per_op: ParamBlock::Uniform,
            many_step: ParamBlock::Uniform,
            glm_epoch: GlmEpochVariant::Tiles,
            glm_grad: GlmGradVariant::Quads,
            matmul: MatmulBlock::Four,
            split: SumSplit::Long,
            mlp: MlpStep::Fused,
            mlp_many: false,
            measured: Vec::new(),
        }
    }
}

impl Tuning {
    /// The parameter block of `family`'s kernels.
    pub fn block(&self, family: Family) -> ParamBlock {
        match family {
            Family::GlmEpoch => self.many_step,
            _ => self.per_op,
        }
    }

    /// The many-step GLM kernel's variant for `p` features: the chosen one where it fits,
    /// else its scalar form (Rows for Rows4), else Tiles.
    ///
    /// ```
    /// use gradflow::gpu::tune::{GlmEpochVariant, Tuning};
    /// let t = Tuning { glm_epoch: GlmEpochVariant::Rows4, ..Tuning::default() };
    /// assert_eq!(t.glm_epoch_for(64), GlmEpochVariant::Rows4);
    /// assert_eq!(t.glm_epoch_for(30), GlmEpochVariant::Rows);
    /// assert_eq!(t.glm_epoch_for(65), GlmEpochVariant::Tiles);
    /// ```
    pub fn glm_epoch_for(&self, p: usize) -> GlmEpochVariant {
        let scalar = match self.glm_epoch {
            GlmEpochVariant::Rows4 => GlmEpochVariant::Rows,
            v => v,
        };
        [self.glm_epoch, scalar]
            .into_iter()
            .find(|v| v.fits(p))
            .unwrap_or(GlmEpochVariant::Tiles)
    }

    /// The fused GLM gradient's variant for `p` features: the chosen one where it fits,
    /// else its scalar form (Rows for Rows4), else Quads, else Tiles.
    ///
    /// ```
    /// use gradflow::gpu::tune::{GlmGradVariant, Tuning};
    /// let t = Tuning { glm_grad: GlmGradVariant::Rows4, ..Tuning::default() };
    /// assert_eq!(t.glm_grad_for(64), GlmGradVariant::Rows4);
    /// assert_eq!(t.glm_grad_for(30), GlmGradVariant::Rows); // not a multiple of 4
    /// assert_eq!(t.glm_grad_for(128), GlmGradVariant::Quads);
    /// assert_eq!(t.glm_grad_for(130), GlmGradVariant::Tiles); // past Rows, not a multiple of 4
    /// ```
    pub fn glm_grad_for(&self, p: usize) -> GlmGradVariant {
        let scalar = match self.glm_grad {
            GlmGradVariant::Rows4 => GlmGradVariant::Rows,
            v => v,
        };
        [self.glm_grad, scalar, GlmGradVariant::Quads]
            .into_iter()
            .find(|v| v.fits(p))
            .unwrap_or(GlmGradVariant::Tiles)
    }
}

/// The cache key of an adapter: name, backend, driver and its version, PCI ids, and
/// gradflow's version and the set of choices (a new release, or a new choice or candidate
/// within one, measures again).
pub fn key(info: &wgpu::AdapterInfo) -> String {
    format!(
        "{} | {:?} | {} {} | {:04x}:{:04x} | gradflow {} choices {CHOICES}",
        info.name,
        info.backend,
        info.driver,
        info.driver_info,
        info.vendor,
        info.device,
        env!("CARGO_PKG_VERSION")
    )
}

/// Where the choices are cached: `$XDG_CACHE_HOME/gradflow/tuning.json`, else
/// `$HOME/.cache/gradflow/tuning.json`; `None` without either variable.
pub fn cache_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("gradflow").join("tuning.json"))
}

/// Whether `GRADFLOW_TUNE=off` asks for the fixed defaults.
pub fn disabled() -> bool {
    std::env::var(TUNE_ENV).is_ok_and(|v| v.trim().eq_ignore_ascii_case("off"))
}

fn read_cache(path: &PathBuf) -> BTreeMap<String, Tuning> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The cached choice for `info`, if any.
pub fn cached(info: &wgpu::AdapterInfo) -> Option<Tuning> {
    read_cache(&cache_path()?).remove(&key(info))
}

/// Adds `tuning` for `info` to the cache: read, merged, and written to a temporary file
/// renamed over the old one, so a reader never sees half a file. A cache that cannot be
/// written is skipped (the next process measures again).
fn store(info: &wgpu::AdapterInfo, tuning: &Tuning) {
    let Some(path) = cache_path() else { return };
    let mut all = read_cache(&path);
    all.insert(key(info), tuning.clone());
    let (Some(dir), Ok(json)) = (path.parent(), serde_json::to_vec_pretty(&all)) else {
        return;
    };
    let tmp = dir.join(format!(".tuning.json.{}.tmp", std::process::id()));
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&tmp, &json))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// The tuning for `adapter`: the defaults with `GRADFLOW_TUNE=off`, else the cached
/// choice, else measured now (a few seconds on a software adapter, well under one on a
/// GPU) and cached.
///
/// # Errors
/// [`Error::Device`] when the default device cannot be opened (measuring needs it).
pub(crate) fn for_adapter(adapter: &wgpu::Adapter) -> Result<Tuning> {
    if disabled() {
        return Ok(Tuning::default());
    }
    // One measurement per process: threads opening devices at once wait for the first,
    // then find its choice in the cache.
    static MEASURING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = MEASURING.lock().unwrap_or_else(|p| p.into_inner());
    let info = adapter.get_info();
    if let Some(t) = cached(&info) {
        return Ok(t);
    }
    let tuning = pollster::block_on(measure(adapter))?;
    store(&info, &tuning);
    Ok(tuning)
}

/// Measures every choice on `adapter` (see the module docs).
///
/// # Errors
/// [`Error::Device`] when the default device cannot be opened.
pub async fn measure(adapter: &wgpu::Adapter) -> Result<Tuning> {
    let mut measured = Vec::new();
    let mut best = Tuning::default();
    // Each probe runs on a device opened with the candidate (the layouts and shaders
    // depend on it); a candidate that fails to open or to run is left out.
    let mut per_op = Vec::new();
    let mut many = Vec::new();
    // A CPU adapter (llvmpipe) compiles and keeps a shader variant for every set of
    // uniform values that steers a per-op kernel's loops: a long fit of many shapes
    // grows without bound (a streaming fit under 112 MiB was killed with uniform blocks,
    // not with storage blocks), and the probe's few shapes cannot see it. Its per-op
    // kernels read their parameters from storage; a GPU's are timed both ways.
    let cpu_adapter = adapter.get_info().device_type == wgpu::DeviceType::Cpu;
    for block in [ParamBlock::Uniform, ParamBlock::Storage] {
        let t = Tuning {
            per_op: block,
            ..best.clone()
        };
        let timed = !(cpu_adapter && block == ParamBlock::Uniform);
        if timed && let Ok(ctx) = GpuContext::open_with(adapter, t).await {
            per_op.push((block, probe_per_op(&ctx).ok().flatten()));
        }
        // The many-step kernel's block and variant together: which uniforms lavapipe
        // inlines, and so what it specialises and how often it compiles again, differs
        // by variant (measured: Rows4 10× slower with a uniform block, Rows faster).
        for variant in GlmEpochVariant::ALL {
            let t = Tuning {
                many_step: block,
                glm_epoch: variant,
                ..best.clone()
            };
            if let Ok(ctx) = GpuContext::open_with(adapter, t).await {
                many.push(((block, variant), probe_many_step(&ctx).ok().flatten()));
            }
        }
    }
    best.per_op = pick("per-op kernels", per_op, &mut measured).unwrap_or(best.per_op);
    (best.many_step, best.glm_epoch) =
        pick("many-step GLM", many, &mut measured).unwrap_or((best.many_step, best.glm_epoch));
    let ctx = GpuContext::open_with(adapter, best.clone()).await?;
    let probe = GradProbe::for_device(&ctx);
    let grads = GlmGradVariant::ALL
        .into_iter()
        .filter(|v| v.runs_on(ctx.limits()))
        .map(|v| (v, probe_glm_grad(&ctx, v, &probe).ok().flatten()))
        .collect();
    // 256 MiB of rows on a GPU: freed before the next probes open their devices.
    drop(probe);
    best.glm_grad = pick("GLM gradient", grads, &mut measured).unwrap_or(best.glm_grad);
    let mut products = Vec::new();
    let mut reference = None;
    for block in [MatmulBlock::Four, MatmulBlock::Eight] {
        let t = Tuning {
            matmul: block,
            ..best.clone()
        };
        let Ok(ctx) = GpuContext::open_with(adapter, t).await else {
            continue;
        };
        let run = probe_products(&ctx).ok();
        // The blocks sum every value in the same order: a candidate must match the
        // 4 × 4 block's bits (which the per-op probe checked in float64).
        let ms = match (run, &reference) {
            (Some((bits, ms)), None) => {
                reference = Some(bits);
                Some(ms)
            }
            (Some((bits, ms)), Some(r)) => (&bits == r).then_some(ms),
            (None, _) => None,
        };
        products.push((block, ms));
    }
    best.matmul = pick("matrix products", products, &mut measured).unwrap_or(best.matmul);
    let ctx = GpuContext::open_with(adapter, best.clone()).await?;
    let splits = [SumSplit::Long, SumSplit::Short]
        .into_iter()
        .map(|s| (s, probe_split(&ctx, s).ok().flatten()))
        .collect();
    best.split = pick("split sums", splits, &mut measured).unwrap_or(best.split);
    let mut steps = Vec::new();
    for step in [MlpStep::PerOp, MlpStep::Fused] {
        let t = Tuning {
            mlp: step,
            ..best.clone()
        };
        if let Ok(ctx) = GpuContext::open_with(adapter, t).await {
            steps.push((step, probe_mlp(&ctx).ok().flatten()));
        }
    }
    best.mlp = pick("MLP step", steps, &mut measured).unwrap_or(best.mlp);
    let mut small = Vec::new();
    for choice in [SmallMlp::StepByStep, SmallMlp::ManySteps] {
        let t = Tuning {
            mlp_many: choice == SmallMlp::ManySteps,
            ..best.clone()
        };
        if let Ok(ctx) = GpuContext::open_with(adapter, t).await {
            small.push((choice, probe_small_mlp(&ctx).ok().flatten()));
        }
    }
    best.mlp_many = pick("small MLP steps", small, &mut measured) == Some(SmallMlp::ManySteps);
    best.measured = measured;
    Ok(best)
}

/// The fastest verified candidate, recording every time.
fn pick<T: Copy + std::fmt::Debug>(
    probe: &str,
    timed: Vec<(T, Option<f64>)>,
    measured: &mut Vec<Measured>,
) -> Option<T> {
    for (c, ms) in &timed {
        measured.push(Measured {
            probe: probe.into(),
            candidate: format!("{c:?}"),
            ms: *ms,
        });
    }
    timed
        .into_iter()
        .filter_map(|(c, ms)| ms.map(|ms| (c, ms)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c)
}

/// Median milliseconds of three timed runs of `run` after one warm-up (compilation and
/// first-use costs are not the steady state).
pub(super) fn median_ms(ctx: &GpuContext, mut run: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut timed = || -> Result<f64> {
        let t = Instant::now();
        run()?;
        ctx.device()
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Device {
                message: e.to_string(),
            })?;
        Ok(t.elapsed().as_secs_f64() * 1e3)
    };
    timed()?;
    let mut times = [timed()?, timed()?, timed()?];
    times.sort_by(f64::total_cmp);
    Ok(times[1])
}

/// Deterministic probe data: `n` rows of `p` features in [−1, 1), targets from a fixed
/// linear model with a little noise.
pub(super) fn probe_data(n: usize, p: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut s = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let x: Vec<f32> = (0..n * p).map(|_| next()).collect();
    let w: Vec<f32> = (0..p).map(|j| ((j % 7) as f32 - 3.0) * 0.1).collect();
    let y = x
        .chunks(p)
        .map(|r| r.iter().zip(&w).map(|(a, b)| a * b).sum::<f32>() + 0.5 + 0.01 * next())
        .collect();
    (x, y, w)
}

/// The mean squared error and its gradient (∂w, ∂b) at (w, b), in float64: the oracle
/// the probes check the device against.
fn mse_oracle(x: &[f32], y: &[f32], w: &[f32], b: f32) -> (f64, Vec<f64>, f64) {
    let p = w.len();
    let m = y.len() as f64;
    let (mut loss, mut gw, mut gb) = (0.0, vec![0.0; p], 0.0);
    for (row, &t) in x.chunks(p).zip(y) {
        let z = row
            .iter()
            .zip(w)
            .map(|(a, c)| f64::from(*a) * f64::from(*c))
            .sum::<f64>()
            + f64::from(b);
        let d = z - f64::from(t);
        loss += d * d;
        for (g, a) in gw.iter_mut().zip(row) {
            *g += 2.0 * d * f64::from(*a) / m;
        }
        gb += 2.0 * d / m;
    }
    (loss / m, gw, gb)
}

/// Whether `got` matches the oracle to float32 accuracy (relative to the largest value).
fn agrees(got: &[f32], want: &[f64]) -> bool {
    let scale = want.iter().fold(1e-12_f64, |a, v| a.max(v.abs()));
    got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|(g, w)| ((f64::from(*g) - w) / scale).abs() < 1e-4)
}

/// Per-op kernels: an MLP-shaped sequence at batch 256 (X·W¹ 256 × 64 × 256, bias,
/// sigmoid, Xᵀδ 64 × 256 × 256, column sums, δW²ᵀ 256 × 10 × 256), eight to a
/// submission, plus the fused GLM gradient of 8,192 × 64 rows: launch-bound shapes, as
/// mini-batch steps are. The first product and the gradient are checked in float64.
fn probe_per_op(ctx: &GpuContext) -> Result<Option<f64>> {
    use crate::program::{Activation, Layout};
    let (n, p) = (8192, 64);
    let (x, y, w) = probe_data(n, p);
    let (got, grad_ms) = glm_grad_run(ctx, GlmGradVariant::Tiles, (&x, &y, &w), 8)?;
    let (loss, gw, gb) = mse_oracle(&x, &y, &w, 0.25);
    let mut want = gw;
    want.extend([gb, loss]);
    if !agrees(&got, &want) {
        return Ok(None);
    }
    let (m, k, h) = (256, 64, 256);
    let xa = ctx.upload("tune x", &x[..m * k])?;
    let w1 = ctx.upload("tune w1", &x[m * k..m * k + k * h])?;
    let b1 = ctx.upload("tune b1", &y[..h])?;
    let z = ctx.storage("tune z", m * h)?;
    let a = ctx.storage("tune a", m * h)?;
    let g1 = ctx.storage("tune g1", k * h)?;
    let s1 = ctx.storage("tune s1", h)?;
    let d2 = ctx.upload("tune d2", &x[..m * 10])?;
    let w2 = ctx.upload("tune w2", &x[..h * 10])?;
    let dh = ctx.storage("tune dh", m * h)?;
    let mut ring = ParamRing::new(ctx, 6 * 8)?;
    let nn = kernels::bind_matmul(ctx, &ring, &xa, None, &w1, &z)?;
    let bias = kernels::bind_bias_add(ctx, &ring, &z, &b1)?;
    let act = kernels::bind_activation(ctx, &ring, &z, &a)?;
    let tn = kernels::bind_matmul(ctx, &ring, &xa, None, &a, &g1)?;
    let sums = kernels::bind_col_sums(ctx, &ring, &a, &s1)?;
    let nt = kernels::bind_matmul(ctx, &ring, &d2, None, &w2, &dh)?;
    let steps_ms = median_ms(ctx, || {
        kernels::submit(ctx, &mut ring, |pass, r| {
            for _ in 0..8 {
                kernels::matmul(ctx, pass, r, &nn, Layout::NN, (m, k, h), None)?;
                kernels::bias_add(ctx, pass, r, &bias, m, h)?;
                kernels::activate(ctx, pass, r, &act, Activation::Sigmoid, m * h)?;
                kernels::matmul(ctx, pass, r, &tn, Layout::TN, (k, m, h), None)?;
                kernels::col_sums(ctx, pass, r, &sums, m, h)?;
                kernels::matmul(ctx, pass, r, &nt, Layout::NT, (m, 10, h), None)?;
            }
            Ok(())
        })
    })?;
    // z = X·W¹ + b¹ after the last bias add (each pass recomputes z, then adds b¹ once).
    let got = readback::read_f32(ctx, &z, m * h)?;
    let want: Vec<f64> = (0..m * h)
        .map(|e| {
            let (i, j) = (e / h, e % h);
            let dot: f64 = (0..k)
                .map(|l| f64::from(x[i * k + l]) * f64::from(x[m * k + l * h + j]))
                .sum();
            dot + f64::from(y[j])
        })
        .collect();
    Ok(agrees(&got, &want).then_some(grad_ms + steps_ms))
}

/// The MLP step's three products at batch 256 (X·W¹ 256 × 64 × 256, Xᵀδ 64 × 256 ×
/// 256, δW²ᵀ 256 × 10 × 256) and an awkward 203 × 37 × 91, eight of each to a
/// submission: their outputs' bits and the median milliseconds.
fn probe_products(ctx: &GpuContext) -> Result<(Vec<u32>, f64)> {
    use crate::program::Layout;
    let (x, _, _) = probe_data(2 * 256 * 256, 1);
    let shapes = [
        (Layout::NN, 256, 64, 256),
        (Layout::TN, 64, 256, 256),
        (Layout::NT, 256, 10, 256),
        (Layout::NN, 203, 37, 91),
    ];
    let mut ring = ParamRing::new(ctx, 8 * shapes.len())?;
    let mut bound = Vec::new();
    for (_, m, k, n) in shapes {
        let a = ctx.upload("tune a", &x[..m * k])?;
        let b = ctx.upload("tune b", &x[m * k..m * k + k * n])?;
        let c = ctx.storage("tune c", m * n)?;
        bound.push((kernels::bind_matmul(ctx, &ring, &a, None, &b, &c)?, c));
    }
    let ms = median_ms(ctx, || {
        kernels::submit(ctx, &mut ring, |pass, r| {
            for _ in 0..8 {
                for ((layout, m, k, n), (b, _)) in shapes.iter().zip(&bound) {
                    kernels::matmul(ctx, pass, r, b, *layout, (*m, *k, *n), None)?;
                }
            }
            Ok(())
        })
    })?;
    let mut bits = Vec::new();
    for ((_, m, _, n), (_, c)) in shapes.iter().zip(&bound) {
        let v = readback::read_f32(ctx, c, m * n)?;
        bits.extend(v.iter().map(|f| f.to_bits()));
    }
    Ok((bits, ms))
}

/// The MLP step's products with few output blocks and k = 256 (H·W² 256 × 256 × 10,
/// Hᵀ·δ² 256 × 256 × 10, Xᵀ·δ¹ 64 × 256 × 256), eight of each to a submission, in one
/// pass ([`SumSplit::Long`]) or split over k with the second pass
/// ([`SumSplit::Short`]): the median milliseconds, `None` where a result differs from
/// float64.
fn probe_split(ctx: &GpuContext, how: SumSplit) -> Result<Option<f64>> {
    use crate::program::Layout;
    let (x, _, _) = probe_data(2 * 256 * 256, 1);
    let shapes = [
        (Layout::NN, 256, 256, 10),
        (Layout::TN, 256, 256, 10),
        (Layout::TN, 64, 256, 256),
    ];
    let reps = 8;
    let mut ring = ParamRing::new(ctx, 2 * reps * shapes.len())?;
    let mut bound = Vec::new();
    for (layout, m, k, n) in shapes {
        // op(A) is m × k: stored k × m for TN.
        let (a_len, b_len) = (m * k, k * n);
        let a = ctx.upload("tune a", &x[..a_len])?;
        let b = ctx.upload("tune b", &x[a_len..a_len + b_len])?;
        let c = ctx.storage("tune c", m * n)?;
        let room = kernels::short_split_segments(m, k, n).unwrap_or(1);
        let scratch = ctx.storage("tune partials", room * m * n)?;
        let whole = kernels::bind_matmul(ctx, &ring, &a, None, &b, &c)?;
        let parts = kernels::bind_matmul(ctx, &ring, &a, None, &b, &scratch)?;
        let finish = kernels::bind_col_sums(ctx, &ring, &scratch, &c)?;
        bound.push((
            (layout, m, k, n),
            (whole, parts, finish, room),
            c,
            (a_len, b_len),
        ));
    }
    let ms = median_ms(ctx, || {
        kernels::submit(ctx, &mut ring, |pass, r| {
            for _ in 0..reps {
                for ((layout, m, k, n), (whole, parts, finish, room), _, _) in &bound {
                    let shape = (*m, *k, *n);
                    match how {
                        SumSplit::Long => {
                            kernels::matmul(ctx, pass, r, whole, *layout, shape, None)?
                        }
                        SumSplit::Short => {
                            let cut = (*room, kernels::SHORT_SPLIT_SEGMENT);
                            kernels::matmul_split(
                                ctx,
                                pass,
                                r,
                                (parts, finish),
                                *layout,
                                shape,
                                None,
                                cut,
                            )?
                        }
                    }
                }
            }
            Ok(())
        })
    })?;
    for ((layout, m, k, n), _, c, (a_len, b_len)) in &bound {
        let wide = |v: &[f32]| v.iter().map(|&f| f64::from(f)).collect::<Vec<_>>();
        let (a, b) = (wide(&x[..*a_len]), wide(&x[*a_len..a_len + b_len]));
        let mut want = vec![0f64; m * n];
        crate::cpu::matmul::matmul(*layout, *m, *k, *n, &a, None, &b, &mut want);
        let got = readback::read_f32(ctx, c, m * n)?;
        if !agrees(&got, &want) {
            return Ok(None);
        }
    }
    Ok(Some(ms))
}

/// Runs the fused GLM gradient of (x, y) at (w, b = 0.25) `reps` times per submission:
/// the last result ([∂w, ∂b, loss]) and the median milliseconds.
fn glm_grad_run(
    ctx: &GpuContext,
    variant: GlmGradVariant,
    data: (&[f32], &[f32], &[f32]),
    reps: usize,
) -> Result<(Vec<f32>, f64)> {
    let (out, ms) = glm_grad_times(ctx, variant, data, &[reps])?;
    Ok((out, ms[0]))
}

/// As [`glm_grad_run`], the data uploaded once and timed at each count of `reps` per
/// submission: the last result and the median milliseconds of each.
pub(super) fn glm_grad_times(
    ctx: &GpuContext,
    variant: GlmGradVariant,
    (x, y, w): (&[f32], &[f32], &[f32]),
    reps: &[usize],
) -> Result<(Vec<f32>, Vec<f64>)> {
    let p = w.len();
    let n = y.len();
    let xb = ctx.upload("tune x", x)?;
    let yb = ctx.upload("tune y", y)?;
    let wb = ctx.upload("tune w", w)?;
    let bb = ctx.upload("tune b", &[0.25f32])?;
    let room = kernels::glm_grad_segments_bound(n, p, variant);
    let part = ctx.storage("tune partials", room * kernels::glm_part_cols(p))?;
    let gw = ctx.storage("tune gw", p)?;
    let gb = ctx.storage("tune gb", 1)?;
    let losses = ctx.storage("tune loss", 1)?;
    let most = reps.iter().copied().max().unwrap_or(1);
    let mut ring = ParamRing::new(ctx, 2 * most)?;
    let first = kernels::bind_glm_grad(ctx, &ring, (&xb, 0), &yb, None, None, (&wb, &bb), &part)?;
    let finish = kernels::bind_glm_finish(ctx, &ring, &part, (&gw, &gb), &losses, None)?;
    let mut time = |reps: usize| {
        median_ms(ctx, || {
            kernels::submit(ctx, &mut ring, |pass, ring| {
                (0..reps).try_for_each(|_| {
                    kernels::glm_loss_grad(
                        ctx,
                        pass,
                        ring,
                        (&[&first], &finish),
                        (LossKind::Mse, p, variant),
                        TargetRows::Range(0),
                        (n, room),
                        0,
                        Halting::Off,
                    )
                })
            })
        })
    };
    let ms = reps.iter().map(|&r| time(r)).collect::<Result<Vec<_>>>()?;
    let mut out = readback::read_f32(ctx, &gw, p)?;
    out.extend(readback::read_f32(ctx, &gb, 1)?);
    out.extend(readback::read_f32(ctx, &losses, 1)?);
    Ok((out, ms))
}

/// The fused GLM gradient's probe: rows × 64 features, its targets and weights, and the
/// float64 oracle's [∂w, ∂b, loss] at them (b = 0.25).
struct GradProbe {
    x: Vec<f32>,
    y: Vec<f32>,
    w: Vec<f32>,
    want: Vec<f64>,
}

impl GradProbe {
    /// The probe for `ctx`'s adapter. The kernel's time matters for long batches (the full
    /// batch, L-BFGS's evaluations), where a GPU's variants differ by how near they come
    /// to its bandwidth: on a GPU 2²⁰ rows (256 MiB, within one storage binding), where a
    /// smaller probe would rank them by launch and latency instead; on a CPU adapter
    /// (llvmpipe) 65,536 rows, the time it can spend.
    fn for_device(ctx: &GpuContext) -> GradProbe {
        let p = 64;
        let n = if ctx.info().device_type == wgpu::DeviceType::Cpu {
            65_536
        } else {
            let fit = ctx.limits().max_storage_buffer_binding_size / (4 * p as u64);
            usize::try_from(fit)
                .unwrap_or(usize::MAX)
                .clamp(65_536, 1 << 20)
        };
        let (x, y, w) = probe_data(n, p);
        let (loss, mut want, gb) = mse_oracle(&x, &y, &w, 0.25);
        want.extend([gb, loss]);
        GradProbe { x, y, w, want }
    }
}

/// The fused GLM gradient in `variant` over the probe's rows, checked against float64.
fn probe_glm_grad(
    ctx: &GpuContext,
    variant: GlmGradVariant,
    probe: &GradProbe,
) -> Result<Option<f64>> {
    let (got, ms) = glm_grad_run(ctx, variant, (&probe.x, &probe.y, &probe.w), 4)?;
    Ok(agrees(&got, &probe.want).then_some(ms))
}

/// The many-step GLM kernel: 64 SGD steps of 256 rows (p = 64) in four dispatches, the
/// final weights checked against the same steps in float64.
fn probe_many_step(ctx: &GpuContext) -> Result<Option<f64>> {
    many_step_run(ctx, 64)
}

/// `count` SGD steps of 256 rows (p = 64) through the many-step GLM kernel, checked
/// against the same steps in float64: the median milliseconds, `None` if they disagree.
pub(super) fn many_step_run(ctx: &GpuContext, count: usize) -> Result<Option<f64>> {
    let (n, p, batch, lr) = (4096, 64, 256, 0.05f32);
    let (x, y, _) = probe_data(n, p);
    let steps: Vec<kernels::GlmStep> = (0..count)
        .map(|s| kernels::GlmStep {
            start: (s % (n / batch) * batch) as u32,
            len: batch as u32,
            lr,
            slot: s as u32,
        })
        .collect();
    let order: Vec<u32> = (0..n as u32).collect();
    let xb = ctx.upload("tune x", &x)?;
    let targets: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
    let yb = ctx.upload("tune y", &targets)?;
    let ob = ctx.upload("tune order", &order)?;
    // `upload` sizes buffers in 4-byte values: a step is four.
    let sb = ctx.upload::<u32>("tune steps", bytemuck::cast_slice(&steps))?;
    let wb = ctx.storage("tune w", p)?;
    let bb = ctx.storage("tune b", 1)?;
    let losses = ctx.storage("tune losses", steps.len())?;
    let halt = ctx.upload("tune halt", &[0u32; 4])?;
    let per = kernels::glm_steps_per_dispatch(batch);
    let mut ring = ParamRing::new(ctx, count.div_ceil(per))?;
    let bound = kernels::bind_glm_epoch(
        ctx,
        &ring,
        (&[&xb], n),
        &yb,
        &ob,
        &sb,
        &wb,
        &bb,
        &losses,
        &halt,
    )?;
    let run = |ring: &mut ParamRing| {
        ctx.write(&wb, &vec![0f32; p]);
        ctx.write(&bb, &[0f32]);
        kernels::submit(ctx, ring, |pass, ring| {
            (0..steps.len()).step_by(per).try_for_each(|first| {
                let count = per.min(steps.len() - first);
                let args = (first, count);
                kernels::glm_epoch(
                    ctx,
                    pass,
                    ring,
                    &bound,
                    LossKind::Mse,
                    p,
                    args,
                    Halting::Off,
                )
            })
        })
    };
    let ms = median_ms(ctx, || run(&mut ring))?;
    let got = readback::read_f32(ctx, &wb, p)?;
    // The same steps in float64.
    let (mut w, mut b) = (vec![0f32; p], 0f32);
    for s in &steps {
        let rows = s.start as usize..(s.start + s.len) as usize;
        let (_, gw, gb) = mse_oracle(&x[rows.start * p..rows.end * p], &y[rows], &w, b);
        for (wj, g) in w.iter_mut().zip(&gw) {
            *wj -= lr * *g as f32;
        }
        b -= lr * gb as f32;
    }
    let want: Vec<f64> = w.iter().map(|v| f64::from(*v)).collect();
    Ok(agrees(&got, &want).then_some(ms))
}

/// Sixteen SGD steps of W3's network (64-256-10, sigmoid, batches of 256) on an engine
/// that runs the MLP step as the context's tuning says, after its loss and gradients
/// at the starting parameters were checked against float64 (`cpu::engine`, the
/// reference kernels): the median milliseconds, `None` where they disagree.
fn probe_mlp(ctx: &GpuContext) -> Result<Option<f64>> {
    let (mut gpu, (x, targets, params)) = mlp_engine(ctx, 16)?;
    let (n, p, batch) = (MLP_PROBE_ROWS, 64, 256);
    let (loss, grads) = gpu.loss_and_grads(0, batch)?;
    let program = gpu.program().clone();
    let mut cpu = crate::cpu::engine::CpuEngine::<f64>::new(program, &x, p, Some(&targets), batch);
    cpu.set_params(&params)?;
    let want_loss = cpu.loss_and_grads(crate::data::Rows::Range {
        start: 0,
        len: batch,
    })?;
    let right =
        agrees(&[loss], &[want_loss]) && grads.iter().zip(cpu.grads()).all(|(g, c)| agrees(g, c));
    if !right {
        return Ok(None);
    }
    let ms = median_ms(ctx, || {
        for s in 0..16 {
            gpu.step((s % (n / batch)) * batch, batch, 0.01, s)?;
        }
        gpu.read_losses(16).map(drop)
    })?;
    Ok(Some(ms))
}

/// The candidates for [`Tuning::mlp_many`], as the tuner's table names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SmallMlp {
    /// Each step as [`Tuning::mlp`] says.
    StepByStep,
    /// Steps many to a dispatch of `mlp_epoch.wgsl`.
    ManySteps,
}

/// Sixteen SGD steps of a small network (16-32-4, sigmoid, batches of 64 over 1,024
/// rows) on an engine that runs them as the context's tuning says (`mlp_many`): the
/// median milliseconds, `None` where the final parameters disagree with the same steps
/// in float64 (`cpu::engine`).
pub(super) fn probe_small_mlp(ctx: &GpuContext) -> Result<Option<f64>> {
    use super::{GpuEngine, GpuEngineOptions};
    use crate::data::{Rows, Targets};
    let (n, p, h, k, batch, steps) = (1024, 16, 32, 4, 64, 16);
    let (x, y, _) = probe_data(n, p);
    let labels: Vec<u32> = (0..n).map(|r| ((r * 7) % k) as u32).collect();
    let targets = Targets::Classes { labels, classes: k };
    let program = crate::program::mlp(p, h, k, crate::program::Activation::Sigmoid);
    let mut at = 0;
    let params: Vec<Vec<f32>> = program
        .params
        .iter()
        .map(|d| {
            let len = d.rows * d.cols;
            // The probe targets' values in ±1, scaled to a weight's ±0.5.
            let v = (at..at + len).map(|i| 0.5 * y[i % n]).collect();
            at += len;
            v
        })
        .collect();
    let options = GpuEngineOptions {
        loss_slots: Some(steps),
        fuse_mlp_steps: true,
        ..GpuEngineOptions::default()
    };
    let mut gpu = GpuEngine::with_options(ctx, program.clone(), &x, p, &targets, batch, options)?;
    let run = |gpu: &mut GpuEngine| -> Result<()> {
        gpu.set_params(&params)?;
        for s in 0..steps {
            gpu.step((s % (n / batch)) * batch, batch, 0.1, s)?;
        }
        gpu.read_losses(steps).map(drop)
    };
    gpu.set_identity_order()?;
    run(&mut gpu)?;
    let got = gpu.params()?.concat();
    let mut cpu = crate::cpu::engine::CpuEngine::<f64>::new(program, &x, p, Some(&targets), batch);
    cpu.set_params(&params)?;
    for s in 0..steps {
        let start = (s % (n / batch)) * batch;
        cpu.step(Rows::Range { start, len: batch }, 0.1)?;
    }
    let want: Vec<f64> = cpu
        .params()
        .concat()
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    if !agrees(&got, &want) {
        return Ok(None);
    }
    Ok(Some(median_ms(ctx, || run(&mut gpu))?))
}

/// Rows of the MLP probe's data.
const MLP_PROBE_ROWS: usize = 1024;

/// An engine for W3's network (64-256-10, sigmoid, batches of 256) over
/// [`MLP_PROBE_ROWS`] rows of probe data, with `slots` loss slots, its parameters set
/// and the identity order uploaded; the features, targets and parameters it holds.
#[allow(clippy::type_complexity)] // the engine and what it was built from
pub(super) fn mlp_engine(
    ctx: &GpuContext,
    slots: usize,
) -> Result<(
    super::GpuEngine,
    (Vec<f32>, crate::data::Targets, Vec<Vec<f32>>),
)> {
    use super::{GpuEngine, GpuEngineOptions};
    use crate::data::Targets;
    let (n, p, h, k, batch) = (MLP_PROBE_ROWS, 64, 256, 10, 256);
    let (x, _, _) = probe_data(n + p * h + h * k, p);
    let (x, init) = x.split_at(n * p);
    let labels: Vec<u32> = (0..n).map(|r| ((r * 7) % k) as u32).collect();
    let targets = Targets::Classes { labels, classes: k };
    let program = crate::program::mlp(p, h, k, crate::program::Activation::Sigmoid);
    let params: Vec<Vec<f32>> = program
        .params
        .iter()
        .scan(0, |at, d| {
            let len = d.rows * d.cols;
            // W³'s scale: a weight in ±0.125, the probe data's values in ±1.
            let v = init[*at..*at + len].iter().map(|v| v * 0.125).collect();
            *at += len;
            Some(v)
        })
        .collect();
    let options = GpuEngineOptions {
        loss_slots: Some(slots),
        ..GpuEngineOptions::default()
    };
    let mut gpu = GpuEngine::with_options(ctx, program, x, p, &targets, batch, options)?;
    gpu.set_params(&params)?;
    gpu.set_identity_order()?;
    Ok((gpu, (x.to_vec(), targets, params)))
}
