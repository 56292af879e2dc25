//! Average pools on CNHW planes and the global average pool.
//! The CPU reference of `kernels/pool.cu`.

use rayon::prelude::*;

use super::elementwise::keep;
use super::parallel::{with_scratch, Disjoint};
use super::transpose::transpose;
use crate::backend::cpu::{CpuBackend, CpuBuf};
use crate::backend::Memory;
use crate::element::Element;
use crate::geometry::{ActShape, PoolGeom};

#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
mod launch;

#[inline]
fn put<T: Element>(d: &mut T, v: T, accumulate: bool) {
    if accumulate {
        *d += v
    } else {
        *d = v
    }
}

/// `1 / (number of real pixels)` of the 3-wide windows along a line of `n`:
/// 1/3 inside, 1/2 at the ends, 1 when `n == 1` (count_include_pad=False).
fn inv_counts<T: Element>(n: usize) -> Vec<T> {
    (0..n).map(|i| T::from_f64(1.0 / ((i + 2).min(n) - i.saturating_sub(1)) as f64)).collect()
}

/// `out[r][c] = sum of src over the 3x3 window at (r, c)` clipped to the plane,
/// times `post[r][c] = inv_r[r] * inv_c[c]` if given; separable: a vertical then
/// a horizontal 3-tap sum. `tmp` is one plane of scratch.
fn box3x3<T: Element>(h: usize, w: usize, src: &[T], tmp: &mut [T], post: Option<(&[T], &[T])>, out: &mut [T], accumulate: bool) {
    for r in 0..h {
        let t = &mut tmp[r * w..(r + 1) * w];
        t.copy_from_slice(&src[r * w..(r + 1) * w]);
        if r > 0 {
            t.iter_mut().zip(&src[(r - 1) * w..r * w]).for_each(|(a, &b)| *a += b);
        }
        if r + 1 < h {
            t.iter_mut().zip(&src[(r + 1) * w..(r + 2) * w]).for_each(|(a, &b)| *a += b);
        }
    }
    for r in 0..h {
        let t = &tmp[r * w..(r + 1) * w];
        let o = &mut out[r * w..(r + 1) * w];
        let scale = |c: usize| post.map_or(T::one(), |(ir, ic)| ir[r] * ic[c]);
        if w == 1 {
            put(&mut o[0], t[0] * scale(0), accumulate);
            continue;
        }
        put(&mut o[0], (t[0] + t[1]) * scale(0), accumulate);
        put(&mut o[w - 1], (t[w - 2] + t[w - 1]) * scale(w - 1), accumulate);
        // interior columns, branch-free so that the loop vectorises
        let sums = t.windows(3).map(|v| v[0] + v[1] + v[2]);
        let out_mid = &mut o[1..w - 1];
        match (post, accumulate) {
            (Some((ir, ic)), true) => out_mid.iter_mut().zip(sums).zip(&ic[1..w - 1]).for_each(|((o, v), &c)| *o += v * (ir[r] * c)),
            (Some((ir, ic)), false) => out_mid.iter_mut().zip(sums).zip(&ic[1..w - 1]).for_each(|((o, v), &c)| *o = v * (ir[r] * c)),
            (None, true) => out_mid.iter_mut().zip(sums).for_each(|(o, v)| *o += v),
            (None, false) => out_mid.iter_mut().zip(sums).for_each(|(o, v)| *o = v),
        }
    }
}

/// `y (+)= avg_pool2d(x, 3, stride 1, padding 1, count_include_pad=False)`.
pub fn avgpool3x3_forward<T: Element>(g: &PoolGeom, x: &[T], y: &mut [T], accumulate: bool) {
    assert_eq!(x.len(), g.input().len(), "avgpool3x3_forward: x");
    assert_eq!(y.len(), g.output().len(), "avgpool3x3_forward: y");
    let (h, w) = (g.h as usize, g.w as usize);
    let (ir, ic) = (inv_counts::<T>(h), inv_counts::<T>(w));
    y.par_chunks_mut(h * w).zip(x.par_chunks(h * w)).for_each(|(yp, xp)| {
        with_scratch::<T, _>(h * w, |tmp| box3x3(h, w, xp, tmp, Some((&ir, &ic)), yp, accumulate));
    });
}

