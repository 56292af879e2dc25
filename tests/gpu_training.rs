//! Whole training steps on the GPU backend (emulated on every CI run, real
//! with `--features cuda -- --ignored`) against the CPU backend: one step of
//! several architectures, then 10+ steps of PA&DA through the trainer.
//!
//! Tolerances: one step agrees to 1e-4 of each tensor's scale (f32 sums in
//! different orders through ~10 layers of batch norm). Over 12 PA&DA steps the
//! two runs see the same paths and samples (the samplers' arithmetic is exact)
//! and their weights drift apart only by accumulated rounding: 1e-3 of scale.
#![cfg(any(feature = "cuda-emu", feature = "cuda"))]

mod common;

use std::sync::Arc;

use common::{assert_close, random_vec};
use pada::arch::Arch;
use pada::backend::cpu::CpuBackend;
use pada::backend::prelude::*;
use pada::ops::SgdStep;
use pada::optim::{clip_and_step, OffPath};
use pada::supernet::{Supernet, SupernetConfig};
use pada::train::{forward_backward, on_path, DataImportance, Method, TrainConfig, Trainer};

fn max_abs(v: &[f32]) -> f64 {
    v.iter().fold(0.0f64, |m, &x| m.max(x.abs() as f64))
}

/// `got` within `rel` of `want`, absolutely within `rel` of `scale` (at least
/// `want`'s own largest entry).
fn close_to_scale(what: &str, got: &[f32], want: &[f32], rel: f64, scale: f64) {
    let g: Vec<f64> = got.iter().map(|&v| v as f64).collect();
    let w: Vec<f64> = want.iter().map(|&v| v as f64).collect();
    assert_close(what, &g, &w, rel * scale.max(max_abs(want)).max(1e-3), rel);
}

fn close(what: &str, got: &[f32], want: &[f32], rel: f64) {
    close_to_scale(what, got, want, rel, 0.0)
}

pub fn one_step<B: Backend<T = f32>>(be: &B) {
    let cpu = CpuBackend::<f32>::new();
    let nb201 = SupernetConfig::nb201_with(4, 1, 5, "3x8x8".parse().unwrap());
    let nbmacro = SupernetConfig { space: pada::arch::Space::NB_MACRO, channels: 2, cells: 0, classes: 5, input: "3x8x8".parse().unwrap() };
    let n = 6;
    let labels: Vec<i32> = (0..n as i32).map(|i| i % 5).collect();
    let h = SgdStep { lr: 0.05, momentum: 0.9, weight_decay: 2.5e-4 };
    for (k, (config, arch)) in [
        (nb201, "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|"),
        (nb201, "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|nor_conv_1x1~0|none~1|skip_connect~2|"),
        (nb201, "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|"),
        // NAS-Bench-Macro: depthwise convs of both sizes and strides, residuals, strided identities
        (nbmacro, "12021021"),
        (nbmacro, "20112200"),
    ]
    .into_iter()
    .enumerate()
    {
        let x: Vec<f32> = random_vec(n * config.input.len(), 1).into_iter().map(|v| v as f32).collect();
        let g: Arch = arch.parse().unwrap();
        let mut nc = Supernet::new(&cpu, config, 3).unwrap();
        let mut ng = Supernet::new(be, config, 3).unwrap();
        let mut sums_c = cpu.alloc_zeroed(3);
        let mut sums_g = be.alloc_zeroed(3);
        let pc = forward_backward(&cpu, &mut nc, &cpu.upload(&x), &labels, None, n, &g, &mut sums_c, DataImportance::Full);
        let xg = be.upload(&x);
        let pg = forward_backward(be, &mut ng, &xg, &be.upload_i32(&labels), None, n, &g, &mut sums_g, DataImportance::Full);
        close(&format!("arch{k} full per-sample norms"), &be.download(&pg), &pc, 1e-4);
        close(&format!("arch{k} loss sum"), &be.download(&sums_g), &sums_c, 1e-4);
        // The bias of a conv that feeds a batch norm has an exact gradient of 0:
        // its computed value is rounding noise of terms as large as the other
        // gradients, so every gradient is held to the step's largest one.
        let grad_scale = nc.params.tensors.iter().fold(0.0f64, |m, t| m.max(max_abs(&t.grad)));
        for (tc, tg) in nc.params.tensors.iter().zip(&ng.params.tensors) {
            close_to_scale(&format!("arch{k} grad {}", tc.name), &be.download(&tg.grad), &tc.grad, 1e-4, grad_scale);
        }
        let on = on_path(&nc, &[g]);
        clip_and_step(&cpu, &mut nc.params, &on, &h, Some(5.0), OffPath::Momentum, None);
        clip_and_step(be, &mut ng.params, &on, &h, Some(5.0), OffPath::Momentum, None);
        for (tc, tg) in nc.params.tensors.iter().zip(&ng.params.tensors) {
            close(&format!("arch{k} after step {}", tc.name), &be.download(&tg.value), &tc.value, 1e-4);
        }
    }
}

