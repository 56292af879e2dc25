// Fused softmax cross-entropy with the per-sample norm ||softmax(z_i) - onehot(y_i)||
// (the data sampler's importance); the GPU twin of mod.rs.
#include "common.cuh"

// One thread per sample; weights may be null.
KERNEL void softmax_cross_entropy(int n, int classes, const float* __restrict__ logits, const int* __restrict__ labels, const float* __restrict__ weights,
                                      float* __restrict__ loss, float* __restrict__ dlogits, float* __restrict__ proxy_norm) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float* z = logits + (long long)i * classes;
    int y = labels[i];
    double m = -INFINITY;
    for (int j = 0; j < classes; ++j) m = fmax(m, (double)z[j]);
    double se = 0.0;
    for (int j = 0; j < classes; ++j) se += exp((double)z[j] - m);
    double lse = m + log(se);
    loss[i] = (float)(lse - (double)z[y]);
    double wi = weights ? (double)weights[i] : 1.0;
    double sq = 0.0;
    for (int j = 0; j < classes; ++j) {
        double g = exp((double)z[j] - lse) - (j == y ? 1.0 : 0.0);
        sq += g * g;
        dlogits[(long long)i * classes + j] = (float)(g * wi / (double)n);
    }
    proxy_norm[i] = (float)sqrt(sq);
}
PADA_KERNEL(softmax_cross_entropy)

// sums[0..3] += loss sum, correct top-1 predictions, samples, leaving out
// samples whose loss is not finite; one block.
KERNEL void batch_metrics(int n, int classes, const float* __restrict__ logits, const int* __restrict__ labels, const float* __restrict__ loss,
                          float* __restrict__ sums) {
    double l = 0.0, c = 0.0, m = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        if (!isfinite(loss[i])) continue;
        const float* z = logits + (long long)i * classes;
        int best = 0;
        for (int j = 1; j < classes; ++j)
            if (z[j] > z[best]) best = j;
        l += loss[i];
        c += best == labels[i] ? 1.0 : 0.0;
        m += 1.0;
    }
    l = block_sum(l);
    c = block_sum(c);
    m = block_sum(m);
    if (threadIdx.x == 0) {
        sums[0] += (float)l;
        sums[1] += (float)c;
        sums[2] += (float)m;
    }
}
PADA_KERNEL(batch_metrics)
