//! Every CUDA kernel against the CPU reference, through the emulator on every
//! CI run (feature `cuda-emu`) and on a real GPU when one is there (feature
//! `cuda`, `cargo test --features cuda -- --ignored`; those tests fail, never
//! skip, without a GPU).
//!
//! Inputs are fresh random values (never zeros), outputs are poisoned with NaN
//! before each op (the backends' `poisoned` mode, and NaN uploads), and sizes
//! are not multiples of the kernels' tiles (64 x 64 or 16 x 256, by 16) or
//! blocks (256), nor of the chunks of the split channel sums.
//!
//! Tolerance: |gpu - cpu| <= 2e-4 * max|cpu| + 2e-4 * |cpu|. Both are f32, but
//! they sum in different orders (tiles vs GEMM panels, block trees vs lanes);
//! f32 rounding over the few hundred to ten thousand terms here stays below
//! 1e-5 relative, and an indexing mistake is O(1).
#![cfg(any(feature = "cuda-emu", feature = "cuda"))]

mod common;

use common::{assert_close, random_vec};
use pada::backend::cpu::{CpuBackend, CpuBuf};
use pada::backend::prelude::*;
use pada::geometry::{ActShape, ConvGeom, LinearGeom, PoolGeom};
use pada::ops::{NormGroup, SgdStep};

/// Random values in a CPU buffer (which is also a slice).
fn rand32(len: usize, seed: u64) -> CpuBuf<f32> {
    random_vec(len, seed).into_iter().map(|v| v as f32).collect::<Vec<_>>().into()
}

/// A NaN-filled CPU output buffer.
fn nan_cpu(len: usize) -> CpuBuf<f32> {
    vec![f32::NAN; len].into()
}

fn close(what: &str, got: &[f32], want: &[f32]) {
    let g: Vec<f64> = got.iter().map(|&v| v as f64).collect();
    let w: Vec<f64> = want.iter().map(|&v| v as f64).collect();
    let scale = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert_close(what, &g, &w, 2e-4 * scale.max(1e-3), 2e-4);
}

/// A buffer holding `host` on `be`.
fn up<B: Backend<T = f32>>(be: &B, host: &[f32]) -> B::Buf {
    be.upload(host)
}

/// A NaN-filled output buffer.
fn nan<B: Backend<T = f32>>(be: &B, len: usize) -> B::Buf {
    be.upload(&vec![f32::NAN; len])
}

fn conv_cases() -> Vec<(ConvGeom, bool, bool)> {
    vec![
        (ConvGeom::new(3, 5, 7, 9, 6, 3, 1), true, true),
        (ConvGeom::new(2, 3, 7, 7, 70, 3, 2), true, true), // stride 2 on odd input, 2 channel tiles of 64
        (ConvGeom::new(2, 4, 8, 6, 5, 3, 2), false, false),
        (ConvGeom::new(4, 17, 5, 5, 9, 1, 1), true, true),
        (ConvGeom::new(3, 20, 6, 5, 19, 3, 1), false, true), // K = 180, several K slices
        (ConvGeom::new(5, 3, 17, 15, 7, 3, 1), true, true),  // 1,275 pixels: bias sums split in 2 ragged chunks
        (ConvGeom::new(2, 30, 6, 6, 11, 3, 1), true, false), // narrow tiles (<= 16 channels), K = 270: 2 weight tiles
    ]
}

pub fn conv2d<B: Backend<T = f32>>(be: &B) {
    let cpu = CpuBackend::<f32>::new();
    for (i, (g, relu, bias)) in conv_cases().into_iter().enumerate() {
        let x = rand32(g.input().len(), 10 + i as u64);
        let w = rand32(g.weight_len(), 20 + i as u64);
        let b = rand32(g.c_out as usize, 30 + i as u64);
        let dy = rand32(g.output().len(), 40 + i as u64);
        let what = |op: &str| format!("{op} {g:?}");
        // forward
        let mut yc = nan(&cpu, g.output().len());
        cpu.conv2d_forward(&g, &x, relu, &w, bias.then_some(&b), &mut yc);
        let mut yg = nan(be, g.output().len());
        be.conv2d_forward(&g, &up(be, &x), relu, &up(be, &w), bias.then(|| up(be, &b)).as_ref(), &mut yg);
        close(&what("conv2d_forward"), &be.download(&yg), &yc);
        // input gradient: overwrite (poisoned target) and accumulate (random target), with the ReLU mask
        for acc in [false, true] {
            let init = if acc { rand32(x.len(), 50 + i as u64) } else { nan_cpu(x.len()) };
            let mut dc = init.clone();
            cpu.conv2d_backward_data(&g, &dy, &w, relu.then_some(&x), &mut dc, acc);
            let mut dg = up(be, &init);
            be.conv2d_backward_data(&g, &up(be, &dy), &up(be, &w), relu.then(|| up(be, &x)).as_ref(), &mut dg, acc);
            close(&what(&format!("conv2d_backward_data acc={acc}")), &be.download(&dg), &dc);
        }
        // weight and bias gradients accumulate onto what is there
        let (dw0, db0) = (rand32(w.len(), 60 + i as u64), rand32(b.len(), 70 + i as u64));
        let (mut dwc, mut dbc) = (dw0.clone(), db0.clone());
        cpu.conv2d_backward_weight(&g, &x, relu, &dy, &mut dwc, bias.then_some(&mut dbc), None);
        let (mut dwg, mut dbg) = (up(be, &dw0), up(be, &db0));
        be.conv2d_backward_weight(&g, &up(be, &x), relu, &up(be, &dy), &mut dwg, bias.then_some(&mut dbg), None);
        close(&what("conv2d_backward_weight dw"), &be.download(&dwg), &dwc);
        if bias {
            close(&what("conv2d_backward_weight db"), &be.download(&dbg), &dbc);
        }
        // the same with each sample's squared norm of its part, fused (chunks of whole samples)
        let sq0: CpuBuf<f32> = rand32(g.n as usize, 75 + i as u64).iter().map(|v| v.abs()).collect::<Vec<_>>().into();
        let (mut dwc, mut dbc, mut sqc) = (dw0.clone(), db0.clone(), sq0.clone());
        cpu.conv2d_backward_weight(&g, &x, relu, &dy, &mut dwc, bias.then_some(&mut dbc), Some(&mut sqc));
        let (mut dwg, mut dbg, mut sqg) = (up(be, &dw0), up(be, &db0), up(be, &sq0));
        be.conv2d_backward_weight(&g, &up(be, &x), relu, &up(be, &dy), &mut dwg, bias.then_some(&mut dbg), Some(&mut sqg));
        close(&what("conv2d_backward_weight + sample norms: dw"), &be.download(&dwg), &dwc);
        close(&what("conv2d_backward_weight + sample norms: norms"), &be.download(&sqg), &sqc);
        if bias {
            close(&what("conv2d_backward_weight + sample norms: db"), &be.download(&dbg), &dbc);
        }
    }
}

