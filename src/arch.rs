//! An architecture of any search space: one choice per slot (NAS-Bench-201:
//! an op per edge; NAS-Bench-Macro: a block per layer), and the space it
//! belongs to. The types only: what a space means (its strings, sizes,
//! isomorphism classes, supernet) is its folder's, reached through the
//! registry (src/space/mod.rs), which implements the methods below that need
//! it ([`Arch::index`], `Display`, `FromStr`, ...). Keeping the types here lets
//! the supernet engine use them without depending on any space.

use thiserror::Error;

/// The most slots any space has (an [`Arch`] is a fixed-size value).
pub const MAX_SLOTS: usize = 16;

/// A registered search space: its place in the space registry's list
/// (src/space/mod.rs: `Space::NB201`, `Space::NB_MACRO`). The default, the first registered, is
/// NAS-Bench-201's (records made before there were several spaces are its).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Space(pub(crate) u8);

/// One architecture of a space: its choice for each slot. Written and read
/// as the space's own string (`|nor_conv_3x3~0|+|...|`, `02012100`), which
/// says which space it belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Arch {
    pub(crate) space: Space,
    pub(crate) len: u8,
    pub(crate) choices: [u8; MAX_SLOTS],
}

impl Arch {
    pub fn space(&self) -> Space {
        self.space
    }
    /// The choice of every slot.
    pub fn choices(&self) -> &[u8] {
        &self.choices[..self.len as usize]
    }
    pub fn choice(&self, slot: usize) -> usize {
        self.choices()[slot] as usize
    }
    /// How many slots hold `choice`.
    pub fn count(&self, choice: usize) -> usize {
        self.choices().iter().filter(|&&c| c as usize == choice).count()
    }
}

#[derive(Debug, Error, PartialEq)]
pub enum ArchError {
    #[error("{0}")]
    Malformed(String),
    #[error("architecture index {index} out of range 0..{count} of {space}")]
    Index { index: usize, count: usize, space: &'static str },
}
