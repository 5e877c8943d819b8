"""Command line of the suite: ``python -m rosenblatt.bench`` / ``rosenblatt-bench``."""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time

__all__ = ["default_markdown_path", "main", "parse_args"]

GROUPS = ("kernel", "train", "perceptron", "predict", "import", "memory")


def _ints(text):
    return tuple(sorted({int(v) for v in text.split(",") if v.strip()}))


def _names(text):
    return [v.strip() for v in text.split(",") if v.strip()]


def parse_args(argv=None):
    """Parse the command line (see ``python -m rosenblatt.bench --help``)."""
    p = argparse.ArgumentParser(
        prog="python -m rosenblatt.bench",
        description="Benchmark rosenblatt against scikit-learn, PyTorch, JAX and NumPy on "
                    "the workloads of PERFORMANCE.md; every row is also checked for a "
                    "correct result.")
    p.add_argument("--quick", action="store_true",
                   help="smoke run (about a minute): fewer shapes and repetitions, "
                        "training and Perceptron data scaled down")
    p.add_argument("--size", choices=("full", "quick", "tiny"), default=None,
                   help="problem sizes (--quick is --size quick; tiny is for self-tests)")
    p.add_argument("-k", dest="patterns", action="append", default=[], metavar="PATTERN",
                   help="run workloads whose id contains PATTERN (glob allowed); repeatable")
    p.add_argument("--only", action="append", default=[], metavar="GROUPS",
                   help=f"comma-separated groups among {', '.join(GROUPS)}")
    p.add_argument("--repeat", type=int, default=None, metavar="N",
                   help="interleaved repetitions per contender (median is reported)")
    p.add_argument("--threads", type=_ints, default=None, metavar="LIST",
                   help="thread counts, e.g. 1,2 (default: 1 and all cores)")
    p.add_argument("--backends", type=_names, default=None, metavar="LIST",
                   help="rosenblatt backends among cpp,numba,numpy (default: all; the "
                        "unavailable ones get a row saying why)")
    p.add_argument("--peers", type=_names, default=None, metavar="LIST",
                   help="peers among numpy,sklearn,torch,jax (default: all installed)")
    p.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                   help="timed seconds one contender may take (default 150 full, 15 quick); "
                        "slower ones show a single unchecked run")
    p.add_argument("--json", metavar="PATH", help="write every row as JSON")
    p.add_argument("--markdown", nargs="?", const="", default=None, metavar="PATH",
                   help="write the Markdown report (default path: benchmarks/RESULTS.md)")
    p.add_argument("--plot", metavar="PATH", help="write a PNG of speedups and GFLOP/s")
    p.add_argument("--list", action="store_true", help="list the selected workloads and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--keep-openblas-env", action="store_true",
                   help="do not re-run without OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE")
    args = p.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        p.error("--repeat must be >= 1")
    groups = [g for spec in args.only for g in _names(spec)]
    bad = [g for g in groups if g not in GROUPS]
    if bad:
        p.error(f"--only: unknown group(s) {bad}; choose among {', '.join(GROUPS)}")
    args.groups = groups
    args.size = args.size or ("quick" if args.quick else "full")
    for name, allowed in (("backends", ("cpp", "numba", "numpy")),
                          ("peers", ("numpy", "sklearn", "torch", "jax"))):
        vals = getattr(args, name)
        if vals is not None and any(v not in allowed for v in vals):
            p.error(f"--{name}: choose among {', '.join(allowed)}; got {vals}")
    return args


def default_markdown_path():
    """``benchmarks/RESULTS.md`` of the source tree this package lives in, else of cwd."""
    here = os.path.dirname(os.path.abspath(__file__))
    d = here
    for _ in range(5):
        d = os.path.dirname(d)
        if os.path.isfile(os.path.join(d, "pyproject.toml")) and \
                os.path.isdir(os.path.join(d, "benchmarks")):
            return os.path.join(d, "benchmarks", "RESULTS.md")
    return os.path.join(os.getcwd(), "benchmarks", "RESULTS.md")


def _cpu_seconds():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _reexec_without_openblas_env(argv):
    """OpenBLAS reads these variables once, when numpy loads, so the only way to time
    numpy without them is a fresh process; the child records what was unset."""
    from .machine import OPENBLAS_VARS

    found = {v: os.environ[v] for v in OPENBLAS_VARS if v in os.environ}
    if not found or os.environ.get("_ROSENBLATT_BENCH_CHILD"):
        return None
    env = {k: v for k, v in os.environ.items() if k not in found}
    env["_ROSENBLATT_BENCH_CHILD"] = "1"
    env["_ROSENBLATT_BENCH_UNSET"] = ", ".join(f"{k}={v}" for k, v in found.items())
    print(f"rosenblatt.bench: re-running without {', '.join(found)} (they slow numpy's "
          "OpenBLAS on this processor)", file=sys.stderr)
    return subprocess.call([sys.executable, "-m", "rosenblatt.bench", *argv], env=env)


