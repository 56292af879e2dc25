//! The CPU backend: host vectors and the reference ops of [`crate::ops`],
//! parallel over rayon's pool.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Mutex;

use super::{Backend, SgdSlot};
use crate::element::Element;
use crate::geometry::{ActShape, ConvGeom, LinearGeom, PoolGeom};
use rayon::prelude::*;

use crate::ops::{self, NormGroup, SgdStep};

/// The CPU engine in element type `T` (`f32` to train, `f64` for gradient checks).
pub struct CpuBackend<T: Element> {
    pool: Mutex<HashMap<usize, Vec<Vec<T>>>>,
    /// Fill fresh buffers with NaN so that an op that fails to write part of its
    /// output, or reads memory it never initialised, shows up in tests.
    poison: bool,
    _t: PhantomData<T>,
}

impl<T: Element> Default for CpuBackend<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Element> CpuBackend<T> {
    pub fn new() -> Self {
        Self { pool: Mutex::new(HashMap::new()), poison: false, _t: PhantomData }
    }
    /// A backend whose `alloc` fills every buffer with NaN (for tests).
    pub fn poisoned() -> Self {
        Self { poison: true, ..Self::new() }
    }
    /// Bytes currently parked in the pool.
    pub fn pooled_bytes(&self) -> usize {
        let pool = self.pool.lock().unwrap();
        pool.iter().map(|(class, v)| class * v.len() * std::mem::size_of::<T>()).sum()
    }
}

/// Pool buffers come in size classes an eighth of a power of two apart, so that
/// nearby sizes (a last, smaller batch; another batch size) share buffers while
/// a buffer wastes at most 12.5% of its capacity.
fn size_class(len: usize) -> usize {
    if len <= 64 {
        return 64;
    }
    let step = 1usize << (usize::BITS - 1 - len.leading_zeros()).saturating_sub(3);
    len.div_ceil(step) * step
}

impl<T: Element> Backend for CpuBackend<T> {
    type T = T;
    type Buf = Vec<T>;
    type IBuf = Vec<i32>;

    fn name(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }

    fn alloc(&self, len: usize) -> Vec<T> {
        let class = size_class(len);
        let reused = self.pool.lock().unwrap().get_mut(&class).and_then(|v| v.pop());
        let fillv = if self.poison { T::nan() } else { T::zero() };
        match reused {
            Some(mut b) => {
                b.truncate(len);
                b.resize(len, fillv);
                if self.poison {
                    b.fill(T::nan());
                }
                b
            }
            None => {
                let mut b = Vec::with_capacity(class);
                b.resize(len, fillv);
                b
            }
        }
    }
    fn release(&self, buf: Vec<T>) {
        let class = size_class(buf.len());
        debug_assert!(buf.capacity() >= class);
        self.pool.lock().unwrap().entry(class).or_default().push(buf);
    }
    fn len(&self, buf: &Vec<T>) -> usize {
        buf.len()
    }
    fn upload_into(&self, host: &[T], dst: &mut Vec<T>) {
        assert_eq!(host.len(), dst.len(), "upload: size mismatch");
        dst.copy_from_slice(host);
    }
    fn download(&self, buf: &Vec<T>) -> Vec<T> {
        buf.clone()
    }
    fn upload_i32(&self, host: &[i32]) -> Vec<i32> {
        host.to_vec()
    }
    fn download_i32(&self, buf: &Vec<i32>) -> Vec<i32> {
        buf.clone()
    }
    fn alloc_i32(&self, len: usize) -> Vec<i32> {
        vec![if self.poison { i32::MIN } else { 0 }; len]
    }
    fn release_i32(&self, _buf: Vec<i32>) {}

    fn fill(&self, dst: &mut Vec<T>, v: T) {
        ops::fill(dst, v)
    }
    fn copy(&self, dst: &mut Vec<T>, src: &Vec<T>) {
        ops::copy(dst, src)
    }
    fn copy_at(&self, dst: &mut Vec<T>, offset: usize, src: &Vec<T>) {
        ops::copy_at(dst, offset, src)
    }
    fn add_assign(&self, dst: &mut Vec<T>, src: &Vec<T>) {
        ops::add_assign(dst, src)
    }
    fn axpy(&self, dst: &mut Vec<T>, a: f64, src: &Vec<T>) {
        ops::axpy(dst, T::from_f64(a), src)
    }
    fn scale(&self, dst: &mut Vec<T>, a: f64) {
        ops::scale(dst, T::from_f64(a))
    }
    fn elementwise_sqrt(&self, dst: &mut Vec<T>) {
        ops::elementwise_sqrt(dst)
    }
    fn relu_forward(&self, x: &Vec<T>, y: &mut Vec<T>) {
        ops::relu_forward(x, y)
    }
    fn relu_backward(&self, x: &Vec<T>, dy: &Vec<T>, dx: &mut Vec<T>) {
        ops::relu_backward(x, dy, dx)
    }

    fn conv2d_forward(&self, g: &ConvGeom, x: &Vec<T>, relu_x: bool, w: &Vec<T>, bias: Option<&Vec<T>>, y: &mut Vec<T>) {
        ops::conv2d_forward(g, x, relu_x, w, bias.map(|b| b.as_slice()), y)
    }
    fn conv2d_backward_data(&self, g: &ConvGeom, dy: &Vec<T>, w: &Vec<T>, relu_mask: Option<&Vec<T>>, dx: &mut Vec<T>, accumulate: bool) {
        ops::conv2d_backward_data(g, dy, w, relu_mask.map(|m| m.as_slice()), dx, accumulate)
    }
    fn conv2d_backward_weight(&self, g: &ConvGeom, x: &Vec<T>, relu_x: bool, dy: &Vec<T>, dw: &mut Vec<T>, db: Option<&mut Vec<T>>) {
        ops::conv2d_backward_weight(g, x, relu_x, dy, dw, db.map(|b| b.as_mut_slice()))
    }

