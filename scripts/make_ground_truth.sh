#!/usr/bin/env bash
# Regenerates data/embedded/ground_truth.csv: 120 NAS-Bench-201 architectures (one per
# isomorphism class, the first 120 of a shuffle fixed by --seed 0), each trained stand-alone
# from scratch on the embedded training split (5,000 images) with two training seeds, at the
# size of the embedded supernet (C=8, N=1, batch 64) for 10 epochs, and tested on the embedded
# test split (10,000 images). Resumable: rerun after an interruption. About 45 s per
# architecture and seed on 2 cores (data/embedded/ground_truth.md).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release
./target/release/pada groundtruth --archs 120 --unique --seed 0 --seeds 0,1 --epochs 10 \
    --channels 8 --cells 1 --batch-size 64 --data embedded --out data/embedded/ground_truth.csv "$@"
