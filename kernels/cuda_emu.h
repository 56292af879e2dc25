// CUDA emulation: the same kernels/*.cu compiled as C++20 and run on the CPU.
//
// Every thread of a block is a fiber (its own stack and context, ucontext):
// the block's fibers run interleaved, each until it reaches __syncthreads() or
// a warp shuffle, and a barrier releases its fibers once every fiber that has
// not returned has reached it. So __syncthreads() is a real barrier, warp
// shuffles exchange values between the 32 fibers of a warp, and a read of
// shared memory that some other thread writes without a barrier in between
// sees the wrong (poisoned) value instead of happening to work. Blocks run one
// after another, which is what makes function-static __shared__ arrays
// per-block. Launches are serialised.
//
// Kernels must stay inside what is emulated here: shuffles called by whole
// warps, block sizes that are multiples of 32 where shuffles are used.
#pragma once

#include <ucontext.h>

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <math.h>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace emu {
enum State { RUNNABLE, AT_BLOCK_BARRIER, AT_WARP_BARRIER, DONE };

struct Fiber {
    ucontext_t ctx;
    dim3 tid;
    unsigned linear = 0;
    State state = RUNNABLE;
};

inline constexpr std::size_t STACK_BYTES = 64 * 1024;
inline std::vector<Fiber> fibers;
inline std::vector<std::vector<char>> stacks;
inline ucontext_t scheduler;
inline Fiber* current = nullptr;
inline dim3 block_idx;
inline dim3 block_dim;
inline dim3 grid_dim;
inline std::vector<uint64_t> shuffle_slots;
inline std::vector<uint64_t> dynamic_smem;
inline std::function<void()> kernel_body;
inline std::mutex launch_mutex;

inline void fiber_entry() {
    kernel_body();
    current->state = DONE;
    swapcontext(&current->ctx, &scheduler);
}

inline void wait(State s) {
    current->state = s;
    swapcontext(&current->ctx, &scheduler);
}

inline void syncthreads() { wait(AT_BLOCK_BARRIER); }

inline unsigned block_threads() { return block_dim.x * block_dim.y * block_dim.z; }

// Runs one block: fibers until every one has returned, releasing barriers.
inline void run_block() {
    unsigned n = block_threads();
    for (unsigned t = 0; t < n; ++t) {
        Fiber& f = fibers[t];
        f.linear = t;
        f.tid = dim3(t % block_dim.x, (t / block_dim.x) % block_dim.y, t / (block_dim.x * block_dim.y));
        f.state = RUNNABLE;
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = stacks[t].data();
        f.ctx.uc_stack.ss_size = STACK_BYTES;
        f.ctx.uc_link = nullptr;
        makecontext(&f.ctx, fiber_entry, 0);
    }
    for (;;) {
        bool ran = false;
        for (unsigned t = 0; t < n; ++t)
            if (fibers[t].state == RUNNABLE) {
                current = &fibers[t];
                swapcontext(&scheduler, &fibers[t].ctx);
                ran = true;
            }
        if (ran) continue;
        bool released = false, all_done = true, all_at_block = true;
        for (unsigned w = 0; w * 32 < n; ++w) {
            bool warp_waiting = true, any = false;
            for (unsigned t = w * 32; t < std::min(n, w * 32 + 32); ++t) {
                if (fibers[t].state == DONE) continue;
                any = true;
                warp_waiting &= fibers[t].state == AT_WARP_BARRIER;
            }
            if (any && warp_waiting) {
                for (unsigned t = w * 32; t < std::min(n, w * 32 + 32); ++t)
                    if (fibers[t].state == AT_WARP_BARRIER) fibers[t].state = RUNNABLE;
                released = true;
            }
        }
        if (released) continue;
        for (unsigned t = 0; t < n; ++t) {
            all_done &= fibers[t].state == DONE;
            all_at_block &= fibers[t].state == DONE || fibers[t].state == AT_BLOCK_BARRIER;
        }
        if (all_done) return;
        if (all_at_block) {
            for (unsigned t = 0; t < n; ++t)
                if (fibers[t].state == AT_BLOCK_BARRIER) fibers[t].state = RUNNABLE;
            continue;
        }
        std::fprintf(stderr, "cuda-emu: deadlock in block (%u,%u,%u): threads wait at different barriers\n", block_idx.x, block_idx.y, block_idx.z);
        std::abort();
    }
}

template <typename T>
T shuffle(T v, unsigned (*src_lane_of)(unsigned, unsigned, unsigned), unsigned arg) {
    static_assert(sizeof(T) <= 8, "shuffle of at most 8 bytes");
    unsigned tid = current->linear, warp = tid / 32, lane = tid % 32;
    unsigned width = std::min(32u, block_threads() - warp * 32);
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    shuffle_slots[tid] = bits;
    wait(AT_WARP_BARRIER);
    unsigned src = src_lane_of(lane, width, arg);
    T r = v;
    if (src < width) std::memcpy(&r, &shuffle_slots[warp * 32 + src], sizeof(T));
    wait(AT_WARP_BARRIER);
    return r;
}
inline unsigned lane_down(unsigned lane, unsigned width, unsigned d) { return lane + d < width ? lane + d : 1000u; }
inline unsigned lane_xor(unsigned lane, unsigned, unsigned m) { return lane ^ m; }

// mma.sync.aligned.m16n8k8 with TF32 inputs and FP32 accumulation, for one
// warp, from the lanes' fragments in the PTX ISA's per-lane layout (see
// mma_tf32_16x8x8 in common.cuh): every lane posts its fragments, then
// computes its four outputs from the fragments of the lanes that the layout
// says hold its row of A and its columns of B. A wrong fragment index in a
// kernel therefore fails here as it would on a GPU. Sums run in k order
// (the hardware's order is unspecified; the tests allow for any).
inline std::vector<float> mma_slots;
inline void mma_tf32_16x8x8(float d[4], const float a[4], const float b[2]) {
    unsigned tid = current->linear, warp = tid / 32, lane = tid % 32;
    if (mma_slots.size() < (std::size_t)block_threads() * 6) mma_slots.resize((std::size_t)block_threads() * 6);
    std::memcpy(&mma_slots[tid * 6], a, 4 * sizeof(float));
    std::memcpy(&mma_slots[tid * 6 + 4], b, 2 * sizeof(float));
    wait(AT_WARP_BARRIER);
    const float* f = &mma_slots[warp * 32 * 6];
    const unsigned g = lane / 4, t = lane % 4;
    for (unsigned k = 0; k < 8; ++k) {
        const unsigned r = k / 4, q = k % 4;  // register and lane-in-group holding column (A) or row (B) k
        float a_lo = f[(g * 4 + q) * 6 + 2 * r], a_hi = f[(g * 4 + q) * 6 + 2 * r + 1];
        float b_0 = f[((2 * t) * 4 + q) * 6 + 4 + r], b_1 = f[((2 * t + 1) * 4 + q) * 6 + 4 + r];
        d[0] = fmaf(a_lo, b_0, d[0]);
        d[1] = fmaf(a_lo, b_1, d[1]);
        d[2] = fmaf(a_hi, b_0, d[2]);
        d[3] = fmaf(a_hi, b_1, d[3]);
    }
    wait(AT_WARP_BARRIER);
}

// mma.sync.aligned.m16n8k8 with BF16 inputs and FP32 accumulation, for one
// warp, from the lanes' fragments in the PTX ISA's per-lane layout (see
// mma_bf16_16x8x8 in common.cuh): A element (r, k) is half k % 2 of register
// r / 8 of lane (r % 8) * 4 + k / 2; B element (k, n) is half k % 2 of lane
// n * 4 + k / 2. Sums run in k order, as the TF32 twin's.
inline std::vector<uint32_t> mma_bf16_slots;
inline float bf16_half(uint32_t reg, unsigned half) {
    uint32_t bits = half ? (reg & 0xffff0000u) : (reg << 16);
    float v;
    std::memcpy(&v, &bits, 4);
    return v;
}
inline void mma_bf16_16x8x8(float d[4], const uint32_t a[2], uint32_t b) {
    unsigned tid = current->linear, warp = tid / 32, lane = tid % 32;
    if (mma_bf16_slots.size() < (std::size_t)block_threads() * 3) mma_bf16_slots.resize((std::size_t)block_threads() * 3);
    mma_bf16_slots[tid * 3] = a[0];
    mma_bf16_slots[tid * 3 + 1] = a[1];
    mma_bf16_slots[tid * 3 + 2] = b;
    wait(AT_WARP_BARRIER);
    const uint32_t* f = &mma_bf16_slots[warp * 32 * 3];
    const unsigned g = lane / 4, t = lane % 4;
    for (unsigned k = 0; k < 8; ++k) {
        const unsigned q = k / 2, h = k % 2;  // lane-in-group and half holding column (A) or row (B) k
        float a_lo = bf16_half(f[(g * 4 + q) * 3], h), a_hi = bf16_half(f[(g * 4 + q) * 3 + 1], h);
        float b_0 = bf16_half(f[((2 * t) * 4 + q) * 3 + 2], h), b_1 = bf16_half(f[((2 * t + 1) * 4 + q) * 3 + 2], h);
        d[0] = fmaf(a_lo, b_0, d[0]);
        d[1] = fmaf(a_lo, b_1, d[1]);
        d[2] = fmaf(a_hi, b_0, d[2]);
        d[3] = fmaf(a_hi, b_1, d[3]);
    }
    wait(AT_WARP_BARRIER);
}

template <typename T>
std::remove_cv_t<std::remove_reference_t<T>>& arg(void* p) {
    return *static_cast<std::remove_cv_t<std::remove_reference_t<T>>*>(p);
}

template <typename... Args, std::size_t... I>
void call(void (*k)(Args...), void** params, std::index_sequence<I...>) {
    k(arg<Args>(params[I])...);
}

// Runs kernel `k` over `grid` x `block` with `smem` bytes of dynamic shared
// memory; `params` is the kernel-parameter array cuLaunchKernel would take.
template <typename... Args>
void launch(void (*k)(Args...), dim3 grid, dim3 block, std::size_t smem, void** params) {
    std::lock_guard<std::mutex> lock(launch_mutex);
    block_dim = block;
    grid_dim = grid;
    unsigned n = block.x * block.y * block.z;
    if (n == 0 || n > 1024) {
        std::fprintf(stderr, "cuda-emu: invalid block of %u threads\n", n);
        std::abort();
    }
    fibers.resize(std::max<std::size_t>(fibers.size(), n));
    while (stacks.size() < n) stacks.emplace_back(STACK_BYTES);
    shuffle_slots.assign(n, 0);
    // poisoned with NaN bit patterns: a kernel that reads shared memory it did
    // not write computes NaN in the tests
    dynamic_smem.assign((smem + 7) / 8, 0xFFFFFFFFFFFFFFFFull);
    kernel_body = [&] { call(k, params, std::index_sequence_for<Args...>{}); };
    for (unsigned z = 0; z < grid.z; ++z)
        for (unsigned y = 0; y < grid.y; ++y)
            for (unsigned x = 0; x < grid.x; ++x) {
                block_idx = dim3(x, y, z);
                run_block();
            }
    current = nullptr;
}
}  // namespace emu

#define threadIdx (emu::current->tid)
#define blockIdx (emu::block_idx)
#define blockDim (emu::block_dim)
#define gridDim (emu::grid_dim)
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static
#define __syncthreads() emu::syncthreads()
#define PADA_DYNAMIC_SHARED(T, name) T* name = reinterpret_cast<T*>(emu::dynamic_smem.data())

template <typename T>
T __shfl_down_sync(unsigned, T v, unsigned delta) { return emu::shuffle(v, emu::lane_down, delta); }
template <typename T>
T __shfl_xor_sync(unsigned, T v, unsigned mask) { return emu::shuffle(v, emu::lane_xor, mask); }

// Fibers of a block never run at the same time, so plain updates are atomic.
inline float atomicAdd(float* p, float v) { float old = *p; *p = old + v; return old; }
inline double atomicAdd(double* p, double v) { double old = *p; *p = old + v; return old; }
inline int atomicAdd(int* p, int v) { int old = *p; *p = old + v; return old; }

inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
using std::max;
using std::min;

// The entry point the Rust emulated device calls for kernel `name`.
#define PADA_KERNEL(name) \
    extern "C" void emu_##name(dim3 grid, dim3 block, std::size_t smem, void** params) { emu::launch(name, grid, block, smem, params); }
