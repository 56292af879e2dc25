//! The NAS-Bench-Macro supernet's body: the benchmark's network
//! (`../shared/nbmacro/README.md`, read, not copied) with every layer holding
//! its three candidates, at width `C` (the stem's channels; the benchmark's
//! network has C = 32):
//!
//! ```text
//! stem:    conv3x3 (in -> C, no bias) -> BN -> ReLU
//! stage 1: layers 0-1, 2C channels (layer 0: stride 2)
//! stage 2: layers 2-4, 4C channels (layer 2: stride 2)
//! stage 3: layers 5-7, 8C channels (layer 5: stride 2)
//! head:    conv1x1 (8C -> 40C, no bias) -> BN -> ReLU -> global average pool
//! ```
//! A layer's candidates: `0` identity (where the layer has stride 2, a 1x1
//! conv of stride 2 and BN: the only place identity has parameters); `1`
//! and `2` MobileNetV2 inverted residuals, kernel k and expansion e (3, 3 and
//! 5, 6): pointwise conv c -> e c, BN, ReLU, depthwise k x k (stride s, padding
//! k/2), BN, ReLU, pointwise e c -> c', BN, plus the input where s = 1 and
//! c = c'. Every conv has no bias, as the benchmark's.
//!
//! Batch norm has no affine parameters, as the NAS-Bench-201 supernet's and
//! the official PA&DA code's (`affine=False`), and uses batch statistics in
//! training and evaluation: a candidate's scale is its convs' alone, and a
//! ranking sees each sub-network normalised by its own statistics. The
//! stand-alone networks of the benchmark have affine BN: `pada summary`
//! counts those parameters too ([`SpaceNet::bn_channels`]).

use super::{opens_stage, LAYERS, MBCONV};
use crate::backend::Backend;
use crate::geometry::{ActShape, ConvGeom};
use crate::space::Arch;
use crate::supernet::layers::{conv_bn, conv_bn_backward, conv_bn_fresh, BnSaved, Conv, ConvIn};
use crate::supernet::{BatchNorm, BodyTape, ParamId, ParamStore, Pass, SpaceNet, SupernetConfig};

/// The head's width per stem channel (1280 at the benchmark's 32).
const HEAD_PER_CHANNEL: usize = 40;

/// A MobileNetV2 inverted residual.
#[derive(Clone, Copy, Debug)]
struct MbConv {
    pw1: Conv,
    dw: Conv,
    pw2: Conv,
}

/// One layer: its geometry and its candidates.
#[derive(Clone, Debug)]
struct Layer {
    c_in: usize,
    c_out: usize,
    stride: usize,
    /// Input size.
    h: usize,
    w: usize,
    /// Candidate 0 where the layer changes size (else identity has no parameters).
    identity: Option<Conv>,
    /// Candidates 1 and 2.
    mb: [MbConv; 2],
}

impl Layer {
    /// The input plus the block's output: stride 1, same channels.
    fn residual(&self) -> bool {
        self.stride == 1 && self.c_in == self.c_out
    }
    /// The convs of candidate `choice`, each with the size of its input.
    fn convs(&self, choice: usize) -> Vec<(Conv, (usize, usize))> {
        let input = (self.h, self.w);
        match choice {
            0 => self.identity.into_iter().map(|c| (c, input)).collect(),
            k => {
                let m = self.mb[k - 1];
                vec![(m.pw1, input), (m.dw, input), (m.pw2, self.out_hw())]
            }
        }
    }
    fn out_hw(&self) -> (usize, usize) {
        let g = ConvGeom::new(1, 1, self.h, self.w, 1, 1, self.stride);
        // (a k x k conv with padding k/2 gives the same size as the 1x1: floor((h - 1) / s) + 1)
        (g.oh as usize, g.ow as usize)
    }
}

/// The body of a NAS-Bench-Macro supernet.
pub struct MacroNet {
    config: SupernetConfig,
    stem: Conv,
    layers: Vec<Layer>,
    head: Conv,
    /// The head's input size.
    head_hw: (usize, usize),
}

