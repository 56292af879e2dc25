"""The oracle's throughput against `pada rank` on the same architectures.

    python scripts/bench_oracle.py --run RUN [--archs 200] [--images 1000] [--repeats 3]

Scores the first ARCHS distinct architectures of the run's space REPEATS
times each way, alternating (the machine is noisy: a ratio from one run):
`pada rank --run RUN --archs FILE` (a process: opening the run, loading the
data, scoring, writing its CSV) and `run.accuracy(archs)` on a Run opened
once. Prints the median seconds and architectures per second of each, the
time to open the Run, and checks that both give the same scores.
"""
import argparse
import csv
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import pada

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="a trained run's directory")
    ap.add_argument("--archs", type=int, default=200, help="how many distinct architectures")
    ap.add_argument("--images", type=int, default=1000, help="test images per architecture")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pada", default=os.environ.get("PADA_BIN", str(ROOT / "target" / "release" / "pada")))
    a = ap.parse_args()

    start = time.perf_counter()
    run = pada.Run.open(a.run)
    opened = time.perf_counter() - start
    archs = pada.archs(run.space, unique=True)[: a.archs]
    with tempfile.TemporaryDirectory() as tmp:
        arch_file, out = Path(tmp, "archs.csv"), Path(tmp, "rank.csv")
        arch_file.write_text("arch\n" + "\n".join(archs) + "\n")
        cli_s, py_s = [], []
        for _ in range(a.repeats):
            for f in (out, out.with_suffix(".settings.json")):
                f.unlink(missing_ok=True)  # pada rank would resume from it
            start = time.perf_counter()
            subprocess.run([a.pada, "rank", "--run", a.run, "--archs", str(arch_file), "--images", str(a.images), "--out", str(out), "-q"], check=True, stdout=subprocess.DEVNULL)
            cli_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            acc = run.accuracy(archs, images=a.images)
            py_s.append(time.perf_counter() - start)
        ranked = {r["arch"]: r["accuracy"] for r in csv.DictReader(out.open())}
        same = [f"{x:.4f}" for x in acc] == [ranked[x] for x in archs]
    cli, py = statistics.median(cli_s), statistics.median(py_s)
    print(f"{len(archs)} architectures of {run.space} x {a.images} images, median of {a.repeats}, {os.cpu_count()} CPUs")
    print(f"pada rank (whole process)   {cli:8.2f} s  {len(archs) / cli:8.1f} arch/s")
    print(f"run.accuracy (opened once)  {py:8.2f} s  {len(archs) / py:8.1f} arch/s   ({py / cli:.3f} of the CLI's time)")
    print(f"pada.Run.open               {opened:8.2f} s")
    print(f"same scores to the printed digits: {same}")
    if not same:
        raise SystemExit("the oracle and pada rank disagree")


if __name__ == "__main__":
    main()
