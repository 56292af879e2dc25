//! `pada train`: train a supernet and write its run directory.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use super::device::{with_backend, BackendJob, Device};
use crate::backend::Backend;
use crate::data::augment::AugmentChoice;
use crate::data::DataSpec;
use crate::optim::OffPath;
use crate::progress::Reporter;
use crate::train::run::{self, Progress, RunRecord};
use crate::train::{EpochMetrics, Method, StepProgress, TrainConfig};
use crate::verdict::VerdictSpec;

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// The search space: nb201 (NAS-Bench-201's cells) | nb-macro (NAS-Bench-Macro's MobileNetV2
    /// layers) [default: nb201].
    #[arg(long, value_enum)]
    pub space: Option<crate::arch::Space>,
    /// Training method.
    #[arg(long, value_enum)]
    pub method: Option<Method>,
    /// Data: embedded | fashion-mnist[:DIR] | mnist:DIR | cifar10:DIR | cifar100:DIR | imagenet16:DIR
    /// (NAS-Bench-201's ImageNet16-120) | folder:DIR (DIR/train/<class>/*, DIR/test/<class>/*, PNG or
    /// JPEG) | synthetic[:CxHxW[:TRAIN[:TEST[:CLASSES]]]] [default: embedded].
    #[arg(long)]
    pub data: Option<DataSpec>,
    /// The run's size and length where the flags below do not set them [default: laptop on the
    /// CPU and on the embedded data, official on a GPU].
    #[arg(long, value_enum)]
    pub preset: Option<crate::train::config::Preset>,
    /// Epochs [default: the preset's: laptop 10 (16 on the embedded data), official 250 on CIFAR,
    /// ImageNet16 and image folders, 10 otherwise].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Training batch size [default: the preset's: laptop 64, official 256].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Width: nb201's first stage (C), nb-macro's stem [default: the preset's: laptop 8, official
    /// 16 in nb201 and 32 (the benchmark's network) in nb-macro].
    #[arg(long)]
    pub channels: Option<usize>,
    /// Search cells per stage (N; nb201 only) [default: the preset's: laptop 1, official 5].
    #[arg(long)]
    pub cells: Option<usize>,
    /// Initial learning rate, annealed to 0 by a per-epoch cosine [default: 0.05].
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// SGD momentum [default: 0.9].
    #[arg(long, allow_negative_numbers = true)]
    pub momentum: Option<f64>,
    /// SGD weight decay, on all parameters [default: 2.5e-4].
    #[arg(long, allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    /// Max total gradient norm (clip_grad_norm_) [default: 5].
    #[arg(long, allow_negative_numbers = true)]
    pub clip: Option<f64>,
    /// Seed of everything random in the run [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Device: cpu | cuda | cuda:N | cuda-emu.
    #[arg(long)]
    pub device: Option<Device>,
    /// GPU convolutions: fp32 (CUDA cores), tf32 or bf16 (tensor cores, FP32 sums) [default: tf32 on cuda, as PyTorch; the CPU is exact fp32].
    #[arg(long, value_enum)]
    pub precision: Option<crate::backend::Precision>,
    /// What happens to parameters off the sampled path: momentum (PyTorch 1.7, the
    /// official code: moved by momentum and decay once they have had a gradient)
    /// or frozen (PyTorch 2: not updated) [default: momentum].
    #[arg(long, value_enum)]
    pub off_path: Option<OffPath>,
    /// Augmentation: auto | none | cropN[+flip] [default: auto = crop4+flip on CIFAR, crop2 on 28x28].
    #[arg(long)]
    pub augment: Option<AugmentChoice>,
    /// PA&DA path importance with one op distribution per edge (default: one shared, as the official code).
    #[arg(long)]
    pub per_edge: bool,
    /// Importance-weighted (unbiased) loss for data importance (off in the official code).
    #[arg(long)]
    pub weighted_loss: bool,
    /// How data importance scores a sample: proxy (||softmax - onehot||, the paper's; free) |
    /// classifier (exact gradient norm of the classifier; ~free) | batch (the exact norm of the
    /// sample's part of the step's gradient, every parameter, batch norm coupled as in the step;
    /// fused into the weight-gradient kernels) | full (the exact norm of the sample's own loss
    /// gradient, every parameter, batch-norm statistics held fixed; a second backward pass) [default: proxy].
    #[arg(long, value_enum)]
    pub data_importance: Option<crate::train::DataImportance>,
    /// How data importance draws each epoch from q: multinomial (N draws with replacement, the
    /// official code's; an epoch sees about 63% of the samples even when q is uniform) |
    /// systematic (the same expected epoch, each sample round(N q_i) times in a random order)
    /// [default: multinomial].
    #[arg(long, value_enum)]
    pub resampling: Option<crate::ops::sampling::Resampling>,
    /// Learning-rate schedule: cosine (per epoch, the official code) | calr (complexity-aware,
    /// per step: lr (1 - t/T)^gamma with gamma from --calr-gamma-max for the smallest sampled
    /// sub-network to its inverse for the largest; Jeon et al., CVPR 2025) [default: cosine].
    #[arg(long, value_enum)]
    pub lr_schedule: Option<crate::train::LrSchedule>,
    /// CaLR's largest exponent [default: 4].
    #[arg(long)]
    pub calr_gamma_max: Option<f64>,
    /// Momentum separation (Jeon et al., CVPR 2025): 5 = one momentum buffer per op of one
    /// split edge (chosen from --seed); each step uses and updates the buffer of the op its path
    /// puts there (weight decay included; with --off-path momentum, the off-path parameters move
    /// with that buffer too); FairNAS uses its first path's. 1 = plain SGD [default: 1].
    #[arg(long)]
    pub momentum_groups: Option<usize>,
    /// Keep the last N training images out of training, for `pada search` [default: 0].
    #[arg(long)]
    pub holdout: Option<usize>,
    /// Measure the gradient variance every E epochs, into metrics.jsonl [default: never].
    #[arg(long, value_name = "E")]
    pub gradvar_every: Option<usize>,
    /// Mini-batches per gradient-variance measurement [default: 8].
    #[arg(long, value_name = "K")]
    pub gradvar_batches: Option<usize>,
    /// When a step's gradients are not finite: stop (naming the step and the
    /// tensor) or skip the step and count it [default: stop].
    #[arg(long, value_enum)]
    pub on_nan: Option<crate::train::OnNan>,
    /// Run directory [default: runs/<method>-<data>-seed<seed>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// After training, rank the architectures of this ground truth with the new weights and print
    /// Kendall tau & co. next to the noise ceiling and the parameter-count and FLOPs predictors:
    /// embedded | nb201:cifar10 | nb201:cifar100 | nb201:imagenet16 | CSV [default: the data's own:
    /// embedded on the embedded data, nb201:cifar10 on CIFAR-10 (binary, pickle or image folder),
    /// nb201:cifar100, nb201:imagenet16; none on other data].
    #[arg(long, value_name = "TABLE")]
    pub ground_truth: Option<crate::table::TableSource>,
    /// Test images the verdict scores each architecture on (the first of the split, class-mixed)
    /// [default: 2000 on the embedded data, 1000 otherwise].
    #[arg(long)]
    pub verdict_images: Option<usize>,
    /// Architectures the verdict ranks: all (every row of the ground truth: 15,625 for NB201,
    /// about 40 min on 2 cores at the CPU defaults) | N (a fixed sample, one per isomorphism
    /// class, the same for every run; all of a smaller table) [default: 1000].
    #[arg(long)]
    pub verdict_archs: Option<crate::verdict::VerdictArchs>,
    /// No verdict after training.
    #[arg(long, conflicts_with = "ground_truth")]
    pub no_verdict: bool,
    /// Continue the interrupted run in DIR with its recorded settings.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// CPU threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

