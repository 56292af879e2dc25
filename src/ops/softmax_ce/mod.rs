//! Softmax cross-entropy with everything PA&DA needs from one pass: per-sample
//! losses, the gradient of the *mean* loss, and the per-sample norm
//! `||softmax(z_i) - onehot(y_i)||_2` (the data sampler's importance proxy);
//! and the batch's loss and accuracy sums. The CPU reference of `kernels/softmax_ce.cu`.

use crate::backend::cpu::{CpuBackend, CpuBuf};
use crate::backend::Memory;
use crate::element::Element;

#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
mod launch;

/// `logits` and `dlogits` are row-major `[n, classes]`; labels must lie in `0..classes`.
/// With `weights`, `dlogits` is the gradient of `mean(w_i * loss_i)` (the
/// importance-weighted loss); `loss` and `proxy_norm` are never weighted.
#[allow(clippy::too_many_arguments)]
pub fn softmax_cross_entropy<T: Element>(
    n: usize,
    classes: usize,
    logits: &[T],
    labels: &[i32],
    weights: Option<&[T]>,
    loss: &mut [T],
    dlogits: &mut [T],
    proxy_norm: &mut [T],
) {
    assert!(logits.len() == n * classes && dlogits.len() == n * classes, "softmax_cross_entropy: logits");
    assert!(labels.len() == n && loss.len() == n && proxy_norm.len() == n, "softmax_cross_entropy: per-sample");
    let inv_n = 1.0 / n as f64;
    for i in 0..n {
        let z = &logits[i * classes..(i + 1) * classes];
        let y = labels[i] as usize;
        assert!(y < classes, "softmax_cross_entropy: label {} out of range 0..{classes}", labels[i]);
        let m = z.iter().fold(f64::NEG_INFINITY, |a, v| a.max(v.as_f64()));
        let sum_e: f64 = z.iter().map(|v| (v.as_f64() - m).exp()).sum();
        let lse = m + sum_e.ln();
        loss[i] = T::from_f64(lse - z[y].as_f64());
        let wi = weights.map_or(1.0, |w| w[i].as_f64());
        let mut sq = 0.0;
        for (j, (d, v)) in dlogits[i * classes..(i + 1) * classes].iter_mut().zip(z).enumerate() {
            let g = (v.as_f64() - lse).exp() - if j == y { 1.0 } else { 0.0 };
            sq += g * g;
            *d = T::from_f64(g * wi * inv_n);
        }
        proxy_norm[i] = T::from_f64(sq.sqrt());
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

/// The backend interface of these ops: the CPU engine below, the CUDA
/// kernels of `kernels/softmax_ce.cu` through `launch.rs`.
pub trait SoftmaxCeOps: Memory {
    #[allow(clippy::too_many_arguments)]
    fn softmax_cross_entropy(
        &self,
        n: usize,
        classes: usize,
        logits: &Self::Buf,
        labels: &Self::IBuf,
        weights: Option<&Self::Buf>,
        loss: &mut Self::Buf,
        dlogits: &mut Self::Buf,
        proxy_norm: &mut Self::Buf,
    );
    fn batch_metrics(&self, n: usize, classes: usize, logits: &Self::Buf, labels: &Self::IBuf, loss: &Self::Buf, sums: &mut Self::Buf);
}

impl<T: Element> SoftmaxCeOps for CpuBackend<T> {
    fn softmax_cross_entropy(
        &self,
        n: usize,
        classes: usize,
        logits: &CpuBuf<T>,
        labels: &Vec<i32>,
        weights: Option<&CpuBuf<T>>,
        loss: &mut CpuBuf<T>,
        dlogits: &mut CpuBuf<T>,
        proxy_norm: &mut CpuBuf<T>,
    ) {
        self.op("softmax_cross_entropy", || {
            softmax_cross_entropy(n, classes, logits, labels, weights.map(|w| w.as_slice()), loss, dlogits, proxy_norm)
        })
    }
    fn batch_metrics(&self, n: usize, classes: usize, logits: &CpuBuf<T>, labels: &Vec<i32>, loss: &CpuBuf<T>, sums: &mut CpuBuf<T>) {
        self.op("batch_metrics", || batch_metrics(n, classes, logits, labels, loss, sums))
    }
}
