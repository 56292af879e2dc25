//! The device abstraction: buffers plus the ops of [`crate::ops`].
//!
//! The supernet, the samplers and the training loop are written once against
//! [`Backend`] and run on the CPU ([`cpu::CpuBackend`]), on an NVIDIA GPU and on
//! the CUDA emulator. Every op method has the name and argument order of its CPU
//! reference in [`crate::ops`] and of its kernel in `kernels/`.
//!
//! Buffers are opaque device memory. The only ways to see their contents are
//! [`Backend::download`] and its relatives, which a training step never calls:
//! per-step results (losses, norms) stay on the device until the caller asks.

pub mod cpu;
#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
pub mod gpu;

use crate::element::Element;
use crate::geometry::{ActShape, ConvGeom, LinearGeom, PoolGeom};
use crate::ops::{NormGroup, SgdStep};
use num_traits::Zero;

/// One parameter tensor as the multi-tensor SGD sees it.
pub struct SgdSlot<'a, B: Backend + ?Sized> {
    pub value: &'a mut B::Buf,
    pub grad: &'a B::Buf,
    pub momentum: &'a mut B::Buf,
}

pub trait Backend: Send + Sync {
    /// The element type: `f32` everywhere but the CPU engine's `f64` gradient checks.
    type T: Element;
    /// A device buffer of `T`.
    type Buf: Send + Sync;
    /// A device buffer of `i32` (class labels, sample indices).
    type IBuf: Send + Sync;

    /// A short description: "cpu (2 threads)", "cuda:0 NVIDIA H200 (sm_90)".
    fn name(&self) -> String;

    // ---- memory ----------------------------------------------------------
    /// A buffer of `len` elements from the backend's pool, to which it returns
    /// when dropped; its contents are unspecified (every op below writes all of
    /// its output unless it accumulates).
    fn alloc(&self, len: usize) -> Self::Buf;
    fn len(&self, buf: &Self::Buf) -> usize;
    fn upload_into(&self, host: &[Self::T], dst: &mut Self::Buf);
    fn download(&self, buf: &Self::Buf) -> Vec<Self::T>;
    fn upload_i32(&self, host: &[i32]) -> Self::IBuf;
    fn download_i32(&self, buf: &Self::IBuf) -> Vec<i32>;
    fn alloc_i32(&self, len: usize) -> Self::IBuf;
    /// Waits for all queued work (a no-op on the CPU).
    fn synchronize(&self) {}

    /// Runs `f` and returns its result with the seconds its device work took
    /// (wall clock on the CPU; device events on a GPU).
    fn timed<R>(&self, f: impl FnOnce() -> R) -> (R, f64) {
        self.synchronize();
        let t = std::time::Instant::now();
        let r = f();
        self.synchronize();
        (r, t.elapsed().as_secs_f64())
    }

    /// Bytes of device memory in use or held by the pool, if the backend knows.
    fn device_memory(&self) -> Option<usize> {
        None
    }

    fn alloc_zeroed(&self, len: usize) -> Self::Buf {
        let mut b = self.alloc(len);
        self.fill(&mut b, Self::T::zero());
        b
    }
    fn upload(&self, host: &[Self::T]) -> Self::Buf {
        let mut b = self.alloc(host.len());
        self.upload_into(host, &mut b);
        b
    }
    /// Uploads `f64` host data (images, loss weights), rounded once to `T`.
    fn upload_f64(&self, host: &[f64]) -> Self::Buf {
        let v: Vec<Self::T> = host.iter().map(|&x| Self::T::from_f64(x)).collect();
        self.upload(&v)
    }

    // ---- elementwise (ops::elementwise) -----------------------------------
    fn fill(&self, dst: &mut Self::Buf, v: Self::T);
    fn copy(&self, dst: &mut Self::Buf, src: &Self::Buf);
    /// `dst[offset..offset + len(src)] = src`.
    fn copy_at(&self, dst: &mut Self::Buf, offset: usize, src: &Self::Buf);
    fn add_assign(&self, dst: &mut Self::Buf, src: &Self::Buf);
    /// `dst += a * src`.
    fn axpy(&self, dst: &mut Self::Buf, a: f64, src: &Self::Buf);
    /// `dst *= a`.
    fn scale(&self, dst: &mut Self::Buf, a: f64);
    /// `dst = sqrt(dst)`.
    fn elementwise_sqrt(&self, dst: &mut Self::Buf);
    fn relu_forward(&self, x: &Self::Buf, y: &mut Self::Buf);
    fn relu_backward(&self, x: &Self::Buf, dy: &Self::Buf, dx: &mut Self::Buf);

