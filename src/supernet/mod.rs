//! The supernet of a search space, trained and evaluated along one sampled
//! architecture at a time: the space's body ([`SpaceNet`], in the space's
//! folder) up to globally pooled features, then the classifier, which every
//! space shares:
//!
//! ```text
//! image -> body (stem, the space's choice layers, head) -> pooled features -> linear -> logits
//! ```
//! The body's parameters come first in the [`ParamStore`], the classifier's
//! (`classifier.weight`, `classifier.bias`) last. A forward pass keeps what the
//! backward pass needs in a [`Tape`]. The engine knows no space: supernets are
//! built by the space registry (`Supernet::new` in src/space/mod.rs).

pub mod config;
pub mod layers;
pub mod params;

use std::any::Any;

pub use config::{InputShape, SupernetConfig};
pub use params::{Param, ParamId, ParamStore};

use crate::arch::Arch;
use crate::backend::Backend;
use crate::geometry::LinearGeom;
use num_traits::Zero;

/// Where a forward pass applies batch norm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchNorm {
    /// Everywhere: the supernet as it trains.
    All,
    /// The network of the zero-cost proxies' reference code with its batch
    /// norm removed (`use_bn=False`), for `synflow`: for NAS-Bench-201 none in
    /// the stem, the cells and the head (its reduction blocks keep theirs, as
    /// in zero-cost-nas's model); for NAS-Bench-Macro none anywhere.
    Removed,
}

/// What a backward pass computes besides the input gradients it propagates.
pub struct Pass<'a, B: Backend> {
    /// Treat the batch-norm statistics as constants: the backward pass of
    /// `y = (x - mean) * invstd` becomes `dx = invstd * dy`, and samples stay
    /// independent. Training uses the true gradient (false).
    pub frozen_bn_statistics: bool,
    /// Accumulate the parameter gradients (false: only the per-sample norms).
    pub gradients: bool,
    /// Add each sample's squared gradient norm over the path's parameters into
    /// this `[batch]` buffer: the norm of its part of each parameter's
    /// reduction over the batch, fused with the gradient's when `gradients`.
    pub per_sample_sq_norms: Option<&'a mut B::Buf>,
}

impl<B: Backend> Pass<'_, B> {
    /// The training pass: true gradients, accumulated.
    pub fn gradients() -> Self {
        Self { frozen_bn_statistics: false, gradients: true, per_sample_sq_norms: None }
    }
}

/// What a space's body keeps from its forward pass for its backward pass.
pub type BodyTape = Box<dyn Any + Send + Sync>;

/// A search space's supernet up to the pooled features: built by the space
/// (the registry, src/space/mod.rs), its parameters in the supernet's
/// [`ParamStore`].
pub trait SpaceNet<B: Backend>: Send + Sync {
    /// Length of the pooled feature vector of one image (the classifier's input).
    fn features(&self) -> usize;
    /// The pooled features `[batch, features]` (row-major) of the CNHW images
    /// `x` along `arch`, written to `pooled`, and what the backward pass
    /// needs; `None` when the features are identically zero whatever the
    /// input (no gradient flows into the body). With `keep = false`
    /// (evaluation) buffers go back to the pool as soon as they are consumed.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        be: &B,
        params: &ParamStore<B>,
        x: B::Buf,
        batch: usize,
        arch: &Arch,
        keep: bool,
        bn: BatchNorm,
        pooled: &mut B::Buf,
    ) -> Option<BodyTape>;
    /// From the gradient of the pooled features, the body's parameter
    /// gradients (or per-sample norms, see [`Pass`]).
    #[allow(clippy::too_many_arguments)]
    fn backward(&self, be: &B, params: &mut ParamStore<B>, tape: &BodyTape, arch: &Arch, batch: usize, dpooled: B::Buf, pass: &mut Pass<B>);
    /// The body's parameters of the sub-network `arch`, in store order.
    fn path_params(&self, arch: &Arch) -> Vec<ParamId>;
    /// The parameters of choice `choice` at slot `slot`, over every place the
    /// slot's choice is used (NAS-Bench-201: every cell's edge), in order;
    /// empty for a parameter-free choice. PA&DA's path importance is the
    /// gradient norm of these.
    fn choice_params(&self, slot: usize, choice: usize) -> Vec<ParamId>;
    /// Multiply-accumulates of one image through the body of `arch`, as the
    /// space's benchmark counts them.
    fn forward_macs(&self, arch: &Arch) -> u64;
    /// Channels of the batch norms on `arch`'s path: a stand-alone network
    /// with affine batch norm has two parameters more for each.
    fn bn_channels(&self, arch: &Arch) -> usize;
}