/// How a conv reads a batch norm's output that a ReLU follows (the stem's,
/// read by layer 0; a block's depthwise conv's, read by its second pointwise
/// conv): the batch norm writes it through the ReLU where there is one
/// (`bn`), so that neither the conv nor its weight gradient makes a ReLU'd
/// copy of it; without batch norm (synflow's network) the conv applies it.
fn after_bn_relu(bn: bool) -> ConvIn {
    if bn {
        ConvIn::Relued
    } else {
        ConvIn::Relu
    }
}

/// Builds the body of a supernet of `config` ([`crate::space`]).
pub fn build<B: Backend>(be: &B, ps: &mut ParamStore<B>, config: &SupernetConfig) -> anyhow::Result<Box<dyn SpaceNet<B>>> {
    Ok(Box::new(MacroNet::new(be, ps, config)?))
}

impl MacroNet {
    fn new<B: Backend>(be: &B, ps: &mut ParamStore<B>, config: &SupernetConfig) -> anyhow::Result<Self> {
        let c0 = config.channels;
        let stem = Conv::new(ps, be, "stem", config.input.c, c0, 3, 1, false);
        let (mut c, mut h, mut w) = (c0, config.input.h, config.input.w);
        let mut layers = Vec::with_capacity(LAYERS);
        for l in 0..LAYERS {
            let stride = if opens_stage(l) { 2 } else { 1 };
            let c_out = if opens_stage(l) { 2 * c } else { c };
            let identity =
                (stride != 1 || c != c_out).then(|| Conv::new(ps, be, &format!("layer{l}.op0.conv"), c, c_out, 1, stride, false));
            let mb = std::array::from_fn(|i| {
                let (k, e) = MBCONV[i];
                let name = format!("layer{l}.op{}", i + 1);
                MbConv {
                    pw1: Conv::new(ps, be, &format!("{name}.pw1"), c, e * c, 1, 1, false),
                    dw: Conv::depthwise(ps, be, &format!("{name}.dw"), e * c, k, stride),
                    pw2: Conv::new(ps, be, &format!("{name}.pw2"), e * c, c_out, 1, 1, false),
                }
            });
            let layer = Layer { c_in: c, c_out, stride, h, w, identity, mb };
            (h, w) = layer.out_hw();
            c = c_out;
            layers.push(layer);
        }
        let head = Conv::new(ps, be, "head", c, HEAD_PER_CHANNEL * c0, 1, 1, false);
        Ok(Self { config: *config, stem, layers, head, head_hw: (h, w) })
    }

    /// Every conv of `arch`'s path, in order (each followed by a batch
    /// norm), with the size of its input.
    fn path_convs(&self, arch: &Arch) -> Vec<(Conv, (usize, usize))> {
        let mut convs = vec![(self.stem, (self.config.input.h, self.config.input.w))];
        for (l, layer) in self.layers.iter().enumerate() {
            convs.extend(layer.convs(arch.choice(l)));
        }
        convs.push((self.head, self.head_hw));
        convs
    }
}

/// What one layer's forward pass keeps.
enum LayerTape<B: Backend> {
    /// Identity of stride 1: the output is the input.
    Same,
    /// Identity of stride 2: the 1x1 conv's BN.
    Conv(BnSaved<B>),
    Mb {
        pw1: BnSaved<B>,
        /// BN output of pw1 (the depthwise conv reads its ReLU).
        a1: B::Buf,
        dw: BnSaved<B>,
        /// BN output of the depthwise conv, through the ReLU where there is
        /// BN (the BN applies it, [`after_bn_relu`]), which pw2 reads.
        a2: B::Buf,
        pw2: BnSaved<B>,
    },
}

