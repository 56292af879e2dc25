#!/usr/bin/env bash
# The GPU check, run on a GPU machine from the repository root after
# scripts/gpu-check.sh packed gpu-pack/ elsewhere: the ignored GPU tests (which
# fail, never skip, without a GPU), PA&DA training on the GPU for a few hundred
# steps, the step and per-kernel timings in FP32, TF32 and BF16 (with the
# epoch-end resampling at 50,000 and 1,281,167 samples), ranking throughput,
# and PyTorch's step at the same configuration on the same GPU. The logs are packed, after
# every step, into $OUT/gpu-logs.tar.gz (or gpu-out/), so that a run cut short
# still returns what it did (the device tool returns at most 8 files).
set -uo pipefail
P=gpu-pack
OUT=${OUT:-gpu-out}
LOGS=$(mktemp -d)
mkdir -p "$OUT"
status=0
run() { # name, seconds, command... (each step is capped: device time is scarce)
    local name=$1 LIMIT=$2
    shift 2
    echo "== $name: $*" | tee -a "$LOGS/summary.txt"
    local t0=$SECONDS
    if timeout "$LIMIT" "$@" >"$LOGS/$name.log" 2>&1; then echo "   ok ($((SECONDS - t0)) s)" | tee -a "$LOGS/summary.txt"; else echo "   FAILED (exit $?, $((SECONDS - t0)) s)" | tee -a "$LOGS/summary.txt"; status=1; fi
    tail -n 25 "$LOGS/$name.log"
    tar czf "$OUT/gpu-logs.tar.gz" -C "$LOGS" .
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$LOGS/nvidia-smi.txt" 2>&1
cat "$LOGS/nvidia-smi.txt"
run tests-kernels 50 "$P/kernels" --ignored --test-threads 1
run tests-training 70 "$P/gpu_training" --ignored --test-threads 1
run tests-replay 40 "$P/replay" --ignored --test-threads 1
run tests-proxies 25 "$P/proxies" --ignored --test-threads 1
for prec in fp32 tf32 bf16; do
    run bench-$prec 70 "$P/pada" bench --device cuda --precision $prec --config nb201 --batch-size 256 --steps 40 --warmup 5 --kernels --rank-archs 16 --json "$LOGS/bench-$prec.json"
done
run bench-nb-macro 60 "$P/pada" bench --device cuda --space nb-macro --batch-size 256 --steps 20 --warmup 3 --rank-archs 8 --json "$LOGS/bench-nb-macro.json"
run first-command 45 "$P/pada" train --device cuda --out /tmp/pada-gpu-first
run train 30 "$P/pada" train --device cuda --method pada --data synthetic:3x32x32:25600:10000:10 --epochs 3 --batch-size 256 --out /tmp/pada-gpu-run -q
for prec in fp32 tf32 bf16; do
    run rank-$prec 40 "$P/pada" rank --device cuda --precision $prec --run /tmp/pada-gpu-run --archs 128 --out "$LOGS/rank-$prec.csv"
done
if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    run torch 40 python3 "$P/torch_step_bench.py" --device cuda --batch-size 256 --steps 40 --warmup 5
    run torch-best 60 python3 "$P/torch_step_bench.py" --device cuda --batch-size 256 --steps 40 --warmup 5 --best
fi
{
    echo "== summary"
    grep -E "pada bench|step|overhead|throughput|ranking:|device memory" "$LOGS"/bench-*.log || true
    grep -E "median step" "$LOGS"/torch*.log 2>/dev/null || true
    grep -E "architectures|scored" "$LOGS"/rank-*.log || true
    for f in "$LOGS"/rank-*.summary.json; do
        python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); r=s["archs_per_sec"]; print(f"{sys.argv[1]}: {r:.2f} architectures/s on {s[\"test_images\"]} images: all 15,625 in {15625/r/60:.1f} min")' "$f" || true
    done
    grep -E "test result" "$LOGS"/tests-*.log || true
} | tee -a "$LOGS/summary.txt"
tar czf "$OUT/gpu-logs.tar.gz" -C "$LOGS" .
exit $status
