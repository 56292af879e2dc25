//! SGD exactly as `torch.optim.SGD(lr, momentum, weight_decay)` (no dampening, no
//! Nesterov), the pieces of `clip_grad_norm_`, and the clipped gradient norms of
//! groups of tensors that PA&DA's path sampler logs. CPU reference of `kernels/optim.cu`.

use bytemuck::{Pod, Zeroable};
use rayon::prelude::*;

use crate::backend::cpu::{CpuBackend, CpuBuf};
use crate::backend::Memory;
use crate::backend::SgdSlot;
use crate::element::Element;

#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
mod launch;

/// Hyper-parameters of one SGD step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdStep {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
}

/// One step on one tensor. `grad_scale` is the clipping coefficient (1 when the
/// gradients were not clipped). As PyTorch: `g = grad * scale` (clip, in place),
/// `d = g + wd * p`, `buf = momentum * buf + d` (a zero buffer on the first step
/// is the same as PyTorch's `buf = d.clone()`), `p -= lr * buf`.
///
/// A non-finite `grad_scale` (set by [`nonfinite_guard`]) skips the step.
pub fn sgd_step<T: Element>(p: &mut [T], grad: &[T], momentum_buf: &mut [T], h: &SgdStep, grad_scale: T) {
    assert!(p.len() == grad.len() && grad.len() == momentum_buf.len(), "sgd_step: sizes");
    if !grad_scale.is_finite() {
        return;
    }
    let (lr, mom, wd) = (T::from_f64(h.lr), T::from_f64(h.momentum), T::from_f64(h.weight_decay));
    for (p, (&g, m)) in p.iter_mut().zip(grad.iter().zip(momentum_buf.iter_mut())) {
        let d = g * grad_scale + wd * *p;
        *m = mom * *m + d;
        *p -= lr * *m;
    }
}

/// `sum(x^2)`, summed in a fixed order (a parallel sum's order, and so its
/// rounding, would change from run to run).
pub fn sq_norm<T: Element>(x: &[T]) -> f64 {
    super::reduce::sum_map(x, |v| v * v)
}

/// The coefficient `clip_grad_norm_(max_norm)` multiplies the gradients by:
/// `max_norm / (total + 1e-6)` when that is below 1, else 1.
pub fn clip_coefficient(total_norm: f64, max_norm: f64) -> f64 {
    let c = max_norm / (total_norm + 1e-6);
    c.min(1.0)
}

/// After a step's gradient norms: if any is not finite (NaN or Inf), counts
/// the step in `guard` (`[count, first step, position of its first bad
/// tensor]`, the latter two set by the first bad step) and sets the clip
/// coefficient to NaN, which makes SGD and the path importance skip the step.
pub fn nonfinite_guard<T: Element>(sq_norms: &[T], step: i64, guard: &mut [T], clip_coef: &mut [T]) {
    if let Some(pos) = sq_norms.iter().position(|v| !v.is_finite()) {
        if guard[0] == T::zero() {
            guard[1] = T::from_f64(step as f64);
            guard[2] = T::from_usize(pos);
        }
        guard[0] += T::one();
        clip_coef[0] = T::nan();
    }
}

/// A group of parameter tensors whose clipped gradient norm is logged as one
/// number: `members[start..start + len]` index `sq_norms`, the result goes to `out[slot]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct NormGroup {
    pub slot: i32,
    pub start: i32,
    pub len: i32,
}

/// For each group, `out[slot] = clip_coef * sum(sqrt(sq_norms[m]))` over its
/// members (summed in f64, rounded once): the group's gradient norms after
/// `clip_grad_norm_`. NaN when `clip_coef` is not finite (a skipped step).
/// Slots without a group are left alone.
pub fn clipped_group_norms<T: Element>(sq_norms: &[T], clip_coef: T, members: &[i32], groups: &[NormGroup], out: &mut [T]) {
    for grp in groups {
        let m = &members[grp.start as usize..(grp.start + grp.len) as usize];
        let sum: f64 = m.iter().map(|&i| sq_norms[i as usize].as_f64().sqrt()).sum();
        out[grp.slot as usize] = if clip_coef.is_finite() { T::from_f64(clip_coef.as_f64() * sum) } else { T::nan() };
    }
}

