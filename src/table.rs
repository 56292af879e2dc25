//! CSV tables keyed by NAS-Bench-201 architecture strings: ground truths
//! (the NB201 tables, `pada groundtruth` output) and predictions (`pada rank` output).

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context};

use crate::arch::Genotype;

/// The NAS-Bench-201 ground truths built into pada (data/nb201/README.md).
const NB201_TABLE: &[u8] = include_bytes!("../data/nb201/test_accuracy.csv.gz");
/// The embedded data's ground truth (data/embedded/ground_truth.md).
const EMBEDDED_TABLE: &[u8] = include_bytes!("../data/embedded/ground_truth.csv");
/// Parameter count, FLOPs and zero-cost proxies of NAS-Bench-201 architectures
/// (the verdict's default sample and more) on CIFAR-10 at the proxies'
/// reference setting (data/nb201/README.md).
const NB201_PROXIES_CIFAR10: &[u8] = include_bytes!("../data/nb201/proxies_cifar10.csv.gz");

/// Where a table comes from: a CSV file, or one built into pada. Written as
/// on the command line (`embedded`, `nb201:cifar10`, a path), also in JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableSource {
    File(PathBuf),
    /// `embedded`: stand-alone accuracies of architectures trained on the embedded data.
    Embedded,
    /// `nb201:cifar10|cifar100|imagenet16`: NAS-Bench-201's 200-epoch test accuracies.
    Nb201(&'static str),
    /// `nb201-proxies:cifar10`: NAS-Bench-201 architectures' parameter count,
    /// FLOPs and zero-cost proxies on CIFAR-10 as their authors compute them
    /// (C=16, N=5, batch 64), made by `pada proxies`: the verdict's default
    /// sample of 1,000 and more (data/nb201/README.md).
    Nb201Proxies,
}

impl TableSource {
    const NB201_SETS: [&'static str; 3] = ["cifar10", "cifar100", "imagenet16"];

    /// The accuracy column this table is read by unless one is named: a
    /// built-in table's own, `test_accuracy` in a ground-truth file (as
    /// `pada groundtruth` writes).
    pub fn default_column(&self) -> &str {
        match self {
            TableSource::Nb201(set) => set,
            TableSource::Nb201Proxies => "synflow",
            _ => "test_accuracy",
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
            TableSource::Embedded => Ok(EMBEDDED_TABLE.to_vec()),
            TableSource::Nb201(_) => self.gunzip(NB201_TABLE),
            TableSource::Nb201Proxies => self.gunzip(NB201_PROXIES_CIFAR10),
        }
    }

    /// A built-in gzipped table's bytes.
    fn gunzip(&self, gz: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz).read_to_end(&mut out).with_context(|| format!("the built-in table {self}"))?;
        Ok(out)
    }
}

impl FromStr for TableSource {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "embedded" => TableSource::Embedded,
            "nb201-proxies:cifar10" => TableSource::Nb201Proxies,
            _ if s.starts_with("nb201-proxies:") => bail!("{s:?}: the built-in proxy table is for CIFAR-10 only (nb201-proxies:cifar10)"),
            _ => match s.strip_prefix("nb201:") {
                Some(set) => TableSource::Nb201(Self::NB201_SETS.iter().find(|&&k| k == set).with_context(|| {
                    format!("{s:?}: NAS-Bench-201 has no set '{set}' (expected nb201:cifar10, nb201:cifar100 or nb201:imagenet16)")
                })?),
                None => TableSource::File(PathBuf::from(s)),
            },
        })
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
            TableSource::Embedded => write!(f, "embedded"),
            TableSource::Nb201(set) => write!(f, "nb201:{set}"),
            TableSource::Nb201Proxies => write!(f, "nb201-proxies:cifar10"),
        }
    }
}

/// One numeric column of a table, by architecture.
#[derive(Clone, Debug)]
pub struct ArchTable {
    pub archs: Vec<Genotype>,
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
    let looks_like = |i: usize| first.get(i).is_some_and(|v| v.trim().parse::<Genotype>().is_ok());
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
    let why = first.get(guess).and_then(|v| v.trim().parse::<Genotype>().err()).map_or(String::new(), |e| format!(": {e}"));
    bail!(
        "{}: no column holds NAS-Bench-201 architecture strings (columns: {}); row 2, column '{}'{why}; name the column with --arch-column",
        path,
        headers.join(", "),
        headers[guess]
    )
}

fn parse_archs(path: &TableSource, headers: &[String], rows: &[csv::StringRecord], col: usize) -> anyhow::Result<Vec<Genotype>> {
    let mut seen: HashMap<Genotype, usize> = HashMap::new();
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            let g: Genotype =
                r[col].trim().parse().map_err(|e| anyhow::anyhow!("{} row {}, column '{}': {e}", path, i + 2, headers[col]))?;
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
pub fn read_archs(path: &Path, arch_col: Option<&str>) -> anyhow::Result<Vec<Genotype>> {
    let path = &TableSource::File(path.to_path_buf());
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
