//! The whole supernet: parameter counts, PyTorch parity of forward, backward and
//! one SGD step for several architectures, and finite-difference checks.

mod common;

use common::*;
use pada::arch::Arch;
use pada::backend::cpu::CpuBackend;
use pada::backend::prelude::*;
use pada::element::Element;
use pada::ops::SgdStep;
use pada::optim::{clip_and_step, OffPath};
use pada::space::nb201::{Genotype, Op};
use pada::supernet::{InputShape, Supernet, SupernetConfig};

fn cfg(c: usize, n: usize, classes: usize, input: &str) -> SupernetConfig {
    SupernetConfig::nb201_with(c, n, classes, input.parse().unwrap())
}

#[test]
fn parameter_counts_match_official_supernet() {
    let be = CpuBackend::<f32>::new();
    // PyTorch's counts of the official model (tests/fixtures/torch/meta.json),
    // written out here so that a changed fixture cannot move them.
    for (c, n, input, classes, want) in [
        (16, 5, "3x32x32", 10, 1_692_474),
        (16, 5, "3x32x32", 100, 1_698_324),
        (16, 5, "3x16x16", 120, 1_699_624),
        (8, 1, "1x28x28", 10, 99_730),
        (4, 2, "3x16x16", 10, 45_798),
        (16, 1, "1x28x28", 10, 396_570),
    ] {
        let net = Supernet::uninit(&be, cfg(c, n, classes, input)).unwrap();
        assert_eq!(net.param_count(None), want, "C={c} N={n} {input} {classes} classes");
    }
}

#[test]
fn parameter_counts_agree_with_meta_json() {
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixtures_dir().join("torch/meta.json")).unwrap()).unwrap();
    let be = CpuBackend::<f32>::new();
    for pc in meta["param_counts"].as_array().unwrap() {
        let c = cfg(
            pc["C"].as_u64().unwrap() as usize,
            pc["N"].as_u64().unwrap() as usize,
            pc["classes"].as_u64().unwrap() as usize,
            pc["input"].as_str().unwrap(),
        );
        let net = Supernet::uninit(&be, c).unwrap();
        assert_eq!(net.param_count(None) as u64, pc["params"].as_u64().unwrap(), "{pc}");
    }
}

#[test]
fn subnet_parameter_count_of_resnet_cell() {
    // The ResNet-like cell: two 3x3 convs per cell, the rest parameter-free.
    let be = CpuBackend::<f32>::new();
    let net = Supernet::uninit(&be, SupernetConfig::nb201()).unwrap();
    let g: Arch = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|".parse().unwrap();
    // stem 432 + 5 cells x 2 convs x 2320 + 5 x 2 x 9248 + 5 x 2 x 36928 + res 14400 + 57472 + 650
    let want = 432 + 5 * 2 * (2320 + 9248 + 36928) + 14400 + 57472 + 650;
    assert_eq!(net.param_count(Some(&g)), want);
    assert!(net.forward_macs(&g) > 0);
}

