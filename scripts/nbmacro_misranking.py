#!/usr/bin/env python3
"""Where a NAS-Bench-Macro supernet misranks: reads the verdicts of trained
runs (RUN/verdict.json: the supernet's score of each ranked network) and,
beside the built-in ground truth `nbmacro:cifar10`, prints

- Kendall tau overall and within networks of equal depth (the number of
  MobileNetV2 blocks, 0-8): does the supernet rank beyond how deep a network
  is? FLOPs beside it, on the same networks;
- each layer's block effects: the mean true accuracy and the mean supernet
  score of the networks with identity / k3 e3 / k5 e6 at that layer, minus
  the mean of all, in standard deviations of each (the supernet's accuracies
  sit far below the stand-alone ones: only their order counts); a layer whose order of the three differs from the truth's is
  marked.

Needs the `pada` Python package (pip install ./python) and numpy:
    python scripts/nbmacro_misranking.py runs/sweep/pada-seed0 runs/sweep/spos-seed0
"""
import argparse
import json
import pathlib

import numpy as np
import pada

BLOCKS = ["identity", "k3e3", "k5e6"]


def kendall(pred, truth):
    return pada.compare((list(pred.keys()), list(pred.values())), (list(truth.keys()), list(truth.values())))["kendall_tau"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="run directories with a verdict against nbmacro:cifar10")
    args = ap.parse_args()
    table = pada.table("nbmacro:cifar10")
    truth_all = dict(zip(table["arch"], table["test_accuracy"]))
    flops_all = dict(zip(table["arch"], table["flops"]))
    for run in args.runs:
        verdict = json.loads((pathlib.Path(run) / "verdict.json").read_text())
        if verdict["ground_truth"] != "nbmacro:cifar10":
            raise SystemExit(f"{run}: judged against {verdict['ground_truth']}, not nbmacro:cifar10")
        score = {a: s for a, s in verdict["scores"]}
        archs = list(score)
        truth = {a: truth_all[a] for a in archs}
        print(f"{run}: {len(archs)} networks, Kendall tau {kendall(score, truth):.3f} (FLOPs {kendall({a: flops_all[a] for a in archs}, truth):.3f})")
        depth = {a: sum(c != "0" for c in a) for a in archs}
        rows, weights = [], []
        for d in sorted(set(depth.values())):
            group = [a for a in archs if depth[a] == d]
            if len(group) < 20:
                continue
            sub = lambda m: {a: m[a] for a in group}  # noqa: E731
            t_s, t_f = kendall(sub(score), sub(truth)), kendall(sub({a: flops_all[a] for a in archs}), sub(truth))
            rows.append(f"    depth {d}: {len(group):4d} networks, supernet {t_s:6.3f}, FLOPs {t_f:6.3f}")
            weights.append((len(group), t_s, t_f))
        n = sum(w for w, _, _ in weights)
        print(f"  within equal depth (weighted mean over depths with >= 20 networks): supernet "
              f"{sum(w * s for w, s, _ in weights) / n:.3f}, FLOPs {sum(w * f for w, _, f in weights) / n:.3f}")
        print("\n".join(rows))
        s = np.array([score[a] for a in archs])
        t = np.array([truth[a] for a in archs])
        digits = np.array([[int(c) for c in a] for a in archs])
        print("  block effects by layer (true accuracy | supernet score, minus the mean, in sd; * = another order of the blocks):")
        for layer in range(digits.shape[1]):
            te = [(t[digits[:, layer] == b].mean() - t.mean()) / t.std() for b in range(3)]
            se = [(s[digits[:, layer] == b].mean() - s.mean()) / s.std() for b in range(3)]
            mark = "*" if list(np.argsort(te)) != list(np.argsort(se)) else " "
            cells = "  ".join(f"{BLOCKS[b]} {te[b]:+5.2f} | {se[b]:+5.2f}" for b in range(3))
            print(f"   {mark}layer {layer + 1}: {cells}")


if __name__ == "__main__":
    main()
