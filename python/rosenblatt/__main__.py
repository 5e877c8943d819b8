"""``python -m rosenblatt``: the library's main job and its subcommands.

Without a subcommand it prints the version, the backends available here, the instruction
set and thread count of the compiled core, then trains a small MLP on scikit-learn's bundled
digits data with every available backend and prints accuracy and time.

Subcommands: ``tour`` (the lecture, runnable), ``playground`` (the local neural-network
playground), ``bench`` (the benchmark suite).
"""

import argparse
import sys
import time


def _core_facts():
    """ISA and thread count of the compiled core, or why it is absent."""
    from . import kernels

    if "cpp" not in kernels.available_backends():
        kernels.get_backend("numpy")
        reason = kernels._errors.get("cpp", "not built")
        return f"compiled core unavailable ({reason})"
    from . import _core

    isa = _core.isa()
    isas = ", ".join(_core.available_isas())
    return f"ISA {isa} (supported here: {isas}), {_core.get_num_threads()} threads"


def _train_each_backend(hidden, max_iter, seed):
    import warnings

    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split

    from . import kernels
    from .neural_network import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=seed,
                                              stratify=y)
    print(f"\nMLPClassifier{hidden} on digits ({X_tr.shape[0]} train / {X_te.shape[0]} "
          f"test rows, float32, adam, {max_iter} epochs):")
    print(f"  {'backend':8s} {'accuracy':>9s} {'fit time':>10s} {'per epoch':>10s} "
          f"{'warm-up':>9s}")
    for backend in kernels.available_backends():
        def make(n_iter, backend=backend):
            return MLPClassifier(hidden_layer_sizes=hidden, max_iter=n_iter,
                                 random_state=seed, backend=backend)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            # a one-epoch fit first, timed apart: Numba compiles its kernels on first use
            # (then caches them on disk), which is not training time
            t0 = time.perf_counter()
            make(1).fit(X_tr[:64], y_tr[:64])
            warm = time.perf_counter() - t0
            clf = make(max_iter)
            t0 = time.perf_counter()
            clf.fit(X_tr, y_tr)
            dt = time.perf_counter() - t0
        acc = clf.score(X_te, y_te)
        print(f"  {backend:8s} {acc:9.4f} {dt:9.3f}s {1e3 * dt / clf.n_iter_:8.2f}ms "
              f"{warm:8.3f}s")


def main(argv=None):
    """Run the main job or dispatch to a subcommand; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "tour":
        from .tour import main as tour_main

        return tour_main(argv[1:])
    if argv and argv[0] == "playground":
        from .playground import main as playground_main

        return playground_main(argv[1:])
    if argv and argv[0] == "bench":
        from .bench import main as bench_main

        return bench_main(argv[1:])

    parser = argparse.ArgumentParser(
        prog="python -m rosenblatt",
        description="Show what rosenblatt runs on here, then train a small MLP with each "
                    "backend. Subcommands: tour, playground, bench.")
    parser.add_argument("--hidden", type=int, nargs="+", default=[300, 100],
                        help="hidden layer sizes (default: 300 100, the lecture's network)")
    parser.add_argument("--max-iter", type=int, default=30, help="epochs (default: 30)")
    parser.add_argument("--seed", type=int, default=42, help="random_state (default: 42)")
    args = parser.parse_args(argv)

    from . import __version__, kernels

    print(f"rosenblatt {__version__}")
    print(f"backends available: {', '.join(kernels.available_backends())} "
          f"(default: {kernels.resolve_backend()})")
    print(f"compiled core: {_core_facts()}")
    _train_each_backend(tuple(args.hidden), args.max_iter, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
