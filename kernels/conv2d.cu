// conv2d on CNHW activations; the GPU twin of src/ops/conv2d/mod.rs.
//
// conv2d_forward is a shared-memory tiled implicit GEMM: a block computes
// TM output channels x 4096/TM output pixels (4 x 4 per thread; the _tf32
// kernels on tensor cores, 16 x 32 per warp), reducing over
// c_in*k*k in slices of 16, with the im2col values (ReLU fused) gathered
// straight from the input. Its epilogue adds the bias, applies an optional
// ReLU mask and accumulates, so that the input gradient of a same stride-1
// conv (the same conv of dy with flipped, transposed weights) runs through it
// too. TM is 64, or 16 for the `_narrow` kernels that the wrapper picks for
// 16 channels or fewer (the first stage of the supernet), where a 64-channel
// tile would spend three quarters of its work on padding. The weight gradient
// is the same tiled product, reduced over output pixels. The `_tf32` and
// `_bf16` kernels of both run it on tensor cores (Tile, below; `--precision
// tf32|bf16`).
#include "common.cuh"

#define TILE_K 16
#define CONV_THREADS 256

// The im2col value of row k (ci, kh, kw) and output pixel p (img, oh, ow).
__device__ __forceinline__ float im2col_value(const ConvGeom& g, const float* __restrict__ x, int relu_x, int k, int p) {
    int kk2 = g.k * g.k;
    int ci = k / kk2, r = k % kk2, kh = r / g.k, kw = r % g.k;
    int ohw = g.oh * g.ow;
    int img = p / ohw, q = p % ohw, oh = q / g.ow, ow = q % g.ow;
    int ih = oh * g.stride - g.pad + kh, iw = ow * g.stride - g.pad + kw;
    if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) return 0.f;
    float v = x[(((long long)ci * g.n + img) * g.h + ih) * g.w + iw];
    return (relu_x && !(v > 0.f)) ? 0.f : v;
}

// The arithmetic of a tile product: FP32 CUDA cores, or tensor cores on
// TF32 or BF16 operands (FP32 sums).
#define MMA_NONE 0
#define MMA_TF32 1
#define MMA_BF16 2

