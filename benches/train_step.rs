//! One SPOS training step (forward, backward, clip, SGD: the trainer's own
//! step) at the NAS-Bench-201 config (C=16, N=5, 3x32x32, batch 64) and a mini
//! config (C=8, N=1, 1x28x28, batch 64). Throughput is reported in images per
//! second.
//!
//! Every iteration takes the next path of `pada bench`'s fixed sequence, which
//! PyTorch's `scripts/torch_step_bench.py` also times.
//!
//! Run: `cargo bench --bench train_step`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pada::backend::cpu::CpuBackend;
use pada::bench::{bench_data, bench_paths, bench_trainer};
use pada::data::Batch;
use pada::supernet::SupernetConfig;
use pada::train::{DataImportance, Method};
use rand::{Rng, SeedableRng};

fn bench_config(c: &mut Criterion, name: &str, config: SupernetConfig, batch: usize) {
    let be = CpuBackend::<f32>::new();
    let data = bench_data(&config, batch, 1).unwrap();
    // more paths than criterion takes steps
    let paths = bench_paths(pada::arch::Space::NB201, 100_000);
    let (mut trainer, mut ep) = bench_trainer(&be, &config, batch, &data, Method::Spos, DataImportance::Proxy, Some(&paths)).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let x: Vec<f64> = (0..batch * config.input.len()).map(|_| rng.random_range(-1.0..1.0)).collect();
    let b = Batch { n: batch, x, labels: (0..batch).map(|i| (i % config.classes) as i32).collect(), indices: (0..batch as i32).collect() };
    let mut group = c.benchmark_group("train_step");
    group.throughput(Throughput::Elements(batch as u64));
    group.sample_size(20);
    group.bench_function(name, |it| it.iter(|| trainer.train_step(&mut ep, &b).unwrap()));
    group.finish();
}

fn train_step(c: &mut Criterion) {
    bench_config(c, "nb201_c16_n5_3x32x32_b64", SupernetConfig::nb201(), 64);
    bench_config(c, "mini_c8_n1_1x28x28_b64", SupernetConfig::mini(), 64);
}

criterion_group!(benches, train_step);
criterion_main!(benches);
