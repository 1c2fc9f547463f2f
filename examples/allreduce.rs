//! The all-reduce a distributed fit runs once per step, timed alone over message sizes
//! from one value to a million: the latency α and the per-byte cost β of the cost model
//! in docs/SCALING.md. Feature `mpi`:
//!
//! ```text
//! cargo build --release --features mpi --example allreduce
//! mpiexec -n 2 target/release/examples/allreduce
//! ```

#[cfg(feature = "mpi")]
fn main() -> Result<(), gradflow::Error> {
    use gradflow::dist::{Comm, Mpi};
    use std::time::Instant;

    let (_universe, comm) = Mpi::init()?;
    if comm.rank() == 0 {
        println!("| values (f64) | bytes | median µs | GB/s |");
        println!("|---:|---:|---:|---:|");
    }
    for values in [1usize, 16, 256, 4_096, 65_536, 262_144, 1_048_576] {
        let mut buf = vec![1.0f64; values];
        let reps = (2_000_000 / values).clamp(20, 5_000);
        let mut times = Vec::with_capacity(reps);
        for _ in 0..reps {
            let t = Instant::now();
            comm.all_reduce_sum(&mut buf)?;
            times.push(t.elapsed().as_secs_f64());
            buf.fill(1.0);
        }
        times.sort_by(f64::total_cmp);
        let median = times[reps / 2];
        if comm.rank() == 0 {
            let bytes = values * 8;
            let rate = bytes as f64 / median / 1e9;
            println!("| {values} | {bytes} | {:.1} | {rate:.2} |", median * 1e6);
        }
    }
    Ok(())
}

#[cfg(not(feature = "mpi"))]
fn main() {
    eprintln!("build with --features mpi and run under mpiexec");
}
