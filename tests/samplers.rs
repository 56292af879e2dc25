//! The samplers: FairNAS coverage, PA&DA's path distribution against its
//! formulas, data resampling against q, and the random primitives.

mod common;

use approx::{assert_abs_diff_eq, assert_relative_eq};

use pada::arch::{Arch, Space};
use pada::backend::cpu::CpuBackend;
use pada::backend::prelude::*;
use pada::ops::sampling::{draw_systematic, draw_with_replacement, fold_scores, permute};
use pada::ops::{self, NormGroup};
use pada::optim::StepNorms;
use pada::rng::{philox4x32_10, uniform01};
use pada::sampler::path::fold_importance;
use pada::sampler::{DataSampler, DataSamplerKind, PathSampler, PathSamplerKind};
use pada::space::nb201::{Genotype, Op};
use pada::supernet::{Supernet, SupernetConfig};

/// A small NAS-Bench-201 supernet for the samplers (they only need its parameters).
fn nb201_net<B: pada::backend::Backend>(be: &B) -> Supernet<B> {
    Supernet::new(be, SupernetConfig::nb201_with(2, 1, 3, "1x8x8".parse().unwrap()), 0).unwrap()
}

/// A small NAS-Bench-Macro supernet.
fn macro_net<B: pada::backend::Backend>(be: &B) -> Supernet<B> {
    let config = SupernetConfig { space: Space::NB_MACRO, channels: 2, cells: 0, classes: 3, input: "1x8x8".parse().unwrap() };
    Supernet::new(be, config, 0).unwrap()
}

