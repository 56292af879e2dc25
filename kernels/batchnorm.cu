// Batch norm with batch statistics; the GPU twin of src/ops/batchnorm.rs.
// One block per channel; sums in double, in a fixed order.
#include "common.cuh"

// y (+)= (x - mean) * invstd per channel; stats = [mean; c] ++ [invstd; c].
KERNEL void batchnorm_forward(ActShape s, const float* __restrict__ x, float* __restrict__ y, int accumulate, float* __restrict__ stats) {
    __shared__ double shared_stat[2];
    const int c = blockIdx.x;
    const long long L = (long long)s.n * s.h * s.w;
    const float* xc = x + c * L;
    float* yc = y + c * L;
    double sum = 0.0;
    for (long long i = threadIdx.x; i < L; i += blockDim.x) sum += xc[i];
    sum = block_sum(sum);
    if (threadIdx.x == 0) shared_stat[0] = sum / (double)L;
    __syncthreads();
    const float mean = (float)shared_stat[0];
    double sq = 0.0;
    for (long long i = threadIdx.x; i < L; i += blockDim.x) {
        float d = xc[i] - mean;
        sq += (double)(d * d);
    }
    sq = block_sum(sq);
    if (threadIdx.x == 0) {
        shared_stat[1] = 1.0 / sqrt(sq / (double)L + 1e-5);
        stats[c] = mean;
        stats[s.c + c] = (float)shared_stat[1];
    }
    __syncthreads();
    const float inv = (float)shared_stat[1];
    for (long long i = threadIdx.x; i < L; i += blockDim.x) {
        float v = (xc[i] - mean) * inv;
        yc[i] = accumulate ? yc[i] + v : v;
    }
}
PADA_KERNEL(batchnorm_forward)

// dx = invstd * (dy - mean(dy) - xhat * mean(dy * xhat)), xhat recomputed from x and stats.
KERNEL void batchnorm_backward(ActShape s, const float* __restrict__ x, const float* __restrict__ stats, const float* __restrict__ dy,
                                   float* __restrict__ dx) {
    __shared__ float shared_mean[2];
    const int c = blockIdx.x;
    const long long L = (long long)s.n * s.h * s.w;
    const float* xc = x + c * L;
    const float* gc = dy + c * L;
    float* dc = dx + c * L;
    const float mean = stats[c], inv = stats[s.c + c];
    double sdy = 0.0, sdyx = 0.0;
    for (long long i = threadIdx.x; i < L; i += blockDim.x) {
        float g = gc[i];
        sdy += g;
        sdyx += (double)(g * (xc[i] - mean));
    }
    sdy = block_sum(sdy);
    sdyx = block_sum(sdyx);
    if (threadIdx.x == 0) {
        shared_mean[0] = (float)(sdy / (double)L);
        shared_mean[1] = (float)((double)inv * sdyx / (double)L);
    }
    __syncthreads();
    const float mdy = shared_mean[0], mdyy = shared_mean[1];
    for (long long i = threadIdx.x; i < L; i += blockDim.x) dc[i] = inv * (gc[i] - mdy - (xc[i] - mean) * inv * mdyy);
}
PADA_KERNEL(batchnorm_backward)

// dx = invstd * dy: batch statistics held fixed (per-sample gradient norms).
KERNEL void batchnorm_backward_frozen(ActShape s, const float* __restrict__ stats, const float* __restrict__ dy, float* __restrict__ dx) {
    long long L = (long long)s.n * s.h * s.w;
    long long total = L * s.c;
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    dx[i] = stats[s.c + (int)(i / L)] * dy[i];
}
PADA_KERNEL(batchnorm_backward_frozen)
