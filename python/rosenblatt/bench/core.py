"""The vocabulary of the suite: workloads, contenders, results, and the suite's settings.

A *workload* is one problem (a kernel at one shape and dtype, one training epoch, ...).
Each workload has *contenders*: one implementation at one thread count (``numpy`` at 1
thread, ``rosenblatt[cpp]`` at 2, ...). The runner times all contenders of a workload in
interleaved repetitions, then the workload checks every contender's output against a
reference; a contender whose output is wrong is reported FAILED, never with a speed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SIZES", "Config", "Contender", "Result", "Runner", "Unavailable", "Workload"]


class Unavailable(Exception):
    """A contender (or a whole workload) cannot run here; the message says why."""


# Problem sizes per mode. "full" is PERFORMANCE.md's; "quick" keeps every workload but
# shrinks the expensive ones so the whole suite takes about a minute; "tiny" is for the
# suite's own tests. A shrunk workload says so in its title and its rows are never
# compared with the absolute targets (seconds per epoch) of PERFORMANCE.md.
SIZES = {
    "full": {
        "dtypes": ("float32", "float64"),
        "mlp_shapes": ((32, 784, 300), (200, 784, 300), (256, 300, 100)),
        "large_shapes": ((1024, 1024, 1024),),
        "tiny_shapes": ((10, 2, 8),),
        "sweep_batches": (1, 8, 32, 64, 128, 200, 256, 512, 1024),
        "fashion_rows": 60000, "fashion_batches": (200, 32),
        "playground_rows": 500, "playground_dtypes": ("float32", "float64"),
        "perceptron_rows": 100000, "perceptron_dtypes": ("float64", "float32"),
        "predict_rows": (1, 10000), "predict_fit_rows": 2000,
        "optimizer_params": 266610,  # 784-300-100-10
        "import_runs": 7, "import_peers": ("sklearn", "torch"),
        "memory_rows": 20000,
        "reps": 7, "reps_short": 21, "min_time": 0.03, "budget": 150.0,
        "reference_everywhere": True,
    },
    "quick": {
        "dtypes": ("float32",),
        "mlp_shapes": ((32, 784, 300), (200, 784, 300), (256, 300, 100)),
        "large_shapes": ((512, 512, 512),),
        "tiny_shapes": ((10, 2, 8),),
        "sweep_batches": (1, 32, 200),
        "fashion_rows": 3200, "fashion_batches": (200, 32),
        "playground_rows": 500, "playground_dtypes": ("float32",),
        "perceptron_rows": 10000, "perceptron_dtypes": ("float64",),
        "predict_rows": (1, 10000), "predict_fit_rows": 500,
        "optimizer_params": 266610,
        "import_runs": 3, "import_peers": ("sklearn",),
        "memory_rows": 3000,
        "reps": 3, "reps_short": 7, "min_time": 0.005, "budget": 15.0,
        # the NumPy reference backend (pure-Python loops for the Perceptron, sklearn-speed
        # training) would be a third of the smoke run: kernels only, unless --backends
        "reference_everywhere": False,
    },
    "tiny": {
        "dtypes": ("float32", "float64"),
        "mlp_shapes": ((16, 40, 24),),
        "large_shapes": ((64, 64, 64),),
        "tiny_shapes": ((10, 2, 8),),
        "sweep_batches": (1, 16),
        "fashion_rows": 400, "fashion_batches": (100,),
        "playground_rows": 100, "playground_dtypes": ("float32",),
        "perceptron_rows": 600, "perceptron_dtypes": ("float64",),
        "predict_rows": (1, 200), "predict_fit_rows": 200,
        "optimizer_params": 70001,  # over the threads' threshold, odd: a partial vector
        "import_runs": 1, "import_peers": (),
        "memory_rows": 300,
        "reps": 2, "reps_short": 3, "min_time": 0.0005, "budget": 20.0,
        "reference_everywhere": True,
    },
}


@dataclass
class Config:
    """Settings of one run of the suite.

    Parameters
    ----------
    size : {"full", "quick", "tiny"}
        Problem sizes (see ``SIZES``).
    repeat : int, optional
        Interleaved repetitions per contender (default from ``size``).
    patterns : list of str
        Keep workloads whose id contains one of these (``fnmatch`` patterns allowed).
    groups : list of str
        Keep workloads of these groups (kernel, train, perceptron, predict, import, memory).
    backends : list of str, optional
        rosenblatt backends to include (default: every available one).
    peers : list of str, optional
        Peers to include among numpy, sklearn, torch, jax (default: all installed).
    threads : tuple of int
        Thread counts every contender runs at (default: 1 and all cores).
    budget : float, optional
        Seconds of timed repetitions one contender may take (default from ``size``). A
        contender whose warm-up shows it would exceed this is not repeated: its row is
        ``skipped`` and shows that single, unchecked run.
    """

    size: str = "full"
    repeat: int | None = None
    patterns: list = field(default_factory=list)
    groups: list = field(default_factory=list)
    backends: list | None = None
    peers: list | None = None
    threads: tuple = ()
    budget: float | None = None

    def s(self, key):
        """Size parameter ``key`` of this run's mode."""
        return SIZES[self.size][key]

    @property
    def reps(self) -> int:
        return self.repeat or self.s("reps")

    @property
    def reps_short(self) -> int:
        # short workloads (an epoch under a millisecond) get more repetitions for a stable
        # median; scaled with --repeat so that a user's choice still means something
        base = self.s("reps_short")
        return max(self.reps, round(base * self.reps / self.s("reps")))

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


