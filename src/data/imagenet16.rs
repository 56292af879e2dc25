//! ImageNet16-120, NAS-Bench-201's third dataset: the 16x16 down-sampled
//! ImageNet (Chrabaszcz et al., 2017) as its authors distribute it, ten
//! pickled training batches `train_data_batch_1` ... `train_data_batch_10` and
//! `val_data` (the test split), each a dict of `data` (N x 768 bytes, R, G, B
//! planes) and `labels` (1 ... 1000), restricted to the labels 1 ... 120 (as
//! NAS-Bench-201's `ImageNet16(..., use_num_of_class_only=120)`), label - 1
//! as the class.
//!
//! Both splits are stored class-interleaved (each class's images in file
//! order), so that the first K test images of a verdict are balanced.

use std::path::{Path, PathBuf};

use anyhow::bail;

use super::{read_file, Augment, Data, DataFile, DataSpec, Dataset, Normalization};
use crate::supernet::InputShape;

const SHAPE: InputShape = InputShape { c: 3, h: 16, w: 16 };
/// Classes kept: ImageNet16-120.
pub const CLASSES: usize = 120;
pub const TRAIN_FILES: [&str; 10] = [
    "train_data_batch_1",
    "train_data_batch_2",
    "train_data_batch_3",
    "train_data_batch_4",
    "train_data_batch_5",
    "train_data_batch_6",
    "train_data_batch_7",
    "train_data_batch_8",
    "train_data_batch_9",
    "train_data_batch_10",
];
pub const TEST_FILE: &str = "val_data";

/// NAS-Bench-201's normalisation of ImageNet16.
fn normalization() -> Normalization {
    Normalization {
        mean: [122.68, 116.66, 104.01].iter().map(|v| v / 255.0).collect(),
        std: [63.22, 61.26, 65.09].iter().map(|v| v / 255.0).collect(),
    }
}

/// The images of one pickled batch whose label is in 1 ..= 120, appended to `d`.
fn parse_batch(bytes: &[u8], what: &str, d: &mut Dataset) -> anyhow::Result<()> {
    let (raw, labels) = super::cifar::numpy_batch(bytes, "labels", SHAPE.len(), what)?;
    for (i, (&l, img)) in labels.iter().zip(raw.chunks_exact(SHAPE.len())).enumerate() {
        if !(1..=1000).contains(&l) {
            bail!("{what}: label {i} is {l} (expected 1 to 1000, as the down-sampled ImageNet numbers its classes)");
        }
        if l as usize <= CLASSES {
            d.labels.push(l as u16 - 1);
            d.pixels.extend_from_slice(img);
        }
    }
    Ok(())
}

/// Reads ImageNet16-120 from `dir`, the folder holding the batches or its parent
/// (with the batches in `ImageNet16/`).
pub fn load(spec: DataSpec, dir: &Path) -> anyhow::Result<Data> {
    if !dir.is_dir() {
        bail!("--data {spec}: {} is not a folder", dir.display());
    }
    let base = [dir.to_path_buf(), dir.join("ImageNet16")].into_iter().find(|b| b.join(TRAIN_FILES[0]).is_file());
    let Some(base) = base else {
        bail!(
            "--data {spec}: no ImageNet16 batches found (looked for {} and {})",
            dir.join(TRAIN_FILES[0]).display(),
            dir.join("ImageNet16").join(TRAIN_FILES[0]).display()
        )
    };
    let mut files: Vec<DataFile> = Vec::new();
    let mut read = |names: &[&str]| -> anyhow::Result<Dataset> {
        let mut d = Dataset { shape: SHAPE, classes: CLASSES, pixels: Vec::new(), labels: Vec::new() };
        for name in names {
            let path: PathBuf = base.join(name);
            if !path.is_file() {
                bail!("ImageNet16 in {}: {name} is missing (expected {})", base.display(), names.join(", "));
            }
            let bytes = read_file(&path, &mut files)?;
            parse_batch(&bytes, &path.display().to_string(), &mut d)?;
        }
        let what = format!("ImageNet16-120 in {}", base.display());
        if d.is_empty() {
            bail!("{what}: {} holds no image of the classes 1 to {CLASSES}", names.join(", "));
        }
        d.validate(&what, &what)?;
        Ok(d.interleaved_by_class())
    };
    let train = read(&TRAIN_FILES)?;
    let test = read(&[TEST_FILE])?;
    Ok(Data {
        spec,
        name: "ImageNet16-120".into(),
        train,
        test,
        norm: normalization(),
        default_augment: Augment { crop_pad: 2, flip: true },
        files,
    })
}

/// Parses one ImageNet16 batch file's bytes into a split (for property tests and fuzzing).
pub fn parse_bytes(bytes: &[u8], what: &str) -> anyhow::Result<Dataset> {
    let mut d = Dataset { shape: SHAPE, classes: CLASSES, pixels: Vec::new(), labels: Vec::new() };
    parse_batch(bytes, what, &mut d)?;
    Ok(d)
}
