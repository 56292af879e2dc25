//! The zero-cost proxies against PyTorch's values on a tiny supernet
//! (tests/fixtures/torch/meta.json, made by scripts/make_torch_fixtures.py
//! from the same initial weights and batch), in f64.

mod common;

use common::*;
use pada::arch::Genotype;
use pada::backend::cpu::CpuBackend;
use pada::backend::prelude::*;
use pada::element::Element;
use pada::proxies::proxies;
use pada::supernet::{InputShape, Supernet, SupernetConfig};

/// The proxies on `be` against PyTorch's, to `rtol`.
fn check<B: Backend>(be: &B, rtol: f64) {
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixtures_dir().join("torch/meta.json")).unwrap()).unwrap();
    let (m, want) = (&meta["supernet_c4_n2_3x16"], &meta["proxies_supernet_c4_n2_3x16"]);
    let u = |k: &str| m[k].as_u64().unwrap() as usize;
    let (c, n, in_ch, hw, classes, batch) = (u("C"), u("N"), u("in_ch"), u("H"), u("classes"), u("batch"));
    let config = SupernetConfig { channels: c, cells: n, classes, input: InputShape { c: in_ch, h: hw, w: hw } };
    let f = Fixture::torch("supernet_c4_n2_3x16.safetensors");
    let mut net = Supernet::uninit(be, config).unwrap();
    for p in &mut net.params.tensors {
        let v: Vec<B::T> = f.f64(&format!("param.{}", p.name)).into_iter().map(B::T::from_f64).collect();
        be.upload_into(&v, &mut p.value);
        be.fill(&mut p.grad, B::T::from_f64(0.0));
    }
    let x = be.upload_f64(&nchw_to_cnhw(&f.f64("x"), batch, in_ch, hw * hw));
    let labels = be.upload_i32(&f.i64("y").into_iter().map(|v| v as i32).collect::<Vec<_>>());
    let before: Vec<Vec<B::T>> = net.params.tensors.iter().map(|p| be.download(&p.value)).collect();
    for (k, arch) in m["archs"].as_array().unwrap().iter().enumerate() {
        let g: Genotype = arch.as_str().unwrap().parse().unwrap();
        let p = proxies(be, &mut net, &g, &x, &labels, batch);
        for (name, got) in [("grad_norm", p.grad_norm), ("snip", p.snip), ("synflow", p.synflow)] {
            let w = want[name][k].as_f64().unwrap();
            assert_close(&format!("{arch} {name}"), &[got], &[w], 1e-12, rtol);
        }
        assert_eq!(p.params, net.param_count(Some(&g)) as f64);
    }
    // the weights are as they were
    for (p, b) in net.params.tensors.iter().zip(&before) {
        assert_eq!(&be.download(&p.value), b, "{}", p.name);
    }
}

#[test]
fn zero_cost_proxies_match_pytorch() {
    check(&CpuBackend::<f64>::poisoned(), 1e-9);
}

// f32 kernels: the proxies are sums of products over the network's ~46k
// weights after ~10 batch norms; 1e-4 as the whole-step tests.
#[cfg(feature = "cuda-emu")]
#[test]
fn zero_cost_proxies_on_emulated_kernels_match_pytorch() {
    check(&pada::backend::gpu::emu::EmuBackend::poisoned(pada::backend::gpu::emu::EmuDevice::new()), 1e-4);
}

#[cfg(feature = "cuda")]
#[test]
#[ignore]
fn zero_cost_proxies_on_the_gpu_match_pytorch() {
    check(&pada::backend::gpu::cuda::CudaBackend::open(0).expect("a CUDA GPU (this test is for GPU machines)"), 1e-4);
}
