//! GPU launches of `kernels/conv2d.cu`: grid, block and arguments of each kernel.

use super::Conv2dOps;
use crate::backend::gpu::{Args, ChannelSplit, Device, GpuBackend, GpuBuf, Kernel, THREADS};
use crate::backend::Precision;
use crate::geometry::ConvGeom;

/// The output tile of the tiled conv kernels (kernels/conv2d.cu): `rows`
/// output channels x `cols` pixels (forward) or weight columns (backward);
/// 16-row tiles for 16 channels or fewer, which 64-row tiles would mostly pad.
#[derive(Clone, Copy)]
struct ConvTile {
    rows: usize,
    cols: usize,
}

impl ConvTile {
    const WIDE: Self = Self { rows: 64, cols: 64 };
    const NARROW: Self = Self { rows: 16, cols: 256 };
    fn for_channels(c_out: usize) -> Self {
        if c_out <= 16 {
            Self::NARROW
        } else {
            Self::WIDE
        }
    }
    fn narrow(self) -> bool {
        self.rows == 16
    }
    fn forward_kernel(self, precision: Precision) -> Kernel {
        match (precision, self.narrow()) {
            (Precision::Fp32, false) => Kernel::Conv2dForward,
            (Precision::Fp32, true) => Kernel::Conv2dForwardNarrow,
            (Precision::Tf32, false) => Kernel::Conv2dForwardTf32,
            (Precision::Tf32, true) => Kernel::Conv2dForwardTf32Narrow,
            (Precision::Bf16, false) => Kernel::Conv2dForwardBf16,
            (Precision::Bf16, true) => Kernel::Conv2dForwardBf16Narrow,
        }
    }
    fn weight_kernel(self, precision: Precision) -> Kernel {
        match (precision, self.narrow()) {
            (Precision::Fp32, false) => Kernel::Conv2dBackwardWeight,
            (Precision::Fp32, true) => Kernel::Conv2dBackwardWeightNarrow,
            (Precision::Tf32, false) => Kernel::Conv2dBackwardWeightTf32,
            (Precision::Tf32, true) => Kernel::Conv2dBackwardWeightTf32Narrow,
            (Precision::Bf16, false) => Kernel::Conv2dBackwardWeightBf16,
            (Precision::Bf16, true) => Kernel::Conv2dBackwardWeightBf16Narrow,
        }
    }
}

