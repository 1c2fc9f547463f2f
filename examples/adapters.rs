//! Lists the GPU adapters wgpu finds, and the one gradflow would choose.
//!
//! Run with `cargo run --release --example adapters`. `GRADFLOW_ADAPTER=gl` (or a part of
//! an adapter's name, or `vulkan`) picks another.

fn main() {
    for filter in [None, Some("vulkan"), Some("gl")] {
        match gradflow::gpu::GpuContext::with_adapter(filter) {
            Ok(ctx) => {
                let i = ctx.info();
                println!(
                    "{:<8} → {} ({:?}, {:?}); {:?}",
                    filter.unwrap_or("default"),
                    i.name,
                    i.backend,
                    i.device_type,
                    ctx.limits()
                );
            }
            Err(e) => println!("{:<8} → {e}", filter.unwrap_or("default")),
        }
    }
}
