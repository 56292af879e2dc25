//! The three per-sample gradient-norm modes of data importance against brute
//! force: one backward pass per sample, in f64.

mod common;

use common::random_vec;
use pada::arch::Genotype;
use pada::backend::cpu::{CpuBackend, CpuBuf};
use pada::backend::prelude::*;
use pada::supernet::{Pass, Supernet, SupernetConfig};
use pada::train::{forward_backward, DataImportance};

const ARCHS: [&str; 3] = [
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
    "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|nor_conv_1x1~0|none~1|skip_connect~2|",
    "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|", // disconnected: only the classifier bias
];

fn setup() -> (CpuBackend<f64>, SupernetConfig, CpuBuf<f64>, Vec<i32>, usize) {
    let config = SupernetConfig { channels: 3, cells: 1, classes: 4, input: "2x8x8".parse().unwrap() };
    let n = 5;
    (CpuBackend::<f64>::new(), config, random_vec(n * config.input.len(), 7).into(), (0..n as i32).map(|i| i % 4).collect(), n)
}

fn scores(mode: DataImportance, g: &Genotype) -> Vec<f64> {
    let (be, config, x, labels, n) = setup();
    let mut net = Supernet::new(&be, config, 1).unwrap();
    let mut sums = be.alloc_zeroed(3);
    be.download(&forward_backward(&be, &mut net, &x, &labels, None, n, g, &mut sums, mode))
}

/// Brute force: sample i's own loss gradient (dlogits zero but for row i),
/// one backward pass each, with the BN statistics held fixed for `frozen`.
fn brute(g: &Genotype, frozen: bool, classifier_only: bool) -> Vec<f64> {
    let (be, config, x, labels, n) = setup();
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
        net.backward_with(&be, &tape, &di, &mut Pass { frozen_bn_statistics: frozen, per_sample_sq_norms: None });
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
        let g: Genotype = a.parse().unwrap();
        let (be, config, x, labels, n) = setup();
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
        let g: Genotype = a.parse().unwrap();
        // the classifier's gradient does not depend on how BN is differentiated
        close(&format!("classifier {a}"), &scores(DataImportance::Classifier, &g), &brute(&g, false, true));
    }
}

#[test]
fn full_mode_matches_brute_force() {
    for a in ARCHS {
        let g: Genotype = a.parse().unwrap();
        let full = scores(DataImportance::Full, &g);
        close(&format!("full {a}"), &full, &brute(&g, true, false));
        // and it bounds the classifier part from above
        let cls = scores(DataImportance::Classifier, &g);
        assert!(full.iter().zip(&cls).all(|(f, c)| *f >= *c - 1e-12), "{a}: {full:?} vs {cls:?}");
    }
}
