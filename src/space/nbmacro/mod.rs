//! NAS-Bench-Macro (Su et al., "Prioritized Architecture Sampling with
//! Monte-Carlo Tree Search", CVPR 2021): a chain of 8 layers in 3 stages of 2,
//! 3 and 3, each layer one of 3 blocks: identity (a strided 1x1 conv where the
//! layer changes size), a MobileNetV2 inverted residual with kernel 3 and
//! expansion 3, or one with kernel 5 and expansion 6. An architecture is an
//! 8-digit string, layer 1 first (`02012100`): 6,561 strings, 3,969 distinct
//! networks (identities inside a stage can move to its end).

pub mod supernet;

use std::fmt;

use super::{RunSize, SearchSpace, MAX_SLOTS};
use crate::data::{DataSpec, KnownData};
use crate::supernet::SupernetConfig;
use crate::table::{BuiltInTable, TableSource};

/// `nbmacro:cifar10`: the benchmark's CIFAR-10 accuracies of all 6,561
/// strings (each stand-alone network trained with three seeds: their mean and
/// each), parameter counts and FLOPs (data/nbmacro/README.md).
pub static TABLE_CIFAR10: BuiltInTable = BuiltInTable {
    name: "nbmacro:cifar10",
    bytes: include_bytes!("../../../data/nbmacro/cifar10.csv.gz"),
    gzipped: true,
    default_column: "test_accuracy",
    data: KnownData::Cifar10,
    ground_truth: true,
    setting: "",
    proxies: Some(&TABLE_PROXIES_CIFAR10),
};

/// `nbmacro-proxies:cifar10`: the verdict's default sample of 1,000 distinct
/// networks' parameter count, FLOPs and zero-cost proxies at the benchmark's
/// size (C=32, batch 64; data/nbmacro/README.md).
pub static TABLE_PROXIES_CIFAR10: BuiltInTable = BuiltInTable {
    name: "nbmacro-proxies:cifar10",
    bytes: include_bytes!("../../../data/nbmacro/proxies_cifar10.csv.gz"),
    gzipped: true,
    default_column: "synflow",
    data: KnownData::Cifar10,
    ground_truth: false,
    setting: "C=32",
    proxies: None,
};

/// `--preset laptop`: the benchmark's network at a quarter of its width
/// (stem 8, head 320), chosen by measurement on CIFAR-10 (README,
/// "NAS-Bench-Macro") so that training and the verdict on 1,000 networks
/// take at most 20 minutes on 2 cores.
pub const LAPTOP: RunSize = RunSize { epochs: 10, batch_size: 64, channels: 8, cells: 0 };

/// The space's description ([`super::Space::NB_MACRO`]).
pub struct NbMacro;

pub static SPACE: NbMacro = NbMacro;

/// Layers of an architecture.
pub const LAYERS: usize = 8;
/// Layers per stage; the first of each has stride 2 and doubles the channels.
pub const STAGES: [usize; 3] = [2, 3, 3];
/// The blocks, by digit.
pub const BLOCKS: [&str; 3] = ["identity", "mbconv_k3_e3", "mbconv_k5_e6"];
/// Kernel size and expansion of the MobileNetV2 blocks (digits 1 and 2).
pub const MBCONV: [(usize, usize); 2] = [(3, 3), (5, 6)];

/// Whether layer `l` opens a stage (stride 2, twice the channels).
pub fn opens_stage(l: usize) -> bool {
    let mut first = 0;
    STAGES.iter().any(|&n| {
        let hit = l == first;
        first += n;
        hit
    })
}