/// `dx (+)=` the adjoint of [`avgpool3x3_forward`]: every output spreads its
/// gradient over its window, divided by that window's count of real pixels.
/// The window relation is symmetric, so this is the same box sum applied to
/// `dy / count`.
pub fn avgpool3x3_backward<T: Element>(g: &PoolGeom, dy: &[T], dx: &mut [T], accumulate: bool) {
    assert_eq!(dy.len(), g.output().len(), "avgpool3x3_backward: dy");
    assert_eq!(dx.len(), g.input().len(), "avgpool3x3_backward: dx");
    let (h, w) = (g.h as usize, g.w as usize);
    let (ir, ic) = (inv_counts::<T>(h), inv_counts::<T>(w));
    dx.par_chunks_mut(h * w).zip(dy.par_chunks(h * w)).for_each(|(xp, yp)| {
        with_scratch::<T, _>(2 * h * w, |buf| {
            let (scaled, tmp) = buf.split_at_mut(h * w);
            for r in 0..h {
                for c in 0..w {
                    scaled[r * w + c] = yp[r * w + c] * ir[r] * ic[c];
                }
            }
            box3x3(h, w, scaled, tmp, None, xp, accumulate);
        });
    });
}

/// `y = avg_pool2d(x, 2, stride 2)`; a last odd row or column is dropped (floor).
pub fn avgpool2x2_forward<T: Element>(g: &PoolGeom, x: &[T], y: &mut [T]) {
    assert_eq!(x.len(), g.input().len(), "avgpool2x2_forward: x");
    assert_eq!(y.len(), g.output().len(), "avgpool2x2_forward: y");
    let (h, w, oh, ow) = (g.h as usize, g.w as usize, g.oh as usize, g.ow as usize);
    let quarter = T::from_f64(0.25);
    y.par_chunks_mut(oh * ow).zip(x.par_chunks(h * w)).for_each(|(yp, xp)| {
        for r in 0..oh {
            for c in 0..ow {
                let (a, b) = (2 * r * w + 2 * c, (2 * r + 1) * w + 2 * c);
                yp[r * ow + c] = (xp[a] + xp[a + 1] + xp[b] + xp[b + 1]) * quarter;
            }
        }
    });
}

/// `dx (+)=` the adjoint of [`avgpool2x2_forward`] (nothing flows to a dropped
/// odd row or column).
pub fn avgpool2x2_backward<T: Element>(g: &PoolGeom, dy: &[T], dx: &mut [T], accumulate: bool) {
    assert_eq!(dy.len(), g.output().len(), "avgpool2x2_backward: dy");
    assert_eq!(dx.len(), g.input().len(), "avgpool2x2_backward: dx");
    let (h, w, oh, ow) = (g.h as usize, g.w as usize, g.oh as usize, g.ow as usize);
    let quarter = T::from_f64(0.25);
    dx.par_chunks_mut(h * w).zip(dy.par_chunks(oh * ow)).for_each(|(xp, yp)| {
        if !accumulate {
            xp.fill(T::zero());
        }
        for r in 0..oh {
            for c in 0..ow {
                let v = yp[r * ow + c] * quarter;
                let (a, b) = (2 * r * w + 2 * c, (2 * r + 1) * w + 2 * c);
                for i in [a, a + 1, b, b + 1] {
                    xp[i] += v;
                }
            }
        }
    });
}

/// `y[n, c] = mean over the (c, n) plane of relu?(x)`: the head's ReLU fused with
/// global average pooling; `y` is row-major `[n, c]`, ready for the classifier.
pub fn global_avgpool_forward<T: Element>(s: &ActShape, x: &[T], relu_x: bool, y: &mut [T]) {
    assert_eq!(x.len(), s.len(), "global_avgpool_forward: x");
    assert_eq!(y.len(), (s.n * s.c) as usize, "global_avgpool_forward: y");
    let (c, n, hw) = (s.c as usize, s.n as usize, s.plane());
    // a channel's n planes a task, read in order (a sample's planes lie n planes apart), then
    // turned to `y`'s [n, c]
    let mut means = vec![T::zero(); c * n];
    means.par_chunks_mut(n).zip(x.par_chunks(n * hw)).for_each(|(out, planes)| {
        for (o, p) in out.iter_mut().zip(planes.chunks(hw)) {
            let acc: f64 = if relu_x { p.iter().map(|v| v.as_f64().max(0.0)).sum() } else { p.iter().map(|v| v.as_f64()).sum() };
            *o = T::from_f64(acc / hw as f64);
        }
    });
    transpose(&means, n, c, n, y, c, false);
}

