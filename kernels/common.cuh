// Shared by every kernel: the op geometry (mirroring src/geometry.rs field for
// field), multi-tensor tables and block reductions.
#pragma once

// KERNEL: unmangled names for cuModuleGetFunction on the GPU; internal
// linkage in the emulator, where only the emu_<name> entry points are exported.
#ifdef PADA_CUDA_EMU
#include "cuda_emu.h"
#define KERNEL static
#else
#include <cstdint>
#define KERNEL extern "C" __global__
#define PADA_KERNEL(name)
#define PADA_DYNAMIC_SHARED(T, name) extern __shared__ __align__(16) unsigned char pada_dynamic_smem_[]; T* name = reinterpret_cast<T*>(pada_dynamic_smem_)
#endif

// src/geometry.rs: ActShape
struct ActShape {
    int c, n, h, w;
};

// src/geometry.rs: ConvGeom
struct ConvGeom {
    int n, c_in, h, w, c_out, oh, ow, k, stride, pad;
};

// src/geometry.rs: PoolGeom
struct PoolGeom {
    int c, n, h, w, oh, ow;
};

// src/geometry.rs: LinearGeom
struct LinearGeom {
    int n, inp, out;
};

// src/ops/optim/mod.rs: NormGroup
struct NormGroup {
    int slot, start, len;
};

// src/ops/optim/launch.rs: TensorRef, one tensor of a multi-tensor launch
struct TensorRef {
    unsigned long long ptr;
    long long len;
};

// src/ops/optim/launch.rs: SgdRef
struct SgdRef {
    unsigned long long value, grad, momentum;
    long long len;
};


// The layouts the Rust side has too (their `layouts` tests check the same
// numbers): a field added, removed or reordered on one side fails to build.
#include <cstddef>
#define PADA_LAYOUT(T, size) static_assert(sizeof(T) == size, #T ": size differs from its Rust mirror")
#define PADA_OFFSET(T, f, off) static_assert(offsetof(T, f) == off, #T "." #f ": offset differs from its Rust mirror")
PADA_LAYOUT(ActShape, 16);
PADA_OFFSET(ActShape, c, 0); PADA_OFFSET(ActShape, n, 4); PADA_OFFSET(ActShape, h, 8); PADA_OFFSET(ActShape, w, 12);
PADA_LAYOUT(ConvGeom, 40);
PADA_OFFSET(ConvGeom, n, 0); PADA_OFFSET(ConvGeom, c_in, 4); PADA_OFFSET(ConvGeom, h, 8); PADA_OFFSET(ConvGeom, w, 12); PADA_OFFSET(ConvGeom, c_out, 16); PADA_OFFSET(ConvGeom, oh, 20); PADA_OFFSET(ConvGeom, ow, 24); PADA_OFFSET(ConvGeom, k, 28); PADA_OFFSET(ConvGeom, stride, 32); PADA_OFFSET(ConvGeom, pad, 36);
PADA_LAYOUT(PoolGeom, 24);
PADA_OFFSET(PoolGeom, c, 0); PADA_OFFSET(PoolGeom, n, 4); PADA_OFFSET(PoolGeom, h, 8); PADA_OFFSET(PoolGeom, w, 12); PADA_OFFSET(PoolGeom, oh, 16); PADA_OFFSET(PoolGeom, ow, 20);
PADA_LAYOUT(LinearGeom, 12);
PADA_OFFSET(LinearGeom, n, 0); PADA_OFFSET(LinearGeom, inp, 4); PADA_OFFSET(LinearGeom, out, 8);
PADA_LAYOUT(NormGroup, 12);
PADA_OFFSET(NormGroup, slot, 0); PADA_OFFSET(NormGroup, start, 4); PADA_OFFSET(NormGroup, len, 8);
PADA_LAYOUT(TensorRef, 16);
PADA_OFFSET(TensorRef, ptr, 0); PADA_OFFSET(TensorRef, len, 8);
PADA_LAYOUT(SgdRef, 32);
PADA_OFFSET(SgdRef, value, 0); PADA_OFFSET(SgdRef, grad, 8); PADA_OFFSET(SgdRef, momentum, 16); PADA_OFFSET(SgdRef, len, 24);

