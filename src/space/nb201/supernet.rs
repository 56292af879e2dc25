//! The NAS-Bench-201 supernet's body, built as the official PA&DA code builds
//! it, with forward and backward along one sampled architecture:
//!
//! ```text
//! stem:   conv3x3 (no bias) -> BN
//! stage 0: N search cells, C channels
//! res0:   ResNet basic block, stride 2, C -> 2C
//! stage 1: N search cells, 2C channels
//! res1:   ResNet basic block, stride 2, 2C -> 4C
//! stage 2: N search cells, 4C channels
//! head:   BN -> ReLU -> global average pool (then the shared classifier)
//! ```
//! A search cell has nodes 0..3 and edges `EDGES`; node i is the sum over j < i
//! of `op_{j->i}(node j)` and the cell outputs node 3. Every edge of every cell
//! owns a `nor_conv_1x1` and a `nor_conv_3x3` (ReLU -> conv with bias -> BN);
//! the other ops have no parameters. A reduction block is
//! `out = conv1x1(avgpool2x2(x)) + BN(conv3x3(relu(BN(conv3x3_s2(relu(x))))))`.
//! Batch norm has no affine parameters (`affine=False`, as the official
//! supernet) and uses batch statistics in training and evaluation.
//!
//! Only the edges that carry signal are computed ([`CellPlan`]); a tensor that
//! is identically zero is represented by `None` and never built.

use super::arch::{CellPlan, Genotype, Op, EDGES, NUM_EDGES};
use crate::backend::Backend;
use crate::geometry::{ActShape, PoolGeom};
use crate::space::Arch;
use crate::supernet::layers::{conv_backward, conv_bn, conv_bn_backward, conv_bn_fresh, BnSaved, Conv, ConvIn};
use crate::supernet::{BatchNorm, BodyTape, ParamId, ParamStore, Pass, SpaceNet, SupernetConfig};

/// Channels of stage `s` (0, 1, 2) of a supernet of `config`.
pub fn stage_channels(config: &SupernetConfig, s: usize) -> usize {
    config.channels << s
}

/// Spatial size of stage `s`.
pub fn stage_hw(config: &SupernetConfig, s: usize) -> (usize, usize) {
    (config.input.h >> s, config.input.w >> s)
}

