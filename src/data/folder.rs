//! Image folders, torchvision's `ImageFolder` convention: `DIR/train/<class>/*`
//! and `DIR/test/<class>/*`, PNG or JPEG files, one folder per class; the
//! class index is the position of the folder's name in sorted order.
//!
//! Every image of both splits must have the size and channel count (grey or
//! RGB, 8 bits) of the first one. Images are decoded in parallel (60,000
//! CIFAR-10 JPEGs: README, "Data"). Each split is stored class-interleaved
//! (image 0 of every class in class order, then image 1, ...; each class's
//! files in sorted name order): its first K images are balanced, so that a
//! verdict on the first K test images and the batch-norm statistics of its
//! evaluation batches see every class, and the order is the same on every
//! machine.
//!
//! Folders whose classes are CIFAR-10's (airplane ... truck) at 3x32x32 get
//! CIFAR-10's normalisation and augmentation and `nb201:cifar10` as their
//! benchmark; other folders are normalised by their training split's channel
//! statistics.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::{Augment, Data, DataFile, DataSpec, Dataset, Normalization};
use crate::supernet::InputShape;

/// CIFAR-10's classes in label order (which is also their sorted order).
pub const CIFAR10_CLASSES: [&str; 10] = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// One decoded image: its shape and CHW pixels.
struct Decoded {
    shape: InputShape,
    pixels: Vec<u8>,
}

/// The visible entries of a folder (no dot files), sorted by name.
fn entries(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the folder {}", dir.display()))?
        .map(|e| e.map(|e| e.path()).with_context(|| format!("cannot read the folder {}", dir.display())))
        .collect::<anyhow::Result<Vec<_>>>()?
        .into_iter()
        .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    v.sort();
    Ok(v)
}

/// The class folders of a split, sorted by name.
fn class_folders(split: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    if !split.is_dir() {
        bail!("{} is missing: an image folder holds train/<class>/ and test/<class>/ folders of PNG or JPEG images", split.display());
    }
    let mut classes = Vec::new();
    for p in entries(split)? {
        if !p.is_dir() {
            bail!("{} is not a folder: {} should hold only one folder per class", p.display(), split.display());
        }
        classes.push((p.file_name().expect("an entry has a name").to_string_lossy().to_string(), p));
    }
    if classes.is_empty() {
        bail!("{} has no class folders (expected one folder of images per class)", split.display());
    }
    Ok(classes)
}

/// Decodes one image file (PNG or JPEG, recognised by its content).
fn decode(path: &Path) -> anyhow::Result<Decoded> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read the image {}", path.display()))?;
    let format =
        image::guess_format(&bytes).map_err(|_| anyhow::anyhow!("{} is not an image (expected a PNG or JPEG file)", path.display()))?;
    if !matches!(format, image::ImageFormat::Png | image::ImageFormat::Jpeg) {
        bail!("{} is a {format:?} image; pada reads PNG and JPEG", path.display());
    }
    let img = image::load_from_memory_with_format(&bytes, format)
        .with_context(|| format!("{}: cannot decode the {format:?} image", path.display()))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (c, hwc) = match img {
        image::DynamicImage::ImageLuma8(b) => (1, b.into_raw()),
        image::DynamicImage::ImageRgb8(b) => (3, b.into_raw()),
        other => bail!(
            "{}: a {:?} image; pada reads 8-bit grey or RGB images (no alpha channel, no 16-bit samples)",
            path.display(),
            other.color()
        ),
    };
    // HWC to CHW
    let plane = h * w;
    let mut pixels = vec![0u8; c * plane];
    for (i, px) in hwc.chunks_exact(c).enumerate() {
        for (ch, &v) in px.iter().enumerate() {
            pixels[ch * plane + i] = v;
        }
    }
    Ok(Decoded { shape: InputShape { c, h, w }, pixels })
}

