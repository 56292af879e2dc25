#!/usr/bin/env python3
"""Converts an image folder of CIFAR-10 (train/<class>/*.jpg|png, test/<class>/*,
e.g. ../shared/data/cifar10-jpeg.tar.gz unpacked) into CIFAR-10's binary layout
(cifar-10-batches-bin/data_batch_1..5.bin, test_batch.bin), which
`--data cifar10:OUT` reads. pada reads the folder itself (`--data folder:DIR`);
this conversion is how the README's CIFAR-10 sweep and the built-in proxy table
(data/nb201/README.md) were made, so that they can be remade exactly.

Images are decoded by Pillow; each split's images are listed class by class in
sorted file order, then shuffled with Python's random.Random(0) (training) and
random.Random(1) (test) before they are written. Needs Pillow and numpy.

    python3 scripts/cifar10_folder_to_bin.py DIR OUT
"""
import os
import random
import sys

import numpy as np
from PIL import Image


def records(root, split, classes):
    out = []
    for label, cls in enumerate(classes):
        folder = os.path.join(root, split, cls)
        for name in sorted(os.listdir(folder)):
            hwc = np.asarray(Image.open(os.path.join(folder, name)).convert("RGB"))
            if hwc.shape != (32, 32, 3):
                raise SystemExit(f"{split}/{cls}/{name}: {hwc.shape}, expected 32x32 RGB")
            out.append(bytes([label]) + hwc.transpose(2, 0, 1).tobytes())
    return out


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    root, out = sys.argv[1], os.path.join(sys.argv[2], "cifar-10-batches-bin")
    classes = sorted(os.listdir(os.path.join(root, "train")))
    if len(classes) != 10:
        raise SystemExit(f"{root}/train has {len(classes)} class folders, expected CIFAR-10's 10")
    os.makedirs(out, exist_ok=True)
    train, test = records(root, "train", classes), records(root, "test", classes)
    random.Random(0).shuffle(train)
    random.Random(1).shuffle(test)
    per_batch = len(train) // 5
    for b in range(5):
        with open(os.path.join(out, f"data_batch_{b + 1}.bin"), "wb") as f:
            f.write(b"".join(train[b * per_batch:(b + 1) * per_batch] if b < 4 else train[4 * per_batch:]))
    with open(os.path.join(out, "test_batch.bin"), "wb") as f:
        f.write(b"".join(test))
    print(f"wrote {out}: {len(train)} training and {len(test)} test images of {', '.join(classes)}")


if __name__ == "__main__":
    main()
