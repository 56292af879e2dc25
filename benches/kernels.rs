//! Kernel-level pieces of PA&DA's extra work on the CPU engine: per-sample
//! gradient norms (proxy, classifier, full conv), the multi-tensor norm over
//! the NAS-Bench-201 supernet's parameters, and weighted sampling of 50,000
//! indices. (The CUDA-event equivalents: `pada bench --device cuda --kernels`.)
//! And the depthwise convolutions of NAS-Bench-Macro's laptop preset (C = 8,
//! batch 64), the ops that PyTorch's CPU path is slowest at.
//!
//! And the pointwise convolutions around them.
//!
//! Run: `cargo bench --bench kernels` (`-- depthwise` for those alone)

use criterion::{criterion_group, criterion_main, Criterion};
use pada::backend::cpu::CpuBackend;
use pada::backend::prelude::*;
use pada::geometry::{ActShape, ConvGeom, LinearGeom};
use pada::ops;
use pada::rng::SplitMix64;
use pada::supernet::{Supernet, SupernetConfig};

fn rand(len: usize, seed: u64) -> Vec<f32> {
    let mut s = SplitMix64(seed);
    (0..len).map(|_| (s.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0).collect()
}

fn kernels(c: &mut Criterion) {
    let mut g = c.benchmark_group("pada_extra_work");
    g.sample_size(20);
    let (n, k) = (256, 10);
    let logits = rand(n * k, 1);
    let labels: Vec<i32> = (0..n as i32).map(|i| i % 10).collect();
    let (mut loss, mut dl, mut norm) = (vec![0f32; n], vec![0f32; n * k], vec![0f32; n]);
    g.bench_function("proxy_norms_softmax_ce_b256", |b| {
        b.iter(|| ops::softmax_cross_entropy(n, k, &logits, &labels, None, &mut loss, &mut dl, &mut norm))
    });
    let lg = LinearGeom::new(n, 64, k);
    let h = rand(n * 64, 2);
    let mut out = vec![0f32; n];
    g.bench_function("classifier_per_sample_norms_b256", |b| b.iter(|| ops::linear_per_sample_sq_norms(&lg, &h, &dl, &mut out)));
    let cg = ConvGeom::new(64, 16, 32, 32, 16, 3, 1);
    let (x, dy) = (rand(cg.input().len(), 3), rand(cg.output().len(), 4));
    let mut out64 = vec![0f32; 64];
    g.bench_function("conv3x3_per_sample_norms_16x64x32x32", |b| {
        b.iter(|| ops::conv2d_per_sample_sq_norms(&cg, &x, true, &dy, true, &mut out64))
    });
    let be = CpuBackend::<f32>::new();
    let net = Supernet::new(&be, SupernetConfig::nb201(), 0).unwrap();
    let tensors: Vec<_> = net.params.tensors.iter().map(|p| &p.value).collect();
    let mut norms = be.alloc(tensors.len());
    g.bench_function("multi_tensor_sq_norms_nb201_1.69M", |b| b.iter(|| be.sq_norms(&tensors, &mut norms)));
    let q: Vec<f32> = (0..50_000).map(|i| 0.5 + (i % 97) as f32 / 97.0).collect();
    g.bench_function("weighted_sampling_50k", |b| b.iter(|| ops::sampling::draw_with_replacement(&q, 7, 50_000)));
    g.finish();
}

/// Forward, input and weight gradients (with the per-sample norms, as PA&DA's
/// exact data importance asks) at three of the laptop preset's shapes: the
/// widest stride-1 layer, a stride-2 layer and a stage-3 layer; and stride 1
/// at 8x8 and at 16x16 with kernel 3, where the CPU changes its way of
/// computing a stride-1 conv (`flat_pays` in `src/ops/depthwise/`).
fn depthwise(c: &mut Criterion) {
    let mut g = c.benchmark_group("depthwise");
    g.sample_size(20);
    let n = 64;
    for (ch, hw, k, stride) in [(96, 16, 5, 1), (48, 32, 5, 2), (384, 4, 3, 1), (192, 8, 5, 1), (96, 16, 3, 1)] {
        let geom = ConvGeom::new(n, ch, hw, hw, ch, k, stride);
        let (x, w, dy) = (rand(geom.input().len(), 5), rand(ops::depthwise::weight_len(&geom), 6), rand(geom.output().len(), 7));
        let (mut y, mut dx, mut dw, mut sq) = (vec![0f32; dy.len()], vec![0f32; x.len()], vec![0f32; w.len()], vec![0f32; n]);
        let shape = format!("{ch}x{n}x{hw}x{hw}_k{k}_s{stride}");
        g.bench_function(format!("forward_{shape}"), |b| b.iter(|| ops::depthwise_forward(&geom, &x, true, &w, &mut y)));
        g.bench_function(format!("backward_data_{shape}"), |b| {
            b.iter(|| ops::depthwise_backward_data(&geom, &dy, &w, Some(&x), &mut dx, false))
        });
        g.bench_function(format!("backward_weight_{shape}"), |b| {
            b.iter(|| ops::depthwise_backward_weight(&geom, &x, true, &dy, &mut dw, Some(&mut sq)))
        });
    }
    g.finish();
}

/// Batch norm at NB-Macro laptop shapes (`pada bench --config nb-macro-laptop
/// --kernels` shows its share of a step): an expanded stage-1 tensor and a
/// stage-2 one. `cargo bench --bench kernels -- batchnorm`.
fn batchnorm(c: &mut Criterion) {
    let mut g = c.benchmark_group("batchnorm");
    g.sample_size(20);
    for (ch, hw) in [(48, 32), (96, 16)] {
        let s = ActShape::new(ch, 64, hw, hw);
        let (x, dy) = (rand(s.len(), 8), rand(s.len(), 9));
        let (mut y, mut dx, mut stats) = (vec![0f32; s.len()], vec![0f32; s.len()], vec![0f32; 2 * ch]);
        let shape = format!("{ch}x64x{hw}x{hw}");
        g.bench_function(format!("forward_{shape}"), |b| b.iter(|| ops::batchnorm_forward(&s, &x, &mut y, false, false, &mut stats)));
        ops::batchnorm_forward(&s, &x, &mut y, false, false, &mut stats);
        g.bench_function(format!("backward_{shape}"), |b| b.iter(|| ops::batchnorm_backward(&s, &x, &stats, &dy, &mut dx)));
    }
    g.finish();
}

/// The pointwise (1x1) convolutions around a laptop-preset MBConv's
/// depthwise one, through the GEMM: the expansion of a stride-2 layer
/// (16 -> 96 at 16x16: its input gradient has no mask and nothing to add to)
/// and the projection after the ReLU (96 -> 16: the ReLU on load, its input
/// gradient masked). `cargo bench --bench kernels -- pointwise`.
fn pointwise(c: &mut Criterion) {
    let mut g = c.benchmark_group("pointwise");
    g.sample_size(20);
    let n = 64;
    for (c_in, c_out, relu) in [(16, 96, false), (96, 16, true)] {
        let geom = ConvGeom::new(n, c_in, 16, 16, c_out, 1, 1);
        let (x, w, dy) = (rand(geom.input().len(), 10), rand(geom.weight_len(), 11), rand(geom.output().len(), 12));
        let (mut y, mut dx, mut dw) = (vec![0f32; dy.len()], vec![0f32; x.len()], vec![0f32; w.len()]);
        let shape = format!("{c_in}to{c_out}x{n}x16x16{}", if relu { "_relu" } else { "" });
        g.bench_function(format!("forward_{shape}"), |b| b.iter(|| ops::conv2d_forward(&geom, &x, relu, &w, None, &mut y)));
        g.bench_function(format!("backward_data_{shape}"), |b| {
            b.iter(|| ops::conv2d_backward_data(&geom, &dy, &w, relu.then_some(&x[..]), &mut dx, false))
        });
        g.bench_function(format!("backward_weight_{shape}"), |b| {
            b.iter(|| ops::conv2d_backward_weight(&geom, &x, relu, &dy, &mut dw, None, None))
        });
    }
    g.finish();
}

criterion_group!(benches, kernels, depthwise, batchnorm, pointwise);
criterion_main!(benches);
