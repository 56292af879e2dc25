//! Evaluating sub-networks with inherited weights.

use crate::arch::Arch;
use crate::backend::Backend;
use crate::data::loader::make_batch;
use crate::data::{Dataset, Normalization};
use crate::element::Element;
use crate::supernet::Supernet;

/// A split prepared once for repeated evaluation: its batches in fixed order,
/// uploaded to the device.
pub struct EvalSet<B: Backend> {
    batches: Vec<(usize, B::Buf, B::IBuf)>,
    pub images: usize,
}

impl<B: Backend> EvalSet<B> {
    /// `d` in stored order (which must not be sorted by class: BN uses the
    /// statistics of each batch) in batches of `batch_size`.
    pub fn new(be: &B, d: &Dataset, norm: &Normalization, batch_size: usize) -> Self {
        let n = d.len();
        let batches = (0..n.div_ceil(batch_size))
            .map(|k| {
                let idx: Vec<u32> = (k * batch_size..((k + 1) * batch_size).min(n)).map(|i| i as u32).collect();
                let b = make_batch(d, norm, &idx, None);
                (b.n, be.upload_f64(&b.x), be.upload_i32(&b.labels))
            })
            .collect();
        Self { batches, images: n }
    }
}

/// Top-1 accuracy (%) and mean cross-entropy of architecture `g` on `set`,
/// with batch statistics in every BN (as during training).
pub fn evaluate<B: Backend>(be: &B, net: &Supernet<B>, g: &Arch, set: &EvalSet<B>) -> (f64, f64) {
    let k = net.config.classes;
    let mut sums = be.alloc_zeroed(3);
    for (n, x, labels) in &set.batches {
        let mut xin = be.alloc(be.len(x));
        be.copy(&mut xin, x);
        let tape = net.forward(be, xin, *n, g, false);
        let (mut loss, mut dl, mut proxy) = (be.alloc(*n), be.alloc(n * k), be.alloc(*n));
        be.softmax_cross_entropy(*n, k, &tape.logits, labels, None, &mut loss, &mut dl, &mut proxy);
        be.batch_metrics(*n, k, &tape.logits, labels, &loss, &mut sums);
    }
    let s = be.download(&sums);
    let n = set.images as f64;
    (100.0 * s[1].as_f64() / n, s[0].as_f64() / n)
}
