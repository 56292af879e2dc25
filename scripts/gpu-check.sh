#!/usr/bin/env bash
# Builds, on a machine without a GPU, everything the GPU check needs and packs
# it into gpu-pack/ (git-ignored, well under 60 MB): `pada` and the GPU test
# binaries compiled with the CUDA kernels, and the script that runs on the GPU
# machine. Then run there, from the repository root (the device tool carries
# gpu-pack with `carry: ["gpu-pack"]`):
#
#     bash gpu-pack/gpu-run.sh
#
# It writes its logs and a summary into $OUT (or gpu-out/).
set -euo pipefail
cd "$(dirname "$0")/.."
export PADA_REQUIRE_KERNELS=1
cargo build --release --features cuda --bin pada
tests=$(cargo test --release --features cuda --no-run --test kernels --test gpu_training --test replay --test proxies --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])')
rm -rf gpu-pack
mkdir -p gpu-pack
cp target/release/pada gpu-pack/pada
while read -r name exe; do cp "$exe" "gpu-pack/$name"; done <<<"$tests"
strip gpu-pack/pada gpu-pack/kernels gpu-pack/gpu_training gpu-pack/replay gpu-pack/proxies
cp scripts/gpu-run.sh scripts/torch_step_bench.py scripts/nb201_torch.py gpu-pack/
du -sh gpu-pack
ls -la gpu-pack
echo "on the GPU machine: bash gpu-pack/gpu-run.sh"
