//! The classifier: `y[n, out] = x[n, in] W[out, in]^T + b`. CPU reference of the
//! linear layer (on CUDA: `kernels/linear.cu`).

use super::gemm::{gemm, Mat};
use crate::backend::cpu::{CpuBackend, CpuBuf};
use crate::backend::Memory;
use crate::element::Element;
use crate::geometry::LinearGeom;

#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
mod launch;

pub fn linear_forward<T: Element>(g: &LinearGeom, x: &[T], w: &[T], b: &[T], y: &mut [T]) {
    let (n, i, o) = (g.n as usize, g.inp as usize, g.out as usize);
    assert!(x.len() == n * i && w.len() == o * i && b.len() == o && y.len() == n * o, "linear_forward: sizes");
    for row in y.chunks_mut(o) {
        row.copy_from_slice(b);
    }
    gemm(n, o, i, Mat::rows(x, i), Mat::rows(w, i).t(), y, o, true);
}

/// `dw += dy^T x`, `db += sum_n dy`, and `dx = dy W` when asked for.
pub fn linear_backward<T: Element>(g: &LinearGeom, x: &[T], w: &[T], dy: &[T], dx: Option<&mut [T]>, dw: &mut [T], db: &mut [T]) {
    let (n, i, o) = (g.n as usize, g.inp as usize, g.out as usize);
    assert!(x.len() == n * i && w.len() == o * i && dy.len() == n * o, "linear_backward: sizes");
    assert!(dw.len() == o * i && db.len() == o, "linear_backward: gradient sizes");
    gemm(o, i, n, Mat::rows(dy, o).t(), Mat::rows(x, i), dw, i, true);
    for (j, d) in db.iter_mut().enumerate() {
        *d += T::from_f64((0..n).map(|r| dy[r * o + j].as_f64()).sum());
    }
    if let Some(dx) = dx {
        assert_eq!(dx.len(), n * i, "linear_backward: dx");
        gemm(n, i, o, Mat::rows(dy, o), Mat::rows(w, i), dx, i, false);
    }
}

/// `out[i] += ||dy_i||^2 (||x_i||^2 + 1)`: the squared norm of sample i's weight
/// and bias gradient, `dy_i (x) x_i` and `dy_i`.
pub fn linear_per_sample_sq_norms<T: Element>(g: &LinearGeom, x: &[T], dy: &[T], out: &mut [T]) {
    let (n, i, o) = (g.n as usize, g.inp as usize, g.out as usize);
    assert!(x.len() == n * i && dy.len() == n * o && out.len() == n, "linear_per_sample_sq_norms: sizes");
    for (r, v) in out.iter_mut().enumerate() {
        let xx: f64 = x[r * i..(r + 1) * i].iter().map(|v| v.as_f64() * v.as_f64()).sum();
        let dd: f64 = dy[r * o..(r + 1) * o].iter().map(|v| v.as_f64() * v.as_f64()).sum();
        *v += T::from_f64(dd * (xx + 1.0));
    }
}

/// The backend interface of these ops: the CPU engine below, the CUDA
/// kernels of `kernels/linear.cu` through `launch.rs`.
pub trait LinearOps: Memory {
    fn linear_forward(&self, g: &LinearGeom, x: &Self::Buf, w: &Self::Buf, b: &Self::Buf, y: &mut Self::Buf);
    #[allow(clippy::too_many_arguments)]
    fn linear_backward(
        &self,
        g: &LinearGeom,
        x: &Self::Buf,
        w: &Self::Buf,
        dy: &Self::Buf,
        dx: Option<&mut Self::Buf>,
        dw: &mut Self::Buf,
        db: &mut Self::Buf,
    );
    fn linear_per_sample_sq_norms(&self, g: &LinearGeom, x: &Self::Buf, dy: &Self::Buf, out: &mut Self::Buf);
}

impl<T: Element> LinearOps for CpuBackend<T> {
    fn linear_forward(&self, g: &LinearGeom, x: &CpuBuf<T>, w: &CpuBuf<T>, b: &CpuBuf<T>, y: &mut CpuBuf<T>) {
        self.op("linear_forward", || linear_forward(g, x, w, b, y))
    }
    fn linear_backward(
        &self,
        g: &LinearGeom,
        x: &CpuBuf<T>,
        w: &CpuBuf<T>,
        dy: &CpuBuf<T>,
        dx: Option<&mut CpuBuf<T>>,
        dw: &mut CpuBuf<T>,
        db: &mut CpuBuf<T>,
    ) {
        self.op("linear_backward", || linear_backward(g, x, w, dy, dx.map(|d| d.as_mut_slice()), dw, db))
    }
    fn linear_per_sample_sq_norms(&self, g: &LinearGeom, x: &CpuBuf<T>, dy: &CpuBuf<T>, out: &mut CpuBuf<T>) {
        self.op("linear_per_sample_sq_norms", || linear_per_sample_sq_norms(g, x, dy, out))
    }
}