/// What a forward pass keeps for the backward pass.
pub struct Tape<B: Backend> {
    pub batch: usize,
    pub arch: Arch,
    /// `[batch, classes]`, row-major.
    pub logits: B::Buf,
    /// `[batch, features]`: the classifier's input.
    pooled: B::Buf,
    /// The body's; `None` where its features are identically zero.
    body: Option<BodyTape>,
}

pub struct Supernet<B: Backend> {
    pub config: SupernetConfig,
    pub params: ParamStore<B>,
    body: Box<dyn SpaceNet<B>>,
    classifier_w: ParamId,
    classifier_b: ParamId,
}

impl<B: Backend> Supernet<B> {
    /// The supernet of `body` (built into `params` by a space) with the
    /// shared classifier added. Supernets are built through the space
    /// registry: `Supernet::new` and `Supernet::uninit` (src/space/mod.rs).
    pub fn assemble(be: &B, config: SupernetConfig, mut params: ParamStore<B>, body: Box<dyn SpaceNet<B>>) -> Self {
        let f = body.features();
        let classifier_w = params.add(be, "classifier.weight".into(), vec![config.classes, f], f);
        let classifier_b = params.add(be, "classifier.bias".into(), vec![config.classes], f);
        Self { config, params, body, classifier_w, classifier_b }
    }

    /// Parameters of the sub-network `arch`: the body's on its path (for
    /// NAS-Bench-201 every op's of the genotype, whether or not its edge
    /// carries signal: PyTorch gives all of them a gradient) and the classifier.
    pub fn path_params(&self, arch: &Arch) -> Vec<ParamId> {
        let mut ids = self.body.path_params(arch);
        ids.extend([self.classifier_w, self.classifier_b]);
        ids
    }

    /// [`SpaceNet::choice_params`].
    pub fn choice_params(&self, slot: usize, choice: usize) -> Vec<ParamId> {
        self.body.choice_params(slot, choice)
    }

    /// The complexity CaLR (Jeon et al., 2025) schedules by: the weights (not
    /// the biases, nor batch norm's) of the sub-network's convolutions and
    /// classifier. NAS-Bench-201 at C=16, N=5: 72,752 + 26,880 n1 + 241,920
    /// n3 for n1 conv1x1 and n3 conv3x3 edges, as in the released code.
    pub fn complexity(&self, arch: &Arch) -> usize {
        self.path_params(arch).iter().map(|&id| self.params.get(id)).filter(|p| p.name.ends_with(".weight")).map(|p| p.len()).sum()
    }

    /// Number of scalars of the sub-network `arch` (or the whole supernet for `None`).
    pub fn param_count(&self, arch: Option<&Arch>) -> usize {
        match arch {
            None => self.params.numel(),
            Some(a) => self.path_params(a).iter().map(|&id| self.params.get(id).len()).sum(),
        }
    }

    /// Parameters of the stand-alone network of `arch`, with affine batch
    /// norm (this supernet's have none): [`Self::param_count`] plus a scale
    /// and a shift per batch-norm channel, as the benchmarks count them.
    pub fn standalone_params(&self, arch: &Arch) -> usize {
        self.param_count(Some(arch)) + 2 * self.body.bn_channels(arch)
    }

    /// Multiply-accumulates of a forward pass of one image through `arch`:
    /// the body's ([`SpaceNet::forward_macs`]) and the classifier's.
    pub fn forward_macs(&self, arch: &Arch) -> u64 {
        self.body.forward_macs(arch) + (self.body.features() * self.config.classes) as u64
    }

