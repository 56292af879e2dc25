//! `pada sweep`: the paper's main table in one command. Trains and judges
//! every method (or variant) x seed, each a normal run directory under the
//! sweep's folder, and writes `sweep.csv` (one row per run) and `sweep.md`
//! (Kendall tau & co., mean +- standard deviation per method, with the
//! reference rows, also in `sweep.references.json` for `pada plot --sweep`).
//! Resumable: finished runs are kept, an interrupted one resumes from its
//! last epoch. Calls into one folder add up: the table keeps the rows of
//! earlier calls (other methods or seeds) made with the same train flags and
//! verdict, and leaves out, saying so, those made with others.

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
    /// The search space of every run: nb201 | nb-macro [default: nb201] (the same as the train
    /// flag `-- --space S`).
    #[arg(long, value_enum)]
    pub space: Option<crate::arch::Space>,
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
    /// Device of every run: cpu | cuda | cuda:N | cuda-emu [default: cpu].
    #[arg(long)]
    pub device: Option<Device>,
    /// CPU threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress display (the runs' results are still printed).
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
    /// Kendall tau among the true top 5% and 10%.
    #[serde(default)]
    pub kendall_tau_top5: f64,
    #[serde(default)]
    pub kendall_tau_top10: f64,
    pub archs: usize,
    /// Test images each architecture was scored on.
    pub images: usize,
    pub train_seconds: f64,
    /// The train flags every run of the sweep shared (after `--`).
    #[serde(default)]
    pub train_flags: String,
    /// What the run was judged against ([`VerdictSpec`]'s words; empty in
    /// tables of older versions).
    #[serde(default)]
    pub verdict: String,
}

impl SweepRow {
    /// Made with the train flags and verdict of the table being written.
    fn same_settings(&self, flags: &str, spec: &VerdictSpec) -> bool {
        self.train_flags == flags && self.verdict == spec.to_string()
    }
    /// The row of this method and seed.
    fn same_run(&self, method: &str, seed: u64) -> bool {
        self.method == method && self.seed == seed
    }
}

/// The run directory of a variant and seed: the label with characters a path dislikes replaced.
fn run_dir(out: &std::path::Path, label: &str, seed: u64) -> PathBuf {
    let name: String = label.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    out.join(format!("{name}-seed{seed}"))
}

pub fn run(mut a: SweepArgs) -> anyhow::Result<()> {
    if let Some(space) = a.space {
        if a.train.iter().any(|f| f.split('=').next() == Some("--space")) {
            bail!("--space is given twice, to the sweep and as a train flag after --: give it once");
        }
        a.train.splice(0..0, ["--space".to_string(), space.to_string()]);
    }
    let variants: Vec<Variant> = a.methods.split(',').map(str::parse).collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(!variants.is_empty(), "--methods names no method");
    for flag in a.train.iter().chain(variants.iter().flat_map(|v| &v.flags)) {
        let name = flag.split('=').next().unwrap_or(flag);
        if ["--out", "--seed", "--resume"].contains(&name) {
            bail!(
                "{name} is not a train flag of a sweep: the sweep owns its folder (pada sweep --out DIR) and sets each run's --out, --seed and --resume itself (--seeds chooses the seeds)"
            );
        }
        if ["--ground-truth", "--verdict-images", "--verdict-archs", "--no-verdict"].contains(&name) {
            bail!("{name} is a flag of the sweep itself, not a train flag: give it before --, where it applies to every run's verdict");
        }
    }
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
            let t = TrainCli::try_parse_from(&argv).map_err(|e| {
                // clap's first line, without its "error: "
                let text = e.to_string();
                let first = text.lines().next().unwrap_or_default().trim_start_matches("error: ").to_string();
                anyhow::anyhow!("--methods {} with the train flags {:?}: {first}", v.label, a.train.join(" "))
            })?;
            let config = t.train.config();
            config.validate().with_context(|| format!("--methods {}", v.label))?;
            plans.push((v.clone(), seed, dir, config));
        }
    }
    let (data, space) = (plans[0].3.data.clone(), plans[0].3.space);
    if let Some((v, ..)) = plans.iter().find(|p| p.3.space != space) {
        bail!("--methods {}: every run of a sweep is in one search space ({space})", v.label);
    }
    let ground_truth = match &a.ground_truth {
        Some(t) => t.clone(),
        None => match space.benchmark(&data) {
            Some(t) => t,
            None => bail!(
                "--ground-truth is needed on --data {data}, which has no built-in ground truth in {space} (a built-in table such as nb201:cifar10, or a CSV)"
            ),
        },
    };
    let images = a.verdict_images.unwrap_or_else(|| crate::verdict::default_images(&data));
    let spec = crate::verdict::checked(VerdictSpec { ground_truth, images, archs: a.verdict_archs }, space)?;
    if let Some(note) = crate::verdict::mismatch_note(&spec.ground_truth, &data, &data.to_string()) {
        crate::logln!("{note}");
    }
    for p in &mut plans {
        p.3.verdict = crate::train::VerdictPlan::Judge(spec.clone());
    }
    // one backend serves every run
    let (device, precision) = (plans[0].3.device.clone(), plans[0].3.precision);
    if let Some((v, ..)) = plans.iter().find(|p| p.3.device != device || p.3.precision != precision) {
        bail!("--methods {}: every run of a sweep runs on one device with one precision ({device}, {precision})", v.label);
    }
    let device: Device = device.parse()?;
    // a run kept from before must have been asked for with these settings
    for (v, seed, dir, config) in &plans {
        if dir.join(run::CONFIG).exists() {
            let kept = run::read_record(dir)?.train;
            let differences = config_differences(&kept, config)?;
            if !differences.is_empty() {
                bail!(
                    "{} (--methods {} seed {seed}) was trained with other settings than this sweep asks for: {}. Keep the sweep's train flags as they were, choose another --out, or delete that run directory to train it again",
                    dir.display(),
                    v.label,
                    differences.join(", ")
                );
            }
        }
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    let flags = a.train.join(" ");
    with_backend(&device, Some(precision), Job { plans, spec, out: a.out, quiet: a.quiet, flags })
}

