//! `pada sweep`: the paper's main table in one command. Trains and judges
//! every method (or variant) x seed, each a normal run directory under the
//! sweep's folder, and writes `sweep.csv` (one row per run) and `sweep.md`
//! (Kendall tau & co., mean +- standard deviation per method, with the
//! reference rows, also in `sweep.references.json` for `pada plot --sweep`).
//! Resumable: finished runs are kept, an interrupted one resumes from its
//! last epoch.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{bail, Context};
use clap::{Args, Parser};
use serde::{Deserialize, Serialize};

use super::device::{with_backend, BackendJob, Device};
use super::train::{Bar, TrainArgs};
use super::SeedList;
use crate::backend::Backend;
use crate::fsutil::write_atomic;
use crate::table::TableSource;
use crate::train::run;
use crate::verdict::{Reference, Verdict, VerdictSpec, VERDICT};

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Methods or variants, comma-separated: a method (pada, spos, fairnas, sumnas, pa, da),
    /// optionally followed by `:flag` or `:flag=value` train settings, e.g.
    /// `pada,spos,pada:per-edge,pada:off-path=frozen,pada:data-importance=classifier`.
    #[arg(long, default_value = "pada,spos,fairnas,pa,da")]
    pub methods: String,
    /// Seeds: 0-3, 0,2,5 or a mix.
    #[arg(long, default_value = "0-3")]
    pub seeds: SeedList,
    /// The ground truth every run is judged against: embedded | nb201:cifar10 | nb201:cifar100 |
    /// nb201:imagenet16 | CSV [default: the data's own, as `pada train`'s verdict].
    #[arg(long, value_name = "TABLE")]
    pub ground_truth: Option<TableSource>,
    /// Test images each architecture is scored on (the first of the split, class-mixed)
    /// [default: 2000 on the embedded data, 1000 otherwise].
    #[arg(long)]
    pub verdict_images: Option<usize>,
    /// Architectures ranked: all | N (a fixed sample, one per isomorphism class, the same for
    /// every run; all of a smaller table).
    #[arg(long, default_value = "1000")]
    pub verdict_archs: crate::verdict::VerdictArchs,
    /// The sweep's folder: one run directory per method and seed, sweep.csv, sweep.md.
    #[arg(long, default_value = "runs/sweep")]
    pub out: PathBuf,
    #[arg(long)]
    pub device: Option<Device>,
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long, short)]
    pub quiet: bool,
    /// Train settings every run shares, after `--` (e.g. `-- --epochs 20 --data embedded`).
    #[arg(last = true, value_name = "TRAIN FLAGS")]
    pub train: Vec<String>,
}

/// One method or variant: its label and its train flags.
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    pub label: String,
    pub flags: Vec<String>,
}

impl FromStr for Variant {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        let mut parts = s.split(':');
        let method = parts.next().filter(|m| !m.is_empty()).with_context(|| format!("--methods: empty method in {s:?}"))?;
        let mut flags = vec!["--method".to_string(), method.to_string()];
        for p in parts {
            match p.split_once('=') {
                Some((k, v)) => flags.extend([format!("--{k}"), v.to_string()]),
                None => flags.push(format!("--{p}")),
            }
        }
        Ok(Variant { label: s.to_string(), flags })
    }
}

/// One row of sweep.csv.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SweepRow {
    pub method: String,
    pub seed: u64,
    pub kendall_tau: f64,
    pub spearman_rho: f64,
    pub pearson_r: f64,
    pub precision_top5: f64,
    pub precision_top10: f64,
    pub predicted_best_true_rank: usize,
    pub archs: usize,
    /// Test images each architecture was scored on.
    pub images: usize,
    pub train_seconds: f64,
}

/// The run directory of a variant and seed: the label with characters a path dislikes replaced.
fn run_dir(out: &std::path::Path, label: &str, seed: u64) -> PathBuf {
    let name: String = label.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    out.join(format!("{name}-seed{seed}"))
}

