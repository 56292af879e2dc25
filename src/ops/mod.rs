//! The CPU reference ops. Each file here has a twin `kernels/<op>.cu` with the
//! same function names and argument order; the CPU code is the specification the
//! kernels are tested against, and it is also the fast CPU engine.
//!
//! All activations are CNHW (see [`crate::geometry`]).

pub mod batchnorm;
pub mod conv2d;
pub mod elementwise;
pub mod gemm;
pub mod linear;
pub mod optim;
pub mod parallel;
pub mod pool;
pub mod reduce;
pub mod softmax_ce;

pub use batchnorm::{batchnorm_backward, batchnorm_backward_frozen, batchnorm_forward, BN_EPS};
pub use conv2d::{conv2d_backward_data, conv2d_backward_weight, conv2d_forward, conv2d_per_sample_sq_norms};
pub use elementwise::{add_assign, axpy, copy, copy_at, elementwise_sqrt, fill, relu_backward, relu_forward, scale};
pub use linear::{linear_backward, linear_forward, linear_per_sample_sq_norms};
pub use optim::{clip_coefficient, clipped_group_norms, nonfinite_guard, sgd_step, sq_norm, NormGroup, SgdStep};
pub use pool::{
    avgpool2x2_backward, avgpool2x2_forward, avgpool3x3_backward, avgpool3x3_forward, global_avgpool_backward, global_avgpool_forward,
};
pub use softmax_ce::{batch_metrics, softmax_cross_entropy};
