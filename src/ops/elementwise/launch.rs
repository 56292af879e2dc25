//! GPU launches of `kernels/elementwise.cu`: grid, block and arguments of each kernel.

use super::ElementwiseOps;
use crate::backend::gpu::{Args, Device, GpuBackend, GpuBuf, Kernel};

impl<D: Device> ElementwiseOps for GpuBackend<D> {
    fn fill(&self, dst: &mut GpuBuf<D>, v: f32) {
        self.launch_strided(Kernel::Fill, dst.len, Args::default().i64(dst.len as i64).buf(dst).f32(v));
    }
    fn copy(&self, dst: &mut GpuBuf<D>, src: &GpuBuf<D>) {
        assert_eq!(dst.len, src.len, "copy");
        self.launch_strided(Kernel::Copy, dst.len, Args::default().i64(dst.len as i64).buf(dst).buf(src));
    }
    fn copy_at(&self, dst: &mut GpuBuf<D>, offset: usize, src: &GpuBuf<D>) {
        assert!(offset + src.len <= dst.len, "copy_at: {} values at {offset} into {}", src.len, dst.len);
        // the copy kernel on the destination's sub-range
        let at = dst.ptr + 4 * offset as u64;
        self.launch_strided(Kernel::Copy, src.len, Args::default().i64(src.len as i64).u64(at).buf(src));
    }
    fn add_assign(&self, dst: &mut GpuBuf<D>, src: &GpuBuf<D>) {
        assert_eq!(dst.len, src.len, "add_assign");
        self.launch_strided(Kernel::AddAssign, dst.len, Args::default().i64(dst.len as i64).buf(dst).buf(src));
    }
    fn axpy(&self, dst: &mut GpuBuf<D>, a: f64, src: &GpuBuf<D>) {
        assert_eq!(dst.len, src.len, "axpy");
        self.launch_strided(Kernel::Axpy, dst.len, Args::default().i64(dst.len as i64).buf(dst).f32(a as f32).buf(src));
    }
    fn scale(&self, dst: &mut GpuBuf<D>, a: f64) {
        self.launch_strided(Kernel::Scale, dst.len, Args::default().i64(dst.len as i64).buf(dst).f32(a as f32));
    }
    fn elementwise_sqrt(&self, dst: &mut GpuBuf<D>) {
        self.launch_strided(Kernel::ElementwiseSqrt, dst.len, Args::default().i64(dst.len as i64).buf(dst));
    }
    fn relu_forward(&self, x: &GpuBuf<D>, y: &mut GpuBuf<D>) {
        assert_eq!(x.len, y.len, "relu_forward");
        self.launch_strided(Kernel::ReluForward, x.len, Args::default().i64(x.len as i64).buf(x).buf(y));
    }
    fn relu_backward(&self, x: &GpuBuf<D>, dy: &GpuBuf<D>, dx: &mut GpuBuf<D>) {
        assert!(x.len == dy.len && dy.len == dx.len, "relu_backward");
        self.launch_strided(Kernel::ReluBackward, x.len, Args::default().i64(x.len as i64).buf(x).buf(dy).buf(dx));
    }
}