// Sum of `v` over the block (all threads must call; blockDim.x a multiple of
// 32, at most 1024); the result is valid in thread 0. Deterministic: a fixed
// tree of shuffles, then of warps.
__device__ __forceinline__ double block_sum(double v) {
    __shared__ double warp_sums[32];
    for (int d = 16; d > 0; d >>= 1) v += __shfl_down_sync(0xffffffffu, v, d);
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    int warps = blockDim.x / 32;
    v = (int)threadIdx.x < warps ? warp_sums[threadIdx.x] : 0.0;
    if (warp == 0)
        for (int d = 16; d > 0; d >>= 1) v += __shfl_down_sync(0xffffffffu, v, d);
    __syncthreads();  // warp_sums may be reused by the next call
    return v;
}

// Per-channel reductions split over blocks, so that 16 channels of 262,144
// values still fill the GPU: block (p, c) = (blockIdx.x, blockIdx.y) owns
// values [p * chunk, min(L, (p + 1) * chunk)) of channel c, writes its partial
// sum to part[c * parts + p] (parts = gridDim.x), and a channel's total is the
// sum of its parts in that order: deterministic on any GPU.
__device__ __forceinline__ double parts_total(const float* __restrict__ part, int c, int parts) {
    double t = 0.0;
    for (int p = 0; p < parts; ++p) t += part[(long long)c * parts + p];
    return t;
}

// The channel mean from the parts of its sum: one formula for every kernel
// that needs it, so that all of them use the same float.
__device__ __forceinline__ float channel_mean(const float* __restrict__ sum_parts, int c, int parts, long long L) {
    return (float)(parts_total(sum_parts, c, parts) / (double)L);
}

// ---- tensor cores (sm_80+): TF32 and BF16 ----------------------------------

__device__ __forceinline__ uint32_t float_bits(float v) {
#ifdef PADA_CUDA_EMU
    uint32_t u;
    std::memcpy(&u, &v, 4);
    return u;
#else
    return __float_as_uint(v);
#endif
}
__device__ __forceinline__ float bits_float(uint32_t u) {
#ifdef PADA_CUDA_EMU
    float v;
    std::memcpy(&v, &u, 4);
    return v;
#else
    return __uint_as_float(u);
#endif
}

// to_tf32: v rounded to TF32 (10 explicit mantissa bits), to nearest with
// ties away from zero, as cvt.rna.tf32.f32 does; returned as a float whose
// low 13 bits are zero. The emulator does the same on the bit pattern.
__device__ __forceinline__ float to_tf32(float v) {
#if defined(PADA_CUDA_EMU) || __CUDA_ARCH__ < 800
    uint32_t u = float_bits(v);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;  // inf and NaN pass through
    return bits_float(u);
#else
    uint32_t u;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(u) : "f"(v));
    return __uint_as_float(u & 0xffffe000u);
#endif
}

// d += A B for one warp: A 16x8 (row major), B 8x8 (column major), D 16x8,
// TF32 inputs (already rounded by to_tf32) and FP32 accumulation: the
// per-lane fragments of mma.sync.aligned.m16n8k8 (PTX ISA, "Matrix fragments
// for mma.m16n8k8", .tf32). Lane l, g = l / 4, t = l % 4, holds
//   a = {A[g][t], A[g+8][t], A[g][t+4], A[g+8][t+4]},  b = {B[t][g], B[t+4][g]},
//   d = {D[g][2t], D[g][2t+1], D[g+8][2t], D[g+8][2t+1]}.
// On the GPU one tensor-core instruction; in the emulator its twin
// (cuda_emu.h), the same product from the same fragments. The products of
// TF32 values are exact in FP32; only the order of the additions may differ
// from the hardware's, which the tests' tolerances allow for. Called by whole
// warps of a block whose threads are laid out along x.
__device__ __forceinline__ void mma_tf32_16x8x8(float d[4], const float a[4], const float b[2]) {
#if defined(PADA_CUDA_EMU)
    emu::mma_tf32_16x8x8(d, a, b);
#elif __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(__float_as_uint(a[0])), "r"(__float_as_uint(a[1])), "r"(__float_as_uint(a[2])), "r"(__float_as_uint(a[3])),
          "r"(__float_as_uint(b[0])), "r"(__float_as_uint(b[1])));
