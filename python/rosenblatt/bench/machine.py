"""What the numbers were measured on: CPU, ISA, versions, threads, and the FLOP peak.

Every report starts with this block, because a GFLOP/s figure means nothing without the
machine it came from, and a ratio means little without the thread counts of both sides.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import sys
import time

import numpy as np

__all__ = ["ThreadControl", "all_threads", "blas_info", "machine_info", "measure_peak"]

# Environment variables that make the OpenBLAS shipped with current numpy pick a slower
# kernel on some processors (see the environment docs). They are read once when
# OpenBLAS loads, so the suite re-runs itself without them (see cli.main).
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

# Fraction of the FMA peak that OpenBLAS reaches on a large GEMM on this kind of machine
# (PERFORMANCE.md: 88% FP32, 92% FP64 at 1024^3, one thread). Used only when the core's
# own FMA probe is missing: peak ~= measured numpy GEMM / this fraction.
NUMPY_GEMM_EFFICIENCY = 0.90

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER", "XLA_FLAGS",
               "ROSENBLATT_BACKEND", "ROSENBLATT_ISA")


def all_threads() -> int:
    """Number of cores this process may run on (affinity-aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def _cpu_model() -> str:
    """The model name, with x86's family/model numbers: a VM's name ("AMD EPYC") does not
    tell a Zen 4 (family 25, double-pumped 512-bit FMAs) from a Zen 5 (26, full width)."""
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu family", "model") and key not in fields:
                    fields[key] = value.strip()
                if not line.strip() and fields:
                    break  # the first processor's block is enough
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def _cpu_flags() -> list[str]:
    wanted = ("avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni", "avx512_bf16",
              "avx2", "fma", "neon", "asimd")
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    have = set(line.split(":", 1)[1].split())
                    return [w for w in wanted if w in have]
    except OSError:
        pass
    return []


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def blas_info() -> list[dict]:
    """threadpoolctl's view of the loaded BLAS/OpenMP libraries (kernel, threads, version)."""
    from threadpoolctl import threadpool_info

    keep = ("user_api", "internal_api", "prefix", "version", "architecture", "num_threads",
            "threading_layer")
    return [{k: d.get(k) for k in keep if k in d} for d in threadpool_info()]


def core_module():
    """The compiled core, or ``(None, reason)`` when it is not built."""
    try:
        from .. import _core
    # not built, or built for another Python: say which
    except Exception as exc:  # noqa: BLE001
        return None, f"{type(exc).__name__}: {exc}"
    return _core, ""


def _core_call(core, names, *args):
    for name in names:
        fn = getattr(core, name, None)
        if callable(fn):
            try:
                return fn(*args)
            except TypeError:
                continue
    return None


def core_isa() -> dict:
    """ISA chosen by the compiled core and the ones it could use."""
    core, why = core_module()
    if core is None:
        return {"isa": None, "available_isas": [], "reason": why}
    isa = _core_call(core, ("isa", "current_isa"))
    avail = _core_call(core, ("available_isas", "isas"))
    return {"isa": isa, "available_isas": list(avail) if avail else [], "reason": "",
            "default_threads": _core_call(core, ("get_num_threads",)),
            "hardware_threads": _core_call(core, ("hardware_threads",))}


def machine_info(n_threads: int | None = None) -> dict:
    """Collect the header of every report.

    Parameters
    ----------
    n_threads : int, optional
        The "all threads" setting of this run (default: every core this process may use).

    Returns
    -------
    dict
        CPU model and flags, the core's ISA, versions of every library involved, BLAS
        kernel and threads as threadpoolctl reports them, and the thread counts used.
    """
    from .. import __version__
    from ..kernels import available_backends

    unset = os.environ.get("_ROSENBLATT_BENCH_UNSET", "")
    info = {
        "cpu": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "cores": os.cpu_count(),
        "threads_all": n_threads or all_threads(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "rosenblatt": __version__,
        "backends": available_backends(),
        **{"core_" + k: v for k, v in core_isa().items()},
        "versions": {d: _version(d) for d in (
            "numpy", "scipy", "scikit-learn", "threadpoolctl", "numba", "torch", "jax",
            "jaxlib", "matplotlib")},
        "blas": blas_info(),
        "openblas_env_unset": unset or None,
        "openblas_env": {v: os.environ.get(v) for v in OPENBLAS_VARS if v in os.environ},
        # variables that change thread counts or the chosen code path, as set for this run
        "env": {v: os.environ[v] for v in THREAD_VARS if v in os.environ},
        "time_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }
    return info


# --------------------------------------------------------------------------------------
# the FLOP peak


def _core_peak(core, dtype, tries, seconds):
    """Single-core GFLOP/s from the core's FMA-loop probe (``_core.peak_flops_probe``) for
    the ISA in use; the best of ``tries`` runs, since load from elsewhere only lowers it."""
    fn = getattr(core, "peak_flops_probe", None)
    if fn is None:
        return None, "the core has no peak_flops_probe"
    best = max(float(fn(None, np.dtype(dtype).name, seconds)) for _ in range(tries))
    return best, "core.peak_flops_probe"


def _numpy_gemm_gflops(dtype, n, tries, threads):
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype=dtype)
    best = np.inf
    with threadpool_limits(limits=threads):
        np.matmul(a, b, out=c)
        for _ in range(tries):
            t0 = time.perf_counter()
            np.matmul(a, b, out=c)
            best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9


def measure_peak(n_threads: int, *, quick=False) -> dict:
    """Peak GFLOP/s of this machine per dtype, for one core and for ``n_threads``.

    Parameters
    ----------
    n_threads : int
        The "all threads" count of the run.
    quick : bool or "tiny"
        Shorter probes (``"tiny"``: also a smaller fallback GEMM).

    Uses the compiled core's FMA-loop probe (one core, the ISA in use) when it exists,
    times the thread count. Otherwise falls back to an
    estimate: the best of several 1024^3 numpy GEMMs on one thread divided by
    ``NUMPY_GEMM_EFFICIENCY`` (0.90), times the thread count. The fallback is stated in
    every report header because it understates the true peak on a quiet machine and
    overstates it on a loaded one.

    Returns
    -------
    dict
        ``{"source": str, "note": str, "float32": {"1": g, "N": g}, "float64": {...}}``.
    """
    out = {"source": None, "note": ""}
    core, why = core_module()
    for dtype in (np.float32, np.float64):
        one = None
        if core is not None:
            try:
                one, src = _core_peak(core, dtype, 1 if quick else 3, 0.1 if quick else 0.2)
            # a probe that fails must not stop the suite
            except Exception as exc:  # noqa: BLE001
                one, src = None, f"peak_flops_probe failed: {exc}"
            if one is not None:
                out["source"] = f"{src} (isa {core_isa()['isa']}, 1 core; x threads)"
            else:
                why = src
        if one is None:
            n = 256 if quick == "tiny" else 1024
            one = _numpy_gemm_gflops(dtype, n, 4 if quick else 10, 1) / NUMPY_GEMM_EFFICIENCY
            out["source"] = "numpy-estimate"
            out["note"] = (
                f"ESTIMATE: the core's FMA probe is unavailable ({why}); peak = best "
                f"numpy GEMM {n}^3 on 1 thread / {NUMPY_GEMM_EFFICIENCY:.2f} x threads")
        # the probe runs on one core; both cores of this machine have the same peak, so
        # the all-thread figure is the one-core figure times the thread count
        out[np.dtype(dtype).name] = {str(t): float(one * t) for t in sorted({1, n_threads})}
    return out


def peak_for(peak: dict, dtype: str, threads: int) -> float | None:
    """Peak GFLOP/s for ``dtype`` at ``threads`` (scaled from one core if not probed)."""
    row = peak.get(dtype)
    if not row:
        return None
    if str(threads) in row:
        return row[str(threads)]
    return row["1"] * threads


class ThreadControl:
    """Sets the thread count of every library for the duration of one timed repetition.

    BLAS and OpenMP pools go through threadpoolctl (so numpy, scikit-learn and any numpy
    call inside rosenblatt's Python layer obey the same count); PyTorch's intra-op pool
    is set by its runner; rosenblatt's own pool is set by ``n_threads``.
    """

    def __init__(self):
        from threadpoolctl import ThreadpoolController

        self._ctl = ThreadpoolController()

    def limit(self, n: int):
        """Context manager limiting BLAS/OpenMP pools to ``n`` threads."""
        return self._ctl.limit(limits=int(n))

    def refresh(self):
        """Re-scan loaded libraries (call after importing torch, which brings its own)."""
        from threadpoolctl import ThreadpoolController

        self._ctl = ThreadpoolController()
