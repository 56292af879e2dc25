#!/usr/bin/env python3
"""Builds data/nb201/test_accuracy.csv.gz, the NAS-Bench-201 ground truths pada
ranks against (`--ground-truth nb201:cifar10`, `:cifar100`, `:imagenet16`).

Source: `nats_bench.csv` (15,625 rows, NATS-Bench topology space `tss`, the
mean over training seeds of the 200-epoch test accuracy on CIFAR-10 (ori-test),
CIFAR-100 and ImageNet16-120 (x-test); see data/nb201/README.md for its origin
and licence). Kept: the architecture string and the three accuracies (6
decimals), in the benchmark's index order; gzip with mtime 0, so reruns give
the same bytes.

    python3 scripts/make_nb201_table.py PATH/TO/nats_bench.csv
"""
import csv
import gzip
import io
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DST = os.path.join(ROOT, "data", "nb201", "test_accuracy.csv.gz")
# NATS-Bench's isomorphism-canonical string of every architecture, for the test of pada's own
UNIQUE = os.path.join(ROOT, "tests", "fixtures", "nb201_unique_strings.csv.gz")


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "../shared/nb201/nats_bench.csv"
    rows = list(csv.DictReader(open(src)))
    assert len(rows) == 15625 and len({r["ArchitectureString"] for r in rows}) == 15625
    accs = [[r["ArchitectureString"]] + [f"{float(r[k]):.6f}" for k in ("CIFAR10TestAccuracy200Epochs", "CIFAR100TestAccuracy200Epochs", "ImageNetTestAccuracy200Epochs")] for r in rows]
    write(DST, ["arch", "cifar10", "cifar100", "imagenet16"], accs)
    write(UNIQUE, ["arch", "unique"], [[r["ArchitectureString"], r["UniqueString"]] for r in rows])


def write(path, header, rows):
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    with open(path, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
            f.write(out.getvalue().encode())
    print(f"{path}: {len(rows)} architectures, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
