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

use super::elementwise::{keep, mask_in_place, store_masked};
use super::gemm::{gemm, gemm_row_blocks, Mat};
use super::parallel::{with_scratch, Disjoint};
use super::reduce;
use super::simd::vectorized;
use super::transpose::transpose;
use crate::backend::cpu::{CpuBackend, CpuBuf};
use crate::backend::Memory;
use crate::element::Element;
use crate::geometry::ConvGeom;

#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
mod launch;

/// im2col scratch a tile aims for, in elements (about 1 MiB of f32: it stays in L2).
const TILE_ELEMS: usize = 1 << 18;

/// Images per tile and number of tiles, from the geometry alone.
pub fn tiling(g: &ConvGeom) -> (usize, usize) {
    let per_image = g.col_rows() * (g.oh * g.ow) as usize;
    let imgs = (TILE_ELEMS / per_image.max(1)).clamp(1, g.n as usize);
    (imgs, (g.n as usize).div_ceil(imgs))
}

/// Images per tile and number of tiles for the forward and input-gradient
/// passes: tiles of [`tiling`]'s size at most (one per thread `in_place`,
/// where the pass reads its input and writes its output in place: no scratch
/// to keep in L2, and fewer, larger products run faster), of equal size and
/// as many as a multiple of the threads, so that no thread waits on another's
/// extra tile.
/// Their results do not depend on the tiling: a tile is whole output columns
/// of the GEMM, and the `gemm` crate computes a column of a product with a
/// row-major right-hand side the same way whatever the other columns
/// (`passes_are_independent_of_threads` checks the bits). The weight gradient
/// keeps [`tiling`]: it sums its tiles' partial gradients, so its tiles fix the
/// summation order; where they are fewer than the threads, it shares out each
/// tile's product by rows instead ([`gemm_row_blocks`], same bits).
fn even_tiling(g: &ConvGeom, in_place: bool) -> (usize, usize) {
    let n = g.n as usize;
    let threads = rayon::current_num_threads().max(1);
    let base = if in_place { 1 } else { tiling(g).1 };
    let tiles = base.next_multiple_of(threads).min(n);
    let imgs = n.div_ceil(tiles);
    (imgs, n.div_ceil(imgs))
}

/// The output columns `ow` whose input column `ow*stride - pad + kw` lies in `0..w`.
#[inline]
fn valid_cols(g: &ConvGeom, kw: i32) -> (i32, i32) {
    // smallest ow with ow*s - p + kw >= 0, and one past the largest with ... <= w - 1
    let lo = (g.pad - kw + g.stride - 1).div_euclid(g.stride).max(0);
    let hi = ((g.w - 1 + g.pad - kw).div_euclid(g.stride) + 1).clamp(lo, g.ow);
    (lo, hi)
}

/// A same stride-1 conv's im2col rows are whole shifted copies of the input planes.
fn is_same_stride1(g: &ConvGeom) -> bool {
    g.is_same_stride1()
}

/// For a same stride-1 conv, tap `(kh, kw)`: the flat shift from output to input
/// position, the output rows whose input row exists, and the output columns
/// whose input column does not (one side only).
#[inline]
fn same_tap(g: &ConvGeom, kh: usize, kw: usize) -> (isize, std::ops::Range<usize>, std::ops::Range<usize>) {
    let (h, w, p) = (g.h as isize, g.w as isize, g.pad as isize);
    let (dh, dw) = (kh as isize - p, kw as isize - p);
    let shift = dh * w + dw;
    let rows = (-dh).max(0) as usize..(h - dh).min(h) as usize;
    let bad_cols = if dw < 0 { 0..(-dw) as usize } else { (w - dw) as usize..w as usize };
    (shift, rows, bad_cols)
}

/// A pointwise stride-1 conv without a ReLU reads its input as it is: the
/// im2col of images `n0..n1` would be a copy of their columns of `x` (`c_in`
/// rows of stride `n * h * w`), which the GEMM reads in place.
fn reads_input_in_place(g: &ConvGeom, relu_x: bool) -> bool {
    g.k == 1 && g.stride == 1 && g.pad == 0 && !relu_x
}

