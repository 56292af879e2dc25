#!/usr/bin/env python3
"""Builds a space's built-in table of architectures' parameter count, FLOPs and
zero-cost proxies on CIFAR-10 (`nb201-proxies:cifar10` at the reference's
setting, data/nb201/proxies_cifar10.csv.gz; `nbmacro-proxies:cifar10` at the
benchmark's width, data/nbmacro/proxies_cifar10.csv.gz) from the CSV that
`pada proxies` wrote:

    python3 scripts/make_proxies_table.py proxies.csv [nb201|nb-macro]

The table holds every architecture that CSV measured; it must hold the
verdict's default sample of 1,000 (tests/rankstats.rs checks it). NAS-Bench-201, e.g.

    python3 scripts/cifar10_folder_to_bin.py CIFAR10_FOLDER /tmp/cifar10
    pada train --data cifar10:/tmp/cifar10 --out RUN   # RUN/verdict.json lists the sample
    python3 -c "import json; print('arch'); [print(a) for a, _ in json.load(open('RUN/verdict.json'))['scores']]" > SAMPLE.csv
    pada proxies --data cifar10:/tmp/cifar10 --archs SAMPLE.csv --channels 16 --cells 5 \\
        --batch-size 64 --seed 0 --out proxies.csv
    python3 scripts/make_proxies_table.py proxies.csv

(`--archs all` measures all 15,625, about 2.5 hours on one core.) NAS-Bench-Macro:

    pada proxies --space nb-macro --data folder:CIFAR10_FOLDER --archs SAMPLE.csv --channels 32 \
        --batch-size 64 --seed 0 --out proxies.csv     # about 20 minutes on one core
    python3 scripts/make_proxies_table.py proxies.csv nb-macro

Rows in the order of the space's ground-truth table, the parameter count and
FLOPs as integers, proxies with 7 significant digits, gzip without a
timestamp: the same input gives the same bytes.
"""
import csv
import gzip
import io
import os
import sys

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
# each space's folder of data/ and its ground truth, whose order the table follows
SPACES = {"nb201": ("nb201", "test_accuracy.csv.gz"), "nb-macro": ("nbmacro", "cifar10.csv.gz")}
COLUMNS = ["params", "flops", "grad_norm", "snip", "synflow", "synflow_bn"]


def main():
    if len(sys.argv) not in (2, 3) or (len(sys.argv) == 3 and sys.argv[2] not in SPACES):
        raise SystemExit(__doc__)
    folder, truth = SPACES[sys.argv[2] if len(sys.argv) == 3 else "nb201"]
    ROOT = os.path.join(DATA, folder)
    with gzip.open(os.path.join(ROOT, truth), "rt") as f:
        order = [r["arch"] for r in csv.DictReader(f)]
    with open(sys.argv[1]) as f:
        rows = {r["arch"]: r for r in csv.DictReader(f)}
    unknown = [a for a in rows if a not in set(order)]
    if unknown:
        raise SystemExit(f"{sys.argv[1]}: {len(unknown)} rows are not architectures of {folder} (e.g. {unknown[0]})")
    text = io.StringIO()
    w = csv.writer(text, lineterminator="\n")
    w.writerow(["arch"] + COLUMNS)
    for a in (a for a in order if a in rows):
        counts = [f"{int(float(rows[a][c]))}" for c in COLUMNS[:2]]  # exact integers
        w.writerow([a] + counts + [f"{float(rows[a][c]):.7g}" for c in COLUMNS[2:]])
    out = os.path.join(ROOT, "proxies_cifar10.csv.gz")
    with open(out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as g:
        g.write(text.getvalue().encode())
    print(f"wrote {out}: {len(rows)} of {len(order)} architectures ({os.path.getsize(out)} bytes)")


if __name__ == "__main__":
    main()
