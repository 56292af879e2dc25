//! Every CPU op against PyTorch 2.15's values in tests/fixtures/torch/ops.safetensors
//! and sgd.safetensors (computed in float64 from float32 inputs).
//!
//! Each op runs in f64, where it must agree to ~1e-12 (this checks the
//! semantics: padding, counts, biased variance, eps, reductions), and in f32,
//! where the tolerance is f32 rounding over the reduction lengths involved.

mod common;

use common::*;
use pada::element::Element;
use pada::geometry::{ActShape, ConvGeom, LinearGeom, PoolGeom};
use pada::ops;

const TIGHT: (f64, f64) = (1e-12, 1e-10);
const F32: (f64, f64) = (2e-5, 1e-4);

fn tol<T: Element>() -> (f64, f64) {
    if std::mem::size_of::<T>() == 8 {
        TIGHT
    } else {
        F32
    }
}

fn get<T: Element>(f: &Fixture, name: &str) -> Vec<T> {
    f.f64(name).into_iter().map(T::from_f64).collect()
}

fn check<T: Element>(what: &str, got: &[T], want: &[f64]) {
    let (a, r) = tol::<T>();
    assert_close(what, &to_f64(got), want, a, r);
}

fn conv_case<T: Element>(f: &Fixture, case: &str) {
    let meta = f.i64(&format!("{case}.meta"));
    let (k, stride, pad, has_bias) = (meta[0] as usize, meta[1] as usize, meta[2] as usize, meta[3] != 0);
    let xs = f.shape(&format!("{case}.x"));
    let ws = f.shape(&format!("{case}.weight"));
    let (n, c, h, w) = (xs[0], xs[1], xs[2], xs[3]);
    let g = ConvGeom::with_pad(n, c, h, w, ws[0], k, stride, pad);
    let (ohw, hw) = ((g.oh * g.ow) as usize, h * w);
    let x = nchw_to_cnhw(&get::<T>(f, &format!("{case}.x")), n, c, hw);
    let wt = get::<T>(f, &format!("{case}.weight"));
    let bias = has_bias.then(|| get::<T>(f, &format!("{case}.bias")));
    let dy = nchw_to_cnhw(&get::<T>(f, &format!("{case}.dy")), n, ws[0], ohw);
    let mut y = vec![T::nan(); g.output().len()];
    ops::conv2d_forward(&g, &x, false, &wt, bias.as_deref(), &mut y);
    check(&format!("{case}.y"), &cnhw_to_nchw(&y, n, ws[0], ohw), &f.f64(&format!("{case}.y")));
    let mut dx = vec![T::nan(); x.len()];
    ops::conv2d_backward_data(&g, &dy, &wt, None, &mut dx, false);
    check(&format!("{case}.dx"), &cnhw_to_nchw(&dx, n, c, hw), &f.f64(&format!("{case}.dx")));
    let mut dw = vec![T::zero(); wt.len()];
    let mut db = vec![T::zero(); ws[0]];
    ops::conv2d_backward_weight(&g, &x, false, &dy, &mut dw, has_bias.then_some(&mut db[..]), None);
    check(&format!("{case}.dweight"), &dw, &f.f64(&format!("{case}.dweight")));
    if has_bias {
        check(&format!("{case}.dbias"), &db, &f.f64(&format!("{case}.dbias")));
    }
}

