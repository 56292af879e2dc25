#!/usr/bin/env bash
# Runs the README's Python example as written (the ```python block of the
# section "## Python") with the interpreter $1, which has the package installed
# (`pip install ./python`), in a temporary folder, and checks that it ends by
# printing the best architecture it found. Run by .ci/run; about 2 min on 2 cores.
set -euo pipefail
py=${1:?usage: scripts/check_readme_python.sh PYTHON}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk '/^## Python$/ {sec = 1} sec && /^```python$/ {on = 1; next} on && /^```$/ {exit} on {print}' README.md > "$tmp/example.py"
if [ ! -s "$tmp/example.py" ]; then
    echo "check_readme_python: README.md has no \`\`\`python block under '## Python'" >&2
    exit 1
fi
(cd "$tmp" && "$py" example.py > out.txt 2> log.txt) || { cat "$tmp/log.txt" >&2; exit 1; }
if ! grep -q '^best: ' "$tmp/out.txt"; then
    echo "check_readme_python: the example did not print its best architecture:" >&2
    cat "$tmp/out.txt" "$tmp/log.txt" >&2
    exit 1
fi
echo "check_readme_python: the README's Python example ($(wc -l < "$tmp/example.py") lines) ran: $(cat "$tmp/out.txt")"
