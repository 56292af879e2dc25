//! Single-threaded matrix multiply on strided views, through the `gemm` crate.
//!
//! The engine parallelises *around* GEMM calls (over tiles of whole images),
//! never inside them: each tile's result then depends only on its inputs, so a
//! run gives bit-identical results whatever the number of threads. The one
//! exception, [`gemm_row_blocks`], splits a product into blocks of rows that the
//! crate computes exactly as it computes them in the whole product.

use rayon::prelude::*;

use crate::element::Element;

/// A read-only strided matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub struct Mat<'a, T> {
    pub data: &'a [T],
    pub rs: usize,
    pub cs: usize,
}

impl<'a, T> Mat<'a, T> {
    /// A row-major matrix (`rs` = its row stride).
    pub fn rows(data: &'a [T], rs: usize) -> Self {
        Self { data, rs, cs: 1 }
    }
    /// The transposed view.
    pub fn t(self) -> Self {
        Self { rs: self.cs, cs: self.rs, ..self }
    }
    /// The view from row `r` on.
    fn skip_rows(self, r: usize) -> Self {
        Self { data: &self.data[r * self.rs..], ..self }
    }
    fn check(&self, rows: usize, cols: usize, what: &str) {
        let last = (rows - 1) * self.rs + (cols - 1) * self.cs;
        assert!(last < self.data.len(), "gemm: {what} view out of bounds");
    }
}

/// `c[m x n] (+)= a[m x k] * b[k x n]`; `c` is row-major with row stride `c_rs`.
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: Element>(m: usize, n: usize, k: usize, a: Mat<T>, b: Mat<T>, c: &mut [T], c_rs: usize, accumulate: bool) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(c.len() >= (m - 1) * c_rs + n, "gemm: output out of bounds");
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                c[i * c_rs..i * c_rs + n].fill(T::zero());
            }
        }
        return;
    }
    a.check(m, k, "lhs");
    b.check(k, n, "rhs");
    // SAFETY: all three views were bounds-checked above for these sizes and strides.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            c_rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// [`gemm`], with `c`'s rows shared out among up to `parts` parallel calls.
///
/// Every element of `c` gets the bits that one call over all `m` rows gives it:
/// the `gemm` crate (0.19) sums each element over `k` in blocks of a depth `kc`
/// that depends on `k` and the cache sizes alone, except in regimes chosen by
/// the product's shape. It computes a row-major `c` (row stride > 1) as its
/// transpose, an `n x rows` product, and that product takes matrix-vector
/// kernels when `rows <= 1`, horizontal (dot-product) kernels when
/// `n * rows <= 256` (for some strides), and `kc = min(k, 512)` when
/// `n <= 64 && rows <= 64`. A block of `rows` rows is therefore cut only where
/// the three conditions come out as they do for all `m` rows; where no block
/// can be smaller than `m`, the product is one call.
/// `row_blocks_match_the_whole` holds the bits.
#[allow(clippy::too_many_arguments)]
pub fn gemm_row_blocks<T: Element>(
    parts: usize,
    m: usize,
    n: usize,
    k: usize,
    a: Mat<T>,
    b: Mat<T>,
    c: &mut [T],
    c_rs: usize,
    accumulate: bool,
) {
    let regime = |rows: usize| (rows <= 1, n * rows <= 256, n <= 64 && rows <= 64);
    // the fewest rows a block may have and keep the whole product's regime
    let min_rows = (1..=m).find(|&r| regime(r) == regime(m)).unwrap_or(m);
    let blocks = if c_rs > 1 { parts.min(m / min_rows.max(1)).max(1) } else { 1 };
    if blocks == 1 {
        return gemm(m, n, k, a, b, c, c_rs, accumulate);
    }
    // `blocks` runs of `m / blocks` or one more rows: each at least `min_rows`
    let mut runs = Vec::with_capacity(blocks);
    let mut rest = c;
    let mut r0 = 0;
    for i in 0..blocks {
        let rows = m / blocks + usize::from(i < m % blocks);
        let (run, tail) = if i + 1 < blocks { rest.split_at_mut(rows * c_rs) } else { (rest, &mut [][..]) };
        runs.push((r0, rows, run));
        rest = tail;
        r0 += rows;
    }
    runs.into_par_iter().for_each(|(r0, rows, run)| gemm(rows, n, k, a.skip_rows(r0), b, run, c_rs, accumulate));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(len: usize, seed: u64) -> Vec<f32> {
        (0..len).map(|i| (crate::rng::uniform01(seed, i as u64) * 2.0 - 1.0) as f32).collect()
    }

    /// Split into row blocks, a product gives the bits of one call over all its
    /// rows, in each of the crate's regimes (horizontal kernels, small products'
    /// depth, the general kernels) and across them, with the weight gradient's
    /// operands (a row-major lhs, a transposed rhs) and a plain row-major rhs.
    #[test]
    fn row_blocks_match_the_whole() {
        // (m, n, k): products of the crate's every regime, k over several depth blocks
        let shapes =
            [(16, 96, 3000), (16, 16, 1500), (5, 40, 700), (130, 40, 1100), (200, 3, 900), (64, 64, 2049), (256, 70, 600), (2, 300, 800)];
        for (m, n, k) in shapes {
            let (a, bt, b) = (random(m * k, 1), random(n * k, 2), random(k * n, 3));
            let c0 = random(m * n, 4);
            for (rhs, what) in [(Mat::rows(&bt, k).t(), "transposed"), (Mat::rows(&b, n), "row-major")] {
                for accumulate in [false, true] {
                    let mut whole = c0.clone();
                    gemm(m, n, k, Mat::rows(&a, k), rhs, &mut whole, n, accumulate);
                    for parts in [2, 3, 7] {
                        let mut split = c0.clone();
                        gemm_row_blocks(parts, m, n, k, Mat::rows(&a, k), rhs, &mut split, n, accumulate);
                        let same = whole.iter().zip(&split).all(|(p, q)| p.to_bits() == q.to_bits());
                        assert!(same, "{m}x{n}x{k} ({what} rhs, accumulate {accumulate}) in {parts} parts differs");
                    }
                }
            }
        }
    }

    /// `a b^T` and the transpose of `b a^T` have the same bits (the crate sums
    /// each element over `k` in the same blocks and order either way), in each
    /// of its regimes: the weight gradient takes whichever is faster.
    #[test]
    fn a_product_and_its_transpose_agree() {
        let shapes = [
            (32, 192, 8192),
            (1536, 256, 160),
            (16, 96, 3000),
            (16, 16, 1500),
            (5, 40, 700),
            (130, 40, 1100),
            (64, 64, 2049),
            (1, 70, 300),
        ];
        for (m, n, k) in shapes {
            let (a, b) = (random(m * k, 1), random(n * k, 2));
            let mut ab = vec![f32::NAN; m * n];
            gemm(m, n, k, Mat::rows(&a, k), Mat::rows(&b, k).t(), &mut ab, n, false);
            let mut ba = vec![f32::NAN; n * m];
            gemm(n, m, k, Mat::rows(&b, k), Mat::rows(&a, k).t(), &mut ba, m, false);
            let same = (0..m).all(|i| (0..n).all(|j| ab[i * n + j].to_bits() == ba[j * m + i].to_bits()));
            assert!(same, "{m}x{n}x{k}: a b^T differs from (b a^T)^T");
        }
    }
}
