// The samplers' device work; the GPU twin of src/ops/sampling.rs. The
// sequential parts are tiny (a batch, a few groups) or once per epoch, and are
// kept sequential so that the results equal the CPU's bit for bit.
#include "common.cuh"

// In batch order: a first score is stored, a repeat is averaged with it.
KERNEL void sample_scores_update(int count, float* __restrict__ scores, const int* __restrict__ indices, const float* __restrict__ values) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    for (int k = 0; k < count; ++k) {
        if (!isfinite(values[k])) continue;  // a skipped step's scores are not observations
        float* s = scores + indices[k];
        *s = *s != 0.f ? (*s + values[k]) * 0.5f : values[k];
    }
}
PADA_KERNEL(sample_scores_update)

// q = tau * s / sum(s) + (1 - tau) / N (uniform when all scores are 0); one block.
KERNEL void importance_distribution(long long n, const float* __restrict__ scores, double tau, float* __restrict__ q) {
    __shared__ double total_shared;
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (long long i = 0; i < n; ++i) t += (double)scores[i];
        total_shared = t;
    }
    __syncthreads();
    double total = total_shared;
    double ta = total > 0.0 ? tau : 0.0;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) {
        double p = ta > 0.0 ? ta * (double)scores[i] / total : 0.0;
        q[i] = (float)(p + (1.0 - ta) / (double)n);
    }
}
PADA_KERNEL(importance_distribution)

// prefix[i] = sum of max(q[0..=i], 0), sequentially (as the CPU sums).
KERNEL void inclusive_prefix(long long n, const float* __restrict__ q, double* __restrict__ prefix) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    double acc = 0.0;
    for (long long i = 0; i < n; ++i) {
        double v = (double)q[i];
        acc += v > 0.0 ? v : 0.0;
        prefix[i] = acc;
    }
}
PADA_KERNEL(inclusive_prefix)

// Draw i: the first index whose prefix exceeds uniform01(seed, i) * total.
KERNEL void sample_with_replacement(long long n, const double* __restrict__ prefix, unsigned long long seed, long long count, int* __restrict__ out) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= count) return;
    double u = uniform01(seed, (unsigned long long)i) * prefix[n - 1];
    long long lo = 0, hi = n;  // partition point of prefix <= u
    while (lo < hi) {
        long long mid = lo + (hi - lo) / 2;
        if (prefix[mid] <= u) lo = mid + 1;
        else hi = mid;
    }
    out[i] = (int)(lo < n ? lo : n - 1);
}
PADA_KERNEL(sample_with_replacement)

// PA&DA path importance: S = coef * sum(sqrt(sq_norms[members])) / divisor per
// group; g[slot] = (g[slot] + S) / 2, also when S is 0 (see the CPU reference).
KERNEL void path_importance_update(const float* __restrict__ sq_norms, const float* __restrict__ clip_coef, const int* __restrict__ members,
                                       const ImportanceGroup* __restrict__ groups, int group_count, float* __restrict__ g) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    if (!isfinite(clip_coef[0])) return;  // a skipped step
    for (int k = 0; k < group_count; ++k) {
        ImportanceGroup grp = groups[k];
        double sum = 0.0;
        for (int j = grp.start; j < grp.start + grp.len; ++j) sum += sqrt((double)sq_norms[members[j]]);
        double s = (double)clip_coef[0] * sum / (double)grp.divisor;
        g[grp.slot] = (float)(((double)g[grp.slot] + s) / 2.0);
    }
}
PADA_KERNEL(path_importance_update)
