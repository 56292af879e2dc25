//! `pada rank`: score architectures with a trained supernet's weights.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use serde::{Deserialize, Serialize};

use super::device::{with_backend, BackendJob, Device};
use crate::arch::Arch;
use crate::backend::Backend;
use crate::data::DataSpec;
use crate::eval::EvalSet;
use crate::progress::Reporter;
use crate::rank::{load_run, score, ArchSelection, Scored};
use crate::rankstats::Consistency;
use crate::table::{join, read_arch_table, ArchTable, TableSource};

pub const HEADER: [&str; 3] = ["arch", "accuracy", "loss"];

/// Where a ground truth comes from, on the command line of rank, search and compare.
#[derive(Args, Debug, Clone)]
pub struct GroundTruthArgs {
    /// The ground truth: embedded (the embedded data's stand-alone accuracies), nb201:cifar10,
    /// nb201:cifar100, nb201:imagenet16 (NAS-Bench-201, built in), or a CSV with an architecture
    /// column and an accuracy column (e.g. `pada groundtruth` output).
    #[arg(long, value_name = "TABLE")]
    pub ground_truth: Option<TableSource>,
    /// The ground truth's accuracy column [default: test_accuracy, as `pada groundtruth` writes; the set's for nb201:SET].
    #[arg(long, value_name = "NAME")]
    pub gt_column: Option<String>,
    /// The ground truth's architecture column [default: `arch` if it holds NB201 strings, else the first column that does].
    #[arg(long, value_name = "NAME")]
    pub gt_arch_column: Option<String>,
}

impl GroundTruthArgs {
    pub fn load(&self) -> anyhow::Result<Option<ArchTable>> {
        self.ground_truth
            .as_ref()
            .map(|t| read_arch_table(t, self.gt_arch_column.as_deref(), self.gt_column.as_deref().unwrap_or(t.default_column())))
            .transpose()
    }
}

#[derive(Args, Debug)]
pub struct RankArgs {
    /// The training run directory (config.json, supernet.safetensors).
    #[arg(long)]
    pub run: PathBuf,
    /// Architectures: all (the 15,625 of NAS-Bench-201) | FILE (a CSV with an arch column) | N (N distinct random ones, from the run's seed).
    #[arg(long, default_value = "all")]
    pub archs: ArchSelection,
    /// The architecture column of --archs FILE.
    #[arg(long, value_name = "NAME")]
    pub arch_column: Option<String>,
    /// Data whose test split scores the architectures [default: the run's data].
    #[arg(long)]
    pub data: Option<DataSpec>,
    /// Evaluation batch size (batch norm uses each batch's statistics).
    #[arg(long, default_value_t = 512)]
    pub batch_size: usize,
    /// Score on the first N test images (in their stored, class-mixed order) | all [default: 1000
    /// on the CPU, which rank as well as 2,000 in half the time (README); all on a GPU].
    #[arg(long)]
    pub images: Option<ImageCount>,
    #[command(flatten)]
    pub gt: GroundTruthArgs,
    /// One architecture per isomorphism class (NAS-Bench-201 has 6,466, NAS-Bench-Macro 3,969).
    #[arg(long)]
    pub unique: bool,
    /// Output CSV (arch,accuracy,loss) [default: RUN/rank.csv]; its summary goes beside it as .summary.json.
    /// An existing file of earlier scores is continued, not redone.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Score only shard I of N (0 <= I < N): every N-th architecture of the selection from the
    /// I-th on, so that N processes (GPUs, machines, a Slurm job array) split the work; writes
    /// RUN/rank.shard-I-of-N.csv by default. Join the shards with --merge.
    #[arg(long, value_name = "I/N", conflicts_with = "merge")]
    pub shard: Option<Shard>,
    /// Join finished shards (the files given, or RUN/rank.shard-*-of-*.csv) into --out
    /// [RUN/rank.csv] and report as one rank would, refusing overlaps, missing or unfinished
    /// shards, and shards of another run or other settings.
    #[arg(long, num_args = 0.., value_name = "SHARD_CSV")]
    pub merge: Option<Vec<PathBuf>>,
    /// Device: cpu | cuda | cuda:N | cuda-emu; a list (cuda:0,1,2,3 or cuda:0,cuda:1) runs one
    /// shard per device, each in its own process, then merges them.
    #[arg(long, value_delimiter = ',', default_value = "cpu")]
    pub device: Vec<Device>,
    /// GPU convolutions: fp32 (CUDA cores), tf32 or bf16 (tensor cores, FP32 sums) [default: tf32 on cuda, as PyTorch; the CPU is exact fp32].
    #[arg(long, value_enum)]
    pub precision: Option<crate::backend::Precision>,
    /// CPU threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress display.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `pada rank --images`: a number of test images, or all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageCount {
    All,
    First(usize),
}

