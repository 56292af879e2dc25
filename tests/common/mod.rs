//! Helpers shared by the integration tests: reading the fixtures of
//! tests/fixtures, layout conversion and tolerant comparison.
#![allow(dead_code)]

use std::path::PathBuf;

use safetensors::{Dtype, SafeTensors};

/// The repository's test fixtures (tests/fixtures): beside the sources, or
/// under the working directory (a test binary carried to a GPU machine runs
/// from a copy of the repository).
pub fn fixtures_dir() -> PathBuf {
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    if built.exists() {
        built
    } else {
        PathBuf::from("tests/fixtures")
    }
}

pub struct Fixture {
    bytes: Vec<u8>,
}

impl Fixture {
    /// A PyTorch fixture of tests/fixtures/torch (made by scripts/make_torch_fixtures.py).
    pub fn torch(file: &str) -> Fixture {
        Fixture::read(&fixtures_dir().join("torch").join(file))
    }
    pub fn read(path: &std::path::Path) -> Fixture {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Fixture { bytes }
    }
    fn st(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).expect("valid safetensors")
    }
    pub fn has(&self, name: &str) -> bool {
        self.st().tensor(name).is_ok()
    }
    pub fn names(&self) -> Vec<String> {
        self.st().names().into_iter().map(|s| s.to_string()).collect()
    }
    pub fn shape(&self, name: &str) -> Vec<usize> {
        self.st().tensor(name).unwrap_or_else(|_| panic!("fixture tensor {name} missing")).shape().to_vec()
    }
    /// Any float or integer tensor as f64.
    pub fn f64(&self, name: &str) -> Vec<f64> {
        let st = self.st();
        let t = st.tensor(name).unwrap_or_else(|_| panic!("fixture tensor {name} missing"));
        let d = t.data();
        match t.dtype() {
            Dtype::F32 => d.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
            Dtype::F64 => d.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
            Dtype::I64 => d.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
            Dtype::U8 => d.iter().map(|&b| b as f64).collect(),
            other => panic!("{name}: unexpected dtype {other:?}"),
        }
    }
    pub fn f32(&self, name: &str) -> Vec<f32> {
        self.f64(name).into_iter().map(|v| v as f32).collect()
    }
    pub fn i64(&self, name: &str) -> Vec<i64> {
        self.f64(name).into_iter().map(|v| v as i64).collect()
    }
}

/// NCHW (PyTorch) to CNHW (pada).
pub fn nchw_to_cnhw<T: Copy>(x: &[T], n: usize, c: usize, hw: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(x.len());
    for ci in 0..c {
        for ni in 0..n {
            out.extend_from_slice(&x[(ni * c + ci) * hw..][..hw]);
        }
    }
    out
}

/// CNHW back to NCHW.
pub fn cnhw_to_nchw<T: Copy + Default>(x: &[T], n: usize, c: usize, hw: usize) -> Vec<T> {
    let mut out = vec![T::default(); x.len()];
    for ci in 0..c {
        for ni in 0..n {
            out[(ni * c + ci) * hw..][..hw].copy_from_slice(&x[(ci * n + ni) * hw..][..hw]);
        }
    }
    out
}

/// Asserts `|got - want| <= atol + rtol * |want|` element-wise, reporting the worst.
pub fn assert_close(what: &str, got: &[f64], want: &[f64], atol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length {} vs {}", got.len(), want.len());
    let mut worst = (0usize, 0.0f64);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(g.is_finite(), "{what}[{i}] = {g} is not finite");
        let excess = (g - w).abs() - (atol + rtol * w.abs());
        if excess > worst.1 {
            worst = (i, excess);
        }
    }
    let i = worst.0;
    assert!(
        worst.1 <= 0.0,
        "{what}: element {i} is {} but the reference says {} (|diff| {:.3e} > atol {atol:.1e} + rtol {rtol:.1e} * |want|)",
        got[i],
        want[i],
        (got[i] - want[i]).abs()
    );
}

pub fn to_f64<T: pada::element::Element>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.as_f64()).collect()
}

/// Uniform random values in [-1, 1) from a seeded generator, never all zeros.
pub fn random_vec(len: usize, seed: u64) -> Vec<f64> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}
