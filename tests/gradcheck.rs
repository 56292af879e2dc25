//! Finite-difference gradient checks of every op, in f64.
//!
//! For an op y = f(x, w, b) and a fixed random cotangent `dy`, the scalar
//! L = sum(y * dy) has gradients that the backward functions compute; central
//! differences with step 1e-6 in f64 agree with them to ~1e-8 relative (the
//! truncation error is O(h^2) and the rounding error O(eps/h) ~ 1e-10), so the
//! tolerance below (1e-6 of the largest gradient) leaves a wide margin while
//! any wrong index or missing term, which is O(1), fails.
//!
//! Sizes are deliberately odd (not multiples of anything) and include stride 2
//! on odd inputs, 1-row planes for count_include_pad at the borders, and a
//! batch of 1 for batch norm.

mod common;

use common::*;
use pada::geometry::{ActShape, ConvGeom, LinearGeom, PoolGeom};
use pada::ops;

const H: f64 = 1e-6;

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Central differences of `loss` with respect to every element of `x`.
fn numeric_grad(x: &[f64], mut loss: impl FnMut(&[f64]) -> f64) -> Vec<f64> {
    let mut xp = x.to_vec();
    (0..x.len())
        .map(|i| {
            let orig = xp[i];
            xp[i] = orig + H;
            let lp = loss(&xp);
            xp[i] = orig - H;
            let lm = loss(&xp);
            xp[i] = orig;
            (lp - lm) / (2.0 * H)
        })
        .collect()
}

fn assert_grad(what: &str, analytic: &[f64], numeric: &[f64]) {
    let scale = numeric.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
    assert_close(what, analytic, numeric, 1e-6 * scale, 0.0);
}

/// Random values kept away from 0 so that no ReLU kink lies within +-H.
fn away_from_zero(len: usize, seed: u64) -> Vec<f64> {
    random_vec(len, seed).into_iter().map(|v| if v.abs() < 0.01 { v + 0.05f64.copysign(v) } else { v }).collect()
}

#[allow(clippy::too_many_arguments)]
fn check_conv(n: usize, c_in: usize, h: usize, w: usize, c_out: usize, k: usize, stride: usize, relu: bool, bias: bool) {
    check_conv_pad(n, c_in, h, w, c_out, k, stride, k / 2, relu, bias)
}

#[allow(clippy::too_many_arguments)]
fn check_conv_pad(n: usize, c_in: usize, h: usize, w: usize, c_out: usize, k: usize, stride: usize, pad: usize, relu: bool, bias: bool) {
    let g = ConvGeom::with_pad(n, c_in, h, w, c_out, k, stride, pad);
    let what = format!("conv n{n} c{c_in}->{c_out} {h}x{w} k{k} s{stride} p{pad} relu={relu} bias={bias}");
    let x = away_from_zero(g.input().len(), 1);
    let wt = random_vec(g.weight_len(), 2);
    let b = random_vec(c_out, 3);
    let dy = random_vec(g.output().len(), 4);
    let fwd = |x: &[f64], wt: &[f64], b: &[f64]| {
        let mut y = vec![0.0; g.output().len()];
        ops::conv2d_forward(&g, x, relu, wt, bias.then_some(b), &mut y);
        dot(&y, &dy)
    };
    // analytic, with poisoned outputs for the non-accumulating op
    let mut dx = vec![f64::NAN; x.len()];
    ops::conv2d_backward_data(&g, &dy, &wt, relu.then_some(&x[..]), &mut dx, false);
    let mut dw = vec![0.0; wt.len()];
    let mut db = vec![0.0; c_out];
    ops::conv2d_backward_weight(&g, &x, relu, &dy, &mut dw, bias.then_some(&mut db[..]), None);
    assert_grad(&format!("{what} dx"), &dx, &numeric_grad(&x, |x| fwd(x, &wt, &b)));
    assert_grad(&format!("{what} dw"), &dw, &numeric_grad(&wt, |wt| fwd(&x, wt, &b)));
    if bias {
        assert_grad(&format!("{what} db"), &db, &numeric_grad(&b, |b| fwd(&x, &wt, b)));
    }
    // accumulate mode adds to what is there
    let mut dx2 = vec![1.0; x.len()];
    ops::conv2d_backward_data(&g, &dy, &wt, relu.then_some(&x[..]), &mut dx2, true);
    let shifted: Vec<f64> = dx.iter().map(|v| v + 1.0).collect();
    assert_close(&format!("{what} accumulate"), &dx2, &shifted, 1e-12, 1e-12);
}