impl std::str::FromStr for ImageCount {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "all" => Ok(ImageCount::All),
            _ => match s.parse::<usize>() {
                Ok(n) if n > 0 => Ok(ImageCount::First(n)),
                _ => bail!("--images {s:?}: expected all or a number of test images (at least 1)"),
            },
        }
    }
}

/// `--shard I/N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        let parsed = s.split_once('/').and_then(|(i, n)| Some((i.trim().parse::<usize>().ok()?, n.trim().parse::<usize>().ok()?)));
        match parsed {
            Some((index, count)) if index < count => Ok(Shard { index, count }),
            _ => bail!("--shard {s:?}: expected I/N with 0 <= I < N, e.g. 0/4"),
        }
    }
}

impl Shard {
    /// The shard's architectures: positions index, index + count, ... of the selection.
    pub fn of<T: Copy>(self, all: &[T]) -> Vec<T> {
        all.iter().skip(self.index).step_by(self.count).copied().collect()
    }
    pub fn default_file(self, run: &Path) -> PathBuf {
        run.join(format!("rank.shard-{}-of-{}.csv", self.index, self.count))
    }
}

/// `rank.summary.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RankSummary {
    pub run: String,
    pub data: String,
    pub test_images: usize,
    pub batch_size: usize,
    /// What was ranked: --archs, --unique, and the supernet's weights (SHA-256), so that
    /// `--merge` joins only shards of one ranking.
    #[serde(default)]
    pub selection: String,
    #[serde(default)]
    pub supernet_sha256: String,
    #[serde(default)]
    pub shard: Option<Shard>,
    pub architectures: usize,
    pub seconds_this_invocation: f64,
    pub archs_per_sec: f64,
    pub top10: Vec<(String, f64)>,
    pub ground_truth: Option<String>,
    pub gt_column: Option<String>,
    pub consistency: Option<Consistency>,
}

pub fn summary_path(out: &Path) -> PathBuf {
    out.with_extension("summary.json")
}

pub fn run(a: RankArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.batch_size > 0, "--batch-size must be at least 1");
    if let Some(files) = a.merge.clone() {
        return merge(&a, files);
    }
    match a.device.as_slice() {
        [one] => with_backend(&one.clone(), a.precision, a),
        [] => bail!("--device names no device"),
        several => {
            anyhow::ensure!(a.shard.is_none(), "--shard with several --device: each device already runs one shard");
            let files = run_shards(&a, several)?;
            merge(&a, files)
        }
    }
}

/// One `pada rank --shard I/N --device D_I` process per device, run together;
/// the shard files they write.
fn run_shards(a: &RankArgs, devices: &[Device]) -> anyhow::Result<Vec<PathBuf>> {
    // this invocation's arguments without --device and --out (each shard writes its own file)
    let mut args: Vec<String> = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--device" | "--out" => {
                it.next();
            }
            s if s.starts_with("--device=") || s.starts_with("--out=") => {}
            _ => args.push(arg),
        }
    }
    let exe = std::env::current_exe().context("cannot find the pada executable to run the shards")?;
    let n = devices.len();
    let mut children = Vec::new();
    for (i, d) in devices.iter().enumerate() {
        let child = std::process::Command::new(&exe)
            .args(&args)
            .args(["--device", &d.to_string(), "--shard", &format!("{i}/{n}")])
            .stdout(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start the shard on {d}"))?;
        children.push((i, d, child));
    }
    let mut failed = Vec::new();
    for (i, d, mut child) in children {
        let status = child.wait().with_context(|| format!("waiting for the shard on {d}"))?;
        if !status.success() {
            failed.push(format!("shard {i}/{n} on {d} ({status})"));
        }
    }
    anyhow::ensure!(failed.is_empty(), "{} failed (finished rows are kept: rerun to continue)", failed.join(", "));
    Ok((0..n).map(|i| Shard { index: i, count: n }.default_file(&a.run)).collect())
}

/// --archs and --unique as recorded in the summary.
fn selection(a: &RankArgs) -> String {
    let column = a.arch_column.as_deref().map(|c| format!(" (column {c})")).unwrap_or_default();
    format!("{}{column}{}", a.archs, if a.unique { ", unique" } else { "" })
}

