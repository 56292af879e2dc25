// PA&DA's data resampling on the device; the GPU twin of
// src/ops/sampling/mod.rs (whose functions define every result here, bit for
// bit): fold the epoch's score log into one score per sample, mix the
// distribution q, draw the next epoch. Nothing goes through the host.
//
// The fold is sequential per sample in draw order (the official semantics):
// the log's positions are sorted by sample with a stable LSD radix sort (4-bit
// digits; each thread counts and then scatters a run of RADIX_RUN consecutive
// elements, so equal keys keep their order), then one thread folds each
// sample's run. Sums follow the reference's blocked order: a running sum
// within tiles of SCAN_TILE entries, a running sum of the tiles' totals, and
// offset + local (blocked_prefix_sums). Draws are inverse-CDF searches of
// counter-based uniforms (Philox4x32-10, as src/rng.rs), so draw i depends on
// i alone.
//
// There are no a*b + c patterns a compiler could contract into an FMA: every
// result rounds as the reference's.
#include "common.cuh"

#define SCAN_TILE 256  // src/ops/sampling/mod.rs: SCAN_TILE
#define RADIX_RUN 16   // elements a radix-sort thread counts and scatters
#define RADIX_BITS 4
#define RADIX_DIGITS 16

template <typename T>
__device__ __forceinline__ T positive_part(T v) {
    return v > (T)0 ? v : (T)0;  // NaN and negatives count as 0
}

// ---- blocked scans ----------------------------------------------------------

// totals[t] = the running sum from 0 of positive_part(x) over tile t; one thread per tile.
template <typename In, typename Acc>
__device__ __forceinline__ void tile_totals(long long n, const In* __restrict__ x, Acc* __restrict__ totals) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x, b = t * SCAN_TILE;
    if (b >= n) return;
    long long e = min(n, b + SCAN_TILE);
    Acc local = 0;
    for (long long i = b; i < e; ++i) local = local + positive_part((Acc)x[i]);
    totals[t] = local;
}

// offsets[t] = totals[0] + ... + totals[t - 1] (a running sum from 0), offsets[tiles] = the total; one thread.
template <typename Acc>
__device__ __forceinline__ void tile_offsets(int tiles, const Acc* __restrict__ totals, Acc* __restrict__ offsets) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    Acc run = 0;
    for (int t = 0; t < tiles; ++t) {
        offsets[t] = run;
        run = run + totals[t];
    }
    offsets[tiles] = run;
}

// out[i] = offsets[tile] + the running sum of positive_part(x) in the tile up
// to i (inclusive), or up to i - 1 (exclusive); one thread per tile.
template <typename In, typename Acc>
__device__ __forceinline__ void tile_prefix(long long n, const In* __restrict__ x, const Acc* __restrict__ offsets, int exclusive,
                                            Acc* __restrict__ out) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x, b = t * SCAN_TILE;
    if (b >= n) return;
    long long e = min(n, b + SCAN_TILE);
    Acc local = 0, offset = offsets[t];
    for (long long i = b; i < e; ++i) {
        Acc v = positive_part((Acc)x[i]);
        if (exclusive) {
            out[i] = offset + local;
            local = local + v;
        } else {
            local = local + v;
            out[i] = offset + local;
        }
    }
}

KERNEL void scan_tile_totals_f32(long long n, const float* __restrict__ x, double* __restrict__ totals) { tile_totals(n, x, totals); }
PADA_KERNEL(scan_tile_totals_f32)

KERNEL void scan_tile_totals_i32(long long n, const int* __restrict__ x, int* __restrict__ totals) { tile_totals(n, x, totals); }
PADA_KERNEL(scan_tile_totals_i32)

KERNEL void scan_tile_offsets_f64(int tiles, const double* __restrict__ totals, double* __restrict__ offsets) { tile_offsets(tiles, totals, offsets); }
PADA_KERNEL(scan_tile_offsets_f64)

KERNEL void scan_tile_offsets_i32(int tiles, const int* __restrict__ totals, int* __restrict__ offsets) { tile_offsets(tiles, totals, offsets); }
PADA_KERNEL(scan_tile_offsets_i32)

KERNEL void scan_tile_prefix_f32(long long n, const float* __restrict__ x, const double* __restrict__ offsets, int exclusive, double* __restrict__ out) {
    tile_prefix(n, x, offsets, exclusive, out);
}
PADA_KERNEL(scan_tile_prefix_f32)

KERNEL void scan_tile_prefix_i32(long long n, const int* __restrict__ x, const int* __restrict__ offsets, int exclusive, int* __restrict__ out) {
    tile_prefix(n, x, offsets, exclusive, out);
}
PADA_KERNEL(scan_tile_prefix_i32)

// ---- stable radix sort of the log's positions by sample ----------------------

// counts[d * runs + r] = how many keys of run r (RADIX_RUN consecutive
// elements) have digit d at `shift`; one thread per run.
KERNEL void radix_count_digits(int n, const int* __restrict__ keys, int shift, int* __restrict__ counts) {
    int runs = (n + RADIX_RUN - 1) / RADIX_RUN;
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= runs) return;
    int c[RADIX_DIGITS];
    for (int d = 0; d < RADIX_DIGITS; ++d) c[d] = 0;
    for (int i = r * RADIX_RUN; i < min(n, (r + 1) * RADIX_RUN); ++i) c[(keys[i] >> shift) & (RADIX_DIGITS - 1)] += 1;
    for (int d = 0; d < RADIX_DIGITS; ++d) counts[d * runs + r] = c[d];
}
PADA_KERNEL(radix_count_digits)

