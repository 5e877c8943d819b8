"""The benchmark suite: rosenblatt against its peers and against the machine's limit.

Run ``python -m rosenblatt.bench`` (or the ``rosenblatt-bench`` console script);
``--quick`` for a one-minute smoke run, ``-k``/``--only`` to pick workloads,
``--json``/``--markdown``/``--plot`` for reports. See ``benchmarks/README.md``.

Programmatic use::

    from rosenblatt.bench import Config, build_workloads, measure_peak, run_suite, select
    cfg = Config(size="quick", threads=(1, 2), patterns=["kernel/forward"])
    results = run_suite(select(build_workloads(cfg), cfg), cfg, measure_peak(2, quick=True))

Importing this package imports neither numba, PyTorch nor JAX; a peer is imported only
when a selected workload runs it.
"""

from .cli import main
from .core import Config, Contender, Result, Runner, Unavailable, Workload
from .machine import machine_info, measure_peak
from .runner import run_suite, select
from .targets import evaluate_targets
from .workloads import build_workloads

__all__ = [
           "Config",
           "Contender",
           "Result",
           "Runner",
           "Unavailable",
           "Workload",
           "build_workloads",
           "evaluate_targets",
           "machine_info",
           "main",
           "measure_peak",
           "run_suite",
           "select",
]
