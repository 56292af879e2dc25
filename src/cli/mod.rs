//! The `pada` command line: one module per subcommand.

pub mod bench;
pub mod compare;
pub mod device;
pub mod gradvar;
pub mod groundtruth;
pub mod plot;
pub mod proxies;
pub mod rank;
pub mod search;
pub mod summary;
pub mod sweep;
pub mod train;

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
    /// Train a supernet (PA&DA or a baseline) and write its run directory.
    Train(train::TrainArgs),
    /// Score architectures with a trained supernet's weights; with a ground truth, measure the ranking's consistency.
    Rank(rank::RankArgs),
    /// Ranking consistency (Kendall tau and friends) between two tables of architectures.
    Compare(compare::CompareArgs),
    /// Train architectures stand-alone from scratch and record their test accuracy (a ground truth).
    Groundtruth(groundtruth::GroundTruthArgs),
    /// The best architectures by supernet accuracy (exhaustive or evolutionary search).
    Search(search::SearchArgs),
    /// Plot training curves, path and data distributions, gradient variance and ranking scatter.
    Plot(plot::PlotArgs),
    /// Gradient variance at a run's weights, with paths and data drawn as a method draws them.
    Gradvar(gradvar::GradVarArgs),
    /// Time training steps, PA&DA's extra work, FairNAS and ranking on this machine.
    Bench(bench::BenchArgs),
    /// Parameter count of a supernet, and of one architecture's sub-network with its FLOPs.
    Summary(summary::SummaryArgs),
    /// Parameter count, FLOPs and zero-cost proxies (grad-norm, snip, synflow) of architectures at initialisation.
    Proxies(proxies::ProxiesArgs),
    /// Train and judge every method x seed (the paper's main table): sweep.csv and sweep.md, resumable.
    Sweep(sweep::SweepArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let command = cli.command;
    set_threads(command.threads())?;
    in_pool(move || match command {
        Command::Train(a) => train::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Rank(a) => rank::run(a),
        Command::Compare(a) => compare::run(a),
        Command::Groundtruth(a) => groundtruth::run(a),
        Command::Search(a) => search::run(a),
        Command::Plot(a) => plot::run(a),
        Command::Gradvar(a) => gradvar::run(a),
        Command::Summary(a) => summary::run(a),
        Command::Proxies(a) => proxies::run(a),
        Command::Sweep(a) => sweep::run(a),
    })
}

impl Command {
    /// `--threads`, where the command has it.
    fn threads(&self) -> Option<usize> {
        match self {
            Command::Train(a) => a.threads,
            Command::Rank(a) => a.threads,
            Command::Sweep(a) => a.threads,
            Command::Bench(a) => a.dev.threads,
            Command::Groundtruth(a) => a.dev.threads,
            Command::Gradvar(a) => a.dev.threads,
            Command::Search(a) => a.dev.threads,
            Command::Proxies(a) => a.dev.threads,
            Command::Compare(_) | Command::Plot(_) | Command::Summary(_) => None,
        }
    }
}

/// The stack of the pool's threads, on which the commands run: the main
/// thread's 8 MiB (rayon's default is 2 MiB).
const STACK_BYTES: usize = 8 << 20;

/// Sets up the CPU threads (rayon's global pool: `threads`, by default one
/// per core), once, before any work; a later call without a count, or with
/// the same one, changes nothing.
pub fn set_threads(threads: Option<usize>) -> anyhow::Result<()> {
    let mut pool = rayon::ThreadPoolBuilder::new().stack_size(STACK_BYTES);
    if let Some(n) = threads {
        anyhow::ensure!(n > 0, "--threads must be at least 1");
        pool = pool.num_threads(n);
    }
    match pool.build_global() {
        Ok(()) => Ok(()),
        Err(_) if threads.is_none_or(|n| n == rayon::current_num_threads()) => Ok(()),
        Err(e) => Err(anyhow::anyhow!("--threads: {e}")),
    }
}

/// Runs `f` on one of the pool's threads ([`set_threads`]). Its ops' parallel
/// loops are then shared out from inside the pool, the calling thread working
/// on them, instead of from outside, where it would sleep through each loop
/// and be woken at its end: a training step runs over a hundred such loops
/// (6-8% of an NB-Macro step on 2 cores).
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

/// `--seeds`: a list of seeds, as `0-3`, `0,2,5` or a mix (`0-2,7`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedList(pub Vec<u64>);

impl std::str::FromStr for SeedList {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        let bad = || anyhow::anyhow!("--seeds {s:?}: expected seeds such as 0-3, 0,2,5 or 0-2,7");
        let mut seeds = Vec::new();
        for part in s.split(',') {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b): (u64, u64) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
                    anyhow::ensure!(a <= b && b - a < 100_000, "--seeds {s:?}: the range {a}-{b} is empty or too long");
                    seeds.extend(a..=b);
                }
                None => seeds.push(part.trim().parse().map_err(|_| bad())?),
            }
        }
        let mut unique = seeds.clone();
        unique.sort();
        unique.dedup();
        anyhow::ensure!(unique.len() == seeds.len(), "--seeds {s:?}: a seed is listed twice");
        Ok(SeedList(seeds))
    }
}

#[cfg(test)]
mod tests {
    /// The command's own thread is one of the pool's, so that the ops' loops
    /// run on it rather than making it wait (see [`super::in_pool`]).
    #[test]
    fn commands_run_on_a_thread_of_the_pool() {
        assert_eq!(rayon::current_thread_index(), None, "a test's own thread is outside the pool");
        assert!(super::in_pool(rayon::current_thread_index).is_some());
    }
}
