#![no_main]
//! Fuzz target: see `gradflow_fuzz::csv`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| gradflow_fuzz::csv(data));