/// Runs one fixture file through the supernet in element type T.
fn supernet_fixture<T: Element>(file: &str, key: &str, tol: (f64, f64), grad_tol: (f64, f64)) {
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixtures_dir().join("torch/meta.json")).unwrap()).unwrap();
    let m = &meta[key];
    let u = |k: &str| m[k].as_u64().unwrap() as usize;
    let (c, in_ch, hw, classes, batch) = (u("C"), u("in_ch"), u("H"), u("classes"), u("batch"));
    let input = InputShape { c: in_ch, h: hw, w: hw };
    let config = match m["space"].as_str() {
        Some(space) => SupernetConfig { space: space.parse().unwrap(), channels: c, cells: 0, classes, input },
        None => SupernetConfig::nb201_with(c, u("N"), classes, input),
    };
    let f = Fixture::torch(file);
    let be = CpuBackend::<T>::poisoned();
    let mut net = Supernet::uninit(&be, config).unwrap();
    assert_eq!(net.param_count(None), u("params"));
    // load the initial weights by name; every fixture parameter must exist here and vice versa
    let fixture_params: Vec<String> = f.names().into_iter().filter(|s| s.starts_with("param.")).collect();
    assert_eq!(fixture_params.len(), net.params.len(), "parameter tensor count");
    let initial: Vec<Vec<T>> = net
        .params
        .tensors
        .iter()
        .map(|p| {
            let name = format!("param.{}", p.name);
            assert_eq!(f.shape(&name), p.shape, "{name} shape");
            f.f64(&name).into_iter().map(T::from_f64).collect()
        })
        .collect();
    let x = nchw_to_cnhw(&f.f64("x").into_iter().map(T::from_f64).collect::<Vec<_>>(), batch, in_ch, hw * hw);
    let labels: Vec<i32> = f.i64("y").into_iter().map(|v| v as i32).collect();
    let archs = m["archs"].as_array().unwrap();
    for (k, arch) in archs.iter().enumerate() {
        let g: Arch = arch.as_str().unwrap().parse().unwrap();
        let ops: Vec<usize> = f.i64(&format!("arch{k}.ops")).into_iter().map(|v| v as usize).collect();
        assert_eq!(g.choices().iter().map(|&c| c as usize).collect::<Vec<_>>(), ops, "arch{k} string vs ops");
        // fresh weights, gradients and momentum for each architecture
        for (p, v) in net.params.tensors.iter_mut().zip(&initial) {
            be.upload_into(v, &mut p.value);
            be.fill(&mut p.grad, T::zero());
            be.fill(&mut p.momentum, T::zero());
            p.seen = false;
        }
        let tape = net.forward(&be, be.upload(&x), batch, &g, true);
        let logits = be.download(&tape.logits);
        let what = |s: &str| format!("{file} arch{k} {s}");
        assert_close(&what("logits"), &to_f64(&logits), &f.f64(&format!("arch{k}.logits")), tol.0, tol.1);
        let (mut loss, mut dl, mut norm) = (be.alloc(batch), be.alloc(batch * classes), be.alloc(batch));
        be.softmax_cross_entropy(batch, classes, &tape.logits, &be.upload_i32(&labels), None, &mut loss, &mut dl, &mut norm);
        let mean = be.download(&loss).iter().map(|v| v.as_f64()).sum::<f64>() / batch as f64;
        assert_close(&what("loss"), &[mean], &f.f64(&format!("arch{k}.loss")), tol.0, tol.1);
        assert_close(&what("proxy_norm"), &to_f64(&be.download(&norm)), &f.f64(&format!("arch{k}.proxy_norm")), tol.0, tol.1);
        net.backward(&be, tape, &dl);
        // Gradients: exactly the fixture's set of parameters has one. The fixture
        // stores them *after* clip_grad_norm_(5) (their total norm is min(5, the
        // norm before clipping)), so ours are compared times the clip coefficient.
        let on_path: Vec<bool> = net.params.tensors.iter().map(|p| p.seen).collect();
        let path = net.path_params(&g);
        let total_before = f.f64(&format!("arch{k}.grad_total_norm_before_clip"))[0];
        let coef = pada::ops::clip_coefficient(total_before, 5.0);
        // A conv bias before a batch norm has an exact gradient of 0 (pada computes
        // 0; PyTorch rounding noise, up to ~1e-12): every gradient's absolute
        // tolerance is relative to the architecture's largest gradient.
        let step_scale = net
            .params
            .tensors
            .iter()
            .filter(|p| f.has(&format!("arch{k}.grad.{}", p.name)))
            .flat_map(|p| f.f64(&format!("arch{k}.grad.{}", p.name)))
            .fold(0.0f64, |a, v| a.max(v.abs()));
        for (i, p) in net.params.tensors.iter().enumerate() {
            let name = format!("arch{k}.grad.{}", p.name);
            assert_eq!(f.has(&name), on_path[i], "{name}: on the path in PyTorch vs pada");
            assert_eq!(path.iter().any(|id| id.0 == i), on_path[i]);
            if on_path[i] {
                let want = f.f64(&name);
                let scale = want.iter().fold(step_scale, |a, v| a.max(v.abs()));
                let got: Vec<f64> = to_f64(&be.download(&p.grad)).into_iter().map(|v| v * coef).collect();
                assert_close(&what(&format!("grad {}", p.name)), &got, &want, grad_tol.0 * scale, grad_tol.1);
            }
        }
        // clip_grad_norm_(5) + SGD from fresh momentum
        let h = SgdStep { lr: 0.05, momentum: 0.9, weight_decay: 2.5e-4 };
        let norms = clip_and_step(&be, &mut net.params, &on_path, &h, Some(5.0), OffPath::Frozen, None);
        let total = be.download(&norms.sq_norms).iter().map(|v| v.as_f64()).sum::<f64>().sqrt();
        assert_close(&what("grad total norm"), &[total], &f.f64(&format!("arch{k}.grad_total_norm_before_clip")), tol.0, tol.1);
        for (i, p) in net.params.tensors.iter().enumerate() {
            let v = to_f64(&be.download(&p.value));
            if on_path[i] {
                let want = f.f64(&format!("arch{k}.after_step.{}", p.name));
                assert_close(&what(&format!("after_step {}", p.name)), &v, &want, tol.0, tol.1);
            } else {
                assert_eq!(v, to_f64(&initial[i]), "{}: off the path but changed", p.name);
            }
        }
    }
}

