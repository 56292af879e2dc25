//! PA&DA's data resampling at an epoch's end: the epoch's per-sample score
//! log folded into one score per sample, the mixed distribution q, and the
//! next epoch's draws. The CPU reference of `kernels/sampling.cu`, which the
//! CUDA backend runs without a host round trip (the log never leaves the
//! device).
//!
//! Every backend draws the same indices from the same seed: the one summation
//! order is defined here ([`blocked_prefix_sums`]), the uniforms are
//! counter-based ([`crate::rng::uniform01`], Philox), and the fold is
//! sequential per sample in draw order (the kernels sort the log's positions
//! by sample, stably, then fold each sample's run in the same order).

use crate::backend::cpu::{CpuBackend, CpuBuf};
use crate::backend::Memory;
use crate::element::Element;

#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
mod launch;

/// The tile of [`blocked_prefix_sums`] (`SCAN_TILE` in kernels/sampling.cu).
pub const SCAN_TILE: usize = 256;

/// Inclusive prefix sums of `max(x, 0)` in f64, in the one order every
/// backend uses: tiles of [`SCAN_TILE`] entries; within a tile a running sum
/// from 0, `local[i] = local[i - 1] + x[i]`; tile offsets a running sum of
/// the tiles' totals, `offset[t] = offset[t - 1] + local[last of t - 1]`; and
/// `prefix[i] = offset[tile of i] + local[i]`. The last entry is the total.
pub fn blocked_prefix_sums<T: Element>(x: &[T]) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    let mut offset = 0f64;
    for tile in x.chunks(SCAN_TILE) {
        let mut local = 0f64;
        for &v in tile {
            local += v.as_f64().max(0.0);
            out.push(offset + local);
        }
        offset += local;
    }
    out
}

/// One score per sample from an epoch's log, as the official code keeps them:
/// position k of `log` is the score of sample `order[k]`; in draw order, a
/// sample's first score is stored and a repeat is averaged with what is there
/// (`s = (s + g) / 2`, in the element type, as the official code's tensor); a
/// stored 0 counts as "not seen"; non-finite values (a skipped step) are not
/// observations. Samples never drawn score 0. `log` may be longer than `order`.
pub fn fold_scores<T: Element>(n: usize, order: &[i32], log: &[T]) -> Vec<T> {
    let half = T::from_f64(0.5);
    let mut s = vec![T::zero(); n];
    for (&i, &g) in order.iter().zip(log) {
        if g.is_finite() {
            let si = &mut s[i as usize];
            *si = if *si != T::zero() { (*si + g) * half } else { g };
        }
    }
    s
}

/// `q_i = tau * max(s_i, 0) / S + (1 - tau) / N`, with S the total of
/// [`blocked_prefix_sums`] of the scores (uniform when S is 0), computed in
/// f64 and rounded once to the element type (the official code's q is a
/// tensor of it).
pub fn importance_distribution<T: Element>(scores: &[T], tau: f64) -> Vec<T> {
    let total = blocked_prefix_sums(scores).last().copied().unwrap_or(0.0);
    let tau = if total > 0.0 { tau } else { 0.0 };
    scores.iter().map(|&s| T::from_f64(mix(s.as_f64(), total, tau, scores.len()))).collect()
}

/// One entry of [`importance_distribution`] (the kernel's formula, term for term).
fn mix(s: f64, total: f64, tau: f64, n: usize) -> f64 {
    (if tau > 0.0 { tau * s.max(0.0) / total } else { 0.0 }) + (1.0 - tau) / n as f64
}

/// `count` indices drawn with replacement from the (unnormalised) weights `q`:
/// draw `i` is the first index whose [`blocked_prefix_sums`] entry exceeds
/// `uniform01(seed, i) * total` (inverse-CDF sampling), clamped to the last
/// index. Draw `i` depends on `i` alone.
pub fn draw_with_replacement<T: Element>(q: &[T], seed: u64, count: usize) -> Vec<i32> {
    assert!(!q.is_empty(), "draw_with_replacement: empty distribution");
    let prefix = blocked_prefix_sums(q);
    let total = *prefix.last().expect("not empty");
    (0..count as u64)
        .map(|i| {
            let u = crate::rng::uniform01(seed, i) * total;
            prefix.partition_point(|&p| p <= u).min(q.len() - 1) as i32
        })
        .collect()
}

/// The backend interface of the resampling: the CPU reference above, the
/// CUDA kernels of `kernels/sampling.cu` through `launch.rs`.
pub trait SamplingOps: Memory {
    /// `scores[0..n]` = [`fold_scores`] of `order` (the epoch's sample at
    /// each position) and `log` (its score there).
    fn fold_scores(&self, n: usize, order: &Self::IBuf, log: &Self::Buf, scores: &mut Self::Buf);
    /// `q` = [`importance_distribution`] of `scores` with mixing `tau`.
    fn importance_distribution(&self, scores: &Self::Buf, tau: f64, q: &mut Self::Buf);
    /// `out` = [`draw_with_replacement`] from `q`, as many draws as `out` holds.
    fn draw_with_replacement(&self, q: &Self::Buf, seed: u64, out: &mut Self::IBuf);
}

impl<T: Element> SamplingOps for CpuBackend<T> {
    fn fold_scores(&self, n: usize, order: &Vec<i32>, log: &CpuBuf<T>, scores: &mut CpuBuf<T>) {
        assert!(log.len() >= order.len() && scores.len() == n, "fold_scores: sizes");
        scores.copy_from_slice(&fold_scores(n, order, log));
    }
    fn importance_distribution(&self, scores: &CpuBuf<T>, tau: f64, q: &mut CpuBuf<T>) {
        assert_eq!(scores.len(), q.len(), "importance_distribution: sizes");
        q.copy_from_slice(&importance_distribution(scores, tau));
    }
    fn draw_with_replacement(&self, q: &CpuBuf<T>, seed: u64, out: &mut Vec<i32>) {
        let count = out.len();
        out.copy_from_slice(&draw_with_replacement(q, seed, count));
    }
}