/// What a forward pass keeps for the backward pass.
struct Tape<B: Backend> {
    input: B::Buf,
    stem: BnSaved<B>,
    /// The stem's output, then each layer's where it is a new tensor (`None`:
    /// the same as the layer's input).
    outputs: Vec<Option<B::Buf>>,
    layers: Vec<LayerTape<B>>,
    head: BnSaved<B>,
    /// BN output of the head conv (the pool reads its ReLU).
    head_y: B::Buf,
}

impl<B: Backend> Tape<B> {
    /// The input of layer `l` (the stem's output for layer 0).
    fn input_of(&self, l: usize) -> &B::Buf {
        self.outputs[..=l].iter().rev().find_map(|o| o.as_ref()).expect("the stem's output")
    }
}

impl<B: Backend> SpaceNet<B> for MacroNet {
    fn features(&self) -> usize {
        self.head.c_out
    }

    fn path_params(&self, arch: &Arch) -> Vec<ParamId> {
        self.path_convs(arch).iter().flat_map(|(c, _)| c.params()).collect()
    }

    /// The candidate's convs' weights (nothing for an identity of stride 1).
    fn choice_params(&self, slot: usize, choice: usize) -> Vec<ParamId> {
        self.layers[slot].convs(choice).iter().flat_map(|(c, _)| c.params()).collect()
    }

    /// The convolutions' multiply-accumulates, as the benchmark counts FLOPs
    /// (batch norm, ReLU, the residual adds and the pool not counted).
    fn forward_macs(&self, arch: &Arch) -> u64 {
        self.path_convs(arch).iter().map(|(c, (h, w))| c.macs(*h, *w)).sum()
    }

    /// Every conv on the path is followed by a batch norm.
    fn bn_channels(&self, arch: &Arch) -> usize {
        self.path_convs(arch).iter().map(|(c, _)| c.c_out).sum()
    }

    fn forward(
        &self,
        be: &B,
        ps: &ParamStore<B>,
        x: B::Buf,
        batch: usize,
        arch: &Arch,
        keep: bool,
        bn: BatchNorm,
        pooled: &mut B::Buf,
    ) -> Option<BodyTape> {
        let bn = bn == BatchNorm::All;
        let (h, w) = (self.config.input.h, self.config.input.w);
        let (stem, stem_out) = conv_bn_fresh(be, ps, &self.stem, &self.stem.geom(batch, h, w), &x, ConvIn::Plain, bn, bn);
        let mut outputs = vec![Some(stem_out)];
        let mut layers = Vec::with_capacity(LAYERS);
        for (l, layer) in self.layers.iter().enumerate() {
            let input = outputs[..=l].iter().rev().find_map(|o| o.as_ref()).expect("the stem's output");
            // the stem's ReLU: its BN's where there is one, else layer 0's convs apply it as they read
            let input_as = if l == 0 { after_bn_relu(bn) } else { ConvIn::Plain };
            let (lt, out) = match arch.choice(l) {
                0 => match &layer.identity {
                    None => (LayerTape::Same, None),
                    Some(conv) => {
                        let (saved, y) = conv_bn_fresh(be, ps, conv, &conv.geom(batch, layer.h, layer.w), input, input_as, false, bn);
                        (LayerTape::Conv(saved), Some(y))
                    }
                },
                k => {
                    let m = &layer.mb[k - 1];
                    let (oh, ow) = layer.out_hw();
                    let (pw1, a1) = conv_bn_fresh(be, ps, &m.pw1, &m.pw1.geom(batch, layer.h, layer.w), input, input_as, false, bn);
                    let (dw, a2) = conv_bn_fresh(be, ps, &m.dw, &m.dw.geom(batch, layer.h, layer.w), &a1, ConvIn::Relu, bn, bn);
                    let g2 = m.pw2.geom(batch, oh, ow);
                    let mut y = be.alloc(g2.output().len());
                    if layer.residual() {
                        be.copy(&mut y, input);
                    }
                    let pw2 = conv_bn(be, ps, &m.pw2, &g2, &a2, after_bn_relu(bn), &mut y, layer.residual(), false, bn);
                    (LayerTape::Mb { pw1, a1, dw, a2, pw2 }, Some(y))
                }
            };
            layers.push(if keep { lt } else { LayerTape::Same });
            if !keep && out.is_some() {
                // evaluation: only the newest tensor is needed
                outputs.iter_mut().for_each(|o| *o = None);
            }
            outputs.push(out);
        }
        let last = outputs.iter().rev().find_map(|o| o.as_ref()).expect("a layer output");
        let (hh, hw) = self.head_hw;
        let (head, head_y) = conv_bn_fresh(be, ps, &self.head, &self.head.geom(batch, hh, hw), last, ConvIn::Plain, false, bn);
        be.global_avgpool_forward(&ActShape::new(self.head.c_out, batch, hh, hw), &head_y, true, pooled);
        Some(Box::new(Tape { input: x, stem, outputs, layers, head, head_y }))
    }

