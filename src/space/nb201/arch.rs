//! NAS-Bench-201 architectures: the 5 ops, the 6-edge genotype, its string form,
//! an index over all 5^6 = 15,625 cells, and which edges actually carry signal.
//! [`Genotype`] is the space's typed view of an [`Arch`] (one op per edge).

use std::fmt;
use std::str::FromStr;

use crate::space::{Arch, ArchError, Space};

/// The candidate ops, numbered as NAS-Bench-201 and PA&DA number them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Op {
    None = 0,
    SkipConnect = 1,
    NorConv1x1 = 2,
    NorConv3x3 = 3,
    AvgPool3x3 = 4,
}

impl Op {
    pub const ALL: [Op; 5] = [Op::None, Op::SkipConnect, Op::NorConv1x1, Op::NorConv3x3, Op::AvgPool3x3];
    pub const COUNT: usize = 5;

    pub fn name(self) -> &'static str {
        match self {
            Op::None => "none",
            Op::SkipConnect => "skip_connect",
            Op::NorConv1x1 => "nor_conv_1x1",
            Op::NorConv3x3 => "nor_conv_3x3",
            Op::AvgPool3x3 => "avg_pool_3x3",
        }
    }
    pub fn from_index(i: usize) -> Option<Op> {
        Op::ALL.get(i).copied()
    }
    pub fn index(self) -> usize {
        self as usize
    }
    /// Kernel size of a conv op (`None` for the parameter-free ops).
    pub fn conv_kernel(self) -> Option<usize> {
        match self {
            Op::NorConv1x1 => Some(1),
            Op::NorConv3x3 => Some(3),
            _ => None,
        }
    }
}

/// The 6 edges of a cell, in NAS-Bench-201's order: (source node, target node).
pub const EDGES: [(usize, usize); 6] = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)];
pub const NUM_EDGES: usize = 6;
/// Number of distinct cells: 5^6.
pub const NUM_ARCHS: usize = 15_625;

/// One architecture: the op on each of the 6 edges (the same in every cell).
/// PA&DA's 6-int "gene" is exactly this list of op indices; as an [`Arch`],
/// edge e's choice is its op's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Genotype(pub [Op; NUM_EDGES]);

impl From<Genotype> for Arch {
    fn from(g: Genotype) -> Arch {
        Arch::new(Space::NB201, &g.0.map(|op| op as u8)).expect("a valid genotype")
    }
}

impl Genotype {
    /// The genotype of an NAS-Bench-201 architecture.
    pub fn of(a: &Arch) -> Genotype {
        assert_eq!(a.space(), Space::NB201, "{a:?} is not a NAS-Bench-201 architecture");
        Genotype(std::array::from_fn(|e| Op::ALL[a.choice(e)]))
    }
    pub fn from_indices(ops: [usize; NUM_EDGES]) -> Result<Self, ArchError> {
        let mut g = [Op::None; NUM_EDGES];
        for (o, &i) in g.iter_mut().zip(&ops) {
            *o = Op::from_index(i).ok_or_else(|| ArchError::Malformed(format!("op index {i} is not in 0..5 ({ops:?})")))?;
        }
        Ok(Genotype(g))
    }
    pub fn indices(&self) -> [usize; NUM_EDGES] {
        self.0.map(Op::index)
    }

    /// pada's own index: the op indices read as a base-5 number, edge 0 most
    /// significant ([`Arch::index`]). Not NAS-Bench-201's benchmark index
    /// (that order is the benchmark's own; map through the architecture string).
    pub fn index(&self) -> usize {
        self.0.iter().fold(0, |acc, op| acc * Op::COUNT + op.index())
    }
    pub fn from_index(i: usize) -> Result<Self, ArchError> {
        Ok(Genotype::of(&Space::NB201.arch(i)?))
    }
    /// All 15,625 architectures in index order.
    pub fn all() -> impl Iterator<Item = Genotype> {
        (0..NUM_ARCHS).map(|i| Genotype::from_index(i).expect("in range"))
    }

