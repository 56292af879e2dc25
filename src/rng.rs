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
    MomentumSplit = 9,
    Proxies = 10,
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

/// Philox4x32-10 (Salmon et al., 2011), the counter-based generator of cuRAND:
/// the same (counter, key) gives the same numbers on every machine.
pub fn philox4x32_10(mut ctr: [u32; 4], mut key: [u32; 2]) -> [u32; 4] {
    const M0: u64 = 0xD251_1F53;
    const M1: u64 = 0xCD9E_8D57;
    const W0: u32 = 0x9E37_79B9;
    const W1: u32 = 0xBB67_AE85;
    for round in 0..10 {
        if round > 0 {
            key[0] = key[0].wrapping_add(W0);
            key[1] = key[1].wrapping_add(W1);
        }
        let p0 = M0 * ctr[0] as u64;
        let p1 = M1 * ctr[2] as u64;
        ctr = [((p1 >> 32) as u32) ^ ctr[1] ^ key[0], p1 as u32, ((p0 >> 32) as u32) ^ ctr[3] ^ key[1], p0 as u32];
    }
    ctr
}

/// The `i`-th uniform double in [0, 1) of the stream `seed` (53 random bits).
pub fn uniform01(seed: u64, i: u64) -> f64 {
    let r = philox4x32_10([i as u32, (i >> 32) as u32, 0, 0], [seed as u32, (seed >> 32) as u32]);
    let bits = ((r[0] as u64) << 21) ^ (r[1] as u64 >> 11);
    bits as f64 * (1.0 / (1u64 << 53) as f64)
}
