//! Op geometry shared by the CPU reference, the CUDA kernels and the emulator.
//!
//! Every struct here is `#[repr(C)]` and mirrored field for field in
//! `kernels/common.cuh`, whose `static_assert`s and the `layouts` test below
//! pin both sides to the same sizes and offsets; a kernel receives it by
//! value, exactly as the CPU reference receives it by reference. Fields are `i32` because kernels do
//! signed index arithmetic (padding makes input coordinates negative).
//!
//! Activations are stored **CNHW**: channel-major, then batch, then rows and
//! columns. A channel is one contiguous run of `n*h*w` values, so batch-norm
//! statistics are plain reductions and a convolution is one GEMM whose columns
//! are all the output pixels of the batch.

use bytemuck::{Pod, Zeroable};

/// Shape of a CNHW activation tensor.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct ActShape {
    pub c: i32,
    pub n: i32,
    pub h: i32,
    pub w: i32,
}

impl ActShape {
    pub fn new(c: usize, n: usize, h: usize, w: usize) -> Self {
        Self { c: c as i32, n: n as i32, h: h as i32, w: w as i32 }
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        (self.c * self.n * self.h * self.w) as usize
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Elements of one channel (`n*h*w`): the batch-norm reduction length.
    pub fn per_channel(&self) -> usize {
        (self.n * self.h * self.w) as usize
    }
    pub fn plane(&self) -> usize {
        (self.h * self.w) as usize
    }
}

/// A 2-D convolution with square kernel, zero padding and stride.
/// Weights are `[c_out, c_in, k, k]` as in PyTorch; input and output are CNHW.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct ConvGeom {
    pub n: i32,
    pub c_in: i32,
    pub h: i32,
    pub w: i32,
    pub c_out: i32,
    pub oh: i32,
    pub ow: i32,
    pub k: i32,
    pub stride: i32,
    pub pad: i32,
}

impl ConvGeom {
    /// The supernet's convolutions: "same" padding `k / 2`.
    pub fn new(n: usize, c_in: usize, h: usize, w: usize, c_out: usize, k: usize, stride: usize) -> Self {
        Self::with_pad(n, c_in, h, w, c_out, k, stride, k / 2)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn with_pad(n: usize, c_in: usize, h: usize, w: usize, c_out: usize, k: usize, stride: usize, pad: usize) -> Self {
        assert!(k >= 1 && stride >= 1 && h + 2 * pad >= k && w + 2 * pad >= k, "invalid convolution geometry");
        let oh = (h + 2 * pad - k) / stride + 1;
        let ow = (w + 2 * pad - k) / stride + 1;
        Self {
            n: n as i32,
            c_in: c_in as i32,
            h: h as i32,
            w: w as i32,
            c_out: c_out as i32,
            oh: oh as i32,
            ow: ow as i32,
            k: k as i32,
            stride: stride as i32,
            pad: pad as i32,
        }
    }
    pub fn input(&self) -> ActShape {
        ActShape { c: self.c_in, n: self.n, h: self.h, w: self.w }
    }
    pub fn output(&self) -> ActShape {
        ActShape { c: self.c_out, n: self.n, h: self.oh, w: self.ow }
    }
    /// Rows of the im2col matrix: `c_in * k * k`, the GEMM's inner dimension.
    pub fn col_rows(&self) -> usize {
        (self.c_in * self.k * self.k) as usize
    }
    pub fn weight_len(&self) -> usize {
        self.c_out as usize * self.col_rows()
    }
    /// A stride-1 "same" convolution (`oh == h`, `ow == w`): its input gradient
    /// is the same convolution of the output gradient with flipped weights.
    pub fn is_same_stride1(&self) -> bool {
        self.stride == 1 && self.oh == self.h && self.ow == self.w && 2 * self.pad == self.k - 1
    }
    /// Multiply-accumulates of the forward pass for the whole batch.
    pub fn macs(&self) -> u64 {
        self.output().len() as u64 * self.col_rows() as u64
    }
}

/// Average pooling over CNHW planes: `k = 3, stride 1, pad 1` (count_include_pad=False)
/// or `k = 2, stride 2, pad 0` (floor on odd sizes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct PoolGeom {
    pub c: i32,
    pub n: i32,
    pub h: i32,
    pub w: i32,
    pub oh: i32,
    pub ow: i32,
}

impl PoolGeom {
    pub fn avg3x3(x: ActShape) -> Self {
        Self { c: x.c, n: x.n, h: x.h, w: x.w, oh: x.h, ow: x.w }
    }
    pub fn avg2x2(x: ActShape) -> Self {
        assert!(x.h >= 2 && x.w >= 2, "avg_pool 2x2 needs at least a 2x2 input");
        Self { c: x.c, n: x.n, h: x.h, w: x.w, oh: x.h / 2, ow: x.w / 2 }
    }
    pub fn input(&self) -> ActShape {
        ActShape { c: self.c, n: self.n, h: self.h, w: self.w }
    }
    pub fn output(&self) -> ActShape {
        ActShape { c: self.c, n: self.n, h: self.oh, w: self.ow }
    }
}

/// A fully connected layer `y[n, out] = x[n, in] W[out, in]^T + b[out]` (row-major).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct LinearGeom {
    pub n: i32,
    pub inp: i32,
    pub out: i32,
}

impl LinearGeom {
    pub fn new(n: usize, inp: usize, out: usize) -> Self {
        Self { n: n as i32, inp: inp as i32, out: out as i32 }
    }
}

#[cfg(test)]
mod layouts {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// The same sizes and offsets as the `static_assert`s of kernels/common.cuh.
    #[test]
    fn mirror_the_kernels_structs() {
        assert_eq!(size_of::<ActShape>(), 16);
        assert_eq!([offset_of!(ActShape, c), offset_of!(ActShape, n), offset_of!(ActShape, h), offset_of!(ActShape, w)], [0, 4, 8, 12]);
        assert_eq!(size_of::<ConvGeom>(), 40);
        assert_eq!(
            [
                offset_of!(ConvGeom, n),
                offset_of!(ConvGeom, c_in),
                offset_of!(ConvGeom, h),
                offset_of!(ConvGeom, w),
                offset_of!(ConvGeom, c_out),
                offset_of!(ConvGeom, oh),
                offset_of!(ConvGeom, ow),
                offset_of!(ConvGeom, k),
                offset_of!(ConvGeom, stride),
                offset_of!(ConvGeom, pad)
            ],
            [0, 4, 8, 12, 16, 20, 24, 28, 32, 36]
        );
        assert_eq!(size_of::<PoolGeom>(), 24);
        assert_eq!(
            [
                offset_of!(PoolGeom, c),
                offset_of!(PoolGeom, n),
                offset_of!(PoolGeom, h),
                offset_of!(PoolGeom, w),
                offset_of!(PoolGeom, oh),
                offset_of!(PoolGeom, ow)
            ],
            [0, 4, 8, 12, 16, 20]
        );
        assert_eq!(size_of::<LinearGeom>(), 12);
        assert_eq!([offset_of!(LinearGeom, n), offset_of!(LinearGeom, inp), offset_of!(LinearGeom, out)], [0, 4, 8]);
    }
}
