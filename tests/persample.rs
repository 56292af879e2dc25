//! The three per-sample gradient-norm modes of data importance against brute
//! force: one backward pass per sample, in f64.

mod common;

use common::random_vec;
use pada::arch::Arch;
use pada::backend::cpu::{CpuBackend, CpuBuf};
use pada::backend::prelude::*;
use pada::supernet::{Pass, Supernet, SupernetConfig};
use pada::train::{forward_backward, DataImportance};

const ARCHS: [&str; 5] = [
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
    "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|nor_conv_1x1~0|none~1|skip_connect~2|",
    "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|", // disconnected: only the classifier bias
    "02012100",                                                        // NAS-Bench-Macro: depthwise convs, residuals, strided identities
    "21200120",
];

/// A small supernet of the architecture's space.
fn config_for(g: &Arch) -> SupernetConfig {
    match g.space() {
        pada::arch::Space::NB201 => SupernetConfig::nb201_with(3, 1, 4, "2x8x8".parse().unwrap()),
        space => SupernetConfig { space, channels: 2, cells: 0, classes: 4, input: "2x8x8".parse().unwrap() },
    }
}

fn setup(g: &Arch) -> (CpuBackend<f64>, SupernetConfig, CpuBuf<f64>, Vec<i32>, usize) {
    let config = config_for(g);
    let n = 5;
    (CpuBackend::<f64>::new(), config, random_vec(n * config.input.len(), 7).into(), (0..n as i32).map(|i| i % 4).collect(), n)
}

fn scores(mode: DataImportance, g: &Arch) -> Vec<f64> {
    let (be, config, x, labels, n) = setup(g);
    let mut net = Supernet::new(&be, config, 1).unwrap();
    let mut sums = be.alloc_zeroed(3);
    be.download(&forward_backward(&be, &mut net, &x, &labels, None, n, g, &mut sums, mode))
}

/// Brute force: sample i's own loss gradient (dlogits zero but for row i),
/// one backward pass each, with the BN statistics held fixed for `frozen`.
fn brute(g: &Arch, frozen: bool, classifier_only: bool) -> Vec<f64> {
    let (be, config, x, labels, n) = setup(g);
    let k = config.classes;
    let mut out = Vec::new();
    for i in 0..n {
        let mut net = Supernet::new(&be, config, 1).unwrap();
        let tape = net.forward(&be, be.upload(&x), n, g, true);
        let (mut l, mut dz, mut p) = (be.alloc(n), be.alloc(n * k), be.alloc(n));
        be.softmax_cross_entropy(n, k, &tape.logits, &labels, None, &mut l, &mut dz, &mut p);
        let mut di = be.alloc_zeroed(n * k);
        for j in 0..k {
            di[i * k + j] = dz[i * k + j] * n as f64; // gradient of loss_i itself
        }
        net.backward_with(&be, &tape, &di, &mut Pass { frozen_bn_statistics: frozen, gradients: true, per_sample_sq_norms: None });
        let sq: f64 = net
            .params
            .tensors
            .iter()
            .filter(|p| !classifier_only || p.name.starts_with("classifier"))
            .flat_map(|p| p.grad.iter())
            .map(|v| v * v)
            .sum();
        out.push(sq.sqrt());
    }
    out
}

fn close(what: &str, got: &[f64], want: &[f64]) {
    common::assert_close(what, got, want, 1e-12, 1e-9);
}

#[test]
fn proxy_is_the_logit_gradient_norm() {
    for a in ARCHS {
        let g: Arch = a.parse().unwrap();
        let (be, config, x, labels, n) = setup(&g);
        let net = Supernet::new(&be, config, 1).unwrap();
        let tape = net.forward(&be, x, n, &g, true);
        let k = config.classes;
        let (mut l, mut dz, mut p) = (be.alloc(n), be.alloc(n * k), be.alloc(n));
        be.softmax_cross_entropy(n, k, &tape.logits, &labels, None, &mut l, &mut dz, &mut p);
        let want: Vec<f64> = (0..n).map(|i| dz[i * k..(i + 1) * k].iter().map(|v| (v * n as f64).powi(2)).sum::<f64>().sqrt()).collect();
        close(&format!("proxy {a}"), &scores(DataImportance::Proxy, &g), &want);
    }
}

#[test]
fn classifier_mode_matches_brute_force() {
    for a in ARCHS {
        let g: Arch = a.parse().unwrap();
        // the classifier's gradient does not depend on how BN is differentiated
        close(&format!("classifier {a}"), &scores(DataImportance::Classifier, &g), &brute(&g, false, true));
    }
}

#[test]
fn full_mode_matches_brute_force() {
    for a in ARCHS {
        let g: Arch = a.parse().unwrap();
        let full = scores(DataImportance::Full, &g);
        close(&format!("full {a}"), &full, &brute(&g, true, false));
        // and it bounds the classifier part from above
        let cls = scores(DataImportance::Classifier, &g);
        assert!(full.iter().zip(&cls).all(|(f, c)| *f >= *c - 1e-12), "{a}: {full:?} vs {cls:?}");
    }
}

