//! What a trained supernet's ranking is worth: its Kendall tau & co. against a
//! ground truth, beside the reference rows a ranking must be read against (the
//! ground truth's own seed-to-seed agreement, its noise ceiling, and the trivial
//! predictors: parameter count and FLOPs).

use std::collections::HashMap;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::arch::Arch;
use crate::backend::Backend;
use crate::data::Data;
use crate::eval::EvalSet;
use crate::progress::{rate_and_eta, Reporter};
use crate::rank::{score, Scored};
use crate::rankstats::Consistency;
use crate::supernet::Supernet;
use crate::table::{columns, read_arch_table, ArchTable, TableSource};
pub use crate::train::config::{default_images, VerdictArchs, VerdictSpec};

/// A ranking's consistency with the ground truth, and the reference rows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Verdict {
    /// The ground truth (`embedded`, `nb201:cifar10`, a CSV).
    pub ground_truth: String,
    /// The settings it was made with (none in verdicts from before pada recorded them).
    #[serde(default)]
    pub spec: Option<VerdictSpec>,
    /// Test images each architecture was scored on.
    pub images: usize,
    pub supernet: Consistency,
    /// Predictors and ceilings on the same architectures.
    pub references: Vec<Reference>,
    /// The supernet's accuracy (%) of each ranked architecture.
    pub scores: Vec<(String, f64)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reference {
    pub name: String,
    pub consistency: Consistency,
}

/// The ground truth's architectures and accuracies: every row (`All`), or a
/// fixed sample of `n` with one architecture per isomorphism class (the first
/// of each class in a shuffle of the table's rows from a fixed seed, the same
/// for every run and version; all the classes of a smaller table).
pub fn truth_sample(gt: &TableSource, archs: VerdictArchs) -> anyhow::Result<ArchTable> {
    let mut t = read_arch_table(gt, None, gt.default_column())?;
    if let VerdictArchs::Sample(n) = archs {
        use rand::seq::SliceRandom;
        let mut idx: Vec<usize> = (0..t.archs.len()).collect();
        idx.shuffle(&mut crate::rng::stream(0, crate::rng::Purpose::Ranking, 1, 0));
        let mut classes = std::collections::HashSet::new();
        idx.retain(|&i| classes.insert(t.archs[i].canonical()));
        idx.truncate(n);
        t.archs = idx.iter().map(|&i| t.archs[i]).collect();
        t.values = idx.iter().map(|&i| t.values[i]).collect();
    }
    Ok(t)
}

/// Reference rows for the architectures of `truth`: the noise ceiling (mean
/// Kendall tau between the ground truth's per-seed columns, when it has them),
/// and the predictors that need no training: parameter count, FLOPs, and the
/// zero-cost proxies at initialisation ([`crate::proxies`]): for a built-in
/// ground truth with a built-in table of predictors (NAS-Bench-201's CIFAR-10
/// at C=16 N=5, NAS-Bench-Macro's at the benchmark's C=32) from that table
/// when it holds every architecture judged, else computed on supernets of
/// `config` with `data`'s training images.
pub fn references<B: Backend>(
    be: &B,
    gt: &TableSource,
    truth: &ArchTable,
    config: crate::supernet::SupernetConfig,
    data: &Data,
    quiet: bool,
) -> anyhow::Result<Vec<Reference>> {
    let names: Vec<String> = truth.archs.iter().map(|g| g.to_string()).collect();
    let mut out = Vec::new();
    let seed_columns: Vec<String> = columns(gt)?.into_iter().filter(|c| c.starts_with("test_accuracy_seed")).collect();
    if seed_columns.len() >= 2 {
        // each seed's accuracies of truth's architectures
        let seeds: Vec<Vec<f64>> = seed_columns
            .iter()
            .map(|c| column_of(gt, c, &truth.archs)?.with_context(|| format!("{gt}: column '{c}' lacks architectures of the ground truth")))
            .collect::<anyhow::Result<_>>()?;
        let mut pairs = Vec::new();
        for i in 0..seeds.len() {
            for j in i + 1..seeds.len() {
                pairs.push(Consistency::of(&names, &seeds[i], &seeds[j])?);
            }
        }
        // the mean over seed pairs of each correlation
        let mean = |f: fn(&Consistency) -> f64| pairs.iter().map(f).sum::<f64>() / pairs.len() as f64;
        let ceiling = Consistency {
            kendall_tau: mean(|c| c.kendall_tau),
            spearman_rho: mean(|c| c.spearman_rho),
            pearson_r: mean(|c| c.pearson_r),
            kendall_tau_top5: mean(|c| c.kendall_tau_top5),
            kendall_tau_top10: mean(|c| c.kendall_tau_top10),
            ..pairs[0].clone()
        };
        out.push(Reference { name: format!("noise ceiling (seed vs seed, {} seeds)", seeds.len()), consistency: ceiling });
    }
    // NAS-Bench-201 on CIFAR-10: the predictors at their authors' setting, from
    // the built-in table (as the literature reports them, and instant) when it
    // has every architecture judged; else computed at the run's supernet size
    let built_in = match gt {
        TableSource::BuiltIn(t) => match t.proxies {
            Some(p) => built_in_proxies(p, &truth.archs)?.map(|columns| (columns, p.setting)),
            None => None,
        },
        TableSource::File(_) => None,
    };
    let (columns, setting) = match built_in {
        Some((columns, setting)) => (columns, Some(setting)),
        None => {
            let n = truth.archs.len();
            let (mut progress, start) = (Reporter::new(quiet, n as u64, "[{bar:30}] {pos}/{len} {msg}"), std::time::Instant::now());
            let proxies = crate::proxies::for_archs(be, config, data, 64, 0, &truth.archs, |k, _| {
                progress.update(k as u64 + 1, n as u64, || {
                    format!(
                        "reference rows: zero-cost proxies of {}/{n} architectures, {}",
                        k + 1,
                        rate_and_eta(k + 1, n, start, "architectures")
                    )
                })
            })?;
            ((0..crate::proxies::COLUMNS.len()).map(|k| proxies.iter().map(|p| p.values()[k]).collect()).collect(), None)
        }
    };
    for (label, pred) in crate::proxies::LABELS.into_iter().zip(&columns) {
        // "synflow (zero-cost)" -> "synflow (zero-cost, C=16 N=5)"; "FLOPs" -> "FLOPs (C=16 N=5)"
        let name = match (setting, label.strip_suffix(')')) {
            (None, _) => label.to_string(),
            (Some(s), Some(open)) => format!("{open}, {s})"),
            (Some(s), None) => format!("{label} ({s})"),
        };
        out.push(Reference { name, consistency: Consistency::of(&names, pred, &truth.values)? });
    }
    Ok(out)
}

