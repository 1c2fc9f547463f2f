//! The device: adapter choice, the limits gradflow asks for, and error capture.
//!
//! The device is requested with the *adapter's* limits, not wgpu's defaults: the default
//! 128 MiB storage binding would cap a resident dataset at 32 M floats on a GPU that can
//! bind gigabytes. Every shape is checked against [`DeviceLimits`] before a GPU call, so
//! that a too-large request is an [`Error::DeviceLimit`], never a wgpu panic.

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

use super::pipelines::Pipelines;
use super::tune::Tuning;

/// The environment variable that picks an adapter: a substring of the adapter's name
/// (`llvmpipe`, `nvidia`) or a backend name (`vulkan`, `gl`, `metal`, `dx12`).
pub const ADAPTER_ENV: &str = "GRADFLOW_ADAPTER";

/// The device limits that bound gradflow's shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceLimits {
    /// Largest storage buffer binding, bytes: caps one resident tensor.
    pub max_storage_buffer_binding_size: u64,
    /// Largest buffer, bytes.
    pub max_buffer_size: u64,
    /// Largest workgroup count in one grid dimension.
    pub max_compute_workgroups_per_dimension: u32,
    /// Workgroup memory, bytes (the matmul tiles and reduction scratch live there).
    pub max_compute_workgroup_storage_size: u32,
    /// Alignment of dynamic uniform offsets, bytes (the parameter ring's slot stride).
    pub min_uniform_buffer_offset_alignment: u32,
    /// Alignment of dynamic storage offsets, bytes (the ring's stride when parameters
    /// are read from a storage buffer, [`ParamBlock::Storage`](super::ParamBlock)).
    pub min_storage_buffer_offset_alignment: u32,
    /// Storage buffers one shader may bind (the many-step GLM kernel binds 11).
    pub max_storage_buffers_per_shader_stage: u32,
    /// Whether kernels may use subgroup operations: the adapter has the `subgroups`
    /// feature and its subgroups hold at least [`MIN_SUBGROUP`] invocations (the fused
    /// GLM gradient's `Warps` variant shares a row among that many).
    pub subgroups: bool,
}

/// The smallest subgroup gradflow's subgroup kernels allow (`glm_grad_warps.wgsl`'s
/// `SG_LANES`).
pub const MIN_SUBGROUP: u32 = 8;

/// An open GPU device with its queue and pipeline cache. Cheap to clone (shared).
#[derive(Clone)]
pub struct GpuContext {
    inner: Arc<Inner>,
}

struct Inner {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: DeviceLimits,
    pipelines: Pipelines,
    /// A 4-byte storage buffer bound where a kernel's optional input is absent.
    dummy: wgpu::Buffer,
    scratch: wgpu::Buffer,
    /// The first error that no error scope caught, reported by [`GpuContext::check`].
    uncaptured: Arc<Mutex<Option<String>>>,
    /// Set by the device-lost callback: every later check fails with it.
    lost: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.inner.info.name)
            .field("backend", &self.inner.info.backend)
            .field("limits", &self.inner.limits)
            .finish()
    }
}

impl GpuContext {
    /// Opens the adapter chosen by `GRADFLOW_ADAPTER`, or the high-performance one.
    ///
    /// # Errors
    /// [`Error::NoAdapter`] when there is no adapter (or none matches the variable);
    /// [`Error::Device`] when the device cannot be opened.
    pub fn new() -> Result<Self> {
        pollster::block_on(Self::open(std::env::var(ADAPTER_ENV).ok()))
    }

    /// Opens the adapter whose name contains `filter`, or whose backend is `filter`
    /// (case-insensitive), or with `#N` hardware adapter N (modulo their number, each
    /// device counted once; see [`for_rank`]); `None` takes the high-performance adapter.
    ///
    /// # Errors
    /// As [`GpuContext::new`].
    pub fn with_adapter(filter: Option<&str>) -> Result<Self> {
        pollster::block_on(Self::open(filter.map(str::to_string)))
    }

    async fn open(filter: Option<String>) -> Result<Self> {
        let adapter = Self::adapter(filter).await?;
        let tuning = super::tune::for_adapter(&adapter)?;
        Self::open_with(&adapter, tuning).await
    }

