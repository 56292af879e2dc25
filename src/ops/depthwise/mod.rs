//! Depthwise convolution on CNHW activations (MobileNet's: one `k x k`
//! filter per channel, `groups = channels`), forward, input gradient, weight
//! gradient and per-sample weight-gradient norms.
//!
//! The CPU reference of `kernels/depthwise.cu`. The geometry is a
//! [`ConvGeom`] with `c_in == c_out` (weights `[c, 1, k, k]`, PyTorch's
//! layout). Every output value sums its taps in row-major order `(kh, kw)`,
//! and every input gradient its taps in the same order, as the kernels do
//! (the CPU reads a zero-padded copy of each channel, so its padding taps add
//! exact zeros where the kernels skip them: a [`Flat`] copy for stride 1 on
//! planes 16 wide or more, a batch-innermost one for the rest and the weight
//! gradient; an input gradient through the batch-innermost copy gathers only
//! the taps that reach it); the weight gradient sums each sample's pixels,
//! then the samples in order in f64.
//! Channels are independent tasks, so results do not depend on the number of
//! threads.
//!
//! `relu_x = true` means the op sees `relu(x)` instead of `x`; the input
//! gradient then multiplies by the ReLU mask `x > 0`, as autograd would.

use rayon::prelude::*;

use super::elementwise::{keep, store_masked};
use super::parallel::{with_scratch, Disjoint};
use super::simd::vectorized;
use super::transpose::{transpose, transpose_into};
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

/// The most taps of a filter: kernel 5.
const MAX_TAPS: usize = 25;

fn check(g: &ConvGeom, what: &str) {
    assert_eq!(g.c_in, g.c_out, "{what}: a depthwise conv keeps its channels");
    assert!(g.k * g.k <= MAX_TAPS as i32, "{what}: kernel {} is larger than 5", g.k);
}

/// Channel `c` of the CNHW tensor `x` (`n` planes of `h x w`), through a ReLU
/// when `relu`, into `t` laid out batch-innermost and zero-padded:
/// `t[((r + pad) * (w + 2 pad) + col + pad) * n + i] = x[c, i, r, col]`. Each
/// tap is then one multiply-add over n contiguous values, whatever the size
/// of the planes (a 4x4 plane alone would give loops of 4).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gather_channel<T: Element>(x: &[T], c: usize, n: usize, h: usize, w: usize, pad: usize, relu: bool, t: &mut [T]) {
    let wp = w + 2 * pad;
    let planes = &x[c * n * h * w..(c + 1) * n * h * w];
    // zeros only between the rows (and past the last: slack included), each value written once
    let mut end = 0;
    for r in 0..h {
        let start = ((r + pad) * wp + pad) * n;
        t[end..start].fill(T::zero());
        end = start + w * n;
    }
    t[end..].fill(T::zero());
    if pad == 0 {
        // the rows follow each other: the planes' h * w columns are t's rows
        return transpose(planes, h * w, n, h * w, t, n, relu);
    }
    // one transpose over whole planes (row by row, a 4-wide plane would leave no 8 x 8 tile)
    with_scratch::<usize, _>(h * w, |col_at| {
        for (q, at) in col_at.iter_mut().enumerate() {
            *at = ((q / w + pad) * wp + pad + q % w) * n;
        }
        transpose_into(planes, h * w, n, h * w, t, |q| col_at[q], relu);
    });
}

/// The inverse of [`gather_channel`] without padding: `planes[i * hw + q] =
/// t[q * n + i]` for the n planes of `hw` values.
#[inline(always)]
fn scatter_channel<T: Element>(t: &[T], n: usize, hw: usize, planes: &mut [T]) {
    transpose(t, n, hw, n, planes, hw, false);
}

/// A stride-1 channel's planes, padded with zeros that neighbouring rows and
/// images share: pixel `(i, r, col)` of the `n` planes of `h x w` sits at
/// `lead + i * image + r * row + col`, with `p` zero columns after each row,
/// `p` zero rows after each image and `p` rows before the first. A tap
/// `(kh, kw)` of every output pixel then reads one shift of the whole run,
/// `+ (kh - p) * row + (kw - p)`, which lands on a zero wherever the tap falls
/// into the padding: each tap is one long multiply-add over the channel (the
/// positions between pixels compute values nobody reads).
struct Flat {
    row: usize,
    image: usize,
    lead: usize,
    /// Positions from the first pixel to one past the last.
    span: usize,
    /// The whole run: the span and `p` rows and columns of zeros on each side.
    len: usize,
    n: usize,
    h: usize,
    w: usize,
}

