// Elementwise ops; the GPU twin of src/ops/elementwise.rs. Grid-stride loops.
#include "common.cuh"

#define GRID_STRIDE(i, n) for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

KERNEL void fill(float* __restrict__ dst, long long n, float v) {
    GRID_STRIDE(i, n) dst[i] = v;
}
PADA_KERNEL(fill)

KERNEL void copy(float* __restrict__ dst, const float* __restrict__ src, long long n) {
    GRID_STRIDE(i, n) dst[i] = src[i];
}
PADA_KERNEL(copy)

KERNEL void add_assign(float* __restrict__ dst, const float* __restrict__ src, long long n) {
    GRID_STRIDE(i, n) dst[i] += src[i];
}
PADA_KERNEL(add_assign)

KERNEL void axpy(float* __restrict__ dst, float a, const float* __restrict__ src, long long n) {
    GRID_STRIDE(i, n) dst[i] += a * src[i];
}
PADA_KERNEL(axpy)

KERNEL void scale(float* __restrict__ dst, float a, long long n) {
    GRID_STRIDE(i, n) dst[i] *= a;
}
PADA_KERNEL(scale)

KERNEL void relu_forward(const float* __restrict__ x, float* __restrict__ y, long long n) {
    GRID_STRIDE(i, n) y[i] = x[i] > 0.f ? x[i] : 0.f;
}
PADA_KERNEL(relu_forward)

KERNEL void relu_backward(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dx, long long n) {
    GRID_STRIDE(i, n) dx[i] = x[i] > 0.f ? dy[i] : 0.f;
}
PADA_KERNEL(relu_backward)

KERNEL void elementwise_sqrt(float* __restrict__ dst, long long n) {
    GRID_STRIDE(i, n) dst[i] = sqrtf(dst[i]);
}
PADA_KERNEL(elementwise_sqrt)
