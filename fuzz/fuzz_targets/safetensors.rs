//! Weights and checkpoints: an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pada::backend::cpu::CpuBackend;

fuzz_target!(|data: &[u8]| {
    let be = CpuBackend::<f32>::new();
    let _ = pada::train::checkpoint::load_weights(&be, data, "fuzz");
});
