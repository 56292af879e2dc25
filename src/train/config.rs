//! Everything that defines a training run; saved as config.json.

use serde::{Deserialize, Serialize};

use crate::data::augment::AugmentChoice;
use crate::data::DataSpec;
use crate::optim::OffPath;
use crate::sampler::{DataSamplerKind, PathSamplerKind};
use crate::space::{RunSize, Space};
use crate::table::TableSource;

/// The size and length of a run unless flags say otherwise (`--preset`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Minutes on a laptop's CPU: NAS-Bench-201 at C=8, N=1, batch 64, 10 epochs (16 on the
    /// embedded data): on CIFAR-10 about 5 min of training and 3 of verdict on 2 cores;
    /// NAS-Bench-Macro at a quarter of the benchmark's width (--channels 8).
    Laptop,
    /// The paper's setting: C=16, N=5, batch 256, 250 epochs on CIFAR-10/100, ImageNet16 and
    /// image folders (10 on other data): on CIFAR-10 about 20 min on an H200 (FP32 kernels),
    /// about 10 hours on 2 CPU cores; NAS-Bench-Macro at the benchmark's full width (--channels 32).
    #[default]
    Official,
}

impl Preset {
    /// The preset without `--preset`: laptop on the CPU and on the embedded data, official on a GPU.
    pub fn default_for(data: &DataSpec, device: &str) -> Preset {
        if *data == DataSpec::Embedded || device == "cpu" {
            Preset::Laptop
        } else {
            Preset::Official
        }
    }

    /// The run size of this preset for `space` on `data` (each space's own, in its folder).
    pub fn size(self, space: Space, data: &DataSpec) -> RunSize {
        space.def().run_size(self == Preset::Official, data)
    }
}

/// The supernet training method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// PA&DA: path and data importance sampling.
    Pada,
    /// Path importance only (ablation).
    Pa,
    /// Data importance only (ablation).
    Da,
    /// Single-path one-shot with uniform sampling.
    Spos,
    /// Strictly fair sampling: 5 paths per step covering every op once.
    Fairnas,
    /// Reptile-style: 2 inner SGD steps on each of 5 fair paths, outer step on the mean weight change.
    Sumnas,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Pada => "pada",
            Method::Pa => "pa",
            Method::Da => "da",
            Method::Spos => "spos",
            Method::Fairnas => "fairnas",
            Method::Sumnas => "sumnas",
        }
    }
    pub fn path_sampler(self, per_edge: bool) -> PathSamplerKind {
        match self {
            Method::Pada | Method::Pa => PathSamplerKind::Importance { per_edge },
            Method::Da | Method::Spos => PathSamplerKind::Uniform,
            Method::Fairnas | Method::Sumnas => PathSamplerKind::Fair,
        }
    }
    pub fn data_sampler(self) -> DataSamplerKind {
        match self {
            Method::Pada | Method::Da => DataSamplerKind::Importance,
            _ => DataSamplerKind::Uniform,
        }
    }
}

/// How PA&DA's data sampler scores a sample: the norm of its loss gradient.
///
/// Which to use: `proxy` is the paper's and free; `batch` measures what each
/// sample actually contributes to the step SGD takes (batch-norm coupling
/// included), over every parameter, at a small fraction of a step; `full` is
/// the norm of the sample's own loss gradient, as if it were alone in the
/// batch (the textbook importance-sampling weight), at most of a step's cost;
/// `classifier` is `full` restricted to the last layer, nearly free.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DataImportance {
    /// `||softmax(z_i) - onehot(y_i)||`: the gradient norm at the logits, the paper's choice.
    #[default]
    Proxy,
    /// The exact norm of sample i's gradient of the classifier's weight and
    /// bias, `||dz_i|| * sqrt(||h_i||^2 + 1)`: almost free.
    Classifier,
    /// The exact norm of sample i's contribution g_i to the mini-batch
    /// gradient SGD applies (sum_i g_i = that gradient; batch-norm coupling
    /// included, as in the step), over every parameter on the path: each
    /// parameter's reduction over the batch split at sample boundaries, its
    /// per-sample parts' norms taken inside the training step's own backward
    /// pass (fused into the weight-gradient kernels).
    Batch,
    /// The exact norm of sample i's gradient over every parameter on the path,
    /// with the batch-norm statistics held fixed (they couple the samples of a
    /// batch; held fixed, each sample's gradient is its own): one extra
    /// backward pass without weight gradients, plus per-sample weight-gradient norms.
    Full,
}

