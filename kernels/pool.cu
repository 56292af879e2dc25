// Average pools and the global average pool; the GPU twin of mod.rs.
#include "common.cuh"

__device__ __forceinline__ int window_lo(int i) { return i > 0 ? i - 1 : 0; }
__device__ __forceinline__ int window_hi(int i, int n) { return i + 2 < n ? i + 2 : n; }

// y (+)= avg_pool2d(x, 3, stride 1, padding 1, count_include_pad=False); one thread per output.
KERNEL void avgpool3x3_forward(PoolGeom g, const float* __restrict__ x, float* __restrict__ y, int accumulate) {
    long long total = (long long)g.c * g.n * g.h * g.w;
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    int c = (int)(i % g.w), r = (int)((i / g.w) % g.h);
    const float* plane = x + (i / ((long long)g.w * g.h)) * g.h * g.w;
    int r0 = window_lo(r), r1 = window_hi(r, g.h), c0 = window_lo(c), c1 = window_hi(c, g.w);
    float acc = 0.f;
    for (int rr = r0; rr < r1; ++rr)
        for (int cc = c0; cc < c1; ++cc) acc += plane[rr * g.w + cc];
    float v = acc / (float)((r1 - r0) * (c1 - c0));
    y[i] = accumulate ? y[i] + v : v;
}
PADA_KERNEL(avgpool3x3_forward)

// dx (+)= the adjoint: input (r, c) gathers dy / count over its own 3x3 window.
KERNEL void avgpool3x3_backward(PoolGeom g, const float* __restrict__ dy, float* __restrict__ dx, int accumulate) {
    long long total = (long long)g.c * g.n * g.h * g.w;
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    int c = (int)(i % g.w), r = (int)((i / g.w) % g.h);
    const float* plane = dy + (i / ((long long)g.w * g.h)) * g.h * g.w;
    float acc = 0.f;
    for (int rr = window_lo(r); rr < window_hi(r, g.h); ++rr)
        for (int cc = window_lo(c); cc < window_hi(c, g.w); ++cc) {
            int cnt = (window_hi(rr, g.h) - window_lo(rr)) * (window_hi(cc, g.w) - window_lo(cc));
            acc += plane[rr * g.w + cc] / (float)cnt;
        }
    dx[i] = accumulate ? dx[i] + acc : acc;
}
PADA_KERNEL(avgpool3x3_backward)

// y = avg_pool2d(x, 2, 2) (floor on odd sizes); one thread per output.
KERNEL void avgpool2x2_forward(PoolGeom g, const float* __restrict__ x, float* __restrict__ y) {
    long long total = (long long)g.c * g.n * g.oh * g.ow;
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    int c = (int)(i % g.ow), r = (int)((i / g.ow) % g.oh);
    const float* plane = x + (i / ((long long)g.ow * g.oh)) * g.h * g.w;
    const float* a = plane + 2 * r * g.w + 2 * c;
    y[i] = (a[0] + a[1] + a[g.w] + a[g.w + 1]) * 0.25f;
}
PADA_KERNEL(avgpool2x2_forward)

// dx (+)= dy / 4 spread over each 2x2 block; nothing reaches a dropped odd row or column.
KERNEL void avgpool2x2_backward(PoolGeom g, const float* __restrict__ dy, float* __restrict__ dx, int accumulate) {
    long long total = (long long)g.c * g.n * g.h * g.w;
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    int c = (int)(i % g.w), r = (int)((i / g.w) % g.h);
    long long plane = i / ((long long)g.w * g.h);
    float v = 0.f;
    if (r / 2 < g.oh && c / 2 < g.ow) v = dy[(plane * g.oh + r / 2) * g.ow + c / 2] * 0.25f;
    dx[i] = accumulate ? dx[i] + v : v;
}
PADA_KERNEL(avgpool2x2_backward)

// y[n][c] = mean of relu?(x) over the (c, n) plane; one thread per (c, n).
KERNEL void global_avgpool_forward(ActShape s, const float* __restrict__ x, int relu_x, float* __restrict__ y) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= s.c * s.n) return;
    int c = i / s.n, n = i % s.n;
    int hw = s.h * s.w;
    const float* p = x + (long long)i * hw;
    double acc = 0.0;
    for (int j = 0; j < hw; ++j) acc += relu_x ? (p[j] > 0.f ? p[j] : 0.f) : p[j];
    y[n * s.c + c] = (float)(acc / hw);
}
PADA_KERNEL(global_avgpool_forward)

// dx = dy[n][c] / (h*w), times [x > 0] when a mask is given.
KERNEL void global_avgpool_backward(ActShape s, const float* __restrict__ dy, const float* __restrict__ mask, float* __restrict__ dx) {
    long long total = (long long)s.c * s.n * s.h * s.w;
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    int hw = s.h * s.w;
    long long plane = i / hw;
    int c = (int)(plane / s.n), n = (int)(plane % s.n);
    float v = dy[n * s.c + c] * (1.0f / (float)hw);
    dx[i] = (mask && !(mask[i] > 0.f)) ? 0.f : v;
}
PADA_KERNEL(global_avgpool_backward)