fn supernet_sha256(run: &Path) -> anyhow::Result<String> {
    let path = run.join(crate::train::run::WEIGHTS);
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(crate::data::sha256_hex(&bytes))
}

/// `--merge`: the shards' rows joined into one ranking, after checking that they are
/// the N shards of one ranking, each finished.
fn merge(a: &RankArgs, files: Vec<PathBuf>) -> anyhow::Result<()> {
    let files = if files.is_empty() {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&a.run)
            .with_context(|| format!("cannot read {}", a.run.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("rank.shard-") && n.ends_with(".csv")))
            .collect();
        found.sort();
        anyhow::ensure!(!found.is_empty(), "--merge: no rank.shard-*-of-*.csv in {}", a.run.display());
        found
    } else {
        files
    };
    let sha = supernet_sha256(&a.run)?;
    let mut shards: Vec<(PathBuf, Shard, RankSummary)> = Vec::new();
    for f in &files {
        let sp = summary_path(f);
        let text = std::fs::read_to_string(&sp)
            .with_context(|| format!("--merge {}: no {} (has that shard finished?)", f.display(), sp.display()))?;
        let s: RankSummary = serde_json::from_str(&text).with_context(|| format!("{}: not a rank summary", sp.display()))?;
        let Some(shard) = s.shard else { bail!("--merge {}: not a shard (ranked without --shard)", f.display()) };
        if s.supernet_sha256 != sha {
            bail!("--merge {}: ranked with other weights than {}", f.display(), a.run.join(crate::train::run::WEIGHTS).display());
        }
        if let Some((g, first_shard, first)) = shards.first() {
            let same = (&first.data, first.test_images, first.batch_size, &first.selection, first_shard.count)
                == (&s.data, s.test_images, s.batch_size, &s.selection, shard.count);
            anyhow::ensure!(
                same,
                "--merge: {} and {} rank differently (data, test images, batch size, --archs or the number of shards)",
                g.display(),
                f.display()
            );
            if let Some((h, ..)) = shards.iter().find(|(_, t, _)| *t == shard) {
                bail!("--merge: {} and {} are both shard {}/{}", h.display(), f.display(), shard.index, shard.count);
            }
        }
        shards.push((f.clone(), shard, s));
    }
    let count = shards[0].1.count;
    let missing: Vec<String> =
        (0..count).filter(|i| !shards.iter().any(|(_, s, _)| s.index == *i)).map(|i| format!("{i}/{count}")).collect();
    anyhow::ensure!(missing.is_empty(), "--merge: shard(s) {} missing", missing.join(", "));
    let mut done: HashMap<Arch, (f64, f64)> = HashMap::new();
    let mut archs = Vec::new();
    let mut rows = Vec::new();
    for (f, _, s) in &shards {
        let shard_rows = crate::results::read_done(f, &HEADER)?;
        anyhow::ensure!(
            shard_rows.len() == s.architectures,
            "--merge {}: {} rows, but the shard ranked {} architectures",
            f.display(),
            shard_rows.len(),
            s.architectures
        );
        for (i, r) in shard_rows.into_iter().enumerate() {
            let (g, scores) = parse_row(f, i, &r)?;
            anyhow::ensure!(done.insert(g, scores).is_none(), "--merge {}: {g} is in another shard too", f.display());
            archs.push(g);
            rows.push(r);
        }
    }
    let out = a.out.clone().unwrap_or_else(|| a.run.join("rank.csv"));
    crate::results::write(&out, &HEADER, &rows)?;
    let first = &shards[0].2;
    let record = crate::train::run::read_record(&a.run)?;
    let secs: f64 = shards.iter().map(|(.., s)| s.seconds_this_invocation).sum();
    let ranked = Ranked {
        archs,
        done,
        out,
        secs,
        scored: rows.len(),
        test_images: first.test_images,
        data: first.data.clone(),
        supernet_sha256: sha,
        shard: None,
        selection: first.selection.clone(),
        batch_size: first.batch_size,
    };
    report(a, &record, ranked)
}

fn parse_row(file: &Path, i: usize, r: &[String]) -> anyhow::Result<(Arch, (f64, f64))> {
    let g: Arch = r[0].parse().map_err(|e| anyhow::anyhow!("{} row {}: {e}", file.display(), i + 2))?;
    let num = |s: &str| s.parse::<f64>().with_context(|| format!("{} row {}: {s:?} is not a number", file.display(), i + 2));
    Ok((g, (num(&r[1])?, num(&r[2])?)))
}

