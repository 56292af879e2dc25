//! CSV tables keyed by architecture strings (of any space; one table, one
//! space): ground truths (the built-in benchmark tables, `pada groundtruth`
//! output) and predictions (`pada rank` output).

use anyhow::{bail, Context};
use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::arch::Arch;
use crate::data::KnownData;

/// A table built into pada, declared by its search space's folder (the
/// registry, src/space/mod.rs, finds it by name).
#[derive(Debug)]
pub struct BuiltInTable {
    /// Its name on the command line: `nb201:cifar10`, `embedded`, ...
    pub name: &'static str,
    /// Its CSV, gzipped or not.
    pub bytes: &'static [u8],
    pub gzipped: bool,
    /// The column it is read by unless one is named.
    pub default_column: &'static str,
    /// The data set its values were measured on.
    pub data: KnownData,
    /// Accuracies of trained networks (a ground truth), not predictors.
    pub ground_truth: bool,
    /// For a table of predictors: the network size they were measured at
    /// (`C=16 N=5`), shown in the reference rows' names.
    pub setting: &'static str,
    /// Its architectures' parameter count, FLOPs and zero-cost proxies at
    /// their authors' setting (the columns of `pada proxies`), for
    /// the reference rows of a verdict against it.
    pub proxies: Option<&'static BuiltInTable>,
}

/// Where a table comes from: a CSV file, or one built into pada. Written as
/// on the command line (`embedded`, `nb201:cifar10`, a path), also in JSON;
/// read by the space registry (`FromStr` in src/space/mod.rs).
#[derive(Clone, Debug)]
pub enum TableSource {
    File(PathBuf),
    BuiltIn(&'static BuiltInTable),
}

impl PartialEq for TableSource {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (TableSource::File(a), TableSource::File(b)) => a == b,
            (TableSource::BuiltIn(a), TableSource::BuiltIn(b)) => a.name == b.name,
            _ => false,
        }
    }
}

impl Eq for TableSource {}

impl TableSource {
    /// The accuracy column this table is read by unless one is named: a
    /// built-in table's own, `test_accuracy` in a ground-truth file (as
    /// `pada groundtruth` writes).
    pub fn default_column(&self) -> &str {
        match self {
            TableSource::BuiltIn(t) => t.default_column,
            TableSource::File(_) => "test_accuracy",
        }
    }

    /// The score column a table of predictions is read by unless one is
    /// named: a built-in table's own, `accuracy` in a file (as `pada rank` writes).
    pub fn default_prediction_column(&self) -> &str {
        match self {
            TableSource::File(_) => "accuracy",
            _ => self.default_column(),
        }
    }

    /// The table's bytes (decompressed).
    fn bytes(&self) -> anyhow::Result<Vec<u8>> {
        match self {
            TableSource::File(p) => std::fs::read(p).with_context(|| format!("cannot open {}", p.display())),
            TableSource::BuiltIn(t) if !t.gzipped => Ok(t.bytes.to_vec()),
            TableSource::BuiltIn(t) => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(t.bytes).read_to_end(&mut out).with_context(|| format!("the built-in table {self}"))?;
                Ok(out)
            }
        }
    }
}

impl serde::Serialize for TableSource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for TableSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for TableSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableSource::File(p) => write!(f, "{}", p.display()),
            TableSource::BuiltIn(t) => f.write_str(t.name),
        }
    }
}

/// One numeric column of a table, by architecture.
#[derive(Clone, Debug)]
pub struct ArchTable {
    pub archs: Vec<Arch>,
    pub values: Vec<f64>,
    pub arch_column: String,
    pub value_column: String,
}

