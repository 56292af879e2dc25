//! The training core: one loop for every method and every backend.
//!
//! Each epoch: the data sampler fixes the epoch's sample order, a loader thread
//! turns it into batches, and every step samples its path(s), runs forward and
//! backward, clips and updates, then feeds the samplers. At the epoch's end the
//! samplers update their distributions and the run directory gets a checkpoint.

pub mod checkpoint;
pub mod config;
pub mod gradvar;
pub mod run;

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use config::{calr_lr, cosine_lr, DataImportance, LrSchedule, Method, SumnasConfig, TrainConfig, VerdictPlan};

use crate::backend::{Backend, SgdSlot};
use crate::data::{Batch, Data, Loader};
use crate::element::Element;
use crate::ops::SgdStep;
use crate::optim::clip_and_step;
use crate::sampler::{DataSampler, DataStats, PathSampler, PathSamplerKind};
use crate::space::Arch;
use crate::supernet::{Pass, Supernet};

/// One line of metrics.jsonl.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    /// Mean training cross-entropy over the epoch's forward passes.
    pub loss: f64,
    /// Top-1 training accuracy (%) of the sampled paths.
    pub accuracy: f64,
    pub lr: f64,
    /// The choice distribution the epoch was sampled from (K entries, or slots x K per slot).
    pub path_prob: Vec<f64>,
    pub data: DataStats,
    pub steps: usize,
    pub images: usize,
    pub seconds: f64,
    pub images_per_sec: f64,
    /// Steps skipped because their gradients were not finite (`--on-nan skip`).
    #[serde(default)]
    pub skipped_steps: usize,
    /// Gradient variance at the end of the epoch (`pada train --gradvar-every`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gradvar: Option<gradvar::GradVar>,
}

/// What the progress display is told after every step.
pub struct StepProgress<'a> {
    pub epoch: usize,
    pub step: usize,
    pub steps: usize,
    pub images: usize,
    pub seconds: f64,
    /// Running mean loss and accuracy (%) of the epoch so far.
    pub loss: f64,
    pub accuracy: f64,
    pub path_prob: &'a [f64],
    /// What the step did, when the trainer traces its steps ([`Trainer::trace`]).
    pub trace: Option<&'a StepTrace>,
}

/// One step in detail (for tests: each value costs a device synchronisation).
#[derive(Clone, Debug)]
pub struct StepTrace {
    /// The path(s) the step trained.
    pub paths: Vec<Arch>,
    /// The batch's training-set indices.
    pub indices: Vec<i32>,
    /// Mean cross-entropy of the batch (the last path's, for FairNAS).
    pub loss: f64,
    /// Total gradient norm before clipping.
    pub grad_norm: f64,
    /// The per-sample scores the data sampler saw.
    pub scores: Vec<f64>,
    /// PA&DA's path importance G after the step (empty for other samplers).
    pub path_importance: Vec<f64>,
}

/// An epoch in progress (see [`Trainer::begin_epoch`]).
pub struct EpochRun<B: Backend> {
    pub epoch: usize,
    pub steps: usize,
    /// Steps done.
    pub step: usize,
    pub lr: f64,
    /// The epoch's sample order.
    pub order: Vec<u32>,
    pub images: usize,
    /// Sum of the steps' learning rates.
    lr_sum: f64,
    /// Running mean loss and accuracy (%), refreshed every 16 steps.
    pub loss: f64,
    pub accuracy: f64,
    path_prob: Vec<f64>,
    sums: B::Buf,
    guard: Guard<B>,
    start: Instant,
}

/// The divergence guard of an epoch: its device counters, and the tensor
/// lists of the steps since they were last read (to name a bad tensor).
struct Guard<B: Backend> {
    buf: B::Buf,
    tensors: Vec<(usize, Vec<usize>)>,
}

/// What happens when a step's gradients are not finite.
pub use config::OnNan;

/// The run was stopped by Ctrl-C (SIGINT) or SIGTERM.
#[derive(Debug)]
pub struct Interrupted {
    pub epoch: usize,
    pub step: usize,
    pub steps: usize,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted in epoch {}, step {} of {}", self.epoch + 1, self.step, self.steps)
    }
}

