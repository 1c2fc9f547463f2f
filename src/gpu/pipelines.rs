//! The pipeline cache: shader modules, bind-group layouts and compute pipelines are built
//! once per kernel family / variant and reused for the life of the device.
//!
//! | family | shader | bindings after the uniform (binding 0) |
//! |---|---|---|
//! | matmul | `matmul.wgsl` | a (r), b (r), c (rw), idx (r), a1 (r), a2 (r), a3 (r), epilogue operand (r) |
//! | bias | `bias.wgsl` | z (rw), bias (r) |
//! | activation | `activation.wgsl` | src (r), dst (rw) |
//! | softmax | `softmax.wgsl` | z (r), out (rw) |
//! | loss | `loss.wgsl` | z (r), targets (r), dz (rw), idx (r), losses (rw) |
//! | reduce | `reduce.wgsl` | x (r), out (rw) |
//! | update | `update.wgsl` | param (rw), grad (r) |
//! | glm epoch | `glm_epoch.wgsl` | x0–x3 (r), targets (r), order (r), steps (r), w (rw), b (rw), losses (rw), halt (rw) |
//! | glm grad | `glm_grad.wgsl` (+ `glm_grad_warps.wgsl` with subgroups) | x (r), targets (r), idx (r), row weights (r), w (r), b (r), partials (rw) |
//! | glm finish | `glm_finish.wgsl` | partials (r), ∂w (rw), ∂b (rw), losses (rw), halt (rw) |
//! | mlp rows | `mlp_rows.wgsl` | x, targets, idx, row weights, W¹, b¹, W², b² (r); xb, a, δ², δ¹, loss parts (rw) |
//! | mlp grads | `mlp_grads.wgsl` | xb, δ¹, a, δ², loss parts (r); ∂W¹, ∂b¹, ∂W², ∂b², losses, halt (rw) |
//! | mlp epoch | `mlp_epoch.wgsl` | x, targets, order, steps (r); W¹, b¹, W², b², losses, halt (rw) |
//!
//! Binding 0 is always the per-dispatch parameters: a uniform with a dynamic offset into
//! a [`ParamRing`](super::kernels::ParamRing).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::program::Activation;
use crate::program::Layout;
use crate::program::LossKind;
use crate::program::Rule;

use super::tune::{GlmEpochVariant, GlmGradVariant, MatmulBlock, Tuning};

/// A kernel family: one WGSL file and one bind-group layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `matmul.wgsl` (with `activation_math.wgsl` in front).
    Matmul,
    /// `bias.wgsl`.
    Bias,
    /// `activation.wgsl` (with `activation_math.wgsl` in front).
    Activation,
    /// `softmax.wgsl`.
    Softmax,
    /// `loss.wgsl` (with `halting.wgsl` and `activation_math.wgsl` in front).
    Loss,
    /// `reduce.wgsl`.
    Reduce,
    /// `update.wgsl` (with `update_rules.wgsl` in front).
    Update,
    /// `update_all.wgsl` (with `update_rules.wgsl` in front): up to four tensors.
    UpdateAll,
    /// `glm_epoch.wgsl` (with `halting.wgsl` and `activation_math.wgsl` in front).
    GlmEpoch,
    /// `glm_grad.wgsl` (with `activation_math.wgsl` in front).
    GlmGrad,
    /// `glm_finish.wgsl`.
    GlmFinish,
    /// `mlp_rows.wgsl` (with `activation_math.wgsl` in front).
    MlpRows,
    /// `mlp_grads.wgsl`.
    MlpGrads,
    /// `mlp_epoch.wgsl` (with `halting.wgsl` and `activation_math.wgsl` in front).
    MlpEpoch,
}

/// `glm_grad.wgsl`, which every device compiles.
const GLM_GRAD: &str = concat!(
    include_str!("../../shaders/activation_math.wgsl"),
    include_str!("../../shaders/glm_grad.wgsl")
);

/// `glm_grad.wgsl` with its subgroup variant, for devices with subgroups.
const GLM_GRAD_WARPS: &str = concat!(
    include_str!("../../shaders/activation_math.wgsl"),
    include_str!("../../shaders/glm_grad.wgsl"),
    include_str!("../../shaders/glm_grad_warps.wgsl")
);

