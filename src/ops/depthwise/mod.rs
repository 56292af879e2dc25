//! Depthwise convolution on CNHW activations (MobileNet's: one `k x k`
//! filter per channel, `groups = channels`), forward, input gradient, weight
//! gradient and per-sample weight-gradient norms.
//!
//! The CPU reference of `kernels/depthwise.cu`. The geometry is a
//! [`ConvGeom`] with `c_in == c_out` (weights `[c, 1, k, k]`, PyTorch's
//! layout). Every output value sums its taps in row-major order `(kh, kw)`,
//! and every input gradient gathers its taps in the same order, as the kernels
//! do; the weight gradient sums each sample's pixels, then the samples in
//! order, in f64. Planes (channel, image) are independent tasks, so results do
//! not depend on the number of threads.
//!
//! `relu_x = true` means the op sees `relu(x)` instead of `x`; the input
//! gradient then multiplies by the ReLU mask `x > 0`, as autograd would.

use rayon::prelude::*;

use super::parallel::with_scratch;
use crate::backend::cpu::{CpuBackend, CpuBuf};
use crate::backend::Memory;
use crate::element::Element;
use crate::geometry::ConvGeom;

#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
mod launch;

/// Weights of a depthwise conv of geometry `g`: `c * k * k`.
pub fn weight_len(g: &ConvGeom) -> usize {
    (g.c_out * g.k * g.k) as usize
}

fn check(g: &ConvGeom, what: &str) {
    assert_eq!(g.c_in, g.c_out, "{what}: a depthwise conv keeps its channels");
}

/// The output columns `o` whose input column `o*stride - pad + kw` lies in `0..w`.
#[inline]
fn valid_cols(g: &ConvGeom, kw: i32) -> (usize, usize) {
    // (a tap past the image's right edge leaves no column: lo = hi = ow)
    let lo = (g.pad - kw + g.stride - 1).div_euclid(g.stride).clamp(0, g.ow);
    let hi = ((g.w - 1 + g.pad - kw).div_euclid(g.stride) + 1).clamp(lo, g.ow);
    (lo as usize, hi as usize)
}

/// `plane` through a ReLU into `scratch` when `relu`, else `plane` itself.
fn relu_plane<'a, T: Element>(plane: &'a [T], relu: bool, scratch: &'a mut [T]) -> &'a [T] {
    if !relu {
        return plane;
    }
    scratch.iter_mut().zip(plane).for_each(|(r, &v)| *r = if v > T::zero() { v } else { T::zero() });
    scratch
}

/// `y = depthwise_conv(relu?(x), w)`, CNHW in and out; `w` is `[c, 1, k, k]`.
pub fn depthwise_forward<T: Element>(g: &ConvGeom, x: &[T], relu_x: bool, w: &[T], y: &mut [T]) {
    check(g, "depthwise_forward");
    assert_eq!(x.len(), g.input().len(), "depthwise_forward: x");
    assert_eq!(w.len(), weight_len(g), "depthwise_forward: w");
    assert_eq!(y.len(), g.output().len(), "depthwise_forward: y");
    let (n, hw, ohw, k) = (g.n as usize, (g.h * g.w) as usize, (g.oh * g.ow) as usize, g.k as usize);
    let (s, ow) = (g.stride as usize, g.ow as usize);
    y.par_chunks_mut(ohw).enumerate().for_each(|(plane_index, out)| {
        let c = plane_index / n;
        let taps = &w[c * k * k..(c + 1) * k * k];
        with_scratch::<T, _>(if relu_x { hw } else { 0 }, |scratch| {
            let plane = relu_plane(&x[plane_index * hw..(plane_index + 1) * hw], relu_x, scratch);
            out.fill(T::zero());
            for r in 0..g.oh as usize {
                let row = &mut out[r * ow..(r + 1) * ow];
                for kh in 0..k {
                    let ih = (r * s + kh) as isize - g.pad as isize;
                    if ih < 0 || ih >= g.h as isize {
                        continue;
                    }
                    let src = &plane[ih as usize * g.w as usize..][..g.w as usize];
                    for kw in 0..k {
                        let t = taps[kh * k + kw];
                        let (lo, hi) = valid_cols(g, kw as i32);
                        let base = lo * s + kw - g.pad as usize;
                        for (o, v) in row[lo..hi].iter_mut().enumerate() {
                            *v += t * src[base + o * s];
                        }
                    }
                }
            }
        });
    });
}

