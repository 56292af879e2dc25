//! Single-threaded matrix multiply on strided views, through the `gemm` crate.
//!
//! The engine parallelises *around* GEMM calls (over tiles of whole images),
//! never inside them: each tile's result then depends only on its inputs, so a
//! run gives bit-identical results whatever the number of threads.

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
    /// The transpose of a row-major matrix whose row stride is `rs`.
    pub fn transposed(data: &'a [T], rs: usize) -> Self {
        Self { data, rs: 1, cs: rs }
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
