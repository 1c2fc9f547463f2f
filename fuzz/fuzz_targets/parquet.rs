#![no_main]
//! Fuzz target: see `gradflow_fuzz::parquet`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| gradflow_fuzz::parquet(data));