impl TrainArgs {
    pub(crate) fn config(&self) -> TrainConfig {
        let data = self.data.clone().unwrap_or(DataSpec::Embedded);
        let device = self.device.as_ref().map_or_else(|| "cpu".to_string(), |d| d.to_string());
        let preset = self.preset.unwrap_or_else(|| crate::train::config::Preset::default_for(&data, &device));
        let space = self.space.unwrap_or_default();
        let mut c = TrainConfig::with_preset(space, self.method.unwrap_or(Method::Pada), data, preset);
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f.clone() { c.$f = v; } )* };
        }
        set!(
            epochs,
            batch_size,
            channels,
            cells,
            lr,
            momentum,
            weight_decay,
            clip,
            seed,
            off_path,
            augment,
            holdout,
            data_importance,
            resampling,
            gradvar_every,
            gradvar_batches,
            on_nan,
            lr_schedule,
            calr_gamma_max,
            momentum_groups
        );
        if let Some(d) = &self.device {
            c.device = d.to_string();
            c.precision = d.default_precision();
        }
        if let Some(p) = self.precision {
            c.precision = p;
        }
        c.per_edge = self.per_edge;
        c.weighted_loss = self.weighted_loss;
        c.verdict = self.verdict_plan(space, &c.data, None);
        c
    }

    /// The verdict after training: the flags', over `recorded` (a resumed
    /// run's), over the data's default in `space`.
    fn verdict_plan(
        &self,
        space: crate::arch::Space,
        data: &DataSpec,
        recorded: Option<&crate::train::VerdictPlan>,
    ) -> crate::train::VerdictPlan {
        use crate::train::VerdictPlan;
        let base = recorded.cloned().unwrap_or(VerdictPlan::Unrecorded).spec(space, data);
        if self.no_verdict {
            return VerdictPlan::None;
        }
        let ground_truth = match (&self.ground_truth, &base) {
            (Some(t), _) => t.clone(),
            (None, Some(b)) => b.ground_truth.clone(),
            (None, None) => return VerdictPlan::None,
        };
        VerdictPlan::Judge(VerdictSpec {
            ground_truth,
            images: self.verdict_images.or(base.as_ref().map(|b| b.images)).unwrap_or_else(|| crate::verdict::default_images(data)),
            archs: self.verdict_archs.or(base.as_ref().map(|b| b.archs)).unwrap_or(crate::verdict::VerdictArchs::Sample(1000)),
        })
    }

    fn any_setting(&self) -> bool {
        self.method.is_some()
            || self.space.is_some()
            || self.data.is_some()
            || self.preset.is_some()
            || self.epochs.is_some()
            || self.batch_size.is_some()
            || self.channels.is_some()
            || self.cells.is_some()
            || self.lr.is_some()
            || self.momentum.is_some()
            || self.weight_decay.is_some()
            || self.clip.is_some()
            || self.seed.is_some()
            || self.off_path.is_some()
            || self.augment.is_some()
            || self.holdout.is_some()
            || self.data_importance.is_some()
            || self.resampling.is_some()
            || self.gradvar_every.is_some()
            || self.gradvar_batches.is_some()
            || self.on_nan.is_some()
            || self.lr_schedule.is_some()
            || self.calr_gamma_max.is_some()
            || self.momentum_groups.is_some()
            || self.per_edge
            || self.weighted_loss
            || self.out.is_some()
    }
}

