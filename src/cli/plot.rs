//! `pada plot`: training curves, path and data distributions, gradient
//! variance and the ranking scatter of one or several runs, as PNG and SVG.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::plot::{chart, dot_rows, DotRow, Series};
use crate::rankstats::Consistency;
use crate::table::{join, read_arch_table, TableSource};
use crate::train::run::{read_metrics, read_record};

#[derive(Args, Debug)]
pub struct PlotArgs {
    /// Run directories; several are drawn side by side.
    #[arg(long, required_unless_present = "sweep")]
    pub run: Vec<PathBuf>,
    /// A `pada sweep` folder: Kendall tau per method, every seed a point, with the reference rows.
    #[arg(long, value_name = "DIR", conflicts_with = "run")]
    pub sweep: Option<PathBuf>,
    /// Output folder [default: RUN/plots of the first run; the sweep folder].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `pada plot --sweep DIR`: DIR/kendall_tau.png and .svg.
fn plot_sweep(dir: &Path, out: &Path) -> anyhow::Result<()> {
    let rows = crate::cli::sweep::read_rows(dir)?;
    anyhow::ensure!(!rows.is_empty(), "{}: no runs yet (has the sweep finished a run?)", dir.join(crate::cli::sweep::TABLE).display());
    let mut dots: Vec<DotRow> = Vec::new();
    for r in &rows {
        match dots.iter_mut().find(|d| d.label == r.method) {
            Some(d) => d.values.push(r.kendall_tau),
            None => dots.push(DotRow { label: r.method.clone(), values: vec![r.kendall_tau], reference: false }),
        }
    }
    // the sweep's reference rows, below the methods
    let path = dir.join(crate::cli::sweep::REFERENCES);
    let bytes = std::fs::read(&path).map_err(|e| {
        anyhow::anyhow!("{}: {e} (an older sweep: run its command again to write it; finished runs are kept)", path.display())
    })?;
    let references: Vec<crate::verdict::Reference> =
        serde_json::from_slice(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    for r in references {
        dots.push(DotRow { label: r.name, values: vec![r.consistency.kendall_tau], reference: true });
    }
    let files =
        dot_rows(&out.join("kendall_tau"), "Kendall tau: every seed a dot, the bar its mean; grey: reference rows", "Kendall tau", &dots)?;
    crate::outln!("{}\n{}", files[0].display(), files[1].display());
    Ok(())
}

fn label(dir: &Path) -> anyhow::Result<String> {
    let r = read_record(dir)?;
    Ok(format!("{} ({})", r.train.method.name(), dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default()))
}

pub fn run(a: PlotArgs) -> anyhow::Result<()> {
    if let Some(dir) = &a.sweep {
        return plot_sweep(dir, a.out.as_deref().unwrap_or(dir));
    }
    let out = a.out.clone().unwrap_or_else(|| a.run[0].join("plots"));
    let mut written = Vec::new();
    let mut runs = Vec::new();
    for dir in &a.run {
        read_record(dir)?; // a missing or foreign directory says so
        let m = read_metrics(dir)?;
        anyhow::ensure!(!m.is_empty(), "{}: metrics.jsonl has no epochs yet", dir.display());
        runs.push((label(dir)?, m));
    }
    let per_run = |f: &dyn Fn(&crate::train::EpochMetrics) -> Option<f64>| -> Vec<Series> {
        runs.iter()
            .map(|(name, m)| Series {
                name: name.clone(),
                points: m.iter().filter_map(|e| f(e).map(|v| ((e.epoch + 1) as f64, v))).collect(),
            })
            .filter(|s| !s.points.is_empty())
            .collect()
    };
    written.extend(chart(&out.join("loss"), "training loss", "epoch", "cross-entropy", &per_run(&|e| Some(e.loss)), false)?);
    written.extend(chart(
        &out.join("accuracy"),
        "training accuracy of the sampled paths",
        "epoch",
        "top-1 accuracy (%)",
        &per_run(&|e| Some(e.accuracy)),
        false,
    )?);
    written.extend(chart(
        &out.join("data_ess"),
        "data distribution: effective sample size / N",
        "epoch",
        "ESS fraction",
        &per_run(&|e| Some(e.data.ess_fraction)),
        false,
    )?);
    let gv = per_run(&|e| e.gradvar.as_ref().map(|g| g.relative));
    if !gv.is_empty() {
        written.extend(chart(
            &out.join("gradient_variance"),
            "gradient variance / squared mean norm",
            "epoch",
            "relative variance",
            &gv,
            false,
        )?);
    }
    // the path distribution of each run (per-slot distributions averaged over slots)
    for (i, (name, m)) in runs.iter().enumerate() {
        let space = read_record(&a.run[i])?.train.space;
        let names = space.def().choice_names();
        let k = names.len();
        let series: Vec<Series> = names
            .iter()
            .enumerate()
            .map(|(choice, choice_name)| Series {
                name: choice_name.to_string(),
                points: m
                    .iter()
                    .map(|e| {
                        let p = &e.path_prob;
                        let slots = p.len() / k;
                        let v = (0..slots).map(|s| p[s * k + choice]).sum::<f64>() / slots as f64;
                        ((e.epoch + 1) as f64, v)
                    })
                    .collect(),
            })
            .collect();
        let stem = if runs.len() == 1 { out.join("path_distribution") } else { out.join(format!("path_distribution_{i}")) };
        let what = space.def().slot_name();
        written.extend(chart(&stem, &format!("{what} choice probability: {name}"), "epoch", "probability", &series, false)?);
    }
    // the ranking scatters: the verdict's, and `pada rank`'s where it ran with a ground truth
    for (i, dir) in a.run.iter().enumerate() {
        let stem = |name: &str| if a.run.len() == 1 { out.join(name) } else { out.join(format!("{name}_{i}")) };
        let verdict = dir.join(crate::verdict::VERDICT);
        if let Ok(bytes) = std::fs::read(&verdict) {
            let v: crate::verdict::Verdict = serde_json::from_slice(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", verdict.display()))?;
            let gt: TableSource = v.ground_truth.parse()?;
            let truth = read_arch_table(&gt, None, gt.default_column())?;
            let by_arch: std::collections::HashMap<String, f64> =
                truth.archs.iter().map(|g| g.to_string()).zip(truth.values.iter().copied()).collect();
            let points: Vec<(f64, f64)> = v.scores.iter().filter_map(|(arch, p)| by_arch.get(arch).map(|t| (*p, *t))).collect();
            let title =
                format!("{}: verdict, Kendall tau {:.3}, {} archs on {} images", runs[i].0, v.supernet.kendall_tau, v.supernet.n, v.images);
            written.extend(chart(
                &stem("verdict"),
                &title,
                "supernet accuracy (%)",
                &format!("true accuracy ({})", v.ground_truth),
                &[Series { name: String::new(), points }],
                true,
            )?);
        }
        let summary = dir.join("rank.summary.json");
        let Ok(text) = std::fs::read_to_string(&summary) else { continue };
        let s: super::rank::RankSummary = serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", summary.display()))?;
        let (Some(gt), Some(col)) = (s.ground_truth, s.gt_column) else { continue };
        let pred = read_arch_table(&TableSource::File(dir.join("rank.csv")), None, "accuracy")?;
        let truth = read_arch_table(&gt.parse()?, None, &col)?;
        let (archs, p, t) = join(&pred, &truth, false);
        let c = Consistency::of(&archs.iter().map(|g| g.to_string()).collect::<Vec<_>>(), &p, &t)?;
        let title = format!("{}: Kendall tau {:.3} ({} archs)", runs[i].0, c.kendall_tau, c.n);
        written.extend(chart(
            &stem("rank"),
            &title,
            "supernet accuracy (%)",
            &format!("true accuracy ({col})"),
            &[Series { name: String::new(), points: p.into_iter().zip(t).collect() }],
            true,
        )?);
    }
    for w in written {
        crate::outln!("{}", w.display());
    }
    Ok(())
}
