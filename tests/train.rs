//! `pada train` through the library: every method end to end on tiny data,
//! resume equals an uninterrupted run, the off-path update rules, and the
//! run directory's files.

mod common;

use approx::assert_abs_diff_eq;

use std::path::Path;

use pada::arch::Arch;
use pada::backend::cpu::CpuBackend;
use pada::backend::prelude::*;
use pada::ops::SgdStep;
use pada::optim::{clip_and_step, OffPath};
use pada::supernet::{Supernet, SupernetConfig};
use pada::train::checkpoint::load_weights;
use pada::train::run::{self, Progress, Quiet};
use pada::train::{EpochMetrics, Method, TrainConfig};

fn tiny(method: Method, epochs: usize) -> TrainConfig {
    let mut c = TrainConfig::defaults(method, "synthetic:1x8x8:96:40:4".parse().unwrap());
    c.epochs = epochs;
    c.batch_size = 32;
    c.channels = 3;
    c.cells = 1;
    c.seed = 42;
    c
}

fn strip_timing(mut m: EpochMetrics) -> EpochMetrics {
    m.seconds = 0.0;
    m.images_per_sec = 0.0;
    m
}

#[test]
fn every_method_trains_end_to_end_and_writes_the_run_directory() {
    let be = CpuBackend::<f32>::new();
    for method in [Method::Pada, Method::Pa, Method::Da, Method::Spos, Method::Fairnas, Method::Sumnas] {
        let dir = tempfile::tempdir().unwrap();
        let summary = run::train(&be, Some(tiny(method, 3)), dir.path(), &mut Quiet).unwrap();
        assert_eq!(summary.epochs, 3);
        assert!(summary.final_loss.is_finite());
        for f in [run::CONFIG, run::METRICS, run::WEIGHTS, run::CHECKPOINT, run::SUMMARY] {
            assert!(dir.path().join(f).exists(), "{method:?}: {f} missing");
        }
        let metrics = run::read_metrics(dir.path()).unwrap();
        assert_eq!(metrics.len(), 3);
        let record = run::read_record(dir.path()).unwrap();
        assert_eq!(record.train.method, method);
        assert_eq!(record.supernet.classes, 4);
        let bytes = std::fs::read(dir.path().join(run::WEIGHTS)).unwrap();
        let net = load_weights(&be, &bytes, "weights").unwrap();
        assert_eq!(net.config, record.supernet);
        if matches!(method, Method::Pada | Method::Pa) {
            // the path distribution moved away from uniform after epoch 1 (tau = 1/3)
            assert!(metrics[2].path_prob.iter().any(|&p| (p - 0.2).abs() > 1e-3), "{method:?}: {:?}", metrics[2].path_prob);
            assert_abs_diff_eq!(metrics[1].path_prob[0], 0.2, epsilon = 1e-12); // tau = 0 after epoch 0 keeps p uniform
        } else {
            assert!(metrics.iter().all(|m| m.path_prob.iter().all(|&p| (p - 0.2).abs() < 1e-12)));
        }
        if matches!(method, Method::Pada | Method::Da) {
            assert!(metrics[1].data.unique_fraction < 1.0, "{method:?}: epoch 1 is drawn with replacement");
        } else {
            assert!(metrics.iter().all(|m| m.data.unique_fraction == 1.0));
        }
    }
}

