//! GPU launches of `kernels/linear.cu`: grid, block and arguments of each kernel.

use super::LinearOps;
use crate::backend::gpu::{Args, Device, GpuBackend, GpuBuf, Kernel};
use crate::geometry::LinearGeom;

impl<D: Device> LinearOps for GpuBackend<D> {
    fn linear_forward(&self, g: &LinearGeom, x: &GpuBuf<D>, w: &GpuBuf<D>, b: &GpuBuf<D>, y: &mut GpuBuf<D>) {
        let (n, i, o) = (g.n as usize, g.inp as usize, g.out as usize);
        assert!(x.len == n * i && w.len == o * i && b.len == o && y.len == n * o, "linear_forward: sizes");
        self.launch1d(Kernel::LinearForward, n * o, Args::default().push(g).buf(x).buf(w).buf(b).buf(y));
    }
    fn linear_backward(
        &self,
        g: &LinearGeom,
        x: &GpuBuf<D>,
        w: &GpuBuf<D>,
        dy: &GpuBuf<D>,
        dx: Option<&mut GpuBuf<D>>,
        dw: &mut GpuBuf<D>,
        db: &mut GpuBuf<D>,
    ) {
        let (n, i, o) = (g.n as usize, g.inp as usize, g.out as usize);
        assert!(x.len == n * i && w.len == o * i && dy.len == n * o && dw.len == o * i && db.len == o, "linear_backward: sizes");
        self.launch1d(Kernel::LinearBackwardWeight, o * i + o, Args::default().push(g).buf(x).buf(dy).buf(dw).buf(db));
        if let Some(dx) = dx {
            assert_eq!(dx.len, n * i, "linear_backward: dx");
            self.launch1d(Kernel::LinearBackwardData, n * i, Args::default().push(g).buf(w).buf(dy).buf(dx));
        }
    }
    fn linear_per_sample_sq_norms(&self, g: &LinearGeom, x: &GpuBuf<D>, dy: &GpuBuf<D>, out: &mut GpuBuf<D>) {
        let (n, i, o) = (g.n as usize, g.inp as usize, g.out as usize);
        assert!(x.len == n * i && dy.len == n * o && out.len == n, "linear_per_sample_sq_norms: sizes");
        self.launch1d(Kernel::LinearPerSampleSqNorms, n, Args::default().push(g).buf(x).buf(dy).buf(out));
    }
}
