// Batch norm with batch statistics; the GPU twin of mod.rs.
// The channel sums are split over blocks (the channel chunks of common.cuh:
// channel_sum_parts computes them), summed in double, in a fixed order.
#include "common.cuh"

// y (+)= relu?((x - mean) * invstd) per channel; stats = [mean; c] ++ [invstd; c].
// sums and sqs: the parts of sum(x) and of sum((x - mean)^2); grid (parts, c).
KERNEL void batchnorm_normalize(ActShape s, int chunk, const float* __restrict__ x, const float* __restrict__ sums, const float* __restrict__ sqs,
                                float* __restrict__ y, int accumulate, int relu, float* __restrict__ stats) {
    __shared__ float shared_stat[2];
    const int p = blockIdx.x, c = blockIdx.y, parts = gridDim.x;
    const long long L = (long long)s.n * s.h * s.w;
    if (threadIdx.x == 0) {
        shared_stat[0] = channel_mean(sums, c, parts, L);
        shared_stat[1] = (float)(1.0 / sqrt(parts_total(sqs, c, parts) / (double)L + 1e-5));
        if (p == 0) {
            stats[c] = shared_stat[0];
            stats[s.c + c] = shared_stat[1];
        }
    }
    __syncthreads();
    const float mean = shared_stat[0], inv = shared_stat[1];
    const float* xc = x + c * L;
    float* yc = y + c * L;
    const long long b = (long long)p * chunk, e = min(L, b + chunk);
    for (long long i = b + threadIdx.x; i < e; i += blockDim.x) {
        float v = (xc[i] - mean) * inv;
        if (relu) v = v > 0.0f ? v : 0.0f;  // NaN to 0, as the CPU's
        yc[i] = accumulate ? yc[i] + v : v;
    }
}
PADA_KERNEL(batchnorm_normalize)

// part[c][p] = sum of dy, part[channels + c][p] = sum of dy * (x - mean) over
// chunk p of channel c; grid (parts, c).
KERNEL void batchnorm_backward_parts(ActShape s, int chunk, const float* __restrict__ x, const float* __restrict__ stats, const float* __restrict__ dy,
                                     float* __restrict__ part) {
    const int p = blockIdx.x, c = blockIdx.y, parts = gridDim.x;
    const long long L = (long long)s.n * s.h * s.w;
    const float* xc = x + c * L;
    const float* gc = dy + c * L;
    const float mean = stats[c];
    const long long b = (long long)p * chunk, e = min(L, b + chunk);
    double sdy = 0.0, sdyx = 0.0;
    for (long long i = b + threadIdx.x; i < e; i += blockDim.x) {
        float g = gc[i];
        sdy += g;
        sdyx += (double)(g * (xc[i] - mean));
    }
    sdy = block_sum(sdy);
    sdyx = block_sum(sdyx);
    if (threadIdx.x == 0) {
        part[(long long)c * parts + p] = (float)sdy;
        part[(long long)(s.c + c) * parts + p] = (float)sdyx;
    }
}
PADA_KERNEL(batchnorm_backward_parts)

// dx = invstd * (dy - mean(dy) - xhat * mean(dy * xhat)), xhat recomputed from
// x and stats, the means from batchnorm_backward_parts; grid (parts, c).
KERNEL void batchnorm_backward_apply(ActShape s, int chunk, const float* __restrict__ x, const float* __restrict__ stats, const float* __restrict__ dy,
                                     const float* __restrict__ part, float* __restrict__ dx) {
    __shared__ float shared_mean[2];
    const int p = blockIdx.x, c = blockIdx.y, parts = gridDim.x;
    const long long L = (long long)s.n * s.h * s.w;
    const float mean = stats[c], inv = stats[s.c + c];
    if (threadIdx.x == 0) {
        shared_mean[0] = (float)(parts_total(part, c, parts) / (double)L);
        shared_mean[1] = (float)((double)inv * parts_total(part, s.c + c, parts) / (double)L);
    }
    __syncthreads();
    const float mdy = shared_mean[0], mdyy = shared_mean[1];
    const float* xc = x + c * L;
    const float* gc = dy + c * L;
    float* dc = dx + c * L;
    const long long b = (long long)p * chunk, e = min(L, b + chunk);
    for (long long i = b + threadIdx.x; i < e; i += blockDim.x) dc[i] = inv * (gc[i] - mdy - (xc[i] - mean) * inv * mdyy);
}
PADA_KERNEL(batchnorm_backward_apply)

// dx = invstd * dy: batch statistics held fixed (per-sample gradient norms).
KERNEL void batchnorm_backward_frozen(ActShape s, const float* __restrict__ stats, const float* __restrict__ dy, float* __restrict__ dx) {
    long long L = (long long)s.n * s.h * s.w;
    long long total = L * s.c;
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    dx[i] = stats[s.c + (int)(i / L)] * dy[i];
}
PADA_KERNEL(batchnorm_backward_frozen)
