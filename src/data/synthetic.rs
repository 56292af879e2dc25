//! Synthetic data for tests and benchmarks: each class has a random prototype
//! image, and samples are noisy, shifted copies of it, so that a network can
//! learn them but not instantly.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Context};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Augment, Data, DataSpec, Dataset, Normalization};
use crate::supernet::InputShape;

/// `synthetic[:CxHxW[:TRAIN[:TEST[:CLASSES]]]]`; defaults 1x28x28, 512, 256, 10.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyntheticSpec {
    pub shape: InputShape,
    pub train: usize,
    pub test: usize,
    pub classes: usize,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        Self { shape: InputShape { c: 1, h: 28, w: 28 }, train: 512, test: 256, classes: 10 }
    }
}

impl fmt::Display for SyntheticSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "synthetic:{}:{}:{}:{}", self.shape, self.train, self.test, self.classes)
    }
}

impl FromStr for SyntheticSpec {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        let mut spec = SyntheticSpec::default();
        let parts: Vec<&str> = if s.is_empty() { vec![] } else { s.split(':').collect() };
        if parts.len() > 4 {
            bail!("--data synthetic:{s}: expected synthetic[:CxHxW[:TRAIN[:TEST[:CLASSES]]]]");
        }
        let num = |p: &str, what: &str| p.parse::<usize>().with_context(|| format!("--data synthetic:{s}: {what} {p:?} is not a number"));
        if let Some(p) = parts.first() {
            spec.shape = p.parse()?;
        }
        if let Some(p) = parts.get(1) {
            spec.train = num(p, "training size")?;
        }
        if let Some(p) = parts.get(2) {
            spec.test = num(p, "test size")?;
        }
        if let Some(p) = parts.get(3) {
            spec.classes = num(p, "number of classes")?;
        }
        if spec.train == 0 || spec.test == 0 || spec.classes < 2 || spec.classes > 1000 {
            bail!("--data synthetic:{s}: needs at least 1 training and 1 test image and 2..=1000 classes");
        }
        Ok(spec)
    }
}

/// Generates the data; always the same for the same spec.
pub fn generate(spec: &SyntheticSpec) -> Data {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_da7a);
    let sz = spec.shape.len();
    let protos: Vec<Vec<f32>> = (0..spec.classes).map(|_| (0..sz).map(|_| rng.random_range(0.0..255.0)).collect()).collect();
    let mut make = |n: usize| {
        let mut d = Dataset { shape: spec.shape, classes: spec.classes, pixels: Vec::with_capacity(n * sz), labels: Vec::with_capacity(n) };
        for i in 0..n {
            // class-interleaved, never sorted
            let class = i % spec.classes;
            let shift = rng.random_range(0..3usize);
            for j in 0..sz {
                let v = protos[class][(j + shift) % sz] * 0.6 + rng.random_range(0.0..102.0f32);
                d.pixels.push(v.clamp(0.0, 255.0) as u8);
            }
            d.labels.push(class as u16);
        }
        d
    };
    let train = make(spec.train);
    let test = make(spec.test);
    Data {
        spec: DataSpec::Synthetic(*spec),
        name: format!("synthetic {} ({} classes)", spec.shape, spec.classes),
        norm: Normalization::of(&train),
        default_augment: Augment::NONE,
        train,
        test,
        files: Vec::new(),
    }
}
