//! Gradient variance of supernet training, as the paper discusses it: at the
//! current weights, K mini-batch gradients drawn the way a method draws them
//! (its paths and its data), and their spread.

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::data::loader::make_batch;
use crate::element::Element;
use crate::rng::{stream, Purpose};
use crate::sampler::{DataSampler, PathSampler};
use crate::train::{forward_backward, DataImportance, Trainer};

/// `(1/K) sum_k ||g_k - mean||^2` over K mini-batch gradients (all
/// parameters), and the same divided by `||mean||^2`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GradVar {
    pub batches: usize,
    pub variance: f64,
    pub mean_sq_norm: f64,
    pub relative: f64,
}

/// Measures the gradient variance at `t`'s weights, drawing paths from
/// `paths` and batches of `batch_size` from `samples` (the trainer's own by
/// default: see [`measure_trainer`]). The weights, the optimiser state and the
/// samplers are left as they were.
pub fn measure<B: Backend>(
    t: &mut Trainer<B>,
    paths: &PathSampler<B>,
    samples: &DataSampler<B>,
    k: usize,
    batch_size: usize,
    seed: u64,
) -> GradVar {
    let be = t.be;
    let mut rng = stream(seed, Purpose::GradVar, t.epoch as u64, 0);
    let flags: Vec<(bool, bool)> = t.net.params.tensors.iter().map(|p| (p.seen, p.dirty)).collect();
    let mut sum: Vec<B::Buf> = t.net.params.tensors.iter().map(|p| be.alloc_zeroed(p.len())).collect();
    let mut sumsq = 0.0;
    let mut norms = be.alloc(t.net.params.len());
    for _ in 0..k {
        let idx = samples.batch_with(&mut rng, batch_size);
        let b = make_batch(&t.data.train, &t.data.norm, &idx, None);
        let (x, labels) = (be.upload_f32(&b.x), be.upload_i32(&b.labels));
        t.net.params.zero_grads(be);
        let mut sums = be.alloc_zeroed(3);
        for g in paths.paths_with(&mut rng) {
            let s = forward_backward(be, &mut t.net, &x, &labels, None, b.n, &g, &mut sums, DataImportance::Proxy);
            be.release(s);
        }
        let grads: Vec<&B::Buf> = t.net.params.tensors.iter().map(|p| &p.grad).collect();
        be.sq_norms(&grads, &mut norms);
        sumsq += be.download(&norms).iter().map(|v| v.as_f64()).sum::<f64>();
        for (acc, p) in sum.iter_mut().zip(&t.net.params.tensors) {
            be.add_assign(acc, &p.grad);
        }
        be.release(sums);
        be.release(x);
        be.release_i32(labels);
    }
    be.sq_norms(&sum.iter().collect::<Vec<_>>(), &mut norms);
    let mean_sq_norm = be.download(&norms).iter().map(|v| v.as_f64()).sum::<f64>() / (k * k) as f64;
    let variance = (sumsq / k as f64 - mean_sq_norm).max(0.0);
    t.net.params.zero_grads(be);
    for (p, (seen, dirty)) in t.net.params.tensors.iter_mut().zip(flags) {
        p.seen = seen;
        p.dirty = dirty;
    }
    sum.into_iter().for_each(|b| be.release(b));
    be.release(norms);
    GradVar { batches: k, variance, mean_sq_norm, relative: variance / mean_sq_norm.max(f64::MIN_POSITIVE) }
}

/// [`measure`] with the trainer's own samplers and batch size.
pub fn measure_trainer<B: Backend>(t: &mut Trainer<B>, k: usize) -> GradVar {
    let (paths, samples) =
        (std::mem::replace(&mut t.paths, PathSampler::new(t.be, crate::sampler::PathSamplerKind::Uniform)), t.take_samples());
    let (bs, seed) = (t.config.batch_size, t.config.seed);
    let r = measure(t, &paths, &samples, k, bs, seed);
    t.paths = paths;
    t.put_samples(samples);
    r
}
