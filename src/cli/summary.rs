//! `pada summary`: parameter counts and FLOPs.

use clap::Args;

use crate::arch::{Arch, Space};
use crate::backend::cpu::CpuBackend;
use crate::supernet::{InputShape, Supernet, SupernetConfig};

#[derive(Args, Debug)]
pub struct SummaryArgs {
    /// The search space [default: --arch's, else nb201].
    #[arg(long, value_enum)]
    pub space: Option<Space>,
    /// Width: nb201's C (stages of C, 2C, 4C) or nb-macro's stem (stages of 2C, 4C, 8C, head 40C)
    /// [default: the official preset's: 16 in nb201, 32 (the benchmark's) in nb-macro].
    #[arg(long)]
    pub channels: Option<usize>,
    /// Search cells per stage (N; nb201 only) [default: 5].
    #[arg(long)]
    pub cells: Option<usize>,
    /// Number of classes.
    #[arg(long, default_value_t = 10)]
    pub classes: usize,
    /// Input image shape CxHxW.
    #[arg(long, default_value = "3x32x32")]
    pub input: InputShape,
    /// An architecture string (its space's: `|nor_conv_3x3~0|+...` or `02012100`): also print its
    /// sub-network's size and FLOPs.
    #[arg(long)]
    pub arch: Option<String>,
}

pub fn run(a: SummaryArgs) -> anyhow::Result<()> {
    let arch: Option<Arch> = match (&a.arch, a.space) {
        (Some(s), Some(space)) => Some(Arch::parse_in(space, s)),
        (Some(s), None) => Some(s.parse()),
        (None, _) => None,
    }
    .transpose()
    .map_err(|e| anyhow::anyhow!("--arch: {e}"))?;
    let space = a.space.or(arch.map(|g| g.space())).unwrap_or_default();
    let official = space.def().run_size(true, &crate::data::DataSpec::Embedded);
    let config = SupernetConfig {
        space,
        channels: a.channels.unwrap_or(official.channels),
        cells: a.cells.unwrap_or(official.cells),
        classes: a.classes,
        input: a.input,
    };
    let be = CpuBackend::<f32>::new();
    let net = Supernet::uninit(&be, config)?;
    // The first line is the bare count, for scripts.
    crate::outln!("{}", net.param_count(None));
    if let Some(g) = arch {
        let macs = net.forward_macs(&g);
        crate::outln!("arch: {g}");
        crate::outln!(
            "arch_params: {} (its weights in this supernet, whose batch norm has no affine parameters)",
            net.param_count(Some(&g))
        );
        crate::outln!("arch_params_standalone: {} (with affine batch norm, as the benchmarks count)", net.standalone_params(&g));
        crate::outln!("arch_macs: {macs} (multiply-accumulates of one image: convolutions and the classifier)");
        crate::outln!(
            "arch_forward_flops_per_image: {} ({:.2} MFLOPs = 2 x {:.2} M multiply-accumulates)",
            2 * macs,
            2.0 * macs as f64 / 1e6,
            macs as f64 / 1e6
        );
    }
    Ok(())
}
