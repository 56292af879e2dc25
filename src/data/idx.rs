//! IDX files (MNIST, Fashion-MNIST), gzipped or not, and the embedded subset.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context};

use super::{find_first, read_file, Augment, Data, DataFile, DataSpec, Dataset, Normalization};
use crate::supernet::InputShape;

const EMBEDDED: [(&str, &[u8]); 4] = [
    ("train-images-idx3-ubyte.gz", include_bytes!("../../data/embedded/train-images-idx3-ubyte.gz")),
    ("train-labels-idx1-ubyte.gz", include_bytes!("../../data/embedded/train-labels-idx1-ubyte.gz")),
    ("test-images-idx3-ubyte.gz", include_bytes!("../../data/embedded/test-images-idx3-ubyte.gz")),
    ("test-labels-idx1-ubyte.gz", include_bytes!("../../data/embedded/test-labels-idx1-ubyte.gz")),
];

/// Decompresses gzip data (recognised by its magic bytes); other data is returned as is.
pub fn maybe_gunzip(bytes: Vec<u8>, what: &str) -> anyhow::Result<Vec<u8>> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut out).with_context(|| format!("{what}: corrupt gzip data"))?;
        Ok(out)
    } else {
        Ok(bytes)
    }
}

/// Parses an IDX file of unsigned bytes with `ndim` dimensions; returns the
/// dimensions and the payload.
pub fn parse_idx(bytes: &[u8], ndim: u8, what: &str) -> anyhow::Result<(Vec<usize>, Vec<u8>)> {
    if bytes.len() < 4 {
        bail!("{what}: {} bytes is too short for an IDX header", bytes.len());
    }
    if bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 || bytes[3] != ndim {
        bail!(
            "{what}: wrong IDX magic {:02x} {:02x} {:02x} {:02x} (expected 00 00 08 {ndim:02x}: unsigned bytes, {ndim} dimension(s))",
            bytes[0],
            bytes[1],
            bytes[2],
            bytes[3]
        );
    }
    let header = 4 + 4 * ndim as usize;
    if bytes.len() < header {
        bail!("{what}: truncated IDX header ({} bytes, expected at least {header})", bytes.len());
    }
    let dims: Vec<usize> =
        (0..ndim as usize).map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize).collect();
    let want = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).with_context(|| format!("{what}: dimensions {dims:?} overflow"))?;
    let got = bytes.len() - header;
    if got != want {
        bail!("{what}: payload is {got} bytes but the header's dimensions {dims:?} need {want} (truncated or corrupt file)");
    }
    Ok((dims, bytes[header..].to_vec()))
}

/// One split from its images and labels IDX contents.
fn split(images: &[u8], labels: &[u8], img_what: &str, lbl_what: &str) -> anyhow::Result<Dataset> {
    let (idims, pixels) = parse_idx(images, 3, img_what)?;
    let (ldims, labels) = parse_idx(labels, 1, lbl_what)?;
    if idims[0] != ldims[0] {
        bail!("{img_what} has {} images but {lbl_what} has {} labels (expected the same count)", idims[0], ldims[0]);
    }
    let d = Dataset {
        shape: InputShape { c: 1, h: idims[1], w: idims[2] },
        classes: 10,
        pixels,
        labels: labels.into_iter().map(u16::from).collect(),
    };
    d.validate(img_what, lbl_what)?;
    Ok(d)
}

fn grey_augment(shape: InputShape) -> Augment {
    if shape.h >= 16 {
        Augment { crop_pad: 2, flip: false }
    } else {
        Augment::NONE
    }
}

/// The Fashion-MNIST subset built into the binary (see data/embedded/README.md).
pub fn load_embedded() -> anyhow::Result<Data> {
    let get = |i: usize| maybe_gunzip(EMBEDDED[i].1.to_vec(), EMBEDDED[i].0);
    let train = split(&get(0)?, &get(1)?, "embedded train images", "embedded train labels")?;
    let test = split(&get(2)?, &get(3)?, "embedded test images", "embedded test labels")?;
    let files = EMBEDDED.iter().map(|(n, b)| DataFile { path: format!("embedded:{n}"), sha256: super::sha256_hex(b) }).collect();
    Ok(Data {
        spec: DataSpec::Embedded,
        name: "Fashion-MNIST (embedded class-balanced subset)".into(),
        norm: Normalization::of(&train),
        default_augment: grey_augment(train.shape),
        train,
        test,
        files,
    })
}

/// MNIST or Fashion-MNIST from a directory of (optionally gzipped) IDX files
/// named as distributed: train-images-idx3-ubyte, train-labels-idx1-ubyte,
/// t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte.
pub fn load_dir(spec: DataSpec, name: &str, dir: &Path) -> anyhow::Result<Data> {
    if !dir.is_dir() {
        bail!("--data {spec}: {} is not a directory (expected the {name} IDX files there)", dir.display());
    }
    let mut files = Vec::new();
    let mut read = |stem: &str| -> anyhow::Result<(Vec<u8>, String)> {
        let path = find_first(&format!("{name} in {}", dir.display()), &[dir.join(format!("{stem}.gz")), dir.join(stem)])?;
        let what = path.display().to_string();
        Ok((maybe_gunzip(read_file(&path, &mut files)?, &what)?, what))
    };
    let (ti, tiw) = read("train-images-idx3-ubyte")?;
    let (tl, tlw) = read("train-labels-idx1-ubyte")?;
    let (ei, eiw) = read("t10k-images-idx3-ubyte")?;
    let (el, elw) = read("t10k-labels-idx1-ubyte")?;
    let train = split(&ti, &tl, &tiw, &tlw)?;
    let test = split(&ei, &el, &eiw, &elw)?;
    if train.shape != test.shape {
        bail!("{name} in {}: training images are {} but test images are {}", dir.display(), train.shape, test.shape);
    }
    Ok(Data { spec, name: name.into(), norm: Normalization::of(&train), default_augment: grey_augment(train.shape), train, test, files })
}