/// The training settings (the verdict aside: a changed verdict is made
/// again, not an error) in which a kept run differs from the asked one, as
/// "epochs 4 (asked: 5)".
fn config_differences(kept: &crate::train::TrainConfig, asked: &crate::train::TrainConfig) -> anyhow::Result<Vec<String>> {
    let as_map = |c: &crate::train::TrainConfig| -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
        let mut v = serde_json::to_value(c)?;
        let map = v.as_object_mut().context("a config is a JSON object")?;
        map.remove("verdict");
        Ok(map.clone())
    };
    let (kept, asked) = (as_map(kept)?, as_map(asked)?);
    Ok(asked
        .iter()
        .filter(|(k, v)| kept.get(*k) != Some(*v))
        .map(|(k, v)| format!("{} {} (asked: {v})", k.replace('_', "-"), kept.get(k).map_or("unset".to_string(), |x| x.to_string())))
        .collect())
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
    /// The train flags after `--`, recorded in sweep.csv and sweep.md.
    flags: String,
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
                crate::logln!("reference rows (parameter count, FLOPs, zero-cost proxies) for the C={} N={} runs...", c.channels, c.cells);
            }
            let size = c.supernet(&data);
            let r = crate::verdict::references(be, &self.spec.ground_truth, &truth, size, &data, self.quiet)?;
            by_size.insert((c.channels, c.cells), r.clone());
            Ok(r)
        };
        let references = references_of(&self.plans[0].3)?;
        write_atomic(&self.out.join(REFERENCES), &serde_json::to_vec_pretty(&references)?)?;
        let remade = |r: &SweepRow| self.plans.iter().any(|(v, seed, ..)| r.same_run(&v.label, *seed));
        let other = read_rows(&self.out)?.iter().filter(|r| !r.same_settings(&self.flags, &self.spec) && !remade(r)).count();
        if other > 0 {
            crate::logln!(
                "{}: leaving out {other} earlier row(s) made with other train flags or another verdict (their runs stay in the folder); this table: train flags `{}`, {}",
                self.out.join(TABLE).display(),
                self.flags,
                self.spec
            );
        }
        for (k, (v, seed, dir, config)) in self.plans.iter().enumerate() {
            let verdict_file = dir.join(VERDICT);
            let summary_file = dir.join(run::SUMMARY);
            let kept: Option<Verdict> = match verdict_file.exists() && summary_file.exists() {
                true => Some(
                    serde_json::from_slice(&std::fs::read(&verdict_file)?)
                        .with_context(|| format!("{}: unreadable", verdict_file.display()))?,
                ),
                false => None,
            };
            let verdict: Verdict = match kept {
                Some(same) if same.spec.as_ref() == Some(&self.spec) => {
                    if !self.quiet {
                        crate::logln!("[{}/{}] {} seed {seed}: done before, kept ({})", k + 1, self.plans.len(), v.label, dir.display());
                    }
                    same
                }
                Some(old) => {
                    crate::logln!(
                        "[{}/{}] {} seed {seed}: trained before; judging it again: its verdict was {}, this sweep asks for {} ({})",
                        k + 1,
                        self.plans.len(),
                        v.label,
                        old.spec.as_ref().map_or("made with unrecorded settings".to_string(), |s| s.to_string()),
                        self.spec,
                        dir.display()
                    );
                    crate::verdict::judge(be, dir, &self.spec, Some(references_of(config)?), self.quiet)?
                }
                None => {
                    let resume = dir.join(run::CONFIG).exists();
                    crate::logln!(
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
                            crate::logln!(
                                "{i}: continue the sweep with the same command; finished runs are kept and {} resumes",
                                dir.display()
                            );
                            std::process::exit(130);
                        }
                        return Err(e.context(format!("{} seed {seed}", v.label)));
                    }
                    crate::verdict::judge(be, dir, &self.spec, Some(references_of(config)?), self.quiet)?
                }
            };
            let summary: run::Summary = serde_json::from_slice(&std::fs::read(&summary_file)?)?;
            let c = &verdict.supernet;
            if !self.quiet {
                crate::logln!(
                    "    Kendall tau {:.3}, Spearman {:.3}, predicted best has true rank {} of {}",
                    c.kendall_tau,
                    c.spearman_rho,
                    c.predicted_best_true_rank,
                    c.n
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
                kendall_tau_top5: c.kendall_tau_top5,
                kendall_tau_top10: c.kendall_tau_top10,
                archs: c.n,
                images: verdict.images,
                train_seconds: summary.train_seconds,
                train_flags: self.flags.clone(),
                verdict: self.spec.to_string(),
            });
            write_table(&self.out, &rows, &references, &self.spec, &self.flags)?;
        }
        crate::out!("{}", std::fs::read_to_string(self.out.join("sweep.md"))?);
        Ok(())
    }
}