    fn batchnorm_forward(&self, s: &ActShape, x: &Vec<T>, y: &mut Vec<T>, accumulate: bool, stats: &mut Vec<T>) {
        ops::batchnorm_forward(s, x, y, accumulate, stats)
    }
    fn batchnorm_backward(&self, s: &ActShape, x: &Vec<T>, stats: &Vec<T>, dy: &Vec<T>, dx: &mut Vec<T>) {
        ops::batchnorm_backward(s, x, stats, dy, dx)
    }
    fn batchnorm_backward_frozen(&self, s: &ActShape, stats: &Vec<T>, dy: &Vec<T>, dx: &mut Vec<T>) {
        ops::batchnorm_backward_frozen(s, stats, dy, dx)
    }
    fn conv2d_per_sample_sq_norms(&self, g: &ConvGeom, x: &Vec<T>, relu_x: bool, dy: &Vec<T>, bias: bool, out: &mut Vec<T>) {
        ops::conv2d_per_sample_sq_norms(g, x, relu_x, dy, bias, out)
    }
    fn linear_per_sample_sq_norms(&self, g: &LinearGeom, x: &Vec<T>, dy: &Vec<T>, out: &mut Vec<T>) {
        ops::linear_per_sample_sq_norms(g, x, dy, out)
    }

    fn avgpool3x3_forward(&self, g: &PoolGeom, x: &Vec<T>, y: &mut Vec<T>, accumulate: bool) {
        ops::avgpool3x3_forward(g, x, y, accumulate)
    }
    fn avgpool3x3_backward(&self, g: &PoolGeom, dy: &Vec<T>, dx: &mut Vec<T>, accumulate: bool) {
        ops::avgpool3x3_backward(g, dy, dx, accumulate)
    }
    fn avgpool2x2_forward(&self, g: &PoolGeom, x: &Vec<T>, y: &mut Vec<T>) {
        ops::avgpool2x2_forward(g, x, y)
    }
    fn avgpool2x2_backward(&self, g: &PoolGeom, dy: &Vec<T>, dx: &mut Vec<T>, accumulate: bool) {
        ops::avgpool2x2_backward(g, dy, dx, accumulate)
    }
    fn global_avgpool_forward(&self, s: &ActShape, x: &Vec<T>, relu_x: bool, y: &mut Vec<T>) {
        ops::global_avgpool_forward(s, x, relu_x, y)
    }
    fn global_avgpool_backward(&self, s: &ActShape, dy: &Vec<T>, relu_mask: Option<&Vec<T>>, dx: &mut Vec<T>) {
        ops::global_avgpool_backward(s, dy, relu_mask.map(|m| m.as_slice()), dx)
    }

    fn linear_forward(&self, g: &LinearGeom, x: &Vec<T>, w: &Vec<T>, b: &Vec<T>, y: &mut Vec<T>) {
        ops::linear_forward(g, x, w, b, y)
    }
    fn linear_backward(
        &self,
        g: &LinearGeom,
        x: &Vec<T>,
        w: &Vec<T>,
        dy: &Vec<T>,
        dx: Option<&mut Vec<T>>,
        dw: &mut Vec<T>,
        db: &mut Vec<T>,
    ) {
        ops::linear_backward(g, x, w, dy, dx.map(|d| d.as_mut_slice()), dw, db)
    }
    fn softmax_cross_entropy(
        &self,
        n: usize,
        classes: usize,
        logits: &Vec<T>,
        labels: &Vec<i32>,
        weights: Option<&Vec<T>>,
        loss: &mut Vec<T>,
        dlogits: &mut Vec<T>,
        proxy_norm: &mut Vec<T>,
    ) {
        ops::softmax_cross_entropy(n, classes, logits, labels, weights.map(|w| w.as_slice()), loss, dlogits, proxy_norm)
    }

    fn sq_norms(&self, tensors: &[&Vec<T>], out: &mut Vec<T>) {
        assert_eq!(tensors.len(), out.len(), "sq_norms: one output per tensor");
        // parallel over tensors, each summed in its own fixed order
        out.par_iter_mut().zip(tensors.par_iter()).for_each(|(o, t)| *o = T::from_f64(ops::sq_norm(t)));
    }
    fn clip_coefficient(&self, sq_norms: &Vec<T>, max_norm: f64, out: &mut Vec<T>) {
        let total = sq_norms.iter().map(|v| v.as_f64()).sum::<f64>().sqrt();
        out[0] = T::from_f64(ops::clip_coefficient(total, max_norm));
    }
    fn nonfinite_guard(&self, sq_norms: &Vec<T>, step: i64, guard: &mut Vec<T>, clip_coef: &mut Vec<T>) {
        ops::nonfinite_guard(sq_norms, step, guard, clip_coef)
    }
    fn sgd_step(&self, slots: &mut [SgdSlot<'_, Self>], h: &SgdStep, grad_scale: &Vec<T>) {
        slots.par_iter_mut().for_each(|s| ops::sgd_step(s.value, s.grad, s.momentum, h, grad_scale[0]));
    }

    fn clipped_group_norms(&self, sq_norms: &Vec<T>, clip_coef: &Vec<T>, members: &[i32], groups: &[NormGroup], out: &mut Vec<T>) {
        ops::clipped_group_norms(sq_norms, clip_coef[0], members, groups, out)
    }
    fn batch_metrics(&self, n: usize, classes: usize, logits: &Vec<T>, labels: &Vec<i32>, loss: &Vec<T>, sums: &mut Vec<T>) {
        ops::batch_metrics(n, classes, logits, labels, loss, sums)
    }
}