    /// As [`GpuContext::with_adapter`], with the kernel variants `tuning` names instead
    /// of the adapter's measured ones (see [`super::tune`]): how tests pin a variant.
    ///
    /// # Errors
    /// As [`GpuContext::new`].
    pub fn with_tuning(filter: Option<&str>, tuning: Tuning) -> Result<Self> {
        pollster::block_on(async {
            let adapter = Self::adapter(filter.map(str::to_string)).await?;
            Self::open_with(&adapter, tuning).await
        })
    }

    /// The adapter `filter` names (see [`GpuContext::with_adapter`]).
    async fn adapter(filter: Option<String>) -> Result<wgpu::Adapter> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        let filter = filter.as_deref().map(str::trim).filter(|f| !f.is_empty());
        let adapter = match filter {
            Some(index) if index.starts_with('#') => {
                let adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
                let i: usize = index[1..].parse().map_err(|_| Error::NoAdapter {
                    hint: format!("{ADAPTER_ENV}={index}: expected #N, N a number"),
                })?;
                let mut gpus = hardware(adapters);
                if gpus.is_empty() {
                    return Box::pin(Self::adapter(None)).await;
                }
                let n = gpus.len();
                gpus.swap_remove(i % n)
            }
            Some(want) => {
                let adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
                let want = want.to_lowercase();
                let seen: Vec<String> = adapters
                    .iter()
                    .map(|a| {
                        let i = a.get_info();
                        format!("{} ({:?})", i.name, i.backend)
                    })
                    .collect();
                adapters
                    .into_iter()
                    .find(|a| {
                        let i = a.get_info();
                        i.name.to_lowercase().contains(&want)
                            || format!("{:?}", i.backend).to_lowercase() == want
                    })
                    .ok_or_else(|| Error::NoAdapter {
                        hint: format!("{ADAPTER_ENV}={want} matches none of [{}]", seen.join(", ")),
                    })?
            }
            None => instance
                .request_adapter(&wgpu::RequestAdapterOptions {
                    power_preference: wgpu::PowerPreference::HighPerformance,
                    // The real limits, not a fingerprint-proof bucket of them.
                    apply_limit_buckets: false,
                    ..Default::default()
                })
                .await
                .map_err(|e| Error::NoAdapter {
                    hint: e.to_string(),
                })?,
        };
        Ok(adapter)
    }

    /// Opens `adapter` with the kernel variants `tuning` names, as they are (no cache,
    /// no measurement): how the tuner tries each candidate, and how a test pins one.
    ///
    /// # Errors
    /// [`Error::Device`] when the device cannot be opened.
    pub async fn open_with(adapter: &wgpu::Adapter, mut tuning: Tuning) -> Result<Self> {
        let info = adapter.get_info();
        let wl = adapter.limits();
        let subgroups = adapter.features().contains(wgpu::Features::SUBGROUP)
            && info.subgroup_min_size >= MIN_SUBGROUP;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("gradflow"),
                required_limits: wl.clone(),
                required_features: if subgroups {
                    wgpu::Features::SUBGROUP
                } else {
                    wgpu::Features::empty()
                },
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Device {
                message: format!("opening {}: {e}", info.name),
            })?;
        // Errors outside a scope would otherwise panic inside wgpu; keep the first one
        // and report it as an `Error` at the next check.
        let uncaptured = Arc::new(Mutex::new(None::<String>));
        let sink = Arc::clone(&uncaptured);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut slot) = sink.lock() {
                slot.get_or_insert_with(|| e.to_string());
            }
        }));
        // A lost device (driver reset, GPU removed, destroyed) is final: remembered, and
        // reported by every later check instead of failing somewhere inside wgpu.
        let lost = Arc::new(Mutex::new(None::<String>));
        let flag = Arc::clone(&lost);
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut slot) = flag.lock() {
                slot.get_or_insert_with(|| {
                    format!("the GPU device was lost ({reason:?}): {message}")
                });
            }
        });
        let limits = DeviceLimits {
            max_storage_buffer_binding_size: wl.max_storage_buffer_binding_size,
            max_buffer_size: wl.max_buffer_size,
            max_compute_workgroups_per_dimension: wl.max_compute_workgroups_per_dimension,
            max_compute_workgroup_storage_size: wl.max_compute_workgroup_storage_size,
            min_uniform_buffer_offset_alignment: wl.min_uniform_buffer_offset_alignment,
            min_storage_buffer_offset_alignment: wl.min_storage_buffer_offset_alignment,
            max_storage_buffers_per_shader_stage: wl.max_storage_buffers_per_shader_stage,
            subgroups,
        };
        let dummy = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("unused optional input"),
            // One vec4: a binding read as array<vec4<f32>> must hold one element.
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        // A writable stand-in must be a different buffer from `dummy`: one dispatch may bind
        // both (an absent index, read-only, and an absent halt flag, read-write), and a
        // buffer cannot be read-only and read-write in the same dispatch.
        let scratch = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("unused optional output"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        // A choice this device cannot run (a cache written by a device opened with
        // subgroups, a test's pin) falls back to the default's.
        if !tuning.glm_grad.runs_on(&limits) {
            tuning.glm_grad = Tuning::default().glm_grad;
        }
        let pipelines = Pipelines::new(device.clone(), tuning, subgroups);
        Ok(GpuContext {
            inner: Arc::new(Inner {
                device,
                queue,
                info,
                limits,
                pipelines,
                dummy,
                scratch,
                uncaptured,
                lost,
            }),
        })
    }

    /// The adapter's name, backend, driver, device type.
    pub fn info(&self) -> &wgpu::AdapterInfo {
        &self.inner.info
    }

    /// The limits the device was opened with (the adapter's own).
    pub fn limits(&self) -> &DeviceLimits {
        &self.inner.limits
    }

    /// The wgpu device.
    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }

    /// The pipeline cache.
    pub fn pipelines(&self) -> &Pipelines {
        &self.inner.pipelines
    }

    pub(crate) fn dummy(&self) -> &wgpu::Buffer {
        &self.inner.dummy
    }

    /// A small writable buffer for an absent optional output (never read back).
    pub(crate) fn scratch(&self) -> &wgpu::Buffer {
        &self.inner.scratch
    }

    /// Checks that a binding of `bytes` fits the device.
    ///
    /// # Errors
    /// [`Error::DeviceLimit`] beyond `max_storage_buffer_binding_size` or `max_buffer_size`.
    pub fn check_binding(&self, bytes: u64) -> Result<()> {
        let l = &self.inner.limits;
        if bytes > l.max_buffer_size {
            return Err(Error::DeviceLimit {
                what: "buffer bytes",
                requested: bytes,
                limit: l.max_buffer_size,
            });
        }
        if bytes > l.max_storage_buffer_binding_size {
            return Err(Error::DeviceLimit {
                what: "storage buffer binding bytes",
                requested: bytes,
                limit: l.max_storage_buffer_binding_size,
            });
        }
        Ok(())
    }

    /// Runs `f` under validation and out-of-memory error scopes: a wgpu error raised by
    /// its GPU calls comes back as [`Error::Device`] (prefixed with `what`).
    ///
    /// # Errors
    /// [`Error::Device`] for a caught wgpu error, or one no scope caught earlier.
    pub fn scoped<T>(&self, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        // Nothing is recorded on a device known to be lost.
        self.check()?;
        let device = &self.inner.device;
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = v.or(o) {
            return Err(Error::Device {
                message: format!("{what}: {e}"),
            });
        }
        self.check()?;
        out
    }

    /// Reports a lost device (always, once lost), or (once) an error that no error scope
    /// caught.
    ///
    /// # Errors
    /// [`Error::Device`] with the loss's or that error's message.
    pub fn check(&self) -> Result<()> {
        let lost = self.inner.lost.lock().ok().and_then(|s| s.clone());
        if let Some(message) = lost {
            return Err(Error::Device { message });
        }
        let taken = self.inner.uncaptured.lock().ok().and_then(|mut s| s.take());
        match taken {
            Some(message) => Err(Error::Device { message }),
            None => Ok(()),
        }
    }

    /// A zeroed storage buffer of `len` values of 4 bytes, copyable both ways.
    ///
    /// # Errors
    /// [`Error::DeviceLimit`] when it cannot be bound; [`Error::Device`] on allocation
    /// failure.
    pub fn storage(&self, label: &str, len: usize) -> Result<wgpu::Buffer> {
        let bytes = (len.max(1) as u64).saturating_mul(4);
        self.check_binding(bytes)?;
        self.scoped("allocating a storage buffer", || {
            Ok(self.inner.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }))
        })
    }

    /// A storage buffer holding `data` (any 4-byte plain values: `f32`, `u32`).
    ///
    /// # Errors
    /// As [`GpuContext::storage`].
    pub fn upload<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> Result<wgpu::Buffer> {
        let buf = self.storage(label, data.len())?;
        self.write(&buf, data);
        Ok(buf)
    }

    /// Queues a write of `data` at the start of `buf` (done before the next submission).
    /// A large write (a resident dataset: 256 MB for W1–W4) is copied into the staging
    /// memory by every core, 4 MiB a task, rather than by this thread alone (not yet
    /// timed on a GPU: an H200 fit's set-up, this copy included, was ~0.1 s).
    pub fn write<T: bytemuck::Pod>(&self, buf: &wgpu::Buffer, data: &[T]) {
        use rayon::prelude::*;
        const PARALLEL_BYTES: usize = 16 << 20;
        const TASK_BYTES: usize = 4 << 20;
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let queue = &self.inner.queue;
        let size = wgpu::BufferSize::new(bytes.len() as u64);
        let view = size
            .filter(|_| bytes.len() >= PARALLEL_BYTES)
            .and_then(|size| queue.write_buffer_with(buf, 0, size));
        let Some(mut view) = view else {
            // Small, or refused (wgpu has reported why): the plain path, which reports
            // the same.
            if !bytes.is_empty() {
                queue.write_buffer(buf, 0, bytes);
            }
            return;
        };
        // Whole 4 MiB arrays (a sized part of the view is `Send`; a slice of it is not),
        // then the rest here.
        let (tasks, mut rest) = view.slice(..).into_chunks::<TASK_BYTES>();
        let tasks: Vec<_> = tasks.into_iter().collect();
        let whole = tasks.len() * TASK_BYTES;
        tasks
            .into_par_iter()
            .zip(bytes[..whole].par_chunks_exact(TASK_BYTES))
            .for_each(|(dst, src)| wgpu::WriteOnly::<[u8]>::from(dst).copy_from_slice(src));
        rest.copy_from_slice(&bytes[whole..]);
        // Dropping the view schedules its copy into `buf`.
        drop(view);
    }
}

