#![no_main]
//! Fuzz target: see `gradflow_fuzz::model`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| gradflow_fuzz::model(data));