pub fn run(a: SweepArgs) -> anyhow::Result<()> {
    super::set_threads(a.threads)?;
    let variants: Vec<Variant> = a.methods.split(',').map(str::parse).collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(!variants.is_empty(), "--methods names no method");
    // every run's settings, parsed as `pada train` parses them (so every train flag works, and a bad one fails now)
    let mut plans = Vec::new();
    for v in &variants {
        for &seed in &a.seeds.0 {
            let dir = run_dir(&a.out, &v.label, seed);
            let mut argv = vec!["train".to_string()];
            if let Some(d) = &a.device {
                argv.extend(["--device".into(), d.to_string()]);
            }
            argv.extend(a.train.iter().cloned());
            argv.extend(v.flags.iter().cloned());
            argv.extend(["--seed".into(), seed.to_string(), "--out".into(), dir.display().to_string()]);
            let t = TrainCli::try_parse_from(&argv).map_err(|e| anyhow::anyhow!("--methods {}: {}", v.label, e.to_string().trim()))?.train;
            if t.resume.is_some() || t.out.as_ref() != Some(&dir) || t.seed != Some(seed) {
                bail!("train flags after -- must not set --resume, --out or --seed: the sweep sets them per run");
            }
            let config = t.config();
            config.validate().with_context(|| format!("--methods {}", v.label))?;
            plans.push((v.clone(), seed, dir, config));
        }
    }
    let data = plans[0].3.data.clone();
    let ground_truth = match &a.ground_truth {
        Some(t) => t.clone(),
        None => match data.benchmark() {
            Some(t) => t,
            None => bail!(
                "--ground-truth is needed on --data {data}, which has no built-in ground truth (embedded, nb201:cifar10, ... or a CSV)"
            ),
        },
    };
    let images = a.verdict_images.unwrap_or_else(|| crate::verdict::default_images(&data));
    anyhow::ensure!(images > 0, "--verdict-images must be at least 1");
    let spec = VerdictSpec { ground_truth, images, archs: a.verdict_archs };
    // one backend serves every run
    let (device, precision) = (plans[0].3.device.clone(), plans[0].3.precision);
    if let Some((v, ..)) = plans.iter().find(|p| p.3.device != device || p.3.precision != precision) {
        bail!("--methods {}: every run of a sweep runs on one device with one precision ({device}, {precision})", v.label);
    }
    let device: Device = device.parse()?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    with_backend(&device, Some(precision), Job { plans, spec, out: a.out, quiet: a.quiet })
}

/// `pada train`'s flags, to parse each run's settings exactly as `pada train` does.
#[derive(Parser, Debug)]
struct TrainCli {
    #[command(flatten)]
    train: TrainArgs,
}

struct Job {
    plans: Vec<(Variant, u64, PathBuf, crate::train::TrainConfig)>,
    spec: VerdictSpec,
    out: PathBuf,
    quiet: bool,
}