// The product at the heart of the tiled kernels: a block's TM x TN output
// tile (TN = 4096 / TM) gains A^T B over one slice of TILE_K, A = as[k][row]
// and B = bs[k][column] in shared memory. FP32: each thread owns 4 x 4
// outputs, plain FMAs. Tensor cores: operands are rounded to TF32 or BF16 as
// they enter shared memory (operand), and warp w owns 16 rows x 32 columns,
// four 16x8 tensor-core tiles (common.cuh, mma_tf32_16x8x8 and
// mma_bf16_16x8x8, which share the layout of D); rows of TM + 8 / TN + 8
// floats put a TF32 fragment's 4 k-rows x 8 columns in 32 distinct banks.
// acc[i][j] is output (row(i, j), col(i, j)) of the tile.
template <int TM, int MMA>
struct Tile {
    static constexpr bool TC = MMA != MMA_NONE;
    static constexpr int TN = 4096 / TM, TX = TN / 4, PAD = TC ? 8 : 0, AS = TM + PAD, BS = TN + PAD;
    static __device__ __forceinline__ float operand(float v) { return MMA == MMA_TF32 ? to_tf32(v) : MMA == MMA_BF16 ? to_bf16(v) : v; }
    static __device__ __forceinline__ int lane() { return threadIdx.x % 32; }
    static __device__ __forceinline__ int warp_row() { return (threadIdx.x / 32 % (TM / 16)) * 16; }
    static __device__ __forceinline__ int warp_col() { return (threadIdx.x / 32 / (TM / 16)) * 32; }
    static __device__ __forceinline__ int row(int i, int j) {
        return TC ? warp_row() + lane() / 4 + (j / 2) * 8 : (threadIdx.x / TX) * 4 + i;  // tensor cores: acc[i] is mma tile i's d
    }
    static __device__ __forceinline__ int col(int i, int j) { return TC ? warp_col() + i * 8 + (lane() % 4) * 2 + j % 2 : (threadIdx.x % TX) * 4 + j; }
    static __device__ __forceinline__ void zero(float acc[4][4]) {
        for (int i = 0; i < 4; ++i)
            for (int j = 0; j < 4; ++j) acc[i][j] = 0.f;
    }
    static __device__ __forceinline__ void product(const float (*as)[AS], const float (*bs)[BS], float acc[4][4]) {
        if constexpr (MMA == MMA_TF32) {
            const int grp = lane() / 4, tig = lane() % 4, wr = warp_row() + grp, wc = warp_col() + grp;
            for (int ks = 0; ks < TILE_K; ks += 8) {
                const float a[4] = {as[ks + tig][wr], as[ks + tig][wr + 8], as[ks + tig + 4][wr], as[ks + tig + 4][wr + 8]};
                for (int j = 0; j < 4; ++j) {
                    const float b[2] = {bs[ks + tig][wc + j * 8], bs[ks + tig + 4][wc + j * 8]};
                    mma_tf32_16x8x8(acc[j], a, b);
                }
            }
        } else if constexpr (MMA == MMA_BF16) {
            const int grp = lane() / 4, tig = lane() % 4, wr = warp_row() + grp, wc = warp_col() + grp;
            for (int ks = 0; ks < TILE_K; ks += 8) {
                const int k0 = ks + 2 * tig;
                const uint32_t a[2] = {pack_bf16x2(as[k0][wr], as[k0 + 1][wr]), pack_bf16x2(as[k0][wr + 8], as[k0 + 1][wr + 8])};
                for (int j = 0; j < 4; ++j) mma_bf16_16x8x8(acc[j], a, pack_bf16x2(bs[k0][wc + j * 8], bs[k0 + 1][wc + j * 8]));
            }
        } else {
            const int ty = threadIdx.x / TX, tx = threadIdx.x % TX;
            for (int kk = 0; kk < TILE_K; ++kk) {
                float a[4], b[4];
                for (int i = 0; i < 4; ++i) {
                    a[i] = as[kk][ty * 4 + i];
                    b[i] = bs[kk][tx * 4 + i];
                }
                for (int i = 0; i < 4; ++i)
                    for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
            }
        }
    }
};

// y = (accumulate ? y : 0) + [mask > 0] * (conv(relu?(x), w) + bias); bias and mask may be null.
template <int TM, int MMA>
__device__ __forceinline__ void conv_forward_tile(const ConvGeom& g, const float* __restrict__ x, int relu_x, const float* __restrict__ w,
                                                  const float* __restrict__ bias, float* __restrict__ y, const float* __restrict__ mask, int accumulate) {
    using T = Tile<TM, MMA>;
    __shared__ float ws[TILE_K][T::AS];
    __shared__ float xs[TILE_K][T::BS];
    const int K = g.c_in * g.k * g.k;
    const int npix = g.n * g.oh * g.ow;
    const int tid = threadIdx.x;
    const int p0 = blockIdx.x * T::TN, m0 = blockIdx.y * TM;
    float acc[4][4];
    T::zero(acc);
    for (int k0 = 0; k0 < K; k0 += TILE_K) {
        for (int i = tid; i < TILE_K * TM; i += CONV_THREADS) {
            int kk = i % TILE_K, mm = i / TILE_K;
            int m = m0 + mm, k = k0 + kk;
            ws[kk][mm] = T::operand((m < g.c_out && k < K) ? w[(long long)m * K + k] : 0.f);
        }
        for (int i = tid; i < TILE_K * T::TN; i += CONV_THREADS) {
            int nn = i % T::TN, kk = i / T::TN;
            int p = p0 + nn, k = k0 + kk;
            xs[kk][nn] = T::operand((p < npix && k < K) ? im2col_value(g, x, relu_x, k, p) : 0.f);
        }
        __syncthreads();
        T::product(ws, xs, acc);
        __syncthreads();
    }
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) {
            int m = m0 + T::row(i, j), p = p0 + T::col(i, j);
            if (m >= g.c_out || p >= npix) continue;
            long long o = (long long)m * npix + p;
            float v = acc[i][j] + (bias ? bias[m] : 0.f);
            if (mask && !(mask[o] > 0.f)) v = 0.f;
            y[o] = accumulate ? y[o] + v : v;
        }
}