/// What a `pada train` invocation will do, every input checked: the new
/// run's settings (none when resuming), its directory, where it runs, and the
/// verdict it ends with.
pub struct TrainPlan {
    pub config: Option<TrainConfig>,
    pub dir: PathBuf,
    pub device: Device,
    pub precision: crate::backend::Precision,
    pub verdict: Option<VerdictSpec>,
}

impl TrainArgs {
    /// The plan of these flags (the Python binding runs it too), every input
    /// checked before the first step: the settings, a resumed run's record,
    /// the ground truth.
    pub fn plan(&self) -> anyhow::Result<TrainPlan> {
        let a = self;
        let (config, dir, recorded) = match &a.resume {
            Some(dir) => {
                if a.any_setting() {
                    bail!(
                        "--resume {} continues the run with the settings in its config.json; give no other training flags",
                        dir.display()
                    );
                }
                (None, dir.clone(), Some(run::read_record(dir)?))
            }
            None => {
                let c = a.config();
                c.validate()?;
                let dir = a.out.clone().unwrap_or_else(|| run::default_dir(&c));
                (Some(c), dir, None)
            }
        };
        let (device, precision): (Device, _) = match (&config, &a.device, &recorded) {
            (Some(c), ..) => (c.device.parse()?, c.precision),
            (None, Some(d), _) => (d.clone(), a.precision.unwrap_or_else(|| d.default_precision())),
            (None, None, Some(r)) => (r.train.device.parse()?, a.precision.unwrap_or(r.train.precision)),
            (None, None, None) => unreachable!("a resumed run has a record"),
        };
        // the verdict: as asked, or as the resumed run recorded it (flags given now win)
        let (space, data, plan) = match (&config, &recorded) {
            (Some(c), _) => (c.space, c.data.clone(), c.verdict.clone()),
            (None, Some(r)) => (r.train.space, r.train.data.clone(), a.verdict_plan(r.train.space, &r.train.data, Some(&r.train.verdict))),
            (None, None) => unreachable!("a resumed run has a record"),
        };
        let verdict = plan.spec(space, &data).map(|s| crate::verdict::checked(s, space)).transpose()?;
        if let (Some(v), Some(c)) = (&verdict, &config) {
            if let Some(note) = crate::verdict::mismatch_note(&v.ground_truth, &c.data, &c.data.to_string()) {
                crate::logln!("{note}");
            }
        }
        let config = config.map(|mut c| {
            // the checked spec (a ground-truth file by its absolute path) is what the run records
            c.verdict = verdict.clone().map_or(crate::train::VerdictPlan::None, crate::train::VerdictPlan::Judge);
            c
        });
        Ok(TrainPlan { config, dir, device, precision, verdict })
    }
}

