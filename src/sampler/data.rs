//! Data samplers: a permutation per epoch, or PA&DA's data importance.

use serde::{Deserialize, Serialize};

use rand_chacha::ChaCha8Rng;

use crate::backend::Backend;
use crate::element::Element;
use crate::rng::{derive_seed, stream, Purpose};
use num_traits::Zero;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataSamplerKind {
    /// A fresh permutation of the training set every epoch.
    Uniform,
    /// PA&DA: during an epoch, record each sample's gradient-norm score; at its
    /// end, q = tau * s / sum(s) + (1 - tau) / N, and the next epoch draws N
    /// indices with replacement from q. The first epoch is a permutation.
    Importance,
}

/// How concentrated an epoch's samples were.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataStats {
    /// Effective sample size of the distribution the epoch was drawn from,
    /// `1 / sum(q^2)`, as a fraction of N (1 for uniform).
    pub ess_fraction: f64,
    /// Distinct samples drawn in the epoch, as a fraction of N.
    pub unique_fraction: f64,
}

pub struct DataSampler<B: Backend> {
    pub kind: DataSamplerKind,
    n: usize,
    /// Per-sample scores of the current epoch (device).
    scores: Option<B::Buf>,
    /// The order of the next epoch, when it was resampled.
    next: Option<Vec<u32>>,
    /// The distribution the current epoch is drawn from (host; `None` = uniform).
    q: Option<Vec<f32>>,
}

impl<B: Backend> DataSampler<B> {
    pub fn new(be: &B, kind: DataSamplerKind, n: usize) -> Self {
        let scores = (kind == DataSamplerKind::Importance).then(|| be.alloc_zeroed(n));
        Self { kind, n, scores, next: None, q: None }
    }

    /// The order of epoch `epoch`: the resampled indices if the previous epoch
    /// left some, else a permutation.
    pub fn epoch_order(&mut self, seed: u64, epoch: usize) -> Vec<u32> {
        if let Some(order) = self.next.take() {
            return order;
        }
        use rand::seq::SliceRandom;
        let mut order: Vec<u32> = (0..self.n as u32).collect();
        order.shuffle(&mut stream(seed, Purpose::DataOrder, epoch as u64, 0));
        order
    }

    /// Importance weights `1 / (N q_i)` of the batch `indices` (the unbiased,
    /// importance-weighted loss); all 1 while the epoch is a permutation.
    pub fn loss_weights(&self, indices: &[i32]) -> Vec<f32> {
        match &self.q {
            Some(q) => indices.iter().map(|&i| 1.0 / (self.n as f32 * q[i as usize])).collect(),
            None => vec![1.0; indices.len()],
        }
    }

    /// Records the batch's per-sample scores (on the device).
    pub fn observe(&mut self, be: &B, indices: &B::IBuf, scores: &B::Buf) {
        if let Some(s) = &mut self.scores {
            be.sample_scores_update(s, indices, scores);
        }
    }

    /// Ends epoch `epoch` of `epochs`, whose order was `order`; for PA&DA,
    /// computes q and draws the next epoch's indices. Returns the epoch's stats.
    pub fn end_epoch(&mut self, be: &B, seed: u64, epoch: usize, epochs: usize, order: &[u32]) -> DataStats {
        let mut seen = vec![false; self.n];
        order.iter().for_each(|&i| seen[i as usize] = true);
        let unique_fraction = seen.iter().filter(|&&s| s).count() as f64 / self.n as f64;
        let ess_fraction = match &self.q {
            Some(q) => 1.0 / q.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / self.n as f64,
            None => 1.0,
        };
        if let Some(s) = &mut self.scores {
            let tau = epoch as f64 / epochs as f64;
            let mut q = be.alloc(self.n);
            be.importance_distribution(s, tau, &mut q);
            let mut idx = be.alloc_i32(self.n);
            be.sample_with_replacement(&q, derive_seed(seed, Purpose::Resample, epoch as u64, 0), &mut idx);
            self.next = Some(be.download_i32(&idx).into_iter().map(|i| i as u32).collect());
            self.q = Some(be.download(&q).into_iter().map(|v| v.as_f64() as f32).collect());
            be.release(q);
            be.release_i32(idx);
            be.fill(s, B::T::zero());
        }
        DataStats { ess_fraction, unique_fraction }
    }

    /// A batch of `size` indices drawn as the next epoch will draw them: from
    /// the resampling distribution q (with replacement) once there is one,
    /// else uniformly without replacement.
    pub fn batch_with(&self, rng: &mut ChaCha8Rng, size: usize) -> Vec<u32> {
        use rand::Rng;
        match &self.q {
            Some(q) => {
                let total: f64 = q.iter().map(|&v| v as f64).sum();
                (0..size)
                    .map(|_| {
                        let mut u = rng.random::<f64>() * total;
                        for (i, &p) in q.iter().enumerate() {
                            u -= p as f64;
                            if u < 0.0 {
                                return i as u32;
                            }
                        }
                        (q.len() - 1) as u32
                    })
                    .collect()
            }
            None => rand::seq::index::sample(rng, self.n, size.min(self.n)).into_iter().map(|i| i as u32).collect(),
        }
    }

    /// What a checkpoint needs to continue: the next epoch's order and the
    /// distribution it was drawn from.
    pub fn state(&self) -> (Option<&[u32]>, Option<&[f32]>) {
        (self.next.as_deref(), self.q.as_deref())
    }
    pub fn restore(&mut self, next: Option<Vec<u32>>, q: Option<Vec<f32>>) -> anyhow::Result<()> {
        for (what, len) in [("order", next.as_ref().map(|v| v.len())), ("distribution", q.as_ref().map(|v| v.len()))] {
            if let Some(l) = len {
                anyhow::ensure!(l == self.n, "checkpoint data-sampler {what} has {l} entries but the training set has {}", self.n);
            }
        }
        if let Some(o) = &next {
            anyhow::ensure!(o.iter().all(|&i| (i as usize) < self.n), "checkpoint data-sampler order has an index out of range");
        }
        self.next = next;
        self.q = q;
        Ok(())
    }
}
