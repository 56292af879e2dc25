//! CSV tables keyed by NAS-Bench-201 architecture strings: ground truths
//! (the NB201 tables, `pada groundtruth` output) and predictions (`pada rank` output).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context};

use crate::arch::Genotype;

/// One numeric column of a table, by architecture.
#[derive(Clone, Debug)]
pub struct ArchTable {
    pub archs: Vec<Genotype>,
    pub values: Vec<f64>,
    pub arch_column: String,
    pub value_column: String,
}

fn read_csv(path: &Path) -> anyhow::Result<(Vec<String>, Vec<csv::StringRecord>)> {
    let mut rd = csv::ReaderBuilder::new().flexible(false).from_path(path).with_context(|| format!("cannot open {}", path.display()))?;
    let headers: Vec<String> = rd
        .headers()
        .with_context(|| format!("{}: cannot read the header row", path.display()))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let rows = rd
        .records()
        .enumerate()
        .map(|(i, r)| r.with_context(|| format!("{}: row {} is malformed", path.display(), i + 2)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if rows.is_empty() {
        bail!("{}: the table has no rows", path.display());
    }
    Ok((headers, rows))
}

/// The architecture column: `wanted`, else `arch` if it holds NB201 strings,
/// else the first column that does.
fn arch_column(path: &Path, headers: &[String], first: &csv::StringRecord, wanted: Option<&str>) -> anyhow::Result<usize> {
    let looks_like = |i: usize| first.get(i).is_some_and(|v| v.trim().parse::<Genotype>().is_ok());
    if let Some(w) = wanted {
        return headers
            .iter()
            .position(|h| h == w)
            .with_context(|| format!("{}: no column '{w}' (columns: {})", path.display(), headers.join(", ")));
    }
    if let Some(i) = headers.iter().position(|h| h == "arch").filter(|&i| looks_like(i)) {
        return Ok(i);
    }
    (0..headers.len()).find(|&i| looks_like(i)).with_context(|| {
        format!(
            "{}: no column holds NAS-Bench-201 architecture strings (columns: {}); name one with --arch-column",
            path.display(),
            headers.join(", ")
        )
    })
}

fn parse_archs(path: &Path, headers: &[String], rows: &[csv::StringRecord], col: usize) -> anyhow::Result<Vec<Genotype>> {
    let mut seen: HashMap<Genotype, usize> = HashMap::new();
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            let g: Genotype =
                r[col].trim().parse().map_err(|e| anyhow::anyhow!("{} row {}, column '{}': {e}", path.display(), i + 2, headers[col]))?;
            if let Some(prev) = seen.insert(g, i + 2) {
                bail!("{}: architecture {g} appears twice (rows {prev} and {}); expected one row per architecture", path.display(), i + 2);
            }
            Ok(g)
        })
        .collect()
}

/// Reads the architectures and the numeric column `value_column` of a CSV.
pub fn read_arch_table(path: &Path, arch_col: Option<&str>, value_column: &str) -> anyhow::Result<ArchTable> {
    let (headers, rows) = read_csv(path)?;
    let a = arch_column(path, &headers, &rows[0], arch_col)?;
    let v = headers.iter().position(|h| h == value_column).with_context(|| {
        format!(
            "{}: no column '{value_column}' (columns: {}); choose one with --gt-column/--pred-column",
            path.display(),
            headers.join(", ")
        )
    })?;
    let archs = parse_archs(path, &headers, &rows, a)?;
    let values = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let s = r[v].trim();
            s.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .with_context(|| format!("{} row {}, column '{value_column}': {s:?} is not a number", path.display(), i + 2))
        })
        .collect::<anyhow::Result<Vec<f64>>>()?;
    Ok(ArchTable { archs, values, arch_column: headers[a].clone(), value_column: value_column.into() })
}

/// Reads only the architectures of a CSV (e.g. `pada rank --archs FILE`).
pub fn read_archs(path: &Path, arch_col: Option<&str>) -> anyhow::Result<Vec<Genotype>> {
    let (headers, rows) = read_csv(path)?;
    let a = arch_column(path, &headers, &rows[0], arch_col)?;
    parse_archs(path, &headers, &rows, a)
}

/// Joins predictions and truth on the architecture, in prediction order;
/// with `unique`, keeps the first architecture of each isomorphism class.
pub fn join(pred: &ArchTable, truth: &ArchTable, unique: bool) -> (Vec<Genotype>, Vec<f64>, Vec<f64>) {
    let t: HashMap<Genotype, f64> = truth.archs.iter().copied().zip(truth.values.iter().copied()).collect();
    let mut classes = std::collections::HashSet::new();
    let (mut a, mut p, mut y) = (Vec::new(), Vec::new(), Vec::new());
    for (g, &v) in pred.archs.iter().zip(&pred.values) {
        if let Some(&tv) = t.get(g) {
            if unique && !classes.insert(g.unique_string()) {
                continue;
            }
            a.push(*g);
            p.push(v);
            y.push(tv);
        }
    }
    (a, p, y)
}
