//! GPU launches of `kernels/depthwise.cu`: grid, block and arguments of each kernel.

use super::{weight_len, DepthwiseOps};
use crate::backend::gpu::{Args, Device, GpuBackend, GpuBuf, Kernel, THREADS};
use crate::geometry::ConvGeom;

/// The kernels' largest filter (DW_MAX_TAPS = 5 x 5).
const MAX_K: i32 = 5;

impl<D: Device> GpuBackend<D> {
    /// Each (sample, channel)'s weight-gradient taps, as doubles (two
    /// 4-byte elements each): `[n, c, k*k]`.
    fn depthwise_parts(&self, g: &ConvGeom, x: &GpuBuf<D>, relu_x: bool, dy: &GpuBuf<D>) -> GpuBuf<D> {
        assert!(g.k <= MAX_K, "depthwise: kernel size {} over the kernels' {MAX_K}", g.k);
        let part = self.raw_alloc(2 * g.n as usize * weight_len(g));
        self.launch(
            Kernel::DepthwiseWeightParts,
            [g.n as u32, g.c_out as u32, 1],
            [THREADS, 1, 1],
            0,
            Args::default().push(g).buf(x).i32(relu_x as i32).buf(dy).buf(&part),
        );
        part
    }
}

impl<D: Device> DepthwiseOps for GpuBackend<D> {
    fn depthwise_forward(&self, g: &ConvGeom, x: &GpuBuf<D>, relu_x: bool, w: &GpuBuf<D>, y: &mut GpuBuf<D>) {
        assert!(
            g.c_in == g.c_out && x.len == g.input().len() && w.len == weight_len(g) && y.len == g.output().len(),
            "depthwise_forward: sizes"
        );
        self.launch1d(Kernel::DepthwiseForward, y.len, Args::default().push(g).buf(x).i32(relu_x as i32).buf(w).buf(y));
    }
    fn depthwise_backward_data(
        &self,
        g: &ConvGeom,
        dy: &GpuBuf<D>,
        w: &GpuBuf<D>,
        relu_mask: Option<&GpuBuf<D>>,
        dx: &mut GpuBuf<D>,
        accumulate: bool,
    ) {
        assert!(
            g.c_in == g.c_out && dy.len == g.output().len() && w.len == weight_len(g) && dx.len == g.input().len(),
            "depthwise_backward_data: sizes"
        );
        self.launch1d(
            Kernel::DepthwiseBackwardData,
            dx.len,
            Args::default().push(g).buf(dy).buf(w).opt(relu_mask).buf(dx).i32(accumulate as i32),
        );
    }
    fn depthwise_backward_weight(
        &self,
        g: &ConvGeom,
        x: &GpuBuf<D>,
        relu_x: bool,
        dy: &GpuBuf<D>,
        dw: &mut GpuBuf<D>,
        sample_sq: Option<&mut GpuBuf<D>>,
    ) {
        assert!(x.len == g.input().len() && dy.len == g.output().len() && dw.len == weight_len(g), "depthwise_backward_weight: sizes");
        let part = self.depthwise_parts(g, x, relu_x, dy);
        let (n, len) = (g.n as usize, weight_len(g));
        self.launch1d(Kernel::DepthwiseReduceWeightGrad, len, Args::default().i32(n as i32).i32(len as i32).buf(&part).buf(dw));
        if let Some(out) = sample_sq {
            assert_eq!(out.len, n, "depthwise_backward_weight: sample_sq");
            self.launch(
                Kernel::DepthwisePerSampleFinish,
                [n as u32, 1, 1],
                [THREADS, 1, 1],
                0,
                Args::default().i32(len as i32).buf(&part).buf(out),
            );
        }
    }
    fn depthwise_per_sample_sq_norms(&self, g: &ConvGeom, x: &GpuBuf<D>, relu_x: bool, dy: &GpuBuf<D>, out: &mut GpuBuf<D>) {
        assert!(x.len == g.input().len() && dy.len == g.output().len() && out.len == g.n as usize, "depthwise_per_sample_sq_norms: sizes");
        let part = self.depthwise_parts(g, x, relu_x, dy);
        let len = weight_len(g);
        self.launch(
            Kernel::DepthwisePerSampleFinish,
            [g.n as u32, 1, 1],
            [THREADS, 1, 1],
            0,
            Args::default().i32(len as i32).buf(&part).buf(out),
        );
    }
}
