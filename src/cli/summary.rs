//! `pada summary`: parameter counts and FLOPs.

use clap::Args;

use crate::arch::Genotype;
use crate::backend::cpu::CpuBackend;
use crate::supernet::{InputShape, Supernet, SupernetConfig};

#[derive(Args, Debug)]
pub struct SummaryArgs {
    /// Channels of the first stage (C); stages have C, 2C, 4C.
    #[arg(long, default_value_t = 16)]
    pub channels: usize,
    /// Search cells per stage (N).
    #[arg(long, default_value_t = 5)]
    pub cells: usize,
    /// Number of classes.
    #[arg(long, default_value_t = 10)]
    pub classes: usize,
    /// Input image shape CxHxW.
    #[arg(long, default_value = "3x32x32")]
    pub input: InputShape,
    /// A NAS-Bench-201 architecture string: also print its sub-network's size and FLOPs.
    #[arg(long)]
    pub arch: Option<String>,
}

pub fn run(a: SummaryArgs) -> anyhow::Result<()> {
    let config = SupernetConfig { channels: a.channels, cells: a.cells, classes: a.classes, input: a.input };
    let be = CpuBackend::<f32>::new();
    let net = Supernet::uninit(&be, config)?;
    let arch: Option<Genotype> = a.arch.map(|s| s.parse()).transpose().map_err(|e| anyhow::anyhow!("--arch: {e}"))?;
    // The first line is the bare count, for scripts.
    crate::outln!("{}", net.param_count(None));
    if let Some(g) = arch {
        let macs = net.forward_macs(&g);
        crate::outln!("arch: {g}");
        crate::outln!("arch_params: {}", net.param_count(Some(&g)));
        crate::outln!(
            "arch_forward_flops_per_image: {} ({:.2} MFLOPs = 2 x {:.2} M multiply-accumulates)",
            2 * macs,
            2.0 * macs as f64 / 1e6,
            macs as f64 / 1e6
        );
    }
    Ok(())
}
