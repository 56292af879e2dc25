"""pada from Python: train PA&DA (or SPOS, FairNAS, SUMNAS, PA, DA) supernets
of NAS-Bench-201 or NAS-Bench-Macro, and use a trained supernet as an oracle
in a search loop.

    import pada
    run = pada.train(out="runs/a", epochs=4)        # the CLI's flags as keywords
    acc = run.accuracy(pada.archs("nb201")[:100])   # numpy array, one accuracy per architecture

Every function mirrors a command of the `pada` CLI, takes its flags under
the same names (``--batch-size`` is ``batch_size=``), checks them the same way
and raises ``ValueError`` (bad input) or ``OSError`` (a file) with the CLI's
one-line message. Long calls release the GIL, report progress (a tqdm bar
when tqdm is installed, plain lines otherwise, or your callable) and stop on
Ctrl-C with ``KeyboardInterrupt``; an interrupted training keeps its last
complete epoch, and ``Run.open(dir).resume()`` continues it.
"""
import json
import os
import sys
import time

import numpy as np

from . import _pada

__version__ = _pada.__version__
__all__ = ["train", "Run", "compare", "table", "proxies", "archs", "neighbours", "set_threads"]


class _Progress:
    """The progress display of a call: `progress` is True (a tqdm bar when tqdm
    is installed, else a plain line on stderr at most every 10 s and every
    epoch's line), False or None (nothing), or a callable given each event
    (a dict: kind "line" with a message, or kind "step" with done, total, message)."""

    def __init__(self, progress, unit):
        self.callback = progress if callable(progress) else None
        self.enabled = bool(progress)
        self.unit = unit
        self.bar = None
        self.last = 0.0
        if self.enabled and self.callback is None:
            try:
                from tqdm.auto import tqdm

                self.tqdm = tqdm
            except ImportError:
                self.tqdm = None

    def __call__(self, event):
        if self.callback is not None:
            self.callback(event)
        elif not self.enabled:
            return
        elif event["kind"] == "line":
            if self.bar is not None:
                self.bar.write(event["message"], file=sys.stderr)
            else:
                print(event["message"], file=sys.stderr)
        elif self.tqdm is not None:
            if self.bar is None:
                self.bar = self.tqdm(total=event["total"], unit=self.unit)
            self.bar.total = event["total"]
            self.bar.n = event["done"]
            self.bar.set_description(event["message"], refresh=False)
            self.bar.refresh()
        elif time.monotonic() - self.last >= 10 or event["done"] == event["total"]:
            print(f"{event['done']}/{event['total']} {event['message']}", file=sys.stderr)
            self.last = time.monotonic()

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _call(native, progress, unit, *args, **kwargs):
    display = _Progress(progress, unit)
    try:
        return native(*args, progress=display, **kwargs)
    finally:
        display.close()


def _argv(flags):
    """Keyword arguments as CLI flags: ``batch_size=64`` -> ``--batch-size 64``;
    True -> the bare flag; False or None -> left out; a list -> comma-separated."""
    argv = []
    for key, value in flags.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif isinstance(value, (list, tuple)):
            argv += [flag, ",".join(str(v) for v in value)]
        else:
            argv += [flag, str(value)]
    return argv


def train(out=None, method=None, data=None, space=None, progress=True, **flags):
    """Trains a supernet as ``pada train`` does, then makes its verdict unless
    ``no_verdict=True``; returns the :class:`Run`. Every flag of ``pada train
    --help`` is a keyword (``epochs=4``, ``preset="laptop"``,
    ``lr_schedule="calr"``, ``resume="runs/a"``); ``method`` defaults to
    "pada", ``data`` to "embedded", ``space`` to "nb201". The CPU only."""
    argv = _argv(dict(out=out, method=method, data=data, space=space, **flags))
    directory = _call(_pada.train, progress, "step", argv)
    return Run.open(directory)


