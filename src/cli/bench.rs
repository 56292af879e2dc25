//! `pada bench`: timings of steps, PA&DA's extra work, FairNAS and ranking.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::device::{BackendJob, DeviceArgs};
use crate::backend::Backend;
use crate::bench::{self, BenchOptions};
use crate::data::DataSpec;
use crate::supernet::SupernetConfig;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum BenchConfig {
    /// C=16, N=5, 3x32x32, 10 classes (NAS-Bench-201 on CIFAR-10).
    Nb201,
    /// C=8, N=1, 1x28x28, 10 classes.
    Mini,
    /// NAS-Bench-Macro's network at full width (C=32), 3x32x32, 10 classes.
    NbMacro,
    /// NAS-Bench-Macro's laptop preset (C=8), 3x32x32, 10 classes.
    NbMacroLaptop,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub dev: DeviceArgs,
    /// The supernet and input the steps are timed at.
    #[arg(long, value_enum, default_value = "nb201")]
    pub config: BenchConfig,
    /// A search space at its benchmark's size instead of --config: nb201 (= --config nb201) | nb-macro (= --config nb-macro).
    #[arg(long, value_enum, conflicts_with = "config")]
    pub space: Option<crate::arch::Space>,
    /// Training batch size of the timed steps.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Timed steps (after the warm-up).
    #[arg(long, default_value_t = 32)]
    pub steps: usize,
    /// Untimed steps first (buffer pools, caches, a GPU's clocks).
    #[arg(long, default_value_t = 4)]
    pub warmup: usize,
    /// Architectures evaluated for the ranking throughput.
    #[arg(long, default_value_t = 16)]
    pub rank_archs: usize,
    /// Data of the ranking measurement [default: 1,000 synthetic test images in the config's shape].
    #[arg(long)]
    pub rank_data: Option<DataSpec>,
    /// Also time every op alone at the configuration's shapes (NAS-Bench-201), and
    /// profile SPOS steps: each kernel launch (GPU) or op call (CPU) timed, with its share of the step.
    #[arg(long)]
    pub kernels: bool,
    /// Also write the report as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn run(a: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.batch_size > 0, "--batch-size must be at least 1");
    anyhow::ensure!(a.steps > 0, "--steps must be at least 1");
    let cifar = "3x32x32".parse().expect("a shape");
    let nb_macro = |channels| SupernetConfig { space: crate::arch::Space::NB_MACRO, channels, cells: 0, classes: 10, input: cifar };
    let chosen = match a.space {
        Some(space) if space == crate::arch::Space::NB_MACRO => BenchConfig::NbMacro,
        Some(space) if space == crate::arch::Space::NB201 => BenchConfig::Nb201,
        Some(space) => anyhow::bail!("--space {space}: no bench configuration for it (choose one with --config)"),
        None => a.config,
    };
    let config = match chosen {
        BenchConfig::Nb201 => SupernetConfig::nb201(),
        BenchConfig::Mini => SupernetConfig::mini(),
        BenchConfig::NbMacro => nb_macro(32),
        BenchConfig::NbMacroLaptop => nb_macro(8),
    };
    let rank_data = a
        .rank_data
        .clone()
        .unwrap_or_else(|| format!("synthetic:{}:64:1000:{}", config.input, config.classes).parse().expect("valid spec"));
    let o = BenchOptions {
        name: chosen.to_possible_value().expect("a named value").get_name().to_string(),
        config,
        batch_size: a.batch_size,
        steps: a.steps,
        warmup: a.warmup,
        rank_data,
        rank_archs: a.rank_archs,
        kernels: a.kernels,
    };
    a.dev.run(Job { o, json: a.json })
}

struct Job {
    o: BenchOptions,
    json: Option<PathBuf>,
}

impl BackendJob for Job {
    fn run<B: Backend>(self, be: &B) -> anyhow::Result<()> {
        let r = bench::run(be, &self.o, |m| crate::logln!("{m}..."))?;
        crate::out!("{}", bench::format_report(&r));
        if let Some(p) = self.json {
            crate::fsutil::write_atomic(&p, serde_json::to_string_pretty(&r)?.as_bytes())?;
        }
        Ok(())
    }
}
