//! Data samplers: a permutation per epoch, or PA&DA's data importance.
//!
//! The device logs each step's per-sample scores, in the order the epoch
//! draws its samples (one copy per step, no host synchronisation). At the
//! epoch's end the device folds the log into one score per sample, mixes the
//! distribution q and draws the next epoch (`crate::ops::sampling`, the same
//! indices on every backend); the log never leaves the device. The host then
//! receives the next epoch's order, which its loader thread reads, and q (for
//! the checkpoint, the loss weights and the statistics).

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::element::Element;
use crate::ops::sampling::Resampling;
use crate::rng::{derive_seed, stream, Purpose};

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
    /// How importance epochs are drawn from q.
    pub resampling: Resampling,
    n: usize,
    /// The current epoch's order of training-set indices.
    order: Vec<u32>,
    /// The same order on the device (importance only): the fold reads it.
    order_on_device: Option<B::IBuf>,
    /// Device log of the current epoch's per-sample scores, position k for
    /// `order[k]` (importance only).
    log: Option<B::Buf>,
    /// Positions of the log written so far.
    logged: usize,
    /// The order of the next epoch, when it was resampled: on the host (for
    /// the loader and the checkpoint) and on the device.
    next: Option<(Vec<u32>, Option<B::IBuf>)>,
    /// The distribution the current epoch is drawn from (`None` = uniform);
    /// each value in the backend's element type, as the scores are.
    q: Option<Vec<f64>>,
    /// The per-sample scores of the last finished epoch (0 = not drawn), on the device.
    scores: Option<B::Buf>,
    /// Recorded epoch orders that replace the sampler's own draws (replay).
    replay: Option<Vec<Vec<u32>>>,
}

impl<B: Backend> DataSampler<B> {
    pub fn new(kind: DataSamplerKind, n: usize) -> Self {
        Self {
            kind,
            resampling: Resampling::Multinomial,
            n,
            order: Vec::new(),
            order_on_device: None,
            log: None,
            logged: 0,
            next: None,
            q: None,
            scores: None,
            replay: None,
        }
    }

    /// Replays recorded epoch orders instead of drawing (the importance
    /// bookkeeping still runs): `orders[e]` is epoch e's order.
    pub fn replay(&mut self, orders: Vec<Vec<u32>>) -> anyhow::Result<()> {
        if let Some((e, i)) = orders.iter().enumerate().find_map(|(e, o)| o.iter().find(|&&i| i as usize >= self.n).map(|i| (e, i))) {
            anyhow::bail!("replayed order of epoch {e} has index {i}, but the training set has {} samples", self.n);
        }
        self.replay = Some(orders);
        Ok(())
    }

    /// Starts epoch `epoch` and returns its order: a recorded one when
    /// replaying, the resampled indices if the previous epoch left some, else a
    /// permutation.
    pub fn begin_epoch(&mut self, be: &B, seed: u64, epoch: usize) -> anyhow::Result<Vec<u32>> {
        let drawn = self.next.take();
        let (order, on_device) = match &self.replay {
            Some(orders) => {
                let o =
                    orders.get(epoch).cloned().ok_or_else(|| anyhow::anyhow!("the replayed trace has no order for epoch {}", epoch + 1))?;
                (o, None)
            }
            None => drawn.unwrap_or_else(|| {
                let mut order: Vec<u32> = (0..self.n as u32).collect();
                order.shuffle(&mut stream(seed, Purpose::DataOrder, epoch as u64, 0));
                (order, None)
            }),
        };
        self.order = order;
        if self.kind == DataSamplerKind::Importance {
            let mut log = be.alloc(self.order.len().max(1));
            be.fill(&mut log, B::T::from_f64(f64::NAN));
            self.log = Some(log);
            self.logged = 0;
            self.order_on_device =
                Some(on_device.unwrap_or_else(|| be.upload_i32(&self.order.iter().map(|&i| i as i32).collect::<Vec<_>>())));
        }
        Ok(self.order.clone())
    }

