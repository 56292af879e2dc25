//! The device abstraction: buffers ([`Memory`]) plus the ops of [`crate::ops`].
//!
//! The supernet, the samplers and the training loop are written once against
//! [`Backend`] and run on the CPU ([`cpu::CpuBackend`]), on an NVIDIA GPU and on
//! the CUDA emulator ([`gpu`]). Each op family declares its backend interface
//! beside its CPU reference and its kernel (`src/ops/<op>/`: `Conv2dOps` in
//! `conv2d/mod.rs`, implemented there for the CPU and in `conv2d/launch.rs`
//! for the GPU); [`Backend`] is all of them together. Every op method has the
//! name and argument order of its CPU reference and of its kernel.
//!
//! Buffers are opaque device memory. The only ways to see their contents are
//! [`Backend::download`] and its relatives, which a training step never calls:
//! per-step results (losses, norms) stay on the device until the caller asks.

pub mod cpu;
#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
pub mod gpu;

use crate::element::Element;
use num_traits::Zero;

pub use crate::ops::batchnorm::BatchnormOps;
pub use crate::ops::conv2d::Conv2dOps;
pub use crate::ops::depthwise::DepthwiseOps;
pub use crate::ops::elementwise::ElementwiseOps;
pub use crate::ops::linear::LinearOps;
pub use crate::ops::optim::OptimOps;
pub use crate::ops::pool::PoolOps;
pub use crate::ops::sampling::SamplingOps;
pub use crate::ops::softmax_ce::SoftmaxCeOps;

/// Everything to call backend methods on a concrete backend (`use pada::backend::prelude::*`).
pub mod prelude {
    pub use super::{
        Backend, BatchnormOps, Conv2dOps, DepthwiseOps, ElementwiseOps, LinearOps, Memory, OptimOps, PoolOps, SamplingOps, SgdSlot,
        SoftmaxCeOps,
    };
}

/// The arithmetic of the GPU's convolutions (`--precision`). The CPU engine
/// always computes exactly in its element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// FP32 CUDA cores: the CPU reference's arithmetic, up to the order of the sums.
    #[default]
    Fp32,
    /// Tensor cores (sm_80+): convolution operands rounded to TF32 (10 mantissa
    /// bits), FP32 sums; PyTorch's default for convolutions on NVIDIA GPUs.
    Tf32,
    /// Tensor cores (sm_80+): convolution operands rounded to BF16 (7 mantissa
    /// bits), FP32 sums and FP32 master weights, as PyTorch's autocast to bfloat16.
    Bf16,
}

impl Precision {
    /// `v` as the convolutions' tensor cores see it: unchanged (fp32),
    /// rounded to TF32 to nearest with ties away from zero (cvt.rna.tf32.f32),
    /// or to BF16 to nearest even (cvt.rn.bf16.f32, `half::bf16`).
    pub fn round_operand(self, v: f32) -> f32 {
        match self {
            Precision::Fp32 => v,
            Precision::Tf32 if v.is_finite() => f32::from_bits((v.to_bits() + 0x1000) & 0xffff_e000),
            Precision::Tf32 => v,
            Precision::Bf16 => half::bf16::from_f32(v).to_f32(),
        }
    }
    /// Whether the convolutions run on tensor cores (sm_80 or newer).
    pub fn tensor_cores(self) -> bool {
        self != Precision::Fp32
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
            Precision::Bf16 => "bf16",
        })
    }
}

/// Launches of one kernel under [`Memory::profile_launches`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LaunchStat {
    pub kernel: String,
    pub launches: usize,
    pub seconds: f64,
}

impl LaunchStat {
    /// One stat per kernel from (name, (launches, seconds)), most time first, then by name.
    pub fn sorted<K: std::fmt::Display>(stats: impl IntoIterator<Item = (K, (usize, f64))>) -> Vec<LaunchStat> {
        let mut v: Vec<LaunchStat> =
            stats.into_iter().map(|(k, (launches, seconds))| LaunchStat { kernel: k.to_string(), launches, seconds }).collect();
        v.sort_by(|a, b| b.seconds.total_cmp(&a.seconds).then_with(|| a.kernel.cmp(&b.kernel)));
        v
    }
}