/// NAS-Bench-Macro's supernet against scripts/nbmacro_torch.py (an
/// independent PyTorch model of the benchmark's network, depthwise convs by
/// `groups`): logits, loss, every gradient, one SGD step.
#[test]
fn supernet_macro_matches_pytorch_f64() {
    supernet_fixture::<f64>("supernet_macro_c2_3x16.safetensors", "supernet_macro_c2_3x16", (1e-10, 1e-9), (1e-9, 1e-8));
}

#[test]
fn supernet_macro_matches_pytorch_f32() {
    supernet_fixture::<f32>("supernet_macro_c2_3x16.safetensors", "supernet_macro_c2_3x16", (1e-4, 1e-4), (5e-4, 1e-3));
}

#[test]
fn supernet_c4_n2_matches_pytorch_f64() {
    supernet_fixture::<f64>("supernet_c4_n2_3x16.safetensors", "supernet_c4_n2_3x16", (1e-10, 1e-9), (1e-9, 1e-8));
}

#[test]
fn supernet_c8_n1_matches_pytorch_f64() {
    supernet_fixture::<f64>("supernet_c8_n1_1x28.safetensors", "supernet_c8_n1_1x28", (1e-10, 1e-9), (1e-9, 1e-8));
}

// f32: activations pass through ~20 batch norms; each rounds at ~6e-8 relative
// and BN divides by small standard deviations, so logits agree to ~1e-5 and
// gradients (sums over thousands of products) to ~1e-4 of their largest entry.
#[test]
fn supernet_c4_n2_matches_pytorch_f32() {
    supernet_fixture::<f32>("supernet_c4_n2_3x16.safetensors", "supernet_c4_n2_3x16", (1e-4, 1e-4), (5e-4, 1e-3));
}

#[test]
fn supernet_c8_n1_matches_pytorch_f32() {
    supernet_fixture::<f32>("supernet_c8_n1_1x28.safetensors", "supernet_c8_n1_1x28", (1e-4, 1e-4), (5e-4, 1e-3));
}

/// Finite differences of the mean cross-entropy through the whole supernet, in f64.
fn whole_net_gradcheck(arch: &str, seed: u64) {
    let g: Arch = arch.parse().unwrap();
    let config = match g.space() {
        pada::arch::Space::NB201 => cfg(3, 2, 5, "2x8x8"),
        // (16x16: the last stage at 2x2, so that batch norm sees 12 values, not 3)
        space => SupernetConfig { space, channels: 2, cells: 0, classes: 5, input: "2x16x16".parse().unwrap() },
    };
    let be = CpuBackend::<f64>::poisoned();
    let mut net = Supernet::new(&be, config, seed).unwrap();
    let batch = 3;
    let x = random_vec(batch * config.input.len(), seed + 1);
    let labels: Vec<i32> = (0..batch as i32).map(|i| i % 5).collect();
    let loss_of = |net: &Supernet<CpuBackend<f64>>| -> (f64, Vec<f64>) {
        let tape = net.forward(&be, be.upload(&x), batch, &g, true);
        let (mut l, mut d, mut q) = (be.alloc(batch), be.alloc(batch * 5), be.alloc(batch));
        be.softmax_cross_entropy(batch, 5, &tape.logits, &labels, None, &mut l, &mut d, &mut q);
        (l.iter().sum::<f64>() / batch as f64, d.to_vec())
    };
    let tape = net.forward(&be, be.upload(&x), batch, &g, true);
    let (mut l, mut d, mut q) = (be.alloc(batch), be.alloc(batch * 5), be.alloc(batch));
    be.softmax_cross_entropy(batch, 5, &tape.logits, &labels, None, &mut l, &mut d, &mut q);
    net.backward(&be, tape, &d);
    let analytic: Vec<Vec<f64>> = net.params.tensors.iter().map(|p| p.grad.to_vec()).collect();
    let on_path: Vec<usize> = net.path_params(&g).iter().map(|id| id.0).collect();
    let mut checked = 0;
    for (i, grads) in analytic.iter().enumerate() {
        if !on_path.contains(&i) {
            assert!(grads.iter().all(|&v| v == 0.0), "{}: off-path gradient", net.params.tensors[i].name);
            continue;
        }
        // a spread of coordinates of every on-path tensor
        let len = grads.len();
        let step = (len / 7).max(1);
        for j in (0..len).step_by(step) {
            let orig = net.params.tensors[i].value[j];
            let h = 1e-6;
            net.params.tensors[i].value[j] = orig + h;
            let lp = loss_of(&net).0;
            net.params.tensors[i].value[j] = orig - h;
            let lm = loss_of(&net).0;
            net.params.tensors[i].value[j] = orig;
            let num = (lp - lm) / (2.0 * h);
            let name = &net.params.tensors[i].name;
            assert!((num - grads[j]).abs() <= 1e-6 + 1e-5 * num.abs(), "{arch}: {name}[{j}] analytic {} vs numeric {num}", grads[j]);
            checked += 1;
        }
    }
    assert!(checked > 50, "checked only {checked} coordinates");
}

