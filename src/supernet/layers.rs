//! Layers the spaces' supernets are built of: a convolution (dense or
//! depthwise) followed by batch norm, its forward pass and its backward pass
//! into the parameters' gradients or their per-sample norms ([`Pass`]).

use super::{ParamId, ParamStore, Pass};
use crate::backend::Backend;
use crate::geometry::ConvGeom;

/// A convolution layer: dense (`[c_out, c_in, k, k]` weights) or depthwise
/// (`c_in == c_out`, `[c, 1, k, k]` weights, one filter per channel).
#[derive(Clone, Copy, Debug)]
pub struct Conv {
    pub w: ParamId,
    pub b: Option<ParamId>,
    pub c_in: usize,
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    pub depthwise: bool,
}

impl Conv {
    /// A dense convolution with "same" padding `k / 2`, PyTorch's default
    /// initialisation bounds (fan-in `c_in * k * k`).
    #[allow(clippy::too_many_arguments)]
    pub fn new<B: Backend>(
        ps: &mut ParamStore<B>,
        be: &B,
        name: &str,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        bias: bool,
    ) -> Self {
        let fan_in = c_in * k * k;
        let w = ps.add(be, format!("{name}.weight"), vec![c_out, c_in, k, k], fan_in);
        let b = bias.then(|| ps.add(be, format!("{name}.bias"), vec![c_out], fan_in));
        Conv { w, b, c_in, c_out, k, stride, depthwise: false }
    }
    /// A depthwise convolution of `c` channels (no bias; fan-in `k * k`, as
    /// PyTorch's for `groups = c`).
    pub fn depthwise<B: Backend>(ps: &mut ParamStore<B>, be: &B, name: &str, c: usize, k: usize, stride: usize) -> Self {
        let w = ps.add(be, format!("{name}.weight"), vec![c, 1, k, k], k * k);
        Conv { w, b: None, c_in: c, c_out: c, k, stride, depthwise: true }
    }
    pub fn geom(&self, n: usize, h: usize, w: usize) -> ConvGeom {
        ConvGeom::new(n, self.c_in, h, w, self.c_out, self.k, self.stride)
    }
    pub fn params(&self) -> impl Iterator<Item = ParamId> {
        std::iter::once(self.w).chain(self.b)
    }
    /// Multiply-accumulates of one image of `h x w` (a depthwise conv does
    /// `k * k` per output value, a dense one `c_in * k * k`).
    pub fn macs(&self, h: usize, w: usize) -> u64 {
        let g = self.geom(1, h, w);
        if self.depthwise {
            g.output().len() as u64 * (self.k * self.k) as u64
        } else {
            g.macs()
        }
    }
}

/// What a conv -> BN pair keeps for its backward pass: the conv's output (the
/// BN input) and the BN statistics (none where the forward pass left batch
/// norm out).
pub struct BnSaved<B: Backend> {
    pub x: B::Buf,
    pub stats: Option<B::Buf>,
}

/// How a conv reads its input `x`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvIn {
    /// `x` as it is.
    Plain,
    /// `relu(x)`: the conv applies the ReLU as it reads `x`, and its input
    /// gradient goes through the ReLU's mask `x > 0`.
    Relu,
    /// `x` that the batch norm which wrote it already put through a ReLU
    /// ([`conv_bn`] with `relu_y`): read as it is, so the conv makes no
    /// ReLU'd copy of it, and the input gradient masked by `x > 0` (the same
    /// mask as [`ConvIn::Relu`]'s: `relu(v) > 0` exactly where `v > 0`).
    Relued,
}

impl ConvIn {
    /// Whether the conv puts `x` through a ReLU as it reads it.
    fn applies_relu(self) -> bool {
        self == ConvIn::Relu
    }
    /// Whether the input gradient goes through the ReLU's mask `x > 0`.
    fn masked(self) -> bool {
        self != ConvIn::Plain
    }
}

/// `conv(input(x))` into `t`.
fn conv_forward<B: Backend>(be: &B, ps: &ParamStore<B>, conv: &Conv, g: &ConvGeom, x: &B::Buf, input: ConvIn, t: &mut B::Buf) {
    let relu_x = input.applies_relu();
    if conv.depthwise {
        be.depthwise_forward(g, x, relu_x, ps.value(conv.w), t);
    } else {
        be.conv2d_forward(g, x, relu_x, ps.value(conv.w), conv.b.map(|b| ps.value(b)), t);
    }
}

