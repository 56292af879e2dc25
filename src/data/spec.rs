//! `--data` specifications and loading.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::{cifar, folder, idx, imagenet16, synthetic, Data};
use crate::supernet::InputShape;

/// Where Debian's `dataset-fashion-mnist` package puts the data.
pub const DEBIAN_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

/// What `--data` names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum DataSpec {
    /// The Fashion-MNIST subset built into the binary.
    Embedded,
    /// Fashion-MNIST IDX files (gzipped or not); the Debian location by default.
    FashionMnist(Option<PathBuf>),
    Mnist(PathBuf),
    Cifar10(PathBuf),
    Cifar100(PathBuf),
    /// NAS-Bench-201's ImageNet16-120 (the pickled 16x16 batches).
    Imagenet16(PathBuf),
    /// An image folder: DIR/train/<class>/*, DIR/test/<class>/* (PNG, JPEG).
    Folder(PathBuf),
    /// Generated class-prototype images (for tests and benchmarks).
    Synthetic(synthetic::SyntheticSpec),
}

impl DataSpec {
    pub fn load(&self) -> anyhow::Result<Data> {
        match self {
            DataSpec::Embedded => idx::load_embedded(),
            DataSpec::FashionMnist(dir) => {
                let dir = dir.clone().unwrap_or_else(|| PathBuf::from(DEBIAN_FASHION_MNIST));
                idx::load_dir(self.clone(), "Fashion-MNIST", &dir)
            }
            DataSpec::Mnist(dir) => idx::load_dir(self.clone(), "MNIST", dir),
            DataSpec::Cifar10(dir) => cifar::load(self.clone(), dir, cifar::Variant::Cifar10),
            DataSpec::Cifar100(dir) => cifar::load(self.clone(), dir, cifar::Variant::Cifar100),
            DataSpec::Imagenet16(dir) => imagenet16::load(self.clone(), dir),
            DataSpec::Folder(dir) => folder::load(self.clone(), dir),
            DataSpec::Synthetic(s) => Ok(synthetic::generate(s)),
        }
    }

    /// A short name for default run directories: "embedded", "cifar10".
    pub fn short_name(&self) -> &'static str {
        match self {
            DataSpec::Embedded => "embedded",
            DataSpec::FashionMnist(_) => "fashion-mnist",
            DataSpec::Mnist(_) => "mnist",
            DataSpec::Cifar10(_) => "cifar10",
            DataSpec::Cifar100(_) => "cifar100",
            DataSpec::Imagenet16(_) => "imagenet16",
            DataSpec::Folder(_) => "folder",
            DataSpec::Synthetic(_) => "synthetic",
        }
    }

    /// The small data sets (28x28 digits and clothes, synthetic images), whose
    /// official preset trains 10 epochs instead of 250.
    pub fn is_small(&self) -> bool {
        matches!(self, DataSpec::Embedded | DataSpec::FashionMnist(_) | DataSpec::Mnist(_) | DataSpec::Synthetic(_))
    }

    /// Which benchmark data set this is, if one (a search space's ground
    /// truths are measured on these): the embedded data, CIFAR-10 (also an
    /// image folder of CIFAR-10's classes), CIFAR-100 or ImageNet16-120.
    pub fn known(&self) -> Option<KnownData> {
        match self {
            DataSpec::Embedded => Some(KnownData::Embedded),
            DataSpec::Cifar10(_) => Some(KnownData::Cifar10),
            DataSpec::Folder(dir) if folder::holds_cifar10(dir) => Some(KnownData::Cifar10),
            DataSpec::Cifar100(_) => Some(KnownData::Cifar100),
            DataSpec::Imagenet16(_) => Some(KnownData::Imagenet16),
            _ => None,
        }
    }
}

/// The data sets benchmarks are measured on ([`DataSpec::known`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KnownData {
    Embedded,
    Cifar10,
    Cifar100,
    Imagenet16,
}

impl fmt::Display for DataSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSpec::Embedded => write!(f, "embedded"),
            DataSpec::FashionMnist(None) => write!(f, "fashion-mnist"),
            DataSpec::FashionMnist(Some(d)) => write!(f, "fashion-mnist:{}", d.display()),
            DataSpec::Mnist(d) => write!(f, "mnist:{}", d.display()),
            DataSpec::Cifar10(d) => write!(f, "cifar10:{}", d.display()),
            DataSpec::Cifar100(d) => write!(f, "cifar100:{}", d.display()),
            DataSpec::Imagenet16(d) => write!(f, "imagenet16:{}", d.display()),
            DataSpec::Folder(d) => write!(f, "folder:{}", d.display()),
            DataSpec::Synthetic(s) => write!(f, "{s}"),
        }
    }
}

impl FromStr for DataSpec {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let (kind, rest) = match s.split_once(':') {
            Some((k, r)) => (k, Some(r)),
            None => (s, None),
        };
        let dir = |what: &str| -> anyhow::Result<PathBuf> {
            match rest {
                Some(d) if !d.is_empty() => Ok(PathBuf::from(d)),
                _ => bail!("--data {s:?}: {what} needs a directory, as {what}:DIR"),
            }
        };
        Ok(match kind {
            "embedded" if rest.is_none() => DataSpec::Embedded,
            "fashion-mnist" => DataSpec::FashionMnist(rest.filter(|r| !r.is_empty()).map(PathBuf::from)),
            "mnist" => DataSpec::Mnist(dir("mnist")?),
            "cifar10" => DataSpec::Cifar10(dir("cifar10")?),
            "cifar100" => DataSpec::Cifar100(dir("cifar100")?),
            "imagenet16" => DataSpec::Imagenet16(dir("imagenet16")?),
            "folder" => DataSpec::Folder(dir("folder")?),
            "synthetic" => DataSpec::Synthetic(rest.unwrap_or("").parse()?),
            _ => bail!(
                "--data {s:?} is not a data specification (expected embedded, fashion-mnist[:DIR], mnist:DIR, cifar10:DIR, cifar100:DIR, imagenet16:DIR, folder:DIR or synthetic[:CxHxW[:TRAIN[:TEST[:CLASSES]]]])"
            ),
        })
    }
}

impl From<DataSpec> for String {
    fn from(d: DataSpec) -> String {
        d.to_string()
    }
}

impl TryFrom<String> for DataSpec {
    type Error = anyhow::Error;
    fn try_from(s: String) -> anyhow::Result<Self> {
        s.parse()
    }
}

/// The input shape a spec will produce, when known without reading files.
pub fn known_shape(spec: &DataSpec) -> Option<InputShape> {
    match spec {
        DataSpec::Embedded | DataSpec::FashionMnist(_) | DataSpec::Mnist(_) => Some(InputShape { c: 1, h: 28, w: 28 }),
        DataSpec::Cifar10(_) | DataSpec::Cifar100(_) => Some(InputShape { c: 3, h: 32, w: 32 }),
        DataSpec::Imagenet16(_) => Some(InputShape { c: 3, h: 16, w: 16 }),
        DataSpec::Folder(_) => None,
        DataSpec::Synthetic(s) => Some(s.shape),
    }
}
