//! Memory stays flat: 1,000 training steps hold no more memory at the end
//! than after the first 100 (a test binary of its own, so that no other test
//! allocates while it reads the process's resident size).

use std::sync::Arc;

use pada::backend::cpu::CpuBackend;
use pada::train::{Method, TrainConfig, Trainer};

fn rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() / 1024.0
}

#[test]
fn a_thousand_steps_do_not_grow_memory() {
    let be = CpuBackend::<f32>::new();
    let mut config = TrainConfig::defaults(Method::Pada, "synthetic:1x16x16:400:16:4".parse().unwrap());
    config.epochs = 40; // 25 steps an epoch: 1,000 steps
    config.batch_size = 16;
    config.channels = 4;
    config.cells = 1;
    let data = Arc::new(config.data.load().unwrap());
    let mut t = Trainer::new(&be, config, data).unwrap();
    let mut samples = Vec::new();
    while !t.done() {
        t.run_epoch(&mut |_| {}).unwrap();
        samples.push((rss_mib(), be.pooled_bytes()));
    }
    let (rss4, pool4) = samples[3]; // after 100 steps
    let (rss_end, pool_end) = *samples.last().unwrap();
    assert_eq!(pool_end, pool4, "the buffer pool grew after warm-up: {samples:?}");
    assert!(rss_end - rss4 < 8.0, "resident memory grew by {:.1} MiB over 900 steps: {samples:?}", rss_end - rss4);
}
