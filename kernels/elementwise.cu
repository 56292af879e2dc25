// Elementwise ops; the GPU twin of mod.rs. Grid-stride loops. As in every
// kernel, sizes (or the op's geometry struct) come first, then inputs, outputs, flags.
#include "common.cuh"

#define GRID_STRIDE(i, n) for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

KERNEL void fill(long long n, float* __restrict__ dst, float v) {
    GRID_STRIDE(i, n) dst[i] = v;
}
PADA_KERNEL(fill)

KERNEL void copy(long long n, float* __restrict__ dst, const float* __restrict__ src) {
    GRID_STRIDE(i, n) dst[i] = src[i];
}
PADA_KERNEL(copy)

KERNEL void add_assign(long long n, float* __restrict__ dst, const float* __restrict__ src) {
    GRID_STRIDE(i, n) dst[i] += src[i];
}
PADA_KERNEL(add_assign)

KERNEL void axpy(long long n, float* __restrict__ dst, float a, const float* __restrict__ src) {
    GRID_STRIDE(i, n) dst[i] += a * src[i];
}
PADA_KERNEL(axpy)

KERNEL void scale(long long n, float* __restrict__ dst, float a) {
    GRID_STRIDE(i, n) dst[i] *= a;
}
PADA_KERNEL(scale)

KERNEL void relu_forward(long long n, const float* __restrict__ x, float* __restrict__ y) {
    GRID_STRIDE(i, n) y[i] = x[i] > 0.f ? x[i] : 0.f;
}
PADA_KERNEL(relu_forward)

KERNEL void relu_backward(long long n, const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dx) {
    GRID_STRIDE(i, n) dx[i] = x[i] > 0.f ? dy[i] : 0.f;
}
PADA_KERNEL(relu_backward)

KERNEL void elementwise_sqrt(long long n, float* __restrict__ dst) {
    GRID_STRIDE(i, n) dst[i] = sqrtf(dst[i]);
}
PADA_KERNEL(elementwise_sqrt)

// part[c][p] = sum over chunk p of channel c (see the channel chunks of
// common.cuh) of x, or of (x - mean_c)^2 when mean_parts, the parts of the
// channel sums, is given. x is [channels][L]; grid (parts, channels).
KERNEL void channel_sum_parts(long long L, int chunk, const float* __restrict__ x, const float* __restrict__ mean_parts, float* __restrict__ part) {
    __shared__ float shared_mean;
    const int p = blockIdx.x, c = blockIdx.y, parts = gridDim.x;
    const float* xc = x + (long long)c * L;
    const long long b = (long long)p * chunk, e = min(L, b + chunk);
    if (mean_parts) {  // the same for the whole block
        if (threadIdx.x == 0) shared_mean = channel_mean(mean_parts, c, parts, L);
        __syncthreads();
    }
    double acc = 0.0;
    if (mean_parts) {
        const float mean = shared_mean;
        for (long long i = b + threadIdx.x; i < e; i += blockDim.x) {
            float d = xc[i] - mean;
            acc += (double)(d * d);
        }
    } else {
        for (long long i = b + threadIdx.x; i < e; i += blockDim.x) acc += xc[i];
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) part[(long long)c * parts + p] = (float)acc;
}
PADA_KERNEL(channel_sum_parts)

// dst[c] += the sum of channel c's parts, in order.
KERNEL void channel_parts_add(int channels, int parts, const float* __restrict__ part, float* __restrict__ dst) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c < channels) dst[c] += (float)parts_total(part, c, parts);
}
PADA_KERNEL(channel_parts_add)