impl BackendJob for RankArgs {
    fn run<B: Backend>(self, be: &B) -> anyhow::Result<()> {
        let a = self;
        let (record, net) = load_run(be, &a.run)?;
        a.gt.load()?; // a bad ground truth fails now, not after the ranking
        let spec = a.data.clone().unwrap_or(record.train.data.clone());
        let data = spec.load()?;
        if data.shape() != net.config.input || data.classes() != net.config.classes {
            bail!(
                "--data {spec}: {} images of {} classes, but the supernet in {} takes {} images of {} classes",
                data.shape(),
                data.classes(),
                a.run.display(),
                net.config.input,
                net.config.classes
            );
        }
        if let Some(note) = a.gt.ground_truth.as_ref().and_then(|gt| crate::verdict::mismatch_note(gt, &spec, &data.name)) {
            crate::logln!("{note}");
        }
        let mut test = data.test.clone();
        let images = match a.images {
            Some(ImageCount::All) => test.len(),
            Some(ImageCount::First(n)) => {
                if n > test.len() && !a.quiet {
                    crate::logln!("note: --images {n}, but the test split has {}: scoring on all {}", test.len(), test.len());
                }
                n.min(test.len())
            }
            None if a.device.iter().all(|d| *d == Device::Cpu) => 1000.min(test.len()),
            None => test.len(),
        };
        test = test.subset(&(0..images).collect::<Vec<_>>());
        if a.batch_size > test.len() && !a.quiet {
            crate::logln!("note: --batch-size {} is larger than the {} test images: one batch of {}", a.batch_size, test.len(), test.len());
        }
        let mut archs =
            a.archs.resolve(record.train.space, record.train.seed, crate::rank::Draw::Scoring, a.arch_column.as_deref(), a.unique)?;
        if let Some(shard) = a.shard {
            archs = shard.of(&archs);
        }
        let out = a.out.clone().unwrap_or_else(|| a.shard.map_or_else(|| a.run.join("rank.csv"), |s| s.default_file(&a.run)));
        let sha = supernet_sha256(&a.run)?;
        let settings = crate::results::settings([
            ("--data", spec.to_string()),
            ("--images", test.len().to_string()),
            ("--batch-size", a.batch_size.to_string()), // batch statistics
            ("--precision", format!("{:?}", a.precision.unwrap_or_default()).to_lowercase()),
            ("weights (sha256)", sha.clone()),
        ]);
        let done_rows = crate::results::resume(&out, &HEADER, &settings)?;
        let mut done: HashMap<Arch, (f64, f64)> = HashMap::new();
        for (i, r) in done_rows.iter().enumerate() {
            let (g, scores) = parse_row(&out, i, r)?;
            done.insert(g, scores);
        }
        let todo: Vec<Arch> = archs.iter().filter(|g| !done.contains_key(g)).copied().collect();
        if !a.quiet {
            crate::logln!(
                "ranking {} architectures ({} already in {}) on {} test images of {} (batch {}), {}",
                archs.len(),
                archs.len() - todo.len(),
                out.display(),
                test.len(),
                data.name,
                a.batch_size,
                be.name()
            );
        }
        let set = EvalSet::new(be, &test, &data.norm, a.batch_size);
        let mut progress = Reporter::new(a.quiet, todo.len() as u64, "[{bar:30}] {pos}/{len} {msg}");
        let (start, mut scored) = (Instant::now(), 0usize);
        let quiet = a.quiet;
        score(be, &net, &set, &todo, |chunk: &[Scored]| {
            if scored == 0 && !quiet && chunk.len() < todo.len() {
                // the estimate up front, from the first chunk
                let secs = start.elapsed().as_secs_f64();
                crate::logln!(
                    "the first {} architectures took {:.1} s: the {} take about {} (pada rank --images and --archs make it shorter; it continues where it stops)",
                    chunk.len(),
                    secs,
                    todo.len(),
                    crate::progress::duration(secs / chunk.len() as f64 * todo.len() as f64)
                );
            }
            let rows: Vec<Vec<String>> =
                chunk.iter().map(|s| vec![s.arch.to_string(), format!("{:.4}", s.accuracy), format!("{:.6}", s.loss)]).collect();
            crate::results::append(&out, &HEADER, &rows)?;
            for s in chunk {
                done.insert(s.arch, (s.accuracy, s.loss));
            }
            scored += chunk.len();
            progress.update(scored as u64, todo.len() as u64, || {
                format!("ranked {scored}/{}: {}", todo.len(), crate::progress::rate_and_eta(scored, todo.len(), start, "architectures"))
            });
            Ok(())
        })?;
        progress.finish();
        let secs = start.elapsed().as_secs_f64();
        let ranked = Ranked {
            archs,
            done,
            out,
            secs,
            scored,
            test_images: test.len(),
            data: spec.to_string(),
            supernet_sha256: sha,
            shard: a.shard,
            selection: selection(&a),
            batch_size: a.batch_size,
        };
        report(&a, &record, ranked)
    }
}

