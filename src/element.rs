//! The scalar types the CPU engine runs in: `f32` for training, `f64` for gradient checks.

use std::fmt::Debug;
use std::iter::Sum;
use std::ops::{AddAssign, MulAssign, SubAssign};

/// A floating-point element type of the CPU engine.
///
/// Training runs in `f32` (as PyTorch does); the same code in `f64` is what the
/// finite-difference gradient checks use, so that the checks test the real code
/// rather than a second implementation.
pub trait Element:
    num_traits::Float + Copy + Default + Debug + Send + Sync + Sum + AddAssign + SubAssign + MulAssign + bytemuck::Pod + 'static
{
    fn from_f64(v: f64) -> Self;
    fn as_f64(self) -> f64;
    fn from_usize(v: usize) -> Self {
        Self::from_f64(v as f64)
    }
}

impl Element for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Element for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
    fn as_f64(self) -> f64 {
        self
    }
}