pub fn run(a: TrainArgs) -> anyhow::Result<()> {
    let TrainPlan { config, dir, device, precision, verdict } = a.plan()?;
    with_backend(&device, Some(precision), Job { config, dir, quiet: a.quiet, verdict })
}

struct Job {
    config: Option<TrainConfig>,
    dir: PathBuf,
    quiet: bool,
    verdict: Option<VerdictSpec>,
}

impl BackendJob for Job {
    fn run<B: Backend>(self, be: &B) -> anyhow::Result<()> {
        let mut bar = Bar::new(self.quiet);
        // Ctrl-C and SIGTERM stop training after the current step; a second one kills.
        let _ = ctrlc::set_handler(|| {
            if crate::train::interrupt_requested() {
                std::process::exit(130);
            }
            crate::train::request_interrupt();
        });
        let summary = match run::train(be, self.config, &self.dir, &mut bar) {
            Ok(s) => s,
            Err(e) => {
                bar.finish();
                if let Some(i) = e.downcast_ref::<crate::train::Interrupted>() {
                    crate::logln!(
                        "{i}: {} keeps the {} complete epoch(s); continue with: pada train --resume {}",
                        self.dir.display(),
                        i.epoch,
                        self.dir.display()
                    );
                    std::process::exit(130);
                }
                return Err(e);
            }
        };
        bar.finish();
        crate::logln!(
            "done: {}, final loss {:.4}, train accuracy {:.2}%, {:.0} s; run directory {}",
            crate::progress::plural(summary.epochs, "epoch"),
            summary.final_loss,
            summary.final_accuracy,
            summary.train_seconds,
            self.dir.display()
        );
        match &self.verdict {
            Some(spec) => {
                if !self.quiet {
                    crate::logln!("ranking the architectures of {} with the trained weights...", spec.ground_truth);
                }
                let start = std::time::Instant::now();
                let v = crate::verdict::judge(be, &self.dir, spec, None, self.quiet)?;
                crate::out!("{}", crate::verdict::report(&v));
                if !self.quiet {
                    crate::logln!(
                        "ranked in {:.0} s; {} holds the scores",
                        start.elapsed().as_secs_f64(),
                        self.dir.join(crate::verdict::VERDICT).display()
                    );
                }
            }
            None => {
                crate::logln!("test accuracy with the supernet's weights of {} random architectures:", summary.sample_archs.len());
                for (arch, acc) in &summary.sample_archs {
                    crate::logln!("  {acc:6.2}%  {arch}");
                }
            }
        }
        Ok(())
    }
}

