#!/usr/bin/env python3
"""PyTorch reference timing of one supernet training step, for side-by-side
comparison with `pada bench` on the same machine.

Builds the NAS-Bench-201 supernet as the official PA&DA code does
(scripts/nb201_torch.py), or NAS-Bench-Macro's as pada does
(scripts/nbmacro_torch.py), and times forward + backward + clip_grad_norm_(5)
+ SGD over the same sequence of uniformly sampled paths as `pada bench`
(SplitMix64 from seed 0, architecture = next() % 15625 read as base-5 digits,
edge 0 first; % 6561 as base-3 digits in NAS-Bench-Macro). The defaults of
--steps and --warmup are `pada bench`'s, so that both time the same
architectures (a step's time depends on its path: compare medians of the
same steps, giving both the same --steps and --warmup).

Usage: python3 scripts/torch_step_bench.py [--config nb201|mini|nb-macro|nb-macro-laptop] [--batch-size 64]
       [--steps 32] [--warmup 4] [--threads 2] [--device cuda [--best]]
Prints the median step time and images per second.
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import nb201_torch
import nbmacro_torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", choices=["nb201", "mini", "nb-macro", "nb-macro-laptop"], default="nb201")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--best", action="store_true", help="cudnn.benchmark on and TF32 for matmuls too (PyTorch at its fastest)")
    a = ap.parse_args()
    if a.best:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
    print(f"cudnn.benchmark={torch.backends.cudnn.benchmark} cudnn.allow_tf32={torch.backends.cudnn.allow_tf32} "
          f"matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32}")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    if a.config.startswith("nb-macro"):
        shape = (3, 32, 32)
        model = nbmacro_torch.Supernet(32 if a.config == "nb-macro" else 8, 3, 10).to(dev)
        path_sequence = nbmacro_torch.path_sequence
    else:
        c, n, shape = (16, 5, (3, 32, 32)) if a.config == "nb201" else (8, 1, (1, 28, 28))
        model = nb201_torch.Supernet(c, n, shape[0], 10).to(dev)
        path_sequence = nb201_torch.path_sequence
    if a.config == "nb201":
        assert sum(p.numel() for p in model.parameters()) == 1692474
    opt = torch.optim.SGD(model.parameters(), 0.05, momentum=0.9, weight_decay=2.5e-4)
    x = (torch.rand(a.batch_size, *shape) * 2 - 1).to(dev)
    y = (torch.arange(a.batch_size) % 10).to(dev)
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    paths = path_sequence(a.warmup + a.steps)
    times = []
    for i, arch in enumerate(paths):
        sync()
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = F.cross_entropy(model(x, arch), y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5)
        opt.step()
        sync()
        dt = time.perf_counter() - t0
        if i >= a.warmup:
            times.append(dt)
    med = statistics.median(times)
    total = sum(times)
    print(f"torch {torch.__version__} device={a.device} threads={torch.get_num_threads()} config={a.config} batch={a.batch_size} steps={a.steps}")
    print(f"median step {med * 1e3:.1f} ms, {a.batch_size / med:.1f} images/s (median); {a.batch_size * a.steps / total:.1f} images/s (total)")


if __name__ == "__main__":
    main()
