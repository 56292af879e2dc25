//! `pada search`: the best architectures by supernet accuracy, selected on
//! held-out training data so that the test split stays unseen.

use std::collections::HashMap;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::device::{BackendJob, DeviceArgs};
use super::rank::GroundTruthArgs;
use crate::arch::Arch;
use crate::backend::Backend;
use crate::eval::EvalSet;
use crate::rank::{load_run, score, ArchSelection};
use crate::rng::{stream, Purpose};
use crate::search::{evolve, Evolution};
use crate::train::run::holdout_split;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Strategy {
    /// Score every architecture of --archs.
    Exhaustive,
    /// SPOS's evolutionary search.
    Evolution,
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// The training run directory whose supernet scores the architectures.
    #[arg(long)]
    pub run: PathBuf,
    /// How to search.
    #[arg(long, value_enum, default_value = "evolution")]
    pub strategy: Strategy,
    /// How many of the best to print.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Exhaustive search: all | FILE | N.
    #[arg(long, default_value = "all")]
    pub archs: ArchSelection,
    /// Evolution: architectures in the initial population and new ones per generation.
    #[arg(long, default_value_t = 50)]
    pub population: usize,
    /// Evolution: generations after the initial population.
    #[arg(long, default_value_t = 20)]
    pub iterations: usize,
    /// Evolution: the best architectures so far that mutation and crossover start from.
    #[arg(long, default_value_t = 10)]
    pub parents: usize,
    /// Evolution: the probability that mutation redraws a choice (in [0, 1]).
    #[arg(long, default_value_t = 0.1)]
    pub mutation_prob: f64,
    /// Validation images when the run kept none out of training (`pada train
    /// --holdout`): the first N of the training split, which the supernet saw.
    #[arg(long, default_value_t = 1000)]
    pub val_images: usize,
    /// Evaluation batch size (batch norm uses each batch's statistics).
    #[arg(long, default_value_t = 512)]
    pub batch_size: usize,
    #[command(flatten)]
    pub gt: GroundTruthArgs,
    /// Every scored architecture, best first [default: RUN/search-<strategy>.csv].
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub dev: DeviceArgs,
}

pub fn run(a: SearchArgs) -> anyhow::Result<()> {
    a.validate()?;
    a.dev.clone().run(a)
}

impl SearchArgs {
    /// Every flag checked before any work, naming the flag.
    fn validate(&self) -> anyhow::Result<()> {
        use anyhow::ensure;
        ensure!(self.top > 0, "--top must be at least 1");
        ensure!(self.batch_size > 0, "--batch-size must be at least 1");
        ensure!(self.val_images > 0, "--val-images must be at least 1");
        if self.strategy == Strategy::Evolution {
            ensure!(self.population >= 2, "--population must be at least 2 (got {})", self.population);
            ensure!(self.iterations >= 1, "--iterations must be at least 1 (got 0)");
            ensure!(
                (1..=self.population).contains(&self.parents),
                "--parents must be between 1 and --population ({}), got {}",
                self.population,
                self.parents
            );
            ensure!(
                (0.0..=1.0).contains(&self.mutation_prob),
                "--mutation-prob must be a probability in [0, 1], got {}",
                self.mutation_prob
            );
        }
        Ok(())
    }
}

impl BackendJob for SearchArgs {
    fn run<B: Backend>(self, be: &B) -> anyhow::Result<()> {
        let a = self;
        let (record, net) = load_run(be, &a.run)?;
        let gt = a.gt.load()?;
        let data = record.train.data.load()?;
        let (val, val_name) = if record.train.holdout > 0 {
            crate::logln!("selecting on the run's {} held-out training images", record.train.holdout);
            (holdout_split(&data, record.train.holdout), "held-out training images")
        } else {
            let n = a.val_images.min(data.train.len());
            crate::logln!("note: the run kept no training images out, so the search selects on the first {n} training images, which the supernet was trained on (the test split stays unseen). To select on images it never saw, train with them held out: pada train --holdout 5000 ...");
            (data.train.subset(&(0..n).collect::<Vec<_>>()), "training images the supernet saw (no holdout)")
        };
        let set = EvalSet::new(be, &val, &data.norm, a.batch_size);
        let eval_many = |archs: &[Arch]| -> anyhow::Result<Vec<f64>> {
            let mut out = Vec::with_capacity(archs.len());
            let mut progress = crate::progress::Reporter::new(false, archs.len() as u64, "[{bar:30}] {pos}/{len} {msg}");
            let start = std::time::Instant::now();
            score(be, &net, &set, archs, |chunk| {
                out.extend(chunk.iter().map(|s| s.accuracy));
                progress.update(out.len() as u64, archs.len() as u64, || {
                    let speed = crate::progress::rate_and_eta(out.len(), archs.len(), start, "architectures");
                    format!("scored {}/{}: {speed}", out.len(), archs.len())
                });
                Ok(())
            })?;
            Ok(out)
        };
        let scored: Vec<(Arch, f64)> = match a.strategy {
            Strategy::Exhaustive => {
                let archs = a.archs.resolve(record.train.space, record.train.seed, crate::rank::Draw::Scoring, None, false)?;
                crate::logln!("scoring {} architectures on {} images", archs.len(), val.len());
                let s = eval_many(&archs)?;
                let mut all: Vec<(Arch, f64)> = archs.into_iter().zip(s).collect();
                all.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
                all
            }
            Strategy::Evolution => {
                let e =
                    Evolution { population: a.population, iterations: a.iterations, parents: a.parents, mutation_prob: a.mutation_prob };
                let mut rng = stream(record.train.seed, Purpose::Search, 0, 0);
                crate::logln!(
                    "evolution: population {}, {} iterations, {} parents, on {} images",
                    e.population,
                    e.iterations,
                    e.parents,
                    val.len()
                );
                let mut generation = 0;
                evolve(&e, record.train.space, &mut rng, |c| {
                    let r = eval_many(c);
                    match generation {
                        0 => crate::logln!("  initial population: {} architectures scored", c.len()),
                        g => crate::logln!("  generation {g} of {}: {} new architectures scored", e.iterations, c.len()),
                    }
                    generation += 1;
                    r
                })?
            }
        };
        let truth: Option<HashMap<Arch, f64>> = gt.as_ref().map(|t| t.archs.iter().copied().zip(t.values.iter().copied()).collect());
        let out = a.out.clone().unwrap_or_else(|| a.run.join(format!("search-{:?}.csv", a.strategy).to_lowercase()));
        let mut header = vec!["arch", "val_accuracy"];
        if truth.is_some() {
            header.push("true_accuracy");
        }
        let rows: Vec<Vec<String>> = scored
            .iter()
            .map(|(g, s)| {
                let mut r = vec![g.to_string(), format!("{s:.4}")];
                if let Some(t) = &truth {
                    r.push(t.get(g).map_or(String::new(), |v| format!("{v:.4}")));
                }
                r
            })
            .collect();
        let _ = std::fs::remove_file(&out);
        crate::results::append(&out, &header, &rows)?;
        crate::outln!(
            "{} architectures scored; best {} by supernet accuracy on {} {val_name} ({}):",
            scored.len(),
            a.top.min(scored.len()),
            val.len(),
            out.display()
        );
        for (g, s) in scored.iter().take(a.top) {
            match truth.as_ref().and_then(|t| t.get(g)) {
                Some(v) => crate::outln!("  {s:7.2}  (true {v:6.2})  {g}"),
                None => crate::outln!("  {s:7.2}  {g}"),
            }
        }
        Ok(())
    }
}
