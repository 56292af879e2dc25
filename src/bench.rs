//! `pada bench`: what a training step, PA&DA's extra work, FairNAS and ranking
//! cost on this machine, measured in one run.
//!
//! Steps follow a fixed sequence of uniformly sampled paths (SplitMix64 from
//! seed 0, architecture = next() % 15625 as pada's base-5 index): the sequence
//! `scripts/torch_step_bench.py` times in PyTorch, so the two are comparable.

use serde::{Deserialize, Serialize};

use crate::arch::{Genotype, NUM_ARCHS};
use crate::backend::Backend;
use crate::data::{Data, DataSpec};
use crate::eval::{evaluate, EvalSet};
use crate::ops::SgdStep;
use crate::optim::{clip_and_step, OffPath};
use crate::rng::SplitMix64;
use crate::sampler::{DataSampler, DataSamplerKind, PathSampler, PathSamplerKind};
use crate::supernet::Pass;
use crate::supernet::{Supernet, SupernetConfig};
use crate::train::{forward_backward, on_path, DataImportance};

/// Median and spread of repeated timings, in milliseconds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Timing {
    pub median_ms: f64,
    pub p10_ms: f64,
    pub p90_ms: f64,
    pub samples: usize,
}

impl Timing {
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
    /// The end-of-epoch data resampling over a 50,000-sample distribution.
    pub epoch_resampling_50k: Timing,
    /// Extra work per step of the exact per-sample gradient norms, over the
    /// proxy (which the loss kernel computes for free), on the benchmark paths.
    pub data_importance_classifier: Timing,
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
        be.upload_f32(&(0..len).map(|_| (s.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0).collect::<Vec<_>>())
    };
    let mut push = |op: &str, shape: String, flops: Option<f64>, t: Timing| {
        let gflops = flops.map(|f| f / (t.median_ms * 1e6));
        out.push(KernelTiming { op: op.into(), shape, timing: t, gflops });
    };
    for stage in 0..3 {
        let c = config.stage_channels(stage);
        let (h, w) = config.stage_hw(stage);
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
                repeat(be, reps, || be.conv2d_backward_weight(&g, &x, true, &dy, &mut dw, Some(&mut db))),
            );
        }
        let shape = format!("{c}x{n}x{h}x{w}");
        let (mut y, mut st) = (be.alloc(s.len()), be.alloc(2 * c));
        push("batchnorm_forward", shape.clone(), None, repeat(be, reps, || be.batchnorm_forward(&s, &x, &mut y, true, &mut st)));
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
    let (c_last, k) = (config.stage_channels(2), config.classes);
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
            repeat(be, reps, || clip_and_step(be, &mut net.params, &all, &h, Some(5.0), OffPath::Momentum, None).release(be)),
        );
    }
    out
}

/// The sequence of benchmark paths.
pub fn bench_paths(count: usize) -> Vec<Genotype> {
    let mut s = SplitMix64(0);
    (0..count).map(|_| Genotype::from_index((s.next() % NUM_ARCHS as u64) as usize).expect("in range")).collect()
}

fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
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

