//! `pada compare`: ranking consistency between any two tables.

use std::path::PathBuf;

use clap::Args;

use crate::rankstats::Consistency;
use crate::table::{join, read_arch_table, TableSource};

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Predictions (e.g. `pada rank` output): a CSV, or a built-in table (embedded, nb201:cifar10|cifar100|imagenet16).
    pub pred: TableSource,
    /// Ground truth: a CSV (e.g. `pada groundtruth` output), embedded, or nb201:cifar10|cifar100|imagenet16.
    pub gt: TableSource,
    /// Score column of PRED [default: accuracy, as `pada rank` writes; a built-in table's own].
    #[arg(long)]
    pub pred_column: Option<String>,
    /// Accuracy column of GT [default: test_accuracy, as `pada groundtruth` writes; a built-in table's own].
    #[arg(long)]
    pub gt_column: Option<String>,
    /// Architecture column of PRED [default: `arch` if it holds architecture strings, else the first column that does].
    #[arg(long, value_name = "NAME")]
    pub pred_arch_column: Option<String>,
    /// Architecture column of GT [default: as for PRED].
    #[arg(long, value_name = "NAME")]
    pub gt_arch_column: Option<String>,
    /// One architecture per isomorphism class (the first of each in PRED's order).
    #[arg(long)]
    pub unique: bool,
    /// Also write the metrics as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also plot PRED against GT to STEM.png and STEM.svg.
    #[arg(long, value_name = "STEM")]
    pub plot: Option<PathBuf>,
}

pub fn run(a: CompareArgs) -> anyhow::Result<()> {
    let pred =
        read_arch_table(&a.pred, a.pred_arch_column.as_deref(), a.pred_column.as_deref().unwrap_or(a.pred.default_prediction_column()))?;
    let gt = read_arch_table(&a.gt, a.gt_arch_column.as_deref(), a.gt_column.as_deref().unwrap_or(a.gt.default_column()))?;
    let (archs, p, t) = join(&pred, &gt, a.unique);
    if archs.len() < pred.archs.len() && !a.unique {
        crate::logln!("note: {} of {} architectures of {} are not in {}", pred.archs.len() - archs.len(), pred.archs.len(), a.pred, a.gt);
    }
    if let Some(note) = super::rank::duplicates_note(&archs) {
        crate::logln!("{note}");
    }
    let names: Vec<String> = archs.iter().map(|g| g.to_string()).collect();
    let c = Consistency::of(&names, &p, &t)?;
    crate::out!("{}", c.report());
    if let Some(j) = &a.json {
        crate::fsutil::write_atomic(j, serde_json::to_string_pretty(&c)?.as_bytes())?;
    }
    if let Some(stem) = &a.plot {
        let title = format!("{} vs {}: Kendall tau {:.3}", pred.value_column, gt.value_column, c.kendall_tau);
        let points = p.into_iter().zip(t).collect();
        crate::plot::chart(
            stem,
            &title,
            &pred.value_column,
            &gt.value_column,
            &[crate::plot::Series { name: String::new(), points }],
            true,
        )?;
    }
    Ok(())
}
