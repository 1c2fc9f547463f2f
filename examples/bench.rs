//! The benchmark workloads W1–W5 on the CPU and the GPU: prints the markdown table and
//! writes `target/bench.json` and (feature `cli`, on by default) `target/bench.png`.
//!
//! ```text
//! cargo run --release --example bench -- [--quick] [--sweep] [--cpu | --gpu]
//!     [--scale X] [--repeats N] [--workloads W1,W3]
//! ```
//!
//! `--quick` scales the rows down (CI: about a minute on 2 cores with a software GPU);
//! `--sweep` adds batch sizes 1, 32, 256, 4096 and full for W1–W3. Progress goes to
//! standard error.

use gradflow::bench::{self, Backends, BenchOptions, Workload};
use gradflow::{Error, Result};

fn parse_args() -> Result<BenchOptions> {
    let mut opts = BenchOptions::default();
    let mut args = std::env::args().skip(1);
    let bad = |name: &'static str, v: String, expected: &'static str| Error::InvalidParameter {
        name,
        value: v,
        expected,
    };
    while let Some(a) = args.next() {
        let mut value = |name: &'static str| {
            args.next()
                .ok_or_else(|| bad(name, "nothing".into(), "needs a value after it"))
        };
        match a.as_str() {
            "--quick" => {
                opts.quick = true;
                opts.repeats = 1;
            }
            "--sweep" => opts.sweep = true,
            "--cpu" => opts.backends = Backends::Cpu,
            "--gpu" => opts.backends = Backends::Gpu,
            "--scale" => {
                let v = value("--scale")?;
                opts.scale = v
                    .parse()
                    .map_err(|_| bad("--scale", v, "must be a number"))?;
            }
            "--repeats" => {
                let v = value("--repeats")?;
                opts.repeats = v
                    .parse()
                    .map_err(|_| bad("--repeats", v, "must be a count"))?;
            }
            "--workloads" => {
                opts.workloads = value("--workloads")?
                    .split(',')
                    .map(str::parse::<Workload>)
                    .collect::<Result<_>>()?;
            }
            _ => {
                return Err(bad(
                    "argument",
                    a,
                    "must be --quick, --sweep, --cpu, --gpu, --scale X, --repeats N or --workloads W1,W2",
                ));
            }
        }
    }
    Ok(opts)
}

fn main() -> Result<()> {
    let opts = parse_args()?;
    let report = bench::run(&opts, &mut std::io::stderr())?;
    println!("{}", report.markdown());
    let io = |path: &str, e: std::io::Error| Error::Io {
        path: path.into(),
        message: e.to_string(),
    };
    std::fs::create_dir_all("target").map_err(|e| io("target", e))?;
    std::fs::write("target/bench.json", report.to_json()?)
        .map_err(|e| io("target/bench.json", e))?;
    eprintln!("wrote target/bench.json");
    #[cfg(feature = "cli")]
    {
        bench::plot(&report, "target/bench.png".as_ref())?;
        eprintln!("wrote target/bench.png");
    }
    Ok(())
}
