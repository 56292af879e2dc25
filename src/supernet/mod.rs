//! The NAS-Bench-201 supernet, built as the official PA&DA code builds it, with
//! forward and backward along one sampled architecture.
//!
//! ```text
//! stem:   conv3x3 (no bias) -> BN
//! stage 0: N search cells, C channels
//! res0:   ResNet basic block, stride 2, C -> 2C
//! stage 1: N search cells, 2C channels
//! res1:   ResNet basic block, stride 2, 2C -> 4C
//! stage 2: N search cells, 4C channels
//! head:   BN -> ReLU -> global average pool -> linear
//! ```
//! A search cell has nodes 0..3 and edges `EDGES`; node i is the sum over j < i
//! of `op_{j->i}(node j)` and the cell outputs node 3. Every edge of every cell
//! owns a `nor_conv_1x1` and a `nor_conv_3x3` (ReLU -> conv with bias -> BN);
//! the other ops have no parameters. A reduction block is
//! `out = conv1x1(avgpool2x2(x)) + BN(conv3x3(relu(BN(conv3x3_s2(relu(x))))))`.
//!
//! Only the edges that carry signal are computed ([`crate::arch::CellPlan`]); a
//! tensor that is identically zero is represented by `None` and never built.

pub mod config;
pub mod params;

pub use config::{InputShape, SupernetConfig};
pub use params::{Param, ParamId, ParamStore};

use crate::arch::{CellPlan, Genotype, Op, EDGES, NUM_EDGES};
use crate::backend::Backend;
use num_traits::Zero;
use crate::geometry::{ActShape, ConvGeom, LinearGeom, PoolGeom};

/// A convolution layer of the supernet.
#[derive(Clone, Copy, Debug)]
struct Conv {
    w: ParamId,
    b: Option<ParamId>,
    c_in: usize,
    c_out: usize,
    k: usize,
    stride: usize,
}

impl Conv {
    fn geom(&self, n: usize, h: usize, w: usize) -> ConvGeom {
        ConvGeom::new(n, self.c_in, h, w, self.c_out, self.k, self.stride)
    }
    fn new<B: Backend>(ps: &mut ParamStore<B>, be: &B, name: &str, c_in: usize, c_out: usize, k: usize, stride: usize, bias: bool) -> Self {
        let fan_in = c_in * k * k;
        let w = ps.add(be, format!("{name}.weight"), vec![c_out, c_in, k, k], fan_in);
        let b = bias.then(|| ps.add(be, format!("{name}.bias"), vec![c_out], fan_in));
        Conv { w, b, c_in, c_out, k, stride }
    }
    fn params(&self) -> impl Iterator<Item = ParamId> {
        std::iter::once(self.w).chain(self.b)
    }
}

#[derive(Clone, Debug)]
struct Cell {
    c: usize,
    h: usize,
    w: usize,
    /// `convs[e][0]` is edge e's nor_conv_1x1, `convs[e][1]` its nor_conv_3x3.
    convs: [[Conv; 2]; NUM_EDGES],
}