/// Depthwise convolutions (NAS-Bench-Macro's MBConv): kernel 3 and 5, stride
/// 1 and 2, odd channel counts and widths, batch 1, with and without the
/// ReLU on load; every op's output poisoned (or randomly pre-filled where it
/// accumulates) before the op.
fn depthwise_cases() -> Vec<(ConvGeom, bool)> {
    vec![
        (ConvGeom::new(3, 5, 7, 9, 5, 3, 1), true),
        (ConvGeom::new(2, 7, 9, 7, 7, 5, 1), false),
        (ConvGeom::new(1, 3, 11, 13, 3, 3, 2), true), // batch 1, odd sizes, stride 2
        (ConvGeom::new(3, 9, 8, 6, 9, 5, 2), true),
        (ConvGeom::new(2, 1, 5, 5, 1, 5, 2), false), // one channel, the filter as big as the image
        (ConvGeom::new(4, 33, 4, 4, 33, 3, 1), true), // more channels than a warp
        (ConvGeom::new(11, 3, 10, 10, 3, 5, 2), true), // batches and widths past the CPU's 8 x 8 transposes
        (ConvGeom::new(9, 2, 9, 17, 2, 3, 1), false),
    ]
}

pub fn depthwise<B: Backend<T = f32>>(be: &B) {
    let cpu = CpuBackend::<f32>::new();
    for (i, (g, relu)) in depthwise_cases().into_iter().enumerate() {
        let wl = pada::ops::depthwise::weight_len(&g);
        let x = rand32(g.input().len(), 110 + i as u64);
        let w = rand32(wl, 120 + i as u64);
        let dy = rand32(g.output().len(), 140 + i as u64);
        let what = |op: &str| format!("{op} {g:?} relu={relu}");
        let mut yc = nan(&cpu, g.output().len());
        cpu.depthwise_forward(&g, &x, relu, &w, &mut yc);
        let mut yg = nan(be, g.output().len());
        be.depthwise_forward(&g, &up(be, &x), relu, &up(be, &w), &mut yg);
        close(&what("depthwise_forward"), &be.download(&yg), &yc);
        for acc in [false, true] {
            let init = if acc { rand32(x.len(), 150 + i as u64) } else { nan_cpu(x.len()) };
            let mut dc = init.clone();
            cpu.depthwise_backward_data(&g, &dy, &w, relu.then_some(&x), &mut dc, acc);
            let mut dg = up(be, &init);
            be.depthwise_backward_data(&g, &up(be, &dy), &up(be, &w), relu.then(|| up(be, &x)).as_ref(), &mut dg, acc);
            close(&what(&format!("depthwise_backward_data acc={acc}")), &be.download(&dg), &dc);
        }
        // the weight gradient accumulates onto what is there; with and without each sample's squared norm
        let dw0 = rand32(wl, 160 + i as u64);
        let sq0: CpuBuf<f32> = rand32(g.n as usize, 170 + i as u64).iter().map(|v| v.abs()).collect::<Vec<_>>().into();
        for per_sample in [false, true] {
            let (mut dwc, mut sqc) = (dw0.clone(), sq0.clone());
            cpu.depthwise_backward_weight(&g, &x, relu, &dy, &mut dwc, per_sample.then_some(&mut sqc));
            let (mut dwg, mut sqg) = (up(be, &dw0), up(be, &sq0));
            be.depthwise_backward_weight(&g, &up(be, &x), relu, &up(be, &dy), &mut dwg, per_sample.then_some(&mut sqg));
            close(&what(&format!("depthwise_backward_weight per_sample={per_sample}: dw")), &be.download(&dwg), &dwc);
            close(&what("depthwise_backward_weight: norms"), &be.download(&sqg), &sqc);
        }
        let (mut sqc, mut sqg) = (sq0.clone(), up(be, &sq0));
        cpu.depthwise_per_sample_sq_norms(&g, &x, relu, &dy, &mut sqc);
        be.depthwise_per_sample_sq_norms(&g, &up(be, &x), relu, &up(be, &dy), &mut sqg);
        close(&what("depthwise_per_sample_sq_norms"), &be.download(&sqg), &sqc);
    }
}