impl Family {
    /// The family's WGSL, with the shared files compiled in front of it.
    pub(crate) fn source(self) -> &'static str {
        match self {
            Family::Matmul => concat!(
                include_str!("../../shaders/activation_math.wgsl"),
                include_str!("../../shaders/matmul.wgsl")
            ),
            Family::Bias => include_str!("../../shaders/bias.wgsl"),
            Family::Activation => concat!(
                include_str!("../../shaders/activation_math.wgsl"),
                include_str!("../../shaders/activation.wgsl")
            ),
            Family::Softmax => include_str!("../../shaders/softmax.wgsl"),
            Family::Loss => concat!(
                include_str!("../../shaders/halting.wgsl"),
                include_str!("../../shaders/activation_math.wgsl"),
                include_str!("../../shaders/loss.wgsl")
            ),
            Family::Reduce => include_str!("../../shaders/reduce.wgsl"),
            Family::Update => concat!(
                include_str!("../../shaders/update_rules.wgsl"),
                include_str!("../../shaders/update.wgsl")
            ),
            Family::UpdateAll => concat!(
                include_str!("../../shaders/update_rules.wgsl"),
                include_str!("../../shaders/update_all.wgsl")
            ),
            Family::GlmEpoch => concat!(
                include_str!("../../shaders/halting.wgsl"),
                include_str!("../../shaders/activation_math.wgsl"),
                include_str!("../../shaders/glm_epoch.wgsl")
            ),
            Family::GlmGrad => GLM_GRAD,
            Family::GlmFinish => concat!(
                include_str!("../../shaders/halting.wgsl"),
                include_str!("../../shaders/glm_finish.wgsl")
            ),
            Family::MlpRows => concat!(
                include_str!("../../shaders/activation_math.wgsl"),
                include_str!("../../shaders/mlp_rows.wgsl")
            ),
            Family::MlpGrads => concat!(
                include_str!("../../shaders/halting.wgsl"),
                include_str!("../../shaders/mlp_grads.wgsl")
            ),
            Family::MlpEpoch => concat!(
                include_str!("../../shaders/halting.wgsl"),
                include_str!("../../shaders/activation_math.wgsl"),
                include_str!("../../shaders/mlp_epoch.wgsl")
            ),
        }
    }

    /// Storage bindings 1.. : `true` for read-write.
    pub(crate) fn storage(self) -> &'static [bool] {
        match self {
            // a1..a3: further chunks of a resident A; the epilogue's operand (8 storage
            // bindings, the default limit per stage).
            Family::Matmul => &[false, false, true, false, false, false, false, false],
            Family::Bias => &[true, false],
            Family::Update => &[true, false, false, true, true],
            // 17 storage bindings: only on devices that allow them (the engine checks).
            Family::UpdateAll => &[
                true, true, true, true, false, false, false, false, false, true, true, true, true,
                true, true, true, true,
            ],
            Family::Activation | Family::Softmax | Family::Reduce => &[false, true],
            Family::Loss => &[false, false, true, false, true, true, false],
            // 11 storage bindings: only on devices that allow them (the engine checks).
            Family::GlmEpoch => &[
                false, false, false, false, false, false, false, true, true, true, true,
            ],
            Family::GlmGrad => &[false, false, false, false, false, false, true],
            Family::GlmFinish => &[false, true, true, true, true],
            // 13 and 11 storage bindings: only on devices that allow them (the engine
            // checks).
            Family::MlpRows => &[
                false, false, false, false, false, false, false, false, true, true, true, true,
                true,
            ],
            Family::MlpGrads => &[
                false, false, false, false, false, true, true, true, true, true, true,
            ],
            // 10 storage bindings (the engine checks).
            Family::MlpEpoch => &[
                false, false, false, false, true, true, true, true, true, true,
            ],
        }
    }
}

