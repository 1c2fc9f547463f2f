//! `gradflow info`: the GPU adapters wgpu finds, the one gradflow chooses, and the limits
//! that bound its shapes.

use clap::Args;
use gradflow::gpu::GpuContext;
use gradflow::gpu::context::ADAPTER_ENV;

use super::CliError;

/// `gradflow info`.
#[derive(Debug, Args)]
#[command(
    after_help = "GRADFLOW_ADAPTER picks an adapter by a part of its name \
(GRADFLOW_ADAPTER=llvmpipe) or by wgpu backend (vulkan, gl, metal, dx12)."
)]
pub struct InfoArgs {}

/// Runs `gradflow info`. A machine without adapters is reported, not an error.
///
/// # Errors
/// None today; the signature matches the other subcommands.
pub fn run(_args: &InfoArgs) -> Result<(), CliError> {
    println!("gradflow {}", env!("CARGO_PKG_VERSION"));
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    if adapters.is_empty() {
        println!("adapters: none found");
    } else {
        println!("adapters found by wgpu: {}", adapters.len());
    }
    for (i, a) in adapters.iter().enumerate() {
        let info = a.get_info();
        let l = a.limits();
        println!(
            "  [{i}] {} ({:?}, {:?}); driver {} {}",
            info.name, info.backend, info.device_type, info.driver, info.driver_info
        );
        println!(
            "      max buffer {} · max storage binding {} · workgroups per dimension {} · \
             workgroup memory {} · storage buffers per shader {}",
            bytes(l.max_buffer_size),
            bytes(l.max_storage_buffer_binding_size),
            l.max_compute_workgroups_per_dimension,
            bytes(u64::from(l.max_compute_workgroup_storage_size)),
            l.max_storage_buffers_per_shader_stage
        );
    }
    match std::env::var(ADAPTER_ENV) {
        Ok(v) => println!("{ADAPTER_ENV}={v}: picks the adapter matching \"{v}\""),
        Err(_) => println!("{ADAPTER_ENV} is not set: the high-performance adapter is chosen"),
    }
    match GpuContext::new() {
        Ok(ctx) => {
            let i = ctx.info();
            let l = ctx.limits();
            println!("chosen: {} ({:?}, {:?})", i.name, i.backend, i.device_type);
            println!(
                "  device limits: max buffer {} · max storage binding {} · workgroups per \
                 dimension {} · workgroup memory {} · storage buffers per shader {}",
                bytes(l.max_buffer_size),
                bytes(l.max_storage_buffer_binding_size),
                l.max_compute_workgroups_per_dimension,
                bytes(u64::from(l.max_compute_workgroup_storage_size)),
                l.max_storage_buffers_per_shader_stage
            );
            print_tuning(ctx.pipelines().tuning());
        }
        Err(e) => {
            println!("chosen: none ({e})");
            println!("  gradflow trains on the CPU (--backend cpu, or auto falls back to it)");
        }
    }
    Ok(())
}

/// `134217728` → `128 MiB (134217728 bytes)`.
/// The kernel variants chosen for the adapter, where they come from, and the times.
fn print_tuning(t: &gradflow::gpu::Tuning) {
    use gradflow::gpu::tune;
    let source = if tune::disabled() {
        format!("{}=off: the fixed defaults", tune::TUNE_ENV)
    } else {
        match tune::cache_path() {
            Some(p) => format!(
                "measured once for this adapter and driver, cached in {}",
                p.display()
            ),
            None => {
                "measured in this process (no cache directory: set XDG_CACHE_HOME or HOME)".into()
            }
        }
    };
    println!("  kernel tuning ({source}):");
    println!(
        "    parameter block: {:?} (per-op kernels), {:?} (many-step GLM) · many-step GLM: {:?} · \
         GLM gradient: {:?} · matrix products: {:?} register block · split sums: {:?} · \
         MLP step: {:?} · small MLPs: {}",
        t.per_op,
        t.many_step,
        t.glm_epoch,
        t.glm_grad,
        t.matmul,
        t.split,
        t.mlp,
        if t.mlp_many {
            "many steps a dispatch"
        } else {
            "step by step"
        }
    );
    for m in &t.measured {
        let time = m.ms.map_or_else(
            || "wrong results: not chosen".to_string(),
            |ms| format!("{ms:.2} ms"),
        );
        println!("    {:<17} {:<16} {time}", m.probe, m.candidate);
    }
}

fn bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let (mut v, mut u) = (b as f64, 0);
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} bytes")
    } else {
        format!("{v:.1} {} ({b} bytes)", UNITS[u])
    }
}