impl Flat {
    fn new(n: usize, h: usize, w: usize, p: usize) -> Self {
        let (row, image) = (w + p, (h + p) * (w + p));
        let lead = p * row + p;
        let span = (n - 1) * image + (h - 1) * row + w;
        Flat { row, image, lead, span, len: span + 2 * lead, n, h, w }
    }
    /// The offset of tap `(kh, kw)` from the output pixel it serves.
    fn shift(&self, kh: usize, kw: usize, p: usize) -> isize {
        (kh as isize - p as isize) * self.row as isize + kw as isize - p as isize
    }
    /// `f(start in the planes, start in the run)` for every pixel row.
    #[inline(always)]
    fn rows(&self, mut f: impl FnMut(usize, usize)) {
        for i in 0..self.n {
            for r in 0..self.h {
                f((i * self.h + r) * self.w, self.lead + i * self.image + r * self.row);
            }
        }
    }
}

/// Channel `c` of the CNHW tensor `x`, through a ReLU when `relu`, into the zeroed [`Flat`] run `t`.
#[inline(always)]
fn flatten_channel<T: Element>(f: &Flat, x: &[T], c: usize, relu: bool, t: &mut [T]) {
    let plane = &x[c * f.n * f.h * f.w..(c + 1) * f.n * f.h * f.w];
    t.fill(T::zero());
    f.rows(|src, dst| {
        let (s, d) = (&plane[src..src + f.w], &mut t[dst..dst + f.w]);
        if relu {
            d.iter_mut().zip(s).for_each(|(d, &v)| *d = keep(v, v));
        } else {
            d.copy_from_slice(s);
        }
    });
}

/// `acc[q] = sum over taps of w[tap] * src[q + sign * shift(tap)]` over the
/// span, taps in `(kh, kw)` order, a block of `BLOCK` positions at a time:
/// its sums stay in registers while every tap adds to them (one load per
/// multiply-add, where a tap at a time over the whole span also loads and
/// stores the sums).
#[inline(always)]
fn flat_taps<T: Element>(f: &Flat, k: usize, p: usize, taps: &[T], sign: isize, src: &[T], acc: &mut [T]) {
    const BLOCK: usize = 64;
    let mut from = [0usize; MAX_TAPS];
    for kh in 0..k {
        for kw in 0..k {
            from[kh * k + kw] = (f.lead as isize + sign * f.shift(kh, kw, p)) as usize;
        }
    }
    let (taps, from) = (&taps[..k * k], &from[..k * k]);
    let dst = &mut acc[f.lead..f.lead + f.span];
    let mut blocks = dst.chunks_exact_mut(BLOCK);
    for (b, out) in blocks.by_ref().enumerate() {
        let mut sums = [T::zero(); BLOCK];
        for (&t, &at) in taps.iter().zip(from) {
            let s = &src[at + b * BLOCK..][..BLOCK];
            for j in 0..BLOCK {
                sums[j] += t * s[j];
            }
        }
        out.copy_from_slice(&sums);
    }
    let rest = blocks.into_remainder();
    let q0 = f.span - rest.len();
    rest.fill(T::zero());
    for (&t, &at) in taps.iter().zip(from) {
        rest.iter_mut().zip(&src[at + q0..]).for_each(|(a, &v)| *a += t * v);
    }
}

