//! The samplers' device-side pieces: per-sample score bookkeeping, the mixed
//! importance distribution, weighted sampling with replacement, and the
//! per-op gradient-norm importance of PA&DA's path sampler. The CPU reference
//! of `kernels/sampling.cu`.

use bytemuck::{Pod, Zeroable};

use crate::element::Element;

/// Philox4x32-10 (Salmon et al., 2011), the counter-based generator of cuRAND:
/// the same (counter, key) gives the same numbers on every device.
pub fn philox4x32_10(mut ctr: [u32; 4], mut key: [u32; 2]) -> [u32; 4] {
    const M0: u64 = 0xD251_1F53;
    const M1: u64 = 0xCD9E_8D57;
    const W0: u32 = 0x9E37_79B9;
    const W1: u32 = 0xBB67_AE85;
    for round in 0..10 {
        if round > 0 {
            key[0] = key[0].wrapping_add(W0);
            key[1] = key[1].wrapping_add(W1);
        }
        let p0 = M0 * ctr[0] as u64;
        let p1 = M1 * ctr[2] as u64;
        ctr = [((p1 >> 32) as u32) ^ ctr[1] ^ key[0], p1 as u32, ((p0 >> 32) as u32) ^ ctr[3] ^ key[1], p0 as u32];
    }
    ctr
}

/// The `i`-th uniform double in [0, 1) of the stream `seed` (53 random bits).
pub fn uniform01(seed: u64, i: u64) -> f64 {
    let r = philox4x32_10([i as u32, (i >> 32) as u32, 0, 0], [seed as u32, (seed >> 32) as u32]);
    let bits = ((r[0] as u64) << 21) ^ (r[1] as u64 >> 11);
    bits as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Records per-sample scores in batch order, as the official code does:
/// a sample's first score of the epoch is stored, a repeat is averaged with
/// what is there (`s = (s + g) / 2`); a stored 0 counts as "not seen".
pub fn sample_scores_update<T: Element>(scores: &mut [T], indices: &[i32], values: &[T]) {
    assert_eq!(indices.len(), values.len(), "sample_scores_update: one value per index");
    let half = T::from_f64(0.5);
    for (&i, &g) in indices.iter().zip(values) {
        if !g.is_finite() {
            continue; // a skipped step's scores are not observations
        }
        let s = &mut scores[i as usize];
        *s = if *s != T::zero() { (*s + g) * half } else { g };
    }
}

/// `q = tau * s / sum(s) + (1 - tau) / N` (uniform when all scores are 0).
pub fn importance_distribution<T: Element>(scores: &[T], tau: f64, q: &mut [T]) {
    assert_eq!(scores.len(), q.len(), "importance_distribution: sizes");
    let n = scores.len() as f64;
    let total: f64 = scores.iter().map(|v| v.as_f64()).sum();
    let tau = if total > 0.0 { tau } else { 0.0 };
    for (o, s) in q.iter_mut().zip(scores) {
        let p = if tau > 0.0 { tau * s.as_f64() / total } else { 0.0 };
        *o = T::from_f64(p + (1.0 - tau) / n);
    }
}

/// `out.len()` indices drawn with replacement from the (unnormalised)
/// distribution `q`: draw `i` is the first index whose inclusive prefix sum
/// exceeds `uniform01(seed, i) * sum(q)` (inverse-CDF sampling).
pub fn sample_with_replacement<T: Element>(q: &[T], seed: u64, out: &mut [i32]) {
    assert!(!q.is_empty(), "sample_with_replacement: empty distribution");
    let mut prefix = Vec::with_capacity(q.len());
    let mut acc = 0f64;
    for v in q {
        acc += v.as_f64().max(0.0);
        prefix.push(acc);
    }
    for (i, o) in out.iter_mut().enumerate() {
        let u = uniform01(seed, i as u64) * acc;
        *o = prefix.partition_point(|&p| p <= u).min(q.len() - 1) as i32;
    }
}

/// One group of parameter tensors whose clipped gradient norms make up one
/// entry of the path importance: `members[start..start+len]` index `sq_norms`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct ImportanceGroup {
    /// Entry of the importance table `g` this group updates.
    pub slot: i32,
    pub start: i32,
    pub len: i32,
    /// The group's sum of norms is divided by this (the number of edges using the op).
    pub divisor: f32,
}

/// PA&DA's path importance after a step: for each group,
/// `S = clip_coef * sum(sqrt(sq_norms[m])) / divisor` and
/// `g[slot] = (g[slot] + S) / 2`, also when `S` is 0. The official code updates
/// only `if grads_norm != 0`, but in its floating point a conv on the path
/// never has an exactly zero norm: one that reads an all-zero node (e.g. node 1
/// behind a `none` edge) gets ~1e-17 from PyTorch's arithmetic and halves its
/// entry, where exact arithmetic gives 0. Updating on every step reproduces
/// what the official code does (the replay test checks it over a whole run).
/// A non-finite coefficient (a skipped step) changes nothing.
pub fn path_importance_update<T: Element>(sq_norms: &[T], clip_coef: T, members: &[i32], groups: &[ImportanceGroup], g: &mut [T]) {
    if !clip_coef.is_finite() {
        return;
    }
    for grp in groups {
        let m = &members[grp.start as usize..(grp.start + grp.len) as usize];
        let sum: f64 = m.iter().map(|&i| sq_norms[i as usize].as_f64().sqrt()).sum();
        let s = clip_coef.as_f64() * sum / grp.divisor as f64;
        let slot = &mut g[grp.slot as usize];
        *slot = T::from_f64((slot.as_f64() + s) / 2.0);
    }
}

/// Adds the batch's summed loss, number of correct top-1 predictions and
/// number of samples to `sums[0..3]`, leaving out samples whose loss is not
/// finite (a step skipped for a non-finite gradient must not poison the
/// epoch's metrics).
pub fn batch_metrics<T: Element>(n: usize, classes: usize, logits: &[T], labels: &[i32], loss: &[T], sums: &mut [T]) {
    let (mut l, mut correct, mut count) = (0f64, 0usize, 0usize);
    for i in 0..n {
        if !loss[i].is_finite() {
            continue;
        }
        let row = &logits[i * classes..(i + 1) * classes];
        // first maximum, as torch.topk / argmax
        let best = row.iter().enumerate().fold(0, |b, (j, v)| if *v > row[b] { j } else { b });
        correct += (best as i32 == labels[i]) as usize;
        l += loss[i].as_f64();
        count += 1;
    }
    sums[0] += T::from_f64(l);
    sums[1] += T::from_usize(correct);
    sums[2] += T::from_usize(count);
}
