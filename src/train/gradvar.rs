//! Gradient variance of supernet training, as the paper discusses it: at the
//! current weights, K mini-batch gradients drawn the way a method draws them
//! (its paths and its data), and their spread.

use serde::{Deserialize, Serialize};

use super::{forward_backward, DataImportance};
use crate::backend::Backend;
use crate::data::loader::make_batch;
use crate::data::Dataset;
use crate::data::Normalization;
use crate::element::Element;
use crate::rng::{stream, Purpose};
use crate::sampler::{DataSampler, PathSampler};
use crate::supernet::Supernet;

/// `(1/K) sum_k ||g_k - mean||^2` over K mini-batch gradients (all
/// parameters), and the same divided by `||mean||^2`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GradVar {
    pub batches: usize,
    pub variance: f64,
    pub mean_sq_norm: f64,
    pub relative: f64,
}

/// Where and how [`measure`] draws: the training split, the samplers whose
/// paths and data it follows, K batches of `batch_size`, the random stream's
/// seed and epoch.
pub struct GradVarDraws<'a, B: Backend> {
    pub train: &'a Dataset,
    pub norm: &'a Normalization,
    pub paths: &'a PathSampler<B>,
    pub samples: &'a DataSampler<B>,
    pub batches: usize,
    pub batch_size: usize,
    pub seed: u64,
    pub epoch: usize,
}

/// Measures the gradient variance at `net`'s weights. The weights, the
/// optimiser state and the samplers are left as they were.
pub fn measure<B: Backend>(be: &B, net: &mut Supernet<B>, d: &GradVarDraws<'_, B>) -> GradVar {
    let k = d.batches;
    let mut rng = stream(d.seed, Purpose::GradVar, d.epoch as u64, 0);
    let flags: Vec<(bool, bool)> = net.params.tensors.iter().map(|p| (p.seen, p.dirty)).collect();
    let mut sum: Vec<B::Buf> = net.params.tensors.iter().map(|p| be.alloc_zeroed(p.len())).collect();
    let mut sumsq = 0.0;
    let mut norms = be.alloc(net.params.len());
    for _ in 0..k {
        let idx = d.samples.batch_with(&mut rng, d.batch_size);
        let b = make_batch(d.train, d.norm, &idx, None);
        let (x, labels) = (be.upload_f64(&b.x), be.upload_i32(&b.labels));
        net.params.zero_grads(be);
        let mut sums = be.alloc_zeroed(3);
        for g in d.paths.paths_with(&mut rng) {
            forward_backward(be, net, &x, &labels, None, b.n, &g, &mut sums, DataImportance::Proxy);
        }
        let grads: Vec<&B::Buf> = net.params.tensors.iter().map(|p| &p.grad).collect();
        be.sq_norms(&grads, &mut norms);
        sumsq += be.download(&norms).iter().map(|v| v.as_f64()).sum::<f64>();
        for (acc, p) in sum.iter_mut().zip(&net.params.tensors) {
            be.add_assign(acc, &p.grad);
        }
    }
    be.sq_norms(&sum.iter().collect::<Vec<_>>(), &mut norms);
    let mean_sq_norm = be.download(&norms).iter().map(|v| v.as_f64()).sum::<f64>() / (k * k) as f64;
    let variance = (sumsq / k as f64 - mean_sq_norm).max(0.0);
    net.params.zero_grads(be);
    for (p, (seen, dirty)) in net.params.tensors.iter_mut().zip(flags) {
        p.seen = seen;
        p.dirty = dirty;
    }
    GradVar { batches: k, variance, mean_sq_norm, relative: variance / mean_sq_norm.max(f64::MIN_POSITIVE) }
}

/// [`measure`] with the trainer's own samplers and batch size.
pub fn measure_trainer<B: Backend>(t: &mut super::Trainer<B>, k: usize) -> GradVar {
    let draws = GradVarDraws {
        train: &t.data.train,
        norm: &t.data.norm,
        paths: &t.paths,
        samples: &t.samples,
        batches: k,
        batch_size: t.config.batch_size,
        seed: t.config.seed,
        epoch: t.epoch,
    };
    measure(t.be, &mut t.net, &draws)
}