pub fn run<B: Backend>(be: &B, o: &BenchOptions, mut log: impl FnMut(&str)) -> anyhow::Result<BenchReport> {
    let (n, k) = (o.batch_size, o.config.classes);
    let mut net = Supernet::new(be, o.config, 0)?;
    let images: Vec<f32> = {
        let mut s = SplitMix64(1);
        (0..n * o.config.input.len()).map(|_| (s.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0).collect()
    };
    let x = be.upload_f32(&images);
    let labels = be.upload_i32(&(0..n as i32).map(|i| i % k as i32).collect::<Vec<_>>());
    let indices = be.upload_i32(&(0..n as i32).collect::<Vec<_>>());
    let h = SgdStep { lr: 0.05, momentum: 0.9, weight_decay: 2.5e-4 };
    let paths = bench_paths(o.warmup + o.steps);
    let mut sums = be.alloc_zeroed(3);
    let mut path_sampler = PathSampler::new(be, PathSamplerKind::Importance { per_edge: false });
    path_sampler.begin_epoch(be, 0, 0);
    let mut data_sampler = DataSampler::new(be, DataSamplerKind::Importance, 50_000.max(n));

    // SPOS and PA&DA steps, interleaved on the same paths.
    log("timing SPOS and PA&DA steps");
    let (mut spos, mut pada) = (Vec::new(), Vec::new());
    for (i, g) in paths.iter().enumerate() {
        let (_, t_spos) = be.timed(|| {
            net.params.zero_grads(be);
            let proxy = forward_backward(be, &mut net, &x, &labels, None, n, g, &mut sums, DataImportance::Proxy);
            let on = on_path(&net, std::slice::from_ref(g));
            clip_and_step(be, &mut net.params, &on, &h, Some(5.0), OffPath::Momentum, None).release(be);
            be.release(proxy);
        });
        let (_, t_pada) = be.timed(|| {
            let _ = path_sampler.next_paths();
            net.params.zero_grads(be);
            let proxy = forward_backward(be, &mut net, &x, &labels, None, n, g, &mut sums, DataImportance::Proxy);
            let on = on_path(&net, std::slice::from_ref(g));
            let norms = clip_and_step(be, &mut net.params, &on, &h, Some(5.0), OffPath::Momentum, None);
            path_sampler.observe(be, &net, g, &norms);
            data_sampler.observe(be, &indices, &proxy);
            norms.release(be);
            be.release(proxy);
        });
        if i >= o.warmup {
            spos.push(t_spos);
            pada.push(t_pada);
        }
    }
    let (spos_step, pada_step) = (Timing::of(spos), Timing::of(pada));

    log("timing FairNAS steps");
    let fair_steps = (o.steps / 4).max(3);
    let mut fair_sampler = PathSampler::<B>::new(be, PathSamplerKind::Fair);
    fair_sampler.begin_epoch(be, 0, 0);
    let mut fair = Vec::new();
    for i in 0..fair_steps + 1 {
        let ps = fair_sampler.next_paths();
        let (_, t) = be.timed(|| {
            net.params.zero_grads(be);
            for g in &ps {
                let proxy = forward_backward(be, &mut net, &x, &labels, None, n, g, &mut sums, DataImportance::Proxy);
                be.release(proxy);
            }
            let on = on_path(&net, &ps);
            clip_and_step(be, &mut net.params, &on, &h, Some(5.0), OffPath::Momentum, None).release(be);
        });
        if i > 0 {
            fair.push(t);
        }
    }

    log("timing PA&DA's extra work");
    // A representative step's norms for the path-importance update.
    let g = paths[0];
    net.params.zero_grads(be);
    let proxy = forward_backward(be, &mut net, &x, &labels, None, n, &g, &mut sums, DataImportance::Proxy);
    let on = on_path(&net, &[g]);
    let norms = clip_and_step(be, &mut net.params, &on, &h, Some(5.0), OffPath::Momentum, None);
    let reps = 200;
    let extra_sample_scores = repeat(be, reps, || data_sampler.observe(be, &indices, &proxy));
    let extra_path_importance = repeat(be, reps, || path_sampler.observe(be, &net, &g, &norms));
    let extra_path_sampling = repeat(be, reps, || {
        let _ = path_sampler.next_paths();
    });
    norms.release(be);
    be.release(proxy);
    let mut resampler = DataSampler::<B>::new(be, DataSamplerKind::Importance, 50_000);
    let order: Vec<u32> = (0..50_000).collect();
    let scores = be.upload_f32(&(0..50_000).map(|i| 0.5 + (i % 97) as f32 / 97.0).collect::<Vec<_>>());
    let all = be.upload_i32(&(0..50_000).collect::<Vec<_>>());
    let epoch_resampling_50k = repeat(be, 10, || {
        resampler.observe(be, &all, &scores);
        let _ = resampler.end_epoch(be, 0, 5, 10, &order);
    });
    let steps_per_epoch = 50_000f64 / n as f64;
    let per_step_ms = extra_sample_scores.median_ms + extra_path_importance.median_ms + extra_path_sampling.median_ms;
    let pada_overhead_percent = 100.0 * (per_step_ms + epoch_resampling_50k.median_ms / steps_per_epoch) / spos_step.median_ms;

    log("timing the per-sample gradient norms");
    let (mut cls, mut full) = (Vec::new(), Vec::new());
    for g in paths.iter().skip(o.warmup).take(o.steps.clamp(1, 16)) {
        let mut xin = be.alloc(be.len(&x));
        be.copy(&mut xin, &x);
        let tape = net.forward(be, xin, n, g, true);
        let extra = |which: DataImportance, net: &mut Supernet<B>| {
            be.timed(|| {
                let (mut l, mut dz, mut p) = (be.alloc(n), be.alloc(n * k), be.alloc(n));
                be.softmax_cross_entropy(n, k, &tape.logits, &labels, None, &mut l, &mut dz, &mut p);
                be.scale(&mut dz, n as f64);
                let mut sq = be.alloc_zeroed(n);
                match which {
                    DataImportance::Classifier => net.classifier_per_sample_sq_norms(be, &tape, &dz, &mut sq),
                    _ => net.backward_with(be, &tape, &dz, &mut Pass { frozen_bn_statistics: true, per_sample_sq_norms: Some(&mut sq) }),
                }
                be.elementwise_sqrt(&mut sq);
                for b in [l, dz, p, sq] {
                    be.release(b);
                }
            })
            .1
        };
        cls.push(extra(DataImportance::Classifier, &mut net));
        full.push(extra(DataImportance::Full, &mut net));
        tape.release(be);
    }
    let (data_importance_classifier, data_importance_full) = (Timing::of(cls), Timing::of(full));

    log("timing ranking");
    let data: Data = o.rank_data.load()?;
    let rank_net = Supernet::new(be, SupernetConfig { classes: data.classes(), input: data.shape(), ..o.config }, 0)?;
    let set = EvalSet::new(be, &data.test, &data.norm, 512);
    let archs = bench_paths(o.rank_archs);
    let (_, t_rank) = be.timed(|| {
        for g in &archs {
            let _ = evaluate(be, &rank_net, g, &set);
        }
    });
    let ranking_images = set.images;
    set.release(be);
    for b in [x, sums] {
        be.release(b);
    }
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
        fairnas_step: Timing::of(fair),
        extra_sample_scores,
        extra_path_importance,
        extra_path_sampling,
        epoch_resampling_50k,
        data_importance_classifier,
        data_importance_full,
        pada_overhead_percent,
        ranking_archs_per_sec: archs.len() as f64 / t_rank,
        ranking_images,
        peak_rss_mib: peak_rss_mib(),
        device_memory_mib: be.device_memory().map(|b| b as f64 / (1 << 20) as f64),
        kernels: if o.kernels { kernel_timings(be, &o.config, n, 10) } else { Vec::new() },
    })
}