impl std::error::Error for Interrupted {}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Asks a running training to stop after its current step (the Ctrl-C handler).
pub fn request_interrupt() {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Forgets an earlier interrupt (a library caller, such as the Python
/// binding, starts each call afresh; the CLI stops at its first).
pub fn clear_interrupt() {
    INTERRUPTED.store(false, std::sync::atomic::Ordering::SeqCst);
}

/// Whether an interrupt was requested.
pub fn interrupt_requested() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// `PADA_FAULT_NAN_STEP=k`: feed a batch of NaN at global step k (counted from
/// 0 over the whole run). A fault-injection hook for the divergence tests.
fn fault_nan_step() -> Option<usize> {
    std::env::var("PADA_FAULT_NAN_STEP").ok().and_then(|v| v.parse().ok())
}

/// SUMNAS's extra buffers: the weights before the inner loop, and the summed
/// weight changes.
struct SumnasState<B: Backend> {
    snapshot: Vec<B::Buf>,
    delta: Vec<B::Buf>,
}

pub struct Trainer<'a, B: Backend> {
    pub be: &'a B,
    pub config: TrainConfig,
    pub data: Arc<Data>,
    pub net: Supernet<B>,
    pub paths: PathSampler<B>,
    pub samples: DataSampler<B>,
    /// The next epoch to run (= epochs completed).
    pub epoch: usize,
    /// Record every step in detail ([`StepTrace`]); slow, for tests.
    pub trace: bool,
    /// Momentum separation's split edge (chosen from the seed).
    pub momentum_split_edge: usize,
    /// CaLR: the complexities of the smallest and the largest path.
    complexity_range: (f64, f64),
    sumnas: Option<SumnasState<B>>,
}

impl<'a, B: Backend> Trainer<'a, B> {
    pub fn new(be: &'a B, config: TrainConfig, data: Arc<Data>) -> anyhow::Result<Self> {
        let kind = config.method.path_sampler(config.per_edge);
        Self::with_paths(be, config, data, kind)
    }

    /// A trainer whose every step takes the path `g`: the stand-alone training
    /// of one architecture (only its parameters ever get gradients).
    pub fn standalone(be: &'a B, config: TrainConfig, data: Arc<Data>, g: Arch) -> anyhow::Result<Self> {
        anyhow::ensure!(config.method == Method::Spos, "stand-alone training uses the SPOS step");
        Self::with_paths(be, config, data, PathSamplerKind::Fixed(g))
    }

    fn with_paths(be: &'a B, config: TrainConfig, data: Arc<Data>, kind: PathSamplerKind) -> anyhow::Result<Self> {
        config.validate()?;
        let net = Supernet::new(be, config.supernet(&data), crate::rng::derive_seed(config.seed, crate::rng::Purpose::Init, 0, 0))?;
        let paths = PathSampler::new(kind, &net);
        let mut samples = DataSampler::new(config.method.data_sampler(), data.train.len());
        samples.resampling = config.resampling;
        let sumnas = (config.method == Method::Sumnas).then(|| SumnasState {
            snapshot: net.params.tensors.iter().map(|p| be.alloc(p.len())).collect(),
            delta: net.params.tensors.iter().map(|p| be.alloc(p.len())).collect(),
        });
        let mut net = net;
        if config.momentum_groups > 1 {
            net.params.set_momentum_groups(be, config.momentum_groups);
        }
        let momentum_split_edge = {
            use rand::Rng;
            crate::rng::stream(config.seed, crate::rng::Purpose::MomentumSplit, 0, 0).random_range(0..config.space.slots())
        };
        let (smallest, largest) = config.space.extremes();
        let complexity_range = (net.complexity(&smallest) as f64, net.complexity(&largest) as f64);
        Ok(Self { be, config, data, net, paths, samples, epoch: 0, trace: false, momentum_split_edge, complexity_range, sumnas })
    }

    pub fn done(&self) -> bool {
        self.epoch >= self.config.epochs
    }

    /// Trains one epoch, calling `progress` after every step.
    pub fn run_epoch(&mut self, progress: &mut dyn FnMut(&StepProgress)) -> anyhow::Result<EpochMetrics> {
        let mut ep = self.begin_epoch()?;
        let augment = self.config.augment.resolve(self.data.default_augment);
        let loader = Loader::spawn(
            Arc::new(self.data.train.clone()),
            self.data.norm.clone(),
            ep.order.clone(),
            self.config.batch_size,
            augment,
            self.config.seed,
            ep.epoch,
        );
        for batch in loader {
            let trace = self.train_step(&mut ep, &batch)?;
            progress(&StepProgress {
                epoch: ep.epoch,
                step: ep.step,
                steps: ep.steps,
                images: ep.images,
                seconds: ep.start.elapsed().as_secs_f64(),
                loss: ep.loss,
                accuracy: ep.accuracy,
                path_prob: &ep.path_prob,
                trace: trace.as_ref(),
            });
            if interrupt_requested() {
                anyhow::bail!(Interrupted { epoch: ep.epoch, step: ep.step, steps: ep.steps });
            }
        }
        self.end_epoch(ep)
    }

    /// Starts the next epoch: its learning rate, sample order and path stream.
    pub fn begin_epoch(&mut self) -> anyhow::Result<EpochRun<B>> {
        let (be, e, epochs, seed) = (self.be, self.epoch, self.config.epochs, self.config.seed);
        // cosine annealing, stepped once per epoch (SUMNAS anneals its outer optimiser)
        let lr = match self.config.lr_schedule {
            LrSchedule::Cosine => cosine_lr(self.base_lr(), e, epochs),
            LrSchedule::Calr => self.base_lr(), // per step, from the path (`step_lr`)
        };
        let path_prob = self.paths.distribution().to_vec();
        let order = self.samples.begin_epoch(be, seed, e)?;
        let steps = order.len().div_ceil(self.config.batch_size);
        self.paths.begin_epoch(be, seed, e, steps);
        Ok(EpochRun {
            epoch: e,
            steps,
            step: 0,
            lr,
            order,
            path_prob,
            sums: be.alloc_zeroed(3),
            // Non-finite gradients: counted (and their first step and tensor
            // recorded) on the device; such steps change nothing.
            guard: Guard { buf: be.alloc_zeroed(3), tensors: Vec::new() },
            images: 0,
            lr_sum: 0.0,
            start: Instant::now(),
            loss: f64::NAN,
            accuracy: f64::NAN,
        })
    }

    /// One training step of the epoch `ep` on `batch` (the next batch of its
    /// order); with [`Trainer::trace`], returns what the step did.
    pub fn train_step(&mut self, ep: &mut EpochRun<B>, batch: &Batch) -> anyhow::Result<Option<StepTrace>> {
        let be = self.be;
        let step = ep.step;
        let loss_before = self.trace.then(|| be.download(&ep.sums)[0].as_f64());
        let global = (ep.epoch * ep.steps + step, self.config.epochs * ep.steps);
        let (detail, lr) = self.step(batch, ep.lr, global, &mut ep.sums, &mut ep.guard, step)?;
        ep.lr_sum += lr;
        ep.step += 1;
        ep.images += batch.n;
        // Reading the sums waits for the device: every 16 steps is enough
        // for a progress display and for divergence, and lets a GPU run ahead.
        if step % 16 == 0 || ep.step == ep.steps || self.trace {
            let s = be.download(&ep.sums);
            ep.loss = s[0].as_f64() / s[2].as_f64();
            ep.accuracy = 100.0 * s[1].as_f64() / s[2].as_f64();
            self.check_divergence(&ep.guard, ep.epoch, ep.steps)?;
            ep.guard.tensors.clear();
        }
        Ok(detail.map(|(paths, grad_norm, scores)| StepTrace {
            paths,
            indices: batch.indices.clone(),
            loss: (be.download(&ep.sums)[0].as_f64() - loss_before.unwrap_or(0.0)) / batch.n as f64,
            grad_norm,
            scores,
            path_importance: self.paths.importance(be),
        }))
    }

    /// Ends the epoch `ep`: the samplers update their distributions.
    pub fn end_epoch(&mut self, ep: EpochRun<B>) -> anyhow::Result<EpochMetrics> {
        let be = self.be;
        let (e, epochs, seed) = (ep.epoch, self.config.epochs, self.config.seed);
        anyhow::ensure!(ep.step == ep.steps, "epoch {} ended after {} of its {} steps", e + 1, ep.step, ep.steps);
        let skipped_steps = be.download(&ep.guard.buf)[0].as_f64() as usize;
        if !ep.loss.is_finite() {
            anyhow::bail!("training diverged in epoch {}: every step's gradients were not finite (NaN or Inf); lower --lr", e + 1);
        }
        self.paths.end_epoch(be, e, epochs);
        let data = self.samples.end_epoch(be, seed, e, epochs);
        self.epoch += 1;
        let seconds = ep.start.elapsed().as_secs_f64();
        Ok(EpochMetrics {
            epoch: e,
            loss: ep.loss,
            accuracy: ep.accuracy,
            // the epoch's rate; CaLR's mean over the epoch's steps
            lr: match self.config.lr_schedule {
                LrSchedule::Cosine => ep.lr,
                LrSchedule::Calr => ep.lr_sum / ep.steps as f64,
            },
            path_prob: ep.path_prob,
            data,
            steps: ep.steps,
            images: ep.images,
            seconds,
            images_per_sec: ep.images as f64 / seconds,
            skipped_steps,
            gradvar: None,
        })
    }

    /// Stops with a message naming the step and the tensor, unless `--on-nan skip`.
    fn check_divergence(&self, guard: &Guard<B>, epoch: usize, steps: usize) -> anyhow::Result<()> {
        if self.config.on_nan == OnNan::Skip {
            return Ok(());
        }
        let g = self.be.download(&guard.buf);
        if g[0].as_f64() == 0.0 {
            return Ok(());
        }
        let (step, pos) = (g[1].as_f64() as usize, g[2].as_f64() as usize);
        let name = guard
            .tensors
            .iter()
            .find(|(s, _)| *s == step)
            .and_then(|(_, t)| t.get(pos))
            .map_or("a parameter".to_string(), |&i| self.net.params.tensors[i].name.clone());
        anyhow::bail!(
            "training diverged in epoch {}, step {} of {steps}: the gradient of {name} is not finite (NaN or Inf). That step changed nothing; the run directory keeps the last complete epoch. Lower --lr, or skip such steps with --on-nan skip",
            epoch + 1,
            step + 1
        )
    }

    /// The learning rate the schedule starts from (SUMNAS: its outer one).
    fn base_lr(&self) -> f64 {
        if self.config.method == Method::Sumnas {
            self.config.sumnas.outer_lr
        } else {
            self.config.lr
        }
    }

    /// The learning rate of a step on `paths`: the epoch's (cosine), or CaLR's
    /// for the paths' mean complexity at global step `t` of `total` (FairNAS's
    /// five paths together cover every op once, so their mean is the same
    /// every step).
    fn step_lr(&self, epoch_lr: f64, paths: &[Arch], (t, total): (usize, usize)) -> f64 {
        match self.config.lr_schedule {
            LrSchedule::Cosine => epoch_lr,
            LrSchedule::Calr => {
                let c = paths.iter().map(|g| self.net.complexity(g) as f64).sum::<f64>() / paths.len() as f64;
                calr_lr(self.base_lr(), t, total, c, self.complexity_range, self.config.calr_gamma_max)
            }
        }
    }

    /// One training step on `batch` (global step `global.0` of `global.1`).
    /// Returns the learning rate it used and, when tracing, the paths, the
    /// gradient norm before clipping and the per-sample scores.
    #[allow(clippy::type_complexity)]
    fn step(
        &mut self,
        batch: &Batch,
        epoch_lr: f64,
        global: (usize, usize),
        sums: &mut B::Buf,
        guard: &mut Guard<B>,
        step: usize,
    ) -> anyhow::Result<(Option<(Vec<Arch>, f64, Vec<f64>)>, f64)> {
        let be = self.be;
        let n = batch.n;
        let x = match fault_nan_step() {
            // a test hook: a NaN batch at one step, to exercise divergence handling
            Some(k) if k == self.epochs_steps_before() + step => be.upload_f64(&vec![f64::NAN; batch.x.len()]),
            _ => be.upload_f64(&batch.x),
        };
        let labels = be.upload_i32(&batch.labels);
        let weights = (self.config.weighted_loss).then(|| be.upload_f64(&self.samples.loss_weights(&batch.indices)));
        let paths = self.paths.next_paths()?;
        let lr = self.step_lr(epoch_lr, &paths, global);
        if self.config.momentum_groups > 1 {
            // momentum separation: the buffers of the op the (first) path puts on the split edge
            self.net.params.activate_momentum_group(paths[0].choice(self.momentum_split_edge));
        }
        let h = SgdStep { lr, momentum: self.config.momentum, weight_decay: self.config.weight_decay };
        let mut detail = None;
        match self.config.method {
            Method::Sumnas => self.sumnas_step(&x, &labels, n, &paths, lr, sums, guard, step),
            _ => {
                // One path (SPOS, PA, DA, PA&DA) or five accumulated (FairNAS), then one update.
                self.net.params.zero_grads(be);
                let mut proxy = None;
                for g in &paths {
                    proxy = Some(self.forward_backward(&x, &labels, weights.as_ref(), n, g, sums));
                }
                let norms = self.clipped_step(&paths, &h, guard, step);
                self.paths.observe(be, &self.net, &norms);
                let proxy = proxy.expect("at least one path");
                self.samples.observe(be, &proxy);
                if self.trace {
                    let grad_norm = be.download(&norms.sq_norms).iter().map(|v| v.as_f64()).sum::<f64>().sqrt();
                    detail = Some((paths.clone(), grad_norm, be.download(&proxy).iter().map(|v| v.as_f64()).collect()));
                }
            }
        }
        Ok((detail, lr))
    }

    /// `clip_grad_norm_` and SGD on the tensors with gradients after `paths`,
    /// guarded against non-finite gradients (see [`Guard`]).
    fn clipped_step(&mut self, paths: &[Arch], h: &SgdStep, guard: &mut Guard<B>, step: usize) -> crate::optim::StepNorms<B> {
        let on_path = self.on_path(paths);
        let guard_arg = Some((&mut guard.buf, step as i64));
        let norms = clip_and_step(self.be, &mut self.net.params, &on_path, h, Some(self.config.clip), self.config.off_path, guard_arg);
        guard.tensors.push((step, norms.tensors.clone()));
        norms
    }

    /// Steps of the epochs before the current one.
    fn epochs_steps_before(&self) -> usize {
        self.epoch * self.data.train.len().div_ceil(self.config.batch_size)
    }

    fn forward_backward(
        &mut self,
        x: &B::Buf,
        labels: &B::IBuf,
        weights: Option<&B::Buf>,
        n: usize,
        g: &Arch,
        sums: &mut B::Buf,
    ) -> B::Buf {
        // only data importance uses the scores; the others get the free proxy
        let importance = if self.samples.kind == crate::sampler::DataSamplerKind::Importance {
            self.config.data_importance
        } else {
            DataImportance::Proxy
        };
        forward_backward(self.be, &mut self.net, x, labels, weights, n, g, sums, importance)
    }

    fn on_path(&self, paths: &[Arch]) -> Vec<bool> {
        on_path(&self.net, paths)
    }

    /// SUMNAS (official baseline): for each of the 5 fair paths, `inner_steps`
    /// clipped SGD steps (inner momentum persists across paths and steps, as
    /// the official inner optimiser's state does), the weight change recorded
    /// and the weights restored; then one outer SGD step (no momentum, weight
    /// decay) on the mean change, applied to every parameter.
    #[allow(clippy::too_many_arguments)]
    fn sumnas_step(
        &mut self,
        x: &B::Buf,
        labels: &B::IBuf,
        n: usize,
        paths: &[Arch],
        outer_lr: f64,
        sums: &mut B::Buf,
        guard: &mut Guard<B>,
        step: usize,
    ) {
        let be = self.be;
        let sc = self.config.sumnas;
        let st = self.sumnas.as_mut().expect("SUMNAS state");
        for (p, (snap, delta)) in self.net.params.tensors.iter().zip(st.snapshot.iter_mut().zip(st.delta.iter_mut())) {
            be.copy(snap, &p.value);
            be.fill(delta, B::T::from_f64(0.0));
        }
        let inner = SgdStep { lr: sc.inner_lr, momentum: sc.inner_momentum, weight_decay: 0.0 };
        for g in paths {
            for _ in 0..sc.inner_steps {
                self.net.params.zero_grads(be);
                self.forward_backward(x, labels, None, n, g, sums);
                self.clipped_step(std::slice::from_ref(g), &inner, guard, step);
            }
            let st = self.sumnas.as_mut().expect("SUMNAS state");
            for (p, (snap, delta)) in self.net.params.tensors.iter_mut().zip(st.snapshot.iter().zip(st.delta.iter_mut())) {
                // delta += w_before - w_after, then restore w_before
                be.axpy(delta, 1.0, snap);
                be.axpy(delta, -1.0, &p.value);
                be.copy(&mut p.value, snap);
            }
        }
        // outer step: grad = mean change; every parameter now has a gradient
        let st = self.sumnas.as_mut().expect("SUMNAS state");
        for (p, delta) in self.net.params.tensors.iter_mut().zip(st.delta.iter()) {
            be.copy(&mut p.grad, delta);
            be.scale(&mut p.grad, 1.0 / paths.len() as f64);
            p.seen = true;
            p.dirty = true;
        }
        let outer = SgdStep { lr: outer_lr, momentum: 0.0, weight_decay: sc.outer_weight_decay };
        // With momentum 0 the momentum buffer only carries the step: the
        // snapshot (no longer needed) serves, so that the inner momentum survives.
        let mut slots: Vec<SgdSlot<'_, B>> = self
            .net
            .params
            .tensors
            .iter_mut()
            .zip(st.snapshot.iter_mut())
            .map(|(p, snap)| SgdSlot { value: &mut p.value, grad: &p.grad, momentum: snap })
            .collect();
        let mut one = be.alloc(1);
        be.fill(&mut one, B::T::from_f64(1.0));
        be.sgd_step(&mut slots, &outer, &one);
    }
}

/// Forward and backward of one path on `x` (gradients accumulate into the
/// parameters'); adds the batch's loss and correct count to `sums` and returns
/// the per-sample importance scores of `importance`'s kind.
#[allow(clippy::too_many_arguments)]
pub fn forward_backward<B: Backend>(
    be: &B,
    net: &mut Supernet<B>,
    x: &B::Buf,
    labels: &B::IBuf,
    weights: Option<&B::Buf>,
    n: usize,
    g: &Arch,
    sums: &mut B::Buf,
    importance: DataImportance,
) -> B::Buf {
    let k = net.config.classes;
    let mut xin = be.alloc(be.len(x));
    be.copy(&mut xin, x);
    let tape = net.forward(be, xin, n, g, true);
    let (mut loss, mut dlogits, mut proxy) = (be.alloc(n), be.alloc(n * k), be.alloc(n));
    be.softmax_cross_entropy(n, k, &tape.logits, labels, weights, &mut loss, &mut dlogits, &mut proxy);
    be.batch_metrics(n, k, &tape.logits, labels, &loss, sums);
    let mut sq = be.alloc_zeroed(n);
    let mut pass = Pass::gradients();
    match importance {
        DataImportance::Proxy => sq = proxy,
        // the training step's own backward pass below measures each sample's part of every reduction
        DataImportance::Batch => pass.per_sample_sq_norms = Some(&mut sq),
        DataImportance::Classifier | DataImportance::Full => {
            // each sample's own loss gradient at the logits: softmax - onehot
            let mut dz = be.alloc(n * k);
            let mut scratch = (be.alloc(n), be.alloc(n));
            be.softmax_cross_entropy(n, k, &tape.logits, labels, None, &mut scratch.0, &mut dz, &mut scratch.1);
            be.scale(&mut dz, n as f64);
            if importance == DataImportance::Classifier {
                net.classifier_per_sample_sq_norms(be, &tape, &dz, &mut sq);
            } else {
                net.backward_with(
                    be,
                    &tape,
                    &dz,
                    &mut Pass { frozen_bn_statistics: true, gradients: false, per_sample_sq_norms: Some(&mut sq) },
                );
            }
        }
    }
    net.backward_with(be, &tape, &dlogits, &mut pass);
    if importance != DataImportance::Proxy {
        be.elementwise_sqrt(&mut sq);
    }
    sq
}

/// Which parameter tensors are on any of `paths`.
pub fn on_path<B: Backend>(net: &Supernet<B>, paths: &[Arch]) -> Vec<bool> {
    let mut on = vec![false; net.params.len()];
    for g in paths {
        for id in net.path_params(g) {
            on[id.0] = true;
        }
    }
    on
}
