//! The demo, what `gradflow` runs with no subcommand: the four models on seeded synthetic
//! data on the GPU (best adapter) and the CPU, checked against each other, in one table
//! (see [`gradflow::bench::demo`]).

use gradflow::bench::{self, DemoOptions};

use super::CliError;

/// Runs the demo on standard output.
///
/// # Errors
/// The first error of data generation or training; a GPU fit whose final loss differs
/// from the CPU's.
pub fn demo() -> Result<(), CliError> {
    let report = bench::demo(&mut std::io::stdout().lock(), DemoOptions::default())?;
    if report.all_agree() {
        Ok(())
    } else {
        Err(CliError::failed(
            "a GPU fit's final loss differs from the CPU's (see the table)",
            Some(
                "run `gradflow train --backend gpu --verify 1` on the model to find the step"
                    .into(),
            ),
        ))
    }
}
