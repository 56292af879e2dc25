//! NAS-Bench-201 (Dong & Yang, ICLR 2020): cells of 4 nodes and 6 edges, each
//! edge one of 5 ops; the same cell repeated through the network. 15,625
//! architectures, 6,466 isomorphism classes.

pub mod arch;
pub mod supernet;

pub use arch::{CellPlan, Genotype, Op, EDGES, NUM_ARCHS, NUM_EDGES};

use std::fmt;

use super::{RunSize, SearchSpace, MAX_SLOTS};
use crate::data::{DataSpec, KnownData};
use crate::supernet::SupernetConfig;
use crate::table::{BuiltInTable, TableSource};

/// NATS-Bench's 200-epoch test accuracies of all 15,625 architectures
/// (data/nb201/README.md): one file, a column per data set.
const TEST_ACCURACY: &[u8] = include_bytes!("../../../data/nb201/test_accuracy.csv.gz");

/// `nb201:cifar10`, `nb201:cifar100`, `nb201:imagenet16`.
pub static TABLE_CIFAR10: BuiltInTable = BuiltInTable {
    name: "nb201:cifar10",
    bytes: TEST_ACCURACY,
    gzipped: true,
    default_column: "cifar10",
    data: KnownData::Cifar10,
    ground_truth: true,
    setting: "",
    proxies: Some(&TABLE_PROXIES_CIFAR10),
};
pub static TABLE_CIFAR100: BuiltInTable = BuiltInTable {
    name: "nb201:cifar100",
    bytes: TEST_ACCURACY,
    gzipped: true,
    default_column: "cifar100",
    data: KnownData::Cifar100,
    ground_truth: true,
    setting: "",
    proxies: None,
};
pub static TABLE_IMAGENET16: BuiltInTable = BuiltInTable {
    name: "nb201:imagenet16",
    bytes: TEST_ACCURACY,
    gzipped: true,
    default_column: "imagenet16",
    data: KnownData::Imagenet16,
    ground_truth: true,
    setting: "",
    proxies: None,
};
/// `nb201-proxies:cifar10`: parameter count, FLOPs and zero-cost proxies of
/// 8,882 architectures (the verdict's default sample and more) at the
/// proxies' reference setting, C=16 N=5 (data/nb201/README.md).
pub static TABLE_PROXIES_CIFAR10: BuiltInTable = BuiltInTable {
    name: "nb201-proxies:cifar10",
    bytes: include_bytes!("../../../data/nb201/proxies_cifar10.csv.gz"),
    gzipped: true,
    default_column: "synflow",
    data: KnownData::Cifar10,
    ground_truth: false,
    setting: "C=16 N=5",
    proxies: None,
};
/// `embedded`: stand-alone accuracies of 120 architectures trained on the
/// embedded data (data/embedded/ground_truth.md).
pub static TABLE_EMBEDDED: BuiltInTable = BuiltInTable {
    name: "embedded",
    bytes: include_bytes!("../../../data/embedded/ground_truth.csv"),
    gzipped: false,
    default_column: "test_accuracy",
    data: KnownData::Embedded,
    ground_truth: true,
    setting: "",
    proxies: None,
};

/// On the embedded data: C=8, N=1, chosen by measurement (README, "The first
/// command") so that `pada train` trains and ranks the embedded ground truth
/// in about two minutes on 2 cores.
pub const EMBEDDED: RunSize = RunSize { epochs: 16, batch_size: 64, channels: 8, cells: 1 };

/// `--preset laptop` on other data: chosen by measurement on CIFAR-10 (README,
/// "The paper's benchmark on a laptop") so that training and the verdict on
/// 1,000 architectures take about 10 minutes on 2 cores.
pub const LAPTOP: RunSize = RunSize { epochs: 10, batch_size: 64, channels: 8, cells: 1 };

/// The space's description ([`super::Space::NB201`]).
pub struct Nb201;

pub static SPACE: Nb201 = Nb201;

const OP_NAMES: [&str; Op::COUNT] = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"];

impl SearchSpace for Nb201 {
    fn name(&self) -> &'static str {
        "nb201"
    }
    fn title(&self) -> &'static str {
        "NAS-Bench-201"
    }
    fn slot_name(&self) -> &'static str {
        "edge"
    }
    fn slots(&self) -> usize {
        NUM_EDGES
    }
    fn choices(&self) -> usize {
        Op::COUNT
    }
    fn choice_names(&self) -> &'static [&'static str] {
        &OP_NAMES
    }
    fn example(&self) -> &'static str {
        arch::EXAMPLE
    }
    fn parse(&self, s: &str) -> Result<Vec<u8>, String> {
        arch::parse(s).map(|g| g.0.iter().map(|&op| op as u8).collect())
    }
    fn looks_like(&self, s: &str) -> bool {
        s.starts_with('|') || s.contains('~')
    }
    fn format(&self, choices: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Genotype(std::array::from_fn(|e| Op::ALL[choices[e] as usize])), f)
    }
    fn canonical(&self, choices: &[u8]) -> String {
        Genotype(std::array::from_fn(|e| Op::ALL[choices[e] as usize])).unique_string()
    }
    /// Every edge a skip (no weights but the stem's, the reduction blocks' and
    /// the classifier's), every edge a 3x3 conv.
    fn extremes(&self) -> ([u8; MAX_SLOTS], [u8; MAX_SLOTS]) {
        let mut small = [0u8; MAX_SLOTS];
        let mut large = [0u8; MAX_SLOTS];
        small[..NUM_EDGES].fill(Op::SkipConnect as u8);
        large[..NUM_EDGES].fill(Op::NorConv3x3 as u8);
        (small, large)
    }
    fn validate(&self, config: &SupernetConfig) -> anyhow::Result<()> {
        supernet::validate(config)
    }
    /// Laptop: [`EMBEDDED`] or [`LAPTOP`]; official: the paper's C=16, N=5,
    /// batch 256, 250 epochs on CIFAR, ImageNet16 and image folders (10 on
    /// the small data sets).
    fn run_size(&self, official: bool, data: &DataSpec) -> RunSize {
        match (official, data) {
            (false, DataSpec::Embedded) => EMBEDDED,
            (false, _) => LAPTOP,
            (true, _) => RunSize { epochs: if data.is_small() { 10 } else { 250 }, batch_size: 256, channels: 16, cells: 5 },
        }
    }
    /// The embedded table, or NAS-Bench-201's of CIFAR-10, CIFAR-100 or ImageNet16-120.
    fn benchmark(&self, data: &DataSpec) -> Option<TableSource> {
        let known = data.known()?;
        self.tables().iter().find(|t| t.ground_truth && t.data == known).map(|t| TableSource::BuiltIn(t))
    }
    fn tables(&self) -> &'static [&'static BuiltInTable] {
        static TABLES: [&BuiltInTable; 5] = [&TABLE_EMBEDDED, &TABLE_CIFAR10, &TABLE_CIFAR100, &TABLE_IMAGENET16, &TABLE_PROXIES_CIFAR10];
        &TABLES
    }
}

#[cfg(test)]
mod tests {
    use crate::space::{Arch, Space};

    #[test]
    fn arch_and_genotype_agree() {
        for g in super::Genotype::all().step_by(7) {
            let a: Arch = g.into();
            assert_eq!((a.space(), a.index(), a.to_string(), a.canonical()), (Space::NB201, g.index(), g.to_string(), g.unique_string()));
            assert_eq!(super::Genotype::of(&a), g);
        }
    }
}
