//! conv2d on CNHW activations: forward, backward-data, backward-weight.
//!
//! The CPU reference of `kernels/conv2d.cu`. Each op works on *tiles* of whole
//! images: a tile's input is unfolded (im2col, with the preceding ReLU fused in)
//! into a per-thread scratch matrix of `c_in*k*k` rows, and one GEMM does the
//! rest. Tiles are sized from the geometry alone and reduced in a fixed order,
//! so results do not depend on the number of threads.
//!
//! `relu_x = true` means the op sees `relu(x)` instead of `x` (the supernet's
//! `nor_conv` and the reduction blocks start with a ReLU); backward-data then
//! multiplies its result by the ReLU mask `x > 0`, as autograd would.

use rayon::prelude::*;

use super::gemm::{gemm, Mat};
use super::parallel::{with_scratch, Disjoint};
use crate::element::Element;
use crate::geometry::ConvGeom;

/// im2col scratch a tile aims for, in elements (about 1 MiB of f32: it stays in L2).
const TILE_ELEMS: usize = 1 << 18;

/// Images per tile and number of tiles, from the geometry alone.
pub fn tiling(g: &ConvGeom) -> (usize, usize) {
    let per_image = g.col_rows() * (g.oh * g.ow) as usize;
    let imgs = (TILE_ELEMS / per_image.max(1)).clamp(1, g.n as usize);
    (imgs, (g.n as usize).div_ceil(imgs))
}

#[inline]
fn relu<T: Element>(v: T) -> T {
    if v > T::zero() {
        v
    } else {
        T::zero()
    }
}

/// The output columns `ow` whose input column `ow*stride - pad + kw` lies in `0..w`.
#[inline]
fn valid_cols(g: &ConvGeom, kw: i32) -> (i32, i32) {
    // smallest ow with ow*s - p + kw >= 0, and one past the largest with ... <= w - 1
    let lo = (g.pad - kw + g.stride - 1).div_euclid(g.stride).max(0);
    let hi = ((g.w - 1 + g.pad - kw).div_euclid(g.stride) + 1).clamp(lo, g.ow);
    (lo, hi)
}