/// The tensor-core convolutions (`Precision::Tf32` and `Bf16`; in the
/// emulator the portable twins of mma.sync) against the CPU reference in f64
/// on the operands rounded as the kernels round them
/// (`Precision::round_operand`: TF32 to nearest with ties away, BF16 to
/// nearest even by `half::bf16`). Their products are exact in FP32 (11- or
/// 8-bit significands), so what is left is FP32 summation in the hardware's
/// order: |gpu - ref| <= (K + 2) 2^-23 sum_k |a_k b_k| (+ the bias added in
/// FP32), with K the terms of the sum and sum |a b| the same conv of
/// |operands|, computed on the CPU. Operands that were not rounded, or
/// rounded the other way, would miss by ~2^-11 (TF32) or ~2^-8 (BF16) of it,
/// a wrong fragment index by O(1). The forward result (sums of at most a few
/// hundred terms) must also differ from the exact FP32 conv somewhere by more
/// than FP32 summation does, or the tensor-core path was not taken.
pub fn conv2d_tensor_cores<B: Backend<T = f32>>(be: &B, precision: pada::backend::Precision) {
    let cpu = CpuBackend::<f64>::new();
    let rounded = |v: f32| precision.round_operand(v) as f64;
    // every 5th operand exactly halfway between two representable values, so
    // that the rounding's tie rule (away from zero for TF32, to even for BF16) counts
    let dropped_bits = if precision == pada::backend::Precision::Bf16 { 16 } else { 13 };
    let with_ties = |v: CpuBuf<f32>| -> CpuBuf<f32> {
        let half = 1u32 << (dropped_bits - 1);
        v.iter()
            .enumerate()
            .map(|(i, &x)| if i % 5 == 0 { f32::from_bits((x.to_bits() & !((half << 1) - 1)) | half) } else { x })
            .collect::<Vec<_>>()
            .into()
    };
    let to64 = |v: &[f32], f: &dyn Fn(f32) -> f64| -> CpuBuf<f64> { v.iter().map(|&x| f(x)).collect::<Vec<_>>().into() };
    let check = |what: &str, got: &[f32], reference: &[f64], abs_sum: &[f64], exact: &[f64], terms: usize| {
        let unit = (terms + 2) as f64 * 2f64.powi(-23);
        let mut off_exact = 0.0f64;
        for (i, ((&g, &r), (&a, &e))) in got.iter().zip(reference).zip(abs_sum.iter().zip(exact)).enumerate() {
            let bound = unit * a + 2f64.powi(-23) * r.abs();
            assert!((g as f64 - r).abs() <= bound, "{what}[{i}]: {g} vs the reference on rounded operands {r} (bound {bound:.3e})");
            off_exact = off_exact.max((g as f64 - e).abs() / (unit * a).max(1e-30));
        }
        off_exact
    };
    for (i, (g, relu, bias)) in conv_cases().into_iter().enumerate() {
        let x = with_ties(rand32(g.input().len(), 110 + i as u64));
        let w = with_ties(rand32(g.weight_len(), 120 + i as u64));
        let b = rand32(g.c_out as usize, 130 + i as u64);
        let what = |op: &str| format!("{op} ({precision}) {g:?}");
        let conv = |x: &CpuBuf<f64>, w: &CpuBuf<f64>, bias: Option<&CpuBuf<f64>>| {
            let mut y: CpuBuf<f64> = vec![f64::NAN; g.output().len()].into();
            cpu.conv2d_forward(&g, x, relu, w, bias, &mut y);
            y
        };
        let b64 = to64(&b, &|v| v as f64);
        let reference = conv(&to64(&x, &rounded), &to64(&w, &rounded), bias.then_some(&b64));
        let abs_sum = conv(&to64(&x, &|v| if relu { v.max(0.0) as f64 } else { v.abs() as f64 }), &to64(&w, &|v| v.abs() as f64), None);
        let exact = conv(&to64(&x, &|v| v as f64), &to64(&w, &|v| v as f64), bias.then_some(&b64));
        let mut yg = nan(be, g.output().len());
        be.conv2d_forward(&g, &up(be, &x), relu, &up(be, &w), bias.then(|| up(be, &b)).as_ref(), &mut yg);
        let off_exact = check(&what("conv2d_forward"), &be.download(&yg), &reference, &abs_sum, &exact, g.col_rows());
        assert!(
            off_exact > 1.0,
            "{}: equals the exact FP32 conv to FP32 summation error: {precision} rounding not applied",
            what("conv2d_forward")
        );
        if g.is_same_stride1() {
            // the input gradient runs through the same kernel (flipped weights, the ReLU mask in its epilogue)
            let dy = with_ties(rand32(g.output().len(), 140 + i as u64));
            let grad = |dy: &CpuBuf<f64>, w: &CpuBuf<f64>| {
                let mut dx: CpuBuf<f64> = vec![f64::NAN; g.input().len()].into();
                cpu.conv2d_backward_data(&g, dy, w, relu.then(|| to64(&x, &|v| v as f64)).as_ref(), &mut dx, false);
                dx
            };
            let reference = grad(&to64(&dy, &rounded), &to64(&w, &rounded));
            let abs_sum = grad(&to64(&dy, &|v| v.abs() as f64), &to64(&w, &|v| v.abs() as f64));
            let exact = grad(&to64(&dy, &|v| v as f64), &to64(&w, &|v| v as f64));
            let mut dg = nan(be, g.input().len());
            be.conv2d_backward_data(&g, &up(be, &dy), &up(be, &w), relu.then(|| up(be, &x)).as_ref(), &mut dg, false);
            let terms = g.c_out as usize * (g.k * g.k) as usize;
            check(&what("conv2d_backward_data"), &be.download(&dg), &reference, &abs_sum, &exact, terms);
        }
        // the weight gradient, accumulated onto what is there: a reduction over every output pixel
        let dy = with_ties(rand32(g.output().len(), 150 + i as u64));
        let dw0 = rand32(w.len(), 160 + i as u64);
        let wgrad = |x: &CpuBuf<f64>, dy: &CpuBuf<f64>, with_dw0: bool, sq: Option<&mut CpuBuf<f64>>| {
            let mut dw: CpuBuf<f64> = if with_dw0 { to64(&dw0, &|v| v as f64) } else { vec![0.0; w.len()].into() };
            cpu.conv2d_backward_weight(&g, x, relu, dy, &mut dw, None, sq);
            dw
        };
        let mut sq_ref: CpuBuf<f64> = vec![0.0; g.n as usize].into();
        let reference = wgrad(&to64(&x, &rounded), &to64(&dy, &rounded), true, Some(&mut sq_ref));
        let abs_sum = wgrad(&to64(&x, &|v| v.abs() as f64), &to64(&dy, &|v| v.abs() as f64), false, None);
        let exact = wgrad(&to64(&x, &|v| v as f64), &to64(&dy, &|v| v as f64), true, None);
        let (mut dwg, mut sqg) = (up(be, &dw0), up(be, &vec![0.0f32; g.n as usize]));
        be.conv2d_backward_weight(&g, &up(be, &x), relu, &up(be, &dy), &mut dwg, None, Some(&mut sqg));
        check(&what("conv2d_backward_weight"), &be.download(&dwg), &reference, &abs_sum, &exact, g.output().per_channel());
        // each sample's squared norm, from the same TF32 tiles: within the entries' bounds, far below 1e-3
        let sq: Vec<f64> = be.download(&sqg).iter().map(|&v| v as f64).collect();
        assert_close(&what("conv2d_backward_weight sample norms"), &sq, &sq_ref, 0.0, 1e-3);
    }
}

