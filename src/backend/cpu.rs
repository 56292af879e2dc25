//! The CPU backend: host vectors and the reference ops of [`crate::ops`],
//! parallel over rayon's pool.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use super::{Backend, SgdSlot};
use crate::element::Element;
use crate::geometry::{ActShape, ConvGeom, LinearGeom, PoolGeom};
use rayon::prelude::*;

use crate::ops::{self, NormGroup, SgdStep};

/// Free vectors by size class (elements), returned by dropped buffers.
type Pool<T> = Arc<Mutex<HashMap<usize, Vec<Vec<T>>>>>;

/// A CPU buffer: a vector that returns to its backend's pool when dropped, so
/// that the next step's buffers of the same size reuse its memory. Buffers
/// made from a `Vec` (tests) belong to no pool.
pub struct CpuBuf<T: Element> {
    data: Vec<T>,
    pool: Option<Pool<T>>,
}

impl<T: Element> Deref for CpuBuf<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.data
    }
}

impl<T: Element> DerefMut for CpuBuf<T> {
    fn deref_mut(&mut self) -> &mut Vec<T> {
        &mut self.data
    }
}

impl<T: Element> From<Vec<T>> for CpuBuf<T> {
    fn from(data: Vec<T>) -> Self {
        Self { data, pool: None }
    }
}

/// A copy that belongs to no pool.
impl<T: Element> Clone for CpuBuf<T> {
    fn clone(&self) -> Self {
        self.data.clone().into()
    }
}

impl<T: Element> std::fmt::Debug for CpuBuf<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.data.fmt(f)
    }
}

impl<T: Element> Drop for CpuBuf<T> {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            let class = size_class(self.data.len());
            debug_assert!(self.data.capacity() >= class);
            pool.lock().unwrap().entry(class).or_default().push(std::mem::take(&mut self.data));
        }
    }
}

/// The CPU engine in element type `T` (`f32` to train, `f64` for gradient checks).
pub struct CpuBackend<T: Element> {
    pool: Pool<T>,
    /// Fill fresh buffers with NaN so that an op that fails to write part of its
    /// output, or reads memory it never initialised, shows up in tests.
    poison: bool,
}