/// A split from its class folders (`classes`, in label order), class-interleaved.
fn read_split(classes: &[(String, PathBuf)], shape: &mut Option<(InputShape, PathBuf)>) -> anyhow::Result<(Dataset, Vec<PathBuf>)> {
    let mut order: Vec<(PathBuf, u16)> = Vec::new();
    for (label, (_, dir)) in classes.iter().enumerate() {
        let files = entries(dir)?;
        if files.is_empty() {
            bail!("the class folder {} is empty (expected PNG or JPEG images)", dir.display());
        }
        if let Some(sub) = files.iter().find(|p| p.is_dir()) {
            bail!("{} is a folder inside the class folder {} (expected only image files)", sub.display(), dir.display());
        }
        order.extend(files.into_iter().map(|f| (f, label as u16)));
    }
    let decoded: Vec<Decoded> = order.par_iter().map(|(p, _)| decode(p)).collect::<anyhow::Result<_>>()?;
    let (want, first) = shape.get_or_insert_with(|| (decoded[0].shape, order[0].0.clone())).clone();
    let mut pixels = Vec::with_capacity(decoded.len() * want.len());
    for ((path, _), d) in order.iter().zip(&decoded) {
        if d.shape != want {
            bail!(
                "{} is {} (channels x height x width) but {} is {}: every image of the folder must have the same size and channel count",
                path.display(),
                d.shape,
                first.display(),
                want
            );
        }
        pixels.extend_from_slice(&d.pixels);
    }
    let labels = order.iter().map(|(_, l)| *l).collect();
    let split = Dataset { shape: want, classes: classes.len(), pixels, labels }.interleaved_by_class();
    Ok((split, order.into_iter().map(|(p, _)| p).collect()))
}

/// SHA-256 over every file of both splits (relative path and contents, in
/// order): one checksum for config.json instead of one per image.
fn folder_checksum(dir: &Path, files: &[PathBuf]) -> anyhow::Result<String> {
    let digests: Vec<[u8; 32]> = files
        .par_iter()
        .map(|p| {
            let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
            let mut h = Sha256::new();
            h.update(p.strip_prefix(dir).unwrap_or(p).to_string_lossy().as_bytes());
            h.update([0u8]);
            h.update(&bytes);
            Ok(h.finalize().into())
        })
        .collect::<anyhow::Result<_>>()?;
    let mut h = Sha256::new();
    digests.iter().for_each(|d| h.update(d));
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Reads the image folder `dir` (see the module documentation).
pub fn load(spec: DataSpec, dir: &Path) -> anyhow::Result<Data> {
    if !dir.is_dir() {
        bail!("--data {spec}: {} is not a folder", dir.display());
    }
    let train_classes = class_folders(&dir.join("train"))?;
    let test_classes = class_folders(&dir.join("test"))?;
    let names = |c: &[(String, PathBuf)]| c.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    let (train_names, test_names) = (names(&train_classes), names(&test_classes));
    if train_names != test_names {
        let missing: Vec<&String> = train_names.iter().filter(|n| !test_names.contains(n)).collect();
        let extra: Vec<&String> = test_names.iter().filter(|n| !train_names.contains(n)).collect();
        bail!(
            "--data {spec}: the test classes differ from the training classes (in train only: {missing:?}; in test only: {extra:?}); both splits need the same class folders"
        );
    }
    if train_names.len() > u16::MAX as usize {
        bail!("--data {spec}: {} classes is too many (at most {})", train_names.len(), u16::MAX);
    }
    let mut shape = None;
    let (train, train_files) = read_split(&train_classes, &mut shape)?;
    let (test, test_files) = read_split(&test_classes, &mut shape)?;
    let all: Vec<PathBuf> = train_files.into_iter().chain(test_files).collect();
    let files = vec![DataFile { path: dir.display().to_string(), sha256: folder_checksum(dir, &all)? }];
    let cifar10 = is_cifar10(&train_names, train.shape);
    let (name, norm, default_augment) = if cifar10 {
        ("CIFAR-10 (image folder)".to_string(), super::cifar::cifar10_normalization(), Augment { crop_pad: 4, flip: true })
    } else {
        // natural images: RandomCrop with padding of 1/8 of the side, and flips for colour images
        let pad = (train.shape.h.min(train.shape.w) / 8).max(1);
        (format!("image folder {}", dir.display()), Normalization::of(&train), Augment { crop_pad: pad, flip: train.shape.c == 3 })
    };
    Ok(Data { spec, name, train, test, norm, default_augment, files })
}

/// Whether a folder's classes and image shape are CIFAR-10's.
fn is_cifar10(classes: &[String], shape: InputShape) -> bool {
    shape == (InputShape { c: 3, h: 32, w: 32 }) && classes.iter().map(String::as_str).eq(CIFAR10_CLASSES)
}

/// Whether the image folder `dir` holds CIFAR-10 (its class folders' names and
/// the shape of its first image; nothing else is decoded): its benchmark is
/// then NAS-Bench-201's CIFAR-10 table.
pub fn holds_cifar10(dir: &Path) -> bool {
    let Ok(classes) = class_folders(&dir.join("train")) else { return false };
    let names: Vec<String> = classes.iter().map(|(n, _)| n.clone()).collect();
    let first = entries(&classes[0].1).ok().and_then(|f| f.into_iter().next());
    first.and_then(|f| decode(&f).ok()).is_some_and(|d| is_cifar10(&names, d.shape))
}