    fn backward(&self, be: &B, ps: &mut ParamStore<B>, tape: &BodyTape, arch: &Arch, batch: usize, dpooled: B::Buf, pass: &mut Pass<B>) {
        let tape: &Tape<B> = tape.downcast_ref().expect("a NAS-Bench-Macro tape");
        let (hh, hw) = self.head_hw;
        let head_shape = ActShape::new(self.head.c_out, batch, hh, hw);
        let mut dy = be.alloc(head_shape.len());
        be.global_avgpool_backward(&head_shape, &dpooled, Some(&tape.head_y), &mut dy);
        drop(dpooled);
        let gh = self.head.geom(batch, hh, hw);
        let last = tape.input_of(LAYERS);
        let mut grad = be.alloc(gh.input().len());
        conv_bn_backward(be, ps, pass, &self.head, &gh, last, ConvIn::Plain, &tape.head, &dy, Some((&mut grad, false)));
        drop(dy);
        for (l, layer) in self.layers.iter().enumerate().rev() {
            let input = tape.input_of(l);
            let input_as = if l == 0 { after_bn_relu(tape.stem.stats.is_some()) } else { ConvIn::Plain };
            grad = match &tape.layers[l] {
                LayerTape::Same => grad,
                LayerTape::Conv(saved) => {
                    let conv = layer.identity.as_ref().expect("a strided identity");
                    let g = conv.geom(batch, layer.h, layer.w);
                    let mut dx = be.alloc(g.input().len());
                    conv_bn_backward(be, ps, pass, conv, &g, input, input_as, saved, &grad, Some((&mut dx, false)));
                    dx
                }
                LayerTape::Mb { pw1, a1, dw, a2, pw2 } => {
                    let m = &layer.mb[arch.choice(l) - 1];
                    let (oh, ow) = layer.out_hw();
                    let g2 = m.pw2.geom(batch, oh, ow);
                    let mut da2 = be.alloc(g2.input().len());
                    conv_bn_backward(be, ps, pass, &m.pw2, &g2, a2, after_bn_relu(dw.stats.is_some()), pw2, &grad, Some((&mut da2, false)));
                    let gd = m.dw.geom(batch, layer.h, layer.w);
                    let mut da1 = be.alloc(gd.input().len());
                    conv_bn_backward(be, ps, pass, &m.dw, &gd, a1, ConvIn::Relu, dw, &da2, Some((&mut da1, false)));
                    drop(da2);
                    let g1 = m.pw1.geom(batch, layer.h, layer.w);
                    // the residual's gradient first, then the block's added to it
                    let residual = layer.residual();
                    let mut dx = if residual { grad } else { be.alloc(g1.input().len()) };
                    conv_bn_backward(be, ps, pass, &m.pw1, &g1, input, input_as, pw1, &da1, Some((&mut dx, residual)));
                    dx
                }
            };
        }
        let (h, w) = (self.config.input.h, self.config.input.w);
        conv_bn_backward(be, ps, pass, &self.stem, &self.stem.geom(batch, h, w), &tape.input, ConvIn::Plain, &tape.stem, &grad, None);
    }
}