KERNEL void conv2d_forward(ConvGeom g, const float* __restrict__ x, int relu_x, const float* __restrict__ w, const float* __restrict__ bias,
                           float* __restrict__ y, const float* __restrict__ mask, int accumulate) {
    conv_forward_tile<64, MMA_NONE>(g, x, relu_x, w, bias, y, mask, accumulate);
}
PADA_KERNEL(conv2d_forward)

KERNEL void conv2d_forward_narrow(ConvGeom g, const float* __restrict__ x, int relu_x, const float* __restrict__ w, const float* __restrict__ bias,
                                  float* __restrict__ y, const float* __restrict__ mask, int accumulate) {
    conv_forward_tile<16, MMA_NONE>(g, x, relu_x, w, bias, y, mask, accumulate);
}
PADA_KERNEL(conv2d_forward_narrow)

KERNEL void conv2d_forward_tf32(ConvGeom g, const float* __restrict__ x, int relu_x, const float* __restrict__ w, const float* __restrict__ bias,
                                float* __restrict__ y, const float* __restrict__ mask, int accumulate) {
    conv_forward_tile<64, MMA_TF32>(g, x, relu_x, w, bias, y, mask, accumulate);
}
PADA_KERNEL(conv2d_forward_tf32)

KERNEL void conv2d_forward_tf32_narrow(ConvGeom g, const float* __restrict__ x, int relu_x, const float* __restrict__ w, const float* __restrict__ bias,
                                       float* __restrict__ y, const float* __restrict__ mask, int accumulate) {
    conv_forward_tile<16, MMA_TF32>(g, x, relu_x, w, bias, y, mask, accumulate);
}
PADA_KERNEL(conv2d_forward_tf32_narrow)

KERNEL void conv2d_forward_bf16(ConvGeom g, const float* __restrict__ x, int relu_x, const float* __restrict__ w, const float* __restrict__ bias,
                                float* __restrict__ y, const float* __restrict__ mask, int accumulate) {
    conv_forward_tile<64, MMA_BF16>(g, x, relu_x, w, bias, y, mask, accumulate);
}
PADA_KERNEL(conv2d_forward_bf16)

KERNEL void conv2d_forward_bf16_narrow(ConvGeom g, const float* __restrict__ x, int relu_x, const float* __restrict__ w, const float* __restrict__ bias,
                                       float* __restrict__ y, const float* __restrict__ mask, int accumulate) {
    conv_forward_tile<16, MMA_BF16>(g, x, relu_x, w, bias, y, mask, accumulate);
}
PADA_KERNEL(conv2d_forward_bf16_narrow)

// The architecture of the image of this module the driver loaded (common.cuh: PADA_IMAGE_ARCH).
KERNEL void conv2d_image_arch(int* __restrict__ out) {
    if (blockIdx.x == 0 && threadIdx.x == 0) out[0] = PADA_IMAGE_ARCH;
}
PADA_KERNEL(conv2d_image_arch)

// wf[ci][co][k*k-1-t] = w[co][ci][t]: the weights of the input-gradient conv.
KERNEL void conv2d_flip_weights(ConvGeom g, const float* __restrict__ w, float* __restrict__ wf) {
    int kk2 = g.k * g.k;
    long long total = (long long)g.c_out * g.c_in * kk2;
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    int t = (int)(i % kk2), ci = (int)((i / kk2) % g.c_in), co = (int)(i / ((long long)kk2 * g.c_in));
    wf[((long long)ci * g.c_out + co) * kk2 + (kk2 - 1 - t)] = w[i];
}
PADA_KERNEL(conv2d_flip_weights)