    // ---- convolution (ops::conv2d) ----------------------------------------
    fn conv2d_forward(&self, g: &ConvGeom, x: &Self::Buf, relu_x: bool, w: &Self::Buf, bias: Option<&Self::Buf>, y: &mut Self::Buf);
    fn conv2d_backward_data(
        &self,
        g: &ConvGeom,
        dy: &Self::Buf,
        w: &Self::Buf,
        relu_mask: Option<&Self::Buf>,
        dx: &mut Self::Buf,
        accumulate: bool,
    );
    fn conv2d_backward_weight(
        &self,
        g: &ConvGeom,
        x: &Self::Buf,
        relu_x: bool,
        dy: &Self::Buf,
        dw: &mut Self::Buf,
        db: Option<&mut Self::Buf>,
    );
    /// Per-sample squared norms of the weight (and bias) gradient, added into `out[n]`.
    fn conv2d_per_sample_sq_norms(&self, g: &ConvGeom, x: &Self::Buf, relu_x: bool, dy: &Self::Buf, bias: bool, out: &mut Self::Buf);

    // ---- batch norm (ops::batchnorm) --------------------------------------
    fn batchnorm_forward(&self, s: &ActShape, x: &Self::Buf, y: &mut Self::Buf, accumulate: bool, stats: &mut Self::Buf);
    fn batchnorm_backward(&self, s: &ActShape, x: &Self::Buf, stats: &Self::Buf, dy: &Self::Buf, dx: &mut Self::Buf);
    fn batchnorm_backward_frozen(&self, s: &ActShape, stats: &Self::Buf, dy: &Self::Buf, dx: &mut Self::Buf);

    // ---- pools (ops::pool) -------------------------------------------------
    fn avgpool3x3_forward(&self, g: &PoolGeom, x: &Self::Buf, y: &mut Self::Buf, accumulate: bool);
    fn avgpool3x3_backward(&self, g: &PoolGeom, dy: &Self::Buf, dx: &mut Self::Buf, accumulate: bool);
    fn avgpool2x2_forward(&self, g: &PoolGeom, x: &Self::Buf, y: &mut Self::Buf);
    fn avgpool2x2_backward(&self, g: &PoolGeom, dy: &Self::Buf, dx: &mut Self::Buf, accumulate: bool);
    fn global_avgpool_forward(&self, s: &ActShape, x: &Self::Buf, relu_x: bool, y: &mut Self::Buf);
    fn global_avgpool_backward(&self, s: &ActShape, dy: &Self::Buf, relu_mask: Option<&Self::Buf>, dx: &mut Self::Buf);

    // ---- classifier and loss (ops::linear, ops::softmax_ce) ----------------
    fn linear_forward(&self, g: &LinearGeom, x: &Self::Buf, w: &Self::Buf, b: &Self::Buf, y: &mut Self::Buf);
    #[allow(clippy::too_many_arguments)]
    fn linear_backward(
        &self,
        g: &LinearGeom,
        x: &Self::Buf,
        w: &Self::Buf,
        dy: &Self::Buf,
        dx: Option<&mut Self::Buf>,
        dw: &mut Self::Buf,
        db: &mut Self::Buf,
    );
    fn linear_per_sample_sq_norms(&self, g: &LinearGeom, x: &Self::Buf, dy: &Self::Buf, out: &mut Self::Buf);
    #[allow(clippy::too_many_arguments)]
    fn softmax_cross_entropy(
        &self,
        n: usize,
        classes: usize,
        logits: &Self::Buf,
        labels: &Self::IBuf,
        weights: Option<&Self::Buf>,
        loss: &mut Self::Buf,
        dlogits: &mut Self::Buf,
        proxy_norm: &mut Self::Buf,
    );
    fn batch_metrics(&self, n: usize, classes: usize, logits: &Self::Buf, labels: &Self::IBuf, loss: &Self::Buf, sums: &mut Self::Buf);

    // ---- multi-tensor optimiser pieces (ops::optim) ------------------------
    /// `out[i] = sum(tensors[i]^2)` for all tensors in one pass.
    fn sq_norms(&self, tensors: &[&Self::Buf], out: &mut Self::Buf);
    /// `out[0] = clip_coefficient(sqrt(sum(sq_norms)), max_norm)`, on the device.
    fn clip_coefficient(&self, sq_norms: &Self::Buf, max_norm: f64, out: &mut Self::Buf);
    /// Skips the step (NaN clip coefficient) when a gradient norm is not finite; see [`crate::ops::nonfinite_guard`].
    fn nonfinite_guard(&self, sq_norms: &Self::Buf, step: i64, guard: &mut Self::Buf, clip_coef: &mut Self::Buf);
    /// One SGD step on every slot, the gradients scaled by `grad_scale[0]`.
    fn sgd_step(&self, slots: &mut [SgdSlot<'_, Self>], h: &SgdStep, grad_scale: &Self::Buf);
    /// `out[slot] = clip_coef[0] * sum(sqrt(sq_norms[members]))` for each group (NaN for a skipped step).
    fn clipped_group_norms(&self, sq_norms: &Self::Buf, clip_coef: &Self::Buf, members: &[i32], groups: &[NormGroup], out: &mut Self::Buf);
}