/// One pipeline: a kernel family's entry point with its variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Matrix product in a layout with a register block; the activation of a fused
    /// epilogue (`ACT`; any for products without one); whether A spans several chunk
    /// buffers (`CHUNKED`); whether the 8 × 8 block reads its operands as quads (where
    /// the shape aligns them: `kernels::matmul_kernel`).
    Matmul(Layout, MatmulBlock, Activation, bool, bool),
    /// Matrix product in a layout, its sum over k split into segments over the grid's z
    /// (partial products, added by a column-sum pass); whether A spans chunks.
    MatmulSplit(Layout, bool),
    /// Bias broadcast.
    BiasAdd,
    /// Activation forward.
    Activate(Activation),
    /// Activation backward (from the output).
    ActivateBackward(Activation),
    /// Row-wise softmax.
    SoftmaxRows,
    /// Fused loss and output gradient.
    Loss(LossKind),
    /// Column sums.
    ColSums,
    /// A parameter update (an optimizer step).
    Update(Rule),
    /// The updates of up to four parameter tensors in one dispatch.
    UpdateAll(Rule),
    /// Many SGD steps of a one-output GLM (MSE or sigmoid + BCE) in one dispatch; whether
    /// X spans chunks; the variant.
    GlmEpoch(LossKind, bool, GlmEpochVariant),
    /// A one-output GLM's loss and gradient partial sums over row segments, in one pass,
    /// in one of its variants; for [`GlmGradVariant::Warps`] the quads each lane holds
    /// (1–4, from p: a constant, so that the driver unrolls the lane's loops and keeps
    /// its values in registers), 0 for the others.
    GlmGrad(LossKind, GlmGradVariant, u8),
    /// The segments of [`Kernel::GlmGrad`] added in order; the loss and the halt flag.
    GlmFinish,
    /// A two-layer MLP's rows pass (forward, loss, δ², δ¹) with its hidden activation.
    MlpRows(Activation),
    /// A two-layer MLP's sums over the rows: the gradients, the loss and the halt flag.
    MlpGrads,
    /// Many SGD steps of a small two-layer MLP with its hidden activation.
    MlpEpoch(Activation),
}

impl Kernel {
    /// The kernel's family.
    pub fn family(self) -> Family {
        match self {
            Kernel::Matmul(..) | Kernel::MatmulSplit(..) => Family::Matmul,
            Kernel::BiasAdd => Family::Bias,
            Kernel::Activate(_) | Kernel::ActivateBackward(_) => Family::Activation,
            Kernel::SoftmaxRows => Family::Softmax,
            Kernel::Loss(_) => Family::Loss,
            Kernel::ColSums => Family::Reduce,
            Kernel::Update(_) => Family::Update,
            Kernel::UpdateAll(_) => Family::UpdateAll,
            Kernel::GlmEpoch(..) => Family::GlmEpoch,
            Kernel::GlmGrad(..) => Family::GlmGrad,
            Kernel::GlmFinish => Family::GlmFinish,
            Kernel::MlpRows(_) => Family::MlpRows,
            Kernel::MlpGrads => Family::MlpGrads,
            Kernel::MlpEpoch(_) => Family::MlpEpoch,
        }
    }