/// The scratch [`unfolded`] needs for `cols` output columns.
fn unfold_scratch(g: &ConvGeom, relu_x: bool, cols: usize) -> usize {
    if reads_input_in_place(g, relu_x) {
        0
    } else {
        g.col_rows() * cols
    }
}

/// Images `n0..n1` of `relu?(x)` as a GEMM operand `[c_in*k*k, (n1-n0)*oh*ow]`:
/// unfolded into `col` (im2col), or `x` itself where that is the same matrix.
fn unfolded<'a, T: Element>(g: &ConvGeom, x: &'a [T], relu_x: bool, n0: usize, n1: usize, col: &'a mut [T]) -> Mat<'a, T> {
    let ohw = (g.oh * g.ow) as usize;
    if reads_input_in_place(g, relu_x) {
        return Mat::rows(&x[n0 * ohw..], g.n as usize * ohw);
    }
    im2col(g, x, relu_x, n0, n1, col);
    Mat::rows(col, (n1 - n0) * ohw)
}

/// Unfolds images `n0..n1` of `relu?(x)` into `col[c_in*k*k, (n1-n0)*oh*ow]`.
pub fn im2col<T: Element>(g: &ConvGeom, x: &[T], relu_x: bool, n0: usize, n1: usize, col: &mut [T]) {
    let (n, h, w) = (g.n as usize, g.h as usize, g.w as usize);
    let (oh, ow) = (g.oh as usize, g.ow as usize);
    let ohw = oh * ow;
    let cols = (n1 - n0) * ohw;
    let k = g.k as usize;
    debug_assert!(col.len() >= g.col_rows() * cols);
    let same = is_same_stride1(g);
    // A pointwise conv's one tap is the plane itself: its ReLU goes straight into the column.
    let pointwise = same && k == 1;
    // Otherwise the ReLU of a plane is taken once, not once per tap (k*k times).
    with_scratch::<T, _>(if relu_x && !pointwise { h * w } else { 0 }, |relu_plane| {
        vectorized(
            #[inline(always)]
            || {
                for ci in 0..g.c_in as usize {
                    for img in n0..n1 {
                        let mut plane = &x[(ci * n + img) * h * w..][..h * w];
                        if pointwise {
                            let dst = &mut col[ci * cols + (img - n0) * ohw..][..ohw];
                            if relu_x {
                                dst.iter_mut().zip(plane).for_each(|(d, &v)| *d = keep(v, v));
                            } else {
                                dst.copy_from_slice(plane);
                            }
                            continue;
                        }
                        if relu_x {
                            relu_plane.iter_mut().zip(plane).for_each(|(r, &v)| *r = keep(v, v));
                            plane = relu_plane;
                        }
                        for kh in 0..k {
                            for kw in 0..k {
                                let row = (ci * k + kh) * k + kw;
                                let dst = &mut col[row * cols + (img - n0) * ohw..][..ohw];
                                if same {
                                    im2col_same_tap(g, plane, kh, kw, dst);
                                } else {
                                    im2col_general_tap(g, plane, kh, kw, dst);
                                }
                            }
                        }
                    }
                }
            },
        )
    });
}

/// One tap of one plane for a same stride-1 conv: a single shifted copy, then
/// zeros where the tap falls into the padding.
#[inline(always)]
fn im2col_same_tap<T: Element>(g: &ConvGeom, plane: &[T], kh: usize, kw: usize, dst: &mut [T]) {
    let w = g.w as usize;
    let (shift, rows, bad_cols) = same_tap(g, kh, kw);
    dst[..rows.start * w].fill(T::zero());
    dst[rows.end * w..].fill(T::zero());
    // dst[q] = plane[q + shift] over the valid rows, clipped to the plane; the
    // clipped ends and the wrapped-around columns are padding, zeroed below.
    let q0 = (rows.start * w).max((-shift).max(0) as usize);
    let q1 = (rows.end * w).min((plane.len() as isize - shift) as usize);
    if q0 < q1 {
        dst[q0..q1].copy_from_slice(&plane[(q0 as isize + shift) as usize..(q1 as isize + shift) as usize]);
    }
    if !bad_cols.is_empty() {
        for r in rows {
            dst[r * w + bad_cols.start..r * w + bad_cols.end].fill(T::zero());
        }
    }
}

