#!/usr/bin/env python3
"""Makes pada's PyTorch parity fixtures in tests/fixtures/torch/ (see its README).

Every op, SGD, clipping and whole NAS-Bench-201 and NAS-Bench-Macro supernet steps, computed by
PyTorch in float64 from float32 inputs drawn from fixed seeds. Needs torch and
safetensors (`pip install torch safetensors numpy`); rerunning it with the same
PyTorch reproduces the files (up to PyTorch's own floating-point changes).

    python3 scripts/make_torch_fixtures.py [--out tests/fixtures/torch] [--only NAME ...]
    python3 scripts/make_torch_fixtures.py --check DIR   # recompute DIR's fixtures from their inputs

--check recomputes another fixture set (e.g. the project's shared reference
fixtures) from its own inputs with this script's ops and supernet, and reports
the largest difference: it shows that this script computes what they do.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.numpy import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbmacro_torch  # noqa: E402
from nb201_torch import Supernet, arch_string  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "tests", "fixtures", "torch")
SGD = dict(lr=0.05, momentum=0.9, weight_decay=2.5e-4)

# conv cases: name -> (n, c_in, h, w, c_out, k, stride, bias)
CONVS = {
    "conv_k3_s1_bias": (2, 3, 7, 7, 4, 3, 1, True),
    "conv_k3_s2_bias_odd": (2, 3, 7, 7, 4, 3, 2, True),
    "conv_k3_s2_bias_even": (3, 2, 8, 6, 5, 3, 2, True),
    "conv_k1_s1_nobias": (2, 5, 6, 6, 3, 1, 1, False),
    "conv_k1_s1_bias": (2, 4, 5, 3, 4, 1, 1, True),
}
BNS = {"bn_a": (3, 4, 5, 5), "bn_b": (1, 2, 3, 3), "bn_c": (8, 3, 2, 2)}
POOL3 = {"avgpool3_a": (2, 3, 5, 6), "avgpool3_b": (1, 2, 1, 4)}
POOL2 = {"avgpool2_even": (2, 3, 6, 8), "avgpool2_odd": (2, 3, 7, 7)}
# supernets: name -> (C, N, in_ch, H, classes, batch, seed, archs)
SUPERNETS = {
    "supernet_c4_n2_3x16": (4, 2, 3, 16, 10, 8, 7, [
        [3, 3, 3, 3, 3, 3],
        [4, 2, 1, 2, 1, 1],
        [0, 3, 4, 2, 0, 1],
        [1, 0, 0, 0, 0, 3],  # no path from input to output: everything must stay finite
    ]),
    "supernet_c8_n1_1x28": (8, 1, 1, 28, 10, 6, 11, [
        [3, 3, 3, 3, 3, 3],
        [4, 2, 1, 2, 1, 1],
    ]),
}
# NAS-Bench-Macro supernets (N = 0): name -> (C, 0, in_ch, H, classes, batch, seed, archs)
MACRO_SUPERNETS = {
    "supernet_macro_c2_3x16": (2, 0, 3, 16, 10, 6, 13, [
        [0, 2, 0, 1, 2, 1, 0, 0],
        [2, 1, 2, 2, 1, 0, 2, 1],  # both blocks with and without their residual
        [0, 0, 0, 0, 0, 0, 0, 0],  # identities only: the strided 1x1 convs
        [2, 2, 2, 2, 2, 2, 2, 2],
    ]),
}
PARAM_COUNTS = [(16, 5, 3, 32, 10), (16, 5, 3, 32, 100), (16, 5, 3, 16, 120), (8, 1, 1, 28, 10), (4, 2, 3, 16, 10), (16, 1, 1, 28, 10)]


def f32(t):
    return t.detach().to(torch.float32).numpy()


def f64(t):
    return t.detach().to(torch.float64).numpy()


def inputs(gen, *shape, scale=1.0, offset=0.0):
    """float32 values in [offset - scale, offset + scale), as float64 tensors
    (the fixtures store the inputs as float32, so they are rounded to it first)."""
    u = torch.rand(*shape, generator=gen, dtype=torch.float64) * 2 - 1
    return (u * scale + offset).to(torch.float32).to(torch.float64)


def op_outputs(t):
    """Computes every op fixture's outputs from its inputs `t` (name -> float64 tensor)."""
    out = {}
    for name, (_, _, _, _, _, k, stride, bias) in CONVS.items():
        x, w, dy = t[f"{name}.x"], t[f"{name}.weight"], t[f"{name}.dy"]
        args = [x, w] + ([t[f"{name}.bias"]] if bias else [])
        leaves = [a.clone().requires_grad_(True) for a in args]
        y = F.conv2d(leaves[0], leaves[1], leaves[2] if bias else None, stride, k // 2)
        (y * dy).sum().backward()
        out[f"{name}.y"], out[f"{name}.dx"], out[f"{name}.dweight"] = y, leaves[0].grad, leaves[1].grad
        if bias:
            out[f"{name}.dbias"] = leaves[2].grad
    for name in BNS:
        x = t[f"{name}.x"].clone().requires_grad_(True)
        y = F.batch_norm(x, None, None, training=True, eps=1e-5)
        (y * t[f"{name}.dy"]).sum().backward()
        out[f"{name}.y"], out[f"{name}.dx"] = y, x.grad
    for name, pool in [(n, lambda x: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)) for n in POOL3] + [(n, lambda x: F.avg_pool2d(x, 2, 2)) for n in POOL2]:
        x = t[f"{name}.x"].clone().requires_grad_(True)
        y = pool(x)
        (y * t[f"{name}.dy"]).sum().backward()
        out[f"{name}.y"], out[f"{name}.dx"] = y, x.grad
    x = t["gap.x"].clone().requires_grad_(True)
    y = x.mean((2, 3))
    (y * t["gap.dy"]).sum().backward()
    out["gap.y"], out["gap.dx"] = y, x.grad
    x = t["relu.x"].clone().requires_grad_(True)
    y = F.relu(x)
    (y * t["relu.dy"]).sum().backward()
    out["relu.y"], out["relu.dx"] = y, x.grad
    x, w, b = (t[f"linear.{k}"].clone().requires_grad_(True) for k in ("x", "weight", "bias"))
    y = F.linear(x, w, b)
    (y * t["linear.dy"]).sum().backward()
    out["linear.y"], out["linear.dx"], out["linear.dweight"], out["linear.dbias"] = y, x.grad, w.grad, b.grad
    z = t["softmax_ce.logits"].clone().requires_grad_(True)
    labels = t["softmax_ce.labels"].to(torch.int64)
    per = F.cross_entropy(z, labels, reduction="none")
    mean = per.mean()
    mean.backward()
    onehot = F.one_hot(labels, z.shape[1]).to(torch.float64)
    out["softmax_ce.loss_per_sample"], out["softmax_ce.loss_mean"] = per, mean.reshape(1)
    out["softmax_ce.dlogits_of_mean"] = z.grad
    out["softmax_ce.proxy_norm"] = (F.softmax(z.detach(), 1) - onehot).norm(dim=1)
    return out


