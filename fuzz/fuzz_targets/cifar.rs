//! CIFAR-10/100 files, binary and Python pickle, and ImageNet16 batches: an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pada::data::cifar::{parse_bytes, Variant};

fuzz_target!(|data: &[u8]| {
    for v in [Variant::Cifar10, Variant::Cifar100] {
        for pickle in [false, true] {
            let _ = parse_bytes(data, v, pickle, "fuzz");
        }
    }
    let _ = pada::data::imagenet16::parse_bytes(data, "fuzz");
});