/// `dx = dy[n, c] / (h*w)` over each plane, times `[x > 0]` when the forward
/// pass applied a ReLU (`relu_mask = Some(x)`).
pub fn global_avgpool_backward<T: Element>(s: &ActShape, dy: &[T], relu_mask: Option<&[T]>, dx: &mut [T]) {
    assert_eq!(dx.len(), s.len(), "global_avgpool_backward: dx");
    assert_eq!(dy.len(), (s.n * s.c) as usize, "global_avgpool_backward: dy");
    let (c, n, hw) = (s.c as usize, s.n as usize, s.plane());
    let inv = T::from_f64(1.0 / hw as f64);
    let out = Disjoint::new(dx);
    (0..c * n).into_par_iter().for_each(|plane| {
        let (ci, ni) = (plane / n, plane % n);
        let v = dy[ni * c + ci] * inv;
        // SAFETY: each task writes its own plane.
        let d = unsafe { out.range(plane * hw, hw) };
        match relu_mask {
            Some(m) => {
                for (d, &mv) in d.iter_mut().zip(&m[plane * hw..(plane + 1) * hw]) {
                    *d = keep(mv, v);
                }
            }
            None => d.fill(v),
        }
    });
}

/// The backend interface of these ops: the CPU engine below, the CUDA
/// kernels of `kernels/pool.cu` through `launch.rs`.
pub trait PoolOps: Memory {
    fn avgpool3x3_forward(&self, g: &PoolGeom, x: &Self::Buf, y: &mut Self::Buf, accumulate: bool);
    fn avgpool3x3_backward(&self, g: &PoolGeom, dy: &Self::Buf, dx: &mut Self::Buf, accumulate: bool);
    fn avgpool2x2_forward(&self, g: &PoolGeom, x: &Self::Buf, y: &mut Self::Buf);
    fn avgpool2x2_backward(&self, g: &PoolGeom, dy: &Self::Buf, dx: &mut Self::Buf, accumulate: bool);
    fn global_avgpool_forward(&self, s: &ActShape, x: &Self::Buf, relu_x: bool, y: &mut Self::Buf);
    fn global_avgpool_backward(&self, s: &ActShape, dy: &Self::Buf, relu_mask: Option<&Self::Buf>, dx: &mut Self::Buf);
}

impl<T: Element> PoolOps for CpuBackend<T> {
    fn avgpool3x3_forward(&self, g: &PoolGeom, x: &CpuBuf<T>, y: &mut CpuBuf<T>, accumulate: bool) {
        self.op("avgpool3x3_forward", || avgpool3x3_forward(g, x, y, accumulate))
    }
    fn avgpool3x3_backward(&self, g: &PoolGeom, dy: &CpuBuf<T>, dx: &mut CpuBuf<T>, accumulate: bool) {
        self.op("avgpool3x3_backward", || avgpool3x3_backward(g, dy, dx, accumulate))
    }
    fn avgpool2x2_forward(&self, g: &PoolGeom, x: &CpuBuf<T>, y: &mut CpuBuf<T>) {
        self.op("avgpool2x2_forward", || avgpool2x2_forward(g, x, y))
    }
    fn avgpool2x2_backward(&self, g: &PoolGeom, dy: &CpuBuf<T>, dx: &mut CpuBuf<T>, accumulate: bool) {
        self.op("avgpool2x2_backward", || avgpool2x2_backward(g, dy, dx, accumulate))
    }
    fn global_avgpool_forward(&self, s: &ActShape, x: &CpuBuf<T>, relu_x: bool, y: &mut CpuBuf<T>) {
        self.op("global_avgpool_forward", || global_avgpool_forward(s, x, relu_x, y))
    }
    fn global_avgpool_backward(&self, s: &ActShape, dy: &CpuBuf<T>, relu_mask: Option<&CpuBuf<T>>, dx: &mut CpuBuf<T>) {
        self.op("global_avgpool_backward", || global_avgpool_backward(s, dy, relu_mask.map(|m| m.as_slice()), dx))
    }
}