/// NAS-Bench-Macro: every method, with the subnet-aware options and a
/// per-layer distribution; the weights reload as the same supernet; a resumed
/// run ends where an uninterrupted one does.
#[test]
fn every_method_trains_in_nas_bench_macro() {
    let be = CpuBackend::<f32>::new();
    let macro_config = |method: Method| {
        let mut c = TrainConfig::with_preset(
            pada::arch::Space::NB_MACRO,
            method,
            "synthetic:3x16x16:64:24:4".parse().unwrap(),
            pada::train::config::Preset::Laptop,
        );
        (c.epochs, c.batch_size, c.channels, c.seed) = (2, 32, 2, 7);
        c
    };
    for method in [Method::Pada, Method::Pa, Method::Da, Method::Spos, Method::Fairnas, Method::Sumnas] {
        for variant in 0..2 {
            let mut c = macro_config(method);
            if variant == 1 {
                c.lr_schedule = pada::train::LrSchedule::Calr;
                c.momentum_groups = 3;
                c.per_edge = matches!(method, Method::Pada | Method::Pa);
            }
            let dir = tempfile::tempdir().unwrap();
            let summary = run::train(&be, Some(c.clone()), dir.path(), &mut Quiet).unwrap();
            assert!(summary.final_loss.is_finite(), "{method:?} variant {variant}");
            let record = run::read_record(dir.path()).unwrap();
            assert_eq!(record.supernet.space, pada::arch::Space::NB_MACRO);
            let net = load_weights(&be, &std::fs::read(dir.path().join(run::WEIGHTS)).unwrap(), "weights").unwrap();
            assert_eq!(net.config, record.supernet);
            let metrics = run::read_metrics(dir.path()).unwrap();
            assert_eq!(metrics[0].path_prob.len(), if c.per_edge { 24 } else { 3 }, "{method:?}: K or slots x K entries");
            assert!(metrics.iter().all(|m| m.path_prob.iter().all(|&p| p > 0.0)));
        }
    }
    // resume = uninterrupted (PA&DA with every option)
    let mut c = macro_config(Method::Pada);
    (c.epochs, c.lr_schedule, c.momentum_groups) = (3, pada::train::LrSchedule::Calr, 3);
    let (full, cut) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    run::train(&be, Some(c.clone()), full.path(), &mut Quiet).unwrap();
    run::train(&be, Some(c.clone()), cut.path(), &mut Snapshot { dir: cut.path(), at: 1 }).unwrap();
    // "kill" after epoch 1: its checkpoint, and weights and metrics ahead of it
    std::fs::rename(cut.path().join("saved.ck"), cut.path().join(run::CHECKPOINT)).unwrap();
    std::fs::remove_file(cut.path().join(run::SUMMARY)).unwrap();
    run::train(&be, None, cut.path(), &mut Quiet).unwrap();
    for f in [run::WEIGHTS, run::CHECKPOINT] {
        assert_eq!(std::fs::read(full.path().join(f)).unwrap(), std::fs::read(cut.path().join(f)).unwrap(), "{f}");
    }
    // momentum groups: one per choice of the space
    let mut bad = macro_config(Method::Spos);
    bad.momentum_groups = 5;
    let e = run::train(&be, Some(bad), tempfile::tempdir().unwrap().path(), &mut Quiet).unwrap_err().to_string();
    assert!(e.contains("--momentum-groups must be 1 (plain SGD) or 3"), "{e}");
}

#[test]
fn same_seed_same_result() {
    let be = CpuBackend::<f32>::new();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    run::train(&be, Some(tiny(Method::Pada, 2)), a.path(), &mut Quiet).unwrap();
    run::train(&be, Some(tiny(Method::Pada, 2)), b.path(), &mut Quiet).unwrap();
    let same = |x: &Path, y: &Path| std::fs::read(x.join(run::WEIGHTS)).unwrap() == std::fs::read(y.join(run::WEIGHTS)).unwrap();
    assert!(same(a.path(), b.path()), "same seed, different weights");
    let strip = |d: &Path| run::read_metrics(d).unwrap().into_iter().map(strip_timing).collect::<Vec<_>>();
    assert_eq!(strip(a.path()), strip(b.path()));
    // and another seed differs
    let c = tempfile::tempdir().unwrap();
    let mut cfg = tiny(Method::Pada, 2);
    cfg.seed = 43;
    run::train(&be, Some(cfg), c.path(), &mut Quiet).unwrap();
    assert!(!same(a.path(), c.path()), "another seed, same weights");
}

/// Saves a copy of the checkpoint after epoch `at`, to play an interruption.
struct Snapshot<'a> {
    dir: &'a Path,
    at: usize,
}

impl Progress for Snapshot<'_> {
    fn epoch(&mut self, m: &EpochMetrics) {
        if m.epoch + 1 == self.at {
            std::fs::copy(self.dir.join(run::CHECKPOINT), self.dir.join("saved.ck")).unwrap();
        }
    }
}

#[test]
fn resume_reaches_the_same_final_result_as_an_uninterrupted_run() {
    let be = CpuBackend::<f32>::new();
    let subnet_aware = |method| {
        let mut c = tiny(method, 4);
        (c.lr_schedule, c.momentum_groups) = (pada::train::LrSchedule::Calr, 5);
        c
    };
    for config in [tiny(Method::Pada, 4), tiny(Method::Sumnas, 4), subnet_aware(Method::Pada), subnet_aware(Method::Fairnas)] {
        let method = config.method;
        let full = tempfile::tempdir().unwrap();
        run::train(&be, Some(config.clone()), full.path(), &mut Quiet).unwrap();
        let cut = tempfile::tempdir().unwrap();
        run::train(&be, Some(config), cut.path(), &mut Snapshot { dir: cut.path(), at: 2 }).unwrap();
        // "kill" after epoch 2: the checkpoint of epoch 2, and weights/metrics ahead of it
        std::fs::rename(cut.path().join("saved.ck"), cut.path().join(run::CHECKPOINT)).unwrap();
        std::fs::remove_file(cut.path().join(run::SUMMARY)).unwrap();
        run::train(&be, None, cut.path(), &mut Quiet).unwrap();
        for f in [run::WEIGHTS, run::CHECKPOINT] {
            let same = std::fs::read(full.path().join(f)).unwrap() == std::fs::read(cut.path().join(f)).unwrap();
            assert!(same, "{method:?}: {f} differs between the resumed and the uninterrupted run");
        }
        let strip = |d: &Path| run::read_metrics(d).unwrap().into_iter().map(strip_timing).collect::<Vec<_>>();
        assert_eq!(strip(full.path()), strip(cut.path()));
    }
}

