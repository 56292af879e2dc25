//! Image classification data: the embedded Fashion-MNIST subset, IDX (MNIST,
//! Fashion-MNIST), CIFAR-10/100 (binary and Python-pickle distributions),
//! NAS-Bench-201's ImageNet16-120, image folders (PNG, JPEG) and a synthetic
//! generator; normalisation, augmentation, and a batch loader that prepares
//! batches on its own thread.

pub mod augment;
pub mod cifar;
pub mod folder;
pub mod idx;
pub mod imagenet16;
pub mod loader;
pub mod spec;
pub mod synthetic;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use augment::Augment;
pub use loader::{Batch, Loader};
pub use spec::{DataSpec, KnownData};

use crate::supernet::InputShape;

/// One split of a dataset: `n` images of `shape`, u8 pixels stored image by
/// image in CHW order, and a label per image.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub shape: InputShape,
    pub classes: usize,
    pub pixels: Vec<u8>,
    pub labels: Vec<u16>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    pub fn image(&self, i: usize) -> &[u8] {
        let sz = self.shape.len();
        &self.pixels[i * sz..(i + 1) * sz]
    }
    /// Checks sizes and label ranges; `what` and `labels_what` name the
    /// sources of images and labels in errors (the same file for CIFAR).
    pub fn validate(&self, what: &str, labels_what: &str) -> anyhow::Result<()> {
        if self.is_empty() {
            bail!("{what}: the set is empty (expected at least one image)");
        }
        if self.pixels.len() != self.len() * self.shape.len() {
            bail!(
                "{what}: {} pixel bytes for {} images of {} (expected {})",
                self.pixels.len(),
                self.len(),
                self.shape,
                self.len() * self.shape.len()
            );
        }
        if let Some((i, &l)) = self.labels.iter().enumerate().find(|(_, &l)| l as usize >= self.classes) {
            bail!("{labels_what}: label {l} of image {i} is out of range (expected 0..{})", self.classes);
        }
        Ok(())
    }
    /// The same images class-interleaved: the first image of every class (in
    /// class order), then the second, ..., each class's images in their
    /// order here; a class that runs out is skipped. Any K first images are
    /// then as balanced as the classes allow.
    pub fn interleaved_by_class(&self) -> Dataset {
        let mut per_class: Vec<Vec<usize>> = vec![Vec::new(); self.classes];
        self.labels.iter().enumerate().for_each(|(i, &l)| per_class[l as usize].push(i));
        let longest = per_class.iter().map(Vec::len).max().unwrap_or(0);
        let order: Vec<usize> = (0..longest).flat_map(|k| per_class.iter().filter_map(move |c| c.get(k).copied())).collect();
        self.subset(&order)
    }

    /// The images `idx` as a new dataset (e.g. a held-out part of the training split).
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        Dataset {
            shape: self.shape,
            classes: self.classes,
            pixels: idx.iter().flat_map(|&i| self.image(i).iter().copied()).collect(),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
        }
    }
}

/// Per-channel normalisation `(x / 255 - mean) / std`, computed in f64 (and
/// rounded once to the engine's element type), so that an f64 run sees the
/// inputs a float64 PyTorch reference sees.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Normalization {
    /// The normalised value of each pixel value 0..=255, per channel.
    pub fn tables(&self) -> Vec<[f64; 256]> {
        self.mean.iter().zip(&self.std).map(|(m, s)| std::array::from_fn(|p| (p as f64 / 255.0 - m) / s)).collect()
    }

    /// Mean and standard deviation of each channel over a whole split.
    pub fn of(d: &Dataset) -> Self {
        let (c, plane) = (d.shape.c, d.shape.h * d.shape.w);
        let mut sum = vec![0f64; c];
        let mut sq = vec![0f64; c];
        for i in 0..d.len() {
            for (ch, px) in d.image(i).chunks(plane).enumerate() {
                for &p in px {
                    let v = p as f64 / 255.0;
                    sum[ch] += v;
                    sq[ch] += v * v;
                }
            }
        }
        let count = (d.len() * plane) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
        let std = sq.iter().zip(&mean).map(|(s, m)| (s / count - m * m).max(0.0).sqrt().max(1e-3)).collect();
        Normalization { mean, std }
    }
}

/// A data file that was read, with its SHA-256 (recorded in config.json).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataFile {
    pub path: String,
    pub sha256: String,
}

/// Training and test splits with everything needed to feed them to a network.
#[derive(Clone, Debug)]
pub struct Data {
    pub spec: DataSpec,
    /// A human-readable name: "Fashion-MNIST (embedded subset)", "CIFAR-10".
    pub name: String,
    pub train: Dataset,
    pub test: Dataset,
    pub norm: Normalization,
    /// The augmentation that `--augment auto` means for this data.
    pub default_augment: Augment,
    pub files: Vec<DataFile>,
}

impl Data {
    pub fn shape(&self) -> InputShape {
        self.train.shape
    }
    pub fn classes(&self) -> usize {
        self.train.classes
    }
}

/// Reads a file, remembering its checksum.
pub(crate) fn read_file(path: &Path, files: &mut Vec<DataFile>) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read data file {}", path.display()))?;
    files.push(DataFile { path: path.display().to_string(), sha256: sha256_hex(&bytes) });
    Ok(bytes)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first existing path among `candidates`, or an error listing them all.
pub(crate) fn find_first(what: &str, candidates: &[PathBuf]) -> anyhow::Result<PathBuf> {
    candidates.iter().find(|p| p.is_file()).cloned().with_context(|| {
        let list: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        format!("{what}: none of these files exists: {}", list.join(", "))
    })
}
