#!/usr/bin/env bash
# Checks that two pada binaries train NAS-Bench-201 supernets to the same
# bytes: every method (and the subnet-aware, per-edge and exact-score variants)
# on small settings, comparing supernet.safetensors, checkpoint.safetensors and
# metrics.jsonl (timings aside), and the scores of a ranking. Use it around a
# refactor: build the previous commit elsewhere (e.g. `git worktree add
# /tmp/old HEAD~1 && (cd /tmp/old && cargo build --release)`), then
#   scripts/check_nb201_identical.sh /tmp/old/target/release/pada target/release/pada
set -euo pipefail
old=$1 new=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
data=synthetic:3x16x16:256:64:5
runs=(
    "pada --epochs 3"
    "spos --epochs 3"
    "fairnas --epochs 2"
    "sumnas --epochs 2"
    "pa --epochs 3 --per-edge"
    "da --epochs 3 --resampling systematic"
    "pada --epochs 3 --lr-schedule calr --momentum-groups 5"
    "pada --epochs 2 --data-importance batch"
    "pada --epochs 2 --data-importance full --weighted-loss"
)
strip() { python3 -c 'import json,sys
for l in open(sys.argv[1]):
    m = json.loads(l)
    for k in ("seconds", "images_per_sec"): m.pop(k, None)
    print(json.dumps(m, sort_keys=True))' "$1"; }
fail=0
for i in "${!runs[@]}"; do
    read -r method rest <<< "${runs[$i]}"
    for bin in old new; do
        exe=${!bin}
        # shellcheck disable=SC2086
        "$exe" train --method "$method" $rest --data "$data" --channels 4 --cells 2 --batch-size 32 --seed 3 \
            --no-verdict -q --out "$tmp/$bin-$i" > /dev/null 2>&1
    done
    for f in supernet.safetensors checkpoint.safetensors; do
        if ! cmp -s "$tmp/old-$i/$f" "$tmp/new-$i/$f"; then
            echo "DIFFERENT: ${runs[$i]}: $f"
            fail=1
        fi
    done
    if ! diff -q <(strip "$tmp/old-$i/metrics.jsonl") <(strip "$tmp/new-$i/metrics.jsonl") > /dev/null; then
        echo "DIFFERENT: ${runs[$i]}: metrics.jsonl"
        fail=1
    fi
    echo "${runs[$i]}: weights, checkpoint and metrics $( [ $fail = 0 ] && echo identical || echo checked)"
done
# the embedded default run (the README's first command, two epochs) and a ranking of fixed architectures
for bin in old new; do
    exe=${!bin}
    "$exe" train --epochs 2 --no-verdict -q --out "$tmp/$bin-embedded" > /dev/null 2>&1
    "$exe" rank --run "$tmp/$bin-embedded" --archs data/embedded/ground_truth.csv --images 500 -q --out "$tmp/$bin-rank.csv" > /dev/null 2>&1
done
for f in "old-embedded/supernet.safetensors new-embedded/supernet.safetensors" "old-rank.csv new-rank.csv"; do
    read -r a b <<< "$f"
    if cmp -s "$tmp/$a" "$tmp/$b"; then echo "identical: $a"; else echo "DIFFERENT: $a"; fail=1; fi
done
exit $fail