/// The human-readable table.
pub fn format_report(r: &BenchReport) -> String {
    let row = |name: &str, t: &Timing| format!("  {name:<38} {:>10.3} {:>10.3} {:>10.3}\n", t.median_ms, t.p10_ms, t.p90_ms);
    let mut s = format!(
        "pada bench: {}, config {} (C={} N={} {} {} classes), batch {}, {} steps after {} warm-up\n",
        r.backend, r.config, r.supernet.channels, r.supernet.cells, r.supernet.input, r.supernet.classes, r.batch_size, r.steps, r.warmup
    );
    s += &format!("  {:<38} {:>10} {:>10} {:>10}\n", "milliseconds", "median", "p10", "p90");
    s += &row("SPOS step", &r.spos_step);
    s += &row("PA&DA step", &r.pada_step);
    s += &row("FairNAS step (5 paths)", &r.fairnas_step);
    s += "  PA&DA's extra work:\n";
    s += &row("  per-sample score update", &r.extra_sample_scores);
    s += &row("  per-op gradient-norm importance", &r.extra_path_importance);
    s += &row("  path sampling", &r.extra_path_sampling);
    s += &row("  epoch-end resampling (N=50,000)", &r.epoch_resampling_50k);
    s += &format!(
        "  PA&DA overhead over SPOS: {:.3}% (parts, resampling spread over 50,000/{} steps); {:+.2}% (median steps, noisier)\n",
        r.pada_overhead_percent, r.batch_size, r.pada_overhead_direct_percent
    );
    s += "  Exact per-sample gradient norms, extra per step over the proxy:\n";
    s += &row("  classifier (weight and bias)", &r.data_importance_classifier);
    s += &row("  full (every parameter on the path)", &r.data_importance_full);
    s += &format!(
        "  i.e. classifier +{:.2}%, full +{:.1}% of the SPOS step\n",
        100.0 * r.data_importance_classifier.median_ms / r.spos_step.median_ms,
        100.0 * r.data_importance_full.median_ms / r.spos_step.median_ms
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
    s
}