/// `batch` at the op level, against brute force: sample i's contribution to a
/// conv's weight and bias gradients is the same reduction with `dy` zero
/// outside sample i's pixels; the contributions sum to the batch gradient.
#[test]
fn conv_sample_contributions_match_brute_force() {
    use pada::geometry::ConvGeom;
    use pada::ops;
    for (g, relu, bias) in [
        (ConvGeom::new(3, 4, 6, 5, 5, 3, 1), true, true),
        (ConvGeom::new(4, 3, 7, 7, 6, 3, 2), true, false),
        (ConvGeom::new(5, 6, 4, 4, 3, 1, 1), false, true),
    ] {
        let (n, ohw, c_out) = (g.n as usize, (g.oh * g.ow) as usize, g.c_out as usize);
        let x = random_vec(g.input().len(), 11);
        let dy = random_vec(g.output().len(), 12);
        let (mut dw, mut db, mut sq) = (vec![0.0; g.weight_len()], vec![0.0; c_out], vec![0.5; n]);
        ops::conv2d_backward_weight(&g, &x, relu, &dy, &mut dw, bias.then_some(&mut db[..]), Some(&mut sq));
        let (mut sum_w, mut sum_b) = (vec![0.0; g.weight_len()], vec![0.0; c_out]);
        for (i, &got) in sq.iter().enumerate() {
            let mut dyi = vec![0.0; dy.len()];
            for co in 0..c_out {
                let r = co * n * ohw + i * ohw;
                dyi[r..r + ohw].copy_from_slice(&dy[r..r + ohw]);
            }
            let (mut gw, mut gb) = (vec![0.0; g.weight_len()], vec![0.0; c_out]);
            ops::conv2d_backward_weight(&g, &x, relu, &dyi, &mut gw, bias.then_some(&mut gb[..]), None);
            let want = 0.5 + gw.iter().chain(if bias { &gb[..] } else { &[] }).map(|v| v * v).sum::<f64>();
            assert!((got - want).abs() <= 1e-12 * want, "{g:?} sample {i}: {got} vs {want}");
            sum_w.iter_mut().zip(&gw).for_each(|(s, v)| *s += v);
            sum_b.iter_mut().zip(&gb).for_each(|(s, v)| *s += v);
        }
        close(&format!("{g:?}: contributions sum to dw"), &sum_w, &dw);
        if bias {
            close(&format!("{g:?}: contributions sum to db"), &sum_b, &db);
        }
    }
}

/// The classifier's per-sample split, against brute force (dy zero but for row i).
#[test]
fn linear_sample_contributions_match_brute_force() {
    use pada::geometry::LinearGeom;
    use pada::ops;
    let (n, i_, o) = (6, 5, 4);
    let g = LinearGeom::new(n, i_, o);
    let (x, w, dy) = (random_vec(n * i_, 21), random_vec(o * i_, 22), random_vec(n * o, 23));
    let mut sq = vec![0.0; n];
    ops::linear_per_sample_sq_norms(&g, &x, &dy, &mut sq);
    for s in 0..n {
        let mut dys = vec![0.0; n * o];
        dys[s * o..(s + 1) * o].copy_from_slice(&dy[s * o..(s + 1) * o]);
        let (mut dw, mut db) = (vec![0.0; o * i_], vec![0.0; o]);
        ops::linear_backward(&g, &x, &w, &dys, None, &mut dw, &mut db);
        let want: f64 = dw.iter().chain(&db).map(|v| v * v).sum();
        assert!((sq[s] - want).abs() <= 1e-12 * want, "sample {s}: {} vs {want}", sq[s]);
    }
}

/// `batch` through whole supernets: with one sample its contribution is the
/// whole gradient, so its score is the gradient's norm; with several, the
/// training step's gradients are those of a plain step (the norms ride along).
#[test]
fn batch_mode_is_the_step_gradient_split_by_sample() {
    for a in ARCHS {
        let g: Arch = a.parse().unwrap();
        let config = config_for(&g);
        let be = CpuBackend::<f64>::new();
        for n in [1usize, 5] {
            let x: CpuBuf<f64> = random_vec(n * config.input.len(), 7).into();
            let labels: Vec<i32> = (0..n as i32).map(|i| i % 4).collect();
            let mut plain = Supernet::new(&be, config, 1).unwrap();
            let mut net = Supernet::new(&be, config, 1).unwrap();
            let mut sums = be.alloc_zeroed(3);
            forward_backward(&be, &mut plain, &x, &labels, None, n, &g, &mut sums, DataImportance::Proxy);
            let scores = be.download(&forward_backward(&be, &mut net, &x, &labels, None, n, &g, &mut sums, DataImportance::Batch));
            let total: f64 = plain.params.tensors.iter().flat_map(|p| p.grad.iter()).map(|v| v * v).sum();
            for (p, q) in plain.params.tensors.iter().zip(&net.params.tensors) {
                close(&format!("{a} n={n} gradient {}", p.name), &q.grad, &p.grad);
            }
            assert!(scores.iter().all(|s| s.is_finite() && *s >= 0.0), "{a}: {scores:?}");
            if n == 1 {
                close(&format!("{a}: one sample's contribution is the gradient"), &scores, &[total.sqrt()]);
            } else {
                // the parts sum to the gradient: ||sum g_i|| <= sum ||g_i|| (triangle inequality)
                assert!(total.sqrt() <= scores.iter().sum::<f64>() * (1.0 + 1e-12), "{a}: {} > {scores:?}", total.sqrt());
            }
        }
    }
}
