//! Seeds and random streams. Every random choice of a run comes from a stream
//! derived from (seed, purpose, epoch, step), so a run resumed at an epoch
//! boundary draws exactly what the uninterrupted run drew.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// SplitMix64: a tiny generator, also used (for its portability) to define the
/// benchmark path sequence shared with the PyTorch script.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// What a random stream is for; part of its seed.
#[derive(Clone, Copy, Debug)]
#[repr(u64)]
pub enum Purpose {
    Init = 1,
    DataOrder = 2,
    Augment = 3,
    Paths = 4,
    Resample = 5,
    Ranking = 6,
    Search = 7,
    GradVar = 8,
}

/// A seed for `purpose` at (`a`, `b`) (e.g. epoch and step) of a run seeded `seed`.
pub fn derive_seed(seed: u64, purpose: Purpose, a: u64, b: u64) -> u64 {
    let mut s = SplitMix64(seed ^ (purpose as u64).wrapping_mul(0xA24B_AED4_963E_E407));
    let x = s.next() ^ a.wrapping_mul(0x9FB2_1C65_1E98_DF25);
    let mut s = SplitMix64(x);
    let y = s.next() ^ b.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    SplitMix64(y).next()
}

pub fn stream(seed: u64, purpose: Purpose, a: u64, b: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(derive_seed(seed, purpose, a, b))
}