/// The learning-rate schedule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LrSchedule {
    /// Cosine annealing to 0, stepped once per epoch (the official code).
    #[default]
    Cosine,
    /// Complexity-aware learning rate (Jeon et al., CVPR 2025): per step,
    /// `lr0 (1 - t/T)^gamma` over global steps t of T, with gamma log-linear in
    /// the log of the sampled path's complexity, from `gamma_max` for the
    /// smallest sub-network to `1/gamma_max` for the largest: small paths'
    /// rate decays fast, large ones' slowly.
    Calr,
}

/// What happens when a step's gradients are not finite (NaN or Inf).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OnNan {
    /// Stop with a message naming the step and the tensor.
    #[default]
    Stop,
    /// Skip the step (no update at all) and count it in metrics.jsonl.
    Skip,
}

/// SUMNAS's inner and outer optimisers (the official baseline's values).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SumnasConfig {
    pub inner_steps: usize,
    pub inner_lr: f64,
    pub inner_momentum: f64,
    pub outer_lr: f64,
    pub outer_weight_decay: f64,
}

impl Default for SumnasConfig {
    fn default() -> Self {
        Self { inner_steps: 2, inner_lr: 0.05, inner_momentum: 0.9, outer_lr: 1.0, outer_weight_decay: 4e-5 }
    }
}

/// A training run's settings, as given on the command line (defaults resolved).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The search space (runs recorded before there were several are NAS-Bench-201's).
    #[serde(default)]
    pub space: Space,
    /// The preset the run's size came from, where no flag set it.
    #[serde(default)]
    pub preset: Preset,
    pub method: Method,
    pub data: DataSpec,
    pub epochs: usize,
    pub batch_size: usize,
    pub channels: usize,
    pub cells: usize,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    /// `clip_grad_norm_` max norm.
    pub clip: f64,
    pub seed: u64,
    pub device: String,
    /// The GPU convolutions' arithmetic (fp32 for the CPU; records before it was recorded ran fp32).
    #[serde(default)]
    pub precision: crate::backend::Precision,
    pub off_path: OffPath,
    pub augment: AugmentChoice,
    /// PA&DA path importance with one distribution per slot (edge, layer) instead of one shared.
    pub per_edge: bool,
    /// Weight each sample's loss by 1 / (N q_i) (unbiased; off in the official code).
    pub weighted_loss: bool,
    /// How data importance scores samples.
    #[serde(default)]
    pub data_importance: DataImportance,
    /// How data importance draws an epoch from q.
    #[serde(default)]
    pub resampling: crate::ops::sampling::Resampling,
    /// The last `holdout` images of the training split are kept out of training,
    /// for `pada search` to select architectures on without touching the test split.
    #[serde(default)]
    pub holdout: usize,
    /// Measure the gradient variance every this many epochs (0: never) over
    /// `gradvar_batches` mini-batches, into metrics.jsonl.
    #[serde(default)]
    pub gradvar_every: usize,
    #[serde(default = "default_gradvar_batches")]
    pub gradvar_batches: usize,
    #[serde(default)]
    pub on_nan: OnNan,
    #[serde(default)]
    pub lr_schedule: LrSchedule,
    /// CaLR's largest exponent (`--calr-gamma-max`).
    #[serde(default = "default_calr_gamma_max")]
    pub calr_gamma_max: f64,
    /// Momentum separation: this many momentum buffers per parameter, one per
    /// choice of one split slot chosen from the seed (1: plain SGD).
    #[serde(default = "default_momentum_groups")]
    pub momentum_groups: usize,
    pub sumnas: SumnasConfig,
    /// What `pada train` does once training ends (`--ground-truth`,
    /// `--verdict-images`, `--verdict-archs`, `--no-verdict`), so that
    /// `--resume` judges as the run was asked to.
    #[serde(default = "VerdictPlan::unrecorded")]
    pub verdict: VerdictPlan,
}

