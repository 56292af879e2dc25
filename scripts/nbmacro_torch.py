"""The NAS-Bench-Macro supernet in PyTorch, as pada builds it, for the scripts
that measure pada against PyTorch (torch_step_bench.py) and that make its
PyTorch fixtures (make_torch_fixtures.py).

Written independently here from the benchmark's description
(../shared/nbmacro/README.md): stem conv3x3 (no bias) + BN + ReLU; 8 layers in
stages of 2, 3 and 3, the first of each with stride 2 and twice the channels
(2C, 4C, 8C); each layer holds 3 candidates: 0 identity (a 1x1 conv of stride
2 + BN where the layer has stride 2), 1 and 2 MobileNetV2 inverted residuals
(kernel 3 expansion 3, kernel 5 expansion 6: pointwise conv + BN + ReLU,
depthwise conv k x k + BN + ReLU, pointwise conv + BN, plus the input where
the stride is 1 and the channels stay); head conv1x1 (8C -> 40C) + BN + ReLU,
global average pool, linear. Convs without bias; affine-free batch norm with
batch statistics (eps 1e-5), as the supernet pada trains (the benchmark's
stand-alone networks have affine BN).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from nb201_torch import splitmix64

STAGES = [2, 3, 3]
MBCONV = [(3, 3), (5, 6)]


def bn(c):
    return nn.BatchNorm2d(c, affine=False, track_running_stats=False)


def opens_stage(layer):
    return layer in (0, 2, 5)


class MbConv(nn.Module):
    def __init__(self, cin, cout, k, e, stride):
        super().__init__()
        self.pw1 = nn.Conv2d(cin, e * cin, 1, bias=False)
        self.bn1 = bn(e * cin)
        self.dw = nn.Conv2d(e * cin, e * cin, k, stride, k // 2, groups=e * cin, bias=False)
        self.bn2 = bn(e * cin)
        self.pw2 = nn.Conv2d(e * cin, cout, 1, bias=False)
        self.bn3 = bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.bn3(self.pw2(F.relu(self.bn2(self.dw(F.relu(self.bn1(self.pw1(x))))))))
        return x + y if self.residual else y


class Layer(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.identity = None
        if stride != 1 or cin != cout:
            self.identity = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), bn(cout))
        self.mb = nn.ModuleList([MbConv(cin, cout, k, e, stride) for k, e in MBCONV])

    def forward(self, x, choice):
        if choice == 0:
            return x if self.identity is None else self.identity(x)
        return self.mb[choice - 1](x)


class Supernet(nn.Module):
    def __init__(self, c, in_ch, classes):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_ch, c, 3, 1, 1, bias=False), bn(c), nn.ReLU())
        layers, cin = [], c
        for l in range(8):
            cout = 2 * cin if opens_stage(l) else cin
            layers.append(Layer(cin, cout, 2 if opens_stage(l) else 1))
            cin = cout
        self.layers = nn.ModuleList(layers)
        self.head = nn.Sequential(nn.Conv2d(cin, 40 * c, 1, bias=False), bn(40 * c), nn.ReLU())
        self.classifier = nn.Linear(40 * c, classes)

    def forward(self, x, arch):
        x = self.stem(x)
        for layer, choice in zip(self.layers, arch):
            x = layer(x, choice)
        return self.classifier(self.head(x).mean((2, 3)))

    def pada_names(self):
        """Every parameter under pada's name (src/train/checkpoint.rs): stem.weight;
        layer{l}.op0.conv.weight; layer{l}.op{1,2}.pw1|dw|pw2.weight; head.weight;
        classifier.weight|bias."""
        out = {"stem.weight": self.stem[0].weight}
        for l, layer in enumerate(self.layers):
            if layer.identity is not None:
                out[f"layer{l}.op0.conv.weight"] = layer.identity[0].weight
            for i, m in enumerate(layer.mb):
                for part in ("pw1", "dw", "pw2"):
                    out[f"layer{l}.op{i + 1}.{part}.weight"] = getattr(m, part).weight
        out["head.weight"] = self.head[0].weight
        out["classifier.weight"] = self.classifier.weight
        out["classifier.bias"] = self.classifier.bias
        assert len(out) == len(list(self.parameters()))
        return out


def arch_string(choices):
    return "".join(str(c) for c in choices)


def path_sequence(count):
    """`pada bench`'s paths in NAS-Bench-Macro: SplitMix64 from seed 0,
    architecture next() % 6561 read as base-3 digits, layer 1 first."""
    gen = splitmix64(0)
    out = []
    for _ in range(count):
        i = next(gen) % 3**8
        digits = []
        for _ in range(8):
            digits.append(i % 3)
            i //= 3
        out.append(digits[::-1])
    return out