#else
    __trap();  // no TF32 tensor cores before sm_80: the host refuses --precision tf32 there
#endif
}

// to_bf16: v rounded to BF16 (7 explicit mantissa bits), to nearest with ties
// to even, as cvt.rn.bf16.f32 does (NaN stays NaN); returned as a float whose
// low 16 bits are zero. The emulator does the same on the bit pattern.
__device__ __forceinline__ float to_bf16(float v) {
#if defined(PADA_CUDA_EMU) || __CUDA_ARCH__ < 800
    uint32_t u = float_bits(v);
    if ((u & 0x7fffffffu) > 0x7f800000u) return bits_float((u | 0x00400000u) & 0xffff0000u);  // NaN: quiet, kept
    u += 0x7fffu + ((u >> 16) & 1u);
    return bits_float(u & 0xffff0000u);
#else
    unsigned short h;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(v));
    return __uint_as_float((uint32_t)h << 16);
#endif
}

// Two BF16 values (floats from to_bf16) in one register, `lo` in the low half:
// the .bf16x2 operand layout of mma.
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) { return (float_bits(lo) >> 16) | (float_bits(hi) & 0xffff0000u); }

// d += A B for one warp: A 16x8 (row major), B 8x8 (column major), D 16x8,
// BF16 inputs and FP32 accumulation: the per-lane fragments of
// mma.sync.aligned.m16n8k8 (PTX ISA, "Matrix fragments for mma.m16n8k8",
// .bf16). Lane l, g = l / 4, t = l % 4, holds
//   a = {A[g][2t] | A[g][2t+1] << 16, A[g+8][2t] | A[g+8][2t+1] << 16},  b = B[2t][g] | B[2t+1][g] << 16,
//   d = {D[g][2t], D[g][2t+1], D[g+8][2t], D[g+8][2t+1]} (as TF32's).
// Products of BF16 values are exact in FP32. On the GPU one tensor-core
// instruction; in the emulator its twin (cuda_emu.h).
__device__ __forceinline__ void mma_bf16_16x8x8(float d[4], const uint32_t a[2], uint32_t b) {
#if defined(PADA_CUDA_EMU)
    emu::mma_bf16_16x8x8(d, a, b);
#elif __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(b));
#else
    __trap();  // no BF16 tensor cores before sm_80: the host refuses --precision bf16 there
#endif
}

// The architecture of the image the driver loaded for a module: __CUDA_ARCH__
// of its SASS, or of the PTX it JIT-compiled (0 in the emulator, which has
// every instruction). The host reads it to refuse tensor-core precisions on an
// image without them (a GPU newer than the embedded SASS running old PTX).
#ifdef PADA_CUDA_EMU
#define PADA_IMAGE_ARCH 0
#else
#define PADA_IMAGE_ARCH __CUDA_ARCH__
#endif

// ---- counter-based random numbers (src/rng.rs) -------------------------------

// Philox4x32-10 (Salmon et al., 2011), as src/rng.rs: philox4x32_10.
__device__ __forceinline__ void philox4x32_10(uint32_t ctr[4], uint32_t key[2]) {
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            key[0] += 0x9E3779B9u;
            key[1] += 0xBB67AE85u;
        }
        unsigned long long p0 = 0xD2511F53ull * ctr[0], p1 = 0xCD9E8D57ull * ctr[2];
        uint32_t c0 = (uint32_t)(p1 >> 32) ^ ctr[1] ^ key[0], c1 = (uint32_t)p1, c2 = (uint32_t)(p0 >> 32) ^ ctr[3] ^ key[1], c3 = (uint32_t)p0;
        ctr[0] = c0;
        ctr[1] = c1;
        ctr[2] = c2;
        ctr[3] = c3;
    }
}

// The i-th uniform double in [0, 1) of the stream `seed` (53 random bits), as src/rng.rs: uniform01.
__device__ __forceinline__ double uniform01(unsigned long long seed, unsigned long long i) {
    uint32_t ctr[4] = {(uint32_t)i, (uint32_t)(i >> 32), 0u, 0u};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    philox4x32_10(ctr, key);
    unsigned long long bits = ((unsigned long long)ctr[0] << 21) ^ ((unsigned long long)ctr[1] >> 11);
    return (double)bits * (1.0 / 9007199254740992.0);
}
