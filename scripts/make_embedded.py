#!/usr/bin/env python3
"""Builds the embedded Fashion-MNIST subset in data/embedded/ (gzipped IDX).

Source: Debian's package `dataset-fashion-mnist` (`apt-get install
dataset-fashion-mnist`), which installs the full 60,000 + 10,000 set as
gzipped IDX in /usr/share/datasets/fashion-mnist/. MIT licence, (c) 2017
Zalando SE.

Selection: the first 500 training images of each of the 10 classes and the whole
test set (1,000 per class), in the files' order; stored class-interleaved (class 0, 1, ..., 9,
0, 1, ...) so that every batch, and every evaluation batch, holds all classes.
Re-running this script reproduces the committed files byte for byte (gzip mtime 0).
"""
import gzip
import os
import struct
import sys

SRC = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
DST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "embedded")
PER_CLASS = {"train": 500, "t10k": 1000}


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return magic, dims, data[4 + 4 * ndim:]


def write_idx(path, magic, dims, payload):
    header = struct.pack(">I", magic) + struct.pack(">" + "I" * len(dims), *dims)
    with open(path, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
            f.write(header + payload)


def main():
    os.makedirs(DST, exist_ok=True)
    for split, per in PER_CLASS.items():
        mi, idims, images = read_idx(os.path.join(SRC, f"{split}-images-idx3-ubyte.gz"))
        ml, ldims, labels = read_idx(os.path.join(SRC, f"{split}-labels-idx1-ubyte.gz"))
        size = idims[1] * idims[2]
        by_class = [[] for _ in range(10)]
        for i, y in enumerate(labels):
            if len(by_class[y]) < per:
                by_class[y].append(i)
        order = [by_class[c][k] for k in range(per) for c in range(10)]
        out_images = b"".join(images[i * size:(i + 1) * size] for i in order)
        out_labels = bytes(labels[i] for i in order)
        name = "train" if split == "train" else "test"
        write_idx(os.path.join(DST, f"{name}-images-idx3-ubyte.gz"), mi, (len(order), idims[1], idims[2]), out_images)
        write_idx(os.path.join(DST, f"{name}-labels-idx1-ubyte.gz"), ml, (len(order),), out_labels)
        print(f"{name}: {len(order)} images")


if __name__ == "__main__":
    main()
