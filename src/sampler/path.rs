//! Path samplers: uniform (SPOS), FairNAS, and PA&DA's path importance.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::arch::{Genotype, Op, NUM_EDGES};
use crate::backend::Backend;
use crate::element::Element;
use crate::ops::ImportanceGroup;
use crate::optim::StepNorms;
use crate::rng::{stream, Purpose};
use crate::supernet::Supernet;
use num_traits::Zero;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathSamplerKind {
    /// Every edge's op uniformly at random (SPOS).
    Uniform,
    /// Every step, a fresh random permutation of the 5 ops on each edge gives
    /// 5 paths that together train every op of every edge exactly once.
    /// (The official baseline reuses the first step's permutations for the
    /// whole epoch, a quirk of its bookkeeping that pada does not copy.)
    Fair,
    /// PA&DA: ops drawn in proportion to their (clipped) gradient norms, mixed
    /// with the uniform distribution by tau = epoch / epochs. One 5-way
    /// distribution shared by all edges (as the official code), or one per edge.
    Importance { per_edge: bool },
    /// Always the same architecture: stand-alone training (`pada groundtruth`).
    Fixed(Genotype),
}

/// Samples the paths of each step and, for PA&DA, learns the op distribution.
pub struct PathSampler<B: Backend> {
    pub kind: PathSamplerKind,
    /// The op distribution of the current epoch: 5 entries, or 6 x 5 per edge.
    prob: Vec<f64>,
    /// Device accumulator of op importance G (same layout as `prob`).
    importance: Option<B::Buf>,
    rng: Option<ChaCha8Rng>,
}

impl<B: Backend> PathSampler<B> {
    pub fn new(be: &B, kind: PathSamplerKind) -> Self {
        let entries = match kind {
            PathSamplerKind::Importance { per_edge: true } => NUM_EDGES * Op::COUNT,
            _ => Op::COUNT,
        };
        let importance = matches!(kind, PathSamplerKind::Importance { .. }).then(|| be.alloc_zeroed(entries));
        Self { kind, prob: vec![1.0 / Op::COUNT as f64; entries], importance, rng: None }
    }

    /// The current op distribution: 5 numbers, or 30 (edge-major) per edge.
    pub fn distribution(&self) -> &[f64] {
        &self.prob
    }
    /// Restores a distribution saved by a checkpoint.
    pub fn set_distribution(&mut self, p: Vec<f64>) -> anyhow::Result<()> {
        anyhow::ensure!(p.len() == self.prob.len(), "path distribution has {} entries, expected {}", p.len(), self.prob.len());
        self.prob = p;
        Ok(())
    }

    /// Starts an epoch: a fresh random stream and, for PA&DA, G = 0.
    pub fn begin_epoch(&mut self, be: &B, seed: u64, epoch: usize) {
        self.rng = Some(stream(seed, Purpose::Paths, epoch as u64, 0));
        if let Some(g) = &mut self.importance {
            be.fill(g, B::T::zero());
        }
    }

    /// The paths of the next step: one, or five for FairNAS.
    pub fn next_paths(&mut self) -> Vec<Genotype> {
        let mut rng = self.rng.take().expect("begin_epoch first");
        let paths = self.paths_with(&mut rng);
        self.rng = Some(rng);
        paths
    }

    /// The paths of a step drawn from the current distribution with `rng`
    /// (leaving the sampler's own stream alone).
    pub fn paths_with(&self, rng: &mut ChaCha8Rng) -> Vec<Genotype> {
        match self.kind {
            PathSamplerKind::Uniform => vec![Genotype(std::array::from_fn(|_| Op::ALL[rng.random_range(0..Op::COUNT)]))],
            PathSamplerKind::Fixed(g) => vec![g],
            PathSamplerKind::Fair => {
                let perms: Vec<[Op; 5]> = (0..NUM_EDGES)
                    .map(|_| {
                        let mut p = Op::ALL;
                        p.shuffle(rng);
                        p
                    })
                    .collect();
                (0..Op::COUNT).map(|k| Genotype(std::array::from_fn(|e| perms[e][k]))).collect()
            }
            PathSamplerKind::Importance { per_edge } => {
                let prob = &self.prob;
                vec![Genotype(std::array::from_fn(|e| {
                    let p = if per_edge { &prob[e * Op::COUNT..(e + 1) * Op::COUNT] } else { &prob[..] };
                    Op::ALL[draw(p, rng)]
                }))]
            }
        }
    }

