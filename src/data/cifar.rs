//! CIFAR-10 and CIFAR-100, in both distributions users have: the binary
//! version (`cifar-10-batches-bin`, `cifar-100-binary`) and the Python pickle
//! version (`cifar-10-batches-py`, `cifar-100-python`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_pickle::{DeOptions, HashableValue, Value};

use super::{read_file, Augment, Data, DataFile, DataSpec, Dataset, Normalization};
use crate::supernet::InputShape;

const SHAPE: InputShape = InputShape { c: 3, h: 32, w: 32 };
const IMAGE: usize = 3 * 32 * 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Cifar10,
    Cifar100,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Cifar10 => "CIFAR-10",
            Variant::Cifar100 => "CIFAR-100",
        }
    }
    fn classes(self) -> usize {
        match self {
            Variant::Cifar10 => 10,
            Variant::Cifar100 => 100,
        }
    }
    /// Label bytes before each image in the binary version (CIFAR-100 has a
    /// coarse and a fine label; the fine one is used).
    fn label_bytes(self) -> usize {
        match self {
            Variant::Cifar10 => 1,
            Variant::Cifar100 => 2,
        }
    }
    /// (folder, training files, test files) of the binary and pickle versions.
    fn layouts(self) -> [(&'static str, Vec<&'static str>, &'static str); 2] {
        match self {
            Variant::Cifar10 => [
                (
                    "cifar-10-batches-bin",
                    vec!["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"],
                    "test_batch.bin",
                ),
                ("cifar-10-batches-py", vec!["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"], "test_batch"),
            ],
            Variant::Cifar100 => [("cifar-100-binary", vec!["train.bin"], "test.bin"), ("cifar-100-python", vec!["train"], "test")],
        }
    }
    /// The official PA&DA normalisation constants.
    fn normalization(self) -> Normalization {
        match self {
            Variant::Cifar10 => cifar10_normalization(),
            Variant::Cifar100 => Normalization {
                mean: [125.3, 123.0, 113.9].iter().map(|v| v / 255.0).collect(),
                std: [63.0, 62.1, 66.7].iter().map(|v| v / 255.0).collect(),
            },
        }
    }
}

/// CIFAR-10's channel statistics, as the official PA&DA code normalises.
pub fn cifar10_normalization() -> Normalization {
    Normalization { mean: vec![0.49139968, 0.48215827, 0.44653124], std: vec![0.24703233, 0.24348505, 0.26158768] }
}

/// Reads CIFAR-10/100 from `dir`, which may be the extracted folder itself or
/// the folder that contains it; the binary version is preferred when both exist.
pub fn load(spec: DataSpec, dir: &Path, v: Variant) -> anyhow::Result<Data> {
    if !dir.is_dir() {
        bail!("--data {spec}: {} is not a directory", dir.display());
    }
    let mut tried = Vec::new();
    for (pickle, (folder, train_files, test_file)) in v.layouts().into_iter().enumerate() {
        for base in [dir.to_path_buf(), dir.join(folder)] {
            let first = base.join(train_files[0]);
            tried.push(first.display().to_string());
            if !first.is_file() {
                continue;
            }
            let mut files = Vec::new();
            let read = |names: &[&str], files: &mut Vec<DataFile>| -> anyhow::Result<Dataset> {
                let mut d = Dataset { shape: SHAPE, classes: v.classes(), pixels: Vec::new(), labels: Vec::new() };
                for name in names {
                    let path: PathBuf = base.join(name);
                    if !path.is_file() {
                        bail!("{} in {}: {} is missing (expected {})", v.name(), base.display(), name, names.join(", "));
                    }
                    let bytes = read_file(&path, files)?;
                    let what = path.display().to_string();
                    if pickle == 1 {
                        parse_pickle(&bytes, v, &what, &mut d)?
                    } else {
                        parse_binary(&bytes, v, &what, &mut d)?
                    }
                }
                let what = format!("{} in {}", v.name(), base.display());
                d.validate(&what, &what)?;
                Ok(d)
            };
            let train = read(&train_files, &mut files)?;
            let test = read(&[test_file], &mut files)?;
            return Ok(Data {
                spec,
                name: v.name().into(),
                train,
                test,
                norm: v.normalization(),
                default_augment: Augment { crop_pad: 4, flip: true },
                files,
            });
        }
    }
    bail!("--data {spec}: no {} files found (looked for {})", v.name(), tried.join(", "))
}