impl SearchSpace for NbMacro {
    fn name(&self) -> &'static str {
        "nb-macro"
    }
    fn title(&self) -> &'static str {
        "NAS-Bench-Macro"
    }
    fn slot_name(&self) -> &'static str {
        "layer"
    }
    fn slots(&self) -> usize {
        LAYERS
    }
    fn choices(&self) -> usize {
        BLOCKS.len()
    }
    fn choice_names(&self) -> &'static [&'static str] {
        &BLOCKS
    }
    fn example(&self) -> &'static str {
        "02012100"
    }
    fn parse(&self, s: &str) -> Result<Vec<u8>, String> {
        if s.chars().count() != LAYERS {
            return Err(format!("{} characters, expected {LAYERS} digits (one per layer, each 0, 1 or 2)", s.chars().count()));
        }
        s.chars()
            .enumerate()
            .map(|(l, ch)| match ch {
                '0'..='2' => Ok(ch as u8 - b'0'),
                _ => Err(format!("layer {}'s digit {ch:?} is not 0 (identity), 1 (MBConv k3 e3) or 2 (MBConv k5 e6)", l + 1)),
            })
            .collect()
    }
    fn looks_like(&self, s: &str) -> bool {
        !s.is_empty() && s.chars().all(|c| c.is_ascii_digit())
    }
    fn format(&self, choices: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
        choices.iter().try_for_each(|&c| write!(f, "{c}"))
    }
    /// The benchmark's classes: inside each stage, after its first layer, the
    /// identities move to the stage's end (an identity there changes nothing
    /// but where the next block sits); 3,969 classes.
    fn canonical(&self, choices: &[u8]) -> String {
        let mut out = String::with_capacity(LAYERS);
        let mut first = 0;
        for &n in &STAGES {
            let stage = &choices[first..first + n];
            out.push((b'0' + stage[0]) as char);
            let rest = &stage[1..];
            rest.iter().filter(|&&c| c != 0).chain(rest.iter().filter(|&&c| c == 0)).for_each(|&c| out.push((b'0' + c) as char));
            first += n;
        }
        out
    }
    /// Every layer an identity; every layer the k5 e6 block.
    fn extremes(&self) -> ([u8; MAX_SLOTS], [u8; MAX_SLOTS]) {
        let mut large = [0u8; MAX_SLOTS];
        large[..LAYERS].fill(2);
        ([0u8; MAX_SLOTS], large)
    }
    fn validate(&self, config: &SupernetConfig) -> anyhow::Result<()> {
        anyhow::ensure!(config.channels > 0, "--channels (the stem's width; the benchmark's network has 32) must be at least 1");
        anyhow::ensure!(
            config.cells == 0,
            "--cells does not apply to --space nb-macro (its 8 layers in 3 stages are fixed); set the width with --channels"
        );
        Ok(())
    }
    /// Laptop: [`LAPTOP`]; official: the benchmark's full width (C=32), batch
    /// 256, 250 epochs on CIFAR and image folders (10 on the small data sets).
    fn run_size(&self, official: bool, data: &DataSpec) -> RunSize {
        match official {
            false => LAPTOP,
            true => RunSize { epochs: if data.is_small() { 10 } else { 250 }, batch_size: 256, channels: 32, cells: 0 },
        }
    }
    /// NAS-Bench-Macro's table of CIFAR-10 (its only data set).
    fn benchmark(&self, data: &DataSpec) -> Option<TableSource> {
        (data.known()? == KnownData::Cifar10).then_some(TableSource::BuiltIn(&TABLE_CIFAR10))
    }
    fn tables(&self) -> &'static [&'static BuiltInTable] {
        static TABLES: [&BuiltInTable; 2] = [&TABLE_CIFAR10, &TABLE_PROXIES_CIFAR10];
        &TABLES
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::{Arch, Space};

    #[test]
    fn strings_and_classes() {
        let a = Arch::parse_in(Space::NB_MACRO, "02012100").unwrap();
        assert_eq!(a.choices(), &[0, 2, 0, 1, 2, 1, 0, 0]);
        assert_eq!(a.to_string(), "02012100");
        assert_eq!(a.canonical(), "02012100", "no identity after a stage's first layer: its own class");
        // stage 2 = 102: the identity after its first layer moves to the stage's end
        assert_eq!(Arch::parse_in(Space::NB_MACRO, "02102100").unwrap().canonical(), "02120100");
        let classes: std::collections::HashSet<String> = Space::NB_MACRO.all().map(|a| a.canonical()).collect();
        assert_eq!((Space::NB_MACRO.num_archs(), classes.len()), (6561, 3969));
        assert_eq!((0..LAYERS).filter(|&l| opens_stage(l)).collect::<Vec<_>>(), [0, 2, 5]);
        for bad in ["0201210", "020121000", "02012103", "0201210x", ""] {
            assert!(Arch::parse_in(Space::NB_MACRO, bad).is_err(), "{bad}");
        }
    }
}
