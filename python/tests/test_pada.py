"""The Python package against the pada CLI: the oracle agrees with `pada
rank`, errors are the right exceptions, Ctrl-C stops a training that
Run.open(...).resume() then finishes, arrays have the right dtypes and shapes.

Run from a clone after `pip install ./python pytest`: `pytest python/tests`.
The CLI is the crate's release binary (PADA_BIN, else target/release/pada).
"""
import csv
import os
import signal
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

import pada

ROOT = Path(__file__).resolve().parents[2]
PADA = os.environ.get("PADA_BIN", str(ROOT / "target" / "release" / "pada"))
DATA = "synthetic:1x8x8:96:40:4"
TINY = dict(data=DATA, epochs=2, batch_size=32, channels=2, cells=1, no_verdict=True, progress=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return pada.train(out=str(tmp_path_factory.mktemp("runs") / "a"), **TINY)


def cli(*args):
    done = subprocess.run([PADA, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_oracle_is_pada_rank(run, tmp_path):
    archs = pada.archs("nb201", unique=True)[:40]
    acc = run.accuracy(archs, images=30)
    assert acc.dtype == np.float64 and acc.shape == (40,)
    # the same architectures through the CLI: the same scores to its printed digits
    arch_file = tmp_path / "archs.csv"
    arch_file.write_text("arch\n" + "\n".join(archs) + "\n")
    out = tmp_path / "rank.csv"
    cli("rank", "--run", run.dir, "--archs", str(arch_file), "--images", "30", "--out", str(out), "-q")
    ranked = {r["arch"]: r["accuracy"] for r in csv.DictReader(out.open())}
    assert [f"{a:.4f}" for a in acc] == [ranked[a] for a in archs]
    # a single string, other sizes, all test images
    assert run.accuracy(archs[0], images=30).shape == (1,)
    assert run.accuracy(archs[:3], images=None).shape == (3,)


def test_train_checks_flags_as_the_cli_does(tmp_path):
    with pytest.raises(ValueError, match="--epochs must be at least 1"):
        pada.train(out=str(tmp_path / "x"), data=DATA, epochs=0, progress=False)
    with pytest.raises(ValueError, match="unexpected argument '--no-such-flag'"):
        pada.train(out=str(tmp_path / "y"), no_such_flag=3, progress=False)
    with pytest.raises(ValueError, match="--momentum-groups must be 1"):
        pada.train(out=str(tmp_path / "z"), data=DATA, momentum_groups=4, progress=False)
    assert not (tmp_path / "x").exists()


def test_errors_are_the_right_exceptions(run, tmp_path):
    with pytest.raises(OSError, match="config.json"):
        pada.Run.open(tmp_path / "nope")
    with pytest.raises(ValueError, match="archs\\[1\\]"):
        run.accuracy(["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "|bad|"])
    with pytest.raises(ValueError, match="NAS-Bench-201"):
        run.accuracy(["02012100"])  # a NAS-Bench-Macro string for a NAS-Bench-201 run
    with pytest.raises(ValueError, match="no such built-in table"):
        pada.table("nb201:cifar11")
    with pytest.raises(OSError):
        pada.table(str(tmp_path / "missing.csv"))
    with pytest.raises(ValueError, match="--space"):
        pada.archs("nb-micro")


def test_tables_archs_and_compare():
    t = pada.table("nbmacro:cifar10")
    assert len(t["arch"]) == 6561 and t["test_accuracy"].dtype == np.float64 and t["flops"].shape == (6561,)
    assert len(pada.archs("nb-macro", unique=False)) == 6561
    # NAS-Bench-201's CIFAR-10 ranking against its CIFAR-100 one, as `pada compare` gives it
    c = pada.compare("nb201:cifar10", "nb201:cifar100")
    assert c["n"] == 15625 and abs(c["kendall_tau"] - 0.8820) < 5e-5
    assert {"spearman_rho", "kendall_tau_top5", "kendall_tau_top10", "precision_top5", "predicted_best"} <= set(c)
    # predictions as a dict, the truth as a pair
    pred = {a: v for a, v in zip(t["arch"][:50], t["flops"][:50])}
    c = pada.compare(pred, (t["arch"], t["test_accuracy"]))
    assert c["n"] == 50


def test_proxies_and_rank(run):
    archs = pada.archs("nb201")[100:104]
    p = pada.proxies(archs, data=DATA, channels=2, cells=1, batch_size=16, progress=False)
    assert set(p) == {"params", "flops", "grad_norm", "snip", "synflow", "synflow_bn"}
    assert all(v.dtype == np.float64 and v.shape == (4,) and np.all(np.isfinite(v)) for v in p.values())
    assert run.verdict is None  # trained with no_verdict
    v = run.rank(ground_truth="embedded", archs=20, images=30, progress=False)
    assert v["supernet"]["n"] == 20 and v["images"] == 30 and len(v["scores"]) == 20
    assert run.verdict == v


def test_progress_callback_and_ctrl_c_then_resume(tmp_path):
    # Python's own Ctrl-C handler, whatever was inherited: a job that a non-interactive
    # shell starts in the background ignores SIGINT, and Python then leaves it ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _ctrl_c_then_resume(tmp_path)
    finally:
        signal.signal(signal.SIGINT, previous)


def _ctrl_c_then_resume(tmp_path):
    events, out = [], str(tmp_path / "cut")
    flags = dict(data=DATA, epochs=40, batch_size=32, channels=2, cells=1, no_verdict=True)
    first_epoch_done = threading.Event()

    def progress(e):
        events.append(e)
        if e["kind"] == "line" and e["message"].startswith("epoch   1/"):
            first_epoch_done.set()

    def interrupt_after_the_first_epoch():
        first_epoch_done.wait()
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    threading.Thread(target=interrupt_after_the_first_epoch, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        pada.train(out=out, progress=progress, **flags)
    assert any(e["kind"] == "step" and e["total"] > 0 for e in events)
    cut = pada.Run.open(out)
    assert cut.config["train"]["epochs"] == 40 and not Path(out, "summary.json").exists()
    done = cut.resume(progress=False)
    assert Path(out, "summary.json").exists()
    # the resumed run ends where an uninterrupted one does
    whole = pada.train(out=str(tmp_path / "whole"), progress=False, **flags)
    assert Path(out, "supernet.safetensors").read_bytes() == Path(whole.dir, "supernet.safetensors").read_bytes()
    assert done.accuracy(pada.archs()[:5], images=20).tolist() == whole.accuracy(pada.archs()[:5], images=20).tolist()


def test_neighbours_are_one_choice_away():
    for space, per in (("nb201", 24), ("nb-macro", 16)):
        a = pada.archs(space)[77]
        n = pada.neighbours(a)
        assert len(n) == per == len(set(n)) and a not in n
        assert all(a in pada.neighbours(b) for b in n)
    assert pada.neighbours("02012100")[0] == "12012100"
    with pytest.raises(ValueError, match="expected 8 digits"):
        pada.neighbours("021")
