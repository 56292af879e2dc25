//! Batches, prepared on a separate thread while the engine trains.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::{Augment, Dataset, Normalization};
use crate::rng::{stream, Purpose};

/// A batch in the engine's layout: `x` is CNHW, normalised (and augmented), in
/// f64 (the backend rounds it once to its element type on upload).
#[derive(Clone, Debug)]
pub struct Batch {
    pub n: usize,
    pub x: Vec<f64>,
    pub labels: Vec<i32>,
    /// Positions of the images in their split (the data sampler's indices).
    pub indices: Vec<i32>,
}

/// Builds the batch of images `idx`, augmenting image `k` with choices drawn
/// from `rng` when `augment` is given.
pub fn make_batch(d: &Dataset, norm: &Normalization, idx: &[u32], augment: Option<(Augment, &mut rand_chacha::ChaCha8Rng)>) -> Batch {
    let n = idx.len();
    let (c, h, w) = (d.shape.c, d.shape.h, d.shape.w);
    let hw = h * w;
    let mut x = vec![0f64; n * c * hw];
    let tables = norm.tables();
    let mut augment = augment;
    for (b, &i) in idx.iter().enumerate() {
        let img = d.image(i as usize);
        let choice = augment.as_mut().map(|(a, rng)| (*a, a.draw(*rng)));
        for ch in 0..c {
            let src = &img[ch * hw..(ch + 1) * hw];
            let dst = &mut x[(ch * n + b) * hw..(ch * n + b + 1) * hw];
            let table = &tables[ch];
            let pad = table[0]; // the normalised value of a zero pixel
            match choice {
                None => dst.iter_mut().zip(src).for_each(|(o, &p)| *o = table[p as usize]),
                Some((a, ch_choice)) => {
                    for r in 0..h {
                        for col in 0..w {
                            dst[r * w + col] = match a.source(h, w, ch_choice, r, col) {
                                Some((sr, sc)) => table[src[sr * w + sc] as usize],
                                None => pad,
                            };
                        }
                    }
                }
            }
        }
    }
    Batch { n, x, labels: idx.iter().map(|&i| d.labels[i as usize] as i32).collect(), indices: idx.iter().map(|&i| i as i32).collect() }
}

/// The training batches of one epoch, built ahead on a worker thread.
pub struct Loader {
    rx: Option<Receiver<Batch>>,
    handle: Option<JoinHandle<()>>,
    pub batches: usize,
}

impl Loader {
    /// Batches of `batch_size` images in `order` (the last may be smaller);
    /// batch `k` is augmented from the stream (seed, Augment, epoch, k).
    pub fn spawn(
        data: Arc<Dataset>,
        norm: Normalization,
        order: Vec<u32>,
        batch_size: usize,
        augment: Augment,
        seed: u64,
        epoch: usize,
    ) -> Self {
        let batches = order.len().div_ceil(batch_size);
        let (tx, rx) = sync_channel(3);
        let handle = std::thread::Builder::new()
            .name("pada-loader".into())
            .spawn(move || {
                for (k, idx) in order.chunks(batch_size).enumerate() {
                    let mut rng = stream(seed, Purpose::Augment, epoch as u64, k as u64);
                    let aug = (augment != Augment::NONE).then_some((augment, &mut rng));
                    if tx.send(make_batch(&data, &norm, idx, aug)).is_err() {
                        return; // the consumer stopped early
                    }
                }
            })
            .expect("spawn the loader thread");
        Loader { rx: Some(rx), handle: Some(handle), batches }
    }
}

impl Iterator for Loader {
    type Item = Batch;
    fn next(&mut self) -> Option<Batch> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        drop(self.rx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Evaluation batches: the split in its stored order, no augmentation.
pub fn eval_batches<'a>(d: &'a Dataset, norm: &'a Normalization, batch_size: usize) -> impl Iterator<Item = Batch> + 'a {
    let n = d.len();
    (0..n.div_ceil(batch_size)).map(move |k| {
        let idx: Vec<u32> = (k * batch_size..((k + 1) * batch_size).min(n)).map(|i| i as u32).collect();
        make_batch(d, norm, &idx, None)
    })
}
