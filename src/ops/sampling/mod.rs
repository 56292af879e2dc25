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

/// `count` indices drawn from the (unnormalised) weights `q` by systematic
/// resampling: the points `(k + u) / count` of the cumulative distribution
/// for one uniform `u = uniform01(seed, 0)` (index i appears `count q_i / Q`
/// times rounded down or up, Q the total), put in a random order: position
/// `k` takes point [`permute`]`(k)`. The same expected epoch as
/// [`draw_with_replacement`] without its sampling noise: under a uniform q
/// every sample exactly once, where draws with replacement see only 63% of
/// the samples.
pub fn draw_systematic<T: Element>(q: &[T], seed: u64, count: usize) -> Vec<i32> {
    assert!(!q.is_empty(), "draw_systematic: empty distribution");
    let prefix = blocked_prefix_sums(q);
    let total = *prefix.last().expect("not empty");
    let u = crate::rng::uniform01(seed, 0);
    (0..count as u64)
        .map(|k| {
            let x = (permute(k, count as u64, seed) as f64 + u) / count as f64 * total;
            prefix.partition_point(|&p| p <= x).min(q.len() - 1) as i32
        })
        .collect()
}

/// Position `k`'s place in a pseudo-random permutation of `0..n` drawn from
/// `seed`: a 4-round Feistel network of Philox rounds on the smallest domain
/// of 4^h values that holds `n`, cycle-walking back into `0..n` (a bijection
/// of `0..n`; each position is computed alone, on any backend).
pub fn permute(k: u64, n: u64, seed: u64) -> u64 {
    assert!(k < n, "permute: {k} is not below {n}");
    let half = (u64::BITS - n.saturating_sub(1).leading_zeros()).div_ceil(2).max(1);
    let mask = (1u64 << half) - 1;
    let mut x = k;
    loop {
        let (mut l, mut r) = (x >> half, x & mask);
        for round in 0..4u32 {
            let f = crate::rng::philox4x32_10([r as u32, round, 0x5eed, 0], [seed as u32, (seed >> 32) as u32])[0] as u64 & mask;
            (l, r) = (r, l ^ f);
        }
        x = (l << half) | r;
        if x < n {
            return x;
        }
    }
}

/// How the next epoch is drawn from q (`--resampling`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Resampling {
    /// N independent draws with replacement (the official code's `np.random.choice(N, N, p=q)`).
    #[default]
    Multinomial,
    /// Systematic resampling in a random order: the same expected epoch, each sample
    /// drawn round(N q_i) times (under a uniform q, every sample once).
    Systematic,
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
    /// `out` = [`draw_systematic`] from `q`, as many draws as `out` holds.
    fn draw_systematic(&self, q: &Self::Buf, seed: u64, out: &mut Self::IBuf);
}

impl<T: Element> SamplingOps for CpuBackend<T> {
    fn fold_scores(&self, n: usize, order: &Vec<i32>, log: &CpuBuf<T>, scores: &mut CpuBuf<T>) {
        self.op("fold_scores", || {
            assert!(log.len() >= order.len() && scores.len() == n, "fold_scores: sizes");
            scores.copy_from_slice(&fold_scores(n, order, log));
        })
    }
    fn importance_distribution(&self, scores: &CpuBuf<T>, tau: f64, q: &mut CpuBuf<T>) {
        self.op("importance_distribution", || {
            assert_eq!(scores.len(), q.len(), "importance_distribution: sizes");
            q.copy_from_slice(&importance_distribution(scores, tau));
        })
    }
    fn draw_with_replacement(&self, q: &CpuBuf<T>, seed: u64, out: &mut Vec<i32>) {
        self.op("draw_with_replacement", || {
            let count = out.len();
            out.copy_from_slice(&draw_with_replacement(q, seed, count));
        })
    }
    fn draw_systematic(&self, q: &CpuBuf<T>, seed: u64, out: &mut Vec<i32>) {
        self.op("draw_systematic", || {
            let count = out.len();
            out.copy_from_slice(&draw_systematic(q, seed, count));
        })
    }
}
