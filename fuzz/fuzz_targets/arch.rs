//! NAS-Bench-201 strings: a genotype that round-trips, or an error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(g) = s.parse::<pada::arch::Genotype>() {
            assert_eq!(g.to_string().parse::<pada::arch::Genotype>().unwrap(), g);
        }
    }
});
