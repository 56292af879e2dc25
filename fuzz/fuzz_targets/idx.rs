//! IDX files (MNIST, Fashion-MNIST), gzipped or not: an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(bytes) = pada::data::idx::maybe_gunzip(data.to_vec(), "fuzz") {
        for ndim in [1, 3] {
            let _ = pada::data::idx::parse_idx(&bytes, ndim, "fuzz");
        }
    }
});