    /// Forward pass of `batch` CNHW images `x` along `arch`. With
    /// `keep_for_backward = false` (evaluation) intermediate buffers are released
    /// as soon as they are consumed; the returned tape then only serves `logits`.
    pub fn forward(&self, be: &B, x: B::Buf, batch: usize, arch: &Arch, keep_for_backward: bool) -> Tape<B> {
        self.forward_with(be, x, batch, arch, keep_for_backward, BatchNorm::All)
    }

    /// [`Self::forward`] with batch norm where `bn` says.
    pub fn forward_with(&self, be: &B, x: B::Buf, batch: usize, arch: &Arch, keep_for_backward: bool, bn: BatchNorm) -> Tape<B> {
        assert_eq!(arch.space(), self.config.space, "forward: an architecture of another space");
        assert_eq!(be.len(&x), self.config.input.len() * batch, "forward: input size");
        let f = self.body.features();
        let mut pooled = be.alloc(batch * f);
        let body = self.body.forward(be, &self.params, x, batch, arch, keep_for_backward, bn, &mut pooled);
        if body.is_none() {
            // no signal reaches the head: its features are zero
            be.fill(&mut pooled, B::T::zero());
        }
        let mut logits = be.alloc(batch * self.config.classes);
        let lg = LinearGeom::new(batch, f, self.config.classes);
        be.linear_forward(&lg, &pooled, self.params.value(self.classifier_w), self.params.value(self.classifier_b), &mut logits);
        Tape { batch, arch: *arch, logits, pooled, body }
    }

    /// Backward pass from the gradient of the logits: accumulates into the
    /// gradients of the path's parameters (marking them as having had a
    /// gradient); the tape's buffers go back to the pool.
    pub fn backward(&mut self, be: &B, tape: Tape<B>, dlogits: &B::Buf) {
        self.backward_with(be, &tape, dlogits, &mut Pass::gradients());
    }

    /// Adds each sample's squared norm of the classifier's weight and bias
    /// gradient for the per-sample logit gradients `dz` into `out`.
    pub fn classifier_per_sample_sq_norms(&self, be: &B, tape: &Tape<B>, dz: &B::Buf, out: &mut B::Buf) {
        let lg = LinearGeom::new(tape.batch, self.body.features(), self.config.classes);
        be.linear_per_sample_sq_norms(&lg, &tape.pooled, dz, out);
    }

    /// The backward pass of [`Pass`]'s kind; the tape stays usable.
    pub fn backward_with(&mut self, be: &B, tape: &Tape<B>, dlogits: &B::Buf, pass: &mut Pass<B>) {
        let batch = tape.batch;
        if pass.gradients {
            for id in self.path_params(&tape.arch) {
                let p = self.params.get_mut(id);
                p.seen = true;
                p.dirty = true;
            }
        }
        let f = self.body.features();
        let lg = LinearGeom::new(batch, f, self.config.classes);
        let mut dpooled = tape.body.as_ref().map(|_| be.alloc(batch * f));
        if let Some(out) = pass.per_sample_sq_norms.as_deref_mut() {
            be.linear_per_sample_sq_norms(&lg, &tape.pooled, dlogits, out);
        }
        if pass.gradients {
            let [pw, pb] = self.params.tensors.get_disjoint_mut([self.classifier_w.0, self.classifier_b.0]).expect("distinct");
            be.linear_backward(&lg, &tape.pooled, &pw.value, dlogits, dpooled.as_mut(), &mut pw.grad, &mut pb.grad);
        } else {
            // the input gradient only; the weight gradients go to scratch
            let (mut dw, mut db) = (be.alloc_zeroed(f * self.config.classes), be.alloc_zeroed(self.config.classes));
            be.linear_backward(&lg, &tape.pooled, self.params.value(self.classifier_w), dlogits, dpooled.as_mut(), &mut dw, &mut db);
        }
        if let (Some(body), Some(dpooled)) = (&tape.body, dpooled) {
            self.body.backward(be, &mut self.params, body, &tape.arch, batch, dpooled, pass);
        }
    }
}
