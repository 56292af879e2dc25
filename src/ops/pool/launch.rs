//! GPU launches of `kernels/pool.cu`: grid, block and arguments of each kernel.

use super::PoolOps;
use crate::backend::gpu::{Args, Device, GpuBackend, GpuBuf, Kernel};
use crate::geometry::{ActShape, PoolGeom};

impl<D: Device> PoolOps for GpuBackend<D> {
    fn avgpool3x3_forward(&self, g: &PoolGeom, x: &GpuBuf<D>, y: &mut GpuBuf<D>, accumulate: bool) {
        assert!(x.len == g.input().len() && y.len == g.output().len(), "avgpool3x3_forward: sizes");
        self.launch1d(Kernel::Avgpool3x3Forward, y.len, Args::default().push(g).buf(x).buf(y).i32(accumulate as i32));
    }
    fn avgpool3x3_backward(&self, g: &PoolGeom, dy: &GpuBuf<D>, dx: &mut GpuBuf<D>, accumulate: bool) {
        assert!(dy.len == g.output().len() && dx.len == g.input().len(), "avgpool3x3_backward: sizes");
        self.launch1d(Kernel::Avgpool3x3Backward, dx.len, Args::default().push(g).buf(dy).buf(dx).i32(accumulate as i32));
    }
    fn avgpool2x2_forward(&self, g: &PoolGeom, x: &GpuBuf<D>, y: &mut GpuBuf<D>) {
        assert!(x.len == g.input().len() && y.len == g.output().len(), "avgpool2x2_forward: sizes");
        self.launch1d(Kernel::Avgpool2x2Forward, y.len, Args::default().push(g).buf(x).buf(y));
    }
    fn avgpool2x2_backward(&self, g: &PoolGeom, dy: &GpuBuf<D>, dx: &mut GpuBuf<D>, accumulate: bool) {
        assert!(dy.len == g.output().len() && dx.len == g.input().len(), "avgpool2x2_backward: sizes");
        self.launch1d(Kernel::Avgpool2x2Backward, dx.len, Args::default().push(g).buf(dy).buf(dx).i32(accumulate as i32));
    }
    fn global_avgpool_forward(&self, s: &ActShape, x: &GpuBuf<D>, relu_x: bool, y: &mut GpuBuf<D>) {
        assert!(x.len == s.len() && y.len == (s.n * s.c) as usize, "global_avgpool_forward: sizes");
        self.launch1d(Kernel::GlobalAvgpoolForward, y.len, Args::default().push(s).buf(x).i32(relu_x as i32).buf(y));
    }
    fn global_avgpool_backward(&self, s: &ActShape, dy: &GpuBuf<D>, relu_mask: Option<&GpuBuf<D>>, dx: &mut GpuBuf<D>) {
        assert!(dx.len == s.len() && dy.len == (s.n * s.c) as usize, "global_avgpool_backward: sizes");
        self.launch1d(Kernel::GlobalAvgpoolBackward, dx.len, Args::default().push(s).buf(dy).opt(relu_mask).buf(dx));
    }
}
