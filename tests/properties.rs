//! Property tests of every parser: arbitrary input gives a value or an error,
//! never a panic; valid input round-trips.

use pada::backend::cpu::CpuBackend;
use pada::data::cifar::{parse_bytes, Variant};
use pada::data::idx::parse_idx;
use pada::space::nb201::{Genotype, Op, NUM_EDGES};
use proptest::prelude::*;

fn genotype() -> impl Strategy<Value = Genotype> {
    proptest::array::uniform6(0usize..5).prop_map(|ops| Genotype(ops.map(|i| Op::ALL[i])))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn nb201_strings_round_trip(g in genotype()) {
        let s = g.to_string();
        prop_assert_eq!(s.parse::<Genotype>().unwrap(), g);
        prop_assert_eq!(Genotype::from_index(g.index()).unwrap(), g);
        prop_assert_eq!(g.indices().len(), NUM_EDGES);
    }

    #[test]
    fn any_string_parses_or_errs(s in "\\\\PC{0,120}") {
        let _ = s.parse::<Genotype>();
    }

    #[test]
    fn edited_nb201_strings_parse_or_err(g in genotype(), cut in 0usize..120, insert in "[|~+a-z0-9_]{0,4}") {
        let mut s = g.to_string();
        let at = cut.min(s.len());
        s.insert_str(at, &insert);
        if let Ok(h) = s.parse::<Genotype>() {
            prop_assert_eq!(h.to_string().parse::<Genotype>().unwrap(), h);
        }
    }

    #[test]
    fn idx_parses_or_errs(bytes in proptest::collection::vec(any::<u8>(), 0..300), ndim in 0u8..4) {
        let _ = parse_idx(&bytes, ndim, "fuzz");
    }

    #[test]
    fn valid_idx_round_trips(n in 0u32..5, h in 1u32..6, w in 1u32..6, seed in any::<u8>()) {
        let payload: Vec<u8> = (0..n * h * w).map(|i| (i as u8).wrapping_mul(seed)).collect();
        let mut b = vec![0, 0, 8, 3];
        for d in [n, h, w] { b.extend_from_slice(&d.to_be_bytes()); }
        b.extend_from_slice(&payload);
        let (dims, data) = parse_idx(&b, 3, "x").unwrap();
        prop_assert_eq!(dims, vec![n as usize, h as usize, w as usize]);
        prop_assert_eq!(data, payload);
    }

    #[test]
    fn cifar_files_parse_or_err(bytes in proptest::collection::vec(any::<u8>(), 0..7000), pickle in any::<bool>(), hundred in any::<bool>()) {
        let v = if hundred { Variant::Cifar100 } else { Variant::Cifar10 };
        let _ = parse_bytes(&bytes, v, pickle, "fuzz");
        let _ = pada::data::imagenet16::parse_bytes(&bytes, "fuzz");
    }

    #[test]
    fn pickle_prefixes_parse_or_err(cut in 0usize..400, flip in any::<(usize, u8)>()) {
        // a valid protocol-2 pickle of a dict, cut and flipped
        let mut p = vec![0x80, 2, b'}', b'(', b'U', 4];
        p.extend_from_slice(b"data");
        p.extend_from_slice(b"T\x00\x0c\x00\x00");
        p.extend(std::iter::repeat_n(7u8, 3072));
        p.extend_from_slice(b"U\x06labels](K\x03eu.");
        prop_assert!(parse_bytes(&p, Variant::Cifar10, true, "ok").is_ok());
        let mut q = p[..cut.min(p.len())].to_vec();
        if !q.is_empty() { let i = flip.0 % q.len(); q[i] ^= flip.1; }
        let _ = parse_bytes(&q, Variant::Cifar10, true, "fuzz");
    }

    #[test]
    fn arch_tables_read_or_err(text in "[a-z_,|~+0-9.\\n\"]{0,300}") {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, &text).unwrap();
        let _ = pada::table::read_arch_table(&pada::table::TableSource::File(p.clone()), None, "acc");
        let _ = pada::table::read_archs(&p, None);
    }
}

/// A real weights file, then corrupted in every way proptest finds.
fn weights() -> Vec<u8> {
    let be = CpuBackend::<f32>::new();
    let cfg = pada::supernet::SupernetConfig::nb201_with(2, 1, 3, "1x8x8".parse().unwrap());
    let net = pada::supernet::Supernet::new(&be, cfg, 0).unwrap();
    pada::train::checkpoint::weights_bytes(&be, &net).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn safetensors_loading_succeeds_or_errs(cut in 0usize..20_000, flips in proptest::collection::vec(any::<(usize, u8)>(), 0..4)) {
        let be = CpuBackend::<f32>::new();
        let good = weights();
        prop_assert!(pada::train::checkpoint::load_weights(&be, &good, "ok").is_ok());
        let mut b = good[..cut.min(good.len())].to_vec();
        for (i, x) in flips {
            if !b.is_empty() { let n = b.len(); b[i % n] ^= x; }
        }
        let _ = pada::train::checkpoint::load_weights(&be, &b, "fuzz");
    }

    #[test]
    fn arbitrary_bytes_as_safetensors(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let be = CpuBackend::<f32>::new();
        let _ = pada::train::checkpoint::load_weights(&be, &bytes, "fuzz");
    }
}