/// `pada bench --kernels`' launch profile counts every launch, by kernel.
pub fn launch_profile<B: Backend<T = f32>>(be: &B) {
    let g = ConvGeom::new(2, 3, 7, 7, 5, 3, 1);
    let (x, w) = (up(be, &rand32(g.input().len(), 1)), up(be, &rand32(g.weight_len(), 2)));
    let mut y = nan(be, g.output().len());
    let ((), stats) = be.profile_launches(|| {
        for _ in 0..3 {
            be.conv2d_forward(&g, &x, false, &w, None, &mut y);
        }
        be.fill(&mut y, 0.0);
    });
    let got: Vec<(String, usize)> = stats.iter().map(|s| (s.kernel.clone(), s.launches)).collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.contains(&("conv2d_forward_narrow".into(), 3)) && got.contains(&("fill".into(), 1)), "{got:?}");
    assert!(stats.iter().all(|s| s.seconds > 0.0), "{stats:?}");
    // outside the profile nothing is recorded
    let ((), none) = be.profile_launches(|| ());
    assert!(none.is_empty());
}

pub fn batchnorm<B: Backend<T = f32>>(be: &B) {
    let cpu = CpuBackend::<f32>::new();
    // the last has 2,331 values a channel: sums split in 3 chunks of 777
    for (i, s) in [ActShape::new(3, 5, 7, 9), ActShape::new(2, 1, 3, 3), ActShape::new(5, 33, 4, 5), ActShape::new(2, 37, 7, 9)]
        .into_iter()
        .enumerate()
    {
        let x: CpuBuf<f32> = rand32(s.len(), 80 + i as u64).iter().map(|v| v * 3.0 + 1.5).collect::<Vec<_>>().into();
        let dy = rand32(s.len(), 90 + i as u64);
        for (acc, relu) in [(false, false), (true, false), (false, true), (true, true)] {
            let init = if acc { rand32(s.len(), 95) } else { nan_cpu(s.len()) };
            let (mut yc, mut sc) = (init.clone(), nan_cpu(2 * s.c as usize));
            cpu.batchnorm_forward(&s, &x, &mut yc, acc, relu, &mut sc);
            let (mut yg, mut sg) = (up(be, &init), nan(be, 2 * s.c as usize));
            be.batchnorm_forward(&s, &up(be, &x), &mut yg, acc, relu, &mut sg);
            close(&format!("batchnorm_forward {s:?} acc={acc} relu={relu}"), &be.download(&yg), &yc);
            close(&format!("batchnorm stats {s:?}"), &be.download(&sg), &sc);
            let mut dc = nan_cpu(s.len());
            cpu.batchnorm_backward(&s, &x, &sc, &dy, &mut dc);
            let mut dg = nan(be, s.len());
            be.batchnorm_backward(&s, &up(be, &x), &sg, &up(be, &dy), &mut dg);
            close(&format!("batchnorm_backward {s:?}"), &be.download(&dg), &dc);
        }
    }
}