class Run:
    """A trained run (its directory): the supernet as an oracle, its verdict,
    its settings. Open one with :meth:`Run.open`; :func:`train` returns one."""

    def __init__(self, native, directory):
        self._native = native
        self.dir = directory

    @classmethod
    def open(cls, directory):
        """The run in ``directory`` (its config.json and latest weights)."""
        return cls(_pada.NativeRun(str(directory)), str(directory))

    @property
    def config(self):
        """config.json: every setting, the seed, the data, the supernet."""
        return json.loads(self._native.config_json())

    @property
    def verdict(self):
        """verdict.json (the ranking's metrics and the reference rows), or None
        when the run has not been judged."""
        path = os.path.join(self.dir, "verdict.json")
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return json.load(f)

    @property
    def space(self):
        """The run's search space: "nb201" or "nb-macro"."""
        return self._native.space()

    def resume(self, progress=True):
        """Continues an interrupted training to its end (and its verdict), as
        ``pada train --resume``; returns the run, reopened with its final weights."""
        return train(resume=self.dir, progress=progress)

    def accuracy(self, archs, images=1000, batch_size=512, progress=False):
        """Test accuracy (%) of each architecture string with the supernet's
        weights, on the first ``images`` test images (None: all), in order,
        scored as ``pada rank`` scores: a float64 array of ``len(archs)``."""
        archs = [archs] if isinstance(archs, str) else list(archs)
        return _call(self._native.accuracy, progress, "arch", archs, images, batch_size)

    def rank(self, ground_truth=None, archs=1000, images=None, progress=True):
        """The verdict: the supernet's ranking of ``archs`` architectures of
        ``ground_truth`` (default: its data's own built-in table; ``archs`` a
        number, one per isomorphism class, or "all") against their true
        accuracies, with the reference rows; as a dict (also RUN/verdict.json)."""
        text = _call(self._native.verdict, progress, "arch", ground_truth, str(archs), images)
        return json.loads(text)

    def __repr__(self):
        return f"pada.Run({self.dir!r})"


def _column(source, column, prediction):
    """(archs, values) of predictions or a truth given as a dict {arch: value},
    a pair (archs, values), or a table name/CSV path (its ``column``, by
    default the one ``pada compare`` reads)."""
    if isinstance(source, dict):
        return [str(a) for a in source], [float(v) for v in source.values()]
    if isinstance(source, (str, os.PathLike)):
        archs_, values = _pada.column(str(source), column, prediction)
        return archs_, values.tolist()
    archs_, values = source
    return [str(a) for a in archs_], [float(v) for v in values]


def compare(pred, truth, pred_column=None, truth_column=None):
    """Ranking consistency of ``pred`` with ``truth`` (each a dict {arch:
    value}, a pair (archs, values), or a table: built-in name or CSV path) on
    their common architectures: Kendall tau-b, Spearman, Pearson, Kendall tau
    among the true top 5% and 10%, precision@top-1/5/10% and the predicted
    best (ties broken by the architecture string), as ``pada compare``."""
    pa, pv = _column(pred, pred_column, True)
    ta, tv = _column(truth, truth_column, False)
    return json.loads(_pada.compare(pa, pv, ta, tv))


def table(name):
    """A table (built in: "nb201:cifar10", "nbmacro:cifar10", "embedded", ...;
    or a CSV path): {"arch": list of strings, column: float64 array, ...}."""
    archs_, columns = _pada.table(name)
    return {"arch": archs_, **columns}


def proxies(archs, data="embedded", channels=None, cells=None, batch_size=64, seed=0, progress=True):
    """Parameter count, FLOPs and the zero-cost proxies (grad_norm, snip,
    synflow, synflow_bn) of each architecture at initialisation, as ``pada
    proxies`` computes them: a dict of float64 arrays in the order of ``archs``."""
    archs = [archs] if isinstance(archs, str) else list(archs)
    return _call(_pada.proxies, progress, "arch", archs, data, channels, cells, batch_size, seed)


def archs(space="nb201", unique=True):
    """Every architecture string of a space ("nb201": 15,625; "nb-macro":
    6,561); ``unique``: one per isomorphism class (6,466; 3,969)."""
    return _pada.archs(space, unique)


def neighbours(arch):
    """The architectures one choice away from ``arch`` (each edge or layer set
    to each of its other ops or blocks), in the space of its string: the
    mutations of an evolutionary search (24 in NAS-Bench-201, 16 in NAS-Bench-Macro)."""
    return _pada.neighbours(arch)


def set_threads(n):
    """CPU threads for all of pada's work in this process (once, before any work)."""
    _pada.set_threads(n)