/// Scores of a ranking, this invocation's or merged from shards.
struct Ranked {
    archs: Vec<Arch>,
    done: HashMap<Arch, (f64, f64)>,
    out: PathBuf,
    secs: f64,
    scored: usize,
    test_images: usize,
    data: String,
    supernet_sha256: String,
    shard: Option<Shard>,
    selection: String,
    batch_size: usize,
}

/// A note when some of `archs` are the same network as another (one
/// isomorphism class): such a ranking counts a class once per member.
pub fn duplicates_note(archs: &[Arch]) -> Option<String> {
    let classes: std::collections::HashSet<String> = archs.iter().map(|a| a.canonical()).collect();
    (classes.len() < archs.len()).then(|| {
        format!(
            "note: {} of the {} architectures are the same network as another (isomorphism classes: {}); the metrics count each class once per member; --unique ranks one per class",
            archs.len() - classes.len(),
            archs.len(),
            classes.len()
        )
    })
}

/// The summary file, the plots and the printed report of a ranking.
fn report(a: &RankArgs, record: &crate::train::run::RunRecord, r: Ranked) -> anyhow::Result<()> {
    let gt = a.gt.load()?;
    let Ranked { archs, done, out, secs, scored, .. } = r;
    if let Some(note) = duplicates_note(&archs) {
        crate::logln!("{note}");
    }
    // the requested architectures' scores, as read back (rounded as in the file)
    let pred = ArchTable {
        archs: archs.clone(),
        values: archs.iter().map(|g| done[g].0).collect(),
        arch_column: "arch".into(),
        value_column: "accuracy".into(),
    };
    let mut order: Vec<usize> = (0..archs.len()).collect();
    order.sort_by(|&x, &y| pred.values[y].total_cmp(&pred.values[x]).then(x.cmp(&y)));
    let top10: Vec<(String, f64)> = order.iter().take(10).map(|&i| (archs[i].to_string(), pred.values[i])).collect();
    let consistency = match &gt {
        Some(t) => {
            let (ja, jp, jt) = join(&pred, t, false);
            let names: Vec<String> = ja.iter().map(|g| g.to_string()).collect();
            let c =
                Consistency::of(&names, &jp, &jt).with_context(|| format!("joining with {}", a.gt.ground_truth.as_ref().expect("gt")))?;
            let stem = out.with_extension("");
            let title = format!("{} supernet ({} archs): Kendall tau {:.3}", record.train.method.name(), c.n, c.kendall_tau);
            let points = jp.iter().copied().zip(jt.iter().copied()).collect();
            let files = crate::plot::chart(
                &stem,
                &title,
                "supernet accuracy (%)",
                &format!("true accuracy ({})", t.value_column),
                &[crate::plot::Series { name: String::new(), points }],
                true,
            )?;
            if !a.quiet {
                crate::logln!("plots: {} {}", files[0].display(), files[1].display());
            }
            Some(c)
        }
        None => None,
    };
    let summary = RankSummary {
        run: a.run.display().to_string(),
        data: r.data,
        test_images: r.test_images,
        batch_size: r.batch_size,
        selection: r.selection,
        supernet_sha256: r.supernet_sha256,
        shard: r.shard,
        architectures: archs.len(),
        seconds_this_invocation: secs,
        archs_per_sec: scored as f64 / secs.max(1e-9),
        top10,
        ground_truth: a.gt.ground_truth.as_ref().map(|t| t.to_string()),
        gt_column: gt.as_ref().map(|t| t.value_column.clone()),
        consistency: consistency.clone(),
    };
    crate::fsutil::write_atomic(&summary_path(&out), serde_json::to_string_pretty(&summary)?.as_bytes())?;
    crate::outln!("{} architectures scored ({:.2}/s this run); {}", archs.len(), summary.archs_per_sec, out.display());
    crate::outln!("best by supernet accuracy:");
    for (arch, acc) in summary.top10.iter().take(5) {
        crate::outln!("  {acc:7.2}  {arch}");
    }
    if let Some(c) = consistency {
        crate::out!("{}", c.report());
    }
    Ok(())
}
