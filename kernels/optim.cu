// Multi-tensor gradient norms and SGD; the GPU twin of mod.rs.
// Every parameter tensor is one entry of a table, so one launch covers them all.
#include "common.cuh"

// out[t] = sum of squares of tensor t; one block per tensor.
KERNEL void sq_norms(const TensorRef* __restrict__ tensors, float* __restrict__ out) {
    const TensorRef t = tensors[blockIdx.x];
    const float* p = reinterpret_cast<const float*>(t.ptr);
    double s = 0.0;
    for (long long i = threadIdx.x; i < t.len; i += blockDim.x) s += (double)p[i] * (double)p[i];
    s = block_sum(s);
    if (threadIdx.x == 0) out[blockIdx.x] = (float)s;
}
PADA_KERNEL(sq_norms)

// out[0] = min(1, max_norm / (sqrt(sum(sq_norms)) + 1e-6)): clip_grad_norm_'s coefficient.
KERNEL void clip_coefficient(int count, const float* __restrict__ sq, double max_norm, float* __restrict__ out) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    double total = 0.0;
    for (int i = 0; i < count; ++i) total += (double)sq[i];
    double c = max_norm / (sqrt(total) + 1e-6);
    out[0] = (float)(c < 1.0 ? c : 1.0);
}
PADA_KERNEL(clip_coefficient)

// torch.optim.SGD on every tensor of the table (blockIdx.y), the gradients
// scaled by scale[0]: d = g*s + wd*p; m = mom*m + d; p -= lr*m.
KERNEL void sgd_step(const SgdRef* __restrict__ tensors, float lr, float momentum, float weight_decay, const float* __restrict__ scale) {
    const SgdRef t = tensors[blockIdx.y];
    float* p = reinterpret_cast<float*>(t.value);
    const float* g = reinterpret_cast<const float*>(t.grad);
    float* m = reinterpret_cast<float*>(t.momentum);
    const float s = scale[0];
    if (!isfinite(s)) return;  // a step skipped by nonfinite_guard
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < t.len; i += (long long)gridDim.x * blockDim.x) {
        float d = g[i] * s + weight_decay * p[i];
        m[i] = momentum * m[i] + d;
        p[i] -= lr * m[i];
    }
}
PADA_KERNEL(sgd_step)

// If a gradient norm is not finite: guard[0] += 1 (the first bad step also
// records its step and tensor position in guard[1], guard[2]) and the clip
// coefficient becomes NaN, which makes sgd_step skip the step and
// clipped_group_norms log NaN for it.
KERNEL void nonfinite_guard(int count, const float* __restrict__ sq_norms, long long step, float* __restrict__ guard, float* __restrict__ clip_coef) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    for (int i = 0; i < count; ++i)
        if (!isfinite(sq_norms[i])) {
            if (guard[0] == 0.f) {
                guard[1] = (float)step;
                guard[2] = (float)i;
            }
            guard[0] += 1.f;
            clip_coef[0] = NAN;
            return;
        }
}
PADA_KERNEL(nonfinite_guard)

// out[slot] = clip_coef * sum(sqrt(sq_norms[members])) per group (NaN for a
// skipped step); sequential, as the CPU sums: a handful of groups per step.
KERNEL void clipped_group_norms(int group_count, const float* __restrict__ sq_norms, const float* __restrict__ clip_coef, const int* __restrict__ members,
                                const NormGroup* __restrict__ groups, float* __restrict__ out) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    const float coef = clip_coef[0];
    for (int k = 0; k < group_count; ++k) {
        NormGroup grp = groups[k];
        double sum = 0.0;
        for (int j = grp.start; j < grp.start + grp.len; ++j) sum += sqrt((double)sq_norms[members[j]]);
        out[grp.slot] = isfinite(coef) ? (float)((double)coef * sum) : NAN;
    }
}
PADA_KERNEL(clipped_group_norms)