impl Cell {
    fn conv(&self, e: usize, op: Op) -> Option<&Conv> {
        match op {
            Op::NorConv1x1 => Some(&self.convs[e][0]),
            Op::NorConv3x3 => Some(&self.convs[e][1]),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
struct Reduction {
    c_in: usize,
    c_out: usize,
    h: usize,
    w: usize,
    conv_a: Conv,
    conv_b: Conv,
    shortcut: Conv,
}

#[derive(Clone, Debug)]
enum Layer {
    Cell(Cell),
    Reduction(Reduction),
}

/// The output of a batch norm kept for its backward pass.
struct BnOut<B: Backend> {
    y: B::Buf,
    invstd: B::Buf,
}

enum LayerTape<B: Backend> {
    /// Input and output identically zero: nothing was computed.
    Zero,
    Cell {
        /// Nodes 1 and 2 (node 0 is the layer input, node 3 the output).
        inner: [Option<B::Buf>; 2],
        /// The BN outputs of the conv edges.
        bn: [Option<BnOut<B>>; NUM_EDGES],
    },
    Reduction {
        a: BnOut<B>,
        b: BnOut<B>,
        pooled: B::Buf,
    },
}

/// What a forward pass keeps for the backward pass.
pub struct Tape<B: Backend> {
    pub batch: usize,
    pub genotype: Genotype,
    plan: CellPlan,
    input: B::Buf,
    stem: BnOut<B>,
    layers: Vec<LayerTape<B>>,
    /// Output of each layer; `None` when identically zero.
    outputs: Vec<Option<B::Buf>>,
    head: Option<BnOut<B>>,
    pooled: B::Buf,
    /// `[batch, classes]`, row-major.
    pub logits: B::Buf,
}

impl<B: Backend> Tape<B> {
    /// Returns every buffer to the backend's pool.
    pub fn release(self, be: &B) {
        let Tape { input, stem, layers, outputs, head, pooled, logits, .. } = self;
        be.release(input);
        release_bn(be, stem);
        for l in layers {
            release_layer(be, l);
        }
        outputs.into_iter().flatten().for_each(|b| be.release(b));
        if let Some(h) = head {
            release_bn(be, h);
        }
        be.release(pooled);
        be.release(logits);
    }
}

fn release_bn<B: Backend>(be: &B, bn: BnOut<B>) {
    be.release(bn.y);
    be.release(bn.invstd);
}

fn release_layer<B: Backend>(be: &B, l: LayerTape<B>) {
    match l {
        LayerTape::Zero => {}
        LayerTape::Cell { inner, bn } => {
            inner.into_iter().flatten().for_each(|b| be.release(b));
            bn.into_iter().flatten().for_each(|b| release_bn(be, b));
        }
        LayerTape::Reduction { a, b, pooled } => {
            release_bn(be, a);
            release_bn(be, b);
            be.release(pooled);
        }
    }
}

/// `dst` holds a partial sum or nothing yet: adds `src` into it (or takes it).
fn accumulate<B: Backend>(be: &B, dst: &mut Option<B::Buf>, src: B::Buf) {
    match dst {
        Some(d) => {
            be.add_assign(d, &src);
            be.release(src);
        }
        None => *dst = Some(src),
    }
}

pub struct Supernet<B: Backend> {
    pub config: SupernetConfig,
    pub params: ParamStore<B>,
    stem: Conv,
    layers: Vec<Layer>,
    classifier_w: ParamId,
    classifier_b: ParamId,
}

impl<B: Backend> Supernet<B> {
    /// Builds the supernet with PyTorch's default initialisation from `seed`.
    pub fn new(be: &B, config: SupernetConfig, seed: u64) -> anyhow::Result<Self> {
        let mut net = Self::uninit(be, config)?;
        net.params.init(be, seed);
        Ok(net)
    }

    /// Builds the supernet with all parameters zero (to be loaded).
    pub fn uninit(be: &B, config: SupernetConfig) -> anyhow::Result<Self> {
        config.validate()?;
        let mut ps = ParamStore::default();
        let c0 = config.channels;
        let stem = Conv::new(&mut ps, be, "stem", config.input.c, c0, 3, 1, false);
        let mut layers = Vec::new();
        let mut cell_index = 0;
        for stage in 0..3 {
            let c = config.stage_channels(stage);
            let (h, w) = config.stage_hw(stage);
            if stage > 0 {
                let (c_in, (hi, wi)) = (config.stage_channels(stage - 1), config.stage_hw(stage - 1));
                let name = format!("res{}", stage - 1);
                layers.push(Layer::Reduction(Reduction {
                    c_in,
                    c_out: c,
                    h: hi,
                    w: wi,
                    conv_a: Conv::new(&mut ps, be, &format!("{name}.conv_a"), c_in, c, 3, 2, true),
                    conv_b: Conv::new(&mut ps, be, &format!("{name}.conv_b"), c, c, 3, 1, true),
                    shortcut: Conv::new(&mut ps, be, &format!("{name}.shortcut"), c_in, c, 1, 1, false),
                }));
            }
            for _ in 0..config.cells {
                let convs = std::array::from_fn(|e| {
                    [2, 3].map(|o| {
                        let k = if o == 2 { 1 } else { 3 };
                        Conv::new(&mut ps, be, &format!("cell{cell_index}.edge{e}.op{o}"), c, c, k, 1, true)
                    })
                });
                layers.push(Layer::Cell(Cell { c, h, w, convs }));
                cell_index += 1;
            }
        }
        let c_last = config.stage_channels(2);
        let classifier_w = ps.add(be, "classifier.weight".into(), vec![config.classes, c_last], c_last);
        let classifier_b = ps.add(be, "classifier.bias".into(), vec![config.classes], c_last);
        Ok(Self { config, params: ps, stem, layers, classifier_w, classifier_b })
    }

    /// Parameters of the sub-network `g`: the stem, the reduction blocks, the
    /// classifier and every cell's convs for the ops in `g` (whether or not the
    /// edge carries signal: PyTorch gives all of them a gradient).
    pub fn path_params(&self, g: &Genotype) -> Vec<ParamId> {
        let mut ids: Vec<ParamId> = self.stem.params().collect();
        for layer in &self.layers {
            match layer {
                Layer::Cell(cell) => {
                    for (e, &op) in g.0.iter().enumerate() {
                        ids.extend(cell.conv(e, op).into_iter().flat_map(|c| c.params()));
                    }
                }
                Layer::Reduction(r) => ids.extend(r.conv_a.params().chain(r.conv_b.params()).chain(r.shortcut.params())),
            }
        }
        ids.extend([self.classifier_w, self.classifier_b]);
        ids
    }

    /// For each cell (in order) and edge, the weight and bias of the conv `op`
    /// (`nor_conv_1x1` or `nor_conv_3x3`) on that edge.
    pub fn edge_conv_params(&self, op: Op) -> Vec<[(ParamId, ParamId); NUM_EDGES]> {
        self.layers
            .iter()
            .filter_map(|l| match l {
                Layer::Cell(c) => Some(std::array::from_fn(|e| {
                    let conv = c.conv(e, op).expect("a conv op");
                    (conv.w, conv.b.expect("cell convs have biases"))
                })),
                Layer::Reduction(_) => None,
            })
            .collect()
    }

    /// Number of scalars of the sub-network `g` (or the whole supernet for `None`).
    pub fn param_count(&self, g: Option<&Genotype>) -> usize {
        match g {
            None => self.params.numel(),
            Some(g) => self.path_params(g).iter().map(|&id| self.params.get(id).len()).sum(),
        }
    }

    /// Multiply-accumulates of a forward pass of one image through the sub-network
    /// `g`, counting every conv and the classifier (as NAS-Bench-201 counts FLOPs,
    /// all of the genotype's edges, also those that carry no signal).
    pub fn forward_macs(&self, g: &Genotype) -> u64 {
        let (h, w) = (self.config.input.h, self.config.input.w);
        let mut macs = self.stem.geom(1, h, w).macs();
        for layer in &self.layers {
            match layer {
                Layer::Cell(cell) => {
                    for (e, &op) in g.0.iter().enumerate() {
                        if let Some(conv) = cell.conv(e, op) {
                            macs += conv.geom(1, cell.h, cell.w).macs();
                        }
                    }
                }
                Layer::Reduction(r) => {
                    let ga = r.conv_a.geom(1, r.h, r.w);
                    macs += ga.macs() + r.conv_b.geom(1, ga.oh as usize, ga.ow as usize).macs();
                    macs += r.shortcut.geom(1, r.h / 2, r.w / 2).macs();
                }
            }
        }
        macs + (self.config.stage_channels(2) * self.config.classes) as u64
    }

    fn input_shape(&self, n: usize) -> ActShape {
        ActShape::new(self.config.input.c, n, self.config.input.h, self.config.input.w)
    }

    /// A conv followed by batch norm; the conv's pre-BN output is released at once.
    fn conv_bn(&self, be: &B, conv: &Conv, g: &ConvGeom, x: &B::Buf, relu_x: bool) -> BnOut<B> {
        let s = g.output();
        let mut t = be.alloc(s.len());
        be.conv2d_forward(g, x, relu_x, self.params.value(conv.w), conv.b.map(|b| self.params.value(b)), &mut t);
        let mut y = be.alloc(s.len());
        let mut invstd = be.alloc(s.c as usize);
        be.batchnorm_forward(&s, &t, &mut y, &mut invstd);
        be.release(t);
        BnOut { y, invstd }
    }

    /// Backward through BN then the conv: accumulates the conv's parameter
    /// gradients and, when `dx` is given, adds (or writes) the input gradient.
    #[allow(clippy::too_many_arguments)]
    fn conv_bn_backward(
        &mut self,
        be: &B,
        conv: &Conv,
        g: &ConvGeom,
        x: &B::Buf,
        relu_x: bool,
        bn: &BnOut<B>,
        dy: &B::Buf,
        dx: Option<(&mut B::Buf, bool)>,
    ) {
        let s = g.output();
        let mut dt = be.alloc(s.len());
        be.batchnorm_backward(&s, &bn.y, &bn.invstd, dy, &mut dt);
        match conv.b {
            Some(b) => {
                let (dw, db) = self.params.grads2(conv.w, b);
                be.conv2d_backward_weight(g, x, relu_x, &dt, dw, Some(db));
            }
            None => be.conv2d_backward_weight(g, x, relu_x, &dt, &mut self.params.get_mut(conv.w).grad, None),
        }
        if let Some((dx, acc)) = dx {
            be.conv2d_backward_data(g, &dt, self.params.value(conv.w), relu_x.then_some(x), dx, acc);
        }
        be.release(dt);
    }

    /// Forward pass of `batch` CNHW images `x` along `genotype`. With
    /// `keep_for_backward = false` (evaluation) intermediate buffers are released
    /// as soon as they are consumed; the returned tape then only serves `logits`.
    pub fn forward(&self, be: &B, x: B::Buf, batch: usize, genotype: &Genotype, keep_for_backward: bool) -> Tape<B> {
        assert_eq!(be.len(&x), self.input_shape(batch).len(), "forward: input size");
        let plan = genotype.plan();
        let (h, w) = (self.config.input.h, self.config.input.w);
        let stem = self.conv_bn(be, &self.stem, &self.stem.geom(batch, h, w), &x, false);
        let mut tape = Tape {
            batch,
            genotype: *genotype,
            plan,
            input: x,
            stem,
            layers: Vec::with_capacity(self.layers.len()),
            outputs: Vec::with_capacity(self.layers.len()),
            head: None,
            pooled: be.alloc(batch * self.config.stage_channels(2)),
            logits: be.alloc(batch * self.config.classes),
        };
        for (l, layer) in self.layers.iter().enumerate() {
            let input = if l == 0 { Some(&tape.stem.y) } else { tape.outputs[l - 1].as_ref() };
            let (lt, out) = match (layer, input) {
                (_, None) => (LayerTape::Zero, None),
                (Layer::Cell(cell), Some(x)) => self.cell_forward(be, cell, genotype, &plan, x, batch),
                (Layer::Reduction(r), Some(x)) => self.reduction_forward(be, r, x, batch),
            };
            tape.layers.push(lt);
            tape.outputs.push(out);
            if !keep_for_backward && l > 0 {
                // Layer l-1's output was layer l's input; neither is needed again.
                release_layer(be, std::mem::replace(&mut tape.layers[l], LayerTape::Zero));
                if let Some(b) = tape.outputs[l - 1].take() {
                    be.release(b);
                }
            }
        }
        let c_last = self.config.stage_channels(2);
        let (hl, wl) = self.config.stage_hw(2);
        let feat_shape = ActShape::new(c_last, batch, hl, wl);
        match tape.outputs.last().expect("at least one layer") {
            Some(feat) => {
                let mut y = be.alloc(feat_shape.len());
                let mut invstd = be.alloc(c_last);
                be.batchnorm_forward(&feat_shape, feat, &mut y, &mut invstd);
                be.global_avgpool_forward(&feat_shape, &y, true, &mut tape.pooled);
                tape.head = Some(BnOut { y, invstd });
            }
            // BN of zeros is zero, and so is its ReLU and mean.
            None => be.fill(&mut tape.pooled, B::T::zero()),
        }
        let lg = LinearGeom::new(batch, c_last, self.config.classes);
        be.linear_forward(&lg, &tape.pooled, self.params.value(self.classifier_w), self.params.value(self.classifier_b), &mut tape.logits);
        tape
    }

    fn cell_forward(&self, be: &B, cell: &Cell, genotype: &Genotype, plan: &CellPlan, x: &B::Buf, n: usize) -> (LayerTape<B>, Option<B::Buf>) {
        if !plan.output_live {
            return (LayerTape::Zero, None);
        }
        let shape = ActShape::new(cell.c, n, cell.h, cell.w);
        let mut nodes: [Option<B::Buf>; 4] = [None, None, None, None];
        let mut bn: [Option<BnOut<B>>; NUM_EDGES] = Default::default();
        for target in 1..4 {
            let mut sum: Option<B::Buf> = None;
            for (e, &(src, dst)) in EDGES.iter().enumerate() {
                if dst != target || !plan.active[e] {
                    continue;
                }
                let xin = if src == 0 { x } else { nodes[src].as_ref().expect("active edge from a live node") };
                let op = genotype.0[e];
                match op {
                    Op::SkipConnect => {
                        let mut t = be.alloc(shape.len());
                        be.copy(&mut t, xin);
                        accumulate(be, &mut sum, t);
                    }
                    Op::AvgPool3x3 => {
                        let g = PoolGeom::avg3x3(shape);
                        match &mut sum {
                            Some(s) => be.avgpool3x3_forward(&g, xin, s, true),
                            None => {
                                let mut t = be.alloc(shape.len());
                                be.avgpool3x3_forward(&g, xin, &mut t, false);
                                sum = Some(t);
                            }
                        }
                    }
                    Op::NorConv1x1 | Op::NorConv3x3 => {
                        let conv = cell.conv(e, op).expect("conv op");
                        let out = self.conv_bn(be, conv, &conv.geom(n, cell.h, cell.w), xin, true);
                        match &mut sum {
                            Some(s) => be.add_assign(s, &out.y),
                            None => {
                                let mut t = be.alloc(shape.len());
                                be.copy(&mut t, &out.y);
                                sum = Some(t);
                            }
                        }
                        bn[e] = Some(out);
                    }
                    Op::None => unreachable!("none edges are never active"),
                }
            }
            nodes[target] = sum;
        }
        let [_, n1, n2, n3] = nodes;
        (LayerTape::Cell { inner: [n1, n2], bn }, n3)
    }

    fn reduction_forward(&self, be: &B, r: &Reduction, x: &B::Buf, n: usize) -> (LayerTape<B>, Option<B::Buf>) {
        let ga = r.conv_a.geom(n, r.h, r.w);
        let a = self.conv_bn(be, &r.conv_a, &ga, x, true);
        let gb = r.conv_b.geom(n, ga.oh as usize, ga.ow as usize);
        let b = self.conv_bn(be, &r.conv_b, &gb, &a.y, true);
        let gp = PoolGeom::avg2x2(ActShape::new(r.c_in, n, r.h, r.w));
        let mut pooled = be.alloc(gp.output().len());
        be.avgpool2x2_forward(&gp, x, &mut pooled);
        let gs = r.shortcut.geom(n, r.h / 2, r.w / 2);
        let mut out = be.alloc(gs.output().len());
        be.conv2d_forward(&gs, &pooled, false, self.params.value(r.shortcut.w), None, &mut out);
        be.add_assign(&mut out, &b.y);
        debug_assert_eq!(gs.output(), gb.output());
        debug_assert_eq!(r.c_out, gs.c_out as usize);
        (LayerTape::Reduction { a, b, pooled }, Some(out))
    }

    /// Backward pass from the gradient of the logits: accumulates into the
    /// gradients of the path's parameters (marking them as having had a
    /// gradient) and releases the tape.
    pub fn backward(&mut self, be: &B, tape: Tape<B>, dlogits: &B::Buf) {
        let batch = tape.batch;
        for id in self.path_params(&tape.genotype) {
            self.params.get_mut(id).seen = true;
        }
        let c_last = self.config.stage_channels(2);
        let lg = LinearGeom::new(batch, c_last, self.config.classes);
        let live = tape.head.is_some();
        let mut dpooled = live.then(|| be.alloc(batch * c_last));
        {
            let [pw, pb] = self.params.tensors.get_disjoint_mut([self.classifier_w.0, self.classifier_b.0]).expect("distinct");
            be.linear_backward(&lg, &tape.pooled, &pw.value, dlogits, dpooled.as_mut(), &mut pw.grad, &mut pb.grad);
        }
        let Some(dpooled) = dpooled else {
            tape.release(be);
            return;
        };
        let (hl, wl) = self.config.stage_hw(2);
        let feat_shape = ActShape::new(c_last, batch, hl, wl);
        let head = tape.head.as_ref().expect("live head");
        let mut dy = be.alloc(feat_shape.len());
        be.global_avgpool_backward(&feat_shape, &dpooled, Some(&head.y), &mut dy);
        be.release(dpooled);
        let mut dfeat = be.alloc(feat_shape.len());
        be.batchnorm_backward(&feat_shape, &head.y, &head.invstd, &dy, &mut dfeat);
        be.release(dy);

        let mut grad = dfeat;
        for l in (0..self.layers.len()).rev() {
            let input = if l == 0 { &tape.stem.y } else { tape.outputs[l - 1].as_ref().expect("live layer has a live input") };
            let layer = self.layers[l].clone();
            grad = match (&layer, &tape.layers[l]) {
                (Layer::Cell(cell), LayerTape::Cell { inner, bn }) => {
                    self.cell_backward(be, cell, &tape.plan, &tape.genotype, input, inner, bn, grad, batch)
                }
                (Layer::Reduction(r), LayerTape::Reduction { a, b, pooled }) => {
                    self.reduction_backward(be, r, input, a, b, pooled, grad, batch)
                }
                _ => unreachable!("a live head implies live layers"),
            };
        }
        // The stem: the input gradient is not needed.
        let (h, w) = (self.config.input.h, self.config.input.w);
        let stem = self.stem;
        let g = stem.geom(batch, h, w);
        self.conv_bn_backward(be, &stem, &g, &tape.input, false, &tape.stem, &grad, None);
        be.release(grad);
        tape.release(be);
    }

    #[allow(clippy::too_many_arguments)]
    fn cell_backward(
        &mut self,
        be: &B,
        cell: &Cell,
        plan: &CellPlan,
        genotype: &Genotype,
        x: &B::Buf,
        inner: &[Option<B::Buf>; 2],
        bn: &[Option<BnOut<B>>; NUM_EDGES],
        dout: B::Buf,
        n: usize,
    ) -> B::Buf {
        let shape = ActShape::new(cell.c, n, cell.h, cell.w);
        let mut dnodes: [Option<B::Buf>; 4] = [None, None, None, Some(dout)];
        for target in (1..4).rev() {
            let Some(dn) = dnodes[target].take() else { continue };
            for (e, &(src, dst)) in EDGES.iter().enumerate() {
                if dst != target || !plan.active[e] {
                    continue;
                }
                let xin = if src == 0 { x } else { inner[src - 1].as_ref().expect("live node") };
                let op = genotype.0[e];
                match op {
                    Op::SkipConnect => match &mut dnodes[src] {
                        Some(d) => be.add_assign(d, &dn),
                        None => {
                            let mut t = be.alloc(shape.len());
                            be.copy(&mut t, &dn);
                            dnodes[src] = Some(t);
                        }
                    },
                    Op::AvgPool3x3 => {
                        let g = PoolGeom::avg3x3(shape);
                        let acc = dnodes[src].is_some();
                        let d = dnodes[src].get_or_insert_with(|| be.alloc(shape.len()));
                        be.avgpool3x3_backward(&g, &dn, d, acc);
                    }
                    Op::NorConv1x1 | Op::NorConv3x3 => {
                        let conv = *cell.conv(e, op).expect("conv op");
                        let g = conv.geom(n, cell.h, cell.w);
                        let acc = dnodes[src].is_some();
                        let d = dnodes[src].get_or_insert_with(|| be.alloc(shape.len()));
                        let out = bn[e].as_ref().expect("conv edge kept its BN output");
                        self.conv_bn_backward(be, &conv, &g, xin, true, out, &dn, Some((d, acc)));
                    }
                    Op::None => unreachable!("none edges are never active"),
                }
            }
            be.release(dn);
        }
        dnodes[0].take().expect("a live cell passes gradient to its input")
    }

    #[allow(clippy::too_many_arguments)]
    fn reduction_backward(
        &mut self,
        be: &B,
        r: &Reduction,
        x: &B::Buf,
        a: &BnOut<B>,
        b: &BnOut<B>,
        pooled: &B::Buf,
        dout: B::Buf,
        n: usize,
    ) -> B::Buf {
        let ga = r.conv_a.geom(n, r.h, r.w);
        let gb = r.conv_b.geom(n, ga.oh as usize, ga.ow as usize);
        let gs = r.shortcut.geom(n, r.h / 2, r.w / 2);
        let gp = PoolGeom::avg2x2(ActShape::new(r.c_in, n, r.h, r.w));
        // branch: conv_b then conv_a
        let mut da = be.alloc(gb.input().len());
        self.conv_bn_backward(be, &r.conv_b, &gb, &a.y, true, b, &dout, Some((&mut da, false)));
        let mut dx = be.alloc(ga.input().len());
        self.conv_bn_backward(be, &r.conv_a, &ga, x, true, a, &da, Some((&mut dx, false)));
        be.release(da);
        // shortcut: conv1x1 (no bias, no BN) after the 2x2 pool
        be.conv2d_backward_weight(&gs, pooled, false, &dout, &mut self.params.get_mut(r.shortcut.w).grad, None);
        let mut dp = be.alloc(gs.input().len());
        be.conv2d_backward_data(&gs, &dout, self.params.value(r.shortcut.w), None, &mut dp, false);
        be.avgpool2x2_backward(&gp, &dp, &mut dx, true);
        be.release(dp);
        be.release(dout);
        dx
    }
}