/// A conv followed by batch norm (unless `bn` is false: the conv alone)
/// whose output is written to (or, with `accumulate`, added into) `y`; with
/// `relu_y`, through a ReLU, which the batch norm applies as it writes (the
/// next conv then reads `y` as [`ConvIn::Relued`]).
#[allow(clippy::too_many_arguments)]
pub fn conv_bn<B: Backend>(
    be: &B,
    ps: &ParamStore<B>,
    conv: &Conv,
    g: &ConvGeom,
    x: &B::Buf,
    input: ConvIn,
    y: &mut B::Buf,
    accumulate: bool,
    relu_y: bool,
    bn: bool,
) -> BnSaved<B> {
    assert!(bn || !relu_y, "conv_bn: the ReLU of relu_y is the batch norm's");
    let s = g.output();
    let mut t = be.alloc(s.len());
    conv_forward(be, ps, conv, g, x, input, &mut t);
    if !bn {
        if accumulate {
            be.add_assign(y, &t)
        } else {
            be.copy(y, &t)
        }
        return BnSaved { x: t, stats: None };
    }
    let mut stats = be.alloc(2 * s.c as usize);
    be.batchnorm_forward(&s, &t, y, accumulate, relu_y, &mut stats);
    BnSaved { x: t, stats: Some(stats) }
}

/// [`conv_bn`] into a fresh buffer, returned with what it saved.
#[allow(clippy::too_many_arguments)]
pub fn conv_bn_fresh<B: Backend>(
    be: &B,
    ps: &ParamStore<B>,
    conv: &Conv,
    g: &ConvGeom,
    x: &B::Buf,
    input: ConvIn,
    relu_y: bool,
    bn: bool,
) -> (BnSaved<B>, B::Buf) {
    let mut y = be.alloc(g.output().len());
    let saved = conv_bn(be, ps, conv, g, x, input, &mut y, false, relu_y, bn);
    (saved, y)
}

/// Backward through BN then the conv ([`conv_backward`]).
#[allow(clippy::too_many_arguments)]
pub fn conv_bn_backward<B: Backend>(
    be: &B,
    ps: &mut ParamStore<B>,
    pass: &mut Pass<B>,
    conv: &Conv,
    g: &ConvGeom,
    x: &B::Buf,
    input: ConvIn,
    bn: &BnSaved<B>,
    dy: &B::Buf,
    dx: Option<(&mut B::Buf, bool)>,
) {
    let s = g.output();
    let through_bn = bn.stats.as_ref().map(|stats| {
        let mut dt = be.alloc(s.len());
        if pass.frozen_bn_statistics {
            be.batchnorm_backward_frozen(&s, stats, dy, &mut dt);
        } else {
            be.batchnorm_backward(&s, &bn.x, stats, dy, &mut dt);
        }
        dt
    });
    let dt = through_bn.as_ref().unwrap_or(dy);
    conv_backward(be, ps, pass, conv, g, x, input, dt, dx);
}

/// Backward through a conv: its parameter gradients (or per-sample norms,
/// see [`Pass`]) and, when `dx` is given, adds (or writes) its input
/// gradient; the two are independent and run side by side
/// ([`crate::backend::Memory::join`]).
#[allow(clippy::too_many_arguments)]
pub fn conv_backward<B: Backend>(
    be: &B,
    ps: &mut ParamStore<B>,
    pass: &mut Pass<B>,
    conv: &Conv,
    g: &ConvGeom,
    x: &B::Buf,
    input: ConvIn,
    dt: &B::Buf,
    dx: Option<(&mut B::Buf, bool)>,
) {
    let (w, dw, db) = ps.value_and_grads(conv.w, conv.b);
    let params = || conv_weight_backward(be, dw, db, pass, conv, g, x, input.applies_relu(), dt);
    let Some((dx, acc)) = dx else {
        return params();
    };
    let mask = input.masked().then_some(x);
    let data = || {
        if conv.depthwise {
            be.depthwise_backward_data(g, dt, w, mask, dx, acc);
        } else {
            be.conv2d_backward_data(g, dt, w, mask, dx, acc);
        }
    };
    be.join(params, data);
}

/// A conv's parameter gradients (into `dw`, `db`), or their per-sample norms.
#[allow(clippy::too_many_arguments)]
fn conv_weight_backward<B: Backend>(
    be: &B,
    dw: &mut B::Buf,
    db: Option<&mut B::Buf>,
    pass: &mut Pass<B>,
    conv: &Conv,
    g: &ConvGeom,
    x: &B::Buf,
    relu_x: bool,
    dt: &B::Buf,
) {
    let sample_sq = pass.per_sample_sq_norms.as_deref_mut();
    if !pass.gradients {
        if let Some(out) = sample_sq {
            if conv.depthwise {
                be.depthwise_per_sample_sq_norms(g, x, relu_x, dt, out);
            } else {
                be.conv2d_per_sample_sq_norms(g, x, relu_x, dt, db.is_some(), out);
            }
        }
        return;
    }
    if conv.depthwise {
        be.depthwise_backward_weight(g, x, relu_x, dt, dw, sample_sq);
    } else {
        be.conv2d_backward_weight(g, x, relu_x, dt, dw, db, sample_sq);
    }
}