def main(argv=None) -> int:
    """Run the benchmark suite.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``); see ``--help``.

    Returns
    -------
    int
        0 when every measured rosenblatt row passed its check and nothing crashed; 1
        when a rosenblatt row FAILED its check or any row crashed (``error``); 2 when no
        workload matches the filters. Unavailable rows (a backend not built, a peer not
        installed), skipped rows (over the time budget) and peers that FAILED their
        check are reported but do not fail the run.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if not args.keep_openblas_env and not args.list:
        rc = _reexec_without_openblas_env(argv)
        if rc is not None:
            return rc

    from .core import Config
    from .machine import all_threads, machine_info, measure_peak
    from .report import (
        header_lines,
        terminal_block,
        terminal_targets,
        to_json,
        write_json,
        write_plot,
    )
    from .runner import run_suite, select
    from .targets import evaluate_targets
    from .workloads import build_workloads

    n_all = all_threads()
    threads = args.threads or tuple(sorted({1, n_all}))
    cfg = Config(size=args.size, repeat=args.repeat, patterns=args.patterns,
                 groups=args.groups, backends=args.backends, peers=args.peers,
                 threads=threads, budget=args.budget)
    workloads = select(build_workloads(cfg), cfg)
    if args.list:
        for w in workloads:
            print(f"{w.id:<48} {w.title}")
        return 0
    if not workloads:
        print("no workload matches the filters (see --list)", file=sys.stderr)
        return 2

    t0 = time.perf_counter()
    cpu0 = _cpu_seconds()
    machine = machine_info(max(threads))
    peak = measure_peak(max(threads), quick="tiny" if args.size == "tiny" else args.size != "full")
    out = sys.stdout
    print("rosenblatt benchmark suite", file=out)
    for line in header_lines(machine, peak, cfg):
        print("  " + line, file=out)
    print(file=out, flush=True)

    def on_result(w, rows):
        for line in terminal_block(w.title, w.id, rows):
            print(line, file=out)
        print(file=out, flush=True)

    results = run_suite(workloads, cfg, peak, progress=not args.no_progress,
                        on_result=on_result)
    elapsed = time.perf_counter() - t0
    cpu = _cpu_seconds() - cpu0
    targets = evaluate_targets(results, cfg, max(threads))
    for line in terminal_targets(targets):
        print(line, file=out)
    n_bad = sum(r.status in ("FAILED", "error") for r in results)
    # the exit status is about rosenblatt and the suite itself: a rosenblatt row that
    # FAILED its check, or any row that crashed; a peer whose own training wanders off
    # scikit-learn's (its own RNG) is reported but does not fail the run
    n_fatal = sum((r.status == "FAILED" and r.rosenblatt) or r.status == "error"
                  for r in results)
    # CPU seconds next to wall seconds: on a shared machine the wall time says more
    # about the neighbours than about the suite
    print(f"\n{len(results)} rows, {n_bad} FAILED/error, "
          f"{sum(r.status == 'unavailable' for r in results)} unavailable; "
          f"{elapsed:.0f} s wall, {cpu:.0f} s CPU", file=out)

    def attempt(what, fn):
        # one report failing (a full disk, a missing font) must not lose the others
        try:
            fn()
            return True
        except Exception as exc:  # noqa: BLE001 - reported, and the exit status says so
            print(f"could not write the {what}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return False

    ok = True
    if args.json:
        ok &= attempt("JSON", lambda: write_json(
            args.json, to_json(machine, peak, cfg, results, targets, elapsed)))
        print(f"JSON: {args.json}", file=out)
    if args.plot:
        ok &= attempt("plot", lambda: write_plot(args.plot, results, peak, max(threads)))
        print(f"plot: {args.plot}", file=out)
    if args.markdown is not None:
        ok &= attempt("Markdown", lambda: _write_markdown(
            args, argv, machine, peak, cfg, results, targets, elapsed))
    return 1 if n_fatal or not ok else 0


def _write_markdown(args, argv, machine, peak, cfg, results, targets, elapsed):
    from .report import to_markdown

    path = args.markdown or default_markdown_path()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    cmd = "python -m rosenblatt.bench " + " ".join(shlex.quote(a) for a in argv)
    here = os.path.dirname(os.path.abspath(path))
    rel = os.path.relpath(os.path.abspath(args.plot), here) if args.plot else None
    with open(path, "w", encoding="utf-8") as f:
        f.write(to_markdown(machine, peak, cfg, results, targets, elapsed, cmd.strip(),
                            plot=rel))
    print(f"Markdown: {path}")