/// Unfolds images `n0..n1` of `x` into `col[c_in*k*k, (n1-n0)*oh*ow]`.
pub fn im2col<T: Element>(g: &ConvGeom, x: &[T], relu_x: bool, n0: usize, n1: usize, col: &mut [T]) {
    let (n, h, w) = (g.n as usize, g.h as usize, g.w as usize);
    let (oh, ow) = (g.oh as usize, g.ow as usize);
    let ohw = oh * ow;
    let cols = (n1 - n0) * ohw;
    let k = g.k as usize;
    debug_assert!(col.len() >= g.col_rows() * cols);
    for ci in 0..g.c_in as usize {
        for kh in 0..k {
            for kw in 0..k {
                let row = (ci * k + kh) * k + kw;
                let (lo, hi) = valid_cols(g, kw as i32);
                let (lo, hi) = (lo as usize, hi as usize);
                let dst_row = &mut col[row * cols..(row + 1) * cols];
                for img in n0..n1 {
                    let plane = &x[(ci * n + img) * h * w..][..h * w];
                    let dst = &mut dst_row[(img - n0) * ohw..][..ohw];
                    for r in 0..oh {
                        let d = &mut dst[r * ow..(r + 1) * ow];
                        let ih = (r * g.stride as usize + kh) as isize - g.pad as isize;
                        if ih < 0 || ih >= h as isize {
                            d.fill(T::zero());
                            continue;
                        }
                        let src = &plane[ih as usize * w..][..w];
                        d[..lo].fill(T::zero());
                        d[hi..].fill(T::zero());
                        let s = g.stride as usize;
                        let base = lo * s + kw - g.pad as usize; // >= 0 by construction of lo
                        if relu_x {
                            for (o, v) in d[lo..hi].iter_mut().enumerate() {
                                *v = relu(src[base + o * s]);
                            }
                        } else if s == 1 {
                            d[lo..hi].copy_from_slice(&src[base..base + (hi - lo)]);
                        } else {
                            for (o, v) in d[lo..hi].iter_mut().enumerate() {
                                *v = src[base + o * s];
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Folds `col[c_in*k*k, (n1-n0)*oh*ow]` back onto the input planes of images
/// `n0..n1` (the adjoint of [`im2col`]), adding into `plane_acc`, one plane at
/// a time: `emit(ci, img, summed_plane)`.
fn col2im_planes<T: Element>(g: &ConvGeom, col: &[T], n0: usize, n1: usize, mut emit: impl FnMut(usize, usize, &[T])) {
    let (h, w) = (g.h as usize, g.w as usize);
    let (oh, ow) = (g.oh as usize, g.ow as usize);
    let ohw = oh * ow;
    let cols = (n1 - n0) * ohw;
    let k = g.k as usize;
    let s = g.stride as usize;
    with_scratch::<T, _>(h * w, |acc| {
        for ci in 0..g.c_in as usize {
            for img in n0..n1 {
                acc.fill(T::zero());
                for kh in 0..k {
                    for kw in 0..k {
                        let row = (ci * k + kh) * k + kw;
                        let (lo, hi) = valid_cols(g, kw as i32);
                        let (lo, hi) = (lo as usize, hi as usize);
                        let src = &col[row * cols + (img - n0) * ohw..][..ohw];
                        for r in 0..oh {
                            let ih = (r * s + kh) as isize - g.pad as isize;
                            if ih < 0 || ih >= h as isize {
                                continue;
                            }
                            let dst = &mut acc[ih as usize * w..][..w];
                            let base = lo * s + kw - g.pad as usize;
                            for (o, v) in src[r * ow + lo..r * ow + hi].iter().enumerate() {
                                dst[base + o * s] += *v;
                            }
                        }
                    }
                }
                emit(ci, img, acc);
            }
        }
    });
}

/// `y = conv(relu?(x), w) + bias`, CNHW in and out; `w` is `[c_out, c_in, k, k]`.
pub fn conv2d_forward<T: Element>(g: &ConvGeom, x: &[T], relu_x: bool, w: &[T], bias: Option<&[T]>, y: &mut [T]) {
    assert_eq!(x.len(), g.input().len(), "conv2d_forward: x");
    assert_eq!(w.len(), g.weight_len(), "conv2d_forward: w");
    assert_eq!(y.len(), g.output().len(), "conv2d_forward: y");
    let (imgs, tiles) = tiling(g);
    let (n, ohw, kk, c_out) = (g.n as usize, (g.oh * g.ow) as usize, g.col_rows(), g.c_out as usize);
    let row_len = n * ohw;
    let out = Disjoint::new(y);
    (0..tiles).into_par_iter().for_each(|t| {
        let (n0, n1) = (t * imgs, ((t + 1) * imgs).min(n));
        let cols = (n1 - n0) * ohw;
        with_scratch::<T, _>(kk * cols, |col| {
            im2col(g, x, relu_x, n0, n1, col);
            // SAFETY: this tile writes only columns n0*ohw .. n1*ohw of each output
            // row; the view below spans other tiles' columns but gemm writes only
            // the m x n block it is given.
            let dst = unsafe { out.range(n0 * ohw, (c_out - 1) * row_len + cols) };
            gemm(c_out, cols, kk, Mat::rows(w, kk), Mat::rows(col, cols), dst, row_len, false);
            if let Some(b) = bias {
                for (co, &bv) in b.iter().enumerate() {
                    for v in &mut dst[co * row_len..co * row_len + cols] {
                        *v += bv;
                    }
                }
            }
        });
    });
}

/// `dx (+)= [x > 0] * conv_transpose(dy, w)`: the gradient with respect to the
/// conv's input. `relu_mask = Some(x)` when the forward pass used `relu(x)`.
pub fn conv2d_backward_data<T: Element>(g: &ConvGeom, dy: &[T], w: &[T], relu_mask: Option<&[T]>, dx: &mut [T], accumulate: bool) {
    assert_eq!(dy.len(), g.output().len(), "conv2d_backward_data: dy");
    assert_eq!(w.len(), g.weight_len(), "conv2d_backward_data: w");
    assert_eq!(dx.len(), g.input().len(), "conv2d_backward_data: dx");
    if let Some(m) = relu_mask {
        assert_eq!(m.len(), dx.len(), "conv2d_backward_data: relu_mask");
    }
    let (imgs, tiles) = tiling(g);
    let (n, ohw, kk, c_out) = (g.n as usize, (g.oh * g.ow) as usize, g.col_rows(), g.c_out as usize);
    let hw = (g.h * g.w) as usize;
    let row_len = n * ohw;
    let out = Disjoint::new(dx);
    (0..tiles).into_par_iter().for_each(|t| {
        let (n0, n1) = (t * imgs, ((t + 1) * imgs).min(n));
        let cols = (n1 - n0) * ohw;
        with_scratch::<T, _>(kk * cols, |dcol| {
            let dy_tile = &dy[n0 * ohw..];
            gemm(kk, cols, c_out, Mat::transposed(w, kk), Mat::rows(dy_tile, row_len), dcol, cols, false);
            col2im_planes(g, dcol, n0, n1, |ci, img, plane| {
                let off = (ci * n + img) * hw;
                // SAFETY: plane (ci, img) belongs to this tile's images only.
                let d = unsafe { out.range(off, hw) };
                match (relu_mask, accumulate) {
                    (Some(m), _) => {
                        let m = &m[off..off + hw];
                        for ((d, &v), &mv) in d.iter_mut().zip(plane).zip(m) {
                            let v = if mv > T::zero() { v } else { T::zero() };
                            *d = if accumulate { *d + v } else { v };
                        }
                    }
                    (None, true) => d.iter_mut().zip(plane).for_each(|(d, &v)| *d += v),
                    (None, false) => d.copy_from_slice(plane),
                }
            });
        });
    });
}

/// `dw += dy (x) im2col(relu?(x))`, `db += sum(dy)`: weight and bias gradients,
/// accumulated (FairNAS sums the gradients of several paths).
pub fn conv2d_backward_weight<T: Element>(g: &ConvGeom, x: &[T], relu_x: bool, dy: &[T], dw: &mut [T], db: Option<&mut [T]>) {
    assert_eq!(x.len(), g.input().len(), "conv2d_backward_weight: x");
    assert_eq!(dy.len(), g.output().len(), "conv2d_backward_weight: dy");
    assert_eq!(dw.len(), g.weight_len(), "conv2d_backward_weight: dw");
    let (imgs, tiles) = tiling(g);
    let (n, ohw, kk, c_out) = (g.n as usize, (g.oh * g.ow) as usize, g.col_rows(), g.c_out as usize);
    let row_len = n * ohw;
    let wl = g.weight_len();
    // One partial gradient per tile, summed in tile order below.
    let mut partial = vec![T::zero(); tiles * wl];
    partial.par_chunks_mut(wl).enumerate().for_each(|(t, part)| {
        let (n0, n1) = (t * imgs, ((t + 1) * imgs).min(n));
        let cols = (n1 - n0) * ohw;
        with_scratch::<T, _>(kk * cols, |col| {
            im2col(g, x, relu_x, n0, n1, col);
            gemm(c_out, kk, cols, Mat::rows(&dy[n0 * ohw..], row_len), Mat::transposed(col, cols), part, kk, false);
        });
    });
    for part in partial.chunks(wl) {
        dw.iter_mut().zip(part).for_each(|(d, &p)| *d += p);
    }
    if let Some(db) = db {
        assert_eq!(db.len(), c_out, "conv2d_backward_weight: db");
        db.par_iter_mut().enumerate().for_each(|(co, d)| {
            *d += sum(&dy[co * row_len..(co + 1) * row_len]);
        });
    }
}

/// A sum accumulated in f64: per-channel reductions over up to 10^7 values lose
/// too much in f32 (PyTorch uses pairwise and cascade sums for the same reason).
pub fn sum<T: Element>(v: &[T]) -> T {
    let mut acc = [0f64; 4];
    let chunks = v.chunks_exact(4);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..4 {
            acc[i] += c[i].as_f64();
        }
    }
    let tail: f64 = rest.iter().map(|r| r.as_f64()).sum();
    T::from_f64(acc[0] + acc[1] + acc[2] + acc[3] + tail)
}