/// "mean +- sample sd" with `digits` decimals; the mean alone for one seed (it
/// has no spread). Undefined values (a Kendall tau where a predictor ties
/// every architecture compared) are left out and counted.
fn mean_sd(all: &[f64], digits: usize) -> String {
    let v: Vec<f64> = all.iter().copied().filter(|x| x.is_finite()).collect();
    let undefined = match all.len() - v.len() {
        0 => String::new(),
        k => format!(" ({k} of {} undefined: tied predictions)", all.len()),
    };
    if v.is_empty() {
        return format!("undefined{undefined}");
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return format!("{mean:.digits$}{undefined}");
    }
    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    format!("{mean:.digits$} +- {sd:.digits$}{undefined}")
}

/// The sweep's reference rows (parameter count, FLOPs, proxies), as `pada plot --sweep` draws them:
/// the sweep's own, not those of a run's verdict (a run kept from an earlier sweep may hold older ones).
pub const REFERENCES: &str = "sweep.references.json";

/// The sweep's table, one row per run.
pub const TABLE: &str = "sweep.csv";

/// The rows of `out`'s sweep.csv (none before its first run).
pub fn read_rows(out: &std::path::Path) -> anyhow::Result<Vec<SweepRow>> {
    let path = out.join(TABLE);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut rd = csv::Reader::from_path(&path).with_context(|| format!("{}: unreadable", path.display()))?;
    rd.deserialize().collect::<Result<_, _>>().with_context(|| format!("{}: not a sweep table of this version", path.display()))
}

/// sweep.csv and sweep.md, rewritten after every run: this call's rows after
/// those of earlier calls (read again each time, so that sweeps running side
/// by side into one folder each keep the other's) with the same settings and
/// other methods or seeds.
fn write_table(out: &std::path::Path, rows: &[SweepRow], references: &[Reference], spec: &VerdictSpec, flags: &str) -> anyhow::Result<()> {
    let mut all: Vec<SweepRow> = read_rows(out)?
        .into_iter()
        .filter(|e| e.same_settings(flags, spec) && !rows.iter().any(|r| e.same_run(&r.method, r.seed)))
        .collect();
    all.extend(rows.iter().cloned());
    let rows = &all[..];
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r)?;
    }
    write_atomic(&out.join(TABLE), &w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)?;
    let mut md = format!(
        "Kendall tau against {} ({} architectures, scored on {} test images); mean +- sd over seeds; train flags: `{}`\n\n| method | seeds | Kendall tau | Spearman | Kendall tau, true top 10% | Kendall tau, true top 5% | true rank of the predicted best | train s |\n|---|---|---|---|---|---|---|---|\n",
        spec.ground_truth,
        rows.first().map_or(0, |r| r.archs),
        rows.first().map_or(0, |r| r.images),
        if flags.is_empty() { "(none)" } else { flags }
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
            "| {l} | {n} | {} | {} | {} | {} | {} | {secs:.0} |\n",
            mean_sd(&of(|r| r.kendall_tau), 3),
            mean_sd(&of(|r| r.spearman_rho), 3),
            mean_sd(&of(|r| r.kendall_tau_top10), 3),
            mean_sd(&of(|r| r.kendall_tau_top5), 3),
            mean_sd(&of(|r| r.predicted_best_true_rank as f64), 1)
        );
    }
    for r in references {
        let c = &r.consistency;
        md += &format!(
            "| *{}* | | {:.3} | {:.3} | {:.3} | {:.3} | {} | |\n",
            r.name, c.kendall_tau, c.spearman_rho, c.kendall_tau_top10, c.kendall_tau_top5, c.predicted_best_true_rank
        );
    }
    write_atomic(&out.join("sweep.md"), md.as_bytes())
}
