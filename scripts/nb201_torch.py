"""The NAS-Bench-201 supernet of the official PA&DA code, in PyTorch, for the
scripts that measure pada against PyTorch (torch_step_bench.py) and that make
its PyTorch fixtures (make_torch_fixtures.py).

Written independently here: stem conv3x3+BN, 3 stages of N cells with
ReLU-conv-BN edges (conv1x1 / conv3x3 with bias), ResNet reduction blocks
(ReLU-conv3x3/2-BN, ReLU-conv3x3-BN, shortcut avgpool2x2 + conv1x1 without
bias), BN-ReLU-global-average-pool-linear head; affine-free batch norm with
batch statistics (eps 1e-5). Op indices: 0 none, 1 skip_connect,
2 nor_conv_1x1, 3 nor_conv_3x3, 4 avg_pool_3x3 (count_include_pad=False).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

MASK = (1 << 64) - 1
EDGES = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]


def splitmix64(state):
    while True:
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        yield z ^ (z >> 31)


def path_sequence(count):
    """`pada bench`'s paths: SplitMix64 from seed 0, architecture next() % 15625
    read as base-5 digits, edge 0 first."""
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


def arch_string(ops):
    """The NAS-Bench-201 string of op indices in edge order."""
    e = [f"{OPS[o]}~{j}" for o, (j, _) in zip(ops, EDGES)]
    return f"|{e[0]}|+|{e[1]}|{e[2]}|+|{e[3]}|{e[4]}|{e[5]}|"


def bn(c):
    return nn.BatchNorm2d(c, affine=False, track_running_stats=False)


class ReLUConvBN(nn.Module):
    def __init__(self, cin, cout, k, stride, use_bn=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, bias=True)
        self.bn = bn(cout) if use_bn else nn.Identity()

    def forward(self, x):
        return self.bn(self.conv(F.relu(x)))


class Cell(nn.Module):
    def __init__(self, c, use_bn=True):
        super().__init__()
        self.conv1 = nn.ModuleList([ReLUConvBN(c, c, 1, 1, use_bn) for _ in range(6)])
        self.conv3 = nn.ModuleList([ReLUConvBN(c, c, 3, 1, use_bn) for _ in range(6)])

    def forward(self, x, arch):
        nodes = [x]
        for i in range(1, 4):
            acc = []
            for e, (j, t) in enumerate(EDGES):
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
    """use_bn=False: batch norm left out of the stem, the cells and the head
    (the reduction blocks keep theirs), as zero-cost-nas's NAS-Bench-201 model
    with use_bn=False, which its synflow measures."""

    def __init__(self, c, n, in_ch, classes, use_bn=True):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_ch, c, 3, 1, 1, bias=False), bn(c) if use_bn else nn.Identity())
        layers = []
        for s in range(3):
            if s > 0:
                layers.append(Reduction(c << (s - 1), c << s))
            layers += [Cell(c << s, use_bn) for _ in range(n)]
        self.layers = nn.ModuleList(layers)
        self.head_bn = bn(c << 2) if use_bn else nn.Identity()
        self.classifier = nn.Linear(c << 2, classes)

    def forward(self, x, arch):
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x, arch) if isinstance(layer, Cell) else layer(x)
        x = F.relu(self.head_bn(x)).mean((2, 3))
        return self.classifier(x)

    def pada_names(self):
        """Every parameter under pada's name (src/train/checkpoint.rs): stem.weight;
        cell{i}.edge{e}.op{2|3}.weight|bias (cells counted over all stages);
        res{r}.conv_a|conv_b.weight|bias, res{r}.shortcut.weight; classifier.weight|bias."""
        out = {"stem.weight": self.stem[0].weight}
        cell = red = 0
        for layer in self.layers:
            if isinstance(layer, Cell):
                for e in range(6):
                    for o, convs in ((2, layer.conv1), (3, layer.conv3)):
                        out[f"cell{cell}.edge{e}.op{o}.weight"] = convs[e].conv.weight
                        out[f"cell{cell}.edge{e}.op{o}.bias"] = convs[e].conv.bias
                cell += 1
            else:
                for part, m in (("conv_a", layer.a.conv), ("conv_b", layer.b.conv)):
                    out[f"res{red}.{part}.weight"] = m.weight
                    out[f"res{red}.{part}.bias"] = m.bias
                out[f"res{red}.shortcut.weight"] = layer.shortcut.weight
                red += 1
        out["classifier.weight"] = self.classifier.weight
        out["classifier.bias"] = self.classifier.bias
        assert len(out) == len(list(self.parameters()))
        return out