/// The progress display: a bar per epoch and a line per finished epoch.
/// What `pada train` shows while it trains (also each run of `pada sweep`).
pub(crate) struct Bar {
    reporter: Option<Reporter>,
    quiet: bool,
    epochs: usize,
    /// Epochs left when the run started, and when: for the ETA.
    start: Option<(usize, std::time::Instant)>,
}

impl Bar {
    pub(crate) fn new(quiet: bool) -> Self {
        Self { reporter: None, quiet, epochs: 0, start: None }
    }
    pub(crate) fn finish(&mut self) {
        if let Some(r) = &mut self.reporter {
            r.finish();
        }
    }
}

fn fmt_prob(p: &[f64]) -> String {
    let shown = if p.len() > 5 { &p[..5] } else { p };
    let s: Vec<String> = shown.iter().map(|v| format!("{v:.2}")).collect();
    format!("[{}{}]", s.join(" "), if p.len() > 5 { " ..." } else { "" })
}

impl Progress for Bar {
    fn run_start(&mut self, r: &RunRecord, first_epoch: usize) {
        self.epochs = r.train.epochs;
        self.reporter = Some(Reporter::new(self.quiet, 1, "{prefix} [{bar:25}] {pos}/{len} {msg} ETA {eta}"));
        if !self.quiet {
            crate::logln!(
                "pada {}: {} on {} ({} train / {} test, {}), supernet C={} N={} ({} parameters), {} from epoch {}, batch {}, seed {}, {}",
                r.pada_version,
                r.train.method.name(),
                r.data.name,
                r.data.train_size,
                r.data.test_size,
                r.data.shape,
                r.supernet.channels,
                r.supernet.cells,
                r.supernet_params,
                crate::progress::plural(r.train.epochs, "epoch"),
                first_epoch,
                r.train.batch_size,
                r.train.seed,
                r.backend
            );
            if r.train.batch_size > r.data.train_size {
                crate::logln!(
                    "note: --batch-size {} is larger than the {} training images: each epoch is one step of {}",
                    r.train.batch_size,
                    r.data.train_size,
                    r.data.train_size
                );
            }
        }
    }
    fn step(&mut self, p: &StepProgress) {
        let (epochs, (left0, t0)) = (self.epochs, *self.start.get_or_insert((self.epochs - p.epoch, std::time::Instant::now())));
        let Some(r) = &mut self.reporter else { return };
        r.set_prefix(format!("epoch {}/{}", p.epoch + 1, epochs));
        r.update(p.step as u64, p.steps as u64, || {
            // steps done since the run started, and steps left, for the ETA
            let done = (left0 - (epochs - p.epoch)) * p.steps + p.step;
            let left = (epochs - p.epoch) * p.steps - p.step;
            let eta = t0.elapsed().as_secs_f64() / done.max(1) as f64 * left as f64;
            format!(
                "epoch {}/{epochs} step {}/{}: loss {:.3} acc {:.1}% {:.0} img/s p={} ETA {}",
                p.epoch + 1,
                p.step,
                p.steps,
                p.loss,
                p.accuracy,
                p.images as f64 / p.seconds.max(1e-9),
                fmt_prob(p.path_prob),
                crate::progress::duration(eta)
            )
        });
    }
    fn message(&mut self, line: &str) {
        if let Some(r) = &mut self.reporter {
            r.note(line);
        }
    }
    fn epoch(&mut self, m: &EpochMetrics) {
        let line = format!(
            "epoch {:>3}/{}: loss {:.4} acc {:.2}% lr {:.4} {:.0} img/s {:.1}s p={} data ess {:.3} unique {:.3}",
            m.epoch + 1,
            self.epochs,
            m.loss,
            m.accuracy,
            m.lr,
            m.images_per_sec,
            m.seconds,
            fmt_prob(&m.path_prob),
            m.data.ess_fraction,
            m.data.unique_fraction
        );
        if let Some(r) = &mut self.reporter {
            r.println(&line);
        }
    }
}