/// The context rank `rank` of a distributed fit trains on: hardware adapter `rank mod N`
/// of the N this machine has (so `mpiexec -n N` on a machine with N GPUs puts one rank on
/// each), or the one `GRADFLOW_ADAPTER` names for every rank when it is set; built once
/// per rank and process.
///
/// # Errors
/// As [`GpuContext::new`].
pub fn for_rank(rank: usize) -> Result<GpuContext> {
    if std::env::var_os(ADAPTER_ENV).is_some() {
        return shared();
    }
    static BY_RANK: Mutex<Vec<(usize, Result<GpuContext>)>> = Mutex::new(Vec::new());
    let mut opened = BY_RANK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, ctx)) = opened.iter().find(|(r, _)| *r == rank) {
        return ctx.clone();
    }
    let ctx = GpuContext::with_adapter(Some(&format!("#{rank}")));
    opened.push((rank, ctx.clone()));
    ctx
}

/// The hardware adapters (not software ones, as llvmpipe), each device once: the first
/// backend wgpu lists it under (Vulkan before GL), in wgpu's order.
fn hardware(adapters: Vec<wgpu::Adapter>) -> Vec<wgpu::Adapter> {
    let mut seen = Vec::new();
    adapters
        .into_iter()
        .filter(|a| {
            let i = a.get_info();
            let device = (i.vendor, i.device, i.name.clone());
            let new = i.device_type != wgpu::DeviceType::Cpu && !seen.contains(&device);
            seen.push(device);
            new
        })
        .collect()
}

/// The process-wide context that training uses unless given one: opened on first use
/// (adapter choice as [`GpuContext::new`]) and shared by every fit, so that device,
/// pipelines and shader modules are built once per process, not once per fit.
///
/// # Errors
/// The error of the first attempt, every time ([`Error::NoAdapter`] on a machine
/// without one): the adapter set does not change while the process runs.
pub fn shared() -> Result<GpuContext> {
    static SHARED: std::sync::OnceLock<Result<GpuContext>> = std::sync::OnceLock::new();
    SHARED.get_or_init(GpuContext::new).clone()
}
