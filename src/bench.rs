//! `pada bench`: what a training step, PA&DA's extra work, FairNAS and ranking
//! cost on this machine, measured in one run.
//!
//! Steps follow a fixed sequence of uniformly sampled paths (SplitMix64 from
//! seed 0, architecture = next() % (the space's count) as pada's index, e.g.
//! base 5 in NAS-Bench-201): the sequence `scripts/torch_step_bench.py` times
//! in PyTorch, so the two are comparable.

use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::arch::{Arch, Space};
use crate::backend::{Backend, LaunchStat};
use crate::data::{Batch, Data, DataSpec};
use crate::eval::{evaluate, EvalSet};
use crate::ops::SgdStep;
use crate::optim::{clip_and_step, OffPath};
use crate::rng::SplitMix64;
use crate::sampler::{DataSampler, DataSamplerKind, PathSampler, PathSamplerKind};
use crate::supernet::{Supernet, SupernetConfig};
use crate::train::{on_path, DataImportance, EpochRun, Method, TrainConfig, Trainer};

/// Median and spread of repeated timings, in milliseconds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Timing {
    pub median_ms: f64,
    pub p10_ms: f64,
    pub p90_ms: f64,
    pub samples: usize,
}

impl Timing {
    /// No measurement (reports of older versions).
    fn none() -> Self {
        Timing { median_ms: f64::NAN, p10_ms: f64::NAN, p90_ms: f64::NAN, samples: 0 }
    }
    pub fn of(mut secs: Vec<f64>) -> Self {
        assert!(!secs.is_empty());
        secs.sort_by(|a, b| a.partial_cmp(b).expect("finite timings"));
        let q = |f: f64| secs[((secs.len() - 1) as f64 * f).round() as usize] * 1e3;
        Timing { median_ms: q(0.5), p10_ms: q(0.1), p90_ms: q(0.9), samples: secs.len() }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchReport {
    pub backend: String,
    pub config: String,
    pub supernet: SupernetConfig,
    pub batch_size: usize,
    pub steps: usize,
    pub warmup: usize,
    pub spos_step: Timing,
    pub pada_step: Timing,
    pub fairnas_step: Timing,
    /// PA&DA's extra work per step, each part timed alone over many repetitions.
    pub extra_sample_scores: Timing,
    pub extra_path_importance: Timing,
    pub extra_path_sampling: Timing,
    /// The end-of-epoch data resampling (fold the score log, q, the next
    /// epoch's draws, and the order and q brought to the host) at CIFAR's
    /// 50,000 samples and ImageNet's 1,281,167.
    pub epoch_resampling_50k: Timing,
    #[serde(default = "Timing::none")]
    pub epoch_resampling_imagenet: Timing,
    /// PA&DA steps scoring samples by the exact per-sample gradient norms
    /// instead of the proxy (which the loss kernel computes for free).
    pub data_importance_classifier: Timing,
    pub data_importance_batch: Timing,
    pub data_importance_full: Timing,
    /// Sum of the per-step extra parts, plus the resampling spread over an
    /// epoch of 50,000 / batch steps, as a percentage of the median SPOS step.
    pub pada_overhead_percent: f64,
    /// The same overhead measured directly: median PA&DA step / median SPOS
    /// step - 1 (noisier: both steps vary by more than the overhead).
    pub pada_overhead_direct_percent: f64,
    pub spos_images_per_sec: f64,
    pub ranking_archs_per_sec: f64,
    pub ranking_images: usize,
    /// Peak resident memory of the process (CPU) in MiB.
    pub peak_rss_mib: Option<f64>,
    pub device_memory_mib: Option<f64>,
    /// Each op at the configuration's shapes (`--kernels`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kernels: Vec<KernelTiming>,
    /// Kernel launches (GPU) or op calls (CPU) of SPOS steps, per step
    /// (`--kernels`): each timed alone, so the shares say where a step's time goes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_launches: Vec<LaunchStat>,
    #[serde(default)]
    pub step_launches_steps: usize,
}

/// One op timed alone.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KernelTiming {
    pub op: String,
    pub shape: String,
    pub timing: Timing,
    /// Arithmetic rate for the convolutions and the classifier.
    pub gflops: Option<f64>,
}

/// Times every op of a training step at the shapes of `config` with batch `n`.
pub fn kernel_timings<B: Backend>(be: &B, config: &SupernetConfig, n: usize, reps: usize) -> Vec<KernelTiming> {
    use crate::geometry::{ActShape, ConvGeom, LinearGeom, PoolGeom};
    let mut out = Vec::new();
    let rand = |len: usize, seed: u64| -> B::Buf {
        let mut s = SplitMix64(seed);
        be.upload_f64(&(0..len).map(|_| (s.next() >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0).collect::<Vec<_>>())
    };
    let mut push = |op: &str, shape: String, flops: Option<f64>, t: Timing| {
        let gflops = flops.map(|f| f / (t.median_ms * 1e6));
        out.push(KernelTiming { op: op.into(), shape, timing: t, gflops });
    };
    use crate::space::nb201::supernet::{stage_channels, stage_hw};
    if config.space != Space::NB201 {
        return out; // (the ops of NAS-Bench-201's stages; other spaces' are timed in their steps)
    }
    for stage in 0..3 {
        let c = stage_channels(config, stage);
        let (h, w) = stage_hw(config, stage);
        let s = ActShape::new(c, n, h, w);
        let x = rand(s.len(), 1);
        let dy = rand(s.len(), 2);
        for k in [3, 1] {
            let g = ConvGeom::new(n, c, h, w, c, k, 1);
            let wt = rand(g.weight_len(), 3);
            let b = rand(c, 4);
            let mut y = be.alloc(s.len());
            let flops = Some(2.0 * g.macs() as f64);
            let shape = format!("{c}x{n}x{h}x{w} k{k}");
            push("conv2d_forward", shape.clone(), flops, repeat(be, reps, || be.conv2d_forward(&g, &x, true, &wt, Some(&b), &mut y)));
            push(
                "conv2d_backward_data",
                shape.clone(),
                flops,
                repeat(be, reps, || be.conv2d_backward_data(&g, &dy, &wt, Some(&x), &mut y, true)),
            );
            let (mut dw, mut db) = (be.alloc_zeroed(g.weight_len()), be.alloc_zeroed(c));
            push(
                "conv2d_backward_weight",
                shape,
                flops,
                repeat(be, reps, || be.conv2d_backward_weight(&g, &x, true, &dy, &mut dw, Some(&mut db), None)),
            );
        }
        let shape = format!("{c}x{n}x{h}x{w}");
        let (mut y, mut st) = (be.alloc(s.len()), be.alloc(2 * c));
        push("batchnorm_forward", shape.clone(), None, repeat(be, reps, || be.batchnorm_forward(&s, &x, &mut y, true, false, &mut st)));
        push("batchnorm_backward", shape.clone(), None, repeat(be, reps, || be.batchnorm_backward(&s, &x, &st, &dy, &mut y)));
        let pg = PoolGeom::avg3x3(s);
        push("avgpool3x3_forward", shape.clone(), None, repeat(be, reps, || be.avgpool3x3_forward(&pg, &x, &mut y, true)));
        push("avgpool3x3_backward", shape.clone(), None, repeat(be, reps, || be.avgpool3x3_backward(&pg, &dy, &mut y, true)));
        push("add_assign", shape, None, repeat(be, reps, || be.add_assign(&mut y, &x)));
        if stage < 2 {
            let g = ConvGeom::new(n, c, h, w, 2 * c, 3, 2);
            let wt = rand(g.weight_len(), 5);
            let mut y2 = be.alloc(g.output().len());
            let d2 = rand(g.output().len(), 6);
            let flops = Some(2.0 * g.macs() as f64);
            let shape = format!("{c}x{n}x{h}x{w} k3 s2");
            push("conv2d_forward", shape.clone(), flops, repeat(be, reps, || be.conv2d_forward(&g, &x, true, &wt, None, &mut y2)));
            let mut dx = be.alloc(s.len());
            push(
                "conv2d_backward_data",
                shape,
                flops,
                repeat(be, reps, || be.conv2d_backward_data(&g, &d2, &wt, Some(&x), &mut dx, false)),
            );
        }
    }
    let (c_last, k) = (stage_channels(config, 2), config.classes);
    let lg = LinearGeom::new(n, c_last, k);
    let (xl, wl, bl) = (rand(n * c_last, 7), rand(k * c_last, 8), rand(k, 9));
    let mut logits = be.alloc(n * k);
    push(
        "linear_forward",
        format!("{n}x{c_last}->{k}"),
        Some(2.0 * (n * c_last * k) as f64),
        repeat(be, reps, || be.linear_forward(&lg, &xl, &wl, &bl, &mut logits)),
    );
    let labels = be.upload_i32(&(0..n as i32).map(|i| i % k as i32).collect::<Vec<_>>());
    let (mut l, mut d, mut p) = (be.alloc(n), be.alloc(n * k), be.alloc(n));
    push(
        "softmax_cross_entropy",
        format!("{n}x{k}"),
        None,
        repeat(be, reps, || be.softmax_cross_entropy(n, k, &logits, &labels, None, &mut l, &mut d, &mut p)),
    );
    if let Ok(mut net) = Supernet::new(be, *config, 0) {
        let all = vec![true; net.params.len()];
        for t in &mut net.params.tensors {
            t.seen = true;
        }
        let h = SgdStep { lr: 0.05, momentum: 0.9, weight_decay: 2.5e-4 };
        let count = net.params.len();
        push(
            "sq_norms + clip + sgd_step (all tensors)",
            format!("{count} tensors, {} values", net.params.numel()),
            None,
            repeat(be, reps, || {
                clip_and_step(be, &mut net.params, &all, &h, Some(5.0), OffPath::Momentum, None);
            }),
        );
    }
    out
}

/// The sequence of benchmark paths in `space`.
pub fn bench_paths(space: Space, count: usize) -> Vec<Arch> {
    let mut s = SplitMix64(0);
    (0..count).map(|_| space.arch((s.next() % space.num_archs() as u64) as usize).expect("in range")).collect()
}

fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// PA&DA's epoch-end resampling of `n` samples, `epochs` times: after a first
/// epoch (a permutation) every epoch is drawn with repeats, as in training.
fn resampling<B: Backend>(be: &B, n: usize, epochs: usize) -> anyhow::Result<Timing> {
    let mut sampler = DataSampler::<B>::new(DataSamplerKind::Importance, n);
    let scores = be.upload_f64(&(0..n).map(|i| 0.5 + (i % 97) as f64 / 97.0).collect::<Vec<_>>());
    let mut ends = Vec::new();
    for epoch in 0..=epochs {
        sampler.begin_epoch(be, 0, epoch)?;
        sampler.observe(be, &scores);
        let (_, secs) = be.timed(|| sampler.end_epoch(be, 0, epoch, epochs + 1));
        if epoch > 0 {
            ends.push(secs);
        }
    }
    Ok(Timing::of(ends))
}

/// Repeats `f` until `reps` timings are collected.
fn repeat<B: Backend>(be: &B, reps: usize, mut f: impl FnMut()) -> Timing {
    Timing::of((0..reps).map(|_| be.timed(&mut f).1).collect())
}

pub struct BenchOptions {
    pub name: String,
    pub config: SupernetConfig,
    pub batch_size: usize,
    pub steps: usize,
    pub warmup: usize,
    /// Data for the ranking measurement (its test split).
    pub rank_data: DataSpec,
    pub rank_archs: usize,
    /// Also time every op alone.
    pub kernels: bool,
}

/// Data for benchmark trainers: `steps` batches of `batch` synthetic images of
/// `config`'s shape (it sizes their epochs; the steps train on any batch).
pub fn bench_data(config: &SupernetConfig, batch: usize, steps: usize) -> anyhow::Result<Arc<Data>> {
    let spec: DataSpec = format!("synthetic:{}:{}:1:{}", config.input, batch * steps, config.classes).parse()?;
    Ok(Arc::new(spec.load()?))
}

/// A trainer of `method` on `data` with `config`'s supernet, its epoch begun,
/// taking the paths `paths` in order when given (else its own sampler's).
pub fn bench_trainer<'a, B: Backend>(
    be: &'a B,
    config: &SupernetConfig,
    batch_size: usize,
    data: &Arc<Data>,
    method: Method,
    importance: DataImportance,
    paths: Option<&[Arch]>,
) -> anyhow::Result<(Trainer<'a, B>, EpochRun<B>)> {
    let preset = crate::train::config::Preset::Official;
    let (net, mut config) = (config, TrainConfig::with_preset(config.space, method, data.spec.clone(), preset));
    config.batch_size = batch_size;
    config.channels = net.channels;
    config.cells = net.cells;
    config.epochs = 1;
    config.data_importance = importance;
    let mut t = Trainer::new(be, config, data.clone())?;
    if let Some(p) = paths {
        t.paths.replay(p.iter().map(|g| vec![*g]).collect());
    }
    let ep = t.begin_epoch()?;
    Ok((t, ep))
}

/// A trainer, its epoch and its step times.
struct Contender<'a, B: Backend> {
    trainer: Trainer<'a, B>,
    ep: EpochRun<B>,
    times: Vec<f64>,
}