/// `dx (+)= [x > 0] * depthwise_conv_transpose(dy, w)`: each input value
/// gathers the output gradients of the taps that read it, in `(kh, kw)`
/// order. `relu_mask = Some(x)` when the forward pass used `relu(x)`.
pub fn depthwise_backward_data<T: Element>(g: &ConvGeom, dy: &[T], w: &[T], relu_mask: Option<&[T]>, dx: &mut [T], accumulate: bool) {
    check(g, "depthwise_backward_data");
    assert_eq!(dy.len(), g.output().len(), "depthwise_backward_data: dy");
    assert_eq!(w.len(), weight_len(g), "depthwise_backward_data: w");
    assert_eq!(dx.len(), g.input().len(), "depthwise_backward_data: dx");
    if let Some(m) = relu_mask {
        assert_eq!(m.len(), dx.len(), "depthwise_backward_data: relu_mask");
    }
    let (n, hw, ohw, k) = (g.n as usize, (g.h * g.w) as usize, (g.oh * g.ow) as usize, g.k as usize);
    let (s, p) = (g.stride as isize, g.pad as isize);
    let (h, wd, oh, ow) = (g.h as usize, g.w as usize, g.oh as isize, g.ow as isize);
    dx.par_chunks_mut(hw).enumerate().for_each(|(plane_index, out)| {
        let c = plane_index / n;
        let taps = &w[c * k * k..(c + 1) * k * k];
        let grad = &dy[plane_index * ohw..(plane_index + 1) * ohw];
        let mask = relu_mask.map(|m| &m[plane_index * hw..(plane_index + 1) * hw]);
        with_scratch::<T, _>(wd, |acc| {
            for ih in 0..h {
                acc.fill(T::zero());
                for kh in 0..k {
                    let t = ih as isize + p - kh as isize;
                    if t < 0 || t % s != 0 || t / s >= oh {
                        continue;
                    }
                    let src = &grad[(t / s) as usize * ow as usize..][..ow as usize];
                    for kw in 0..k {
                        // the output columns o that read input column o*s - p + kw: at most one per
                        // input column and tap, so each input value still sums its taps in order
                        let tap = taps[kh * k + kw];
                        let (lo, hi) = valid_cols(g, kw as i32);
                        let base = lo as isize * s - p + kw as isize;
                        for (o, &d) in src[lo..hi].iter().enumerate() {
                            acc[(base + o as isize * s) as usize] += tap * d;
                        }
                    }
                }
                let row = &mut out[ih * wd..(ih + 1) * wd];
                for (iw, (d, &v)) in row.iter_mut().zip(acc.iter()).enumerate() {
                    let v = match mask {
                        // (NaN masks like x <= 0, as the kernels' `!(m > 0)`)
                        Some(m) if m[ih * wd + iw].partial_cmp(&T::zero()) != Some(std::cmp::Ordering::Greater) => T::zero(),
                        _ => v,
                    };
                    *d = if accumulate { *d + v } else { v };
                }
            }
        });
    });
}