    /// How many edges use `op`.
    pub fn count(&self, op: Op) -> usize {
        self.0.iter().filter(|&&o| o == op).count()
    }

    /// NATS-Bench's isomorphism-canonical string (`UniqueString` in its tables;
    /// `to_unique_str(consider_zero=True)`): skips are transparent, zeros are
    /// `#`, and each node's inputs are sorted, so two cells compute the same
    /// function exactly when their strings are equal. NAS-Bench-201 has 6,466.
    pub fn unique_string(&self) -> String {
        let mut nodes = vec!["0".to_string()];
        for node in 1..4 {
            let mut terms: Vec<String> = EDGES
                .iter()
                .enumerate()
                .filter(|(_, &(_, i))| i == node)
                .map(|(e, &(j, _))| match self.0[e] {
                    _ if nodes[j] == "#" => "#".to_string(),
                    Op::None => "#".to_string(),
                    Op::SkipConnect => nodes[j].clone(),
                    op => format!("({})@{}", nodes[j], op.name()),
                })
                .collect();
            terms.sort();
            nodes.push(terms.join("+"));
        }
        nodes.pop().expect("node 3")
    }

    /// Which edges carry signal from the cell's input to its output.
    pub fn plan(&self) -> CellPlan {
        self.plan_with(false)
    }

    /// [`Self::plan`]; with `convs_emit_bias`, for a network without batch
    /// norm after its convs (synflow's), where a conv reading an identically
    /// zero node still outputs its bias: such edges are active too (their
    /// source is then computed as explicit zeros).
    pub fn plan_with(&self, convs_emit_bias: bool) -> CellPlan {
        let emits = |e: usize| convs_emit_bias && matches!(self.0[e], Op::NorConv1x1 | Op::NorConv3x3);
        let mut reach = [false; 4]; // node is not identically zero
        reach[0] = true;
        for (e, &(j, i)) in EDGES.iter().enumerate() {
            if self.0[e] != Op::None && (reach[j] || emits(e)) {
                reach[i] = true;
            }
        }
        let mut useful = [false; 4]; // node feeds the output
        useful[3] = true;
        for (e, &(j, i)) in EDGES.iter().enumerate().rev() {
            if self.0[e] != Op::None && useful[i] {
                useful[j] = true;
            }
        }
        let mut active = [false; NUM_EDGES];
        for (e, &(j, i)) in EDGES.iter().enumerate() {
            active[e] = self.0[e] != Op::None && (reach[j] || emits(e)) && useful[i];
        }
        CellPlan { active, output_live: reach[3] }
    }
}

/// The edges a forward pass must compute. An edge is inactive when its op is
/// `none`, when its source is identically zero (every input to it is `none`),
/// or when its result never reaches node 3. Skipping those is exact: PyTorch
/// computes them, but they contribute exact zeros to the output, and the
/// parameters on them get exactly zero gradients, which is what pada gives
/// them too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellPlan {
    pub active: [bool; NUM_EDGES],
    /// False when no path of non-`none` edges joins input and output: the cell
    /// (and so the whole network up to the classifier bias) outputs zeros.
    pub output_live: bool,
}

impl fmt::Display for Genotype {
    /// The NAS-Bench-201 string, e.g. `|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|...|`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for node in 1..4 {
            if node > 1 {
                write!(f, "+")?;
            }
            write!(f, "|")?;
            for (e, &(j, i)) in EDGES.iter().enumerate() {
                if i == node {
                    write!(f, "{}~{}|", self.0[e].name(), j)?;
                }
            }
        }
        Ok(())
    }
}

