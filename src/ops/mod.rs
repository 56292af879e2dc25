//! The ops, one family per name: the Rust side in `src/ops/<op>/`, the CUDA
//! kernels in `kernels/<op>.cu` (top level, where build.rs compiles them):
//! - `src/ops/<op>/mod.rs`: the CPU reference (the specification every kernel
//!   is tested against, and the fast CPU engine), the family's backend trait
//!   (e.g. [`conv2d::Conv2dOps`]) and its CPU implementation;
//! - `kernels/<op>.cu`: the CUDA kernels, with the names and argument order of
//!   the CPU functions (sizes or the geometry struct first, then inputs,
//!   outputs, flags); each `PADA_KERNEL(name)` line registers one (build.rs
//!   generates the CUDA and emulator registries from them);
//! - `src/ops/<op>/launch.rs`: the trait's GPU implementation (grids, blocks,
//!   arguments).
//!
//! `kernels/common.cuh` (geometry mirrors, block reductions) and
//! `kernels/cuda_emu.h` (the emulator) are shared by all kernels. All activations are CNHW (see
//! [`crate::geometry`]).

pub mod batchnorm;
pub mod conv2d;
pub mod depthwise;
pub mod elementwise;
pub mod gemm;
pub mod linear;
pub mod optim;
pub mod parallel;
pub mod pool;
pub mod reduce;
pub mod sampling;
pub mod simd;
pub mod softmax_ce;
pub mod transpose;

pub use batchnorm::{batchnorm_backward, batchnorm_backward_frozen, batchnorm_forward, BN_EPS};
pub use conv2d::{conv2d_backward_data, conv2d_backward_weight, conv2d_forward, conv2d_per_sample_sq_norms};
pub use depthwise::{depthwise_backward_data, depthwise_backward_weight, depthwise_forward, depthwise_per_sample_sq_norms};
pub use elementwise::{add_assign, axpy, copy, copy_at, elementwise_sqrt, fill, relu_backward, relu_forward, scale};
pub use linear::{linear_backward, linear_forward, linear_per_sample_sq_norms};
pub use optim::{clip_coefficient, clipped_group_norms, nonfinite_guard, sgd_step, sq_norm, NormGroup, SgdStep};
pub use pool::{
    avgpool2x2_backward, avgpool2x2_forward, avgpool3x3_backward, avgpool3x3_forward, global_avgpool_backward, global_avgpool_forward,
};
pub use sampling::{blocked_prefix_sums, draw_with_replacement, fold_scores, importance_distribution};
pub use softmax_ce::{batch_metrics, softmax_cross_entropy};