impl<T: Element> Default for CpuBackend<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Element> CpuBackend<T> {
    pub fn new() -> Self {
        Self { pool: Arc::new(Mutex::new(HashMap::new())), poison: false }
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
    type Buf = CpuBuf<T>;
    type IBuf = Vec<i32>;

    fn name(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }

    fn alloc(&self, len: usize) -> CpuBuf<T> {
        let class = size_class(len);
        let reused = self.pool.lock().unwrap().get_mut(&class).and_then(|v| v.pop());
        let fillv = if self.poison { T::nan() } else { T::zero() };
        let data = match reused {
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
        };
        CpuBuf { data, pool: Some(self.pool.clone()) }
    }
    fn len(&self, buf: &CpuBuf<T>) -> usize {
        buf.len()
    }
    fn upload_into(&self, host: &[T], dst: &mut CpuBuf<T>) {
        assert_eq!(host.len(), dst.len(), "upload: size mismatch");
        dst.copy_from_slice(host);
    }
    fn download(&self, buf: &CpuBuf<T>) -> Vec<T> {
        buf.data.clone()
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

    fn fill(&self, dst: &mut CpuBuf<T>, v: T) {
        ops::fill(dst, v)
    }
    fn copy(&self, dst: &mut CpuBuf<T>, src: &CpuBuf<T>) {
        ops::copy(dst, src)
    }
    fn copy_at(&self, dst: &mut CpuBuf<T>, offset: usize, src: &CpuBuf<T>) {
        ops::copy_at(dst, offset, src)
    }
    fn add_assign(&self, dst: &mut CpuBuf<T>, src: &CpuBuf<T>) {
        ops::add_assign(dst, src)
    }
    fn axpy(&self, dst: &mut CpuBuf<T>, a: f64, src: &CpuBuf<T>) {
        ops::axpy(dst, T::from_f64(a), src)
    }
    fn scale(&self, dst: &mut CpuBuf<T>, a: f64) {
        ops::scale(dst, T::from_f64(a))
    }
    fn elementwise_sqrt(&self, dst: &mut CpuBuf<T>) {
        ops::elementwise_sqrt(dst)
    }
    fn relu_forward(&self, x: &CpuBuf<T>, y: &mut CpuBuf<T>) {
        ops::relu_forward(x, y)
    }
    fn relu_backward(&self, x: &CpuBuf<T>, dy: &CpuBuf<T>, dx: &mut CpuBuf<T>) {
        ops::relu_backward(x, dy, dx)
    }

    fn conv2d_forward(&self, g: &ConvGeom, x: &CpuBuf<T>, relu_x: bool, w: &CpuBuf<T>, bias: Option<&CpuBuf<T>>, y: &mut CpuBuf<T>) {
        ops::conv2d_forward(g, x, relu_x, w, bias.map(|b| b.as_slice()), y)
    }
    fn conv2d_backward_data(
        &self,
        g: &ConvGeom,
        dy: &CpuBuf<T>,
        w: &CpuBuf<T>,
        relu_mask: Option<&CpuBuf<T>>,
        dx: &mut CpuBuf<T>,
        accumulate: bool,
    ) {
        ops::conv2d_backward_data(g, dy, w, relu_mask.map(|m| m.as_slice()), dx, accumulate)
    }
    fn conv2d_backward_weight(
        &self,
        g: &ConvGeom,
        x: &CpuBuf<T>,
        relu_x: bool,
        dy: &CpuBuf<T>,
        dw: &mut CpuBuf<T>,
        db: Option<&mut CpuBuf<T>>,
    ) {
        ops::conv2d_backward_weight(g, x, relu_x, dy, dw, db.map(|b| b.as_mut_slice()))
    }

    fn batchnorm_forward(&self, s: &ActShape, x: &CpuBuf<T>, y: &mut CpuBuf<T>, accumulate: bool, stats: &mut CpuBuf<T>) {
        ops::batchnorm_forward(s, x, y, accumulate, stats)
    }
    fn batchnorm_backward(&self, s: &ActShape, x: &CpuBuf<T>, stats: &CpuBuf<T>, dy: &CpuBuf<T>, dx: &mut CpuBuf<T>) {
        ops::batchnorm_backward(s, x, stats, dy, dx)
    }
    fn batchnorm_backward_frozen(&self, s: &ActShape, stats: &CpuBuf<T>, dy: &CpuBuf<T>, dx: &mut CpuBuf<T>) {
        ops::batchnorm_backward_frozen(s, stats, dy, dx)
    }
    fn conv2d_per_sample_sq_norms(&self, g: &ConvGeom, x: &CpuBuf<T>, relu_x: bool, dy: &CpuBuf<T>, bias: bool, out: &mut CpuBuf<T>) {
        ops::conv2d_per_sample_sq_norms(g, x, relu_x, dy, bias, out)
    }
    fn linear_per_sample_sq_norms(&self, g: &LinearGeom, x: &CpuBuf<T>, dy: &CpuBuf<T>, out: &mut CpuBuf<T>) {
        ops::linear_per_sample_sq_norms(g, x, dy, out)
    }

    fn avgpool3x3_forward(&self, g: &PoolGeom, x: &CpuBuf<T>, y: &mut CpuBuf<T>, accumulate: bool) {
        ops::avgpool3x3_forward(g, x, y, accumulate)
    }
    fn avgpool3x3_backward(&self, g: &PoolGeom, dy: &CpuBuf<T>, dx: &mut CpuBuf<T>, accumulate: bool) {
        ops::avgpool3x3_backward(g, dy, dx, accumulate)
    }
    fn avgpool2x2_forward(&self, g: &PoolGeom, x: &CpuBuf<T>, y: &mut CpuBuf<T>) {
        ops::avgpool2x2_forward(g, x, y)
    }
    fn avgpool2x2_backward(&self, g: &PoolGeom, dy: &CpuBuf<T>, dx: &mut CpuBuf<T>, accumulate: bool) {
        ops::avgpool2x2_backward(g, dy, dx, accumulate)
    }
    fn global_avgpool_forward(&self, s: &ActShape, x: &CpuBuf<T>, relu_x: bool, y: &mut CpuBuf<T>) {
        ops::global_avgpool_forward(s, x, relu_x, y)
    }
    fn global_avgpool_backward(&self, s: &ActShape, dy: &CpuBuf<T>, relu_mask: Option<&CpuBuf<T>>, dx: &mut CpuBuf<T>) {
        ops::global_avgpool_backward(s, dy, relu_mask.map(|m| m.as_slice()), dx)
    }

    fn linear_forward(&self, g: &LinearGeom, x: &CpuBuf<T>, w: &CpuBuf<T>, b: &CpuBuf<T>, y: &mut CpuBuf<T>) {
        ops::linear_forward(g, x, w, b, y)
    }
    fn linear_backward(
        &self,
        g: &LinearGeom,
        x: &CpuBuf<T>,
        w: &CpuBuf<T>,
        dy: &CpuBuf<T>,
        dx: Option<&mut CpuBuf<T>>,
        dw: &mut CpuBuf<T>,
        db: &mut CpuBuf<T>,
    ) {
        ops::linear_backward(g, x, w, dy, dx.map(|d| d.as_mut_slice()), dw, db)
    }
    fn softmax_cross_entropy(
        &self,
        n: usize,
        classes: usize,
        logits: &CpuBuf<T>,
        labels: &Vec<i32>,
        weights: Option<&CpuBuf<T>>,
        loss: &mut CpuBuf<T>,
        dlogits: &mut CpuBuf<T>,
        proxy_norm: &mut CpuBuf<T>,
    ) {
        ops::softmax_cross_entropy(n, classes, logits, labels, weights.map(|w| w.as_slice()), loss, dlogits, proxy_norm)
    }

    fn sq_norms(&self, tensors: &[&CpuBuf<T>], out: &mut CpuBuf<T>) {
        assert_eq!(tensors.len(), out.len(), "sq_norms: one output per tensor");
        // parallel over tensors, each summed in its own fixed order
        out.par_iter_mut().zip(tensors.par_iter()).for_each(|(o, t)| *o = T::from_f64(ops::sq_norm(t)));
    }
    fn clip_coefficient(&self, sq_norms: &CpuBuf<T>, max_norm: f64, out: &mut CpuBuf<T>) {
        let total = sq_norms.iter().map(|v| v.as_f64()).sum::<f64>().sqrt();
        out[0] = T::from_f64(ops::clip_coefficient(total, max_norm));
    }
    fn nonfinite_guard(&self, sq_norms: &CpuBuf<T>, step: i64, guard: &mut CpuBuf<T>, clip_coef: &mut CpuBuf<T>) {
        ops::nonfinite_guard(sq_norms, step, guard, clip_coef)
    }
    fn sgd_step(&self, slots: &mut [SgdSlot<'_, Self>], h: &SgdStep, grad_scale: &CpuBuf<T>) {
        slots.par_iter_mut().for_each(|s| ops::sgd_step(s.value, s.grad, s.momentum, h, grad_scale[0]));
    }

    fn clipped_group_norms(&self, sq_norms: &CpuBuf<T>, clip_coef: &CpuBuf<T>, members: &[i32], groups: &[NormGroup], out: &mut CpuBuf<T>) {
        ops::clipped_group_norms(sq_norms, clip_coef[0], members, groups, out)
    }
    fn batch_metrics(&self, n: usize, classes: usize, logits: &CpuBuf<T>, labels: &Vec<i32>, loss: &CpuBuf<T>, sums: &mut CpuBuf<T>) {
        ops::batch_metrics(n, classes, logits, labels, loss, sums)
    }
}