fn read_csv(path: &TableSource) -> anyhow::Result<(Vec<String>, Vec<csv::StringRecord>)> {
    let bytes = path.bytes()?;
    let mut rd = csv::ReaderBuilder::new().flexible(false).from_reader(&bytes[..]);
    let headers: Vec<String> =
        rd.headers().with_context(|| format!("{}: cannot read the header row", path))?.iter().map(|h| h.trim().to_string()).collect();
    let rows = rd
        .records()
        .enumerate()
        .map(|(i, r)| r.with_context(|| format!("{}: row {} is malformed", path, i + 2)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if rows.is_empty() {
        bail!("{}: the table has no rows", path);
    }
    Ok((headers, rows))
}

/// The architecture column: `wanted`, else `arch` if it holds NB201 strings,
/// else the first column that does.
fn arch_column(path: &TableSource, headers: &[String], first: &csv::StringRecord, wanted: Option<&str>) -> anyhow::Result<usize> {
    let looks_like = |i: usize| first.get(i).is_some_and(|v| v.trim().parse::<Arch>().is_ok());
    if let Some(w) = wanted {
        return headers.iter().position(|h| h == w).with_context(|| format!("{}: no column '{w}' (columns: {})", path, headers.join(", ")));
    }
    if let Some(i) = headers.iter().position(|h| h == "arch").filter(|&i| looks_like(i)) {
        return Ok(i);
    }
    if let Some(i) = (0..headers.len()).find(|&i| looks_like(i)) {
        return Ok(i);
    }
    // no column parses: the `arch` column's (else the first column's) own
    // parse error says what is wrong with its strings
    let guess = headers.iter().position(|h| h == "arch").unwrap_or(0);
    let why = first.get(guess).and_then(|v| v.trim().parse::<Arch>().err()).map_or(String::new(), |e| format!(": {e}"));
    bail!(
        "{}: no column holds architecture strings (columns: {}); row 2, column '{}'{why}; name the column with --arch-column",
        path,
        headers.join(", "),
        headers[guess]
    )
}

fn parse_archs(path: &TableSource, headers: &[String], rows: &[csv::StringRecord], col: usize) -> anyhow::Result<Vec<Arch>> {
    let mut seen: HashMap<Arch, usize> = HashMap::new();
    let mut space = None;
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            let g: Arch = r[col].trim().parse().map_err(|e| anyhow::anyhow!("{} row {}, column '{}': {e}", path, i + 2, headers[col]))?;
            match space {
                None => space = Some(g.space()),
                Some(s) if s != g.space() => {
                    bail!(
                        "{} row {}: {g} is an architecture of {}, but row 2's is of {s}: one table, one search space",
                        path,
                        i + 2,
                        g.space()
                    )
                }
                Some(_) => {}
            }
            if let Some(prev) = seen.insert(g, i + 2) {
                bail!("{}: architecture {g} appears twice (rows {prev} and {}); expected one row per architecture", path, i + 2);
            }
            Ok(g)
        })
        .collect()
}

/// Reads the architectures and the numeric column `value_column` of a table.
pub fn read_arch_table(path: &TableSource, arch_col: Option<&str>, value_column: &str) -> anyhow::Result<ArchTable> {
    let (headers, rows) = read_csv(path)?;
    let a = arch_column(path, &headers, &rows[0], arch_col)?;
    let v = headers.iter().position(|h| h == value_column).with_context(|| {
        format!("{}: no column '{value_column}' (columns: {}); choose one with --gt-column/--pred-column", path, headers.join(", "))
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
                .with_context(|| format!("{} row {}, column '{value_column}': {s:?} is not a number", path, i + 2))
        })
        .collect::<anyhow::Result<Vec<f64>>>()?;
    Ok(ArchTable { archs, values, arch_column: headers[a].clone(), value_column: value_column.into() })
}

/// The column names of a table.
pub fn columns(path: &TableSource) -> anyhow::Result<Vec<String>> {
    Ok(read_csv(path)?.0)
}

/// Reads only the architectures of a CSV (e.g. `pada rank --archs FILE`).
pub fn read_archs(path: &Path, arch_col: Option<&str>) -> anyhow::Result<Vec<Arch>> {
    let path = &TableSource::File(path.to_path_buf());
    let (headers, rows) = read_csv(path)?;
    let a = arch_column(path, &headers, &rows[0], arch_col)?;
    parse_archs(path, &headers, &rows, a)
}

/// Joins predictions and truth on the architecture, in prediction order;
/// with `unique`, keeps the first architecture of each isomorphism class.
pub fn join(pred: &ArchTable, truth: &ArchTable, unique: bool) -> (Vec<Arch>, Vec<f64>, Vec<f64>) {
    let t: HashMap<Arch, f64> = truth.archs.iter().copied().zip(truth.values.iter().copied()).collect();
    let mut classes = std::collections::HashSet::new();
    let (mut a, mut p, mut y) = (Vec::new(), Vec::new(), Vec::new());
    for (g, &v) in pred.archs.iter().zip(&pred.values) {
        if let Some(&tv) = t.get(g) {
            if unique && !classes.insert(g.canonical()) {
                continue;
            }
            a.push(*g);
            p.push(v);
            y.push(tv);
        }
    }
    (a, p, y)
}
