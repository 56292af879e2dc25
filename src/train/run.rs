//! The run directory of `pada train`:
//!
//! - `config.json`: every setting, the seed, the data (spec, name, shape,
//!   normalisation, augmentation, checksums of the files read), the supernet,
//!   the backend and the crate version; written once, atomically;
//! - `metrics.jsonl`: one [`EpochMetrics`] line per epoch;
//! - `supernet.safetensors`: the weights after the last complete epoch;
//! - `checkpoint.safetensors`: what `--resume` needs;
//! - `summary.json`: written when training completes.
//!
//! Every file is replaced atomically, so killing the process at any moment
//! leaves the last complete epoch readable and resumable.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, ensure, Context};
use serde::{Deserialize, Serialize};

use super::checkpoint::{checkpoint_bytes, restore_checkpoint, weights_bytes};
use super::{EpochMetrics, StepProgress, TrainConfig, Trainer};
use crate::backend::Backend;
use crate::data::{Augment, Data, DataFile, Normalization};
use crate::eval::{evaluate, EvalSet};
use crate::fsutil::{append_line, write_atomic};
use crate::rng::{stream, Purpose};
use crate::supernet::SupernetConfig;

pub const CONFIG: &str = "config.json";
pub const METRICS: &str = "metrics.jsonl";
pub const WEIGHTS: &str = "supernet.safetensors";
pub const CHECKPOINT: &str = "checkpoint.safetensors";
pub const SUMMARY: &str = "summary.json";

/// The data as config.json records it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DataRecord {
    pub spec: String,
    pub name: String,
    pub shape: String,
    pub classes: usize,
    pub train_size: usize,
    pub test_size: usize,
    pub normalization: Normalization,
    pub augment: Augment,
    pub files: Vec<DataFile>,
}

/// config.json.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    pub pada_version: String,
    pub train: TrainConfig,
    pub data: DataRecord,
    pub supernet: SupernetConfig,
    pub supernet_params: usize,
    pub backend: String,
    pub command: Vec<String>,
    pub created_unix: u64,
}

/// summary.json.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    pub epochs: usize,
    pub final_loss: f64,
    pub final_accuracy: f64,
    pub final_path_prob: Vec<f64>,
    pub train_seconds: f64,
    /// Test accuracy (%) of a few random architectures with the final weights:
    /// a sanity check, not a ranking.
    pub sample_archs: Vec<(String, f64)>,
}

/// Told what happens during a run.
pub trait Progress {
    fn run_start(&mut self, _record: &RunRecord, _first_epoch: usize) {}
    fn step(&mut self, _p: &StepProgress) {}
    fn epoch(&mut self, _m: &EpochMetrics) {}
    /// What the run does after its last epoch (each part a few seconds at most).
    fn message(&mut self, _line: &str) {}
}

/// No output.
pub struct Quiet;
impl Progress for Quiet {}

pub fn read_record(dir: &Path) -> anyhow::Result<RunRecord> {
    let path = dir.join(CONFIG);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {} (is {} a pada run directory?)", path.display(), dir.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a valid pada config.json", path.display()))
}

/// Reads metrics.jsonl (complete lines only).
pub fn read_metrics(dir: &Path) -> anyhow::Result<Vec<EpochMetrics>> {
    let path = dir.join(METRICS);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{} line {}: not a metrics record", path.display(), i + 1)))
        .collect()
}

