//! Transposing a strided matrix, with an optional ReLU on the way: 8 x 8 tiles
//! of f32 through AVX registers. The depthwise convolutions move channels to
//! and from a batch-innermost layout with it; the convolutions' weight gradient
//! turns the weights to the layout its partial gradients are added in.

use crate::element::Element;

/// `dst[b * dst_stride + a] = relu?(src[a * src_stride + b])` for `a < rows`,
/// `b < cols`. In f32 on a CPU with AVX, 8 x 8 tiles go through registers
/// (eight loads, shuffles, eight stores; one value at a time, each store of
/// a tile row would touch another cache line); the rest one value at a time.
/// The ReLU is `v > 0 ? v : 0` both ways (NaN and -0 give +0).
#[inline(always)]
pub fn transpose<T: Element>(src: &[T], src_stride: usize, rows: usize, cols: usize, dst: &mut [T], dst_stride: usize, relu: bool) {
    let (mut full_rows, mut full_cols) = (0, 0);
    #[cfg(target_arch = "x86_64")]
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && std::arch::is_x86_feature_detected!("avx") {
        (full_rows, full_cols) = (rows / 8 * 8, cols / 8 * 8);
        let (s, d): (&[f32], &mut [f32]) = (bytemuck::cast_slice(src), bytemuck::cast_slice_mut(dst));
        for a0 in (0..full_rows).step_by(8) {
            for b0 in (0..full_cols).step_by(8) {
                let (s, d) = (&s[a0 * src_stride + b0..], &mut d[b0 * dst_stride + a0..]);
                assert!(s.len() >= 7 * src_stride + 8 && d.len() >= 7 * dst_stride + 8);
                // SAFETY: the CPU has AVX (checked above); the tile's 8 rows of 8 lie in both slices (asserted).
                unsafe { transpose8x8_f32(s.as_ptr(), src_stride, d.as_mut_ptr(), dst_stride, relu) };
            }
        }
    }
    let f = |v: T| if !relu || v > T::zero() { v } else { T::zero() };
    for a in 0..rows {
        // the columns left of the tiles' right edge are done in the tiles' rows
        let from = if a < full_rows { full_cols } else { 0 };
        for b in from..cols {
            dst[b * dst_stride + a] = f(src[a * src_stride + b]);
        }
    }
}

/// One 8 x 8 tile of [`transpose`] in AVX registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn transpose8x8_f32(src: *const f32, ss: usize, dst: *mut f32, ds: usize, relu: bool) {
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
        _mm256_storeu_ps(dst.add(b * ds), *v);
    }
}

#[cfg(test)]
mod tests {
    use super::transpose;

    /// The f32 tiles and the element-at-a-time edges against the definition,
    /// on sizes around the tile's 8, strides wider than the rows, and values
    /// that tell the ReLU's cases apart (negative, -0, NaN).
    #[test]
    fn transpose_matches_its_definition() {
        let special = [-1.5f32, -0.0, f32::NAN, 2.5, 0.0];
        for (rows, cols) in [(8, 8), (9, 17), (16, 5), (3, 24), (1, 1), (23, 15)] {
            let (ss, ds) = (cols + 3, rows + 2);
            let src: Vec<f32> = (0..rows * ss).map(|i| if i % 7 == 0 { special[i / 7 % 5] } else { i as f32 * 0.37 - 40.0 }).collect();
            for relu in [false, true] {
                let mut dst = vec![-9.0f32; cols * ds];
                transpose(&src, ss, rows, cols, &mut dst, ds, relu);
                for b in 0..cols {
                    for a in 0..ds {
                        let got = dst[b * ds + a];
                        if a >= rows {
                            assert_eq!(got, -9.0, "{rows}x{cols}: outside the transpose, untouched");
                            continue;
                        }
                        let v = src[a * ss + b];
                        let want = if !relu || v > 0.0 { v } else { 0.0 };
                        assert!(got.to_bits() == want.to_bits(), "{rows}x{cols} relu={relu} at ({a}, {b}): {got} (want {want})");
                    }
                }
            }
        }
    }
}