pub fn pools<B: Backend<T = f32>>(be: &B) {
    let cpu = CpuBackend::<f32>::new();
    for (i, s) in [ActShape::new(3, 5, 7, 9), ActShape::new(2, 3, 1, 4), ActShape::new(4, 2, 6, 6)].into_iter().enumerate() {
        let seed = 100 + 10 * i as u64;
        let x = rand32(s.len(), seed);
        let g3 = PoolGeom::avg3x3(s);
        for acc in [false, true] {
            let init = if acc { rand32(s.len(), seed + 1) } else { nan_cpu(s.len()) };
            let mut yc = init.clone();
            cpu.avgpool3x3_forward(&g3, &x, &mut yc, acc);
            let mut yg = up(be, &init);
            be.avgpool3x3_forward(&g3, &up(be, &x), &mut yg, acc);
            close(&format!("avgpool3x3_forward {s:?}"), &be.download(&yg), &yc);
            let mut dc = init.clone();
            cpu.avgpool3x3_backward(&g3, &x, &mut dc, acc);
            let mut dg = up(be, &init);
            be.avgpool3x3_backward(&g3, &up(be, &x), &mut dg, acc);
            close(&format!("avgpool3x3_backward {s:?}"), &be.download(&dg), &dc);
        }
        if s.h >= 2 && s.w >= 2 {
            let g2 = PoolGeom::avg2x2(s);
            let mut yc = nan_cpu(g2.output().len());
            cpu.avgpool2x2_forward(&g2, &x, &mut yc);
            let mut yg = nan(be, g2.output().len());
            be.avgpool2x2_forward(&g2, &up(be, &x), &mut yg);
            close(&format!("avgpool2x2_forward {s:?}"), &be.download(&yg), &yc);
            let dy = rand32(g2.output().len(), seed + 2);
            for acc in [false, true] {
                let init = if acc { rand32(s.len(), seed + 3) } else { nan_cpu(s.len()) };
                let mut dc = init.clone();
                cpu.avgpool2x2_backward(&g2, &dy, &mut dc, acc);
                let mut dg = up(be, &init);
                be.avgpool2x2_backward(&g2, &up(be, &dy), &mut dg, acc);
                close(&format!("avgpool2x2_backward {s:?} acc={acc}"), &be.download(&dg), &dc);
            }
        }
        for relu in [false, true] {
            let mut yc = nan_cpu((s.n * s.c) as usize);
            cpu.global_avgpool_forward(&s, &x, relu, &mut yc);
            let mut yg = nan(be, yc.len());
            be.global_avgpool_forward(&s, &up(be, &x), relu, &mut yg);
            close(&format!("global_avgpool_forward {s:?}"), &be.download(&yg), &yc);
            let dy = rand32(yc.len(), seed + 4);
            let mut dc = nan_cpu(s.len());
            cpu.global_avgpool_backward(&s, &dy, relu.then_some(&x), &mut dc);
            let mut dg = nan(be, s.len());
            be.global_avgpool_backward(&s, &up(be, &dy), relu.then(|| up(be, &x)).as_ref(), &mut dg);
            close(&format!("global_avgpool_backward {s:?}"), &be.download(&dg), &dc);
        }
    }
}

pub fn elementwise<B: Backend<T = f32>>(be: &B) {
    let cpu = CpuBackend::<f32>::new();
    let n = 70_001;
    let (a, b) = (rand32(n, 201), rand32(n, 202));
    let mut fc = a.clone();
    cpu.fill(&mut fc, 0.25);
    let mut fg = up(be, &a);
    be.fill(&mut fg, 0.25);
    close("fill", &be.download(&fg), &fc);
    let mut cg = nan(be, n);
    be.copy(&mut cg, &up(be, &a));
    close("copy", &be.download(&cg), &a);
    // a step's values into the middle of a log: the rest stays as it was
    let part = rand32(1_003, 203);
    let mut lc = b.clone();
    cpu.copy_at(&mut lc, 40_961, &part);
    let mut lg = up(be, &b);
    be.copy_at(&mut lg, 40_961, &up(be, &part));
    assert_eq!(be.download(&lg), lc.to_vec(), "copy_at must equal the CPU exactly");
    let mut ac = a.clone();
    cpu.add_assign(&mut ac, &b);
    let mut ag = up(be, &a);
    be.add_assign(&mut ag, &up(be, &b));
    close("add_assign", &be.download(&ag), &ac);
    let mut xc = a.clone();
    cpu.axpy(&mut xc, -0.75, &b);
    let mut xg = up(be, &a);
    be.axpy(&mut xg, -0.75, &up(be, &b));
    close("axpy", &be.download(&xg), &xc);
    let mut sc = a.clone();
    cpu.scale(&mut sc, 3.5);
    let mut sg = up(be, &a);
    be.scale(&mut sg, 3.5);
    close("scale", &be.download(&sg), &sc);
    let mut rc = nan_cpu(n);
    cpu.relu_forward(&a, &mut rc);
    let mut rg = nan(be, n);
    be.relu_forward(&up(be, &a), &mut rg);
    close("relu_forward", &be.download(&rg), &rc);
    let mut dc = nan_cpu(n);
    cpu.relu_backward(&a, &b, &mut dc);
    let mut dg = nan(be, n);
    be.relu_backward(&up(be, &a), &up(be, &b), &mut dg);
    close("relu_backward", &be.download(&dg), &dc);
}