/// A same stride-1 depthwise conv on [`Flat`] runs, channel by channel:
/// `out (+)= [mask > 0] * sum over taps of w[tap] src[q + sign * shift(tap)]`
/// with `src` through a ReLU when `relu`; `sign` 1 is the forward pass,
/// -1 the input gradient (the transposed conv).
#[allow(clippy::too_many_arguments)]
fn flat_conv<T: Element>(g: &ConvGeom, src: &[T], relu: bool, w: &[T], sign: isize, out: &mut [T], mask: Option<&[T]>, accumulate: bool) {
    let (n, h, wd, k, p) = (g.n as usize, g.h as usize, g.w as usize, g.k as usize, g.pad as usize);
    let f = Flat::new(n, h, wd, p);
    out.par_chunks_mut(n * h * wd).enumerate().for_each(|(c, out)| {
        with_scratch::<T, _>(2 * f.len, |buf| {
            vectorized(
                #[inline(always)]
                || {
                    let (srcf, acc) = buf.split_at_mut(f.len);
                    flatten_channel(&f, src, c, relu, srcf);
                    flat_taps(&f, k, p, &w[c * k * k..(c + 1) * k * k], sign, srcf, acc);
                    let mask = mask.map(|m| &m[c * n * h * wd..(c + 1) * n * h * wd]);
                    f.rows(|plane, run| {
                        store_masked(&mut out[plane..plane + wd], &acc[run..run + wd], mask.map(|m| &m[plane..plane + wd]), accumulate)
                    });
                },
            )
        });
    });
}

/// Whether a same stride-1 conv goes over [`Flat`] runs rather than a
/// batch-innermost copy. A run computes `(h + p)(w + p)` positions for the
/// `hw` pixels of a plane, a waste that grows as planes shrink (56% at 4x4
/// with kernel 3 and at 8x8 with kernel 5), where the batch-innermost copy
/// costs two transposes whatever the size. By measurement (`cargo bench
/// --bench kernels -- depthwise`, batch 64): at 4x4 and 8x8 the copy took
/// 8-33% less time for the forward pass and the input gradient, at 16x16
/// with kernel 5 the same, with kernel 3 27-45% more. The choice does not
/// change a bit: both sum the taps in the same order from +0, and where one
/// adds a padding tap's exact zero the other adds it too or leaves the tap out
/// (the input gradient through the copy), which is the same (a sum that
/// starts at +0 is never -0, and adding a zero to anything else leaves it as
/// it is).
fn flat_pays(g: &ConvGeom) -> bool {
    g.is_same_stride1() && g.w >= 16
}

/// `y = depthwise_conv(relu?(x), w)`, CNHW in and out; `w` is `[c, 1, k, k]`.
pub fn depthwise_forward<T: Element>(g: &ConvGeom, x: &[T], relu_x: bool, w: &[T], y: &mut [T]) {
    check(g, "depthwise_forward");
    assert_eq!(x.len(), g.input().len(), "depthwise_forward: x");
    assert_eq!(w.len(), weight_len(g), "depthwise_forward: w");
    assert_eq!(y.len(), g.output().len(), "depthwise_forward: y");
    let (n, h, wd, k, p) = (g.n as usize, g.h as usize, g.w as usize, g.k as usize, g.pad as usize);
    let (oh, ow, s) = (g.oh as usize, g.ow as usize, g.stride as usize);
    if flat_pays(g) {
        return flat_conv(g, x, relu_x, w, 1, y, None, false);
    }
    let wp = wd + 2 * p;
    let padded_len = (h + 2 * p) * wp * n;
    y.par_chunks_mut(n * oh * ow).enumerate().for_each(|(c, out)| {
        with_scratch::<T, _>(padded_len + WIDE + oh * ow * n, |buf| {
            vectorized(
                #[inline(always)]
                || {
                    let (xt, yt) = buf.split_at_mut(padded_len + WIDE);
                    gather_channel(x, c, n, h, wd, p, relu_x, xt);
                    // every tap at its offset from the output pixel's first input, the same for all pixels
                    let mut terms = [(T::zero(), 0); MAX_TAPS];
                    for (t, term) in terms[..k * k].iter_mut().enumerate() {
                        *term = (w[c * k * k + t], ((t / k) * wp + t % k) * n);
                    }
                    for r in 0..oh {
                        for o in 0..ow {
                            let corner = &xt[(r * s * wp + o * s) * n..];
                            tap_block(&terms[..k * k], corner, &mut yt[(r * ow + o) * n..][..n]);
                        }
                    }
                    scatter_channel(yt, n, oh * ow, out);
                },
            )
        });
    });
}

/// Samples whose sums [`tap_block`] keeps in registers: eight AVX2 vectors
/// of f32, enough independent sums to hide the latency of the adds.
const WIDE: usize = 64;