class Runner:
    """A prepared contender: ``run()`` does one timed unit; ``output()`` what is checked.

    ``set_threads()`` runs before every repetition, outside the timed region (PyTorch's
    intra-op pool is set there). A runner with ``self_timed = True`` measures itself:
    ``run()`` returns the seconds to record (a child interpreter's import time).
    """

    self_timed = False

    def __init__(self, run: Callable[[], Any], output: Callable[[], Any] | None = None,
                 set_threads: Callable[[], Any] | None = None, note: str = ""):
        self.run = run
        self.output = output or (lambda: None)
        self.set_threads = set_threads or (lambda: None)
        self.note = note


@dataclass
class Contender:
    """One implementation at one thread count; ``prepare()`` returns a :class:`Runner`."""

    impl: str
    threads: int
    prepare: Callable[[], Runner]
    rosenblatt: bool = False   # rows of our own library (checked, and what targets are about)


@dataclass
class Result:
    """The outcome for one contender of one workload (one row of every report)."""

    workload: str
    group: str
    title: str
    impl: str
    threads: int
    dtype: str | None = None
    unit: str = "call"
    status: str = "ok"          # ok | FAILED | skipped | unavailable | error
    reason: str = ""
    times: list = field(default_factory=list)
    number: int = 1
    warmup_s: float | None = None
    median_s: float | None = None
    flops: float | None = None
    gflops: float | None = None
    frac_peak: float | None = None
    ratio: float | None = None   # baseline's median / this median (same threads if possible)
    baseline: str | None = None
    check: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    rosenblatt: bool = False
    scaled: bool = False         # a shrunk version of a PERFORMANCE.md workload

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return _json_safe(d)


def _json_safe(x):
    """Replace NaN/inf by None so that the JSON is valid (``allow_nan=False``)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if hasattr(x, "item") and callable(x.item):  # numpy scalar
        return _json_safe(x.item())
    return x


class Workload:
    """Base class of a workload.

    Subclasses set the attributes and implement :meth:`contenders` and :meth:`check`;
    :meth:`setup` builds the data once before any contender is prepared and
    :meth:`teardown` frees it afterwards (the fashion data is 190 MB).

    Attributes
    ----------
    id : str
        Unique, filterable id such as ``"kernel/forward/float32/32x784x300"``.
    group : str
    title : str
    dtype : str or None
    unit : str
        What one timed unit is: "call", "epoch", "import", "fit".
    flops : float or None
        Floating-point operations of one unit (for GFLOP/s and the fraction of peak).
    baseline : str
        The impl that the ratio column compares against.
    calibrate : bool
        True when a unit may be repeated freely inside one repetition (kernels); training
        units change the model, so they run once per repetition and every contender
        does the same number of epochs.
    short : bool
        Units so short that more repetitions are worth it.
    data : tuple of str
        The attributes :meth:`setup` makes and :meth:`teardown` drops.
    """

    id = ""
    group = ""
    title = ""
    dtype = None
    unit = "call"
    flops = None
    baseline = "numpy"
    calibrate = True
    short = False
    scaled = False
    weight = 1.0   # rough share of the run's time, for the progress bar only
    data: tuple = ()

    def repetitions(self, cfg: Config) -> int:
        """Interleaved repetitions for this workload (more for short units)."""
        return cfg.reps_short if self.short else cfg.reps

    def setup(self, cfg: Config) -> None:
        """Build the data (once per workload)."""

    def teardown(self) -> None:
        """Drop the data: the attributes named in ``data``."""
        for name in self.data:
            self.__dict__.pop(name, None)

    def contenders(self, cfg: Config) -> list:
        """The contenders to time (abstract: every workload class defines its own)."""
        raise NotImplementedError

    def check(self, outputs: dict) -> dict:
        """Check outputs; ``outputs`` maps ``(impl, threads)`` to ``Runner.output()``.

        Returns a dict mapping the same keys to ``(ok, detail_dict)``.
        """
        return {key: (True, {}) for key in outputs}