#[test]
fn conv2d_gradients() {
    check_conv(2, 3, 7, 5, 4, 3, 1, false, true);
    check_conv(3, 2, 7, 7, 3, 3, 2, true, true); // stride 2 on odd input
    check_conv(2, 3, 8, 6, 5, 3, 2, true, false);
    check_conv(2, 5, 5, 3, 3, 1, 1, true, true);
    check_conv(1, 4, 1, 3, 2, 3, 1, false, true); // single-row input: every tap but one is padding
    check_conv(5, 2, 4, 4, 2, 1, 1, false, false);
    // stride 1 without "same" padding takes the general (im2col + fold) path
    check_conv_pad(2, 3, 6, 5, 2, 3, 1, 0, true, true);
    check_conv_pad(2, 2, 5, 5, 3, 3, 1, 2, false, true);
}

/// A depthwise conv: dx and dw by central differences, the per-sample
/// weight-gradient norms against each sample's own dw.
fn check_depthwise(n: usize, c: usize, h: usize, w: usize, k: usize, stride: usize, relu: bool) {
    let g = ConvGeom::new(n, c, h, w, c, k, stride);
    let what = format!("depthwise n{n} c{c} {h}x{w} k{k} s{stride} relu={relu}");
    let x = away_from_zero(g.input().len(), 11);
    let wt = random_vec(ops::depthwise::weight_len(&g), 12);
    let dy = random_vec(g.output().len(), 14);
    let fwd = |x: &[f64], wt: &[f64]| {
        let mut y = vec![f64::NAN; g.output().len()];
        ops::depthwise_forward(&g, x, relu, wt, &mut y);
        dot(&y, &dy)
    };
    let mut dx = vec![f64::NAN; x.len()];
    ops::depthwise_backward_data(&g, &dy, &wt, relu.then_some(&x[..]), &mut dx, false);
    let mut dw = vec![0.0; wt.len()];
    let mut sq = vec![0.0; n];
    ops::depthwise_backward_weight(&g, &x, relu, &dy, &mut dw, Some(&mut sq));
    assert_grad(&format!("{what} dx"), &dx, &numeric_grad(&x, |x| fwd(x, &wt)));
    assert_grad(&format!("{what} dw"), &dw, &numeric_grad(&wt, |wt| fwd(&x, wt)));
    let mut dx2 = vec![1.0; x.len()];
    ops::depthwise_backward_data(&g, &dy, &wt, relu.then_some(&x[..]), &mut dx2, true);
    let shifted: Vec<f64> = dx.iter().map(|v| v + 1.0).collect();
    assert_close(&format!("{what} accumulate"), &dx2, &shifted, 1e-12, 1e-12);
    // sample i's part of dw is the gradient of sum(y_i * dy_i): the weight gradient of image i alone
    let (hw, ohw) = (h * w, g.output().plane());
    let mut alone = vec![0.0; n];
    for i in 0..n {
        let gi = ConvGeom::new(1, c, h, w, c, k, stride);
        let xi: Vec<f64> = (0..c).flat_map(|ch| x[(ch * n + i) * hw..][..hw].to_vec()).collect();
        let dyi: Vec<f64> = (0..c).flat_map(|ch| dy[(ch * n + i) * ohw..][..ohw].to_vec()).collect();
        let mut dwi = vec![0.0; wt.len()];
        ops::depthwise_backward_weight(&gi, &xi, relu, &dyi, &mut dwi, None);
        alone[i] = dwi.iter().map(|v| v * v).sum();
    }
    assert_close(&format!("{what} per-sample norms"), &sq, &alone, 1e-12, 1e-10);
    let mut sq2 = vec![0.0; n];
    ops::depthwise_per_sample_sq_norms(&g, &x, relu, &dy, &mut sq2);
    assert_close(&format!("{what} per-sample norms alone"), &sq2, &alone, 1e-12, 1e-10);
}

#[test]
fn depthwise_gradients() {
    check_depthwise(2, 3, 7, 5, 3, 1, false);
    check_depthwise(3, 2, 7, 7, 3, 2, true); // stride 2 on odd input
    check_depthwise(2, 3, 8, 6, 5, 2, true);
    check_depthwise(1, 5, 5, 9, 5, 1, true); // batch 1, the 5x5 filter wider than the image is tall
    check_depthwise(2, 1, 3, 3, 5, 2, false); // a filter larger than the image
    check_depthwise(3, 2, 2, 3, 5, 1, true); // stride 1: the filter reaches into the neighbouring images' padding
                                             // stride 1 on planes 16 wide or more, which the CPU computes another way (`flat_pays`)
    check_depthwise(2, 2, 3, 17, 3, 1, true);
    check_depthwise(2, 1, 2, 16, 5, 1, false); // reaching into the neighbouring images' padding
}