#[test]
fn a_new_run_refuses_to_overwrite_an_existing_one() {
    let be = CpuBackend::<f32>::new();
    let dir = tempfile::tempdir().unwrap();
    run::train(&be, Some(tiny(Method::Spos, 1)), dir.path(), &mut Quiet).unwrap();
    let err = run::train(&be, Some(tiny(Method::Spos, 1)), dir.path(), &mut Quiet).unwrap_err().to_string();
    assert!(err.contains("already holds a run") && err.contains("--resume"), "{err}");
}

/// Two steps: path A, then path B. A's parameters that are not on B are moved
/// in step 2 by momentum and weight decay (PyTorch 1.7) or not at all (frozen).
#[test]
fn off_path_parameters_follow_pytorch_1_7_or_stay_frozen() {
    let be = CpuBackend::<f64>::new();
    let cfg = SupernetConfig::nb201_with(2, 1, 3, "1x8x8".parse().unwrap());
    let a: Arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|".parse().unwrap();
    let b: Arch = "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_1x1~1|nor_conv_1x1~2|".parse().unwrap();
    let x = common::random_vec(4 * 64, 3);
    let labels = vec![0, 1, 2, 0];
    let h = SgdStep { lr: 0.1, momentum: 0.9, weight_decay: 0.01 };
    for mode in [OffPath::Momentum, OffPath::Frozen] {
        let mut net = Supernet::new(&be, cfg, 1).unwrap();
        let step = |net: &mut Supernet<CpuBackend<f64>>, g: &Arch| {
            net.params.zero_grads(&be);
            let tape = net.forward(&be, be.upload(&x), 4, g, true);
            let (mut l, mut d, mut q) = (be.alloc(4), be.alloc(12), be.alloc(4));
            be.softmax_cross_entropy(4, 3, &tape.logits, &labels, None, &mut l, &mut d, &mut q);
            net.backward(&be, tape, &d);
            let on: Vec<bool> = {
                let ids = net.path_params(g);
                (0..net.params.len()).map(|i| ids.iter().any(|id| id.0 == i)).collect()
            };
            clip_and_step(&be, &mut net.params, &on, &h, Some(5.0), mode, None);
        };
        step(&mut net, &a);
        let id = net.params.id("cell0.edge0.op3.weight").unwrap();
        let (p1, m1) = (net.params.get(id).value.clone(), net.params.get(id).momentum.clone());
        let untouched = net.params.id("cell0.edge0.op2.weight").unwrap();
        let u0 = net.params.get(untouched).value.clone();
        step(&mut net, &b);
        let p2 = &net.params.get(id).value;
        for i in 0..p1.len() {
            let want = match mode {
                // zero gradient: d = wd * p, buf = mom * buf + d, p -= lr * buf
                OffPath::Momentum => p1[i] - h.lr * (h.momentum * m1[i] + h.weight_decay * p1[i]),
                OffPath::Frozen => p1[i],
            };
            assert!((p2[i] - want).abs() < 1e-15, "{mode:?}: element {i}: {} vs {want}", p2[i]);
        }
        // edge 0's conv1x1 was on path B: it moved in both modes
        assert_ne!(net.params.get(untouched).value.to_vec(), u0.to_vec());
    }
}

#[test]
fn gradient_variance_is_logged_without_disturbing_training() {
    let be = CpuBackend::<f32>::new();
    let (plain, logged) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    run::train(&be, Some(tiny(Method::Pada, 3)), plain.path(), &mut Quiet).unwrap();
    let mut cfg = tiny(Method::Pada, 3);
    cfg.gradvar_every = 1;
    cfg.gradvar_batches = 4;
    run::train(&be, Some(cfg), logged.path(), &mut Quiet).unwrap();
    let m = run::read_metrics(logged.path()).unwrap();
    for e in &m {
        let g = e.gradvar.as_ref().expect("gradvar logged every epoch");
        assert!(g.variance.is_finite() && g.variance > 0.0 && g.relative > 0.0, "{g:?}");
        assert_eq!(g.batches, 4);
    }
    // measuring left weights, momentum and samplers exactly as they were
    for f in [run::WEIGHTS, run::CHECKPOINT] {
        let same = std::fs::read(plain.path().join(f)).unwrap() == std::fs::read(logged.path().join(f)).unwrap();
        assert!(same, "{f} differs when the gradient variance is measured");
    }
    assert!(run::read_metrics(plain.path()).unwrap().iter().all(|e| e.gradvar.is_none()));
}

