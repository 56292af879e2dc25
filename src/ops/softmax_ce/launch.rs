//! GPU launches of `kernels/softmax_ce.cu`: grid, block and arguments of each kernel.

use super::SoftmaxCeOps;
use crate::backend::gpu::{Args, Device, GpuBackend, GpuBuf, Kernel, THREADS};

impl<D: Device> SoftmaxCeOps for GpuBackend<D> {
    fn softmax_cross_entropy(
        &self,
        n: usize,
        classes: usize,
        logits: &GpuBuf<D>,
        labels: &GpuBuf<D>,
        weights: Option<&GpuBuf<D>>,
        loss: &mut GpuBuf<D>,
        dlogits: &mut GpuBuf<D>,
        proxy_norm: &mut GpuBuf<D>,
    ) {
        assert!(
            logits.len == n * classes && dlogits.len == n * classes && labels.len == n && loss.len == n && proxy_norm.len == n,
            "softmax_cross_entropy: sizes"
        );
        self.launch1d(
            Kernel::SoftmaxCrossEntropy,
            n,
            Args::default().i32(n as i32).i32(classes as i32).buf(logits).buf(labels).opt(weights).buf(loss).buf(dlogits).buf(proxy_norm),
        );
    }
    fn batch_metrics(&self, n: usize, classes: usize, logits: &GpuBuf<D>, labels: &GpuBuf<D>, loss: &GpuBuf<D>, sums: &mut GpuBuf<D>) {
        self.launch(
            Kernel::BatchMetrics,
            [1, 1, 1],
            [THREADS, 1, 1],
            0,
            Args::default().i32(n as i32).i32(classes as i32).buf(logits).buf(labels).buf(loss).buf(sums),
        );
    }
}