// dx (+)= [mask > 0] * conv_transpose(dy, w), one thread per input element,
// for any stride and padding (the strided convs of the reduction blocks),
// kernel sizes up to 3. Which of the k*k taps reach the element, and where,
// is found once; the tap tables are indexed by constants after unrolling, so
// they stay in registers, and the loop over output channels does only useful
// work.
#define MAX_K 3
KERNEL void conv2d_backward_data(ConvGeom g, const float* __restrict__ dy, const float* __restrict__ w, const float* __restrict__ mask,
                                     float* __restrict__ dx, int accumulate) {
    long long total = (long long)g.c_in * g.n * g.h * g.w;
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    int iw = (int)(i % g.w), ih = (int)((i / g.w) % g.h), img = (int)((i / ((long long)g.w * g.h)) % g.n), ci = (int)(i / ((long long)g.w * g.h * g.n));
    int dy_at[MAX_K * MAX_K], w_at[MAX_K * MAX_K];
#pragma unroll
    for (int t = 0; t < MAX_K * MAX_K; ++t) {
        int kh = t / MAX_K, kw = t % MAX_K;
        int on = ih + g.pad - kh, wn = iw + g.pad - kw;
        bool ok = kh < g.k && kw < g.k && on >= 0 && wn >= 0 && on % g.stride == 0 && wn % g.stride == 0 && on / g.stride < g.oh &&
                  wn / g.stride < g.ow;
        dy_at[t] = ok ? (on / g.stride) * g.ow + wn / g.stride : -1;
        w_at[t] = kh * g.k + kw;
    }
    float acc = 0.f;
    for (int co = 0; co < g.c_out; ++co) {
        const float* d = dy + ((long long)co * g.n + img) * g.oh * g.ow;
        const float* wk = w + ((long long)co * g.c_in + ci) * g.k * g.k;
#pragma unroll
        for (int t = 0; t < MAX_K * MAX_K; ++t)
            if (dy_at[t] >= 0) acc += d[dy_at[t]] * wk[w_at[t]];
    }
    float v = (mask && !(mask[i] > 0.f)) ? 0.f : acc;
    dx[i] = accumulate ? dx[i] + v : v;
}
PADA_KERNEL(conv2d_backward_data)

// acc = the tile (m0.., r0..) of sum over output pixels pb..pe of dy[co][p] * im2col[r][p]:
// a TM x 4096/TM block of a weight gradient (Tile's layout).
template <int TM, int MMA>
__device__ __forceinline__ void weight_grad_tile(const ConvGeom& g, const float* __restrict__ x, int relu_x, const float* __restrict__ dy, int pb, int pe,
                                                 int m0, int r0, float acc[4][4]) {
    using T = Tile<TM, MMA>;
    __shared__ float ds[TILE_K][T::AS];
    __shared__ float cs[TILE_K][T::BS];
    const int K = g.c_in * g.k * g.k;
    const int npix = g.n * g.oh * g.ow;
    const int tid = threadIdx.x;
    T::zero(acc);
    for (int q0 = pb; q0 < pe; q0 += TILE_K) {
        for (int i = tid; i < TILE_K * TM; i += CONV_THREADS) {
            int kk = i % TILE_K, mm = i / TILE_K;
            int m = m0 + mm, p = q0 + kk;
            ds[kk][mm] = T::operand((m < g.c_out && p < pe) ? dy[(long long)m * npix + p] : 0.f);
        }
        for (int i = tid; i < TILE_K * T::TN; i += CONV_THREADS) {
            int kk = i % TILE_K, nn = i / TILE_K;
            int r = r0 + nn, p = q0 + kk;
            cs[kk][nn] = T::operand((r < K && p < pe) ? im2col_value(g, x, relu_x, r, p) : 0.f);
        }
        __syncthreads();
        T::product(ds, cs, acc);
        __syncthreads();
    }
}

