//! Batch norm with batch statistics only, as
//! `BatchNorm2d(affine=False, track_running_stats=False)` in train and eval mode:
//! `y = (x - mean) / sqrt(var + eps)`, biased variance, eps = 1e-5.
//! The CPU reference of `kernels/batchnorm.cu`.

use rayon::prelude::*;

use super::parallel::Disjoint;
use super::reduce;
use crate::element::Element;
use crate::geometry::ActShape;

pub const BN_EPS: f64 = 1e-5;

/// Normalises every channel of the CNHW tensor `x` into `y`; writes `1/sqrt(var+eps)`
/// per channel into `invstd` for the backward pass (which needs only `y` and `invstd`).
pub fn batchnorm_forward<T: Element>(s: &ActShape, x: &[T], y: &mut [T], invstd: &mut [T]) {
    assert_eq!(x.len(), s.len(), "batchnorm_forward: x");
    assert_eq!(y.len(), s.len(), "batchnorm_forward: y");
    assert_eq!(invstd.len(), s.c as usize, "batchnorm_forward: invstd");
    let l = s.per_channel();
    y.par_chunks_mut(l).zip(x.par_chunks(l)).zip(invstd.par_iter_mut()).for_each(|((yc, xc), is)| {
        // Two passes: the mean, then the centred sum of squares, so that a channel
        // with a large mean and a small spread keeps its precision.
        let mean = reduce::sum(xc) / l as f64;
        let m = T::from_f64(mean);
        let var = reduce::sum_map(xc, |v| (v - m) * (v - m)) / l as f64;
        let inv = 1.0 / (var + BN_EPS).sqrt();
        *is = T::from_f64(inv);
        let inv = T::from_f64(inv);
        for (o, &v) in yc.iter_mut().zip(xc) {
            *o = (v - m) * inv;
        }
    });
}

/// `dx = invstd * (dy - mean(dy) - y * mean(dy * y))`, per channel, from the
/// forward output `y` (the normalised input) and `invstd`.
pub fn batchnorm_backward<T: Element>(s: &ActShape, y: &[T], invstd: &[T], dy: &[T], dx: &mut [T]) {
    assert_eq!(y.len(), s.len(), "batchnorm_backward: y");
    assert_eq!(dy.len(), s.len(), "batchnorm_backward: dy");
    assert_eq!(dx.len(), s.len(), "batchnorm_backward: dx");
    assert_eq!(invstd.len(), s.c as usize, "batchnorm_backward: invstd");
    let l = s.per_channel();
    let out = Disjoint::new(dx);
    (0..s.c as usize).into_par_iter().for_each(|c| {
        let (yc, dyc) = (&y[c * l..(c + 1) * l], &dy[c * l..(c + 1) * l]);
        let (sdy, sdyy) = reduce::sum_and_dot(dyc, yc);
        let mdy = T::from_f64(sdy / l as f64);
        let mdyy = T::from_f64(sdyy / l as f64);
        let inv = invstd[c];
        // SAFETY: channel c's run of the output belongs to this task only.
        let dxc = unsafe { out.range(c * l, l) };
        for ((d, &yv), &g) in dxc.iter_mut().zip(yc).zip(dyc) {
            *d = inv * (g - mdy - yv * mdyy);
        }
    });
}
