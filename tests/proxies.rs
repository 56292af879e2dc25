//! The zero-cost proxies against the authors' definitions in PyTorch on a tiny
//! supernet (tests/fixtures/torch/meta.json, made by
//! scripts/make_torch_fixtures.py from the same weights and batch: per-layer
//! weight-gradient norms summed, snip through weight masks, synflow without
//! and with batch norm in float64); and the per-architecture networks and
//! batches of `for_archs`.

mod common;

use common::*;
use pada::arch::Arch;
use pada::backend::cpu::CpuBackend;
use pada::backend::prelude::*;
use pada::element::Element;
use pada::proxies::{for_archs, ProxyEngine};
use pada::supernet::{InputShape, SupernetConfig};

/// The proxies on `be` against PyTorch's, to `rtol`.
fn check<B: Backend>(be: &B, rtol: f64) {
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixtures_dir().join("torch/meta.json")).unwrap()).unwrap();
    let (m, want) = (&meta["supernet_c4_n2_3x16"], &meta["proxies_supernet_c4_n2_3x16"]);
    let u = |k: &str| m[k].as_u64().unwrap() as usize;
    let (c, n, in_ch, hw, classes, batch) = (u("C"), u("N"), u("in_ch"), u("H"), u("classes"), u("batch"));
    let config = SupernetConfig::nb201_with(c, n, classes, InputShape { c: in_ch, h: hw, w: hw });
    let f = Fixture::torch("supernet_c4_n2_3x16.safetensors");
    let mut engine = ProxyEngine::new(be, config).unwrap();
    for p in &mut engine.net.params.tensors {
        let v: Vec<B::T> = f.f64(&format!("param.{}", p.name)).into_iter().map(B::T::from_f64).collect();
        be.upload_into(&v, &mut p.value);
        be.fill(&mut p.grad, B::T::from_f64(0.0));
    }
    let x = be.upload_f64(&nchw_to_cnhw(&f.f64("x"), batch, in_ch, hw * hw));
    let labels = be.upload_i32(&f.i64("y").into_iter().map(|v| v as i32).collect::<Vec<_>>());
    let before: Vec<Vec<B::T>> = engine.net.params.tensors.iter().map(|p| be.download(&p.value)).collect();
    for (k, arch) in m["archs"].as_array().unwrap().iter().enumerate() {
        let g: Arch = arch.as_str().unwrap().parse().unwrap();
        let p = engine.proxies(&g, &x, &labels, batch);
        // synflow runs in float64 on any backend (on the backend's weights): 1e-9 there
        for (name, got, tol) in
            [("grad_norm", p.grad_norm, rtol), ("snip", p.snip, rtol), ("synflow", p.synflow, 1e-9), ("synflow_bn", p.synflow_bn, 1e-9)]
        {
            let w = want[name][k].as_f64().unwrap();
            assert_close(&format!("{arch} {name}"), &[got], &[w], 1e-12, tol);
        }
        assert_eq!(p.params, engine.net.param_count(Some(&g)) as f64);
    }
    // the weights are as they were
    for (p, b) in engine.net.params.tensors.iter().zip(&before) {
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

/// Every architecture is its own network at PyTorch's default initialisation
/// on its own augmented batch, from the seed and its NAS-Bench-201 index: its
/// proxies are the same whichever others are computed with it, differ with the
/// seed, and an architecture's network is not another's.
#[test]
fn each_architecture_has_its_own_network_and_batch() {
    let be = CpuBackend::<f32>::new();
    let data = "synthetic:3x8x8:200:10:5".parse::<pada::data::DataSpec>().unwrap().load().unwrap();
    let config = SupernetConfig::nb201_with(4, 1, 5, data.shape());
    let a: Arch = "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|".parse().unwrap();
    let b: Arch = "|nor_conv_1x1~0|+|none~0|nor_conv_3x3~1|+|nor_conv_3x3~0|none~1|nor_conv_1x1~2|".parse().unwrap();
    let both = for_archs(&be, config, &data, 16, 7, &[a, b], |_, _| {}).unwrap();
    let alone = for_archs(&be, config, &data, 16, 7, &[b], |_, _| {}).unwrap();
    assert_eq!(both[1], alone[0], "b's proxies do not depend on a being computed first");
    let reseeded = for_archs(&be, config, &data, 16, 8, &[b], |_, _| {}).unwrap();
    assert_ne!(reseeded[0].grad_norm, alone[0].grad_norm, "another seed, another network and batch");
    assert_eq!(reseeded[0].params, alone[0].params);
    // the init is PyTorch's default: uniform within 1/sqrt(fan_in), on the path only
    let mut engine = ProxyEngine::new(&be, config).unwrap();
    engine.init_arch(&b, 7);
    for id in engine.net.path_params(&b) {
        let p = &engine.net.params.tensors[id.0];
        let bound = 1.0 / (p.fan_in as f32).sqrt();
        assert!(p.value.iter().all(|v| v.abs() <= bound) && p.value.iter().any(|&v| v != 0.0), "{}", p.name);
    }
}