    /// Importance weights `1 / (N q_i)` of the batch `indices` (the unbiased,
    /// importance-weighted loss); all 1 while the epoch is a permutation.
    pub fn loss_weights(&self, indices: &[i32]) -> Vec<f64> {
        match &self.q {
            Some(q) => indices.iter().map(|&i| 1.0 / (self.n as f64 * q[i as usize])).collect(),
            None => vec![1.0; indices.len()],
        }
    }

    /// Logs the next batch's per-sample scores (on the device).
    pub fn observe(&mut self, be: &B, scores: &B::Buf) {
        if let Some(log) = &mut self.log {
            be.copy_at(log, self.logged, scores);
            self.logged += be.len(scores);
        }
    }

    /// Ends epoch `epoch` of `epochs`; for PA&DA, folds the epoch's scores,
    /// computes q and draws the next epoch's indices, all on the device, then
    /// fetches the new order and q. Returns the epoch's stats.
    pub fn end_epoch(&mut self, be: &B, seed: u64, epoch: usize, epochs: usize) -> DataStats {
        let mut seen = vec![false; self.n];
        self.order.iter().for_each(|&i| seen[i as usize] = true);
        let unique_fraction = seen.iter().filter(|&&s| s).count() as f64 / self.n as f64;
        let ess_fraction = match &self.q {
            Some(q) => 1.0 / q.iter().map(|&v| v * v).sum::<f64>() / self.n as f64,
            None => 1.0,
        };
        if let (Some(log), Some(order)) = (self.log.take(), self.order_on_device.take()) {
            let mut scores = be.alloc(self.n);
            be.fold_scores(self.n, &order, &log, &mut scores);
            let mut q = be.alloc(self.n);
            be.importance_distribution(&scores, epoch as f64 / epochs as f64, &mut q);
            let mut next = be.alloc_i32(self.n);
            let draw_seed = derive_seed(seed, Purpose::Resample, epoch as u64, 0);
            match self.resampling {
                Resampling::Multinomial => be.draw_with_replacement(&q, draw_seed, &mut next),
                Resampling::Systematic => be.draw_systematic(&q, draw_seed, &mut next),
            }
            let host: Vec<u32> = be.download_i32(&next).into_iter().map(|i| i as u32).collect();
            self.next = Some((host, Some(next)));
            self.q = Some(be.download(&q).into_iter().map(|v| v.as_f64()).collect());
            self.scores = Some(scores);
        }
        DataStats { ess_fraction, unique_fraction }
    }

    /// The per-sample scores of the last finished epoch (0 where not drawn;
    /// empty before one): a download, for tests and diagnostics.
    pub fn scores(&self, be: &B) -> Vec<f64> {
        self.scores.as_ref().map(|s| be.download(s).into_iter().map(|v| v.as_f64()).collect()).unwrap_or_default()
    }

    /// A batch of `size` indices drawn as the next epoch will draw them: from
    /// the resampling distribution q (with replacement) once there is one,
    /// else uniformly without replacement.
    pub fn batch_with(&self, rng: &mut ChaCha8Rng, size: usize) -> Vec<u32> {
        use rand::Rng;
        match &self.q {
            Some(q) => {
                let total: f64 = q.iter().sum();
                (0..size)
                    .map(|_| {
                        let mut u = rng.random::<f64>() * total;
                        for (i, &p) in q.iter().enumerate() {
                            u -= p;
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
    pub fn state(&self) -> (Option<&[u32]>, Option<&[f64]>) {
        (self.next.as_ref().map(|(o, _)| &o[..]), self.q.as_deref())
    }
    pub fn restore(&mut self, next: Option<Vec<u32>>, q: Option<Vec<f64>>) -> anyhow::Result<()> {
        for (what, len) in [("order", next.as_ref().map(|v| v.len())), ("distribution", q.as_ref().map(|v| v.len()))] {
            if let Some(l) = len {
                anyhow::ensure!(l == self.n, "checkpoint data-sampler {what} has {l} entries but the training set has {}", self.n);
            }
        }
        if let Some(o) = &next {
            anyhow::ensure!(o.iter().all(|&i| (i as usize) < self.n), "checkpoint data-sampler order has an index out of range");
        }
        self.next = next.map(|o| (o, None));
        self.q = q;
        Ok(())
    }
}