/// One tap of one plane for any stride and padding, row by row.
#[inline(always)]
fn im2col_general_tap<T: Element>(g: &ConvGeom, plane: &[T], kh: usize, kw: usize, dst: &mut [T]) {
    let (h, w) = (g.h as usize, g.w as usize);
    let (oh, ow) = (g.oh as usize, g.ow as usize);
    let s = g.stride as usize;
    let (lo, hi) = valid_cols(g, kw as i32);
    let (lo, hi) = (lo as usize, hi as usize);
    for r in 0..oh {
        let d = &mut dst[r * ow..(r + 1) * ow];
        let ih = (r * s + kh) as isize - g.pad as isize;
        if ih < 0 || ih >= h as isize {
            d.fill(T::zero());
            continue;
        }
        let src = &plane[ih as usize * w..][..w];
        d[..lo].fill(T::zero());
        d[hi..].fill(T::zero());
        let base = lo * s + kw - g.pad as usize; // >= 0 by construction of lo
        for (o, v) in d[lo..hi].iter_mut().enumerate() {
            *v = src[base + o * s];
        }
    }
}

/// Folds `col[c_in*k*k, (n1-n0)*oh*ow]` back onto the input planes of images
/// `n0..n1` (the adjoint of [`im2col`]), one plane at a time:
/// `emit(ci, img, summed_plane)`. Used for strided convs; same stride-1 convs
/// take the flipped-weight path of [`conv2d_backward_data`] instead.
fn col2im_planes<T: Element>(g: &ConvGeom, col: &[T], n0: usize, n1: usize, mut emit: impl FnMut(usize, usize, &[T])) {
    let (h, w) = (g.h as usize, g.w as usize);
    let ohw = (g.oh * g.ow) as usize;
    let cols = (n1 - n0) * ohw;
    let k = g.k as usize;
    with_scratch::<T, _>(h * w, |acc| {
        vectorized(
            #[inline(always)]
            || {
                for ci in 0..g.c_in as usize {
                    for img in n0..n1 {
                        acc.fill(T::zero());
                        for kh in 0..k {
                            for kw in 0..k {
                                let row = (ci * k + kh) * k + kw;
                                col2im_general_tap(g, &col[row * cols + (img - n0) * ohw..][..ohw], kh, kw, acc);
                            }
                        }
                        emit(ci, img, acc);
                    }
                }
            },
        )
    });
}

