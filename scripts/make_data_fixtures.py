#!/usr/bin/env python3
"""Makes the small data files of tests/fixtures/data that tests/data.rs reads:

- folder/: an image folder (torchvision ImageFolder layout) of three classes,
  train/<class>/*.png|*.jpg and test/<class>/*, 8x6 RGB images, PNG and JPEG
  mixed, one class with more images than the others; expected.json holds
  every image's pixels as PIL decodes it (CHW), its class and split.
- imagenet16/: NAS-Bench-201's ImageNet16 layout, train_data_batch_1 ... 10
  and val_data, each a pickled dict (protocol 2, as the original files) of a
  numpy uint8 array 'data' (N x 768: R, G, B planes of 16x16) and 'labels'
  (1 ... 1000), with labels above 120 that ImageNet16-120 leaves out;
  expected.json lists the kept images (label - 1, first pixel bytes).

Deterministic (fixed seeds): running it again rewrites the same files.
Needs Pillow and numpy: pip install pillow numpy.
"""
import json
import os
import pickle
import random
import shutil

import numpy as np
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "data")


def make_folder():
    out = os.path.join(ROOT, "folder")
    shutil.rmtree(out, ignore_errors=True)
    rng = np.random.default_rng(0)
    expected = []
    counts = {"train": {"ant": 3, "bee": 2, "cow": 2}, "test": {"ant": 1, "bee": 2, "cow": 1}}
    for split, per_class in counts.items():
        for cls, n in per_class.items():
            d = os.path.join(out, split, cls)
            os.makedirs(d)
            for k in range(n):
                hwc = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
                # JPEG for every second image; PNG keeps exact pixels
                name = f"{k:03d}.jpg" if k % 2 else f"{k:03d}.png"
                path = os.path.join(d, name)
                img = Image.fromarray(hwc, "RGB")
                if name.endswith(".jpg"):
                    img.save(path, quality=90, subsampling=0)  # 4:4:4: no chroma upsampling, whose filters differ between decoders
                else:
                    img.save(path)
                decoded = np.asarray(Image.open(path).convert("RGB"))
                expected.append({
                    "split": split,
                    "file": f"{split}/{cls}/{name}",
                    "class": cls,
                    "chw": decoded.transpose(2, 0, 1).reshape(-1).tolist(),
                })
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)


def make_imagenet16():
    out = os.path.join(ROOT, "imagenet16")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    rng = random.Random(1)
    expected = {"train": [], "test": []}
    files = [(f"train_data_batch_{i}", "train") for i in range(1, 11)] + [("val_data", "test")]
    for name, split in files:
        labels = [rng.choice([1, 2, 3, 120, 121, 500, 1000]) for _ in range(3)]
        data = np.array([[rng.randrange(256) for _ in range(768)] for _ in labels], dtype=np.uint8)
        with open(os.path.join(out, name), "wb") as f:
            pickle.dump({"data": data, "labels": labels, "mean": np.zeros(768)}, f, protocol=2)
        for lbl, row in zip(labels, data):
            if lbl <= 120:
                expected[split].append({"class": lbl - 1, "first_bytes": row[:4].tolist()})
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    make_folder()
    make_imagenet16()
    print("wrote", os.path.normpath(ROOT))
