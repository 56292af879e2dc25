//! `pada groundtruth`: train architectures stand-alone from scratch and record
//! their test accuracy, to build a benchmark where NAS-Bench-201 does not apply.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;

use super::device::{BackendJob, DeviceArgs};
use crate::arch::Arch;
use crate::backend::Backend;
use crate::data::augment::AugmentChoice;
use crate::data::DataSpec;
use crate::eval::{evaluate, EvalSet};
use crate::progress::Reporter;
use crate::rank::ArchSelection;
use crate::train::{Method, TrainConfig, Trainer};

/// The output's columns for training seeds `seeds`: the architecture, the
/// mean test accuracy over the seeds (what a ranking is compared with), each
/// seed's test accuracy, then means of the test loss and the final training
/// accuracy, the epochs and the seconds all seeds took.
pub fn header(seeds: &[u64]) -> Vec<String> {
    let mut h = vec!["arch".to_string(), "test_accuracy".to_string()];
    h.extend(seeds.iter().map(|s| format!("test_accuracy_seed{s}")));
    h.extend(["test_loss", "train_accuracy", "epochs", "seconds"].map(String::from));
    h
}

#[derive(Args, Debug)]
pub struct GroundTruthArgs {
    /// Architectures: FILE (a CSV with an arch column) | N (N distinct random ones from --seed) | all.
    #[arg(long)]
    pub archs: ArchSelection,
    /// The architecture column of --archs FILE [default: `arch` if it holds architecture strings, else the first column that does].
    #[arg(long, value_name = "NAME")]
    pub arch_column: Option<String>,
    /// Epochs of each stand-alone training (cosine schedule over them).
    #[arg(long)]
    pub epochs: usize,
    /// Data to train and test on (as `pada train --data`).
    #[arg(long, default_value = "embedded")]
    pub data: DataSpec,
    /// The search space [default: the --archs file's, else nb201].
    #[arg(long, value_enum)]
    pub space: Option<crate::arch::Space>,
    /// Output CSV; architectures already in it are skipped, so an interrupted run resumes.
    #[arg(long)]
    pub out: PathBuf,
    /// Training batch size.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Channels of the first stage (C) [default: the official preset's: 16 in nb201, 32 in nb-macro].
    #[arg(long)]
    pub channels: Option<usize>,
    /// Search cells per stage (N; nb201 only) [default: 5].
    #[arg(long)]
    pub cells: Option<usize>,
    /// Initial learning rate, annealed to 0 by a per-epoch cosine.
    #[arg(long, default_value_t = 0.05)]
    pub lr: f64,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// SGD weight decay, on all parameters.
    #[arg(long, default_value_t = 2.5e-4)]
    pub weight_decay: f64,
    /// Augmentation: auto | none | cropN[+flip] (auto = crop4+flip on CIFAR, crop2 on 28x28).
    #[arg(long, default_value = "auto")]
    pub augment: AugmentChoice,
    /// Seed that picks N random architectures.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Keep one architecture per isomorphism class (NAS-Bench-201's 6,466 distinct cells): with --archs N, N distinct classes.
    #[arg(long)]
    pub unique: bool,
    /// Training seeds: each architecture is trained once per seed (with the architecture, each
    /// seed gives the training's own seed); the table has the mean and every seed's accuracy [default: --seed].
    #[arg(long)]
    pub seeds: Option<super::SeedList>,
    #[command(flatten)]
    pub dev: DeviceArgs,
    /// No progress display.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(a: GroundTruthArgs) -> anyhow::Result<()> {
    a.dev.clone().run(a)
}

