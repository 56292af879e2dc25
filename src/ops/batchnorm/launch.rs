//! GPU launches of `kernels/batchnorm.cu`: grid, block and arguments of each kernel.

use super::BatchnormOps;
use crate::backend::gpu::{Args, ChannelSplit, Device, GpuBackend, GpuBuf, Kernel};
use crate::geometry::ActShape;

impl<D: Device> BatchnormOps for GpuBackend<D> {
    fn batchnorm_forward(&self, s: &ActShape, x: &GpuBuf<D>, y: &mut GpuBuf<D>, accumulate: bool, relu: bool, stats: &mut GpuBuf<D>) {
        assert!(x.len == s.len() && y.len == s.len() && stats.len == 2 * s.c as usize, "batchnorm_forward: sizes");
        let split = ChannelSplit::new(s.c as usize, s.per_channel());
        let sums = split.sums(self, x, None);
        let sqs = split.sums(self, x, Some(&sums));
        split.launch(
            self,
            Kernel::BatchnormNormalize,
            Args::default()
                .push(s)
                .i32(split.chunk as i32)
                .buf(x)
                .buf(&sums)
                .buf(&sqs)
                .buf(y)
                .i32(accumulate as i32)
                .i32(relu as i32)
                .buf(stats),
        );
    }
    fn batchnorm_backward(&self, s: &ActShape, x: &GpuBuf<D>, stats: &GpuBuf<D>, dy: &GpuBuf<D>, dx: &mut GpuBuf<D>) {
        assert!(x.len == s.len() && dy.len == s.len() && dx.len == s.len() && stats.len == 2 * s.c as usize, "batchnorm_backward: sizes");
        let split = ChannelSplit::new(s.c as usize, s.per_channel());
        let part = self.raw_alloc(2 * split.channels * split.parts);
        let chunk = split.chunk as i32;
        split.launch(self, Kernel::BatchnormBackwardParts, Args::default().push(s).i32(chunk).buf(x).buf(stats).buf(dy).buf(&part));
        split.launch(self, Kernel::BatchnormBackwardApply, Args::default().push(s).i32(chunk).buf(x).buf(stats).buf(dy).buf(&part).buf(dx));
    }
    fn batchnorm_backward_frozen(&self, s: &ActShape, stats: &GpuBuf<D>, dy: &GpuBuf<D>, dx: &mut GpuBuf<D>) {
        assert!(dy.len == s.len() && dx.len == s.len() && stats.len == 2 * s.c as usize, "batchnorm_backward_frozen: sizes");
        self.launch1d(Kernel::BatchnormBackwardFrozen, s.len(), Args::default().push(s).buf(stats).buf(dy).buf(dx));
    }
}