#[test]
fn philox_matches_random123_known_answers() {
    // Known-answer tests of Random123's philox4x32-10 (kat_vectors).
    assert_eq!(philox4x32_10([0, 0, 0, 0], [0, 0]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
    assert_eq!(philox4x32_10([u32::MAX; 4], [u32::MAX; 2]), [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
    assert_eq!(
        philox4x32_10([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]),
        [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
    );
    let u: Vec<f64> = (0..1000).map(|i| uniform01(7, i)).collect();
    assert!(u.iter().all(|&v| (0.0..1.0).contains(&v)));
    let mean = u.iter().sum::<f64>() / 1000.0;
    assert_abs_diff_eq!(mean, 0.5, epsilon = 0.03);
}

#[test]
fn fairnas_trains_every_choice_once_per_slot_per_step() {
    let be = CpuBackend::<f32>::new();
    for net in [nb201_net(&be), macro_net(&be)] {
        let (slots, k) = (net.config.space.slots(), net.config.space.choices());
        let mut s = PathSampler::new(PathSamplerKind::Fair, &net);
        s.begin_epoch(&be, 3, 0, 50);
        let mut first = std::collections::HashSet::new();
        for _ in 0..50 {
            let paths = s.next_paths().unwrap();
            assert_eq!(paths.len(), k, "{}: K paths a step", net.config.space);
            for e in 0..slots {
                let mut choices: Vec<usize> = paths.iter().map(|g| g.choice(e)).collect();
                choices.sort();
                assert_eq!(choices, (0..k).collect::<Vec<_>>(), "slot {e}: every choice exactly once");
            }
            first.insert(paths[0]);
        }
        // a fresh permutation every step (the official code's reuse is not copied)
        assert!(first.len() > 40, "only {} distinct first paths in 50 steps", first.len());
    }
}

#[test]
fn uniform_path_sampler_is_uniform() {
    let be = CpuBackend::<f32>::new();
    for net in [nb201_net(&be), macro_net(&be)] {
        let k = net.config.space.choices();
        let mut s = PathSampler::new(PathSamplerKind::Uniform, &net);
        s.begin_epoch(&be, 1, 0, 2000);
        let mut counts = vec![0usize; k];
        for _ in 0..2000 {
            for &c in s.next_paths().unwrap()[0].choices() {
                counts[c as usize] += 1;
            }
        }
        // chi-square with k - 1 degrees of freedom; 18.47 (4) and 13.82 (2) are the 0.999 quantiles
        let expect = (2000 * net.config.space.slots()) as f64 / k as f64;
        let chi2: f64 = counts.iter().map(|&c| (c as f64 - expect).powi(2) / expect).sum();
        assert!(chi2 < if k == 5 { 18.47 } else { 13.82 }, "chi2 {chi2} counts {counts:?}");
    }
}

/// Feeds the path sampler constructed per-tensor gradient norms and checks G
/// and p against the formulas of the official code, written out here.
#[test]
fn pada_path_distribution_follows_the_formulas() {
    let be = CpuBackend::<f64>::new();
    let cfg = SupernetConfig::nb201_with(2, 2, 3, "1x8x8".parse().unwrap());
    let net = Supernet::new(&be, cfg, 0).unwrap();
    let mut s = PathSampler::new(PathSamplerKind::Importance { per_edge: false }, &net);
    s.begin_epoch(&be, 0, 0, 3);
    let g1: Genotype = "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|none~0|skip_connect~1|nor_conv_3x3~2|".parse().unwrap();
    let g2: Genotype = "|nor_conv_1x1~0|+|avg_pool_3x3~0|none~1|+|none~0|skip_connect~1|avg_pool_3x3~2|".parse().unwrap();
    // Every tensor gets gradient norm sqrt(index + 1) before clipping; the clip coefficient is 0.5.
    let norms_for = |coef: f64| {
        let tensors: Vec<usize> = (0..net.params.len()).collect();
        let sq: Vec<f64> = tensors.iter().map(|&i| (i + 1) as f64).collect();
        StepNorms::<CpuBackend<f64>> { sq_norms: sq.into(), clip_coef: vec![coef].into(), tensors }
    };
    let norm_of = |id: pada::supernet::ParamId| ((id.0 + 1) as f64).sqrt();
    // expected S_k for a genotype: sum over cells and edges with op k of (|W| + |b|), / count(k), times coef
    // (each cell's conv of that op on that edge: its weight and its bias, by name)
    let s_k = |g: &Genotype, op: Op, coef: f64| -> f64 {
        let mut total = 0.0;
        for cell in 0..3 * cfg.cells {
            for (e, &edge_op) in g.0.iter().enumerate() {
                if edge_op == op {
                    for part in ["weight", "bias"] {
                        total += norm_of(net.params.id(&format!("cell{cell}.edge{e}.op{}.{part}", op.index())).unwrap());
                    }
                }
            }
        }
        coef * total / g.count(op) as f64
    };
    let mut gk = [0.0f64; 5];
    s.replay(vec![vec![g1.into()], vec![g2.into()], vec![g1.into()]]);
    for (g, coef) in [(g1, 0.5), (g2, 1.0), (g1, 0.25)] {
        assert_eq!(s.next_paths().unwrap(), vec![Arch::from(g)], "replayed paths come back in order");
        s.observe(&be, &net, &norms_for(coef));
        for op in [Op::NorConv1x1, Op::NorConv3x3] {
            if g.count(op) > 0 {
                gk[op.index()] = (gk[op.index()] + s_k(&g, op, coef)) / 2.0;
            }
        }
    }
    let (epoch, epochs) = (3, 10);
    let got = s.importance(&be);
    for k in 0..5 {
        assert_relative_eq!(got[k], gk[k], epsilon = 1e-12, max_relative = 1e-12);
    }
    s.end_epoch(&be, epoch, epochs);
    let tau = 0.3;
    let total: f64 = gk.iter().sum();
    for (k, g) in gk.iter().enumerate() {
        let want = tau * g / total + (1.0 - tau) / 5.0;
        assert_abs_diff_eq!(s.distribution()[k], want, epsilon = 1e-12);
    }
    // parameter-free ops keep importance 0: p = (1 - tau) / 5
    assert_abs_diff_eq!(s.distribution()[1], 0.14, epsilon = 1e-12);
    // G restarts at zero each epoch: an epoch without conv steps leaves p uniform
    s.begin_epoch(&be, 0, 4, 0);
    s.end_epoch(&be, 4, epochs);
    assert_abs_diff_eq!(s.distribution(), &[0.2; 5][..], epsilon = 1e-12);
}

#[test]
fn per_edge_path_importance_has_its_own_distributions() {
    let be = CpuBackend::<f64>::new();
    let cfg = SupernetConfig::nb201_with(2, 1, 3, "1x8x8".parse().unwrap());
    let net = Supernet::new(&be, cfg, 0).unwrap();
    let mut s = PathSampler::new(PathSamplerKind::Importance { per_edge: true }, &net);
    assert_eq!(s.distribution().len(), 30);
    s.begin_epoch(&be, 0, 0, 1);
    let g: Genotype = "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|none~1|none~2|".parse().unwrap();
    let tensors: Vec<usize> = (0..net.params.len()).collect();
    let norms = StepNorms::<CpuBackend<f64>> { sq_norms: vec![4.0; tensors.len()].into(), clip_coef: vec![1.0].into(), tensors };
    s.replay(vec![vec![g.into()]]);
    s.next_paths().unwrap();
    s.observe(&be, &net, &norms);
    s.end_epoch(&be, 1, 2);
    let p = s.distribution();
    // edge 0: only conv3x3 has importance -> 0.5 * 1 + 0.5 / 5
    assert_abs_diff_eq!(&p[..5], &[0.1, 0.1, 0.1, 0.6, 0.1][..], epsilon = 1e-12);
    // edge 1: conv1x1
    assert_abs_diff_eq!(p[5 + 2], 0.6, epsilon = 1e-12);
    // edge 5 saw no conv: uniform
    assert_abs_diff_eq!(&p[25..30], &[0.2; 5][..], epsilon = 1e-12);
    let mut counts = [[0usize; 5]; 6];
    let mut s2 = PathSampler::<CpuBackend<f64>>::new(PathSamplerKind::Importance { per_edge: true }, &net);
    s2.set_distribution(s.distribution().to_vec()).unwrap();
    s2.begin_epoch(&be, 9, 2, 3000);
    for _ in 0..3000 {
        for (e, &op) in s2.next_paths().unwrap()[0].choices().iter().enumerate() {
            counts[e][op as usize] += 1;
        }
    }
    assert!((counts[0][3] as f64 / 3000.0 - 0.6).abs() < 0.03, "{:?}", counts[0]);
    assert!((counts[5][3] as f64 / 3000.0 - 0.2).abs() < 0.03, "{:?}", counts[5]);
}

#[test]
fn clipped_group_norms_log_each_group_and_nan_for_skipped_steps() {
    let groups = [NormGroup { slot: 3, start: 0, len: 2 }, NormGroup { slot: 0, start: 2, len: 1 }];
    let mut out = vec![7.0f64; 4];
    ops::clipped_group_norms(&[9.0, 16.0, 0.0], 0.5, &[0, 1, 2], &groups, &mut out);
    assert_eq!(out, vec![0.0, 7.0, 7.0, 0.5 * (3.0 + 4.0)], "slots 1 and 2 have no group: untouched");
    ops::clipped_group_norms(&[9.0, 16.0, 0.0], f64::NAN, &[0, 1, 2], &groups, &mut out);
    assert!(out[0].is_nan() && out[3].is_nan() && out[1] == 7.0);
}

#[test]
fn path_importance_counts_zero_norms_and_skips_missing_ones() {
    let conv: Genotype = "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|none~0|none~1|none~2|".parse().unwrap();
    let nan = f64::NAN;
    // step 0: conv3x3 edges 0 and 2 (mean 3), conv1x1 edge 1 (2)
    // step 1: a conv on the path with an exactly zero norm (it read an all-zero
    //         node) still halves its entry, as the official code does in floating point
    // step 2: a skipped step (NaN everywhere) changes nothing
    let log = [[4.0, 2.0, 2.0, nan, nan, nan], [0.0, 0.0, 0.0, nan, nan, nan], [nan; 6]].concat();
    let conv = Arch::from(conv);
    // NAS-Bench-201: ops 2 and 3 (the convs) have parameters on every edge
    let has_params: Vec<bool> = (0..30).map(|i| matches!(i % 5, 2 | 3)).collect();
    let g = fold_importance(Space::NB201, &[conv, conv, conv], &log, false, &has_params);
    assert_eq!(g, vec![0.0, 0.0, 0.5, 0.75, 0.0]);
    let per_edge = fold_importance(Space::NB201, &[conv, conv, conv], &log, true, &has_params);
    assert_eq!(per_edge[3], 1.0, "edge 0, conv3x3: (0 + 4) / 2 / 2");
    assert_eq!(per_edge[5 + 2], 0.5, "edge 1, conv1x1");
    assert_eq!(per_edge[10 + 3], 0.5, "edge 2, conv3x3");
    assert_eq!(per_edge.iter().filter(|&&v| v != 0.0).count(), 3);
}

/// NAS-Bench-Macro's identity has parameters only at the 3 layers that open
/// a stage (a strided 1x1 conv): PA&DA's G learns it from those, never from
/// the others, and the blocks learn at every layer.
#[test]
fn macro_identity_learns_only_where_it_has_parameters() {
    let be = CpuBackend::<f64>::new();
    let net = macro_net(&be);
    let has: Vec<bool> = (0..8 * 3).map(|i| !net.choice_params(i / 3, i % 3).is_empty()).collect();
    for l in 0..8 {
        assert_eq!(has[l * 3], [0, 2, 5].contains(&l), "layer {l}'s identity");
        assert!(has[l * 3 + 1] && has[l * 3 + 2], "layer {l}'s blocks");
    }
    // every layer an identity: only layers 0, 2 and 5 log a norm
    let ids = Arch::parse_in(Space::NB_MACRO, "00000000").unwrap();
    let log = [1.0, 9.0, 2.0, 9.0, 9.0, 3.0, 9.0, 9.0];
    assert_eq!(fold_importance(Space::NB_MACRO, &[ids], &log, false, &has), vec![1.0, 0.0, 0.0], "the mean of layers 0, 2, 5 halved");
    let per_layer = fold_importance(Space::NB_MACRO, &[ids], &log, true, &has);
    assert_eq!((per_layer[0], per_layer[3], per_layer[6], per_layer[15]), (0.5, 0.0, 1.0, 1.5));
    // through the sampler: the device log of a step on that path
    let mut s = PathSampler::new(PathSamplerKind::Importance { per_edge: true }, &net);
    assert_eq!(s.distribution().len(), 24);
    s.begin_epoch(&be, 0, 0, 1);
    s.replay(vec![vec![ids]]);
    s.next_paths().unwrap();
    let tensors: Vec<usize> = (0..net.params.len()).collect();
    let norms = StepNorms::<CpuBackend<f64>> { sq_norms: vec![4.0; tensors.len()].into(), clip_coef: vec![1.0].into(), tensors };
    s.observe(&be, &net, &norms);
    let g = s.importance(&be);
    assert_eq!((g[0], g[3], g[6]), (1.0, 0.0, 1.0), "one conv of norm 2 at layers 0 and 2, nothing at layer 1");
}

#[test]
fn data_sampler_first_epoch_is_a_permutation_and_resampling_follows_q() {
    let be = CpuBackend::<f32>::new();
    let n = 1000;
    let mut ds = DataSampler::new(DataSamplerKind::Importance, n);
    let order = ds.begin_epoch(&be, 5, 0).unwrap();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(sorted, (0..n as u32).collect::<Vec<_>>(), "epoch 0 is a permutation");
    assert_ne!(order, sorted, "and not the identity");
    // Replay that order followed by every even index again: sample i scores
    // (i % 10) + 1 the first time, even ones 1 the second time (averaged).
    let mut ds = DataSampler::new(DataSamplerKind::Importance, n);
    let replayed: Vec<u32> = order.iter().copied().chain((0..n as u32).step_by(2)).collect();
    ds.replay(vec![replayed.clone()]).unwrap();
    assert_eq!(ds.begin_epoch(&be, 5, 0).unwrap(), replayed);
    let vals: Vec<f32> = replayed.iter().enumerate().map(|(k, &i)| if k >= n { 1.0 } else { ((i % 10) + 1) as f32 }).collect();
    for chunk in vals.chunks(100) {
        ds.observe(&be, &be.upload(chunk));
    }
    let stats = ds.end_epoch(&be, 5, 5, 10);
    assert_eq!(stats.unique_fraction, 1.0);
    // expected q
    let s: Vec<f64> = (0..n)
        .map(|i| {
            let g = ((i % 10) + 1) as f64;
            if i % 2 == 0 {
                (g + 1.0) / 2.0
            } else {
                g
            }
        })
        .collect();
    let total: f64 = s.iter().sum();
    let tau = 0.5;
    let q: Vec<f64> = s.iter().map(|v| tau * v / total + (1.0 - tau) / n as f64).collect();
    assert_eq!(ds.scores(&be), s, "scores folded as the official code");
    let next = ds.state().0.unwrap().to_vec();
    assert_eq!(next.len(), n);
    // chi-square over the 10 residue classes of i (equal-q groups)
    let mut counts = [0f64; 10];
    next.iter().for_each(|&i| counts[(i % 10) as usize] += 1.0);
    let mut expect = [0f64; 10];
    q.iter().enumerate().for_each(|(i, p)| expect[i % 10] += p * n as f64);
    let chi2: f64 = counts.iter().zip(&expect).map(|(c, e)| (c - e).powi(2) / e).sum();
    assert!(chi2 < 27.88, "chi2 {chi2} (0.999 quantile of 9 dof is 27.88): {counts:?} vs {expect:?}");
    // with replacement: some repeats
    let mut u = next.clone();
    u.sort();
    u.dedup();
    assert!(u.len() < n);
}

#[test]
fn scores_of_repeats_are_averaged_pairwise_as_the_official_code() {
    // sample 1: 4, then (4 + 2) / 2, then (3 + 1) / 2; a NaN (skipped step) is no observation
    let s = fold_scores(4, &[1, 1, 2, 1, 3], &[4.0f32, 2.0, 5.0, 1.0, f32::NAN]);
    assert_eq!(s, vec![0.0, 2.0, 5.0, 0.0]);
}

#[test]
fn sampling_with_replacement_matches_distribution_and_skips_zeros() {
    let q = vec![0.0f32, 1.0, 3.0, 0.0, 6.0];
    let out = draw_with_replacement(&q, 11, 20000);
    assert_eq!(out[..100], draw_with_replacement(&q, 11, 100)[..], "draw i depends on i alone");
    let mut c = [0f64; 5];
    out.iter().for_each(|&i| c[i as usize] += 1.0);
    assert_eq!(c[0] + c[3], 0.0, "zero-probability entries are never drawn");
    let chi2: f64 = [(1, 0.1), (2, 0.3), (4, 0.6)].iter().map(|&(i, p)| (c[i] - p * 20000.0).powi(2) / (p * 20000.0)).sum();
    assert!(chi2 < 13.82, "chi2 {chi2} {c:?}");
}

#[test]
fn permute_is_a_bijection_that_depends_on_the_seed() {
    for n in [1u64, 2, 3, 5, 17, 1000, 4096, 65_537] {
        let p: Vec<u64> = (0..n).map(|k| permute(k, n, 9)).collect();
        let mut sorted = p.clone();
        sorted.sort();
        assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "n {n}: a permutation");
        if n >= 17 {
            assert_ne!(p, (0..n).collect::<Vec<_>>(), "n {n}: not the identity");
            assert_ne!(p, (0..n).map(|k| permute(k, n, 10)).collect::<Vec<_>>(), "n {n}: another seed, another order");
        }
    }
}

#[test]
fn systematic_resampling_draws_each_index_round_n_q_times() {
    // uniform q: every index exactly once, in a random order
    let n = 1000;
    let out = draw_systematic(&vec![1.0f32; n], 3, n);
    let mut sorted = out.clone();
    sorted.sort();
    assert_eq!(sorted, (0..n as i32).collect::<Vec<_>>());
    assert_ne!(out, sorted);
    // skewed q (zeros included): index i drawn floor or ceil of count q_i / Q times
    let q: Vec<f32> = (0..97).map(|i| if i % 7 == 0 { 0.0 } else { 1.0 + (i % 5) as f32 * 3.5 }).collect();
    let total: f64 = q.iter().map(|&v| v as f64).sum();
    for count in [97usize, 500, 1234] {
        let out = draw_systematic(&q, 5, count);
        let mut c = vec![0usize; q.len()];
        out.iter().for_each(|&i| c[i as usize] += 1);
        for (i, (&k, &qi)) in c.iter().zip(&q).enumerate() {
            let want = count as f64 * qi as f64 / total;
            assert!((k as f64 - want).abs() < 1.0 + 1e-9, "count {count}, index {i}: drawn {k} times, expected {want:.2}");
        }
    }
}
