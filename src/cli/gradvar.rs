//! `pada gradvar`: the gradient variance at a run's weights.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::device::{BackendJob, DeviceArgs};
use crate::backend::Backend;
use crate::sampler::{DataSampler, PathSampler};
use crate::train::checkpoint::restore_checkpoint;
use crate::train::gradvar::{measure, GradVarDraws};
use crate::train::run::{self, with_holdout};
use crate::train::{Method, Trainer};

#[derive(Args, Debug)]
pub struct GradVarArgs {
    /// The training run directory (its checkpoint: weights and samplers).
    #[arg(long)]
    pub run: PathBuf,
    /// Mini-batch gradients to draw.
    #[arg(long, default_value_t = 32)]
    pub batches: usize,
    /// Draw paths and data as this method does [default: the run's]; a method
    /// with other samplers than the run's starts them from uniform.
    #[arg(long, value_enum)]
    pub method: Option<Method>,
    /// Batch size [default: the run's].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Also write the result as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub dev: DeviceArgs,
}

pub fn run(a: GradVarArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.batches >= 2, "--batches must be at least 2");
    a.dev.clone().run(a)
}

impl BackendJob for GradVarArgs {
    fn run<B: Backend>(self, be: &B) -> anyhow::Result<()> {
        let a = self;
        let record = run::read_record(&a.run)?;
        let data = Arc::new(with_holdout(record.train.data.load()?, record.train.holdout)?);
        let mut t = Trainer::new(be, record.train.clone(), data)?;
        let ck = a.run.join(run::CHECKPOINT);
        let bytes =
            std::fs::read(&ck).map_err(|e| anyhow::anyhow!("cannot read {}: {e} (has the run finished an epoch?)", ck.display()))?;
        restore_checkpoint(&mut t, &bytes, &ck.display().to_string())?;
        let method = a.method.unwrap_or(record.train.method);
        let run_paths = record.train.method.path_sampler(record.train.per_edge);
        let path_kind = method.path_sampler(record.train.per_edge);
        // the run's own samplers (as the checkpoint left them) when the method draws as the run did
        let other_paths = (path_kind != run_paths).then(|| PathSampler::new(path_kind, &t.net));
        let other_samples = (method.data_sampler() != record.train.method.data_sampler())
            .then(|| DataSampler::new(method.data_sampler(), t.data.train.len()));
        let bs = a.batch_size.unwrap_or(record.train.batch_size);
        anyhow::ensure!(bs > 0, "--batch-size must be at least 1");
        let draws = GradVarDraws {
            train: &t.data.train,
            norm: &t.data.norm,
            paths: other_paths.as_ref().unwrap_or(&t.paths),
            samples: other_samples.as_ref().unwrap_or(&t.samples),
            batches: a.batches,
            batch_size: bs,
            seed: record.train.seed,
            epoch: t.epoch,
        };
        let g = measure(be, &mut t.net, &draws);
        crate::outln!(
            "gradient variance at the weights of {} (after {} epochs), drawn as {} does, {} batches of {}:",
            a.run.display(),
            t.epoch,
            method.name(),
            a.batches,
            bs
        );
        crate::outln!("  (1/K) sum ||g_k - mean||^2 = {:.6e}", g.variance);
        crate::outln!("  ||mean||^2                 = {:.6e}", g.mean_sq_norm);
        crate::outln!("  relative variance          = {:.4}", g.relative);
        if let Some(j) = a.json {
            crate::fsutil::write_atomic(&j, serde_json::to_string_pretty(&g)?.as_bytes())?;
        }
        Ok(())
    }
}