/// The built-in table's columns ([`crate::proxies::COLUMNS`]) for `archs`, or
/// `None` when it lacks one of them (it holds the verdict's default sample and
/// more, data/nb201/README.md).
fn built_in_proxies(table: &'static crate::table::BuiltInTable, archs: &[Arch]) -> anyhow::Result<Option<Vec<Vec<f64>>>> {
    let columns =
        crate::proxies::COLUMNS.iter().map(|c| column_of(&TableSource::BuiltIn(table), c, archs)).collect::<anyhow::Result<Vec<_>>>()?;
    Ok(columns.into_iter().collect())
}

/// `column` of the table `src` for each of `archs`, or `None` when the table
/// lacks one of them.
fn column_of(src: &TableSource, column: &str, archs: &[Arch]) -> anyhow::Result<Option<Vec<f64>>> {
    let t = read_arch_table(src, None, column)?;
    let by_arch: HashMap<Arch, f64> = t.archs.into_iter().zip(t.values).collect();
    Ok(archs.iter().map(|g| by_arch.get(g).copied()).collect())
}

/// Scores the architectures of `truth` with `net`'s weights on the first
/// `images` images of `data`'s test split, and compares with `truth`, beside
/// the `references` ([`references`]: the same for every run of a sweep).
#[allow(clippy::too_many_arguments)]
pub fn verdict<B: Backend>(
    be: &B,
    net: &Supernet<B>,
    data: &Data,
    spec: &VerdictSpec,
    truth: &ArchTable,
    references: Vec<Reference>,
    quiet: bool,
) -> anyhow::Result<Verdict> {
    let test = data.test.subset(&(0..spec.images.min(data.test.len())).collect::<Vec<_>>());
    let set = EvalSet::new(be, &test, &data.norm, 512);
    let n = truth.archs.len();
    let (mut progress, start) = (Reporter::new(quiet, n as u64, "[{bar:30}] {pos}/{len} {msg}"), std::time::Instant::now());
    let mut scored: Vec<Scored> = Vec::new();
    score(be, net, &set, &truth.archs, |chunk| {
        scored.extend_from_slice(chunk);
        progress.update(scored.len() as u64, n as u64, || {
            format!("verdict: scored {}/{n} architectures, {}", scored.len(), rate_and_eta(scored.len(), n, start, "architectures"))
        });
        Ok(())
    })?;
    progress.finish();
    let pred: Vec<f64> = scored.iter().map(|s| s.accuracy).collect();
    let names: Vec<String> = truth.archs.iter().map(|g: &Arch| g.to_string()).collect();
    Ok(Verdict {
        ground_truth: spec.ground_truth.to_string(),
        spec: Some(spec.clone()),
        images: test.len(),
        supernet: Consistency::of(&names, &pred, &truth.values)?,
        references,
        scores: names.into_iter().zip(pred).collect(),
    })
}

