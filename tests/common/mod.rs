//! Shared by the test files: the GPU adapter (or a loud skip), random data, a scaled
//! comparison that names the first mismatches, and `.npy` files written by hand.
#![allow(dead_code)] // each test file uses its own subset

use std::io::Write;
use std::sync::OnceLock;

use gradflow::gpu::GpuContext;

/// Set to `1` to fail, instead of skipping, when there is no adapter.
pub const REQUIRE_ENV: &str = "GRADFLOW_REQUIRE_GPU";

/// A fresh context on the adapter, or `None` after one loud skip line.
///
/// # Panics
/// When there is no adapter and `GRADFLOW_REQUIRE_GPU=1`.
pub fn fresh_gpu(test: &str) -> Option<GpuContext> {
    match GpuContext::new() {
        Ok(ctx) => Some(ctx),
        Err(e) => {
            if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") {
                panic!("{test}: no GPU adapter and {REQUIRE_ENV}=1: {e}");
            }
            // Straight to stderr, not `eprintln!`: the test harness captures the macro's
            // output of passing tests, and a skip must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: no GPU adapter (set {REQUIRE_ENV}=1 to fail instead): {e}"
            );
            None
        }
    }
}

/// The context shared by a test binary (opened once; pipelines compile once).
pub fn gpu(test: &str) -> Option<GpuContext> {
    static CTX: OnceLock<Option<GpuContext>> = OnceLock::new();
    let ctx = CTX.get_or_init(|| {
        let ctx = GpuContext::new().ok();
        if let Some(c) = &ctx {
            let i = c.info();
            eprintln!(
                "GPU adapter: {} ({:?}, {:?}, driver {} {}), limits {:?}",
                i.name,
                i.backend,
                i.device_type,
                i.driver,
                i.driver_info,
                c.limits()
            );
        }
        ctx
    });
    match ctx {
        Some(c) => Some(c.clone()),
        None => fresh_gpu(test),
    }
}

/// A small seeded generator (SplitMix64): tests need reproducible inputs, not quality.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }

    /// `n` values uniform in [lo, hi).
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }

    /// Uniform integer in 0..n.
    pub fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }
}

/// Asserts `|g − c| ≤ max(rtol·max(|g|, |c|), atol)` element-wise (NaN always fails) and
/// prints the first mismatching indices with both values. Subnormal values count as zero
/// on both sides: WGSL lets a device flush them (NVIDIA's Vulkan driver does: σ′ of a
/// large |z| came back 0 where the CPU had 3e-45), and no result here depends on them.
pub fn assert_close(what: &str, gpu: &[f32], cpu: &[f32], rtol: f32, atol: f32) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths differ");
    let flush = |v: f32| if v.abs() < f32::MIN_POSITIVE { 0.0 } else { v };
    let bad: Vec<usize> = (0..gpu.len())
        .filter(|&i| {
            let (g, c) = (flush(gpu[i]), flush(cpu[i]));
            let tol = (rtol * g.abs().max(c.abs())).max(atol);
            // Written so that NaN (an unwritten, poisoned element) is a mismatch.
            (g - c).abs() > tol || g.is_nan() || c.is_nan()
        })
        .collect();
    if !bad.is_empty() {
        let first: Vec<String> = bad
            .iter()
            .take(5)
            .map(|&i| format!("[{i}] gpu {:e} cpu {:e}", gpu[i], cpu[i]))
            .collect();
        panic!(
            "{what}: {} of {} values differ (rtol {rtol:e}, atol {atol:e}); first: {}",
            bad.len(),
            gpu.len(),
            first.join(", ")
        );
    }
}

/// `base`'s features with column j multiplied by `scales[j]`, and real targets mapped by
/// `y ↦ a y + c`: raw data on unequal scales, from a well-scaled generator's.
pub fn rescaled(
    base: &gradflow::data::Dataset,
    scales: &[f32],
    target: Option<(f32, f32)>,
) -> gradflow::data::Dataset {
    use gradflow::data::{Dataset, Targets};
    let p = base.p();
    let x: Vec<f32> = base
        .features()
        .chunks_exact(p)
        .flat_map(|r| r.iter().zip(scales).map(|(v, s)| v * s).collect::<Vec<_>>())
        .collect();
    let targets = match (base.targets(), target) {
        (Targets::Real(y), Some((a, c))) => Targets::Real(y.iter().map(|v| a * v + c).collect()),
        (t, _) => t.clone(),
    };
    Dataset::new(x, p, targets).unwrap()
}

/// Writes a version-1.0 `.npy` file to `path` by the format's definition (not by the
/// crate's writer, so that the reader is tested against the format itself): magic,
/// version, header length, a Python-dict header padded with spaces to a multiple of 64
/// bytes, then `data` as given. `descr` is any dtype (`<f4`, `<f8`, `<i8`, or one the
/// reader refuses), `shape` any number of dimensions (a 1-D shape is written `(n,)`),
/// `fortran` the order `data` is in. Returns the path.
pub fn write_npy(
    path: &std::path::Path,
    descr: &str,
    fortran: bool,
    shape: &[usize],
    data: &[u8],
) -> std::path::PathBuf {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    std::fs::write(path, bytes).unwrap();
    path.to_path_buf()
}

/// The little-endian bytes of `v`: the data of a `<f4` `.npy` file.
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes a little-endian f32 `.npy` file (format version 1.0, C order) of `rows × cols`.
pub fn write_npy_f32(path: &std::path::Path, rows: usize, cols: usize, values: &[f32]) {
    write_npy(path, "<f4", false, &[rows, cols], &f32_bytes(values));
}
