//! Predictors that need no training, as baselines a supernet's ranking must
//! beat: parameter count (the sub-network's weights and biases in pada's
//! supernet, whose batch norm has no affine parameters), FLOPs (its
//! multiply-accumulates, as the space's benchmark counts them) and the
//! zero-cost proxies as their authors' reference code computes them
//! (Abdelfattah et al., ICLR 2021, github.com/SamsungLabs/zero-cost-nas,
//! `foresight/pruners/measures`), in any search space:
//! - `grad_norm`: the sum over the conv and linear layers of the norm of each
//!   layer's weight gradient (biases left out) of the batch's mean
//!   cross-entropy;
//! - `snip`: `sum |w * dL/dw|` over the same weights (Lee et al., ICLR 2019);
//! - `synflow`: the network without batch norm (the reference's `use_bn=False`
//!   copy; in NAS-Bench-201 none in the stem, the cells and the head, the
//!   reduction blocks keep theirs; in NAS-Bench-Macro none anywhere,
//!   [`crate::supernet::BatchNorm::Removed`]), in float64, every parameter replaced by its absolute value, one
//!   all-ones image: `sum |w * dR/dw|` over the conv and linear weights for R
//!   the sum of the logits (Tanaka et al., NeurIPS 2020);
//! - `synflow_bn`: the same with batch norm everywhere (the reference's
//!   `synflow_bn`; pada's `synflow` before this definition).
//!
//! Batch norm uses batch statistics. As in the reference, every architecture
//! is its own network at PyTorch's default initialisation and sees its own
//! batch of training images with the data's augmentation
//! ([`for_archs`]: both drawn from the seed and the architecture's index in
//! its space, so an architecture's proxies do not depend on which others are
//! computed with it). Each proxy is checked against the reference definitions
//! in PyTorch on a tiny NAS-Bench-201 network (tests/proxies.rs); in
//! NAS-Bench-Macro the same code runs on its supernet, whose forward and
//! backward passes match PyTorch (tests/supernet.rs).

use serde::{Deserialize, Serialize};

use crate::arch::Arch;
use crate::backend::cpu::CpuBackend;
use crate::backend::Backend;
use crate::element::Element;
use crate::supernet::{BatchNorm, Pass, Supernet, SupernetConfig};
use crate::train::{forward_backward, DataImportance};

/// The CSV columns of `pada proxies`, after `arch`.
pub const COLUMNS: [&str; 6] = ["params", "flops", "grad_norm", "snip", "synflow", "synflow_bn"];

/// What each column is, for reference rows and plots.
pub const LABELS: [&str; 6] =
    ["parameter count", "FLOPs", "grad-norm (zero-cost)", "snip (zero-cost)", "synflow (zero-cost)", "synflow with batch norm (zero-cost)"];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Proxies {
    pub params: f64,
    /// Multiply-accumulates of one image's forward pass.
    pub flops: f64,
    pub grad_norm: f64,
    pub snip: f64,
    pub synflow: f64,
    pub synflow_bn: f64,
}

impl Proxies {
    pub fn values(&self) -> [f64; 6] {
        [self.params, self.flops, self.grad_norm, self.snip, self.synflow, self.synflow_bn]
    }
}

/// Whether a parameter is a conv or linear weight (the layers the reference
/// code measures), from its name (src/train/checkpoint.rs).
fn is_weight(name: &str) -> bool {
    name.ends_with(".weight")
}

/// Computes proxies of architectures: the network on the backend (for the
/// gradient of a batch), and its float64 twin on the CPU (for synflow).
pub struct ProxyEngine<'a, B: Backend> {
    be: &'a B,
    pub net: Supernet<B>,
    cpu: CpuBackend<f64>,
    net64: Supernet<CpuBackend<f64>>,
}

impl<'a, B: Backend> ProxyEngine<'a, B> {
    /// An engine for supernets of `config` (weights unset: load them into
    /// `net`, or draw an architecture's with [`Self::init_arch`]).
    pub fn new(be: &'a B, config: SupernetConfig) -> anyhow::Result<Self> {
        let cpu = CpuBackend::<f64>::new();
        let net64 = Supernet::uninit(&cpu, config)?;
        Ok(Self { be, net: Supernet::uninit(be, config)?, cpu, net64 })
    }

    /// `g`'s own network: the parameters of its path drawn, in order, from
    /// PyTorch's default distributions (uniform within +-1/sqrt(fan_in)) from
    /// the stream of `seed` and `g`'s index in its space.
    pub fn init_arch(&mut self, g: &Arch, seed: u64) {
        let s = crate::rng::derive_seed(seed, crate::rng::Purpose::Proxies, g.index() as u64, 0);
        self.net.params.init_some(self.be, s, &self.net.path_params(g));
    }

