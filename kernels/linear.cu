// The classifier; the GPU twin of mod.rs. Its sizes (batch x 4C x
// classes, e.g. 256 x 64 x 10) are far too small for cuBLAS to pay for its
// launch and handle, and a kernel of our own also runs in the emulator.
#include "common.cuh"

// y[n][o] = b[o] + sum_i x[n][i] w[o][i]; one thread per output.
KERNEL void linear_forward(LinearGeom g, const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b, float* __restrict__ y) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= g.n * g.out) return;
    int n = t / g.out, o = t % g.out;
    float acc = 0.f;
    for (int i = 0; i < g.inp; ++i) acc += x[n * g.inp + i] * w[o * g.inp + i];
    y[t] = b[o] + acc;
}
PADA_KERNEL(linear_forward)

// dw[o][i] += sum_n dy[n][o] x[n][i] (threads 0 .. out*inp), db[o] += sum_n dy[n][o] (the next out threads).
KERNEL void linear_backward_weight(LinearGeom g, const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dw, float* __restrict__ db) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t < g.out * g.inp) {
        int o = t / g.inp, i = t % g.inp;
        float acc = 0.f;
        for (int n = 0; n < g.n; ++n) acc += dy[n * g.out + o] * x[n * g.inp + i];
        dw[t] += acc;
    } else if (t < g.out * g.inp + g.out) {
        int o = t - g.out * g.inp;
        double acc = 0.0;
        for (int n = 0; n < g.n; ++n) acc += dy[n * g.out + o];
        db[o] += (float)acc;
    }
}
PADA_KERNEL(linear_backward_weight)

// dx[n][i] = sum_o dy[n][o] w[o][i].
KERNEL void linear_backward_data(LinearGeom g, const float* __restrict__ w, const float* __restrict__ dy, float* __restrict__ dx) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= g.n * g.inp) return;
    int n = t / g.inp, i = t % g.inp;
    float acc = 0.f;
    for (int o = 0; o < g.out; ++o) acc += dy[n * g.out + o] * w[o * g.inp + i];
    dx[t] = acc;
}
PADA_KERNEL(linear_backward_data)

// out[n] += ||dy_n||^2 (||x_n||^2 + 1): squared norm of sample n's weight and bias gradient.
KERNEL void linear_per_sample_sq_norms(LinearGeom g, const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ out) {
    int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= g.n) return;
    double xx = 0.0, dd = 0.0;
    for (int i = 0; i < g.inp; ++i) xx += (double)x[n * g.inp + i] * (double)x[n * g.inp + i];
    for (int o = 0; o < g.out; ++o) dd += (double)dy[n * g.out + o] * (double)dy[n * g.out + o];
    out[n] += (float)(dd * (xx + 1.0));
}
PADA_KERNEL(linear_per_sample_sq_norms)
