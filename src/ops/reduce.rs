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
    for g in x.chunks(SIDE * BLOCK) {
        if g.len() == SIDE * BLOCK {
            full_blocks(g, g, |v, _| f(v)).into_iter().for_each(|s| total += s);
        } else {
            g.chunks(BLOCK).for_each(|b| total += block_sum(b, f));
        }
    }
    total
}

/// Full blocks summed side by side. A block's lanes are one chain of
/// dependent adds, so a block alone waits on the adder's latency; `SIDE`
/// blocks at once keep it busy. Each block's sums are the same, in the same
/// order, and the blocks' totals are added in order by the caller.
const SIDE: usize = 4;

/// The sums of `f(a_i, b_i)` over each of `SIDE` full blocks, as
/// [`block_sum2`] gives them one at a time.
#[inline(always)]
fn full_blocks<T: Element>(a: &[T], b: &[T], f: impl Fn(T, T) -> T) -> [f64; SIDE] {
    let (a, b) = (&a[..SIDE * BLOCK], &b[..SIDE * BLOCK]);
    let mut acc = [[T::zero(); LANES]; SIDE];
    for j in (0..BLOCK).step_by(LANES) {
        for (s, acc) in acc.iter_mut().enumerate() {
            let (x, y) = (&a[s * BLOCK + j..][..LANES], &b[s * BLOCK + j..][..LANES]);
            for i in 0..LANES {
                acc[i] += f(x[i], y[i]);
            }
        }
    }
    acc.map(|acc| acc.iter().map(|v| v.as_f64()).sum::<f64>())
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
    for (ag, bg) in a.chunks(SIDE * BLOCK).zip(b.chunks(SIDE * BLOCK)) {
        if ag.len() == SIDE * BLOCK {
            full_blocks(ag, bg, |x, _| x).into_iter().for_each(|v| s += v);
            full_blocks(ag, bg, |x, y| x * (y - shift)).into_iter().for_each(|v| d += v);
            continue;
        }
        for (ab, bb) in ag.chunks(BLOCK).zip(bg.chunks(BLOCK)) {
            s += block_sum2(ab, bb, |x, _| x);
            d += block_sum2(ab, bb, |x, y| x * (y - shift));
        }
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
    use super::{sum_and_dot, sum_map};

    fn uniform(seed: u64, i: u64) -> f32 {
        (crate::rng::uniform01(seed, i) as f32 - 0.5) * 1e3
    }

    /// `sum_map` in its documented order, bit for bit: f32 lanes within
    /// blocks of 1024, each block's lanes and leftovers in f64, the blocks in
    /// order; lengths around the lanes and the blocks, and the empty sum.
    #[test]
    fn sum_map_sums_in_the_documented_order() {
        let x: Vec<f32> = (0..9000u64).map(|i| uniform(9, i)).collect();
        for len in [0, 5, 16, 1024, 1040, 3000, 4096, 4100, 9000] {
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

    /// `sum_and_dot` in its documented order, bit for bit: each block's f32
    /// lanes summed in f64, then its leftovers' f64 sum added; the blocks in
    /// order from +0.0; lengths around the lanes and the blocks.
    #[test]
    fn sum_and_dot_sums_in_the_documented_order() {
        let (a, b): (Vec<f32>, Vec<f32>) = (0..9000u64).map(|i| (uniform(3, i), uniform(4, i))).unzip();
        let shift = 7.25f32;
        for len in [0, 5, 1024, 1040, 4096, 4100, 9000] {
            let (a, b) = (&a[..len], &b[..len]);
            let (mut s, mut d) = (0f64, 0f64);
            for (ab, bb) in a.chunks(1024).zip(b.chunks(1024)) {
                let full = ab.len() / 16 * 16;
                let block = |f: &dyn Fn(f32, f32) -> f32| {
                    let mut lanes = [0f32; 16];
                    for i in 0..full {
                        lanes[i % 16] += f(ab[i], bb[i]);
                    }
                    let (mut l, mut r) = (-0.0f64, -0.0f64);
                    lanes.iter().for_each(|&x| l += x as f64);
                    (full..ab.len()).for_each(|i| r += f(ab[i], bb[i]) as f64);
                    l + r
                };
                s += block(&|x, _| x);
                d += block(&|x, y| x * (y - shift));
            }
            let (gs, gd) = sum_and_dot(a, b, shift);
            assert_eq!((gs.to_bits(), gd.to_bits()), (s.to_bits(), d.to_bits()), "length {len}");
        }
    }

    /// Blocks summed side by side are still added in order: 2^58 + 1 - 2^58
    /// is 0 in that order (the 1 is lost) and 1 with the 1 last.
    #[test]
    fn blocks_are_added_in_order() {
        let mut x = vec![0f32; 4 * 1024 + 5];
        x[..1024].fill(2f32.powi(48));
        x[1024..2048].fill(2f32.powi(-10));
        x[2048..3072].fill(-(2f32.powi(48)));
        assert_eq!(sum_map(&x, |v| v), 0.0);
        assert_eq!(sum_and_dot(&x, &x, 0.0).0, 0.0);
    }
}