fn bn_case<T: Element>(f: &Fixture, case: &str) {
    let s = f.shape(&format!("{case}.x"));
    let (n, c, hw) = (s[0], s[1], s[2] * s[3]);
    let shape = ActShape::new(c, n, s[2], s[3]);
    let x = nchw_to_cnhw(&get::<T>(f, &format!("{case}.x")), n, c, hw);
    let dy = nchw_to_cnhw(&get::<T>(f, &format!("{case}.dy")), n, c, hw);
    let (mut y, mut stats) = (vec![T::nan(); x.len()], vec![T::nan(); 2 * c]);
    ops::batchnorm_forward(&shape, &x, &mut y, false, false, &mut stats);
    check(&format!("{case}.y"), &cnhw_to_nchw(&y, n, c, hw), &f.f64(&format!("{case}.y")));
    // accumulate mode adds the same output onto what is there
    let mut y2 = vec![T::one(); x.len()];
    ops::batchnorm_forward(&shape, &x, &mut y2, true, false, &mut stats);
    let want: Vec<f64> = f.f64(&format!("{case}.y")).iter().map(|v| v + 1.0).collect();
    check(&format!("{case}.y accumulated"), &cnhw_to_nchw(&y2, n, c, hw), &want);
    // relu mode writes the same output through a ReLU
    let mut y3 = vec![T::nan(); x.len()];
    ops::batchnorm_forward(&shape, &x, &mut y3, false, true, &mut stats);
    assert!(y3.iter().zip(&y).all(|(&r, &v)| r == if v > T::zero() { v } else { T::zero() }), "{case}: relu mode");
    assert!(y3.iter().any(|&r| r == T::zero()) && y3.iter().any(|&r| r > T::zero()), "{case}: a ReLU with both sides");
    let mut dx = vec![T::nan(); x.len()];
    ops::batchnorm_backward(&shape, &x, &stats, &dy, &mut dx);
    check(&format!("{case}.dx"), &cnhw_to_nchw(&dx, n, c, hw), &f.f64(&format!("{case}.dx")));
}

fn pool_case<T: Element>(f: &Fixture, case: &str, three: bool) {
    let s = f.shape(&format!("{case}.x"));
    let (n, c) = (s[0], s[1]);
    let shape = ActShape::new(c, n, s[2], s[3]);
    let g = if three { PoolGeom::avg3x3(shape) } else { PoolGeom::avg2x2(shape) };
    let (hw, ohw) = (shape.plane(), g.output().plane());
    let x = nchw_to_cnhw(&get::<T>(f, &format!("{case}.x")), n, c, hw);
    let dy = nchw_to_cnhw(&get::<T>(f, &format!("{case}.dy")), n, c, ohw);
    let mut y = vec![T::nan(); g.output().len()];
    let mut dx = vec![T::nan(); x.len()];
    if three {
        ops::avgpool3x3_forward(&g, &x, &mut y, false);
        ops::avgpool3x3_backward(&g, &dy, &mut dx, false);
    } else {
        ops::avgpool2x2_forward(&g, &x, &mut y);
        ops::avgpool2x2_backward(&g, &dy, &mut dx, false);
    }
    check(&format!("{case}.y"), &cnhw_to_nchw(&y, n, c, ohw), &f.f64(&format!("{case}.y")));
    check(&format!("{case}.dx"), &cnhw_to_nchw(&dx, n, c, hw), &f.f64(&format!("{case}.dx")));
}