pub fn linear_and_loss<B: Backend<T = f32>>(be: &B) {
    let cpu = CpuBackend::<f32>::new();
    let g = LinearGeom::new(37, 29, 11);
    let (n, i, o) = (37, 29, 11);
    let (x, w, b, dy) = (rand32(n * i, 301), rand32(o * i, 302), rand32(o, 303), rand32(n * o, 304));
    let mut yc = nan_cpu(n * o);
    cpu.linear_forward(&g, &x, &w, &b, &mut yc);
    let mut yg = nan(be, n * o);
    be.linear_forward(&g, &up(be, &x), &up(be, &w), &up(be, &b), &mut yg);
    close("linear_forward", &be.download(&yg), &yc);
    let (dw0, db0) = (rand32(o * i, 305), rand32(o, 306));
    let (mut dxc, mut dwc, mut dbc) = (nan_cpu(n * i), dw0.clone(), db0.clone());
    cpu.linear_backward(&g, &x, &w, &dy, Some(&mut dxc), &mut dwc, &mut dbc);
    let (mut dxg, mut dwg, mut dbg) = (nan(be, n * i), up(be, &dw0), up(be, &db0));
    be.linear_backward(&g, &up(be, &x), &up(be, &w), &up(be, &dy), Some(&mut dxg), &mut dwg, &mut dbg);
    close("linear_backward dx", &be.download(&dxg), &dxc);
    close("linear_backward dw", &be.download(&dwg), &dwc);
    close("linear_backward db", &be.download(&dbg), &dbc);

    let (n, k) = (45, 13);
    let z: CpuBuf<f32> = rand32(n * k, 307).iter().map(|v| v * 6.0).collect::<Vec<_>>().into();
    let labels: Vec<i32> = (0..n as i32).map(|i| (i * 7) % k as i32).collect();
    let weights: CpuBuf<f32> = rand32(n, 308).iter().map(|v| v.abs() + 0.5).collect::<Vec<_>>().into();
    for weighted in [false, true] {
        let (mut lc, mut dc, mut pc) = (nan_cpu(n), nan_cpu(n * k), nan_cpu(n));
        cpu.softmax_cross_entropy(n, k, &z, &labels, weighted.then_some(&weights), &mut lc, &mut dc, &mut pc);
        let (mut lg, mut dg, mut pg) = (nan(be, n), nan(be, n * k), nan(be, n));
        let wg = weighted.then(|| up(be, &weights));
        be.softmax_cross_entropy(n, k, &up(be, &z), &be.upload_i32(&labels), wg.as_ref(), &mut lg, &mut dg, &mut pg);
        close("softmax_ce loss", &be.download(&lg), &lc);
        close("softmax_ce dlogits", &be.download(&dg), &dc);
        close("softmax_ce proxy_norm", &be.download(&pg), &pc);
        let mut sc: CpuBuf<f32> = vec![1.0f32, 2.0, 3.0].into();
        cpu.batch_metrics(n, k, &z, &labels, &lc, &mut sc);
        let mut sg = up(be, &[1.0, 2.0, 3.0]);
        be.batch_metrics(n, k, &up(be, &z), &be.upload_i32(&labels), &lg, &mut sg);
        close("batch_metrics", &be.download(&sg), &sc);
    }
}