/// The verdict as a table for a terminal or a log: Kendall tau and Spearman
/// over every architecture judged, Kendall tau among the true top 10% and
/// 5%, and the true rank of each predictor's best.
pub fn report(v: &Verdict) -> String {
    let width = v.references.iter().map(|r| r.name.len()).chain([13]).max().unwrap_or(13);
    let row = |name: &str, c: &Consistency| {
        format!(
            "  {name:<width$} {:>8.3} {:>8.3} {:>8.3} {:>8.3}   {:>4} of {}\n",
            c.kendall_tau, c.spearman_rho, c.kendall_tau_top10, c.kendall_tau_top5, c.predicted_best_true_rank, c.n
        )
    };
    let mut s = format!(
        "ranking of {} ground-truth architectures ({}), supernet scored on {} test images:\n  {:<width$} {:>8} {:>8} {:>8} {:>8}   {}\n  {:<width$} {:>8} {:>8} {:>8} {:>8}   {}\n",
        v.supernet.n,
        v.ground_truth,
        v.images,
        "",
        "Kendall",
        "Spearman",
        "Kendall",
        "Kendall",
        "true rank of",
        "",
        "",
        "",
        "top 10%",
        "top 5%",
        "the predicted best"
    );
    s += &row("this supernet", &v.supernet);
    for r in &v.references {
        s += &row(&r.name, &r.consistency);
    }
    s
}

/// `spec` with its ground truth checked now (read, sampled, a file named by
/// its absolute path so that a resumed run finds it), before any training:
/// a bad table must not wait for the end of a long run.
pub fn checked(mut spec: VerdictSpec, space: crate::arch::Space) -> anyhow::Result<VerdictSpec> {
    anyhow::ensure!(spec.images > 0, "--verdict-images must be at least 1");
    if let TableSource::File(p) = &spec.ground_truth {
        let abs = std::fs::canonicalize(p).with_context(|| format!("--ground-truth {}: cannot open it", p.display()))?;
        spec.ground_truth = TableSource::File(abs);
    }
    let truth = truth_sample(&spec.ground_truth, spec.archs).with_context(|| format!("--ground-truth {}", spec.ground_truth))?;
    same_space(&spec.ground_truth, &truth, space)?;
    Ok(spec)
}

/// An error unless the architectures of the table `gt` are of `space` (a run's).
pub fn same_space(gt: &TableSource, truth: &ArchTable, space: crate::arch::Space) -> anyhow::Result<()> {
    match truth.archs.first().map(|a| a.space()) {
        Some(other) if other != space => anyhow::bail!(
            "--ground-truth {gt}: its architectures are {}'s ({}), but the run is in {}: a ranking compares architectures of one space (choose --space {other}, or a table of {space})",
            other.def().title(),
            truth.archs[0],
            space.def().title()
        ),
        _ => Ok(()),
    }
}

/// A note when `gt` is a built-in ground truth of other data than `data`:
/// the ranking then compares different tasks (not an error: it can be
/// what a transfer study wants).
pub fn mismatch_note(gt: &TableSource, data: &crate::data::DataSpec, data_name: &str) -> Option<String> {
    let TableSource::BuiltIn(t) = gt else { return None };
    (data.known() != Some(t.data)).then(|| {
        format!("note: {gt} holds accuracies measured on other data than this run's ({data_name}): the ranking compares different tasks")
    })
}

/// Judges the run in `dir` (its final weights) and writes `verdict.json`
/// there; the reference rows are `references` when given (a sweep computes
/// them once for all its runs), else computed for the run's supernet size.
pub fn judge<B: Backend>(
    be: &B,
    dir: &std::path::Path,
    spec: &VerdictSpec,
    references: Option<Vec<Reference>>,
    quiet: bool,
) -> anyhow::Result<Verdict> {
    let (record, net) = crate::rank::load_run(be, dir)?;
    let data = record.train.data.load()?;
    let truth = truth_sample(&spec.ground_truth, spec.archs)?;
    let references = match references {
        Some(r) => r,
        None => self::references(be, &spec.ground_truth, &truth, net.config, &data, quiet)?,
    };
    let v = verdict(be, &net, &data, spec, &truth, references, quiet)?;
    crate::fsutil::write_atomic(&dir.join(VERDICT), serde_json::to_string_pretty(&v)?.as_bytes())?;
    Ok(v)
}

/// The verdict's file in a run directory.
pub const VERDICT: &str = "verdict.json";