impl BackendJob for Job {
    fn run<B: Backend>(self, be: &B) -> anyhow::Result<()> {
        let _ = ctrlc::set_handler(|| {
            if crate::train::interrupt_requested() {
                std::process::exit(130);
            }
            crate::train::request_interrupt();
        });
        let mut rows = Vec::new();
        // The reference rows depend on the architectures, the data and the
        // supernet's size, not on the method: computed once per size (the
        // table shows the first run's).
        let data = self.plans[0].3.data.load()?;
        let truth = crate::verdict::truth_sample(&self.spec.ground_truth, self.spec.archs)?;
        let mut by_size: HashMap<(usize, usize), Vec<Reference>> = HashMap::new();
        let mut references_of = |c: &crate::train::TrainConfig| -> anyhow::Result<Vec<Reference>> {
            if let Some(r) = by_size.get(&(c.channels, c.cells)) {
                return Ok(r.clone());
            }
            if !self.quiet {
                eprintln!("reference rows (parameter count, FLOPs, zero-cost proxies) for the C={} N={} runs...", c.channels, c.cells);
            }
            let size =
                crate::supernet::SupernetConfig { channels: c.channels, cells: c.cells, classes: data.classes(), input: data.shape() };
            let r = crate::verdict::references(be, &self.spec.ground_truth, &truth, size, &data)?;
            by_size.insert((c.channels, c.cells), r.clone());
            Ok(r)
        };
        let references = references_of(&self.plans[0].3)?;
        write_atomic(&self.out.join(REFERENCES), &serde_json::to_vec_pretty(&references)?)?;
        for (k, (v, seed, dir, config)) in self.plans.iter().enumerate() {
            let verdict_file = dir.join(VERDICT);
            let summary_file = dir.join(run::SUMMARY);
            let verdict: Verdict = if verdict_file.exists() && summary_file.exists() {
                if !self.quiet {
                    eprintln!("[{}/{}] {} seed {seed}: done before, kept ({})", k + 1, self.plans.len(), v.label, dir.display());
                }
                serde_json::from_slice(&std::fs::read(&verdict_file)?).with_context(|| format!("{}: unreadable", verdict_file.display()))?
            } else {
                let resume = dir.join(run::CONFIG).exists();
                eprintln!(
                    "[{}/{}] {} seed {seed}: {} ({})",
                    k + 1,
                    self.plans.len(),
                    v.label,
                    if resume { "resuming" } else { "training" },
                    dir.display()
                );
                let mut bar = Bar::new(self.quiet);
                let trained = run::train(be, (!resume).then(|| config.clone()), dir, &mut bar);
                bar.finish();
                if let Err(e) = trained {
                    if let Some(i) = e.downcast_ref::<crate::train::Interrupted>() {
                        eprintln!("{i}: continue the sweep with the same command; finished runs are kept and {} resumes", dir.display());
                        std::process::exit(130);
                    }
                    return Err(e.context(format!("{} seed {seed}", v.label)));
                }
                crate::verdict::judge(be, dir, &self.spec, Some(references_of(config)?))?
            };
            let summary: run::Summary = serde_json::from_slice(&std::fs::read(&summary_file)?)?;
            let c = &verdict.supernet;
            if !self.quiet {
                eprintln!(
                    "    Kendall tau {:.3}, Spearman {:.3}, predicted best has true rank {} of {}",
                    c.kendall_tau, c.spearman_rho, c.predicted_best_true_rank, c.n
                );
            }
            rows.push(SweepRow {
                method: v.label.clone(),
                seed: *seed,
                kendall_tau: c.kendall_tau,
                spearman_rho: c.spearman_rho,
                pearson_r: c.pearson_r,
                precision_top5: c.precision_top5,
                precision_top10: c.precision_top10,
                predicted_best_true_rank: c.predicted_best_true_rank,
                archs: c.n,
                images: verdict.images,
                train_seconds: summary.train_seconds,
            });
            write_table(&self.out, &rows, &references, &self.spec)?;
        }
        print!("{}", std::fs::read_to_string(self.out.join("sweep.md"))?);
        Ok(())
    }
}

/// "mean +- sample sd" with `digits` decimals; the mean alone for one seed (it has no spread).
fn mean_sd(v: &[f64], digits: usize) -> String {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return format!("{mean:.digits$}");
    }
    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    format!("{mean:.digits$} +- {sd:.digits$}")
}

/// The sweep's reference rows (parameter count, FLOPs, proxies), as `pada plot --sweep` draws them:
/// the sweep's own, not those of a run's verdict (a run kept from an earlier sweep may hold older ones).
pub const REFERENCES: &str = "sweep.references.json";

/// sweep.csv and sweep.md, rewritten after every run.
fn write_table(out: &std::path::Path, rows: &[SweepRow], references: &[Reference], spec: &VerdictSpec) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r)?;
    }
    write_atomic(&out.join("sweep.csv"), &w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)?;
    let mut md = format!(
        "Kendall tau against {} ({} architectures, scored on {} test images); mean +- sd over seeds\n\n| method | seeds | Kendall tau | Spearman | true rank of the predicted best | train s |\n|---|---|---|---|---|---|\n",
        spec.ground_truth,
        rows.first().map_or(0, |r| r.archs),
        rows.first().map_or(0, |r| r.images)
    );
    let mut labels: Vec<&str> = Vec::new();
    for r in rows {
        if !labels.contains(&r.method.as_str()) {
            labels.push(&r.method);
        }
    }
    for l in labels {
        let of = |f: fn(&SweepRow) -> f64| rows.iter().filter(|r| r.method == l).map(f).collect::<Vec<_>>();
        let n = rows.iter().filter(|r| r.method == l).count();
        let secs = of(|r| r.train_seconds).iter().sum::<f64>() / n as f64;
        md += &format!(
            "| {l} | {n} | {} | {} | {} | {secs:.0} |\n",
            mean_sd(&of(|r| r.kendall_tau), 3),
            mean_sd(&of(|r| r.spearman_rho), 3),
            mean_sd(&of(|r| r.predicted_best_true_rank as f64), 1)
        );
    }
    for r in references {
        let c = &r.consistency;
        md += &format!("| *{}* | | {:.3} | {:.3} | {} | |\n", r.name, c.kendall_tau, c.spearman_rho, c.predicted_best_true_rank);
    }
    write_atomic(&out.join("sweep.md"), md.as_bytes())
}
