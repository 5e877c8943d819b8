"""Interleaved timing of a workload's contenders, checks, and derived figures.

Timing rules, because the machine is shared and noisy:

- every contender of a workload is prepared and warmed up first (numba compiles, JAX
  traces, caches fill), then the repetitions run interleaved, A B C A B C ..., so a burst
  of load from elsewhere hits all contenders alike; the figure is the median;
- every repetition runs under an explicit thread count for every library involved;
- the garbage collector is off inside the timed region (as in ``timeit``);
- a kernel repetition loops ``number`` calls, calibrated so that one repetition lasts at
  least ``min_time`` and the timer's resolution does not matter;
- after a contender that ran on more than one thread, the next one starts only once the
  process is idle again (:func:`quiesce`): OpenBLAS's workers keep spinning about 0.1 s
  after a call (OpenMP's and our pool's for shorter), and would take a core away from
  whichever contender comes next.
"""

from __future__ import annotations

import fnmatch
import gc
import statistics
import sys
import time
import traceback

from .core import Config, Result, Unavailable
from .machine import ThreadControl, peak_for

__all__ = ["Progress", "run_suite", "run_workload", "select"]


class Progress:
    """A one-line progress bar on stderr (no dependency); silent when not a terminal.

    Parameters
    ----------
    total : float
        Total weight of the workloads (``Workload.weight``, a rough share of the time).
    stream : file, optional
        Default ``sys.stderr``.
    enabled : bool, optional
        Default: only when ``stream`` is a terminal, so logs and pipes stay clean.
    """

    def __init__(self, total, stream=None, enabled=None, width=28):
        self.total = max(1, total)
        self.done = 0.0        # weight of the workloads finished
        self.part = 0.0        # weight done of the current workload
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.width = width
        self.t0 = time.perf_counter()
        self.label = ""

    def within(self, part, label=None, weight=1.0):
        """Progress inside the current workload (``part`` in [0, 1] of ``weight``)."""
        self.part = min(1.0, max(0.0, part)) * weight
        if label is not None:
            self.label = label
        self.draw()

    def next(self, weight=1.0):
        """The current workload (of ``weight`` units) is finished."""
        self.done = min(self.total, self.done + weight)
        self.part = 0.0
        self.draw()

    def draw(self):
        if not self.enabled:
            return
        frac = min(1.0, (self.done + self.part) / self.total)
        fill = int(frac * self.width)
        bar = "#" * fill + "." * (self.width - fill)
        el = time.perf_counter() - self.t0
        line = f"\r[{bar}] {100 * frac:3.0f}% {el:5.0f}s  {self.label[:60]:<60}"
        self.stream.write(line)
        self.stream.flush()

    def clear(self):
        """Erase the bar so that a table can be printed in its place."""
        if self.enabled:
            self.stream.write("\r" + " " * (self.width + 80) + "\r")
            self.stream.flush()


def select(workloads, cfg: Config):
    """Keep the workloads matching ``cfg.patterns`` (any) and ``cfg.groups`` (any)."""
    out = []
    for w in workloads:
        if cfg.groups and w.group not in cfg.groups:
            continue
        if cfg.patterns and not any(
                p in w.id or fnmatch.fnmatch(w.id, p) or fnmatch.fnmatch(w.id, f"*{p}*")
                for p in cfg.patterns):
            continue
        out.append(w)
    return out


def _why(exc):
    if isinstance(exc, Unavailable):
        return str(exc)
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


def quiesce(max_wait=0.5, window=0.01):
    """Wait until the worker threads of the libraries timed so far stop spinning.

    Spinning workers burn CPU while the main thread sleeps; the process is idle once a
    short sleep costs (almost) no CPU time. Returns the seconds waited (bounded by
    ``max_wait``, so a thread that really works cannot stall the suite).
    """
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < max_wait:
        c0 = time.process_time()
        time.sleep(window)
        if time.process_time() - c0 < 0.1 * window:
            break
    return time.perf_counter() - t0