#[test]
fn conv2d_many_tiles_equals_one_tile() {
    // Enough images for several tiles: the tiled result must equal per-image results.
    let g = ConvGeom::new(70, 3, 12, 12, 5, 3, 1);
    assert!(pada::ops::conv2d::tiling(&g).1 > 1, "test needs several tiles");
    let x = random_vec(g.input().len(), 7);
    let wt = random_vec(g.weight_len(), 8);
    let mut y = vec![f64::NAN; g.output().len()];
    ops::conv2d_forward(&g, &x, true, &wt, None, &mut y);
    let g1 = ConvGeom::new(1, 3, 12, 12, 5, 3, 1);
    for img in [0, 33, 69] {
        let xi = pada_slice_image(&x, 3, 70, 144, img);
        let mut yi = vec![0.0; g1.output().len()];
        ops::conv2d_forward(&g1, &xi, true, &wt, None, &mut yi);
        let want = pada_slice_image(&y, 5, 70, 144, img);
        assert_close("tiled conv", &yi, &want, 1e-12, 1e-12);
    }
}

/// Image `img` of a CNHW tensor as a 1-image CNHW tensor.
fn pada_slice_image(x: &[f64], c: usize, n: usize, hw: usize, img: usize) -> Vec<f64> {
    (0..c).flat_map(|ci| x[(ci * n + img) * hw..][..hw].to_vec()).collect()
}

fn check_bn(c: usize, n: usize, h: usize, w: usize) {
    let s = ActShape::new(c, n, h, w);
    let x: Vec<f64> = random_vec(s.len(), 11).iter().enumerate().map(|(i, v)| v * 3.0 + (i % 7) as f64).collect();
    let dy = random_vec(s.len(), 12);
    let fwd = |x: &[f64]| {
        let (mut y, mut st) = (vec![0.0; s.len()], vec![0.0; 2 * c]);
        ops::batchnorm_forward(&s, x, &mut y, false, false, &mut st);
        dot(&y, &dy)
    };
    let (mut y, mut st) = (vec![f64::NAN; s.len()], vec![f64::NAN; 2 * c]);
    ops::batchnorm_forward(&s, &x, &mut y, false, false, &mut st);
    let mut dx = vec![f64::NAN; s.len()];
    ops::batchnorm_backward(&s, &x, &st, &dy, &mut dx);
    assert_grad(&format!("bn {c}x{n}x{h}x{w}"), &dx, &numeric_grad(&x, fwd));
}

#[test]
fn batchnorm_gradients() {
    check_bn(3, 4, 5, 3);
    check_bn(2, 1, 3, 3); // a batch of 1
    check_bn(5, 7, 1, 1); // statistics over the batch only
}

#[test]
fn pool_gradients() {
    for (c, n, h, w) in [(2, 3, 5, 6), (1, 2, 1, 4), (2, 1, 3, 1), (3, 2, 7, 7)] {
        let s = ActShape::new(c, n, h, w);
        let g = PoolGeom::avg3x3(s);
        let x = random_vec(s.len(), 21);
        let dy = random_vec(s.len(), 22);
        let mut dx = vec![f64::NAN; s.len()];
        ops::avgpool3x3_backward(&g, &dy, &mut dx, false);
        let num = numeric_grad(&x, |x| {
            let mut y = vec![0.0; s.len()];
            ops::avgpool3x3_forward(&g, x, &mut y, false);
            dot(&y, &dy)
        });
        assert_grad(&format!("avgpool3x3 {c}x{n}x{h}x{w}"), &dx, &num);
    }
    for (c, n, h, w) in [(2, 3, 6, 8), (2, 2, 7, 7), (1, 1, 2, 3)] {
        let s = ActShape::new(c, n, h, w);
        let g = PoolGeom::avg2x2(s);
        let x = random_vec(s.len(), 23);
        let dy = random_vec(g.output().len(), 24);
        let mut dx = vec![f64::NAN; s.len()];
        ops::avgpool2x2_backward(&g, &dy, &mut dx, false);
        let num = numeric_grad(&x, |x| {
            let mut y = vec![0.0; g.output().len()];
            ops::avgpool2x2_forward(&g, x, &mut y);
            dot(&y, &dy)
        });
        assert_grad(&format!("avgpool2x2 {c}x{n}x{h}x{w}"), &dx, &num);
    }
    for relu in [false, true] {
        let s = ActShape::new(3, 2, 4, 5);
        let x = away_from_zero(s.len(), 25);
        let dy = random_vec(6, 26);
        let mut dx = vec![f64::NAN; s.len()];
        ops::global_avgpool_backward(&s, &dy, relu.then_some(&x[..]), &mut dx);
        let num = numeric_grad(&x, |x| {
            let mut y = vec![0.0; 6];
            ops::global_avgpool_forward(&s, x, relu, &mut y);
            dot(&y, &dy)
        });
        assert_grad(&format!("global_avgpool relu={relu}"), &dx, &num);
    }
}

