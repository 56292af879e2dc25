//! Training-time augmentation: random crop after zero padding, and horizontal flip.

use std::fmt;
use std::str::FromStr;

use anyhow::bail;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Random crop of the original size from the image padded by `crop_pad` zeros
/// on each side (`RandomCrop(size, padding)`), then a horizontal flip with
/// probability 1/2 if `flip` (`RandomHorizontalFlip`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Augment {
    pub crop_pad: usize,
    pub flip: bool,
}

impl Augment {
    pub const NONE: Augment = Augment { crop_pad: 0, flip: false };

    /// Per-image random choices: crop offsets and flip.
    pub fn draw(&self, rng: &mut impl Rng) -> (usize, usize, bool) {
        let dy = if self.crop_pad > 0 { rng.random_range(0..=2 * self.crop_pad) } else { 0 };
        let dx = if self.crop_pad > 0 { rng.random_range(0..=2 * self.crop_pad) } else { 0 };
        let flip = self.flip && rng.random_bool(0.5);
        (dy, dx, flip)
    }

    /// Source pixel of output pixel `(r, c)` for choices `(dy, dx, flip)`, or
    /// `None` where the crop shows padding.
    #[inline]
    pub fn source(&self, h: usize, w: usize, (dy, dx, flip): (usize, usize, bool), r: usize, c: usize) -> Option<(usize, usize)> {
        let c = if flip { w - 1 - c } else { c };
        let (sr, sc) = ((r + dy) as isize - self.crop_pad as isize, (c + dx) as isize - self.crop_pad as isize);
        (sr >= 0 && sc >= 0 && (sr as usize) < h && (sc as usize) < w).then_some((sr as usize, sc as usize))
    }
}

/// `--augment`: what the data's default is (`auto`), or an explicit choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum AugmentChoice {
    /// CIFAR: crop 32 with padding 4 and flip (as the official code);
    /// 28x28 grey images: crop with padding 2, no flip; synthetic: none.
    Auto,
    Explicit(Augment),
}

impl AugmentChoice {
    pub fn resolve(self, data_default: Augment) -> Augment {
        match self {
            AugmentChoice::Auto => data_default,
            AugmentChoice::Explicit(a) => a,
        }
    }
}

impl fmt::Display for AugmentChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AugmentChoice::Auto => write!(f, "auto"),
            AugmentChoice::Explicit(a) if *a == Augment::NONE => write!(f, "none"),
            AugmentChoice::Explicit(a) => {
                let mut parts = Vec::new();
                if a.crop_pad > 0 {
                    parts.push(format!("crop{}", a.crop_pad));
                }
                if a.flip {
                    parts.push("flip".to_string());
                }
                write!(f, "{}", parts.join("+"))
            }
        }
    }
}

impl FromStr for AugmentChoice {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        if s == "auto" {
            return Ok(AugmentChoice::Auto);
        }
        if s == "none" {
            return Ok(AugmentChoice::Explicit(Augment::NONE));
        }
        let mut a = Augment::NONE;
        for part in s.split('+') {
            if part == "flip" {
                a.flip = true;
            } else if let Some(p) = part.strip_prefix("crop") {
                a.crop_pad = match p {
                    "" => 4,
                    p => p.parse().map_err(|_| anyhow::anyhow!("--augment {s:?}: {part:?} must be cropN with N the padding"))?,
                };
            } else {
                bail!("--augment {s:?}: unknown part {part:?} (expected auto, none, or cropN and/or flip joined by '+', e.g. crop4+flip)");
            }
        }
        Ok(AugmentChoice::Explicit(a))
    }
}

impl From<AugmentChoice> for String {
    fn from(a: AugmentChoice) -> String {
        a.to_string()
    }
}

impl TryFrom<String> for AugmentChoice {
    type Error = anyhow::Error;
    fn try_from(s: String) -> anyhow::Result<Self> {
        s.parse()
    }
}
