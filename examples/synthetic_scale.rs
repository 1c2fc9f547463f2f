//! Times the synthetic generator: 10⁷ × 64 rows (2.56 GB of f32) by default.
//!
//! Run with `cargo run --release --example synthetic_scale [rows]`.

use std::time::Instant;

use gradflow::data::Synthetic;

fn main() -> gradflow::Result<()> {
    let rows = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000usize);
    let t = Instant::now();
    let data = Synthetic::linear(rows, 64).seed(1).dataset()?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{} × {} rows in {secs:.2} s: {:.1} M rows/s, {:.2} GB/s of features",
        data.n(),
        data.p(),
        rows as f64 / secs / 1e6,
        (rows * 64 * 4) as f64 / secs / 1e9
    );
    Ok(())
}
