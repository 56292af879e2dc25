//! ReLU, add and the zero op. The CPU reference of `kernels/elementwise.cu`.
//!
//! The supernet fuses its ReLUs into the convolutions and the global pool, so
//! these standalone forms serve the op-level tests and the backends' plumbing.

use rayon::prelude::*;

use crate::backend::cpu::{CpuBackend, CpuBuf};
use crate::backend::Memory;
use crate::element::Element;

#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
mod launch;

/// Below this many elements a loop is not worth splitting across threads.
const PAR_MIN: usize = 1 << 15;

pub fn relu_forward<T: Element>(x: &[T], y: &mut [T]) {
    assert_eq!(x.len(), y.len(), "relu_forward");
    y.par_iter_mut().with_min_len(PAR_MIN).zip(x).for_each(|(o, &v)| *o = keep(v, v));
}

/// `dx = dy * [x > 0]` (zero gradient at 0, as PyTorch).
pub fn relu_backward<T: Element>(x: &[T], dy: &[T], dx: &mut [T]) {
    assert!(x.len() == dy.len() && dy.len() == dx.len(), "relu_backward");
    dx.par_iter_mut().with_min_len(PAR_MIN).zip(x.par_iter().zip(dy)).for_each(|(d, (&v, &g))| *d = keep(v, g));
}

/// `v` where the ReLU's input `m` is positive, else 0 (NaN masks like
/// `m <= 0`, as the kernels' `!(m > 0)`): the ReLU's mask on a gradient, and
/// with `m = v` the ReLU itself, as every op that fuses one applies it.
#[inline(always)]
pub(crate) fn keep<T: Element>(m: T, v: T) -> T {
    if m > T::zero() {
        v
    } else {
        T::zero()
    }
}

/// `out (+)= [m > 0] * v` with `mask = Some(m)`, `out (+)= v` without: how
/// the convolutions' input gradients leave their scratch, in branch-free
/// loops (inlined into their vectorized callers).
#[inline(always)]
pub(crate) fn store_masked<T: Element>(out: &mut [T], v: &[T], mask: Option<&[T]>, accumulate: bool) {
    match (mask, accumulate) {
        (Some(m), true) => out.iter_mut().zip(v.iter().zip(m)).for_each(|(o, (&v, &m))| *o += keep(m, v)),
        (Some(m), false) => out.iter_mut().zip(v.iter().zip(m)).for_each(|(o, (&v, &m))| *o = keep(m, v)),
        (None, true) => out.iter_mut().zip(v).for_each(|(o, &v)| *o += v),
        (None, false) => out.copy_from_slice(v),
    }
}

/// `out = [m > 0] * out`: [`store_masked`] where the values are already in place.
#[inline(always)]
pub(crate) fn mask_in_place<T: Element>(out: &mut [T], mask: &[T]) {
    out.iter_mut().zip(mask).for_each(|(o, &m)| *o = keep(m, *o));
}

/// `dst += src`: node sums in a cell and the residual of a reduction block.
pub fn add_assign<T: Element>(dst: &mut [T], src: &[T]) {
    assert_eq!(dst.len(), src.len(), "add_assign");
    dst.par_iter_mut().with_min_len(PAR_MIN).zip(src).for_each(|(d, &s)| *d += s);
}

/// `dst = src`.
pub fn copy<T: Element>(dst: &mut [T], src: &[T]) {
    assert_eq!(dst.len(), src.len(), "copy");
    dst.par_iter_mut().with_min_len(PAR_MIN).zip(src).for_each(|(d, &s)| *d = s);
}

/// `dst[offset..offset + src.len()] = src`: appends a step's values to a log.
pub fn copy_at<T: Element>(dst: &mut [T], offset: usize, src: &[T]) {
    assert!(offset + src.len() <= dst.len(), "copy_at: {} values at {offset} into {}", src.len(), dst.len());
    copy(&mut dst[offset..offset + src.len()], src);
}

/// The zero op ("none"): its output and its input gradient are zero. The supernet
/// never materialises it (a zero contributes nothing to a node sum), but it is
/// kept as an op so that its semantics are stated and tested like the others.
pub fn fill<T: Element>(dst: &mut [T], v: T) {
    dst.par_iter_mut().with_min_len(PAR_MIN).for_each(|d| *d = v);
}

/// `dst *= a`.
pub fn scale<T: Element>(dst: &mut [T], a: T) {
    dst.par_iter_mut().with_min_len(PAR_MIN).for_each(|d| *d *= a);
}

/// `dst += a * src`.
pub fn axpy<T: Element>(dst: &mut [T], a: T, src: &[T]) {
    assert_eq!(dst.len(), src.len(), "axpy");
    dst.par_iter_mut().with_min_len(PAR_MIN).zip(src).for_each(|(d, &s)| *d += a * s);
}

/// `dst = sqrt(dst)`.
pub fn elementwise_sqrt<T: Element>(dst: &mut [T]) {
    dst.par_iter_mut().with_min_len(PAR_MIN).for_each(|d| *d = d.sqrt());
}

/// The backend interface of these ops: the CPU engine below, the CUDA
/// kernels of `kernels/elementwise.cu` through `launch.rs`.
pub trait ElementwiseOps: Memory {
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
}

impl<T: Element> ElementwiseOps for CpuBackend<T> {
    fn fill(&self, dst: &mut CpuBuf<T>, v: T) {
        self.op("fill", || fill(dst, v))
    }
    fn copy(&self, dst: &mut CpuBuf<T>, src: &CpuBuf<T>) {
        self.op("copy", || copy(dst, src))
    }
    fn copy_at(&self, dst: &mut CpuBuf<T>, offset: usize, src: &CpuBuf<T>) {
        self.op("copy_at", || copy_at(dst, offset, src))
    }
    fn add_assign(&self, dst: &mut CpuBuf<T>, src: &CpuBuf<T>) {
        self.op("add_assign", || add_assign(dst, src))
    }
    fn axpy(&self, dst: &mut CpuBuf<T>, a: f64, src: &CpuBuf<T>) {
        self.op("axpy", || axpy(dst, T::from_f64(a), src))
    }
    fn scale(&self, dst: &mut CpuBuf<T>, a: f64) {
        self.op("scale", || scale(dst, T::from_f64(a)))
    }
    fn elementwise_sqrt(&self, dst: &mut CpuBuf<T>) {
        self.op("elementwise_sqrt", || elementwise_sqrt(dst))
    }
    fn relu_forward(&self, x: &CpuBuf<T>, y: &mut CpuBuf<T>) {
        self.op("relu_forward", || relu_forward(x, y))
    }
    fn relu_backward(&self, x: &CpuBuf<T>, dy: &CpuBuf<T>, dx: &mut CpuBuf<T>) {
        self.op("relu_backward", || relu_backward(x, dy, dx))
    }
}
