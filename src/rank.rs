//! Scoring architectures with inherited weights (`pada rank`), and the choice
//! of which architectures to score.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context};
use rand::seq::SliceRandom;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::arch::{Arch, Space};
use crate::backend::Backend;
use crate::eval::{evaluate, EvalSet};
use crate::rng::{stream, Purpose};
use crate::supernet::Supernet;
use crate::train::checkpoint::load_weights;
use crate::train::run::{self, RunRecord};

/// `--archs`: every architecture of the space, those of a CSV, or N random
/// distinct ones (the first N of a shuffle fixed by the seed, so N+M extends N).
#[derive(Clone, Debug, PartialEq)]
pub enum ArchSelection {
    All,
    File(PathBuf),
    Random(usize),
}

impl FromStr for ArchSelection {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "all" => ArchSelection::All,
            _ => match s.parse::<usize>() {
                Ok(0) => bail!("--archs 0: ask for at least one architecture"),
                Ok(n) => ArchSelection::Random(n),
                Err(_) => ArchSelection::File(PathBuf::from(s)),
            },
        })
    }
}

impl std::fmt::Display for ArchSelection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArchSelection::All => f.write_str("all"),
            ArchSelection::File(p) => write!(f, "{}", p.display()),
            ArchSelection::Random(n) => write!(f, "{n}"),
        }
    }
}

/// Which random stream `--archs N` draws from, for a given seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Draw {
    /// `pada groundtruth` and `pada proxies` (their own `--seed`): the
    /// stream the embedded ground truth was drawn from.
    Table,
    /// `pada rank` and `pada search` (the run's seed): another stream, so
    /// that a run of seed S does not rank the architectures of a ground
    /// truth drawn with seed S.
    Scoring,
}

impl ArchSelection {
    /// The space of these architectures: `given` (`--space`), else a file's
    /// own (its strings say), else NAS-Bench-201.
    pub fn space(&self, given: Option<Space>, arch_column: Option<&str>) -> anyhow::Result<Space> {
        Ok(match (given, self) {
            (Some(s), _) => s,
            (None, ArchSelection::File(p)) => crate::table::read_archs(p, arch_column)?.first().map_or(Space::default(), |a| a.space()),
            (None, _) => Space::default(),
        })
    }

    /// The architectures of `space`, in a fixed order; `seed` and `draw` pick
    /// the random ones. With `unique`, only the first architecture of each
    /// isomorphism class (so N random ones are N distinct networks).
    pub fn resolve(&self, space: Space, seed: u64, draw: Draw, arch_column: Option<&str>, unique: bool) -> anyhow::Result<Vec<Arch>> {
        let mut seen = std::collections::HashSet::new();
        let keep = |g: &Arch| !unique || seen.insert(g.canonical());
        Ok(match self {
            ArchSelection::All => space.all().filter(keep).collect(),
            ArchSelection::File(p) => {
                let archs = crate::table::read_archs(p, arch_column)?;
                if let Some(other) = archs.iter().find(|a| a.space() != space) {
                    bail!("--archs {}: {other} is an architecture of {}, not of {} (the run's space)", p.display(), other.space(), space);
                }
                archs.into_iter().filter(keep).collect()
            }
            ArchSelection::Random(n) => {
                anyhow::ensure!(
                    *n <= space.num_archs(),
                    "--archs {n}: {} has only {} architectures",
                    space.def().title(),
                    space.num_archs()
                );
                // The first N of one fixed shuffle: asking for more later extends the set.
                let mut idx: Vec<usize> = (0..space.num_archs()).collect();
                let stream_id = match draw {
                    Draw::Table => 0,
                    Draw::Scoring => 2, // (1 is the verdict's sample)
                };
                idx.shuffle(&mut stream(seed, Purpose::Ranking, stream_id, 0));
                idx.into_iter().map(|i| space.arch(i).expect("in range")).filter(keep).take(*n).collect()
            }
        })
    }
}

/// A trained run: its record and its final weights.
pub fn load_run<B: Backend>(be: &B, dir: &Path) -> anyhow::Result<(RunRecord, Supernet<B>)> {
    let record = run::read_record(dir)?;
    let path = dir.join(run::WEIGHTS);
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {} (has the run finished an epoch?)", path.display()))?;
    let net = load_weights(be, &bytes, &path.display().to_string())?;
    if net.config != record.supernet {
        bail!("{}: the weights are for supernet {} but config.json records {}", path.display(), net.config, record.supernet);
    }
    Ok((record, net))
}

/// One scored architecture.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub arch: Arch,
    pub accuracy: f64,
    pub loss: f64,
}

/// Scores `archs` in chunks, several architectures at a time on the CPU's
/// threads; `done` receives each chunk's results in order.
pub fn score<B: Backend>(
    be: &B,
    net: &Supernet<B>,
    set: &EvalSet<B>,
    archs: &[Arch],
    mut done: impl FnMut(&[Scored]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let chunk = rayon::current_num_threads().max(1);
    for part in archs.chunks(chunk) {
        let scored: Vec<Scored> = part
            .par_iter()
            .map(|g| {
                let (accuracy, loss) = evaluate(be, net, g, set);
                Scored { arch: *g, accuracy, loss }
            })
            .collect();
        done(&scored)?;
    }
    Ok(())
}