/// The backend interface of these ops: the CPU engine below, the CUDA
/// kernels of `kernels/optim.cu` through `launch.rs`.
pub trait OptimOps: Memory {
    /// `out[i] = sum(tensors[i]^2)` for all tensors in one pass.
    fn sq_norms(&self, tensors: &[&Self::Buf], out: &mut Self::Buf);
    /// `out[0] = clip_coefficient(sqrt(sum(sq_norms)), max_norm)`, on the device.
    fn clip_coefficient(&self, sq_norms: &Self::Buf, max_norm: f64, out: &mut Self::Buf);
    /// Skips the step (NaN clip coefficient) when a gradient norm is not finite; see [`crate::ops::nonfinite_guard`].
    fn nonfinite_guard(&self, sq_norms: &Self::Buf, step: i64, guard: &mut Self::Buf, clip_coef: &mut Self::Buf);
    /// One SGD step on every slot, the gradients scaled by `grad_scale[0]`.
    fn sgd_step(&self, slots: &mut [SgdSlot<'_, Self>], h: &SgdStep, grad_scale: &Self::Buf);
    /// `out[slot] = clip_coef[0] * sum(sqrt(sq_norms[members]))` for each group (NaN for a skipped step).
    fn clipped_group_norms(&self, sq_norms: &Self::Buf, clip_coef: &Self::Buf, members: &[i32], groups: &[NormGroup], out: &mut Self::Buf);
}

impl<T: Element> OptimOps for CpuBackend<T> {
    fn sq_norms(&self, tensors: &[&CpuBuf<T>], out: &mut CpuBuf<T>) {
        self.op("sq_norms", || {
            assert_eq!(tensors.len(), out.len(), "sq_norms: one output per tensor");
            // parallel over tensors, each summed in its own fixed order
            out.par_iter_mut().zip(tensors.par_iter()).for_each(|(o, t)| *o = T::from_f64(sq_norm(t)));
        })
    }
    fn clip_coefficient(&self, sq_norms: &CpuBuf<T>, max_norm: f64, out: &mut CpuBuf<T>) {
        self.op("clip_coefficient", || {
            let total = sq_norms.iter().map(|v| v.as_f64()).sum::<f64>().sqrt();
            out[0] = T::from_f64(clip_coefficient(total, max_norm));
        })
    }
    fn nonfinite_guard(&self, sq_norms: &CpuBuf<T>, step: i64, guard: &mut CpuBuf<T>, clip_coef: &mut CpuBuf<T>) {
        self.op("nonfinite_guard", || nonfinite_guard(sq_norms, step, guard, clip_coef))
    }
    fn sgd_step(&self, slots: &mut [SgdSlot<'_, Self>], h: &SgdStep, grad_scale: &CpuBuf<T>) {
        self.op("sgd_step", || {
            slots.par_iter_mut().for_each(|s| sgd_step(s.value, s.grad, s.momentum, h, grad_scale[0]));
        })
    }
    fn clipped_group_norms(&self, sq_norms: &CpuBuf<T>, clip_coef: &CpuBuf<T>, members: &[i32], groups: &[NormGroup], out: &mut CpuBuf<T>) {
        self.op("clipped_group_norms", || clipped_group_norms(sq_norms, clip_coef[0], members, groups, out))
    }
}

#[cfg(test)]
mod layouts {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// The same sizes and offsets as the `static_assert`s of kernels/common.cuh.
    #[test]
    fn mirror_the_kernels_structs() {
        assert_eq!(size_of::<NormGroup>(), 12);
        assert_eq!([offset_of!(NormGroup, slot), offset_of!(NormGroup, start), offset_of!(NormGroup, len)], [0, 4, 8]);
    }
}
