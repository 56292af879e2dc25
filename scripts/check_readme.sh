#!/usr/bin/env bash
# Checks that the README's first result block is what its first command prints
# today: runs `pada train` on the embedded data (the README's first command,
# into a temporary run directory) and compares its printed table with the block
# under `$ cat out.txt` in README.md, character for character (so every number
# to its printed digits). Run by .ci/run; about 80 s on 2 cores after the build.
# The numbers are those of an x86-64 CPU (same seed, same device, same result).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# the block: the lines after "$ cat out.txt" up to the closing fence
awk '/^\$ cat out.txt$/ {on = 1; next} on && /^```$/ {exit} on {print}' README.md > "$tmp/readme.txt"
if [ ! -s "$tmp/readme.txt" ]; then
    echo "check_readme: README.md has no block after '\$ cat out.txt'" >&2
    exit 1
fi
./target/release/pada train --out "$tmp/run" > "$tmp/out.txt" 2> "$tmp/log.txt"
if ! diff -u "$tmp/readme.txt" "$tmp/out.txt"; then
    echo "check_readme: README.md's first result block (above, -) differs from what 'pada train' prints today (+): update the README" >&2
    exit 1
fi
echo "check_readme: the README's first result block is what 'pada train' prints ($(wc -l < "$tmp/out.txt") lines)"
