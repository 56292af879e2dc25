//! The `pada` command line: one module per subcommand.

pub mod summary;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "pada",
    version,
    about = "PA&DA one-shot NAS: train NAS-Bench-201 supernets with path and data importance sampling, rank architectures, measure ranking consistency",
    long_about = None,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Parameter count of a supernet, and of one architecture's sub-network with its FLOPs.
    Summary(summary::SummaryArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Summary(a) => summary::run(a),
    }
}