impl BackendJob for GroundTruthArgs {
    fn run<B: Backend>(self, be: &B) -> anyhow::Result<()> {
        let a = self;
        let space = a.archs.space(a.space, a.arch_column.as_deref())?;
        let mut config = TrainConfig::with_preset(space, Method::Spos, a.data.clone(), crate::train::config::Preset::Official);
        config.epochs = a.epochs;
        config.batch_size = a.batch_size;
        config.channels = a.channels.unwrap_or(config.channels);
        config.cells = a.cells.unwrap_or(config.cells);
        config.lr = a.lr;
        config.momentum = a.momentum;
        config.weight_decay = a.weight_decay;
        config.augment = a.augment;
        config.device = a.dev.device.to_string();
        config.precision = a.dev.precision();
        config.validate()?;
        let data = Arc::new(a.data.load()?);
        let archs = a.archs.resolve(space, a.seed, crate::rank::Draw::Table, a.arch_column.as_deref(), a.unique)?;
        let seeds = a.seeds.clone().map_or(vec![a.seed], |s| s.0);
        let header = header(&seeds);
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        // everything a stand-alone accuracy depends on (the seeds are in the header)
        let settings = crate::results::settings([
            ("--data", a.data.to_string()),
            ("--space", space.to_string()),
            ("--epochs", a.epochs.to_string()),
            ("--batch-size", a.batch_size.to_string()),
            ("--channels", config.channels.to_string()),
            ("--cells", config.cells.to_string()),
            ("--lr", a.lr.to_string()),
            ("--momentum", a.momentum.to_string()),
            ("--weight-decay", a.weight_decay.to_string()),
            ("--augment", a.augment.to_string()),
            ("--precision", format!("{:?}", config.precision).to_lowercase()),
        ]);
        let done: HashSet<Arch> = crate::results::resume(&a.out, &header, &settings)?
            .iter()
            .enumerate()
            .map(|(i, r)| r[0].parse().map_err(|e| anyhow::anyhow!("{} row {}: {e}", a.out.display(), i + 2)))
            .collect::<anyhow::Result<_>>()?;
        let todo: Vec<Arch> = archs.iter().filter(|g| !done.contains(g)).copied().collect();
        crate::logln!(
            "stand-alone training of {} architectures ({} already in {}), {} seed(s) of {} epochs each on {}, {}",
            archs.len(),
            archs.len() - todo.len(),
            a.out.display(),
            seeds.len(),
            a.epochs,
            data.name,
            be.name()
        );
        let set = EvalSet::new(be, &data.test, &data.norm, 512);
        let mut progress = Reporter::new(a.quiet, (todo.len() * seeds.len()) as u64, "[{bar:30}] {pos}/{len} {msg}");
        let begun = Instant::now();
        for (k, g) in todo.iter().enumerate() {
            let start = Instant::now();
            let mut runs = Vec::new();
            for (si, &seed) in seeds.iter().enumerate() {
                let mut c = config.clone();
                // each (architecture, seed)'s own seed: results do not depend on order or resumption
                c.seed = crate::rng::derive_seed(seed, crate::rng::Purpose::Init, g.index() as u64, 1);
                let mut t = Trainer::standalone(be, c, data.clone(), *g)?;
                let mut last = None;
                let (trainings, done) = (todo.len() * seeds.len(), k * seeds.len() + si);
                while !t.done() {
                    last = Some(t.run_epoch(&mut |p| {
                        progress.update(done as u64, trainings as u64, || {
                            let per = begun.elapsed().as_secs_f64()
                                / (done as f64 + (p.epoch as f64 + p.step as f64 / p.steps as f64) / a.epochs as f64).max(1e-3);
                            format!(
                                "architecture {}/{}, seed {seed}: epoch {}/{} step {}/{} loss {:.3}, ETA {}",
                                k + 1,
                                todo.len(),
                                p.epoch + 1,
                                a.epochs,
                                p.step,
                                p.steps,
                                p.loss,
                                crate::progress::duration(per * (trainings - done) as f64)
                            )
                        })
                    })?);
                }
                let (test_acc, test_loss) = evaluate(be, &t.net, g, &set);
                runs.push((test_acc, test_loss, last.map_or(f64::NAN, |m| m.accuracy)));
            }
            let mean = |f: fn(&(f64, f64, f64)) -> f64| runs.iter().map(f).sum::<f64>() / runs.len() as f64;
            let (test_acc, test_loss, train_acc) = (mean(|r| r.0), mean(|r| r.1), mean(|r| r.2));
            let secs = start.elapsed().as_secs_f64();
            let mut row = vec![g.to_string(), format!("{test_acc:.4}")];
            row.extend(runs.iter().map(|r| format!("{:.4}", r.0)));
            row.extend([format!("{test_loss:.6}"), format!("{train_acc:.4}"), a.epochs.to_string(), format!("{secs:.1}")]);
            crate::results::append(&a.out, &header, &[row])?;
            let each: Vec<String> = runs.iter().map(|r| format!("{:.2}", r.0)).collect();
            progress.println(&format!(
                "[{}/{}] {test_acc:6.2}% test ({}; {train_acc:.2}% train, {secs:.0} s)  {g}",
                k + 1,
                todo.len(),
                each.join(", ")
            ));
        }
        Ok(())
    }
}