pub fn optimiser<B: Backend<T = f32>>(be: &B) {
    let cpu = CpuBackend::<f32>::new();
    let lens = [3usize, 700, 36_864, 1, 257];
    let grads: Vec<CpuBuf<f32>> = lens.iter().enumerate().map(|(i, &l)| rand32(l, 400 + i as u64)).collect();
    let gg: Vec<B::Buf> = grads.iter().map(|g| up(be, g)).collect();
    let mut nc = nan_cpu(lens.len());
    cpu.sq_norms(&grads.iter().collect::<Vec<_>>(), &mut nc);
    let mut ng = nan(be, lens.len());
    be.sq_norms(&gg.iter().collect::<Vec<_>>(), &mut ng);
    close("sq_norms", &be.download(&ng), &nc);
    for max_norm in [5.0, 1e6] {
        let mut cc = nan_cpu(1);
        cpu.clip_coefficient(&nc, max_norm, &mut cc);
        let mut cg = nan(be, 1);
        be.clip_coefficient(&ng, max_norm, &mut cg);
        close("clip_coefficient", &be.download(&cg), &cc);
    }
    let h = SgdStep { lr: 0.05, momentum: 0.9, weight_decay: 2.5e-4 };
    let params: Vec<CpuBuf<f32>> = lens.iter().enumerate().map(|(i, &l)| rand32(l, 500 + i as u64)).collect();
    let moms: Vec<CpuBuf<f32>> = lens.iter().enumerate().map(|(i, &l)| rand32(l, 600 + i as u64)).collect();
    let (mut pc, mut mc) = (params.clone(), moms.clone());
    {
        let mut slots: Vec<SgdSlot<'_, CpuBackend<f32>>> =
            pc.iter_mut().zip(mc.iter_mut()).zip(&grads).map(|((p, m), g)| SgdSlot { value: p, grad: g, momentum: m }).collect();
        cpu.sgd_step(&mut slots, &h, &vec![0.375].into());
    }
    let mut pg: Vec<B::Buf> = params.iter().map(|p| up(be, p)).collect();
    let mut mg: Vec<B::Buf> = moms.iter().map(|m| up(be, m)).collect();
    {
        let mut slots: Vec<SgdSlot<'_, B>> =
            pg.iter_mut().zip(mg.iter_mut()).zip(&gg).map(|((p, m), g)| SgdSlot { value: p, grad: g, momentum: m }).collect();
        be.sgd_step(&mut slots, &h, &up(be, &[0.375]));
    }
    for i in 0..lens.len() {
        close(&format!("sgd_step value {i}"), &be.download(&pg[i]), &pc[i]);
        close(&format!("sgd_step momentum {i}"), &be.download(&mg[i]), &mc[i]);
    }
    // the path sampler's log: groups of clipped norms into their slots
    let sq: CpuBuf<f32> = rand32(40, 702).iter().map(|v| v.abs()).collect::<Vec<_>>().into();
    let members: Vec<i32> = (0..40).rev().collect();
    let groups =
        [NormGroup { slot: 2, start: 0, len: 12 }, NormGroup { slot: 7, start: 12, len: 28 }, NormGroup { slot: 0, start: 5, len: 0 }];
    for coef in [0.8f32, f32::NAN] {
        let log0 = rand32(9, 703);
        let mut lc = log0.clone();
        cpu.clipped_group_norms(&sq, &vec![coef].into(), &members, &groups, &mut lc);
        let mut lg = up(be, &log0);
        be.clipped_group_norms(&up(be, &sq), &up(be, &[coef]), &members, &groups, &mut lg);
        let (got, want) = (be.download(&lg), lc.to_vec());
        assert!(
            got.iter().zip(&want).all(|(g, w)| g == w || (g.is_nan() && w.is_nan())),
            "clipped_group_norms (coef {coef}) must equal the CPU exactly: {got:?} vs {want:?}"
        );
    }
}

pub fn per_sample_norms<B: Backend<T = f32>>(be: &B) {
    let cpu = CpuBackend::<f32>::new();
    for (i, (g, relu, bias)) in conv_cases().into_iter().enumerate() {
        let x = rand32(g.input().len(), 800 + i as u64);
        let dy = rand32(g.output().len(), 810 + i as u64);
        let init: CpuBuf<f32> = rand32(g.n as usize, 820 + i as u64).iter().map(|v| v.abs()).collect::<Vec<_>>().into();
        let mut oc = init.clone();
        cpu.conv2d_per_sample_sq_norms(&g, &x, relu, &dy, bias, &mut oc);
        let mut og = up(be, &init);
        be.conv2d_per_sample_sq_norms(&g, &up(be, &x), relu, &up(be, &dy), bias, &mut og);
        close(&format!("conv2d_per_sample_sq_norms {g:?}"), &be.download(&og), &oc);
    }
    let g = LinearGeom::new(21, 17, 9);
    let (x, dy) = (rand32(21 * 17, 830), rand32(21 * 9, 831));
    let init = rand32(21, 832);
    let mut oc = init.clone();
    cpu.linear_per_sample_sq_norms(&g, &x, &dy, &mut oc);
    let mut og = up(be, &init);
    be.linear_per_sample_sq_norms(&g, &up(be, &x), &up(be, &dy), &mut og);
    close("linear_per_sample_sq_norms", &be.download(&og), &oc);
    let s = ActShape::new(5, 7, 3, 5);
    let (stats, dy) = (rand32(10, 833), rand32(s.len(), 834));
    let mut dc = nan_cpu(s.len());
    cpu.batchnorm_backward_frozen(&s, &stats, &dy, &mut dc);
    let mut dg = nan(be, s.len());
    be.batchnorm_backward_frozen(&s, &up(be, &stats), &up(be, &dy), &mut dg);
    close("batchnorm_backward_frozen", &be.download(&dg), &dc);
    let v: CpuBuf<f32> = rand32(1001, 835).iter().map(|v| v.abs()).collect::<Vec<_>>().into();
    let mut sc = v.clone();
    cpu.elementwise_sqrt(&mut sc);
    let mut sg = up(be, &v);
    be.elementwise_sqrt(&mut sg);
    close("elementwise_sqrt", &be.download(&sg), &sc);
}