/// Trains a new run into `dir` (which must not hold one) or, with `resume`,
/// continues the run in `dir` from its last checkpoint.
pub fn train<B: Backend>(be: &B, config: Option<TrainConfig>, dir: &Path, progress: &mut dyn Progress) -> anyhow::Result<Summary> {
    let resume = config.is_none();
    let (record, data) = if resume {
        let record = read_record(dir)?;
        let data = with_holdout(
            record.train.data.load().with_context(|| format!("loading the data of the run in {}", dir.display()))?,
            record.train.holdout,
        )?;
        let mut files = data.files.clone();
        let mut recorded = record.data.files.clone();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        recorded.sort_by(|a, b| a.path.cmp(&b.path));
        if files != recorded {
            bail!(
                "the data files of --data {} changed since the run in {} started (checksums differ); resuming would not reproduce the run",
                record.train.data,
                dir.display()
            );
        }
        (record, data)
    } else {
        let config = config.expect("a config for a new run");
        if dir.join(CHECKPOINT).exists() || dir.join(CONFIG).exists() {
            bail!("{} already holds a run; continue it with --resume {}, or choose another --out", dir.display(), dir.display());
        }
        config.validate()?;
        let data = with_holdout(config.data.load()?, config.holdout)?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create the run directory {}", dir.display()))?;
        (new_record(be, &config, &data)?, data)
    };
    let data = Arc::new(data);
    let mut trainer = Trainer::new(be, record.train.clone(), data.clone())?;
    let mut history = Vec::new();
    if resume {
        let ck = dir.join(CHECKPOINT);
        if ck.exists() {
            let bytes = std::fs::read(&ck).with_context(|| format!("cannot read {}", ck.display()))?;
            restore_checkpoint(&mut trainer, &bytes, &ck.display().to_string())?;
        }
        // Keep exactly the metrics of the epochs the checkpoint holds.
        history = read_metrics(dir)?;
        ensure!(
            history.len() >= trainer.epoch,
            "{}: has {} epochs but the checkpoint {}; the run directory is inconsistent",
            METRICS,
            history.len(),
            trainer.epoch
        );
        history.truncate(trainer.epoch);
        let lines: String = history.iter().map(|m| serde_json::to_string(m).expect("serialisable") + "\n").collect();
        write_atomic(&dir.join(METRICS), lines.as_bytes())?;
    } else {
        write_atomic(&dir.join(CONFIG), serde_json::to_string_pretty(&record)?.as_bytes())?;
        let _ = std::fs::remove_file(dir.join(METRICS));
    }
    progress.run_start(&record, trainer.epoch);
    while !trainer.done() {
        let mut m = trainer.run_epoch(&mut |p| progress.step(p))?;
        let (every, k) = (trainer.config.gradvar_every, trainer.config.gradvar_batches);
        if every > 0 && (m.epoch + 1) % every == 0 {
            m.gradvar = Some(crate::train::gradvar::measure_trainer(&mut trainer, k));
        }
        // metrics first, then the checkpoint: a resume truncates metrics to the checkpoint
        append_line(&dir.join(METRICS), &serde_json::to_string(&m)?)?;
        write_atomic(&dir.join(WEIGHTS), &weights_bytes(be, &trainer.net)?)?;
        write_atomic(&dir.join(CHECKPOINT), &checkpoint_bytes(&trainer)?)?;
        progress.epoch(&m);
        history.push(m);
    }
    let last = history.last().context("no epoch was trained")?;
    let summary = Summary {
        epochs: trainer.epoch,
        final_loss: last.loss,
        final_accuracy: last.accuracy,
        final_path_prob: trainer.paths.distribution().to_vec(),
        train_seconds: history.iter().map(|m| m.seconds).sum(),
        sample_archs: sample_arch_accuracies(be, &trainer, &data, 5, progress),
    };
    write_atomic(&dir.join(SUMMARY), serde_json::to_string_pretty(&summary)?.as_bytes())?;
    // what comes next (a verdict) needs other sizes: the training's buffers go back
    drop(trainer);
    be.release_cached();
    Ok(summary)
}

fn new_record<B: Backend>(be: &B, config: &TrainConfig, data: &Data) -> anyhow::Result<RunRecord> {
    let supernet = config.supernet(data);
    let net_params = crate::supernet::Supernet::uninit(&crate::backend::cpu::CpuBackend::<f32>::new(), supernet)?.param_count(None);
    Ok(RunRecord {
        pada_version: env!("CARGO_PKG_VERSION").into(),
        train: config.clone(),
        data: DataRecord {
            spec: data.spec.to_string(),
            name: data.name.clone(),
            shape: data.shape().to_string(),
            classes: data.classes(),
            train_size: data.train.len(),
            test_size: data.test.len(),
            normalization: data.norm.clone(),
            augment: config.augment.resolve(data.default_augment),
            files: data.files.clone(),
        },
        supernet,
        supernet_params: net_params,
        backend: be.name(),
        command: std::env::args().collect(),
        created_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    })
}

/// Test accuracy of `count` random architectures (from the run's seed).
fn sample_arch_accuracies<B: Backend>(
    be: &B,
    t: &Trainer<B>,
    data: &Data,
    count: usize,
    progress: &mut dyn Progress,
) -> Vec<(String, f64)> {
    use rand::Rng;
    let mut rng = stream(t.config.seed, Purpose::Ranking, u64::MAX, 0);
    let set = EvalSet::new(be, &data.test, &data.norm, 512);
    (0..count)
        .map(|k| {
            progress.message(&format!(
                "summary.json: test accuracy of random architecture {} of {count} on the {} test images",
                k + 1,
                data.test.len()
            ));
            let space = t.config.space;
            let g = space.arch(rng.random_range(0..space.num_archs())).expect("in range");
            let (acc, _) = evaluate(be, &t.net, &g, &set);
            (g.to_string(), acc)
        })
        .collect()
}

/// The data with the last `holdout` training images removed from the training split.
pub fn with_holdout(mut data: Data, holdout: usize) -> anyhow::Result<Data> {
    if holdout > 0 {
        let n = data.train.len();
        ensure!(holdout < n, "--holdout {holdout} leaves no training images (the training split has {n})");
        data.train = data.train.subset(&(0..n - holdout).collect::<Vec<_>>());
    }
    Ok(data)
}

/// The held-out images of a run (the last `holdout` of the full training split).
pub fn holdout_split(data: &Data, holdout: usize) -> crate::data::Dataset {
    let n = data.train.len();
    data.train.subset(&(n - holdout..n).collect::<Vec<_>>())
}

/// The default run directory for a config: `runs/<method>-<data>-seed<seed>`.
pub fn default_dir(config: &TrainConfig) -> PathBuf {
    PathBuf::from("runs").join(format!("{}-{}-seed{}", config.method.name(), config.data.short_name(), config.seed))
}