/// The genotype of a NAS-Bench-201 string, or what is wrong with it.
pub(crate) fn parse(s: &str) -> Result<Genotype, String> {
    let t = s.trim();
    let groups: Vec<&str> = t.split('+').collect();
    if groups.len() != 3 {
        return Err(format!("expected 3 node groups separated by '+', found {}", groups.len()));
    }
    let mut ops = [Op::None; NUM_EDGES];
    for (gi, group) in groups.iter().enumerate() {
        let node = gi + 1;
        let inner = group
            .strip_prefix('|')
            .and_then(|g| g.strip_suffix('|'))
            .ok_or_else(|| format!("node {node}'s group {group:?} must start and end with '|'"))?;
        let items: Vec<&str> = inner.split('|').collect();
        if items.len() != node {
            return Err(format!("node {node} must have {node} incoming edge(s), found {}", items.len()));
        }
        for (j, item) in items.iter().enumerate() {
            let (name, src) = item.split_once('~').ok_or_else(|| format!("edge {item:?} must look like op~source"))?;
            let op = Op::ALL
                .into_iter()
                .find(|o| o.name() == name)
                .ok_or_else(|| format!("unknown op {name:?} (ops: none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3)"))?;
            if src != j.to_string() {
                return Err(format!("edge {item:?} of node {node} must come from node {j}"));
            }
            let e = EDGES.iter().position(|&(a, b)| a == j && b == node).expect("edge exists");
            ops[e] = op;
        }
    }
    Ok(Genotype(ops))
}

/// An example string, for messages.
pub const EXAMPLE: &str = "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|";

impl FromStr for Genotype {
    type Err = ArchError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s).map_err(|why| ArchError::Malformed(format!("malformed NAS-Bench-201 string {s:?}: {why} (expected e.g. {EXAMPLE})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_round_trip_and_known_example() {
        let s = "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|";
        let g: Genotype = s.parse().unwrap();
        assert_eq!(g.indices(), [3, 0, 2, 1, 0, 4]);
        assert_eq!(g.to_string(), s);
        for g in Genotype::all() {
            assert_eq!(g.to_string().parse::<Genotype>().unwrap(), g);
            assert_eq!(Genotype::from_index(g.index()).unwrap(), g);
        }
        assert_eq!(Genotype::all().count(), NUM_ARCHS);
    }

    #[test]
    fn malformed_strings_are_rejected_with_reasons() {
        for bad in [
            "",
            "|nor_conv_3x3~0|",
            "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
            "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",
            "|none~0|+|none~0|+|none~0|none~1|none~2|",
            "none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
            "|none0|+|none~0|none~1|+|none~0|none~1|none~2|",
        ] {
            let e = bad.parse::<Genotype>().unwrap_err();
            assert!(matches!(e, ArchError::Malformed(_)), "{bad}: {e}");
        }
        assert!(matches!(Genotype::from_index(NUM_ARCHS), Err(ArchError::Index { .. })));
    }

    #[test]
    fn unique_strings_identify_isomorphic_cells() {
        let g: Genotype =
            "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|".parse().unwrap();
        assert_eq!(g.unique_string(), "(0)@avg_pool_3x3+(0)@avg_pool_3x3+(0)@nor_conv_1x1+(0)@nor_conv_1x1");
        let classes: std::collections::HashSet<String> = Genotype::all().map(|g| g.unique_string()).collect();
        assert_eq!(classes.len(), 6466);
    }

    #[test]
    fn plan_skips_dead_edges() {
        // node 2 = none + none: dead, so the conv 2->3 sees zeros; nothing reaches node 3
        let g: Genotype = "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|".parse().unwrap();
        let p = g.plan();
        assert!(!p.output_live);
        assert_eq!(p.active, [false; 6]);
        // node 1 is computed but never used
        let g: Genotype = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|nor_conv_1x1~2|".parse().unwrap();
        let p = g.plan();
        assert!(p.output_live);
        assert_eq!(p.active, [false, true, false, false, false, true]);
        let all_conv = Genotype([Op::NorConv3x3; 6]);
        assert_eq!(all_conv.plan().active, [true; 6]);
    }
}