/// One tap for any stride and padding, row by row.
#[inline(always)]
fn col2im_general_tap<T: Element>(g: &ConvGeom, src: &[T], kh: usize, kw: usize, acc: &mut [T]) {
    let (h, w) = (g.h as usize, g.w as usize);
    let (oh, ow) = (g.oh as usize, g.ow as usize);
    let s = g.stride as usize;
    let (lo, hi) = valid_cols(g, kw as i32);
    let (lo, hi) = (lo as usize, hi as usize);
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

/// `y = conv(relu?(x), w) + bias`, CNHW in and out; `w` is `[c_out, c_in, k, k]`.
pub fn conv2d_forward<T: Element>(g: &ConvGeom, x: &[T], relu_x: bool, w: &[T], bias: Option<&[T]>, y: &mut [T]) {
    assert_eq!(x.len(), g.input().len(), "conv2d_forward: x");
    assert_eq!(w.len(), g.weight_len(), "conv2d_forward: w");
    assert_eq!(y.len(), g.output().len(), "conv2d_forward: y");
    let (imgs, tiles) = even_tiling(g, reads_input_in_place(g, relu_x));
    let (n, ohw, kk, c_out) = (g.n as usize, (g.oh * g.ow) as usize, g.col_rows(), g.c_out as usize);
    let row_len = n * ohw;
    let out = Disjoint::new(y);
    (0..tiles).into_par_iter().for_each(|t| {
        let (n0, n1) = (t * imgs, ((t + 1) * imgs).min(n));
        let cols = (n1 - n0) * ohw;
        with_scratch::<T, _>(unfold_scratch(g, relu_x, cols), |col| {
            let b = unfolded(g, x, relu_x, n0, n1, col);
            // SAFETY: this tile writes only columns n0*ohw .. n1*ohw of each output
            // row; the view below spans other tiles' columns but gemm writes only
            // the m x n block it is given.
            let dst = unsafe { out.range(n0 * ohw, (c_out - 1) * row_len + cols) };
            // The bias goes in first and the GEMM accumulates onto it.
            if let Some(b) = bias {
                for (co, &bv) in b.iter().enumerate() {
                    dst[co * row_len..co * row_len + cols].fill(bv);
                }
            }
            gemm(c_out, cols, kk, Mat::rows(w, kk), b, dst, row_len, bias.is_some());
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
    let n = g.n as usize;
    let hw = (g.h * g.w) as usize;
    let out = Disjoint::new(dx);
    // Adds a tile's input-gradient plane into dx, through the ReLU mask.
    let emit = |ci: usize, img: usize, plane: &[T]| {
        let off = (ci * n + img) * hw;
        // SAFETY: plane (ci, img) belongs to the calling tile's images only.
        let d = unsafe { out.range(off, hw) };
        store_masked(d, plane, relu_mask.map(|m| &m[off..off + hw]), accumulate);
    };
    if is_same_stride1(g) {
        // A same stride-1 conv's input gradient is the same conv of dy with the
        // weights flipped and transposed: one im2col of dy and one GEMM straight
        // into input-plane layout, no fold-back.
        let k = g.k as usize;
        let (c_in, c_out) = (g.c_in as usize, g.c_out as usize);
        // a whole weight tensor (up to 1536 x 256 here): into pooled scratch, in
        // parallel over its rows (a fresh vector in one thread took a fifth more)
        with_scratch::<T, _>(w.len(), |wf| {
            wf.par_chunks_mut(c_out * k * k).enumerate().for_each(|(ci, row)| {
                for (co, taps) in row.chunks_mut(k * k).enumerate() {
                    for (t, &v) in w[(co * c_in + ci) * k * k..][..k * k].iter().enumerate() {
                        taps[k * k - 1 - t] = v;
                    }
                }
            });
            let wf = &*wf;
            let gt = ConvGeom::with_pad(n, c_out, g.h as usize, g.w as usize, c_in, k, 1, g.pad as usize);
            // without a sum to add to, the GEMM writes the gradient in place (and the
            // mask is applied there); a pointwise conv then needs no scratch at all
            let in_place = !accumulate;
            let (imgs, tiles) = even_tiling(&gt, in_place && reads_input_in_place(&gt, false));
            let kk = gt.col_rows();
            (0..tiles).into_par_iter().for_each(|t| {
                let (n0, n1) = (t * imgs, ((t + 1) * imgs).min(n));
                let cols = (n1 - n0) * hw;
                let col_len = unfold_scratch(&gt, false, cols);
                with_scratch::<T, _>(col_len + if in_place { 0 } else { c_in * cols }, |buf| {
                    let (col, res) = buf.split_at_mut(col_len);
                    let b = unfolded(&gt, dy, false, n0, n1, col);
                    if in_place {
                        // SAFETY: as in conv2d_forward, this tile's GEMM writes only its images' columns.
                        let dst = unsafe { out.range(n0 * hw, (c_in - 1) * n * hw + cols) };
                        gemm(c_in, cols, kk, Mat::rows(wf, kk), b, dst, n * hw, false);
                        if let Some(m) = relu_mask {
                            // this tile's planes, where the GEMM wrote them
                            for ci in 0..c_in {
                                let (at, off) = (ci * n * hw, (ci * n + n0) * hw);
                                mask_in_place(&mut dst[at..at + cols], &m[off..off + cols]);
                            }
                        }
                        return;
                    }
                    gemm(c_in, cols, kk, Mat::rows(wf, kk), b, res, cols, false);
                    for ci in 0..c_in {
                        for img in n0..n1 {
                            emit(ci, img, &res[ci * cols + (img - n0) * hw..][..hw]);
                        }
                    }
                });
            });
        });
        return;
    }
    let (imgs, tiles) = even_tiling(g, false);
    let (ohw, kk, c_out) = ((g.oh * g.ow) as usize, g.col_rows(), g.c_out as usize);
    let row_len = n * ohw;
    (0..tiles).into_par_iter().for_each(|t| {
        let (n0, n1) = (t * imgs, ((t + 1) * imgs).min(n));
        let cols = (n1 - n0) * ohw;
        with_scratch::<T, _>(kk * cols, |dcol| {
            gemm(kk, cols, c_out, Mat::rows(w, kk).t(), Mat::rows(&dy[n0 * ohw..], row_len), dcol, cols, false);
            col2im_planes(g, dcol, n0, n1, emit);
        });
    });
}

/// `dw += dy (x) im2col(relu?(x))`, `db += sum(dy)`: weight and bias gradients,
/// accumulated (FairNAS sums the gradients of several paths).
///
/// With `sample_sq`, also `sample_sq[i] += ||g_i||^2` where `g_i` is sample
/// i's contribution to these gradients (its pixels' part of the reduction,
/// weight and bias), so that `sum_i g_i` is the gradient: the reduction runs
/// in tiles of one image, whose partial gradient is `g_i`; its squared norm
/// is taken before the tile joins the sum, and no `g_i` outlives its tile.
pub fn conv2d_backward_weight<T: Element>(
    g: &ConvGeom,
    x: &[T],
    relu_x: bool,
    dy: &[T],
    dw: &mut [T],
    db: Option<&mut [T]>,
    sample_sq: Option<&mut [T]>,
) {
    assert_eq!(x.len(), g.input().len(), "conv2d_backward_weight: x");
    assert_eq!(dy.len(), g.output().len(), "conv2d_backward_weight: dy");
    assert_eq!(dw.len(), g.weight_len(), "conv2d_backward_weight: dw");
    let (n, ohw, kk, c_out) = (g.n as usize, (g.oh * g.ow) as usize, g.col_rows(), g.c_out as usize);
    let per_sample = sample_sq.is_some();
    let (imgs, tiles) = if per_sample { (1, n) } else { tiling(g) };
    // Fewer tiles than threads (a late stage's pointwise convs are one tile):
    // each tile's product is shared out in blocks of rows, which keeps its bits.
    let parts = rayon::current_num_threads().div_ceil(tiles);
    let row_len = n * ohw;
    let wl = g.weight_len();
    // each tile's squared norm (used with `sample_sq`, where a tile is a sample)
    let mut tile_sq = vec![0f64; tiles];
    // One partial gradient per tile, summed in tile order below. Each is
    // `dy [c_out x cols] * col^T [cols x kk]` or its transpose, whichever has
    // more rows: the GEMM is two to three times faster with the longer side as
    // rows (it packs its left operand across rows), and either way gives the
    // same bits (`a_product_and_its_transpose_agree`). Per-sample norms sum a
    // part in its memory order, so they keep one orientation.
    let transposed = per_sample || kk > c_out;
    with_scratch::<T, _>(tiles * wl, |partial| {
        partial.par_chunks_mut(wl).zip(tile_sq.par_iter_mut()).enumerate().for_each(|(t, (part, sq))| {
            let (n0, n1) = (t * imgs, ((t + 1) * imgs).min(n));
            let cols = (n1 - n0) * ohw;
            let dy = Mat::rows(&dy[n0 * ohw..], row_len);
            with_scratch::<T, _>(unfold_scratch(g, relu_x, cols), |col| {
                let col = unfolded(g, x, relu_x, n0, n1, col);
                if transposed {
                    gemm_row_blocks(parts, kk, c_out, cols, col, dy.t(), part, c_out, false);
                } else {
                    gemm_row_blocks(parts, c_out, kk, cols, dy, col.t(), part, kk, false);
                }
            });
            if per_sample {
                *sq = reduce::sum_map(part, |v| v * v);
            }
        });
        add_parts(partial, transposed, kk, c_out, dw);
    });
    let bias = db.is_some();
    if let Some(db) = db {
        assert_eq!(db.len(), c_out, "conv2d_backward_weight: db");
        db.par_iter_mut().enumerate().for_each(|(co, d)| {
            *d += T::from_f64(reduce::sum(&dy[co * row_len..(co + 1) * row_len]));
        });
    }
    if let Some(out) = sample_sq {
        assert_eq!(out.len(), n, "conv2d_backward_weight: sample_sq");
        out.par_iter_mut().zip(&tile_sq).enumerate().for_each(|(i, (o, &w))| *o += T::from_f64(w + sample_bias_sq(g, dy, bias, i)));
    }
}

/// `dw [c_out x kk] += part` for each `part` of `partial`, in order, each
/// `[c_out x kk]` or, `transposed`, `[kk x c_out]`: every element gets its
/// terms in the order of a plain loop over the parts, in parallel over
/// contiguous runs. Transposed parts are added to `dw`'s transpose, turned
/// there and back in 8 x 8 tiles (adding them across strides, one value at a
/// time, took half the weight gradient of a 1536 -> 256 projection).
fn add_parts<T: Element>(partial: &[T], transposed: bool, kk: usize, c_out: usize, dw: &mut [T]) {
    // rows of the transposes per task, values of the sums per task
    const BLOCK: usize = 64;
    const RUN: usize = 4096;
    let wl = kk * c_out;
    let add = |acc: &mut [T]| {
        acc.par_chunks_mut(RUN).enumerate().for_each(|(b, a)| {
            vectorized(
                #[inline(always)]
                || {
                    for part in partial.chunks(wl) {
                        a.iter_mut().zip(&part[b * RUN..]).for_each(|(d, &v)| *d += v);
                    }
                },
            )
        })
    };
    if !transposed {
        return add(dw);
    }
    with_scratch::<T, _>(wl, |acc| {
        // acc[r][co] = dw[co][r], then the sums, then back
        acc.par_chunks_mut(BLOCK * c_out).enumerate().for_each(|(b, a)| {
            transpose(&dw[b * BLOCK..], kk, c_out, a.len() / c_out, a, c_out, false);
        });
        add(acc);
        dw.par_chunks_mut(BLOCK * kk).enumerate().for_each(|(b, d)| {
            transpose(&acc[b * BLOCK..], c_out, kk, d.len() / kk, d, kk, false);
        });
    });
}

/// `||sum over sample i's pixels of dy||^2` over the output channels (its bias
/// gradient's squared norm), or 0 without a bias.
fn sample_bias_sq<T: Element>(g: &ConvGeom, dy: &[T], bias: bool, i: usize) -> f64 {
    let (ohw, row_len) = ((g.oh * g.ow) as usize, g.output().per_channel());
    if !bias {
        return 0.0;
    }
    (0..g.c_out as usize).map(|co| reduce::sum(&dy[co * row_len + i * ohw..co * row_len + (i + 1) * ohw]).powi(2)).sum()
}

/// `out[i] += ||dy_i (x) im2col(relu?(x_i))||^2 (+ ||sum_p dy_i||^2 with a bias)`:
/// the squared norm of sample i's weight (and bias) gradient, one GEMM per
/// sample into a per-thread scratch that never leaves the cache.
pub fn conv2d_per_sample_sq_norms<T: Element>(g: &ConvGeom, x: &[T], relu_x: bool, dy: &[T], bias: bool, out: &mut [T]) {
    assert_eq!(x.len(), g.input().len(), "conv2d_per_sample_sq_norms: x");
    assert_eq!(dy.len(), g.output().len(), "conv2d_per_sample_sq_norms: dy");
    assert_eq!(out.len(), g.n as usize, "conv2d_per_sample_sq_norms: out");
    let (n, ohw, kk, c_out) = (g.n as usize, (g.oh * g.ow) as usize, g.col_rows(), g.c_out as usize);
    let row_len = n * ohw;
    out.par_iter_mut().enumerate().for_each(|(i, o)| {
        let col_len = unfold_scratch(g, relu_x, ohw);
        let sq = with_scratch::<T, _>(col_len + kk * c_out, |buf| {
            let (col, gw) = buf.split_at_mut(col_len);
            gemm(kk, c_out, ohw, unfolded(g, x, relu_x, i, i + 1, col), Mat::rows(&dy[i * ohw..], row_len).t(), gw, c_out, false);
            reduce::sum_map(gw, |v| v * v)
        });
        *o += T::from_f64(sq + sample_bias_sq(g, dy, bias, i));
    });
}

/// The backend interface of these ops: the CPU engine below, the CUDA
/// kernels of `kernels/conv2d.cu` through `launch.rs`.
pub trait Conv2dOps: Memory {
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
    /// With `sample_sq`, also each sample's squared norm of its contribution
    /// to `dw` and `db`, added into `sample_sq[n]`, in the same pass.
    #[allow(clippy::too_many_arguments)]
    fn conv2d_backward_weight(
        &self,
        g: &ConvGeom,
        x: &Self::Buf,
        relu_x: bool,
        dy: &Self::Buf,
        dw: &mut Self::Buf,
        db: Option<&mut Self::Buf>,
        sample_sq: Option<&mut Self::Buf>,
    );
    /// Per-sample squared norms of the weight (and bias) gradient, added into `out[n]`.
    fn conv2d_per_sample_sq_norms(&self, g: &ConvGeom, x: &Self::Buf, relu_x: bool, dy: &Self::Buf, bias: bool, out: &mut Self::Buf);
}

impl<T: Element> Conv2dOps for CpuBackend<T> {
    fn conv2d_forward(&self, g: &ConvGeom, x: &CpuBuf<T>, relu_x: bool, w: &CpuBuf<T>, bias: Option<&CpuBuf<T>>, y: &mut CpuBuf<T>) {
        self.op("conv2d_forward", || conv2d_forward(g, x, relu_x, w, bias.map(|b| b.as_slice()), y))
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
        self.op("conv2d_backward_data", || conv2d_backward_data(g, dy, w, relu_mask.map(|m| m.as_slice()), dx, accumulate))
    }
    fn conv2d_backward_weight(
        &self,
        g: &ConvGeom,
        x: &CpuBuf<T>,
        relu_x: bool,
        dy: &CpuBuf<T>,
        dw: &mut CpuBuf<T>,
        db: Option<&mut CpuBuf<T>>,
        sample_sq: Option<&mut CpuBuf<T>>,
    ) {
        self.op("conv2d_backward_weight", || {
            conv2d_backward_weight(g, x, relu_x, dy, dw, db.map(|b| b.as_mut_slice()), sample_sq.map(|s| s.as_mut_slice()))
        })
    }
    fn conv2d_per_sample_sq_norms(&self, g: &ConvGeom, x: &CpuBuf<T>, relu_x: bool, dy: &CpuBuf<T>, bias: bool, out: &mut CpuBuf<T>) {
        self.op("conv2d_per_sample_sq_norms", || conv2d_per_sample_sq_norms(g, x, relu_x, dy, bias, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::uniform01;

    /// Values uniform in [-1, 1).
    fn random(len: usize, seed: u64) -> Vec<f32> {
        (0..len).map(|i| (uniform01(seed, i as u64) * 2.0 - 1.0) as f32).collect()
    }

    /// Every output of the three passes (and the per-sample norms), run in a pool of `threads`.
    fn passes(g: &ConvGeom, relu_x: bool, per_sample: bool, threads: usize) -> Vec<Vec<f32>> {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let (x, w, dy) = (random(g.input().len(), 1), random(g.weight_len(), 2), random(g.output().len(), 3));
        pool.install(|| {
            let mut y = vec![f32::NAN; dy.len()];
            conv2d_forward(g, &x, relu_x, &w, None, &mut y);
            let mut dx = vec![f32::NAN; x.len()];
            conv2d_backward_data(g, &dy, &w, relu_x.then_some(&x[..]), &mut dx, false);
            let (mut dw, mut db) = (random(w.len(), 4), random(g.c_out as usize, 5));
            let mut sq = per_sample.then(|| vec![0f32; g.n as usize]);
            conv2d_backward_weight(g, &x, relu_x, &dy, &mut dw, Some(&mut db), sq.as_deref_mut());
            vec![y, dx, dw, db, sq.unwrap_or_default()]
        })
    }

    /// `add_parts` gives each weight its terms in the order of a plain loop
    /// over the parts, bit for bit, in both layouts of the parts, on sizes
    /// that are not multiples of the transposes' 8 x 8 tiles nor of its blocks.
    #[test]
    fn add_parts_sums_in_part_order() {
        for (kk, c_out, parts) in [(67, 13, 3), (13, 70, 2), (200, 130, 1), (9, 9, 4)] {
            let partial: Vec<f32> = random(parts * kk * c_out, 7).iter().map(|v| v * 1e3).collect();
            let dw0 = random(c_out * kk, 8);
            for transposed in [false, true] {
                let mut want = dw0.clone();
                for part in partial.chunks(kk * c_out) {
                    for co in 0..c_out {
                        for r in 0..kk {
                            want[co * kk + r] += if transposed { part[r * c_out + co] } else { part[co * kk + r] };
                        }
                    }
                }
                let mut got = dw0.clone();
                add_parts(&partial, transposed, kk, c_out, &mut got);
                let same = got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{kk}x{c_out}, {parts} parts, transposed {transposed}");
            }
        }
    }

    /// The thread count changes how the forward and input-gradient passes
    /// split a batch ([`even_tiling`]: 1, 2 and 5 threads split it three ways),
    /// never a bit of any result, nor leaves an image out (the outputs start as
    /// NaN). Geometries of one tile and of several, with and without the fused
    /// ReLU and per-sample norms.
    #[test]
    fn passes_are_independent_of_threads() {
        let cases = [
            // (n, c_in, hw, c_out, k, stride, relu_x)
            (8, 16, 8, 160, 1, 1, false),
            (8, 96, 8, 24, 1, 1, true),
            (7, 4, 9, 20, 3, 2, true),
            (5, 3, 11, 70, 3, 1, false),
            (64, 48, 16, 16, 1, 1, true),  // several tiles: 64 images of 12,288 unfolded values
            (64, 384, 4, 64, 1, 1, true),  // 2 tiles (42 + 22 images before they were even)
            (64, 16, 16, 96, 1, 1, true),  // one tile, whose weight gradient is shared out by rows
            (16, 256, 4, 70, 1, 1, false), // one tile of 256 rows
        ];
        for (n, c_in, hw, c_out, k, stride, relu_x) in cases {
            let g = ConvGeom::new(n, c_in, hw, hw, c_out, k, stride);
            for per_sample in [false, true] {
                let one = passes(&g, relu_x, per_sample, 1);
                for threads in [2, 5] {
                    let many = passes(&g, relu_x, per_sample, threads);
                    for (i, (a, b)) in one.iter().zip(&many).enumerate() {
                        let same = a.len() == b.len() && a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits());
                        assert!(same, "output {i} of {g:?} (per sample: {per_sample}) differs at {threads} threads");
                    }
                }
            }
        }
    }
}
