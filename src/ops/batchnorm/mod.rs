//! Batch norm with batch statistics only, as
//! `BatchNorm2d(affine=False, track_running_stats=False)` in train and eval mode:
//! `y = (x - mean) / sqrt(var + eps)`, biased variance, eps = 1e-5.
//! The CPU reference of `kernels/batchnorm.cu`.
//!
//! `stats` holds `c` means followed by `c` values of `1/sqrt(var + eps)`; the
//! backward pass recomputes the normalised input from `x` and `stats`, so the
//! forward output need not be kept, and the forward pass can add its output
//! straight into a node sum.

use rayon::prelude::*;

use super::elementwise::keep;
use super::parallel::Disjoint;
use super::reduce;
use super::simd::vectorized;
use crate::backend::cpu::{CpuBackend, CpuBuf};
use crate::backend::Memory;
use crate::element::Element;
use crate::geometry::ActShape;

#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
mod launch;

pub const BN_EPS: f64 = 1e-5;

/// `y (+)= relu?((x - mean) * invstd)` per channel of the CNHW tensor `x`;
/// writes the statistics into `stats` (`[mean; c] ++ [invstd; c]`). With
/// `relu`, the output goes through a ReLU (`max(v, 0)`, NaN to 0, as the ops'
/// fused ReLUs): a ReLU that follows the batch norm costs no pass of its own,
/// and the next conv reads its input as it is.
pub fn batchnorm_forward<T: Element>(s: &ActShape, x: &[T], y: &mut [T], accumulate: bool, relu: bool, stats: &mut [T]) {
    let c = s.c as usize;
    assert_eq!(x.len(), s.len(), "batchnorm_forward: x");
    assert_eq!(y.len(), s.len(), "batchnorm_forward: y");
    assert_eq!(stats.len(), 2 * c, "batchnorm_forward: stats");
    let l = s.per_channel();
    let mut st = vec![(T::zero(), T::zero()); c];
    y.par_chunks_mut(l).zip(x.par_chunks(l)).zip(st.par_iter_mut()).for_each(|((yc, xc), st)| {
        vectorized(
            #[inline(always)]
            || {
                // Two passes: the mean, then the centred sum of squares, so that a channel
                // with a large mean and a small spread keeps its precision.
                let mean = T::from_f64(reduce::sum(xc) / l as f64);
                let var = reduce::sum_map(xc, |v| (v - mean) * (v - mean)) / l as f64;
                let inv = T::from_f64(1.0 / (var + BN_EPS).sqrt());
                let norm = |v: T| (v - mean) * inv;
                let relu_norm = |v: T| {
                    let v = norm(v);
                    keep(v, v)
                };
                match (accumulate, relu) {
                    (false, false) => yc.iter_mut().zip(xc).for_each(|(o, &v)| *o = norm(v)),
                    (true, false) => yc.iter_mut().zip(xc).for_each(|(o, &v)| *o += norm(v)),
                    (false, true) => yc.iter_mut().zip(xc).for_each(|(o, &v)| *o = relu_norm(v)),
                    (true, true) => yc.iter_mut().zip(xc).for_each(|(o, &v)| *o += relu_norm(v)),
                }
                *st = (mean, inv);
            },
        )
    });
    for (i, (m, inv)) in st.into_iter().enumerate() {
        stats[i] = m;
        stats[c + i] = inv;
    }
}

