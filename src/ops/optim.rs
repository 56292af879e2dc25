//! SGD exactly as `torch.optim.SGD(lr, momentum, weight_decay)` (no dampening, no
//! Nesterov), the pieces of `clip_grad_norm_`, and the clipped gradient norms of
//! groups of tensors that PA&DA's path sampler logs. CPU reference of `kernels/optim.cu`.

use bytemuck::{Pod, Zeroable};

use crate::element::Element;

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
