//! Parameter tensors with their gradients and SGD momentum, on the device.

use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::backend::Backend;
use crate::element::Element;
use num_traits::Zero;

/// Index of a parameter tensor in its [`ParamStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(pub usize);

pub struct Param<B: Backend> {
    /// Stable name, used in checkpoints: `cell3.edge5.op3.weight`, `classifier.bias`, ...
    pub name: String,
    /// PyTorch shape: `[out, in, k, k]` for conv weights, `[out, in]` for the classifier.
    pub shape: Vec<usize>,
    /// Inputs per output unit of the layer this tensor belongs to (for initialisation).
    pub fan_in: usize,
    pub value: B::Buf,
    pub grad: B::Buf,
    /// The SGD momentum buffer of the active momentum group (the only one
    /// without `--momentum-groups`).
    pub momentum: B::Buf,
    /// With momentum groups, the other groups' buffers; `None` at the active
    /// group's index (its buffer is `momentum`).
    pub parked: Vec<Option<B::Buf>>,
    /// Whether the tensor has ever had a gradient (PyTorch: `p.grad is not None`).
    pub seen: bool,
    /// Whether `grad` may be non-zero (written since the last [`ParamStore::zero_grads`]).
    pub dirty: bool,
}

impl<B: Backend> Param<B> {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub struct ParamStore<B: Backend> {
    pub tensors: Vec<Param<B>>,
    by_name: HashMap<String, ParamId>,
    /// The momentum group whose buffers are in `Param::momentum`.
    active_group: usize,
}

impl<B: Backend> Default for ParamStore<B> {
    fn default() -> Self {
        Self { tensors: Vec::new(), by_name: HashMap::new(), active_group: 0 }
    }
}

impl<B: Backend> ParamStore<B> {
    /// Adds a zero tensor (values are set by [`ParamStore::init`] or loaded).
    pub fn add(&mut self, be: &B, name: String, shape: Vec<usize>, fan_in: usize) -> ParamId {
        let len = shape.iter().product();
        let id = ParamId(self.tensors.len());
        assert!(self.by_name.insert(name.clone(), id).is_none(), "duplicate parameter {name}");
        self.tensors.push(Param {
            name,
            shape,
            fan_in,
            value: be.alloc_zeroed(len),
            grad: be.alloc_zeroed(len),
            momentum: be.alloc_zeroed(len),
            parked: Vec::new(),
            seen: false,
            dirty: false,
        });
        id
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
    pub fn id(&self, name: &str) -> Option<ParamId> {
        self.by_name.get(name).copied()
    }
    pub fn get(&self, id: ParamId) -> &Param<B> {
        &self.tensors[id.0]
    }
    pub fn get_mut(&mut self, id: ParamId) -> &mut Param<B> {
        &mut self.tensors[id.0]
    }
    pub fn value(&self, id: ParamId) -> &B::Buf {
        &self.tensors[id.0].value
    }
    /// A weight's value beside its gradient and its bias's, both mutable: a
    /// layer's input gradient reads the weight while its parameter gradients
    /// are written.
    pub fn value_and_grads(&mut self, w: ParamId, b: Option<ParamId>) -> (&B::Buf, &mut B::Buf, Option<&mut B::Buf>) {
        match b {
            Some(b) => {
                let [pw, pb] = self.tensors.get_disjoint_mut([w.0, b.0]).expect("distinct parameters");
                (&pw.value, &mut pw.grad, Some(&mut pb.grad))
            }
            None => {
                let p = &mut self.tensors[w.0];
                (&p.value, &mut p.grad, None)
            }
        }
    }
    /// Total number of scalars.
    pub fn numel(&self) -> usize {
        self.tensors.iter().map(|p| p.len()).sum()
    }

    /// PyTorch's default initialisation, driven by `seed`: kaiming-uniform with
    /// a = sqrt(5) for weights, which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and
    /// the same bound for biases. Tensors are filled in creation order from one
    /// ChaCha8 stream, so a seed gives the same weights on every platform.
    pub fn init(&mut self, be: &B, seed: u64) {
        let all: Vec<ParamId> = (0..self.tensors.len()).map(ParamId).collect();
        self.init_some(be, seed, &all);
    }

    /// [`Self::init`] of the tensors `ids` only, drawn in that order from one
    /// stream of `seed` (all of them in order: [`Self::init`]).
    pub fn init_some(&mut self, be: &B, seed: u64, ids: &[ParamId]) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for &id in ids {
            let p = &mut self.tensors[id.0];
            let bound = 1.0 / (p.fan_in as f64).sqrt();
            let host: Vec<B::T> = (0..p.len()).map(|_| B::T::from_f64(rng.random_range(-bound..bound))).collect();
            be.upload_into(&host, &mut p.value);
            be.fill(&mut p.momentum, B::T::zero());
            be.fill(&mut p.grad, B::T::zero());
            p.seen = false;
            p.dirty = false;
        }
    }

    /// Momentum separation (Jeon et al., CVPR 2025): `k` momentum buffers per
    /// tensor, all zero, of which one is active at a time (group 0 now).
    pub fn set_momentum_groups(&mut self, be: &B, k: usize) {
        self.active_group = 0;
        for p in &mut self.tensors {
            be.fill(&mut p.momentum, B::T::zero());
            p.parked = (0..k).map(|g| (g > 0).then(|| be.alloc_zeroed(p.len()))).collect();
        }
    }

    /// Number of momentum groups (1 without momentum separation).
    pub fn momentum_groups(&self) -> usize {
        self.tensors.first().map_or(1, |p| p.parked.len().max(1))
    }

    /// Makes group `g`'s buffers the ones SGD uses (a swap of buffers, no copy).
    pub fn activate_momentum_group(&mut self, g: usize) {
        if g == self.active_group {
            return;
        }
        let old = self.active_group;
        for p in &mut self.tensors {
            let next = p.parked[g].take().expect("a parked group");
            p.parked[old] = Some(std::mem::replace(&mut p.momentum, next));
        }
        self.active_group = g;
    }

    /// Tensor `i`'s momentum buffer of group `g`.
    pub fn momentum_of(&self, i: usize, g: usize) -> &B::Buf {
        let p = &self.tensors[i];
        if g == self.active_group {
            &p.momentum
        } else {
            p.parked[g].as_ref().expect("a parked group")
        }
    }

    /// Tensor `i`'s momentum buffer of group `g`, to restore it.
    pub fn momentum_of_mut(&mut self, i: usize, g: usize) -> &mut B::Buf {
        let active = self.active_group;
        let p = &mut self.tensors[i];
        if g == active {
            &mut p.momentum
        } else {
            p.parked[g].as_mut().expect("a parked group")
        }
    }

    /// Sets every gradient to zero (PyTorch 1.7's `zero_grad`); only those
    /// written since the last call need it.
    pub fn zero_grads(&mut self, be: &B) {
        for p in &mut self.tensors {
            if p.dirty {
                be.fill(&mut p.grad, B::T::zero());
                p.dirty = false;
            }
        }
    }
}
