//! Gradient variance of supernet training, as the paper discusses it.

use serde::{Deserialize, Serialize};

/// `(1/K) sum_k ||g_k - mean||^2` over K mini-batch gradients, and the same
/// divided by `||mean||^2`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GradVar {
    pub batches: usize,
    pub variance: f64,
    pub mean_sq_norm: f64,
    pub relative: f64,
}