// partial[chunk][co][r] = the weight gradient over the chunk's output pixels:
// the pixel reduction split into chunks (blockIdx.z), summed by
// conv2d_reduce_weight_grad in a fixed order.
//
// With sample_sq, chunks hold whole samples, and the block reduces them one at
// a time: each sample's partial tile stays in registers while its squared norm
// goes to sample_sq[sample][tile] (a block sum, so in a fixed order) and the
// tile joins the chunk's sum; conv2d_per_sample_finish adds up the tiles.
template <int TM, int MMA>
__device__ __forceinline__ void weight_grad_partial(const ConvGeom& g, int chunk_pixels, const float* __restrict__ x, int relu_x,
                                                    const float* __restrict__ dy, float* __restrict__ partial, float* __restrict__ sample_sq) {
    using T = Tile<TM, MMA>;
    const int K = g.c_in * g.k * g.k;
    const int npix = g.n * g.oh * g.ow;
    const int r0 = blockIdx.x * T::TN, m0 = blockIdx.y * TM;
    const int pb = blockIdx.z * chunk_pixels, pe = min(npix, pb + chunk_pixels);
    float acc[4][4];
    if (!sample_sq) {
        weight_grad_tile<TM, MMA>(g, x, relu_x, dy, pb, pe, m0, r0, acc);
    } else {
        const int ohw = g.oh * g.ow, tiles = gridDim.x * gridDim.y, tile = blockIdx.y * gridDim.x + blockIdx.x;
        T::zero(acc);
        for (int p = pb; p < pe; p += ohw) {
            float s[4][4];
            weight_grad_tile<TM, MMA>(g, x, relu_x, dy, p, p + ohw, m0, r0, s);
            double sq = 0.0;
            for (int i = 0; i < 4; ++i)
                for (int j = 0; j < 4; ++j) {
                    sq += (double)s[i][j] * (double)s[i][j];  // 0 outside the weight: the tile is zero-padded
                    acc[i][j] += s[i][j];
                }
            sq = block_sum(sq);
            if (threadIdx.x == 0) sample_sq[(long long)(p / ohw) * tiles + tile] = (float)sq;
        }
    }
    float* out = partial + (long long)blockIdx.z * g.c_out * K;
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) {
            int m = m0 + T::row(i, j), r = r0 + T::col(i, j);
            if (m < g.c_out && r < K) out[(long long)m * K + r] = acc[i][j];
        }
}

KERNEL void conv2d_backward_weight(ConvGeom g, int chunk_pixels, const float* __restrict__ x, int relu_x, const float* __restrict__ dy,
                                   float* __restrict__ partial, float* __restrict__ sample_sq) {
    weight_grad_partial<64, MMA_NONE>(g, chunk_pixels, x, relu_x, dy, partial, sample_sq);
}
PADA_KERNEL(conv2d_backward_weight)

KERNEL void conv2d_backward_weight_narrow(ConvGeom g, int chunk_pixels, const float* __restrict__ x, int relu_x, const float* __restrict__ dy,
                                          float* __restrict__ partial, float* __restrict__ sample_sq) {
    weight_grad_partial<16, MMA_NONE>(g, chunk_pixels, x, relu_x, dy, partial, sample_sq);
}
PADA_KERNEL(conv2d_backward_weight_narrow)

KERNEL void conv2d_backward_weight_tf32(ConvGeom g, int chunk_pixels, const float* __restrict__ x, int relu_x, const float* __restrict__ dy,
                                        float* __restrict__ partial, float* __restrict__ sample_sq) {
    weight_grad_partial<64, MMA_TF32>(g, chunk_pixels, x, relu_x, dy, partial, sample_sq);
}
PADA_KERNEL(conv2d_backward_weight_tf32)

