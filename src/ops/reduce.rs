//! Sums over long runs of values: f32 lanes inside short blocks (fast and
//! vectorisable), block results accumulated in f64 (accurate over millions of
//! values, as PyTorch's cascade sums are).

use crate::element::Element;

const LANES: usize = 16;
const BLOCK: usize = 1024;

#[inline(always)]
fn block_sum<T: Element>(x: &[T], f: impl Fn(T) -> T) -> f64 {
    let mut acc = [T::zero(); LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += f(c[i]);
        }
    }
    let mut s: f64 = acc.iter().map(|v| v.as_f64()).sum();
    for &v in rest {
        s += f(v).as_f64();
    }
    s
}

/// `sum(f(x_i))` with f32 lanes per block of 1024 and an f64 total.
#[inline(always)]
pub fn sum_map<T: Element>(x: &[T], f: impl Fn(T) -> T + Copy) -> f64 {
    x.chunks(BLOCK).map(|b| block_sum(b, f)).sum()
}

/// `sum(x)`.
#[inline(always)]
pub fn sum<T: Element>(x: &[T]) -> f64 {
    sum_map(x, |v| v)
}

/// `(sum(a), sum(a * (b - shift)))`, block by block: each block's two sums
/// are two passes over it while it is in L1 (one loop carrying both sums did
/// not vectorise).
#[inline(always)]
pub fn sum_and_dot<T: Element>(a: &[T], b: &[T], shift: T) -> (f64, f64) {
    assert_eq!(a.len(), b.len());
    let (mut s, mut d) = (0f64, 0f64);
    for (ab, bb) in a.chunks(BLOCK).zip(b.chunks(BLOCK)) {
        s += block_sum2(ab, bb, |x, _| x);
        d += block_sum2(ab, bb, |x, y| x * (y - shift));
    }
    (s, d)
}

/// `sum(f(a_i, b_i))` over a block: the f32 lanes' f64 sum plus the f64 sum
/// of the leftover values.
#[inline(always)]
fn block_sum2<T: Element>(a: &[T], b: &[T], f: impl Fn(T, T) -> T) -> f64 {
    let mut acc = [T::zero(); LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += f(x[i], y[i]);
        }
    }
    acc.iter().map(|v| v.as_f64()).sum::<f64>() + ra.iter().zip(rb).map(|(&x, &y)| f(x, y).as_f64()).sum::<f64>()
}