/// `dx = invstd * (dy - mean(dy) - xhat * mean(dy * xhat))` per channel, with
/// `xhat = (x - mean) * invstd` recomputed from the forward input and `stats`.
pub fn batchnorm_backward<T: Element>(s: &ActShape, x: &[T], stats: &[T], dy: &[T], dx: &mut [T]) {
    let c = s.c as usize;
    assert_eq!(x.len(), s.len(), "batchnorm_backward: x");
    assert_eq!(dy.len(), s.len(), "batchnorm_backward: dy");
    assert_eq!(dx.len(), s.len(), "batchnorm_backward: dx");
    assert_eq!(stats.len(), 2 * c, "batchnorm_backward: stats");
    let l = s.per_channel();
    let out = Disjoint::new(dx);
    (0..c).into_par_iter().for_each(|ch| {
        vectorized(
            #[inline(always)]
            || {
                let (xc, dyc) = (&x[ch * l..(ch + 1) * l], &dy[ch * l..(ch + 1) * l]);
                let (mean, inv) = (stats[ch], stats[c + ch]);
                // sum(dy * xhat) = invstd * sum(dy * (x - mean))
                let (sdy, sdyx) = reduce::sum_and_dot(dyc, xc, mean);
                let mdy = T::from_f64(sdy / l as f64);
                let mdyy = T::from_f64(inv.as_f64() * sdyx / l as f64);
                // SAFETY: channel ch's run of the output belongs to this task only.
                let dxc = unsafe { out.range(ch * l, l) };
                for ((d, &xv), &g) in dxc.iter_mut().zip(xc).zip(dyc) {
                    *d = inv * (g - mdy - (xv - mean) * inv * mdyy);
                }
            },
        )
    });
}

/// `dx = invstd * dy`: the backward pass with the batch statistics held fixed
/// (treated as constants), which keeps samples independent. Used for exact
/// per-sample gradient norms; training uses [`batchnorm_backward`].
pub fn batchnorm_backward_frozen<T: Element>(s: &ActShape, stats: &[T], dy: &[T], dx: &mut [T]) {
    let c = s.c as usize;
    assert_eq!(dy.len(), s.len(), "batchnorm_backward_frozen: dy");
    assert_eq!(dx.len(), s.len(), "batchnorm_backward_frozen: dx");
    assert_eq!(stats.len(), 2 * c, "batchnorm_backward_frozen: stats");
    let l = s.per_channel();
    dx.par_chunks_mut(l).zip(dy.par_chunks(l)).enumerate().for_each(|(ch, (d, g))| {
        let inv = stats[c + ch];
        d.iter_mut().zip(g).for_each(|(d, &g)| *d = inv * g);
    });
}

/// The backend interface of these ops: the CPU engine below, the CUDA
/// kernels of `kernels/batchnorm.cu` through `launch.rs`.
pub trait BatchnormOps: Memory {
    fn batchnorm_forward(&self, s: &ActShape, x: &Self::Buf, y: &mut Self::Buf, accumulate: bool, relu: bool, stats: &mut Self::Buf);
    fn batchnorm_backward(&self, s: &ActShape, x: &Self::Buf, stats: &Self::Buf, dy: &Self::Buf, dx: &mut Self::Buf);
    fn batchnorm_backward_frozen(&self, s: &ActShape, stats: &Self::Buf, dy: &Self::Buf, dx: &mut Self::Buf);
}

impl<T: Element> BatchnormOps for CpuBackend<T> {
    fn batchnorm_forward(&self, s: &ActShape, x: &CpuBuf<T>, y: &mut CpuBuf<T>, accumulate: bool, relu: bool, stats: &mut CpuBuf<T>) {
        self.op("batchnorm_forward", || batchnorm_forward(s, x, y, accumulate, relu, stats))
    }
    fn batchnorm_backward(&self, s: &ActShape, x: &CpuBuf<T>, stats: &CpuBuf<T>, dy: &CpuBuf<T>, dx: &mut CpuBuf<T>) {
        self.op("batchnorm_backward", || batchnorm_backward(s, x, stats, dy, dx))
    }
    fn batchnorm_backward_frozen(&self, s: &ActShape, stats: &CpuBuf<T>, dy: &CpuBuf<T>, dx: &mut CpuBuf<T>) {
        self.op("batchnorm_backward_frozen", || batchnorm_backward_frozen(s, stats, dy, dx))
    }
}
