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
    // a plain loop, inlined into a vectorized caller (an iterator's sum stayed
    // out of line, in baseline SSE2); -0.0 first, as f64's Sum
    let mut total = -0.0;
    for b in x.chunks(BLOCK) {
        total += block_sum(b, f);
    }
    total
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

#[cfg(test)]
mod tests {
    use super::sum_map;

    /// `sum_map` in its documented order, bit for bit: f32 lanes within
    /// blocks of 1024, each block's lanes and leftovers in f64, the blocks in
    /// order; lengths around the lanes and the blocks, and the empty sum.
    #[test]
    fn sum_map_sums_in_the_documented_order() {
        let x: Vec<f32> = (0..3000u64).map(|i| (crate::rng::uniform01(9, i) as f32 - 0.5) * 1e3).collect();
        for len in [0, 5, 16, 1024, 1040, 3000] {
            let x = &x[..len];
            let mut want = -0.0f64;
            for b in x.chunks(1024) {
                let full = b.len() / 16 * 16;
                let mut lanes = [0f32; 16];
                for (i, &v) in b[..full].iter().enumerate() {
                    lanes[i % 16] += v * v;
                }
                let mut s = -0.0f64;
                for l in lanes {
                    s += l as f64;
                }
                for &v in &b[full..] {
                    s += (v * v) as f64;
                }
                want += s;
            }
            assert_eq!(sum_map(x, |v| v * v).to_bits(), want.to_bits(), "length {len}");
        }
    }
}