/// The verdict a run ends with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerdictPlan {
    /// No verdict (`--no-verdict`, or data without a ground truth of its own).
    None,
    /// A verdict with these settings.
    Judge(VerdictSpec),
    /// Not recorded (runs made before pada recorded it): the data's default verdict.
    Unrecorded,
}

/// How many of a ground truth's architectures a verdict ranks
/// (`--verdict-archs`): all of them, or a fixed sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum VerdictArchs {
    All,
    Sample(usize),
}

impl std::str::FromStr for VerdictArchs {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "all" => Ok(VerdictArchs::All),
            _ => match s.parse::<usize>() {
                Ok(n) if n >= 2 => Ok(VerdictArchs::Sample(n)),
                _ => anyhow::bail!("--verdict-archs {s:?}: expected all or a number of architectures (at least 2)"),
            },
        }
    }
}

impl From<VerdictArchs> for String {
    fn from(a: VerdictArchs) -> String {
        a.to_string()
    }
}

impl TryFrom<String> for VerdictArchs {
    type Error = anyhow::Error;
    fn try_from(s: String) -> anyhow::Result<Self> {
        s.parse()
    }
}

impl std::fmt::Display for VerdictArchs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerdictArchs::All => write!(f, "all"),
            VerdictArchs::Sample(n) => write!(f, "{n}"),
        }
    }
}

/// What to judge a trained run against (`pada train --ground-truth`, `pada sweep`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerdictSpec {
    pub ground_truth: TableSource,
    /// Test images to score each architecture on (the first of the split).
    pub images: usize,
    /// Architectures to rank.
    pub archs: VerdictArchs,
}

impl std::fmt::Display for VerdictSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} architectures of {} on {} test images", self.archs, self.ground_truth, self.images)
    }
}

/// Test images a verdict scores each architecture on unless told: 2,000 on
/// the embedded data (its first command's measured setting), 1,000 elsewhere
/// (on CIFAR-10 1,000 rank as well as 2,000 in half the time: README).
pub fn default_images(data: &crate::data::DataSpec) -> usize {
    if *data == crate::data::DataSpec::Embedded {
        2000
    } else {
        1000
    }
}

impl VerdictPlan {
    fn unrecorded() -> Self {
        VerdictPlan::Unrecorded
    }
    /// The verdict's settings, resolving [`VerdictPlan::Unrecorded`] to the
    /// defaults of `data` in `space`.
    pub fn spec(&self, space: Space, data: &DataSpec) -> Option<VerdictSpec> {
        match self {
            VerdictPlan::None => None,
            VerdictPlan::Judge(s) => Some(s.clone()),
            VerdictPlan::Unrecorded => space.benchmark(data).map(|ground_truth| VerdictSpec {
                ground_truth,
                images: default_images(data),
                archs: VerdictArchs::Sample(1000),
            }),
        }
    }
}

impl TrainConfig {
    /// The paper's settings for `method` on `data` in NAS-Bench-201; on the
    /// embedded data, a mini supernet trained long enough to rank (see
    /// [`crate::space::nb201::EMBEDDED`]).
    pub fn defaults(method: Method, data: DataSpec) -> Self {
        let preset = if data == DataSpec::Embedded { Preset::Laptop } else { Preset::Official };
        Self::with_preset(Space::NB201, method, data, preset)
    }

    /// The settings of `preset` for `method` in `space` on `data`.
    pub fn with_preset(space: Space, method: Method, data: DataSpec, preset: Preset) -> Self {
        let RunSize { epochs, batch_size, channels, cells } = preset.size(space, &data);
        Self {
            space,
            preset,
            method,
            data,
            epochs,
            batch_size,
            channels,
            cells,
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 2.5e-4,
            clip: 5.0,
            seed: 0,
            device: "cpu".into(),
            precision: crate::backend::Precision::Fp32,
            off_path: OffPath::Momentum,
            augment: AugmentChoice::Auto,
            per_edge: false,
            weighted_loss: false,
            data_importance: DataImportance::Proxy,
            resampling: Default::default(),
            holdout: 0,
            gradvar_every: 0,
            gradvar_batches: default_gradvar_batches(),
            on_nan: OnNan::Stop,
            lr_schedule: LrSchedule::Cosine,
            calr_gamma_max: default_calr_gamma_max(),
            momentum_groups: default_momentum_groups(),
            sumnas: SumnasConfig::default(),
            verdict: VerdictPlan::None,
        }
    }