/// `dst[i] = sum over terms (t, at) of t src[at + i]`, the terms in the
/// order given, each sum starting from zero, `WIDE` samples at a time in
/// registers. The last block's lanes past `dst.len()` read what follows in
/// `src` (`WIDE` values of slack, zeroed by [`gather_channel`], so that no
/// stale subnormal slows them) and are not stored.
#[inline(always)]
fn tap_block<T: Element>(terms: &[(T, usize)], src: &[T], dst: &mut [T]) {
    for i0 in (0..dst.len()).step_by(WIDE) {
        let mut sums = [T::zero(); WIDE];
        for &(t, at) in terms {
            let v = &src[at + i0..][..WIDE];
            for j in 0..WIDE {
                sums[j] += t * v[j];
            }
        }
        let m = WIDE.min(dst.len() - i0);
        dst[i0..i0 + m].copy_from_slice(&sums[..m]);
    }
}

/// For each padded input row `at < len`, the filter rows that reach it from
/// an output row, in filter order: `(kh, r)` with `r s + kh = at`, `r < out`.
fn reaching(len: usize, k: usize, s: usize, out: usize) -> Vec<Vec<(usize, usize)>> {
    (0..len)
        .map(|at| (0..k.min(at + 1)).filter(|&kh| (at - kh) % s == 0 && (at - kh) / s < out).map(|kh| (kh, (at - kh) / s)).collect())
        .collect()
}

/// `dx (+)= [x > 0] * depthwise_conv_transpose(dy, w)`: each input value
/// sums the output gradients of the taps that read it, in `(kh, kw)` order.
/// `relu_mask = Some(x)` when the forward pass used `relu(x)`.
pub fn depthwise_backward_data<T: Element>(g: &ConvGeom, dy: &[T], w: &[T], relu_mask: Option<&[T]>, dx: &mut [T], accumulate: bool) {
    check(g, "depthwise_backward_data");
    assert_eq!(dy.len(), g.output().len(), "depthwise_backward_data: dy");
    assert_eq!(w.len(), weight_len(g), "depthwise_backward_data: w");
    assert_eq!(dx.len(), g.input().len(), "depthwise_backward_data: dx");
    if let Some(m) = relu_mask {
        assert_eq!(m.len(), dx.len(), "depthwise_backward_data: relu_mask");
    }
    let (n, h, wd, k, p) = (g.n as usize, g.h as usize, g.w as usize, g.k as usize, g.pad as usize);
    let (oh, ow, s) = (g.oh as usize, g.ow as usize, g.stride as usize);
    if flat_pays(g) {
        // input pixel q receives w[tap] dy[q - shift(tap)], taps in order
        return flat_conv(g, dy, false, w, -1, dx, relu_mask, accumulate);
    }
    // input (ih, iw) sits at (ih + p, iw + p) of the input padded as the forward pass saw it, where
    // output (r, o) read it through tap (kh, kw) if r s + kh = ih + p and o s + kw = iw + p
    let hw = h * wd;
    let (rows, cols) = (reaching(h + p, k, s, oh), reaching(wd + p, k, s, ow));
    // Input rows a band: a band's sums are moved to the planes while they are in cache (a whole
    // channel's went out to memory and came back for the move, then the mask).
    let band = (BAND / (wd * n)).clamp(1, h);
    dx.par_chunks_mut(n * hw).enumerate().for_each(|(c, out)| {
        with_scratch::<T, _>(2 * band * wd * n + oh * ow * n + WIDE, |buf| {
            vectorized(
                #[inline(always)]
                || {
                    let (acc, rest) = buf.split_at_mut(band * wd * n);
                    let (planes, dyt) = rest.split_at_mut(band * wd * n);
                    gather_channel(dy, c, n, oh, ow, 0, false, dyt);
                    let taps = &w[c * k * k..(c + 1) * k * k];
                    let mask = relu_mask.map(|m| &m[c * n * hw..(c + 1) * n * hw]);
                    // (filled afresh for each pixel: zeroing it each time took longer than its few taps)
                    let mut terms = [(T::zero(), 0); MAX_TAPS];
                    for ih0 in (0..h).step_by(band) {
                        let ih1 = (ih0 + band).min(h);
                        for ih in ih0..ih1 {
                            for iw in 0..wd {
                                let mut len = 0;
                                for &(kh, r) in &rows[ih + p] {
                                    for &(kw, o) in &cols[iw + p] {
                                        terms[len] = (taps[kh * k + kw], (r * ow + o) * n);
                                        len += 1;
                                    }
                                }
                                tap_block(&terms[..len], dyt, &mut acc[((ih - ih0) * wd + iw) * n..][..n]);
                            }
                        }
                        // the band's pixels q0.. of each of the n planes
                        let (q0, len) = (ih0 * wd, (ih1 - ih0) * wd);
                        if mask.is_none() && !accumulate {
                            transpose(acc, n, len, n, &mut out[q0..], hw, false);
                            continue;
                        }
                        transpose(acc, n, len, n, planes, len, false);
                        if len == hw {
                            // one band: its n parts lie end to end in `out` as in `planes`
                            store_masked(out, &planes[..n * hw], mask, accumulate);
                            continue;
                        }
                        for (i, part) in planes.chunks(len).take(n).enumerate() {
                            let at = i * hw + q0;
                            store_masked(&mut out[at..at + len], part, mask.map(|m| &m[at..at + len]), accumulate);
                        }
                    }
                },
            )
        });
    });
}