/// One parameter tensor as the multi-tensor SGD sees it.
pub struct SgdSlot<'a, B: Memory + ?Sized> {
    pub value: &'a mut B::Buf,
    pub grad: &'a B::Buf,
    pub momentum: &'a mut B::Buf,
}

/// A device's memory: buffers, copies to and from the host, timing.
pub trait Memory: Send + Sync + 'static {
    /// The element type: `f32` everywhere but the CPU engine's `f64` gradient checks.
    type T: Element;
    /// A device buffer of `T`.
    type Buf: Send + Sync + 'static;
    /// A device buffer of `i32` (class labels, sample indices).
    type IBuf: Send + Sync;

    /// A short description: "cpu (2 threads)", "cuda:0 NVIDIA H200 (sm_90)".
    fn name(&self) -> String;

    /// A buffer of `len` elements from the backend's pool, to which it returns
    /// when dropped; its contents are unspecified (every op writes all of its
    /// output unless it accumulates).
    fn alloc(&self, len: usize) -> Self::Buf;
    fn len(&self, buf: &Self::Buf) -> usize;
    fn upload_into(&self, host: &[Self::T], dst: &mut Self::Buf);
    fn download(&self, buf: &Self::Buf) -> Vec<Self::T>;
    fn upload_i32(&self, host: &[i32]) -> Self::IBuf;
    fn download_i32(&self, buf: &Self::IBuf) -> Vec<i32>;
    fn alloc_i32(&self, len: usize) -> Self::IBuf;
    /// Waits for all queued work (a no-op on the CPU).
    fn synchronize(&self) {}
    /// Frees the memory kept for reuse (between phases that use other sizes:
    /// training, then ranking).
    fn release_cached(&self) {}

    /// Runs `f` and returns its result with the seconds its device work took
    /// (wall clock on the CPU; device events on a GPU).
    fn timed<R>(&self, f: impl FnOnce() -> R) -> (R, f64) {
        self.synchronize();
        let t = std::time::Instant::now();
        let r = f();
        self.synchronize();
        (r, t.elapsed().as_secs_f64())
    }

    /// Runs two independent pieces of work, side by side where the backend
    /// can (the CPU engine's threads); a GPU queues them in order on its
    /// stream. Each op's result does not depend on which threads run it, so
    /// neither do `a`'s and `b`'s.
    fn join<RA: Send, RB: Send>(&self, a: impl FnOnce() -> RA + Send, b: impl FnOnce() -> RB + Send) -> (RA, RB) {
        (a(), b())
    }

    /// Bytes of device memory in use or held by the pool, if the backend knows.
    fn device_memory(&self) -> Option<usize> {
        None
    }

    /// Runs `f` with every kernel launch counted and timed alone (the device
    /// synchronised around each, so the total exceeds an unprofiled run's):
    /// one entry per kernel, most time first. The CPU engine times each op
    /// call instead (the ops run one after another).
    fn profile_launches<R>(&self, f: impl FnOnce() -> R) -> (R, Vec<LaunchStat>) {
        (f(), Vec::new())
    }

    fn upload(&self, host: &[Self::T]) -> Self::Buf {
        let mut b = self.alloc(host.len());
        self.upload_into(host, &mut b);
        b
    }
    /// Uploads `f64` host data (images, loss weights), rounded once to `T`.
    fn upload_f64(&self, host: &[f64]) -> Self::Buf {
        let v: Vec<Self::T> = host.iter().map(|&x| Self::T::from_f64(x)).collect();
        self.upload(&v)
    }
}

/// A device with every op: what the supernet, the samplers and the training
/// loop are written against.
pub trait Backend:
    Memory + ElementwiseOps + Conv2dOps + DepthwiseOps + BatchnormOps + PoolOps + LinearOps + SoftmaxCeOps + OptimOps + SamplingOps
{
    fn alloc_zeroed(&self, len: usize) -> Self::Buf {
        let mut b = self.alloc(len);
        self.fill(&mut b, Self::T::zero());
        b
    }
}

impl<X> Backend for X where
    X: Memory + ElementwiseOps + Conv2dOps + DepthwiseOps + BatchnormOps + PoolOps + LinearOps + SoftmaxCeOps + OptimOps + SamplingOps
{
}
