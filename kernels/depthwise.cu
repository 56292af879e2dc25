// Depthwise convolution on CNHW activations (one k x k filter per channel,
// weights [c, 1, k, k]); the GPU twin of src/ops/depthwise/mod.rs. Every
// output sums its taps in (kh, kw) order and every input gradient gathers its
// taps in the same order, as the CPU reference does; the weight gradient is
// reduced per (sample, channel) block in double, then over the samples in order.
#include "common.cuh"

// The largest filter: k = 5 (NAS-Bench-Macro's MBConv k5), 25 taps.
#define DW_MAX_TAPS 25

__device__ __forceinline__ float relu_if(float v, int relu) { return relu && !(v > 0.f) ? 0.f : v; }

// y = depthwise_conv(relu?(x), w); one thread per output value.
KERNEL void depthwise_forward(ConvGeom g, const float* __restrict__ x, int relu_x, const float* __restrict__ w, float* __restrict__ y) {
    long long total = (long long)g.c_out * g.n * g.oh * g.ow;
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    int o = (int)(i % g.ow), r = (int)((i / g.ow) % g.oh);
    long long plane = i / ((long long)g.ow * g.oh);
    int c = (int)(plane / g.n);
    const float* xp = x + plane * g.h * g.w;
    const float* taps = w + (long long)c * g.k * g.k;
    float acc = 0.f;
    for (int kh = 0; kh < g.k; ++kh) {
        int ih = r * g.stride - g.pad + kh;
        if (ih < 0 || ih >= g.h) continue;
        for (int kw = 0; kw < g.k; ++kw) {
            int iw = o * g.stride - g.pad + kw;
            if (iw < 0 || iw >= g.w) continue;
            acc += taps[kh * g.k + kw] * relu_if(xp[ih * g.w + iw], relu_x);
        }
    }
    y[i] = acc;
}
PADA_KERNEL(depthwise_forward)

// dx (+)= [x > 0] * the transpose: one thread per input value, gathering the
// output gradients of the taps that read it.
KERNEL void depthwise_backward_data(ConvGeom g, const float* __restrict__ dy, const float* __restrict__ w,
                                    const float* __restrict__ relu_mask, float* __restrict__ dx, int accumulate) {
    long long total = (long long)g.c_in * g.n * g.h * g.w;
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    int iw = (int)(i % g.w), ih = (int)((i / g.w) % g.h);
    long long plane = i / ((long long)g.w * g.h);
    int c = (int)(plane / g.n);
    const float* gp = dy + plane * g.oh * g.ow;
    const float* taps = w + (long long)c * g.k * g.k;
    float acc = 0.f;
    for (int kh = 0; kh < g.k; ++kh) {
        int t = ih + g.pad - kh;
        if (t < 0 || t % g.stride != 0 || t / g.stride >= g.oh) continue;
        for (int kw = 0; kw < g.k; ++kw) {
            int u = iw + g.pad - kw;
            if (u < 0 || u % g.stride != 0 || u / g.stride >= g.ow) continue;
            acc += taps[kh * g.k + kw] * gp[(t / g.stride) * g.ow + u / g.stride];
        }
    }
    if (relu_mask && !(relu_mask[i] > 0.f)) acc = 0.f;
    dx[i] = accumulate ? dx[i] + acc : acc;
}
PADA_KERNEL(depthwise_backward_data)

// part[(i * c + ch) * k*k + tap] = sum over sample i's pixels of channel ch of
// dy * relu?(x) at that tap, in double; block (i, ch) = (blockIdx.x, blockIdx.y).
KERNEL void depthwise_weight_parts(ConvGeom g, const float* __restrict__ x, int relu_x, const float* __restrict__ dy,
                                   double* __restrict__ part) {
    int i = blockIdx.x, ch = blockIdx.y, kk = g.k * g.k;
    long long plane = (long long)ch * g.n + i;
    const float* xp = x + plane * g.h * g.w;
    const float* gp = dy + plane * g.oh * g.ow;
    float acc[DW_MAX_TAPS];
    for (int t = 0; t < kk; ++t) acc[t] = 0.f;
    for (int p = threadIdx.x; p < g.oh * g.ow; p += blockDim.x) {
        int r = p / g.ow, o = p % g.ow;
        float d = gp[p];
        for (int kh = 0; kh < g.k; ++kh) {
            int ih = r * g.stride - g.pad + kh;
            if (ih < 0 || ih >= g.h) continue;
            for (int kw = 0; kw < g.k; ++kw) {
                int iw = o * g.stride - g.pad + kw;
                if (iw < 0 || iw >= g.w) continue;
                acc[kh * g.k + kw] += d * relu_if(xp[ih * g.w + iw], relu_x);
            }
        }
    }
    for (int t = 0; t < kk; ++t) {
        double s = block_sum((double)acc[t]);
        if (threadIdx.x == 0) part[((long long)i * g.c_out + ch) * kk + t] = s;
    }
}
PADA_KERNEL(depthwise_weight_parts)

// dw[j] += sum over the samples, in order, of part[i * len + j]; one thread per weight.
KERNEL void depthwise_reduce_weight_grad(int n, int len, const double* __restrict__ part, float* __restrict__ dw) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= len) return;
    double s = 0.0;
    for (int i = 0; i < n; ++i) s += part[(long long)i * len + j];
    dw[j] += (float)s;
}
PADA_KERNEL(depthwise_reduce_weight_grad)

// out[i] += sum over sample i's parts of part^2 (its weight gradient's squared norm); one block per sample.
KERNEL void depthwise_per_sample_finish(int len, const double* __restrict__ part, float* __restrict__ out) {
    int i = blockIdx.x;
    double s = 0.0;
    for (int j = threadIdx.x; j < len; j += blockDim.x) {
        double v = part[(long long)i * len + j];
        s += v * v;
    }
    s = block_sum(s);
    if (threadIdx.x == 0) out[i] += (float)s;
}
PADA_KERNEL(depthwise_per_sample_finish)