/// PA&DA's resampling (kernels/sampling.cu) gives the CPU reference's
/// results bit for bit: the folded scores, q and the drawn indices, from an
/// epoch's order (a permutation, or draws with repeats) and score log (with
/// NaN for skipped steps). Sizes are not multiples of the scan tile (256) or
/// the radix runs (16); the cases cover ties, zero scores, a single non-zero
/// score (one sample takes most draws: one long run to fold), N = 1 and
/// ImageNet's 1,281,167 samples.
pub fn sampling<B: Backend<T = f32>>(be: &B) {
    use pada::ops::sampling::{draw_systematic, draw_with_replacement, fold_scores, importance_distribution};
    let cpu = CpuBackend::<f32>::new();
    #[derive(Clone, Copy, Debug)]
    enum Scores {
        Random,
        Ties,
        Zero,
        SingleNonZero,
    }
    let cases = [
        (1usize, Scores::Random),
        (2, Scores::Zero),
        (17, Scores::SingleNonZero),
        (1000, Scores::Ties),
        (4099, Scores::Random),
        (50_000, Scores::Random),
        (50_000, Scores::SingleNonZero),
        (1_281_167, Scores::Random),
    ];
    for (case, &(n, kind)) in cases.iter().enumerate() {
        let what = format!("sampling n {n} {kind:?}");
        let rng = |i: usize, salt: u64| pada::rng::uniform01(case as u64 * 1000 + salt, i as u64);
        for epoch in 0..2 {
            // epoch 0: a permutation; then draws with repeats (from a skewed q)
            let order: Vec<i32> = if epoch == 0 {
                let mut o: Vec<i32> = (0..n as i32).collect();
                (1..n).rev().for_each(|i| o.swap(i, (rng(i, 1) * (i + 1) as f64) as usize));
                o
            } else {
                let skew: Vec<f32> = (0..n).map(|i| (1.0 + 30.0 * rng(i, 2).powi(8)) as f32).collect();
                draw_with_replacement(&skew, 99, n)
            };
            let log: Vec<f32> = (0..n)
                .map(|k| match kind {
                    _ if rng(k, 3) < 0.01 => f32::NAN,
                    Scores::Random => (rng(k, 4) * 3.0) as f32,
                    Scores::Ties => [0.5f32, 1.25, 2.0][k % 3],
                    Scores::Zero => 0.0,
                    Scores::SingleNonZero => {
                        if order[k] == order[0] {
                            1.5
                        } else {
                            0.0
                        }
                    }
                })
                .collect();
            let scores = fold_scores(n, &order, &log);
            let mut sg = nan(be, n);
            be.fold_scores(n, &be.upload_i32(&order), &up(be, &log), &mut sg);
            let got = be.download(&sg);
            assert!(got.iter().zip(&scores).all(|(a, b)| a.to_bits() == b.to_bits()), "{what}, epoch {epoch}: fold_scores differs");
            for tau in [0.0, 0.5, 0.9] {
                let q = importance_distribution(&scores, tau);
                let mut qg = nan(be, n);
                be.importance_distribution(&up(be, &scores), tau, &mut qg);
                let got = be.download(&qg);
                assert!(got.iter().zip(&q).all(|(a, b)| a.to_bits() == b.to_bits()), "{what}, tau {tau}: importance_distribution differs");
                let seed = 7 + case as u64;
                let want = draw_with_replacement(&q, seed, n);
                let mut dg = be.upload_i32(&vec![-1; n]);
                be.draw_with_replacement(&up(be, &q), seed, &mut dg);
                let got = be.download_i32(&dg);
                let diff = got.iter().zip(&want).position(|(a, b)| a != b);
                assert!(diff.is_none(), "{what}, tau {tau}: draw {diff:?} differs");
                // the CPU backend's op is the same function
                let mut dc = cpu.alloc_i32(n);
                cpu.draw_with_replacement(&q.clone().into(), seed, &mut dc);
                assert_eq!(dc, want);
                // systematic resampling
                let want = draw_systematic(&q, seed, n);
                be.draw_systematic(&up(be, &q), seed, &mut dg);
                let got = be.download_i32(&dg);
                let diff = got.iter().zip(&want).position(|(a, b)| a != b);
                assert!(diff.is_none(), "{what}, tau {tau}: systematic draw {diff:?} differs");
            }
        }
    }
}

macro_rules! kernel_tests {
    ($modname:ident, $make:expr, $($attr:meta),*) => {
        mod $modname {
            $(#[$attr])* #[test] fn conv2d() { super::conv2d(&$make) }
            $(#[$attr])* #[test] fn depthwise() { super::depthwise(&$make) }
            $(#[$attr])* #[test] fn batchnorm() { super::batchnorm(&$make) }
            $(#[$attr])* #[test] fn pools() { super::pools(&$make) }
            $(#[$attr])* #[test] fn elementwise() { super::elementwise(&$make) }
            $(#[$attr])* #[test] fn linear_and_loss() { super::linear_and_loss(&$make) }
            $(#[$attr])* #[test] fn optimiser() { super::optimiser(&$make) }
            $(#[$attr])* #[test] fn per_sample_norms() { super::per_sample_norms(&$make) }
            $(#[$attr])* #[test] fn launch_profile() { super::launch_profile(&$make) }
            $(#[$attr])* #[test] fn sampling() { super::sampling(&$make) }
            $(#[$attr])* #[test] fn conv2d_tf32() {
                let p = pada::backend::Precision::Tf32;
                super::conv2d_tensor_cores(&$make.with_precision(p), p)
            }
            $(#[$attr])* #[test] fn conv2d_bf16() {
                let p = pada::backend::Precision::Bf16;
                super::conv2d_tensor_cores(&$make.with_precision(p), p)
            }
        }
    };
}

#[cfg(feature = "cuda-emu")]
kernel_tests!(emulated, pada::backend::gpu::emu::EmuBackend::poisoned(pada::backend::gpu::emu::EmuDevice::new()), allow(unused));

#[cfg(feature = "cuda")]
kernel_tests!(gpu, pada::backend::gpu::cuda::CudaBackend::open(0).expect("a CUDA GPU (these tests are for GPU machines)"), ignore);