def op_inputs(gen):
    t = {}
    for name, (n, ci, h, w, co, k, stride, bias) in CONVS.items():
        oh, ow = (h + 2 * (k // 2) - k) // stride + 1, (w + 2 * (k // 2) - k) // stride + 1
        t[f"{name}.x"], t[f"{name}.weight"], t[f"{name}.dy"] = inputs(gen, n, ci, h, w), inputs(gen, co, ci, k, k), inputs(gen, n, co, oh, ow)
        if bias:
            t[f"{name}.bias"] = inputs(gen, co)
        t[f"{name}.meta"] = torch.tensor([k, stride, k // 2, int(bias)], dtype=torch.int64)
    for name, s in BNS.items():
        t[f"{name}.x"], t[f"{name}.dy"] = inputs(gen, *s, scale=3.0, offset=1.0), inputs(gen, *s)
    for name, s in POOL3.items():
        t[f"{name}.x"], t[f"{name}.dy"] = inputs(gen, *s), inputs(gen, *s)
    for name, (n, c, h, w) in POOL2.items():
        t[f"{name}.x"], t[f"{name}.dy"] = inputs(gen, n, c, h, w), inputs(gen, n, c, h // 2, w // 2)
    t["gap.x"], t["gap.dy"] = inputs(gen, 2, 3, 4, 5), inputs(gen, 2, 3)
    t["relu.x"], t["relu.dy"] = inputs(gen, 40), inputs(gen, 40)
    t["linear.x"], t["linear.weight"], t["linear.bias"], t["linear.dy"] = inputs(gen, 4, 6), inputs(gen, 5, 6), inputs(gen, 5), inputs(gen, 4, 5)
    t["softmax_ce.logits"] = inputs(gen, 6, 10, scale=4.0)
    t["softmax_ce.labels"] = torch.randint(0, 10, (6,), generator=gen)
    return t


def sgd_outputs(t):
    p = t["sgd.p0"].clone().requires_grad_(True)
    opt = torch.optim.SGD([p], **SGD)
    out = {}
    for k in (1, 2):
        p.grad = t[f"sgd.g{k}"].clone()
        opt.step()
        out[f"sgd.p{k}"] = p.detach().clone()
    a, b = t["clip.g_a"].clone().requires_grad_(True), t["clip.g_b"].clone().requires_grad_(True)
    a.grad, b.grad = t["clip.g_a"].clone(), t["clip.g_b"].clone()
    out["clip.total_norm"] = nn.utils.clip_grad_norm_([a, b], 5.0).reshape(1)
    out["clip.clipped_a"], out["clip.clipped_b"] = a.grad, b.grad
    return out


def sgd_inputs(gen):
    return {"sgd.p0": inputs(gen, 7), "sgd.g1": inputs(gen, 7), "sgd.g2": inputs(gen, 7), "clip.g_a": inputs(gen, 5, scale=4.0), "clip.g_b": inputs(gen, 3, 2, scale=4.0)}


def model_of(cfg):
    """The supernet of a fixture configuration (N = 0: NAS-Bench-Macro's)."""
    c, n, in_ch, _, classes = cfg[:5]
    return nbmacro_torch.Supernet(c, in_ch, classes) if n == 0 else Supernet(c, n, in_ch, classes)


def supernet_outputs(cfg, t):
    """Per architecture: logits, loss, proxy, gradients after clip_grad_norm_(5)
    and the parameters on the path after one SGD step from fresh momentum."""
    c, n, in_ch, h, classes, batch, _, archs = cfg
    out = {}
    for k, arch in enumerate(archs):
        model = model_of(cfg).double()
        names = model.pada_names()
        with torch.no_grad():
            for name, p in names.items():
                p.copy_(t[f"param.{name}"])
        x, y = t["x"], t["y"].to(torch.int64)
        logits = model(x, arch)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        onehot = F.one_hot(y, classes).to(torch.float64)
        out[f"arch{k}.ops"] = torch.tensor(arch, dtype=torch.int64)
        out[f"arch{k}.logits"], out[f"arch{k}.loss"] = logits, loss.reshape(1)
        out[f"arch{k}.proxy_norm"] = (F.softmax(logits.detach(), 1) - onehot).norm(dim=1)
        on_path = [p for p in model.parameters() if p.grad is not None]
        out[f"arch{k}.grad_total_norm_before_clip"] = nn.utils.clip_grad_norm_(on_path, 5.0).reshape(1)
        for name, p in names.items():
            if p.grad is not None:
                out[f"arch{k}.grad.{name}"] = p.grad.clone()
        torch.optim.SGD(on_path, **SGD).step()
        for name, p in names.items():
            if p.grad is not None:
                out[f"arch{k}.after_step.{name}"] = p.detach().clone()
    return out


def measured_layers(model):
    """The layers zero-cost-nas measures (foresight/pruners/p_utils.py,
    get_layer_metric_array): every nn.Conv2d and nn.Linear, by its weight."""
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def snip_forward(layer, x):
    """zero-cost-nas's snip_forward_conv2d / snip_forward_linear: the weight times a mask of ones."""
    if isinstance(layer, nn.Conv2d):
        return F.conv2d(x, layer.weight * layer.weight_mask, layer.bias, layer.stride, layer.padding, layer.dilation, layer.groups)
    return F.linear(x, layer.weight * layer.weight_mask, layer.bias)


def proxy_outputs(cfg, t):
    """Zero-cost proxies of each architecture as the authors' reference code
    (github.com/SamsungLabs/zero-cost-nas, foresight/pruners/measures)
    computes them, written independently here on the given weights and
    batch, in float64, batch norm with batch statistics:
    grad_norm: sum over conv/linear layers of ||dL/dW|| (weights only);
    snip: the gradient of the loss at a weight mask of ones, |dL/dmask|, summed;
    synflow: the model without batch norm (stem, cells, head), every state
    entry replaced by its absolute value, one all-ones image, sum of the
    outputs backward, sum of |W * dR/dW|; synflow_bn: the same with batch norm.
    Layers off the path have no gradient and count 0, as there."""
    import types
    c, n, in_ch, h, classes, batch, _, archs = cfg
    out = {"grad_norm": [], "snip": [], "synflow": [], "synflow_bn": []}

    def model_with(use_bn):
        model = Supernet(c, n, in_ch, classes, use_bn).double()
        with torch.no_grad():
            for name, p in model.pada_names().items():
                p.copy_(t[f"param.{name}"])
        return model

    x, y = t["x"], t["y"].to(torch.int64)
    for arch in archs:
        # grad_norm
        model = model_with(True)
        F.cross_entropy(model(x, arch), y).backward()
        out["grad_norm"].append(float(sum(m.weight.grad.norm() for m in measured_layers(model) if m.weight.grad is not None)))
        # snip, with the reference's weight masks
        model = model_with(True)
        for m in measured_layers(model):
            m.weight_mask = nn.Parameter(torch.ones_like(m.weight))
            m.weight.requires_grad = False
            m.forward = types.MethodType(snip_forward, m)
        F.cross_entropy(model(x, arch), y).backward()
        out["snip"].append(float(sum(m.weight_mask.grad.abs().sum() for m in measured_layers(model) if m.weight_mask.grad is not None)))
        # synflow (no batch norm) and synflow_bn
        for key, use_bn in (("synflow", False), ("synflow_bn", True)):
            model = model_with(use_bn)
            with torch.no_grad():
                for v in model.state_dict().values():
                    v.abs_()
            model(torch.ones(1, in_ch, h, h, dtype=torch.float64), arch).sum().backward()
            out[key].append(float(sum((m.weight * m.weight.grad).abs().sum() for m in measured_layers(model) if m.weight.grad is not None)))
    return out


def supernet_inputs(cfg):
    c, n, in_ch, h, classes, batch, seed, _ = cfg
    torch.manual_seed(seed)  # PyTorch's default initialisation, from the seed
    model = model_of(cfg)
    gen = torch.Generator().manual_seed(seed + 1)
    # stored as float32: the outputs are computed from the float32 values
    t = {f"param.{name}": p.detach().to(torch.float32).to(torch.float64) for name, p in model.pada_names().items()}
    t["x"] = inputs(gen, batch, in_ch, h, h)
    t["y"] = torch.arange(batch) % classes
    return t, sum(p.numel() for p in model.parameters())


def store(path, t, out):
    """Inputs as float32 (int64 kept), outputs as float64."""
    tensors = {k: (v.numpy() if v.dtype == torch.int64 else f32(v)) for k, v in t.items()}
    tensors.update({k: (v.numpy() if v.dtype == torch.int64 else f64(v)) for k, v in out.items()})
    save_file({k: np.ascontiguousarray(v) for k, v in sorted(tensors.items())}, path)


def make_macro(out_dir, names):
    """The NAS-Bench-Macro supernet fixtures (or those of `names`), their
    entries of meta.json updated in place."""
    torch.set_num_threads(1)
    path = os.path.join(out_dir, "meta.json")
    with open(path) as f:
        meta = json.load(f)
    for name, cfg in MACRO_SUPERNETS.items():
        if names and name not in names:
            continue
        t, params = supernet_inputs(cfg)
        store(os.path.join(out_dir, f"{name}.safetensors"), t, supernet_outputs(cfg, t))
        c, _, in_ch, h, classes, batch, seed, archs = cfg
        meta[name] = {"space": "nb-macro", "C": c, "in_ch": in_ch, "H": h, "classes": classes, "batch": batch, "seed": seed,
                      "archs": [nbmacro_torch.arch_string(a) for a in archs], "params": params, "torch": torch.__version__}
    with open(path, "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(f"wrote the NAS-Bench-Macro fixtures of {out_dir} (PyTorch {torch.__version__})")


def make(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(2026)
    t = op_inputs(gen)
    store(os.path.join(out_dir, "ops.safetensors"), t, op_outputs(t))
    t = sgd_inputs(gen)
    store(os.path.join(out_dir, "sgd.safetensors"), t, sgd_outputs(t))
    meta = {}
    for name, cfg in SUPERNETS.items():
        t, params = supernet_inputs(cfg)
        store(os.path.join(out_dir, f"{name}.safetensors"), t, supernet_outputs(cfg, t))
        c, n, in_ch, h, classes, batch, seed, archs = cfg
        meta[name] = {"C": c, "N": n, "in_ch": in_ch, "H": h, "classes": classes, "batch": batch, "seed": seed, "archs": [arch_string(a) for a in archs], "params": params}
    meta["param_counts"] = [
        {"C": c, "N": n, "input": f"{i}x{h}x{h}", "classes": k, "params": sum(p.numel() for p in Supernet(c, n, i, k).parameters())} for c, n, i, h, k in PARAM_COUNTS
    ]
    cfg = SUPERNETS["supernet_c4_n2_3x16"]
    t, _ = supernet_inputs(cfg)
    meta["proxies_supernet_c4_n2_3x16"] = proxy_outputs(cfg, t)
    meta["torch"] = torch.__version__
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(f"wrote {out_dir} (PyTorch {torch.__version__})")
    make_macro(out_dir, [])


def check(dir_):
    """Recomputes dir_'s fixtures from their inputs; returns the worst relative difference."""
    worst = 0.0

    def compare(file, outputs):
        nonlocal worst
        ref = load_file(os.path.join(dir_, file))
        # A conv bias before a batch norm has an exact gradient of 0: its computed
        # value is rounding noise, so gradients are judged against their
        # architecture's largest one.
        grad_scale = {}
        for k, v in ref.items():
            if ".grad." in k:
                a = k.split(".")[0]
                grad_scale[a] = max(grad_scale.get(a, 0.0), float(np.abs(v).max()))
        for k, v in outputs.items():
            want = ref[k].astype(np.float64)
            got = f64(v).reshape(want.shape)
            scale = grad_scale[k.split(".")[0]] if ".grad." in k else np.abs(want).max()
            d = float(np.abs(got - want).max() / max(scale, 1e-12))
            worst = max(worst, d)
            if d > 1e-9:
                print(f"{file} {k}: relative difference {d:.2e}")

    def tensors(file):
        return {k: torch.from_numpy(v.astype(np.int64) if v.dtype == np.int64 else v.astype(np.float64)) for k, v in load_file(os.path.join(dir_, file)).items()}

    t = tensors("ops.safetensors")
    compare("ops.safetensors", op_outputs(t))
    t = tensors("sgd.safetensors")
    compare("sgd.safetensors", sgd_outputs(t))
    meta = json.load(open(os.path.join(dir_, "meta.json")))
    for name, cfg in SUPERNETS.items():
        t = tensors(f"{name}.safetensors")
        m = meta[name]
        archs = [[int(v) for v in t[f"arch{k}.ops"]] for k in range(len(m["archs"]))]
        compare(f"{name}.safetensors", supernet_outputs((m["C"], m["N"], m["in_ch"], m["H"], m["classes"], m["batch"], m["seed"], archs), t))
    print(f"recomputed {dir_} from its inputs: worst relative difference {worst:.2e}")
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--check", metavar="DIR", help="recompute DIR's fixtures from their inputs instead")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="only these NAS-Bench-Macro fixtures (e.g. supernet_macro_c2_3x16)")
    a = ap.parse_args()
    torch.set_default_dtype(torch.float64)
    if a.check:
        sys.exit(0 if check(a.check) <= 1e-9 else 1)
    if a.only:
        make_macro(a.out, a.only)
    else:
        make(a.out)


if __name__ == "__main__":
    main()
