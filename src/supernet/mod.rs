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
use crate::geometry::{ActShape, ConvGeom, LinearGeom, PoolGeom};
use num_traits::Zero;

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
    #[allow(clippy::too_many_arguments)]
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
#[allow(clippy::large_enum_variant)]
enum Layer {
    Cell(Cell),
    Reduction(Reduction),
}

/// What a conv -> BN pair keeps for its backward pass: the conv's output (the
/// BN input) and the BN statistics (none where the forward pass left batch
/// norm out, [`BatchNorm::ReductionsOnly`]).
struct BnSaved<B: Backend> {
    x: B::Buf,
    stats: Option<B::Buf>,
}

/// Where a forward pass applies batch norm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchNorm {
    /// Everywhere: the supernet as it trains.
    All,
    /// Only inside the reduction blocks: the network of the zero-cost proxies'
    /// reference code with its batch norm removed (`use_bn=False` in
    /// zero-cost-nas's NAS-Bench-201 model drops it from the stem, the cells
    /// and the head; its reduction blocks keep theirs), for `synflow`.
    ReductionsOnly,
}

/// A node of a cell during the forward pass.
enum Node<B: Backend> {
    /// Identically zero (nothing reaches it).
    Zero,
    Owned(B::Buf),
    /// The same tensor as an earlier node (its only input is a skip from it).
    Alias(usize),
}

enum LayerTape<B: Backend> {
    /// Input and output identically zero: nothing was computed.
    Zero,
    Cell {
        /// Nodes 1 and 2 (node 0 is the layer input, node 3 the output).
        inner: [Node<B>; 2],
        /// What the conv edges kept.
        bn: [Option<BnSaved<B>>; NUM_EDGES],
    },
    Reduction {
        a: BnSaved<B>,
        /// BN output of branch a: conv_b's input.
        a_out: B::Buf,
        b: BnSaved<B>,
        pooled: B::Buf,
    },
}

/// What a forward pass keeps for the backward pass.
pub struct Tape<B: Backend> {
    pub batch: usize,
    pub genotype: Genotype,
    plan: CellPlan,
    input: B::Buf,
    stem: BnSaved<B>,
    layers: Vec<LayerTape<B>>,
    /// Output of each layer (`outputs[0]` is the stem's); `None` when identically zero.
    outputs: Vec<Option<B::Buf>>,
    /// The head's BN statistics (none without its BN) and output (the ReLU
    /// mask); its input is the last entry of `outputs`.
    head: Option<(Option<B::Buf>, B::Buf)>,
    pooled: B::Buf,
    /// `[batch, classes]`, row-major.
    pub logits: B::Buf,
}

/// The active in-edges of `target`, parameter-free skips last: a skip can then
/// alias its source (forward) or take over the gradient buffer (backward)
/// instead of copying, when it is the last contribution.
fn in_edges(genotype: &Genotype, plan: &CellPlan, target: usize) -> Vec<usize> {
    let mut edges: Vec<usize> = (0..NUM_EDGES).filter(|&e| EDGES[e].1 == target && plan.active[e]).collect();
    edges.sort_by_key(|&e| genotype.0[e] == Op::SkipConnect);
    edges
}

/// What a backward pass computes besides the input gradients it propagates.
pub struct Pass<'a, B: Backend> {
    /// Treat the batch-norm statistics as constants: the backward pass of
    /// `y = (x - mean) * invstd` becomes `dx = invstd * dy`, and samples stay
    /// independent. Training uses the true gradient (false).
    pub frozen_bn_statistics: bool,
    /// Accumulate the parameter gradients (false: only the per-sample norms).
    pub gradients: bool,
    /// Add each sample's squared gradient norm over the path's parameters into
    /// this `[batch]` buffer: the norm of its part of each parameter's
    /// reduction over the batch, fused with the gradient's when `gradients`.
    pub per_sample_sq_norms: Option<&'a mut B::Buf>,
}