/// Sample `i`'s contribution to the weight gradient of channel `c`: for
/// each tap, `sum over its pixels of dy * relu?(x)`, in f64 (`scratch`
/// holds the ReLU of a plane).
#[allow(clippy::too_many_arguments)]
fn sample_taps<T: Element>(g: &ConvGeom, x: &[T], relu_x: bool, dy: &[T], c: usize, i: usize, taps: &mut [f64], scratch: &mut [T]) {
    let (n, hw, ohw, k) = (g.n as usize, (g.h * g.w) as usize, (g.oh * g.ow) as usize, g.k as usize);
    let (s, ow) = (g.stride as usize, g.ow as usize);
    let plane_index = c * n + i;
    let plane = relu_plane(&x[plane_index * hw..(plane_index + 1) * hw], relu_x, scratch);
    let grad = &dy[plane_index * ohw..(plane_index + 1) * ohw];
    for kh in 0..k {
        for kw in 0..k {
            let (lo, hi) = valid_cols(g, kw as i32);
            let base = (lo * s + kw) as isize - g.pad as isize;
            let mut acc = 0f64;
            for r in 0..g.oh as usize {
                let ih = (r * s + kh) as isize - g.pad as isize;
                if ih < 0 || ih >= g.h as isize || lo >= hi {
                    continue;
                }
                let src = &plane[ih as usize * g.w as usize..][..g.w as usize];
                let mut row = T::zero();
                for (o, &d) in grad[r * ow + lo..r * ow + hi].iter().enumerate() {
                    row += d * src[base as usize + o * s];
                }
                acc += row.as_f64();
            }
            taps[kh * k + kw] = acc;
        }
    }
}

/// `dw += sum over the batch of dy (x) relu?(x)` per channel and tap:
/// accumulated (FairNAS sums several paths' gradients). With `sample_sq`,
/// also `sample_sq[i] += ||g_i||^2` for `g_i` sample i's part of that sum
/// (so that `sum_i g_i` is the gradient), in the same pass.
pub fn depthwise_backward_weight<T: Element>(g: &ConvGeom, x: &[T], relu_x: bool, dy: &[T], dw: &mut [T], sample_sq: Option<&mut [T]>) {
    check(g, "depthwise_backward_weight");
    assert_eq!(x.len(), g.input().len(), "depthwise_backward_weight: x");
    assert_eq!(dy.len(), g.output().len(), "depthwise_backward_weight: dy");
    assert_eq!(dw.len(), weight_len(g), "depthwise_backward_weight: dw");
    let (n, kk, hw) = (g.n as usize, (g.k * g.k) as usize, (g.h * g.w) as usize);
    // each channel's per-sample squared norms, summed over channels in order below
    let mut channel_sq = vec![0f64; if sample_sq.is_some() { g.c_out as usize * n } else { 0 }];
    let per_sample = sample_sq.is_some();
    let sq_chunks: Vec<&mut [f64]> = if per_sample { channel_sq.chunks_mut(n).collect() } else { Vec::new() };
    let mut sq_iter = sq_chunks.into_iter();
    // per channel: its weights and, with `sample_sq`, its row of per-sample norms
    type Task<'a, T> = (usize, &'a mut [T], Option<&'a mut [f64]>);
    let tasks: Vec<Task<T>> = dw.chunks_mut(kk).enumerate().map(|(c, d)| (c, d, sq_iter.next())).collect();
    tasks.into_par_iter().for_each(|(c, d, sq)| {
        let mut total = vec![0f64; kk];
        let mut taps = vec![0f64; kk];
        let mut sq = sq;
        with_scratch::<T, _>(if relu_x { hw } else { 0 }, |scratch| {
            for i in 0..n {
                sample_taps(g, x, relu_x, dy, c, i, &mut taps, scratch);
                for (t, v) in total.iter_mut().zip(&taps) {
                    *t += v;
                }
                if let Some(sq) = sq.as_deref_mut() {
                    sq[i] = taps.iter().map(|v| v * v).sum();
                }
            }
        });
        for (dv, t) in d.iter_mut().zip(&total) {
            *dv += T::from_f64(*t);
        }
    });
    if let Some(out) = sample_sq {
        assert_eq!(out.len(), n, "depthwise_backward_weight: sample_sq");
        for (i, o) in out.iter_mut().enumerate() {
            *o += T::from_f64((0..g.c_out as usize).map(|c| channel_sq[c * n + i]).sum::<f64>());
        }
    }
}

