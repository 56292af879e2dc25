#!/usr/bin/env bash
# The GPU check, run on a GPU machine from the repository root after
# scripts/gpu-check.sh packed gpu-pack/ elsewhere: the ignored GPU tests (which
# fail, never skip, without a GPU), PA&DA training on the GPU for a few hundred
# steps, the step and per-kernel timings, ranking throughput, and PyTorch's
# step at the same configuration on the same GPU. Logs go to $OUT (or gpu-out/).
set -uo pipefail
P=gpu-pack
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
status=0
run() { # name, seconds, command... (each step is capped: device time is scarce)
    local name=$1 LIMIT=$2
    shift 2
    echo "== $name: $*" | tee -a "$OUT/summary.txt"
    if timeout "$LIMIT" "$@" >"$OUT/$name.log" 2>&1; then echo "   ok" | tee -a "$OUT/summary.txt"; else echo "   FAILED (exit $?)" | tee -a "$OUT/summary.txt"; status=1; fi
    tail -n 25 "$OUT/$name.log"
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$OUT/nvidia-smi.txt" 2>&1
cat "$OUT/nvidia-smi.txt"
run tests-kernels 60 "$P/kernels" --ignored --test-threads 1
run tests-training 90 "$P/gpu_training" --ignored --test-threads 1
run tests-replay 60 "$P/replay" --ignored --test-threads 1
run tests-proxies 30 "$P/proxies" --ignored --test-threads 1
run bench 100 "$P/pada" bench --device cuda --config nb201 --batch-size 256 --steps 40 --warmup 5 --kernels --rank-archs 16 --json "$OUT/bench.json"
run train 60 "$P/pada" train --device cuda --method pada --data synthetic:3x32x32:25600:10000:10 --epochs 3 --batch-size 256 --out /tmp/pada-gpu-run -q
run rank 50 "$P/pada" rank --device cuda --run /tmp/pada-gpu-run --archs 100 -q
if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    run torch 60 python3 "$P/torch_step_bench.py" --device cuda --batch-size 256 --steps 40 --warmup 5
fi
echo "== summary"
grep -E "SPOS step|PA&DA step|overhead|throughput|ranking:|device memory" "$OUT/bench.log" || true
grep -E "median step" "$OUT/torch.log" 2>/dev/null || true
grep -E "architectures scored" "$OUT/rank.log" || true
grep -E "test result" "$OUT"/tests-*.log || true
exit $status
