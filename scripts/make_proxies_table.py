#!/usr/bin/env python3
"""Builds data/nb201/proxies_cifar10.csv.gz, the built-in table of NAS-Bench-201
architectures' parameter count, FLOPs and zero-cost proxies on CIFAR-10 at the
reference's setting (`nb201-proxies:cifar10`), from the CSV that `pada proxies`
wrote. The table holds every architecture that CSV measured; it must hold the
verdict's default sample of 1,000 (tests/rankstats.rs checks it), e.g.

    python3 scripts/cifar10_folder_to_bin.py CIFAR10_FOLDER /tmp/cifar10
    pada train --data cifar10:/tmp/cifar10 --out RUN   # RUN/verdict.json lists the sample
    python3 -c "import json; print('arch'); [print(a) for a, _ in json.load(open('RUN/verdict.json'))['scores']]" > SAMPLE.csv
    pada proxies --data cifar10:/tmp/cifar10 --archs SAMPLE.csv --channels 16 --cells 5 \\
        --batch-size 64 --seed 0 --out proxies.csv
    python3 scripts/make_proxies_table.py proxies.csv

(`--archs all` measures all 15,625, about 2.5 hours on one core.) Rows in
NAS-Bench-201's index order (that of data/nb201/test_accuracy.csv.gz), the
parameter count and FLOPs as integers, proxies with 7 significant digits, gzip
without a timestamp: the same input gives the same bytes.
"""
import csv
import gzip
import io
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "nb201")
COLUMNS = ["params", "flops", "grad_norm", "snip", "synflow", "synflow_bn"]


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    with gzip.open(os.path.join(ROOT, "test_accuracy.csv.gz"), "rt") as f:
        order = [r["arch"] for r in csv.DictReader(f)]
    with open(sys.argv[1]) as f:
        rows = {r["arch"]: r for r in csv.DictReader(f)}
    unknown = [a for a in rows if a not in set(order)]
    if unknown:
        raise SystemExit(f"{sys.argv[1]}: {len(unknown)} rows are not NAS-Bench-201 architectures (e.g. {unknown[0]})")
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
