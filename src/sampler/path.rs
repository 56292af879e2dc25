//! Path samplers: uniform (SPOS), FairNAS, and PA&DA's path importance, in
//! any search space: an architecture is one choice per slot (NAS-Bench-201:
//! an op per edge; NAS-Bench-Macro: a block per layer).
//!
//! For PA&DA the device only logs, after each step, the clipped gradient norm
//! of the choice at each slot of the path (its parameters' norms summed, over
//! every cell in NAS-Bench-201; NaN for parameter-free choices and skipped
//! steps), with no host synchronisation. At the epoch's end the log is
//! downloaded once and the importance rule (which entries a norm feeds, the
//! running mean, the mixing with the uniform distribution) runs here on the
//! host.

use std::collections::VecDeque;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::element::Element;
use crate::ops::NormGroup;
use crate::optim::StepNorms;
use crate::rng::{stream, Purpose};
use crate::space::{Arch, Space};
use crate::supernet::Supernet;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathSamplerKind {
    /// Every slot's choice uniformly at random (SPOS).
    Uniform,
    /// Every step, a fresh random permutation of the K choices of each slot
    /// gives K paths that together train every choice of every slot exactly
    /// once (NAS-Bench-201: 5 paths, NAS-Bench-Macro: 3). (The official
    /// baseline reuses the first step's permutations for the whole epoch, a
    /// quirk of its bookkeeping that pada does not copy.)
    Fair,
    /// PA&DA: choices drawn in proportion to their (clipped) gradient norms,
    /// mixed with the uniform distribution by tau = epoch / epochs. One K-way
    /// distribution shared by all slots (as the official code), or one per
    /// slot (`per_edge`).
    Importance { per_edge: bool },
    /// Always the same architecture: stand-alone training (`pada groundtruth`).
    Fixed(Arch),
}

/// Samples the paths of each step and, for PA&DA, learns the choice distribution.
pub struct PathSampler<B: Backend> {
    pub kind: PathSamplerKind,
    space: Space,
    /// The choice distribution of the current epoch: K entries, or slots x K per slot.
    prob: Vec<f64>,
    /// Device log of the epoch (importance only): row t holds, for each slot,
    /// the clipped gradient norm of step t's choice there.
    log: Option<B::Buf>,
    /// The path each step of the epoch took (importance only).
    drawn: Vec<Arch>,
    rng: Option<ChaCha8Rng>,
    /// Recorded paths that replace the sampler's own draws (replay, benchmarks).
    replay: Option<VecDeque<Vec<Arch>>>,
    /// Which (slot, choice) has parameters: `slot * K + choice` (PA&DA's G
    /// learns only from those; a parameter-free choice keeps G = 0).
    has_params: Vec<bool>,
}

impl<B: Backend> PathSampler<B> {
    /// A sampler of `kind` for the supernet `net`'s space.
    pub fn new(kind: PathSamplerKind, net: &Supernet<B>) -> Self {
        let space = net.config.space;
        let (slots, k) = (space.slots(), space.choices());
        let entries = match kind {
            PathSamplerKind::Importance { per_edge: true } => slots * k,
            _ => k,
        };
        let has_params = (0..slots * k).map(|i| !net.choice_params(i / k, i % k).is_empty()).collect();
        Self { kind, space, prob: vec![1.0 / k as f64; entries], log: None, drawn: Vec::new(), rng: None, replay: None, has_params }
    }

    /// Takes the paths of the coming steps from `paths` (one entry per step, in
    /// order) instead of drawing them; the importance bookkeeping still runs.
    pub fn replay(&mut self, paths: Vec<Vec<Arch>>) {
        self.replay = Some(paths.into());
    }