/// Parses one CIFAR file's bytes (binary version, or Python pickle) into a
/// split; `what` names the file in errors. (For property tests and fuzzing.)
pub fn parse_bytes(bytes: &[u8], v: Variant, pickle: bool, what: &str) -> anyhow::Result<Dataset> {
    let mut d = Dataset { shape: SHAPE, classes: v.classes(), pixels: Vec::new(), labels: Vec::new() };
    if pickle {
        parse_pickle(bytes, v, what, &mut d)?
    } else {
        parse_binary(bytes, v, what, &mut d)?
    }
    d.validate(what, what)?;
    Ok(d)
}

/// Binary version: records of label byte(s) then 3072 pixel bytes (R, G, B planes).
fn parse_binary(bytes: &[u8], v: Variant, what: &str, d: &mut Dataset) -> anyhow::Result<()> {
    let rec = v.label_bytes() + IMAGE;
    if bytes.is_empty() || bytes.len() % rec != 0 {
        bail!(
            "{what}: {} bytes is not a whole number of {rec}-byte {} records (truncated or not a {} binary file)",
            bytes.len(),
            v.name(),
            v.name()
        );
    }
    for r in bytes.chunks_exact(rec) {
        d.labels.push(r[v.label_bytes() - 1] as u16);
        d.pixels.extend_from_slice(&r[v.label_bytes()..]);
    }
    Ok(())
}

fn key<'a>(dict: &'a std::collections::BTreeMap<HashableValue, Value>, name: &str) -> Option<&'a Value> {
    dict.iter()
        .find(|(k, _)| match k {
            HashableValue::Bytes(b) => b == name.as_bytes(),
            HashableValue::String(s) => s == name,
            _ => false,
        })
        .map(|(_, v)| v)
}

/// Pickle version: a dict with `data` (a numpy uint8 array of N x 3072) and
/// `labels` (CIFAR-10) or `fine_labels` (CIFAR-100).
fn parse_pickle(bytes: &[u8], v: Variant, what: &str, d: &mut Dataset) -> anyhow::Result<()> {
    let label_key = match v {
        Variant::Cifar10 => "labels",
        Variant::Cifar100 => "fine_labels",
    };
    let (raw, labels) = numpy_batch(bytes, label_key, IMAGE, what)?;
    for (i, &l) in labels.iter().enumerate() {
        if !(0..v.classes() as i64).contains(&l) {
            bail!("{what}: label {i} is {l} (expected an integer in 0..{})", v.classes());
        }
        d.labels.push(l as u16);
    }
    d.pixels.extend_from_slice(&raw);
    Ok(())
}

/// A pickled batch as CIFAR and ImageNet16 distribute them: a dict with
/// `data` (a numpy uint8 array of N x `image` bytes) and a list of integer
/// labels under `label_key`; returns the pixel bytes and the labels. Numpy
/// arrays unpickle (via their reduce/build state) to a tuple whose last item
/// is the raw bytes.
pub(crate) fn numpy_batch(bytes: &[u8], label_key: &str, image: usize, what: &str) -> anyhow::Result<(Vec<u8>, Vec<i64>)> {
    let value = serde_pickle::value_from_slice(bytes, DeOptions::new()).with_context(|| format!("{what}: not a readable Python pickle"))?;
    let Value::Dict(dict) = value else { bail!("{what}: expected a pickled dict with 'data' and labels") };
    let data = key(&dict, "data").with_context(|| format!("{what}: no 'data' entry"))?;
    let raw = match data {
        Value::Tuple(items) | Value::List(items) => items.iter().rev().find_map(|i| match i {
            Value::Bytes(b) => Some(b.clone()),
            Value::String(s) => Some(s.chars().map(|c| c as u32 as u8).collect()),
            _ => None,
        }),
        Value::Bytes(b) => Some(b.clone()),
        _ => None,
    }
    .with_context(|| format!("{what}: 'data' is not a numpy uint8 array"))?;
    let Some(Value::List(labels)) = key(&dict, label_key) else { bail!("{what}: no '{label_key}' list") };
    if raw.len() != labels.len() * image {
        bail!("{what}: 'data' has {} bytes for {} labels (expected {} x {image})", raw.len(), labels.len(), labels.len());
    }
    let labels = labels
        .iter()
        .enumerate()
        .map(|(i, l)| match l {
            Value::I64(x) => Ok(*x),
            other => bail!("{what}: label {i} is {other:?} (expected an integer)"),
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((raw, labels))
}
