//! SGD with momentum and weight decay, after `clip_grad_norm_`, over the
//! parameter store: the update rule of the official PA&DA code.

use serde::{Deserialize, Serialize};

use crate::backend::{Backend, SgdSlot};
use crate::ops::SgdStep;
use crate::supernet::ParamStore;
use num_traits::One;

/// What happens to parameters that are off the sampled path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OffPath {
    /// PyTorch 1.7, which the official code ran on: `zero_grad()` fills
    /// gradients with zeros, so a parameter that has ever had a gradient keeps
    /// being moved by momentum and weight decay on every later step.
    Momentum,
    /// PyTorch 2: `zero_grad()` drops gradients, and parameters off the path are
    /// not updated at all.
    Frozen,
}

/// Device buffers an SGD step leaves behind for the path sampler.
pub struct StepNorms<B: Backend> {
    /// Squared norm of each updated tensor's gradient, before clipping, in the
    /// order of `tensors`.
    pub sq_norms: B::Buf,
    /// `clip_grad_norm_`'s coefficient (1 if no clipping happened), one element.
    pub clip_coef: B::Buf,
    /// Indices (into the parameter store) of the updated tensors.
    pub tensors: Vec<usize>,
}

/// `clip_grad_norm_(max_norm)` then `SGD.step()` on every tensor that has a
/// gradient: all tensors ever on a path (`OffPath::Momentum`) or only the ones
/// on the current path (`on_path`, for `OffPath::Frozen`). With a `guard`
/// (buffer, step number), a step whose gradients are not finite is skipped
/// and recorded there (see [`crate::ops::nonfinite_guard`]).
pub fn clip_and_step<B: Backend>(
    be: &B,
    params: &mut ParamStore<B>,
    on_path: &[bool],
    h: &SgdStep,
    max_norm: Option<f64>,
    off_path: OffPath,
    guard: Option<(&mut B::Buf, i64)>,
) -> StepNorms<B> {
    let tensors: Vec<usize> = (0..params.len())
        .filter(|&i| match off_path {
            OffPath::Momentum => params.tensors[i].seen,
            OffPath::Frozen => on_path[i],
        })
        .collect();
    let mut sq_norms = be.alloc(tensors.len().max(1));
    let mut clip_coef = be.alloc(1);
    {
        let grads: Vec<&B::Buf> = tensors.iter().map(|&i| &params.tensors[i].grad).collect();
        be.sq_norms(&grads, &mut sq_norms);
    }
    match max_norm {
        Some(m) => be.clip_coefficient(&sq_norms, m, &mut clip_coef),
        None => be.fill(&mut clip_coef, B::T::one()),
    }
    if let Some((g, step)) = guard {
        be.nonfinite_guard(&sq_norms, step, g, &mut clip_coef);
    }
    let mut slots: Vec<SgdSlot<'_, B>> = Vec::with_capacity(tensors.len());
    let mut want = tensors.iter().peekable();
    for (i, p) in params.tensors.iter_mut().enumerate() {
        if want.peek() == Some(&&i) {
            want.next();
            slots.push(SgdSlot { value: &mut p.value, grad: &p.grad, momentum: &mut p.momentum });
        }
    }
    be.sgd_step(&mut slots, h, &clip_coef);
    StepNorms { sq_norms, clip_coef, tensors }
}