def _calibrate(runner, first_s, min_time):
    """Calls per repetition, and the seconds of one call (a second call: the warm-up
    may include compilation)."""
    t0 = time.perf_counter()
    runner.run()
    t = min(first_s, time.perf_counter() - t0)
    if t <= 0:
        return 1000, 0.0
    return max(1, min(100000, int(min_time / t) + 1)), t


def _timed(runner, number):
    """Seconds of ``number`` units with the garbage collector off (as ``timeit``)."""
    gc_was = gc.isenabled()
    gc.disable()
    try:
        if runner.self_timed:
            return sum(float(runner.run()) for _ in range(number))
        t0 = time.perf_counter()
        for _ in range(number):
            runner.run()
        return time.perf_counter() - t0
    finally:
        if gc_was:
            gc.enable()


def run_workload(w, cfg: Config, tc: ThreadControl, peak: dict, progress: Progress | None,
                 n_reps: int | None = None):
    """Prepare, time (interleaved), check and summarise one workload.

    Returns
    -------
    list of Result
        One per contender, in the workload's order.
    """
    reps = n_reps or w.repetitions(cfg)

    def new_result(c, **kw):
        r = Result(workload=w.id, group=w.group, title=w.title, impl=c.impl,
                   threads=c.threads, dtype=w.dtype, unit=w.unit, flops=w.flops,
                   baseline=w.baseline, rosenblatt=c.rosenblatt, scaled=w.scaled, **kw)
        if getattr(w, "sweep", False):
            r.extra["sweep"] = True  # batch-sweep rows feed the plot's GFLOP/s panel
        return r

    try:
        w.setup(cfg)
        contenders = w.contenders(cfg)
    # the whole workload cannot run: one row says why
    except Exception as exc:  # noqa: BLE001 - a crash becomes an error row
        status = "unavailable" if isinstance(exc, Unavailable) else "error"
        r = Result(workload=w.id, group=w.group, title=w.title, impl="-", threads=0,
                   dtype=w.dtype, unit=w.unit, status=status, reason=_why(exc),
                   scaled=w.scaled)
        w.teardown()
        return [r]

    live = []   # (contender, runner, result)
    results = []
    steps = max(1, len(contenders) * (1 + reps))
    done = 0

    def tick(label):
        nonlocal done
        done += 1
        if progress:
            progress.within(done / steps, label, w.weight)

    budget = cfg.budget if cfg.budget is not None else cfg.s("budget")
    too_slow = {}   # impl -> seconds of one unit at its first thread count

    for c in contenders:
        r = new_result(c)
        results.append(r)
        if c.impl in too_slow:
            # more threads will not rescue a unit that takes minutes; do not pay it twice
            r.status = "skipped"
            r.reason = (f"not run: one {w.unit} took {too_slow[c.impl]:.3g} s at fewer "
                        f"threads (budget {budget:g} s per contender, --budget)")
            tick(f"{w.id} {c.impl} t{c.threads}")
            continue
        if progress:
            progress.within(done / steps, f"{w.id} {c.impl} t{c.threads} (warm-up)",
                            w.weight)
        try:
            with tc.limit(c.threads):
                t0 = time.perf_counter()
                runner = c.prepare()
                runner.set_threads()
                t1 = time.perf_counter()
                runner.run()
                first = time.perf_counter() - t1
                r.warmup_s = time.perf_counter() - t0
                unit_s = first
                if c.threads > 1:
                    quiesce()
                if w.calibrate:
                    r.number, unit_s = _calibrate(runner, first, cfg.s("min_time"))
                elif first * reps > budget:
                    # the warm-up may have been compilation (numba, XLA): time one more
                    # unit before judging, and count it as the first repetition so that
                    # every contender still trains the same number of epochs
                    unit_s = _timed(runner, 1)
                    r.times.append(unit_s)
            if runner.note:
                r.extra["note"] = runner.note
            if unit_s * r.number * reps > budget:
                # show the one run we have, unchecked, rather than stall the suite
                too_slow[c.impl] = unit_s
                r.status = "skipped"
                r.times = [unit_s]
                r.reason = (f"too slow to repeat: one {w.unit} took {unit_s:.3g} s, {reps} "
                            f"repetition{'s' if reps > 1 else ''} exceed the budget of "
                            f"{budget:g} s (--budget); single unchecked run shown")
            else:
                live.append((c, runner, r))
        except Exception as exc:  # noqa: BLE001 - a crash becomes an error row
            r.status = "unavailable" if isinstance(exc, Unavailable) else "error"
            r.reason = _why(exc)
        tick(f"{w.id} {c.impl} t{c.threads}")

    for rep in range(reps):
        for c, runner, r in live:
            if r.status != "ok" or len(r.times) > rep:
                continue  # failed, or its first repetition was taken by the budget probe
            try:
                with tc.limit(c.threads):
                    runner.set_threads()
                    dt = _timed(runner, r.number)
                r.times.append(dt / r.number)
                if c.threads > 1:
                    quiesce()
            except Exception as exc:  # noqa: BLE001 - a crash becomes an error row
                r.status, r.reason = "error", _why(exc)
            tick(f"{w.id} rep {rep + 1}/{reps}")

    # honesty: a contender is only reported with a speed if its output is right
    outputs = {}
    for c, runner, r in live:
        if r.status == "ok":
            try:
                outputs[(c.impl, c.threads)] = runner.output()
            except Exception as exc:  # noqa: BLE001 - a crash becomes an error row
                r.status, r.reason = "error", _why(exc)
    try:
        verdicts = w.check(outputs)
    except Exception as exc:  # noqa: BLE001 - a crash becomes an error row
        verdicts = {key: (False, {"error": _why(exc)}) for key in outputs}
    for c, runner, r in live:
        key = (c.impl, c.threads)
        if r.status != "ok" or key not in verdicts:
            continue
        ok, detail = verdicts[key]
        r.check = detail
        if not ok:
            r.status = "FAILED"
            r.reason = detail.get("why", "result differs from the reference")
    w.teardown()
    _derive(results, peak)
    return results