#[test]
fn calr_complexity_and_schedule_are_the_released_codes() {
    let be = CpuBackend::<f32>::new();
    let net = Supernet::uninit(&be, SupernetConfig::nb201()).unwrap();
    // 72,752 + 26,880 n1 + 241,920 n3 at C=16, N=5 (the released code's table)
    for (arch, n1, n3) in [
        ("|none~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|skip_connect~1|avg_pool_3x3~2|", 0, 0),
        ("|nor_conv_1x1~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|nor_conv_1x1~1|nor_conv_3x3~2|", 2, 2),
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|", 0, 6),
    ] {
        let g: Arch = arch.parse().unwrap();
        assert_eq!(net.complexity(&g), 72_752 + 26_880 * n1 + 241_920 * n3, "{arch}");
    }
    let (lo, hi) = (72_752.0, 72_752.0 + 6.0 * 241_920.0);
    // t = T/2: the smallest path gets gamma 4, the largest 1/4, the geometric middle 1
    let lr = |c: f64| pada::train::calr_lr(0.05, 50, 100, c, (lo, hi), 4.0);
    assert_abs_diff_eq!(lr(lo), 0.05 * 0.5f64.powi(4), epsilon = 1e-15);
    assert_abs_diff_eq!(lr(hi), 0.05 * 0.5f64.powf(0.25), epsilon = 1e-15);
    assert_abs_diff_eq!(lr((lo * hi).sqrt()), 0.025, epsilon = 1e-15);
    assert_eq!(pada::train::calr_lr(0.05, 0, 100, lo, (lo, hi), 4.0), 0.05, "every path starts at lr0");
    assert_eq!(pada::train::calr_lr(0.05, 100, 100, hi, (lo, hi), 4.0), 0.0, "and ends at 0");
}

/// Momentum separation: each group's buffer carries only the steps that used
/// it. Steps on groups 2, 4, 2 of a tensor with constant gradient g: step 2
/// starts from a fresh buffer, step 3 continues step 1's.
#[test]
fn momentum_groups_keep_separate_buffers() {
    let be = CpuBackend::<f64>::new();
    let cfg = SupernetConfig::nb201_with(2, 1, 3, "1x8x8".parse().unwrap());
    let mut net = Supernet::new(&be, cfg, 1).unwrap();
    net.params.set_momentum_groups(&be, 5);
    let id = net.params.id("classifier.bias").unwrap();
    let on: Vec<bool> = (0..net.params.len()).map(|i| i == id.0).collect();
    let h = SgdStep { lr: 0.1, momentum: 0.9, weight_decay: 0.0 };
    let g = vec![0.5, -1.0, 2.0];
    let p0 = net.params.get(id).value.to_vec();
    let mut p = p0.clone();
    let (mut m2, mut m4) = (vec![0.0; 3], vec![0.0; 3]);
    for group in [2usize, 4, 2] {
        net.params.activate_momentum_group(group);
        be.upload_into(&g, &mut net.params.get_mut(id).grad);
        net.params.get_mut(id).seen = true;
        clip_and_step(&be, &mut net.params, &on, &h, None, OffPath::Frozen, None);
        let m = if group == 2 { &mut m2 } else { &mut m4 };
        for k in 0..3 {
            m[k] = 0.9 * m[k] + g[k];
            p[k] -= 0.1 * m[k];
        }
        assert_eq!(net.params.get(id).value.to_vec(), p, "after a step on group {group}");
    }
    // the groups hold what they carried; group 0 never moved
    assert_eq!(net.params.momentum_of(id.0, 2).to_vec(), m2);
    assert_eq!(net.params.momentum_of(id.0, 4).to_vec(), m4);
    assert!(net.params.momentum_of(id.0, 0).iter().all(|&v| v == 0.0));
}

#[test]
fn the_trainer_selects_the_group_of_the_split_edges_op() {
    let be = CpuBackend::<f32>::new();
    let mut config = tiny(Method::Spos, 1);
    config.momentum_groups = 5;
    let data = std::sync::Arc::new(config.data.load().unwrap());
    let mut t = pada::train::Trainer::new(&be, config, data).unwrap();
    t.trace = true;
    let e = t.momentum_split_edge;
    let mut ops = Vec::new();
    t.run_epoch(&mut |p| ops.push(p.trace.unwrap().paths[0].choice(e))).unwrap();
    // each op seen on the split edge has a non-zero buffer for the classifier, the others none
    let id = t.net.params.id("classifier.weight").unwrap();
    for group in 0..5 {
        let moved = t.net.params.momentum_of(id.0, group).iter().any(|&v| v != 0.0);
        assert_eq!(moved, ops.contains(&group), "group {group}, ops on edge {e}: {ops:?}");
    }
}
