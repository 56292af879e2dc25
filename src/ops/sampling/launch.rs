//! GPU launches of `kernels/sampling.cu`: grid, block, arguments and
//! workspaces of each kernel. Everything stays on the device's stream; nothing
//! here waits for it.

use super::{SamplingOps, SCAN_TILE};
use crate::backend::gpu::{blocks_for, Args, Device, GpuBackend, GpuBuf, Kernel, THREADS};

/// Elements a radix-sort thread counts and scatters (`RADIX_RUN` in kernels/sampling.cu).
const RADIX_RUN: usize = 16;
const RADIX_BITS: usize = 4;
/// Grid-stride kernels (one thread per sample or draw) need no more blocks.
const STRIDED_BLOCKS: u32 = 1024;

impl<D: Device> GpuBackend<D> {
    /// A device buffer of `len` f64 values.
    fn alloc_f64(&self, len: usize) -> GpuBuf<D> {
        self.raw_alloc(2 * len.max(1))
    }

    /// The blocked scan of `x` (f32 or i32, `len` entries): the tile offsets
    /// (`tiles + 1` entries, the last the total) and, when `prefix` is given,
    /// the prefix sums into it (f64 for f32 input, i32 for i32 input).
    fn blocked_scan(&self, x: &GpuBuf<D>, len: usize, int: bool, prefix: Option<(&mut GpuBuf<D>, bool)>) -> (GpuBuf<D>, usize) {
        let tiles = len.div_ceil(SCAN_TILE).max(1);
        let (totals, offsets) =
            if int { (self.raw_alloc(tiles), self.raw_alloc(tiles + 1)) } else { (self.alloc_f64(tiles), self.alloc_f64(tiles + 1)) };
        let (k_totals, k_offsets, k_prefix) = if int {
            (Kernel::ScanTileTotalsI32, Kernel::ScanTileOffsetsI32, Kernel::ScanTilePrefixI32)
        } else {
            (Kernel::ScanTileTotalsF32, Kernel::ScanTileOffsetsF64, Kernel::ScanTilePrefixF32)
        };
        self.launch1d(k_totals, tiles, Args::default().i64(len as i64).buf(x).buf(&totals));
        self.one_thread(k_offsets, Args::default().i32(tiles as i32).buf(&totals).buf(&offsets));
        if let Some((out, exclusive)) = prefix {
            self.launch1d(k_prefix, tiles, Args::default().i64(len as i64).buf(x).buf(&offsets).i32(exclusive as i32).buf(out));
        }
        (offsets, tiles)
    }

    /// `out` drawn from `q` by kernel `k` (inverse-CDF searches of q's blocked prefix sums).
    fn draw(&self, k: Kernel, q: &GpuBuf<D>, seed: u64, out: &mut GpuBuf<D>) {
        let (n, count) = (q.len, out.len);
        assert!(n > 0, "{}: empty distribution", k.name());
        let mut prefix = self.alloc_f64(n);
        self.blocked_scan(q, n, false, Some((&mut prefix, false)));
        let args = Args::default().i32(n as i32).i32(count as i32).buf(&prefix).u64(seed).buf(out);
        self.strided(k, count, args);
    }

    fn strided(&self, k: Kernel, n: usize, args: Args) {
        if n > 0 {
            self.launch(k, [blocks_for(n).min(STRIDED_BLOCKS), 1, 1], [THREADS, 1, 1], 0, args);
        }
    }
}

impl<D: Device> SamplingOps for GpuBackend<D> {
    fn fold_scores(&self, n: usize, order: &GpuBuf<D>, log: &GpuBuf<D>, scores: &mut GpuBuf<D>) {
        let count = order.len;
        assert!(log.len >= count && scores.len == n, "fold_scores: sizes");
        assert!(n < i32::MAX as usize && count < i32::MAX as usize, "fold_scores: at most 2^31 samples");
        // stable LSD radix sort of (sample, position) by sample, 4 bits a pass
        let bits = (usize::BITS - n.saturating_sub(1).leading_zeros()) as usize;
        let runs = count.div_ceil(RADIX_RUN).max(1);
        let counts = self.raw_alloc(runs << RADIX_BITS);
        let mut offsets = self.raw_alloc(runs << RADIX_BITS);
        let (mut keys, mut vals) = (self.raw_alloc(count), self.raw_alloc(count));
        let (mut keys2, mut vals2) = (self.raw_alloc(count), self.raw_alloc(count));
        for pass in 0..bits.div_ceil(RADIX_BITS).max(1) {
            let shift = (pass * RADIX_BITS) as i32;
            let (src_keys, src_vals) = if pass == 0 { (order, None) } else { (&keys, Some(&vals)) };
            let args = Args::default().i32(count as i32).buf(src_keys).i32(shift).buf(&counts);
            self.launch1d(Kernel::RadixCountDigits, runs, args);
            self.blocked_scan(&counts, runs << RADIX_BITS, true, Some((&mut offsets, true)));
            let args = Args::default().i32(count as i32).buf(src_keys).opt(src_vals).i32(shift).buf(&offsets).buf(&keys2).buf(&vals2);
            self.launch1d(Kernel::RadixScatter, runs, args);
            std::mem::swap(&mut keys, &mut keys2);
            std::mem::swap(&mut vals, &mut vals2);
        }
        let args = Args::default().i32(n as i32).i32(count as i32).buf(&keys).buf(&vals).buf(log).buf(scores);
        self.strided(Kernel::FoldScores, n, args);
    }

    fn importance_distribution(&self, scores: &GpuBuf<D>, tau: f64, q: &mut GpuBuf<D>) {
        let n = scores.len;
        assert_eq!(n, q.len, "importance_distribution: sizes");
        let (offsets, tiles) = self.blocked_scan(scores, n, false, None);
        let args = Args::default().i32(n as i32).buf(scores).buf(&offsets).i32(tiles as i32).f64(tau).buf(q);
        self.strided(Kernel::ImportanceDistribution, n, args);
    }

    fn draw_with_replacement(&self, q: &GpuBuf<D>, seed: u64, out: &mut GpuBuf<D>) {
        self.draw(Kernel::DrawWithReplacement, q, seed, out);
    }
    fn draw_systematic(&self, q: &GpuBuf<D>, seed: u64, out: &mut GpuBuf<D>) {
        self.draw(Kernel::DrawSystematic, q, seed, out);
    }
}