    /// The supernet this run trains on `data`.
    pub fn supernet(&self, data: &crate::data::Data) -> crate::supernet::SupernetConfig {
        crate::supernet::SupernetConfig {
            space: self.space,
            channels: self.channels,
            cells: self.cells,
            classes: data.classes(),
            input: data.shape(),
        }
    }

    /// Checks every setting, naming the flag that is wrong.
    pub fn validate(&self) -> anyhow::Result<()> {
        use anyhow::ensure;
        ensure!(self.epochs > 0, "--epochs must be at least 1 (got 0)");
        ensure!(self.batch_size > 0, "--batch-size must be at least 1 (got 0)");
        ensure!(self.channels > 0, "--channels must be at least 1 (got 0)");
        ensure!(self.lr > 0.0 && self.lr.is_finite(), "--lr must be a positive number (got {})", self.lr);
        ensure!((0.0..1.0).contains(&self.momentum), "--momentum must be in [0, 1) (got {})", self.momentum);
        ensure!(self.weight_decay >= 0.0 && self.weight_decay.is_finite(), "--weight-decay must be >= 0 (got {})", self.weight_decay);
        ensure!(self.clip > 0.0, "--clip must be positive (got {})", self.clip);
        if let VerdictPlan::Judge(v) = &self.verdict {
            ensure!(v.images > 0, "--verdict-images must be at least 1");
        }
        ensure!(self.gradvar_batches >= 2, "--gradvar-batches must be at least 2 (got {})", self.gradvar_batches);
        ensure!(
            self.calr_gamma_max >= 1.0 && self.calr_gamma_max.is_finite(),
            "--calr-gamma-max must be at least 1 (got {})",
            self.calr_gamma_max
        );
        let k = self.space.choices();
        ensure!(
            self.momentum_groups == 1 || self.momentum_groups == k,
            "--momentum-groups must be 1 (plain SGD) or {k} (one buffer per choice of the split {} of {}), got {}",
            self.space.def().slot_name(),
            self.space.def().title(),
            self.momentum_groups
        );
        ensure!(
            !self.per_edge || matches!(self.method, Method::Pada | Method::Pa),
            "--per-edge applies to path importance (--method pada or pa), not to --method {}",
            self.method.name()
        );
        ensure!(
            self.data_importance == DataImportance::Proxy || matches!(self.method, Method::Pada | Method::Da),
            "--data-importance applies to data importance (--method pada or da), not to --method {}",
            self.method.name()
        );
        ensure!(
            self.resampling == Default::default() || matches!(self.method, Method::Pada | Method::Da),
            "--resampling applies to data importance (--method pada or da), not to --method {}",
            self.method.name()
        );
        ensure!(
            !self.weighted_loss || matches!(self.method, Method::Pada | Method::Da),
            "--weighted-loss applies to data importance (--method pada or da), not to --method {}",
            self.method.name()
        );
        Ok(())
    }
}

fn default_gradvar_batches() -> usize {
    8
}

fn default_calr_gamma_max() -> f64 {
    4.0
}

fn default_momentum_groups() -> usize {
    1
}

/// CaLR's learning rate at global step `t` of `total` for a path of
/// `complexity` between the search space's smallest and largest, `c_range`.
pub fn calr_lr(lr0: f64, t: usize, total: usize, complexity: f64, c_range: (f64, f64), gamma_max: f64) -> f64 {
    let x = ((complexity.ln() - c_range.0.ln()) / (c_range.1.ln() - c_range.0.ln())).clamp(0.0, 1.0);
    let gamma = gamma_max.powf(1.0 - 2.0 * x);
    lr0 * (1.0 - t as f64 / total as f64).max(0.0).powf(gamma)
}

/// The learning rate of epoch `epoch`: cosine annealing from `lr` to 0 over
/// `epochs`, stepped once per epoch (`CosineAnnealingLR(T_max=epochs)`).
pub fn cosine_lr(lr: f64, epoch: usize, epochs: usize) -> f64 {
    lr * 0.5 * (1.0 + (std::f64::consts::PI * epoch as f64 / epochs as f64).cos())
}
