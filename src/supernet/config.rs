//! The supernet's configuration: channels, cells per stage, classes, input shape.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::arch::Space;

/// An input image shape `C x H x W`, written `3x32x32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InputShape {
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl InputShape {
    pub fn len(&self) -> usize {
        self.c * self.h * self.w
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Display for InputShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.c, self.h, self.w)
    }
}

impl FromStr for InputShape {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        let parts: Vec<&str> = s.split(['x', 'X']).collect();
        if parts.len() != 3 {
            bail!("input shape {s:?} must be CxHxW, e.g. 3x32x32 or 1x28x28");
        }
        let num = |p: &str, what: &str| -> anyhow::Result<usize> {
            p.trim().parse::<usize>().with_context(|| format!("input shape {s:?}: {what} {p:?} is not a positive integer"))
        };
        let shape = InputShape { c: num(parts[0], "channels")?, h: num(parts[1], "height")?, w: num(parts[2], "width")? };
        if shape.c == 0 || shape.h == 0 || shape.w == 0 {
            bail!("input shape {s:?}: every dimension must be at least 1");
        }
        Ok(shape)
    }
}

/// A supernet of a search space: `space`'s body at width `channels` (and,
/// in NAS-Bench-201, `cells` cells per stage), a classifier of `classes`,
/// inputs of shape `input`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SupernetConfig {
    /// (Records made before there were several spaces are NAS-Bench-201's.)
    #[serde(default)]
    pub space: Space,
    /// The first stage's channels (NAS-Bench-201's C; NAS-Bench-Macro's stem width).
    pub channels: usize,
    /// Search cells per stage (NAS-Bench-201's N; 0 where the space has no such setting).
    pub cells: usize,
    pub classes: usize,
    pub input: InputShape,
}

impl fmt::Display for SupernetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // (spaces without cells: named, since their C means another width)
        match self.cells {
            0 => write!(f, "{} C={} classes={} input={}", self.space, self.channels, self.classes, self.input),
            n => write!(f, "C={} N={n} classes={} input={}", self.channels, self.classes, self.input),
        }
    }
}

impl SupernetConfig {
    /// A NAS-Bench-201 supernet.
    pub fn nb201_with(channels: usize, cells: usize, classes: usize, input: InputShape) -> Self {
        // (the default space is NAS-Bench-201)
        Self { space: Space::default(), channels, cells, classes, input }
    }
    /// The NAS-Bench-201 search configuration on CIFAR-10: C=16, N=5, 3x32x32, 10 classes.
    pub fn nb201() -> Self {
        Self::nb201_with(16, 5, 10, InputShape { c: 3, h: 32, w: 32 })
    }
    /// A small configuration for 28x28 grey images: C=8, N=1.
    pub fn mini() -> Self {
        Self::nb201_with(8, 1, 10, InputShape { c: 1, h: 28, w: 28 })
    }

    /// Checks the settings every space shares, with a message that names the
    /// offending one (the space checks its own when it builds the body).
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.classes < 2 {
            bail!("the number of classes must be at least 2 (got {})", self.classes);
        }
        if self.input.c == 0 {
            bail!("input channels must be at least 1");
        }
        Ok(())
    }
}