/// `out[i] += ||sample i's weight gradient||^2`, without the gradient itself.
pub fn depthwise_per_sample_sq_norms<T: Element>(g: &ConvGeom, x: &[T], relu_x: bool, dy: &[T], out: &mut [T]) {
    check(g, "depthwise_per_sample_sq_norms");
    assert_eq!(x.len(), g.input().len(), "depthwise_per_sample_sq_norms: x");
    assert_eq!(dy.len(), g.output().len(), "depthwise_per_sample_sq_norms: dy");
    assert_eq!(out.len(), g.n as usize, "depthwise_per_sample_sq_norms: out");
    let (kk, hw) = ((g.k * g.k) as usize, (g.h * g.w) as usize);
    out.par_iter_mut().enumerate().for_each(|(i, o)| {
        let mut taps = vec![0f64; kk];
        let sq = with_scratch::<T, _>(if relu_x { hw } else { 0 }, |scratch| {
            (0..g.c_out as usize)
                .map(|c| {
                    sample_taps(g, x, relu_x, dy, c, i, &mut taps, scratch);
                    taps.iter().map(|v| v * v).sum::<f64>()
                })
                .sum::<f64>()
        });
        *o += T::from_f64(sq);
    });
}

/// The backend interface of these ops: the CPU engine below, the CUDA
/// kernels of `kernels/depthwise.cu` through `launch.rs`.
pub trait DepthwiseOps: Memory {
    fn depthwise_forward(&self, g: &ConvGeom, x: &Self::Buf, relu_x: bool, w: &Self::Buf, y: &mut Self::Buf);
    fn depthwise_backward_data(
        &self,
        g: &ConvGeom,
        dy: &Self::Buf,
        w: &Self::Buf,
        relu_mask: Option<&Self::Buf>,
        dx: &mut Self::Buf,
        accumulate: bool,
    );
    /// With `sample_sq`, also each sample's squared norm of its contribution
    /// to `dw`, added into `sample_sq[n]`, in the same pass.
    fn depthwise_backward_weight(
        &self,
        g: &ConvGeom,
        x: &Self::Buf,
        relu_x: bool,
        dy: &Self::Buf,
        dw: &mut Self::Buf,
        sample_sq: Option<&mut Self::Buf>,
    );
    /// Per-sample squared norms of the weight gradient, added into `out[n]`.
    fn depthwise_per_sample_sq_norms(&self, g: &ConvGeom, x: &Self::Buf, relu_x: bool, dy: &Self::Buf, out: &mut Self::Buf);
}

impl<T: Element> DepthwiseOps for CpuBackend<T> {
    fn depthwise_forward(&self, g: &ConvGeom, x: &CpuBuf<T>, relu_x: bool, w: &CpuBuf<T>, y: &mut CpuBuf<T>) {
        depthwise_forward(g, x, relu_x, w, y)
    }
    fn depthwise_backward_data(
        &self,
        g: &ConvGeom,
        dy: &CpuBuf<T>,
        w: &CpuBuf<T>,
        relu_mask: Option<&CpuBuf<T>>,
        dx: &mut CpuBuf<T>,
        accumulate: bool,
    ) {
        depthwise_backward_data(g, dy, w, relu_mask.map(|m| m.as_slice()), dx, accumulate)
    }
    fn depthwise_backward_weight(
        &self,
        g: &ConvGeom,
        x: &CpuBuf<T>,
        relu_x: bool,
        dy: &CpuBuf<T>,
        dw: &mut CpuBuf<T>,
        sample_sq: Option<&mut CpuBuf<T>>,
    ) {
        depthwise_backward_weight(g, x, relu_x, dy, dw, sample_sq.map(|s| s.as_mut_slice()))
    }
    fn depthwise_per_sample_sq_norms(&self, g: &ConvGeom, x: &CpuBuf<T>, relu_x: bool, dy: &CpuBuf<T>, out: &mut CpuBuf<T>) {
        depthwise_per_sample_sq_norms(g, x, relu_x, dy, out)
    }
}
