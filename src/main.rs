//! `gradflow`: with no arguments, the demo. Trains the four models on seeded synthetic
//! data on the GPU and with the CPU reference kernels, checks that they agree and prints
//! a table of loss, quality and speed (see [`gradflow::bench::demo`]).

use std::process::ExitCode;

use gradflow::Result;
use gradflow::bench::{self, DemoOptions};

fn main() -> ExitCode {
    match demo() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!(
                "gradflow: error: a GPU fit's final loss differs from the CPU's (see the table)"
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("gradflow: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the demo on standard output; `false` when a GPU fit disagrees with the CPU.
fn demo() -> Result<bool> {
    let report = bench::demo(&mut std::io::stdout().lock(), DemoOptions::default())?;
    Ok(report.all_agree())
}
