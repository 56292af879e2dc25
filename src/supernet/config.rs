//! The supernet's configuration: channels, cells per stage, classes, input shape.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

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

/// A NAS-Bench-201 supernet: a stem, 3 stages of `cells` search cells with
/// `channels`, 2x and 4x channels, two ResNet reduction blocks, and a classifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SupernetConfig {
    pub channels: usize,
    pub cells: usize,
    pub classes: usize,
    pub input: InputShape,
}

impl fmt::Display for SupernetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "C={} N={} classes={} input={}", self.channels, self.cells, self.classes, self.input)
    }
}

impl SupernetConfig {
    /// The NAS-Bench-201 search configuration on CIFAR-10: C=16, N=5, 3x32x32, 10 classes.
    pub fn nb201() -> Self {
        Self { channels: 16, cells: 5, classes: 10, input: InputShape { c: 3, h: 32, w: 32 } }
    }
    /// A small configuration for 28x28 grey images: C=8, N=1.
    pub fn mini() -> Self {
        Self { channels: 8, cells: 1, classes: 10, input: InputShape { c: 1, h: 28, w: 28 } }
    }

    /// Checks the configuration, with a message that names the offending setting.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.channels == 0 {
            bail!("--channels must be at least 1 (got 0)");
        }
        if self.cells == 0 {
            bail!("--cells must be at least 1 (got 0)");
        }
        if self.classes < 2 {
            bail!("the number of classes must be at least 2 (got {})", self.classes);
        }
        let InputShape { c, h, w } = self.input;
        if c == 0 {
            bail!("input channels must be at least 1");
        }
        // Each reduction block halves the size twice over: its strided conv gives
        // ceil(h/2) and its avg-pool shortcut floor(h/2), which agree only for even h.
        if h < 4 || w < 4 || h % 4 != 0 || w % 4 != 0 {
            bail!("input size {h}x{w} is not supported: height and width must be multiples of 4 (e.g. 28x28, 32x32), so that both reduction blocks see even sizes");
        }
        Ok(())
    }

    /// Channels of stage `s` (0, 1, 2).
    pub fn stage_channels(&self, s: usize) -> usize {
        self.channels << s
    }
    /// Spatial size of stage `s`.
    pub fn stage_hw(&self, s: usize) -> (usize, usize) {
        (self.input.h >> s, self.input.w >> s)
    }
}