impl<D: Device> Conv2dOps for GpuBackend<D> {
    fn conv2d_forward(&self, g: &ConvGeom, x: &GpuBuf<D>, relu_x: bool, w: &GpuBuf<D>, bias: Option<&GpuBuf<D>>, y: &mut GpuBuf<D>) {
        assert!(x.len == g.input().len() && w.len == g.weight_len() && y.len == g.output().len(), "conv2d_forward: sizes");
        self.conv_tiled(g, x, relu_x, w, bias, y, None, false);
    }
    fn conv2d_backward_data(
        &self,
        g: &ConvGeom,
        dy: &GpuBuf<D>,
        w: &GpuBuf<D>,
        relu_mask: Option<&GpuBuf<D>>,
        dx: &mut GpuBuf<D>,
        accumulate: bool,
    ) {
        assert!(dy.len == g.output().len() && w.len == g.weight_len() && dx.len == g.input().len(), "conv2d_backward_data: sizes");
        if g.is_same_stride1() {
            // the same conv of dy with flipped, transposed weights, masked and accumulated in its epilogue
            let wf = self.raw_alloc(g.weight_len());
            self.launch1d(Kernel::Conv2dFlipWeights, g.weight_len(), Args::default().push(g).buf(w).buf(&wf));
            let gt = ConvGeom::with_pad(
                g.n as usize,
                g.c_out as usize,
                g.h as usize,
                g.w as usize,
                g.c_in as usize,
                g.k as usize,
                1,
                g.pad as usize,
            );
            self.conv_tiled(&gt, dy, false, &wf, None, dx, relu_mask, accumulate);
        } else {
            assert!(g.k <= 3, "conv2d_backward_data: kernel size {} over the kernel's MAX_K (3)", g.k);
            self.launch1d(
                Kernel::Conv2dBackwardData,
                dx.len,
                Args::default().push(g).buf(dy).buf(w).opt(relu_mask).buf(dx).i32(accumulate as i32),
            );
        }
    }
    fn conv2d_backward_weight(
        &self,
        g: &ConvGeom,
        x: &GpuBuf<D>,
        relu_x: bool,
        dy: &GpuBuf<D>,
        dw: &mut GpuBuf<D>,
        db: Option<&mut GpuBuf<D>>,
        sample_sq: Option<&mut GpuBuf<D>>,
    ) {
        assert!(x.len == g.input().len() && dy.len == g.output().len() && dw.len == g.weight_len(), "conv2d_backward_weight: sizes");
        let (k, c_out, npix, ohw, n) = (g.col_rows(), g.c_out as usize, g.output().per_channel(), (g.oh * g.ow) as usize, g.n as usize);
        // a weight gradient is c_out x k: 16-row tiles only when k fills their 256 columns
        let tile = if k > 64 { ConvTile::for_channels(c_out) } else { ConvTile::WIDE };
        let tiles = k.div_ceil(tile.cols) * c_out.div_ceil(tile.rows);
        // split the pixel reduction so that the grid has a few hundred blocks;
        // per-sample norms need chunks of whole samples
        let chunks = npix.div_ceil(1024).clamp(1, (512 / tiles).max(1));
        let chunk_pixels = match sample_sq {
            Some(_) => n.div_ceil(chunks) * ohw,
            None => npix.div_ceil(chunks).div_ceil(16) * 16,
        };
        let chunks = npix.div_ceil(chunk_pixels);
        let partial = self.raw_alloc(chunks * c_out * k);
        let sample_part = sample_sq.is_some().then(|| self.raw_alloc(n * tiles));
        self.launch(
            tile.weight_kernel(self.precision()),
            [k.div_ceil(tile.cols) as u32, c_out.div_ceil(tile.rows) as u32, chunks as u32],
            [THREADS, 1, 1],
            0,
            Args::default().push(g).i32(chunk_pixels as i32).buf(x).i32(relu_x as i32).buf(dy).buf(&partial).opt(sample_part.as_ref()),
        );
        let len = c_out * k;
        self.launch1d(Kernel::Conv2dReduceWeightGrad, len, Args::default().i32(chunks as i32).i64(len as i64).buf(&partial).buf(dw));
        if let (Some(out), Some(part)) = (sample_sq, &sample_part) {
            assert_eq!(out.len, n, "conv2d_backward_weight: sample_sq");
            self.launch(
                Kernel::Conv2dPerSampleFinish,
                [n as u32, 1, 1],
                [THREADS, 1, 1],
                0,
                Args::default().push(g).i32(tiles as i32).buf(part).buf(dy).i32(db.is_some() as i32).buf(out),
            );
        }
        if let Some(db) = db {
            assert_eq!(db.len, c_out, "conv2d_backward_weight: db");
            let split = ChannelSplit::new(c_out, npix);
            let part = split.sums(self, dy, None);
            self.launch1d(Kernel::ChannelPartsAdd, c_out, Args::default().i32(c_out as i32).i32(split.parts as i32).buf(&part).buf(db));
        }
    }
    fn conv2d_per_sample_sq_norms(&self, g: &ConvGeom, x: &GpuBuf<D>, relu_x: bool, dy: &GpuBuf<D>, bias: bool, out: &mut GpuBuf<D>) {
        assert!(x.len == g.input().len() && dy.len == g.output().len() && out.len == g.n as usize, "conv2d_per_sample_sq_norms: sizes");
        let (tx, ty) = (g.col_rows().div_ceil(64), (g.c_out as usize).div_ceil(64));
        let partial = self.raw_alloc(g.n as usize * tx * ty);
        self.launch(
            Kernel::Conv2dPerSampleWeightSq,
            [tx as u32, ty as u32, g.n as u32],
            [THREADS, 1, 1],
            0,
            Args::default().push(g).buf(x).i32(relu_x as i32).buf(dy).buf(&partial),
        );
        self.launch(
            Kernel::Conv2dPerSampleFinish,
            [g.n as u32, 1, 1],
            [THREADS, 1, 1],
            0,
            Args::default().push(g).i32((tx * ty) as i32).buf(&partial).buf(dy).i32(bias as i32).buf(out),
        );
    }
}

impl<D: Device> GpuBackend<D> {
    /// conv2d_forward's kernel with its full epilogue (mask, accumulate), in
    /// the backend's precision: the forward conv, and the input gradient of a
    /// same stride-1 conv (the strided convs' input gradient stays FP32).
    #[allow(clippy::too_many_arguments)]
    fn conv_tiled(
        &self,
        g: &ConvGeom,
        x: &GpuBuf<D>,
        relu_x: bool,
        w: &GpuBuf<D>,
        bias: Option<&GpuBuf<D>>,
        y: &mut GpuBuf<D>,
        mask: Option<&GpuBuf<D>>,
        accumulate: bool,
    ) {
        let npix = g.output().per_channel();
        let tile = ConvTile::for_channels(g.c_out as usize);
        self.launch(
            tile.forward_kernel(self.precision()),
            [npix.div_ceil(tile.cols) as u32, (g.c_out as usize).div_ceil(tile.rows) as u32, 1],
            [THREADS, 1, 1],
            0,
            Args::default().push(g).buf(x).i32(relu_x as i32).buf(w).opt(bias).buf(y).opt(mask).i32(accumulate as i32),
        );
    }
}