    /// PA&DA: after a step on `g`, folds the clipped gradient norms of the
    /// path's convs into G. Shared distribution (official): for each conv op k
    /// on the path, S_k = sum over cells and edges using k of (||dW|| + ||db||),
    /// divided by the number of edges using k; G_k = (G_k + S_k) / 2, also
    /// when S_k is 0 (as the official code in floating point; see
    /// [`crate::ops::path_importance_update`]). Per edge: the same per (edge,
    /// op), summed over cells.
    pub fn observe(&mut self, be: &B, net: &Supernet<B>, g: &Genotype, norms: &StepNorms<B>) {
        let PathSamplerKind::Importance { per_edge } = self.kind else { return };
        let pos = |id: crate::supernet::ParamId| norms.tensors.binary_search(&id.0).expect("path tensors were updated") as i32;
        let mut members = Vec::new();
        let mut groups = Vec::new();
        for op in [Op::NorConv1x1, Op::NorConv3x3] {
            let count = g.count(op);
            if count == 0 {
                continue;
            }
            let per_cell = net.edge_conv_params(op);
            let edges: Vec<usize> = (0..NUM_EDGES).filter(|&e| g.0[e] == op).collect();
            let mut push_group = |slot: usize, edges: &[usize], divisor: f32| {
                let start = members.len() as i32;
                for cell in &per_cell {
                    for &e in edges {
                        members.push(pos(cell[e].0));
                        members.push(pos(cell[e].1));
                    }
                }
                groups.push(ImportanceGroup { slot: slot as i32, start, len: members.len() as i32 - start, divisor });
            };
            if per_edge {
                for &e in &edges {
                    push_group(e * Op::COUNT + op.index(), &[e], 1.0);
                }
            } else {
                push_group(op.index(), &edges, count as f32);
            }
        }
        let imp = self.importance.as_mut().expect("importance sampler");
        be.path_importance_update(&norms.sq_norms, &norms.clip_coef, &members, &groups, imp);
    }

    /// Ends epoch `epoch` (counted from 0) of `epochs`: for PA&DA,
    /// p = tau * G / sum(G) + (1 - tau) * uniform with tau = epoch / epochs, per
    /// distribution (uniform where G sums to 0).
    pub fn end_epoch(&mut self, be: &B, epoch: usize, epochs: usize) {
        let Some(imp) = &self.importance else { return };
        let g: Vec<f64> = be.download(imp).into_iter().map(|v| v.as_f64()).collect();
        let tau = epoch as f64 / epochs as f64;
        for (p, gs) in self.prob.chunks_mut(Op::COUNT).zip(g.chunks(Op::COUNT)) {
            let total: f64 = gs.iter().sum();
            for (pk, gk) in p.iter_mut().zip(gs) {
                let imp = if total > 0.0 { gk / total } else { 1.0 / Op::COUNT as f64 };
                *pk = tau * imp + (1.0 - tau) / Op::COUNT as f64;
            }
        }
    }
}

/// An index drawn from the distribution `p` (summing to ~1).
pub(crate) fn draw(p: &[f64], rng: &mut impl Rng) -> usize {
    let total: f64 = p.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (i, &pi) in p.iter().enumerate() {
        if u < pi {
            return i;
        }
        u -= pi;
    }
    p.iter().rposition(|&v| v > 0.0).unwrap_or(p.len() - 1)
}