KERNEL void conv2d_backward_weight_tf32_narrow(ConvGeom g, int chunk_pixels, const float* __restrict__ x, int relu_x, const float* __restrict__ dy,
                                               float* __restrict__ partial, float* __restrict__ sample_sq) {
    weight_grad_partial<16, MMA_TF32>(g, chunk_pixels, x, relu_x, dy, partial, sample_sq);
}
PADA_KERNEL(conv2d_backward_weight_tf32_narrow)

KERNEL void conv2d_backward_weight_bf16(ConvGeom g, int chunk_pixels, const float* __restrict__ x, int relu_x, const float* __restrict__ dy,
                                        float* __restrict__ partial, float* __restrict__ sample_sq) {
    weight_grad_partial<64, MMA_BF16>(g, chunk_pixels, x, relu_x, dy, partial, sample_sq);
}
PADA_KERNEL(conv2d_backward_weight_bf16)

KERNEL void conv2d_backward_weight_bf16_narrow(ConvGeom g, int chunk_pixels, const float* __restrict__ x, int relu_x, const float* __restrict__ dy,
                                               float* __restrict__ partial, float* __restrict__ sample_sq) {
    weight_grad_partial<16, MMA_BF16>(g, chunk_pixels, x, relu_x, dy, partial, sample_sq);
}
PADA_KERNEL(conv2d_backward_weight_bf16_narrow)

// partial[n][tile] = squared norm of tile (blockIdx.x, blockIdx.y) of sample
// n's (blockIdx.z) weight gradient: the per-sample gradient stays in registers.
KERNEL void conv2d_per_sample_weight_sq(ConvGeom g, const float* __restrict__ x, int relu_x, const float* __restrict__ dy, float* __restrict__ partial) {
    const int K = g.c_in * g.k * g.k;
    const int ohw = g.oh * g.ow;
    using T = Tile<64, MMA_NONE>;
    const int r0 = blockIdx.x * 64, m0 = blockIdx.y * 64;
    const int pb = blockIdx.z * ohw;
    float acc[4][4];
    weight_grad_tile<64, MMA_NONE>(g, x, relu_x, dy, pb, pb + ohw, m0, r0, acc);
    double sq = 0.0;
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j)
            if (m0 + T::row(i, j) < g.c_out && r0 + T::col(i, j) < K) sq += (double)acc[i][j] * (double)acc[i][j];
    sq = block_sum(sq);
    if (threadIdx.x == 0) partial[(long long)blockIdx.z * gridDim.x * gridDim.y + blockIdx.y * gridDim.x + blockIdx.x] = (float)sq;
}
PADA_KERNEL(conv2d_per_sample_weight_sq)

// out[n] += sum of sample n's tiles (in order) + sum over channels of (sum of
// dy over the sample's pixels)^2 when the conv has a bias; one block per sample.
KERNEL void conv2d_per_sample_finish(ConvGeom g, int tiles, const float* __restrict__ partial, const float* __restrict__ dy, int bias, float* __restrict__ out) {
    const int n = blockIdx.x;
    const int ohw = g.oh * g.ow;
    const long long npix = (long long)g.n * ohw;
    double b = 0.0;
    if (bias)
        for (int co = 0; co < g.c_out; ++co) {
            double s = 0.0;
            for (int p = threadIdx.x; p < ohw; p += blockDim.x) s += dy[co * npix + (long long)n * ohw + p];
            s = block_sum(s);
            b += s * s;  // meaningful in thread 0
        }
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int i = 0; i < tiles; ++i) t += partial[(long long)n * tiles + i];
        out[n] += (float)(t + b);
    }
}
PADA_KERNEL(conv2d_per_sample_finish)

// dw[i] += sum over chunks c (in order) of partial[c][i].
KERNEL void conv2d_reduce_weight_grad(int chunks, long long len, const float* __restrict__ partial, float* __restrict__ dw) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= len) return;
    float s = 0.f;
    for (int c = 0; c < chunks; ++c) s += partial[(long long)c * len + i];
    dw[i] += s;
}
PADA_KERNEL(conv2d_reduce_weight_grad)

