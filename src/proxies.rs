//! Predictors that need no training, as baselines a supernet's ranking must
//! beat: parameter count, FLOPs and three zero-cost proxies computed by pada's
//! own engine on the architecture at initialisation, on one batch:
//! - `grad_norm`: the norm of the loss gradient over the architecture's
//!   parameters (Abdelfattah et al., ICLR 2021);
//! - `snip`: `sum |theta * dL/dtheta|` (Lee et al., ICLR 2019, as a NAS proxy
//!   in Abdelfattah et al.);
//! - `synflow`: with every parameter replaced by its absolute value and an
//!   all-ones input (one image), `sum theta * dR/dtheta` for R the sum of the
//!   logits (Tanaka et al., NeurIPS 2020). Batch norm keeps its batch
//!   statistics, as everywhere in pada.
//!
//! Each is checked against PyTorch's value on a tiny supernet (tests/proxies.rs).

use num_traits::Float;
use serde::{Deserialize, Serialize};

use crate::arch::Genotype;
use crate::backend::Backend;
use crate::element::Element;
use crate::supernet::{Pass, Supernet};
use crate::train::{forward_backward, DataImportance};

/// The CSV columns of `pada proxies`, after `arch`.
pub const COLUMNS: [&str; 5] = ["params", "flops", "grad_norm", "snip", "synflow"];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Proxies {
    pub params: f64,
    /// Multiply-accumulates of one image's forward pass.
    pub flops: f64,
    pub grad_norm: f64,
    pub snip: f64,
    pub synflow: f64,
}

impl Proxies {
    pub fn values(&self) -> [f64; 5] {
        [self.params, self.flops, self.grad_norm, self.snip, self.synflow]
    }
}

/// The proxies of `g` with `net`'s (initial) weights, on the batch `x` of `n`
/// images with `labels`. `net`'s weights are left as they were; its gradients
/// are zeroed.
pub fn proxies<B: Backend>(be: &B, net: &mut Supernet<B>, g: &Genotype, x: &B::Buf, labels: &B::IBuf, n: usize) -> Proxies {
    let path: Vec<usize> = net.path_params(g).into_iter().map(|id| id.0).collect();
    let host = |b: &B::Buf| -> Vec<f64> { be.download(b).into_iter().map(|v| v.as_f64()).collect() };
    // grad-norm and snip: one backward pass of the mean cross-entropy
    net.params.zero_grads(be);
    let mut sums = be.alloc_zeroed(3);
    forward_backward(be, net, x, labels, None, n, g, &mut sums, DataImportance::Proxy);
    let (mut sq, mut snip) = (0.0, 0.0);
    for &i in &path {
        let (v, d) = (host(&net.params.tensors[i].value), host(&net.params.tensors[i].grad));
        sq += d.iter().map(|d| d * d).sum::<f64>();
        snip += v.iter().zip(&d).map(|(v, d)| (v * d).abs()).sum::<f64>();
    }
    // synflow: |theta|, an all-ones image, dR/dlogits = 1
    net.params.zero_grads(be);
    let saved: Vec<Vec<B::T>> = path.iter().map(|&i| be.download(&net.params.tensors[i].value)).collect();
    for (&i, v) in path.iter().zip(&saved) {
        let abs: Vec<B::T> = v.iter().map(|t| t.abs()).collect();
        be.upload_into(&abs, &mut net.params.tensors[i].value);
    }
    let ones = be.upload_f64(&vec![1.0; net.config.input.len()]);
    let tape = net.forward(be, ones, 1, g, true);
    let dlogits = be.upload_f64(&vec![1.0; net.config.classes]);
    net.backward_with(be, &tape, &dlogits, &mut Pass::gradients());
    let mut synflow = 0.0;
    for (&i, v) in path.iter().zip(&saved) {
        let d = host(&net.params.tensors[i].grad);
        synflow += v.iter().zip(&d).map(|(v, d)| v.as_f64().abs() * d).sum::<f64>();
        be.upload_into(v, &mut net.params.tensors[i].value);
    }
    net.params.zero_grads(be);
    Proxies { params: net.param_count(Some(g)) as f64, flops: net.forward_macs(g) as f64, grad_norm: sq.sqrt(), snip, synflow }
}

/// The proxies of each of `archs` on a supernet of `config` freshly initialised
/// from `seed`, with the first `batch` training images of `data` (no augmentation).
pub fn for_archs<B: Backend>(
    be: &B,
    config: crate::supernet::SupernetConfig,
    data: &crate::data::Data,
    batch: usize,
    seed: u64,
    archs: &[Genotype],
    mut each: impl FnMut(usize, &Proxies),
) -> anyhow::Result<Vec<Proxies>> {
    let mut net = Supernet::new(be, config, crate::rng::derive_seed(seed, crate::rng::Purpose::Init, 0, 0))?;
    let idx: Vec<u32> = (0..batch.min(data.train.len()) as u32).collect();
    let b = crate::data::loader::make_batch(&data.train, &data.norm, &idx, None);
    let (x, labels) = (be.upload_f64(&b.x), be.upload_i32(&b.labels));
    Ok(archs
        .iter()
        .enumerate()
        .map(|(k, g)| {
            let p = proxies(be, &mut net, g, &x, &labels, b.n);
            each(k, &p);
            p
        })
        .collect())
}