    /// The proxies of `g` with `net`'s current weights, on the batch `x` of
    /// `n` images with `labels`. The weights are left as they were; the
    /// gradients are zeroed.
    pub fn proxies(&mut self, g: &Arch, x: &B::Buf, labels: &B::IBuf, n: usize) -> Proxies {
        let (be, cpu) = (self.be, &self.cpu);
        let path: Vec<usize> = self.net.path_params(g).into_iter().map(|id| id.0).collect();
        let host = |b: &B::Buf| -> Vec<f64> { be.download(b).into_iter().map(|v| v.as_f64()).collect() };
        // grad_norm and snip: one backward pass of the mean cross-entropy
        self.net.params.zero_grads(be);
        let mut sums = be.alloc_zeroed(3);
        forward_backward(be, &mut self.net, x, labels, None, n, g, &mut sums, DataImportance::Proxy);
        let (mut grad_norm, mut snip) = (0.0, 0.0);
        for &i in path.iter().filter(|&&i| is_weight(&self.net.params.tensors[i].name)) {
            let (v, d) = (host(&self.net.params.tensors[i].value), host(&self.net.params.tensors[i].grad));
            grad_norm += d.iter().map(|d| d * d).sum::<f64>().sqrt();
            snip += v.iter().zip(&d).map(|(v, d)| (v * d).abs()).sum::<f64>();
        }
        self.net.params.zero_grads(be);
        // synflow: |theta| in float64, one all-ones image, dR/dlogits = 1
        for &i in &path {
            let abs: Vec<f64> = host(&self.net.params.tensors[i].value).into_iter().map(f64::abs).collect();
            crate::backend::Memory::upload_into(cpu, &abs, &mut self.net64.params.tensors[i].value);
        }
        let mut synflow = [0.0; 2];
        for (k, bn) in [BatchNorm::Removed, BatchNorm::All].into_iter().enumerate() {
            let net64 = &mut self.net64;
            net64.params.zero_grads(cpu);
            let ones = crate::backend::Memory::upload(cpu, &vec![1.0; net64.config.input.len()]);
            let tape = net64.forward_with(cpu, ones, 1, g, true, bn);
            let dlogits = crate::backend::Memory::upload(cpu, &vec![1.0; net64.config.classes]);
            net64.backward_with(cpu, &tape, &dlogits, &mut Pass::gradients());
            for &i in path.iter().filter(|&&i| is_weight(&net64.params.tensors[i].name)) {
                let t = &net64.params.tensors[i];
                synflow[k] += t.value.iter().zip(t.grad.iter()).map(|(w, d)| (w * d).abs()).sum::<f64>();
            }
        }
        Proxies {
            params: self.net.param_count(Some(g)) as f64,
            flops: self.net.forward_macs(g) as f64,
            grad_norm,
            snip,
            synflow: synflow[0],
            synflow_bn: synflow[1],
        }
    }
}

/// The proxies of each of `archs` as the reference computes them: each on its
/// own network of `config` ([`ProxyEngine::init_arch`]) and its own batch of
/// `batch` training images of `data` drawn without replacement and augmented
/// as the data's training is (both from `seed` and the architecture's index).
pub fn for_archs<B: Backend>(
    be: &B,
    config: SupernetConfig,
    data: &crate::data::Data,
    batch: usize,
    seed: u64,
    archs: &[Arch],
    mut each: impl FnMut(usize, &Proxies),
) -> anyhow::Result<Vec<Proxies>> {
    let mut engine = ProxyEngine::new(be, config)?;
    let n = batch.min(data.train.len());
    Ok(archs
        .iter()
        .enumerate()
        .map(|(k, g)| {
            engine.init_arch(g, seed);
            let mut rng = crate::rng::stream(seed, crate::rng::Purpose::Proxies, g.index() as u64, 1);
            let idx: Vec<u32> = rand::seq::index::sample(&mut rng, data.train.len(), n).into_iter().map(|i| i as u32).collect();
            let augment = data.default_augment;
            let b = crate::data::loader::make_batch(&data.train, &data.norm, &idx, Some((augment, &mut rng)));
            let (x, labels) = (be.upload_f64(&b.x), be.upload_i32(&b.labels));
            let p = engine.proxies(g, &x, &labels, b.n);
            each(k, &p);
            p
        })
        .collect())
}
