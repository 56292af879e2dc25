#!/usr/bin/env bash
# Shows that the TF32 kernels run on tensor cores: disassembles the sm_80 and
# sm_90 code of conv2d.fatbin (built by `cargo build --features cuda`) and
# requires HMMA (tensor-core matrix multiply-accumulate) instructions in every
# `_tf32` kernel. Needs cuobjdump and nvdisasm (PyPI: nvidia-cuda-cuobjdump,
# nvidia-cuda-nvdisasm; .ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(python3 -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13", "bin"))')
export PATH="$bin:$PATH"
fatbin=$(ls -t target/release/build/pada-*/out/conv2d.fatbin | head -n 1)
status=0
for arch in sm_80 sm_90; do
    sass=$(cuobjdump -sass -arch "$arch" "$fatbin")
    counts=$(awk '/Function :/ {f = $3} /HMMA/ {n[f]++} END {for (k in n) print k, n[k]}' <<<"$sass" | sort)
    for kernel in $(grep -o 'Function : [a-z0-9_]*tf32[a-z0-9_]*' <<<"$sass" | awk '{print $3}' | sort -u); do
        n=$(awk -v k="$kernel" '$1 == k {print $2}' <<<"$counts")
        if [ -n "$n" ]; then echo "$arch $kernel: $n HMMA"; else echo "$arch $kernel: no tensor-core instruction"; status=1; fi
    done
    [ -n "$(grep -o 'Function : [a-z0-9_]*tf32' <<<"$sass")" ] || { echo "$arch: no _tf32 kernel in $fatbin"; status=1; }
done
exit $status