impl<B: Backend> Pass<'_, B> {
    /// The training pass: true gradients, accumulated.
    pub fn gradients() -> Self {
        Self { frozen_bn_statistics: false, gradients: true, per_sample_sq_norms: None }
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

    /// The complexity CaLR (Jeon et al., 2025) schedules by: the weights (not
    /// the biases) of the sub-network `g`'s convolutions and classifier. At
    /// C=16, N=5 it is 72,752 + 26,880 n1 + 241,920 n3 for n1 conv1x1 and n3
    /// conv3x3 edges, as in the released code.
    pub fn complexity(&self, g: &Genotype) -> usize {
        self.path_params(g).iter().map(|&id| self.params.get(id)).filter(|p| p.name.ends_with(".weight")).map(|p| p.len()).sum()
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

    /// A conv followed by batch norm (unless `bn` is false: the conv alone)
    /// whose output is written to (or, with `accumulate`, added into) `y`.
    #[allow(clippy::too_many_arguments)]
    fn conv_bn(
        &self,
        be: &B,
        conv: &Conv,
        g: &ConvGeom,
        x: &B::Buf,
        relu_x: bool,
        y: &mut B::Buf,
        accumulate: bool,
        bn: bool,
    ) -> BnSaved<B> {
        let s = g.output();
        let mut t = be.alloc(s.len());
        be.conv2d_forward(g, x, relu_x, self.params.value(conv.w), conv.b.map(|b| self.params.value(b)), &mut t);
        if !bn {
            if accumulate {
                be.add_assign(y, &t)
            } else {
                be.copy(y, &t)
            }
            return BnSaved { x: t, stats: None };
        }
        let mut stats = be.alloc(2 * s.c as usize);
        be.batchnorm_forward(&s, &t, y, accumulate, &mut stats);
        BnSaved { x: t, stats: Some(stats) }
    }

    /// [`Self::conv_bn`] into a fresh buffer, returned with what it saved.
    fn conv_bn_fresh(&self, be: &B, conv: &Conv, g: &ConvGeom, x: &B::Buf, relu_x: bool, bn: bool) -> (BnSaved<B>, B::Buf) {
        let mut y = be.alloc(g.output().len());
        let saved = self.conv_bn(be, conv, g, x, relu_x, &mut y, false, bn);
        (saved, y)
    }

    /// Backward through BN then the conv: the conv's parameter gradients (or
    /// per-sample norms, see [`Pass`]) and, when `dx` is given, adds (or
    /// writes) the input gradient.
    #[allow(clippy::too_many_arguments)]
    fn conv_bn_backward(
        &mut self,
        be: &B,
        pass: &mut Pass<B>,
        conv: &Conv,
        g: &ConvGeom,
        x: &B::Buf,
        relu_x: bool,
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
        self.conv_weight_backward(be, pass, conv, g, x, relu_x, dt);
        if let Some((dx, acc)) = dx {
            be.conv2d_backward_data(g, dt, self.params.value(conv.w), relu_x.then_some(x), dx, acc);
        }
    }

    /// A conv's parameter gradients, or their per-sample norms.
    #[allow(clippy::too_many_arguments)]
    fn conv_weight_backward(&mut self, be: &B, pass: &mut Pass<B>, conv: &Conv, g: &ConvGeom, x: &B::Buf, relu_x: bool, dt: &B::Buf) {
        let sample_sq = pass.per_sample_sq_norms.as_deref_mut();
        if !pass.gradients {
            if let Some(out) = sample_sq {
                be.conv2d_per_sample_sq_norms(g, x, relu_x, dt, conv.b.is_some(), out);
            }
            return;
        }
        match conv.b {
            Some(b) => {
                let (dw, db) = self.params.grads2(conv.w, b);
                be.conv2d_backward_weight(g, x, relu_x, dt, dw, Some(db), sample_sq);
            }
            None => be.conv2d_backward_weight(g, x, relu_x, dt, &mut self.params.get_mut(conv.w).grad, None, sample_sq),
        }
    }

    /// Forward pass of `batch` CNHW images `x` along `genotype`. With
    /// `keep_for_backward = false` (evaluation) intermediate buffers are released
    /// as soon as they are consumed; the returned tape then only serves `logits`.
    pub fn forward(&self, be: &B, x: B::Buf, batch: usize, genotype: &Genotype, keep_for_backward: bool) -> Tape<B> {
        self.forward_with(be, x, batch, genotype, keep_for_backward, BatchNorm::All)
    }

    /// [`Self::forward`] with batch norm where `bn` says.
    pub fn forward_with(&self, be: &B, x: B::Buf, batch: usize, genotype: &Genotype, keep_for_backward: bool, bn: BatchNorm) -> Tape<B> {
        assert_eq!(be.len(&x), self.input_shape(batch).len(), "forward: input size");
        let (h, w) = (self.config.input.h, self.config.input.w);
        let outside = bn == BatchNorm::All; // batch norm outside the reduction blocks
        let plan = genotype.plan_with(!outside);
        let (stem, stem_out) = self.conv_bn_fresh(be, &self.stem, &self.stem.geom(batch, h, w), &x, false, outside);
        let mut tape = Tape {
            batch,
            genotype: *genotype,
            plan,
            input: x,
            stem,
            layers: Vec::with_capacity(self.layers.len()),
            outputs: vec![Some(stem_out)],
            head: None,
            pooled: be.alloc(batch * self.config.stage_channels(2)),
            logits: be.alloc(batch * self.config.classes),
        };
        for (l, layer) in self.layers.iter().enumerate() {
            let (lt, out) = match (layer, tape.outputs[l].as_ref()) {
                (_, None) => (LayerTape::Zero, None),
                (Layer::Cell(cell), Some(x)) => self.cell_forward(be, cell, genotype, &plan, x, batch, outside),
                (Layer::Reduction(r), Some(x)) => self.reduction_forward(be, r, x, batch),
            };
            tape.layers.push(lt);
            tape.outputs.push(out);
            if !keep_for_backward {
                // Layer l's input and saved tensors are not needed again: back to the pool.
                tape.layers[l] = LayerTape::Zero;
                tape.outputs[l] = None;
            }
        }
        let c_last = self.config.stage_channels(2);
        let (hl, wl) = self.config.stage_hw(2);
        let feat_shape = ActShape::new(c_last, batch, hl, wl);
        match tape.outputs.last().expect("at least one layer") {
            Some(feat) => {
                let mut y = be.alloc(feat_shape.len());
                let stats = outside.then(|| {
                    let mut stats = be.alloc(2 * c_last);
                    be.batchnorm_forward(&feat_shape, feat, &mut y, false, &mut stats);
                    stats
                });
                if stats.is_none() {
                    be.copy(&mut y, feat);
                }
                be.global_avgpool_forward(&feat_shape, &y, true, &mut tape.pooled);
                tape.head = Some((stats, y));
            }
            // BN of zeros is zero, and so is its ReLU and mean.
            None => be.fill(&mut tape.pooled, B::T::zero()),
        }
        let lg = LinearGeom::new(batch, c_last, self.config.classes);
        be.linear_forward(&lg, &tape.pooled, self.params.value(self.classifier_w), self.params.value(self.classifier_b), &mut tape.logits);
        tape
    }

    #[allow(clippy::too_many_arguments)]
    fn cell_forward(
        &self,
        be: &B,
        cell: &Cell,
        genotype: &Genotype,
        plan: &CellPlan,
        x: &B::Buf,
        n: usize,
        bn_on: bool,
    ) -> (LayerTape<B>, Option<B::Buf>) {
        if !plan.output_live {
            return (LayerTape::Zero, None);
        }
        let shape = ActShape::new(cell.c, n, cell.h, cell.w);
        let mut nodes: [Node<B>; 4] = [Node::Alias(0), Node::Zero, Node::Zero, Node::Zero];
        let mut bn: [Option<BnSaved<B>>; NUM_EDGES] = Default::default();
        for target in 1..4 {
            let edges = in_edges(genotype, plan, target);
            let mut sum: Option<B::Buf> = None;
            for (pos, &e) in edges.iter().enumerate() {
                let src = EDGES[e].0;
                if matches!(nodes[src], Node::Zero) {
                    // an active edge from an identically zero node: a conv that emits its bias (no batch norm)
                    nodes[src] = Node::Owned(be.alloc_zeroed(shape.len()));
                }
                let xin = resolve(&nodes, src, x);
                let acc = sum.is_some();
                let op = genotype.0[e];
                match op {
                    Op::SkipConnect if !acc && pos + 1 == edges.len() => {
                        // The node is its source: no copy.
                        nodes[target] = match nodes[src] {
                            Node::Owned(_) => Node::Alias(src),
                            Node::Alias(a) => Node::Alias(a),
                            Node::Zero => unreachable!("active edges start at live nodes"),
                        };
                    }
                    Op::SkipConnect => match &mut sum {
                        Some(s) => be.add_assign(s, xin),
                        None => {
                            let mut t = be.alloc(shape.len());
                            be.copy(&mut t, xin);
                            sum = Some(t);
                        }
                    },
                    Op::AvgPool3x3 => {
                        let g = PoolGeom::avg3x3(shape);
                        let s = sum.get_or_insert_with(|| be.alloc(shape.len()));
                        be.avgpool3x3_forward(&g, xin, s, acc);
                    }
                    Op::NorConv1x1 | Op::NorConv3x3 => {
                        let conv = cell.conv(e, op).expect("conv op");
                        let g = conv.geom(n, cell.h, cell.w);
                        let s = sum.get_or_insert_with(|| be.alloc(shape.len()));
                        bn[e] = Some(self.conv_bn(be, conv, &g, xin, true, s, acc, bn_on));
                    }
                    Op::None => unreachable!("none edges are never active"),
                }
            }
            if let Some(s) = sum {
                nodes[target] = Node::Owned(s);
            }
        }
        let [_, n1, n2, n3] = nodes;
        let out = match n3 {
            Node::Owned(b) => b,
            // The output is an earlier node: the layer output must be its own buffer.
            Node::Alias(a) => {
                let mut t = be.alloc(shape.len());
                let inner = [&n1, &n2];
                be.copy(&mut t, if a == 0 { x } else { node_buf(inner[a - 1]).expect("owned") });
                t
            }
            Node::Zero => unreachable!("live output"),
        };
        (LayerTape::Cell { inner: [n1, n2], bn }, Some(out))
    }

    fn reduction_forward(&self, be: &B, r: &Reduction, x: &B::Buf, n: usize) -> (LayerTape<B>, Option<B::Buf>) {
        let ga = r.conv_a.geom(n, r.h, r.w);
        let (a, a_out) = self.conv_bn_fresh(be, &r.conv_a, &ga, x, true, true);
        let gp = PoolGeom::avg2x2(ActShape::new(r.c_in, n, r.h, r.w));
        let mut pooled = be.alloc(gp.output().len());
        be.avgpool2x2_forward(&gp, x, &mut pooled);
        let gs = r.shortcut.geom(n, r.h / 2, r.w / 2);
        let mut out = be.alloc(gs.output().len());
        be.conv2d_forward(&gs, &pooled, false, self.params.value(r.shortcut.w), None, &mut out);
        let gb = r.conv_b.geom(n, ga.oh as usize, ga.ow as usize);
        debug_assert_eq!(gs.output(), gb.output());
        debug_assert_eq!(r.c_out, gs.c_out as usize);
        let b = self.conv_bn(be, &r.conv_b, &gb, &a_out, true, &mut out, true, true);
        (LayerTape::Reduction { a, a_out, b, pooled }, Some(out))
    }

    /// Backward pass from the gradient of the logits: accumulates into the
    /// gradients of the path's parameters (marking them as having had a
    /// gradient); the tape's buffers go back to the pool.
    pub fn backward(&mut self, be: &B, tape: Tape<B>, dlogits: &B::Buf) {
        self.backward_with(be, &tape, dlogits, &mut Pass::gradients());
    }

    /// Adds each sample's squared norm of the classifier's weight and bias
    /// gradient for the per-sample logit gradients `dz` into `out`.
    pub fn classifier_per_sample_sq_norms(&self, be: &B, tape: &Tape<B>, dz: &B::Buf, out: &mut B::Buf) {
        let lg = LinearGeom::new(tape.batch, self.config.stage_channels(2), self.config.classes);
        be.linear_per_sample_sq_norms(&lg, &tape.pooled, dz, out);
    }

    /// The backward pass of [`Pass`]'s kind; the tape stays usable.
    pub fn backward_with(&mut self, be: &B, tape: &Tape<B>, dlogits: &B::Buf, pass: &mut Pass<B>) {
        let batch = tape.batch;
        if pass.gradients {
            for id in self.path_params(&tape.genotype) {
                let p = self.params.get_mut(id);
                p.seen = true;
                p.dirty = true;
            }
        }
        let c_last = self.config.stage_channels(2);
        let lg = LinearGeom::new(batch, c_last, self.config.classes);
        let live = tape.head.is_some();
        let mut dpooled = live.then(|| be.alloc(batch * c_last));
        if let Some(out) = pass.per_sample_sq_norms.as_deref_mut() {
            be.linear_per_sample_sq_norms(&lg, &tape.pooled, dlogits, out);
        }
        if pass.gradients {
            let [pw, pb] = self.params.tensors.get_disjoint_mut([self.classifier_w.0, self.classifier_b.0]).expect("distinct");
            be.linear_backward(&lg, &tape.pooled, &pw.value, dlogits, dpooled.as_mut(), &mut pw.grad, &mut pb.grad);
        } else {
            // the input gradient only; the weight gradients go to scratch
            let (mut dw, mut db) = (be.alloc_zeroed(c_last * self.config.classes), be.alloc_zeroed(self.config.classes));
            be.linear_backward(&lg, &tape.pooled, self.params.value(self.classifier_w), dlogits, dpooled.as_mut(), &mut dw, &mut db);
        }
        let Some(dpooled) = dpooled else { return };
        let (hl, wl) = self.config.stage_hw(2);
        let feat_shape = ActShape::new(c_last, batch, hl, wl);
        let (head_stats, head_y) = tape.head.as_ref().expect("live head");
        let feat = tape.outputs.last().and_then(|o| o.as_ref()).expect("live head input");
        let mut dy = be.alloc(feat_shape.len());
        be.global_avgpool_backward(&feat_shape, &dpooled, Some(head_y), &mut dy);
        drop(dpooled);
        let mut grad = match head_stats {
            None => dy,
            Some(stats) => {
                let mut grad = be.alloc(feat_shape.len());
                if pass.frozen_bn_statistics {
                    be.batchnorm_backward_frozen(&feat_shape, stats, &dy, &mut grad);
                } else {
                    be.batchnorm_backward(&feat_shape, feat, stats, &dy, &mut grad);
                }
                grad
            }
        };

        let layers = std::mem::take(&mut self.layers);
        for (l, layer) in layers.iter().enumerate().rev() {
            let input = tape.outputs[l].as_ref().expect("a live layer has a live input");
            grad = match (layer, &tape.layers[l]) {
                (Layer::Cell(cell), LayerTape::Cell { inner, bn }) => {
                    self.cell_backward(be, pass, cell, &tape.plan, &tape.genotype, input, inner, bn, grad, batch)
                }
                (Layer::Reduction(r), LayerTape::Reduction { a, a_out, b, pooled }) => {
                    self.reduction_backward(be, pass, r, input, a, a_out, b, pooled, grad, batch)
                }
                _ => unreachable!("a live head implies live layers"),
            };
        }
        self.layers = layers;
        // The stem: the input gradient is not needed.
        let (h, w) = (self.config.input.h, self.config.input.w);
        let stem = self.stem;
        let g = stem.geom(batch, h, w);
        self.conv_bn_backward(be, pass, &stem, &g, &tape.input, false, &tape.stem, &grad, None);
    }

    #[allow(clippy::too_many_arguments)]
    fn cell_backward(
        &mut self,
        be: &B,
        pass: &mut Pass<B>,
        cell: &Cell,
        plan: &CellPlan,
        genotype: &Genotype,
        x: &B::Buf,
        inner: &[Node<B>; 2],
        bn: &[Option<BnSaved<B>>; NUM_EDGES],
        dout: B::Buf,
        n: usize,
    ) -> B::Buf {
        let shape = ActShape::new(cell.c, n, cell.h, cell.w);
        let nodes = [&Node::Alias(0), &inner[0], &inner[1]];
        let mut dnodes: [Option<B::Buf>; 4] = [None, None, None, Some(dout)];
        for target in (1..4).rev() {
            let Some(dn) = dnodes[target].take() else {
                continue;
            };
            let mut dn = Some(dn);
            let edges = in_edges(genotype, plan, target);
            for (pos, &e) in edges.iter().enumerate() {
                let src = EDGES[e].0;
                let xin = resolve_ref(&nodes, src, x);
                let g_in = dn.as_ref().expect("gradient still held");
                let op = genotype.0[e];
                match op {
                    Op::SkipConnect => match &mut dnodes[src] {
                        Some(d) => be.add_assign(d, g_in),
                        None if pos + 1 == edges.len() => dnodes[src] = dn.take(),
                        None => {
                            let mut t = be.alloc(shape.len());
                            be.copy(&mut t, g_in);
                            dnodes[src] = Some(t);
                        }
                    },
                    Op::AvgPool3x3 => {
                        let g = PoolGeom::avg3x3(shape);
                        let acc = dnodes[src].is_some();
                        let d = dnodes[src].get_or_insert_with(|| be.alloc(shape.len()));
                        be.avgpool3x3_backward(&g, g_in, d, acc);
                    }
                    Op::NorConv1x1 | Op::NorConv3x3 => {
                        let conv = *cell.conv(e, op).expect("conv op");
                        let g = conv.geom(n, cell.h, cell.w);
                        let acc = dnodes[src].is_some();
                        let d = dnodes[src].get_or_insert_with(|| be.alloc(shape.len()));
                        let saved = bn[e].as_ref().expect("conv edge kept its BN input");
                        self.conv_bn_backward(be, pass, &conv, &g, xin, true, saved, g_in, Some((d, acc)));
                    }
                    Op::None => unreachable!("none edges are never active"),
                }
            }
        }
        // no gradient reaches the input when only bias-emitting convs on zero nodes are live (no batch norm)
        dnodes[0].take().unwrap_or_else(|| be.alloc_zeroed(shape.len()))
    }

    #[allow(clippy::too_many_arguments)]
    fn reduction_backward(
        &mut self,
        be: &B,
        pass: &mut Pass<B>,
        r: &Reduction,
        x: &B::Buf,
        a: &BnSaved<B>,
        a_out: &B::Buf,
        b: &BnSaved<B>,
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
        self.conv_bn_backward(be, pass, &r.conv_b, &gb, a_out, true, b, &dout, Some((&mut da, false)));
        let mut dx = be.alloc(ga.input().len());
        self.conv_bn_backward(be, pass, &r.conv_a, &ga, x, true, a, &da, Some((&mut dx, false)));
        drop(da); // freed before the shortcut's buffers are taken
                  // shortcut: conv1x1 (no bias, no BN) after the 2x2 pool
        let shortcut = r.shortcut;
        self.conv_weight_backward(be, pass, &shortcut, &gs, pooled, false, &dout);
        let mut dp = be.alloc(gs.input().len());
        be.conv2d_backward_data(&gs, &dout, self.params.value(r.shortcut.w), None, &mut dp, false);
        be.avgpool2x2_backward(&gp, &dp, &mut dx, true);
        dx
    }
}

fn node_buf<B: Backend>(n: &Node<B>) -> Option<&B::Buf> {
    match n {
        Node::Owned(b) => Some(b),
        _ => None,
    }
}

/// The tensor of node `i` during the forward pass (node 0 is the cell input).
fn resolve<'a, B: Backend>(nodes: &'a [Node<B>; 4], i: usize, x: &'a B::Buf) -> &'a B::Buf {
    match &nodes[i] {
        _ if i == 0 => x,
        Node::Owned(b) => b,
        Node::Alias(a) => resolve(nodes, *a, x),
        Node::Zero => unreachable!("active edges start at live nodes"),
    }
}

/// As [`resolve`], over nodes 0..2 kept in the tape.
fn resolve_ref<'a, B: Backend>(nodes: &[&'a Node<B>; 3], i: usize, x: &'a B::Buf) -> &'a B::Buf {
    match nodes[i] {
        _ if i == 0 => x,
        Node::Owned(b) => b,
        Node::Alias(a) => resolve_ref(nodes, *a, x),
        Node::Zero => unreachable!("active edges start at live nodes"),
    }
}
