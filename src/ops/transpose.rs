//! Transposing a strided matrix, with an optional ReLU on the way: 8 x 8 tiles
//! of f32 through AVX registers. The depthwise convolutions move channels to
//! and from a batch-innermost layout with it (into a zero-padded one, each
//! column to its own place: [`transpose_into`]); the convolutions' weight
//! gradient turns the weights to the layout its partial gradients are added
//! in; global average pooling turns its per-channel means to per-sample rows.

use super::elementwise::keep;
use crate::element::Element;

/// `dst[b * dst_stride + a] = relu?(src[a * src_stride + b])` for `a < rows`,
/// `b < cols`. In f32 on a CPU with AVX, 8 x 8 tiles go through registers
/// (eight loads, shuffles, eight stores; one value at a time, each store of
/// a tile row would touch another cache line); the rest one value at a time.
/// The ReLU is `v > 0 ? v : 0` both ways (NaN and -0 give +0).
#[inline(always)]
pub fn transpose<T: Element>(src: &[T], src_stride: usize, rows: usize, cols: usize, dst: &mut [T], dst_stride: usize, relu: bool) {
    transpose_into(src, src_stride, rows, cols, dst, |b| b * dst_stride, relu);
}

/// [`transpose`] with column `b` of `src` written to `dst[col_at(b)..][..rows]`:
/// the pixels of whole planes into a zero-padded layout, where the 8 columns
/// of one tile may straddle rows of the planes (a row at a time, a 4-wide plane
/// would leave no full tile).
#[inline(always)]
pub fn transpose_into<T: Element>(
    src: &[T],
    src_stride: usize,
    rows: usize,
    cols: usize,
    dst: &mut [T],
    col_at: impl Fn(usize) -> usize,
    relu: bool,
) {
    let (mut full_rows, mut full_cols) = (0, 0);
    #[cfg(target_arch = "x86_64")]
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && std::arch::is_x86_feature_detected!("avx") {
        (full_rows, full_cols) = (rows / 8 * 8, cols / 8 * 8);
        let (s, d): (&[f32], &mut [f32]) = (bytemuck::cast_slice(src), bytemuck::cast_slice_mut(dst));
        for a0 in (0..full_rows).step_by(8) {
            for b0 in (0..full_cols).step_by(8) {
                let at: [usize; 8] = std::array::from_fn(|j| col_at(b0 + j) + a0);
                let s = &s[a0 * src_stride + b0..];
                assert!(s.len() >= 7 * src_stride + 8 && at.iter().all(|&c| c + 8 <= d.len()));
                // SAFETY: the CPU has AVX (checked above); the tile's 8 rows of 8 lie in `s`, its
                // 8 columns of 8 from `at` on in `d` (both asserted).
                unsafe { transpose8x8_f32(s.as_ptr(), src_stride, d.as_mut_ptr(), &at, relu) };
            }
        }
    }
    let f = |v: T| if relu { keep(v, v) } else { v };
    for b in 0..cols {
        // the rows above the tiles' bottom edge are done in the tiles' columns
        let (from, at) = (if b < full_cols { full_rows } else { 0 }, col_at(b));
        for a in from..rows {
            dst[at + a] = f(src[a * src_stride + b]);
        }
    }
}

/// One 8 x 8 tile of [`transpose`] in AVX registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn transpose8x8_f32(src: *const f32, ss: usize, dst: *mut f32, at: &[usize; 8], relu: bool) {
    use std::arch::x86_64::*;
    let mut r = [_mm256_setzero_ps(); 8];
    for (a, v) in r.iter_mut().enumerate() {
        *v = _mm256_loadu_ps(src.add(a * ss));
        if relu {
            // max(v, 0) returns its second operand unless v > 0: as `v > 0 ? v : 0`
            *v = _mm256_max_ps(*v, _mm256_setzero_ps());
        }
    }
    // pairs, then quads of rows interleaved, then the 128-bit halves exchanged
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    let out = [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ];
    for (b, v) in out.iter().enumerate() {
        _mm256_storeu_ps(dst.add(at[b]), *v);
    }
}

#[cfg(test)]
mod tests {
    use super::{transpose, transpose_into};

    /// The f32 tiles and the element-at-a-time edges against the definition,
    /// on sizes around the tile's 8, strides wider than the rows, and values
    /// that tell the ReLU's cases apart (negative, -0, NaN); the columns
    /// `ds` apart ([`transpose`]) and in runs of 3 with a gap of 5 after
    /// each run ([`transpose_into`]: a tile's columns straddle the gaps).
    #[test]
    fn transpose_matches_its_definition() {
        let special = [-1.5f32, -0.0, f32::NAN, 2.5, 0.0];
        for (rows, cols) in [(8, 8), (9, 17), (16, 5), (3, 24), (1, 1), (23, 15)] {
            let (ss, ds) = (cols + 3, rows + 2);
            let src: Vec<f32> = (0..rows * ss).map(|i| if i % 7 == 0 { special[i / 7 % 5] } else { i as f32 * 0.37 - 40.0 }).collect();
            let runs = |b: usize| b / 3 * (3 * ds + 5) + b % 3 * ds;
            for relu in [false, true] {
                for gaps in [false, true] {
                    let col_at = |b: usize| if gaps { runs(b) } else { b * ds };
                    let mut dst = vec![-9.0f32; col_at(cols) + ds];
                    if gaps {
                        transpose_into(&src, ss, rows, cols, &mut dst, col_at, relu);
                    } else {
                        transpose(&src, ss, rows, cols, &mut dst, ds, relu);
                    }
                    let mut want = vec![-9.0f32; dst.len()];
                    for b in 0..cols {
                        for a in 0..rows {
                            let v = src[a * ss + b];
                            want[col_at(b) + a] = if !relu || v > 0.0 { v } else { 0.0 };
                        }
                    }
                    for (at, (g, w)) in dst.iter().zip(&want).enumerate() {
                        assert!(g.to_bits() == w.to_bits(), "{rows}x{cols} relu={relu} gaps={gaps} at {at}: {g} (want {w})");
                    }
                }
            }
        }
    }
}