// Each run's elements, in order, to offsets[d * runs + r] onwards (the
// exclusive scan of the counts, digit-major): a stable counting sort by the
// digit. vals == null stands for the positions 0, 1, ... (the first pass).
KERNEL void radix_scatter(int n, const int* __restrict__ keys, const int* __restrict__ vals, int shift, const int* __restrict__ offsets,
                          int* __restrict__ keys_out, int* __restrict__ vals_out) {
    int runs = (n + RADIX_RUN - 1) / RADIX_RUN;
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= runs) return;
    int next[RADIX_DIGITS];
    for (int d = 0; d < RADIX_DIGITS; ++d) next[d] = offsets[d * runs + r];
    for (int i = r * RADIX_RUN; i < min(n, (r + 1) * RADIX_RUN); ++i) {
        int k = keys[i], d = (k >> shift) & (RADIX_DIGITS - 1);
        int at = next[d]++;
        keys_out[at] = k;
        vals_out[at] = vals ? vals[i] : i;
    }
}
PADA_KERNEL(radix_scatter)

// ---- the resampling -----------------------------------------------------------

// scores[i] = sample i's observations folded in draw order: its run of the
// sorted keys (found by binary search) lists the log positions in increasing
// order. One thread per sample (grid-stride).
KERNEL void fold_scores(int n, int count, const int* __restrict__ sorted_keys, const int* __restrict__ sorted_pos, const float* __restrict__ log,
                        float* __restrict__ scores) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        int lo = 0, hi = count;
        while (lo < hi) {
            int mid = lo + (hi - lo) / 2;
            if (sorted_keys[mid] < i) lo = mid + 1; else hi = mid;
        }
        float s = 0.f;
        for (int j = lo; j < count && sorted_keys[j] == i; ++j) {
            float g = log[sorted_pos[j]];
            if (isfinite(g)) s = s != 0.f ? (s + g) * 0.5f : g;
        }
        scores[i] = s;
    }
}
PADA_KERNEL(fold_scores)

// q[i] = tau * max(s_i, 0) / S + (1 - tau) / n in double, rounded to float;
// S = offsets[tiles], the blocked total of the scores (uniform when S is 0).
KERNEL void importance_distribution(int n, const float* __restrict__ scores, const double* __restrict__ offsets, int tiles, double tau,
                                    float* __restrict__ q) {
    double total = offsets[tiles];
    if (!(total > 0.0)) tau = 0.0;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        double s = positive_part((double)scores[i]);
        double v = (tau > 0.0 ? tau * s / total : 0.0) + (1.0 - tau) / (double)n;
        q[i] = (float)v;
    }
}
PADA_KERNEL(importance_distribution)

// The first j with prefix[j] > x (at most n - 1): the inverse CDF.
__device__ __forceinline__ int inverse_cdf(int n, const double* __restrict__ prefix, double x) {
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (prefix[mid] <= x) lo = mid + 1; else hi = mid;
    }
    return min(lo, n - 1);
}

// out[i] = the inverse CDF at uniform01(seed, i) * prefix[n - 1]: draws with
// replacement; grid-stride.
KERNEL void draw_with_replacement(int n, int count, const double* __restrict__ prefix, unsigned long long seed, int* __restrict__ out) {
    double total = prefix[n - 1];
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < count; i += gridDim.x * blockDim.x)
        out[i] = inverse_cdf(n, prefix, uniform01(seed, (unsigned long long)i) * total);
}
PADA_KERNEL(draw_with_replacement)

// permute(k, n, seed) of src/ops/sampling/mod.rs: a 4-round Feistel network of
// Philox rounds on 4^h >= n values, cycle-walking into 0..n.
__device__ __forceinline__ unsigned long long permute(unsigned long long k, unsigned long long n, unsigned long long seed) {
    int bits = 0;
    while (bits < 64 && ((n - 1) >> bits) != 0) ++bits;
    int half = max((bits + 1) / 2, 1);
    unsigned long long mask = (1ull << half) - 1, x = k;
    for (;;) {
        unsigned long long l = x >> half, r = x & mask;
        for (uint32_t round = 0; round < 4; ++round) {
            uint32_t ctr[4] = {(uint32_t)r, round, 0x5eedu, 0u};
            uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
            philox4x32_10(ctr, key);
            unsigned long long f = (unsigned long long)ctr[0] & mask, t = r;
            r = l ^ f;
            l = t;
        }
        x = (l << half) | r;
        if (x < n) return x;
    }
}

// out[k] = the inverse CDF at (permute(k) + u) / count * prefix[n - 1],
// u = uniform01(seed, 0): systematic resampling in a random order; grid-stride.
KERNEL void draw_systematic(int n, int count, const double* __restrict__ prefix, unsigned long long seed, int* __restrict__ out) {
    double total = prefix[n - 1], u = uniform01(seed, 0ull);
    for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < count; k += gridDim.x * blockDim.x) {
        double p = (double)permute((unsigned long long)k, (unsigned long long)count, seed);
        out[k] = inverse_cdf(n, prefix, (p + u) / (double)count * total);
    }
}
PADA_KERNEL(draw_systematic)