def _derive(results, peak):
    """Median, GFLOP/s, fraction of peak and the ratio against the baseline."""
    for r in results:
        if r.status in ("ok", "skipped") and r.times:
            r.median_s = statistics.median(r.times)
            if r.flops and r.median_s > 0:
                r.gflops = r.flops / r.median_s / 1e9
                p = peak_for(peak, r.dtype, r.threads) if r.dtype else None
                if p:
                    r.frac_peak = r.gflops / p
    ok = [r for r in results if r.status in ("ok", "skipped") and r.median_s]
    for r in ok:
        base = [b for b in ok if b.impl == r.baseline]
        same = [b for b in base if b.threads == r.threads]
        pick = same or base
        if pick:
            # no same-thread baseline (JAX runs on all cores only): compare with its best
            b = min(pick, key=lambda x: x.median_s)
            r.ratio = b.median_s / r.median_s
            r.extra["ratio_vs"] = f"{b.impl} t{b.threads}"


def run_suite(workloads, cfg: Config, peak: dict, *, progress=True, on_result=None):
    """Run ``workloads`` in order and return all results.

    Parameters
    ----------
    workloads : list of Workload
    cfg : Config
    peak : dict
        From :func:`rosenblatt.bench.machine.measure_peak`.
    progress : bool or Progress
        Show a progress bar on stderr (only on a terminal).
    on_result : callable, optional
        ``on_result(workload, results)`` after each workload (the terminal report
        prints each block as soon as it is done).

    Returns
    -------
    list of Result
    """
    tc = ThreadControl()
    if isinstance(progress, Progress):
        bar = progress
    else:
        bar = Progress(sum(w.weight for w in workloads), enabled=None if progress else False)
    out = []
    for w in workloads:
        if getattr(w, "needs_torch", False):
            tc.refresh()
        try:
            res = run_workload(w, cfg, tc, peak, bar)
        except KeyboardInterrupt:
            # a long run stopped by hand still reports the workloads it finished
            bar.clear()
            print(f"interrupted during {w.id}: reporting the {len(out)} rows finished",
                  file=sys.stderr)
            break
        bar.next(w.weight)
        out.extend(res)
        if on_result:
            bar.clear()
            on_result(w, res)
            bar.draw()
    bar.clear()
    return out
