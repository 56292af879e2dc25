#!/usr/bin/env python3
"""PyTorch reference timing of one supernet training step, for side-by-side
comparison with `pada bench` on the same machine.

Builds the NAS-Bench-201 supernet as the official PA&DA code does (written
independently here: stem conv3x3+BN, 3 stages of N cells with ReLU-conv-BN
edges, ResNet reduction blocks, BN-ReLU-GAP-linear head; affine-free BN with
batch statistics), and times forward + backward + clip_grad_norm_(5) + SGD over
the same sequence of uniformly sampled paths as `pada bench` (SplitMix64 from
seed 0, architecture = next() % 15625 read as base-5 digits, edge 0 first).

Usage: python3 scripts/torch_step_bench.py [--config nb201|mini] [--batch-size 64]
       [--steps 64] [--warmup 8] [--threads 2]
Prints the median step time and images per second.
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

MASK = (1 << 64) - 1


def splitmix64(state):
    while True:
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        yield z ^ (z >> 31)


def path_sequence(count):
    gen = splitmix64(0)
    out = []
    for _ in range(count):
        i = next(gen) % 15625
        ops = []
        for _ in range(6):
            ops.append(i % 5)
            i //= 5
        out.append(ops[::-1])
    return out


def bn(c):
    return nn.BatchNorm2d(c, affine=False, track_running_stats=False)


class ReLUConvBN(nn.Module):
    def __init__(self, cin, cout, k, stride):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, bias=True)
        self.bn = bn(cout)

    def forward(self, x):
        return self.bn(self.conv(F.relu(x)))


class Cell(nn.Module):
    EDGES = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]

    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.ModuleList([ReLUConvBN(c, c, 1, 1) for _ in range(6)])
        self.conv3 = nn.ModuleList([ReLUConvBN(c, c, 3, 1) for _ in range(6)])

    def forward(self, x, arch):
        nodes = [x]
        for i in range(1, 4):
            acc = []
            for e, (j, t) in enumerate(self.EDGES):
                if t != i:
                    continue
                op = arch[e]
                if op == 0:
                    acc.append(nodes[j].mul(0.0))
                elif op == 1:
                    acc.append(nodes[j])
                elif op == 2:
                    acc.append(self.conv1[e](nodes[j]))
                elif op == 3:
                    acc.append(self.conv3[e](nodes[j]))
                else:
                    acc.append(F.avg_pool2d(nodes[j], 3, 1, 1, count_include_pad=False))
            nodes.append(sum(acc))
        return nodes[3]


class Reduction(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.a = ReLUConvBN(cin, cout, 3, 2)
        self.b = ReLUConvBN(cout, cout, 3, 1)
        self.shortcut = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        return self.shortcut(F.avg_pool2d(x, 2, 2)) + self.b(self.a(x))


class Supernet(nn.Module):
    def __init__(self, c, n, in_ch, classes):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_ch, c, 3, 1, 1, bias=False), bn(c))
        layers = []
        for s in range(3):
            if s > 0:
                layers.append(Reduction(c << (s - 1), c << s))
            layers += [Cell(c << s) for _ in range(n)]
        self.layers = nn.ModuleList(layers)
        self.head_bn = bn(c << 2)
        self.classifier = nn.Linear(c << 2, classes)

    def forward(self, x, arch):
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x, arch) if isinstance(layer, Cell) else layer(x)
        x = F.relu(self.head_bn(x)).mean((2, 3))
        return self.classifier(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", choices=["nb201", "mini"], default="nb201")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    c, n, shape = (16, 5, (3, 32, 32)) if a.config == "nb201" else (8, 1, (1, 28, 28))
    dev = torch.device(a.device)
    model = Supernet(c, n, shape[0], 10).to(dev)
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
