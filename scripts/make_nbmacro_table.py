#!/usr/bin/env python3
"""Builds data/nbmacro/cifar10.csv.gz, the built-in table `nbmacro:cifar10`, from
NAS-Bench-Macro's benchmark file (nas-bench-macro_cifar10.json, xiusu/NAS-Bench-Macro,
Apache-2.0; data/nbmacro/README.md).

    python3 scripts/make_nbmacro_table.py PATH/TO/nas-bench-macro_cifar10.json

One row per architecture string (all 6,561, in the space's index order: the
digits read as a base-3 number), columns: arch, test_accuracy (the benchmark's
mean_acc, rounded to 6 decimals), test_accuracy_seed0..2 (each training's test
accuracy, which is a count of 10,000 test images in percent: 2 decimals),
params, flops. Deterministic: the same input gives the same bytes (gzip without
a time stamp or file name).
"""
import csv
import gzip
import io
import json
import sys


def main(path, out="data/nbmacro/cifar10.csv.gz"):
    with open(path) as f:
        bench = json.load(f)
    assert len(bench) == 6561, len(bench)
    rows = []
    for i in range(3**8):
        digits = ""
        n = i
        for _ in range(8):
            digits = str(n % 3) + digits
            n //= 3
        r = bench[digits]
        seeds = [round(a, 2) for a in r["test_acc"]]
        assert len(seeds) == 3
        rows.append([digits, f"{r['mean_acc']:.6f}"] + [f"{a:.2f}" for a in seeds] + [str(r["params"]), str(r["flops"])])
    text = io.StringIO()
    w = csv.writer(text, lineterminator="\n")
    w.writerow(["arch", "test_accuracy", "test_accuracy_seed0", "test_accuracy_seed1", "test_accuracy_seed2", "params", "flops"])
    w.writerows(rows)
    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as g:
        g.write(text.getvalue().encode())
    with open(out, "wb") as f:
        f.write(raw.getvalue())
    print(f"{out}: {len(rows)} rows, {len(raw.getvalue())} bytes")


if __name__ == "__main__":
    main(*sys.argv[1:])
