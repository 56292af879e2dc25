//! Path samplers: uniform (SPOS), FairNAS, and PA&DA's path importance.
//!
//! For PA&DA the device only logs, after each step, the clipped gradient norm
//! of the op on each edge of the path (summed over cells; NaN for
//! parameter-free ops and skipped steps), with no host synchronisation. At the
//! epoch's end the log is downloaded once and the importance rule (which
//! entries a norm feeds, the running mean, the mixing with the uniform
//! distribution) runs here on the host.

use std::collections::VecDeque;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::arch::{Genotype, Op, NUM_EDGES};
use crate::backend::Backend;
use crate::element::Element;
use crate::ops::NormGroup;
use crate::optim::StepNorms;
use crate::rng::{stream, Purpose};
use crate::supernet::Supernet;

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
    /// Device log of the epoch (importance only): row t holds, for each edge,
    /// the clipped gradient norm of step t's op on it.
    log: Option<B::Buf>,
    /// The path each step of the epoch took (importance only).
    drawn: Vec<Genotype>,
    rng: Option<ChaCha8Rng>,
    /// Recorded paths that replace the sampler's own draws (replay, benchmarks).
    replay: Option<VecDeque<Vec<Genotype>>>,
}

impl<B: Backend> PathSampler<B> {
    pub fn new(kind: PathSamplerKind) -> Self {
        let entries = match kind {
            PathSamplerKind::Importance { per_edge: true } => NUM_EDGES * Op::COUNT,
            _ => Op::COUNT,
        };
        Self { kind, prob: vec![1.0 / Op::COUNT as f64; entries], log: None, drawn: Vec::new(), rng: None, replay: None }
    }

    /// Takes the paths of the coming steps from `paths` (one entry per step, in
    /// order) instead of drawing them; the importance bookkeeping still runs.
    pub fn replay(&mut self, paths: Vec<Vec<Genotype>>) {
        self.replay = Some(paths.into());
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

    fn learns(&self) -> bool {
        matches!(self.kind, PathSamplerKind::Importance { .. })
    }

    /// Starts an epoch of `steps` steps: a fresh random stream and, for PA&DA,
    /// an empty log (importance G = 0).
    pub fn begin_epoch(&mut self, be: &B, seed: u64, epoch: usize, steps: usize) {
        self.rng = Some(stream(seed, Purpose::Paths, epoch as u64, 0));
        self.drawn.clear();
        if self.learns() {
            let mut log = be.alloc((steps * NUM_EDGES).max(1));
            be.fill(&mut log, B::T::from_f64(f64::NAN));
            self.log = Some(log);
        }
    }

    /// The paths of the next step: one, or five for FairNAS.
    pub fn next_paths(&mut self) -> anyhow::Result<Vec<Genotype>> {
        let paths = match &mut self.replay {
            Some(recorded) => recorded.pop_front().ok_or_else(|| anyhow::anyhow!("the replayed paths ran out"))?,
            None => {
                let mut rng = self.rng.take().expect("begin_epoch first");
                let paths = self.paths_with(&mut rng);
                self.rng = Some(rng);
                paths
            }
        };
        if self.learns() {
            self.drawn.push(paths[0]);
        }
        Ok(paths)
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

    /// PA&DA: after the step that took the last drawn path, logs the clipped
    /// gradient norm of each conv edge, ||dW|| + ||db|| summed over cells (on
    /// the device; `norms` are the step's).
    pub fn observe(&mut self, be: &B, net: &Supernet<B>, norms: &StepNorms<B>) {
        let (Some(log), Some(g)) = (&mut self.log, self.drawn.last()) else { return };
        let step = self.drawn.len() - 1;
        let pos = |id: crate::supernet::ParamId| norms.tensors.binary_search(&id.0).expect("path tensors were updated") as i32;
        let mut members = Vec::new();
        let mut groups = Vec::new();
        for op in [Op::NorConv1x1, Op::NorConv3x3] {
            let per_cell = net.edge_conv_params(op);
            for e in (0..NUM_EDGES).filter(|&e| g.0[e] == op) {
                let start = members.len() as i32;
                for cell in &per_cell {
                    members.extend([pos(cell[e].0), pos(cell[e].1)]);
                }
                groups.push(NormGroup { slot: (step * NUM_EDGES + e) as i32, start, len: members.len() as i32 - start });
            }
        }
        be.clipped_group_norms(&norms.sq_norms, &norms.clip_coef, &members, &groups, log);
    }

    /// PA&DA's importance G so far this epoch (5 entries, or 30 per edge;
    /// none for the other samplers): downloads the log (a synchronisation; the
    /// training loop calls it once per epoch, through [`PathSampler::end_epoch`]).
    pub fn importance(&self, be: &B) -> Vec<f64> {
        if !self.learns() {
            return Vec::new();
        }
        let log: Vec<f64> = self.log.as_ref().map(|l| be.download(l).into_iter().map(|v| v.as_f64()).collect()).unwrap_or_default();
        let per_edge = matches!(self.kind, PathSamplerKind::Importance { per_edge: true });
        fold_importance(&self.drawn, &log, per_edge)
    }

    /// Ends epoch `epoch` (counted from 0) of `epochs`: for PA&DA,
    /// p = tau * G / sum(G) + (1 - tau) * uniform with tau = epoch / epochs, per
    /// distribution (uniform where G sums to 0).
    pub fn end_epoch(&mut self, be: &B, epoch: usize, epochs: usize) {
        if !self.learns() {
            return;
        }
        let g = self.importance(be);
        self.log = None;
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

/// PA&DA's path importance G from an epoch's steps: `paths[t]` and row t of
/// `log` (per edge, the clipped norm of that edge's op; NaN = no observation).
/// Shared distribution (official): for each conv op k on path t, S_k = the
/// mean of its edges' norms, and G_k = (G_k + S_k) / 2. Per edge: the same
/// per (edge, op). G starts at 0 every epoch.
///
/// The running mean is updated even when S_k is 0: the official code updates
/// `if grads_norm != 0`, but in its floating point a conv on the path never
/// has an exactly zero norm. One that reads an all-zero node (node 1 behind a
/// `none` edge, say) gets ~1e-17 from PyTorch's arithmetic and halves its
/// entry, where exact arithmetic gives 0; the replay test
/// (`tests/replay.rs`) checks the whole loop against the reference.
pub fn fold_importance(paths: &[Genotype], log: &[f64], per_edge: bool) -> Vec<f64> {
    let mut g = vec![0.0; if per_edge { NUM_EDGES * Op::COUNT } else { Op::COUNT }];
    for (path, row) in paths.iter().zip(log.chunks(NUM_EDGES)) {
        for op in [Op::NorConv1x1, Op::NorConv3x3] {
            let edges: Vec<usize> = (0..NUM_EDGES).filter(|&e| path.0[e] == op).collect();
            if per_edge {
                for &e in &edges {
                    let slot = &mut g[e * Op::COUNT + op.index()];
                    if row[e].is_finite() {
                        *slot = (*slot + row[e]) / 2.0;
                    }
                }
            } else if !edges.is_empty() {
                let s = edges.iter().map(|&e| row[e]).sum::<f64>() / edges.len() as f64;
                if s.is_finite() {
                    g[op.index()] = (g[op.index()] + s) / 2.0;
                }
            }
        }
    }
    g
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