    fn entry_point(self) -> &'static str {
        match self {
            Kernel::Matmul(Layout::NN, MatmulBlock::Four, ..) => "matmul_nn",
            Kernel::Matmul(Layout::TN, MatmulBlock::Four, ..) => "matmul_tn",
            Kernel::Matmul(Layout::NT, MatmulBlock::Four, ..) => "matmul_nt",
            Kernel::Matmul(Layout::NN, MatmulBlock::Eight, .., false) => "matmul_nn8",
            Kernel::Matmul(Layout::TN, MatmulBlock::Eight, .., false) => "matmul_tn8",
            Kernel::Matmul(Layout::NT, MatmulBlock::Eight, .., false) => "matmul_nt8",
            Kernel::Matmul(Layout::NN, MatmulBlock::Eight, .., true) => "matmul_nn8q",
            Kernel::Matmul(Layout::TN, MatmulBlock::Eight, .., true) => "matmul_tn8q",
            Kernel::Matmul(Layout::NT, MatmulBlock::Eight, .., true) => "matmul_nt8q",
            Kernel::MatmulSplit(Layout::NN, _) => "matmul_nn_split",
            Kernel::MatmulSplit(Layout::TN, _) => "matmul_tn_split",
            Kernel::MatmulSplit(Layout::NT, _) => "matmul_nt_split",
            Kernel::BiasAdd => "bias_add",
            Kernel::Activate(_) => "activate",
            Kernel::ActivateBackward(_) => "activate_backward",
            Kernel::SoftmaxRows => "softmax_rows",
            Kernel::Loss(LossKind::Mse) => "mse",
            Kernel::Loss(LossKind::SigmoidBce) => "sigmoid_bce",
            Kernel::Loss(LossKind::SoftmaxCce) => "softmax_cce",
            Kernel::ColSums => "col_sums",
            Kernel::Update(Rule::Sgd) => "sgd",
            Kernel::Update(Rule::Momentum { .. }) => "momentum",
            Kernel::Update(Rule::Adam) => "adam",
            Kernel::Update(Rule::AdaGrad) => "adagrad",
            Kernel::UpdateAll(Rule::Sgd) => "sgd_all",
            Kernel::UpdateAll(Rule::Momentum { .. }) => "momentum_all",
            Kernel::UpdateAll(Rule::Adam) => "adam_all",
            Kernel::UpdateAll(Rule::AdaGrad) => "adagrad_all",
            Kernel::GlmEpoch(.., v) => v.entry_point(),
            Kernel::GlmGrad(_, v, _) => v.entry_point(),
            Kernel::GlmFinish => "glm_finish",
            Kernel::MlpRows(_) => "mlp_rows",
            Kernel::MlpGrads => "mlp_grads",
            Kernel::MlpEpoch(_) => "mlp_epoch",
        }
    }

    /// Override constants: the activation (`ACT`), the loss (`LOSS`) and whether the
    /// data span chunks (`CHUNKED`) are pipeline variants.
    fn constants(self) -> Vec<(&'static str, f64)> {
        let act = |f: Activation| match f {
            Activation::Sigmoid => ("ACT", 0.0),
            Activation::Tanh => ("ACT", 1.0),
            Activation::Relu => ("ACT", 2.0),
        };
        let loss = |k: LossKind| ("LOSS", if k == LossKind::SigmoidBce { 1.0 } else { 0.0 });
        let chunked = |c: bool| ("CHUNKED", if c { 1.0 } else { 0.0 });
        match self {
            Kernel::Activate(f)
            | Kernel::ActivateBackward(f)
            | Kernel::MlpRows(f)
            | Kernel::MlpEpoch(f) => {
                vec![act(f)]
            }
            Kernel::Matmul(_, _, f, c, _) => vec![act(f), chunked(c)],
            Kernel::MatmulSplit(_, c) => vec![chunked(c)],
            Kernel::GlmEpoch(k, c, _) => vec![loss(k), chunked(c)],
            Kernel::GlmGrad(k, GlmGradVariant::Warps, quads) => {
                vec![loss(k), ("SG_QUADS_USED", f64::from(quads))]
            }
            Kernel::GlmGrad(k, ..) => vec![loss(k)],
            _ => Vec::new(),
        }
    }
}

/// How many objects the cache has built, for tests that it fills once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheCounts {
    /// Shader modules compiled.
    pub modules: usize,
    /// Bind-group layouts created.
    pub layouts: usize,
    /// Compute pipelines created.
    pub pipelines: usize,
}

#[derive(Default)]
struct Cache {
    families: HashMap<
        Family,
        (
            wgpu::ShaderModule,
            wgpu::BindGroupLayout,
            wgpu::PipelineLayout,
        ),
    >,
    /// Each kernel's pipeline: set once compiled (by [`Pipelines::prefetch`]'s task or
    /// by the first [`Pipelines::get`], whichever comes first; the other waits for it).
    pipelines: HashMap<Kernel, Arc<OnceLock<wgpu::ComputePipeline>>>,
}

/// Builds each pipeline on first use and hands out clones (wgpu handles are shared).
pub struct Pipelines {
    device: wgpu::Device,
    tuning: Tuning,
    /// Whether the device was opened with subgroups (`DeviceLimits::subgroups`): the
    /// families with subgroup variants compile them too.
    subgroups: bool,
    cache: Mutex<Cache>,
    modules: AtomicUsize,
    layouts: AtomicUsize,
    pipelines: AtomicUsize,
}

impl Pipelines {
    pub(crate) fn new(device: wgpu::Device, tuning: Tuning, subgroups: bool) -> Self {
        Pipelines {
            device,
            tuning,
            subgroups,
            cache: Mutex::new(Cache::default()),
            modules: AtomicUsize::new(0),
            layouts: AtomicUsize::new(0),
            pipelines: AtomicUsize::new(0),
        }
    }

    /// The kernel variants this device runs (see [`Tuning`]).
    pub fn tuning(&self) -> &Tuning {
        &self.tuning
    }

