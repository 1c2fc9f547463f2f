//! `gradflow bench`: the benchmark workloads W1–W5 on each backend in one run — a
//! markdown table on standard output, the JSON report and the plot written to files.

use std::path::PathBuf;

use clap::Args;
use gradflow::bench::{self, Backends, BenchOptions, Workload};

use super::CliError;

/// Arguments of `gradflow bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Scale every workload down (rows × 0.01): a smoke run, about 20 s on 2 cores.
    #[arg(long)]
    quick: bool,
    /// Add batch sizes 1, 32, 256, 4096 and full for W1–W3 (the crossover search).
    #[arg(long)]
    sweep: bool,
    /// Which backends: cpu, gpu or both.
    #[arg(long, default_value = "both")]
    backend: Backends,
    /// Workloads to run, comma-separated (W1,W2,W3,W4,W5).
    #[arg(long, value_delimiter = ',', default_values_t = Workload::ALL)]
    workloads: Vec<Workload>,
    /// Row multiplier on top of --quick.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Runs per point (the median is reported; repeated only while a run is short).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Where the JSON report goes.
    #[arg(long, default_value = "bench.json")]
    json: PathBuf,
    /// Where the plot (samples/s by batch size, CPU against GPU) goes.
    #[arg(long, default_value = "bench.png")]
    plot: PathBuf,
    /// Print the GPU cost model instead of running: each workload's step (dispatches,
    /// submissions, workgroups, bytes, work, host waits) and its predicted time on an
    /// H100, an H200 and lavapipe, with the bound each hits.
    #[arg(long)]
    explain: bool,
    /// Time each kernel of the training steps alone on the GPU instead (the MLP step's at
    /// batch 256, the full-batch gradient's variants at W4's 10⁶ × 64, or 65,536 rows
    /// with --quick, the many-step GLM kernel per step, a host round trip, W4's fit with
    /// 0, 1 and 2 epochs queued ahead, W3's and W4's set-up on a fresh device and
    /// again): where a step's time goes on this adapter.
    #[arg(long, conflicts_with = "explain")]
    kernels: bool,
}

/// Runs the workloads, prints the table, writes the report and the plot.
///
/// # Errors
/// Bad options; a workload's error; a file that cannot be written.
pub fn run(args: &BenchArgs) -> Result<(), CliError> {
    if args.explain {
        print!("{}", gradflow::bench::cost::explain());
        return Ok(());
    }
    if args.kernels {
        let ctx = gradflow::gpu::shared()?;
        let rows = if args.quick { 65_536 } else { 1_000_000 };
        let rows = ((rows as f64 * args.scale) as usize).max(256);
        let mut times = gradflow::gpu::profile::kernel_times(&ctx, rows)?;
        times.extend(bench::epochs_ahead_times(&ctx, rows)?);
        times.extend(bench::setup_times(&ctx, rows)?);
        print!("{}", gradflow::gpu::profile::markdown(&ctx, &times));
        return Ok(());
    }
    let opts = BenchOptions {
        quick: args.quick,
        sweep: args.sweep,
        backends: args.backend,
        workloads: args.workloads.clone(),
        scale: args.scale,
        repeats: if args.quick { 1 } else { args.repeats },
        ..BenchOptions::default()
    };
    // Progress goes to standard error, the table to standard output.
    let report = bench::run(&opts, &mut std::io::stderr())?;
    println!("{}", report.markdown());
    gradflow::io::write_atomic(&args.json, report.to_json()?.as_bytes())?;
    eprintln!("wrote {}", args.json.display());
    match bench::plot(&report, &args.plot) {
        Ok(()) => eprintln!("wrote {}", args.plot.display()),
        // A CPU-only run of W4/W5 has no curve to draw: say so, keep the table.
        Err(gradflow::Error::Empty { detail, .. }) => eprintln!("no plot: {detail}"),
        Err(e) => return Err(e.into()),
    }
    if !report.disagreements().is_empty() {
        return Err(CliError::failed(
            "a GPU fit's final loss differs from the CPU's (see the table's last column)",
            None,
        ));
    }
    Ok(())
}
