//! `pada proxies`: parameter count, FLOPs and zero-cost proxies (grad-norm,
//! snip, synflow, synflow with batch norm) of architectures at
//! initialisation, as their authors' code computes them ([`crate::proxies`]),
//! as a CSV that `compare`, `rank --ground-truth` and the sweep's reference
//! rows read.

use std::collections::HashSet;
use std::path::PathBuf;

use clap::Args;

use super::device::{BackendJob, DeviceArgs};
use crate::arch::Arch;
use crate::backend::Backend;
use crate::data::DataSpec;
use crate::progress::Reporter;
use crate::proxies::{for_archs, COLUMNS};
use crate::rank::ArchSelection;
use crate::supernet::SupernetConfig;
use crate::train::config::Preset;

#[derive(Args, Debug)]
pub struct ProxiesArgs {
    /// Architectures: FILE (a CSV with an arch column, e.g. a ground truth) | N (N random ones) | all.
    #[arg(long)]
    pub archs: ArchSelection,
    /// The architecture column of --archs FILE [default: `arch` if it holds architecture strings, else the first column that does].
    #[arg(long, value_name = "NAME")]
    pub arch_column: Option<String>,
    /// Data: each architecture sees its own batch of --batch-size training images, augmented as in training.
    #[arg(long, default_value = "embedded")]
    pub data: DataSpec,
    /// The search space [default: the --archs file's, else nb201].
    #[arg(long, value_enum)]
    pub space: Option<crate::arch::Space>,
    /// Channels of the first stage (C) [default: nb201: 8 on the embedded data, else 16, the
    /// reference's; nb-macro: 32, the benchmark's].
    #[arg(long)]
    pub channels: Option<usize>,
    /// Search cells per stage (N; nb201 only) [default: 1 on the embedded data, else 5, the reference's].
    #[arg(long)]
    pub cells: Option<usize>,
    /// Training images each architecture's proxies are measured on (the reference's 64).
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Seed of every architecture's initial weights and batch (and of N random architectures).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output CSV (arch,params,flops,grad_norm,snip,synflow,synflow_bn); architectures already in it are kept.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub dev: DeviceArgs,
    /// No progress display.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(a: ProxiesArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.batch_size > 0, "--batch-size must be at least 1");
    a.dev.clone().run(a)
}

impl BackendJob for ProxiesArgs {
    fn run<B: Backend>(self, be: &B) -> anyhow::Result<()> {
        let a = self;
        let data = a.data.load()?;
        let space = a.archs.space(a.space, a.arch_column.as_deref())?;
        let preset = if a.data == DataSpec::Embedded { Preset::Laptop } else { Preset::Official };
        let defaults = crate::train::TrainConfig::with_preset(space, crate::train::Method::Spos, a.data.clone(), preset);
        let config = SupernetConfig {
            space,
            channels: a.channels.unwrap_or(defaults.channels),
            cells: a.cells.unwrap_or(defaults.cells),
            classes: data.classes(),
            input: data.shape(),
        };
        crate::supernet::Supernet::uninit(&crate::backend::cpu::CpuBackend::<f32>::new(), config)?; // a bad size fails now
        let archs = a.archs.resolve(space, a.seed, crate::rank::Draw::Table, a.arch_column.as_deref(), false)?;
        let header: Vec<&str> = std::iter::once("arch").chain(COLUMNS).collect();
        let settings = crate::results::settings([
            ("--data", a.data.to_string()),
            ("--channels", config.channels.to_string()),
            ("--cells", config.cells.to_string()),
            ("--batch-size", a.batch_size.to_string()),
            ("--seed", a.seed.to_string()),
        ]);
        let done: HashSet<Arch> = crate::results::resume(&a.out, &header, &settings)?.iter().filter_map(|r| r[0].parse().ok()).collect();
        let todo: Vec<Arch> = archs.into_iter().filter(|g| !done.contains(g)).collect();
        if !a.quiet {
            crate::logln!(
                "zero-cost proxies of {} architectures ({} already in {}) at C={} N={} on {} images of {}, {}",
                todo.len() + done.len(),
                done.len(),
                a.out.display(),
                config.channels,
                config.cells,
                a.batch_size.min(data.train.len()),
                data.name,
                be.name()
            );
        }
        let mut progress = Reporter::new(a.quiet, todo.len() as u64, "[{bar:30}] {pos}/{len} {msg}");
        let (mut failed, start) = (None, std::time::Instant::now());
        for_archs(be, config, &data, a.batch_size, a.seed, &todo, |k, p| {
            let mut row = vec![todo[k].to_string()];
            row.extend(p.values().iter().map(|v| format!("{v:.8e}")));
            if let Err(e) = crate::results::append(&a.out, &header, &[row]) {
                failed.get_or_insert(e);
            }
            progress.update(k as u64 + 1, todo.len() as u64, || {
                format!(
                    "{}/{} architectures, {}",
                    k + 1,
                    todo.len(),
                    crate::progress::rate_and_eta(k + 1, todo.len(), start, "architectures")
                )
            });
        })?;
        progress.finish();
        if let Some(e) = failed {
            return Err(e);
        }
        crate::outln!(
            "{} computed in {:.0} s; {} holds {} (compare it with a ground truth: pada compare {} TABLE --pred-column synflow)",
            crate::progress::plural(todo.len(), "architecture"),
            start.elapsed().as_secs_f64(),
            a.out.display(),
            COLUMNS.join(", "),
            a.out.display()
        );
        Ok(())
    }
}
