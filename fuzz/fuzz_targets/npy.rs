#![no_main]
//! Fuzz target: see `gradflow_fuzz::npy`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| gradflow_fuzz::npy(data));