impl<B: Backend> Contender<'_, B> {
    fn timed_step(&mut self, be: &B, batch: &Batch, keep: bool) -> anyhow::Result<()> {
        let (r, t) = be.timed(|| self.trainer.train_step(&mut self.ep, batch));
        r?;
        if keep {
            self.times.push(t);
        }
        Ok(())
    }
}

pub fn run<B: Backend>(be: &B, o: &BenchOptions, mut log: impl FnMut(&str)) -> anyhow::Result<BenchReport> {
    let (n, k) = (o.batch_size, o.config.classes);
    let total = o.warmup + o.steps;
    // The trainers' own data only sizes their epochs; every step trains on `batch`.
    let data = bench_data(&o.config, n, total)?;
    let images: Vec<f64> = {
        let mut s = SplitMix64(1);
        (0..n * o.config.input.len()).map(|_| (s.next() >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0).collect()
    };
    let batch = Batch { n, x: images, labels: (0..n as i32).map(|i| i % k as i32).collect(), indices: (0..n as i32).collect() };
    let paths = bench_paths(o.config.space, total);

    // SPOS, PA&DA and PA&DA with each exact per-sample score, interleaved on the same paths.
    log("timing SPOS, PA&DA and per-sample-norm steps");
    let mut contenders = Vec::new();
    for (method, importance) in [
        (Method::Spos, DataImportance::Proxy),
        (Method::Pada, DataImportance::Proxy),
        (Method::Pada, DataImportance::Classifier),
        (Method::Pada, DataImportance::Batch),
        (Method::Pada, DataImportance::Full),
    ] {
        let (trainer, ep) = bench_trainer(be, &o.config, n, &data, method, importance, Some(&paths))?;
        contenders.push(Contender { trainer, ep, times: Vec::new() });
    }
    for i in 0..total {
        for c in &mut contenders {
            c.timed_step(be, &batch, i >= o.warmup)?;
        }
    }
    let mut timings = contenders.iter().map(|c| Timing::of(c.times.clone()));
    let (spos_step, pada_step) = (timings.next().expect("SPOS"), timings.next().expect("PA&DA"));
    let data_importance_classifier = timings.next().expect("classifier");
    let data_importance_batch = timings.next().expect("batch");
    let data_importance_full = timings.next().expect("full");

    log("timing FairNAS steps");
    let (trainer, ep) = bench_trainer(be, &o.config, n, &data, Method::Fairnas, DataImportance::Proxy, None)?;
    let mut fair = Contender { trainer, ep, times: Vec::new() };
    for i in 0..(o.steps / 4).max(3) + 1 {
        fair.timed_step(be, &batch, i > 0)?;
    }

    log("timing PA&DA's extra work");
    let reps = 200;
    let pada = &mut contenders[1].trainer;
    // the parts of a PA&DA step that a SPOS step does not have, each alone
    let mut scores = DataSampler::<B>::new(DataSamplerKind::Importance, n * reps);
    scores.begin_epoch(be, 0, 0)?;
    let proxy = be.upload_f64(&vec![0.5; n]);
    let extra_sample_scores = repeat(be, reps, || scores.observe(be, &proxy));
    let g = paths[0];
    let on = on_path(&pada.net, &[g]);
    let norms = clip_and_step(be, &mut pada.net.params, &on, &SGD, Some(5.0), OffPath::Frozen, None);
    let mut importance = PathSampler::<B>::new(PathSamplerKind::Importance { per_edge: false }, &pada.net);
    importance.begin_epoch(be, 0, 0, 1);
    importance.replay(vec![vec![g]]);
    importance.next_paths()?;
    let extra_path_importance = repeat(be, reps, || importance.observe(be, &pada.net, &norms));
    let mut sampler = PathSampler::<B>::new(PathSamplerKind::Importance { per_edge: false }, &pada.net);
    sampler.begin_epoch(be, 0, 0, reps);
    let extra_path_sampling = repeat(be, reps, || {
        let _ = sampler.next_paths();
    });
    log("timing the epoch-end resampling (N = 50,000 and 1,281,167)");
    let epoch_resampling_50k = resampling(be, 50_000, 10)?;
    let epoch_resampling_imagenet = resampling(be, 1_281_167, 3)?;
    let steps_per_epoch = 50_000f64 / n as f64;
    let per_step_ms = extra_sample_scores.median_ms + extra_path_importance.median_ms + extra_path_sampling.median_ms;
    let pada_overhead_percent = 100.0 * (per_step_ms + epoch_resampling_50k.median_ms / steps_per_epoch) / spos_step.median_ms;

    let (step_launches, step_launches_steps) = if o.kernels {
        log("profiling the launches (op calls on the CPU) of SPOS steps");
        let profiled = o.steps.min(8);
        let (mut trainer, mut ep) = bench_trainer(be, &o.config, n, &data, Method::Spos, DataImportance::Proxy, Some(&paths[..profiled]))?;
        let (r, stats) = be.profile_launches(|| (0..profiled).try_for_each(|_| trainer.train_step(&mut ep, &batch).map(|_| ())));
        r?;
        (stats, profiled)
    } else {
        (Vec::new(), 0)
    };

    log("timing ranking");
    let rank_data: Data = o.rank_data.load()?;
    let rank_net = Supernet::new(be, SupernetConfig { classes: rank_data.classes(), input: rank_data.shape(), ..o.config }, 0)?;
    let set = EvalSet::new(be, &rank_data.test, &rank_data.norm, 512);
    let archs = bench_paths(o.config.space, o.rank_archs);
    let (_, t_rank) = be.timed(|| {
        for g in &archs {
            let _ = evaluate(be, &rank_net, g, &set);
        }
    });
    Ok(BenchReport {
        backend: be.name(),
        config: o.name.clone(),
        supernet: o.config,
        batch_size: n,
        steps: o.steps,
        warmup: o.warmup,
        spos_images_per_sec: n as f64 / (spos_step.median_ms / 1e3),
        pada_overhead_direct_percent: 100.0 * (pada_step.median_ms / spos_step.median_ms - 1.0),
        spos_step,
        pada_step,
        fairnas_step: Timing::of(fair.times),
        extra_sample_scores,
        extra_path_importance,
        extra_path_sampling,
        epoch_resampling_50k,
        epoch_resampling_imagenet,
        data_importance_classifier,
        data_importance_batch,
        data_importance_full,
        pada_overhead_percent,
        ranking_archs_per_sec: archs.len() as f64 / t_rank,
        ranking_images: set.images,
        peak_rss_mib: peak_rss_mib(),
        device_memory_mib: be.device_memory().map(|b| b as f64 / (1 << 20) as f64),
        kernels: if o.kernels { kernel_timings(be, &o.config, n, 10) } else { Vec::new() },
        step_launches,
        step_launches_steps,
    })
}

/// The official SGD settings.
const SGD: SgdStep = SgdStep { lr: 0.05, momentum: 0.9, weight_decay: 2.5e-4 };

/// The human-readable table.
pub fn format_report(r: &BenchReport) -> String {
    let row = |name: &str, t: &Timing| format!("  {name:<38} {:>10.3} {:>10.3} {:>10.3}\n", t.median_ms, t.p10_ms, t.p90_ms);
    let mut s = format!(
        "pada bench: {}, config {} ({}), batch {}, {} steps after {} warm-up\n",
        r.backend, r.config, r.supernet, r.batch_size, r.steps, r.warmup
    );
    s += &format!("  {:<38} {:>10} {:>10} {:>10}\n", "milliseconds", "median", "p10", "p90");
    s += &row("SPOS step", &r.spos_step);
    s += &row("PA&DA step", &r.pada_step);
    s += &row(&format!("FairNAS step ({} paths)", r.supernet.space.choices()), &r.fairnas_step);
    s += "  PA&DA's extra work:\n";
    s += &row("  per-sample score update", &r.extra_sample_scores);
    s += &row("  per-op gradient-norm importance", &r.extra_path_importance);
    s += &row("  path sampling", &r.extra_path_sampling);
    s += &row("  epoch-end resampling (N=50,000)", &r.epoch_resampling_50k);
    s += &row("  epoch-end resampling (N=1,281,167)", &r.epoch_resampling_imagenet);
    s += &format!(
        "  PA&DA overhead over SPOS: {:.3}% (parts, resampling spread over 50,000/{} steps); {:+.2}% (median steps, noisier)\n",
        r.pada_overhead_percent, r.batch_size, r.pada_overhead_direct_percent
    );
    s += "  PA&DA steps with exact per-sample gradient norms as data scores:\n";
    s += &row("  classifier (weight and bias)", &r.data_importance_classifier);
    s += &row("  batch (each sample's part of the step)", &r.data_importance_batch);
    s += &row("  full (every parameter, frozen BN)", &r.data_importance_full);
    let over = |t: &Timing| 100.0 * (t.median_ms / r.spos_step.median_ms - 1.0);
    s += &format!(
        "  i.e. over the SPOS step: proxy {:+.1}%, classifier {:+.1}%, batch {:+.1}%, full {:+.1}% (median steps)\n",
        r.pada_overhead_direct_percent,
        over(&r.data_importance_classifier),
        over(&r.data_importance_batch),
        over(&r.data_importance_full)
    );
    s += &format!("  SPOS throughput: {:.1} images/s\n", r.spos_images_per_sec);
    s += &format!("  ranking: {:.2} architectures/s on {} test images\n", r.ranking_archs_per_sec, r.ranking_images);
    if let Some(m) = r.peak_rss_mib {
        s += &format!("  peak resident memory: {m:.0} MiB\n");
    }
    if let Some(m) = r.device_memory_mib {
        s += &format!("  device memory held: {m:.0} MiB\n");
    }
    if !r.kernels.is_empty() {
        s += &format!("  {:<40} {:<22} {:>10} {:>10} {:>10}\n", "op (milliseconds)", "shape", "median", "p10", "GFLOP/s");
        for k in &r.kernels {
            let rate = k.gflops.map_or(String::new(), |g| format!("{g:.1}"));
            s += &format!("  {:<40} {:<22} {:>10.3} {:>10.3} {:>10}\n", k.op, k.shape, k.timing.median_ms, k.timing.p10_ms, rate);
        }
    }
    if !r.step_launches.is_empty() {
        let steps = r.step_launches_steps.max(1) as f64;
        let launches: usize = r.step_launches.iter().map(|l| l.launches).sum();
        let total: f64 = r.step_launches.iter().map(|l| l.seconds).sum();
        s += &format!(
            "  SPOS step launches or op calls ({} steps, each timed alone): {:.0} a step, {:.3} ms of them a step\n",
            r.step_launches_steps,
            launches as f64 / steps,
            1e3 * total / steps
        );
        s += &format!("  {:<40} {:>10} {:>10} {:>8}\n", "kernel or op", "calls", "ms/step", "share");
        for l in &r.step_launches {
            s += &format!(
                "  {:<40} {:>10.1} {:>10.3} {:>7.1}%\n",
                l.kernel,
                l.launches as f64 / steps,
                1e3 * l.seconds / steps,
                100.0 * l.seconds / total.max(1e-12)
            );
        }
    }
    s
}