#[test]
fn whole_supernet_gradients_all_conv() {
    whole_net_gradcheck("|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|nor_conv_1x1~0|nor_conv_3x3~1|nor_conv_3x3~2|", 1);
}

#[test]
fn whole_supernet_gradients_with_none_skip_pool() {
    whole_net_gradcheck("|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|skip_connect~1|nor_conv_3x3~2|", 2);
    whole_net_gradcheck("|skip_connect~0|+|none~0|avg_pool_3x3~1|+|nor_conv_3x3~0|none~1|avg_pool_3x3~2|", 3);
    // node 1 is computed by PyTorch but never used: its conv's gradient is exactly zero
    whole_net_gradcheck("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|nor_conv_1x1~2|", 4);
}

#[test]
fn degenerate_architecture_stays_finite_and_only_trains_the_classifier_bias() {
    let be = CpuBackend::<f32>::poisoned();
    let config = cfg(4, 1, 10, "3x16x16");
    let mut net = Supernet::new(&be, config, 5).unwrap();
    let genotype = Genotype([Op::SkipConnect, Op::None, Op::None, Op::None, Op::None, Op::NorConv3x3]);
    assert!(!genotype.plan().output_live);
    let g = Arch::from(genotype);
    let x = random_vec(4 * 3 * 256, 9).into_iter().map(|v| v as f32).collect::<Vec<_>>();
    let tape = net.forward(&be, be.upload(&x), 4, &g, true);
    let logits = be.download(&tape.logits);
    let bias = be.download(net.params.value(net.params.id("classifier.bias").unwrap()));
    for row in logits.chunks(10) {
        assert_eq!(row, &bias[..], "logits of a disconnected cell are the classifier bias");
    }
    let dl = be.upload(&[0.1f32; 40]);
    net.backward(&be, tape, &dl);
    for p in &net.params.tensors {
        let gsum: f32 = be.download(&p.grad).iter().map(|v| v.abs()).sum();
        assert!(gsum.is_finite());
        if p.name == "classifier.bias" {
            assert!(gsum > 0.0);
        } else {
            assert_eq!(gsum, 0.0, "{} has a gradient", p.name);
        }
    }
}

/// NAS-Bench-Macro's supernet: identities (strided 1x1 convs where a stage
/// opens), both MobileNetV2 blocks with and without their residual, depthwise
/// convs of stride 1 and 2 down to 1x1 planes.
#[test]
fn whole_macro_supernet_gradients() {
    whole_net_gradcheck("02012100", 5);
    whole_net_gradcheck("12021120", 6);
    whole_net_gradcheck("00000000", 7);
    whole_net_gradcheck("22222222", 8);
}

/// The NAS-Bench-Macro supernet's sizes: the benchmark's parameter count and
/// FLOPs for every one of the 6,561 strings (its table, built in), and the
/// supernet's own parameters (every candidate of every layer).
#[test]
fn macro_params_and_flops_are_the_benchmarks() {
    let be = CpuBackend::<f32>::new();
    let config =
        SupernetConfig { space: pada::arch::Space::NB_MACRO, channels: 32, cells: 0, classes: 10, input: "3x32x32".parse().unwrap() };
    let net = Supernet::uninit(&be, config).unwrap();
    let src: pada::table::TableSource = "nbmacro:cifar10".parse().unwrap();
    let params = pada::table::read_arch_table(&src, None, "params").unwrap();
    let flops = pada::table::read_arch_table(&src, None, "flops").unwrap();
    assert_eq!(params.archs.len(), 6561);
    for ((a, p), (b, f)) in params.archs.iter().zip(&params.values).zip(flops.archs.iter().zip(&flops.values)) {
        assert_eq!(a, b);
        assert_eq!(net.standalone_params(a) as f64, *p, "{a}: parameters");
        assert_eq!(net.forward_macs(a) as f64, *f, "{a}: FLOPs (multiply-accumulates)");
    }
    let g: Arch = "02012100".parse().unwrap();
    assert_eq!((net.standalone_params(&g), net.forward_macs(&g)), (890_666, 47_327_744));
}