    /// The current choice distribution: K numbers, or slots x K (slot-major) per slot.
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
            let mut log = be.alloc((steps * self.space.slots()).max(1));
            be.fill(&mut log, B::T::from_f64(f64::NAN));
            self.log = Some(log);
        }
    }

    /// The paths of the next step: one, or K for FairNAS.
    pub fn next_paths(&mut self) -> anyhow::Result<Vec<Arch>> {
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
    pub fn paths_with(&self, rng: &mut ChaCha8Rng) -> Vec<Arch> {
        let (space, k) = (self.space, self.space.choices());
        match self.kind {
            PathSamplerKind::Uniform => vec![space.arch_from_fn(|_| rng.random_range(0..k))],
            PathSamplerKind::Fixed(a) => vec![a],
            PathSamplerKind::Fair => {
                let perms: Vec<Vec<usize>> = (0..space.slots())
                    .map(|_| {
                        let mut p: Vec<usize> = (0..k).collect();
                        p.shuffle(rng);
                        p
                    })
                    .collect();
                (0..k).map(|j| space.arch_from_fn(|s| perms[s][j])).collect()
            }
            PathSamplerKind::Importance { per_edge } => {
                let prob = &self.prob;
                vec![space.arch_from_fn(|s| {
                    let p = if per_edge { &prob[s * k..(s + 1) * k] } else { &prob[..] };
                    draw(p, rng)
                })]
            }
        }
    }

    /// PA&DA: after the step that took the last drawn path, logs the clipped
    /// gradient norm of each slot's choice, the sum of its parameters'
    /// (NAS-Bench-201: ||dW|| + ||db|| summed over cells), on the device
    /// (`norms` are the step's).
    pub fn observe(&mut self, be: &B, net: &Supernet<B>, norms: &StepNorms<B>) {
        let (Some(log), Some(a)) = (&mut self.log, self.drawn.last()) else { return };
        let (slots, k) = (self.space.slots(), self.space.choices());
        let step = self.drawn.len() - 1;
        let pos = |id: crate::supernet::ParamId| norms.tensors.binary_search(&id.0).expect("path tensors were updated") as i32;
        let mut members = Vec::new();
        let mut groups = Vec::new();
        for choice in 0..k {
            for s in (0..slots).filter(|&s| a.choice(s) == choice && self.has_params[s * k + choice]) {
                let start = members.len() as i32;
                members.extend(net.choice_params(s, choice).into_iter().map(pos));
                groups.push(NormGroup { slot: (step * slots + s) as i32, start, len: members.len() as i32 - start });
            }
        }
        be.clipped_group_norms(&norms.sq_norms, &norms.clip_coef, &members, &groups, log);
    }

    /// PA&DA's importance G so far this epoch (K entries, or slots x K per slot;
    /// none for the other samplers): downloads the log (a synchronisation; the
    /// training loop calls it once per epoch, through [`PathSampler::end_epoch`]).
    pub fn importance(&self, be: &B) -> Vec<f64> {
        if !self.learns() {
            return Vec::new();
        }
        let log: Vec<f64> = self.log.as_ref().map(|l| be.download(l).into_iter().map(|v| v.as_f64()).collect()).unwrap_or_default();
        let per_edge = matches!(self.kind, PathSamplerKind::Importance { per_edge: true });
        fold_importance(self.space, &self.drawn, &log, per_edge, &self.has_params)
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
        let k = self.space.choices();
        for (p, gs) in self.prob.chunks_mut(k).zip(g.chunks(k)) {
            let total: f64 = gs.iter().sum();
            for (pk, gk) in p.iter_mut().zip(gs) {
                let imp = if total > 0.0 { gk / total } else { 1.0 / k as f64 };
                *pk = tau * imp + (1.0 - tau) / k as f64;
            }
        }
    }
}

/// PA&DA's path importance G from an epoch's steps in `space`: `paths[t]` and row t of
/// `log` (per slot, the clipped norm of that slot's choice; NaN = no
/// observation); `has_params[slot * K + choice]` says which choices have
/// parameters. Shared distribution (official): for each choice k with
/// parameters on path t, S_k = the mean of its slots' norms, and G_k = (G_k +
/// S_k) / 2. Per slot: the same per (slot, choice). G starts at 0 every epoch;
/// a parameter-free choice (NAS-Bench-201's none, skip and pool; an identity
/// of stride 1 in NAS-Bench-Macro) keeps G = 0, so its probability decays to
/// (1 - tau) / K.
///
/// The running mean is updated even when S_k is 0: the official code updates
/// `if grads_norm != 0`, but in its floating point a conv on the path never
/// has an exactly zero norm. One that reads an all-zero node (node 1 behind a
/// `none` edge, say) gets ~1e-17 from PyTorch's arithmetic and halves its
/// entry, where exact arithmetic gives 0; the replay test
/// (`tests/replay.rs`) checks the whole loop against the reference.
pub fn fold_importance(space: Space, paths: &[Arch], log: &[f64], per_edge: bool, has_params: &[bool]) -> Vec<f64> {
    let (slots, k) = (space.slots(), space.choices());
    let mut g = vec![0.0; if per_edge { slots * k } else { k }];
    for (path, row) in paths.iter().zip(log.chunks(slots)) {
        for choice in 0..k {
            let at: Vec<usize> = (0..slots).filter(|&s| path.choice(s) == choice && has_params[s * k + choice]).collect();
            if per_edge {
                for &s in &at {
                    let slot = &mut g[s * k + choice];
                    if row[s].is_finite() {
                        *slot = (*slot + row[s]) / 2.0;
                    }
                }
            } else if !at.is_empty() {
                let mean = at.iter().map(|&s| row[s]).sum::<f64>() / at.len() as f64;
                if mean.is_finite() {
                    g[choice] = (g[choice] + mean) / 2.0;
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