/// Values of a band of [`depthwise_backward_data`]'s sums: 32 KiB of f32.
const BAND: usize = 8192;

/// Channel `c`'s weight gradient split by sample: `taps[tap * n + i]` = the
/// sum over sample i's pixels of `dy * relu?(x)` at that tap, accumulated in
/// the element type in pixel order (`buf` is scratch).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn sample_taps<T: Element>(g: &ConvGeom, x: &[T], relu_x: bool, dy: &[T], c: usize, taps: &mut [T], buf: &mut [T]) {
    let (n, h, wd, k, p) = (g.n as usize, g.h as usize, g.w as usize, g.k as usize, g.pad as usize);
    let (oh, ow) = (g.oh as usize, g.ow as usize);
    let wp = wd + 2 * p;
    let padded_len = (h + 2 * p) * wp * n + SAMPLES;
    let (xt, dyt) = buf.split_at_mut(padded_len);
    gather_channel(x, c, n, h, wd, p, relu_x, xt);
    gather_channel(dy, c, n, oh, ow, 0, false, &mut dyt[..oh * ow * n + SAMPLES]);
    // direct calls, inlined into the caller's vectorized code (through a function pointer each
    // instance would be compiled for the baseline CPU)
    match k {
        1 => tap_sums::<T, 1>(g, xt, dyt, taps),
        2 => tap_sums::<T, 2>(g, xt, dyt, taps),
        3 => tap_sums::<T, 3>(g, xt, dyt, taps),
        4 => tap_sums::<T, 4>(g, xt, dyt, taps),
        5 => tap_sums::<T, 5>(g, xt, dyt, taps),
        _ => unreachable!("check() bounds the kernel"),
    }
}

/// Samples whose sums one pass keeps in registers: two AVX2 vectors of f32.
const SAMPLES: usize = 16;

/// [`sample_taps`] on the gathered channel: `K` taps (a filter row) for
/// `SAMPLES` samples at a time, their sums in registers while the pass goes
/// over the pixels. The last block's lanes past `n` read whatever follows
/// (`SAMPLES` values of slack after each run) and are not stored.
#[inline(always)]
fn tap_sums<T: Element, const K: usize>(g: &ConvGeom, xt: &[T], dyt: &[T], taps: &mut [T]) {
    let (n, wp) = (g.n as usize, (g.w + 2 * g.pad) as usize);
    let (oh, ow, s) = (g.oh as usize, g.ow as usize, g.stride as usize);
    // The reads below, checked once here: with a check at each of them the sums left registers
    // for the stack at every pixel (twice the time).
    let last_block = (n - 1) / SAMPLES * SAMPLES;
    assert!((((oh - 1) * s + K - 1) * wp + (ow - 1) * s + K - 1) * n + last_block + SAMPLES <= xt.len());
    assert!((oh * ow - 1) * n + last_block + SAMPLES <= dyt.len());
    #[inline(always)]
    fn block<T>(t: &[T], at: usize) -> &[T; SAMPLES] {
        // SAFETY: every `at` below is at most the largest asserted above.
        unsafe { t.get_unchecked(at..at + SAMPLES) }.try_into().unwrap()
    }
    for kh in 0..K {
        for i0 in (0..n).step_by(SAMPLES) {
            let mut sums = [[T::zero(); SAMPLES]; K];
            for r in 0..oh {
                for o in 0..ow {
                    let d = block(dyt, (r * ow + o) * n + i0);
                    let corner = ((r * s + kh) * wp + o * s) * n + i0;
                    for (kw, sum) in sums.iter_mut().enumerate() {
                        let v = block(xt, corner + kw * n);
                        for j in 0..SAMPLES {
                            sum[j] += d[j] * v[j];
                        }
                    }
                }
            }
            let m = SAMPLES.min(n - i0);
            for (kw, sum) in sums.iter().enumerate() {
                taps[(kh * K + kw) * n + i0..][..m].copy_from_slice(&sum[..m]);
            }
        }
    }
}