#[test]
fn relu_add_zero_gradients() {
    let x = away_from_zero(37, 31);
    let dy = random_vec(37, 32);
    let mut dx = vec![f64::NAN; 37];
    ops::relu_backward(&x, &dy, &mut dx);
    let num = numeric_grad(&x, |x| {
        let mut y = vec![0.0; 37];
        ops::relu_forward(x, &mut y);
        dot(&y, &dy)
    });
    assert_grad("relu", &dx, &num);
    // add: d(sum((a + b) * dy))/da = dy
    let b = random_vec(37, 33);
    let num = numeric_grad(&x, |a| {
        let mut s = a.to_vec();
        ops::add_assign(&mut s, &b);
        dot(&s, &dy)
    });
    assert_grad("add", &dy, &num);
    // zero op: output and gradient are zero whatever the input
    let num = numeric_grad(&x, |a| {
        let mut y = a.to_vec();
        ops::fill(&mut y, 0.0);
        dot(&y, &dy)
    });
    assert_grad("zero", &vec![0.0; 37], &num);
}

#[test]
fn linear_gradients() {
    let g = LinearGeom::new(5, 7, 3);
    let x = random_vec(35, 41);
    let w = random_vec(21, 42);
    let b = random_vec(3, 43);
    let dy = random_vec(15, 44);
    let fwd = |x: &[f64], w: &[f64], b: &[f64]| {
        let mut y = vec![0.0; 15];
        ops::linear_forward(&g, x, w, b, &mut y);
        dot(&y, &dy)
    };
    let (mut dx, mut dw, mut db) = (vec![f64::NAN; 35], vec![0.0; 21], vec![0.0; 3]);
    ops::linear_backward(&g, &x, &w, &dy, Some(&mut dx), &mut dw, &mut db);
    assert_grad("linear dx", &dx, &numeric_grad(&x, |x| fwd(x, &w, &b)));
    assert_grad("linear dw", &dw, &numeric_grad(&w, |w| fwd(&x, w, &b)));
    assert_grad("linear db", &db, &numeric_grad(&b, |b| fwd(&x, &w, b)));
}

#[test]
fn softmax_cross_entropy_gradient() {
    let (n, k) = (6, 7);
    let z: Vec<f64> = random_vec(n * k, 51).iter().map(|v| v * 4.0).collect();
    let labels: Vec<i32> = (0..n as i32).map(|i| (i * 3) % k as i32).collect();
    let (mut loss, mut dz, mut norm) = (vec![0.0; n], vec![f64::NAN; n * k], vec![0.0; n]);
    ops::softmax_cross_entropy(n, k, &z, &labels, None, &mut loss, &mut dz, &mut norm);
    let num = numeric_grad(&z, |z| {
        let (mut l, mut d, mut q) = (vec![0.0; n], vec![0.0; n * k], vec![0.0; n]);
        ops::softmax_cross_entropy(n, k, z, &labels, None, &mut l, &mut d, &mut q);
        l.iter().sum::<f64>() / n as f64
    });
    assert_grad("softmax_ce dlogits", &dz, &num);
    // the proxy norm is ||n * dlogits_i||
    for i in 0..n {
        let want = dz[i * k..(i + 1) * k].iter().map(|v| (v * n as f64).powi(2)).sum::<f64>().sqrt();
        assert!((norm[i] - want).abs() < 1e-12, "proxy norm {i}: {} vs {want}", norm[i]);
    }
}

#[test]
fn sgd_matches_its_definition() {
    // torch.optim.SGD semantics written out by hand for two steps with clipping scale.
    let h = ops::SgdStep { lr: 0.1, momentum: 0.9, weight_decay: 0.01 };
    let p0 = random_vec(9, 61);
    let (g1, g2) = (random_vec(9, 62), random_vec(9, 63));
    let (mut p, mut m) = (p0.clone(), vec![0.0; 9]);
    ops::sgd_step(&mut p, &g1, &mut m, &h, 0.5);
    ops::sgd_step(&mut p, &g2, &mut m, &h, 1.0);
    for i in 0..9 {
        let d1 = g1[i] * 0.5 + 0.01 * p0[i];
        let b1 = d1;
        let p1 = p0[i] - 0.1 * b1;
        let d2 = g2[i] + 0.01 * p1;
        let b2 = 0.9 * b1 + d2;
        let p2 = p1 - 0.1 * b2;
        assert!((p[i] - p2).abs() < 1e-15, "sgd element {i}");
    }
}
