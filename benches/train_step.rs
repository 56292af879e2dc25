//! One training step (forward, backward, clip, SGD) on a uniformly sampled path,
//! at the NAS-Bench-201 config (C=16, N=5, 3x32x32, batch 64) and a mini config
//! (C=8, N=1, 1x28x28, batch 64). Throughput is reported in images per second.
//!
//! Every iteration takes the next path of a fixed seeded sequence, so two runs
//! (and PyTorch's `scripts/torch_step_bench.py`) time the same paths.
//!
//! Run: `cargo bench --bench train_step`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pada::arch::Genotype;
use pada::backend::cpu::CpuBackend;
use pada::backend::Backend;
use pada::ops::SgdStep;
use pada::optim::{clip_and_step, OffPath};
use pada::supernet::{Supernet, SupernetConfig};
use rand::{Rng, SeedableRng};

fn bench_config(c: &mut Criterion, name: &str, config: SupernetConfig, batch: usize) {
    let be = CpuBackend::<f32>::new();
    let mut net = Supernet::new(&be, config, 0).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let x: Vec<f32> = (0..batch * config.input.len()).map(|_| rng.random_range(-1.0..1.0)).collect();
    let labels: Vec<i32> = (0..batch).map(|i| (i % config.classes) as i32).collect();
    let labels = be.upload_i32(&labels);
    let paths: Vec<Genotype> = (0..256).map(|_| Genotype::from_index(rng.random_range(0..15_625)).unwrap()).collect();
    let h = SgdStep { lr: 0.05, momentum: 0.9, weight_decay: 2.5e-4 };
    let k = config.classes;
    let mut i = 0;
    let mut group = c.benchmark_group("train_step");
    group.throughput(Throughput::Elements(batch as u64));
    group.sample_size(20);
    group.bench_function(name, |b| {
        b.iter(|| {
            let g = &paths[i % paths.len()];
            i += 1;
            net.params.zero_grads(&be);
            let tape = net.forward(&be, be.upload(&x), batch, g, true);
            let (mut loss, mut dl, mut norm) = (be.alloc(batch), be.alloc(batch * k), be.alloc(batch));
            be.softmax_cross_entropy(batch, k, &tape.logits, &labels, None, &mut loss, &mut dl, &mut norm);
            net.backward(&be, tape, &dl);
            let on_path = vec![true; net.params.len()];
            clip_and_step(&be, &mut net.params, &on_path, &h, Some(5.0), OffPath::Momentum, None).release(&be);
            for b in [loss, dl, norm] {
                be.release(b);
            }
        })
    });
    group.finish();
}

fn train_step(c: &mut Criterion) {
    bench_config(c, "nb201_c16_n5_3x32x32_b64", SupernetConfig::nb201(), 64);
    bench_config(c, "mini_c8_n1_1x28x28_b64", SupernetConfig::mini(), 64);
}

criterion_group!(benches, train_step);
criterion_main!(benches);