fn all_ops<T: Element>(f: &Fixture) {
    for case in ["conv_k3_s1_bias", "conv_k3_s2_bias_odd", "conv_k3_s2_bias_even", "conv_k1_s1_nobias", "conv_k1_s1_bias"] {
        conv_case::<T>(f, case);
    }
    for case in ["bn_a", "bn_b", "bn_c"] {
        bn_case::<T>(f, case);
    }
    pool_case::<T>(f, "avgpool3_a", true);
    pool_case::<T>(f, "avgpool3_b", true);
    pool_case::<T>(f, "avgpool2_even", false);
    pool_case::<T>(f, "avgpool2_odd", false);

    // global average pool
    let s = f.shape("gap.x");
    let shape = ActShape::new(s[1], s[0], s[2], s[3]);
    let x = nchw_to_cnhw(&get::<T>(f, "gap.x"), s[0], s[1], shape.plane());
    let mut y = vec![T::nan(); s[0] * s[1]];
    ops::global_avgpool_forward(&shape, &x, false, &mut y);
    check("gap.y", &y, &f.f64("gap.y"));
    let mut dx = vec![T::nan(); x.len()];
    ops::global_avgpool_backward(&shape, &get::<T>(f, "gap.dy"), None, &mut dx);
    check("gap.dx", &cnhw_to_nchw(&dx, s[0], s[1], shape.plane()), &f.f64("gap.dx"));

    // relu (layout-free)
    let x = get::<T>(f, "relu.x");
    let mut y = vec![T::nan(); x.len()];
    ops::relu_forward(&x, &mut y);
    check("relu.y", &y, &f.f64("relu.y"));
    let mut dx = vec![T::nan(); x.len()];
    ops::relu_backward(&x, &get::<T>(f, "relu.dy"), &mut dx);
    check("relu.dx", &dx, &f.f64("relu.dx"));

    // linear
    let (xs, ws) = (f.shape("linear.x"), f.shape("linear.weight"));
    let g = LinearGeom::new(xs[0], xs[1], ws[0]);
    let (x, w, b, dy) = (get::<T>(f, "linear.x"), get::<T>(f, "linear.weight"), get::<T>(f, "linear.bias"), get::<T>(f, "linear.dy"));
    let mut y = vec![T::nan(); xs[0] * ws[0]];
    ops::linear_forward(&g, &x, &w, &b, &mut y);
    check("linear.y", &y, &f.f64("linear.y"));
    let (mut dx, mut dw, mut db) = (vec![T::nan(); x.len()], vec![T::zero(); w.len()], vec![T::zero(); b.len()]);
    ops::linear_backward(&g, &x, &w, &dy, Some(&mut dx), &mut dw, &mut db);
    check("linear.dx", &dx, &f.f64("linear.dx"));
    check("linear.dweight", &dw, &f.f64("linear.dweight"));
    check("linear.dbias", &db, &f.f64("linear.dbias"));

    // softmax cross-entropy
    let ls = f.shape("softmax_ce.logits");
    let (n, k) = (ls[0], ls[1]);
    let logits = get::<T>(f, "softmax_ce.logits");
    let labels: Vec<i32> = f.i64("softmax_ce.labels").into_iter().map(|v| v as i32).collect();
    let (mut loss, mut dl, mut norm) = (vec![T::nan(); n], vec![T::nan(); n * k], vec![T::nan(); n]);
    ops::softmax_cross_entropy(n, k, &logits, &labels, None, &mut loss, &mut dl, &mut norm);
    check("softmax_ce.loss_per_sample", &loss, &f.f64("softmax_ce.loss_per_sample"));
    let mean = loss.iter().map(|v| v.as_f64()).sum::<f64>() / n as f64;
    check("softmax_ce.loss_mean", &[T::from_f64(mean)], &f.f64("softmax_ce.loss_mean"));
    check("softmax_ce.dlogits_of_mean", &dl, &f.f64("softmax_ce.dlogits_of_mean"));
    check("softmax_ce.proxy_norm", &norm, &f.f64("softmax_ce.proxy_norm"));
}

#[test]
fn ops_match_pytorch_f64() {
    all_ops::<f64>(&Fixture::torch("ops.safetensors"));
}

#[test]
fn ops_match_pytorch_f32() {
    all_ops::<f32>(&Fixture::torch("ops.safetensors"));
}

fn sgd_and_clip<T: Element>(f: &Fixture) {
    let h = ops::SgdStep { lr: 0.05, momentum: 0.9, weight_decay: 2.5e-4 };
    let mut p = get::<T>(f, "sgd.p0");
    let mut m = vec![T::zero(); p.len()];
    ops::sgd_step(&mut p, &get::<T>(f, "sgd.g1"), &mut m, &h, T::one());
    check("sgd.p1", &p, &f.f64("sgd.p1"));
    ops::sgd_step(&mut p, &get::<T>(f, "sgd.g2"), &mut m, &h, T::one());
    check("sgd.p2", &p, &f.f64("sgd.p2"));

    let (ga, gb) = (get::<T>(f, "clip.g_a"), get::<T>(f, "clip.g_b"));
    let total = (ops::sq_norm(&ga) + ops::sq_norm(&gb)).sqrt();
    check("clip.total_norm", &[T::from_f64(total)], &f.f64("clip.total_norm"));
    let coef = T::from_f64(ops::clip_coefficient(total, 5.0));
    let (mut ca, mut cb) = (ga.clone(), gb.clone());
    ops::scale(&mut ca, coef);
    ops::scale(&mut cb, coef);
    check("clip.clipped_a", &ca, &f.f64("clip.clipped_a"));
    check("clip.clipped_b", &cb, &f.f64("clip.clipped_b"));
}

#[test]
fn sgd_and_clipping_match_pytorch() {
    let f = Fixture::torch("sgd.safetensors");
    sgd_and_clip::<f64>(&f);
    sgd_and_clip::<f32>(&f);
}