    /// What has been built so far.
    pub fn counts(&self) -> CacheCounts {
        CacheCounts {
            modules: self.modules.load(Ordering::Relaxed),
            layouts: self.layouts.load(Ordering::Relaxed),
            pipelines: self.pipelines.load(Ordering::Relaxed),
        }
    }

    /// The bind-group layout of `family` (built on first use).
    pub fn layout(&self, family: Family) -> wgpu::BindGroupLayout {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        self.family(&mut cache, family).1.clone()
    }

    /// The pipeline of `kernel` (built on first use), in the variant [`Tuning`] chose for
    /// its family. Waits while another thread compiles it.
    pub fn get(&self, kernel: Kernel) -> wgpu::ComputePipeline {
        // Every dispatch asks: the built pipeline straight from the map.
        let built = {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache.pipelines.get(&kernel).and_then(|c| c.get().cloned())
        };
        if let Some(pipeline) = built {
            return pipeline;
        }
        let (cell, compile, _) = self.entry(kernel);
        cell.get_or_init(compile).clone()
    }

    /// Starts compiling `kernel`'s pipeline on another thread, if it is not built or
    /// under way: an engine names its kernels as it binds its ops, and they compile side
    /// by side, beside its upload, instead of one after another — a fit's set-up on a
    /// fresh device is mostly compilation (lavapipe: W3's 8 pipelines, ~33 ms each). The
    /// first [`Pipelines::get`] waits for it.
    pub fn prefetch(&self, kernel: Kernel) {
        // Only the first ask starts a task: a second one would block a pool thread on the
        // first's compilation instead of compiling another kernel.
        let (cell, compile, first) = self.entry(kernel);
        if first {
            rayon::spawn(move || {
                cell.get_or_init(compile);
            });
        }
    }

    /// `kernel`'s cell in the cache (added, and counted, the first time: then `true`) and
    /// what compiles it: the family's module and layout are built here, under the lock;
    /// the pipeline itself outside it.
    fn entry(
        &self,
        kernel: Kernel,
    ) -> (
        Arc<OnceLock<wgpu::ComputePipeline>>,
        impl FnOnce() -> wgpu::ComputePipeline + Send + 'static,
        bool,
    ) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let (module, _, layout) = self.family(&mut cache, kernel.family()).clone();
        let mut first = false;
        let cell = cache.pipelines.entry(kernel).or_insert_with(|| {
            first = true;
            self.pipelines.fetch_add(1, Ordering::Relaxed);
            Arc::new(OnceLock::new())
        });
        let cell = Arc::clone(cell);
        let device = self.device.clone();
        let compile = move || {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.entry_point()),
                layout: Some(&layout),
                module: &module,
                entry_point: Some(kernel.entry_point()),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &kernel.constants(),
                    ..Default::default()
                },
                cache: None,
            })
        };
        (cell, compile, first)
    }

    fn family<'c>(
        &self,
        cache: &'c mut Cache,
        family: Family,
    ) -> &'c (
        wgpu::ShaderModule,
        wgpu::BindGroupLayout,
        wgpu::PipelineLayout,
    ) {
        cache.families.entry(family).or_insert_with(|| {
            let source = match family {
                Family::GlmGrad if self.subgroups => GLM_GRAD_WARPS,
                _ => family.source(),
            };
            let module = self
                .device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(&format!("{family:?}")),
                    source: wgpu::ShaderSource::Wgsl(self.tuning.block(family).source(source)),
                });
            let mut entries = vec![wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: self.tuning.block(family).binding(),
                    has_dynamic_offset: true,
                    min_binding_size: None,
                },
                count: None,
            }];
            for (i, &rw) in family.storage().iter().enumerate() {
                entries.push(wgpu::BindGroupLayoutEntry {
                    binding: i as u32 + 1,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage { read_only: !rw },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                });
            }
            let bgl = self
                .device
                .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(&format!("{family:?}")),
                    entries: &entries,
                });
            let layout = self
                .device
                .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: Some(&format!("{family:?}")),
                    bind_group_layouts: &[Some(&bgl)],
                    immediate_size: 0,
                });
            self.modules.fetch_add(1, Ordering::Relaxed);
            self.layouts.fetch_add(1, Ordering::Relaxed);
            (module, bgl, layout)
        })
    }
}