/// 12 PA&DA steps on both backends; `extras` adds CaLR, momentum separation
/// and the fused per-sample (`batch`) data scores.
pub fn pada_training<B: Backend<T = f32>>(be: &B, extras: bool) {
    let cpu = CpuBackend::<f32>::new();
    let mut config = TrainConfig::defaults(Method::Pada, "synthetic:1x8x8:96:16:4".parse().unwrap());
    config.epochs = 4; // 3 steps an epoch: 12 steps, data resampled 3 times, paths re-weighted 3 times
    config.batch_size = 32;
    config.channels = 3;
    config.cells = 1;
    if extras {
        config.lr_schedule = pada::train::LrSchedule::Calr;
        config.momentum_groups = 5;
        config.data_importance = pada::train::DataImportance::Batch;
    }
    let data = Arc::new(config.data.load().unwrap());
    let mut tc = Trainer::new(&cpu, config.clone(), data.clone()).unwrap();
    let mut tg = Trainer::new(be, config, data).unwrap();
    while !tc.done() {
        let mc = tc.run_epoch(&mut |_| {}).unwrap();
        let mg = tg.run_epoch(&mut |_| {}).unwrap();
        assert_eq!(mc.path_prob.len(), mg.path_prob.len());
        for (a, b) in mc.path_prob.iter().zip(&mg.path_prob) {
            assert!((a - b).abs() < 1e-5, "epoch {}: path distribution {:?} vs {:?}", mc.epoch, mc.path_prob, mg.path_prob);
        }
        assert_eq!(mc.data.unique_fraction, mg.data.unique_fraction, "epoch {}: the same samples were drawn", mc.epoch);
        assert!((mc.loss - mg.loss).abs() < 1e-3 * mc.loss.abs().max(1.0), "epoch {}: loss {} vs {}", mc.epoch, mc.loss, mg.loss);
    }
    for (pc, pg) in tc.net.params.tensors.iter().zip(&tg.net.params.tensors) {
        close(&format!("final {}", pc.name), &be.download(&pg.value), &pc.value, 1e-3);
    }
}

/// PA&DA's resampling in training, on the device, is the CPU reference's on
/// the device's own score log: each epoch's per-sample scores (traced step by
/// step) folded, mixed and drawn by `pada::ops::sampling` give the folded
/// scores, q and the next epoch's order the trainer used, bit for bit.
pub fn pada_resampling_is_the_reference<B: Backend<T = f32>>(be: &B) {
    use pada::ops::sampling::{draw_with_replacement, fold_scores, importance_distribution};
    use pada::rng::{derive_seed, Purpose};
    let mut config = TrainConfig::defaults(Method::Pada, "synthetic:1x8x8:100:16:4".parse().unwrap());
    (config.epochs, config.batch_size, config.channels, config.cells) = (3, 32, 3, 1);
    let data = Arc::new(config.data.load().unwrap());
    let n = data.train.len();
    let mut t = Trainer::new(be, config.clone(), data.clone()).unwrap();
    t.trace = true;
    let mut expected: Option<Vec<u32>> = None;
    for e in 0..config.epochs {
        let mut ep = t.begin_epoch().unwrap();
        let order = ep.order.clone();
        if let Some(want) = &expected {
            assert_eq!(&order, want, "epoch {e}: the order the trainer drew");
        }
        let mut log: Vec<f32> = Vec::new();
        for idx in order.chunks(config.batch_size) {
            let batch = pada::data::loader::make_batch(&data.train, &data.norm, idx, None);
            log.extend(t.train_step(&mut ep, &batch).unwrap().expect("tracing").scores.iter().map(|&s| s as f32));
        }
        t.end_epoch(ep).unwrap();
        let order: Vec<i32> = order.iter().map(|&i| i as i32).collect();
        let scores = fold_scores(n, &order, &log);
        let got: Vec<f32> = t.samples.scores(be).iter().map(|&s| s as f32).collect();
        assert!(got.iter().zip(&scores).all(|(a, b)| a.to_bits() == b.to_bits()), "epoch {e}: folded scores");
        let q = importance_distribution(&scores, e as f64 / config.epochs as f64);
        let (next, q_used) = t.samples.state();
        assert!(q_used.unwrap().iter().zip(&q).all(|(&a, &b)| a == b as f64), "epoch {e}: q");
        let want: Vec<u32> =
            draw_with_replacement(&q, derive_seed(config.seed, Purpose::Resample, e as u64, 0), n).into_iter().map(|i| i as u32).collect();
        assert_eq!(next.unwrap(), &want[..], "epoch {e}: the next epoch's draws");
        expected = Some(want);
    }
}

#[cfg(feature = "cuda-emu")]
mod emulated {
    fn be() -> pada::backend::gpu::emu::EmuBackend {
        pada::backend::gpu::emu::EmuBackend::poisoned(pada::backend::gpu::emu::EmuDevice::new())
    }
    #[test]
    fn one_training_step_matches_cpu() {
        super::one_step(&be())
    }
    #[test]
    fn pada_training_matches_cpu() {
        super::pada_training(&be(), false)
    }
    #[test]
    fn pada_training_with_calr_momentum_groups_and_batch_scores_matches_cpu() {
        super::pada_training(&be(), true)
    }
    #[test]
    fn pada_resampling_is_the_reference() {
        super::pada_resampling_is_the_reference(&be())
    }
    #[test]
    fn pada_resampling_on_the_cpu_is_the_reference() {
        super::pada_resampling_is_the_reference(&pada::backend::cpu::CpuBackend::<f32>::poisoned())
    }
}

#[cfg(feature = "cuda")]
mod gpu {
    fn be() -> pada::backend::gpu::cuda::CudaBackend {
        pada::backend::gpu::cuda::CudaBackend::open(0).expect("a CUDA GPU (these tests are for GPU machines)")
    }
    #[test]
    #[ignore]
    fn one_training_step_matches_cpu() {
        super::one_step(&be())
    }
    #[test]
    #[ignore]
    fn pada_training_matches_cpu() {
        super::pada_training(&be(), false)
    }
    #[test]
    #[ignore]
    fn pada_training_with_calr_momentum_groups_and_batch_scores_matches_cpu() {
        super::pada_training(&be(), true)
    }
    #[test]
    #[ignore]
    fn pada_resampling_is_the_reference() {
        super::pada_resampling_is_the_reference(&be())
    }
}