/// Checks a configuration of this space, naming the offending setting.
pub fn validate(config: &SupernetConfig) -> anyhow::Result<()> {
    anyhow::ensure!(config.channels > 0, "--channels must be at least 1 (got 0)");
    anyhow::ensure!(config.cells > 0, "--cells must be at least 1 (got 0)");
    let (h, w) = (config.input.h, config.input.w);
    // Each reduction block halves the size twice over: its strided conv gives
    // ceil(h/2) and its avg-pool shortcut floor(h/2), which agree only for even h.
    anyhow::ensure!(
        h >= 4 && w >= 4 && h % 4 == 0 && w % 4 == 0,
        "input size {h}x{w} is not supported: height and width must be multiples of 4 (e.g. 28x28, 32x32), so that both reduction blocks see even sizes"
    );
    Ok(())
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

/// What a forward pass keeps for the backward pass (the body's tape).
struct Tape<B: Backend> {
    genotype: Genotype,
    plan: CellPlan,
    input: B::Buf,
    stem: BnSaved<B>,
    layers: Vec<LayerTape<B>>,
    /// Output of each layer (`outputs[0]` is the stem's); `None` when identically zero.
    outputs: Vec<Option<B::Buf>>,
    /// The head's BN statistics (none without its BN) and output (the ReLU
    /// mask); its input is the last entry of `outputs`.
    head: (Option<B::Buf>, B::Buf),
}

/// The active in-edges of `target`, parameter-free skips last: a skip can then
/// alias its source (forward) or take over the gradient buffer (backward)
/// instead of copying, when it is the last contribution.
fn in_edges(genotype: &Genotype, plan: &CellPlan, target: usize) -> Vec<usize> {
    let mut edges: Vec<usize> = (0..NUM_EDGES).filter(|&e| EDGES[e].1 == target && plan.active[e]).collect();
    edges.sort_by_key(|&e| genotype.0[e] == Op::SkipConnect);
    edges
}

/// The body of a NAS-Bench-201 supernet.
pub struct Nb201Net {
    config: SupernetConfig,
    stem: Conv,
    layers: Vec<Layer>,
}

/// Builds the body of a supernet of `config` ([`crate::space`]).
pub fn build<B: Backend>(be: &B, ps: &mut ParamStore<B>, config: &SupernetConfig) -> anyhow::Result<Box<dyn SpaceNet<B>>> {
    validate(config)?;
    let c0 = config.channels;
    let stem = Conv::new(ps, be, "stem", config.input.c, c0, 3, 1, false);
    let mut layers = Vec::new();
    let mut cell_index = 0;
    for stage in 0..3 {
        let c = stage_channels(config, stage);
        let (h, w) = stage_hw(config, stage);
        if stage > 0 {
            let (c_in, (hi, wi)) = (stage_channels(config, stage - 1), stage_hw(config, stage - 1));
            let name = format!("res{}", stage - 1);
            layers.push(Layer::Reduction(Reduction {
                c_in,
                c_out: c,
                h: hi,
                w: wi,
                conv_a: Conv::new(ps, be, &format!("{name}.conv_a"), c_in, c, 3, 2, true),
                conv_b: Conv::new(ps, be, &format!("{name}.conv_b"), c, c, 3, 1, true),
                shortcut: Conv::new(ps, be, &format!("{name}.shortcut"), c_in, c, 1, 1, false),
            }));
        }
        for _ in 0..config.cells {
            let convs = std::array::from_fn(|e| {
                [2, 3].map(|o| {
                    let k = if o == 2 { 1 } else { 3 };
                    Conv::new(ps, be, &format!("cell{cell_index}.edge{e}.op{o}"), c, c, k, 1, true)
                })
            });
            layers.push(Layer::Cell(Cell { c, h, w, convs }));
            cell_index += 1;
        }
    }
    Ok(Box::new(Nb201Net { config: *config, stem, layers }))
}

impl<B: Backend> SpaceNet<B> for Nb201Net {
    fn features(&self) -> usize {
        stage_channels(&self.config, 2)
    }

    /// The stem, the reduction blocks and every cell's convs for the ops in
    /// the genotype (whether or not the edge carries signal: PyTorch gives all
    /// of them a gradient).
    fn path_params(&self, arch: &Arch) -> Vec<ParamId> {
        let g = Genotype::of(arch);
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
        ids
    }

    /// For each cell (in order), the weight and bias of the conv `op` on edge
    /// `slot`; nothing for the parameter-free ops.
    fn choice_params(&self, slot: usize, choice: usize) -> Vec<ParamId> {
        self.layers
            .iter()
            .filter_map(|l| match l {
                Layer::Cell(c) => c.conv(slot, Op::ALL[choice]),
                Layer::Reduction(_) => None,
            })
            .flat_map(|conv| conv.params())
            .collect()
    }

    /// Every conv (as NAS-Bench-201 counts FLOPs, all of the genotype's
    /// edges, also those that carry no signal).
    fn forward_macs(&self, arch: &Arch) -> u64 {
        let g = Genotype::of(arch);
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
        macs
    }

    /// The stem's, every conv's of the genotype's edges (each followed by
    /// one), the reduction blocks' two and the head's.
    fn bn_channels(&self, arch: &Arch) -> usize {
        let g = Genotype::of(arch);
        let convs_on_edges = g.0.iter().filter(|op| op.conv_kernel().is_some()).count();
        let mut channels = self.config.channels + stage_channels(&self.config, 2);
        for layer in &self.layers {
            channels += match layer {
                Layer::Cell(cell) => convs_on_edges * cell.c,
                Layer::Reduction(r) => 2 * r.c_out,
            };
        }
        channels
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
        let genotype = Genotype::of(arch);
        let (h, w) = (self.config.input.h, self.config.input.w);
        let outside = bn == BatchNorm::All; // batch norm outside the reduction blocks
        let plan = genotype.plan_with(!outside);
        let (stem, stem_out) = conv_bn_fresh(be, ps, &self.stem, &self.stem.geom(batch, h, w), &x, ConvIn::Plain, false, outside);
        let mut layers = Vec::with_capacity(self.layers.len());
        let mut outputs = vec![Some(stem_out)];
        for (l, layer) in self.layers.iter().enumerate() {
            let (lt, out) = match (layer, outputs[l].as_ref()) {
                (_, None) => (LayerTape::Zero, None),
                (Layer::Cell(cell), Some(x)) => self.cell_forward(be, ps, cell, &genotype, &plan, x, batch, outside),
                (Layer::Reduction(r), Some(x)) => self.reduction_forward(be, ps, r, x, batch),
            };
            layers.push(lt);
            outputs.push(out);
            if !keep {
                // Layer l's input and saved tensors are not needed again: back to the pool.
                layers[l] = LayerTape::Zero;
                outputs[l] = None;
            }
        }
        let c_last = stage_channels(&self.config, 2);
        let (hl, wl) = stage_hw(&self.config, 2);
        let feat_shape = ActShape::new(c_last, batch, hl, wl);
        // BN of zeros is zero, and so is its ReLU and mean: no head, zero features
        let feat = outputs.last().expect("at least one layer").as_ref()?;
        let mut y = be.alloc(feat_shape.len());
        let stats = outside.then(|| {
            let mut stats = be.alloc(2 * c_last);
            be.batchnorm_forward(&feat_shape, feat, &mut y, false, false, &mut stats);
            stats
        });
        if stats.is_none() {
            be.copy(&mut y, feat);
        }
        be.global_avgpool_forward(&feat_shape, &y, true, pooled);
        Some(Box::new(Tape { genotype, plan, input: x, stem, layers, outputs, head: (stats, y) }))
    }

    fn backward(&self, be: &B, ps: &mut ParamStore<B>, tape: &BodyTape, _arch: &Arch, batch: usize, dpooled: B::Buf, pass: &mut Pass<B>) {
        let tape: &Tape<B> = tape.downcast_ref().expect("a NAS-Bench-201 tape");
        let c_last = stage_channels(&self.config, 2);
        let (hl, wl) = stage_hw(&self.config, 2);
        let feat_shape = ActShape::new(c_last, batch, hl, wl);
        let (head_stats, head_y) = &tape.head;
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
        for (l, layer) in self.layers.iter().enumerate().rev() {
            let input = tape.outputs[l].as_ref().expect("a live layer has a live input");
            grad = match (layer, &tape.layers[l]) {
                (Layer::Cell(cell), LayerTape::Cell { inner, bn }) => {
                    self.cell_backward(be, ps, pass, cell, &tape.plan, &tape.genotype, input, inner, bn, grad, batch)
                }
                (Layer::Reduction(r), LayerTape::Reduction { a, a_out, b, pooled }) => {
                    self.reduction_backward(be, ps, pass, r, input, a, a_out, b, pooled, grad, batch)
                }
                _ => unreachable!("a live head implies live layers"),
            };
        }
        // The stem: the input gradient is not needed.
        let (h, w) = (self.config.input.h, self.config.input.w);
        let g = self.stem.geom(batch, h, w);
        conv_bn_backward(be, ps, pass, &self.stem, &g, &tape.input, ConvIn::Plain, &tape.stem, &grad, None);
    }
}

impl Nb201Net {
    #[allow(clippy::too_many_arguments)]
    fn cell_forward<B: Backend>(
        &self,
        be: &B,
        ps: &ParamStore<B>,
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
                        bn[e] = Some(conv_bn(be, ps, conv, &g, xin, ConvIn::Relu, s, acc, false, bn_on));
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

    fn reduction_forward<B: Backend>(
        &self,
        be: &B,
        ps: &ParamStore<B>,
        r: &Reduction,
        x: &B::Buf,
        n: usize,
    ) -> (LayerTape<B>, Option<B::Buf>) {
        let ga = r.conv_a.geom(n, r.h, r.w);
        let (a, a_out) = conv_bn_fresh(be, ps, &r.conv_a, &ga, x, ConvIn::Relu, false, true);
        let gp = PoolGeom::avg2x2(ActShape::new(r.c_in, n, r.h, r.w));
        let mut pooled = be.alloc(gp.output().len());
        be.avgpool2x2_forward(&gp, x, &mut pooled);
        let gs = r.shortcut.geom(n, r.h / 2, r.w / 2);
        let mut out = be.alloc(gs.output().len());
        be.conv2d_forward(&gs, &pooled, false, ps.value(r.shortcut.w), None, &mut out);
        let gb = r.conv_b.geom(n, ga.oh as usize, ga.ow as usize);
        debug_assert_eq!(gs.output(), gb.output());
        debug_assert_eq!(r.c_out, gs.c_out as usize);
        let b = conv_bn(be, ps, &r.conv_b, &gb, &a_out, ConvIn::Relu, &mut out, true, false, true);
        (LayerTape::Reduction { a, a_out, b, pooled }, Some(out))
    }

    #[allow(clippy::too_many_arguments)]
    fn cell_backward<B: Backend>(
        &self,
        be: &B,
        ps: &mut ParamStore<B>,
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
                        conv_bn_backward(be, ps, pass, &conv, &g, xin, ConvIn::Relu, saved, g_in, Some((d, acc)));
                    }
                    Op::None => unreachable!("none edges are never active"),
                }
            }
        }
        // no gradient reaches the input when only bias-emitting convs on zero nodes are live (no batch norm)
        dnodes[0].take().unwrap_or_else(|| be.alloc_zeroed(shape.len()))
    }

    #[allow(clippy::too_many_arguments)]
    fn reduction_backward<B: Backend>(
        &self,
        be: &B,
        ps: &mut ParamStore<B>,
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
        conv_bn_backward(be, ps, pass, &r.conv_b, &gb, a_out, ConvIn::Relu, b, &dout, Some((&mut da, false)));
        let mut dx = be.alloc(ga.input().len());
        conv_bn_backward(be, ps, pass, &r.conv_a, &ga, x, ConvIn::Relu, a, &da, Some((&mut dx, false)));
        drop(da); // freed before the shortcut's buffers are taken
                  // shortcut: conv1x1 (no bias, no BN) after the 2x2 pool
        let mut dp = be.alloc(gs.input().len());
        conv_backward(be, ps, pass, &r.shortcut, &gs, pooled, ConvIn::Plain, &dout, Some((&mut dp, false)));
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
