#!/usr/bin/env bash
# Shows that the TF32 and BF16 kernels run on tensor cores: lists the images
# of conv2d.fatbin (built by `cargo build --features cuda`: SASS per GPU
# architecture, PTX for the newer ones), requires PTX for compute_80 (which a
# GPU newer than the SASS JIT-compiles with the tensor-core path) to hold the
# mma instructions, disassembles the sm_80 and sm_90 code and requires HMMA
# (tensor-core matrix multiply-accumulate) instructions in every `_tf32` and
# `_bf16` kernel. Needs cuobjdump and nvdisasm (PyPI: nvidia-cuda-cuobjdump,
# nvidia-cuda-nvdisasm; .ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(python3 -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13", "bin"))')
export PATH="$bin:$PATH"
fatbin=$(ls -t target/release/build/pada-*/out/conv2d.fatbin | head -n 1)
status=0
echo "images embedded in $(basename "$fatbin"):"
cuobjdump --list-elf --list-ptx "$fatbin" | sed 's/^/  /'
ptx=$(cuobjdump -ptx -arch sm_80 "$fatbin")  # the compute_80 PTX (cuobjdump names PTX by its target, sm_80)
for kind in tf32 bf16; do
    n=$(grep -c "mma.sync.aligned.m16n8k8.row.col.f32.$kind.$kind.f32" <<<"$ptx" || true)
    if [ "$n" -gt 0 ]; then echo "compute_80 PTX: $n mma.sync ($kind) for GPUs newer than the SASS"; else echo "compute_80 PTX: no $kind mma.sync"; status=1; fi
done
for arch in sm_80 sm_90; do
    sass=$(cuobjdump -sass -arch "$arch" "$fatbin")
    counts=$(awk '/Function :/ {f = $3} /HMMA/ {n[f]++} END {for (k in n) print k, n[k]}' <<<"$sass" | sort)
    for kind in tf32 bf16; do
        for kernel in $(grep -o "Function : [a-z0-9_]*${kind}[a-z0-9_]*" <<<"$sass" | awk '{print $3}' | sort -u); do
            n=$(awk -v k="$kernel" '$1 == k {print $2}' <<<"$counts")
            ops=$(awk -v k="$kernel" '/Function :/ {f = $3} f == k && /HMMA/ {match($0, /HMMA[.A-Z0-9]*/); print substr($0, RSTART, RLENGTH)}' <<<"$sass" | sort -u | tr '\n' ' ')
            if [ -n "$n" ]; then echo "$arch $kernel: $n HMMA ($ops)"; else echo "$arch $kernel: no tensor-core instruction"; status=1; fi
        done
        [ -n "$(grep -o "Function : [a-z0-9_]*${kind}" <<<"$sass")" ] || { echo "$arch: no _${kind} kernel in $fatbin"; status=1; }
    done
done
exit $status
