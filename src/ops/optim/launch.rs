//! GPU launches of `kernels/optim.cu`: grid, block and arguments of each kernel.

use super::OptimOps;
use bytemuck::{Pod, Zeroable};

use super::{NormGroup, SgdStep};
use crate::backend::gpu::{blocks_for, Args, Device, GpuBackend, GpuBuf, Kernel, THREADS};
use crate::backend::SgdSlot;

/// A tensor of a multi-tensor launch (kernels/common.cuh: TensorRef).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct TensorRef {
    ptr: u64,
    len: i64,
}

/// A parameter tensor of the multi-tensor SGD (kernels/common.cuh: SgdRef).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SgdRef {
    value: u64,
    grad: u64,
    momentum: u64,
    len: i64,
}

impl<D: Device> OptimOps for GpuBackend<D> {
    fn sq_norms(&self, tensors: &[&GpuBuf<D>], out: &mut GpuBuf<D>) {
        assert_eq!(tensors.len(), out.len, "sq_norms: one output per tensor");
        if tensors.is_empty() {
            return;
        }
        let table = self.upload_pod(&tensors.iter().map(|t| TensorRef { ptr: t.ptr, len: t.len as i64 }).collect::<Vec<_>>());
        self.launch(Kernel::SqNorms, [tensors.len() as u32, 1, 1], [THREADS, 1, 1], 0, Args::default().buf(&table).buf(out));
    }
    fn clip_coefficient(&self, sq_norms: &GpuBuf<D>, max_norm: f64, out: &mut GpuBuf<D>) {
        self.one_thread(Kernel::ClipCoefficient, Args::default().i32(sq_norms.len as i32).buf(sq_norms).f64(max_norm).buf(out));
    }
    fn nonfinite_guard(&self, sq_norms: &GpuBuf<D>, step: i64, guard: &mut GpuBuf<D>, clip_coef: &mut GpuBuf<D>) {
        self.one_thread(Kernel::NonfiniteGuard, Args::default().i32(sq_norms.len as i32).buf(sq_norms).i64(step).buf(guard).buf(clip_coef));
    }
    fn sgd_step(&self, slots: &mut [SgdSlot<'_, Self>], h: &SgdStep, grad_scale: &GpuBuf<D>) {
        if slots.is_empty() {
            return;
        }
        let refs: Vec<SgdRef> = slots
            .iter()
            .map(|s| SgdRef { value: s.value.ptr, grad: s.grad.ptr, momentum: s.momentum.ptr, len: s.value.len as i64 })
            .collect();
        let longest = refs.iter().map(|r| r.len as usize).max().unwrap_or(1);
        let table = self.upload_pod(&refs);
        self.launch(
            Kernel::SgdStep,
            [blocks_for(longest).min(64), slots.len() as u32, 1],
            [THREADS, 1, 1],
            0,
            Args::default().buf(&table).f32(h.lr as f32).f32(h.momentum as f32).f32(h.weight_decay as f32).buf(grad_scale),
        );
    }
    fn clipped_group_norms(&self, sq_norms: &GpuBuf<D>, clip_coef: &GpuBuf<D>, members: &[i32], groups: &[NormGroup], out: &mut GpuBuf<D>) {
        if groups.is_empty() {
            return;
        }
        let m = self.upload_pod(members);
        let gr = self.upload_pod(groups);
        self.one_thread(
            Kernel::ClippedGroupNorms,
            Args::default().i32(groups.len() as i32).buf(sq_norms).buf(clip_coef).buf(&m).buf(&gr).buf(out),
        );
    }
}

#[cfg(test)]
mod layouts {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// The same sizes and offsets as the `static_assert`s of kernels/common.cuh.
    #[test]
    fn mirror_the_kernels_structs() {
        assert_eq!(size_of::<TensorRef>(), 16);
        assert_eq!([offset_of!(TensorRef, ptr), offset_of!(TensorRef, len)], [0, 8]);
        assert_eq!(size_of::<SgdRef>(), 32);
        assert_eq!(
            [offset_of!(SgdRef, value), offset_of!(SgdRef, grad), offset_of!(SgdRef, momentum), offset_of!(SgdRef, len)],
            [0, 8, 16, 24]
        );
    }
}