/// Scratch of [`sample_taps`]: a padded channel and its output gradient, each with slack.
fn taps_scratch(g: &ConvGeom) -> usize {
    (((g.h + 2 * g.pad) * (g.w + 2 * g.pad)) + g.oh * g.ow) as usize * g.n as usize + 2 * SAMPLES
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
    let (n, kk) = (g.n as usize, (g.k * g.k) as usize);
    // each channel's per-sample squared norms (channel-major), summed over channels in order
    // below; none without `sample_sq`
    let per_sample = sample_sq.is_some();
    let mut channel_sq = vec![0f64; if per_sample { g.c_out as usize * n } else { 0 }];
    let sq_out = Disjoint::new(&mut channel_sq);
    dw.par_chunks_mut(kk).enumerate().for_each(|(c, d)| {
        with_scratch::<T, _>(kk * n + taps_scratch(g), |buf| {
            vectorized(
                #[inline(always)]
                || {
                    let (taps, rest) = buf.split_at_mut(kk * n);
                    sample_taps(g, x, relu_x, dy, c, taps, rest);
                    for (dv, samples) in d.iter_mut().zip(taps.chunks(n)) {
                        *dv += T::from_f64(samples.iter().map(|v| v.as_f64()).sum::<f64>());
                    }
                    if per_sample {
                        // SAFETY: channel c's n values are this task's alone.
                        let sq = unsafe { sq_out.range(c * n, n) };
                        for (i, q) in sq.iter_mut().enumerate() {
                            *q = (0..kk).map(|t| taps[t * n + i].as_f64().powi(2)).sum();
                        }
                    }
                },
            )
        });
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
    assert_eq!(out.len(), g.n as usize, "depthwise_per_sample_sq_norms: out");
    // (the gradient itself is computed alongside, into scratch: its cost is the norms')
    let mut dw = vec![T::zero(); weight_len(g)];
    depthwise_backward_weight(g, x, relu_x, dy, &mut dw, Some(out));
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
        self.op("depthwise_forward", || depthwise_forward(g, x, relu_x, w, y))
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
        self.op("depthwise_backward_data", || depthwise_backward_data(g, dy, w, relu_mask.map(|m| m.as_slice()), dx, accumulate))
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
        self.op("depthwise_backward_weight", || depthwise_backward_weight(g, x, relu_x, dy, dw, sample_sq.map(|s| s.as_mut_slice())))
    }
    fn depthwise_per_sample_sq_norms(&self, g: &ConvGeom, x: &CpuBuf<T>, relu_x: bool, dy: &CpuBuf<T>, out: &mut CpuBuf<T>) {
        self.op("depthwise_per_sample_sq_norms", || depthwise_per_sample_sq_norms(g, x, relu_x, dy, out))
    }
}

#[cfg(test)]
mod tests {
    use super::{depthwise_backward_data, depthwise_forward};
    use crate::geometry::ConvGeom;

    /// Both ways of both passes (batch-innermost copies, `WIDE` samples at a
    /// time, for strided and narrow convs; [`super::Flat`] runs for wide
    /// stride-1 ones) bit for bit against the definition summed in the
    /// documented order: every output over all k x k taps in (kh, kw) order,
    /// padding taps adding `w * 0`; every input gradient over the taps that
    /// reach it, in (kh, kw) order, then the ReLU mask. Batches below, at and
    /// past one block of samples, in f32, where another order would show;
    /// planes wide enough for the input gradient to go in bands of rows (the
    /// last one short), with the mask and without.
    #[test]
    fn passes_sum_in_the_documented_order() {
        let rand =
            |len: usize, seed: u64| -> Vec<f32> { (0..len as u64).map(|i| crate::rng::uniform01(seed, i) as f32 * 2.0 - 1.0).collect() };
        let cases = [
            (1, 2, 9, 7, 3, 2),
            (3, 3, 8, 8, 5, 2),
            (67, 2, 5, 6, 5, 2),
            (64, 1, 7, 9, 3, 2),
            (67, 2, 4, 4, 3, 1),
            (3, 2, 8, 8, 5, 1),
            (64, 1, 7, 33, 3, 2),
        ];
        // (16 wide and more: the runs, the second case also reaching into the next image's padding)
        for (n, c, h, w, k, s) in cases.into_iter().chain([(3, 2, 5, 17, 3, 1), (2, 2, 2, 16, 5, 1)]) {
            let g = ConvGeom::new(n, c, h, w, c, k, s);
            assert_eq!(super::flat_pays(&g), w >= 16 && s == 1);
            let (oh, ow, p) = (g.oh as usize, g.ow as usize, g.pad as usize);
            let (x, wt, dy) = (rand(g.input().len(), 1), rand(c * k * k, 2), rand(g.output().len(), 3));
            let relu = |v: f32| if v > 0.0 { v } else { 0.0 };
            let mut y = vec![f32::NAN; g.output().len()];
            depthwise_forward(&g, &x, true, &wt, &mut y);
            if w == 33 {
                assert_eq!(super::BAND / (w * n), 3, "bands of 3, 3 and 1 rows");
            }
            let (mut dx, mut plain) = (vec![f32::NAN; x.len()], vec![f32::NAN; x.len()]);
            depthwise_backward_data(&g, &dy, &wt, Some(&x), &mut dx, false);
            depthwise_backward_data(&g, &dy, &wt, None, &mut plain, false);
            for (ch, i) in (0..c).flat_map(|ch| (0..n).map(move |i| (ch, i))) {
                let plane = |r: usize, col: usize, hh: usize, ww: usize| ((ch * n + i) * hh + r) * ww + col;
                for (r, o) in (0..oh).flat_map(|r| (0..ow).map(move |o| (r, o))) {
                    let mut sum = 0f32;
                    for (kh, kw) in (0..k).flat_map(|kh| (0..k).map(move |kw| (kh, kw))) {
                        let (ih, iw) = ((r * s + kh) as isize - p as isize, (o * s + kw) as isize - p as isize);
                        let inside = ih >= 0 && iw >= 0 && (ih as usize) < h && (iw as usize) < w;
                        sum += wt[ch * k * k + kh * k + kw] * if inside { relu(x[plane(ih as usize, iw as usize, h, w)]) } else { 0.0 };
                    }
                    assert_eq!(y[plane(r, o, oh, ow)].to_bits(), sum.to_bits(), "forward n{n} k{k} at ({ch}, {i}, {r}, {o})");
                }
                for (ih, iw) in (0..h).flat_map(|ih| (0..w).map(move |iw| (ih, iw))) {
                    let mut sum = 0f32;
                    for (kh, kw) in (0..k).flat_map(|kh| (0..k).map(move |kw| (kh, kw))) {
                        // output (r2 / s, o2 / s) read it through this tap, if it exists
                        let (Some(r2), Some(o2)) = ((ih + p).checked_sub(kh), (iw + p).checked_sub(kw)) else { continue };
                        if r2 % s == 0 && o2 % s == 0 && r2 / s < oh && o2 / s < ow {
                            sum += wt[ch * k * k + kh * k + kw] * dy[plane(r2 / s, o2 / s, oh, ow)];
                        }
                    }
                    assert_eq!(
                        plain[plane(ih, iw, h, w)].to_bits(),
                        sum.to_bits(),
                        "unmasked input gradient n{n} k{k} at ({ch}, {i}, {ih}, {iw})"
                    );
                    let want = if x[plane(ih, iw, h, w)] > 0.0 { sum } else { 0.0 };
                    assert_eq!(dx[plane(ih, iw, h, w)].to_bits(), want.to_bits(), "input gradient n{n} k{k} at ({ch}, {i}, {ih}, {iw})");
                }
            }
        }
    }
}
